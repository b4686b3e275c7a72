/* api_app — what the API's handler families share (internal to api/): the process-wide app
 * (codec, producer, results, verifier, metrics), the per-loop-thread state (a DB connection),
 * the principal of a request and the shape of a route. */
#ifndef API_APP_H
#define API_APP_H

#include "api_producer.h"
#include "api_results.h"
#include "es_db.h"
#include "es_http.h"
#include "es_metrics.h"
#include "ev_codec.h"
#include <stdbool.h>

#define API_CONTEXT "catalog"

/* Who sent a request, from its bearer token; all empty for a public route without one. */
struct api_principal {
    char sub[128];
    char role[16];       /* "admin", "vendor", "customer" */
    char vendor_id[128]; /* "" if none */
};

struct api_app {
    ev_codec_t *codec;
    api_producer_t *producer;
    api_results_t *results;
    void *verifier;           /* api_auth's, from jwt.h */
    es_metric_t *commands[3]; /* eventshop_api_commands_total{type} for List, Change, Delist */
};

/* Per loop thread: a DB connection, (re)opened on demand. */
struct api_tls {
    struct api_app *app;
    es_db_t *db;
};

/* Roles a route allows: a bit per role; API_PUBLIC needs no token, API_AUTHENTICATED any. */
enum {
    API_PUBLIC = 0,
    API_ADMIN = 1 << 0,
    API_VENDOR = 1 << 1,
    API_CUSTOMER = 1 << 2,
    API_AUTHENTICATED = API_ADMIN | API_VENDOR | API_CUSTOMER,
};

typedef void (*api_handler_fn)(es_http_req_t *r, const struct api_principal *who);

struct api_route {
    const char *method;
    const char *pattern;
    api_handler_fn fn;
    unsigned roles;
};

/* The one route table (api_routes.c). */
extern const struct api_route api_routes[];
extern const size_t api_routes_count;

/* The dispatcher every es_http route points at (api_auth.c): authenticates (401 with
 * WWW-Authenticate: Bearer), authorizes by the route's roles (403), then calls its handler. */
void api_dispatch(es_http_req_t *r);
/* api_auth.c: the verifier from the JWT environment, NULL with err. */
void *api_auth_new(es_err_t *err);
void api_auth_free(void *verifier);

/* The thread's DB connection (borrowed), reopened if the last one broke; NULL with err. */
es_db_t *api_db(es_http_req_t *r, es_err_t *err);
/* Drops the thread's connection after an ES_EIO so the next request reconnects. */
void api_db_broken(es_http_req_t *r);

/* Handler families. */
void api_products_get(es_http_req_t *r, const struct api_principal *who);
void api_products_list(es_http_req_t *r, const struct api_principal *who);
void api_products_post(es_http_req_t *r, const struct api_principal *who);
void api_products_patch(es_http_req_t *r, const struct api_principal *who);
void api_products_delete(es_http_req_t *r, const struct api_principal *who);
void api_commands_get(es_http_req_t *r, const struct api_principal *who);
void api_health_live(es_http_req_t *r, const struct api_principal *who);
void api_health_ready(es_http_req_t *r, const struct api_principal *who);
void api_health_metrics(es_http_req_t *r, const struct api_principal *who);

#endif
