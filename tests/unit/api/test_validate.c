/* Body and header checks at the API's edge, and the reason -> status table. */
#include "api_outcome.h"
#include "api_results.h"
#include "api_validate.h"
#include "es_mem.h"
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static json_t *parse(const char *s, struct api_verr *e)
{
    return api_parse_body(s, strlen(s), API_MAX_BODY, API_MAX_DEPTH, e);
}

static const char good_product[] = "{\"sku\":\"AB-1\",\"name\":\"Mug\",\"category\":\"kitchen\","
                                   "\"attributes\":{\"color\":\"red\"},\"currency\":\"EUR\"}";

/* Validates a ListProduct body as a vendor 'v1'; returns the fields or NULL with e set. */
static json_t *list_as_vendor(const char *body, struct api_verr *e)
{
    json_t *v = parse(body, e);
    if (!v)
        return NULL;
    json_t *out = api_validate_list_product(v, "vendor", "v1", e);
    json_decref(v);
    return out;
}

Test(api_validate, accepts_a_good_product_and_fills_defaults)
{
    struct api_verr e = {0};
    json_t *f = list_as_vendor(good_product, &e);
    cr_assert_not_null(f, "%s", e.msg);
    cr_assert_str_eq(json_string_value(json_object_get(f, "vendor_id")), "v1");
    cr_assert_str_eq(json_string_value(json_object_get(f, "description")), "");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(f, "attributes"), "color")),
                     "red");
    json_decref(f);
}

Test(api_validate, rejects_duplicate_keys)
{
    struct api_verr e = {0};
    cr_assert_null(parse("{\"sku\":\"A\",\"sku\":\"B\"}", &e));
    cr_assert_eq(e.status, 400);
    cr_assert(strstr(e.msg, "duplicate"), "%s", e.msg);
}

Test(api_validate, rejects_unknown_fields_naming_them)
{
    struct api_verr e = {0};
    cr_assert_null(list_as_vendor("{\"sku\":\"A\",\"name\":\"n\",\"category\":\"c\","
                                  "\"currency\":\"EUR\",\"price\":3}",
                                  &e));
    cr_assert_eq(e.status, 422);
    cr_assert_str_eq(e.field, "price");
}

Test(api_validate, rejects_wrong_types)
{
    struct api_verr e = {0};
    cr_assert_null(list_as_vendor("{\"sku\":\"A\",\"name\":7,\"category\":\"c\","
                                  "\"currency\":\"EUR\"}",
                                  &e));
    cr_assert_eq(e.status, 422);
    cr_assert_str_eq(e.field, "name");

    struct api_verr e2 = {0};
    cr_assert_null(list_as_vendor("{\"sku\":\"A\",\"name\":\"n\",\"category\":\"c\","
                                  "\"currency\":\"EUR\",\"attributes\":{\"k\":1}}",
                                  &e2));
    cr_assert_eq(e2.status, 422);
    cr_assert_str_eq(e2.field, "attributes.k");
}

Test(api_validate, rejects_a_huge_body_before_parsing)
{
    size_t n = API_MAX_BODY + 1;
    char *big = xmalloc(n + 1);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    big[n] = '\0';
    struct api_verr e = {0};
    cr_assert_null(api_parse_body(big, n, API_MAX_BODY, API_MAX_DEPTH, &e));
    cr_assert_eq(e.status, 413);
    free(big);
}

Test(api_validate, rejects_deep_nesting_but_not_brackets_in_strings)
{
    struct api_verr e = {0};
    cr_assert_null(parse("{\"attributes\":{\"a\":{\"b\":\"c\"}}}", &e));
    cr_assert_eq(e.status, 400);
    cr_assert(strstr(e.msg, "nests"), "%s", e.msg);

    struct api_verr e2 = {0};
    json_t *v = parse("{\"name\":\"[[[{{{\\\"\"}", &e2);
    cr_assert_not_null(v, "%s", e2.msg);
    json_decref(v);
}

Test(api_validate, rejects_non_objects_and_malformed_json)
{
    struct api_verr e = {0};
    cr_assert_null(parse("[1]", &e));
    cr_assert_eq(e.status, 400);
    struct api_verr e2 = {0};
    cr_assert_null(parse("{\"a\":", &e2));
    cr_assert_eq(e2.status, 400);
}

