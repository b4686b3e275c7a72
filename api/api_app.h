/* api_app — what the API's handler families share (internal to api/): the process-wide app
 * (codec, producer, results, verifier, the contexts served), the per-loop-thread state (a DB
 * connection per context), the principal of a request, the shape of a route, and the generic
 * helpers every context's handlers (api_<ctx>.c) use: api_command_send for commands,
 * api_query_at_position / api_query_or_reply for read-your-writes queries.
 *
 * Contexts served: ES_CONTEXTS (space separated, default "catalog"); for each the API registers
 * its schemas, reads "<ctx>.results" and opens read-only connections to eventshop_<ctx> (user
 * EVENTSHOP_MYSQL_<CTX>_USER, see es_db.h). */
#ifndef API_APP_H
#define API_APP_H

#include "api_positions.h"
#include "api_producer.h"
#include "api_results.h"
#include "es_db.h"
#include "es_dbpool.h"
#include "es_http.h"
#include "es_metrics.h"
#include "ev_codec.h"
#include <stdbool.h>

#define API_MAX_CONTEXTS 8
/* non-blocking connections per context per loop thread (EVENTSHOP_API_DB_POOL) */
#define API_DB_POOL_DEFAULT 4

/* Who sent a request, from its bearer token; all empty for a public route without one. */
struct api_principal {
    char sub[128];
    char role[16];       /* "admin", "vendor", "customer" */
    char vendor_id[128]; /* "" if none */
    long long exp;       /* when the token (or a stream ticket's token) expires, epoch s; 0 */
};

struct api_app {
    ev_codec_t *codec;
    api_producer_t *producer;
    api_results_t *results;     /* the outcomes of every served context's commands */
    api_positions_t *positions; /* the read models' positions, for read-your-writes waits */
    void *verifier;             /* api_auth's, from jwt.h */
    char contexts[API_MAX_CONTEXTS][32];
    size_t n_contexts;
    struct api_users *users; /* api_users.c's state (api_users_new, after the contexts) */
    bool sealing; /* the personal-field crypto is ready (users_crypto_init): orders can seal */
    struct api_stream_hub *stream_hub; /* the one consumer behind GET /v1/stream */
    struct api_cache *cache;           /* hot rows fed by the hub (api_cache.h); NULL: off */
    struct api_tickets *tickets;       /* stream tickets (api_stream.h) */
    struct api_web *web;               /* the pages' files (api_web.h) */
    size_t db_pool;                    /* non-blocking connections per context per loop thread */
    struct api_activity *activity;     /* GET /v1/admin/activity's reader (api_admin_live.c) */
};

/* Per loop thread: a DB connection per served context (same index as app->contexts), each
 * opened on first use and reopened after it broke; after a failed connect the next attempt
 * waits a capped exponential back-off with jitter (retry_at), so a database that is down costs
 * a request nothing but its 503, not a connect timeout on the loop. */
struct api_tls {
    struct api_app *app;
    es_db_t *dbs[API_MAX_CONTEXTS];
    /* the non-blocking connections per served context (api_query_async), made on first use */
    es_dbpool_t *pools[API_MAX_CONTEXTS];
    /* the read-your-writes waiters of each context (api_query.c), made on first use */
    struct api_watch *watches[API_MAX_CONTEXTS];
    long long retry_at[API_MAX_CONTEXTS]; /* monotonic ms; 0: connect at once */
    long backoff_ms[API_MAX_CONTEXTS];    /* ceiling of the current back-off; 0: none */
    unsigned jitter;
    es_db_t *keys; /* the key store (eventshop_keys), made on first use */
    es_db_t *saga; /* the order saga's table (read-only), made on first use (api_admin_live.c) */
};

