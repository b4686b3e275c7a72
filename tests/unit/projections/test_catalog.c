#include "catalog.h"
#include "es_mem.h"
#include "pj_runtime.h"
#include <criterion/criterion.h>
#include <string.h>

#define EVENT_ID "0b7c6f0e-3f5e-4a0a-9a55-2d1f0c3b4a11"

static json_t *listed(void)
{
    return json_pack("{s:{s:s,s:s,s:I,s:s,s:s,s:I,s:s},s:s,s:s,s:s,s:s,s:s,s:{s:s,s:s},s:s}",
                     "metadata", "event_id", EVENT_ID, "aggregate_id", "SKU-1", "aggregate_version",
                     (json_int_t)1, "command_id", EVENT_ID, "correlation_id", "c1", "occurred_at",
                     (json_int_t)1700000000123LL, "actor", "u1", "sku", "SKU-1", "vendor_id", "v-9",
                     "name", "Mug", "description", "A mug", "category", "kitchen", "attributes",
                     "size", "L", "color", "red", "currency", "EUR");
}

static const es_db_val_t *param(const struct catalog_stmt *s, size_t i)
{
    cr_assert_lt(i, s->n);
    return &s->params[i];
}

Test(catalog, listed_becomes_an_upsert_of_every_column)
{
    json_t *ev = listed();
    struct catalog_stmt s;
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(catalog_products_plan("", "ProductListed", ev, &s, &err), 0, "%s", err.msg);
    cr_assert(strstr(s.sql, "INSERT INTO `products` ("));
    cr_assert(strstr(s.sql, "applied_events=applied_events+1"));
    cr_assert_eq(s.n, 11);
    cr_assert_str_eq(param(&s, 0)->s, "SKU-1");
    cr_assert_str_eq(param(&s, 1)->s, "v-9");
    cr_assert_str_eq(param(&s, 2)->s, "Mug");
    cr_assert_str_eq(param(&s, 3)->s, "A mug");
    cr_assert_str_eq(param(&s, 4)->s, "kitchen");
    cr_assert_str_eq(param(&s, 5)->s, "{\"color\":\"red\",\"size\":\"L\"}");
    cr_assert_str_eq(param(&s, 6)->s, "EUR");
    cr_assert_eq(param(&s, 7)->i, 1);
    cr_assert_eq(param(&s, 8)->i, 1700000000123LL);
    cr_assert_eq(param(&s, 9)->i, 1700000000123LL);
    cr_assert_str_eq(param(&s, 10)->s, EVENT_ID);
    cr_assert_not(s.must_match);
    catalog_stmt_release(&s);
    json_decref(ev);
}

Test(catalog, details_changed_updates_the_row_of_its_sku_in_the_suffixed_table)
{
    json_t *ev = listed();
    json_object_del(ev, "vendor_id");
    json_object_del(ev, "currency");
    json_object_set_new(json_object_get(ev, "metadata"), "aggregate_version", json_integer(4));
    json_object_set_new(ev, "name", json_string("Big mug"));
    struct catalog_stmt s;
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(catalog_products_plan("_r2", "ProductDetailsChanged", ev, &s, &err), 0, "%s",
                 err.msg);
    cr_assert(strstr(s.sql, "UPDATE `products_r2` SET"));
    cr_assert(strstr(s.sql, "WHERE sku=?"));
    cr_assert(s.must_match);
    cr_assert_str_eq(param(&s, 0)->s, "Big mug");
    cr_assert_eq(param(&s, 4)->i, 4);
    cr_assert_str_eq(param(&s, s.n - 1)->s, "SKU-1");
    catalog_stmt_release(&s);
    json_decref(ev);
}

Test(catalog, delisted_sets_status_and_version)
{
    json_t *ev = json_pack("{s:{s:s,s:s,s:I,s:s,s:s,s:I,s:s},s:s}", "metadata", "event_id",
                           EVENT_ID, "aggregate_id", "SKU-1", "aggregate_version", (json_int_t)7,
                           "command_id", EVENT_ID, "correlation_id", "c", "occurred_at",
                           (json_int_t)5, "actor", "u", "sku", "SKU-1");
    struct catalog_stmt s;
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(catalog_products_plan("", "ProductDelisted", ev, &s, &err), 0, "%s", err.msg);
    cr_assert(strstr(s.sql, "status='delisted'"));
    cr_assert_eq(param(&s, 0)->i, 7);
    cr_assert_eq(param(&s, 1)->i, 5);
    cr_assert_str_eq(param(&s, 3)->s, "SKU-1");
    catalog_stmt_release(&s);
    json_decref(ev);
}

