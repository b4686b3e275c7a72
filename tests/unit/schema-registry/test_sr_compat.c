#include "es_env.h"
#include "sr_compat.h"
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sr_schema_t *parse_ok(const char *text)
{
    es_err_t err = ES_ERR_INIT;
    sr_schema_t *s = sr_schema_parse(text, strlen(text), &err);
    cr_assert_not_null(s, "schema should parse: %s (%s)", text, err.msg);
    return s;
}

static void parse_fails(const char *text, const char *want)
{
    es_err_t err = ES_ERR_INIT;
    sr_schema_t *s = sr_schema_parse(text, strlen(text), &err);
    cr_assert_null(s, "schema should be refused: %s", text);
    cr_assert_eq(err.code, ES_EINVAL);
    cr_assert(strstr(err.msg, want), "message '%s' should contain '%s'", err.msg, want);
}

/* Can reader read writer? Messages, when it cannot, must mention want. */
static bool reads(const char *reader, const char *writer, const char *want)
{
    sr_schema_t *r = parse_ok(reader), *w = parse_ok(writer);
    json_t *msgs = json_array();
    bool ok = sr_compat_can_read(r, w, msgs);
    if (ok)
        cr_assert_eq(json_array_size(msgs), 0, "no message when compatible");
    else
        cr_assert_gt(json_array_size(msgs), 0, "a message says why");
    if (!ok && want) {
        bool found = false;
        for (size_t i = 0; i < json_array_size(msgs); i++)
            if (strstr(json_string_value(json_array_get(msgs, i)), want))
                found = true;
        cr_assert(found, "messages should mention '%s': %s", want,
                  json_string_value(json_array_get(msgs, 0)));
    }
    json_decref(msgs);
    sr_schema_free(r);
    sr_schema_free(w);
    return ok;
}

#define REC(fields)                                                                                \
    "{\"type\":\"record\",\"name\":\"R\",\"namespace\":\"t\",\"fields\":[" fields "]}"
#define F(name, type)       "{\"name\":\"" name "\",\"type\":" type "}"
#define FD(name, type, def) "{\"name\":\"" name "\",\"type\":" type ",\"default\":" def "}"

/* ---- levels ---- */

Test(sr_compat, level_names_round_trip)
{
    for (int l = SR_LEVEL_NONE; l <= SR_LEVEL_FULL_TRANSITIVE; l++)
        cr_assert_eq(sr_level_parse(sr_level_name((sr_level_t)l)), l);
    cr_assert_eq(sr_level_parse("backward"), SR_LEVEL_BACKWARD);
    cr_assert_eq(sr_level_parse("SIDEWAYS"), -1);
    cr_assert_eq(sr_level_parse(NULL), -1);
}

/* ---- validation ---- */

Test(sr_compat, parses_primitive_and_record)
{
    sr_schema_free(parse_ok("\"string\""));
    sr_schema_free(parse_ok(REC(F("a", "\"int\"") "," FD("b", "[\"null\",\"long\"]", "null"))));
}

Test(sr_compat, parses_every_repo_schema)
{
    /* self-contained ones only: the codec inlines eventshop.Metadata into the others */
    const char *files[] = {"common/Metadata.avsc", "common/CommandMetadata.avsc"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", ES_SCHEMA_DIR, files[i]);
        size_t len;
        char *text = es_read_file(path, &len);
        cr_assert_not_null(text, "read %s", path);
        es_err_t err = ES_ERR_INIT;
        sr_schema_t *s = sr_schema_parse(text, len, &err);
        cr_assert_not_null(s, "%s: %s", files[i], err.msg);
        sr_schema_free(s);
        free(text);
    }
}

Test(sr_compat, refuses_bad_json)
{
    parse_fails("{\"type\":", "not JSON");
}

Test(sr_compat, refuses_duplicate_fields)
{
    parse_fails(REC(F("a", "\"int\"") "," F("a", "\"long\"")), "two fields named 'a'");
}

Test(sr_compat, refuses_bad_names)
{
    parse_fails("{\"type\":\"record\",\"name\":\"1R\",\"fields\":[]}", "invalid name");
    parse_fails(REC(F("a-b", "\"int\"")), "invalid field name 'a-b'");
    parse_fails("{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"b c\"]}", "invalid symbol");
}

