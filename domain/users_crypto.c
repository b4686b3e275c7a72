#include "users_crypto.h"
#include "es_mem.h"
#include <argon2.h>
#include <ctype.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SALT_BYTES  16
#define TAG_BYTES   32
#define NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define MAC_BYTES   crypto_aead_xchacha20poly1305_ietf_ABYTES

int users_crypto_init(es_err_t *err)
{
    if (sodium_init() < 0)
        return es_set(err, ES_EINTERNAL, "libsodium did not initialise");
    return 0;
}

int users_email_normalise(const char *email, char *out, size_t cap, es_err_t *err)
{
    if (!email)
        return es_set(err, ES_EINVAL, "email: is missing");
    while (*email == ' ' || *email == '\t')
        email++;
    size_t n = strlen(email);
    while (n && (email[n - 1] == ' ' || email[n - 1] == '\t'))
        n--;
    if (n == 0 || n > USERS_EMAIL_MAX || n + 1 > cap)
        return es_set(err, ES_EINVAL, "email: must be 3 to %d characters", USERS_EMAIL_MAX);
    const char *at = NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)email[i];
        if (c <= ' ' || c >= 0x7f) /* ASCII: what SMTP without SMTPUTF8 can deliver to */
            return es_set(err, ES_EINVAL,
                          "email: must be printable ASCII without blanks or control characters");
        if (c == '@') {
            if (at)
                return es_set(err, ES_EINVAL, "email: must hold exactly one '@'");
            at = email + i;
        }
        out[i] = (char)tolower(c);
    }
    out[n] = '\0';
    if (!at || at == email || at == email + n - 1)
        return es_set(err, ES_EINVAL, "email: is not an address");
    const char *dot = strchr(out + (at - email), '.');
    if (!dot || dot[1] == '\0' || dot == out + (at - email) + 1)
        return es_set(err, ES_EINVAL, "email: the domain is not valid");
    return 0;
}

int users_index_key_load(const char *path, unsigned char key[USERS_KEY_BYTES], es_err_t *err)
{
    char buf[256];
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f)
        return es_set(err, ES_EIO, "index key file '%s' is not readable", path ? path : "(unset)");
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *s = buf;
    while (*s && isspace((unsigned char)*s))
        s++;
    size_t len = strlen(s);
    while (len && isspace((unsigned char)s[len - 1]))
        s[--len] = '\0';
    int r = len == 2 * USERS_KEY_BYTES ? users_key_from_hex(s, key) : -1;
    sodium_memzero(buf, sizeof buf);
    if (r)
        return es_set(err, ES_EINVAL, "index key file '%s' must hold 64 hex digits", path);
    return 0;
}

void users_blind_index(const unsigned char key[USERS_KEY_BYTES], const char *norm_email,
                       char out[USERS_INDEX_HEX_LEN])
{
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, USERS_KEY_BYTES);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)norm_email, strlen(norm_email));
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2hex(out, USERS_INDEX_HEX_LEN, mac, sizeof mac);
}

void users_user_id(const char *index, char out[ES_UUID_LEN])
{
    es_uuid_derive(USERS_USER_ID_NS, index, out);
}

void users_key_new(unsigned char key[USERS_KEY_BYTES])
{
    crypto_aead_xchacha20poly1305_ietf_keygen(key);
}

void users_key_to_hex(const unsigned char key[USERS_KEY_BYTES], char out[2 * USERS_KEY_BYTES + 1])
{
    sodium_bin2hex(out, 2 * USERS_KEY_BYTES + 1, key, USERS_KEY_BYTES);
}

int users_key_from_hex(const char *hex, unsigned char key[USERS_KEY_BYTES])
{
    size_t got = 0;
    const char *end = NULL;
    if (!hex || strlen(hex) != 2 * USERS_KEY_BYTES)
        return -1;
    if (sodium_hex2bin(key, USERS_KEY_BYTES, hex, strlen(hex), NULL, &got, &end) != 0 ||
        got != USERS_KEY_BYTES || *end != '\0')
        return -1;
    return 0;
}

