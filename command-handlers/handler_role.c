#include "handler_role.h"
#include "es_env.h"
#include "es_log.h"
#include "es_metrics.h"
#include "es_zipkin.h"
#include "ev_codec.h"
#include "hd_runtime.h"
#include <signal.h>
#include <stddef.h>

/* the runtime a signal stops */
static hd_runtime_t *running;

static void on_signal(int sig)
{
    (void)sig;
    if (running)
        hd_runtime_stop(running);
}

int handler_role_run(const hd_context_t *ctx, bool check_only)
{
    es_err_t err = ES_ERR_INIT;
    int rc = 1;
    sr_client_t *sr = NULL;
    ev_codec_t *codec = NULL;
    hd_runtime_t *rt = NULL;
    ev_codec_global_init();
    const char *metrics_addr = check_only ? NULL : es_env_str("EVENTSHOP_METRICS_ADDR", NULL);
    if (metrics_addr && *metrics_addr && es_metrics_serve(metrics_addr, &err) != 0)
        goto out;
    if (!(sr = sr_client_new(es_env_registry_url(), &err)) ||
        !(codec = ev_codec_new(es_env_schema_dir(), sr, &err)))
        goto out;
    if (ev_codec_register_context(codec, ctx->name, &err) != 0) {
        if (err.code == ES_ECONFLICT) {
            es_error("%s: a '%s' schema is incompatible with the registry's: %s",
                     check_only ? "schema check failed" : "refusing to start", ctx->name, err.msg);
            /* the schema Job does not retry a rejection (deploy/base/schema-job.yaml) */
            if (check_only)
                rc = 3;
        }
        goto out;
    }
    if (check_only) {
        es_info("schemas of '%s' are registered and compatible", ctx->name);
        rc = 0;
        goto out;
    }
    if (es_zipkin_init("handler", &err) != 0 || !(rt = hd_runtime_new(ctx, codec, NULL, &err)))
        goto out;
    running = rt;
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    rc = hd_runtime_run(rt, &err) == 0 ? 0 : 1;
out:
    if (es_failed(&err) && err.code != ES_ECONFLICT)
        es_error("handler '%s': %s", ctx->name, err.msg);
    running = NULL;
    hd_runtime_free(rt);
    es_zipkin_shutdown();
    ev_codec_free(codec);
    sr_client_free(sr);
    return rc;
}