Test(catalog, unknown_event_type_changes_nothing)
{
    json_t *ev = listed();
    struct catalog_stmt s;
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(catalog_products_plan("", "ProductPhotographed", ev, &s, &err), 0);
    cr_assert_null(s.sql);
    cr_assert_eq(err.code, ES_OK);
    json_decref(ev);
}

Test(catalog, malformed_events_are_invalid_naming_the_field)
{
    struct {
        const char *field;
        json_t *value; /* NULL: removed */
        const char *expect;
    } cases[] = {
        {"sku", NULL, "sku: missing"},
        {"name", json_integer(3), "name: missing or not a string"},
        {"currency", json_string("EURO"), "currency: 'EURO' must have 3 to 3"},
        {"sku", json_string(""), "sku: '' must have 1 to 64"},
        {"attributes", json_string("x"), "attributes: not a map"},
        {"metadata", json_object(), "metadata.event_id: missing"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *ev = listed();
        if (cases[i].value)
            json_object_set_new(ev, cases[i].field, cases[i].value);
        else
            json_object_del(ev, cases[i].field);
        struct catalog_stmt s;
        es_err_t err = ES_ERR_INIT;
        cr_assert_eq(catalog_products_plan("", "ProductListed", ev, &s, &err), -1, "case %zu", i);
        cr_assert_eq(err.code, ES_EINVAL);
        cr_assert(strstr(err.msg, cases[i].expect), "case %zu: '%s'", i, err.msg);
        catalog_stmt_release(&s);
        json_decref(ev);
    }
}

Test(catalog, name_length_counts_characters_not_bytes)
{
    char name[2 * 200 + 1];
    for (int i = 0; i < 200; i++)
        memcpy(name + 2 * i, "\xc3\xa9", 2); /* é: two bytes, one character */
    name[400] = '\0';
    json_t *ev = listed();
    json_object_set_new(ev, "name", json_string(name));
    struct catalog_stmt s;
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(catalog_products_plan("", "ProductListed", ev, &s, &err), 0, "%s", err.msg);
    catalog_stmt_release(&s);
    char *longer = xasprintf("%sx", name);
    json_object_set_new(ev, "name", json_string(longer));
    free(longer);
    cr_assert_eq(catalog_products_plan("", "ProductListed", ev, &s, &err), -1);
    catalog_stmt_release(&s);
    json_decref(ev);
}

Test(catalog, ddl_names_the_columns_the_api_reads)
{
    char *ddl = catalog_products_ddl("_x");
    cr_assert(strstr(ddl, "CREATE TABLE IF NOT EXISTS `products_x`"));
    const char *cols[] = {"sku VARCHAR(64)",
                          "vendor_id VARCHAR(64)",
                          "name VARCHAR(200)",
                          "description TEXT",
                          "category VARCHAR(100)",
                          "attributes JSON",
                          "currency CHAR(3)",
                          "status ENUM('listed','delisted')",
                          "version BIGINT",
                          "applied_events BIGINT",
                          "listed_at BIGINT",
                          "updated_at BIGINT",
                          "last_event_id CHAR(36)",
                          "KEY vendor_sku (vendor_id, sku)",
                          "KEY category_sku (category, sku)",
                          "utf8mb4"};
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++)
        cr_assert(strstr(ddl, cols[i]), "missing '%s'", cols[i]);
    free(ddl);
}

Test(projections, catalog_context_finds_the_products_projection)
{
    const pj_projection_t *p = pj_projection_find("catalog", NULL);
    cr_assert_not_null(p);
    cr_assert_str_eq(p->name, "catalog_products");
    cr_assert_str_eq(p->tables[0], "products");
    cr_assert_null(p->tables[1]);
    cr_assert_null(pj_projection_find("catalog", "nope"));
    cr_assert_null(pj_projection_find("weather", NULL));
}

Test(projections, suffix_must_be_safe_in_a_table_name)
{
    cr_assert(pj_suffix_is_valid(""));
    cr_assert(pj_suffix_is_valid("_r2"));
    cr_assert_not(pj_suffix_is_valid("`; DROP"));
    cr_assert_not(pj_suffix_is_valid("_A"));
    cr_assert_not(pj_suffix_is_valid("_123456789012345678901234567890123"));
}
