#include "pj_event.h"
#include <string.h>

/* jansson strings are valid UTF-8: count the bytes that do not continue a character */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

const char *pj_event_str(const json_t *obj, const char *path, const char *key, size_t min,
                         size_t max, es_err_t *err)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v)) {
        es_set(err, ES_EINVAL, "%s%s: missing or not a string", path, key);
        return NULL;
    }
    const char *s = json_string_value(v);
    size_t n = utf8_chars(s);
    if (strlen(s) != json_string_length(v) || n < min || n > max) {
        es_set(err, ES_EINVAL, "%s%s: '%.40s' must have %zu to %zu characters", path, key, s, min,
               max);
        return NULL;
    }
    return s;
}

int pj_event_int(const json_t *obj, const char *path, const char *key, long long min,
                 long long *out, es_err_t *err)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < min)
        return es_set(err, ES_EINVAL, "%s%s: missing or not an integer >= %lld", path, key, min);
    *out = json_integer_value(v);
    return 0;
}

int pj_event_meta(const json_t *event, struct pj_meta *m, es_err_t *err)
{
    json_t *md = json_object_get(event, "metadata");
    if (!json_is_object(md))
        return es_set(err, ES_EINVAL, "metadata: missing or not a record");
    if (!(m->event_id = pj_event_str(md, "metadata.", "event_id", 36, 36, err)))
        return -1;
    if (pj_event_int(md, "metadata.", "aggregate_version", 1, &m->version, err) ||
        pj_event_int(md, "metadata.", "occurred_at", 0, &m->occurred_at, err))
        return -1;
    m->actor = json_string_value(json_object_get(md, "actor"));
    return 0;
}
