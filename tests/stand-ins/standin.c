#include "standin.h"
#include "es_log.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the one server of the process, for the signal handler */
static es_http_server_t *serving;

static void on_signal(int sig)
{
    (void)sig;
    es_http_server_stop(serving);
}

int standin_serve(const char *name, const char *addr, const es_http_route_t *routes, size_t n,
                  void *app, const char *about)
{
    signal(SIGPIPE, SIG_IGN);
    const char *colon = strrchr(addr, ':');
    if (!colon || atoi(colon + 1) <= 0) {
        es_error("cannot start: EVENTSHOP_FAKE_ADDR '%s' is not host:port", addr);
        return 1;
    }
    char host[64];
    snprintf(host, sizeof host, "%.*s", (int)(colon - addr), addr);
    es_err_t err = ES_ERR_INIT;
    es_http_config_t cfg = {
        .host = host, .port = atoi(colon + 1), .threads = 1, .max_body = 64 * 1024, .app = app};
    if (!(serving = es_http_server_new(&cfg, routes, n, &err))) {
        es_error("cannot start: %s", err.msg);
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    es_info("%s on %s%s", name, addr, about);
    int rc = es_http_server_run(serving);
    es_http_server_free(serving);
    serving = NULL;
    return rc;
}
