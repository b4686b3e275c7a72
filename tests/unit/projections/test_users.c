#include "pj_test.h"
#include "users.h"
#include <criterion/criterion.h>
#include <string.h>

static json_t *event(const char *extra_json)
{
    json_t *ev = json_loads(extra_json, 0, NULL);
    cr_assert_not_null(ev);
    json_object_set_new(ev, "metadata",
                        json_pack("{s:I, s:I}", "aggregate_version", (json_int_t)3, "occurred_at",
                                  (json_int_t)1700000000000));
    return ev;
}

Test(users_projection, registered_upserts_sealed_fields_only)
{
    json_t *ev = event("{\"user_id\": \"u-1\", \"email_index\": \"ab\", \"role\": \"vendor\","
                       " \"status\": \"pending\", \"crypto\": \"c\", \"email_enc\": \"RU5D\","
                       " \"name_enc\": \"Tk1F\", \"phone_enc\": null,"
                       " \"password_hash_enc\": \"SEFTSA==\"}");
    pj_plan_t *p = pj_expect_plan(&users_accounts_projection, "_v2", "UserRegistered", ev, 0, NULL);
    cr_assert_eq(pj_plan_len(p), 1);
    const struct pj_stmt *st =
        pj_expect_stmt(p, 0, PJ_UPSERT, "users", "INSERT INTO users_v2 ", false, 11);
    cr_assert(strstr(st->sql, "ON DUPLICATE KEY UPDATE"));
    PJ_EXPECT_PARAMS(st, 0, ES_DB_S("u-1"), ES_DB_S("ab"), ES_DB_S("vendor"), ES_DB_S("pending"),
                     ES_DB_S("c"), ES_DB_S("RU5D"), ES_DB_S("Tk1F"));
    pj_expect_null(st, 7); /* no phone */
    PJ_EXPECT_PARAMS(st, 8, ES_DB_S("SEFTSA=="), ES_DB_I(1700000000000), ES_DB_I(3));
    pj_plan_free(p);
    json_decref(ev);
}

Test(users_projection, forgotten_wipes_index_and_sealed_fields)
{
    json_t *ev = event("{\"user_id\": \"u-1\"}");
    pj_plan_t *p = pj_expect_plan(&users_accounts_projection, "", "UserForgotten", ev, 0, NULL);
    cr_assert_eq(pj_plan_len(p), 1);
    const struct pj_stmt *st =
        pj_expect_stmt(p, 0, PJ_UPDATE, "users", "UPDATE users SET", true, 2);
    static const char *const wiped[] = {"email_index = NULL",       "email_enc = NULL",
                                        "name_enc = NULL",          "phone_enc = NULL",
                                        "password_hash_enc = NULL", "status = 'forgotten'"};
    for (size_t i = 0; i < sizeof wiped / sizeof *wiped; i++)
        cr_assert(strstr(st->sql, wiped[i]), "missing %s", wiped[i]);
    pj_expect_i(st, 0, 3);
    pj_expect_s(st, 1, "u-1");
    cr_assert_str_eq(pj_plan_subject(p), "user 'u-1'");
    pj_plan_free(p);
    json_decref(ev);
}

Test(users_projection, approved_sets_vendor_id_and_malformed_is_einval)
{
    json_t *ev = event("{\"user_id\": \"u-1\", \"vendor_id\": \"v-1\"}");
    pj_plan_t *p = pj_expect_plan(&users_accounts_projection, "", "VendorApproved", ev, 0, NULL);
    cr_assert_eq(pj_plan_len(p), 1);
    const struct pj_stmt *st = pj_expect_stmt(p, 0, PJ_UPDATE, "users", "vendor_id = ?", true, 3);
    cr_assert(strstr(st->sql, "status = 'active'"));
    PJ_EXPECT_PARAMS(st, 0, ES_DB_S("v-1"), ES_DB_I(3), ES_DB_S("u-1"));
    pj_plan_free(p);
    json_decref(ev);

    ev = event("{\"user_id\": \"u-1\"}");
    pj_plan_free(pj_expect_plan(&users_accounts_projection, "", "UserRegistered", ev, -1,
                                "UserRegistered: user 'u-1' lacks a field"));
    pj_plan_free(pj_expect_plan(&users_accounts_projection, "", "VendorApproved", ev, -1,
                                "VendorApproved: user 'u-1' lacks vendor_id"));
    pj_plan_free(pj_expect_plan(&users_accounts_projection, "", "UserRoleChanged", ev, -1,
                                "UserRoleChanged: user 'u-1' lacks a field"));
    p = pj_expect_plan(&users_accounts_projection, "", "SomethingElse", ev, 0, NULL);
    cr_assert_eq(pj_plan_len(p), 0);
    pj_plan_free(p);
    json_decref(ev);
}

Test(users_projection, role_changed_drops_the_vendor_id)
{
    json_t *ev = event("{\"user_id\": \"u-1\", \"role\": \"admin\", \"status\": \"active\"}");
    pj_plan_t *p = pj_expect_plan(&users_accounts_projection, "_r", "UserRoleChanged", ev, 0, NULL);
    cr_assert_eq(pj_plan_len(p), 1);
    const struct pj_stmt *st =
        pj_expect_stmt(p, 0, PJ_UPDATE, "users", "UPDATE users_r SET role = ?", true, 4);
    cr_assert(strstr(st->sql, "vendor_id = NULL"));
    PJ_EXPECT_PARAMS(st, 0, ES_DB_S("admin"), ES_DB_S("active"), ES_DB_I(3), ES_DB_S("u-1"));
    pj_plan_free(p);
    json_decref(ev);
}

Test(users_projection, every_event_needs_the_user_id_and_version)
{
    json_t *ev = event("{\"role\": \"admin\"}");
    pj_plan_free(pj_expect_plan(&users_accounts_projection, "", "UserForgotten", ev, -1,
                                "UserForgotten: user_id is missing"));
    json_decref(ev);
    ev = json_pack("{s:s}", "user_id", "u-1");
    pj_plan_free(pj_expect_plan(&users_accounts_projection, "", "UserForgotten", ev, -1,
                                "metadata.aggregate_version is missing"));
    json_decref(ev);
}

Test(users_projection, ddl_names_the_columns_the_api_reads)
{
    pj_plan_t *p = pj_plan_new();
    users_accounts_projection.ddl("_v2", p);
    cr_assert_eq(pj_plan_len(p), 1);
    const struct pj_stmt *st =
        pj_expect_stmt(p, 0, PJ_DDL, "users", "CREATE TABLE IF NOT EXISTS users_v2 (", false, 0);
    cr_assert(strstr(st->sql, "UNIQUE KEY users_v2_email_index (email_index)"));
    cr_assert(strstr(st->sql, "password_hash_enc TEXT NULL"));
    cr_assert_eq(pj_projection_find("users", NULL), &users_accounts_projection);
    pj_plan_free(p);
}
