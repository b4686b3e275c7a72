/* es_http over a real loopback socket: a server runs on a thread of the test process and libcurl
 * talks to it. */
#define _GNU_SOURCE
#include "es_http.h"
#include "es_mem.h"
#include "es_metrics.h"
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static es_http_server_t *server;
static pthread_t server_tid;
static int port;
static int app_marker = 42;

typedef struct response {
    long status;
    char body[4096];
    size_t len;
    char headers[4096];
    size_t hlen;
} response_t;

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    response_t *r = arg;
    size_t len = size * n;
    size_t room = sizeof r->body - 1 - r->len;
    memcpy(r->body + r->len, p, len < room ? len : room);
    r->len += len < room ? len : room;
    r->body[r->len] = '\0';
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    response_t *r = arg;
    size_t len = size * n;
    size_t room = sizeof r->headers - 1 - r->hlen;
    memcpy(r->headers + r->hlen, p, len < room ? len : room);
    r->hlen += len < room ? len : room;
    r->headers[r->hlen] = '\0';
    return len;
}

static long timeout_ms = 5000;

static response_t do_request(const char *method, const char *path, const char *body, size_t len)
{
    response_t r = {0};
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    CURL *c = curl_easy_init();
    struct curl_slist *hdrs = curl_slist_append(NULL, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    CURLcode rc = curl_easy_perform(c);
    r.status = rc == CURLE_OPERATION_TIMEDOUT ? -1 : 0;
    if (rc != CURLE_OPERATION_TIMEDOUT)
        cr_assert_eq(rc, CURLE_OK, "curl %s %s: %s", method, path, curl_easy_strerror(rc));
    if (r.status == 0)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return r;
}

static json_t *body_json(const response_t *r)
{
    json_error_t jerr;
    json_t *j = json_loadb(r->body, r->len, 0, &jerr);
    cr_assert_not_null(j, "body is not JSON: '%s'", r->body);
    return j;
}

static bool has_header(const response_t *r, const char *line)
{
    return strcasestr(r->headers, line) != NULL;
}

/* ---- handlers ---- */

static void get_item(es_http_req_t *r)
{
    char *color = es_http_query_dup(r, "color");
    char *hdr = es_http_header_dup(r, "x-test");
    json_t *j = json_pack("{s:s, s:s, s:s?, s:s?, s:b}", "id", es_http_param(r, "id"), "path",
                          es_http_path(r), "color", color, "x_test", hdr, "app_ok",
                          *(int *)es_http_app(r) == 42);
    free(color);
    free(hdr);
    es_http_add_header(r, "X-Route", "item");
    es_http_reply_json(r, 200, j);
}

static void put_item(es_http_req_t *r)
{
    size_t len;
    const char *body = es_http_body(r, &len);
    es_http_reply(r, 200, "text/plain", body, len);
}

static void get_sub(es_http_req_t *r)
{
    json_t *j =
        json_pack("{s:s, s:s}", "id", es_http_param(r, "id"), "sub", es_http_param(r, "sub"));
    es_http_reply_json(r, 200, j);
}

static void get_fail(es_http_req_t *r)
{
    es_http_reply_problem(r, 409, "urn:eventshop:conflict", "Conflict", "item '%s' is taken",
                          es_http_param(r, "id"));
}

static void *complete_later(void *arg)
{
    usleep(50 * 1000);
    const char *const headers[] = {"X-Deferred", "yes", NULL};
    es_http_complete(arg, 202, json_pack("{s:s}", "state", "done"), 0, headers);
    return NULL;
}

static void get_deferred(es_http_req_t *r)
{
    es_http_pending_t *p = es_http_defer(r);
    pthread_t t;
    pthread_create(&t, NULL, complete_later, p);
    pthread_detach(t);
}

static void *complete_much_later(void *arg)
{
    usleep(300 * 1000);
    es_http_complete(arg, 200, json_pack("{s:s}", "late", "yes"), 0, NULL);
    return NULL;
}

static void get_slow(es_http_req_t *r)
{
    pthread_t t;
    pthread_create(&t, NULL, complete_much_later, es_http_defer(r));
    pthread_detach(t);
}

static void after_tick(es_http_req_t *r, void *arg)
{
    int *n = arg;
    if (++*n < 3) {
        es_http_after(r, 10, after_tick, n, free);
        return;
    }
    es_http_reply_json(r, 200, json_pack("{s:i}", "ticks", *n));
    free(n);
}

static void get_wait(es_http_req_t *r)
{
    int *n = xcalloc(1, sizeof *n);
    es_http_after(r, 10, after_tick, n, free);
}

static void get_silent(es_http_req_t *r)
{
    (void)r;
}

/* A request parked with a long deadline and answered by a timer tied to no request, as the API's
 * read-your-writes watcher answers its waiters. */
struct parked {
    es_http_req_t *r;
    es_http_timer_t *t;
    bool done;
};

static void parked_fire(void *arg)
{
    struct parked *p = arg;
    p->done = true;
    es_http_timer_free(p->t); /* fn may free its own timer */
    p->t = NULL;
    es_http_reply_json(p->r, 200, json_pack("{s:b}", "by_timer", 1));
}

static void parked_deadline(es_http_req_t *r, void *arg)
{
    struct parked *p = arg;
    if (!p->done) {
        es_http_timer_free(p->t);
        es_http_reply_problem(r, 504, NULL, NULL, "the timer did not fire");
    }
    free(p);
}

static void parked_gone(void *arg)
{
    struct parked *p = arg;
    es_http_timer_free(p->t);
    free(p);
}

static void get_timer(es_http_req_t *r)
{
    struct parked *p = xcalloc(1, sizeof *p);
    p->r = r;
    p->t = es_http_timer_new(r, parked_fire, p);
    es_http_after(r, 3000, parked_deadline, p, parked_gone);
    es_http_timer_arm(p->t, 10);
    es_http_timer_arm(p->t, 2000); /* already armed: changes nothing */
}

/* A request answered by a wake-up posted from another thread, as the API's position watcher
 * wakes the loops that hold read-your-writes waiters. */
struct woken {
    es_http_req_t *r;
    es_http_waker_t *w;
    pthread_t poster;
    int calls;
};

static void *post_thrice(void *arg)
{
    struct woken *x = arg;
    for (int i = 0; i < 3; i++)
        es_http_waker_wake(x->w);
    return NULL;
}

/* Joins the poster and frees the wake (on the loop thread, once nobody posts any more). */
static void woken_release(struct woken *x)
{
    if (!x->w)
        return;
    pthread_join(x->poster, NULL);
    es_http_waker_free(x->w);
    x->w = NULL;
}

static void on_woken(void *arg)
{
    struct woken *x = arg;
    x->calls++;
    woken_release(x);
    es_http_reply_json(x->r, 200, json_pack("{s:i}", "calls", x->calls));
}

static void woken_deadline(es_http_req_t *r, void *arg)
{
    struct woken *x = arg;
    if (x->w) {
        woken_release(x);
        es_http_reply_problem(r, 504, NULL, NULL, "the wake did not come");
    }
    free(x);
}

static void woken_gone(void *arg)
{
    woken_release(arg);
    free(arg);
}

static void get_woken(es_http_req_t *r)
{
    struct woken *x = xcalloc(1, sizeof *x);
    x->r = r;
    x->w = es_http_waker_new(r, on_woken, x);
    es_http_after(r, 3000, woken_deadline, x, woken_gone);
    pthread_create(&x->poster, NULL, post_thrice, x);
}

/* A streamed answer fed from another thread through a waker, as the API's event stream is fed
 * by its Kafka consumer: a piece per wake, one in flight at a time, then the end. */
struct fed {
    es_http_stream_t *st;
    es_http_waker_t *w;
    int woken, written;
};

static void fed_write(void *arg)
{
    struct fed *f = arg;
    if (f->written == f->woken || es_http_stream_busy(f->st))
        return; /* on_ready writes what a wake asked for while a piece was in flight */
    char piece[32];
    int n = snprintf(piece, sizeof piece, "piece %d\n", ++f->written);
    es_http_stream_write(f->st, piece, (size_t)n);
    if (f->written == 3)
        es_http_stream_end(f->st);
}

static void fed_wake(void *arg)
{
    struct fed *f = arg;
    f->woken++;
    fed_write(f);
}

static void fed_gone(void *arg)
{
    struct fed *f = arg;
    es_http_waker_free(f->w);
    free(f);
}

static void *feed(void *arg)
{
    es_http_waker_t *w = arg;
    for (int i = 0; i < 3; i++) {
        usleep(20 * 1000);
        es_http_waker_wake(w);
    }
    return NULL;
}

static void get_stream(es_http_req_t *r)
{
    struct fed *f = xcalloc(1, sizeof *f);
    es_http_add_header(r, "X-Stream", "yes");
    es_http_stream_cbs_t cbs = {.on_ready = fed_write, .on_gone = fed_gone, .arg = f};
    f->st = es_http_stream_start(r, 200, "text/plain", &cbs);
    f->w = es_http_waker_new(r, fed_wake, f);
    pthread_t t;
    pthread_create(&t, NULL, feed, f->w);
    pthread_detach(t);
}

static const es_http_route_t routes[] = {
    {"GET", "/v1/stream", get_stream, NULL},   {"GET", "/v1/items/{id}", get_item, NULL},
    {"PUT", "/v1/items/{id}", put_item, NULL}, {"GET", "/v1/items/{id}/subs/{sub}", get_sub, NULL},
    {"GET", "/v1/fail/{id}", get_fail, NULL},  {"GET", "/v1/deferred", get_deferred, NULL},
    {"GET", "/v1/wait", get_wait, NULL},       {"GET", "/v1/silent", get_silent, NULL},
    {"GET", "/v1/slow", get_slow, NULL},       {"GET", "/v1/timer", get_timer, NULL},
    {"GET", "/v1/woken", get_woken, NULL},
};

static void *run_server(void *arg)
{
    es_http_server_run(arg);
    return NULL;
}

static void server_up(void)
{
    es_err_t err = ES_ERR_INIT;
    es_http_config_t cfg = {
        .host = "127.0.0.1", .threads = 2, .max_body = 1024, .app = &app_marker};
    for (int attempt = 0; attempt < 20 && !server; attempt++) {
        port = 20000 + (getpid() * 7 + attempt * 131) % 30000;
        cfg.port = port;
        es_clear(&err);
        server = es_http_server_new(&cfg, routes, sizeof routes / sizeof routes[0], &err);
    }
    cr_assert_not_null(server, "server: %s", err.msg);
    pthread_create(&server_tid, NULL, run_server, server);
}

static void server_down(void)
{
    es_http_server_stop(server);
    pthread_join(server_tid, NULL);
    es_http_server_free(server);
    server = NULL;
}

TestSuite(http, .init = server_up, .fini = server_down);

Test(http, routes_with_params_query_and_headers)
{
    response_t r = do_request("GET", "/v1/items/ab%2D1?color=dark+red&x=1", NULL, 0);
    cr_assert_eq(r.status, 200, "status %ld: %s", r.status, r.body);
    json_t *j = body_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "id")), "ab-1");
    cr_assert_str_eq(json_string_value(json_object_get(j, "path")), "/v1/items/ab%2D1");
    cr_assert_str_eq(json_string_value(json_object_get(j, "color")), "dark red");
    cr_assert(json_is_true(json_object_get(j, "app_ok")));
    cr_assert(has_header(&r, "x-route: item"), "headers: %s", r.headers);
    cr_assert(has_header(&r, "content-type: application/json"), "headers: %s", r.headers);
    cr_assert(has_header(&r, "content-length: "), "not sized: %s", r.headers);
    json_decref(j);

    r = do_request("GET", "/v1/items/7/subs/x", NULL, 0);
    cr_assert_eq(r.status, 200);
    j = body_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "id")), "7");
    cr_assert_str_eq(json_string_value(json_object_get(j, "sub")), "x");
    json_decref(j);
}

