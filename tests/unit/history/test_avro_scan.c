/* The export's fast path (hi_avro_scan, hi_avro_put_envelope) against its JSON path
 * (hi_avro_encode_envelope of the decoded value): the same bytes for sample events, with and
 * without shredding, and the bodies it must leave to the JSON path. */
#include "hi_avro.h"
#include <criterion/criterion.h>
#include <string.h>

#define META                                                                                       \
    "{\"name\": \"metadata\", \"type\": {\"type\": \"record\", \"name\": \"Metadata\", "           \
    "\"namespace\": \"eventshop\", \"fields\": ["                                                  \
    "{\"name\": \"event_id\", \"type\": {\"type\": \"string\", \"logicalType\": \"uuid\"}},"       \
    "{\"name\": \"aggregate_id\", \"type\": \"string\"},"                                          \
    "{\"name\": \"aggregate_version\", \"type\": \"long\"},"                                       \
    "{\"name\": \"command_id\", \"type\": \"string\"},"                                            \
    "{\"name\": \"correlation_id\", \"type\": \"string\"},"                                        \
    "{\"name\": \"occurred_at\", \"type\": {\"type\": \"long\", \"logicalType\": "                 \
    "\"timestamp-millis\"}},"                                                                      \
    "{\"name\": \"actor\", \"type\": \"string\"}]}}"

/* a user event: sealed fields (plain and already nullable), the blind index, an enum */
static const char *user_type =
    "{\"type\": \"record\", \"name\": \"UserRegistered\", \"namespace\": \"eventshop.users\", "
    "\"fields\": [" META ","
    " {\"name\": \"user_id\", \"type\": {\"type\": \"string\", \"logicalType\": \"uuid\"}},"
    " {\"name\": \"email_index\", \"type\": \"string\"},"
    " {\"name\": \"role\", \"type\": {\"type\": \"enum\", \"name\": \"Role\", \"symbols\": "
    "[\"admin\", \"vendor\", \"customer\"]}},"
    " {\"name\": \"email_enc\", \"type\": \"bytes\"},"
    " {\"name\": \"phone_enc\", \"type\": [\"null\", \"bytes\"], \"default\": null},"
    " {\"name\": \"score\", \"type\": \"double\"}, {\"name\": \"ok\", \"type\": \"boolean\"}]}";
/* a catalog-like event: a map, an array of records, unions of several kinds, int and float */
static const char *product_type =
    "{\"type\": \"record\", \"name\": \"ProductListed\", \"namespace\": \"eventshop.catalog\", "
    "\"fields\": [" META ","
    " {\"name\": \"sku\", \"type\": \"string\"},"
    " {\"name\": \"attributes\", \"type\": {\"type\": \"map\", \"values\": \"string\"}},"
    " {\"name\": \"lines\", \"type\": {\"type\": \"array\", \"items\": {\"type\": \"record\", "
    "\"name\": \"Line\", \"fields\": [{\"name\": \"qty\", \"type\": \"int\"}, "
    "{\"name\": \"weight\", \"type\": \"float\"}]}}},"
    " {\"name\": \"note\", \"type\": [\"null\", \"string\", \"long\"], \"default\": null},"
    " {\"name\": \"customer_id\", \"type\": [\"null\", \"string\"], \"default\": null}]}";

struct fixture {
    json_t *types[2], *env, *env_names;
    hi_avro_prog_t *progs[2];
};

static void fixture_init(struct fixture *f)
{
    f->types[0] = json_loads(user_type, 0, NULL);
    f->types[1] = json_loads(product_type, 0, NULL);
    cr_assert(f->types[0] && f->types[1]);
    json_t *types = json_pack("[OO]", f->types[0], f->types[1]);
    f->env = hi_envelope_schema("users.events", types);
    f->env_names = hi_avro_names(f->env);
    json_decref(types);
    for (int i = 0; i < 2; i++) {
        es_err_t err = ES_ERR_INIT;
        f->progs[i] = hi_avro_prog_new(f->types[i], &err);
        cr_assert_not_null(f->progs[i], "%s", err.msg);
    }
}

static void fixture_release(struct fixture *f)
{
    for (int i = 0; i < 2; i++) {
        json_decref(f->types[i]);
        hi_avro_prog_free(f->progs[i]);
    }
    json_decref(f->env);
    json_decref(f->env_names);
}

static json_t *meta(void)
{
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:I, s:s}", "event_id",
                     "6f1c1a52-0d8e-4a3e-9a55-5b3c0a9e0c11", "aggregate_id", "agg-\xc3\xa9",
                     "aggregate_version", (json_int_t)300, "command_id", "c", "correlation_id",
                     "corr", "occurred_at", (json_int_t)1714564800123LL, "actor", "u-1");
}

/* A producer's body of value as type i (the canonical encoding). */
static void body_of(struct fixture *f, int i, const json_t *value, hi_buf_t *out)
{
    json_t *names = hi_avro_names(f->types[i]);
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(hi_avro_encode(names, f->types[i], value, out, &err), 0, "%s", err.msg);
    json_decref(names);
}

