/* sr_store — the registry's state (subjects, versions, global schema ids, compatibility
 * levels) in memory, rebuilt from the `_schemas` log and changed only through it.
 *
 * Records use Confluent's layout, so either registry can read the other's log:
 *   key {"keytype":"SCHEMA","subject":s,"version":v,"magic":1}
 *   value {"subject":s,"version":v,"id":n,"schema":"...","deleted":false} (null: hard delete)
 *   key {"keytype":"CONFIG","subject":s|null,"magic":0} value {"compatibilityLevel":"..."}
 * Other key types are ignored.
 *
 * Single writer: every change is written to the log first (the log function must return only
 * once the record is durably stored) and applied in memory after; ids are max seen + 1. Only one
 * process may write a given log: the state is read once at start and never re-read, so a second
 * writer would hand out the same ids. Replicas for reads are fine.
 *
 * Thread-safe: reads share a rwlock; changes are serialised by a writer mutex and take the
 * rwlock only to apply, so readers are never blocked by a slow log write.
 *
 * Calls return 0 or a Confluent error code (SR_E*), with err->msg the answer's message. The
 * HTTP status is the code itself when it has three digits, else code / 100. */
#ifndef SR_STORE_H
#define SR_STORE_H

#include "es_err.h"
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct sr_store sr_store_t;

enum {
    SR_EBAD_REQUEST = 400,
    SR_ECONFLICT = 409, /* incompatible with an earlier version */
    SR_ESUBJECT_NOT_FOUND = 40401,
    SR_EVERSION_NOT_FOUND = 40402,
    SR_ESCHEMA_NOT_FOUND = 40403,
    SR_ELEVEL_NOT_FOUND = 40408, /* subject has no level of its own */
    SR_EINVALID_SCHEMA = 42201,
    SR_EINVALID_VERSION = 42202,
    SR_EINVALID_LEVEL = 42203,
    SR_ESTORE = 50001, /* the log write failed */
};

/* Writes one record durably; value NULL writes a tombstone. key and value are borrowed.
 * Returns 0, or -1 with err. */
typedef int (*sr_store_log_fn)(void *arg, const char *key, const char *value, es_err_t *err);

/* log and arg are borrowed and must outlive the store. */
sr_store_t *sr_store_new(sr_store_log_fn log, void *arg);
void sr_store_free(sr_store_t *st);

/* Applies one record of the log (replay at start). Unknown or malformed records are skipped
 * with a warning; returns 0. key/value borrowed; value NULL (or vlen 0) is a tombstone. */
int sr_store_apply(sr_store_t *st, const char *key, size_t klen, const char *value, size_t vlen);

/* Number of distinct schemas (ids). */
size_t sr_store_schema_count(sr_store_t *st);

/* Registers schema text under subject: an equal (normalised) schema already live in subject
 * gives its id and writes nothing; else it must pass the subject's level, then gets the id of
 * an equal schema of another subject or a new one, and the next version. schema_type NULL or
 * "AVRO". messages (borrowed, may be NULL) receives why it was incompatible. */
int sr_store_register(sr_store_t *st, const char *subject, const char *schema_type,
                      const char *text, size_t len, int *id, json_t *messages, es_err_t *err);
/* {subject, id, version, schema} (new) of text's live version in subject. */
int sr_store_lookup(sr_store_t *st, const char *subject, const char *text, size_t len, json_t **out,
                    es_err_t *err);
/* {"schema": text} (new). */
int sr_store_get_schema(sr_store_t *st, long id, json_t **out, es_err_t *err);
/* [{subject, version}] (new) of the live versions using id. */
int sr_store_get_schema_versions(sr_store_t *st, long id, json_t **out, es_err_t *err);
/* Names of subjects with a live version (new array). */
json_t *sr_store_subjects(sr_store_t *st);
/* Live version numbers of subject (new array). */
int sr_store_versions(sr_store_t *st, const char *subject, json_t **out, es_err_t *err);
/* {subject, version, id, schema} (new); version is "latest", "-1" or 1..2^31-1. */
int sr_store_get_version(sr_store_t *st, const char *subject, const char *version, json_t **out,
                         es_err_t *err);
/* Soft-deletes a subject's live versions (or one version when version is not NULL); out gets
 * the deleted version numbers (new array), or the one number. */
int sr_store_delete(sr_store_t *st, const char *subject, const char *version, json_t **out,
                    es_err_t *err);
/* Would text pass subject's level against version (NULL: every live version, as registering
 * does)? *ok and messages (borrowed, may be NULL) say. */
int sr_store_test(sr_store_t *st, const char *subject, const char *version, const char *text,
                  size_t len, bool *ok, json_t *messages, es_err_t *err);
/* The level name of subject (NULL: the global one) into *level (static string). Without its
 * own level a subject gives SR_ELEVEL_NOT_FOUND, or the global level with default_to_global. */
int sr_store_get_level(sr_store_t *st, const char *subject, bool default_to_global,
                       const char **level, es_err_t *err);
/* Sets subject's (NULL: the global) level from a name (any case). */
int sr_store_set_level(sr_store_t *st, const char *subject, const char *level, es_err_t *err);
/* Removes subject's own level; *old gets the level it had (static string). */
int sr_store_delete_level(sr_store_t *st, const char *subject, const char **old, es_err_t *err);

#endif
