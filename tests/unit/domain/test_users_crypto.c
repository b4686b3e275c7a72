#include "users_crypto.h"
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void setup(void)
{
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(users_crypto_init(&err), 0, "%s", err.msg);
}

TestSuite(users_crypto, .init = setup);

static const unsigned char index_key[USERS_KEY_BYTES] = "0123456789abcdef0123456789abcdef";

Test(users_crypto, email_normalised_and_checked)
{
    char out[USERS_EMAIL_MAX + 1];
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(users_email_normalise("  Alice@Example.COM ", out, sizeof out, &err), 0);
    cr_assert_str_eq(out, "alice@example.com");
    static const char *const bad[] = {"",
                                      "alice",
                                      "@example.com",
                                      "alice@",
                                      "a@b@c.d",
                                      "a b@c.d",
                                      "alice@example",
                                      "alice@.com",
                                      "j\xc3\xb6rg@example.com"}; /* ASCII only */
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        es_err_t e = ES_ERR_INIT;
        cr_assert_eq(users_email_normalise(bad[i], out, sizeof out, &e), -1, "accepted '%s'",
                     bad[i]);
        cr_assert_eq(e.code, ES_EINVAL);
    }
}

Test(users_crypto, blind_index_is_keyed_stable_and_case_blind)
{
    char a[USERS_INDEX_HEX_LEN], b[USERS_INDEX_HEX_LEN], c[USERS_INDEX_HEX_LEN], n[256];
    es_err_t err = ES_ERR_INIT;
    users_email_normalise("Bob@Example.com", n, sizeof n, &err);
    users_blind_index(index_key, n, a);
    users_email_normalise("bob@example.com", n, sizeof n, &err);
    users_blind_index(index_key, n, b);
    cr_assert_str_eq(a, b);
    cr_assert_eq(strlen(a), 64);
    cr_assert_null(strstr(a, "bob"));
    unsigned char other[USERS_KEY_BYTES];
    memcpy(other, index_key, sizeof other);
    other[0] ^= 1;
    users_blind_index(other, n, c);
    cr_assert_str_neq(a, c, "another server key must give another index");
    /* RFC 4231 test case 2 shape: HMAC-SHA256 of a known input, to pin the algorithm */
    unsigned char jefe[USERS_KEY_BYTES] = "Jefe";
    users_blind_index(jefe, "what do ya want for nothing?", c);
    /* 32-byte key: "Jefe" zero-padded is the same HMAC key as "Jefe" (keys are padded) */
    cr_assert_str_eq(c, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

Test(users_crypto, seal_round_trip_and_binding)
{
    unsigned char k1[USERS_KEY_BYTES], k2[USERS_KEY_BYTES];
    users_key_new(k1);
    users_key_new(k2);
    char *s = users_seal(k1, "u-1", "email", "carol@example.com");
    char *s2 = users_seal(k1, "u-1", "email", "carol@example.com");
    cr_assert_str_neq(s, s2, "random nonces: two seals of one value differ");
    cr_assert_null(strstr(s, "carol"));
    es_err_t err = ES_ERR_INIT;
    char *p = users_open(k1, "u-1", "email", s, &err);
    cr_assert_not_null(p, "%s", err.msg);
    cr_assert_str_eq(p, "carol@example.com");
    free(p);

    es_err_t e1 = ES_ERR_INIT, e2 = ES_ERR_INIT, e3 = ES_ERR_INIT, e4 = ES_ERR_INIT;
    cr_assert_null(users_open(k2, "u-1", "email", s, &e1), "another key must not open it");
    cr_assert_eq(e1.code, ES_EUNAUTH);
    cr_assert_null(users_open(k1, "u-2", "email", s, &e2), "bound to its user");
    cr_assert_null(users_open(k1, "u-1", "phone", s, &e3), "bound to its field");
    s[10] = s[10] == 'A' ? 'B' : 'A';
    cr_assert_null(users_open(k1, "u-1", "email", s, &e4), "altered");
    free(s);
    free(s2);
}

Test(users_crypto, key_hex_round_trip)
{
    unsigned char k[USERS_KEY_BYTES], back[USERS_KEY_BYTES];
    char hex[2 * USERS_KEY_BYTES + 1];
    users_key_new(k);
    users_key_to_hex(k, hex);
    cr_assert_eq(users_key_from_hex(hex, back), 0);
    cr_assert_eq(memcmp(k, back, sizeof k), 0);
    cr_assert_eq(users_key_from_hex("abc", back), -1);
    hex[5] = 'z';
    cr_assert_eq(users_key_from_hex(hex, back), -1);
}

Test(users_crypto, index_key_file_loads_hex_only)
{
    char path[] = "/tmp/users-key-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    const char *hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
    cr_assert_eq(write(fd, hex, strlen(hex)), (ssize_t)strlen(hex));
    close(fd);
    unsigned char k[USERS_KEY_BYTES];
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(users_index_key_load(path, k, &err), 0, "%s", err.msg);
    cr_assert_eq(k[31], 0x1f);
    FILE *f = fopen(path, "w");
    fputs("short", f);
    fclose(f);
    es_err_t e2 = ES_ERR_INIT;
    cr_assert_eq(users_index_key_load(path, k, &e2), -1);
    cr_assert_null(strstr(e2.msg, "short"), "the message must not show the content");
    unlink(path);
}

Test(users_crypto, argon2id_hash_and_verify)
{
    es_err_t err = ES_ERR_INIT;
    char *h = users_password_hash("correct horse battery", &err);
    cr_assert_not_null(h, "%s", err.msg);
    cr_assert(strncmp(h, "$argon2id$v=19$m=19456,t=2,p=1$", 31) == 0, "got %s", h);
    cr_assert_null(strstr(h, "horse"));
    cr_assert(users_password_verify(h, "correct horse battery"));
    cr_assert_not(users_password_verify(h, "correct horse batterY"));
    cr_assert_not(users_password_verify("$argon2i$nonsense", "x"));
    cr_assert_not(users_password_verify_dummy("correct horse battery"));
    free(h);
}
