#include "catalog.h"
#include "es_mem.h"
#include "pj_runtime.h"
#include "pj_test.h"
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

Test(catalog, listed_becomes_an_upsert_of_every_column)
{
    json_t *ev = listed();
    pj_plan_t *p = pj_expect_plan(&catalog_products_projection, "", "ProductListed", ev, 0, NULL);
    cr_assert_eq(pj_plan_len(p), 1);
    const struct pj_stmt *s =
        pj_expect_stmt(p, 0, PJ_UPSERT, "products", "INSERT INTO `products` (", false, 11);
    cr_assert(strstr(s->sql, "applied_events=applied_events+1"));
    cr_assert(strstr(s->sql, "ON DUPLICATE KEY UPDATE"));
    PJ_EXPECT_PARAMS(s, 0, ES_DB_S("SKU-1"), ES_DB_S("v-9"), ES_DB_S("Mug"), ES_DB_S("A mug"),
                     ES_DB_S("kitchen"), ES_DB_S("{\"color\":\"red\",\"size\":\"L\"}"),
                     ES_DB_S("EUR"), ES_DB_I(1), ES_DB_I(1700000000123LL), ES_DB_I(1700000000123LL),
                     ES_DB_S(EVENT_ID));
    pj_plan_free(p);
    json_decref(ev);
}

Test(catalog, details_changed_updates_the_row_of_its_sku_in_the_suffixed_table)
{
    json_t *ev = listed();
    json_object_del(ev, "vendor_id");
    json_object_del(ev, "currency");
    json_object_del(ev, "attributes");
    json_object_set_new(json_object_get(ev, "metadata"), "aggregate_version", json_integer(4));
    json_object_set_new(ev, "name", json_string("Big mug"));
    pj_plan_t *p =
        pj_expect_plan(&catalog_products_projection, "_r2", "ProductDetailsChanged", ev, 0, NULL);
    cr_assert_eq(pj_plan_len(p), 1);
    const struct pj_stmt *s =
        pj_expect_stmt(p, 0, PJ_UPDATE, "products", "UPDATE `products_r2` SET", true, 8);
    cr_assert(strstr(s->sql, "WHERE sku=?"));
    PJ_EXPECT_PARAMS(s, 0, ES_DB_S("Big mug"), ES_DB_S("A mug"), ES_DB_S("kitchen"), ES_DB_S("{}"),
                     ES_DB_I(4), ES_DB_I(1700000000123LL), ES_DB_S(EVENT_ID), ES_DB_S("SKU-1"));
    cr_assert_str_eq(pj_plan_subject(p), "sku 'SKU-1'");
    pj_plan_free(p);
    json_decref(ev);
}

Test(catalog, delisted_sets_status_and_version)
{
    json_t *ev = json_pack("{s:{s:s,s:s,s:I,s:s,s:s,s:I,s:s},s:s}", "metadata", "event_id",
                           EVENT_ID, "aggregate_id", "SKU-1", "aggregate_version", (json_int_t)7,
                           "command_id", EVENT_ID, "correlation_id", "c", "occurred_at",
                           (json_int_t)5, "actor", "u", "sku", "SKU-1");
    pj_plan_t *p = pj_expect_plan(&catalog_products_projection, "", "ProductDelisted", ev, 0, NULL);
    cr_assert_eq(pj_plan_len(p), 1);
    const struct pj_stmt *s =
        pj_expect_stmt(p, 0, PJ_UPDATE, "products", "status='delisted'", true, 4);
    PJ_EXPECT_PARAMS(s, 0, ES_DB_I(7), ES_DB_I(5), ES_DB_S(EVENT_ID), ES_DB_S("SKU-1"));
    pj_plan_free(p);
    json_decref(ev);
}

Test(catalog, unknown_event_type_changes_nothing)
{
    json_t *ev = listed();
    pj_plan_t *p =
        pj_expect_plan(&catalog_products_projection, "", "ProductPhotographed", ev, 0, NULL);
    cr_assert_eq(pj_plan_len(p), 0);
    cr_assert_null(pj_plan_stmt(p, 0));
    pj_plan_free(p);
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
        {"vendor_id", NULL, "vendor_id: missing"},
        {"category", json_null(), "category: missing or not a string"},
        {"description", json_true(), "description: missing or not a string"},
        {"metadata", json_string("m"), "metadata: missing or not a record"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *ev = listed();
        if (cases[i].value)
            json_object_set_new(ev, cases[i].field, cases[i].value);
        else
            json_object_del(ev, cases[i].field);
        pj_plan_free(pj_expect_plan(&catalog_products_projection, "", "ProductListed", ev, -1,
                                    cases[i].expect));
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
    pj_plan_free(pj_expect_plan(&catalog_products_projection, "", "ProductListed", ev, 0, NULL));
    char *longer = xasprintf("%sx", name);
    json_object_set_new(ev, "name", json_string(longer));
    free(longer);
    pj_plan_free(
        pj_expect_plan(&catalog_products_projection, "", "ProductListed", ev, -1, "name: '"));
    json_decref(ev);
}

Test(catalog, ddl_names_the_columns_the_api_reads)
{
    pj_plan_t *p = pj_plan_new();
    catalog_products_projection.ddl("_x", p);
    cr_assert_eq(pj_plan_len(p), 1);
    const char *ddl = pj_expect_stmt(p, 0, PJ_DDL, "products",
                                     "CREATE TABLE IF NOT EXISTS `products_x`", false, 0)
                          ->sql;
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
                          "FULLTEXT KEY name_description (name, description)",
                          "utf8mb4"};
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++)
        cr_assert(strstr(ddl, cols[i]), "missing '%s'", cols[i]);
    pj_plan_free(p);
}

Test(projections, catalog_context_finds_the_products_projection)
{
    const pj_projection_t *p = pj_projection_find("catalog", NULL);
    cr_assert_not_null(p);
    cr_assert_str_eq(p->name, "catalog_products");
    cr_assert_str_eq(p->tables[0], "products");
    cr_assert_null(p->tables[1]);
    cr_assert_eq(p, &catalog_products_projection);
    /* 2: the event index (pj_runtime.h); 3: the full-text index of GET /v1/products?q= */
    cr_assert_eq(p->version, 3);
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
