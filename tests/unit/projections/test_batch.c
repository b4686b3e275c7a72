#include "catalog.h"
#include "pj_batch.h"
#include "pj_test.h"
#include <criterion/criterion.h>
#include <stdio.h>

/* A catalog event of type for sku at version v (ProductListed or ProductDetailsChanged). */
static json_t *catalog_event(const char *type, const char *sku, int v)
{
    char id[37];
    snprintf(id, sizeof id, "00000000-0000-4000-8000-%012d", v);
    json_t *e = json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:i, s:i}}", "sku", sku, "name", "n",
                          "category", "c", "metadata", "event_id", id, "aggregate_id", sku,
                          "aggregate_version", v, "occurred_at", 1000 + v);
    if (!strcmp(type, "ProductListed")) {
        json_object_set_new(e, "vendor_id", json_string("v-1"));
        json_object_set_new(e, "currency", json_string("EUR"));
    }
    return e;
}

struct fixture {
    json_t *ev[8];
    pj_plan_t *plan[8];
    int n;
};

static void add(struct fixture *f, pj_batch_t *b, const char *type, const char *sku, int v)
{
    es_err_t err = ES_ERR_INIT;
    f->ev[f->n] = catalog_event(type, sku, v);
    f->plan[f->n] = pj_plan_new();
    const pj_position_t at = {0, f->n};
    cr_assert_eq(pj_projection_plan_at(&catalog_products_projection, "", type, f->ev[f->n], &at,
                                       f->plan[f->n], &err),
                 0, "%s", err.msg);
    pj_batch_add(b, f->plan[f->n]);
    f->n++;
}

static void release(struct fixture *f)
{
    for (int i = 0; i < f->n; i++) {
        pj_plan_free(f->plan[i]);
        json_decref(f->ev[i]);
    }
}

Test(pj_batch, merges_per_table_and_key_layer)
{
    pj_batch_t *b = pj_batch_new();
    struct fixture f = {0};
    add(&f, b, "ProductListed", "A", 1);
    add(&f, b, "ProductDetailsChanged", "A", 2);
    add(&f, b, "ProductListed", "B", 1);
    add(&f, b, "ProductDetailsChanged", "B", 2);
    add(&f, b, "ProductListed", "C", 1);
    /* products: the listings (layer 0, one statement of 3 rows), then the changes (layer 1, one
     * statement of 2 rows: their upsert form); the index: one statement of 5 rows */
    cr_assert_eq(pj_batch_build(b), 3);
    cr_assert(strstr(pj_batch_sql(b, 0), "INSERT INTO `products`"));
    cr_assert(strstr(pj_batch_sql(b, 0), "), (?"));
    cr_assert_eq(pj_batch_rows(b, 0), 3);
    size_t n;
    const es_db_val_t *p = pj_batch_params(b, 0, &n);
    cr_assert_eq(n, 3 * pj_plan_stmt(f.plan[0], 0)->n);
    cr_assert_str_eq(p[0].s, "A");
    cr_assert_str_eq(p[n / 3].s, "B");
    cr_assert(strstr(pj_batch_sql(b, 1), "INSERT INTO `products` (name, "), "%s",
              pj_batch_sql(b, 1));
    cr_assert(strstr(pj_batch_sql(b, 1), "VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', 1), (?, "));
    cr_assert(strstr(pj_batch_sql(b, 1), "ON DUPLICATE KEY UPDATE name=VALUES(name)"));
    cr_assert_eq(pj_batch_rows(b, 1), 2);
    p = pj_batch_params(b, 1, &n);
    cr_assert_eq(n, 2 * pj_plan_stmt(f.plan[1], 0)->n);
    cr_assert_str_eq(p[7].s, "A"); /* the sku, last, as in the UPDATE */
    cr_assert_str_eq(p[n / 2 + 7].s, "B");
    cr_assert(strstr(pj_batch_sql(b, 2), "INSERT IGNORE INTO `event_index`"));
    cr_assert_eq(pj_batch_rows(b, 2), 5);
    release(&f);
    pj_batch_free(b);
}

Test(pj_batch, keeps_the_order_of_one_key)
{
    pj_batch_t *b = pj_batch_new();
    struct fixture f = {0};
    /* a change before the listing of the same sku stays before it (and then fails: the caller
     * goes event by event), and a key differing only in case or trailing spaces is the same */
    add(&f, b, "ProductDetailsChanged", "A", 2);
    add(&f, b, "ProductListed", "a ", 1);
    add(&f, b, "ProductDetailsChanged", "B", 2);
    cr_assert_eq(pj_batch_build(b), 3);
    cr_assert(strstr(pj_batch_sql(b, 0), "ON DUPLICATE KEY UPDATE name=VALUES(name)"));
    cr_assert_eq(pj_batch_rows(b, 0), 2);
    cr_assert(strstr(pj_batch_sql(b, 1), "INSERT INTO `products`"));
    cr_assert_eq(pj_batch_rows(b, 1), 1);
    release(&f);
    pj_batch_free(b);
}

