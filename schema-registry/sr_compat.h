/* sr_compat — Avro schemas as the registry sees them: validation on registration, the
 * normalised form that decides "the same schema", and the Avro schema-resolution rules behind
 * the compatibility levels. Pure: no I/O, no globals but avro-c's parser (serialised inside). */
#ifndef SR_COMPAT_H
#define SR_COMPAT_H

#include "es_err.h"
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct sr_schema sr_schema_t;

typedef enum sr_level {
    SR_LEVEL_NONE,
    SR_LEVEL_BACKWARD,
    SR_LEVEL_BACKWARD_TRANSITIVE,
    SR_LEVEL_FORWARD,
    SR_LEVEL_FORWARD_TRANSITIVE,
    SR_LEVEL_FULL,
    SR_LEVEL_FULL_TRANSITIVE,
} sr_level_t;

/* "BACKWARD" -> SR_LEVEL_BACKWARD (case-insensitive); -1 for an unknown name. */
int sr_level_parse(const char *name);
/* Upper-case name of a level (static string). */
const char *sr_level_name(sr_level_t level);

/* Parses and validates an Avro schema text: JSON, avro-c's parser, then what avro-c lets
 * through (name syntax, duplicate fields, symbols and union branches, defaults that do not
 * match their type, unknown named types). Returns a new schema (caller frees with
 * sr_schema_free) or NULL with err (ES_EINVAL, message quoting the culprit). */
sr_schema_t *sr_schema_parse(const char *text, size_t len, es_err_t *err);
void sr_schema_free(sr_schema_t *s);
/* The schema as compact JSON in the author's key order: what the registry stores and serves.
 * Borrowed, lives as long as s. */
const char *sr_schema_text(const sr_schema_t *s);
/* The normalised form (compact, keys sorted): two texts with equal normalised forms are the
 * same schema. Borrowed, lives as long as s. */
const char *sr_schema_canonical(const sr_schema_t *s);

/* Can data written with writer be read with reader (Avro schema resolution)? When not, and
 * messages is not NULL, appends one string per problem found to the JSON array messages
 * (borrowed). */
bool sr_compat_can_read(const sr_schema_t *reader, const sr_schema_t *writer, json_t *messages);

/* Is candidate compatible with the existing versions prev[0..n) (oldest first) at level?
 * BACKWARD: candidate reads the latest; FORWARD: the latest reads candidate; FULL: both;
 * *_TRANSITIVE: the same against every version; NONE or n == 0: always. prev is borrowed. */
bool sr_compat_check(sr_level_t level, const sr_schema_t *candidate, const sr_schema_t *const *prev,
                     size_t n, json_t *messages);

#endif
