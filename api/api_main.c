/* eventshop-api: load config -> init log -> create -> run -> free. */
#include "api_server.h"
#include "es_log.h"
#include "es_zipkin.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static api_server_t *server;

static void on_signal(int sig)
{
    (void)sig;
    api_server_stop(server);
}

int main(void)
{
    es_log_init("eventshop-api");
    signal(SIGPIPE, SIG_IGN);
    es_err_t err = ES_ERR_INIT;
    if (es_zipkin_init("eventshop-api", &err) != 0) {
        es_error("cannot start: %s", err.msg);
        return 1;
    }
    server = api_server_new(&err);
    if (!server) {
        es_error("cannot start: %s (%s)", err.msg, es_code_name(err.code));
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int rc = api_server_run(server);
    api_server_free(server);
    es_zipkin_shutdown();
    es_info("stopped");
    return rc;
}
