/* es_metrics — see es_metrics.h. Values are updated with C11 atomics (doubles kept as their bit
 * pattern and changed by compare-and-swap); the registry's lists change only under one mutex,
 * which rendering also takes so that it never sees a half-linked metric. */
#include "es_metrics.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_strbuf.h"
#include "es_time.h"
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

typedef enum { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM } metric_type_t;

static const char *const type_names[] = {"counter", "gauge", "histogram"};

static const double bucket_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                       0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define N_BUCKETS (sizeof bucket_bounds / sizeof bucket_bounds[0])

struct es_metric {
    struct es_metric *next; /* within its family, in registration order */
    char *labels;
    _Atomic uint64_t value; /* counter, gauge: the double's bits; histogram: the sum's bits */
    _Atomic uint64_t count; /* histogram */
    _Atomic uint64_t buckets[N_BUCKETS]; /* histogram, not cumulative */
    bool retired;                        /* not rendered; under registry_lock */
};

typedef struct family {
    struct family *next;
    char *name;
    char *help;
    metric_type_t type;
    es_metric_t *first, **tail;
} family_t;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static family_t *families, **families_tail = &families;
static atomic_bool ready;

static double bits_to_double(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static uint64_t double_to_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

static void atomic_add_double(_Atomic uint64_t *slot, double v)
{
    uint64_t old = atomic_load_explicit(slot, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(slot, &old,
                                                  double_to_bits(bits_to_double(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

static es_metric_t *metric_get(const char *name, const char *help, const char *labels,
                               metric_type_t type)
{
    if (!labels)
        labels = "";
    es_metric_t *m = NULL;
    pthread_mutex_lock(&registry_lock);
    family_t *f;
    for (f = families; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            break;
    if (f && f->type != type) {
        /* A programming error; hand back an unregistered metric so that updates stay harmless. */
        pthread_mutex_unlock(&registry_lock);
        es_error("metric '%s' registered as %s and as %s", name, type_names[f->type],
                 type_names[type]);
        m = xcalloc(1, sizeof *m);
        m->labels = xstrdup(labels);
        return m;
    }
    if (!f) {
        f = xcalloc(1, sizeof *f);
        f->name = xstrdup(name);
        f->help = xstrdup(help ? help : "");
        f->type = type;
        f->tail = &f->first;
        *families_tail = f;
        families_tail = &f->next;
    }
    for (m = f->first; m; m = m->next)
        if (strcmp(m->labels, labels) == 0) {
            m->retired = false;
            goto out;
        }
    m = xcalloc(1, sizeof *m);
    m->labels = xstrdup(labels);
    *f->tail = m;
    f->tail = &m->next;
out:
    pthread_mutex_unlock(&registry_lock);
    return m;
}

void es_metric_retire(es_metric_t *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&registry_lock);
    m->retired = true;
    pthread_mutex_unlock(&registry_lock);
}

es_metric_t *es_counter(const char *name, const char *help, const char *labels)
{
    return metric_get(name, help, labels, METRIC_COUNTER);
}

es_metric_t *es_gauge(const char *name, const char *help, const char *labels)
{
    return metric_get(name, help, labels, METRIC_GAUGE);
}

es_metric_t *es_histogram(const char *name, const char *help, const char *labels)
{
    return metric_get(name, help, labels, METRIC_HISTOGRAM);
}

void es_metric_add(es_metric_t *m, double v)
{
    if (m)
        atomic_add_double(&m->value, v);
}

void es_metric_set(es_metric_t *m, double v)
{
    if (m)
        atomic_store_explicit(&m->value, double_to_bits(v), memory_order_relaxed);
}

void es_metric_observe(es_metric_t *m, double seconds)
{
    if (!m)
        return;
    for (size_t i = 0; i < N_BUCKETS; i++) {
        if (seconds <= bucket_bounds[i]) {
            atomic_fetch_add_explicit(&m->buckets[i], 1, memory_order_relaxed);
            break;
        }
    }
    atomic_add_double(&m->value, seconds);
    atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed);
}

/* The shortest of %.15g / %.17g that reads back as v; Prometheus spells infinities its own way. */
static void format_value(char *buf, size_t size, double v)
{
    if (isnan(v)) {
        snprintf(buf, size, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, size, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    snprintf(buf, size, "%.15g", v);
    if (strtod(buf, NULL) != v)
        snprintf(buf, size, "%.17g", v);
}

/* HELP text escapes backslash and newline. */
static void out_help(struct es_strbuf *o, const char *help)
{
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            es_strbuf_adds(o, "\\\\");
        else if (*p == '\n')
            es_strbuf_adds(o, "\\n");
        else
            es_strbuf_addc(o, *p);
    }
}

static void render_histogram(struct es_strbuf *o, const family_t *f, const es_metric_t *m)
{
    const char *sep = m->labels[0] ? "," : "";
    char num[64];
    uint64_t cumulative = 0;
    for (size_t i = 0; i < N_BUCKETS; i++) {
        cumulative += atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
        format_value(num, sizeof num, bucket_bounds[i]);
        es_strbuf_addf(o, "%s_bucket{%s%sle=\"%s\"} %llu\n", f->name, m->labels, sep, num,
                       (unsigned long long)cumulative);
    }
    /* The count is read last so that +Inf is never below a finite bucket. */
    uint64_t count = atomic_load_explicit(&m->count, memory_order_relaxed);
    if (count < cumulative)
        count = cumulative;
    es_strbuf_addf(o, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", f->name, m->labels, sep,
                   (unsigned long long)count);
    format_value(num, sizeof num, bits_to_double(atomic_load(&m->value)));
    if (m->labels[0]) {
        es_strbuf_addf(o, "%s_sum{%s} %s\n", f->name, m->labels, num);
        es_strbuf_addf(o, "%s_count{%s} %llu\n", f->name, m->labels, (unsigned long long)count);
    } else {
        es_strbuf_addf(o, "%s_sum %s\n", f->name, num);
        es_strbuf_addf(o, "%s_count %llu\n", f->name, (unsigned long long)count);
    }
}

char *es_metrics_render(void)
{
    struct es_strbuf o;
    es_strbuf_init(&o, 4096);
    char num[64];
    pthread_mutex_lock(&registry_lock);
    for (const family_t *f = families; f; f = f->next) {
        es_strbuf_addf(&o, "# HELP %s ", f->name);
        out_help(&o, f->help);
        es_strbuf_addf(&o, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
        for (const es_metric_t *m = f->first; m; m = m->next) {
            if (m->retired)
                continue;
            if (f->type == METRIC_HISTOGRAM) {
                render_histogram(&o, f, m);
                continue;
            }
            format_value(num, sizeof num, bits_to_double(atomic_load(&m->value)));
            if (m->labels[0])
                es_strbuf_addf(&o, "%s{%s} %s\n", f->name, m->labels, num);
            else
                es_strbuf_addf(&o, "%s %s\n", f->name, num);
        }
    }
    pthread_mutex_unlock(&registry_lock);
    return es_strbuf_take(&o, NULL);
}

/* ---- probes ---- */

#define MAX_DEPS        8
#define MAX_LOOPS       64
#define STALL_DEFAULT_S 90

struct dependency {
    const char *name; /* set once, under registry_lock; NULL: free slot */
    atomic_bool up;
    es_metric_t *gauge;
};

/* One loop thread's last turn; a slot is claimed under registry_lock and freed by its thread. */
struct heartbeat {
    const char *_Atomic loop; /* NULL: free slot */
    _Atomic long long last_ms;
};

static struct dependency deps[MAX_DEPS];
static struct heartbeat beats[MAX_LOOPS];
static _Thread_local struct heartbeat *my_beat;
static _Atomic long stall_ms = -1; /* -1: not read from the environment yet */

void es_metrics_set_ready(bool r)
{
    atomic_store(&ready, r);
}

bool es_metrics_is_ready(void)
{
    if (!atomic_load(&ready))
        return false;
    for (size_t i = 0; i < MAX_DEPS; i++) {
        pthread_mutex_lock(&registry_lock);
        bool declared = deps[i].name != NULL;
        pthread_mutex_unlock(&registry_lock);
        if (!declared)
            break;
        if (!atomic_load(&deps[i].up))
            return false;
    }
    return true;
}

void es_metrics_set_dependency(const char *name, bool up)
{
    struct dependency *d = NULL;
    bool fresh = false;
    pthread_mutex_lock(&registry_lock);
    for (size_t i = 0; i < MAX_DEPS && !d; i++) {
        if (!deps[i].name) {
            deps[i].name = name;
            atomic_store(&deps[i].up, up);
            d = &deps[i];
            fresh = true;
        } else if (strcmp(deps[i].name, name) == 0) {
            d = &deps[i];
        }
    }
    pthread_mutex_unlock(&registry_lock);
    if (!d) {
        es_error("dependency '%s': too many dependencies declared", name);
        return;
    }
    if (fresh) {
        char labels[96];
        snprintf(labels, sizeof labels, "dependency=\"%s\"", name);
        d->gauge =
            es_gauge("eventshop_dependency_up",
                     "Whether a dependency the role needs is reachable (1) or not (0)", labels);
        if (!up)
            es_warn("dependency '%s' is unavailable: not ready", name);
    } else if (atomic_exchange(&d->up, up) != up) {
        if (up)
            es_info("dependency '%s' is available again", name);
        else
            es_warn("dependency '%s' is unavailable: not ready until it returns", name);
    }
    if (d->gauge)
        es_metric_set(d->gauge, up ? 1 : 0);
}

void es_metrics_heartbeat(const char *loop)
{
    struct heartbeat *b = my_beat;
    if (!b) {
        pthread_mutex_lock(&registry_lock);
        for (size_t i = 0; i < MAX_LOOPS && !b; i++) {
            if (!atomic_load(&beats[i].loop)) {
                b = &beats[i];
                atomic_store(&b->last_ms, es_mono_ms());
                atomic_store(&b->loop, loop);
            }
        }
        pthread_mutex_unlock(&registry_lock);
        if (!b)
            return; /* more loops than slots: this one goes unwatched */
        my_beat = b;
    }
    atomic_store_explicit(&b->last_ms, es_mono_ms(), memory_order_relaxed);
}

void es_metrics_heartbeat_end(void)
{
    if (my_beat) {
        atomic_store(&my_beat->loop, NULL);
        my_beat = NULL;
    }
}

void es_metrics_set_stall_ms(long ms)
{
    atomic_store(&stall_ms, ms);
}

static long stall_limit_ms(void)
{
    long ms = atomic_load(&stall_ms);
    if (ms < 0) {
        const char *v = getenv("EVENTSHOP_HEALTH_STALL_S");
        char *end = NULL;
        long s = v && *v ? strtol(v, &end, 10) : STALL_DEFAULT_S;
        if (v && *v && (*end || s <= 0))
            s = STALL_DEFAULT_S;
        ms = s * 1000;
        atomic_store(&stall_ms, ms);
    }
    return ms;
}

bool es_metrics_is_live(char *why, size_t cap)
{
    long long now = es_mono_ms(), limit = stall_limit_ms();
    for (size_t i = 0; i < MAX_LOOPS; i++) {
        const char *loop = atomic_load(&beats[i].loop);
        long long silent = now - atomic_load(&beats[i].last_ms);
        if (loop && silent > limit) {
            if (why)
                snprintf(why, cap, "loop '%s' has not turned for %lld ms", loop, silent);
            return false;
        }
    }
    return true;
}

int es_metrics_probe(bool readiness, char **body)
{
    if (!readiness) {
        char why[160];
        bool live = es_metrics_is_live(why, sizeof why);
        *body = live ? xstrdup("{\"status\":\"ok\"}")
                     : xasprintf("{\"status\":\"stalled\",\"detail\":\"%s\"}", why);
        return live ? 200 : 503;
    }
    bool ok = es_metrics_is_ready();
    size_t cap = 64 + MAX_DEPS * 48, n = 0;
    char *s = xmalloc(cap);
    n += (size_t)snprintf(s + n, cap - n, "{\"status\":\"%s\"", ok ? "ready" : "not ready");
    pthread_mutex_lock(&registry_lock);
    for (size_t i = 0; i < MAX_DEPS && deps[i].name; i++)
        n += (size_t)snprintf(s + n, cap - n, ",\"%.32s\":%s", deps[i].name,
                              atomic_load(&deps[i].up) ? "true" : "false");
    pthread_mutex_unlock(&registry_lock);
    snprintf(s + n, cap - n, "}");
    *body = s;
    return ok ? 200 : 503;
}

/* ---- the tiny blocking server ---- */

static void send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        p += n;
        len -= (size_t)n;
    }
}

static void send_response(int fd, int status, const char *reason, const char *ctype,
                          const char *body, bool head_only)
{
    size_t len = strlen(body);
    char *head = xasprintf("HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                           "Connection: close\r\n\r\n",
                           status, reason, ctype, len);
    send_all(fd, head, strlen(head));
    if (!head_only)
        send_all(fd, body, len);
    free(head);
}

/* Reads the request head (the body, if any, is ignored) and answers it. One request per
 * connection: scrapes and probes are rare, and a client that stalls is cut off by the timeout. */
static void serve_one(int fd)
{
    char buf[4096];
    size_t len = 0;
    while (len < sizeof buf - 1) {
        ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        if (strstr(buf, "\r\n\r\n") || strstr(buf, "\n\n"))
            break;
    }
    buf[len] = '\0';
    char method[16], target[256];
    if (sscanf(buf, "%15s %255s", method, target) != 2) {
        send_response(fd, 400, "Bad Request", "text/plain", "bad request\n", false);
        return;
    }
    char *q = strchr(target, '?');
    if (q)
        *q = '\0';
    bool head = strcmp(method, "HEAD") == 0;
    if (!head && strcmp(method, "GET") != 0) {
        send_response(fd, 405, "Method Not Allowed", "text/plain", "method not allowed\n", false);
        return;
    }
    if (strcmp(target, "/metrics") == 0) {
        char *text = es_metrics_render();
        send_response(fd, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", text, head);
        free(text);
    } else if (strcmp(target, "/healthz") == 0 || strcmp(target, "/readyz") == 0) {
        char *body = NULL;
        int status = es_metrics_probe(strcmp(target, "/readyz") == 0, &body);
        send_response(fd, status, status == 200 ? "OK" : "Service Unavailable", "application/json",
                      body, head);
        free(body);
    } else {
        send_response(fd, 404, "Not Found", "text/plain", "not found\n", head);
    }
}

static void *serve_thread(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
                continue;
            es_error("metrics server: accept failed: %s", strerror(errno));
            usleep(100 * 1000);
            continue;
        }
        struct timeval tv = {.tv_sec = 2};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        serve_one(fd);
        close(fd);
    }
    return NULL;
}

int es_metrics_serve(const char *addr, es_err_t *err)
{
    int ret = -1, lfd = -1;
    struct addrinfo *ai = NULL;
    const char *colon = addr ? strrchr(addr, ':') : NULL;
    if (!colon || !colon[1])
        return es_set(err, ES_EINVAL, "metrics address '%s' is not host:port", addr ? addr : "");
    char *host = xstrndup(addr, (size_t)(colon - addr));
    if (host[0] == '[' && host[strlen(host) - 1] == ']') { /* "[::1]:9100" */
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    int rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai);
    if (rc != 0) {
        es_set(err, ES_EINVAL, "metrics address '%s': %s", addr, gai_strerror(rc));
        goto out;
    }
    lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(lfd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(lfd, 16) != 0) {
        es_set(err, ES_EIO, "metrics address '%s': %s", addr, strerror(errno));
        goto out;
    }
    pthread_t tid;
    if ((rc = pthread_create(&tid, NULL, serve_thread, (void *)(intptr_t)lfd)) != 0) {
        es_set(err, ES_EIO, "metrics server thread: %s", strerror(rc));
        goto out;
    }
    pthread_detach(tid);
    lfd = -1; /* the thread's now, for the life of the process */
    ret = 0;
out:
    if (lfd >= 0)
        close(lfd);
    if (ai)
        freeaddrinfo(ai);
    free(host);
    return ret;
}
