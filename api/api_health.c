/* Probes and metrics: /healthz (the process answers), /readyz (a Kafka broker answered the
 * producer lately and this thread's DB connection works), /metrics (Prometheus text). */
#include "api_app.h"
#include "api_reply.h"
#include <stdlib.h>
#include <string.h>

void api_health_live(es_http_req_t *r, const struct api_principal *who)
{
    (void)who;
    es_http_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

void api_health_ready(es_http_req_t *r, const struct api_principal *who)
{
    (void)who;
    struct api_app *app = es_http_app(r);
    bool kafka = api_producer_is_ready(app->producer);
    es_err_t err = ES_ERR_INIT;
    es_db_t *db = api_db(r, &err);
    json_t *rows = db ? es_db_query(db, "SELECT 1 AS ok", NULL, 0, &err) : NULL;
    bool mysql = rows != NULL;
    json_decref(rows);
    if (!mysql && err.code == ES_EIO)
        api_db_broken(r);
    bool ok = kafka && mysql;
    es_http_reply_json(r, ok ? 200 : 503,
                       json_pack("{s:s, s:b, s:b}", "status", ok ? "ready" : "not ready", "kafka",
                                 kafka, "mysql", mysql));
}

void api_health_metrics(es_http_req_t *r, const struct api_principal *who)
{
    (void)who;
    char *text = es_metrics_render();
    es_http_reply(r, 200, "text/plain; version=0.0.4", text, strlen(text));
    free(text);
}
