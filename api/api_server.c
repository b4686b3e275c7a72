#include "api_server.h"
#include "api_app.h"
#include "api_cache.h"
#include "api_stream.h"
#include "api_stream_hub.h"
#include "api_validate.h"
#include "api_web.h"
#include "es_env.h"
#include "es_kafka.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_time.h"
#include "sr_client.h"
#include "users_crypto.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct api_server {
    struct api_app app;
    sr_client_t *sr;
    es_http_route_t *routes;
    es_http_cidrs_t *trusted; /* EVENTSHOP_TRUSTED_PROXIES */
    es_http_server_t *http;
};

/* connections are opened lazily by api_db_ctx: a database that is down at start only fails the
 * requests that need it */
static void *thread_init(void *app)
{
    struct api_tls *t = xcalloc(1, sizeof *t);
    t->app = app;
    t->jitter = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)t;
    return t;
}

#define DB_BACKOFF_MIN_MS 100
#define DB_BACKOFF_MAX_MS 5000
#define API_DB_CONNECT_S  2
#define API_DB_IO_S       10

static void thread_free(void *tls)
{
    struct api_tls *t = tls;
    if (t)
        api_query_thread_release(t);
    for (size_t i = 0; t && i < API_MAX_CONTEXTS; i++) {
        es_db_close(t->dbs[i]);
        es_dbpool_free(t->pools[i]);
    }
    if (t) {
        es_db_close(t->keys);
        es_db_close(t->saga);
    }
    free(t);
}

static int context_index(const struct api_app *app, const char *ctx)
{
    for (size_t i = 0; ctx && i < app->n_contexts; i++)
        if (!strcmp(app->contexts[i], ctx))
            return (int)i;
    return -1;
}

bool api_context_enabled(const struct api_app *app, const char *ctx)
{
    return context_index(app, ctx) >= 0;
}

es_db_t *api_db_ctx(es_http_req_t *r, const char *ctx, es_err_t *err)
{
    return api_tls_db(es_http_thread_state(r), ctx, err);
}

void api_db_ctx_broken(es_http_req_t *r, const char *ctx)
{
    api_tls_db_broken(es_http_thread_state(r), ctx);
}

es_db_t *api_db_keys(es_http_req_t *r, es_err_t *err)
{
    struct api_tls *t = es_http_thread_state(r);
    if (!t->keys && (t->keys = es_db_open("keys", err)))
        es_db_set_reconnect(t->keys, NULL);
    return t->keys;
}

void api_db_keys_failed(es_http_req_t *r, const es_err_t *err)
{
    struct api_tls *t = es_http_thread_state(r);
    if (err->code == ES_EIO && t->keys) {
        es_db_close(t->keys);
        t->keys = NULL;
    }
}

es_db_t *api_tls_db(struct api_tls *t, const char *ctx, es_err_t *err)
{
    int i = context_index(t->app, ctx);
    if (i < 0) {
        es_set(err, ES_ENOTFOUND, "context '%s' is not served (ES_CONTEXTS)", ctx ? ctx : "");
        return NULL;
    }
    if (t->dbs[i])
        return t->dbs[i];
    long long now = es_mono_ms();
    if (now < t->retry_at[i]) {
        es_set(err, ES_EIO, "the %s database is unreachable; next attempt in %lld ms", ctx,
               t->retry_at[i] - now);
        return NULL;
    }
    /* short timeouts: a hung server must not hold a loop thread (and the commands it serves) */
    if ((t->dbs[i] = es_db_open_timeout(ctx, API_DB_CONNECT_S, API_DB_IO_S, err))) {
        t->backoff_ms[i] = 0;
        t->retry_at[i] = 0;
        return t->dbs[i];
    }
    t->retry_at[i] =
        now + es_backoff_next(&t->backoff_ms[i], DB_BACKOFF_MIN_MS, DB_BACKOFF_MAX_MS, &t->jitter);
    return NULL;
}

es_dbpool_t *api_pool_ctx(es_http_req_t *r, const char *ctx, es_err_t *err)
{
    struct api_tls *t = es_http_thread_state(r);
    int i = context_index(t->app, ctx);
    if (i < 0) {
        es_set(err, ES_ENOTFOUND, "context '%s' is not served (ES_CONTEXTS)", ctx ? ctx : "");
        return NULL;
    }
    /* short timeouts, as for the blocking connections: a hung server fails its queries soon */
    if (!t->pools[i])
        t->pools[i] =
            es_dbpool_new(es_http_loop_of(r), ctx, t->app->db_pool, API_DB_CONNECT_S, API_DB_IO_S);
    return t->pools[i];
}