Test(sr_compat, refuses_defaults_of_the_wrong_type)
{
    parse_fails(REC(FD("a", "\"int\"", "\"x\"")), "default of field 't.R.a'");
    parse_fails(REC(FD("a", "\"int\"", "4294967296")), "default of field");
    parse_fails(REC(FD("a", "[\"null\",\"string\"]", "\"x\"")), "default of field");
    parse_fails(REC(FD("a", "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\"]}", "\"B\"")),
                "default of field");
    parse_fails(REC(FD("a", "{\"type\":\"array\",\"items\":\"int\"}", "[1,\"x\"]")),
                "default of field");
}

Test(sr_compat, accepts_good_defaults)
{
    sr_schema_free(parse_ok(REC(FD("a", "\"int\"", "1") "," FD("b", "\"double\"", "1.5") "," FD(
        "c", "[\"string\",\"null\"]", "\"x\"") "," FD("d", "{\"type\":\"map\",\"values\":\"long\"}",
                                                      "{\"k\":2}"))));
}

Test(sr_compat, refuses_unknown_types_and_bad_unions)
{
    parse_fails(REC(F("m", "\"eventshop.Metadata\"")), "unknown type 'eventshop.Metadata'");
    parse_fails(REC(F("u", "[\"int\",\"int\"]")), "union repeats type 'int'");
    parse_fails(REC(F("u", "[\"int\",[\"null\"]]")), "union directly inside a union");
    parse_fails("{\"type\":\"fixed\",\"name\":\"F\"}", "size");
    parse_fails("{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"A\"]}", "repeats symbol");
}

Test(sr_compat, refuses_type_defined_twice)
{
    parse_fails(REC(F("a", "{\"type\":\"fixed\",\"name\":\"F\",\"size\":2}") "," F(
                    "b", "{\"type\":\"fixed\",\"name\":\"F\",\"size\":2}")),
                "defined twice");
}

Test(sr_compat, canonical_ignores_key_order_and_whitespace)
{
    sr_schema_t *a = parse_ok("{\"type\": \"record\", \"name\": \"R\", \"fields\": []}");
    sr_schema_t *b = parse_ok("{\"fields\":[],\"name\":\"R\",\"type\":\"record\"}");
    sr_schema_t *c = parse_ok("{\"fields\":[],\"name\":\"S\",\"type\":\"record\"}");
    cr_assert_str_eq(sr_schema_canonical(a), sr_schema_canonical(b));
    cr_assert_str_neq(sr_schema_canonical(a), sr_schema_canonical(c));
    cr_assert_str_eq(sr_schema_text(a), "{\"type\":\"record\",\"name\":\"R\",\"fields\":[]}");
    sr_schema_free(a);
    sr_schema_free(b);
    sr_schema_free(c);
}

/* ---- resolution rules ---- */

Test(sr_compat, added_field_with_default_is_readable)
{
    cr_assert(reads(REC(F("a", "\"int\"") "," FD("b", "\"string\"", "\"\"")),
                    REC(F("a", "\"int\"")), NULL));
}

Test(sr_compat, added_field_without_default_is_not)
{
    cr_assert_not(reads(REC(F("a", "\"int\"") "," F("b", "\"string\"")), REC(F("a", "\"int\"")),
                        "reader field 'b' has no default and is missing in the writer"));
}

Test(sr_compat, removed_writer_field_is_skipped)
{
    cr_assert(reads(REC(F("a", "\"int\"")), REC(F("a", "\"int\"") "," F("b", "\"string\"")), NULL));
}

Test(sr_compat, field_alias_matches_writer_name)
{
    const char *reader = REC("{\"name\":\"b\",\"aliases\":[\"a\"],\"type\":\"int\"}");
    cr_assert(reads(reader, REC(F("a", "\"int\"")), NULL));
}

Test(sr_compat, numeric_promotions_one_way)
{
    cr_assert(reads("\"long\"", "\"int\"", NULL));
    cr_assert(reads("\"float\"", "\"int\"", NULL));
    cr_assert(reads("\"double\"", "\"int\"", NULL));
    cr_assert(reads("\"float\"", "\"long\"", NULL));
    cr_assert(reads("\"double\"", "\"long\"", NULL));
    cr_assert(reads("\"double\"", "\"float\"", NULL));
    cr_assert_not(reads("\"int\"", "\"long\"", "reader type 'int' cannot read writer type 'long'"));
    cr_assert_not(reads("\"float\"", "\"double\"", NULL));
    cr_assert_not(reads("\"long\"", "\"float\"", NULL));
}

Test(sr_compat, string_and_bytes_promote_both_ways)
{
    cr_assert(reads("\"bytes\"", "\"string\"", NULL));
    cr_assert(reads("\"string\"", "\"bytes\"", NULL));
    cr_assert_not(reads("\"string\"", "\"int\"", NULL));
}

