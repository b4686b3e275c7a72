/* es_metrics: exact exposition text, and the tiny probe server. Each criterion test runs in its
 * own process, so each starts with an empty registry. */
#include "es_metrics.h"
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

Test(metrics, renders_counter_and_gauge_exactly)
{
    es_metric_t *a = es_counter("shop_orders_total", "Orders placed", "status=\"ok\"");
    es_metric_t *b = es_counter("shop_orders_total", "Orders placed", "status=\"bad\"");
    cr_assert_eq(es_counter("shop_orders_total", "Orders placed", "status=\"ok\""), a);
    es_metric_add(a, 1);
    es_metric_add(a, 2);
    es_metric_add(b, 0.5);
    es_metric_t *g = es_gauge("shop_lag", "Lag\nin messages", "");
    es_metric_set(g, 7);
    es_metric_add(g, -2);
    char *text = es_metrics_render();
    cr_assert_str_eq(text, "# HELP shop_orders_total Orders placed\n"
                           "# TYPE shop_orders_total counter\n"
                           "shop_orders_total{status=\"ok\"} 3\n"
                           "shop_orders_total{status=\"bad\"} 0.5\n"
                           "# HELP shop_lag Lag\\nin messages\n"
                           "# TYPE shop_lag gauge\n"
                           "shop_lag 5\n");
    free(text);
}

Test(metrics, a_retired_metric_leaves_the_text_until_looked_up_again)
{
    es_metric_t *a = es_gauge("shop_lag", "Lag", "part=\"0\"");
    es_metric_t *b = es_gauge("shop_lag", "Lag", "part=\"1\"");
    es_metric_set(a, 1);
    es_metric_set(b, 2);
    es_metric_retire(a);
    es_metric_set(a, 3); /* still a valid object: updates are harmless */
    char *text = es_metrics_render();
    cr_assert_str_eq(text, "# HELP shop_lag Lag\n# TYPE shop_lag gauge\nshop_lag{part=\"1\"} 2\n");
    free(text);
    cr_assert_eq(es_gauge("shop_lag", "Lag", "part=\"0\""), a);
    text = es_metrics_render();
    cr_assert_str_eq(text, "# HELP shop_lag Lag\n# TYPE shop_lag gauge\nshop_lag{part=\"0\"} 3\n"
                           "shop_lag{part=\"1\"} 2\n");
    free(text);
}

Test(metrics, renders_histogram_exactly)
{
    es_metric_t *h = es_histogram("shop_latency_seconds", "Latency", "route=\"/x\"");
    es_metric_observe(h, 0.0004);
    es_metric_observe(h, 0.003);
    es_metric_observe(h, 0.75);
    es_metric_observe(h, 42);
    char *text = es_metrics_render();
    cr_assert_str_eq(text, "# HELP shop_latency_seconds Latency\n"
                           "# TYPE shop_latency_seconds histogram\n"
                           "shop_latency_seconds_bucket{route=\"/x\",le=\"0.0005\"} 1\n"
                           "shop_latency_seconds_bucket{route=\"/x\",le=\"0.001\"} 1\n"
                           "shop_latency_seconds_bucket{route=\"/x\",le=\"0.0025\"} 1\n"
                           "shop_latency_seconds_bucket{route=\"/x\",le=\"0.005\"} 2\n"
                           "shop_latency_seconds_bucket{route=\"/x\",le=\"0.01\"} 2\n"
                           "shop_latency_seconds_bucket{route=\"/x\",le=\"0.025\"} 2\n"
                           "shop_latency_seconds_bucket{route=\"/x\",le=\"0.05\"} 2\n"
                           "shop_latency_seconds_bucket{route=\"/x\",le=\"0.1\"} 2\n"
                           "shop_latency_seconds_bucket{route=\"/x\",le=\"0.25\"} 2\n"
                           "shop_latency_seconds_bucket{route=\"/x\",le=\"0.5\"} 2\n"
                           "shop_latency_seconds_bucket{route=\"/x\",le=\"1\"} 3\n"
                           "shop_latency_seconds_bucket{route=\"/x\",le=\"2.5\"} 3\n"
                           "shop_latency_seconds_bucket{route=\"/x\",le=\"5\"} 3\n"
                           "shop_latency_seconds_bucket{route=\"/x\",le=\"10\"} 3\n"
                           "shop_latency_seconds_bucket{route=\"/x\",le=\"+Inf\"} 4\n"
                           "shop_latency_seconds_sum{route=\"/x\"} 42.7534\n"
                           "shop_latency_seconds_count{route=\"/x\"} 4\n");
    free(text);
}

