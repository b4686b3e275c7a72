/* es_log — one JSON object per line on stdout: ts, level, role, msg, plus optional fields.
 * The level is tested before any argument is evaluated. Never pass a secret. */
#ifndef ES_LOG_H
#define ES_LOG_H

typedef enum { ES_LOG_DEBUG, ES_LOG_INFO, ES_LOG_WARN, ES_LOG_ERROR } es_log_level_t;

extern es_log_level_t es_log_min_level;

/* role is borrowed and must outlive the process (a string literal). Reads EVENTSHOP_LOG_LEVEL. */
void es_log_init(const char *role);
/* trace_id may be NULL; fmt formats the "msg" field. */
void es_log_write(es_log_level_t lvl, const char *trace_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

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
#define es_debug(...) es_log(ES_LOG_DEBUG, __VA_ARGS__)
#define es_info(...)  es_log(ES_LOG_INFO, __VA_ARGS__)
#define es_warn(...)  es_log(ES_LOG_WARN, __VA_ARGS__)
#define es_error(...) es_log(ES_LOG_ERROR, __VA_ARGS__)

#endif
