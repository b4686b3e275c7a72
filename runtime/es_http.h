/* es_http — an HTTP/1.1 server on h2o's event loop: several threads, each with its own loop and
 * SO_REUSEPORT listener, dispatching through one route table. Handlers run on a loop thread and
 * must not block for long; work done elsewhere answers through es_http_defer/es_http_complete.
 * Every answer is counted in es_metrics by route and status, with its latency. */
#ifndef ES_HTTP_H
#define ES_HTTP_H

#include "es_err.h"
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct es_http_server es_http_server_t;
typedef struct es_http_req es_http_req_t;         /* one request; valid until answered */
typedef struct es_http_pending es_http_pending_t; /* a deferred answer */

/* A handler answers (es_http_reply*) before returning, or defers. */
typedef void (*es_http_fn)(es_http_req_t *r);

typedef struct es_http_route {
    const char *method;  /* "GET", "POST", ... */
    const char *pattern; /* "/v1/products/{sku}": {name} matches one non-empty segment */
    es_http_fn fn;
    const void *data; /* the app's, e.g. required roles; es_http_route_data() */
} es_http_route_t;

/* A set of IPv4 and IPv6 networks (es_http_cidrs_new, below): the proxies whose X-Forwarded-For
 * is believed. */
typedef struct es_http_cidrs es_http_cidrs_t;

typedef struct es_http_config {
    const char *host; /* "127.0.0.1" */
    int port;
    int threads;     /* event-loop threads, >= 1 */
    size_t max_body; /* bigger bodies get 413 before any handler runs */
    void *app;       /* es_http_app() */
    /* Per-thread state (e.g. a DB connection) made on each loop thread; both may be NULL. */
    void *(*thread_init)(void *app);
    void (*thread_free)(void *tls);
    /* the proxies whose X-Forwarded-For es_http_client_ip believes (borrowed, must outlive the
     * server); NULL: none */
    const es_http_cidrs_t *trusted;
} es_http_config_t;

/* routes is borrowed and must outlive the server. Binds the port (ES_EIO "port 8080 is in use"). */
es_http_server_t *es_http_server_new(const es_http_config_t *cfg, const es_http_route_t *routes,
                                     size_t n_routes, es_err_t *err);
/* Runs the loops until es_http_server_stop; returns 0. */
int es_http_server_run(es_http_server_t *s);
/* Async-signal-safe. */
void es_http_server_stop(es_http_server_t *s);
void es_http_server_free(es_http_server_t *s);

/* Request accessors; returned strings are borrowed from the request unless they say dup. */
const char *es_http_method(es_http_req_t *r);
const char *es_http_path(es_http_req_t *r);                    /* without the query string */
const char *es_http_param(es_http_req_t *r, const char *name); /* {name} from the pattern */
char *es_http_query_dup(es_http_req_t *r, const char *name);   /* decoded, caller frees; NULL */
char *es_http_header_dup(es_http_req_t *r, const char *name);  /* case-insensitive; NULL */
const char *es_http_body(es_http_req_t *r, size_t *len);
void *es_http_app(es_http_req_t *r);
void *es_http_thread_state(es_http_req_t *r);
const void *es_http_route_data(es_http_req_t *r);
/* The TCP peer's IP address (as text) into out (cap bytes, 46 fit any); 0, or -1 with out ""
 * when unknown. Behind an ingress this is the ingress: key clients by es_http_client_ip. */
int es_http_peer_ip(es_http_req_t *r, char *out, size_t cap);
/* The client's IP address into out (cap bytes, 46 fit any): es_http_client_addr of the TCP peer
 * and the request's X-Forwarded-For lines (joined in order), with the proxies the server trusts
 * (es_http_config_t.trusted). 0, or -1 with out "" when unknown. */
int es_http_client_ip(es_http_req_t *r, char *out, size_t cap);

/* Parses spec, comma-separated CIDRs ("10.0.0.0/8, fd00::/8"; a bare address is one host),
 * spaces around entries ignored. NULL or blank: the empty set (trust no proxy). A malformed entry
 * (not an address, prefix out of range, bits set past the prefix, an empty entry) is NULL with
 * err (ES_EINVAL) quoting it. IPv4-mapped IPv6 (::ffff:a.b.c.d, prefix >= 96) is IPv4. Caller
 * frees the result. */
es_http_cidrs_t *es_http_cidrs_new(const char *spec, es_err_t *err);
void es_http_cidrs_free(es_http_cidrs_t *set);
/* How many networks set holds; 0 for NULL. */
size_t es_http_cidrs_count(const es_http_cidrs_t *set);
/* Whether address ip (text; IPv4-mapped IPv6 counts as IPv4) lies in one of set's networks; a
 * NULL set is the empty one. */
