/* sr_client — a client of the Confluent Schema Registry REST API (ours or Confluent's), over
 * libcurl. Thread-safe: each call uses its own easy handle. */
#ifndef SR_CLIENT_H
#define SR_CLIENT_H

#include "es_err.h"
#include <stdint.h>

typedef struct sr_client sr_client_t;

/* base_url like "http://127.0.0.1:8081" (borrowed, copied). */
sr_client_t *sr_client_new(const char *base_url, es_err_t *err);
void sr_client_free(sr_client_t *sr);

/* POST /subjects/{subject}/versions. Same schema again gives the same id. Incompatible:
 * ES_ECONFLICT with the registry's message; unreachable: ES_EIO. */
int sr_client_register(sr_client_t *sr, const char *subject, const char *schema_json, int32_t *id,
                       es_err_t *err);
/* GET /schemas/ids/{id}: the schema text, owned by the caller (free()); NULL with err set
 * (ES_ENOTFOUND for an unknown id). */
char *sr_client_get_schema(sr_client_t *sr, int32_t id, es_err_t *err);

#endif
