#include "es_kv.h"
#include "es_log.h"
#include "es_mem.h"
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The unsynced-writes marker: a file in the store's folder holding the boot id of the kernel
 * whose page cache holds the store's last commits. Written (and synced) at open, removed after
 * the sync of a clean close. A marker of another boot means the machine went down before those
 * commits reached the disk: with MDB_WRITEMAP | MDB_NOSYNC the file may then hold any mix of old
 * and new pages, which LMDB cannot always tell from a sound file, so the store is discarded. */
#define MARKER  "unsynced"
#define BOOT_ID "/proc/sys/kernel/random/boot_id"

struct es_kv {
    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *rtxn; /* a read transaction kept reset between reads, renewed for each */
    MDB_txn *wtxn; /* the open write transaction, or NULL */
    char *dir;
    size_t map_bytes;
    const char *discarded; /* why the store found at open was discarded, or NULL */
};

static void kv_env_close(es_kv_t *kv)
{
    if (kv->wtxn)
        mdb_txn_abort(kv->wtxn);
    if (kv->rtxn)
        mdb_txn_abort(kv->rtxn);
    if (kv->env)
        mdb_env_close(kv->env);
    kv->wtxn = kv->rtxn = NULL;
    kv->env = NULL;
}

static int kv_error(es_err_t *err, int rc, const char *what, const char *dir)
{
    return es_set(err, rc == MDB_MAP_FULL ? ES_EFATAL : ES_EIO, "state store '%s': %s: %s", dir,
                  what, mdb_strerror(rc));
}

/* mkdir -p dir: 0, or -1 with err */
static int mkdirs(const char *dir, es_err_t *err)
{
    char *p = xstrdup(dir);
    int rc = 0;
    for (char *s = p + 1; rc == 0; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST)
            rc = es_set(err, ES_EIO, "cannot make the state folder '%s': %s", p, strerror(errno));
        *s = c;
        if (c == '\0')
            break;
    }
    free(p);
    return rc;
}

/* Opens kv's environment in kv->dir: 0, or LMDB's code of the failure (non-zero: an MDB_* code or
 * an errno value) with err (kv->env then NULL). */
static int kv_env_open(es_kv_t *kv, es_err_t *err)
{
    MDB_txn *t = NULL;
    int rc = mdb_env_create(&kv->env);
    if (rc == 0)
        rc = mdb_env_set_mapsize(kv->env, kv->map_bytes);
    /* WRITEMAP: writes go straight to the map, no copies held in the heap; NOTLS: the read
     * transaction is the object's, not a thread's; NORDAHEAD: reads are random */
    if (rc == 0)
        rc = mdb_env_open(kv->env, kv->dir, MDB_WRITEMAP | MDB_NOSYNC | MDB_NOTLS | MDB_NORDAHEAD,
                          0600);
    if (rc == 0)
        rc = mdb_txn_begin(kv->env, NULL, 0, &t);
    if (rc == 0)
        rc = mdb_dbi_open(t, NULL, 0, &kv->dbi);
    if (rc == 0) {
        rc = mdb_txn_commit(t);
        t = NULL;
    }
    if (rc == 0 && (rc = mdb_txn_begin(kv->env, NULL, MDB_RDONLY, &kv->rtxn)) == 0)
        mdb_txn_reset(kv->rtxn);
    if (rc == 0)
        return 0;
    kv_error(err, rc, "open", kv->dir);
    if (t)
        mdb_txn_abort(t);
    kv_env_close(kv);
    return rc;
}

/* dir/name into buf */
static const char *path_in(char *buf, size_t cap, const char *dir, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
    return buf;
}

/* The running kernel's boot id (a UUID and a newline) into buf; "" when unknown. */
static void boot_id(char *buf, size_t cap)
{
    FILE *f = fopen(BOOT_ID, "r");
    buf[0] = '\0';
    if (f && !fgets(buf, (int)cap, f))
        buf[0] = '\0';
    if (f)
        fclose(f);
}

/* Syncs a folder's entries (a file made or removed in it). */
static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Why the store in kv->dir must not be trusted after the last process that wrote it: its marker
 * names another boot; NULL when it may be opened. */
