/* jwt — see jwt.h. libjwt is used for the signature only: the header is read here first so that
 * a token whose alg is not the configured one never reaches libjwt with our key, and the claims
 * are parsed here (duplicates rejected) and checked one by one. */
#include "jwt.h"
#include "es_env.h"
#include "es_mem.h"
#include "es_uuid.h"
#include <errno.h>
#include <jansson.h>
#include <jwt.h> /* libjwt: api/ is not on this file's include path, see CMakeLists.txt */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct api_jwt {
    enum api_jwt_use use;
    jwt_alg_t alg;
    const char *alg_name; /* static */
    unsigned char *key;
    size_t key_len;
    char *issuer;
    char *audience;
};

static const char *const roles[] = {"admin", "vendor", "customer"};

bool api_jwt_role_is_valid(const char *role)
{
    for (size_t i = 0; role && i < sizeof roles / sizeof roles[0]; i++)
        if (strcmp(role, roles[i]) == 0)
            return true;
    return false;
}

const char *api_jwt_bearer(const char *authorization)
{
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
        return NULL;
    const char *t = authorization + 7;
    while (*t == ' ')
        t++;
    return *t ? t : NULL;
}

/* Checks that key parses as an RSA key of the kind `use` needs. */
static int check_rsa_pem(enum api_jwt_use use, const unsigned char *key, size_t len, es_err_t *err)
{
    BIO *bio = BIO_new_mem_buf(key, (int)len);
    EVP_PKEY *pk = use == API_JWT_VERIFY ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL)
                                         : PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    int ok = pk && EVP_PKEY_base_id(pk) == EVP_PKEY_RSA;
    EVP_PKEY_free(pk);
    BIO_free(bio);
    if (!ok)
        return es_set(err, ES_EINVAL, "the RS256 %s key is not an RSA %s key in PEM",
                      use == API_JWT_VERIFY ? "public" : "private",
                      use == API_JWT_VERIFY ? "public" : "private");
    return 0;
}

api_jwt_t *api_jwt_new(enum api_jwt_use use, const char *alg, const unsigned char *key,
                       size_t key_len, const char *issuer, const char *audience, es_err_t *err)
{
    jwt_alg_t a;
    const char *name;
    if (alg && strcmp(alg, "RS256") == 0) {
        a = JWT_ALG_RS256;
        name = "RS256";
    } else if (alg && strcmp(alg, "HS256") == 0) {
        a = JWT_ALG_HS256;
        name = "HS256";
    } else {
        es_set(err, ES_EINVAL, "jwt algorithm '%s' is not supported (RS256 or HS256)",
               alg ? alg : "");
        return NULL;
    }
    /* libjwt accepts any token when the key is empty: never build a handle without one */
    if (!key || key_len == 0) {
        es_set(err, ES_EINVAL, "the %s key is empty", name);
        return NULL;
    }
    if (a == JWT_ALG_HS256 && key_len < API_JWT_MIN_SECRET) {
        es_set(err, ES_EINVAL, "the HS256 secret has %zu bytes, fewer than %d", key_len,
               API_JWT_MIN_SECRET);
        return NULL;
    }
    if (a == JWT_ALG_RS256 && check_rsa_pem(use, key, key_len, err) != 0)
        return NULL;
    if (!issuer || !*issuer || !audience || !*audience) {
        es_set(err, ES_EINVAL, "the jwt issuer and audience must not be empty");
        return NULL;
    }
    api_jwt_t *j = xcalloc(1, sizeof *j);
    j->use = use;
    j->alg = a;
    j->alg_name = name;
    j->key = xmalloc(key_len + 1);
    memcpy(j->key, key, key_len);
    j->key[key_len] = '\0';
    j->key_len = key_len;
    j->issuer = xstrdup(issuer);
    j->audience = xstrdup(audience);
    return j;
}

api_jwt_t *api_jwt_new_from_env(enum api_jwt_use use, es_err_t *err)
{
    const char *alg = es_env_str("EVENTSHOP_JWT_ALG", "RS256");
    const char *iss = es_env_str("EVENTSHOP_JWT_ISSUER", API_JWT_DEFAULT_ISS);
    const char *aud = es_env_str("EVENTSHOP_JWT_AUDIENCE", API_JWT_DEFAULT_AUD);
    char *key = NULL;
    size_t len = 0;
    api_jwt_t *j = NULL;
    if (strcmp(alg, "HS256") == 0) {
        key = es_env_secret("EVENTSHOP_JWT_SECRET");
        if (!key) {
            es_set(err, ES_EINVAL, "HS256 needs EVENTSHOP_JWT_SECRET or EVENTSHOP_JWT_SECRET_FILE");
            goto out;
        }
        len = strlen(key);
    } else {
        const char *var = use == API_JWT_VERIFY ? "EVENTSHOP_JWT_PUBLIC_KEY_FILE"
                                                : "EVENTSHOP_JWT_PRIVATE_KEY_FILE";
        const char *path = es_env_str(var, NULL);
        if (!path) {
            es_set(err, ES_EINVAL, "%s needs %s", alg, var);
            goto out;
        }
        if (!(key = es_read_file(path, &len))) {
            es_set(err, ES_EINVAL, "cannot read %s '%s': %s", var, path, strerror(errno));
            goto out;
        }
    }
    j = api_jwt_new(use, alg, (const unsigned char *)key, len, iss, aud, err);
out:
    if (key) {
        explicit_bzero(key, len);
        free(key);
    }
    return j;
}

