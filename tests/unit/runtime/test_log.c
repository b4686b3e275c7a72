/* es_log's structured fields and es_zipkin's exporter (against a one-shot collector here). */
#define _GNU_SOURCE /* strcasestr */
#include "es_log.h"
#include "es_zipkin.h"
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Runs fn with stdout in a temporary file; returns the first line parsed as JSON (new ref). */
static json_t *first_log_line(void (*fn)(void))
{
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    FILE *tmp = tmpfile();
    cr_assert(tmp);
    dup2(fileno(tmp), STDOUT_FILENO);
    fn();
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    rewind(tmp);
    char line[4096] = "";
    cr_assert(fgets(line, sizeof line, tmp), "nothing logged");
    fclose(tmp);
    json_error_t jerr;
    json_t *o = json_loads(line, 0, &jerr);
    cr_assert(o, "not JSON: %s (%s)", line, jerr.text);
    return o;
}

static void log_with_fields(void)
{
    es_log_init("test");
    es_log_kv(ES_LOG_INFO, "4bf92f3577b34da6a3ce929d0e0e4736",
              ES_F("command_id", "c-1", "reason", NULL, "status", "accepted", "role", "forged"),
              "command %s", "c-1");
}

Test(log, kv_fields_are_json_with_null_values_left_out)
{
    json_t *o = first_log_line(log_with_fields);
    cr_assert_str_eq(json_string_value(json_object_get(o, "msg")), "command c-1");
    cr_assert_str_eq(json_string_value(json_object_get(o, "trace_id")),
                     "4bf92f3577b34da6a3ce929d0e0e4736");
    cr_assert_str_eq(json_string_value(json_object_get(o, "command_id")), "c-1");
    cr_assert_str_eq(json_string_value(json_object_get(o, "status")), "accepted");
    cr_assert_null(json_object_get(o, "reason"));
    /* a field never overrides the fixed keys */
    cr_assert_str_eq(json_string_value(json_object_get(o, "role")), "test");
    json_decref(o);
}

static void log_below_level(void)
{
    es_log_init("test");
    es_log_kv(ES_LOG_DEBUG, NULL, ES_F("k", "hidden"), "hidden");
    es_log_kv(ES_LOG_WARN, NULL, ES_F("k", "shown"), "shown");
}

Test(log, kv_respects_the_level)
{
    json_t *o = first_log_line(log_below_level);
    cr_assert_str_eq(json_string_value(json_object_get(o, "k")), "shown");
    cr_assert_str_eq(json_string_value(json_object_get(o, "level")), "warn");
    json_decref(o);
}

Test(zipkin, disabled_without_url)
{
    unsetenv("EVENTSHOP_ZIPKIN_URL");
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(es_zipkin_init("svc", &err), 0);
    cr_assert_not(es_zipkin_enabled());
    es_zipkin_span("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", NULL, "x", NULL, 1, 1,
                   NULL); /* a no-op */
    es_zipkin_shutdown();
}

Test(zipkin, rejects_a_url_that_is_not_http)
{
    setenv("EVENTSHOP_ZIPKIN_URL", "ftp://collector", 1);
    es_err_t err = ES_ERR_INIT;
    cr_assert_neq(es_zipkin_init("svc", &err), 0);
    cr_assert(strstr(err.msg, "ftp://collector"), "%s", err.msg);
    cr_assert_not(es_zipkin_enabled());
}

/* a collector answering one POST with 202; keeps the path and body */
struct collector {
    int fd;
    char path[128];
    char body[8192];
};

