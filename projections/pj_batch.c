#include "pj_batch.h"
#include "es_mem.h"
#include "es_strbuf.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PJ_BATCH_PARAMS 60000 /* placeholders of one merged statement at most (MariaDB: 65535) */

/* One statement of the table being laid out. */
struct pj_item {
    const struct pj_stmt *st;
    const char *key; /* NULL: a layer of its own */
    size_t klen;     /* the key's length without trailing spaces */
    size_t layer, seq;
    bool done;
};

/* A statement to run: merged (into sql and params, kept from batch to batch) or one of the
 * plans' (borrowed). */
struct pj_out {
    struct es_strbuf sql;
    es_db_val_t *params;
    size_t pcap;
    const char *q;
    const es_db_val_t *p;
    size_t n, rows;
    bool must_match;
    bool upsert; /* a must-match UPDATE merged as its upsert form: 2 affected rows a row */
};

/* key -> the first layer its next statement may take */
struct pj_slot {
    const char *key;
    size_t klen, next;
};

struct pj_batch {
    const pj_plan_t **plans;
    size_t nplans, capplans;
    struct pj_out *out;
    size_t nout, capout;
    bool built;
    struct pj_item *items;
    size_t nitems, capitems;
    struct pj_slot *slots;
    size_t capslots;
};

pj_batch_t *pj_batch_new(void)
{
    return xcalloc(1, sizeof(pj_batch_t));
}

void pj_batch_reset(pj_batch_t *b)
{
    b->nout = b->nplans = b->nitems = 0;
    b->built = false;
}

void pj_batch_free(pj_batch_t *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->capout; i++) {
        es_strbuf_release(&b->out[i].sql);
        free(b->out[i].params);
    }
    free(b->plans);
    free(b->out);
    free(b->items);
    free(b->slots);
    free(b);
}

void pj_batch_add(pj_batch_t *b, const pj_plan_t *plan)
{
    if (b->nplans == b->capplans) {
        b->capplans = b->capplans ? 2 * b->capplans : 64;
        b->plans = xrealloc(b->plans, b->capplans * sizeof *b->plans);
    }
    b->plans[b->nplans++] = plan;
    b->built = false;
}

static struct pj_out *out_add(pj_batch_t *b)
{
    if (b->nout == b->capout) {
        size_t cap = b->capout ? 2 * b->capout : 16;
        b->out = xrealloc(b->out, cap * sizeof *b->out);
        memset(b->out + b->capout, 0, (cap - b->capout) * sizeof *b->out);
        b->capout = cap;
    }
    struct pj_out *o = &b->out[b->nout++];
    es_strbuf_reset(&o->sql);
    o->q = NULL;
    o->p = NULL;
    o->n = o->rows = 0;
    o->must_match = o->upsert = false;
    return o;
}

/* --- keys: compared as a MariaDB collation may (ASCII case and trailing spaces ignored) ------ */

/* Whether key is plain ASCII (else it is treated as unknown), and its length without the
 * trailing spaces a PAD SPACE collation ignores. */
static bool key_usable(const char *key, size_t *klen)
{
    size_t n = 0;
    for (; key[n]; n++)
        if ((unsigned char)key[n] & 0x80)
            return false;
    while (n > 0 && key[n - 1] == ' ')
        n--;
    *klen = n;
    return true;
}

static uint64_t key_hash(const char *key, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)key[i];
        h = (h ^ (c >= 'A' && c <= 'Z' ? c + 32 : c)) * 1099511628211ULL;
    }
    return h;
}

/* The slot of key in b->slots (an empty one when it is not there). */
static struct pj_slot *key_slot(pj_batch_t *b, const char *key, size_t klen)
{
    size_t mask = b->capslots - 1;
    for (size_t i = key_hash(key, klen) & mask;; i = (i + 1) & mask) {
        struct pj_slot *s = &b->slots[i];
        if (!s->key || (s->klen == klen && strncasecmp(s->key, key, klen) == 0))
            return s;
    }
}

