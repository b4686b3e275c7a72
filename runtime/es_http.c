/* es_http — see es_http.h.
 *
 * Each loop thread owns an h2o evloop, an h2o context and its own SO_REUSEPORT listener; the
 * kernel spreads connections over them. One h2o handler at "/" matches our route table.
 *
 * Lifetimes: the es_http_req_t lives in the h2o request's pool (h2o_mem_alloc_shared with a
 * dispose callback), so it dies with the request. A deferred answer (es_http_pending_t) and an
 * es_http_after timer are heap objects that point at the request; the request's dispose callback
 * cuts those pointers, so a completion that arrives after the client went away is dropped rather
 * than written into freed memory. Completions from other threads travel as h2o multithread
 * messages to the request's own loop, where all request state is touched.
 *
 * Each loop thread makes its evloop, context, listener and completion receiver itself, and
 * disposes of them itself: h2o 2.2's socket buffers come from a thread-local recycling allocator
 * (h2o_socket_buffer_prototype is __thread), and a socket made on one thread but read on another
 * allocates from, and returns to, the first thread's free list without a lock. That corrupted the
 * heap of the API under load (a completion read on thread 2 from a pipe made on thread 1).
 * A completion sent after its thread closed is dropped (th->closed, under s->complete_lock).
 *
 * Answers that h2o makes by itself (413 for an oversized body) pass through a filter that turns
 * them into problem+json and counts them; our own answers are counted where they are made. */
#include "es_http.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_metrics.h"
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <h2o.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define container_of(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

#define MAX_SEGMENTS     32
#define MAX_STATUS       600
#define STOP_GRACE_MS    5000
#define LOOP_TICK_MS     500
#define UNMATCHED_ROUTE  "unmatched"
#define PROBLEM_JSON     "application/problem+json"
#define REQUESTS_TOTAL   "eventshop_http_requests_total"
#define REQUESTS_HELP    "HTTP requests answered, by route, method and status"
#define DURATION_SECONDS "eventshop_http_request_duration_seconds"
#define DURATION_HELP    "Time from request to answer, by route"

typedef struct route_seg {
    char *text; /* literal segment, or the parameter's name */
    bool is_param;
} route_seg_t;

typedef struct compiled_route {
    const es_http_route_t *def;
    route_seg_t segs[MAX_SEGMENTS];
    size_t n_segs;
    es_metric_t *duration;
    es_metric_t *_Atomic *counters; /* by status, made on first use */
} compiled_route_t;

typedef struct http_thread http_thread_t;

struct es_http_server {
    es_http_config_t cfg;
    char *host;
    compiled_route_t *routes;
    size_t n_routes;
    es_metric_t *unmatched_duration;
    h2o_globalconf_t config;
    http_thread_t *threads;
    atomic_int stopping;
    pthread_mutex_t complete_lock;  /* es_http_complete against a thread's close */
    const es_http_cidrs_t *trusted; /* borrowed: es_http_config_t.trusted */
};

typedef struct after_timeout {
    uint64_t ms;
    h2o_timeout_t timeout;
} after_timeout_t;

struct http_thread {
    es_http_server_t *s;
    pthread_t tid;
    int fd;
    h2o_evloop_t *loop;
    h2o_context_t ctx;
    bool started; /* its loop thread ran: it made and disposed of its own h2o objects */
    bool closed;  /* under s->complete_lock: its receiver is gone, completions are dropped */
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    h2o_multithread_receiver_t completions;
    h2o_multithread_receiver_t wakes; /* es_http_waker_t messages */
    h2o_linklist_t streams;           /* open es_http_stream_t, ended at a stop */
    void *tls;
    size_t inflight; /* requests seen by the handler and not yet disposed */
    after_timeout_t **timeouts;
    size_t n_timeouts;
};

typedef struct after {
    h2o_timeout_entry_t entry;
    h2o_linklist_t link; /* in the request's list */
    es_http_req_t *r;
    void (*fn)(es_http_req_t *r, void *arg);
    void *arg;
    void (*free_arg)(void *arg);
} after_t;

struct es_http_req {
    h2o_req_t *req;
    http_thread_t *th;
    const compiled_route_t *route;
    const char *method;
    const char *path;
    const char *param_names[MAX_SEGMENTS];
    const char *param_values[MAX_SEGMENTS];
    size_t n_params;
    char *body;
    size_t body_len;
    struct timespec start;
    bool answered;
    es_http_pending_t *pending;
    h2o_linklist_t afters;
    h2o_linklist_t holds;     /* es_http_hold_t */
    es_http_stream_t *stream; /* a streamed answer, freed with the request */
};

struct es_http_pending {
    h2o_multithread_message_t super; /* first: the receiver gets this back */
    http_thread_t *th;
    es_http_req_t *r; /* NULL once the request is gone */
    int status;
    bool problem;
    char *body;
    char **headers; /* name, value, ..., NULL */
};

struct es_http_handler {
    h2o_handler_t super;
    es_http_server_t *s;
};

struct es_http_filter {
    h2o_filter_t super;
    es_http_server_t *s;
};

struct replace_body_ostream {
    h2o_ostream_t super;
    h2o_iovec_t body;
    bool sent;
};

/* Set while we start a response of our own, so that the filter leaves it alone. */
static __thread bool in_own_reply;

static double seconds_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

const char *es_http_status_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return status < 400 ? "OK" : status < 500 ? "Bad Request" : "Internal Server Error";
    }
}

/* Method label values come from clients: keep their set small. */
static const char *method_label(const char *m, size_t len)
{
    static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strlen(known[i]) == len && memcmp(known[i], m, len) == 0)
            return known[i];
    return "OTHER";
}

/* A label value with quotes and backslashes escaped; owned by the caller. */
static char *label_escape(const char *v)
{
    char *out = xmalloc(strlen(v) * 2 + 1), *o = out;
    for (; *v; v++) {
        if (*v == '"' || *v == '\\')
            *o++ = '\\';
        *o++ = *v == '\n' ? ' ' : *v;
    }
    *o = '\0';
    return out;
}

static es_metric_t *counter_for(const char *route, const char *method, int status)
{
    char *esc = label_escape(route);
    char *labels = xasprintf("route=\"%s\",method=\"%s\",status=\"%d\"", esc, method, status);
    es_metric_t *m = es_counter(REQUESTS_TOTAL, REQUESTS_HELP, labels);
    free(labels);
    free(esc);
    return m;
}