static void *collect_one(void *arg)
{
    struct collector *c = arg;
    int s = accept(c->fd, NULL, NULL);
    char buf[16384];
    size_t n = 0;
    char *hdr_end = NULL;
    long clen = -1;
    while (n < sizeof buf - 1) {
        ssize_t r = read(s, buf + n, sizeof buf - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        buf[n] = '\0';
        if (!hdr_end && (hdr_end = strstr(buf, "\r\n\r\n"))) {
            char *cl = strcasestr(buf, "Content-Length:");
            clen = cl ? strtol(cl + 15, NULL, 10) : 0;
        }
        if (hdr_end && (long)(n - (size_t)(hdr_end + 4 - buf)) >= clen)
            break;
    }
    sscanf(buf, "POST %127s", c->path);
    if (hdr_end)
        snprintf(c->body, sizeof c->body, "%s", hdr_end + 4);
    const char *ans = "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    if (write(s, ans, strlen(ans)) < 0)
        perror("write");
    close(s);
    return NULL;
}

Test(zipkin, exports_v2_spans_with_parent_ids)
{
    struct collector c = {0};
    c.fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(c.fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t alen = sizeof a;
    getsockname(c.fd, (struct sockaddr *)&a, &alen);
    listen(c.fd, 4);
    pthread_t t;
    pthread_create(&t, NULL, collect_one, &c);

    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", ntohs(a.sin_port));
    setenv("EVENTSHOP_ZIPKIN_URL", url, 1);
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(es_zipkin_init("handler", &err), 0, "%s", err.msg);
    cr_assert(es_zipkin_enabled());
    const char *parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const char *span = "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01";
    es_zipkin_span(span, parent, "decide ListProduct", "CONSUMER", 1700000000000000, 1500,
                   ES_F("command_id", "c-1", "reason", NULL));
    es_zipkin_shutdown(); /* sends what is queued */
    pthread_join(t, NULL);
    close(c.fd);

    cr_assert_str_eq(c.path, "/api/v2/spans");
    json_t *spans = json_loads(c.body, 0, NULL);
    cr_assert(json_is_array(spans) && json_array_size(spans) == 1, "%s", c.body);
    json_t *s = json_array_get(spans, 0);
    cr_assert_str_eq(json_string_value(json_object_get(s, "traceId")),
                     "4bf92f3577b34da6a3ce929d0e0e4736");
    cr_assert_str_eq(json_string_value(json_object_get(s, "id")), "b7ad6b7169203331");
    cr_assert_str_eq(json_string_value(json_object_get(s, "parentId")), "00f067aa0ba902b7");
    cr_assert_str_eq(json_string_value(json_object_get(s, "kind")), "CONSUMER");
    cr_assert_eq(json_integer_value(json_object_get(s, "timestamp")), 1700000000000000);
    cr_assert_eq(json_integer_value(json_object_get(s, "duration")), 1500);
    json_t *ep = json_object_get(s, "localEndpoint");
    cr_assert_str_eq(json_string_value(json_object_get(ep, "serviceName")), "handler");
    json_t *tags = json_object_get(s, "tags");
    cr_assert_str_eq(json_string_value(json_object_get(tags, "command_id")), "c-1");
    cr_assert_null(json_object_get(tags, "reason"));
    json_decref(spans);
}

/* es_log_every_pass: the first call passes, calls within the period are held back and counted,
 * the first after it passes with that count, and the count starts again. */
Test(log_every, one_line_per_period_with_the_count_held_back)
{
    es_log_every_t e = {0};
    long skipped = -1;
    cr_assert(es_log_every_pass(&e, 1000, 10000, &skipped));
    cr_assert_eq(skipped, 0);
    for (int i = 0; i < 5; i++)
        cr_assert_not(es_log_every_pass(&e, 1000 + 1000 * i, 10000, &skipped));
    cr_assert_not(es_log_every_pass(&e, 10999, 10000, &skipped));
    cr_assert(es_log_every_pass(&e, 11000, 10000, &skipped));
    cr_assert_eq(skipped, 6);
    cr_assert(es_log_every_pass(&e, 30000, 10000, &skipped));
    cr_assert_eq(skipped, 0);
}

Test(log_every, a_clock_at_zero_still_counts_as_logged)
{
    es_log_every_t e = {0};
    long skipped;
    cr_assert(es_log_every_pass(&e, 0, 10000, &skipped));
    cr_assert_not(es_log_every_pass(&e, 5, 10000, &skipped));
}