Test(http, query_that_does_not_decode_is_400_problem)
{
    /* else the parameter would look absent to the handler */
    const char *paths[] = {"/v1/items/1?color=a%00b", "/v1/items/1?color=%zz",
                           "/v1/items/1?x%00=1&color=red"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        response_t r = do_request("GET", paths[i], NULL, 0);
        cr_assert_eq(r.status, 400, "%s gave %ld", paths[i], r.status);
        cr_assert(has_header(&r, "content-type: application/problem+json"), "%s", r.headers);
    }
}

Test(http, body_reaches_the_handler)
{
    response_t r = do_request("PUT", "/v1/items/1", "hello body", 10);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "hello body");
}

Test(http, unknown_path_is_404_problem)
{
    const char *paths[] = {"/nope", "/v1/items", "/v1/items/", "/v1/items/1/extra"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        response_t r = do_request("GET", paths[i], NULL, 0);
        cr_assert_eq(r.status, 404, "%s gave %ld", paths[i], r.status);
        cr_assert(has_header(&r, "content-type: application/problem+json"), "%s", r.headers);
        json_t *j = body_json(&r);
        cr_assert_eq(json_integer_value(json_object_get(j, "status")), 404);
        cr_assert_str_eq(json_string_value(json_object_get(j, "type")), "about:blank");
        cr_assert_str_eq(json_string_value(json_object_get(j, "title")), "Not Found");
        json_decref(j);
    }
}

