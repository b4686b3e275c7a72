/* jwt — bearer tokens for the API: verification with the algorithm pinned by configuration
 * (RS256 with a public key, or HS256 with a secret of at least 32 bytes), and minting for the
 * eventshop-token CLI and tests. libjwt checks only the signature, and accepts alg "none" and
 * HS/RS confusion when left to itself: this module pins the algorithm before libjwt sees the
 * token and checks every claim itself.
 *
 * A token carries iss, aud (a string or an array), sub, exp (required), nbf and iat (optional),
 * role ("admin" | "vendor" | "customer") and, for vendors, vendor_id. Clock skew of
 * API_JWT_LEEWAY seconds is allowed on exp and nbf.
 *
 * Configuration (api_jwt_new_from_env):
 *   EVENTSHOP_JWT_ALG               RS256 (default) or HS256
 *   EVENTSHOP_JWT_PUBLIC_KEY_FILE   RS256: PEM public key, to verify
 *   EVENTSHOP_JWT_PRIVATE_KEY_FILE  RS256: PEM private key, to mint (the CLI only)
 *   EVENTSHOP_JWT_SECRET(_FILE)     HS256: the shared secret, >= 32 bytes
 *   EVENTSHOP_JWT_ISSUER            default "eventshop"
 *   EVENTSHOP_JWT_AUDIENCE          default "eventshop-api" */
#ifndef API_JWT_H
#define API_JWT_H

#include "es_err.h"
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define API_JWT_LEEWAY      60
#define API_JWT_MIN_SECRET  32
#define API_JWT_MAX_TOKEN   8192
#define API_JWT_DEFAULT_ISS "eventshop"
#define API_JWT_DEFAULT_AUD "eventshop-api"

typedef struct api_jwt api_jwt_t;

/* Who a verified token speaks for. */
struct api_jwt_principal {
    char sub[128];
    char role[16];       /* "admin", "vendor" or "customer" */
    char vendor_id[128]; /* non-empty for vendors, "" otherwise */
    long long exp;       /* the token's expiry, seconds since the epoch */
};

enum api_jwt_use {
    API_JWT_VERIFY, /* needs the public key (RS256) or the secret (HS256) */
    API_JWT_SIGN,   /* needs the private key (RS256) or the secret (HS256) */
};

/* A verifier or signer. alg is "RS256" or "HS256"; key (copied) is the PEM public key (RS256,
 * VERIFY), the PEM private key (RS256, SIGN) or the secret (HS256). issuer and audience are
 * copied. Returns NULL with err ES_EINVAL for an unknown alg, an empty key, a short secret or
 * a PEM that does not parse. */
api_jwt_t *api_jwt_new(enum api_jwt_use use, const char *alg, const unsigned char *key,
                       size_t key_len, const char *issuer, const char *audience, es_err_t *err);
/* The same from the environment (see above). Key material is never logged. */
api_jwt_t *api_jwt_new_from_env(enum api_jwt_use use, es_err_t *err);
void api_jwt_free(api_jwt_t *j);

/* Verifies token (borrowed) at time now (0: the clock) and fills out. Returns 0, or -1 with err
 * ES_EUNAUTH and a message naming the check that failed ("token expired at 1700000000"). */
int api_jwt_verify(const api_jwt_t *j, const char *token, time_t now, struct api_jwt_principal *out,
                   es_err_t *err);

/* Mints a token for p, valid from now (0: the clock) for ttl seconds; needs a SIGN handle.
 * Returns an owned string (free()) or NULL with err (ES_EINVAL for a bad principal). */
char *api_jwt_mint(const api_jwt_t *j, const struct api_jwt_principal *p, long ttl, time_t now,
                   es_err_t *err);

/* The token of an "Authorization: Bearer <token>" value, borrowed from it; NULL if the value is
 * NULL or another scheme. */
const char *api_jwt_bearer(const char *authorization);

/* Whether role is one of "admin", "vendor", "customer". */
bool api_jwt_role_is_valid(const char *role);

#endif