/* What the JSON path writes for value (type i) as decoded, payload already shredded. */
static void json_path(struct fixture *f, int i, json_t *payload, json_t *shredded, hi_buf_t *out)
{
    json_t *m = json_object_get(payload, "metadata");
    json_t *env = json_pack(
        "{s:O, s:s, s:O, s:O, s:O, s:s, s:i, s:I, s:I, s:o, s:[], s:O}", "event_id",
        json_object_get(m, "event_id"), "event_type", hi_envelope_branch(f->env, (size_t)i),
        "aggregate_id", json_object_get(m, "aggregate_id"), "aggregate_version",
        json_object_get(m, "aggregate_version"), "occurred_at", json_object_get(m, "occurred_at"),
        "topic", "users.events", "partition", 3, "offset", (json_int_t)123456789, "timestamp",
        (json_int_t)1714564800999LL, "shredded", shredded, "unsealed", "payload", payload);
    es_err_t err = ES_ERR_INIT;
    cr_assert_eq(hi_avro_encode_envelope(f->env_names, f->env, env, (size_t)i, out, &err), 0, "%s",
                 err.msg);
    json_decref(env);
}

/* The fast path's bytes of body (type i): 0, or -1 when it leaves the body to the JSON path. */
static int fast_path(struct fixture *f, int i, const hi_buf_t *body, bool shred, hi_buf_t *out)
{
    hi_avro_scan_t s;
    if (hi_avro_scan(f->progs[i], body->data, body->len, &s))
        return -1;
    hi_avro_where_t w = {.event_type = hi_envelope_branch(f->env, (size_t)i),
                         .topic = "users.events",
                         .partition = 3,
                         .offset = 123456789,
                         .timestamp = 1714564800999LL,
                         .branch = (size_t)i};
    return hi_avro_put_envelope(out, f->progs[i], &s, &w, shred);
}

static json_t *user(bool phone)
{
    return json_pack("{s:o, s:s, s:s, s:s, s:s, s:o, s:f, s:b}", "metadata", meta(), "user_id",
                     "0b7c9a40-5a57-4c8e-b1f4-0d3e5c7a9b21", "email_index", "aGVsbG8=", "role",
                     "customer", "email_enc", "c2VhbGVkIGVtYWls", "phone_enc",
                     phone ? json_string("cGhvbmU=") : json_null(), "score", 2.5, "ok", 1);
}

static json_t *product(const char *note)
{
    json_t *lines = json_pack("[{s:i, s:f}, {s:i, s:f}]", "qty", -3, "weight", 0.25, "qty", 70000,
                              "weight", 1.5);
    json_t *attrs = json_pack("{s:s, s:s, s:s}", "colour", "red", "size", "", "\xc3\xa9t\xc3\xa9",
                              "\xe2\x82\xac");
    json_t *v = json_pack("{s:o, s:s, s:o, s:o, s:o, s:s}", "metadata", meta(), "sku", "SKU-1",
                          "attributes", attrs, "lines", lines, "note",
                          note ? json_string(note) : json_null(), "customer_id", "cust-7");
    return v;
}

Test(hi_avro_scan, writes_the_json_paths_bytes)
{
    struct fixture f;
    fixture_init(&f);
    json_t *samples[] = {user(true), user(false), product("n"), product(NULL),
                         json_pack("{s:o, s:s, s:{}, s:[], s:I, s:n}", "metadata", meta(), "sku",
                                   "", "attributes", "lines", "note", (json_int_t)-1,
                                   "customer_id")};
    int type_of[] = {0, 0, 1, 1, 1};
    for (size_t k = 0; k < sizeof samples / sizeof samples[0]; k++) {
        hi_buf_t body = {0}, slow = {0}, fast = {0};
        body_of(&f, type_of[k], samples[k], &body);
        json_path(&f, type_of[k], samples[k], json_array(), &slow);
        cr_assert_eq(fast_path(&f, type_of[k], &body, false, &fast), 0, "sample %zu", k);
        cr_assert_eq(fast.len, slow.len, "sample %zu", k);
        cr_assert_arr_eq(fast.data, slow.data, slow.len, "sample %zu", k);
        hi_buf_free(&body);
        hi_buf_free(&slow);
        hi_buf_free(&fast);
        json_decref(samples[k]);
    }
    fixture_release(&f);
}