Test(metrics, help_and_type_once_per_name)
{
    es_metric_t *a = es_histogram("h_seconds", "H", "a=\"1\"");
    es_metric_t *b = es_histogram("h_seconds", "H", "a=\"2\"");
    es_metric_observe(a, 1);
    es_metric_observe(b, 1);
    char *text = es_metrics_render();
    const char *first = strstr(text, "# TYPE h_seconds");
    cr_assert_not_null(first);
    cr_assert_null(strstr(first + 1, "# TYPE h_seconds"), "%s", text);
    cr_assert_not_null(strstr(text, "h_seconds_count{a=\"2\"} 1\n"), "%s", text);
    free(text);
}

static void *add_many(void *arg)
{
    for (int i = 0; i < 10000; i++) {
        es_metric_add(arg, 1);
        es_metric_observe(es_histogram("t_seconds", "T", ""), 0.5);
    }
    return NULL;
}

Test(metrics, concurrent_updates_are_not_lost)
{
    es_metric_t *c = es_counter("c_total", "C", "");
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, add_many, c);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    char *text = es_metrics_render();
    cr_assert_not_null(strstr(text, "c_total 40000\n"), "%s", text);
    cr_assert_not_null(strstr(text, "t_seconds_sum 20000\n"), "%s", text);
    cr_assert_not_null(strstr(text, "t_seconds_bucket{le=\"0.5\"} 40000\n"), "%s", text);
    free(text);
}

