/* hi_avro — the export's Avro, written here so that a re-run gives the same bytes: the envelope
 * schema of a topic, the binary encoding of a value in the codec's JSON mapping (ev_codec.h)
 * driven by a schema's JSON, and the Object Container File framing (magic, metadata map, sync
 * marker, blocks of count + size + data + sync). avro-c is not used: its schema_to_json drops
 * logical types and defaults, and its file writer seeds the sync marker from the clock. Pure. */
#ifndef HI_AVRO_H
#define HI_AVRO_H

#include "es_err.h"
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growing byte buffer. */
typedef struct hi_buf {
    unsigned char *data;
    size_t len, cap;
} hi_buf_t;

void hi_buf_put(hi_buf_t *b, const void *p, size_t n);
void hi_buf_long(hi_buf_t *b, int64_t v); /* zig-zag varint */
void hi_buf_free(hi_buf_t *b);

/* The envelope record of topic: metadata of the event (event_id, event_type, aggregate_id,
 * aggregate_version, occurred_at, its position and Kafka timestamp, the fields shredded from it)
 * and payload, the union of the records of types (an array of their schemas' JSON, borrowed; a
 * named type already defined by an earlier branch stays a reference). Each branch's top-level
 * sealed fields ("*_enc") and the e-mail blind index ("email_index") become nullable (default
 * null): what a forgotten user's key sealed comes out as null. A new reference. */
json_t *hi_envelope_schema(const char *topic, const json_t *types);
/* The name of the envelope's payload branch i (its record full name), borrowed; NULL if none. */
const char *hi_envelope_branch(const json_t *envelope, size_t i);

/* Every named type (record, enum, fixed) that root (a schema's JSON, borrowed) defines: a new
 * object full name -> its definition, for hi_avro_encode. */
json_t *hi_avro_names(const json_t *root);
/* Encodes value (the codec's JSON mapping) as schema (JSON; a name refers to names, from
 * hi_avro_names of the whole schema) in Avro binary onto out. Unions take the value itself: null
 * picks "null", else the first branch of the value's kind; a missing record field takes its
 * default. Fields of value the schema lacks are ignored (an older writer's). 0, or -1 with err
 * ES_EINVAL naming the path. */
int hi_avro_encode(const json_t *names, const json_t *schema, const json_t *value, hi_buf_t *out,
                   es_err_t *err);

/* Encodes value, an envelope object (hi_envelope_schema: its metadata fields and "payload"), with
 * the payload as the union's branch `branch` (hi_envelope_branch). 0, or -1 with err. */
int hi_avro_encode_envelope(const json_t *names, const json_t *envelope, const json_t *value,
                            size_t branch, hi_buf_t *out, es_err_t *err);

/* An Object Container File with schema_text and codec "null": the header, then one block of
 * count records (data: their encodings, back to back), each followed by sync (16 bytes). */
void hi_ocf_header(hi_buf_t *out, const char *schema_text, const unsigned char sync[16]);
void hi_ocf_block(hi_buf_t *out, int64_t count, const void *data, size_t len,
                  const unsigned char sync[16]);

#endif