/* Roles a route allows: a bit per role; API_PUBLIC needs no token, API_AUTHENTICATED any. */
enum {
    API_PUBLIC = 0,
    API_ADMIN = 1 << 0,
    API_VENDOR = 1 << 1,
    API_CUSTOMER = 1 << 2,
    API_AUTHENTICATED = API_ADMIN | API_VENDOR | API_CUSTOMER,
    /* besides a bearer token, a stream ticket (?ticket=, api_stream_ticket_redeem) */
    API_TICKET = 1 << 3,
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

/* Whether the API serves context ctx (ES_CONTEXTS). */
bool api_context_enabled(const struct api_app *app, const char *ctx);

/* The thread's read-only DB connection to context ctx's database (borrowed), opened lazily and
 * reopened if the last one broke; NULL with err (ES_ENOTFOUND if ctx is not served; ES_EIO when
 * the database cannot be reached, or during the back-off after such a failure). */
es_db_t *api_db_ctx(es_http_req_t *r, const char *ctx, es_err_t *err);
/* The thread's pool of non-blocking connections to ctx's database (borrowed), made on first
 * use; NULL with err (ES_ENOTFOUND) if ctx is not served. */
es_dbpool_t *api_pool_ctx(es_http_req_t *r, const char *ctx, es_err_t *err);
/* Seconds a client should wait before retrying a query of ctx that found its database gone
 * (>= 1): the Retry-After of a 503. */
int api_db_retry_after_s(es_http_req_t *r, const char *ctx);
/* Drops the thread's connection to ctx after an ES_EIO so the next request reconnects. */
void api_db_ctx_broken(es_http_req_t *r, const char *ctx);
/* The same for a thread's state t (borrowed), where no request is at hand (a watcher's tick). */
es_db_t *api_tls_db(struct api_tls *t, const char *ctx, es_err_t *err);
void api_tls_db_broken(struct api_tls *t, const char *ctx);
/* api_db_ctx / api_db_ctx_broken for "catalog". */
es_db_t *api_db(es_http_req_t *r, es_err_t *err);
void api_db_broken(es_http_req_t *r);
/* The key store's connection of the request's loop thread, made on first use, or NULL with err.
 * It reconnects before a statement, so a MariaDB restart that left it stale does not fail the
 * first request after it (no readiness dependency: the API needs Kafka only). */
es_db_t *api_db_keys(es_http_req_t *r, es_err_t *err);
/* After a key-store call failed with err: an I/O error drops the connection (made anew next). */
void api_db_keys_failed(es_http_req_t *r, const es_err_t *err);

/* ---- commands (api_commands.c) ---- */

/* Sends one command of context ctx and answers r in every case: fills its CommandMetadata
 * (command id from Idempotency-Key or random, expected_version from If-Match, actor from who,
 * correlation id from X-Correlation-Id), encodes it as command_type (full name, e.g.
 * "eventshop.inventory.ReceiveStock"), produces it to "<ctx>.commands" keyed by aggregate_id
 * with a traceparent (es_trace.h), then answers 202 + Location /v1/commands/{id}, or with
 * Prefer: wait=N the outcome (api_answer_outcome: the reason -> status table; 201 + Location
 * created_location when accepted and created_location is not NULL). A creating command
 * (created_location not NULL) has its 202 name aggregate_id under its aggregate key (e.g.
 * "order_id") with Link: <created_location>; rel="related". The sender (who->sub) is noted
 * for GET /v1/commands/{id} (api_results_note_sent). A retry of a known
 * Idempotency-Key gets the known outcome at once. fields (stolen) are the command's fields
 * without "metadata", including its aggregate id field (e.g. "sku"); a field the schema refuses
 * is a 422. who, ctx, command_type, aggregate_id, created_location are borrowed. */
void api_command_send(es_http_req_t *r, const struct api_principal *who, const char *ctx,
                      const char *command_type, const char *aggregate_id, json_t *fields,
                      const char *created_location);

/* The request's JSON body (new reference) after checking Content-Type (415) and parsing it
 * strictly (400/413, nesting up to API_MAX_DEPTH); NULL when it already answered. */
json_t *api_json_body_or_reply(es_http_req_t *r);
/* The same for a body nested up to max_depth levels (e.g. 3: body > lines > line). */
json_t *api_json_body_nested_or_reply(es_http_req_t *r, int max_depth);
/* The {sku} path parameter (borrowed); answers 404 and returns NULL if it cannot be a sku. */
const char *api_path_sku_or_reply(es_http_req_t *r);

/* ---- queries (api_query.c) ---- */

typedef void (*api_query_fn)(es_http_req_t *r, const struct api_principal *who);

/* Read-your-writes: runs run(r, who) now, or, when the request carries a position
 * (X-Min-Position header or ?min_position=, "<partition>:<offset>" of "<ctx>.events", as a
 * command outcome gives it), once projection's stored offset for that partition
 * (projection_offsets in eventshop_<ctx>) is beyond it. 400 for a malformed position, and for a
 * position that cannot exist (partition outside the topic, offset at or past the partition's
 * high watermark, asked of the broker at once); a real position not reached yet waits, off the
 * loop, for at most 5 s (then a 504 problem "position_not_reached"), woken by the thread's one
 * watcher of ctx, which reads the stored offsets once per tick for all its waiters. 503 when the
 * read model's database is down. who is copied; ctx and projection (e.g. "inventory",
 * "inventory_stock") must be static strings. */
void api_query_at_position(es_http_req_t *r, const struct api_principal *who, const char *ctx,
                           const char *projection, api_query_fn run);
/* Frees the thread's watchers (thread_free, on the loop thread): their waiters are left to their
 * own deadlines. */
void api_query_thread_release(struct api_tls *t);
/* Runs sql with params on ctx's connection: the rows (new reference), or NULL with *err. A
 * connection found broken (ES_EIO, e.g. MariaDB restarted since) is dropped and the query tried
 * once more on a new one, so a database that came back answers at once. */
json_t *api_query(es_http_req_t *r, const char *ctx, const char *sql, const es_db_val_t *params,
                  size_t n, es_err_t *err);
/* The read paths that hold no loop thread: sql runs on the thread's pool of non-blocking
 * connections to ctx (api_pool_ctx) and the request is resumed by fn on its loop thread when the
 * rows are there; meanwhile the loop serves other requests, and a slow query delays only its own
 * request. A handler that calls these returns at once (the request is held) and answers in fn.
 *
 * api_query_async: fn(r, arg, rows, err) with rows (new reference) or NULL and err, ES_ENOTFOUND
 * at once (before returning) when ctx is not served. api_query_async_or_reply: fn(r, arg, rows)
 * with the rows only; a failure is answered as api_query_or_reply does (503 problem+json, with
 * Retry-After after an I/O error). In both, fn is not called if the request goes away first,
 * and free_arg(arg) (may be NULL) is called once in every case, after fn. ctx must be a static
 * string; sql and params are copied. fn may run before these return (a database in its
 * back-off): a handler that starts several queries holds the request across them
 * (es_http_hold_new .. es_http_hold_end), or the first one's end finds it unanswered. */
typedef void (*api_rows_fn)(es_http_req_t *r, void *arg, json_t *rows);
void api_query_async(es_http_req_t *r, const char *ctx, const char *sql, const es_db_val_t *params,
                     size_t n, es_dbpool_fn fn, void *arg, void (*free_arg)(void *arg));
void api_query_async_or_reply(es_http_req_t *r, const char *ctx, const char *sql,
                              const es_db_val_t *params, size_t n, api_rows_fn fn, void *arg,
                              void (*free_arg)(void *arg));
/* api_query_async and api_query_async_or_reply of "<prefix> = ?" with key, asked together with
 * the other lookups of prefix waiting for a connection of the same pool (es_dbpool_lookup:
 * prefix selects key_column, a binary-collated string column). prefix and key_column are
 * borrowed until free_arg(arg) was called (static strings); key is copied. */
void api_lookup_async(es_http_req_t *r, const char *ctx, const char *prefix, const char *key_column,
                      const char *key, es_dbpool_fn fn, void *arg, void (*free_arg)(void *arg));
void api_lookup_async_or_reply(es_http_req_t *r, const char *ctx, const char *prefix,
                               const char *key_column, const char *key, api_rows_fn fn, void *arg,
                               void (*free_arg)(void *arg));
/* The 503 of a failed read of ctx (with Retry-After after an I/O error), logged. */
void api_reply_read_failed(es_http_req_t *r, const char *ctx, const es_err_t *err);
/* api_query, or NULL after answering 503 problem+json "the <ctx> read model is unavailable"
 * with Retry-After. */
json_t *api_query_or_reply(es_http_req_t *r, const char *ctx, const char *sql,
                           const es_db_val_t *params, size_t n);

/* ?limit= (api_parse_limit: 50 when absent, 1-200), or -1 after answering 400. */
int api_query_limit_or_reply(es_http_req_t *r);

/* Handler families. */
void api_products_get(es_http_req_t *r, const struct api_principal *who);
void api_products_list(es_http_req_t *r, const struct api_principal *who);
void api_products_post(es_http_req_t *r, const struct api_principal *who);
void api_products_patch(es_http_req_t *r, const struct api_principal *who);
void api_products_delete(es_http_req_t *r, const struct api_principal *who);
/* pricing (api_pricing.c) */
void api_prices_get(es_http_req_t *r, const struct api_principal *who);
/* The current offer of each of skus (borrowed array of n, n <= 200) for a listing: a new object
 * sku -> {"price": {"amount_minor", "list_amount_minor", "currency"} (as GET /v1/prices/{sku}
 * computes it now: the dynamic rules applied) or null when it has no list price, "available":
 * the stock available or null when unknown}. Three queries whatever n. A context not served or
 * not reachable leaves its part null: a listing never fails for want of prices or stock. */
json_t *api_prices_offers(es_http_req_t *r, const char *const *skus, size_t n);
void api_prices_history(es_http_req_t *r, const struct api_principal *who);
void api_prices_put(es_http_req_t *r, const struct api_principal *who);
void api_prices_rules_post(es_http_req_t *r, const struct api_principal *who);
void api_prices_rules_delete(es_http_req_t *r, const struct api_principal *who);
/* An instant from a query or body: integer milliseconds since the epoch, or ISO-8601
 * "YYYY-MM-DDTHH:MM:SS[.fff]" with "Z" or "+HH:MM"/"-HH:MM" (an offset is required). Returns 0
 * and sets *ms, or -1. Pure. */
int api_parse_instant(const char *s, int64_t *ms);
/* inventory (api_inventory.c) */
void api_inventory_receive(es_http_req_t *r, const struct api_principal *who);
void api_inventory_adjust(es_http_req_t *r, const struct api_principal *who);
void api_inventory_reserve(es_http_req_t *r, const struct api_principal *who);
void api_inventory_release(es_http_req_t *r, const struct api_principal *who);
void api_inventory_commit(es_http_req_t *r, const struct api_principal *who);
void api_inventory_get(es_http_req_t *r, const struct api_principal *who);
void api_inventory_movements(es_http_req_t *r, const struct api_principal *who);
void api_commands_get(es_http_req_t *r, const struct api_principal *who);
void api_health_live(es_http_req_t *r, const struct api_principal *who);
void api_health_ready(es_http_req_t *r, const struct api_principal *who);
void api_health_metrics(es_http_req_t *r, const struct api_principal *who);
/* the embedded contract (api_openapi.c) */
void api_openapi_get(es_http_req_t *r, const struct api_principal *who);
/* api_web.c: GET /shop/, /console/ and their files */
void api_web_get(es_http_req_t *r, const struct api_principal *who);

/* orders (api_orders.c) */
void api_orders_post(es_http_req_t *r, const struct api_principal *who);
void api_orders_cancel(es_http_req_t *r, const struct api_principal *who);
void api_orders_get(es_http_req_t *r, const struct api_principal *who);
void api_orders_list(es_http_req_t *r, const struct api_principal *who);

/* an aggregate's history (api_history.c) */
void api_history_get(es_http_req_t *r, const struct api_principal *who);
/* Pure: replaces each sealed field "<f>_enc" of payload (a decoded event) by "<f>": its plain
 * text opened with key for the owner named by the payload's user_id or customer_id (an address,
 * sealed as JSON text, as its object), or null when key is NULL (the owner was forgotten, and
 * then the email_index too) and always for a password hash. 1 when a field was nulled for want
 * of a key, 0 otherwise, -1 when a field does not open with key (payload half done). */
int api_history_unseal(json_t *payload, const unsigned char *key);
/* projections as an operator sees them, admin only (api_admin.c): the list, the dead letters,
 * and the operations (pause, resume; shadow rebuild, swap; dead-letter replay, discard), each an
 * OperatorAction produced to operations.events with the token's subject and the body's reason; the
 * action is the path's last segment */
void api_admin_projections(es_http_req_t *r, const struct api_principal *who);
void api_admin_projection_action(es_http_req_t *r, const struct api_principal *who);
void api_admin_dead_letters(es_http_req_t *r, const struct api_principal *who);
void api_admin_dead_letter_action(es_http_req_t *r, const struct api_principal *who);
/* the console's live numbers, admin only (api_admin_live.c): per context the commands sent,
 * their outcomes and the handler's position (GET /v1/admin/activity); the order saga's open
 * orders with their deadlines (GET /v1/admin/sagas) */
void api_admin_activity(es_http_req_t *r, const struct api_principal *who);
void api_admin_sagas(es_http_req_t *r, const struct api_principal *who);
/* The thread that asks the broker for GET /v1/admin/activity off the loop threads (app
 * borrowed, its producer and results must outlive it); NULL with err. Free it while the HTTP
 * server still exists and before the producer: it joins the thread and answers 503 to any
 * request still waiting. NULL is a no-op. */
struct api_activity *api_activity_new(struct api_app *app, es_err_t *err);
void api_activity_free(struct api_activity *a);

/* users (api_users.c) */
void api_users_register(es_http_req_t *r, const struct api_principal *who);
void api_users_get(es_http_req_t *r, const struct api_principal *who);
void api_users_forget(es_http_req_t *r, const struct api_principal *who);
void api_users_change_role(es_http_req_t *r, const struct api_principal *who);
void api_vendors_approve(es_http_req_t *r, const struct api_principal *who);
void api_vendors_list(es_http_req_t *r, const struct api_principal *who);
void api_auth_token(es_http_req_t *r, const struct api_principal *who);
void api_users_open_contact(es_http_req_t *r, const struct api_principal *who);
/* The users endpoints' state for app (borrowed, its contexts parsed): never NULL; a users context
 * not served or not configured (logged) makes its routes answer 503. */
struct api_users *api_users_new(const struct api_app *app);
void api_users_free(struct api_users *u);

#endif
