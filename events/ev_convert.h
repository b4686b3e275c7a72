/* ev_convert — internal to events/: JSON into avro generic values (decoding reads bytes
 * straight into JSON: ev_codec_read.h), driven by the value's schema,
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

#endif
