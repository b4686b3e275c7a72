/* jwt: tokens are forged here with OpenSSL alone (not libjwt), so that the verifier is tested
 * against an independent signer, and so that hostile tokens (alg none, HS/RS confusion, tampered
 * payloads) can be built. Keys are generated per test into temp files. */
#include "es_mem.h"
#include "jwt.h"
#include <criterion/criterion.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SECRET "0123456789abcdef0123456789abcdef-test"

static EVP_PKEY *rsa;
static char priv_path[64], pub_path[64];
static char *pub_pem;
static size_t pub_len;
static char *priv_pem;
static size_t priv_len;
static api_jwt_t *rs_verifier, *rs_signer, *hs_verifier;
static time_t now;

static char *write_pem(EVP_PKEY *k, bool private_key, char *path, size_t *len)
{
    strcpy(path, "/tmp/es-jwt-test-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    if (private_key)
        PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    else
        PEM_write_PUBKEY(f, k);
    fclose(f);
    f = fopen(path, "rb");
    char *buf = xcalloc(1, 8192);
    *len = fread(buf, 1, 8191, f);
    fclose(f);
    return buf;
}

static void setup(void)
{
    rsa = EVP_RSA_gen(2048);
    cr_assert_not_null(rsa);
    priv_pem = write_pem(rsa, true, priv_path, &priv_len);
    pub_pem = write_pem(rsa, false, pub_path, &pub_len);
    es_err_t err = ES_ERR_INIT;
    rs_verifier = api_jwt_new(API_JWT_VERIFY, "RS256", (unsigned char *)pub_pem, pub_len,
                              "eventshop", "eventshop-api", &err);
    rs_signer = api_jwt_new(API_JWT_SIGN, "RS256", (unsigned char *)priv_pem, priv_len, "eventshop",
                            "eventshop-api", &err);
    hs_verifier = api_jwt_new(API_JWT_VERIFY, "HS256", (unsigned char *)SECRET, strlen(SECRET),
                              "eventshop", "eventshop-api", &err);
    cr_assert(rs_verifier && rs_signer && hs_verifier, "%s", err.msg);
    now = time(NULL);
}

static void teardown(void)
{
    api_jwt_free(rs_verifier);
    api_jwt_free(rs_signer);
    api_jwt_free(hs_verifier);
    EVP_PKEY_free(rsa);
    free(pub_pem);
    free(priv_pem);
    unlink(priv_path);
    unlink(pub_path);
}

TestSuite(jwt, .init = setup, .fini = teardown);

/* ---- an independent signer ---- */

static char *b64url(const unsigned char *p, size_t len)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = xmalloc(len * 4 / 3 + 4), *o = out;
    size_t i;
    for (i = 0; i + 2 < len; i += 3) {
        *o++ = tbl[p[i] >> 2];
        *o++ = tbl[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
        *o++ = tbl[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)];
        *o++ = tbl[p[i + 2] & 63];
    }
    if (len - i == 1) {
        *o++ = tbl[p[i] >> 2];
        *o++ = tbl[(p[i] & 3) << 4];
    } else if (len - i == 2) {
        *o++ = tbl[p[i] >> 2];
        *o++ = tbl[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
        *o++ = tbl[(p[i + 1] & 15) << 2];
    }
    *o = '\0';
    return out;
}

enum sig { SIG_NONE, SIG_RS256, SIG_HMAC };

/* header.payload.signature; hmac_key is used for SIG_HMAC. Owned by the caller. */
static char *forge(const char *header, const char *payload, enum sig how, const char *hmac_key,
                   size_t hmac_len)
{
    char *h = b64url((const unsigned char *)header, strlen(header));
    char *p = b64url((const unsigned char *)payload, strlen(payload));
    char *input = xasprintf("%s.%s", h, p);
    unsigned char sig[512];
    size_t sig_len = 0;
    if (how == SIG_RS256) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        sig_len = sizeof sig;
        cr_assert_eq(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, rsa), 1);
        cr_assert_eq(EVP_DigestSign(md, sig, &sig_len, (unsigned char *)input, strlen(input)), 1);
        EVP_MD_CTX_free(md);
    } else if (how == SIG_HMAC) {
        unsigned int n = 0;
        HMAC(EVP_sha256(), hmac_key, (int)hmac_len, (unsigned char *)input, strlen(input), sig, &n);
        sig_len = n;
    }
    char *s = b64url(sig, sig_len);
    char *token = xasprintf("%s.%s", input, s);
    free(h);
    free(p);
    free(input);
    free(s);
    return token;
}

#define RS_HEADER "{\"alg\":\"RS256\",\"typ\":\"JWT\"}"
#define HS_HEADER "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