Test(api_validate, rejects_bad_currency_and_sku)
{
    struct api_verr e = {0};
    cr_assert_null(list_as_vendor("{\"sku\":\"A\",\"name\":\"n\",\"category\":\"c\","
                                  "\"currency\":\"eur\"}",
                                  &e));
    cr_assert_eq(e.status, 422);
    cr_assert_str_eq(e.field, "currency");

    struct api_verr e2 = {0};
    cr_assert_null(list_as_vendor("{\"sku\":\"A B\",\"name\":\"n\",\"category\":\"c\","
                                  "\"currency\":\"EUR\"}",
                                  &e2));
    cr_assert_eq(e2.status, 422);
    cr_assert_str_eq(e2.field, "sku");

    struct api_verr e3 = {0};
    cr_assert_eq(api_validate_sku("x/y", 404, &e3), -1);
    cr_assert_eq(e3.status, 404);
    cr_assert_eq(api_validate_sku("ok-1.2_3", 404, NULL), 0);
}

Test(api_validate, checks_length_limits)
{
    char body[600];
    char name[202];
    memset(name, 'x', 201);
    name[201] = '\0';
    snprintf(body, sizeof body,
             "{\"sku\":\"A\",\"name\":\"%s\",\"category\":\"c\",\"currency\":\"EUR\"}", name);
    struct api_verr e = {0};
    cr_assert_null(list_as_vendor(body, &e));
    cr_assert_str_eq(e.field, "name");
    name[200] = '\0';
    snprintf(body, sizeof body,
             "{\"sku\":\"A\",\"name\":\"%s\",\"category\":\"c\",\"currency\":\"EUR\"}", name);
    struct api_verr e2 = {0};
    json_t *f = list_as_vendor(body, &e2);
    cr_assert_not_null(f, "%s", e2.msg);
    json_decref(f);
}

Test(api_validate, vendor_id_comes_from_the_token)
{
    struct api_verr e = {0};
    json_t *v = parse("{\"sku\":\"A\",\"vendor_id\":\"v2\",\"name\":\"n\",\"category\":\"c\","
                      "\"currency\":\"EUR\"}",
                      &e);
    cr_assert_not_null(v);
    cr_assert_null(api_validate_list_product(v, "vendor", "v1", &e));
    cr_assert_eq(e.status, 403);

    struct api_verr e2 = {0};
    json_t *f = api_validate_list_product(v, "admin", NULL, &e2);
    cr_assert_not_null(f, "%s", e2.msg);
    cr_assert_str_eq(json_string_value(json_object_get(f, "vendor_id")), "v2");
    json_decref(f);
    json_decref(v);

    struct api_verr e3 = {0};
    json_t *w = parse(good_product, &e3);
    cr_assert_null(api_validate_list_product(w, "admin", NULL, &e3));
    cr_assert_eq(e3.status, 422);
    cr_assert_str_eq(e3.field, "vendor_id");
    json_decref(w);
}

Test(api_validate, patch_needs_at_least_one_field)
{
    struct api_verr e = {0};
    json_t *v = parse("{}", &e);
    cr_assert_null(api_validate_change_details(v, &e));
    cr_assert_eq(e.status, 422);
    json_decref(v);

    struct api_verr e2 = {0};
    v = parse("{\"category\":\"tools\"}", &e2);
    json_t *f = api_validate_change_details(v, &e2);
    cr_assert_not_null(f, "%s", e2.msg);
    cr_assert_eq(json_object_size(f), 1);
    json_decref(f);
    json_decref(v);

    struct api_verr e3 = {0};
    v = parse("{\"sku\":\"B\"}", &e3);
    cr_assert_null(api_validate_change_details(v, &e3));
    cr_assert_str_eq(e3.field, "sku");
    json_decref(v);
}

