/* ev_codec_read — internal to events/: an Avro body read straight into JSON, driven by a reader
 * compiled once per writer schema, with the mapping ev_codec.h describes.
 *
 * Every event a projector or the API decodes used to go through avro-c: a pass that checks the
 * lengths (avro_skip_data), a read into a generic value (avro_value_read) and a walk of that value
 * into JSON, with the missing fields' defaults looked up by record name at every record. This reads
 * the bytes once, bounds-checked, into JSON: nothing but the JSON tree is allocated, no avro-c
 * call is made (so no write to its process-wide error buffer and no lock), and each record's
 * defaults for the fields its writer lacks are resolved when the reader is compiled. */
#ifndef EV_CODEC_READ_H
#define EV_CODEC_READ_H

#include "es_err.h"
#include <avro.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ev_reader ev_reader_t;

/* Compiles a reader for writer schema s (borrowed; it must outlive the reader). defaults
 * (borrowed, read now only): record full name -> {field: default in the JSON mapping}; a record
 * gets the defaults of the fields it lacks. Never fails: a type with no JSON mapping fails when
 * a body reaches it. */
ev_reader_t *ev_reader_new(const json_t *defaults, avro_schema_t s);
void ev_reader_free(ev_reader_t *r);

/* A new JSON value for the body of len bytes at p, or NULL with err (ES_EINVAL): truncated or
 * malformed input, trailing bytes, or a length above EV_MAX_ALLOC as "cannot decode '<name>'
 * (schema id <id>): ..." / "'<name>' (schema id <id>) has trailing bytes"; an enum index out of
 * range, invalid utf-8 or a non-finite number as "<field path>: ...". Allocates only the JSON tree
 * (through jansson's allocator). Thread-safe: r is only read. */
json_t *ev_reader_decode(const ev_reader_t *r, const char *name, int32_t id, const unsigned char *p,
                         size_t len, es_err_t *err);

#endif
