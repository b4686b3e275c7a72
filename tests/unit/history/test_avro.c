#include "hi_avro.h"
#include <criterion/criterion.h>
#include <string.h>

static const char *rec_a =
    "{\"type\": \"record\", \"name\": \"A\", \"namespace\": \"x.y\", \"fields\": ["
    " {\"name\": \"metadata\", \"type\": {\"type\": \"record\", \"name\": \"Metadata\", "
    "\"namespace\": \"x\", \"fields\": [{\"name\": \"id\", \"type\": \"string\"}]}},"
    " {\"name\": \"user_id\", \"type\": {\"type\": \"string\", \"logicalType\": \"uuid\"}},"
    " {\"name\": \"email_index\", \"type\": \"string\"},"
    " {\"name\": \"email_enc\", \"type\": \"bytes\"},"
    " {\"name\": \"role\", \"type\": {\"type\": \"enum\", \"name\": \"Role\", \"symbols\": "
    "[\"admin\", \"customer\"]}},"
    " {\"name\": \"at\", \"type\": {\"type\": \"long\", \"logicalType\": \"timestamp-millis\"}},"
    " {\"name\": \"note\", \"type\": [\"null\", \"string\"], \"default\": null}]}";
static const char *rec_b =
    "{\"type\": \"record\", \"name\": \"B\", \"namespace\": \"x.y\", \"fields\": ["
    " {\"name\": \"metadata\", \"type\": {\"type\": \"record\", \"name\": \"Metadata\", "
    "\"namespace\": \"x\", \"fields\": [{\"name\": \"id\", \"type\": \"string\"}]}},"
    " {\"name\": \"role\", \"type\": {\"type\": \"enum\", \"name\": \"Role\", \"symbols\": "
    "[\"admin\", \"customer\"]}}, {\"name\": \"previous\", \"type\": \"Role\"},"
    " {\"name\": \"tags\", \"type\": {\"type\": \"array\", \"items\": \"string\"}}]}";

static json_t *envelope(void)
{
    json_t *types = json_pack("[oo]", json_loads(rec_a, 0, NULL), json_loads(rec_b, 0, NULL));
    json_t *env = hi_envelope_schema("users.events", types);
    json_decref(types);
    return env;
}

Test(hi_envelope, one_definition_per_name_sealed_fields_nullable)
{
    json_t *env = envelope();
    cr_assert_str_eq(json_string_value(json_object_get(env, "namespace")),
                     "eventshop.history.users");
    cr_assert_str_eq(hi_envelope_branch(env, 0), "x.y.A");
    cr_assert_str_eq(hi_envelope_branch(env, 1), "x.y.B");
    cr_assert_null(hi_envelope_branch(env, 2));
    char *text = json_dumps(env, JSON_COMPACT);
    /* Metadata and Role defined once, referenced after; logical types and defaults kept */
    const char *m = strstr(text, "\"name\":\"Metadata\"");
    cr_assert(m && !strstr(m + 1, "\"name\":\"Metadata\""), "%s", text);
    cr_assert(strstr(text, "\"type\":\"x.Metadata\""), "%s", text);
    cr_assert(strstr(text, "\"type\":\"x.y.Role\""), "%s", text);
    cr_assert(strstr(text, "\"logicalType\":\"timestamp-millis\""));
    cr_assert(strstr(text, "\"name\":\"email_enc\",\"type\":[\"null\",\"bytes\"],\"default\":null"),
              "%s", text);
    cr_assert(strstr(text, "\"name\":\"email_index\",\"type\":[\"null\",\"string\"],"
                           "\"default\":null"),
              "%s", text);
    json_t *names = hi_avro_names(env);
    cr_assert_not_null(json_object_get(names, "x.Metadata"));
    cr_assert_not_null(json_object_get(names, "x.y.Role"));
    cr_assert_not_null(json_object_get(names, "eventshop.history.users.Envelope"));
    json_decref(names);
    free(text);
    json_decref(env);
}

Test(hi_avro, encodes_the_binary_form)
{
    hi_buf_t b = {0};
    hi_buf_long(&b, 0);
    hi_buf_long(&b, -1);
    hi_buf_long(&b, 1);
    hi_buf_long(&b, 64);
    hi_buf_long(&b, -65);
    const unsigned char want[] = {0x00, 0x01, 0x02, 0x80, 0x01, 0x81, 0x01};
    cr_assert_eq(b.len, sizeof want);
    cr_assert_arr_eq(b.data, want, sizeof want);
    hi_buf_free(&b);

    json_t *env = envelope(), *names = hi_avro_names(env);
    json_t *v = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:i, s:I, s:I, s:[s], s:[],"
                          " s:{s:{s:s}, s:s, s:s, s:[s]}}",
                          "event_id", "e", "event_type", "x.y.B", "aggregate_id", "a",
                          "aggregate_version", (json_int_t)1, "occurred_at", (json_int_t)2, "topic",
                          "t", "partition", 3, "offset", (json_int_t)4, "timestamp", (json_int_t)5,
                          "shredded", "f", "unsealed", "payload", "metadata", "id", "m", "role",
                          "customer", "previous", "admin", "tags", "k");
    cr_assert_eq(hi_avro_encode_envelope(names, env, v, 1, &b, NULL), 0);
    const unsigned char head[] = {2,
                                  'e',
                                  10,
                                  'x',
                                  '.',
                                  'y',
                                  '.',
                                  'B',
                                  2,
                                  'a',
                                  2,
                                  4,
                                  2,
                                  't',
                                  6,
                                  8,
                                  10,
                                  2,
                                  2,
                                  'f',
                                  0,
                                  0,
                                  /* payload: branch 1 */ 2,
                                  2,
                                  'm',
                                  2,
                                  0,
                                  2,
                                  2,
                                  'k',
                                  0};
    cr_assert_eq(b.len, sizeof head);
    cr_assert_arr_eq(b.data, head, sizeof head);
    /* a symbol the enum lacks names the path */
    es_err_t err = ES_ERR_INIT;
    json_object_set_new(json_object_get(v, "payload"), "role", json_string("root"));
    b.len = 0;
    cr_assert_eq(hi_avro_encode_envelope(names, env, v, 1, &b, &err), -1);
    cr_assert(strstr(err.msg, "payload.role"), "%s", err.msg);
    json_decref(v);
    json_decref(names);
    json_decref(env);
    hi_buf_free(&b);
}

Test(hi_ocf, header_and_block)
{
    unsigned char sync[16];
    memset(sync, 0xab, sizeof sync);
    hi_buf_t b = {0};
    hi_ocf_header(&b, "\"long\"", sync);
    hi_ocf_block(&b, 2, "\x02\x04", 2, sync);
    const unsigned char want[] = {'O', 'b', 'j', 1,   4,   22,  'a', 'v', 'r', 'o', '.',
                                  's', 'c', 'h', 'e', 'm', 'a', 12,  '"', 'l', 'o', 'n',
                                  'g', '"', 20,  'a', 'v', 'r', 'o', '.', 'c', 'o', 'd',
                                  'e', 'c', 8,   'n', 'u', 'l', 'l', 0};
    cr_assert_arr_eq(b.data, want, sizeof want);
    cr_assert_arr_eq(b.data + sizeof want, sync, 16);
    const unsigned char block[] = {4, 4, 2, 4};
    cr_assert_arr_eq(b.data + sizeof want + 16, block, sizeof block);
    cr_assert_arr_eq(b.data + sizeof want + 16 + sizeof block, sync, 16);
    cr_assert_eq(b.len, sizeof want + 16 + sizeof block + 16);
    hi_buf_free(&b);
}