Test(http, other_method_is_405_with_allow)
{
    response_t r = do_request("DELETE", "/v1/items/5", NULL, 0);
    cr_assert_eq(r.status, 405);
    cr_assert(has_header(&r, "allow: GET, PUT"), "headers: %s", r.headers);
    json_t *j = body_json(&r);
    cr_assert_eq(json_integer_value(json_object_get(j, "status")), 405);
    json_decref(j);
}

Test(http, oversized_body_is_413_problem)
{
    char big[2048];
    memset(big, 'x', sizeof big);
    response_t r = do_request("PUT", "/v1/items/1", big, sizeof big);
    cr_assert_eq(r.status, 413);
    cr_assert(has_header(&r, "content-type: application/problem+json"), "%s", r.headers);
    json_t *j = body_json(&r);
    cr_assert_eq(json_integer_value(json_object_get(j, "status")), 413);
    cr_assert_str_eq(json_string_value(json_object_get(j, "detail")),
                     "the request body is larger than 1024 bytes");
    json_decref(j);
    /* exactly the limit passes */
    r = do_request("PUT", "/v1/items/1", big, 1024);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.len, 1024);
}

Test(http, handler_problem_is_kept)
{
    response_t r = do_request("GET", "/v1/fail/9", NULL, 0);
    cr_assert_eq(r.status, 409);
    json_t *j = body_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "type")), "urn:eventshop:conflict");
    cr_assert_str_eq(json_string_value(json_object_get(j, "detail")), "item '9' is taken");
    json_decref(j);
}

