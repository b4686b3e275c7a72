#include "es_trace.h"
#include "es_log.h"
#include <ctype.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool is_hex(const char *s, size_t n, bool nonzero)
{
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
            return false;
        any |= s[i] != '0';
    }
    return !nonzero || any;
}

bool es_trace_valid(const char *v)
{
    return v && strlen(v) == 55 && v[2] == '-' && v[35] == '-' && v[52] == '-' &&
           is_hex(v, 2, false) && strncmp(v, "ff", 2) && is_hex(v + 3, 32, true) &&
           is_hex(v + 36, 16, true) && is_hex(v + 53, 2, false);
}

/* Trace and span ids must be unique, not secret: a per-thread splitmix64 sequence seeded once
 * from the system's randomness (RAND_bytes and a snprintf a byte were a twentieth of the
 * handler's CPU, one span per command). */
static __thread uint64_t rng_state;
static __thread bool rng_seeded;

static uint64_t rng_next(void)
{
    if (!rng_seeded) {
        if (RAND_bytes((unsigned char *)&rng_state, sizeof rng_state) != 1)
            rng_state = (uint64_t)(uintptr_t)&rng_state ^ (uint64_t)time(NULL);
        rng_seeded = true;
    }
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* nhex (a multiple of 16) lowercase hex digits, never all zero */
static void random_hex(char *out, size_t nhex)
{
    static const char digits[] = "0123456789abcdef";
    for (;;) {
        uint64_t any = 0;
        for (size_t i = 0; i < nhex; i += 16) {
            uint64_t r = rng_next();
            any |= r;
            for (size_t j = 0; j < 16; j++)
                out[i + j] = digits[(r >> (4 * j)) & 0xf];
        }
        if (any)
            return;
    }
}

void es_trace_new(char out[ES_TRACEPARENT_LEN])
{
    es_trace_child(NULL, out);
}

void es_trace_child(const char *parent, char out[ES_TRACEPARENT_LEN])
{
    char trace[33], span[17], flags[3] = "00";
    if (es_trace_valid(parent)) {
        memcpy(trace, parent + 3, 32);
        memcpy(flags, parent + 53, 2);
    } else {
        random_hex(trace, 32);
    }
    random_hex(span, 16);
    /* "00-<trace>-<span>-<flags>", 55 characters */
    memcpy(out, "00-", 3);
    memcpy(out + 3, trace, 32);
    out[35] = '-';
    memcpy(out + 36, span, 16);
    out[52] = '-';
    memcpy(out + 53, flags, 2);
    out[55] = '\0';
}

bool es_trace_sampled(const char *traceparent)
{
    if (!es_trace_valid(traceparent))
        return false;
    char flags[3] = {traceparent[53], traceparent[54], '\0'};
    return strtol(flags, NULL, 16) & 1;
}

es_log_level_t es_trace_log_level(const char *traceparent)
{
    return es_trace_sampled(traceparent) ? ES_LOG_INFO : ES_LOG_DEBUG;
}

void es_trace_id(const char *traceparent, char out[ES_TRACE_ID_LEN])
{
    if (es_trace_valid(traceparent))
        snprintf(out, ES_TRACE_ID_LEN, "%.32s", traceparent + 3);
    else
        out[0] = '\0';
}
