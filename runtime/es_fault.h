/* es_fault — named fault-injection points, so that tests force a crash or a failure at an
 * exact place instead of hoping a timed kill lands there.
 *
 * EVENTSHOP_FAULTS="point[=action][@n],..." arms points; unset (production), every call is a
 * cheap no-op. action: "crash" (default: log a line, then SIGKILL the process, as a power cut
 * would) or "fail" (es_fault_hit returns true: the caller takes its error path). @n fires on the
 * n-th hit of the point only (1-based, default 1); @n+ fires on the n-th and every later hit.
 * Points are named "<module>.<place>", e.g. "notify.after_claim". Thread-safe. */
#ifndef ES_FAULT_H
#define ES_FAULT_H

#include <stdbool.h>

/* Counts a hit of point; crashes the process or returns true when an armed fault fires. */
bool es_fault_hit(const char *point);

#endif