int api_db_retry_after_s(es_http_req_t *r, const char *ctx)
{
    struct api_tls *t = es_http_thread_state(r);
    int i = context_index(t->app, ctx);
    long long left = i >= 0 ? t->retry_at[i] - es_mono_ms() : 0;
    long long pool_left = i >= 0 && t->pools[i] ? es_dbpool_retry_in_ms(t->pools[i]) : 0;
    if (pool_left > left)
        left = pool_left;
    return left > 1000 ? (int)((left + 999) / 1000) : 1;
}

void api_tls_db_broken(struct api_tls *t, const char *ctx)
{
    int i = context_index(t->app, ctx);
    if (i >= 0) {
        es_db_close(t->dbs[i]);
        t->dbs[i] = NULL;
    }
}

es_db_t *api_db(es_http_req_t *r, es_err_t *err)
{
    return api_db_ctx(r, "catalog", err);
}

void api_db_broken(es_http_req_t *r)
{
    api_db_ctx_broken(r, "catalog");
}

/* ES_CONTEXTS: space-separated context names, each [a-z]{1,31}, at most API_MAX_CONTEXTS. */
static int parse_contexts(struct api_app *app, const char *list, es_err_t *err)
{
    app->n_contexts = 0;
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        size_t n = 0;
        while (p[n] >= 'a' && p[n] <= 'z')
            n++;
        if (!*p)
            break;
        if (n == 0 || n >= sizeof app->contexts[0] ||
            (p[n] && p[n] != ' ' && p[n] != '\t' && p[n] != ','))
            return es_set(err, ES_EINVAL, "ES_CONTEXTS '%s' is not a list of context names", list);
        if (app->n_contexts == API_MAX_CONTEXTS)
            return es_set(err, ES_EINVAL, "ES_CONTEXTS '%s': at most %d contexts", list,
                          API_MAX_CONTEXTS);
        char name[32];
        snprintf(name, sizeof name, "%.*s", (int)n, p);
        if (context_index(app, name) < 0)
            snprintf(app->contexts[app->n_contexts++], sizeof app->contexts[0], "%s", name);
        p += n;
    }
    if (app->n_contexts == 0)
        return es_set(err, ES_EINVAL, "ES_CONTEXTS '%s' names no context", list);
    return 0;
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

/* The pages' files: EVENTSHOP_WEB_DIR must be a readable folder when it is set; without it, a
 * build tree's web/ folder, and when that is gone too (a binary copied elsewhere) no pages. */
