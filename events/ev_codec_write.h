/* ev_codec_write — internal to events/: a JSON value written straight into Avro binary, driven by
 * an encoder compiled once per schema, with the mapping ev_codec.h describes.
 *
 * ev_encode used to convert the JSON tree into a generic avro value (ev_convert.c: a value per
 * field, strings copied), size it and write it: a quarter of a command handler's CPU. This writes
 * the bytes in one walk of the JSON into one growing buffer, with no avro-c call. It accepts
 * exactly what ev_json_to_avro accepts and writes the bytes avro_value_write would; it has no
 * error messages of its own: on any value it does not take it answers "did not fit" and the
 * caller runs the avro-c path, which then names the error as it always did. */
#ifndef EV_CODEC_WRITE_H
#define EV_CODEC_WRITE_H

#include <avro.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Bytes left free at the front of every buffer ev_encoder_write returns, for the wire header. */
#define EV_ENCODER_HEADER 5
/* Values beyond these are left to the avro-c path, so that whatever its capped allocator refuses
 * (ev_codec.h, EV_MAX_ALLOC) is refused with its message: a body above EV_ENCODER_MAX_BODY bytes,
 * an array or map of more than EV_ENCODER_MAX_ITEMS items (items of null take no byte but a
 * generic value each). */
#define EV_ENCODER_MAX_BODY  (1u << 20)
#define EV_ENCODER_MAX_ITEMS 4096u

typedef struct ev_encoder ev_encoder_t;

/* Compiles an encoder for schema s (borrowed; it must outlive the encoder). defaults (borrowed;
 * the defaults it holds are referenced by the encoder, the object itself is read now only): record
 * full name -> {field: default in the JSON mapping}, as ev_json_to_avro takes it. Never fails: a
 * type with no JSON mapping "does not fit" when a value reaches it. */
ev_encoder_t *ev_encoder_new(const json_t *defaults, avro_schema_t s);
void ev_encoder_free(ev_encoder_t *w);

/* Writes j (borrowed) as an Avro body of the encoder's schema. true: *out is a new malloc'd buffer
 * owned by the caller (free()) holding EV_ENCODER_HEADER bytes for the caller to fill, then the
 * body; *len counts both. false: j does not fit (a wrong kind, a missing field without default,
 * an unknown field, a value out of range, a size beyond the limits above): nothing is allocated
 * and ev_json_to_avro is the one to say why. Thread-safe: w is only read. */
bool ev_encoder_write(const ev_encoder_t *w, const json_t *j, void **out, size_t *len);

#endif