/* Claims with exp/nbf relative to now, the rest as given (extra is raw JSON members or ""). */
static char *claims(long exp_in, const char *role, const char *extra)
{
    return xasprintf("{\"iss\":\"eventshop\",\"aud\":\"eventshop-api\",\"sub\":\"user-1\","
                     "\"iat\":%ld,\"exp\":%ld%s%s%s%s}",
                     (long)now, (long)now + exp_in, role ? ",\"role\":\"" : "", role ? role : "",
                     role ? "\"" : "", extra);
}

static int verify(const api_jwt_t *j, const char *token, struct api_jwt_principal *p, es_err_t *err)
{
    es_clear(err);
    return api_jwt_verify(j, token, now, p, err);
}

static void expect_rejected(const api_jwt_t *j, const char *token, const char *msg)
{
    struct api_jwt_principal p = {0};
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(verify(j, token, &p, &err), -1, "token accepted; wanted '%s'", msg);
    cr_assert_eq(err.code, ES_EUNAUTH);
    cr_assert_str_eq(err.msg, msg);
    cr_assert_str_eq(p.sub, "", "principal filled for a rejected token");
}

/* ---- valid tokens ---- */

Test(jwt, valid_rs256_token_gives_the_principal)
{
    char *c = claims(300, "vendor", ",\"vendor_id\":\"v-7\"");
    char *t = forge(RS_HEADER, c, SIG_RS256, NULL, 0);
    struct api_jwt_principal p = {0};
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(verify(rs_verifier, t, &p, &err), 0, "%s", err.msg);
    cr_assert_str_eq(p.sub, "user-1");
    cr_assert_str_eq(p.role, "vendor");
    cr_assert_str_eq(p.vendor_id, "v-7");
    free(c);
    free(t);
}

Test(jwt, valid_hs256_token_gives_the_principal)
{
    char *c = claims(300, "customer", ",\"aud\":[\"other\",\"eventshop-api\"]");
    /* a duplicate "aud" would be rejected: build the claims without the default one */
    free(c);
    c = xasprintf("{\"iss\":\"eventshop\",\"aud\":[\"other\",\"eventshop-api\"],\"sub\":\"c-1\","
                  "\"exp\":%ld,\"role\":\"customer\"}",
                  (long)now + 60);
    char *t = forge(HS_HEADER, c, SIG_HMAC, SECRET, strlen(SECRET));
    struct api_jwt_principal p = {0};
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(verify(hs_verifier, t, &p, &err), 0, "%s", err.msg);
    cr_assert_str_eq(p.sub, "c-1");
    cr_assert_str_eq(p.role, "customer");
    cr_assert_str_eq(p.vendor_id, "");
    free(c);
    free(t);
}

Test(jwt, minted_token_verifies_and_env_config_loads)
{
    setenv("EVENTSHOP_JWT_ALG", "RS256", 1);
    setenv("EVENTSHOP_JWT_PUBLIC_KEY_FILE", pub_path, 1);
    setenv("EVENTSHOP_JWT_PRIVATE_KEY_FILE", priv_path, 1);
    es_err_t err = ES_ERR_INIT;
    api_jwt_t *v = api_jwt_new_from_env(API_JWT_VERIFY, &err);
    api_jwt_t *s = api_jwt_new_from_env(API_JWT_SIGN, &err);
    cr_assert(v && s, "%s", err.msg);
    struct api_jwt_principal in = {.sub = "admin-1", .role = "admin"}, out = {0};
    char *t = api_jwt_mint(s, &in, 60, 0, &err);
    cr_assert_not_null(t, "%s", err.msg);
    cr_assert_eq(api_jwt_verify(v, t, 0, &out, &err), 0, "%s", err.msg);
    cr_assert_str_eq(out.sub, "admin-1");
    cr_assert_str_eq(out.role, "admin");
    /* a verifier cannot mint */
    es_clear(&err);
    cr_assert_null(api_jwt_mint(v, &in, 60, 0, &err));
    free(t);
    api_jwt_free(v);
    api_jwt_free(s);
}

/* ---- algorithm attacks ---- */

Test(jwt, rejects_alg_none)
{
    char *c = claims(300, "admin", "");
    char *t = forge("{\"alg\":\"none\",\"typ\":\"JWT\"}", c, SIG_NONE, NULL, 0);
    expect_rejected(rs_verifier, t, "token is not a signed JWT (header.payload.signature)");
    char *t2 = xasprintf("%sAAAA", t); /* with some signature bytes */
    expect_rejected(rs_verifier, t2, "token algorithm 'none' is not the expected 'RS256'");
    expect_rejected(hs_verifier, t2, "token algorithm 'none' is not the expected 'HS256'");
    free(c);
    free(t);
    free(t2);
}

