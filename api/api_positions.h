/* api_positions — the read models' applied positions, watched once per API process for every
 * read-your-writes request waiting on them (api_query.c).
 *
 * One thread reads each context's projection_offsets (every projection and partition, one
 * query) only while some request waits on that context: at once when a request starts waiting,
 * then every 1 ms while the offsets move, backing off to 8 ms while they stand still. Each read
 * is published as the context's snapshot and every loop thread with waiters on a context whose
 * offsets moved (or whose database failed) is woken (es_http_waker) to answer them. Nobody
 * waiting: the thread sleeps on a condition variable, no query, no CPU.
 *
 * Stored offsets only grow (a rebuild swaps in tables that caught up with the live ones), so a
 * snapshot that says "reached" is right however old it is. */
#ifndef API_POSITIONS_H
#define API_POSITIONS_H

#include "es_err.h"
#include "es_http.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct api_positions api_positions_t;
typedef struct api_positions_sub api_positions_sub_t;

/* Starts the watcher of the n contexts (names borrowed, they must outlive it); NULL with err. */
api_positions_t *api_positions_new(const char (*contexts)[32], size_t n, es_err_t *err);
/* Stops the thread; every subscription must be gone. NULL is a no-op. */
void api_positions_free(api_positions_t *p);

/* A loop thread's interest in context ctx (its index in contexts): wake (borrowed, of that loop)
 * is posted when the context's snapshot moved or its database failed while the subscription
 * wants (api_positions_want). Freed by api_positions_unsubscribe, on the same loop thread, before
 * wake: after it returns wake is posted no more. */
api_positions_sub_t *api_positions_subscribe(api_positions_t *p, size_t ctx, es_http_waker_t *wake);
void api_positions_unsubscribe(api_positions_sub_t *s);
/* The number of requests waiting through s changes by delta; a new waiter makes the watcher
 * read the offsets at once. */
void api_positions_want(api_positions_sub_t *s, int delta);

/* Whether the context's snapshot shows projection past offset on partition. *down (may be NULL)
 * is set when the last read of the context failed (its database is unreachable). */
bool api_positions_reached(api_positions_sub_t *s, const char *projection, int32_t partition,
                           int64_t offset, bool *down);

#endif
