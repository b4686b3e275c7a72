/* sr_server — the schema registry role: a Confluent-Schema-Registry-compatible REST server
 * (the subset eventshop and the standard clients use) over an sr_store kept in the `_schemas`
 * log. Answers use application/vnd.schemaregistry.v1+json and Confluent's error bodies
 * {"error_code": n, "message": "..."}. See sr_store.h for the single-writer rule. */
#ifndef SR_SERVER_H
#define SR_SERVER_H

#include "es_err.h"

typedef struct sr_server sr_server_t;

struct sr_server_config {
    const char *addr;  /* "127.0.0.1:8081" */
    const char *topic; /* "_schemas": compacted, one partition, created beforehand */
    int threads;       /* HTTP loop threads, >= 1 */
};

/* Reads the whole log, then binds addr. cfg's strings are borrowed for the call only.
 * NULL with err (ES_EINVAL bad address, ES_EIO Kafka or port in use). */
sr_server_t *sr_server_new(const struct sr_server_config *cfg, es_err_t *err);
/* Serves until sr_server_stop; returns 0. */
int sr_server_run(sr_server_t *s);
/* Async-signal-safe. */
void sr_server_stop(sr_server_t *s);
void sr_server_free(sr_server_t *s);

#endif
