/* api_ratelimit — token buckets keyed by a short string (an e-mail's blind index, a client IP),
 * in memory, shared by the API's loop threads (one mutex). Used for failed logins: check before
 * the (costly) password verification, charge one token per failure only, so that a correct
 * login is never slowed down by the bucket of someone who had to retry.
 *
 * A bucket holds at most burst tokens and regains refill_per_s tokens per second. The table has
 * a fixed number of slots (bounded memory): a new key takes its set's least recently used slot,
 * so a flood of distinct keys can evict a bucket early — the per-IP bucket limits that flood,
 * and a cluster-wide limiter (at the ingress) is the production answer to distributed guessing.
 * Per process: each API replica counts on its own. */
#ifndef API_RATELIMIT_H
#define API_RATELIMIT_H

#include <stddef.h>

typedef struct api_ratelimit api_ratelimit_t;

#define API_RATELIMIT_KEY_MAX 72 /* longer keys are truncated */

/* A table of slots buckets (rounded up to a multiple of the set size); owned by the caller. */
api_ratelimit_t *api_ratelimit_new(size_t slots, double burst, double refill_per_s);
void api_ratelimit_free(api_ratelimit_t *rl);

/* 0 if key (borrowed) has at least one token at time now_s (seconds, monotonic), else the
 * whole seconds (>= 1) until it has one: the Retry-After. Takes nothing. */
long api_ratelimit_check(api_ratelimit_t *rl, const char *key, double now_s);
/* Takes one token from key's bucket at now_s (to zero at least: a bucket never goes negative). */
void api_ratelimit_charge(api_ratelimit_t *rl, const char *key, double now_s);
/* Refills key's bucket (a successful login clears the failures of its e-mail). */
void api_ratelimit_reset(api_ratelimit_t *rl, const char *key);

#endif