Test(http, deferred_completion_from_another_thread)
{
    response_t r = do_request("GET", "/v1/deferred", NULL, 0);
    cr_assert_eq(r.status, 202, "status %ld", r.status);
    cr_assert(has_header(&r, "x-deferred: yes"), "headers: %s", r.headers);
    json_t *j = body_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "state")), "done");
    json_decref(j);
}

Test(http, completion_after_the_client_left_is_dropped)
{
    timeout_ms = 100;
    response_t r = do_request("GET", "/v1/slow", NULL, 0);
    cr_assert_eq(r.status, -1, "expected a client timeout, got %ld", r.status);
    timeout_ms = 5000;
    usleep(400 * 1000); /* the completion arrives for a request that is gone */
    r = do_request("GET", "/v1/items/1", NULL, 0);
    cr_assert_eq(r.status, 200);
}

Test(http, after_runs_on_the_loop_until_answered)
{
    response_t r = do_request("GET", "/v1/wait", NULL, 0);
    cr_assert_eq(r.status, 200);
    json_t *j = body_json(&r);
    cr_assert_eq(json_integer_value(json_object_get(j, "ticks")), 3);
    json_decref(j);
}

Test(http, a_timer_tied_to_no_request_answers_a_parked_one)
{
    response_t r = do_request("GET", "/v1/timer", NULL, 0);
    cr_assert_eq(r.status, 200, "status %ld: %s", r.status, r.body);
    json_t *j = body_json(&r);
    cr_assert(json_is_true(json_object_get(j, "by_timer")));
    json_decref(j);
}

Test(http, a_stream_is_written_in_pieces_woken_from_another_thread)
{
    response_t r = do_request("GET", "/v1/stream", NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "piece 1\npiece 2\npiece 3\n");
    cr_assert(has_header(&r, "content-type: text/plain"), "headers: %s", r.headers);
    cr_assert(has_header(&r, "x-stream: yes"), "headers: %s", r.headers);
    cr_assert(has_header(&r, "transfer-encoding: chunked"), "headers: %s", r.headers);
}

Test(http, handler_without_answer_gets_500)
{
    response_t r = do_request("GET", "/v1/silent", NULL, 0);
    cr_assert_eq(r.status, 500);
}

Test(http, answers_are_counted)
{
    do_request("GET", "/v1/items/1", NULL, 0);
    do_request("GET", "/v1/items/2", NULL, 0);
    do_request("GET", "/zzz", NULL, 0);
    char big[2048] = {0};
    do_request("PUT", "/v1/items/1", big, sizeof big);
    char *text = es_metrics_render();
    cr_assert(strstr(text, "eventshop_http_requests_total{route=\"/v1/items/{id}\",method=\"GET\","
                           "status=\"200\"} 2\n"),
              "%s", text);
    cr_assert(strstr(text, "eventshop_http_requests_total{route=\"unmatched\",method=\"GET\","
                           "status=\"404\"} 1\n"),
              "%s", text);
    cr_assert(strstr(text, "eventshop_http_requests_total{route=\"/v1/items/{id}\",method=\"PUT\","
                           "status=\"413\"} 1\n"),
              "%s", text);
    cr_assert(strstr(text, "eventshop_http_request_duration_seconds_count{route=\"/v1/items/{id}\"}"
                           " 3\n"),
              "%s", text);
    free(text);
}