Test(api_validate, parses_headers)
{
    int64_t ver = 0;
    cr_assert_eq(api_parse_if_match("\"3\"", &ver), 0);
    cr_assert_eq(ver, 3);
    cr_assert_eq(api_parse_if_match("12", &ver), 0);
    cr_assert_eq(ver, 12);
    cr_assert_eq(api_parse_if_match("W/\"3\"", &ver), -1);
    cr_assert_eq(api_parse_if_match("-1", &ver), -1);
    cr_assert_eq(api_parse_prefer_wait("respond-async, wait=10"), 10);
    cr_assert_eq(api_parse_prefer_wait("wait=99"), API_MAX_WAIT_S);
    cr_assert_eq(api_parse_prefer_wait("wait=x"), 0);
    cr_assert_eq(api_parse_prefer_wait(NULL), 0);
    cr_assert(api_is_valid_idempotency_key("abc-123"));
    cr_assert_not(api_is_valid_idempotency_key(""));
    cr_assert_not(api_is_valid_idempotency_key("a\tb"));
    int32_t part = 0;
    int64_t off = 0;
    cr_assert_eq(api_parse_position("2:41", &part, &off), 0);
    cr_assert_eq(part, 2);
    cr_assert_eq(off, 41);
    cr_assert_eq(api_parse_position("2", &part, &off), -1);
    /* the contract's pattern: 1-9 digits, a colon, 1-18 digits */
    cr_assert_eq(api_parse_position("999999999:0", &part, &off), 0);
    cr_assert_eq(api_parse_position("0000000001:0", &part, &off), -1);
    cr_assert_eq(api_parse_position("2147483647:0", &part, &off), -1);
    cr_assert_eq(api_parse_position(":5", &part, &off), -1);
    cr_assert_eq(api_parse_position("1:1234567890123456789", &part, &off), -1);
    cr_assert(api_is_json_type("application/json; charset=utf-8"));
    cr_assert_not(api_is_json_type("text/plain"));
    cr_assert_not(api_is_json_type("application/jsonx"));
    cr_assert_eq(api_parse_limit(NULL), 50);
    cr_assert_eq(api_parse_limit("201"), -1);
}

Test(api_validate, cursor_round_trips_and_refuses_garbage)
{
    const char *skus[] = {"A", "AB", "ABC", "sku-123.x_y"};
    for (size_t i = 0; i < 4; i++) {
        char *c = api_cursor_encode(skus[i]);
        cr_assert_null(strchr(c, '='));
        char *d = api_cursor_decode(c);
        cr_assert_not_null(d, "cursor of '%s'", skus[i]);
        cr_assert_str_eq(d, skus[i]);
        free(c);
        free(d);
    }
    cr_assert_null(api_cursor_decode("!!!"));
    cr_assert_null(api_cursor_decode("a b")); /* not a sku */
    cr_assert_null(api_cursor_decode(""));
}

Test(api_validate, a_number_without_a_fraction_is_an_integer)
{
    /* JSON Schema's view, which the contract's clients share: 3.0 is the integer 3 */
    struct api_verr e = {0};
    json_t *v = parse("{\"a\":3.0,\"b\":-2e3,\"c\":1.5,\"d\":1e300,\"e\":[4.0],"
                      "\"f\":{\"g\":0.0}}",
                      &e);
    cr_assert_not_null(v, "%s", e.msg);
    cr_assert(json_is_integer(json_object_get(v, "a")));
    cr_assert_eq(json_integer_value(json_object_get(v, "a")), 3);
    cr_assert_eq(json_integer_value(json_object_get(v, "b")), -2000);
    cr_assert(json_is_real(json_object_get(v, "c")));
    cr_assert(json_is_real(json_object_get(v, "d")), "beyond int64 stays a real");
    cr_assert_eq(json_integer_value(json_array_get(json_object_get(v, "e"), 0)), 4);
    cr_assert(json_is_integer(json_object_get(json_object_get(v, "f"), "g")));
    json_decref(v);
}

Test(api_validate, counts_characters_not_bytes)
{
    cr_assert_eq(api_utf8_chars("abc"), 3);
    cr_assert_eq(api_utf8_chars("\xc3\xa9t\xc3\xa9"), 3);
    cr_assert_eq(api_utf8_chars("\xf0\x9f\x98\x80"), 1);
}

Test(api_outcome, reason_table)
{
    cr_assert_eq(api_reason_status("unknown_sku"), 404);
    cr_assert_eq(api_reason_status("not_owner"), 403);
    cr_assert_eq(api_reason_status("already_listed"), 409);
    cr_assert_eq(api_reason_status("delisted"), 409);
    cr_assert_eq(api_reason_status("invalid_field"), 422);
    cr_assert_eq(api_reason_status("version_conflict"), 412);
    cr_assert_eq(api_reason_status("something_new"), 422);
    cr_assert_eq(api_reason_status(NULL), 422);
    cr_assert_eq(api_reason_status("insufficient_stock"), 409);
    cr_assert_eq(api_reason_status("unknown_reservation"), 404);
    cr_assert_eq(api_reason_status("invalid_quantity"), 422);
    cr_assert_eq(api_reason_status("email_taken"), 409);
    /* refused by the state (another currency), not by the input */
    cr_assert_eq(api_reason_status("currency_mismatch"), 409);
    cr_assert_eq(api_reason_status("mixed_currency"), 409);
}

