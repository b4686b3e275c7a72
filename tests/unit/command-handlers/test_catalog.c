#include "catalog.h"
#include <criterion/criterion.h>
#include <string.h>

#define NS CATALOG_NS

static json_t *meta(const char *role, const char *vendor, const char *sku)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s?, s:n}", "command_id",
                     "6f1c1f4e-0000-4000-8000-000000000001", "correlation_id", "corr-1",
                     "aggregate_id", sku, "issued_at", (json_int_t)1700000000000, "actor", "user-1",
                     "actor_role", role, "actor_vendor", vendor, "expected_version");
}

static json_t *list_cmd(const char *role, const char *actor_vendor, const char *sku,
                        const char *vendor_id)
{
    return json_pack("{s:o, s:s, s:s, s:s, s:s, s:s, s:{s:s}, s:s}", "metadata",
                     meta(role, actor_vendor, sku), "sku", sku, "vendor_id", vendor_id, "name",
                     "Blue mug", "description", "a mug", "category", "kitchen", "attributes",
                     "colour", "blue", "currency", "EUR");
}

static json_t *listed_state(const char *sku, const char *vendor, const char *status)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:s}, s:s, s:s, s:I}", "sku", sku, "vendor_id",
                     vendor, "name", "Blue mug", "description", "a mug", "category", "kitchen",
                     "attributes", "colour", "blue", "currency", "EUR", "status", status, "version",
                     (json_int_t)1);
}

/* decides and returns the reason (NULL if accepted); *nevents gets the event count */
static const char *decide(const json_t *state, const char *type, json_t *cmd, hd_decision_t *d)
{
    hd_decision_init(d);
    json_t *view = json_object();
    cr_assert_eq(catalog_decide(state, type, cmd, view, d), 0);
    json_decref(view);
    json_decref(cmd);
    if (d->reason)
        cr_assert_eq(json_array_size(d->events), 0);
    return d->reason;
}

static void expect_reason(const json_t *state, const char *type, json_t *cmd, const char *reason,
                          const char *detail_part)
{
    hd_decision_t d;
    const char *got = decide(state, type, cmd, &d);
    cr_assert(got, "expected %s, got accepted", reason);
    cr_assert_str_eq(got, reason, "detail: %s", d.detail);
    if (detail_part)
        cr_assert(strstr(d.detail, detail_part), "detail '%s' lacks '%s'", d.detail, detail_part);
    hd_decision_release(&d);
}

Test(catalog, vendor_lists_own_product)
{
    hd_decision_t d;
    cr_assert_null(decide(NULL, NS "ListProduct", list_cmd("vendor", "v1", "AB-1", "v1"), &d));
    cr_assert_eq(json_array_size(d.events), 1);
    json_t *ev = json_array_get(d.events, 0);
    cr_assert_str_eq(json_string_value(json_object_get(ev, "type")), NS "ProductListed");
    json_t *p = json_object_get(ev, "payload");
    cr_assert_str_eq(json_string_value(json_object_get(p, "vendor_id")), "v1");
    cr_assert_str_eq(json_string_value(json_object_get(p, "currency")), "EUR");
    cr_assert_null(json_object_get(p, "metadata"));
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(p, "attributes"), "colour")),
                     "blue");
    hd_decision_release(&d);
}

Test(catalog, admin_lists_for_any_vendor)
{
    hd_decision_t d;
    cr_assert_null(decide(NULL, NS "ListProduct", list_cmd("admin", NULL, "AB-1", "v9"), &d));
    cr_assert_eq(json_array_size(d.events), 1);
    hd_decision_release(&d);
}

Test(catalog, vendor_cannot_list_for_other_vendor)
{
    expect_reason(NULL, NS "ListProduct", list_cmd("vendor", "v1", "AB-1", "v2"), "not_owner",
                  "v2");
    expect_reason(NULL, NS "ListProduct", list_cmd("vendor", NULL, "AB-1", "v2"), "not_owner",
                  NULL);
}

Test(catalog, customer_cannot_list)
{
    expect_reason(NULL, NS "ListProduct", list_cmd("customer", NULL, "AB-1", "v1"), "not_owner",
                  "customer");
}