static int load_web(struct api_app *app, es_err_t *err)
{
    const char *dir = es_env_str("EVENTSHOP_WEB_DIR", NULL);
    if (dir)
        return (app->web = api_web_new(dir, err)) ? 0 : -1;
    es_err_t werr = ES_ERR_INIT;
    if (!(app->web = api_web_new(ES_WEB_DIR, &werr)))
        es_warn("api: no pages served (/shop/, /console/): %s", werr.msg);
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
    long pool = es_env_long("EVENTSHOP_API_DB_POOL", API_DB_POOL_DEFAULT);
    if (parse_addr(addr, host, sizeof host, &port, err))
        goto fail;
    if (threads < 1 || threads > 64) {
        es_set(err, ES_EINVAL, "EVENTSHOP_API_THREADS '%ld' is not 1-64", threads);
        goto fail;
    }
    if (pool < 1 || pool > 64) {
        es_set(err, ES_EINVAL, "EVENTSHOP_API_DB_POOL '%ld' is not 1-64", pool);
        goto fail;
    }
    app->db_pool = (size_t)pool;

    if (!(app->verifier = api_auth_new(err)))
        goto fail;
    ev_codec_global_init();
    if (!(s->sr = sr_client_new(es_env_registry_url(), err)))
        goto fail;
    if (!(app->codec = ev_codec_new(es_env_schema_dir(), s->sr, err)))
        goto fail;
    if (parse_contexts(app, es_env_str("ES_CONTEXTS", "catalog"), err))
        goto fail;
    app->users = api_users_new(app);
    if (load_web(app, err))
        goto fail;
    const char *names[API_MAX_CONTEXTS];
    for (size_t i = 0; i < app->n_contexts; i++) {
        char topic[64];
        names[i] = app->contexts[i];
        json_t *types = ev_codec_types_for_topic(
            app->codec, es_topic(topic, sizeof topic, app->contexts[i], "commands"));
        size_t ntypes = json_array_size(types);
        json_decref(types);
        if (ntypes == 0) {
            es_set(err, ES_EINVAL, "context '%s' (ES_CONTEXTS) has no command schemas",
                   app->contexts[i]);
            goto fail;
        }
        if (ev_codec_register_context(app->codec, app->contexts[i], err))
            goto fail;
    }
    es_err_t cerr = ES_ERR_INIT;
    app->sealing = users_crypto_init(&cerr) == 0;
    if (!app->sealing && api_context_enabled(app, "orders"))
        es_error("orders: sealing disabled: %s", cerr.msg);
    if (!(app->producer = api_producer_new("eventshop-api", err)))
        goto fail;
    if (!(app->results =
              api_results_new(app->codec, names, app->n_contexts, API_RESULTS_CAPACITY, err)))
        goto fail;
    if (!(app->positions = api_positions_new(app->contexts, app->n_contexts, err)))
        goto fail;
    if (!(app->activity = api_activity_new(app, err)))
        goto fail;

    /* the cache first: the hub feeds it from its first record */
    app->cache = api_cache_new((const char(*)[32])app->contexts, app->n_contexts, app->codec);
    struct api_stream_sink sink = api_cache_sink(app->cache);
    app->stream_hub = api_stream_hub_new((const char(*)[32])app->contexts, app->n_contexts,
                                         app->cache ? &sink : NULL);
    app->tickets = api_tickets_new();
    s->routes = xcalloc(api_routes_count, sizeof *s->routes);
    for (size_t i = 0; i < api_routes_count; i++)
        s->routes[i] = (es_http_route_t){.method = api_routes[i].method,
                                         .pattern = api_routes[i].pattern,
                                         .fn = api_dispatch,
                                         .data = &api_routes[i]};
    /* the ingress (or any proxy) whose X-Forwarded-For names the client: the login limiter's key */
    const char *proxies = es_env_str("EVENTSHOP_TRUSTED_PROXIES", "");
    es_err_t perr = ES_ERR_INIT;
    if (!(s->trusted = es_http_cidrs_new(proxies, &perr))) {
        es_set(err, ES_EINVAL, "EVENTSHOP_TRUSTED_PROXIES: %s", perr.msg);
        goto fail;
    }
    if (es_http_cidrs_count(s->trusted))
        es_info("api: client addresses from X-Forwarded-For of proxies in '%s'", proxies);
    es_http_config_t cfg = {.host = host,
                            .port = port,
                            .threads = (int)threads,
                            .max_body = API_MAX_BODY,
                            .app = app,
                            .thread_init = thread_init,
                            .thread_free = thread_free,
                            .trusted = s->trusted};
    if (!(s->http = es_http_server_new(&cfg, s->routes, api_routes_count, err)))
        goto fail;
    /* from here on /readyz follows Kafka only (the producer's checks) */
    es_metrics_set_ready(true);
    es_info("eventshop-api listening on %s:%d with %ld threads, contexts '%s'", host, port, threads,
            es_env_str("ES_CONTEXTS", "catalog"));
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
    /* The loop threads have stopped. The producer first: its last delivery reports may hand
     * commands to the results' waiters; then the results, whose waiters are answered while the
     * codec lives; their completions reach stopped threads, which drop them; then the server,
     * whose threads every completion names. The activity reader before the producer it asks. */
    api_activity_free(s->app.activity);
    api_producer_free(s->app.producer);
    api_results_free(s->app.results);
    es_http_server_free(s->http);
    api_positions_free(s->app.positions);   /* every loop thread unsubscribed when it ended */
    api_stream_hub_free(s->app.stream_hub); /* after the streams it wakes */
    api_cache_free(s->app.cache);           /* after the hub that feeds it */
    api_tickets_free(s->app.tickets);
    es_http_cidrs_free(s->trusted);
    ev_codec_free(s->app.codec);
    sr_client_free(s->sr);
    api_auth_free(s->app.verifier);
    api_users_free(s->app.users);
    api_web_free(s->app.web);
    free(s->routes);
    free(s);
}