Test(api_outcome, aggregate_key_by_context)
{
    cr_assert_str_eq(api_aggregate_key("eventshop.catalog.ListProduct"), "sku");
    cr_assert_str_eq(api_aggregate_key("eventshop.inventory.ReserveStock"), "sku");
    cr_assert_str_eq(api_aggregate_key("eventshop.users.RegisterUser"), "user_id");
    cr_assert_str_eq(api_aggregate_key("eventshop.other.Thing"), "aggregate_id");
    cr_assert_str_eq(api_aggregate_key("nonsense"), "aggregate_id");
    cr_assert_str_eq(api_aggregate_key(NULL), "aggregate_id");
}

Test(api_outcome, answers_accepted_and_rejected)
{
    json_t *r =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:i}", "command_id",
                  "6f1c2a52-3c1b-4d59-9a51-0c6f7a1a2b3c", "correlation_id", "c", "aggregate_id",
                  "AB-1", "command_type", "eventshop.catalog.ListProduct", "status", "ACCEPTED",
                  "detail", "", "aggregate_version", 1, "partition", 2, "offset", 17);
    struct api_outcome o;
    cr_assert_eq(api_outcome_from_result(r, &o), 0);
    struct api_answer a;
    api_answer_outcome(&a, &o, "/v1/products/AB-1");
    cr_assert_eq(a.status, 201);
    cr_assert_str_eq(json_string_value(json_object_get(a.body, "position")), "2:17");
    cr_assert_str_eq(a.etag, "\"1\"");
    cr_assert_str_eq(a.location, "/v1/products/AB-1");
    cr_assert_str_eq(json_string_value(json_object_get(a.body, "sku")), "AB-1");
    json_decref(a.body);

    api_answer_outcome(&a, &o, NULL); /* not a creation: 200 without Location */
    cr_assert_eq(a.status, 200);
    cr_assert_str_eq(a.location, "");
    json_decref(a.body);

    json_object_set_new(r, "status", json_string("REJECTED"));
    json_object_set_new(r, "reason", json_string("version_conflict"));
    cr_assert_eq(api_outcome_from_result(r, &o), 0);
    api_answer_outcome(&a, &o, "/v1/products/AB-1");
    cr_assert_eq(a.status, 412);
    cr_assert(a.problem);
    cr_assert_str_eq(json_string_value(json_object_get(a.body, "type")),
                     "urn:eventshop:problem:version_conflict");
    json_decref(a.body);
    json_decref(r);
}

Test(api_results, bounded_map_evicts_the_oldest)
{
    api_results_t *res = api_results_new_offline(2);
    struct api_outcome o = {0}, got;
    const char *ids[] = {"00000000-0000-4000-8000-000000000001",
                         "00000000-0000-4000-8000-000000000002",
                         "00000000-0000-4000-8000-000000000003"};
    for (int i = 0; i < 3; i++) {
        strcpy(o.command_id, ids[i]);
        o.version = i + 1;
        api_results_put(res, &o);
    }
    cr_assert_not(api_results_get(res, ids[0], &got));
    cr_assert(api_results_get(res, ids[1], &got));
    cr_assert_eq(got.version, 2);
    cr_assert(api_results_get(res, ids[2], &got));
    /* a repeated result keeps the first outcome */
    o.version = 99;
    api_results_put(res, &o);
    cr_assert(api_results_get(res, ids[2], &got));
    cr_assert_eq(got.version, 3);
    api_results_free(res);
}

Test(api_outcome, pending_names_what_a_creating_command_creates)
{
    struct api_answer a;
    struct api_created c;
    api_created_init(&c, "eventshop.orders.PlaceOrder", "o-1", "/v1/orders/o-1");
    api_answer_pending(&a, "6f1c2a52-3c1b-4d59-9a51-0c6f7a1a2b3c", &c);
    cr_assert_eq(a.status, 202);
    cr_assert_str_eq(json_string_value(json_object_get(a.body, "order_id")), "o-1");
    cr_assert_str_eq(a.location, "/v1/commands/6f1c2a52-3c1b-4d59-9a51-0c6f7a1a2b3c");
    cr_assert_str_eq(a.link, "</v1/orders/o-1>; rel=\"related\"");
    cr_assert_str_eq(a.headers[2], "Link");
    json_decref(a.body);

    api_answer_pending(&a, "6f1c2a52-3c1b-4d59-9a51-0c6f7a1a2b3c", NULL);
    cr_assert_eq(json_object_size(a.body), 2); /* command_id, status */
    cr_assert_null(a.headers[2]);
    json_decref(a.body);
}

