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

static const char *param(const struct users_stmt *st, size_t i)
{
    cr_assert(i < st->n);
    return st->params[i].type == ES_DB_STR ? st->params[i].s : NULL;
}

Test(users_projection, registered_upserts_sealed_fields_only)
{
    json_t *ev = event("{\"user_id\": \"u-1\", \"email_index\": \"ab\", \"role\": \"vendor\","
                       " \"status\": \"pending\", \"crypto\": \"c\", \"email_enc\": \"RU5D\","
                       " \"name_enc\": \"Tk1F\", \"phone_enc\": null,"
                       " \"password_hash_enc\": \"SEFTSA==\"}");
    struct users_stmt st;
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(users_accounts_plan("_v2", "UserRegistered", ev, &st, &err), 0, "%s", err.msg);
    cr_assert(strstr(st.sql, "INSERT INTO users_v2 "));
    cr_assert(strstr(st.sql, "ON DUPLICATE KEY UPDATE"));
    cr_assert_str_eq(param(&st, 0), "u-1");
    cr_assert_str_eq(param(&st, 5), "RU5D");
    cr_assert_eq(st.params[7].type, ES_DB_NULL, "no phone: NULL");
    cr_assert_eq(st.params[10].i, 3);
    users_stmt_release(&st);
    json_decref(ev);
}

Test(users_projection, forgotten_wipes_index_and_sealed_fields)
{
    json_t *ev = event("{\"user_id\": \"u-1\"}");
    struct users_stmt st;
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(users_accounts_plan("", "UserForgotten", ev, &st, &err), 0);
    static const char *const wiped[] = {"email_index = NULL",       "email_enc = NULL",
                                        "name_enc = NULL",          "phone_enc = NULL",
                                        "password_hash_enc = NULL", "status = 'forgotten'"};
    for (size_t i = 0; i < sizeof wiped / sizeof *wiped; i++)
        cr_assert(strstr(st.sql, wiped[i]), "missing %s", wiped[i]);
    cr_assert(st.must_match);
    users_stmt_release(&st);
    json_decref(ev);
}

Test(users_projection, approved_sets_vendor_id_and_malformed_is_einval)
{
    json_t *ev = event("{\"user_id\": \"u-1\", \"vendor_id\": \"u-1\"}");
    struct users_stmt st;
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(users_accounts_plan("", "VendorApproved", ev, &st, &err), 0);
    cr_assert(strstr(st.sql, "vendor_id = ?"));
    cr_assert_str_eq(param(&st, 0), "u-1");
    users_stmt_release(&st);
    json_decref(ev);

    ev = event("{\"user_id\": \"u-1\"}");
    es_err_t e2 = ES_ERR_INIT;
    cr_assert_eq(users_accounts_plan("", "UserRegistered", ev, &st, &e2), -1);
    cr_assert_eq(e2.code, ES_EINVAL);
    users_stmt_release(&st);
    cr_assert_eq(users_accounts_plan("", "SomethingElse", ev, &st, &err), 0);
    cr_assert_null(st.sql);
    json_decref(ev);
}
