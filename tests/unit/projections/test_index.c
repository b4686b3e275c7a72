#include "pj_runtime.h"
#include "pj_test.h"
#include <criterion/criterion.h>
#include <string.h>

#define EVENT_ID "0b7c6f0e-3f5e-4a0a-9a55-2d1f0c3b4a11"

static json_t *placed(void)
{
    return json_pack("{s:{s:s,s:s,s:I,s:s,s:s,s:I,s:s},s:s}", "metadata", "event_id", EVENT_ID,
                     "aggregate_id", "o-1", "aggregate_version", (json_int_t)3, "command_id",
                     EVENT_ID, "correlation_id", "c1", "occurred_at", (json_int_t)1700000000123LL,
                     "actor", "u1", "order_id", "o-1");
}

Test(index, an_event_becomes_one_insert_of_its_position_and_metadata)
{
    json_t *ev = placed();
    pj_plan_t *p = pj_plan_new();
    es_err_t err = ES_ERR_INIT;
    const pj_position_t at = {2, 41};
    cr_assert_eq(pj_index_plan("_rb1", "OrderPlaced", ev, &at, p, &err), 0, "%s", err.msg);
    cr_assert_eq(pj_plan_len(p), 1);
    const struct pj_stmt *s = pj_expect_stmt(p, 0, PJ_INSERT, PJ_INDEX_TABLE,
                                             "INSERT IGNORE INTO `event_index_rb1`", false, 6);
    PJ_EXPECT_PARAMS(s, 0, ES_DB_I(2), ES_DB_I(41), ES_DB_S("o-1"), ES_DB_I(3),
                     ES_DB_S("OrderPlaced"), ES_DB_I(1700000000123LL));
    pj_plan_free(p);
    json_decref(ev);
}

Test(index, malformed_metadata_is_einval_naming_the_field)
{
    json_t *ev = placed();
    json_object_del(json_object_get(ev, "metadata"), "aggregate_id");
    pj_plan_t *p = pj_plan_new();
    es_err_t err = ES_ERR_INIT;
    const pj_position_t at = {0, 0};
    cr_assert_eq(pj_index_plan("", "OrderPlaced", ev, &at, p, &err), -1);
    cr_assert_eq(err.code, ES_EINVAL);
    cr_assert(strstr(err.msg, "metadata.aggregate_id"), "%s", err.msg);
    json_object_set_new(json_object_get(ev, "metadata"), "aggregate_id", json_string("o-1"));
    json_object_set_new(json_object_get(ev, "metadata"), "aggregate_version", json_integer(0));
    err = (es_err_t)ES_ERR_INIT;
    pj_plan_reset(p);
    cr_assert_eq(pj_index_plan("", "OrderPlaced", ev, &at, p, &err), -1);
    cr_assert(strstr(err.msg, "metadata.aggregate_version"), "%s", err.msg);
    pj_plan_free(p);
    json_decref(ev);
}

Test(index, ddl_keys_the_position_and_covers_the_aggregate_in_version_order)
{
    pj_plan_t *p = pj_plan_new();
    pj_index_ddl("_x", p);
    cr_assert_eq(pj_plan_len(p), 1);
    const char *ddl = pj_expect_stmt(p, 0, PJ_DDL, PJ_INDEX_TABLE,
                                     "CREATE TABLE IF NOT EXISTS `event_index_x`", false, 0)
                          ->sql;
    cr_assert(strstr(ddl, "PRIMARY KEY (part, `offset`)"));
    cr_assert(strstr(ddl, "KEY aggregate (aggregate_id, aggregate_version, part, `offset`)"));
    pj_plan_free(p);
}

Test(index, every_projection_lists_the_index_after_its_own_tables)
{
    for (const pj_projection_t *const *p = pj_projections; *p; p++) {
        size_t i = 0;
        while ((*p)->tables[i]) {
            cr_assert_str_eq(pj_projection_table(*p, i), (*p)->tables[i]);
            i++;
        }
        cr_assert_str_eq(pj_projection_table(*p, i), PJ_INDEX_TABLE, "%s", (*p)->name);
        cr_assert_null(pj_projection_table(*p, i + 1));
    }
}