Test(catalog, list_rejects_existing_sku)
{
    json_t *s = listed_state("AB-1", "v1", "LISTED");
    expect_reason(s, NS "ListProduct", list_cmd("vendor", "v1", "AB-1", "v1"), "already_listed",
                  "sku 'AB-1' is already listed");
    json_decref(s);
    s = listed_state("AB-1", "v1", "DELISTED");
    expect_reason(s, NS "ListProduct", list_cmd("vendor", "v1", "AB-1", "v1"), "delisted",
                  "sku 'AB-1' is delisted");
    json_decref(s);
}

static json_t *with(json_t *cmd, const char *key, json_t *value)
{
    json_object_set_new(cmd, key, value);
    return cmd;
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* a ListProduct with one field replaced must be rejected as invalid_field naming that field */
static void expect_invalid_list(const char *key, json_t *value, const char *field)
{
    json_t *cmd = list_cmd("admin", NULL, "AB-1", "v1");
    expect_reason(NULL, NS "ListProduct", with(cmd, key, value), "invalid_field", field);
}

static void expect_valid_list(const char *key, json_t *value)
{
    hd_decision_t d;
    json_t *cmd = with(list_cmd("admin", NULL, "AB-1", "v1"), key, value);
    const char *r = decide(NULL, NS "ListProduct", cmd, &d);
    cr_assert_null(r, "%s rejected: %s", key, d.detail);
    hd_decision_release(&d);
}

Test(catalog, list_field_limits)
{
    char *s64 = repeat('a', 64), *s65 = repeat('a', 65), *s200 = repeat('n', 200),
         *s201 = repeat('n', 201), *s4000 = repeat('d', 4000), *s4001 = repeat('d', 4001),
         *s100 = repeat('c', 100), *s101 = repeat('c', 101), *s500 = repeat('v', 500),
         *s501 = repeat('v', 501);
    expect_invalid_list("name", json_string(""), "name");
    expect_invalid_list("name", json_string(s201), "name");
    expect_valid_list("name", json_string(s200));
    /* 200 characters of two bytes each are still 200 characters */
    char utf[401] = {0};
    for (int i = 0; i < 200; i++)
        memcpy(utf + 2 * i, "\xc3\xa9", 2);
    expect_valid_list("name", json_string(utf));
    expect_invalid_list("description", json_string(s4001), "description");
    expect_valid_list("description", json_string(s4000));
    expect_invalid_list("category", json_string(""), "category");
    expect_invalid_list("category", json_string(s101), "category");
    expect_valid_list("category", json_string(s100));
    expect_invalid_list("currency", json_string("eur"), "currency");
    expect_invalid_list("currency", json_string("EURO"), "currency");
    expect_invalid_list("currency", json_string("E1R"), "currency");
    json_t *fifty = json_object();
    for (int i = 0; i < 50; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        json_object_set_new(fifty, k, json_string("v"));
    }
    json_t *many = json_deep_copy(fifty);
    json_object_set_new(many, "extra", json_string("v"));
    expect_invalid_list("attributes", many, "attributes");
    expect_valid_list("attributes", fifty);
    expect_invalid_list("attributes", json_pack("{s:s}", s65, "v"), "attributes");
    expect_invalid_list("attributes", json_pack("{s:s}", "", "v"), "attributes");
    expect_valid_list("attributes", json_pack("{s:s}", s64, s500));
    expect_invalid_list("attributes", json_pack("{s:s}", "k", s501), "attributes.k");
    free(s64), free(s65), free(s200), free(s201), free(s4000), free(s4001), free(s100), free(s101),
        free(s500), free(s501);
}

Test(catalog, list_sku_rules)
{
    char *s64 = repeat('a', 64), *s65 = repeat('a', 65);
    const char *bad[] = {"", "a b", "AB/1", "ä", s65};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_reason(NULL, NS "ListProduct", list_cmd("admin", NULL, bad[i], "v1"),
                      "invalid_field", "sku");
    const char *good[] = {"A", "a.b_c-D9", s64};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        hd_decision_t d;
        cr_assert_null(decide(NULL, NS "ListProduct", list_cmd("admin", NULL, good[i], "v1"), &d),
                       "%s: %s", good[i], d.detail);
        hd_decision_release(&d);
    }
    free(s64), free(s65);
}