static void record_answer(es_http_server_t *s, const compiled_route_t *cr, const char *method,
                          size_t method_len, int status, double seconds)
{
    if (cr && status >= 100 && status < MAX_STATUS) {
        es_metric_t *m = atomic_load(&cr->counters[status]);
        if (!m) {
            m = counter_for(cr->def->pattern, cr->def->method, status);
            atomic_store(&cr->counters[status], m); /* racing stores store the same pointer */
        }
        es_metric_add(m, 1);
        es_metric_observe(cr->duration, seconds);
        return;
    }
    es_metric_add(counter_for(UNMATCHED_ROUTE, method_label(method, method_len), status), 1);
    es_metric_observe(s->unmatched_duration, seconds);
}

/* ---- routing ---- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..len) into a fresh pool string (plus_is_space for query strings).
 * NULL on a bad escape or an encoded NUL. */
static char *url_decode(h2o_mem_pool_t *pool, const char *s, size_t len, bool plus_is_space)
{
    char *out = pool ? h2o_mem_alloc_pool(pool, len + 1) : xmalloc(len + 1), *o = out;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%') {
            int hi = i + 1 < len ? hexval((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < len ? hexval((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                goto bad;
            *o++ = (char)(hi * 16 + lo);
            i += 2;
        } else if (plus_is_space && s[i] == '+') {
            *o++ = ' ';
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
bad:
    if (!pool)
        free(out);
    return NULL;
}

static int compile_route(compiled_route_t *cr, const es_http_route_t *def, es_err_t *err)
{
    cr->def = def;
    const char *p = def->pattern;
    if (!p || p[0] != '/' || !def->method || !def->fn)
        return es_set(err, ES_EINVAL, "route '%s %s' is incomplete",
                      def->method ? def->method : "?", p ? p : "?");
    p++;
    for (;;) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (cr->n_segs == MAX_SEGMENTS)
            return es_set(err, ES_EINVAL, "route '%s' has too many segments", def->pattern);
        route_seg_t *seg = &cr->segs[cr->n_segs++];
        if (len >= 2 && p[0] == '{' && p[len - 1] == '}') {
            seg->is_param = true;
            seg->text = xstrndup(p + 1, len - 2);
        } else {
            seg->text = xstrndup(p, len);
        }
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

/* Splits the raw path into decoded segments. -1 on a bad escape, -2 when too deep. */
static int split_path(h2o_mem_pool_t *pool, const char *path, size_t len, char **segs,
                      size_t *n_segs)
{
    *n_segs = 0;
    if (len == 0 || path[0] != '/')
        return -1;
    size_t i = 1;
    for (;;) {
        size_t j = i;
        while (j < len && path[j] != '/')
            j++;
        if (*n_segs == MAX_SEGMENTS)
            return -2;
        if (!(segs[(*n_segs)++] = url_decode(pool, path + i, j - i, false)))
            return -1;
        if (j >= len)
            return 0;
        i = j + 1;
    }
}

static bool route_matches(const compiled_route_t *cr, char **segs, size_t n_segs)
{
    if (cr->n_segs != n_segs)
        return false;
    for (size_t i = 0; i < n_segs; i++) {
        if (cr->segs[i].is_param ? segs[i][0] == '\0' : strcmp(cr->segs[i].text, segs[i]) != 0)
            return false;
    }
    return true;
}

static bool method_is(const compiled_route_t *cr, const char *m, size_t len)
{
    return strlen(cr->def->method) == len && memcmp(cr->def->method, m, len) == 0;
}

/* ---- answers ---- */

static void add_header(h2o_req_t *req, const char *name, const char *value)
{
    size_t nlen = strlen(name), vlen = strlen(value);
    char *lname = h2o_mem_alloc_pool(&req->pool, nlen + 1);
    for (size_t i = 0; i <= nlen; i++)
        lname[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    char *v = h2o_mem_alloc_pool(&req->pool, vlen + 1);
    memcpy(v, value, vlen + 1);
    h2o_add_header_by_str(&req->pool, &req->res.headers, lname, nlen, 1, NULL, v, vlen);
}

static void check_answered(es_http_req_t *r);
static void stream_dispose(es_http_req_t *r);

void es_http_add_header(es_http_req_t *r, const char *name, const char *value)
{
    if (!r->answered)
        add_header(r->req, name, value);
}

static h2o_generator_t generator_none = {NULL, NULL};

void es_http_reply(es_http_req_t *r, int status, const char *content_type, const char *body,
                   size_t len)
{
    if (r->answered) {
        es_error("http: '%s %s' answered twice (status %d dropped)", r->method, r->path, status);
        return;
    }
    r->answered = true;
    h2o_req_t *req = r->req;
    record_answer(r->th->s, r->route, r->method, strlen(r->method), status,
                  seconds_since(&r->start));
    req->res.status = status;
    req->res.reason = es_http_status_reason(status);
    req->res.content_length = len;
    if (content_type)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                       strlen(content_type));
    in_own_reply = true;
    if (status == 304) {
        /* no content and no Content-Length: a 304's length would have to be the 200's */
        req->res.content_length = SIZE_MAX;
        h2o_start_response(req, &generator_none);
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    } else {
        h2o_send_inline(req, body ? body : "", len); /* copies the body into the pool */
    }
    in_own_reply = false;
}

void es_http_reply_json(es_http_req_t *r, int status, json_t *body)
{
    if (!body) {
        es_http_reply(r, status, NULL, "", 0);
        return;
    }
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    es_http_reply(r, status, "application/json", text, strlen(text));
    free(text);
}

/* a detail quotes client input (a path segment may decode to any bytes) and "%.64s" may cut a
 * character in two, while jansson refuses a string that is not UTF-8 */
const char *es_http_utf8_clean(const char *s, char *out, size_t cap)
{
    static const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p && o + 1 < cap) {
        size_t n = *p < 0x80             ? 1
                   : (*p & 0xe0) == 0xc0 ? 2
                   : (*p & 0xf0) == 0xe0 ? 3
                   : (*p & 0xf8) == 0xf0 ? 4
                                         : 0;
        uint32_t cp = n == 1 ? *p : n ? (uint32_t)(*p & (0x7f >> n)) : 0;
        size_t i = 1;
        for (; n > 1 && i < n && (p[i] & 0xc0) == 0x80; i++)
            cp = (cp << 6) | (p[i] & 0x3f);
        bool ok = n && i == n && cp >= min_cp[n] && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff);
        if (!ok || o + n >= cap) {
            out[o++] = '?';
            p++;
            continue;
        }
        memcpy(out + o, p, n);
        o += n;
        p += n;
    }
    out[o] = '\0';
    return out;
}

json_t *es_http_problem_new(int status, const char *type, const char *title, const char *detail,
                            json_t *members)
{
    char clean[1024];
    json_t *p = json_object();
    json_object_set_new(p, "type", json_string(type ? type : "about:blank"));
    json_object_set_new(p, "title", json_string(title ? title : es_http_status_reason(status)));
    json_object_set_new(p, "status", json_integer(status));
    if (detail)
        json_object_set_new(p, "detail",
                            json_string(es_http_utf8_clean(detail, clean, sizeof clean)));
    if (members)
        json_object_update(p, members);
    json_decref(members);
    return p;
}

void es_http_reply_problem_json(es_http_req_t *r, int status, json_t *problem)
{
    char *text = json_dumps(problem, JSON_COMPACT);
    json_decref(problem);
    es_http_reply(r, status, PROBLEM_JSON, text, strlen(text));
    free(text);
}

void es_http_reply_problemv(es_http_req_t *r, int status, const char *type, const char *title,
                            json_t *members, const char *fmt, va_list ap)
{
    char detail[512];
    vsnprintf(detail, sizeof detail, fmt, ap);
    es_http_reply_problem_json(r, status,
                               es_http_problem_new(status, type, title, detail, members));
}

void es_http_reply_problem(es_http_req_t *r, int status, const char *type, const char *title,
                           const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    es_http_reply_problemv(r, status, type, title, NULL, fmt, ap);
    va_end(ap);
}

/* ---- request accessors ---- */

const char *es_http_method(es_http_req_t *r)
{
    return r->method;
}

const char *es_http_path(es_http_req_t *r)
{
    return r->path;
}

const char *es_http_param(es_http_req_t *r, const char *name)
{
    for (size_t i = 0; i < r->n_params; i++)
        if (strcmp(r->param_names[i], name) == 0)
            return r->param_values[i];
    return NULL;
}

char *es_http_query_dup(es_http_req_t *r, const char *name)
{
    h2o_req_t *req = r->req;
    if (req->query_at == SIZE_MAX)
        return NULL;
    const char *q = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    size_t nlen = strlen(name);
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        if (!amp)
            amp = end;
        const char *eq = memchr(q, '=', (size_t)(amp - q));
        const char *kend = eq ? eq : amp;
        char *key = url_decode(NULL, q, (size_t)(kend - q), true);
        bool hit = key && strlen(key) == nlen && memcmp(key, name, nlen) == 0;
        free(key);
        if (hit)
            return eq ? url_decode(NULL, eq + 1, (size_t)(amp - eq - 1), true) : xstrdup("");
        q = amp + 1;
    }
    return NULL;
}

char *es_http_header_dup(es_http_req_t *r, const char *name)
{
    size_t nlen = strlen(name);
    const h2o_headers_t *h = &r->req->headers;
    for (size_t i = 0; i < h->size; i++) {
        const h2o_header_t *e = &h->entries[i];
        if (e->name->len == nlen && strncasecmp(e->name->base, name, nlen) == 0)
            return xstrndup(e->value.base, e->value.len);
    }
    return NULL;
}

const char *es_http_body(es_http_req_t *r, size_t *len)
{
    if (len)
        *len = r->body_len;
    return r->body;
}

void *es_http_app(es_http_req_t *r)
{
    return r->th->s->cfg.app;
}

void *es_http_thread_state(es_http_req_t *r)
{
    return r->th->tls;
}

/* the TCP peer (not X-Forwarded-For: a client may write that header itself; es_http_client_ip
 * believes it from trusted proxies only) */
int es_http_peer_ip(es_http_req_t *r, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    out[0] = '\0';
    if (!r->req->conn->callbacks->get_peername)
        return -1;
    socklen_t n = r->req->conn->callbacks->get_peername(r->req->conn, (struct sockaddr *)&ss);
    if (n == 0)
        return -1;
    const void *addr = ss.ss_family == AF_INET6
                           ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                           : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
    if (!inet_ntop(ss.ss_family, addr, out, (socklen_t)cap)) {
        out[0] = '\0';
        return -1;
    }
    return 0;
}

int es_http_client_ip(es_http_req_t *r, char *out, size_t cap)
{
    char peer[INET6_ADDRSTRLEN];
    if (es_http_peer_ip(r, peer, sizeof peer)) {
        if (cap)
            out[0] = '\0';
        return -1;
    }
    const es_http_cidrs_t *trusted = r->th->s->trusted;
    if (!es_http_cidrs_has(trusted, peer))
        return es_http_client_addr(trusted, peer, NULL, out, cap);
    /* several X-Forwarded-For lines are one list, in order (RFC 9110 5.3) */
    static const char name[] = "x-forwarded-for";
    const h2o_headers_t *h = &r->req->headers;
    size_t total = 0;
    for (size_t i = 0; i < h->size; i++)
        if (h->entries[i].name->len == sizeof name - 1 &&
            strncasecmp(h->entries[i].name->base, name, sizeof name - 1) == 0)
            total += h->entries[i].value.len + 1;
    char *xff = NULL;
    if (total) {
        xff = xmalloc(total);
        size_t n = 0;
        for (size_t i = 0; i < h->size; i++) {
            const h2o_header_t *e = &h->entries[i];
            if (e->name->len != sizeof name - 1 ||
                strncasecmp(e->name->base, name, sizeof name - 1) != 0)
                continue;
            if (n)
                xff[n++] = ',';
            memcpy(xff + n, e->value.base, e->value.len);
            n += e->value.len;
        }
        xff[n] = '\0';
    }
    int rc = es_http_client_addr(trusted, peer, xff, out, cap);
    free(xff);
    return rc;
}

const void *es_http_route_data(es_http_req_t *r)
{
    return r->route ? r->route->def->data : NULL;
}

/* ---- deferred answers and timers ---- */

es_http_pending_t *es_http_defer(es_http_req_t *r)
{
    if (r->answered || r->pending) {
        es_error("http: '%s %s' deferred after an answer or twice", r->method, r->path);
        return NULL;
    }
    es_http_pending_t *p = xcalloc(1, sizeof *p);
    p->th = r->th;
    p->r = r;
    r->pending = p;
    return p;
}

static void pending_free(es_http_pending_t *p)
{
    for (char **h = p->headers; h && *h; h++)
        free(*h);
    free(p->headers);
    free(p->body);
    free(p);
}

void es_http_complete(es_http_pending_t *p, int status, json_t *body, int problem,
                      const char *const *headers)
{
    if (!p) {
        json_decref(body);
        return;
    }
    p->status = status;
    p->problem = problem != 0;
    if (!body && problem)
        body = es_http_problem_new(status, NULL, NULL, NULL, NULL);
    if (body) {
        p->body = json_dumps(body, JSON_COMPACT);
        json_decref(body);
    }
    size_t n = 0;
    while (headers && headers[n])
        n++;
    p->headers = xcalloc(n + 1, sizeof *p->headers);
    for (size_t i = 0; i < n; i++)
        p->headers[i] = xstrdup(headers[i]);
    es_http_server_t *s = p->th->s;
    pthread_mutex_lock(&s->complete_lock);
    bool closed = p->th->closed;
    if (!closed)
        h2o_multithread_send_message(&p->th->completions, &p->super);
    pthread_mutex_unlock(&s->complete_lock);
    if (closed) {
        es_debug("http: completion with status %d dropped: the server has stopped", status);
        pending_free(p);
    }
}

static void on_completions(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *msg =
            container_of(messages->next, h2o_multithread_message_t, link);
        h2o_linklist_unlink(&msg->link);
        es_http_pending_t *p = (es_http_pending_t *)msg;
        es_http_req_t *r = p->r;
        if (!r) {
            es_debug("http: completion with status %d dropped: the client is gone", p->status);
            pending_free(p);
            continue;
        }
        r->pending = NULL;
        for (char **h = p->headers; h[0] && h[1]; h += 2)
            es_http_add_header(r, h[0], h[1]);
        const char *ctype = p->body ? (p->problem ? PROBLEM_JSON : "application/json") : NULL;
        es_http_reply(r, p->status, ctype, p->body, p->body ? strlen(p->body) : 0);
        pending_free(p);
    }
}

static h2o_timeout_t *timeout_for(http_thread_t *th, uint64_t ms)
{
    for (size_t i = 0; i < th->n_timeouts; i++)
        if (th->timeouts[i]->ms == ms)
            return &th->timeouts[i]->timeout;
    th->timeouts = xrealloc(th->timeouts, (th->n_timeouts + 1) * sizeof *th->timeouts);
    after_timeout_t *t = xcalloc(1, sizeof *t);
    t->ms = ms;
    h2o_timeout_init(th->loop, &t->timeout, ms);
    th->timeouts[th->n_timeouts++] = t;
    return &t->timeout;
}

static void on_after(h2o_timeout_entry_t *entry)
{
    after_t *a = container_of(entry, after_t, entry);
    es_http_req_t *r = a->r;
    h2o_linklist_unlink(&a->link);
    a->fn(r, a->arg);
    free(a);
    check_answered(r);
}

void es_http_after(es_http_req_t *r, unsigned ms, void (*fn)(es_http_req_t *r, void *arg),
                   void *arg, void (*free_arg)(void *arg))
{
    after_t *a = xcalloc(1, sizeof *a);
    a->r = r;
    a->fn = fn;
    a->arg = arg;
    a->free_arg = free_arg;
    a->entry.cb = on_after;
    h2o_linklist_insert(&r->afters, &a->link);
    h2o_timeout_link(r->th->loop, timeout_for(r->th, ms), &a->entry);
}

struct es_http_timer {
    h2o_timeout_entry_t entry;
    http_thread_t *th;
    void (*fn)(void *arg);
    void *arg;
};

static void on_timer(h2o_timeout_entry_t *entry)
{
    es_http_timer_t *t = container_of(entry, es_http_timer_t, entry);
    t->fn(t->arg);
}

es_http_timer_t *es_http_timer_new(es_http_req_t *r, void (*fn)(void *arg), void *arg)
{
    es_http_timer_t *t = xcalloc(1, sizeof *t);
    t->th = r->th;
    t->fn = fn;
    t->arg = arg;
    t->entry.cb = on_timer;
    return t;
}

void es_http_timer_arm(es_http_timer_t *t, unsigned ms)
{
    if (!h2o_timeout_is_linked(&t->entry))
        h2o_timeout_link(t->th->loop, timeout_for(t->th, ms), &t->entry);
}

void es_http_timer_free(es_http_timer_t *t)
{
    if (!t)
        return;
    if (h2o_timeout_is_linked(&t->entry))
        h2o_timeout_unlink(&t->entry);
    free(t);
}

/* ---- holds ---- */

struct es_http_hold {
    h2o_linklist_t link; /* in the request's holds */
    es_http_req_t *r;
    void (*gone)(void *arg);
    void *arg;
};

es_http_hold_t *es_http_hold_new(es_http_req_t *r, void (*gone)(void *arg), void *arg)
{
    es_http_hold_t *h = xcalloc(1, sizeof *h);
    h->r = r;
    h->gone = gone;
    h->arg = arg;
    h2o_linklist_insert(&r->holds, &h->link);
    return h;
}

es_http_req_t *es_http_hold_req(const es_http_hold_t *h)
{
    return h->r;
}

void es_http_hold_end(es_http_hold_t *h)
{
    es_http_req_t *r = h->r;
    h2o_linklist_unlink(&h->link);
    free(h);
    check_answered(r);
}

void es_http_hold_drop(es_http_hold_t *h)
{
    if (!h)
        return;
    h2o_linklist_unlink(&h->link);
    free(h);
}

static void holds_gone(es_http_req_t *r)
{
    while (!h2o_linklist_is_empty(&r->holds)) {
        es_http_hold_t *h = container_of(r->holds.next, es_http_hold_t, link);
        h2o_linklist_unlink(&h->link);
        if (h->gone)
            h->gone(h->arg);
        free(h);
    }
}

/* ---- foreign sockets ---- */

es_http_loop_t *es_http_loop_of(es_http_req_t *r)
{
    return (es_http_loop_t *)r->th;
}

struct es_http_fd {
    h2o_socket_t *sock; /* on a dup of the fd: closing it leaves the owner's fd open */
    http_thread_t *th;
    h2o_timeout_entry_t timer;
    void (*fn)(void *arg, int ready);
    void *arg;
    int want;           /* what the current wait is for; 0: none */
    bool write_pending; /* h2o_socket_notify_write armed (it cannot be cancelled) */
};

static void fd_fire(es_http_fd_t *w, int ready)
{
    if (!w->want)
        return; /* a late write readiness of an earlier wait */
    if (w->want & ES_HTTP_FD_READ)
        h2o_socket_read_stop(w->sock);
    if (h2o_timeout_is_linked(&w->timer))
        h2o_timeout_unlink(&w->timer);
    w->want = 0;
    w->fn(w->arg, ready); /* may wait again or free w */
}

static void fd_on_read(h2o_socket_t *sock, const char *err)
{
    (void)err; /* H2O_SOCKET_FLAG_DONT_READ: a notification, nothing was read */
    if (sock->data)
        fd_fire(sock->data, ES_HTTP_FD_READ);
}

static void fd_on_write(h2o_socket_t *sock, const char *err)
{
    (void)err;
    es_http_fd_t *w = sock->data;
    if (!w)
        return;
    w->write_pending = false;
    if (w->want & ES_HTTP_FD_WRITE)
        fd_fire(w, ES_HTTP_FD_WRITE);
}

static void fd_on_timeout(h2o_timeout_entry_t *entry)
{
    fd_fire(container_of(entry, es_http_fd_t, timer), ES_HTTP_FD_TIMEOUT);
}

es_http_fd_t *es_http_fd_new(es_http_loop_t *loop, int fd, void (*fn)(void *arg, int ready),
                             void *arg)
{
    http_thread_t *th = (http_thread_t *)loop;
    int own = dup(fd);
    if (own < 0) {
        es_error("http: cannot watch socket %d: %s", fd, strerror(errno));
        return NULL;
    }
    es_http_fd_t *w = xcalloc(1, sizeof *w);
    w->th = th;
    w->fn = fn;
    w->arg = arg;
    w->timer.cb = fd_on_timeout;
    w->sock = h2o_evloop_socket_create(th->loop, own, H2O_SOCKET_FLAG_DONT_READ);
    w->sock->data = w;
    return w;
}

void es_http_fd_wait(es_http_fd_t *w, int what, unsigned timeout_ms)
{
    w->want = what & (ES_HTTP_FD_READ | ES_HTTP_FD_WRITE);
    if (w->want & ES_HTTP_FD_READ)
        h2o_socket_read_start(w->sock, fd_on_read);
    if ((w->want & ES_HTTP_FD_WRITE) && !w->write_pending) {
        w->write_pending = true;
        h2o_socket_notify_write(w->sock, fd_on_write);
    }
    if (timeout_ms > 0) {
        w->want |= ES_HTTP_FD_TIMEOUT;
        h2o_timeout_link(w->th->loop, timeout_for(w->th, timeout_ms), &w->timer);
    }
}

void es_http_fd_free(es_http_fd_t *w)
{
    if (!w)
        return;
    if (w->want & ES_HTTP_FD_READ)
        h2o_socket_read_stop(w->sock);
    if (h2o_timeout_is_linked(&w->timer))
        h2o_timeout_unlink(&w->timer);
    w->sock->data = NULL;
    h2o_socket_close(w->sock);
    free(w);
}

/* ---- streamed answers ---- */

struct es_http_stream {
    h2o_generator_t gen;
    h2o_linklist_t link; /* in its thread's streams */
    es_http_req_t *r;
    es_http_stream_cbs_t cbs;
    char *buf; /* the piece in flight: h2o reads it until proceed */
    size_t cap;
    bool inflight, ended, final_sent, stopped;
};

static void stream_send_final(es_http_stream_t *st)
{
    st->final_sent = true;
    h2o_send(st->r->req, NULL, 0, H2O_SEND_STATE_FINAL);
}

static void stream_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)req;
    es_http_stream_t *st = container_of(gen, es_http_stream_t, gen);
    st->inflight = false;
    if (st->ended) {
        if (!st->final_sent && !st->stopped)
            stream_send_final(st);
        return;
    }
    if (st->cbs.on_ready)
        st->cbs.on_ready(st->cbs.arg);
}

