/* Probes and metrics: /healthz (every loop of the API still turns: the HTTP loops, the producer's
 * and the results' threads; es_metrics heartbeats), /readyz (a Kafka broker answered the producer
 * lately: the API's work is taking commands; its queries answer 503 on their own while their
 * database is gone, so MariaDB is not part of readiness), /metrics (Prometheus text). */
#include "api_app.h"
#include "api_reply.h"
#include <stdlib.h>
#include <string.h>

static void reply_probe(es_http_req_t *r, bool readiness)
{
    char *body = NULL;
    int status = es_metrics_probe(readiness, &body);
    es_http_reply(r, status, "application/json", body, strlen(body));
    free(body);
}

void api_health_live(es_http_req_t *r, const struct api_principal *who)
{
    (void)who;
    reply_probe(r, false);
}

void api_health_ready(es_http_req_t *r, const struct api_principal *who)
{
    (void)who;
    reply_probe(r, true);
}

void api_health_metrics(es_http_req_t *r, const struct api_principal *who)
{
    (void)who;
    char *text = es_metrics_render();
    es_http_reply(r, 200, "text/plain; version=0.0.4", text, strlen(text));
    free(text);
}