Test(catalog, aggregate_id_must_be_the_sku)
{
    json_t *cmd = list_cmd("admin", NULL, "AB-1", "v1");
    json_object_set_new(json_object_get(cmd, "metadata"), "aggregate_id", json_string("AB-2"));
    expect_reason(NULL, NS "ListProduct", cmd, "invalid_field", "metadata.aggregate_id");
}

static json_t *change_cmd(const char *role, const char *vendor, const char *sku)
{
    return json_pack("{s:o, s:s, s:n, s:n, s:n, s:n}", "metadata", meta(role, vendor, sku), "sku",
                     sku, "name", "description", "category", "attributes");
}

Test(catalog, change_rules)
{
    json_t *listed = listed_state("AB-1", "v1", "LISTED");
    json_t *delisted = listed_state("AB-1", "v1", "DELISTED");
    const char *t = NS "ChangeProductDetails";
    expect_reason(NULL, t, change_cmd("vendor", "v1", "AB-1"), "unknown_sku", "AB-1");
    expect_reason(delisted, t, change_cmd("vendor", "v1", "AB-1"), "delisted",
                  "sku 'AB-1' is delisted");
    expect_reason(listed, t, change_cmd("vendor", "v2", "AB-1"), "not_owner", NULL);
    expect_reason(listed, t, change_cmd("customer", NULL, "AB-1"), "not_owner", NULL);
    char *s201 = repeat('n', 201);
    expect_reason(listed, t, with(change_cmd("vendor", "v1", "AB-1"), "name", json_string(s201)),
                  "invalid_field", "name");
    expect_reason(listed, t, with(change_cmd("admin", NULL, "AB-1"), "category", json_string("")),
                  "invalid_field", "category");
    free(s201);
    json_decref(listed);
    json_decref(delisted);
}

Test(catalog, change_emits_full_details)
{
    json_t *listed = listed_state("AB-1", "v1", "LISTED");
    hd_decision_t d;
    json_t *cmd = with(change_cmd("vendor", "v1", "AB-1"), "name", json_string("Red mug"));
    cr_assert_null(decide(listed, NS "ChangeProductDetails", cmd, &d), "%s", d.detail);
    cr_assert_eq(json_array_size(d.events), 1);
    json_t *ev = json_array_get(d.events, 0);
    cr_assert_str_eq(json_string_value(json_object_get(ev, "type")), NS "ProductDetailsChanged");
    json_t *p = json_object_get(ev, "payload");
    cr_assert_str_eq(json_string_value(json_object_get(p, "name")), "Red mug");
    cr_assert_str_eq(json_string_value(json_object_get(p, "category")), "kitchen");
    cr_assert_str_eq(json_string_value(json_object_get(p, "description")), "a mug");
    cr_assert(json_equal(json_object_get(p, "attributes"), json_object_get(listed, "attributes")));
    hd_decision_release(&d);
    /* an admin may change any vendor's product */
    cmd = with(change_cmd("admin", NULL, "AB-1"), "attributes", json_pack("{s:s}", "size", "L"));
    cr_assert_null(decide(listed, NS "ChangeProductDetails", cmd, &d), "%s", d.detail);
    cr_assert_eq(json_array_size(d.events), 1);
    hd_decision_release(&d);
    json_decref(listed);
}

Test(catalog, change_without_difference_emits_nothing)
{
    json_t *listed = listed_state("AB-1", "v1", "LISTED");
    hd_decision_t d;
    cr_assert_null(
        decide(listed, NS "ChangeProductDetails", change_cmd("vendor", "v1", "AB-1"), &d));
    cr_assert_eq(json_array_size(d.events), 0);
    hd_decision_release(&d);
    json_t *cmd = with(change_cmd("vendor", "v1", "AB-1"), "name", json_string("Blue mug"));
    json_object_set_new(cmd, "attributes", json_pack("{s:s}", "colour", "blue"));
    cr_assert_null(decide(listed, NS "ChangeProductDetails", cmd, &d));
    cr_assert_eq(json_array_size(d.events), 0);
    hd_decision_release(&d);
    json_decref(listed);
}