Test(api_results, the_sender_is_known_before_and_after_the_outcome)
{
    api_results_t *res = api_results_new_offline(4);
    const char *id = "00000000-0000-4000-8000-000000000001";
    struct api_outcome o = {0}, got;
    bool decided = true;
    cr_assert_not(api_results_find(res, id, &got, &decided));
    api_results_note_sent(res, id, "alice");
    cr_assert(api_results_find(res, id, &got, &decided));
    cr_assert_not(decided);
    cr_assert_str_eq(got.actor, "alice");
    cr_assert_not(api_results_get(res, id, &got)); /* no outcome yet */
    /* a result without an actor (written before the field) keeps the noted sender */
    strcpy(o.command_id, id);
    o.accepted = true;
    o.version = 1;
    api_results_put(res, &o);
    cr_assert(api_results_find(res, id, &got, &decided));
    cr_assert(decided);
    cr_assert_eq(got.version, 1);
    cr_assert_str_eq(got.actor, "alice");
    cr_assert(api_results_get(res, id, &got));
    api_results_free(res);
}

Test(api_results, outcomes_are_counted_per_context)
{
    api_results_t *res = api_results_new_offline(4);
    long long accepted = -1, rejected = -1;
    api_results_counts(res, "catalog", &accepted, &rejected);
    cr_assert_eq(accepted, 0);
    cr_assert_eq(rejected, 0);
    api_results_count(res, "catalog", true);
    api_results_count(res, "catalog", true);
    api_results_count(res, "catalog", false);
    api_results_count(res, "orders", false);
    api_results_counts(res, "catalog", &accepted, &rejected);
    cr_assert_eq(accepted, 2);
    cr_assert_eq(rejected, 1);
    api_results_counts(res, "orders", &accepted, &rejected);
    cr_assert_eq(accepted, 0);
    cr_assert_eq(rejected, 1);
    api_results_free(res);
}

Test(api_outcome, the_result_names_its_sender)
{
    json_t *r = json_pack("{s:s, s:s, s:s}", "command_id", "6f1c2a52-3c1b-4d59-9a51-0c6f7a1a2b3c",
                          "status", "ACCEPTED", "actor", "bob");
    struct api_outcome o;
    cr_assert_eq(api_outcome_from_result(r, &o), 0);
    cr_assert_str_eq(o.actor, "bob");
    json_decref(r);
}

Test(api_validate, only_fields_names_the_first_unknown_key)
{
    static const char *const allowed[] = {"sku", "quantity", NULL};
    json_t *ok = json_pack("{s:s, s:i}", "sku", "A", "quantity", 1);
    json_t *bad = json_pack("{s:s, s:i}", "sku", "A", "colour", 1);
    struct api_verr e = {0};
    cr_assert_eq(api_validate_only_fields(ok, allowed, "", &e), 0);
    cr_assert_eq(api_validate_only_fields(bad, allowed, "lines: ", &e), -1);
    cr_assert_eq(e.status, 422);
    cr_assert_str_eq(e.field, "colour");
    cr_assert_str_eq(e.msg, "lines: unknown field 'colour'");
    json_decref(ok);
    json_decref(bad);
}

static void assert_search(const char *q, const char *want)
{
    struct api_verr e = {0};
    char *got = api_search_query(q, &e);
    cr_assert_not_null(got, "q '%s': %s", q, e.msg);
    cr_assert_str_eq(got, want, "q '%s'", q);
    free(got);
}

Test(api_validate, search_query_requires_every_word_as_a_prefix)
{
    assert_search("red lamp", "+red* +lamp*");
    assert_search("  Lamp_3000  ", "+Lamp_3000*");
    /* the client's boolean operators are separators, never passed on */
    assert_search("+desk -lamp \"oak*\" (x) @2 ~tea", "+desk* +lamp* +oak* +tea*");
    /* words under three characters are not indexed: dropped, and none left matches nothing */
    assert_search("a tv of oak", "+oak*");
    assert_search("tv", "");
    assert_search("café crème", "+café* +crème*");
}

Test(api_validate, search_query_refuses_empty_long_or_non_utf8_text)
{
    char long_q[API_SEARCH_MAX + 2];
    memset(long_q, 'a', sizeof long_q - 1);
    long_q[sizeof long_q - 1] = '\0';
    const char *bad[] = {"", long_q, "lamp\xff"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct api_verr e = {0};
        cr_assert_null(api_search_query(bad[i], &e));
        cr_assert_eq(e.status, 400);
        cr_assert_str_eq(e.field, "q");
    }
    long_q[API_SEARCH_MAX] = '\0'; /* exactly the limit: one long word */
    struct api_verr e = {0};
    char *got = api_search_query(long_q, &e);
    cr_assert_not_null(got);
    free(got);
}
