#include "hd_store.h"
#include "es_kv.h"
#include "es_log.h"
#include "es_mem.h"
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* keys: a kind byte, the partition (4 bytes, big-endian: a partition's keys are contiguous),
 * then the aggregate or command id; the offsets' key ends with the log's byte instead */
#define KIND_STATE  's'
#define KIND_RESULT 'r'
#define KIND_OFFSET 'o'
#define KEY_HEAD    5
#define KEY_MAX     (KEY_HEAD + 512)

typedef struct cache_slot {
    char *key; /* "<p>/<id>", owned; NULL: free */
    json_t *state;
    bool ref; /* read since the hand last passed */
} cache_slot_t;

struct hd_store {
    es_kv_t *kv;
    cache_slot_t *slots;
    size_t cap, used, hand;
    json_t *index; /* cache key -> slot number */
};

hd_store_t *hd_store_open(const char *dir, size_t map_mb, size_t cache_max, es_err_t *err)
{
    es_kv_t *kv = es_kv_open(dir, map_mb << 20, err);
    if (!kv)
        return NULL;
    if (es_kv_discarded(kv)) /* its offsets read 0: the recovery replays every log from the start */
        es_warn("state store '%s' discarded (%s): its states are recovered from the changelog", dir,
                es_kv_discarded(kv));
    hd_store_t *st = xcalloc(1, sizeof *st);
    st->kv = kv;
    st->cap = cache_max;
    st->slots = xcalloc(cache_max ? cache_max : 1, sizeof *st->slots);
    st->index = json_object();
    return st;
}

void hd_store_free(hd_store_t *st)
{
    if (!st)
        return;
    hd_store_cache_clear(st);
    free(st->slots);
    json_decref(st->index);
    es_kv_free(st->kv);
    free(st);
}

/* Writes the key of id (kind, partition p) into key: its length, or 0 when id is too long. */
static size_t key_make(char *key, char kind, int32_t p, const char *id)
{
    size_t n = strlen(id);
    if (n > KEY_MAX - KEY_HEAD)
        return 0;
    key[0] = kind;
    key[1] = (char)((uint32_t)p >> 24);
    key[2] = (char)((uint32_t)p >> 16);
    key[3] = (char)((uint32_t)p >> 8);
    key[4] = (char)(uint32_t)p;
    memcpy(key + KEY_HEAD, id, n);
    return KEY_HEAD + n;
}

static int key_too_long(const char *id, es_err_t *err)
{
    return es_set(err, ES_EINVAL, "id '%.64s...' is too long for the state store", id);
}

int hd_store_offset(hd_store_t *st, int32_t p, hd_store_log_t log, int64_t *off, es_err_t *err)
{
    char key[KEY_HEAD + 1], id[2] = {(char)log, 0};
    size_t klen = key_make(key, KIND_OFFSET, p, id);
    void *v = NULL;
    size_t len = 0;
    int rc = es_kv_get(st->kv, key, klen, &v, &len, err);
    *off = 0;
    if (rc == 0 && len == sizeof *off)
        memcpy(off, v, sizeof *off);
    free(v);
    return rc < 0 ? -1 : 0;
}

int hd_store_offset_set(hd_store_t *st, int32_t p, hd_store_log_t log, int64_t off, es_err_t *err)
{
    char key[KEY_HEAD + 1], id[2] = {(char)log, 0};
    size_t klen = key_make(key, KIND_OFFSET, p, id);
    return es_kv_put(st->kv, key, klen, &off, sizeof off, err);
}

int hd_store_state_get(hd_store_t *st, int32_t p, const char *id, void **buf, size_t *len,
                       es_err_t *err)
{
    char key[KEY_MAX];
    size_t klen = key_make(key, KIND_STATE, p, id);
    if (!klen)
        return 1;
    return es_kv_read(st->kv, key, klen, buf, len, err);
}

/* a result's value: the results record's offset (8 bytes), then the encoded result */
int hd_store_result_get(hd_store_t *st, int32_t p, const char *id, int64_t *offset, void **buf,
                        size_t *len, es_err_t *err)
{
    char key[KEY_MAX];
    size_t klen = key_make(key, KIND_RESULT, p, id);
    if (!klen)
        return 1;
    void *v = NULL;
    size_t vlen = 0;
    int rc = es_kv_read(st->kv, key, klen, &v, &vlen, err);
    if (rc != 0)
        return rc;
    if (vlen < sizeof(int64_t)) {
        free(v);
        return 1;
    }
    if (offset)
        memcpy(offset, v, sizeof *offset);
    *len = vlen - sizeof(int64_t);
    memmove(v, (char *)v + sizeof(int64_t), *len);
    *buf = v;
    return 0;
}

int hd_store_begin(hd_store_t *st, es_err_t *err)
{
    return es_kv_begin(st->kv, err);
}

int hd_store_commit(hd_store_t *st, es_err_t *err)
{
    return es_kv_commit(st->kv, err);
}

void hd_store_abort(hd_store_t *st)
{
    es_kv_abort(st->kv);
}

int hd_store_state_put(hd_store_t *st, int32_t p, const char *id, const void *buf, size_t len,
                       es_err_t *err)
{
    char key[KEY_MAX];
    size_t klen = key_make(key, KIND_STATE, p, id);
    if (!klen)
        return key_too_long(id, err);
    if (!buf)
        return es_kv_del(st->kv, key, klen, err);
    return es_kv_put(st->kv, key, klen, buf, len, err);
}

int hd_store_result_add(hd_store_t *st, int32_t p, const char *id, int64_t offset, const void *buf,
                        size_t len, es_err_t *err)
{
    char key[KEY_MAX];
    size_t klen = key_make(key, KIND_RESULT, p, id);
    if (!klen)
        return key_too_long(id, err);
    char *v = xmalloc(sizeof offset + len);
    memcpy(v, &offset, sizeof offset);
    memcpy(v + sizeof offset, buf, len);
    int rc = es_kv_add(st->kv, key, klen, v, sizeof offset + len, err);
    free(v);
    return rc < 0 ? -1 : 0;
}

static int forget_all(const void *k, size_t klen, const void *v, size_t vlen, void *arg)
{
    (void)k, (void)klen, (void)v, (void)vlen, (void)arg;
    return 1;
}

int hd_store_forget(hd_store_t *st, int32_t p, hd_store_log_t log, es_err_t *err)
{
    char prefix[KEY_HEAD];
    key_make(prefix, log == HD_LOG_CHANGELOG ? KIND_STATE : KIND_RESULT, p, "");
    if (es_kv_scan(st->kv, prefix, KEY_HEAD, forget_all, NULL, err) != 0)
        return -1;
    return hd_store_offset_set(st, p, log, 0, err);
}

typedef struct prune_arg {
    int64_t low;
    size_t n;
} prune_arg_t;

static int prune_one(const void *k, size_t klen, const void *v, size_t vlen, void *arg)
{
    (void)k, (void)klen;
    prune_arg_t *a = arg;
    int64_t off = 0;
    if (vlen >= sizeof off)
        memcpy(&off, v, sizeof off);
    if (off >= a->low)
        return 0;
    a->n++;
    return 1;
}

int hd_store_prune_results(hd_store_t *st, int32_t p, int64_t low, size_t *pruned, es_err_t *err)
{
    char prefix[KEY_HEAD];
    key_make(prefix, KIND_RESULT, p, "");
    prune_arg_t a = {low, 0};
    int rc = es_kv_scan(st->kv, prefix, KEY_HEAD, prune_one, &a, err);
    *pruned += a.n;
    return rc;
}

int hd_store_trim(hd_store_t *st, es_err_t *err)
{
    es_mem_release_free(); /* the recovery's read buffers */
    return es_kv_trim(st->kv, err);
}

/* --- cache ----------------------------------------------------------------------------------- */

static char *cache_key(int32_t p, const char *id)
{
    return xasprintf("%d/%s", (int)p, id);
}

/* the slot of key, or NULL */
static cache_slot_t *cache_find(hd_store_t *st, const char *key)
{
    json_t *i = json_object_get(st->index, key);
    return i ? &st->slots[json_integer_value(i)] : NULL;
}

static void slot_release(hd_store_t *st, cache_slot_t *s)
{
    if (!s->key)
        return;
    json_object_del(st->index, s->key);
    free(s->key);
    json_decref(s->state);
    *s = (cache_slot_t){0};
}

json_t *hd_store_cache_get(hd_store_t *st, int32_t p, const char *id)
{
    if (!st->cap)
        return NULL;
    char *key = cache_key(p, id);
    cache_slot_t *s = cache_find(st, key);
    free(key);
    if (!s)
        return NULL;
    s->ref = true;
    return s->state;
}

/* A free slot: a never used one, or the first the hand finds not read since it last passed. */
static cache_slot_t *cache_victim(hd_store_t *st)
{
    if (st->used < st->cap)
        return &st->slots[st->used++];
    for (;;) {
        cache_slot_t *s = &st->slots[st->hand];
        st->hand = (st->hand + 1) % st->cap;
        if (!s->ref) {
            slot_release(st, s);
            return s;
        }
        s->ref = false;
    }
}

/* Sets (state) or forgets (NULL) the entry of id in p; a new entry only with add. */
static void cache_put(hd_store_t *st, int32_t p, const char *id, json_t *state, bool add)
{
    char *key = cache_key(p, id);
    cache_slot_t *s = cache_find(st, key);
    if (s && !state) {
        slot_release(st, s);
    } else if (s) {
        json_decref(s->state);
        s->state = json_incref(state);
        s->ref = true;
    } else if (state && add) {
        s = cache_victim(st);
        s->key = key;
        s->state = json_incref(state);
        s->ref = false;
        json_object_set_new(st->index, key, json_integer((json_int_t)(s - st->slots)));
        return;
    }
    free(key);
}

void hd_store_cache_update(hd_store_t *st, int32_t p, const char *id, json_t *state)
{
    if (st->cap)
        cache_put(st, p, id, state, false);
}

void hd_store_cache_set(hd_store_t *st, int32_t p, const char *id, json_t *state)
{
    if (st->cap)
        cache_put(st, p, id, state, true);
}

void hd_store_cache_clear(hd_store_t *st)
{
    for (size_t i = 0; i < st->used; i++)
        slot_release(st, &st->slots[i]);
    st->used = st->hand = 0;
}