static void stream_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)req;
    es_http_stream_t *st = container_of(gen, es_http_stream_t, gen);
    st->stopped = true; /* the request's disposal follows: on_gone */
}

static void stream_dispose(es_http_req_t *r)
{
    es_http_stream_t *st = r->stream;
    if (!st)
        return;
    r->stream = NULL;
    if (h2o_linklist_is_linked(&st->link))
        h2o_linklist_unlink(&st->link);
    if (st->cbs.on_gone)
        st->cbs.on_gone(st->cbs.arg);
    free(st->buf);
    free(st);
}

es_http_stream_t *es_http_stream_start(es_http_req_t *r, int status, const char *content_type,
                                       const es_http_stream_cbs_t *cbs)
{
    if (r->answered || r->pending || r->stream) {
        es_error("http: '%s %s' streamed after an answer", r->method, r->path);
        return NULL;
    }
    r->answered = true;
    h2o_req_t *req = r->req;
    record_answer(r->th->s, r->route, r->method, strlen(r->method), status,
                  seconds_since(&r->start));
    es_http_stream_t *st = xcalloc(1, sizeof *st);
    st->r = r;
    st->cbs = *cbs;
    st->gen.proceed = stream_proceed;
    st->gen.stop = stream_stop;
    r->stream = st;
    h2o_linklist_insert(&r->th->streams, &st->link);
    req->res.status = status;
    req->res.reason = es_http_status_reason(status);
    req->res.content_length = SIZE_MAX;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                   strlen(content_type));
    in_own_reply = true;
    h2o_start_response(req, &st->gen);
    in_own_reply = false;
    return st;
}

