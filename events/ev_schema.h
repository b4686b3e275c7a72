/* ev_schema — internal to events/: loading, expanding and validating .avsc JSON with jansson,
 * checking what avro-c does not (duplicate fields, defaults against types, enum symbols). */
#ifndef EV_SCHEMA_H
#define EV_SCHEMA_H

#include "es_err.h"
#include <jansson.h>

/* Parses one .avsc file (duplicate keys refused). Returns a new reference, or NULL with err
 * set to ES_EINVAL naming label (the file's name for messages, borrowed). */
json_t *ev_schema_load_file(const char *path, const char *label, es_err_t *err);

/* Replaces, in schema (borrowed, modified in place), the first type string naming a record of
 * common (full name -> definition, borrowed) by a copy of its definition; later occurrences
 * stay as the name. */
void ev_schema_expand(json_t *schema, const json_t *common);

/* Validates an expanded schema whose top level must be a record. On success returns 0, sets
 * *full_name (new string, owned by the caller) and adds, for every record defined in it whose
 * full name is not yet in defaults (borrowed, modified), an object field -> default where each
 * default is converted to the codec's JSON mapping (bytes/fixed as base64). On error returns -1
 * with ES_EINVAL naming label. */
int ev_schema_validate(const json_t *schema, const char *label, json_t *defaults, char **full_name,
                       es_err_t *err);

/* Base64 (standard alphabet, padded). encode: new string owned by the caller. decode: a new
 * buffer owned by the caller with *len bytes (never NULL on success, even when empty), or NULL
 * if s is not valid base64. */
char *ev_base64_encode(const void *buf, size_t len);
void *ev_base64_decode(const char *s, size_t slen, size_t *len);

#endif
