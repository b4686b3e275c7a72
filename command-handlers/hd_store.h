/* hd_store — what a handler keeps of its partitions on local disk (es_kv: LMDB), and the bounded
 * cache of decoded states in front of it. For each partition p it holds the states (aggregate id
 * -> the changelog record's encoded value), the decided commands (command id -> the results
 * record's offset and encoded value) and, per log (changelog, results), the next offset to read:
 * every record before it is reflected. The store is a cache of the changelog and results topics:
 * an empty one is recovered from them. */
#ifndef HD_STORE_H
#define HD_STORE_H

#include "es_err.h"
#include <jansson.h>
#include <stdint.h>

typedef struct hd_store hd_store_t;

typedef enum hd_store_log { HD_LOG_CHANGELOG = 'c', HD_LOG_RESULTS = 'r' } hd_store_log_t;

/* Opens the store in dir (made if missing), its map up to map_mb MiB, with a cache of at most
 * cache_max decoded states (0: none). NULL with err. */
hd_store_t *hd_store_open(const char *dir, size_t map_mb, size_t cache_max, es_err_t *err);
void hd_store_free(hd_store_t *st);

/* The next offset of log to read for partition p into *off (0 when the store has none): 0, or -1
 * with err. */
int hd_store_offset(hd_store_t *st, int32_t p, hd_store_log_t log, int64_t *off, es_err_t *err);

/* The encoded state of aggregate id / the offset and encoded result of command id in partition p,
 * as last committed (not the open write's: these two may be called from one thread other than the
 * writer's, which owns the cache too): 0 and *buf (owned) and *len, 1 when absent, -1 with err.
 * *offset may be NULL. */
int hd_store_state_get(hd_store_t *st, int32_t p, const char *id, void **buf, size_t *len,
                       es_err_t *err);
int hd_store_result_get(hd_store_t *st, int32_t p, const char *id, int64_t *offset, void **buf,
                        size_t *len, es_err_t *err);

/* --- writing: between hd_store_begin and hd_store_commit (or hd_store_abort) ------------------ */

int hd_store_begin(hd_store_t *st, es_err_t *err);
int hd_store_commit(hd_store_t *st, es_err_t *err);
void hd_store_abort(hd_store_t *st);
/* Sets the state of id to buf (borrowed; NULL: the aggregate is gone) in partition p. 0 or -1. */
int hd_store_state_put(hd_store_t *st, int32_t p, const char *id, const void *buf, size_t len,
                       es_err_t *err);
/* Keeps the result of command id (buf borrowed, the results record at offset) unless one is
 * kept already: the first outcome of a command is its outcome. 0 or -1. */
int hd_store_result_add(hd_store_t *st, int32_t p, const char *id, int64_t offset, const void *buf,
                        size_t len, es_err_t *err);
int hd_store_offset_set(hd_store_t *st, int32_t p, hd_store_log_t log, int64_t off, es_err_t *err);
/* Forgets every state (HD_LOG_CHANGELOG) or result (HD_LOG_RESULTS) of partition p, and its
 * offset. 0 or -1. */
int hd_store_forget(hd_store_t *st, int32_t p, hd_store_log_t log, es_err_t *err);
/* Forgets the results of partition p kept from an offset below low (past the topic's retention),
 * adding their number to *pruned. 0 or -1. */
int hd_store_prune_results(hd_store_t *st, int32_t p, int64_t low, size_t *pruned, es_err_t *err);
/* Drops the store's pages, and the heap's free memory, from the resident set (after a recovery
 * wrote many): 0, or -1 with
 * err (the store is then unusable: a fatal error). */
int hd_store_trim(hd_store_t *st, es_err_t *err);

/* --- the cache of decoded states (CLOCK) -------------------------------------------------------
 */

/* The cached state of id in p: borrowed (valid until the next hd_store_cache_* call), or NULL. */
json_t *hd_store_cache_get(hd_store_t *st, int32_t p, const char *id);
/* Caches state (a new reference is taken) for id in p, evicting the least recently used entry
 * when full; state NULL forgets id. */
void hd_store_cache_set(hd_store_t *st, int32_t p, const char *id, json_t *state);
/* The same for an id already cached only (a write: what is not read again stays out). */
void hd_store_cache_update(hd_store_t *st, int32_t p, const char *id, json_t *state);
void hd_store_cache_clear(hd_store_t *st);

#endif
