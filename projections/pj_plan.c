#include "pj_plan.h"
#include "es_mem.h"
#include "es_strbuf.h"
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A statement's printed SQL, kept from event to event with what it was printed from when that
 * was a format whose one conversion is %s (nearly always the table suffix): the same statement of
 * the next event is then not printed again (printing was a tenth of a live projector's time). */
struct pj_text {
    char *s;
    size_t cap;
    const char *fmt; /* NULL: not kept */
    char arg[72];
};

struct pj_plan {
    struct pj_stmt *stmts;
    size_t n, cap;
    /* the SQL of statement i is printed into sql[i] (sqlcap[i] bytes), kept from event to event:
     * a plan is reset and filled again for every event, and a fresh string for each statement
     * was a good part of a projector's allocations */
    struct pj_text *sql;
    struct pj_text *ups; /* the same for the statements' upsert forms */
    char **bufs;         /* what parameters borrow besides the event */
    size_t nbufs, capbufs;
    struct es_strbuf *dumps; /* pj_plan_dump's texts, kept from event to event */
    size_t ndumps, capdumps;
    /* the subject, printed only when asked for (an error message): printing it for every
     * event was most of a plan's printf work. fmt NULL: subject holds it already */
    const char *subject_fmt;
    const char *subject_args[2];
    char subject[200];
    const char *key;
    char pos[32]; /* pj_plan_position_key */
};

pj_plan_t *pj_plan_new(void)
{
    return xcalloc(1, sizeof(pj_plan_t));
}

void pj_plan_reset(pj_plan_t *plan)
{
    for (size_t i = 0; i < plan->nbufs; i++)
        free(plan->bufs[i]);
    plan->n = plan->nbufs = plan->ndumps = 0;
    plan->subject[0] = '\0';
    plan->subject_fmt = NULL;
    plan->key = NULL;
}

void pj_plan_free(pj_plan_t *plan)
{
    if (!plan)
        return;
    pj_plan_reset(plan);
    for (size_t i = 0; i < plan->cap; i++) {
        free(plan->sql[i].s);
        free(plan->ups[i].s);
    }
    free(plan->sql);
    free(plan->ups);
    free(plan->stmts);
    free(plan->bufs);
    for (size_t i = 0; i < plan->capdumps; i++)
        es_strbuf_release(&plan->dumps[i]);
    free(plan->dumps);
    free(plan);
}

/* Whether fmt's one conversion is %s. */
static bool one_string(const char *fmt)
{
    int n = 0;
    for (const char *c = strchr(fmt, '%'); c; c = strchr(c + 2, '%'))
        if (c[1] != 's' || ++n > 1)
            return false;
    return n == 1;
}

/* vsnprintf into t, grown when short; what was printed already when fmt and its string argument
 * are those of t's last print. */
static char *print_into(struct pj_text *t, const char *fmt, va_list ap)
{
    if (t->fmt == fmt) {
        va_list peek;
        va_copy(peek, ap);
        const char *arg = va_arg(peek, const char *);
        bool same = strcmp(arg, t->arg) == 0;
        va_end(peek);
        if (same)
            return t->s;
    }
    t->fmt = NULL;
    va_list again;
    va_copy(again, ap);
    int len = vsnprintf(t->s, t->cap, fmt, ap);
    if ((size_t)len >= t->cap) {
        t->cap = (size_t)len + 1;
        t->s = xrealloc(t->s, t->cap);
        vsnprintf(t->s, t->cap, fmt, again);
    }
    va_end(again);
    return t->s;
}

/* print_into, then kept for the next print when fmt has one %s (ap restarted by the caller). */
static void print_keep(struct pj_text *t, const char *fmt, va_list ap)
{
    if (t->fmt || !one_string(fmt))
        return;
    const char *arg = va_arg(ap, const char *);
    if (strlen(arg) < sizeof t->arg) {
        strcpy(t->arg, arg);
        t->fmt = fmt;
    }
}

struct pj_stmt *pj_plan_add(pj_plan_t *plan, enum pj_stmt_kind kind, const char *table,
                            const char *fmt, ...)
{
    if (plan->n == plan->cap) {
        size_t cap = plan->cap ? 2 * plan->cap : 4;
        plan->stmts = xrealloc(plan->stmts, cap * sizeof *plan->stmts);
        plan->sql = xrealloc(plan->sql, cap * sizeof *plan->sql);
        plan->ups = xrealloc(plan->ups, cap * sizeof *plan->ups);
        for (size_t i = plan->cap; i < cap; i++)
            plan->sql[i] = plan->ups[i] = (struct pj_text){0};
        plan->cap = cap;
    }
    size_t i = plan->n;
    va_list ap;
    va_start(ap, fmt);
    char *sql = print_into(&plan->sql[i], fmt, ap);
    va_end(ap);
    va_start(ap, fmt);
    print_keep(&plan->sql[i], fmt, ap);
    va_end(ap);
    /* field by field: a compound literal would also zero the parameter array (most of the
     * statement's size, written for every statement of every event); only its first n are read */
    struct pj_stmt *st = &plan->stmts[plan->n++];
    st->kind = kind;
    st->table = table;
    st->sql = sql;
    st->n = 0;
    st->must_match = false;
    st->key = NULL;
    st->upsert = NULL;
    return st;
}

void pj_stmt_set_upsert(pj_plan_t *plan, struct pj_stmt *st, const char *fmt, ...)
{
    size_t i = (size_t)(st - plan->stmts);
    if (plan->n == 0 || i != plan->n - 1)
        abort(); /* not the plan's last statement: a bug of the projection */
    va_list ap;
    va_start(ap, fmt);
    st->upsert = print_into(&plan->ups[i], fmt, ap);
    va_end(ap);
    va_start(ap, fmt);
    print_keep(&plan->ups[i], fmt, ap);
    va_end(ap);
}

void pj_stmt_bind(struct pj_stmt *st, const es_db_val_t *vals, size_t n)
{
    if (n > PJ_STMT_MAX_PARAMS - st->n)
        abort(); /* a statement with more parameters than the array: a bug of the projection */
    memcpy(st->params + st->n, vals, n * sizeof *vals);
    st->n += n;
}

const char *pj_plan_keep(pj_plan_t *plan, char *buf)
{
    if (plan->nbufs == plan->capbufs) {
        plan->capbufs = plan->capbufs ? 2 * plan->capbufs : 2;
        plan->bufs = xrealloc(plan->bufs, plan->capbufs * sizeof *plan->bufs);
    }
    plan->bufs[plan->nbufs++] = buf;
    return buf;
}

static int dump_add(const char *buf, size_t size, void *data)
{
    es_strbuf_add(data, buf, size);
    return 0;
}

const char *pj_plan_dump(pj_plan_t *plan, const json_t *v, size_t flags)
{
    if (plan->ndumps == plan->capdumps) {
        size_t cap = plan->capdumps ? 2 * plan->capdumps : 2;
        plan->dumps = xrealloc(plan->dumps, cap * sizeof *plan->dumps);
        for (size_t i = plan->capdumps; i < cap; i++)
            es_strbuf_init(&plan->dumps[i], 0);
        plan->capdumps = cap;
    }
    struct es_strbuf *b = &plan->dumps[plan->ndumps];
    es_strbuf_reset(b);
    /* an object of at most one key, of a scalar, prints the same unsorted, without the array of
     * keys that sorting allocates (attributes {"k": "v"}: nearly always) */
    if (json_is_object(v) && json_object_size(v) < 2) {
        void *it = json_object_iter((json_t *)v);
        json_t *one = it ? json_object_iter_value(it) : NULL;
        if (!json_is_object(one) && !json_is_array(one))
            flags &= ~(size_t)JSON_SORT_KEYS;
    }
    if (json_dump_callback(v, dump_add, b, flags))
        return NULL;
    plan->ndumps++;
    return es_strbuf_str(b);
}

/* Writes v in decimal ending at end (exclusive); returns where it starts. */
static char *put_dec(char *end, uint64_t v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

const char *pj_plan_position_key(pj_plan_t *plan, int32_t part, int64_t offset)
{
    char *end = plan->pos + sizeof plan->pos, *p = end;
    *--p = '\0';
    p = put_dec(p, offset < 0 ? 0 - (uint64_t)offset : (uint64_t)offset);
    if (offset < 0)
        *--p = '-';
    *--p = ':';
    p = put_dec(p, part < 0 ? 0 - (uint64_t)(int64_t)part : (uint64_t)part);
    if (part < 0)
        *--p = '-';
    return p;
}

/* How many conversions fmt has when each is %s, else -1. */
static int string_convs(const char *fmt)
{
    int n = 0;
    for (const char *c = strchr(fmt, '%'); c; c = strchr(c + 2, '%')) {
        if (c[1] != 's')
            return -1;
        n++;
    }
    return n;
}

void pj_plan_set_subject(pj_plan_t *plan, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = string_convs(fmt);
    if (n >= 0 && n <= 2) { /* kept: the strings are the event's, which outlives the plan */
        plan->subject_fmt = fmt;
        plan->subject_args[0] = n > 0 ? va_arg(ap, const char *) : NULL;
        plan->subject_args[1] = n > 1 ? va_arg(ap, const char *) : NULL;
        plan->subject[0] = '\0';
    } else {
        plan->subject_fmt = NULL;
        vsnprintf(plan->subject, sizeof plan->subject, fmt, ap);
    }
    va_end(ap);
}

void pj_plan_set_key(pj_plan_t *plan, const char *key)
{
    plan->key = key;
}

const char *pj_plan_key(const pj_plan_t *plan)
{
    return plan->key;
}

size_t pj_plan_len(const pj_plan_t *plan)
{
    return plan->n;
}

const struct pj_stmt *pj_plan_stmt(const pj_plan_t *plan, size_t i)
{
    return i < plan->n ? &plan->stmts[i] : NULL;
}

const char *pj_plan_subject(const pj_plan_t *plan)
{
    if (plan->subject_fmt) {
        /* printed on first use; a plan is never made const, only lent so */
        pj_plan_t *p = (pj_plan_t *)plan;
        snprintf(p->subject, sizeof p->subject, p->subject_fmt, p->subject_args[0],
                 p->subject_args[1]);
        p->subject_fmt = NULL;
    }
    return plan->subject;
}

int pj_plan_apply(es_db_t *db, const pj_plan_t *plan, const char *what, es_err_t *err)
{
    for (size_t i = 0; i < plan->n; i++) {
        const struct pj_stmt *st = &plan->stmts[i];
        long long affected = 0;
        if (es_db_exec(db, st->sql, st->params, st->n, &affected, err))
            return -1;
        if (st->must_match && affected == 0)
            return es_set(err, ES_ENOTFOUND, "%s: %s is not in the read model", what,
                          pj_plan_subject(plan));
    }
    return 0;
}