/* --- laying out one table --------------------------------------------------------------------- */

/* Collects the statements of table into b->items, in the batch's order. */
static void items_collect(pj_batch_t *b, const char *table)
{
    b->nitems = 0;
    for (size_t i = 0; i < b->nplans; i++) {
        const pj_plan_t *plan = b->plans[i];
        for (size_t j = 0; j < pj_plan_len(plan); j++) {
            const struct pj_stmt *st = pj_plan_stmt(plan, j);
            if (strcmp(st->table, table) != 0)
                continue;
            if (b->nitems == b->capitems) {
                b->capitems = b->capitems ? 2 * b->capitems : 256;
                b->items = xrealloc(b->items, b->capitems * sizeof *b->items);
            }
            struct pj_item *it = &b->items[b->nitems];
            *it = (struct pj_item){
                .st = st, .key = st->key ? st->key : pj_plan_key(plan), .seq = b->nitems};
            if (it->key && !key_usable(it->key, &it->klen))
                it->key = NULL;
            b->nitems++;
        }
    }
}

/* Gives each item its layer: one past the last of its key's, and past every keyless one; a
 * keyless item above everything before it. */
static void items_layer(pj_batch_t *b)
{
    size_t want = 16;
    while (want < 2 * b->nitems)
        want *= 2;
    if (want > b->capslots) {
        free(b->slots);
        b->slots = xmalloc(want * sizeof *b->slots);
        b->capslots = want;
    }
    memset(b->slots, 0, b->capslots * sizeof *b->slots);
    size_t low = 0, top = 0;
    for (size_t i = 0; i < b->nitems; i++) {
        struct pj_item *it = &b->items[i];
        if (!it->key) {
            it->layer = top > low ? top : low;
            low = it->layer + 1;
        } else {
            struct pj_slot *s = key_slot(b, it->key, it->klen);
            if (!s->key)
                *s = (struct pj_slot){.key = it->key, .klen = it->klen};
            it->layer = s->next > low ? s->next : low;
            s->next = it->layer + 1;
        }
        if (it->layer + 1 > top)
            top = it->layer + 1;
    }
}