/* "eventshop-user:<user_id>:<field>" */
static size_t associated(char *ad, size_t cap, const char *user_id, const char *field)
{
    int n = snprintf(ad, cap, "eventshop-user:%s:%s", user_id, field);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

char *users_seal(const unsigned char key[USERS_KEY_BYTES], const char *user_id, const char *field,
                 const char *plain)
{
    char ad[256];
    size_t adlen = associated(ad, sizeof ad, user_id, field);
    size_t plen = strlen(plain);
    size_t blen = NONCE_BYTES + plen + MAC_BYTES;
    unsigned char *box = xmalloc(blen);
    unsigned long long clen = 0;
    randombytes_buf(box, NONCE_BYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt(box + NONCE_BYTES, &clen,
                                               (const unsigned char *)plain, plen,
                                               (const unsigned char *)ad, adlen, NULL, box, key);
    size_t b64cap = sodium_base64_ENCODED_LEN(blen, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = xmalloc(b64cap);
    sodium_bin2base64(b64, b64cap, box, NONCE_BYTES + (size_t)clen, sodium_base64_VARIANT_ORIGINAL);
    free(box);
    return b64;
}

char *users_open(const unsigned char key[USERS_KEY_BYTES], const char *user_id, const char *field,
                 const char *sealed, es_err_t *err)
{
    char ad[256];
    size_t adlen = associated(ad, sizeof ad, user_id, field);
    size_t slen = sealed ? strlen(sealed) : 0;
    unsigned char *box = xmalloc(slen + 1);
    size_t blen = 0;
    char *plain = NULL;
    if (!sealed ||
        sodium_base642bin(box, slen + 1, sealed, slen, NULL, &blen, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        blen < NONCE_BYTES + MAC_BYTES) {
        es_set(err, ES_EUNAUTH, "%s: is not a sealed value", field);
        goto out;
    }
    plain = xmalloc(blen - NONCE_BYTES - MAC_BYTES + 1);
    unsigned long long plen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            (unsigned char *)plain, &plen, NULL, box + NONCE_BYTES, blen - NONCE_BYTES,
            (const unsigned char *)ad, adlen, box, key) != 0) {
        free(plain);
        plain = NULL;
        es_set(err, ES_EUNAUTH, "%s: cannot be opened with this key", field);
        goto out;
    }
    plain[plen] = '\0';
out:
    free(box);
    return plain;
}

char *users_password_hash(const char *password, es_err_t *err)
{
    unsigned char salt[SALT_BYTES];
    randombytes_buf(salt, sizeof salt);
    size_t len = argon2_encodedlen(USERS_ARGON2_T, USERS_ARGON2_M_KIB, USERS_ARGON2_P, SALT_BYTES,
                                   TAG_BYTES, Argon2_id);
    char *encoded = xmalloc(len + 1);
    int r = argon2id_hash_encoded(USERS_ARGON2_T, USERS_ARGON2_M_KIB, USERS_ARGON2_P, password,
                                  strlen(password), salt, sizeof salt, TAG_BYTES, encoded, len);
    if (r != ARGON2_OK) {
        free(encoded);
        es_set(err, ES_EINTERNAL, "argon2id failed: %s", argon2_error_message(r));
        return NULL;
    }
    return encoded;
}

bool users_password_verify(const char *encoded, const char *password)
{
    if (!encoded || !password || strncmp(encoded, "$argon2id$", 10) != 0)
        return false;
    return argon2id_verify(encoded, password, strlen(password)) == ARGON2_OK;
}

static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;
static char *dummy_hash;

static void dummy_make(void)
{
    es_err_t err = ES_ERR_INIT;
    unsigned char pw[16];
    char hex[33];
    randombytes_buf(pw, sizeof pw);
    sodium_bin2hex(hex, sizeof hex, pw, sizeof pw);
    dummy_hash = users_password_hash(hex, &err);
}

bool users_password_verify_dummy(const char *password)
{
    pthread_once(&dummy_once, dummy_make);
    if (dummy_hash)
        (void)users_password_verify(dummy_hash, password ? password : "");
    return false;
}

json_t *users_seal_json(const unsigned char key[USERS_KEY_BYTES], const char *user_id,
                        const char *field, const char *plain)
{
    char *b64 = users_seal(key, user_id, field, plain);
    json_t *j = json_string(b64);
    free(b64);
    return j;
}
