#include "subscriber_role.h"
#include "es_env.h"
#include "es_log.h"
#include "es_metrics.h"
#include "ev_codec.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* the runtime a signal stops */
static sb_runtime_t *running;

static void on_signal(int sig)
{
    (void)sig;
    if (running)
        sb_runtime_stop(running);
}

/* The replay's own transactional id: it must not fence the running subscriber. */
static void use_replay_instance_id(void)
{
    char host[128] = "0", id[200];
    const char *inst = es_env_str("EVENTSHOP_INSTANCE_ID", NULL);
    if (!inst || !*inst)
        inst = gethostname(host, sizeof host) == 0 ? host : "0";
    snprintf(id, sizeof id, "%.120s-replay", inst);
    setenv("EVENTSHOP_INSTANCE_ID", id, 1);
}

int subscriber_role_run(const sb_subscriber_t *sub, bool replay)
{
    es_err_t err = ES_ERR_INIT;
    int rc = 1;
    sb_runtime_t *rt = NULL;
    ev_codec_global_init();
    const char *metrics_addr = replay ? NULL : es_env_str("EVENTSHOP_METRICS_ADDR", NULL);
    if (metrics_addr && *metrics_addr && es_metrics_serve(metrics_addr, &err) != 0)
        goto out;
    if (replay)
        use_replay_instance_id();
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