void api_jwt_free(api_jwt_t *j)
{
    if (!j)
        return;
    explicit_bzero(j->key, j->key_len);
    free(j->key);
    free(j->issuer);
    free(j->audience);
    free(j);
}

/* ---- verification ---- */

static int b64url_value(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Decodes unpadded base64url s[0..len) into a fresh buffer; NULL if malformed. */
static char *b64url_decode(const char *s, size_t len, size_t *out_len)
{
    if (len % 4 == 1)
        return NULL;
    char *out = xmalloc(len * 3 / 4 + 3);
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)s[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[n] = '\0';
    *out_len = n;
    return out;
}

static json_t *decode_segment(const char *s, size_t len)
{
    size_t n;
    char *raw = b64url_decode(s, len, &n);
    if (!raw)
        return NULL;
    json_error_t jerr;
    json_t *j = json_loadb(raw, n, JSON_REJECT_DUPLICATES, &jerr);
    free(raw);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* Copies a required non-empty string claim into dst. */
static int string_claim(const json_t *claims, const char *name, char *dst, size_t size,
                        es_err_t *err)
{
    const json_t *v = json_object_get(claims, name);
    if (!v)
        return es_set(err, ES_EUNAUTH, "token has no '%s' claim", name);
    const char *s = json_string_value(v);
    if (!s || !*s)
        return es_set(err, ES_EUNAUTH, "token claim '%s' is not a non-empty string", name);
    if (strlen(s) >= size)
        return es_set(err, ES_EUNAUTH, "token claim '%s' is longer than %zu bytes", name, size - 1);
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

/* A NumericDate claim: 1 and *t if present, 0 if absent, -1 with err if not a number. */
static int time_claim(const json_t *claims, const char *name, double *t, es_err_t *err)
{
    const json_t *v = json_object_get(claims, name);
    if (!v)
        return 0;
    if (!json_is_number(v))
        return es_set(err, ES_EUNAUTH, "token claim '%s' is not a number", name);
    *t = json_number_value(v);
    return 1;
}

static bool audience_matches(const json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    size_t i;
    const json_t *v;
    json_array_foreach(aud, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
            return true;
    }
    return false;
}

static int check_claims(const api_jwt_t *j, const json_t *claims, time_t now,
                        struct api_jwt_principal *out, es_err_t *err)
{
    double exp = 0, nbf = 0, iat = 0;
    int rc = time_claim(claims, "exp", &exp, err);
    if (rc < 0)
        return -1;
    if (rc == 0)
        return es_set(err, ES_EUNAUTH, "token has no 'exp' claim");
    if ((double)now >= exp + API_JWT_LEEWAY)
        return es_set(err, ES_EUNAUTH, "token expired at %.0f", exp);
    if ((rc = time_claim(claims, "nbf", &nbf, err)) < 0)
        return -1;
    if (rc == 1 && (double)now < nbf - API_JWT_LEEWAY)
        return es_set(err, ES_EUNAUTH, "token is not valid before %.0f", nbf);
    if ((rc = time_claim(claims, "iat", &iat, err)) < 0)
        return -1;
    if (rc == 1 && (double)now < iat - API_JWT_LEEWAY)
        return es_set(err, ES_EUNAUTH, "token is issued in the future at %.0f", iat);

    const char *iss = json_string_value(json_object_get(claims, "iss"));
    if (!iss)
        return es_set(err, ES_EUNAUTH, "token has no 'iss' claim");
    if (strcmp(iss, j->issuer) != 0)
        return es_set(err, ES_EUNAUTH, "token issuer '%.64s' is not '%s'", iss, j->issuer);
    const json_t *aud = json_object_get(claims, "aud");
    if (!aud)
        return es_set(err, ES_EUNAUTH, "token has no 'aud' claim");
    if (!audience_matches(aud, j->audience))
        return es_set(err, ES_EUNAUTH, "token audience does not include '%s'", j->audience);

    struct api_jwt_principal p = {0};
    if (string_claim(claims, "sub", p.sub, sizeof p.sub, err) != 0 ||
        string_claim(claims, "role", p.role, sizeof p.role, err) != 0)
        return -1;
    if (!api_jwt_role_is_valid(p.role))
        return es_set(err, ES_EUNAUTH, "token role '%s' is unknown", p.role);
    p.exp = (long long)exp;
    if (strcmp(p.role, "vendor") == 0) {
        if (!json_object_get(claims, "vendor_id"))
            return es_set(err, ES_EUNAUTH, "vendor token has no 'vendor_id' claim");
        if (string_claim(claims, "vendor_id", p.vendor_id, sizeof p.vendor_id, err) != 0)
            return -1;
    }
    *out = p;
    return 0;
}

int api_jwt_verify(const api_jwt_t *j, const char *token, time_t now, struct api_jwt_principal *out,
                   es_err_t *err)
{
    int ret = -1;
    json_t *header = NULL, *claims = NULL;
    jwt_t *jwt = NULL;
    if (!j || !token || !*token)
        return es_set(err, ES_EUNAUTH, "no token");
    size_t len = strlen(token);
    if (len > API_JWT_MAX_TOKEN)
        return es_set(err, ES_EUNAUTH, "token is longer than %d bytes", API_JWT_MAX_TOKEN);
    const char *dot1 = strchr(token, '.');
    const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (!dot1 || !dot2 || strchr(dot2 + 1, '.') || dot2[1] == '\0')
        return es_set(err, ES_EUNAUTH, "token is not a signed JWT (header.payload.signature)");
    if (!(header = decode_segment(token, (size_t)(dot1 - token)))) {
        es_set(err, ES_EUNAUTH, "token header is not base64url JSON");
        goto out;
    }
    const char *alg = json_string_value(json_object_get(header, "alg"));
    if (!alg || strcmp(alg, j->alg_name) != 0) {
        es_set(err, ES_EUNAUTH, "token algorithm '%.16s' is not the expected '%s'", alg ? alg : "",
               j->alg_name);
        goto out;
    }
    if (jwt_decode(&jwt, token, j->key, (int)j->key_len) != 0 || !jwt) {
        es_set(err, ES_EUNAUTH, "token signature is invalid");
        goto out;
    }
    if (jwt_get_alg(jwt) != j->alg) { /* belt and braces: libjwt's own reading of the header */
        es_set(err, ES_EUNAUTH, "token algorithm is not the expected '%s'", j->alg_name);
        goto out;
    }
    if (!(claims = decode_segment(dot1 + 1, (size_t)(dot2 - dot1 - 1)))) {
        es_set(err, ES_EUNAUTH, "token payload is not base64url JSON");
        goto out;
    }
    ret = check_claims(j, claims, now ? now : time(NULL), out, err);
out:
    jwt_free(jwt);
    json_decref(header);
    json_decref(claims);
    return ret;
}

/* ---- minting ---- */

char *api_jwt_mint(const api_jwt_t *j, const struct api_jwt_principal *p, long ttl, time_t now,
                   es_err_t *err)
{
    jwt_t *jwt = NULL;
    char *token = NULL, *out = NULL;
    if (j->use != API_JWT_SIGN) {
        es_set(err, ES_EINVAL, "this jwt handle verifies and cannot sign");
        return NULL;
    }
    if (!p->sub[0] || !api_jwt_role_is_valid(p->role) ||
        (strcmp(p->role, "vendor") == 0 && !p->vendor_id[0]) || ttl <= 0) {
        es_set(err, ES_EINVAL, "cannot mint for sub '%s' role '%s' vendor '%s' ttl %ld", p->sub,
               p->role, p->vendor_id, ttl);
        return NULL;
    }
    if (!now)
        now = time(NULL);
    char jti[ES_UUID_LEN];
    es_uuid_random(jti);
    int rc = jwt_new(&jwt);
    rc = rc ? rc : jwt_add_grant(jwt, "iss", j->issuer);
    rc = rc ? rc : jwt_add_grant(jwt, "aud", j->audience);
    rc = rc ? rc : jwt_add_grant(jwt, "sub", p->sub);
    rc = rc ? rc : jwt_add_grant(jwt, "role", p->role);
    if (p->vendor_id[0])
        rc = rc ? rc : jwt_add_grant(jwt, "vendor_id", p->vendor_id);
    rc = rc ? rc : jwt_add_grant(jwt, "jti", jti);
    rc = rc ? rc : jwt_add_grant_int(jwt, "iat", (long)now);
    rc = rc ? rc : jwt_add_grant_int(jwt, "nbf", (long)now);
    rc = rc ? rc : jwt_add_grant_int(jwt, "exp", (long)now + ttl);
    rc = rc ? rc : jwt_set_alg(jwt, j->alg, j->key, (int)j->key_len);
    if (rc != 0 || !(token = jwt_encode_str(jwt))) {
        es_set(err, ES_EINTERNAL, "cannot sign the token: %s", strerror(rc ? rc : errno));
        goto out;
    }
    out = xstrdup(token);
out:
    free(token);
    jwt_free(jwt);
    return out;
}
