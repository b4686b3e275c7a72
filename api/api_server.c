#include "api_server.h"
#include "api_app.h"
#include "api_validate.h"
#include "es_env.h"
#include "es_log.h"
#include "es_mem.h"
#include "sr_client.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct api_server {
    struct api_app app;
    sr_client_t *sr;
    es_http_route_t *routes;
    es_http_server_t *http;
};

static void *thread_init(void *app)
{
    struct api_tls *t = xcalloc(1, sizeof *t);
    t->app = app;
    es_err_t err = ES_ERR_INIT;
    t->db = es_db_open(API_CONTEXT, &err); /* a failure is retried by api_db on use */
    if (!t->db)
        es_warn("catalog database: %s", err.msg);
    return t;
}

static void thread_free(void *tls)
{
    struct api_tls *t = tls;
    if (t)
        es_db_close(t->db);
    free(t);
}

es_db_t *api_db(es_http_req_t *r, es_err_t *err)
{
    struct api_tls *t = es_http_thread_state(r);
    if (!t->db)
        t->db = es_db_open(API_CONTEXT, err);
    return t->db;
}

void api_db_broken(es_http_req_t *r)
{
    struct api_tls *t = es_http_thread_state(r);
    es_db_close(t->db);
    t->db = NULL;
}

static int parse_addr(const char *addr, char *host, size_t size, int *port, es_err_t *err)
{
    const char *colon = strrchr(addr, ':');
    char *end = NULL;
    long p = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || colon == addr || (size_t)(colon - addr) >= size || !end || *end || p < 1 ||
        p > 65535)
        return es_set(err, ES_EINVAL, "EVENTSHOP_API_ADDR '%s' is not host:port", addr);
    snprintf(host, size, "%.*s", (int)(colon - addr), addr);
    *port = (int)p;
    return 0;
}

api_server_t *api_server_new(es_err_t *err)
{
    api_server_t *s = xcalloc(1, sizeof *s);
    struct api_app *app = &s->app;
    char host[256];
    int port = 0;
    const char *addr = es_env_str("EVENTSHOP_API_ADDR", "127.0.0.1:8080");
    long threads = es_env_long("EVENTSHOP_API_THREADS", 2);
    if (parse_addr(addr, host, sizeof host, &port, err))
        goto fail;
    if (threads < 1 || threads > 64) {
        es_set(err, ES_EINVAL, "EVENTSHOP_API_THREADS '%ld' is not 1-64", threads);
        goto fail;
    }

    if (!(app->verifier = api_auth_new(err)))
        goto fail;
    ev_codec_global_init();
    if (!(s->sr = sr_client_new(es_env_registry_url(), err)))
        goto fail;
    if (!(app->codec = ev_codec_new(es_env_schema_dir(), s->sr, err)))
        goto fail;
    if (ev_codec_register_context(app->codec, API_CONTEXT, err))
        goto fail;
    if (!(app->producer = api_producer_new("eventshop-api", err)))
        goto fail;
    if (!(app->results = api_results_new(app->codec, API_CONTEXT, API_RESULTS_CAPACITY, err)))
        goto fail;

    static const char *const types[] = {"ListProduct", "ChangeProductDetails", "DelistProduct"};
    for (size_t i = 0; i < 3; i++) {
        char labels[64];
        snprintf(labels, sizeof labels, "type=\"%s\"", types[i]);
        app->commands[i] =
            es_counter("eventshop_api_commands_total", "commands sent to Kafka", labels);
    }

    s->routes = xcalloc(api_routes_count, sizeof *s->routes);
    for (size_t i = 0; i < api_routes_count; i++)
        s->routes[i] = (es_http_route_t){.method = api_routes[i].method,
                                         .pattern = api_routes[i].pattern,
                                         .fn = api_dispatch,
                                         .data = &api_routes[i]};
    es_http_config_t cfg = {.host = host,
                            .port = port,
                            .threads = (int)threads,
                            .max_body = API_MAX_BODY,
                            .app = app,
                            .thread_init = thread_init,
                            .thread_free = thread_free};
    if (!(s->http = es_http_server_new(&cfg, s->routes, api_routes_count, err)))
        goto fail;
    es_info("eventshop-api listening on %s:%d with %ld threads", host, port, threads);
    return s;
fail:
    api_server_free(s);
    return NULL;
}

int api_server_run(api_server_t *s)
{
    return es_http_server_run(s->http);
}

void api_server_stop(api_server_t *s)
{
    if (s && s->http)
        es_http_server_stop(s->http);
}

void api_server_free(api_server_t *s)
{
    if (!s)
        return;
    es_http_server_free(s->http);
    /* results first: its waiters are answered while the codec still lives */
    api_results_free(s->app.results);
    api_producer_free(s->app.producer);
    ev_codec_free(s->app.codec);
    sr_client_free(s->sr);
    api_auth_free(s->app.verifier);
    free(s->routes);
    free(s);
}
