/* api_stream_run — one accepted GET /v1/stream on its loop thread (internal to api/; the contract
 * is api_stream.h's). Memory per stream is bounded: one piece (API_STREAM_PIECE_BYTES, about
 * API_STREAM_PIECE_EVENTS events) is built only when the last one went out; a live stream reads
 * the hub's shared ring and falls out of it (event "end", reason overflow) when it lags further
 * than the ring holds; a catch-up reader prefetches at most API_STREAM_READER_KBYTES. */
#ifndef API_STREAM_RUN_H
#define API_STREAM_RUN_H

#include "api_app.h"
#include "api_stream_hub.h"
#include <stdbool.h>
#include <stdint.h>

#define API_STREAM_MAX           64 /* EVENTSHOP_STREAM_MAX: open streams per API process */
#define API_STREAM_CATCHUP_MAX   8  /* EVENTSHOP_STREAM_CATCHUP_MAX: catch-up readers at once */
#define API_STREAM_TYPES_MAX     16
#define API_STREAM_PIECE_BYTES   65536
#define API_STREAM_PIECE_EVENTS  256
#define API_STREAM_READER_KBYTES "1024"
#define API_STREAM_HEARTBEAT_MS  15000

/* What a request asked for (api_stream.c fills it). */
struct api_stream_spec {
    struct api_principal who;
    bool ctx_want[API_MAX_CONTEXTS]; /* by the app's context index */
    bool *want;                      /* by the hub's partition number */
    int64_t *cursor;                 /* the next offset of each partition (unless from_now) */
    bool from_now;
    char types[API_STREAM_TYPES_MAX][128];
    int n_types;
    char aggregate[129]; /* "" for any */
    long limit;          /* 0: none */
    bool until_now;
};

void api_stream_spec_free(struct api_stream_spec *spec); /* NULL is a no-op */

/* Runs the stream of r as spec (stolen) says: 0 once it is streaming, or -1, answering nothing,
 * when it needs a catch-up reader and API_STREAM_CATCHUP_MAX are busy. It gives back its slot
 * (api_stream_slot_give) when it ends. */
int api_stream_run(es_http_req_t *r, struct api_stream_spec *spec);

/* The cursor text of cursor over the partitions in want (new string): the SSE id. */
char *api_stream_cursor_encode(api_stream_hub_t *hub, const struct api_app *app, const bool *want,
                               const int64_t *cursor);

/* The process-wide caps (api_stream.c). */
bool api_stream_catchup_take(void);
void api_stream_catchup_give(void);
void api_stream_slot_give(void);

#endif