/* Must-match UPDATEs of one key each, k, with or without an upsert form. */
static void add_updates(pj_batch_t *b, pj_plan_t **p, int k, bool upsert)
{
    static const char *const keys[] = {"x", "y", "z"};
    for (int i = 0; i < k; i++) {
        p[i] = pj_plan_new();
        struct pj_stmt *st = pj_plan_add(p[i], PJ_UPDATE, "t", "UPDATE t SET n=n+1, v=? WHERE k=?");
        PJ_BIND(st, ES_DB_I(i), ES_DB_S(keys[i]));
        st->must_match = true;
        if (upsert)
            pj_stmt_set_upsert(p[i], st,
                               "INSERT INTO t (v, k, n) VALUES (?, ?, 1) ON DUPLICATE KEY UPDATE "
                               "n=n+1, v=VALUES(v)");
        pj_plan_set_key(p[i], keys[i]);
        pj_batch_add(b, p[i]);
    }
}

Test(pj_batch, must_match_updates_merge_as_their_upsert_form_or_joined)
{
    pj_batch_t *b = pj_batch_new();
    pj_plan_t *p[3];
    add_updates(b, p, 3, false);
    cr_assert_eq(pj_batch_build(b), 1);
    cr_assert_str_eq(pj_batch_sql(b, 0),
                     "UPDATE t JOIN (SELECT ? AS p0, ? AS p1 UNION ALL SELECT ?, ? UNION ALL "
                     "SELECT ?, ?) AS pj_d SET n=n+1, v=pj_d.p0 WHERE k=pj_d.p1");
    for (int i = 0; i < 3; i++)
        pj_plan_free(p[i]);
    pj_batch_reset(b);
    add_updates(b, p, 3, true);
    cr_assert_eq(pj_batch_build(b), 1);
    cr_assert_str_eq(pj_batch_sql(b, 0), "INSERT INTO t (v, k, n) VALUES (?, ?, 1), (?, ?, 1), "
                                         "(?, ?, 1) ON DUPLICATE KEY UPDATE n=n+1, v=VALUES(v)");
    cr_assert_eq(pj_batch_rows(b, 0), 3);
    size_t n;
    cr_assert_str_eq(pj_batch_params(b, 0, &n)[5].s, "z");
    cr_assert_eq(n, 6);
    for (int i = 0; i < 3; i++)
        pj_plan_free(p[i]);
    /* alone in its layer: the UPDATE as written, which fails on no row by itself */
    pj_batch_reset(b);
    add_updates(b, p, 1, true);
    cr_assert_eq(pj_batch_build(b), 1);
    cr_assert_str_eq(pj_batch_sql(b, 0), "UPDATE t SET n=n+1, v=? WHERE k=?");
    pj_plan_free(p[0]);
    pj_batch_free(b);
}

Test(pj_batch, statements_without_key_are_barriers)
{
    pj_batch_t *b = pj_batch_new();
    pj_plan_t *p[3];
    for (int i = 0; i < 3; i++) {
        p[i] = pj_plan_new();
        struct pj_stmt *st = pj_plan_add(p[i], PJ_INSERT, "t", "INSERT INTO t (k) VALUES (?)");
        PJ_BIND(st, ES_DB_I(i));
        if (i != 1)
            pj_plan_set_key(p[i], i ? "y" : "x");
        pj_batch_add(b, p[i]);
    }
    /* x, then the keyless one alone, then y: nothing crosses it */
    cr_assert_eq(pj_batch_build(b), 3);
    for (size_t i = 0; i < 3; i++) {
        size_t n;
        cr_assert_str_eq(pj_batch_sql(b, i), "INSERT INTO t (k) VALUES (?)");
        cr_assert_eq(pj_batch_params(b, i, &n)[0].i, (long long)i);
    }
    pj_batch_reset(b);
    cr_assert_eq(pj_batch_build(b), 0);
    for (int i = 0; i < 3; i++)
        pj_plan_free(p[i]);
    pj_batch_free(b);
}

Test(pj_batch, splits_at_the_row_limit)
{
    pj_batch_t *b = pj_batch_new();
    enum { N = PJ_BATCH_ROWS + 3 };
    static char keys[N][16];
    pj_plan_t **p = malloc(N * sizeof *p);
    for (int i = 0; i < N; i++) {
        p[i] = pj_plan_new();
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        struct pj_stmt *st =
            pj_plan_add(p[i], PJ_UPSERT, "t",
                        "INSERT INTO t (k, n) VALUES (?, 1) ON DUPLICATE KEY UPDATE n=n+1");
        PJ_BIND(st, ES_DB_S(keys[i]));
        pj_plan_set_key(p[i], keys[i]);
        pj_batch_add(b, p[i]);
    }
    cr_assert_eq(pj_batch_build(b), 2);
    cr_assert_eq(pj_batch_rows(b, 0), PJ_BATCH_ROWS);
    cr_assert_eq(pj_batch_rows(b, 1), 3);
    cr_assert(strstr(pj_batch_sql(b, 1), "VALUES (?, 1), (?, 1), (?, 1) ON DUPLICATE"));
    for (int i = 0; i < N; i++)
        pj_plan_free(p[i]);
    free(p);
    pj_batch_free(b);
}
