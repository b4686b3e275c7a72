#include "api_ratelimit.h"
#include "es_mem.h"
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SET_WAYS 8

struct bucket {
    char key[API_RATELIMIT_KEY_MAX + 1]; /* "" = free */
    double tokens;
    double updated_s;
};

struct api_ratelimit {
    pthread_mutex_t mu;
    struct bucket *slots;
    size_t n_sets;
    double burst;
    double refill_per_s;
};

api_ratelimit_t *api_ratelimit_new(size_t slots, double burst, double refill_per_s)
{
    api_ratelimit_t *rl = xcalloc(1, sizeof *rl);
    rl->n_sets = slots / SET_WAYS + 1;
    rl->slots = xcalloc(rl->n_sets * SET_WAYS, sizeof *rl->slots);
    rl->burst = burst;
    rl->refill_per_s = refill_per_s;
    pthread_mutex_init(&rl->mu, NULL);
    return rl;
}

void api_ratelimit_free(api_ratelimit_t *rl)
{
    if (!rl)
        return;
    pthread_mutex_destroy(&rl->mu);
    free(rl->slots);
    free(rl);
}

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* key's bucket refilled to now_s, or NULL if absent (and create is false); under the mutex */
static struct bucket *find(api_ratelimit_t *rl, const char *key, double now_s, int create)
{
    char k[API_RATELIMIT_KEY_MAX + 1];
    size_t n = strlen(key);
    if (n > API_RATELIMIT_KEY_MAX)
        n = API_RATELIMIT_KEY_MAX;
    memcpy(k, key, n);
    k[n] = '\0';
    struct bucket *set = rl->slots + (hash(k) % rl->n_sets) * SET_WAYS;
    struct bucket *victim = &set[0];
    for (int i = 0; i < SET_WAYS; i++) {
        struct bucket *b = &set[i];
        if (b->key[0] && strcmp(b->key, k) == 0) {
            double dt = now_s - b->updated_s;
            if (dt > 0) {
                b->tokens = fmin(rl->burst, b->tokens + dt * rl->refill_per_s);
                b->updated_s = now_s;
            }
            return b;
        }
        if (!b->key[0] || (victim->key[0] && b->updated_s < victim->updated_s))
            victim = b;
    }
    if (!create)
        return NULL;
    memcpy(victim->key, k, n + 1);
    victim->tokens = rl->burst;
    victim->updated_s = now_s;
    return victim;
}

long api_ratelimit_check(api_ratelimit_t *rl, const char *key, double now_s)
{
    long wait = 0;
    pthread_mutex_lock(&rl->mu);
    struct bucket *b = find(rl, key, now_s, 0);
    if (b && b->tokens < 1.0) {
        double s = rl->refill_per_s > 0 ? (1.0 - b->tokens) / rl->refill_per_s : 3600;
        wait = (long)ceil(s);
        if (wait < 1)
            wait = 1;
    }
    pthread_mutex_unlock(&rl->mu);
    return wait;
}

void api_ratelimit_charge(api_ratelimit_t *rl, const char *key, double now_s)
{
    pthread_mutex_lock(&rl->mu);
    struct bucket *b = find(rl, key, now_s, 1);
    b->tokens = fmax(0.0, b->tokens - 1.0);
    pthread_mutex_unlock(&rl->mu);
}

void api_ratelimit_reset(api_ratelimit_t *rl, const char *key)
{
    pthread_mutex_lock(&rl->mu);
    struct bucket *b = find(rl, key, 0, 0);
    if (b)
        b->key[0] = '\0';
    pthread_mutex_unlock(&rl->mu);
}
