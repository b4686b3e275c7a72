/* eventshop-projector <context> [projection]: keeps a context's read tables in MariaDB. */
#include "es_env.h"
#include "es_log.h"
#include "es_metrics.h"
#include "pj_runtime.h"
#include <signal.h>
#include <stdio.h>
#include <string.h>

static pj_runtime_t *g_rt;

static void on_signal(int sig)
{
    (void)sig;
    if (g_rt)
        pj_runtime_stop(g_rt);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s <context> [projection]\n", argv[0]);
        return 2;
    }
    es_log_init("projector");
    const pj_projection_t *p = pj_projection_find(argv[1], argc > 2 ? argv[2] : NULL);
    if (!p) {
        es_error("no projection for context '%s'", argv[1]);
        return 2;
    }
    es_err_t err = ES_ERR_INIT;
    const char *addr = es_env_str("EVENTSHOP_METRICS_ADDR", NULL);
    if (addr && es_metrics_serve(addr, &err)) {
        es_error("metrics on '%s': %s", addr, err.msg);
        return 1;
    }
    pj_options_t opt;
    pj_options_from_env(&opt);
    pj_runtime_t *rt = pj_runtime_new(p, &opt, &err);
    if (!rt) {
        es_error("projector %s: %s", p->name, err.msg);
        return 1;
    }
    g_rt = rt;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    int rc = pj_runtime_run(rt, &err);
    if (rc)
        es_error("projector %s: %s", p->name, err.msg);
    g_rt = NULL;
    pj_runtime_free(rt);
    return rc ? 1 : 0;
}