bool es_http_cidrs_has(const es_http_cidrs_t *set, const char *ip);
/* The client's address, given the TCP peer's and the X-Forwarded-For value xff (may be NULL):
 * the peer unless it is in trusted; else the right-most entry of xff that is not in trusted,
 * walking from the right (entries "a.b.c.d", "a.b.c.d:port", "v6", "[v6]" or "[v6]:port").
 * Entries left of it were written by the client or by hops nobody vouches for, so they are never
 * used. The walk stops at an entry that is not an address: the client is then the last address
 * read (the hop that sent it); if every entry is trusted, the left-most. Written to out (cap
 * bytes, 46 fit any) in canonical form. 0; -1 with out "" when peer is NULL or empty (a peer
 * that is not an address is copied as is). */
int es_http_client_addr(const es_http_cidrs_t *trusted, const char *peer, const char *xff,
                        char *out, size_t cap);

/* Answers. Headers added before the reply go out with it. */
void es_http_add_header(es_http_req_t *r, const char *name, const char *value);
void es_http_reply(es_http_req_t *r, int status, const char *content_type, const char *body,
                   size_t len);
void es_http_reply_json(es_http_req_t *r, int status, json_t *body /* stolen */);
/* application/problem+json {type, title, status, detail}; type is "about:blank" when NULL. */
void es_http_reply_problem(es_http_req_t *r, int status, const char *type, const char *title,
                           const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The problem body {type, title, status[, detail][, members...]} (new reference), built here
 * only, for an app that answers later (es_http_complete): type "about:blank" when NULL, title the
 * status's reason phrase when NULL, detail omitted when NULL and else made valid UTF-8
 * (es_http_utf8_clean, up to 1023 bytes); members (stolen, may be NULL) are extension members
 * added after them, e.g. {"field": "sku"}. */
json_t *es_http_problem_new(int status, const char *type, const char *title, const char *detail,
                            json_t *members);
/* es_http_reply_problem with extension members (stolen, may be NULL) and the detail's arguments
 * as a va_list: for an app's own problem-answering wrapper. */
void es_http_reply_problemv(es_http_req_t *r, int status, const char *type, const char *title,
                            json_t *members, const char *fmt, va_list ap)
    __attribute__((format(printf, 6, 0)));
/* Answers problem (stolen, e.g. from es_http_problem_new) as application/problem+json. */
void es_http_reply_problem_json(es_http_req_t *r, int status, json_t *problem);
/* The reason phrase of status (RFC 9110's names, e.g. 422 "Unprocessable Content"); a status it
 * does not know: "OK", "Bad Request" or "Internal Server Error" by its class. Static string. */
const char *es_http_status_reason(int status);
/* Copies s (NULL: "") into out (cap bytes, cap >= 1) with every byte that does not start a valid
 * UTF-8 sequence replaced by '?' (a character that does not fit is dropped whole); returns out. */
const char *es_http_utf8_clean(const char *s, char *out, size_t cap);

/* Defers the answer: returns a handle that es_http_complete may use from any thread, exactly
 * once. If the client goes away first, completing is harmless (the answer is dropped). */
es_http_pending_t *es_http_defer(es_http_req_t *r);
/* Answers a deferred request with JSON (stolen) and extra headers ("Name", "value", ..., NULL
 * terminated, copied). Thread-safe. problem != 0 sends application/problem+json. */
void es_http_complete(es_http_pending_t *p, int status, json_t *body, int problem,
                      const char *const *headers);
/* Calls fn(arg) on the request's loop thread after ms milliseconds (for bounded polling waits).
 * fn is not called if the request went away; then free_arg(arg) is called if not NULL. */
void es_http_after(es_http_req_t *r, unsigned ms, void (*fn)(es_http_req_t *r, void *arg),
                   void *arg, void (*free_arg)(void *arg));

/* A timer on a loop thread that is tied to no request (e.g. one watcher serving many waiting
 * requests). Made on the loop thread of r (from a handler or an es_http_after callback); armed and
 * freed only on that same thread, at the latest in the config's thread_free. */
typedef struct es_http_timer es_http_timer_t;
es_http_timer_t *es_http_timer_new(es_http_req_t *r, void (*fn)(void *arg), void *arg);
/* Calls fn(arg) once, ms milliseconds from now; nothing changes if it is already armed. Use a
 * few fixed values of ms: each distinct value keeps a small per-thread queue. fn may re-arm or
 * free its timer. */
void es_http_timer_arm(es_http_timer_t *t, unsigned ms);
/* Disarms and frees; NULL is a no-op. */
void es_http_timer_free(es_http_timer_t *t);

/* ---- holding a request open for work driven by its loop (e.g. a non-blocking query) ---- */

/* While held, a request that the handler left unanswered is not answered 500 (a request must be
 * answered, deferred, waiting on es_http_after, or held). gone(arg) is called once if the request
 * goes away (client gone, server stopping) while held; the hold is then freed by es_http and must
 * not be used again. Made, used and ended on the request's loop thread. */
typedef struct es_http_hold es_http_hold_t;
es_http_hold_t *es_http_hold_new(es_http_req_t *r, void (*gone)(void *arg), void *arg);
/* The held request (borrowed, valid until es_http_hold_end). */
es_http_req_t *es_http_hold_req(const es_http_hold_t *h);
/* Ends and frees the hold, once the request was answered (or held anew, or made to wait): a
 * request left with no answer and nothing pending is then answered 500 (a bug). */
void es_http_hold_end(es_http_hold_t *h);
/* Ends and frees the hold without looking at the request (a server stopping). */
void es_http_hold_drop(es_http_hold_t *h);

/* ---- foreign sockets watched by a loop thread (e.g. a MariaDB connection) ---- */

/* A loop thread, borrowed from a request; valid until the server's thread_free has run. */
typedef struct es_http_loop es_http_loop_t;
es_http_loop_t *es_http_loop_of(es_http_req_t *r);

#define ES_HTTP_FD_READ    1
#define ES_HTTP_FD_WRITE   2
#define ES_HTTP_FD_TIMEOUT 8
typedef struct es_http_fd es_http_fd_t;
/* Watches fd (not owned: it stays open and is never read here) on loop's thread: after each
 * es_http_fd_wait, fn(arg, ready) is called once with what happened first (ES_HTTP_FD_READ or
 * ES_HTTP_FD_WRITE readiness, or ES_HTTP_FD_TIMEOUT). Made, armed and freed on that thread. NULL
 * (logged) when fd cannot be watched (out of descriptors). */
es_http_fd_t *es_http_fd_new(es_http_loop_t *loop, int fd, void (*fn)(void *arg, int ready),
                             void *arg);
/* Waits for what (ES_HTTP_FD_READ and/or _WRITE) and, when timeout_ms > 0, at most that long (a
 * few fixed values: each keeps a small per-thread queue). One wait at a time. */
void es_http_fd_wait(es_http_fd_t *w, int what, unsigned timeout_ms);
/* Stops watching and frees; fd stays open. NULL is a no-op. */
void es_http_fd_free(es_http_fd_t *w);

/* ---- streamed answers (e.g. Server-Sent Events) ---- */

/* A response whose body is written in pieces, on the request's loop thread. One piece is in
 * flight at a time: write the next when on_ready says the last went out. */
typedef struct es_http_stream es_http_stream_t;
typedef struct es_http_stream_cbs {
    void (*on_ready)(void *arg); /* what was written went out: the next piece may be written */
    void (*on_gone)(void *arg);  /* once, when the request is disposed (client gone, the end
                                    sent, or the server stopping): the stream is freed after it */
    void *arg;
} es_http_stream_cbs_t;
/* Answers r with status and content_type and the headers added so far, without a length (a
 * chunked HTTP/1.1 body), and returns the stream, owned by the request (valid until on_gone). A
 * stopping server ends its open streams. NULL if r was already answered. */
es_http_stream_t *es_http_stream_start(es_http_req_t *r, int status, const char *content_type,
                                       const es_http_stream_cbs_t *cbs);
/* Whether a piece is in flight (writing now fails) or the stream ended. */
bool es_http_stream_busy(const es_http_stream_t *st);
/* Sends data (copied) as the next piece: 0, or -1 when busy or ended. */
int es_http_stream_write(es_http_stream_t *st, const char *data, size_t len);
/* Ends the body (after the piece in flight, if any). Idempotent. */
void es_http_stream_end(es_http_stream_t *st);
/* Cuts the client's connection off (for a client that stopped reading: its piece in flight would
 * never go out); on_gone follows from the loop. */
void es_http_stream_abort(es_http_stream_t *st);

/* A way for another thread to have fn(arg) called on a request's loop thread. Made and freed on
 * that loop thread; es_http_waker_wake is thread-safe and coalesces: one call of fn follows one
 * or more wakes. After es_http_waker_free, fn is not called again. */
typedef struct es_http_waker es_http_waker_t;
es_http_waker_t *es_http_waker_new(es_http_req_t *r, void (*fn)(void *arg), void *arg);
void es_http_waker_wake(es_http_waker_t *w);
void es_http_waker_free(es_http_waker_t *w); /* NULL is a no-op */

#endif
