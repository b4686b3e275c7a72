/* api_server — the eventshop-api role: commands and queries for the catalog over HTTP. */
#ifndef API_SERVER_H
#define API_SERVER_H

#include "es_err.h"

typedef struct api_server api_server_t;

/* Reads its configuration from the environment (EVENTSHOP_API_ADDR "127.0.0.1:8080",
 * EVENTSHOP_API_THREADS 2, EVENTSHOP_KAFKA_BROKERS, EVENTSHOP_REGISTRY_URL, the catalog's
 * MySQL settings, the JWT settings of jwt.h), registers the catalog schemas (ES_ECONFLICT: do
 * not start), starts the producer and the results thread and binds the port. NULL with err. */
api_server_t *api_server_new(es_err_t *err);
/* Serves until api_server_stop; returns 0. */
int api_server_run(api_server_t *s);
/* Async-signal-safe. */
void api_server_stop(api_server_t *s);
void api_server_free(api_server_t *s);

#endif
