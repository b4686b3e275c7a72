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
/* Makes room for cap bytes in all (a buffer filled to about cap grows once, not by doublings). */
void hi_buf_reserve(hi_buf_t *b, size_t cap);
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
/* What precedes a block's data (its count and size), for a writer that appends the data and the
 * sync marker itself (hi_ocf_block without the copy). */
void hi_ocf_block_start(hi_buf_t *out, int64_t count, size_t len);
#define HI_OCF_SYNC_BYTES 16

/* --- the fast path: an event's body into its envelope without decoding it (hi_avro_scan.c) ---
 * The JSON path (ev_decode, then hi_avro_encode_envelope) writes the canonical encoding of the
 * decoded value. A body written with the event type's current schema in that same canonical form
 * (what every Avro writer produces) comes out byte for byte as it came in; the scan checks that it
 * is (minimal varints, one block per array or map, no duplicate map key, each union branch the
 * first of its JSON kind, valid UTF-8, finite numbers, no trailing byte) and finds what the
 * envelope needs. Anything else: the caller takes the JSON path, which decides. */

#define HI_AVRO_MAX_FIELDS 64 /* top-level fields of an event the fast path takes */

/* An event type's schema compiled for the scan (opaque). */
typedef struct hi_avro_prog hi_avro_prog_t;

/* Compiles record, an event's standalone schema JSON (every named type defined in it; borrowed).
 * NULL with err when it holds a type the scan does not take (fixed) or more than
 * HI_AVRO_MAX_FIELDS top-level fields. */
hi_avro_prog_t *hi_avro_prog_new(const json_t *record, es_err_t *err);
void hi_avro_prog_free(hi_avro_prog_t *p); /* NULL is a no-op */
/* Whether the record has top-level sealed fields ("*_enc") or the blind index ("email_index"). */
bool hi_avro_prog_has_sealed(const hi_avro_prog_t *p);

typedef struct hi_avro_span {
    size_t off, len; /* within the scanned body */
} hi_avro_span_t;

/* What hi_avro_scan found in a body (which it borrows: valid while the body is). */
typedef struct hi_avro_scan {
    const unsigned char *body;
    size_t field_end[HI_AVRO_MAX_FIELDS];  /* where each top-level field's bytes end */
    bool has_value[HI_AVRO_MAX_FIELDS];    /* the field holds a string, bytes or a symbol */
    hi_avro_span_t event_id, aggregate_id; /* metadata's */
    int64_t aggregate_version, occurred_at;
    hi_avro_span_t owner; /* user_id, else customer_id, when a string */
    bool has_owner;
    int owner_rank;
} hi_avro_scan_t;

/* Scans body (len bytes, the Avro binary after the wire header) as a record of p. 0, or -1 when
 * the JSON path must take it (see above). */
int hi_avro_scan(const hi_avro_prog_t *p, const void *body, size_t len, hi_avro_scan_t *out);

/* Where an event was read, and its branch in its topic's envelope (hi_envelope_branch). */
typedef struct hi_avro_where {
    const char *event_type, *topic;
    int32_t partition;
    int64_t offset, timestamp;
    size_t branch;
} hi_avro_where_t;

/* Appends onto out the envelope record of a scanned body: the bytes hi_avro_encode_envelope
 * writes for it. With shred (the owner is forgotten), the top-level sealed fields and index that
 * hold a value come out null, named in "shredded". Nothing is unsealed here. 0, or -1 (nothing
 * appended) when shredding needs a null the field's union lacks. */
int hi_avro_put_envelope(hi_buf_t *out, const hi_avro_prog_t *p, const hi_avro_scan_t *s,
                         const hi_avro_where_t *w, bool shred);

#endif