Test(sr_compat, field_type_change_reports_path)
{
    cr_assert_not(reads(REC(F("a", "\"int\"")), REC(F("a", "\"string\"")), "'/a'"));
}

Test(sr_compat, record_names_must_match_or_alias)
{
    const char *w = "{\"type\":\"record\",\"name\":\"Old\",\"namespace\":\"t\",\"fields\":[]}";
    cr_assert_not(reads(REC(""), w, "does not match writer record 't.Old'"));
    const char *r = "{\"type\":\"record\",\"name\":\"R\",\"namespace\":\"t\",\"aliases\":[\"Old\"],"
                    "\"fields\":[]}";
    cr_assert(reads(r, w, NULL));
}

Test(sr_compat, enum_writer_symbols_must_be_in_reader)
{
    const char *e2 = "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\"]}";
    const char *e3 = "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\",\"C\"]}";
    cr_assert(reads(e3, e2, NULL));
    cr_assert_not(reads(e2, e3, "writer symbol 'C' is missing"));
}

Test(sr_compat, enum_reader_default_accepts_unknown_symbols)
{
    const char *e2 =
        "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\"],\"default\":\"A\"}";
    const char *e3 = "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\",\"C\"]}";
    cr_assert(reads(e2, e3, NULL));
}

Test(sr_compat, arrays_and_maps_by_items_and_values)
{
    cr_assert(reads("{\"type\":\"array\",\"items\":\"long\"}",
                    "{\"type\":\"array\",\"items\":\"int\"}", NULL));
    cr_assert_not(reads("{\"type\":\"array\",\"items\":\"int\"}",
                        "{\"type\":\"array\",\"items\":\"long\"}", "/items"));
    cr_assert(reads("{\"type\":\"map\",\"values\":\"double\"}",
                    "{\"type\":\"map\",\"values\":\"float\"}", NULL));
    cr_assert_not(reads("{\"type\":\"map\",\"values\":\"string\"}",
                        "{\"type\":\"map\",\"values\":\"int\"}", "/values"));
    cr_assert_not(reads("{\"type\":\"map\",\"values\":\"int\"}",
                        "{\"type\":\"array\",\"items\":\"int\"}",
                        "cannot read writer type 'array'"));
}

Test(sr_compat, fixed_by_name_and_size)
{
    const char *f4 = "{\"type\":\"fixed\",\"name\":\"F\",\"size\":4}";
    const char *f8 = "{\"type\":\"fixed\",\"name\":\"F\",\"size\":8}";
    const char *g4 = "{\"type\":\"fixed\",\"name\":\"G\",\"size\":4}";
    cr_assert(reads(f4, f4, NULL));
    cr_assert_not(reads(f4, f8, "size 4, writer size 8"));
    cr_assert_not(reads(f4, g4, "does not match"));
}

Test(sr_compat, reader_union_reads_a_matching_writer_branch)
{
    cr_assert(reads("[\"null\",\"string\"]", "\"string\"", NULL));
    cr_assert(reads("[\"null\",\"long\"]", "\"int\"", NULL)); /* through a promotion */
    cr_assert_not(reads("[\"null\",\"string\"]", "\"int\"", "no branch of the reader union"));
}

Test(sr_compat, writer_union_needs_every_branch_readable)
{
    cr_assert(reads("[\"null\",\"string\",\"int\"]", "[\"null\",\"string\"]", NULL));
    cr_assert_not(reads("[\"null\",\"string\"]", "[\"null\",\"string\",\"int\"]", NULL));
    cr_assert(reads("\"long\"", "[\"int\",\"long\"]", NULL));
    cr_assert_not(reads("\"string\"", "[\"null\",\"string\"]", "cannot read writer type 'null'"));
}

Test(sr_compat, nested_record_field_rules_apply)
{
    const char *inner_w =
        "{\"type\":\"record\",\"name\":\"In\",\"fields\":[" F("x", "\"int\"") "]}";
    const char *inner_r = "{\"type\":\"record\",\"name\":\"In\",\"fields\":[" F(
        "x", "\"int\"") "," F("y", "\"int\"") "]}";
    char w[512], r[512];
    snprintf(w, sizeof w, REC(F("in", "%s")), inner_w);
    snprintf(r, sizeof r, REC(F("in", "%s")), inner_r);
    cr_assert_not(reads(r, w, "reader field 'y' has no default"));
    cr_assert(reads(w, r, NULL));
}

