#include "es_log.h"
#include "es_env.h"
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

es_log_level_t es_log_min_level = ES_LOG_INFO;
static const char *log_role = "eventshop";
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void es_log_init(const char *role)
{
    log_role = role;
    const char *lvl = es_env_str("EVENTSHOP_LOG_LEVEL", "info");
    if (!strcasecmp(lvl, "debug"))
        es_log_min_level = ES_LOG_DEBUG;
    else if (!strcasecmp(lvl, "warn"))
        es_log_min_level = ES_LOG_WARN;
    else if (!strcasecmp(lvl, "error"))
        es_log_min_level = ES_LOG_ERROR;
    else
        es_log_min_level = ES_LOG_INFO;
    setvbuf(stdout, NULL, _IOLBF, 0);
}

static void log_vwrite(es_log_level_t lvl, const char *trace_id, const char *const *fields,
                       const char *fmt, va_list ap)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[64];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);

    /* jansson does the escaping: a message may quote client input */
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "ts", when, "level", names[lvl], "role", log_role,
                          "msg", msg);
    if (trace_id)
        json_object_set_new(o, "trace_id", json_string(trace_id));
    for (size_t i = 0; fields && fields[i]; i += 2) {
        if (fields[i + 1] && !json_object_get(o, fields[i]))
            json_object_set_new(o, fields[i], json_string(fields[i + 1]));
    }
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!line)
        return;
    pthread_mutex_lock(&log_lock);
    fputs(line, stdout);
    fputc('\n', stdout);
    pthread_mutex_unlock(&log_lock);
    free(line);
}

void es_log_write(es_log_level_t lvl, const char *trace_id, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(lvl, trace_id, NULL, fmt, ap);
    va_end(ap);
}

void es_log_write_kv(es_log_level_t lvl, const char *trace_id, const char *const *fields,
                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(lvl, trace_id, fields, fmt, ap);
    va_end(ap);
}

bool es_log_every_pass(es_log_every_t *e, long long now_ms, long long period_ms, long *skipped)
{
    if (e->last_ms && now_ms - e->last_ms < period_ms) {
        e->held++;
        return false;
    }
    *skipped = e->held;
    e->last_ms = now_ms ? now_ms : 1;
    e->held = 0;
    return true;
}
