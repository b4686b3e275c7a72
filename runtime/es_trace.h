/* es_trace — W3C trace context (traceparent "00-<trace id>-<span id>-<flags>"), carried from
 * the HTTP request through Kafka headers into every role's log lines. */
#ifndef ES_TRACE_H
#define ES_TRACE_H

#include <stdbool.h>

#define ES_TRACEPARENT_LEN 56 /* 55 characters + NUL */
#define ES_TRACE_ID_LEN    33

/* True for a well-formed version-00 traceparent with non-zero ids. NULL is not valid. */
bool es_trace_valid(const char *traceparent);
/* A new sampled traceparent with random ids. */
void es_trace_new(char out[ES_TRACEPARENT_LEN]);
/* The next hop: parent's trace id and flags with a new span id, or a new trace when parent is
 * NULL or invalid. */
void es_trace_child(const char *parent, char out[ES_TRACEPARENT_LEN]);
/* The 32-hex trace id of a valid traceparent (empty string otherwise). */
void es_trace_id(const char *traceparent, char out[ES_TRACE_ID_LEN]);

#endif
