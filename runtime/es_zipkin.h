/* es_zipkin — spans in Zipkin's v2 JSON format, POSTed to $EVENTSHOP_ZIPKIN_URL (a base URL,
 * "/api/v2/spans" is appended unless already there) by one background thread. The queue is
 * bounded: a span that does not fit is dropped and counted (eventshop_zipkin_spans_dropped_total),
 * so tracing never slows a role down. Without the variable every call is a cheap no-op.
 * Span ids come from W3C traceparents (es_trace.h). Thread-safe. */
#ifndef ES_ZIPKIN_H
#define ES_ZIPKIN_H

#include "es_err.h"
#include <stdbool.h>
#include <stdint.h>

/* Starts the exporter if EVENTSHOP_ZIPKIN_URL is set; service is the localEndpoint's
 * serviceName (copied). 0 (also when unset), or -1 with err. Call once, at start. */
int es_zipkin_init(const char *service, es_err_t *err);
bool es_zipkin_enabled(void);
/* Wall-clock microseconds, Zipkin's timestamp unit. */
int64_t es_zipkin_now_us(void);
/* Queues one span (everything copied). span is the traceparent whose trace id and span id name
 * this span; parent is the traceparent of its parent span, NULL for a root. kind is "SERVER",
 * "CLIENT", "PRODUCER", "CONSUMER" or NULL. tags: {"key", value, ..., NULL} (ES_F of es_log.h),
 * NULL values left out; may be NULL. An invalid span traceparent is ignored. */
void es_zipkin_span(const char *span, const char *parent, const char *name, const char *kind,
                    int64_t start_us, int64_t duration_us, const char *const *tags);
/* Sends what is queued and stops the thread; call once the role's other threads stopped. */
void es_zipkin_shutdown(void);

#endif