bool es_http_stream_busy(const es_http_stream_t *st)
{
    return st->inflight || st->ended || st->stopped;
}

int es_http_stream_write(es_http_stream_t *st, const char *data, size_t len)
{
    if (es_http_stream_busy(st) || len == 0)
        return es_http_stream_busy(st) ? -1 : 0;
    if (len > st->cap) {
        st->buf = xrealloc(st->buf, len);
        st->cap = len;
    }
    memcpy(st->buf, data, len);
    h2o_iovec_t v = h2o_iovec_init(st->buf, len);
    st->inflight = true;
    h2o_send(st->r->req, &v, 1, H2O_SEND_STATE_IN_PROGRESS);
    return 0;
}

void es_http_stream_end(es_http_stream_t *st)
{
    if (!st || st->ended)
        return;
    st->ended = true;
    if (!st->inflight && !st->stopped)
        stream_send_final(st);
}

void es_http_stream_abort(es_http_stream_t *st)
{
    h2o_conn_t *conn = st->r->req->conn;
    h2o_socket_t *sock = conn->callbacks->get_socket ? conn->callbacks->get_socket(conn) : NULL;
    int fd = sock ? h2o_socket_get_fd(sock) : -1;
    /* the pending write fails, h2o closes the connection and disposes of the request */
    if (fd >= 0 && !st->stopped)
        shutdown(fd, SHUT_RDWR);
}