static char *http_get(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    cr_assert_eq(write(fd, req, (size_t)n), n);
    static char buf[65536];
    size_t len = 0;
    ssize_t got;
    while ((got = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)got;
    buf[len] = '\0';
    close(fd);
    return buf;
}

Test(metrics, serve_answers_metrics_and_probes)
{
    es_err_t err = ES_ERR_INIT;
    int port = 0;
    for (int attempt = 0; attempt < 20; attempt++) {
        port = 20000 + (getpid() * 13 + attempt * 97) % 30000;
        char addr[32];
        snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
        es_clear(&err);
        if (es_metrics_serve(addr, &err) == 0)
            break;
    }
    cr_assert_eq(err.code, ES_OK, "%s", err.msg);
    es_metric_add(es_counter("served_total", "S", ""), 4);

    char *r = http_get(port, "/metrics");
    cr_assert(strncmp(r, "HTTP/1.1 200 ", 13) == 0, "%s", r);
    cr_assert_not_null(strstr(r, "\r\n\r\n# HELP served_total S\n# TYPE served_total counter\n"
                                 "served_total 4\n"),
                       "%s", r);
    r = http_get(port, "/healthz");
    cr_assert(strncmp(r, "HTTP/1.1 200 ", 13) == 0, "%s", r);
    r = http_get(port, "/readyz");
    cr_assert(strncmp(r, "HTTP/1.1 503 ", 13) == 0, "%s", r);
    es_metrics_set_ready(true);
    r = http_get(port, "/readyz");
    cr_assert(strncmp(r, "HTTP/1.1 200 ", 13) == 0, "%s", r);
    r = http_get(port, "/other");
    cr_assert(strncmp(r, "HTTP/1.1 404 ", 13) == 0, "%s", r);
}

Test(metrics, serve_rejects_bad_address)
{
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(es_metrics_serve("no-port", &err), -1);
    cr_assert_str_eq(err.msg, "metrics address 'no-port' is not host:port");
}

/* A loop thread that beats once, then wedges until told to go on (or to end its loop). */
struct wedged {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int state; /* 0: wedged, 1: beat again, 2: end the loop */
    bool beaten;
};

static void *wedged_loop(void *arg)
{
    struct wedged *w = arg;
    es_metrics_heartbeat("test-loop");
    pthread_mutex_lock(&w->lock);
    w->beaten = true;
    pthread_cond_broadcast(&w->cond);
    while (w->state == 0)
        pthread_cond_wait(&w->cond, &w->lock);
    int state = w->state;
    pthread_mutex_unlock(&w->lock);
    if (state == 1)
        es_metrics_heartbeat("test-loop");
    else
        es_metrics_heartbeat_end();
    return NULL;
}

static void wedged_set(struct wedged *w, int state)
{
    pthread_mutex_lock(&w->lock);
    w->state = state;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

Test(metrics, healthz_fails_once_a_loop_stops_turning)
{
    es_metrics_set_stall_ms(150);
    char why[160] = "";
    cr_assert(es_metrics_is_live(why, sizeof why), "no loop yet: live");
    struct wedged w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false};
    pthread_t t;
    pthread_create(&t, NULL, wedged_loop, &w);
    pthread_mutex_lock(&w.lock);
    while (!w.beaten)
        pthread_cond_wait(&w.cond, &w.lock);
    pthread_mutex_unlock(&w.lock);
    /* a loop that beats keeps the role live */
    for (int i = 0; i < 4; i++) {
        es_metrics_heartbeat("main");
        usleep(60 * 1000);
    }
    cr_assert_not(es_metrics_is_live(why, sizeof why), "the wedged loop is not noticed");
    cr_assert_not_null(strstr(why, "loop 'test-loop' has not turned for"), "%s", why);
    char *body = NULL;
    cr_assert_eq(es_metrics_probe(false, &body), 503);
    cr_assert_not_null(strstr(body, "\"status\":\"stalled\""), "%s", body);
    free(body);
    /* it turns again: live; a loop that ends is no longer watched */
    wedged_set(&w, 1);
    pthread_join(t, NULL);
    es_metrics_heartbeat("main");
    cr_assert(es_metrics_is_live(why, sizeof why), "%s", why);
    struct wedged w2 = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 2, false};
    pthread_create(&t, NULL, wedged_loop, &w2);
    pthread_join(t, NULL);
    usleep(200 * 1000);
    es_metrics_heartbeat("main");
    /* only the first thread's slot (left registered, last beat 200 ms ago) may be stale */
    cr_assert_not(es_metrics_is_live(why, sizeof why));
    cr_assert_not_null(strstr(why, "test-loop"), "%s", why);
}

Test(metrics, readyz_needs_every_dependency)
{
    char *body = NULL;
    cr_assert_eq(es_metrics_probe(true, &body), 503, "not started: not ready");
    free(body);
    es_metrics_set_ready(true);
    es_metrics_set_dependency("kafka", true);
    es_metrics_set_dependency("mysql", false);
    cr_assert_not(es_metrics_is_ready());
    cr_assert_eq(es_metrics_probe(true, &body), 503);
    cr_assert_str_eq(body, "{\"status\":\"not ready\",\"kafka\":true,\"mysql\":false}");
    free(body);
    es_metrics_set_dependency("mysql", true);
    cr_assert_eq(es_metrics_probe(true, &body), 200);
    cr_assert_str_eq(body, "{\"status\":\"ready\",\"kafka\":true,\"mysql\":true}");
    free(body);
    char *text = es_metrics_render();
    cr_assert_not_null(strstr(text, "eventshop_dependency_up{dependency=\"mysql\"} 1\n"), "%s",
                       text);
    free(text);
}
