/* eventshop-registry: the schema registry role (see sr_server.h). */
#include "es_env.h"
#include "es_log.h"
#include "es_time.h"
#include "sr_server.h"
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static sr_server_t *server;

static void on_signal(int sig)
{
    (void)sig;
    if (server)
        sr_server_stop(server);
}

int main(void)
{
    es_log_init("registry");
    struct sr_server_config cfg = {
        .addr = es_env_str("EVENTSHOP_REGISTRY_ADDR", "127.0.0.1:8081"),
        .topic = es_env_str("EVENTSHOP_REGISTRY_TOPIC", "_schemas"),
        .threads = (int)es_env_long("EVENTSHOP_REGISTRY_THREADS", 2),
    };
    es_err_t err = ES_ERR_INIT;
    /* a broker that has just created _schemas may not have elected its leader yet, or is
     * restarting: transient Kafka errors at start (unreachable, a replay that timed out) are
     * retried with capped exponential back-off and jitter for EVENTSHOP_STARTUP_TIMEOUT_S (30) */
    time_t give_up = time(NULL) + es_env_long("EVENTSHOP_STARTUP_TIMEOUT_S", 30);
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    long ceiling_ms = 0;
    while (!(server = sr_server_new(&cfg, &err)) &&
           (err.code == ES_EIO || err.code == ES_ETIMEOUT) && time(NULL) < give_up) {
        long wait_ms = es_backoff_next(&ceiling_ms, 250, 4000, &seed);
        es_warn("registry not ready, retrying in %ld ms: %s", wait_ms, err.msg);
        es_clear(&err);
        nanosleep(&(struct timespec){wait_ms / 1000, (wait_ms % 1000) * 1000000L}, NULL);
    }
    if (!server) {
        es_error("registry cannot start: %s", err.msg);
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    es_info("registry listening on %s (log '%s')", cfg.addr, cfg.topic);
    int rc = sr_server_run(server);
    es_info("registry stopping");
    sr_server_t *s = server;
    server = NULL;
    sr_server_free(s);
    return rc ? 1 : 0;
}