/* ---- wakers ---- */

struct es_http_waker {
    h2o_multithread_message_t super; /* first: the receiver gets this back */
    http_thread_t *th;
    void (*fn)(void *arg);
    void *arg;
    bool queued, dead; /* under s->complete_lock */
};

es_http_waker_t *es_http_waker_new(es_http_req_t *r, void (*fn)(void *arg), void *arg)
{
    es_http_waker_t *w = xcalloc(1, sizeof *w);
    w->th = r->th;
    w->fn = fn;
    w->arg = arg;
    return w;
}

void es_http_waker_wake(es_http_waker_t *w)
{
    es_http_server_t *s = w->th->s;
    pthread_mutex_lock(&s->complete_lock);
    if (!w->queued && !w->dead && !w->th->closed) {
        w->queued = true;
        h2o_multithread_send_message(&w->th->wakes, &w->super);
    }
    pthread_mutex_unlock(&s->complete_lock);
}

void es_http_waker_free(es_http_waker_t *w)
{
    if (!w)
        return;
    es_http_server_t *s = w->th->s;
    pthread_mutex_lock(&s->complete_lock);
    bool queued = w->queued;
    w->dead = true; /* a queued one is freed by its receiver */
    pthread_mutex_unlock(&s->complete_lock);
    if (!queued)
        free(w);
}

