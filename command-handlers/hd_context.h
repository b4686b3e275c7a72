/* hd_context — what a bounded context gives the generic command-handler runtime: a pure decider
 * (decide + evolve, no I/O, no clock, no randomness: time and new ids arrive in the command's
 * metadata) and the names the runtime needs. The runtime owns versions, event metadata, dedupe and
 * expected-version checks; a decider sees only JSON states, commands and event payloads. */
#ifndef HD_CONTEXT_H
#define HD_CONTEXT_H

#include <jansson.h>

/* The outcome of one decide call, embedded (hd_decision_init / hd_decision_release).
 * Accepted: reason == NULL and events holds zero or more {"type": full name, "payload": object
 * without metadata}. Rejected: reason is a stable code (a string literal, e.g. "not_owner") and
 * detail a human-readable explanation; events is then empty. */
typedef struct hd_decision {
    json_t *events; /* owned array */
    const char *reason;
    char detail[256];
} hd_decision_t;

void hd_decision_init(hd_decision_t *d);
void hd_decision_release(hd_decision_t *d);
/* Rejects with reason (borrowed, must be static) and a printf-style detail; clears any event
 * already emitted. Returns 0 so a decider can `return hd_reject(...)`. */
int hd_reject(hd_decision_t *d, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Appends an event of full type name type (borrowed, copied); payload is stolen. */
void hd_emit(hd_decision_t *d, const char *type, json_t *payload);

typedef struct hd_context {
    const char *name; /* "catalog": topics are "<name>.commands" etc. */
    const char
        *state_type; /* full name of the changelog record, "eventshop.catalog.ProductState" */
    /* Decides cmd (borrowed, the decoded command with its metadata) of full name cmd_type against
     * state (borrowed, NULL if the aggregate does not exist) into out (initialised by the
     * caller). Returns 0 when decided (accepted or rejected), -1 on a bug. An unknown cmd_type is
     * rejected with "unknown_command". */
    int (*decide)(const json_t *state, const char *cmd_type, const json_t *cmd, hd_decision_t *out);
    /* Applies one event of full name event_type (payload borrowed; it may carry a "metadata"
     * member, which evolve ignores) to state (stolen, NULL if none) and returns the new state
     * (owned by the caller; NULL deletes the aggregate). The "version" member is the runtime's. */
    json_t *(*evolve)(json_t *state, const char *event_type, const json_t *payload);
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
