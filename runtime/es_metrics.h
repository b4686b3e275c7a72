/* es_metrics — Prometheus counters, gauges and histograms in one process-wide registry, rendered
 * in the text exposition format. Metric objects live until exit; lookups by (name, labels) are
 * meant for set-up time: keep the pointer. Thread-safe (atomic updates). */
#ifndef ES_METRICS_H
#define ES_METRICS_H

#include "es_err.h"
#include <stdbool.h>

typedef struct es_metric es_metric_t;

/* labels is the inside of the braces, e.g. "type=\"ListProduct\",status=\"accepted\"", or "".
 * The same name and labels give the same object. */
es_metric_t *es_counter(const char *name, const char *help, const char *labels);
es_metric_t *es_gauge(const char *name, const char *help, const char *labels);
/* Buckets in seconds: 0.0005 ... 10 (fixed set). */
es_metric_t *es_histogram(const char *name, const char *help, const char *labels);

void es_metric_add(es_metric_t *m, double v);           /* counter, gauge */
void es_metric_set(es_metric_t *m, double v);           /* gauge */
void es_metric_observe(es_metric_t *m, double seconds); /* histogram */

/* The whole registry in Prometheus text format, owned by the caller (free()). */
char *es_metrics_render(void);

/* For roles without an HTTP server of their own: a thread serving GET /metrics, /healthz and
 * /readyz (200 once es_metrics_set_ready(true), 503 before) on addr "host:port". */
int es_metrics_serve(const char *addr, es_err_t *err);
void es_metrics_set_ready(bool ready);
bool es_metrics_is_ready(void);

#endif
