/* es_trace — W3C trace context (traceparent "00-<trace id>-<span id>-<flags>"), carried from
 * the HTTP request through Kafka headers into every role's log lines. */
#ifndef ES_TRACE_H
#define ES_TRACE_H

#include "es_log.h"
#include <stdbool.h>

#define ES_TRACEPARENT_LEN 56 /* 55 characters + NUL */
#define ES_TRACE_ID_LEN    33

/* True for a well-formed version-00 traceparent with non-zero ids. NULL is not valid. */
bool es_trace_valid(const char *traceparent);
/* A new traceparent with random ids, not sampled (flags 00): a trace the engine starts itself.
 * A client that wants its request followed sends a sampled one (flags 01), which every hop keeps
 * (es_trace_child) and logs at info (es_trace_log_level). */
void es_trace_new(char out[ES_TRACEPARENT_LEN]);
/* The next hop: parent's trace id and flags with a new span id, or a new trace when parent is
 * NULL or invalid. */
void es_trace_child(const char *parent, char out[ES_TRACEPARENT_LEN]);
/* Whether a valid traceparent has its sampled flag set. */
bool es_trace_sampled(const char *traceparent);
/* The level of a line logged for each command or event of a trace: info for a sampled trace (a
 * client asked to follow it), debug otherwise (one line per message costs throughput). */
es_log_level_t es_trace_log_level(const char *traceparent);
/* The 32-hex trace id of a valid traceparent (empty string otherwise). */
void es_trace_id(const char *traceparent, char out[ES_TRACE_ID_LEN]);

#endif