static int item_cmp(const void *a, const void *b)
{
    const struct pj_item *x = a, *y = b;
    if (x->layer != y->layer)
        return x->layer < y->layer ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* --- the shapes that merge -------------------------------------------------------------------- */

/* The positions of sql's placeholders outside quotes: how many, and whether all lie within
 * [from, to]. */
static size_t marks(const char *sql, size_t from, size_t to, bool *inside)
{
    size_t n = 0;
    bool quoted = false;
    *inside = true;
    for (size_t i = 0; sql[i]; i++) {
        if (sql[i] == '\'')
            quoted = !quoted;
        else if (sql[i] == '?' && !quoted && ++n && (i < from || i > to))
            *inside = false;
    }
    return n;
}

/* "INSERT ... VALUES (row) tail" with all n placeholders in row: row's bounds (its
 * parentheses). */
static bool insert_shape(const char *sql, size_t n, size_t *open, size_t *close)
{
    const char *v = strstr(sql, " VALUES (");
    if (strncmp(sql, "INSERT ", 7) || !v)
        return false;
    size_t o = (size_t)(v - sql) + 8, i = o;
    int depth = 0;
    bool quoted = false;
    for (; sql[i]; i++) {
        char c = sql[i];
        if (c == '\'')
            quoted = !quoted;
        else if (!quoted && c == '(')
            depth++;
        else if (!quoted && c == ')' && --depth == 0)
            break;
    }
    bool inside;
    if (!sql[i] || marks(sql, o, i, &inside) != n || !inside)
        return false;
    *open = o;
    *close = i;
    return true;
}

/* "UPDATE table SET rest" with at least one placeholder, all in rest: where rest starts. */
static bool update_shape(const struct pj_stmt *st, size_t *set)
{
    const char *s = strstr(st->sql, " SET ");
    if (st->kind != PJ_UPDATE || strncmp(st->sql, "UPDATE ", 7) || !s || st->n == 0)
        return false;
    bool inside;
    *set = (size_t)(s - st->sql);
    return marks(st->sql, *set, strlen(st->sql), &inside) == st->n && inside;
}

/* The parameters of items[0..k) one after another, into o (owned). */
static void out_params(struct pj_out *o, struct pj_item *const *items, size_t k)
{
    size_t per = items[0]->st->n;
    if (k * per + 1 > o->pcap) {
        o->pcap = k * per + 1;
        o->params = xrealloc(o->params, o->pcap * sizeof *o->params);
    }
    for (size_t r = 0; r < k; r++)
        memcpy(o->params + r * per, items[r]->st->params, per * sizeof *o->params);
    o->p = o->params;
    o->n = k * per;
    o->rows = k;
}

/* sql: the items' SQL in the insert shape (their own, or their upsert form). */
static void merge_insert(struct pj_out *o, struct pj_item *const *items, size_t k, const char *sql,
                         size_t open, size_t close)
{
    struct es_strbuf *b = &o->sql;
    es_strbuf_add(b, sql, open);
    for (size_t r = 0; r < k; r++) {
        if (r)
            es_strbuf_add(b, ", ", 2);
        es_strbuf_add(b, sql + open, close + 1 - open);
    }
    es_strbuf_adds(b, sql + close + 1);
    out_params(o, items, k);
}

static void merge_update(struct pj_out *o, struct pj_item *const *items, size_t k, size_t set)
{
    const struct pj_stmt *st = items[0]->st;
    struct es_strbuf *b = &o->sql;
    es_strbuf_add(b, st->sql, set);
    es_strbuf_adds(b, " JOIN (SELECT ");
    for (size_t i = 0; i < st->n; i++) {
        es_strbuf_adds(b, i ? ", ? AS p" : "? AS p");
        es_strbuf_addf(b, "%zu", i);
    }
    for (size_t r = 1; r < k; r++) {
        es_strbuf_adds(b, " UNION ALL SELECT ?");
        for (size_t i = 1; i < st->n; i++)
            es_strbuf_add(b, ", ?", 3);
    }
    es_strbuf_adds(b, ") AS pj_d");
    bool quoted = false;
    size_t mark = 0;
    for (const char *c = st->sql + set; *c; c++) {
        if (*c == '\'')
            quoted = !quoted;
        if (*c != '?' || quoted) {
            es_strbuf_addc(b, *c);
            continue;
        }
        es_strbuf_adds(b, "pj_d.p");
        es_strbuf_addf(b, "%zu", mark++);
    }
    out_params(o, items, k);
}

static void out_single(pj_batch_t *b, const struct pj_stmt *st)
{
    struct pj_out *o = out_add(b);
    o->q = st->sql;
    o->p = st->params;
    o->n = st->n;
    o->rows = 1;
    o->must_match = st->must_match;
}

/* Emits items (same SQL, same layer, k of them) as few statements as the shape allows. */
static void emit_group(pj_batch_t *b, struct pj_item **items, size_t k)
{
    const struct pj_stmt *st = items[0]->st;
    size_t open = 0, close = 0, set = 0;
    /* a must-match UPDATE with an upsert form merges as that upsert (pj_stmt_set_upsert) */
    const char *ins_sql = st->must_match ? st->upsert : st->sql;
    bool ins = k > 1 &&
               (st->must_match ? st->kind == PJ_UPDATE && st->upsert
                               : st->kind == PJ_INSERT || st->kind == PJ_UPSERT) &&
               insert_shape(ins_sql, st->n, &open, &close);
    bool upd = k > 1 && !ins && update_shape(st, &set);
    if (!ins && !upd) {
        for (size_t r = 0; r < k; r++)
            out_single(b, items[r]->st);
        return;
    }
    size_t per = st->n ? st->n : 1, chunk = PJ_BATCH_PARAMS / per;
    if (chunk > PJ_BATCH_ROWS)
        chunk = PJ_BATCH_ROWS;
    for (size_t r = 0; r < k; r += chunk) {
        size_t m = k - r < chunk ? k - r : chunk;
        if (m == 1) {
            out_single(b, items[r]->st);
            continue;
        }
        struct pj_out *o = out_add(b);
        if (ins)
            merge_insert(o, items + r, m, ins_sql, open, close);
        else
            merge_update(o, items + r, m, set);
        o->q = o->sql.s;
        o->must_match = st->must_match;
        o->upsert = ins && st->must_match;
    }
}

static bool same_stmt(const struct pj_stmt *a, const struct pj_stmt *b)
{
    return a->kind == b->kind && a->must_match == b->must_match && a->n == b->n &&
           strcmp(a->sql, b->sql) == 0 && !a->upsert == !b->upsert &&
           (!a->upsert || strcmp(a->upsert, b->upsert) == 0);
}

/* Emits b->items (sorted by layer) group by group: within a layer, the statements of one SQL in
 * the order of their first appearance. */
static void items_emit(pj_batch_t *b)
{
    struct pj_item **group = xmalloc((b->nitems ? b->nitems : 1) * sizeof *group);
    for (size_t lo = 0, hi; lo < b->nitems; lo = hi) {
        for (hi = lo; hi < b->nitems && b->items[hi].layer == b->items[lo].layer; hi++)
            ;
        for (size_t i = lo; i < hi; i++) {
            if (b->items[i].done)
                continue;
            size_t k = 0;
            for (size_t j = i; j < hi; j++) {
                if (!b->items[j].done && same_stmt(b->items[i].st, b->items[j].st)) {
                    b->items[j].done = true;
                    group[k++] = &b->items[j];
                }
            }
            emit_group(b, group, k);
        }
    }
    free(group);
}

size_t pj_batch_build(pj_batch_t *b)
{
    if (b->built)
        return b->nout;
    const char **tables = NULL;
    size_t ntables = 0;
    for (size_t i = 0; i < b->nplans; i++) {
        for (size_t j = 0; j < pj_plan_len(b->plans[i]); j++) {
            const char *t = pj_plan_stmt(b->plans[i], j)->table;
            size_t k = 0;
            while (k < ntables && strcmp(tables[k], t) != 0)
                k++;
            if (k == ntables) {
                tables = xrealloc(tables, (ntables + 1) * sizeof *tables);
                tables[ntables++] = t;
            }
        }
    }
    for (size_t t = 0; t < ntables; t++) {
        items_collect(b, tables[t]);
        items_layer(b);
        qsort(b->items, b->nitems, sizeof *b->items, item_cmp);
        items_emit(b);
    }
    free(tables);
    b->built = true;
    return b->nout;
}

const char *pj_batch_sql(const pj_batch_t *b, size_t i)
{
    return i < b->nout ? b->out[i].q : NULL;
}

const es_db_val_t *pj_batch_params(const pj_batch_t *b, size_t i, size_t *n)
{
    *n = i < b->nout ? b->out[i].n : 0;
    return i < b->nout ? b->out[i].p : NULL;
}

size_t pj_batch_rows(const pj_batch_t *b, size_t i)
{
    return i < b->nout ? b->out[i].rows : 0;
}

int pj_batch_apply(es_db_t *db, pj_batch_t *b, es_err_t *err)
{
    size_t n = pj_batch_build(b);
    for (size_t i = 0; i < n; i++) {
        const struct pj_out *o = &b->out[i];
        long long affected = 0;
        if (es_db_exec(db, o->q, o->p, o->n, &affected, err))
            return -1;
        /* an upsert form counts 2 for a row it changed, 1 for one it inserted (pj_plan.h) */
        long long want = o->upsert ? 2 * (long long)o->rows : (long long)o->rows;
        if (o->must_match && affected < want)
            return es_set(err, ES_ENOTFOUND,
                          "%lld of the %zu rows a must-match statement names changed%s", affected,
                          o->rows, o->upsert ? " (2 a row: its upsert form)" : "");
    }
    return 0;
}