Test(jwt, rejects_hs256_signed_with_the_rsa_public_key)
{
    char *c = claims(300, "admin", "");
    char *t = forge(HS_HEADER, c, SIG_HMAC, pub_pem, pub_len);
    expect_rejected(rs_verifier, t, "token algorithm 'HS256' is not the expected 'RS256'");
    free(c);
    free(t);
}

Test(jwt, rejects_rs256_token_at_an_hs256_verifier)
{
    char *c = claims(300, "admin", "");
    char *t = forge(RS_HEADER, c, SIG_RS256, NULL, 0);
    expect_rejected(hs_verifier, t, "token algorithm 'RS256' is not the expected 'HS256'");
    free(c);
    free(t);
}

Test(jwt, rejects_tampered_payload)
{
    char *c = claims(300, "customer", "");
    char *t = forge(RS_HEADER, c, SIG_RS256, NULL, 0);
    char *c2 = claims(300, "admin", "");
    char *t2 = forge(RS_HEADER, c2, SIG_RS256, NULL, 0);
    /* t2's header and payload with t's signature */
    char *dot = strrchr(t2, '.');
    char *forged = xasprintf("%.*s%s", (int)(dot - t2), t2, strrchr(t, '.'));
    expect_rejected(rs_verifier, forged, "token signature is invalid");
    free(c);
    free(t);
    free(c2);
    free(t2);
    free(forged);
}

Test(jwt, rejects_hs256_with_another_secret)
{
    char *c = claims(300, "admin", "");
    const char *other = "another-secret-of-enough-length-123456";
    char *t = forge(HS_HEADER, c, SIG_HMAC, other, strlen(other));
    expect_rejected(hs_verifier, t, "token signature is invalid");
    free(c);
    free(t);
}

/* ---- time claims ---- */

Test(jwt, rejects_expired_beyond_leeway)
{
    char *c = claims(-120, "admin", "");
    char *t = forge(RS_HEADER, c, SIG_RS256, NULL, 0);
    char want[64];
    snprintf(want, sizeof want, "token expired at %ld", (long)now - 120);
    expect_rejected(rs_verifier, t, want);
    free(c);
    free(t);
    /* within the leeway */
    c = claims(-30, "admin", "");
    t = forge(RS_HEADER, c, SIG_RS256, NULL, 0);
    struct api_jwt_principal p;
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(verify(rs_verifier, t, &p, &err), 0, "%s", err.msg);
    free(c);
    free(t);
}

Test(jwt, rejects_missing_exp)
{
    char *c = xasprintf("{\"iss\":\"eventshop\",\"aud\":\"eventshop-api\",\"sub\":\"u\","
                        "\"role\":\"admin\"}");
    char *t = forge(RS_HEADER, c, SIG_RS256, NULL, 0);
    expect_rejected(rs_verifier, t, "token has no 'exp' claim");
    free(c);
    free(t);
}

Test(jwt, rejects_not_yet_valid)
{
    char extra[64];
    snprintf(extra, sizeof extra, ",\"nbf\":%ld", (long)now + 120);
    char *c = claims(600, "admin", extra);
    char *t = forge(RS_HEADER, c, SIG_RS256, NULL, 0);
    char want[64];
    snprintf(want, sizeof want, "token is not valid before %ld", (long)now + 120);
    expect_rejected(rs_verifier, t, want);
    free(c);
    free(t);
    snprintf(extra, sizeof extra, ",\"nbf\":%ld", (long)now + 30);
    c = claims(600, "admin", extra);
    t = forge(RS_HEADER, c, SIG_RS256, NULL, 0);
    struct api_jwt_principal p;
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(verify(rs_verifier, t, &p, &err), 0, "%s", err.msg);
    free(c);
    free(t);
}

/* ---- issuer and audience ---- */

Test(jwt, rejects_wrong_audience)
{
    char *c = xasprintf("{\"iss\":\"eventshop\",\"aud\":[\"a\",\"b\"],\"sub\":\"u\","
                        "\"exp\":%ld,\"role\":\"admin\"}",
                        (long)now + 60);
    char *t = forge(RS_HEADER, c, SIG_RS256, NULL, 0);
    expect_rejected(rs_verifier, t, "token audience does not include 'eventshop-api'");
    free(c);
    free(t);
    c = xasprintf("{\"iss\":\"eventshop\",\"aud\":\"eventshop-admin\",\"sub\":\"u\","
                  "\"exp\":%ld,\"role\":\"admin\"}",
                  (long)now + 60);
    t = forge(RS_HEADER, c, SIG_RS256, NULL, 0);
    expect_rejected(rs_verifier, t, "token audience does not include 'eventshop-api'");
    free(c);
    free(t);
}

