/* ev_convert — internal to events/: JSON <-> avro generic values, driven by the value's schema,
 * with the mapping ev_codec.h describes. */
#ifndef EV_CONVERT_H
#define EV_CONVERT_H

#include "es_err.h"
#include <avro.h>
#include <jansson.h>

/* Fills v (an empty generic value) from j (borrowed). defaults (borrowed): record full name ->
 * {field: default in the JSON mapping}, used for missing fields. Strict: unknown fields, wrong
 * kinds and missing fields without default are ES_EINVAL errors naming the field path. */
int ev_json_to_avro(const json_t *defaults, const json_t *j, avro_value_t *v, es_err_t *err);

/* A new JSON value for v, or NULL with err set (ES_EINVAL: enum index out of range, invalid
 * utf-8, non-finite number). Every record gets, from defaults, the fields it lacks. */
json_t *ev_avro_to_json(const json_t *defaults, avro_value_t *v, es_err_t *err);

#endif