/* Takes one waker message off its list: the waker to call, or NULL (it was freed meanwhile). */
static es_http_waker_t *waker_take(es_http_server_t *s, h2o_multithread_message_t *msg)
{
    es_http_waker_t *w = (es_http_waker_t *)msg;
    h2o_linklist_unlink(&msg->link);
    pthread_mutex_lock(&s->complete_lock);
    w->queued = false;
    bool dead = w->dead;
    pthread_mutex_unlock(&s->complete_lock);
    if (dead) {
        free(w);
        return NULL;
    }
    return w;
}

static void on_wakes(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    http_thread_t *th = container_of(receiver, http_thread_t, wakes);
    while (!h2o_linklist_is_empty(messages)) {
        es_http_waker_t *w =
            waker_take(th->s, container_of(messages->next, h2o_multithread_message_t, link));
        if (w)
            w->fn(w->arg);
    }
}

/* ---- the handler ---- */

/* Runs when the request's pool is cleared: the request is gone, answered or not. */
static void holds_gone(es_http_req_t *r);

static void req_dispose(void *arg)
{
    es_http_req_t *r = arg;
    if (r->pending)
        r->pending->r = NULL; /* its completion is dropped; on_completions frees it */
    stream_dispose(r);
    while (!h2o_linklist_is_empty(&r->afters)) {
        after_t *a = container_of(r->afters.next, after_t, link);
        h2o_linklist_unlink(&a->link);
        h2o_timeout_unlink(&a->entry);
        if (a->free_arg)
            a->free_arg(a->arg);
        free(a);
    }
    holds_gone(r);
    r->th->inflight--;
}

/* A handler (or timer callback) that returned without answering, deferring or waiting is a bug
 * that would hang the client: answer 500. */
static void check_answered(es_http_req_t *r)
{
    if (!r->answered && !r->pending && h2o_linklist_is_empty(&r->afters) &&
        h2o_linklist_is_empty(&r->holds)) {
        es_error("http: handler for '%s %s' did not answer", r->method, r->path);
        es_http_reply_problem(r, 500, NULL, NULL, "the handler did not answer");
    }
}

/* Whether every name and value of the query string percent-decodes (no NUL, no bad escape). */
static bool query_decodes(h2o_req_t *req)
{
    if (req->query_at == SIZE_MAX)
        return true;
    const char *q = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        if (!amp)
            amp = end;
        const char *eq = memchr(q, '=', (size_t)(amp - q));
        char *key = url_decode(NULL, q, (size_t)((eq ? eq : amp) - q), true);
        char *value = eq ? url_decode(NULL, eq + 1, (size_t)(amp - eq - 1), true) : NULL;
        bool ok = key && (!eq || value);
        free(key);
        free(value);
        if (!ok)
            return false;
        q = amp + 1;
    }
    return true;
}

static void reply_not_allowed(es_http_req_t *r, es_http_server_t *s, char **segs, size_t n_segs)
{
    char allow[256] = "";
    size_t used = 0;
    for (size_t i = 0; i < s->n_routes; i++) {
        const compiled_route_t *cr = &s->routes[i];
        if (!route_matches(cr, segs, n_segs))
            continue;
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = route_matches(&s->routes[j], segs, n_segs) &&
                   strcmp(s->routes[j].def->method, cr->def->method) == 0;
        if (seen)
            continue;
        int n =
            snprintf(allow + used, sizeof allow - used, "%s%s", used ? ", " : "", cr->def->method);
        if (n < 0 || (size_t)n >= sizeof allow - used)
            break;
        used += (size_t)n;
    }
    es_http_add_header(r, "Allow", allow);
    es_http_reply_problem(r, 405, NULL, NULL, "method '%s' is not allowed on '%s' (allowed: %s)",
                          r->method, r->path, allow);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    es_http_server_t *s = ((struct es_http_handler *)self)->s;
    http_thread_t *th = container_of(req->conn->ctx, http_thread_t, ctx);
    es_http_req_t *r = h2o_mem_alloc_shared(&req->pool, sizeof *r, req_dispose);
    memset(r, 0, sizeof *r);
    clock_gettime(CLOCK_MONOTONIC, &r->start);
    r->req = req;
    r->th = th;
    h2o_linklist_init_anchor(&r->afters);
    h2o_linklist_init_anchor(&r->holds);
    th->inflight++;
    r->method = h2o_strdup(&req->pool, req->method.base, req->method.len).base;
    size_t path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    r->path = h2o_strdup(&req->pool, req->path.base, path_len).base;
    r->body_len = req->entity.base ? req->entity.len : 0;
    r->body = h2o_mem_alloc_pool(&req->pool, r->body_len + 1);
    if (r->body_len)
        memcpy(r->body, req->entity.base, r->body_len);
    r->body[r->body_len] = '\0';

    char *segs[MAX_SEGMENTS];
    size_t n_segs;
    int rc = split_path(&req->pool, req->path.base, path_len, segs, &n_segs);
    if (rc != 0) {
        es_http_reply_problem(r, rc == -2 ? 404 : 400, NULL, NULL, "path '%s' is malformed",
                              r->path);
        return 0;
    }
    if (!query_decodes(req)) { /* else a parameter that does not decode would look absent */
        es_http_reply_problem(r, 400, NULL, NULL,
                              "the query string of '%s' is not percent-encoded text without NUL",
                              r->path);
        return 0;
    }
    bool path_known = false;
    for (size_t i = 0; i < s->n_routes && !r->route; i++) {
        if (!route_matches(&s->routes[i], segs, n_segs))
            continue;
        path_known = true;
        if (method_is(&s->routes[i], req->method.base, req->method.len))
            r->route = &s->routes[i];
    }
    if (!r->route) {
        if (path_known)
            reply_not_allowed(r, s, segs, n_segs);
        else
            es_http_reply_problem(r, 404, NULL, NULL, "no route for '%s %s'", r->method, r->path);
        return 0;
    }
    for (size_t i = 0; i < n_segs; i++) {
        if (r->route->segs[i].is_param) {
            r->param_names[r->n_params] = r->route->segs[i].text;
            r->param_values[r->n_params++] = segs[i];
        }
    }
    r->route->def->fn(r);
    check_answered(r);
    return 0;
}