Test(sr_compat, named_references_resolve_within_a_schema)
{
    const char *w =
        REC(F("a", "{\"type\":\"fixed\",\"name\":\"F\",\"size\":2}") "," F("b", "\"F\""));
    const char *r =
        REC(F("a", "{\"type\":\"fixed\",\"name\":\"F\",\"size\":2}") "," F("b", "\"t.F\""));
    cr_assert(reads(r, w, NULL));
    const char *r2 =
        REC(F("a", "{\"type\":\"fixed\",\"name\":\"F\",\"size\":2}") "," F("b", "\"string\""));
    cr_assert_not(reads(r2, w, "'/b'"));
}

Test(sr_compat, recursive_types_terminate)
{
    const char *list = "{\"type\":\"record\",\"name\":\"Node\",\"fields\":[" F(
        "v", "\"int\"") "," F("next", "[\"null\",\"Node\"]") "]}";
    const char *list2 = "{\"type\":\"record\",\"name\":\"Node\",\"fields\":[" F(
        "v", "\"long\"") "," F("next", "[\"null\",\"Node\"]") "]}";
    cr_assert(reads(list, list, NULL));
    cr_assert(reads(list2, list, NULL));
    cr_assert_not(reads(list, list2, NULL));
}

/* ---- levels over version lists ---- */

struct versions {
    sr_schema_t *v[3];
};

/* v1 {a}, v2 {a, b=default}, v3 {a, b=default, c required} */
static void three_versions(struct versions *vs)
{
    vs->v[0] = parse_ok(REC(F("a", "\"int\"")));
    vs->v[1] = parse_ok(REC(F("a", "\"int\"") "," FD("b", "\"int\"", "0")));
    vs->v[2] = parse_ok(REC(F("a", "\"int\"") "," FD("b", "\"int\"", "0") "," F("c", "\"int\"")));
}

static void free_versions(struct versions *vs)
{
    for (int i = 0; i < 3; i++)
        sr_schema_free(vs->v[i]);
}

static bool check(sr_level_t level, const sr_schema_t *cand, struct versions *vs, size_t n)
{
    json_t *msgs = json_array();
    bool ok = sr_compat_check(level, cand, (const sr_schema_t *const *)vs->v, n, msgs);
    cr_assert_eq(ok, json_array_size(msgs) == 0);
    json_decref(msgs);
    return ok;
}

Test(sr_compat, none_accepts_anything)
{
    struct versions vs;
    three_versions(&vs);
    sr_schema_t *other = parse_ok("\"string\"");
    cr_assert(check(SR_LEVEL_NONE, other, &vs, 3));
    cr_assert(check(SR_LEVEL_FULL_TRANSITIVE, other, &vs, 0));
    sr_schema_free(other);
    free_versions(&vs);
}

Test(sr_compat, backward_checks_new_reads_latest_only)
{
    struct versions vs;
    three_versions(&vs);
    /* new = v1 shape plus a defaulted field: reads v2 */
    sr_schema_t *cand = parse_ok(REC(F("a", "\"int\"") "," FD("d", "\"int\"", "1")));
    cr_assert(check(SR_LEVEL_BACKWARD, cand, &vs, 2));
    /* new with a required field c: cannot read v2 ... */
    cr_assert_not(check(SR_LEVEL_BACKWARD, vs.v[2], &vs, 2));
    sr_schema_free(cand);
    free_versions(&vs);
}

Test(sr_compat, forward_checks_latest_reads_new)
{
    struct versions vs;
    three_versions(&vs);
    /* v3 adds required c: the old v2 can still read v3 data (c skipped) */
    cr_assert(check(SR_LEVEL_FORWARD, vs.v[2], &vs, 2));
    /* dropping a field with no default in the latest: latest cannot read new data */
    sr_schema_t *cand = parse_ok(REC(FD("b", "\"int\"", "0")));
    cr_assert_not(check(SR_LEVEL_FORWARD, cand, &vs, 2));
    cr_assert(check(SR_LEVEL_BACKWARD, cand, &vs, 2));
    sr_schema_free(cand);
    free_versions(&vs);
}

Test(sr_compat, full_needs_both_directions)
{
    struct versions vs;
    three_versions(&vs);
    cr_assert(check(SR_LEVEL_FULL, vs.v[1], &vs, 1));     /* defaulted field: both ways */
    cr_assert_not(check(SR_LEVEL_FULL, vs.v[2], &vs, 2)); /* required c: not backward */
    free_versions(&vs);
}

