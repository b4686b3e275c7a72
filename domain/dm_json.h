/* dm_json — reading the fields of a record held as a jansson object (a command, an event, an
 * aggregate's state, a command's metadata), as deciders, projections and subscribers do.
 *
 * Every function takes obj borrowed and may be given NULL or a value that is not an object: a
 * missing record reads like a record without the field. Nothing here allocates, logs or fails. */
#ifndef DM_JSON_H
#define DM_JSON_H

#include <jansson.h>
#include <stdbool.h>

/* The string at key, borrowed from obj; NULL when key is absent or its value not a string. */
const char *dm_str(const json_t *obj, const char *key);

/* The value at key, borrowed from obj; NULL when key is absent or its value is JSON null: an
 * optional field ("type": ["null", ...]) left empty reads like one left out. */
json_t *dm_opt(const json_t *obj, const char *key);

/* The integer at key; 0 when key is absent or its value not an integer (a real is not one). */
json_int_t dm_int(const json_t *obj, const char *key);

/* Whether the string at key is want (borrowed, not NULL; compared byte for byte); false when key
 * is absent or not a string. */
bool dm_str_is(const json_t *obj, const char *key, const char *want);

/* Whether an aggregate's state has the given status: dm_str_is(state, "status", status). */
bool dm_is_status(const json_t *state, const char *status);

/* Whether a command's metadata names an admin: dm_str_is(meta, "actor_role", "admin"). */
bool dm_is_admin(const json_t *meta);

#endif