/* ---- the filter for h2o's own answers ---- */

static void replace_body_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt,
                              h2o_send_state_t state)
{
    (void)bufs;
    (void)bufcnt;
    struct replace_body_ostream *o = (struct replace_body_ostream *)self;
    if (!o->sent) {
        o->sent = true;
        h2o_ostream_send_next(self, req, &o->body, 1, state);
    } else {
        h2o_ostream_send_next(self, req, NULL, 0, state);
    }
}

/* Finds the route (if any) for metrics, from a request that never reached on_req. */
static const compiled_route_t *route_of(es_http_server_t *s, h2o_req_t *req)
{
    char *segs[MAX_SEGMENTS];
    size_t n_segs;
    size_t path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    if (!req->path.base || split_path(&req->pool, req->path.base, path_len, segs, &n_segs) != 0)
        return NULL;
    for (size_t i = 0; i < s->n_routes; i++)
        if (route_matches(&s->routes[i], segs, n_segs) &&
            method_is(&s->routes[i], req->method.base, req->method.len))
            return &s->routes[i];
    return NULL;
}

static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    es_http_server_t *s = ((struct es_http_filter *)self)->s;
    if (in_own_reply || req->res.status < 400) {
        h2o_setup_next_ostream(req, slot);
        return;
    }
    int status = req->res.status;
    char detail[128];
    if (status == 413)
        snprintf(detail, sizeof detail, "the request body is larger than %zu bytes",
                 s->cfg.max_body);
    else
        snprintf(detail, sizeof detail, "%s", req->res.reason ? req->res.reason : "error");
    json_t *problem = es_http_problem_new(status, NULL, NULL, detail, NULL);
    char *text = json_dumps(problem, JSON_COMPACT);
    json_decref(problem);
    struct replace_body_ostream *o =
        (struct replace_body_ostream *)h2o_add_ostream(req, sizeof *o, slot);
    o->super.do_send = replace_body_send;
    o->sent = false;
    o->body = h2o_strdup(&req->pool, text, SIZE_MAX);
    free(text);
    ssize_t i;
    while ((i = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1)) != -1)
        h2o_delete_header(&req->res.headers, i);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT(PROBLEM_JSON));
    req->res.content_length = o->body.len;
    struct timeval now, *begin = &req->timestamps.request_begin_at;
    gettimeofday(&now, NULL);
    double took =
        (double)(now.tv_sec - begin->tv_sec) + (double)(now.tv_usec - begin->tv_usec) / 1e6;
    record_answer(s, route_of(s, req), req->method.base, req->method.len, status,
                  begin->tv_sec ? took : 0);
    h2o_setup_next_ostream(req, &o->super.next);
}

/* ---- threads and the server ---- */

static void on_accept(h2o_socket_t *listener, const char *err)
{
    http_thread_t *th = listener->data;
    if (err)
        return;
    h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
    if (sock)
        h2o_accept(&th->accept_ctx, sock);
}

static int listen_on(const char *host, int port, int *fd_out, es_err_t *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = getaddrinfo(host && host[0] ? host : NULL, portstr, &hints, &ai);
    if (rc != 0)
        return es_set(err, ES_EINVAL, "cannot resolve '%s': %s", host, gai_strerror(rc));
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        if (e == EADDRINUSE)
            return es_set(err, ES_EIO, "port %d is in use", port);
        return es_set(err, ES_EIO, "cannot listen on '%s:%d': %s", host, port, strerror(e));
    }
    freeaddrinfo(ai);
    *fd_out = fd;
    return 0;
}

