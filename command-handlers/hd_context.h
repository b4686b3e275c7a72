/* hd_context — what a bounded context gives the generic command-handler runtime: a pure decider
 * (decide + evolve, no I/O, no clock, no randomness: time and new ids arrive in the command's
 * metadata) and the names the runtime needs. The runtime owns versions, event metadata, dedupe and
 * expected-version checks; a decider sees only JSON states, commands and event payloads. */
#ifndef HD_CONTEXT_H
#define HD_CONTEXT_H

#include <jansson.h>
#include <stdbool.h>

/* The outcome of one decide call, embedded (hd_decision_init / hd_decision_release).
 * Accepted: reason == NULL and events holds zero or more {"type": full name, "payload": object
 * without metadata}. Rejected: reason is a stable code (a string literal, e.g. "not_owner") and
 * detail a human-readable explanation; events is then empty. */
typedef struct hd_decision {
    json_t *events; /* owned array */
    const char *reason;
    char detail[256];
    bool keep_events; /* rejected, yet its events are written (hd_reject_keep_events) */
} hd_decision_t;

void hd_decision_init(hd_decision_t *d);
void hd_decision_release(hd_decision_t *d);
/* Rejects with reason (borrowed, must be static) and a printf-style detail; clears any event
 * already emitted. Returns 0 so a decider can `return hd_reject(...)`. */
int hd_reject(hd_decision_t *d, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Rejects like hd_reject but keeps the events emitted so far: the runtime writes them (and the
 * new state) and the command's result is still REJECTED with reason, e.g. inventory's
 * StockReservationRejected, which other contexts read from the events. Returns 0. */
int hd_reject_keep_events(hd_decision_t *d, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Appends an event of full type name type (borrowed, copied); payload is stolen. */
void hd_emit(hd_decision_t *d, const char *type, json_t *payload);

/* A global view a context's decider reads (DESIGN.md §4 "global views it needs"): the runtime
 * reads topic (every partition, read_committed) from its beginning at start and calls fold for
 * each event, in order within a partition, on the context's ONE view object. Before deciding a
 * batch it catches up at least to the last stable offsets seen at the batch start, so a command
 * produced after an event was committed is decided with that event folded in. */
typedef struct hd_view {
    const char *topic; /* e.g. "catalog.events" */
    /* Folds one event (borrowed, with its metadata) of full name event_type into view (the
     * context's view object, borrowed, mutated in place). Must ignore unknown types. */
    void (*fold)(json_t *view, const char *event_type, const json_t *event);
} hd_view_t;

/* The two functions of every decider, declared once here: a context's header says
 * `hd_decide_fn inventory_decide;` and its .c defines it with this signature.
 *
 * Decides cmd (borrowed, the decoded command with its metadata) of full name cmd_type against
 * state (borrowed, NULL if the aggregate does not exist) and view (borrowed: the object the views
 * fold into; an empty object when the context has no views) into out (initialised by the
 * caller). Returns 0 when decided (accepted or rejected), -1 on a bug. An unknown cmd_type is
 * rejected with "unknown_command". */
typedef int hd_decide_fn(const json_t *state, const char *cmd_type, const json_t *cmd,
                         const json_t *view, hd_decision_t *out);
/* Applies one event of full name event_type (payload borrowed; it may carry a "metadata" member,
 * which evolve ignores) to state (stolen, NULL if none) and returns the new state (owned by the
 * caller; NULL deletes the aggregate). The "version" member is the runtime's. */
typedef json_t *hd_evolve_fn(json_t *state, const char *event_type, const json_t *payload);

/* A context as the runtime sees it; every context's is a row of the one table in hd_context.c. */
typedef struct hd_context {
    const char *name; /* "catalog": topics are "<name>.commands" etc. */
    const char
        *state_type; /* full name of the changelog record, "eventshop.catalog.ProductState" */
    hd_decide_fn *decide;
    hd_evolve_fn *evolve;
    const hd_view_t *views; /* n_views global views the decider reads; NULL if none */
    size_t n_views;
} hd_context_t;

/* The context registered under name, borrowed (static), or NULL. */
const hd_context_t *hd_context_find(const char *name);
/* Names of every registered context, NULL-terminated, borrowed. */
const char *const *hd_context_names(void);

/* Folds events (borrowed JSON array of {"type": full name, "payload": event with metadata}) with
 * ctx->evolve from state (stolen, may be NULL), setting "version" of the result to the
 * metadata.aggregate_version of the last event applied. Returns the new state (owned) or NULL. */
json_t *hd_replay(const hd_context_t *ctx, json_t *state, const json_t *events);

#endif
