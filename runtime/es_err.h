/* es_err — the caller-owned error every fallible call fills. The first error set wins, so the
 * innermost, most precise message survives the trip up the stack. */
#ifndef ES_ERR_H
#define ES_ERR_H

#include <stdbool.h>

typedef enum es_code {
    ES_OK = 0,
    ES_EINVAL,     /* bad input from a client: a 4xx */
    ES_ENOTFOUND,  /* unknown aggregate, subject, route */
    ES_ECONFLICT,  /* state or version conflict */
    ES_EFORBIDDEN, /* authenticated but not allowed */
    ES_EUNAUTH,    /* missing or bad credentials */
    ES_ETOOLARGE,  /* body or value over a cap */
    ES_EIO,        /* a dependency (Kafka, MySQL, registry) failed; may be retried */
    ES_ETIMEOUT,   /* a bounded wait ran out */
    ES_EFATAL,     /* unrecoverable: restart the process */
    ES_EINTERNAL,  /* a bug */
} es_code_t;

typedef struct es_err {
    es_code_t code;
    char msg[256];
} es_err_t;

#define ES_ERR_INIT                                                                                \
    {                                                                                              \
        ES_OK,                                                                                     \
        {                                                                                          \
            0                                                                                      \
        }                                                                                          \
    }

/* Sets code and a printf-style message unless an error is already set. Returns -1 (or the
 * negated code through es_fail) so callers can `return es_set(err, ...)`. err may be NULL. */
int es_set(es_err_t *err, es_code_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void es_clear(es_err_t *err);
static inline bool es_failed(const es_err_t *err)
{
    return err && err->code != ES_OK;
}
/* Lower-case stable name of a code, e.g. "invalid", "not_found". */
const char *es_code_name(es_code_t code);

#endif