es_http_server_t *es_http_server_new(const es_http_config_t *cfg, const es_http_route_t *routes,
                                     size_t n_routes, es_err_t *err)
{
    if (cfg->threads < 1 || cfg->port < 0 || cfg->port > 65535) {
        es_set(err, ES_EINVAL, "http config: threads %d or port %d is out of range", cfg->threads,
               cfg->port);
        return NULL;
    }
    signal(SIGPIPE, SIG_IGN);
    es_http_server_t *s = xcalloc(1, sizeof *s);
    s->trusted = cfg->trusted;
    pthread_mutex_init(&s->complete_lock, NULL);
    s->cfg = *cfg;
    s->host = xstrdup(cfg->host ? cfg->host : "127.0.0.1");
    s->cfg.host = s->host;
    s->n_routes = n_routes;
    s->routes = xcalloc(n_routes ? n_routes : 1, sizeof *s->routes);
    s->unmatched_duration =
        es_histogram(DURATION_SECONDS, DURATION_HELP, "route=\"" UNMATCHED_ROUTE "\"");
    for (size_t i = 0; i < n_routes; i++) {
        compiled_route_t *cr = &s->routes[i];
        if (compile_route(cr, &routes[i], err) != 0)
            goto fail;
        char *esc = label_escape(routes[i].pattern);
        char *labels = xasprintf("route=\"%s\"", esc);
        cr->duration = es_histogram(DURATION_SECONDS, DURATION_HELP, labels);
        free(labels);
        free(esc);
        cr->counters = xcalloc(MAX_STATUS, sizeof *cr->counters);
    }
    s->threads = xcalloc((size_t)cfg->threads, sizeof *s->threads);
    for (int i = 0; i < cfg->threads; i++)
        s->threads[i].fd = -1;
    for (int i = 0; i < cfg->threads; i++)
        if (listen_on(s->host, cfg->port, &s->threads[i].fd, err) != 0)
            goto fail;

    h2o_config_init(&s->config);
    s->config.server_name = h2o_iovec_init(H2O_STRLIT("eventshop"));
    s->config.max_request_entity_size = cfg->max_body;
    h2o_hostconf_t *host =
        h2o_config_register_host(&s->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    struct es_http_handler *h = (void *)h2o_create_handler(path, sizeof *h);
    h->super.on_req = on_req;
    h->s = s;
    /* h2o binds requests it rejects early (e.g. 413) to the host's fallback path */
    h2o_pathconf_t *paths[] = {path, &host->fallback_path};
    for (size_t i = 0; i < 2; i++) {
        struct es_http_filter *f = (void *)h2o_create_filter(paths[i], sizeof *f);
        f->super.on_setup_ostream = on_setup_ostream;
        f->s = s;
    }
    return s;
fail:
    es_http_server_free(s);
    return NULL;
}

static bool conns_closed(http_thread_t *th)
{
    return h2o_linklist_is_empty(&th->ctx.http1._conns) &&
           h2o_linklist_is_empty(&th->ctx.http2._conns);
}

/* Makes the thread's own h2o objects (see the top of the file: on the thread that uses them). */
static void thread_setup(http_thread_t *th)
{
    es_http_server_t *s = th->s;
    th->loop = h2o_evloop_create();
    h2o_context_init(&th->ctx, th->loop, &s->config);
    h2o_multithread_register_receiver(th->ctx.queue, &th->completions, on_completions);
    h2o_multithread_register_receiver(th->ctx.queue, &th->wakes, on_wakes);
    h2o_linklist_init_anchor(&th->streams);
    th->accept_ctx.ctx = &th->ctx;
    th->accept_ctx.hosts = s->config.hosts;
    th->listener = h2o_evloop_socket_create(th->loop, th->fd, H2O_SOCKET_FLAG_DONT_READ);
    th->listener->data = th;
    h2o_socket_read_start(th->listener, on_accept);
    /* the listener's (empty) input buffer is this thread's prototype: made here, not elsewhere */
    assert(th->listener->input == &h2o_socket_buffer_prototype._initial_buf);
}

/* Disposes of the thread's h2o objects, on that thread; completions sent later are dropped. */
static void thread_teardown(http_thread_t *th)
{
    es_http_server_t *s = th->s;
    pthread_mutex_lock(&s->complete_lock);
    th->closed = true;
    pthread_mutex_unlock(&s->complete_lock);
    /* completions that arrived after the loop stopped */
    h2o_linklist_t *msgs = &th->completions._messages;
    while (!h2o_linklist_is_empty(msgs)) {
        h2o_multithread_message_t *m = container_of(msgs->next, h2o_multithread_message_t, link);
        h2o_linklist_unlink(&m->link);
        pending_free((es_http_pending_t *)m);
    }
    h2o_multithread_unregister_receiver(th->ctx.queue, &th->completions);
    msgs = &th->wakes._messages;
    while (!h2o_linklist_is_empty(msgs))
        waker_take(s, container_of(msgs->next, h2o_multithread_message_t, link));
    h2o_multithread_unregister_receiver(th->ctx.queue, &th->wakes);
    if (!conns_closed(th)) {
        /* h2o cannot dispose a context with live connections: leave it to the exit */
        es_warn("http: connections still open at shutdown");
        return;
    }
    /* h2o 2.2.5 leaks the context's queue struct (88 bytes) here; freeing it ourselves would
     * double-free on a fixed h2o, so the leak is left to the suppression file */
    h2o_context_dispose(&th->ctx);
    h2o_evloop_run(th->loop, 0);
    for (size_t j = 0; j < th->n_timeouts; j++) {
        h2o_timeout_dispose(th->loop, &th->timeouts[j]->timeout);
        free(th->timeouts[j]);
    }
    free(th->timeouts);
    th->timeouts = NULL;
    th->n_timeouts = 0;
    h2o_evloop_destroy(th->loop);
    th->loop = NULL;
}

static void *thread_main(void *arg)
{
    http_thread_t *th = arg;
    es_http_server_t *s = th->s;
    thread_setup(th);
    if (s->cfg.thread_init)
        th->tls = s->cfg.thread_init(s->cfg.app);
    /* the loop wakes every LOOP_TICK_MS even when idle: its heartbeat is the role's liveness
     * (stalled only after 90 s), and a stop is seen within it; anything due sooner has its own
     * h2o timer or wakes the loop (es_http_waker) */
    while (!atomic_load(&s->stopping)) {
        es_metrics_heartbeat("http");
        h2o_evloop_run(th->loop, LOOP_TICK_MS);
    }
    es_metrics_heartbeat_end();

    /* Graceful stop: accept nothing new, let what is in flight finish within a grace period. */
    h2o_socket_read_stop(th->listener);
    h2o_socket_close(th->listener);
    th->listener = NULL;
    th->fd = -1;
    h2o_context_request_shutdown(&th->ctx);
    /* open streams end now: their clients reconnect to another replica */
    for (h2o_linklist_t *l = th->streams.next, *next; l != &th->streams; l = next) {
        next = l->next;
        es_http_stream_end(container_of(l, es_http_stream_t, link));
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (th->inflight > 0 && seconds_since(&t0) * 1000 < STOP_GRACE_MS)
        h2o_evloop_run(th->loop, 10);
    if (th->inflight > 0)
        es_warn("http: stopping with %zu requests unanswered", th->inflight);
    /* HTTP/1.1 keep-alive connections idle until their request timeout, which h2o 2.2's
     * shutdown request does not shorten: make that timeout expire now, so they close cleanly. */
    th->ctx.http1.req_timeout.timeout = 0;
    th->ctx.http2.idle_timeout.timeout = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!conns_closed(th) && seconds_since(&t0) < 1)
        h2o_evloop_run(th->loop, 10);
    for (int i = 0; i < 3; i++)
        h2o_evloop_run(th->loop, 0);
    /* the HTTP/2 GOAWAY resend timer that the shutdown request armed; no connection needs it now */
    if (conns_closed(th) && h2o_timeout_is_linked(&th->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&th->ctx.http2._graceful_shutdown_timeout);
    if (s->cfg.thread_free)
        s->cfg.thread_free(th->tls);
    th->tls = NULL;
    thread_teardown(th);
    return NULL;
}

int es_http_server_run(es_http_server_t *s)
{
    int n = s->cfg.threads;
    for (int i = 0; i < n; i++) {
        s->threads[i].s = s;
        s->threads[i].started = true;
    }
    for (int i = 1; i < n; i++) {
        int rc = pthread_create(&s->threads[i].tid, NULL, thread_main, &s->threads[i]);
        if (rc != 0) {
            es_error("http: cannot start loop thread: %s", strerror(rc));
            atomic_store(&s->stopping, 1);
            for (int j = i; j < s->cfg.threads; j++)
                s->threads[j].started = false;
            n = i;
            break;
        }
    }
    thread_main(&s->threads[0]);
    for (int i = 1; i < n; i++)
        pthread_join(s->threads[i].tid, NULL);
    return 0;
}

void es_http_server_stop(es_http_server_t *s)
{
    if (s)
        atomic_store(&s->stopping, 1);
}

void es_http_server_free(es_http_server_t *s)
{
    if (!s)
        return;
    /* a thread that ran disposed of its own h2o objects; one that never ran has only its fd */
    for (int i = 0; s->threads && i < s->cfg.threads; i++)
        if (!s->threads[i].started && s->threads[i].fd >= 0)
            close(s->threads[i].fd);
    free(s->threads);
    if (s->config.hosts)
        h2o_config_dispose(&s->config);
    for (size_t i = 0; i < s->n_routes; i++) {
        for (size_t j = 0; j < s->routes[i].n_segs; j++)
            free(s->routes[i].segs[j].text);
        free(s->routes[i].counters);
    }
    free(s->routes);
    free(s->host);
    pthread_mutex_destroy(&s->complete_lock);
    free(s);
}
