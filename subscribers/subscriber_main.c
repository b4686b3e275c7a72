/* eventshop-subscriber <name> [--replay-dead-letters]: the event-subscriber role (DESIGN.md §4).
 * With --replay-dead-letters it re-processes the messages of "<name>.deadletter" once and
 * exits (0 when done). */
#include "es_env.h"
#include "es_log.h"
#include "es_metrics.h"
#include "ev_codec.h"
#include "sb_runtime.h"
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* THE table of subscribers by name: one `extern` and one line in `subscribers[]` each
 * (their .c files go to es_subscribers in subscribers/CMakeLists.txt). */
extern const sb_subscriber_t sb_order_saga;
extern const sb_subscriber_t sb_payments;
extern const sb_subscriber_t sb_notifications;
extern const sb_subscriber_t sb_shipping;

static const sb_subscriber_t *const subscribers[] = {
    &sb_order_saga, &sb_payments, &sb_notifications, &sb_shipping, NULL,
};

static sb_runtime_t *running;

static void on_signal(int sig)
{
    (void)sig;
    if (running)
        sb_runtime_stop(running);
}

int main(int argc, char **argv)
{
    es_log_init("subscriber");
    bool replay = argc == 3 && strcmp(argv[2], "--replay-dead-letters") == 0;
    const sb_subscriber_t *sub = NULL;
    for (size_t i = 0; (argc == 2 || replay) && subscribers[i]; i++) {
        if (strcmp(subscribers[i]->name, argv[1]) == 0)
            sub = subscribers[i];
    }
    if (!sub) {
        fprintf(stderr, "usage: eventshop-subscriber <name> [--replay-dead-letters]   (names:");
        for (size_t i = 0; subscribers[i]; i++)
            fprintf(stderr, " %s", subscribers[i]->name);
        fprintf(stderr, ")\n");
        return 2;
    }
    es_err_t err = ES_ERR_INIT;
    int rc = 1;
    sb_runtime_t *rt = NULL;
    ev_codec_global_init();
    const char *metrics_addr = replay ? NULL : es_env_str("EVENTSHOP_METRICS_ADDR", NULL);
    if (metrics_addr && *metrics_addr && es_metrics_serve(metrics_addr, &err) != 0)
        goto out;
    if (replay) { /* its own transactional id: it must not fence the running subscriber */
        char host[128] = "0", id[200];
        const char *inst = es_env_str("EVENTSHOP_INSTANCE_ID", NULL);
        if (!inst || !*inst)
            inst = gethostname(host, sizeof host) == 0 ? host : "0";
        snprintf(id, sizeof id, "%.120s-replay", inst);
        setenv("EVENTSHOP_INSTANCE_ID", id, 1);
    }
    if (!(rt = sb_runtime_new(sub, &err)))
        goto out;
    running = rt;
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (replay) {
        long n = 0;
        rc = sb_runtime_replay_dead_letters(rt, &n, &err) == 0 ? 0 : 1;
        if (rc == 0)
            printf("replayed %ld dead letters of '%s'\n", n, sub->name);
    } else {
        rc = sb_runtime_run(rt, &err) == 0 ? 0 : 1;
    }
out:
    if (es_failed(&err))
        es_error("subscriber '%s': %s", sub->name, err.msg);
    running = NULL;
    sb_runtime_free(rt);
    return rc;
}
