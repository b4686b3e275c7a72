/* pj_event — reading a decoded event's fields while planning it: each reader checks the field
 * and, when it is missing or out of bounds, sets ES_EINVAL naming it ("metadata.event_id:
 * missing or not a string"), the error that dead-letters the event. path prefixes the key in
 * messages ("" or "metadata."); obj and every string returned are borrowed from the event. */
#ifndef PJ_EVENT_H
#define PJ_EVENT_H

#include "es_err.h"
#include <jansson.h>
#include <stddef.h>

/* The string at key with min to max characters (not bytes: VARCHAR(n) counts characters); NULL
 * with err otherwise. */
const char *pj_event_str(const json_t *obj, const char *path, const char *key, size_t min,
                         size_t max, es_err_t *err);
/* The integer at key, at least min, into *out; -1 with err otherwise. */
int pj_event_int(const json_t *obj, const char *path, const char *key, long long min,
                 long long *out, es_err_t *err);

/* An event's metadata as the read models keep it. */
struct pj_meta {
    const char *event_id; /* 36 characters */
    const char *actor;    /* unchecked: NULL when absent */
    long long version;    /* aggregate_version, >= 1 */
    long long occurred_at;
};

/* Reads event's "metadata" record into *m; -1 with err (ES_EINVAL) when it is malformed. */
int pj_event_meta(const json_t *event, struct pj_meta *m, es_err_t *err);

#endif