static const char *marker_check(const es_kv_t *kv, const char *now)
{
    char path[4096], was[64] = "";
    FILE *f = fopen(path_in(path, sizeof path, kv->dir, MARKER), "r");
    if (!f)
        return NULL; /* closed cleanly, or new */
    if (!fgets(was, sizeof was, f))
        was[0] = '\0';
    fclose(f);
    return strcmp(was, now) ? "the machine restarted before its last writes were synced" : NULL;
}

/* Writes and syncs the marker of this boot: 0, or -1 with err. */
static int marker_write(const es_kv_t *kv, const char *now, es_err_t *err)
{
    char path[4096];
    int fd = open(path_in(path, sizeof path, kv->dir, MARKER), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    size_t n = strlen(now);
    bool ok = fd >= 0 && write(fd, now, n) == (ssize_t)n && fsync(fd) == 0;
    int e = errno;
    if (fd >= 0)
        close(fd);
    if (!ok)
        return es_set(err, ES_EIO, "state store '%s': cannot write its marker: %s", kv->dir,
                      strerror(e));
    sync_dir(kv->dir);
    return 0;
}

/* Removes LMDB's files in kv->dir: 0, or -1 with err. */
static int discard(es_kv_t *kv, const char *why, es_err_t *err)
{
    char path[4096];
    static const char *const files[] = {"data.mdb", "lock.mdb"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        if (unlink(path_in(path, sizeof path, kv->dir, files[i])) != 0 && errno != ENOENT)
            return es_set(err, ES_EIO, "state store '%s': cannot discard %s: %s", kv->dir, files[i],
                          strerror(errno));
    sync_dir(kv->dir);
    kv->discarded = why;
    return 0;
}

/* Whether an open failed on the file's content (not on the folder, the memory or the rights): rc
 * is LMDB's code from kv_env_open, or -1 (discard's failure), which is never one of these. */
static bool unreadable(int rc)
{
    return rc != -1 && (rc == MDB_CORRUPTED || rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH ||
                        rc == MDB_PAGE_NOTFOUND || rc == MDB_BAD_TXN);
}

es_kv_t *es_kv_open(const char *dir, size_t map_bytes, es_err_t *err)
{
    if (mkdirs(dir, err) != 0)
        return NULL;
    es_kv_t *kv = xcalloc(1, sizeof *kv);
    kv->dir = xstrdup(dir);
    kv->map_bytes = map_bytes;
    char now[64];
    boot_id(now, sizeof now);
    const char *why = marker_check(kv, now);
    /* rc: 0, -1 from discard or LMDB's code from kv_env_open; err is set whenever it is not 0 */
    int rc = why ? discard(kv, why, err) : 0;
    if (rc == 0)
        rc = kv_env_open(kv, err);
    if (unreadable(rc)) {
        es_warn("%s; discarded, opened empty", err->msg);
        es_clear(err);
        rc = discard(kv, "its file could not be read", err);
        if (rc == 0)
            rc = kv_env_open(kv, err);
    }
    if (rc == 0)
        rc = marker_write(kv, now, err);
    if (rc != 0) {
        es_kv_free(kv);
        return NULL;
    }
    return kv;
}

const char *es_kv_discarded(const es_kv_t *kv)
{
    return kv->discarded;
}

void es_kv_free(es_kv_t *kv)
{
    if (!kv)
        return;
    /* a clean close: the commits reach the disk, then the marker goes */
    bool synced = kv->env && !kv->wtxn && mdb_env_sync(kv->env, 1) == 0;
    kv_env_close(kv);
    char path[4096];
    if (synced)
        unlink(path_in(path, sizeof path, kv->dir, MARKER));
    free(kv->dir);
    free(kv);
}

/* The value of key through the open write (wtxn) or the last commit (the read transaction). */
static int kv_get(es_kv_t *kv, MDB_txn *t, const void *key, size_t klen, void **val, size_t *vlen,
                  es_err_t *err)
{
    int rc;
    if (!t) {
        if ((rc = mdb_txn_renew(kv->rtxn)) != 0)
            return kv_error(err, rc, "read", kv->dir);
        t = kv->rtxn;
    }
    MDB_val k = {klen, (void *)key}, v;
    rc = mdb_get(t, kv->dbi, &k, &v);
    if (rc == 0) {
        *val = xmalloc(v.mv_size ? v.mv_size : 1);
        memcpy(*val, v.mv_data, v.mv_size);
        *vlen = v.mv_size;
    }
    if (t == kv->rtxn)
        mdb_txn_reset(kv->rtxn);
    if (rc == MDB_NOTFOUND)
        return 1;
    return rc == 0 ? 0 : kv_error(err, rc, "read", kv->dir);
}

int es_kv_get(es_kv_t *kv, const void *key, size_t klen, void **val, size_t *vlen, es_err_t *err)
{
    return kv_get(kv, kv->wtxn, key, klen, val, vlen, err);
}

int es_kv_read(es_kv_t *kv, const void *key, size_t klen, void **val, size_t *vlen, es_err_t *err)
{
    return kv_get(kv, NULL, key, klen, val, vlen, err);
}

int es_kv_begin(es_kv_t *kv, es_err_t *err)
{
    if (kv->wtxn)
        return es_set(err, ES_EINTERNAL, "state store '%s': a write is already open", kv->dir);
    int rc = mdb_txn_begin(kv->env, NULL, 0, &kv->wtxn);
    if (rc != 0) {
        kv->wtxn = NULL;
        return kv_error(err, rc, "begin", kv->dir);
    }
    return 0;
}

int es_kv_put(es_kv_t *kv, const void *key, size_t klen, const void *val, size_t vlen,
              es_err_t *err)
{
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    int rc = mdb_put(kv->wtxn, kv->dbi, &k, &v, 0);
    return rc == 0 ? 0 : kv_error(err, rc, "write", kv->dir);
}

int es_kv_add(es_kv_t *kv, const void *key, size_t klen, const void *val, size_t vlen,
              es_err_t *err)
{
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    int rc = mdb_put(kv->wtxn, kv->dbi, &k, &v, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST)
        return 1;
    return rc == 0 ? 0 : kv_error(err, rc, "write", kv->dir);
}

int es_kv_del(es_kv_t *kv, const void *key, size_t klen, es_err_t *err)
{
    MDB_val k = {klen, (void *)key};
    int rc = mdb_del(kv->wtxn, kv->dbi, &k, NULL);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : kv_error(err, rc, "delete", kv->dir);
}

int es_kv_scan(es_kv_t *kv, const void *prefix, size_t plen, es_kv_scan_fn fn, void *arg,
               es_err_t *err)
{
    MDB_cursor *c = NULL;
    int rc = mdb_cursor_open(kv->wtxn, kv->dbi, &c);
    MDB_val k = {plen, (void *)prefix}, v;
    if (rc == 0)
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size >= plen && memcmp(k.mv_data, prefix, plen) == 0) {
        if (fn(k.mv_data, k.mv_size, v.mv_data, v.mv_size, arg) == 1 &&
            (rc = mdb_cursor_del(c, 0)) != 0)
            break;
        /* after a delete, LMDB's MDB_NEXT answers the entry that followed it */
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (c)
        mdb_cursor_close(c);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : kv_error(err, rc, "scan", kv->dir);
}

int es_kv_commit(es_kv_t *kv, es_err_t *err)
{
    if (!kv->wtxn)
        return 0;
    int rc = mdb_txn_commit(kv->wtxn);
    kv->wtxn = NULL;
    return rc == 0 ? 0 : kv_error(err, rc, "commit", kv->dir);
}

void es_kv_abort(es_kv_t *kv)
{
    if (kv->wtxn)
        mdb_txn_abort(kv->wtxn);
    kv->wtxn = NULL;
}

int es_kv_trim(es_kv_t *kv, es_err_t *err)
{
    /* the map's address is not LMDB's to tell (mdb_env_info gives it only for MDB_FIXEDMAP): a
     * new map of the same file starts with nothing resident */
    kv_env_close(kv);
    return kv_env_open(kv, err) == 0 ? 0 : -1;
}
