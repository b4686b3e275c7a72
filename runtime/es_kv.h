/* es_kv — an embedded key-value store on local disk (LMDB): one environment in a folder, one
 * unnamed database of byte keys and byte values, one writer at a time (the caller's thread) and
 * reads that see the last commit (es_kv_read: also from one other thread, beside the writer).
 * Writes go straight to the file's map (MDB_WRITEMAP: a sparse file of the map's size) and are not
 * synced to disk at each commit (MDB_NOSYNC): a process crash keeps every commit; a machine crash
 * may lose or tear the last ones, and the store is then discarded at the next open, which is what a
 * cache of a Kafka changelog can afford. Foreign errors become es_err_t here. */
#ifndef ES_KV_H
#define ES_KV_H

#include "es_err.h"
#include <stdbool.h>
#include <stddef.h>

typedef struct es_kv es_kv_t;

/* Opens (creating the folder and its parents) the store in dir, its map up to map_bytes. A store
 * that cannot be trusted is discarded and opened empty (es_kv_discarded tells why): its file is
 * unreadable, or the machine went down while commits were not yet synced (an unclean close in
 * another boot: a file marker of the boot id, see es_kv.c). The owner rebuilds what it held from
 * its source. NULL with err. */
es_kv_t *es_kv_open(const char *dir, size_t map_bytes, es_err_t *err);
/* Why the store found at open was discarded (a static text), or NULL when it was kept. */
const char *es_kv_discarded(const es_kv_t *kv);
/* Syncs the commits to disk and closes: the next open, in any boot, keeps the store. NULL is a
 * no-op. */
void es_kv_free(es_kv_t *kv);

/* The value of key (klen bytes): 0 and *val (owned, free it; *vlen bytes), 1 when absent, -1
 * with err. Inside a write transaction it sees the writes made so far. */
int es_kv_get(es_kv_t *kv, const void *key, size_t klen, void **val, size_t *vlen, es_err_t *err);
/* The same as of the last commit, never the open write's: for a reader on another thread than the
 * writer's (one such thread at a time: the object has one read transaction). */
int es_kv_read(es_kv_t *kv, const void *key, size_t klen, void **val, size_t *vlen, es_err_t *err);

/* Begins the write transaction (one at a time): 0, or -1 with err. */
int es_kv_begin(es_kv_t *kv, es_err_t *err);
/* In the write transaction: sets key to val (copied) / deletes key (absent is fine). 0 or -1. */
int es_kv_put(es_kv_t *kv, const void *key, size_t klen, const void *val, size_t vlen,
              es_err_t *err);
int es_kv_del(es_kv_t *kv, const void *key, size_t klen, es_err_t *err);
/* In the write transaction: sets key to val (copied) unless key is set already: 0 (set), 1 (kept
 * as it was), -1 with err. One lookup, not a get then a put. */
int es_kv_add(es_kv_t *kv, const void *key, size_t klen, const void *val, size_t vlen,
              es_err_t *err);
/* Calls fn for every entry whose key starts with prefix, in key order, inside the write
 * transaction; fn returns 1 to delete the entry, 0 to keep it. 0, or -1 with err. */
typedef int (*es_kv_scan_fn)(const void *key, size_t klen, const void *val, size_t vlen, void *arg);
int es_kv_scan(es_kv_t *kv, const void *prefix, size_t plen, es_kv_scan_fn fn, void *arg,
               es_err_t *err);
/* Commits / drops the write transaction. Commit: 0, or -1 with err (nothing written). */
int es_kv_commit(es_kv_t *kv, es_err_t *err);
void es_kv_abort(es_kv_t *kv);

/* Drops the pages of the map from the process's resident set (they stay in the page cache and
 * come back on the next read) by mapping the file again: after a bulk load, so RSS shows the
 * working set. No write may be open. 0, or -1 with err: the store is then closed, unusable. */
int es_kv_trim(es_kv_t *kv, es_err_t *err);

#endif