Test(http, port_in_use_is_reported)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t slen = sizeof sa;
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(fd, 1), 0);
    getsockname(fd, (struct sockaddr *)&sa, &slen);
    int taken = ntohs(sa.sin_port);
    es_err_t err = ES_ERR_INIT;
    es_http_config_t cfg = {.host = "127.0.0.1", .port = taken, .threads = 1, .max_body = 10};
    cr_assert_null(es_http_server_new(&cfg, routes, 1, &err));
    char want[64];
    snprintf(want, sizeof want, "port %d is in use", taken);
    cr_assert_str_eq(err.msg, want);
    cr_assert_eq(err.code, ES_EIO);
    close(fd);
}

static void *stop_later(void *arg)
{
    usleep(150 * 1000);
    es_http_server_stop(arg);
    return NULL;
}

static void get_slow_after(es_http_req_t *r)
{
    int *n = xcalloc(1, sizeof *n);
    *n = 2; /* one tick of 300 ms, then the answer */
    es_http_after(r, 300, after_tick, n, free);
}

static const es_http_route_t stop_routes[] = {{"GET", "/x", get_slow_after, NULL}};

/* Stopping lets a request in flight finish and closes an idle keep-alive connection. */
Test(http_stop, finishes_in_flight_and_closes_idle_connections)
{
    es_err_t err = ES_ERR_INIT;
    es_http_config_t cfg = {.host = "127.0.0.1", .threads = 1, .max_body = 10};
    es_http_server_t *s = NULL;
    for (int attempt = 0; attempt < 20 && !s; attempt++) {
        port = 20000 + (getpid() * 11 + attempt * 151) % 30000;
        cfg.port = port;
        es_clear(&err);
        s = es_http_server_new(&cfg, stop_routes, 1, &err);
    }
    cr_assert_not_null(s, "%s", err.msg);
    pthread_t tid, stopper;
    pthread_create(&tid, NULL, run_server, s);
    usleep(50 * 1000);
    int idle = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(idle, (struct sockaddr *)&sa, sizeof sa), 0);
    pthread_create(&stopper, NULL, stop_later, s);
    response_t r = do_request("GET", "/x", NULL, 0); /* stop arrives while this waits */
    cr_assert_eq(r.status, 200, "status %ld", r.status);
    pthread_join(stopper, NULL);
    pthread_join(tid, NULL);
    char c;
    cr_assert_eq(read(idle, &c, 1), 0, "the idle connection is still open");
    close(idle);
    es_http_server_free(s);
}

/* the one problem+json builder (the API's too): a detail quoting bytes that are not UTF-8 keeps
 * them as '?', not dropped by jansson */
Test(http_problem, detail_is_made_valid_utf8)
{
    json_t *p = es_http_problem_new(404, NULL, NULL, "no route for 'GET /a\xff\xc3'", NULL);
    cr_assert_str_eq(json_string_value(json_object_get(p, "detail")), "no route for 'GET /a?"
                                                                      "?'");
    cr_assert_str_eq(json_string_value(json_object_get(p, "title")), "Not Found");
    cr_assert_str_eq(json_string_value(json_object_get(p, "type")), "about:blank");
    cr_assert_eq(json_integer_value(json_object_get(p, "status")), 404);
    json_decref(p);
    p = es_http_problem_new(503, "urn:x", "Down", NULL, json_pack("{s:s}", "field", "sku"));
    cr_assert_null(json_object_get(p, "detail"));
    cr_assert_str_eq(json_string_value(json_object_get(p, "title")), "Down");
    cr_assert_str_eq(json_string_value(json_object_get(p, "field")), "sku");
    json_decref(p);
    char out[8];
    cr_assert_str_eq(es_http_utf8_clean("\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac", out, sizeof out),
                     "\xe2\x82\xac\xe2\x82\xac?");
}

Test(http, a_wake_posted_from_another_thread_runs_on_the_loop)
{
    response_t r = do_request("GET", "/v1/woken", NULL, 0);
    cr_assert_eq(r.status, 200, "status %ld", r.status);
    json_t *j = body_json(&r);
    cr_assert_eq(json_integer_value(json_object_get(j, "calls")), 1);
    json_decref(j);
}
