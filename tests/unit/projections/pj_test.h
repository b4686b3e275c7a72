/* Assertions on projection plans, shared by the projections' unit tests. */
#ifndef PJ_TEST_H
#define PJ_TEST_H

#include "pj_plan.h"
#include "pj_runtime.h"
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

/* The i-th statement of plan: of kind on table (no suffix), its SQL holding sql_part, must_match
 * as given, with nparams parameters. */
static inline const struct pj_stmt *pj_expect_stmt(const pj_plan_t *plan, size_t i,
                                                   enum pj_stmt_kind kind, const char *table,
                                                   const char *sql_part, bool must_match,
                                                   size_t nparams)
{
    const struct pj_stmt *st = pj_plan_stmt(plan, i);
    cr_assert_not_null(st, "no statement %zu (plan has %zu)", i, pj_plan_len(plan));
    cr_assert_eq(st->kind, kind, "statement %zu: kind %d", i, (int)st->kind);
    cr_assert_str_eq(st->table, table, "statement %zu", i);
    cr_assert(strstr(st->sql, sql_part), "statement %zu lacks '%s': %s", i, sql_part, st->sql);
    cr_assert_eq(st->must_match, must_match, "statement %zu: must_match", i);
    cr_assert_eq(st->n, nparams, "statement %zu: %zu parameters", i, st->n);
    return st;
}

static inline void pj_expect_s(const struct pj_stmt *st, size_t i, const char *want)
{
    cr_assert_lt(i, st->n);
    cr_assert_eq(st->params[i].type, ES_DB_STR, "parameter %zu is not a string", i);
    cr_assert_str_eq(st->params[i].s, want, "parameter %zu", i);
}

static inline void pj_expect_i(const struct pj_stmt *st, size_t i, long long want)
{
    cr_assert_lt(i, st->n);
    cr_assert_eq(st->params[i].type, ES_DB_INT, "parameter %zu is not an integer", i);
    cr_assert_eq(st->params[i].i, want, "parameter %zu: %lld", i, st->params[i].i);
}

static inline void pj_expect_null(const struct pj_stmt *st, size_t i)
{
    cr_assert_lt(i, st->n);
    cr_assert_eq(st->params[i].type, ES_DB_NULL, "parameter %zu is not NULL", i);
}

/* Parameters from .. from + n - 1 of st are vals: same types, equal strings and integers. */
static inline void pj_expect_params(const struct pj_stmt *st, size_t from, const es_db_val_t *vals,
                                    size_t n)
{
    for (size_t k = 0; k < n; k++) {
        if (vals[k].type == ES_DB_STR)
            pj_expect_s(st, from + k, vals[k].s);
        else if (vals[k].type == ES_DB_INT)
            pj_expect_i(st, from + k, vals[k].i);
        else
            pj_expect_null(st, from + k);
    }
}
#define PJ_EXPECT_PARAMS(st, from, ...)                                                            \
    pj_expect_params((st), (from), (const es_db_val_t[]){__VA_ARGS__},                             \
                     sizeof((const es_db_val_t[]){__VA_ARGS__}) / sizeof(es_db_val_t))

/* Plans event with projection p on a fresh plan, expecting rc; with rc -1, err's code ES_EINVAL
 * and its message holding msg_part. Returns the plan (pj_plan_free it). */
static inline pj_plan_t *pj_expect_plan(const pj_projection_t *p, const char *suffix,
                                        const char *type, const json_t *event, int rc,
                                        const char *msg_part)
{
    pj_plan_t *plan = pj_plan_new();
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(p->plan(suffix, type, event, plan, &err), rc, "%s: %s", type, err.msg);
    if (rc) {
        cr_assert_eq(err.code, ES_EINVAL, "%s: code %d", type, (int)err.code);
        cr_assert(strstr(err.msg, msg_part), "%s: '%s' lacks '%s'", type, err.msg, msg_part);
    }
    return plan;
}

#endif
