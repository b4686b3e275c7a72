/* hd_views — a handler's global views (hd_view_t, DESIGN.md §4): one assign-only, read_committed
 * consumer over every partition of every view topic of a context, folding their events into the
 * one view object its decider reads. Read from the beginning at start and caught up to the last
 * stable offsets before each batch, so a command produced after an event was committed always
 * sees it. Internal to the handler runtime (hd_runtime.c). */
#ifndef HD_VIEWS_H
#define HD_VIEWS_H

#include "es_err.h"
#include "ev_codec.h"
#include "hd_context.h"
#include <jansson.h>
#include <signal.h>
#include <stddef.h>

typedef struct hd_views hd_views_t;

/* The views of ctx: an empty view object, and a consumer assigned every view partition from its
 * beginning (none when ctx has no views). ctx and codec are borrowed and must outlive the views;
 * stop (borrowed, may be NULL) makes a catch-up give up once set. NULL with err on failure. */
hd_views_t *hd_views_new(const hd_context_t *ctx, ev_codec_t *codec,
                         const volatile sig_atomic_t *stop, es_err_t *err);
/* Reads the views at least up to the last stable offset, as of this call, of every view
 * partition (the consumer is paused in between): every event committed before the call is folded
 * when it returns 0. -1 with err (ES_ETIMEOUT) after timeout_ms or on a stop; ES_EIO when the
 * offsets cannot be asked. 0 at once without views. */
int hd_views_catch_up(hd_views_t *v, int timeout_ms, es_err_t *err);
/* The view object the events fold into (borrowed; an empty object without views). */
const json_t *hd_views_get(const hd_views_t *v);
/* How many view partitions are read; 0 without views. */
size_t hd_views_partition_count(const hd_views_t *v);
/* Closes the consumer; NULL is a no-op. */
void hd_views_free(hd_views_t *v);

#endif
