#include "pj_event.h"
#include <stdint.h>
#include <string.h>

/* The characters of the n bytes at s (jansson strings are valid UTF-8: the bytes that do not
 * continue a character), or n + 1 when s holds a NUL. Eight bytes at a time while they are ASCII
 * (ids, skus and names nearly always are): on every string field of every event. */
static size_t utf8_chars(const char *s, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        /* a zero byte: (w - 0x01..) & ~w & 0x80.. is non-zero */
        if ((w & 0x8080808080808080ULL) ||
            ((w - 0x0101010101010101ULL) & ~w & 0x8080808080808080ULL))
            break;
    }
    size_t chars = i;
    for (; i < n; i++) {
        if (!s[i])
            return n + 1;
        chars += ((unsigned char)s[i] & 0xC0) != 0x80;
    }
    return chars;
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
    size_t len = json_string_length(v), n = utf8_chars(s, len);
    if (n > len || n < min || n > max) {
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