Test(sr_compat, transitive_checks_every_version)
{
    struct versions vs;
    vs.v[0] = parse_ok(REC(F("a", "\"int\"")));
    vs.v[1] = parse_ok(REC(FD("a", "\"int\"", "0")));
    vs.v[2] = NULL;
    /* drops a: reads v2 (a has a default there, the writer's field is skipped) and v1 */
    sr_schema_t *cand = parse_ok(REC(FD("z", "\"int\"", "0")));
    cr_assert(check(SR_LEVEL_FORWARD, cand, &vs, 2));
    /* forward transitive: v1 (a required) cannot read new data without a */
    cr_assert_not(check(SR_LEVEL_FORWARD_TRANSITIVE, cand, &vs, 2));
    cr_assert_not(check(SR_LEVEL_FULL_TRANSITIVE, cand, &vs, 2));
    cr_assert(check(SR_LEVEL_BACKWARD_TRANSITIVE, cand, &vs, 2));
    sr_schema_free(cand);
    free_versions(&vs);
}

Test(sr_compat, backward_transitive_reads_every_version)
{
    struct versions vs;
    vs.v[0] = parse_ok(REC(F("x", "\"int\"")));
    vs.v[1] = parse_ok(REC(F("x", "\"int\"") "," FD("y", "\"int\"", "0")));
    vs.v[2] = NULL;
    /* y loses its default: reads v2 (which has y) but not v1 (which lacks it) */
    sr_schema_t *cand = parse_ok(REC(F("x", "\"int\"") "," F("y", "\"int\"")));
    cr_assert(check(SR_LEVEL_BACKWARD, cand, &vs, 2));
    cr_assert_not(check(SR_LEVEL_BACKWARD_TRANSITIVE, cand, &vs, 2));
    cr_assert_not(check(SR_LEVEL_FULL_TRANSITIVE, cand, &vs, 2));
    cr_assert(check(SR_LEVEL_FORWARD_TRANSITIVE, cand, &vs, 2));
    sr_schema_free(cand);
    free_versions(&vs);
}

Test(sr_compat, reports_every_field_in_order_with_its_path)
{
    const char *w =
        REC("{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\","
            "\"symbols\":[\"A\",\"B\"]}},"
            "{\"name\":\"f\",\"type\":{\"type\":\"fixed\",\"name\":\"G\",\"size\":8}},"
            "{\"name\":\"a\",\"type\":{\"type\":\"array\",\"items\":\"long\"}},"
            "{\"name\":\"u\",\"type\":\"int\"},"
            "{\"name\":\"m\",\"type\":[\"null\",{\"type\":\"map\",\"values\":\"bytes\"}]},"
            "{\"name\":\"k\",\"type\":\"string\"}");
    const char *r = REC("{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\","
                        "\"symbols\":[\"A\"]}},"
                        "{\"name\":\"f\",\"type\":{\"type\":\"fixed\",\"name\":\"G\",\"size\":4}},"
                        "{\"name\":\"a\",\"type\":{\"type\":\"array\",\"items\":\"int\"}},"
                        "{\"name\":\"u\",\"type\":[\"null\",\"string\"]},"
                        "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"string\"}},"
                        "{\"name\":\"k\",\"type\":\"double\"},"
                        "{\"name\":\"n\",\"type\":\"long\"}");
    sr_schema_t *rs = parse_ok(r), *ws = parse_ok(w);
    json_t *msgs = json_array();
    cr_assert_not(sr_compat_can_read(rs, ws, msgs));
    static const char *const want[] = {
        "writer symbol 'B' is missing in reader enum 't.E' (no default) (at '/e')",
        "reader fixed 't.G' has size 4, writer size 8 (at '/f')",
        "reader type 'int' cannot read writer type 'long' (at '/a/items')",
        "no branch of the reader union can read writer type 'int' (at '/u')",
        "reader type 'map' cannot read writer type 'null' (at '/m')",
        "reader type 'double' cannot read writer type 'string' (at '/k')",
        "reader field 'n' has no default and is missing in the writer (at '/')",
    };
    char *got = json_dumps(msgs, JSON_INDENT(1));
    cr_assert_eq(json_array_size(msgs), sizeof want / sizeof want[0], "%s", got);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert_str_eq(json_string_value(json_array_get(msgs, i)), want[i], "%s", got);
    free(got);
    json_decref(msgs);
    sr_schema_free(rs);
    sr_schema_free(ws);
}
