/* ev_convert — internal to events/: JSON into avro generic values (decoding reads bytes
 * straight into JSON: ev_codec_read.h), driven by the value's schema,
 * with the mapping ev_codec.h describes. */
#ifndef EV_CONVERT_H
#define EV_CONVERT_H

#include "es_err.h"
#include <avro.h>
#include <jansson.h>
#include <stdbool.h>

/* Fills v (an empty generic value) from j (borrowed). defaults (borrowed): record full name ->
 * {field: default in the JSON mapping}, used for missing fields. Strict: unknown fields, wrong
 * kinds and missing fields without default are ES_EINVAL errors naming the field path. */
int ev_json_to_avro(const json_t *defaults, const json_t *j, avro_value_t *v, es_err_t *err);

/* What the direct reader and writer (ev_codec_read.c, ev_codec_write.c) share with this mapping:
 * s with its named-type links followed; the defaults (borrowed, may be NULL) of record s in
 * defaults, by its full name; whether j is of the JSON kind avro type t takes (ranges and
 * symbols not checked). */
avro_schema_t ev_unlink(avro_schema_t s);
const json_t *ev_record_defaults(const json_t *defaults, avro_schema_t s);
bool ev_json_kind_fits(avro_type_t t, const json_t *j);

#endif
