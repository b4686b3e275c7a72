#include "pj_policy.h"
#include "es_env.h"
#include "es_log.h"
#include "es_metrics.h"
#include "es_zipkin.h"
#include <signal.h>
#include <string.h>
#include <time.h>

/* What a signal stops: set before the handlers are installed, cleared after the run. */
static pj_runtime_t *g_rt;
static volatile sig_atomic_t g_stopping;

static void on_signal(int sig)
{
    (void)sig;
    g_stopping = 1;
    pj_rebuild_stop();
    if (g_rt)
        pj_runtime_stop(g_rt);
}

/* Until the live tables' version is the code's: rebuild them (or wait for an operator). */
static int ensure_version(const pj_projection_t *p)
{
    bool auto_rebuild = es_env_long("EVENTSHOP_PROJECTOR_AUTO_REBUILD", 1) != 0;
    while (!g_stopping) {
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
        for (int i = 0; i < 50 && !g_stopping; i++)
            nanosleep(&(struct timespec){0, 100 * 1000000L}, NULL);
    }
    return -1;
}

static int run_rebuild(const pj_projection_t *p, bool keep_old)
{
    es_err_t err = ES_ERR_INIT;
    pj_rebuild_options_t ro = {.keep_old = keep_old,
                               .batch_max = (int)es_env_long("EVENTSHOP_PROJECTOR_BATCH", 0)};
    if (pj_rebuild(p, &ro, &err)) {
        es_error("rebuild %s: %s", p->name, err.msg);
        return 1;
    }
    return 0;
}

static int run_live(const pj_projection_t *p)
{
    es_err_t err = ES_ERR_INIT;
    if (es_zipkin_init("projector", &err)) {
        es_error("projector %s: %s", p->name, err.msg);
        return 1;
    }
    pj_options_t opt;
    pj_options_from_env(&opt);
    /* versions concern the live tables only (a suffix is for tests and experiments) */
    if ((!opt.suffix || !*opt.suffix) && ensure_version(p))
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

int pj_role_run(const pj_projection_t *p, const pj_role_options_t *opt)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    es_err_t err = ES_ERR_INIT;
    const char *addr = es_env_str("EVENTSHOP_METRICS_ADDR", NULL);
    if (addr && es_metrics_serve(addr, &err)) {
        es_error("metrics on '%s': %s", addr, err.msg);
        return 1;
    }
    return opt->rebuild ? run_rebuild(p, opt->keep_old) : run_live(p);
}
