/* es_log — one JSON object per line on stdout: ts, level, role, msg, plus optional fields.
 * The level is tested before any argument is evaluated. Never pass a secret. */
#ifndef ES_LOG_H
#define ES_LOG_H

#include <stdbool.h>

typedef enum { ES_LOG_DEBUG, ES_LOG_INFO, ES_LOG_WARN, ES_LOG_ERROR } es_log_level_t;

extern es_log_level_t es_log_min_level;

/* role is borrowed and must outlive the process (a string literal). Reads EVENTSHOP_LOG_LEVEL. */
void es_log_init(const char *role);
/* trace_id may be NULL; fmt formats the "msg" field. */
void es_log_write(es_log_level_t lvl, const char *trace_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Same, with extra string fields: fields is {"key", value, "key", value, ..., NULL} (see ES_F);
 * a NULL value is left out. Keys must not be ts, level, role, msg or trace_id. */
void es_log_write_kv(es_log_level_t lvl, const char *trace_id, const char *const *fields,
                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* A fields list for es_log_kv: ES_F("command_id", id, "status", status). */
#define ES_F(...) ((const char *const[]){__VA_ARGS__, NULL})

#define es_log(lvl, ...)                                                                           \
    do {                                                                                           \
        if ((lvl) >= es_log_min_level)                                                             \
            es_log_write((lvl), NULL, __VA_ARGS__);                                                \
    } while (0)
#define es_log_trace(lvl, trace, ...)                                                              \
    do {                                                                                           \
        if ((lvl) >= es_log_min_level)                                                             \
            es_log_write((lvl), (trace), __VA_ARGS__);                                             \
    } while (0)
#define es_log_kv(lvl, trace, fields, ...)                                                         \
    do {                                                                                           \
        if ((lvl) >= es_log_min_level)                                                             \
            es_log_write_kv((lvl), (trace), fields, __VA_ARGS__);                                  \
    } while (0)
/* At most one line per period for a message that may repeat fast (a broker's errors while it is
 * away): zero-initialise, then es_log_every_pass(&e, now_ms, period_ms, &skipped) is true when a
 * line may go out, with skipped = how many were held back since the last one. Not thread-safe:
 * one per thread, or under the caller's lock. */
typedef struct {
    long long last_ms; /* 0: never logged */
    long held;         /* calls held back since last_ms */
} es_log_every_t;
bool es_log_every_pass(es_log_every_t *e, long long now_ms, long long period_ms, long *skipped);

#define es_debug(...) es_log(ES_LOG_DEBUG, __VA_ARGS__)
#define es_info(...)  es_log(ES_LOG_INFO, __VA_ARGS__)
#define es_warn(...)  es_log(ES_LOG_WARN, __VA_ARGS__)
#define es_error(...) es_log(ES_LOG_ERROR, __VA_ARGS__)

#endif
