/* eventshop-projector: keeps a context's read tables in MariaDB, or rebuilds one projection. */
#include "es_env.h"
#include "es_log.h"
#include "es_metrics.h"
#include "es_zipkin.h"
#include "pj_runtime.h"
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char usage[] =
    "usage: eventshop-projector <context> [projection]\n"
    "       eventshop-projector <context> --rebuild [projection] [--keep-old]\n"
    "\n"
    "Without --rebuild: projects <context>.events into the live tables of the projection (the\n"
    "context's first when not named). If the live tables were built with another projection\n"
    "version than the code's, it logs an error and first rebuilds them itself (readers keep the\n"
    "old tables meanwhile, frozen); EVENTSHOP_PROJECTOR_AUTO_REBUILD=0 makes it wait for an\n"
    "operator's rebuild instead.\n"
    "\n"
    "--rebuild: rebuilds the projection with no downtime for readers: new tables beside the live\n"
    "ones, filled from offset 0 (progress as JSON log lines: events_per_s, remaining, eta_s; and\n"
    "eventshop_projector_rebuild_* metrics), caught up with the live projector, then swapped in\n"
    "with one RENAME TABLE. --keep-old keeps the replaced tables as <table>_old<time>.\n";

static pj_runtime_t *g_rt;

static void on_signal(int sig)
{
    (void)sig;
    pj_rebuild_stop();
    if (g_rt)
        pj_runtime_stop(g_rt);
}

/* Until the live tables' version is the code's: rebuild them (or wait for an operator). */
static int ensure_version(const pj_projection_t *p, volatile sig_atomic_t *stopping)
{
    bool auto_rebuild = es_env_long("EVENTSHOP_PROJECTOR_AUTO_REBUILD", 1) != 0;
    while (!*stopping) {
        es_err_t err = ES_ERR_INIT;
        int stored = 0, rc = pj_version_check(p, &stored, &err);
        if (rc <= 0) {
            if (rc < 0)
                es_error("projector %s: version check: %s", p->name, err.msg);
            return rc;
        }
        es_error("projector %s: live tables were built with version %d, the code is version %d: "
                 "they need a rebuild (eventshop-projector %s --rebuild %s); %s",
                 p->name, stored, p->version, p->context, p->name,
                 auto_rebuild ? "rebuilding them now, readers keep the old tables meanwhile"
                              : "waiting for it (EVENTSHOP_PROJECTOR_AUTO_REBUILD=0)");
        if (auto_rebuild) {
            pj_rebuild_options_t ro = {.live_paused = true};
            if (pj_rebuild(p, &ro, &err) == 0)
                continue;
            es_error("projector %s: rebuild: %s", p->name, err.msg);
            if (err.code != ES_ECONFLICT) /* another replica rebuilding: wait for it */
                return -1;
        }
        for (int i = 0; i < 50 && !*stopping; i++)
            nanosleep(&(struct timespec){0, 100 * 1000000L}, NULL);
    }
    return -1;
}

static volatile sig_atomic_t g_stopping;

static void on_signal_main(int sig)
{
    g_stopping = 1;
    on_signal(sig);
}

int main(int argc, char **argv)
{
    const char *context = NULL, *name = NULL;
    bool rebuild = false, keep_old = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(argv[i], "--rebuild") == 0) {
            rebuild = true;
        } else if (strcmp(argv[i], "--keep-old") == 0) {
            keep_old = true;
        } else if (argv[i][0] == '-' || (context && name)) {
            fputs(usage, stderr);
            return 2;
        } else if (!context) {
            context = argv[i];
        } else {
            name = argv[i];
        }
    }
    if (!context || (keep_old && !rebuild)) {
        fputs(usage, stderr);
        return 2;
    }
    es_log_init("projector");
    const pj_projection_t *p = pj_projection_find(context, name);
    if (!p) {
        es_error("no projection '%s' for context '%s'", name ? name : "", context);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal_main;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    es_err_t err = ES_ERR_INIT;
    const char *addr = es_env_str("EVENTSHOP_METRICS_ADDR", NULL);
    if (addr && es_metrics_serve(addr, &err)) {
        es_error("metrics on '%s': %s", addr, err.msg);
        return 1;
    }
    if (!rebuild && es_zipkin_init("projector", &err)) {
        es_error("projector %s: %s", p->name, err.msg);
        return 1;
    }
    if (rebuild) {
        pj_rebuild_options_t ro = {.keep_old = keep_old,
                                   .batch_max = (int)es_env_long("EVENTSHOP_PROJECTOR_BATCH", 0)};
        if (pj_rebuild(p, &ro, &err)) {
            es_error("rebuild %s: %s", p->name, err.msg);
            return 1;
        }
        return 0;
    }
    pj_options_t opt;
    pj_options_from_env(&opt);
    /* versions concern the live tables only (a suffix is for tests and experiments) */
    if ((!opt.suffix || !*opt.suffix) && ensure_version(p, &g_stopping))
        return g_stopping ? 0 : 1;
    pj_runtime_t *rt = pj_runtime_new(p, &opt, &err);
    if (!rt) {
        es_error("projector %s: %s", p->name, err.msg);
        return 1;
    }
    g_rt = rt;
    int rc = pj_runtime_run(rt, &err);
    if (rc)
        es_error("projector %s: %s", p->name, err.msg);
    g_rt = NULL;
    pj_runtime_free(rt);
    es_zipkin_shutdown();
    return rc ? 1 : 0;
}
