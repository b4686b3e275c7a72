/* api_cache — the hottest read-model rows held in the API process, fed by the events: products
 * (table products of catalog_products), list prices (prices and price_rules of pricing_prices) and
 * stock (stock of inventory_stock), per sku, for the contexts the API serves.
 *
 * Filled on a miss: the GET answers from MySQL as before and, on the sku's second recent miss
 * (one-off reads of a large scan load nothing), asks the cache's loader thread for the sku, which
 * reads the rows, the projection's stored offsets and the sku's partition (from the
 * event index) in one consistent snapshot (one statement; a transaction WITH CONSISTENT SNAPSHOT
 * for a price and its rules), so an
 * entry knows from which offset of its partition on it lacks events (from). Kept current by the
 * stream hub's consumer (api_stream_hub.h: read_committed, every partition, no group): each
 * record of a cached sku at or past its from is decoded, planned with the projection's own plan
 * function and applied to a copy of the rows with pj_row.h (the interpreter of the projections'
 * SQL), then swapped in; a plan the projector would dead-letter leaves the rows as they were.
 * The feed's position per partition (next) moves only after the record is applied.
 *
 * Never stale past a position: an entry loaded at from < next would lack the records of
 * [from, next) the feed read before it existed, so the loader inserts it only when the recent-keys
 * ring of its partition (the last API_CACHE_RING records' key hashes) covers that range and holds
 * no record of the sku there; otherwise the load is dropped (a later miss tries again). An entry
 * then reflects every event of its sku below max(from, next) of its partition: a request whose
 * X-Min-Position (or ?min_position=) p:o has max(from, next) > o on its partition (or next > o on
 * another one) is answered from it, any other falls back to MySQL (and its wait).
 *
 * Bounded: EVENTSHOP_API_CACHE_ENTRIES entries at most (default 20000; about 3 KiB each,
 * measured: 20 k products took 58 MiB of RSS; 0 turns the cache off), the least recently used
 * evicted first; API_CACHE_PENDING loads queued at most (a miss beyond them is not queued). A
 * request with Cache-Control: no-cache skips it. Metrics:
 * eventshop_api_cache_{hits,misses,loads,loads_dropped,evictions}_total,
 * eventshop_api_cache_entries. Thread-safe: one mutex; snapshots handed out are never changed. */
#ifndef API_CACHE_H
#define API_CACHE_H

#include "api_stream_hub.h"
#include "es_http.h"
#include "ev_codec.h"
#include <jansson.h>
#include <stddef.h>

#define API_CACHE_RING    16384 /* recent records' key hashes kept per partition */
#define API_CACHE_PENDING 256

typedef struct api_cache api_cache_t;

/* The cache for the cached contexts among contexts (n names, copied), decoding with codec
 * (borrowed: outlives the cache), and its loader thread; NULL when the cache is off
 * (EVENTSHOP_API_CACHE_ENTRIES=0) or no cached context is served. */
api_cache_t *api_cache_new(const char (*contexts)[32], size_t n, ev_codec_t *codec);
/* Stops the loader. Free after the hub that feeds it. NULL: no-op. */
void api_cache_free(api_cache_t *c);
/* The sink to give api_stream_hub_new for the same contexts, in the same order. */
struct api_stream_sink api_cache_sink(api_cache_t *c);

/* The rows the cache holds for the path's {sku} of ctx, when it holds them at the request's
 * position: a new reference to {table: [rows sorted by primary key, every column]}, never
 * changed afterwards. NULL (a miss, the load then queued; a position not reached; no-cache; a
 * malformed position or sku, which the MySQL path refuses): answer from MySQL. */
json_t *api_cache_get(es_http_req_t *r, const char *ctx);
/* The same for sku of ctx without any position (the cache's present), e.g. another context's
 * rows an answer also shows. */
json_t *api_cache_peek(es_http_req_t *r, const char *ctx, const char *sku);
/* Pure: table's rows of snapshot snap (borrowed) with columns ("a, b, c") in that order, as
 * es_db_query gives "SELECT a, b, c": a new array; NULL when snap holds no such table. */
json_t *api_cache_rows(const json_t *snap, const char *table, const char *columns);
/* api_cache_get then the first row of table with columns (new reference), or NULL. */
json_t *api_cache_row(es_http_req_t *r, const char *ctx, const char *table, const char *columns);

#endif
