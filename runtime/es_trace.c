#include "es_trace.h"
#include "es_log.h"
#include <ctype.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void random_hex(char *out, size_t nhex)
{
    unsigned char b[16];
    do {
        if (RAND_bytes(b, (int)(nhex / 2)) != 1)
            memset(b, 0x5a, sizeof b); /* never all zero; randomness failure is not fatal here */
        for (size_t i = 0; i < nhex / 2; i++)
            snprintf(out + 2 * i, 3, "%02x", b[i]);
    } while (!is_hex(out, nhex, true));
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
    trace[32] = '\0';
    random_hex(span, 16);
    span[16] = '\0';
    snprintf(out, ES_TRACEPARENT_LEN, "00-%s-%s-%s", trace, span, flags);
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
