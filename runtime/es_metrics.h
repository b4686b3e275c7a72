/* es_metrics — Prometheus counters, gauges and histograms in one process-wide registry, rendered
 * in the text exposition format. Metric objects live until exit; lookups by (name, labels) are
 * meant for set-up time: keep the pointer. Thread-safe (atomic updates). */
#ifndef ES_METRICS_H
#define ES_METRICS_H

#include "es_err.h"
#include <stdbool.h>
#include <stddef.h>

typedef struct es_metric es_metric_t;

/* labels is the inside of the braces, e.g. "type=\"ListProduct\",status=\"accepted\"", or "".
 * The same name and labels give the same object. */
es_metric_t *es_counter(const char *name, const char *help, const char *labels);
es_metric_t *es_gauge(const char *name, const char *help, const char *labels);
/* Buckets in seconds: 0.0005 ... 10 (fixed set). */
es_metric_t *es_histogram(const char *name, const char *help, const char *labels);

/* Takes m out of the rendered registry (a gauge of something gone: a finished rebuild's
 * partition); m stays valid, and looking it up again by name and labels brings it back. */
void es_metric_retire(es_metric_t *m);

void es_metric_add(es_metric_t *m, double v);           /* counter, gauge */
void es_metric_set(es_metric_t *m, double v);           /* gauge */
void es_metric_observe(es_metric_t *m, double seconds); /* histogram */

/* The whole registry in Prometheus text format, owned by the caller (free()). */
char *es_metrics_render(void);

/* For roles without an HTTP server of their own: a thread serving GET /metrics, /healthz and
 * /readyz (es_metrics_probe) on addr "host:port". */
int es_metrics_serve(const char *addr, es_err_t *err);

/* Readiness: whether the role can do its work. The role says when it has started
 * (es_metrics_set_ready, false until then) and declares each dependency its work needs with
 * its state (es_metrics_set_dependency); it is ready while started and every dependency is up. */
void es_metrics_set_ready(bool ready);
bool es_metrics_is_ready(void);
/* Declares dependency name (a static string: "kafka", "mysql") and whether it is up now; logs a
 * line when that changes and sets gauge eventshop_dependency_up{dependency="<name>"}. At most
 * 8 names. Thread-safe. */
void es_metrics_set_dependency(const char *name, bool up);

/* Liveness: whether every loop of the role still turns (a wedged loop, not a missing
 * dependency, which is readiness). A loop calls es_metrics_heartbeat at least once per turn and
 * turns at least every few seconds even when idle (block with a timeout); the first call from a
 * thread registers that thread's loop under loop (a static string). A thread whose loop ends
 * calls es_metrics_heartbeat_end. The role is live while no registered loop has been silent for
 * longer than the stall limit: EVENTSHOP_HEALTH_STALL_S (default 90 s, above the longest
 * legitimate blocking call: a MariaDB read timeout of 60 s). Thread-safe, lock-free per beat. */
void es_metrics_heartbeat(const char *loop);
void es_metrics_heartbeat_end(void);
/* Overrides the stall limit (tests). */
void es_metrics_set_stall_ms(long ms);
/* Whether the role is live; when not and why is not NULL, names the silent loop in why. */
bool es_metrics_is_live(char *why, size_t cap);

/* The answer to /healthz (readiness false) or /readyz (true): the HTTP status (200 or 503) and
 * a JSON body owned by the caller (free()), e.g. {"status":"not ready","kafka":false}. */
int es_metrics_probe(bool readiness, char **body);

#endif
