/* api_results — the outcomes of recent commands: a thread reads every partition of the
 * <context>.results topic of every context the API serves (assigned, no group membership,
 * read_committed) from the offsets of (now - 15 min), keeps a bounded map command_id -> outcome
 * (the oldest evicted first) and answers the requests waiting for one (Prefer: wait=N), each by its
 * deadline. */
#ifndef API_RESULTS_H
#define API_RESULTS_H

#include "api_outcome.h"
#include "es_err.h"
#include "es_http.h"
#include "ev_codec.h"
#include <stdbool.h>
#include <stddef.h>

typedef struct api_results api_results_t;

#define API_RESULTS_LOOKBACK_MS (15 * 60 * 1000)
#define API_RESULTS_CAPACITY    100000

/* codec is borrowed and must outlive the results; contexts (n names, borrowed) are read at the
 * call. Starts the thread. NULL with err. */
api_results_t *api_results_new(ev_codec_t *codec, const char *const *contexts, size_t n,
                               size_t capacity, es_err_t *err);
/* Stops the thread; waiting requests get their 202. NULL is a no-op. */
void api_results_free(api_results_t *res);

/* Copies the outcome of command_id to *o and returns true, or false if none is known yet. */
bool api_results_get(api_results_t *res, const char *command_id, struct api_outcome *o);

/* Remembers that actor (borrowed) sent command_id through this API, so that its sender is known
 * before its outcome is (api_results_find). Kept in the same bounded map as outcomes. */
void api_results_note_sent(api_results_t *res, const char *command_id, const char *actor);

/* Whether command_id is known at all: sent through this API (api_results_note_sent) or decided.
 * Then *o is its outcome, or (when *decided is false) only its command_id and actor. */
bool api_results_find(api_results_t *res, const char *command_id, struct api_outcome *o,
                      bool *decided);

/* Takes over p: answers it with the outcome of command_id as soon as it is known (201 with
 * created->location when created is not NULL and the command was accepted: see
 * api_answer_outcome), or with 202 pending (naming created, see api_answer_pending) after
 * wait_s seconds. created is copied. Either answer carries Preference-Applied: wait=<wait_s>. */
void api_results_wait(api_results_t *res, const char *command_id, es_http_pending_t *p, int wait_s,
                      const struct api_created *created);

/* Records an outcome (the consumer thread does; exposed for tests). Wakes its waiters. */
void api_results_put(api_results_t *res, const struct api_outcome *o);

/* Whether a result read here named an event of context ctx at or past offset on partition: then
 * the position offset exists (it is below the partition's high watermark) and a read-your-writes
 * request may wait on it without asking the broker. */
bool api_results_position_known(api_results_t *res, const char *ctx, int32_t partition,
                                int64_t offset);
/* Notes that a result of ctx named partition:offset (the consumer thread does; for tests). */
void api_results_note_position(api_results_t *res, const char *ctx, int32_t partition,
                               int64_t offset);

/* Counts one outcome of context ctx (the consumer thread does; for tests). */
void api_results_count(api_results_t *res, const char *ctx, bool accepted);
/* The outcomes of ctx's commands this process has read (since its start, and the 15 minutes
 * before it): every API process reads every result, so each tells the whole cluster's. */
void api_results_counts(api_results_t *res, const char *ctx, long long *accepted,
                        long long *rejected);

/* A map without a consumer (tests): capacity outcomes at most. */
api_results_t *api_results_new_offline(size_t capacity);

#endif
