#include "pj_plan.h"
#include "es_mem.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pj_plan {
    struct pj_stmt *stmts;
    size_t n, cap;
    /* the SQL of statement i is printed into sql[i] (sqlcap[i] bytes), kept from event to event:
     * a plan is reset and filled again for every event, and a fresh string for each statement
     * was a good part of a projector's allocations */
    char **sql;
    size_t *sqlcap;
    char **ups; /* the same for the statements' upsert forms */
    size_t *upscap;
    char **bufs; /* what parameters borrow besides the event */
    size_t nbufs, capbufs;
    char subject[200];
    const char *key;
};

pj_plan_t *pj_plan_new(void)
{
    return xcalloc(1, sizeof(pj_plan_t));
}

void pj_plan_reset(pj_plan_t *plan)
{
    for (size_t i = 0; i < plan->nbufs; i++)
        free(plan->bufs[i]);
    plan->n = plan->nbufs = 0;
    plan->subject[0] = '\0';
    plan->key = NULL;
}

void pj_plan_free(pj_plan_t *plan)
{
    if (!plan)
        return;
    pj_plan_reset(plan);
    for (size_t i = 0; i < plan->cap; i++) {
        free(plan->sql[i]);
        free(plan->ups[i]);
    }
    free(plan->sql);
    free(plan->sqlcap);
    free(plan->ups);
    free(plan->upscap);
    free(plan->stmts);
    free(plan->bufs);
    free(plan);
}

/* vsnprintf into *buf (*cap bytes), grown when short. */
static char *print_into(char **buf, size_t *cap, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int len = vsnprintf(*buf, *cap, fmt, ap);
    if ((size_t)len >= *cap) {
        *cap = (size_t)len + 1;
        *buf = xrealloc(*buf, *cap);
        vsnprintf(*buf, *cap, fmt, again);
    }
    va_end(again);
    return *buf;
}

struct pj_stmt *pj_plan_add(pj_plan_t *plan, enum pj_stmt_kind kind, const char *table,
                            const char *fmt, ...)
{
    if (plan->n == plan->cap) {
        size_t cap = plan->cap ? 2 * plan->cap : 4;
        plan->stmts = xrealloc(plan->stmts, cap * sizeof *plan->stmts);
        plan->sql = xrealloc(plan->sql, cap * sizeof *plan->sql);
        plan->sqlcap = xrealloc(plan->sqlcap, cap * sizeof *plan->sqlcap);
        plan->ups = xrealloc(plan->ups, cap * sizeof *plan->ups);
        plan->upscap = xrealloc(plan->upscap, cap * sizeof *plan->upscap);
        for (size_t i = plan->cap; i < cap; i++) {
            plan->sql[i] = plan->ups[i] = NULL;
            plan->sqlcap[i] = plan->upscap[i] = 0;
        }
        plan->cap = cap;
    }
    size_t i = plan->n;
    va_list ap;
    va_start(ap, fmt);
    print_into(&plan->sql[i], &plan->sqlcap[i], fmt, ap);
    va_end(ap);
    struct pj_stmt *st = &plan->stmts[plan->n++];
    *st = (struct pj_stmt){.kind = kind, .table = table, .sql = plan->sql[i]};
    return st;
}

void pj_stmt_set_upsert(pj_plan_t *plan, struct pj_stmt *st, const char *fmt, ...)
{
    size_t i = (size_t)(st - plan->stmts);
    if (plan->n == 0 || i != plan->n - 1)
        abort(); /* not the plan's last statement: a bug of the projection */
    va_list ap;
    va_start(ap, fmt);
    st->upsert = print_into(&plan->ups[i], &plan->upscap[i], fmt, ap);
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

void pj_plan_set_subject(pj_plan_t *plan, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(plan->subject, sizeof plan->subject, fmt, ap);
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
                          plan->subject);
    }
    return 0;
}
