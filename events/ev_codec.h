/* ev_codec — Avro events, commands, results and states on Kafka, in the Confluent wire format
 * (magic 0, 4-byte big-endian schema id, Avro binary), with subjects named
 * "<topic>-<record full name>" (TopicRecordNameStrategy, DESIGN.md §3).
 *
 * Domain code sees every record as a jansson object; the codec converts between JSON and Avro
 * driven only by the .avsc files (the single source of truth). JSON mapping:
 *   null/boolean/int/long/float/double/string -> the JSON scalar (long, timestamp-millis: integer)
 *   enum -> its symbol as a string; map -> object; array -> array; record -> object
 *   bytes/fixed -> base64 string
 *   union -> the value of the branch itself (no {"type": value} wrapper): null picks "null",
 *            otherwise the first branch whose JSON kind matches.
 * Encoding is strict: an unknown field, a wrong type or a missing field without default is
 * an ES_EINVAL error naming the field path ("metadata.actor_role: 'root' is not a symbol").
 * A missing field with a default gets the default.
 * Decoding uses the writer's schema (by the id in the header, fetched from the registry once and
 * cached), then fills, from the local schema of the same full name, the default of every field
 * the writer lacked (recursively), since avro-c does not resolve defaults itself.
 *
 * Schema files: <dir>/common/<Name>.avsc define the shared records eventshop.Metadata and
 * eventshop.CommandMetadata (inlined wherever another schema names them) and
 * eventshop.CommandResult; <dir>/<context>/<kind>/<Name>.avsc, kind in commands, events,
 * changelog, go on topic "<context>.<kind>"; CommandResult goes on "<context>.results".
 *
 * Thread-safe: one codec may be shared by every thread of a process. */
#ifndef EV_CODEC_H
#define EV_CODEC_H

#include "es_err.h"
#include "sr_client.h"
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ev_codec ev_codec_t;

#define EV_MAX_ALLOC (16u << 20) /* no single avro allocation above this: hostile input */

/* Installs the capped avro allocator. Call once at process start before any other avro call
 * (ev_codec_new calls it too; calling it twice is harmless). */
void ev_codec_global_init(void);

/* Loads and validates every .avsc under schema_dir. sr is borrowed and may be NULL for an
 * offline codec (unit tests, tools): then encoding needs ev_codec_set_id and decoding only
 * knows ids it assigned or was told. Returns NULL and fills err on a bad schema file. */
ev_codec_t *ev_codec_new(const char *schema_dir, sr_client_t *sr, es_err_t *err);
/* ev_codec_new with, besides the common schemas, only each context's schemas of kind ("commands",
 * "events" or "changelog"): for a reader of those topics alone, which then starts in about half
 * the time (eventshop-history export: parsing every schema was the longest step before its
 * reading). A type of another kind is then unknown here, as an unknown type is. */
ev_codec_t *ev_codec_new_kind(const char *schema_dir, sr_client_t *sr, const char *kind,
                              es_err_t *err);
void ev_codec_free(ev_codec_t *c);

/* Registers, with the registry, every schema that goes on one of the context's topics
 * (commands, events, changelog, results). Fails with ES_ECONFLICT when the registry rejects a
 * schema as incompatible: the caller must then refuse to start. */
int ev_codec_register_context(ev_codec_t *c, const char *context, es_err_t *err);

/* Offline: declares the id of a subject's schema (also makes the id decodable). For tests. */
int ev_codec_set_id(ev_codec_t *c, const char *topic, const char *full_name, int32_t id,
                    es_err_t *err);
/* Offline: adds a schema text (with the full name it defines) as writer schema for id. Tests use
 * it to decode data written by an older version of a schema. */
int ev_codec_add_writer_schema(ev_codec_t *c, int32_t id, const char *schema_json, es_err_t *err);

/* The expanded, standalone JSON text of a local schema (what gets registered), borrowed; NULL if
 * unknown. */
const char *ev_codec_schema_text(ev_codec_t *c, const char *full_name);
/* Every full name whose schema goes on topic, as a new JSON array of strings. */
json_t *ev_codec_types_for_topic(ev_codec_t *c, const char *topic);

/* Encodes value (borrowed) as a record of full_name, framed for topic. On success *out is a
 * malloc'd buffer owned by the caller (free()), *len its size. The subject's id is registered
 * or looked up on first use and cached. */
int ev_encode(ev_codec_t *c, const char *topic, const char *full_name, const json_t *value,
              void **out, size_t *len, es_err_t *err);

/* Decodes one framed message. On success *value is a new reference owned by the caller and
 * *full_name (if not NULL) is set to the record's full name, borrowed from the codec (valid
 * for its lifetime). Bad magic, an unknown id, truncated or hostile input: ES_EINVAL. */
int ev_decode(ev_codec_t *c, const void *buf, size_t len, const char **full_name, json_t **value,
              es_err_t *err);

/* The writer schema of id (fetched from the registry once, as ev_decode does): its record full
 * name into *full_name (borrowed, valid for the codec's lifetime) and, into *current, whether it
 * is the local schema of that name (the same JSON once expanded). When current, ev_decode of a
 * message with id fills no default: the body is a body of the local schema as it stands.
 * 0, or -1 with err as ev_decode would fail for an unknown id. */
int ev_codec_writer_info(ev_codec_t *c, int32_t id, const char **full_name, bool *current,
                         es_err_t *err);

/* Schema id in a framed message's header, or -1 if it is not framed. */
int32_t ev_frame_schema_id(const void *buf, size_t len);

#endif