static json_t *delist_cmd(const char *role, const char *vendor, const char *sku)
{
    return json_pack("{s:o, s:s}", "metadata", meta(role, vendor, sku), "sku", sku);
}

Test(catalog, delist_rules)
{
    json_t *listed = listed_state("AB-1", "v1", "LISTED");
    json_t *delisted = listed_state("AB-1", "v1", "DELISTED");
    const char *t = NS "DelistProduct";
    expect_reason(NULL, t, delist_cmd("vendor", "v1", "AB-1"), "unknown_sku", "AB-1");
    expect_reason(delisted, t, delist_cmd("vendor", "v1", "AB-1"), "delisted",
                  "sku 'AB-1' is delisted");
    expect_reason(listed, t, delist_cmd("vendor", "v2", "AB-1"), "not_owner", NULL);
    expect_reason(listed, t, delist_cmd("customer", NULL, "AB-1"), "not_owner", NULL);
    hd_decision_t d;
    cr_assert_null(decide(listed, t, delist_cmd("vendor", "v1", "AB-1"), &d));
    cr_assert_eq(json_array_size(d.events), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(d.events, 0), "type")),
                     NS "ProductDelisted");
    hd_decision_release(&d);
    cr_assert_null(decide(listed, t, delist_cmd("admin", NULL, "AB-1"), &d));
    hd_decision_release(&d);
    json_decref(listed);
    json_decref(delisted);
}

Test(catalog, unknown_command_is_rejected)
{
    expect_reason(NULL, NS "RepaintProduct", delist_cmd("admin", NULL, "AB-1"), "unknown_command",
                  "RepaintProduct");
}

Test(catalog, evolve_folds_the_lifecycle)
{
    json_t *listed = json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:s}, s:s}", "sku", "AB-1",
                               "vendor_id", "v1", "name", "Blue mug", "description", "", "category",
                               "kitchen", "attributes", "colour", "blue", "currency", "EUR");
    json_t *s = catalog_evolve(NULL, NS "ProductListed", listed);
    cr_assert_not_null(s);
    cr_assert_str_eq(json_string_value(json_object_get(s, "status")), "LISTED");
    cr_assert_str_eq(json_string_value(json_object_get(s, "vendor_id")), "v1");
    cr_assert_null(json_object_get(s, "metadata"));
    json_t *changed = json_pack("{s:s, s:s, s:s, s:s, s:{}}", "sku", "AB-1", "name", "Red mug",
                                "description", "new", "category", "home", "attributes");
    s = catalog_evolve(s, NS "ProductDetailsChanged", changed);
    cr_assert_str_eq(json_string_value(json_object_get(s, "name")), "Red mug");
    cr_assert_str_eq(json_string_value(json_object_get(s, "category")), "home");
    cr_assert_eq(json_object_size(json_object_get(s, "attributes")), 0);
    cr_assert_str_eq(json_string_value(json_object_get(s, "currency")), "EUR");
    json_t *del = json_pack("{s:s}", "sku", "AB-1");
    s = catalog_evolve(s, NS "ProductDelisted", del);
    cr_assert_str_eq(json_string_value(json_object_get(s, "status")), "DELISTED");
    /* the listed payload was borrowed: mutating the state must not reach it */
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(listed, "attributes"), "colour")),
        "blue");
    json_decref(s);
    json_decref(listed);
    json_decref(changed);
    json_decref(del);
}

Test(catalog, context_is_registered)
{
    const hd_context_t *c = hd_context_find("catalog");
    cr_assert_not_null(c);
    cr_assert_str_eq(c->name, "catalog");
    cr_assert_eq(c->decide, catalog_decide);
    cr_assert_eq(c->evolve, catalog_evolve);
    cr_assert_eq(c->n_views, 0, "the catalog reads no view");
    cr_assert_str_eq(c->state_type, "eventshop.catalog.ProductState");
    cr_assert_null(hd_context_find("nope"));
    cr_assert_null(hd_context_find(NULL));
}