Test(jwt, rejects_wrong_issuer)
{
    char *c = xasprintf("{\"iss\":\"evil\",\"aud\":\"eventshop-api\",\"sub\":\"u\","
                        "\"exp\":%ld,\"role\":\"admin\"}",
                        (long)now + 60);
    char *t = forge(RS_HEADER, c, SIG_RS256, NULL, 0);
    expect_rejected(rs_verifier, t, "token issuer 'evil' is not 'eventshop'");
    free(c);
    free(t);
}

/* ---- principal claims ---- */

Test(jwt, rejects_missing_or_unknown_role)
{
    char *c = claims(300, NULL, "");
    char *t = forge(RS_HEADER, c, SIG_RS256, NULL, 0);
    expect_rejected(rs_verifier, t, "token has no 'role' claim");
    free(c);
    free(t);
    c = claims(300, "root", "");
    t = forge(RS_HEADER, c, SIG_RS256, NULL, 0);
    expect_rejected(rs_verifier, t, "token role 'root' is unknown");
    free(c);
    free(t);
}

Test(jwt, rejects_vendor_without_vendor_id)
{
    char *c = claims(300, "vendor", "");
    char *t = forge(RS_HEADER, c, SIG_RS256, NULL, 0);
    expect_rejected(rs_verifier, t, "vendor token has no 'vendor_id' claim");
    free(c);
    free(t);
    c = claims(300, "vendor", ",\"vendor_id\":\"\"");
    t = forge(RS_HEADER, c, SIG_RS256, NULL, 0);
    expect_rejected(rs_verifier, t, "token claim 'vendor_id' is not a non-empty string");
    free(c);
    free(t);
}

Test(jwt, rejects_empty_sub_and_duplicate_claims)
{
    char *c = xasprintf("{\"iss\":\"eventshop\",\"aud\":\"eventshop-api\",\"sub\":\"\","
                        "\"exp\":%ld,\"role\":\"admin\"}",
                        (long)now + 60);
    char *t = forge(RS_HEADER, c, SIG_RS256, NULL, 0);
    expect_rejected(rs_verifier, t, "token claim 'sub' is not a non-empty string");
    free(c);
    free(t);
    c = xasprintf("{\"iss\":\"eventshop\",\"aud\":\"eventshop-api\",\"sub\":\"u\","
                  "\"exp\":%ld,\"role\":\"customer\",\"role\":\"admin\"}",
                  (long)now + 60);
    t = forge(RS_HEADER, c, SIG_RS256, NULL, 0);
    expect_rejected(rs_verifier, t, "token payload is not base64url JSON");
    free(c);
    free(t);
}

/* ---- configuration ---- */

Test(jwt, refuses_empty_short_or_bad_keys)
{
    es_err_t err = ES_ERR_INIT;
    cr_assert_null(api_jwt_new(API_JWT_VERIFY, "HS256", (unsigned char *)"", 0, "i", "a", &err));
    cr_assert_str_eq(err.msg, "the HS256 key is empty");
    es_clear(&err);
    cr_assert_null(api_jwt_new(API_JWT_VERIFY, "RS256", NULL, 0, "i", "a", &err));
    cr_assert_str_eq(err.msg, "the RS256 key is empty");
    es_clear(&err);
    cr_assert_null(
        api_jwt_new(API_JWT_VERIFY, "HS256", (unsigned char *)"short", 5, "i", "a", &err));
    cr_assert_str_eq(err.msg, "the HS256 secret has 5 bytes, fewer than 32");
    es_clear(&err);
    cr_assert_null(api_jwt_new(API_JWT_VERIFY, "RS256", (unsigned char *)SECRET, strlen(SECRET),
                               "i", "a", &err));
    cr_assert_str_eq(err.msg, "the RS256 public key is not an RSA public key in PEM");
    es_clear(&err);
    cr_assert_null(api_jwt_new(API_JWT_VERIFY, "none", (unsigned char *)SECRET, strlen(SECRET), "i",
                               "a", &err));
    cr_assert_str_eq(err.msg, "jwt algorithm 'none' is not supported (RS256 or HS256)");
    es_clear(&err);
    setenv("EVENTSHOP_JWT_ALG", "HS256", 1);
    setenv("EVENTSHOP_JWT_SECRET", "", 1);
    cr_assert_null(api_jwt_new_from_env(API_JWT_VERIFY, &err));
    cr_assert_eq(err.code, ES_EINVAL);
}

Test(jwt, bearer_extracts_the_token)
{
    cr_assert_str_eq(api_jwt_bearer("Bearer abc.def.ghi"), "abc.def.ghi");
    cr_assert_str_eq(api_jwt_bearer("bearer  x"), "x");
    cr_assert_null(api_jwt_bearer("Basic dXNlcjpwYXNz"));
    cr_assert_null(api_jwt_bearer("Bearer "));
    cr_assert_null(api_jwt_bearer(NULL));
}