Test(hi_avro_scan, shreds_as_the_json_path_does)
{
    struct fixture f;
    fixture_init(&f);
    cr_assert(hi_avro_prog_has_sealed(f.progs[0]));
    cr_assert_not(hi_avro_prog_has_sealed(f.progs[1]));
    for (int phone = 0; phone < 2; phone++) {
        json_t *v = user(phone);
        hi_buf_t body = {0}, slow = {0}, fast = {0};
        body_of(&f, 0, v, &body);
        hi_avro_scan_t s;
        cr_assert_eq(hi_avro_scan(f.progs[0], body.data, body.len, &s), 0);
        cr_assert(s.has_owner);
        cr_assert_eq(s.owner.len, 36);
        cr_assert_arr_eq(body.data + s.owner.off, "0b7c9a40-5a57-4c8e-b1f4-0d3e5c7a9b21", 36);
        /* hi_export's shredding of the decoded value: sealed strings and the index nulled */
        json_t *shredded = json_pack("[s]", "email_index");
        json_array_append_new(shredded, json_string("email_enc"));
        if (phone)
            json_array_append_new(shredded, json_string("phone_enc"));
        json_object_set_new(v, "email_index", json_null());
        json_object_set_new(v, "email_enc", json_null());
        json_object_set_new(v, "phone_enc", json_null());
        json_path(&f, 0, v, shredded, &slow);
        cr_assert_eq(fast_path(&f, 0, &body, true, &fast), 0);
        cr_assert_eq(fast.len, slow.len, "phone %d", phone);
        cr_assert_arr_eq(fast.data, slow.data, slow.len, "phone %d", phone);
        hi_buf_free(&body);
        hi_buf_free(&slow);
        hi_buf_free(&fast);
        json_decref(v);
    }
    fixture_release(&f);
}

/* A product body whose fields after the metadata are tail (n bytes). */
static void product_body(struct fixture *f, const void *tail, size_t n, hi_buf_t *out)
{
    json_t *m = meta();
    json_t *names = hi_avro_names(f->types[1]);
    json_t *fields = json_object_get(f->types[1], "fields");
    cr_assert_eq(
        hi_avro_encode(names, json_object_get(json_array_get(fields, 0), "type"), m, out, NULL), 0);
    hi_buf_put(out, tail, n);
    json_decref(names);
    json_decref(m);
}

Test(hi_avro_scan, leaves_other_encodings_to_the_json_path)
{
    struct fixture f;
    fixture_init(&f);
    /* sku "a", attributes {}, lines [], note null, customer_id null: accepted */
    const unsigned char ok[] = {2, 'a', 0, 0, 0, 0};
    /* each differs from ok in one way the JSON path would write differently or refuse */
    static const struct {
        const char *why;
        unsigned char b[16];
        size_t n;
    } bad[] = {
        {"trailing byte", {2, 'a', 0, 0, 0, 0, 0}, 7},
        {"truncated", {2, 'a', 0, 0, 0}, 5},
        {"varint not minimal", {0x82, 0x00, 'a', 0, 0, 0, 0}, 7},
        {"map in two blocks", {2, 'a', 2, 2, 'k', 2, 'v', 2, 2, 'j', 2, 'w', 0, 0, 0, 0}, 16},
        {"map key twice", {2, 'a', 4, 2, 'k', 2, 'v', 2, 'k', 2, 'w', 0, 0, 0, 0}, 15},
        {"block with a size", {2, 'a', 1, 2, 2, 'k', 2, 'v', 0, 0, 0, 0}, 12},
        {"bad utf-8", {2, 0xc3, 0, 0, 0, 0}, 6},
        {"bad utf-8 after ascii",
         {18, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 0xff, 0, 0, 0, 0},
         14},
        {"union branch out of range", {2, 'a', 0, 0, 6, 0}, 6},
        {"int out of range", {2, 'a', 0, 2, 0x80, 0x80, 0x80, 0x80, 0x10, 0, 0, 0, 0, 0}, 14},
    };
    hi_buf_t body = {0}, out = {0};
    product_body(&f, ok, sizeof ok, &body);
    cr_assert_eq(fast_path(&f, 1, &body, false, &out), 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        body.len = 0;
        product_body(&f, bad[i].b, bad[i].n, &body);
        cr_assert_eq(fast_path(&f, 1, &body, false, &out), -1, "%s", bad[i].why);
    }
    /* a union whose later branch has the kind of an earlier one: the JSON path picks the first */
    const char *twice = "{\"type\": \"record\", \"name\": \"T\", \"fields\": [" META
                        ", {\"name\": \"n\", \"type\": [\"null\", \"int\", \"long\"]}]}";
    json_t *t = json_loads(twice, 0, NULL);
    hi_avro_prog_t *p = hi_avro_prog_new(t, NULL);
    cr_assert_not_null(p);
    hi_avro_scan_t s;
    const unsigned char as_int[] = {2, 4}, as_long[] = {4, 4};
    body.len = 0;
    product_body(&f, as_int, sizeof as_int, &body);
    cr_assert_eq(hi_avro_scan(p, body.data, body.len, &s), 0);
    body.len -= sizeof as_int;
    hi_buf_put(&body, as_long, sizeof as_long);
    cr_assert_eq(hi_avro_scan(p, body.data, body.len, &s), -1);
    hi_avro_prog_free(p);
    json_decref(t);
    hi_buf_free(&body);
    hi_buf_free(&out);
    fixture_release(&f);
}
