/* Unit tests of the direct JSON -> Avro encoder (events/ev_codec_write.h) against the avro-c path
 * it stands in for (ev_json_to_avro, avro_value_sizeof, avro_value_write): for every record of
 * events/schemas and a schema of every avro type, seeded random values, valid and broken, must
 * give the same bytes or both fail, with ev_encode's message that of the avro-c path; and what the
 * encoder writes must decode (ev_decode) to the value with its defaults. */
#define _GNU_SOURCE
#include "ev_codec.h"
#include "ev_codec_write.h"
#include "ev_convert.h"
#include "ev_schema.h"
#include <avro.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define N_VALID   400 /* random valid values per schema */
#define N_BROKEN  400 /* random broken values per schema */
#define MAX_TYPES 256

/* One field of every avro type, unions whose branches share a JSON kind (the first that fits is
 * taken: a record before a map, an enum before a string), records in arrays, maps and unions. */
static const char *const mix_avsc =
    "{\"type\": \"record\", \"name\": \"Mix\", \"namespace\": \"eventshop.shop\", \"fields\": ["
    "{\"name\": \"metadata\", \"type\": \"eventshop.Metadata\"},"
    "{\"name\": \"n\", \"type\": \"null\", \"default\": null},"
    "{\"name\": \"b\", \"type\": \"boolean\", \"default\": true},"
    "{\"name\": \"i\", \"type\": \"int\", \"default\": -7},"
    "{\"name\": \"l\", \"type\": \"long\", \"default\": 9000000000},"
    "{\"name\": \"f\", \"type\": \"float\", \"default\": 1.5},"
    "{\"name\": \"d\", \"type\": \"double\", \"default\": 2.25},"
    "{\"name\": \"s\", \"type\": \"string\", \"default\": \"h\\u00e9\"},"
    "{\"name\": \"by\", \"type\": \"bytes\", \"default\": \"\\u00ffA\"},"
    "{\"name\": \"fx\", \"type\": {\"type\": \"fixed\", \"name\": \"Two\", \"size\": 2}, "
    "\"default\": \"\\u0001\\u00fe\"},"
    "{\"name\": \"e\", \"type\": {\"type\": \"enum\", \"name\": \"Color\", \"symbols\": "
    "[\"RED\", \"GREEN\", \"BLUE\"]}, \"default\": \"GREEN\"},"
    "{\"name\": \"a\", \"type\": {\"type\": \"array\", \"items\": \"long\"}, \"default\": [1, 2]},"
    "{\"name\": \"an\", \"type\": {\"type\": \"array\", \"items\": \"null\"}, \"default\": []},"
    "{\"name\": \"m\", \"type\": {\"type\": \"map\", \"values\": \"Color\"}, \"default\": "
    "{\"k\": \"RED\"}},"
    "{\"name\": \"u\", \"type\": [\"null\", \"string\"], \"default\": null},"
    "{\"name\": \"u2\", \"type\": [\"long\", \"null\"], \"default\": 5},"
    "{\"name\": \"r\", \"type\": {\"type\": \"record\", \"name\": \"Inner\", \"fields\": ["
    "{\"name\": \"x\", \"type\": \"int\"}, {\"name\": \"y\", \"type\": \"string\", \"default\": "
    "\"z\"}, {\"name\": \"fl\", \"type\": [\"null\", \"float\", \"bytes\"], \"default\": null}]}, "
    "\"default\": {\"x\": 1}},"
    "{\"name\": \"u3\", \"type\": [\"null\", \"int\", \"long\", \"double\", \"boolean\", "
    "\"Color\", "
    "\"string\", \"Inner\", {\"type\": \"map\", \"values\": \"long\"}, {\"type\": \"array\", "
    "\"items\": \"Two\"}], \"default\": null},"
    "{\"name\": \"rs\", \"type\": {\"type\": \"array\", \"items\": \"Inner\"}, \"default\": []},"
    "{\"name\": \"mr\", \"type\": {\"type\": \"map\", \"values\": [\"null\", \"Inner\"]}, "
    "\"default\": {\"a\": null}},"
    "{\"name\": \"nested\", \"type\": {\"type\": \"array\", \"items\": {\"type\": \"map\", "
    "\"values\": {\"type\": \"array\", \"items\": [\"null\", \"double\", \"Color\"]}}}, "
    "\"default\": [{}]}]}";

/* A record that holds itself: deep enough to reach the codec's nesting limit. */
static const char *const tree_avsc =
    "{\"type\": \"record\", \"name\": \"Tree\", \"namespace\": \"eventshop.shop\", \"fields\": ["
    "{\"name\": \"label\", \"type\": \"string\", \"default\": \"\"},"
    "{\"name\": \"kids\", \"type\": {\"type\": \"array\", \"items\": \"Tree\"}, "
    "\"default\": []},"
    "{\"name\": \"next\", \"type\": [\"null\", \"Tree\"], \"default\": null}]}";

/* Every record under test: the codec's schemas and Mix, with the codec's defaults mapping. */
static struct {
    char *full;
    avro_schema_t schema;
    avro_value_iface_t *iface;
    ev_encoder_t *enc;
} types[MAX_TYPES];
static size_t n_types;
static json_t *defaults;
static ev_codec_t *codec;
static char *tmp_dir;

/* ---- setup ------------------------------------------------------------------------------- */

static void add_file_names(const char *dir, json_t *names)
{
    struct dirent **ents = NULL;
    int n = scandir(dir, &ents, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        char *p = NULL;
        cr_assert_neq(asprintf(&p, "%s/%s", dir, ents[i]->d_name), -1);
        size_t l = strlen(ents[i]->d_name);
        struct stat st;
        if (ents[i]->d_name[0] != '.' && stat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            add_file_names(p, names);
        } else if (l > 5 && !strcmp(ents[i]->d_name + l - 5, ".avsc")) {
            json_t *j = json_load_file(p, 0, NULL);
            cr_assert_not_null(j, "%s", p);
            const char *ns = json_string_value(json_object_get(j, "namespace"));
            const char *name = json_string_value(json_object_get(j, "name"));
            char *full = NULL;
            cr_assert_neq(asprintf(&full, "%s%s%s", ns ? ns : "", ns ? "." : "", name), -1);
            json_array_append_new(names, json_string(full));
            free(full);
            json_decref(j);
        }
        free(p);
        free(ents[i]);
    }
    free(ents);
}

/* A schema dir: the real one's contexts and common/ linked, plus shop/events/{Mix,Tree}.avsc. */
static char *make_dir(void)
{
    char tmpl[] = "/tmp/ev_codec_write_XXXXXX";
    char *dir = strdup(mkdtemp(tmpl));
    struct dirent **ents = NULL;
    int n = scandir(ES_SCHEMA_DIR, &ents, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        if (ents[i]->d_name[0] != '.') {
            char *from = NULL, *to = NULL;
            cr_assert_neq(asprintf(&from, "%s/%s", ES_SCHEMA_DIR, ents[i]->d_name), -1);
            cr_assert_neq(asprintf(&to, "%s/%s", dir, ents[i]->d_name), -1);
            cr_assert_eq(symlink(from, to), 0);
            free(from);
            free(to);
        }
        free(ents[i]);
    }
    free(ents);
    char *p = NULL;
    cr_assert_neq(asprintf(&p, "%s/shop", dir), -1);
    mkdir(p, 0755);
    free(p);
    cr_assert_neq(asprintf(&p, "%s/shop/events", dir), -1);
    mkdir(p, 0755);
    free(p);
    const char *files[] = {"Mix", "Tree"}, *texts[] = {mix_avsc, tree_avsc};
    for (size_t i = 0; i < 2; i++) {
        cr_assert_neq(asprintf(&p, "%s/shop/events/%s.avsc", dir, files[i]), -1);
        FILE *f = fopen(p, "w");
        cr_assert_not_null(f);
        fputs(texts[i], f);
        fclose(f);
        free(p);
    }
    return dir;
}

static void setup(void)
{
    tmp_dir = make_dir();
    es_err_t err = ES_ERR_INIT;
    codec = ev_codec_new(tmp_dir, NULL, &err);
    cr_assert_not_null(codec, "codec: %s", err.msg);
    json_t *names = json_array();
    char *common = NULL;
    cr_assert_neq(asprintf(&common, "%s/common", ES_SCHEMA_DIR), -1);
    add_file_names(common, names); /* first, as the codec loads them: the first default wins */
    free(common);
    add_file_names(tmp_dir, names);
    defaults = json_object();
    size_t i;
    json_t *jn;
    json_array_foreach(names, i, jn)
    {
        const char *full = json_string_value(jn);
        bool seen = false;
        for (size_t k = 0; k < n_types && !seen; k++)
            seen = !strcmp(types[k].full, full);
        if (seen)
            continue;
        const char *text = ev_codec_schema_text(codec, full);
        cr_assert_not_null(text, "no schema text for %s", full);
        json_t *j = json_loads(text, 0, NULL);
        char *got = NULL;
        cr_assert_eq(ev_schema_validate(j, full, defaults, &got, &err), 0, "%s", err.msg);
        free(got);
        json_decref(j);
        cr_assert_lt(n_types, MAX_TYPES);
        types[n_types].full = strdup(full);
        cr_assert_eq(avro_schema_from_json_length(text, strlen(text), &types[n_types].schema), 0);
        types[n_types].iface = avro_generic_class_from_schema(types[n_types].schema);
        cr_assert_eq(ev_codec_set_id(codec, "t", full, (int32_t)(1000 + n_types), &err), 0, "%s",
                     err.msg);
        n_types++;
    }
    json_decref(names);
    for (size_t k = 0; k < n_types; k++)
        types[k].enc = ev_encoder_new(defaults, types[k].schema);
    cr_assert_gt(n_types, 60, "only %zu records found", n_types);
}

static void teardown(void)
{
    for (size_t k = 0; k < n_types; k++) {
        ev_encoder_free(types[k].enc);
        avro_value_iface_decref(types[k].iface);
        avro_schema_decref(types[k].schema);
        free(types[k].full);
    }
    n_types = 0;
    json_decref(defaults);
    ev_codec_free(codec);
    char *cmd = NULL;
    if (asprintf(&cmd, "rm -rf '%s'", tmp_dir) > 0 && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_dir);
    free(cmd);
    free(tmp_dir);
}

/* ---- random values ----------------------------------------------------------------------- */

typedef struct rng {
    uint64_t s;
} rng_t;

static uint64_t rnd(rng_t *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return r->s;
}

static size_t pick(rng_t *r, size_t n)
{
    return (size_t)(rnd(r) % n);
}

static avro_schema_t unlink_schema(avro_schema_t s)
{
    while (is_avro_link(s))
        s = avro_schema_link_target(s);
    return s;
}

static const json_t *record_defaults(avro_schema_t s)
{
    char *full = NULL;
    const char *ns = avro_schema_namespace(s);
    cr_assert_neq(
        asprintf(&full, "%s%s%s", ns ? ns : "", ns && *ns ? "." : "", avro_schema_name(s)), -1);
    const json_t *d = json_object_get(defaults, full);
    free(full);
    return d;
}

static json_t *random_base64(rng_t *r, size_t n)
{
    unsigned char raw[256];
    for (size_t i = 0; i < n; i++)
        raw[i] = (unsigned char)rnd(r);
    char *b = ev_base64_encode(raw, n);
    json_t *j = json_string(b);
    free(b);
    return j;
}

static json_t *random_string(rng_t *r)
{
    static const char *const pool[] = {"",
                                       "a",
                                       "SKU-1",
                                       "h\xc3\xa9llo w\xc3\xb6rld",
                                       "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
                                       "emoji \xf0\x9f\x98\x80",
                                       "RED",
                                       "quote \" and \\ and \n tab \t"};
    size_t k = pick(r, 11);
    if (k < sizeof pool / sizeof pool[0])
        return json_string(pool[k]);
    if (k == 8)
        return json_stringn("nul\0inside", 10);
    char buf[400];
    size_t n = k == 9 ? 60 + pick(r, 80) : 200 + pick(r, 150); /* 1- and 2-byte lengths */
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)('a' + pick(r, 26));
    return json_stringn(buf, n);
}

static json_int_t random_long(rng_t *r)
{
    static const json_int_t pool[] = {
        0,         1,         -1,        63,        64,        -64,          -65,
        INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN, 1LL << 32, -(1LL << 40), 1718000000123LL};
    size_t k = pick(r, 16);
    if (k < sizeof pool / sizeof pool[0])
        return pool[k];
    return k == 14 ? (json_int_t)rnd(r) : (json_int_t)(rnd(r) % 2000) - 1000;
}

static json_t *gen(rng_t *r, avro_schema_t s, int depth);
static size_t first_branch(avro_schema_t u, const json_t *j);

static json_t *gen_record(rng_t *r, avro_schema_t s, int depth)
{
    json_t *o = json_object();
    const json_t *rdefs = record_defaults(s);
    size_t n = avro_schema_record_size(s);
    for (size_t i = 0; i < n; i++) {
        const char *f = avro_schema_record_field_name(s, (int)i);
        if (json_object_get(rdefs, f) && (pick(r, 3) == 0 || depth > 6))
            continue; /* left to its default (always, deep in a record that holds itself) */
        json_object_set_new(o, f, gen(r, avro_schema_record_field_get_by_index(s, (int)i), depth));
    }
    return o;
}

/* An item count: none, a few, or more than 63 (a 2-byte count); few when nested. */
static size_t random_count(rng_t *r, int depth)
{
    static const size_t counts[] = {0, 1, 2, 3, 70, 130};
    return counts[pick(r, depth > 1 ? 4 : 6)];
}

/* A random valid value of s in the codec's JSON mapping. */
static json_t *gen(rng_t *r, avro_schema_t s, int depth)
{
    s = unlink_schema(s);
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        return json_null();
    case AVRO_BOOLEAN:
        return json_boolean(pick(r, 2));
    case AVRO_INT32: {
        json_int_t v = random_long(r);
        return json_integer(v >= INT32_MIN && v <= INT32_MAX ? v : (int32_t)v);
    }
    case AVRO_INT64:
        return json_integer(random_long(r));
    case AVRO_FLOAT:
        if (pick(r, 4) == 0)
            return json_integer(random_long(r) % 100000);
        return json_real((double)(float)((double)(int64_t)rnd(r) / 1e12));
    case AVRO_DOUBLE:
        if (pick(r, 4) == 0)
            return json_integer(random_long(r));
        return json_real(pick(r, 5) == 0 ? 1e300 : (double)(int64_t)rnd(r) / 3e9);
    case AVRO_STRING:
        return random_string(r);
    case AVRO_BYTES:
        return random_base64(r, pick(r, 3) == 0 ? pick(r, 200) : pick(r, 6));
    case AVRO_FIXED:
        return random_base64(r, (size_t)avro_schema_fixed_size(s));
    case AVRO_ENUM:
        return json_string(
            avro_schema_enum_get(s, (int)pick(r, (size_t)avro_schema_enum_number_of_symbols(s))));
    case AVRO_ARRAY: {
        json_t *a = json_array();
        for (size_t i = 0, n = random_count(r, depth); i < n; i++)
            json_array_append_new(a, gen(r, avro_schema_array_items(s), depth + 1));
        return a;
    }
    case AVRO_MAP: {
        json_t *m = json_object();
        for (size_t i = 0, n = random_count(r, depth); i < n; i++) {
            char key[32];
            snprintf(key, sizeof key, i % 2 ? "k%zu" : "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87%zu", i);
            json_object_set_new(m, key, gen(r, avro_schema_map_values(s), depth + 1));
        }
        return m;
    }
    case AVRO_UNION:
        /* a value of a branch that an earlier one shadows (a map behind a record) may be valid
         * for none: such tries are left out (the broken values cover them) */
        for (int tries = 0; tries < 10; tries++) {
            size_t i = pick(r, avro_schema_union_size(s));
            json_t *v = gen(r, avro_schema_union_branch(s, (int)i), depth);
            if (first_branch(s, v) == i)
                return v;
            json_decref(v);
        }
        return gen(r, avro_schema_union_branch(s, 0), depth);
    case AVRO_RECORD:
        return gen_record(r, s, depth + 1);
    default:
        cr_assert_fail("unexpected avro type in %s", avro_schema_type_name(s));
        return NULL;
    }
}

/* Whether valid j takes union branch b (the codec's rule: the first whose JSON kind fits, an int
 * in range, a known symbol). */
static bool branch_fits(avro_schema_t b, const json_t *j)
{
    switch (avro_typeof(b)) {
    case AVRO_NULL:
        return json_is_null(j);
    case AVRO_BOOLEAN:
        return json_is_boolean(j);
    case AVRO_INT32:
        return json_is_integer(j) && json_integer_value(j) >= INT32_MIN &&
               json_integer_value(j) <= INT32_MAX;
    case AVRO_INT64:
        return json_is_integer(j);
    case AVRO_FLOAT:
    case AVRO_DOUBLE:
        return json_is_number(j);
    case AVRO_ENUM:
        return json_is_string(j) && avro_schema_enum_get_by_name(b, json_string_value(j)) >= 0;
    case AVRO_STRING:
    case AVRO_BYTES:
    case AVRO_FIXED:
        return json_is_string(j);
    case AVRO_ARRAY:
        return json_is_array(j);
    default:
        return json_is_object(j);
    }
}

/* The index of the union branch valid j takes. */
static size_t first_branch(avro_schema_t u, const json_t *j)
{
    for (size_t i = 0; i < avro_schema_union_size(u); i++)
        if (branch_fits(unlink_schema(avro_schema_union_branch(u, (int)i)), j))
            return i;
    return SIZE_MAX;
}

/* Valid j as ev_decode gives it back: defaults filled, numbers of float and double as reals. */
static json_t *expected(avro_schema_t s, const json_t *j)
{
    s = unlink_schema(s);
    switch (avro_typeof(s)) {
    case AVRO_FLOAT:
        return json_real((double)(float)json_number_value(j));
    case AVRO_DOUBLE:
        return json_real(json_number_value(j));
    case AVRO_UNION: {
        size_t i = first_branch(s, j);
        cr_assert_neq(i, SIZE_MAX, "no branch fits");
        return expected(avro_schema_union_branch(s, (int)i), j);
    }
    case AVRO_ARRAY: {
        json_t *a = json_array();
        size_t i;
        json_t *el;
        json_array_foreach(j, i, el)
        {
            json_array_append_new(a, expected(avro_schema_array_items(s), el));
        }
        return a;
    }
    case AVRO_MAP: {
        json_t *m = json_object();
        const char *k;
        json_t *el;
        json_object_foreach((json_t *)j, k, el)
        {
            json_object_set_new(m, k, expected(avro_schema_map_values(s), el));
        }
        return m;
    }
    case AVRO_RECORD: {
        json_t *o = json_object();
        const json_t *rdefs = record_defaults(s);
        for (size_t i = 0; i < avro_schema_record_size(s); i++) {
            const char *f = avro_schema_record_field_name(s, (int)i);
            const json_t *v = json_object_get(j, f);
            json_object_set_new(o, f,
                                expected(avro_schema_record_field_get_by_index(s, (int)i),
                                         v ? v : json_object_get(rdefs, f)));
        }
        return o;
    }
    default:
        return json_deep_copy(j);
    }
}

/* A copy of v with one thing broken (or not: some changes keep it valid) somewhere inside. */
static json_t *mutate(rng_t *r, const json_t *v)
{
    json_t *copy = json_deep_copy(v), *cur = copy, *parent = NULL;
    char key[128] = "";
    size_t idx = 0;
    for (int d = 0; d < 8 && pick(r, 4); d++) {
        size_t n = json_is_object(cur) ? json_object_size(cur) : json_array_size(cur);
        if (!n)
            break;
        size_t k = pick(r, n);
        parent = cur;
        if (json_is_object(cur)) {
            void *it = json_object_iter(cur);
            for (size_t m = 0; m < k; m++)
                it = json_object_iter_next(cur, it);
            snprintf(key, sizeof key, "%s", json_object_iter_key(it));
            cur = json_object_iter_value(it);
        } else {
            idx = k;
            cur = json_array_get(cur, k);
        }
    }
    json_t *junk;
    switch (pick(r, 16)) {
    case 0:
        junk = json_integer(1);
        break;
    case 1:
        junk = json_integer(1LL << 40);
        break;
    case 2:
        junk = json_integer(-(1LL << 35));
        break;
    case 3:
        junk = json_string("x");
        break;
    case 4:
        junk = json_string("NOT_A_SYMBOL");
        break;
    case 5:
        junk = json_string("!!");
        break;
    case 6:
        junk = json_string("AAA=");
        break;
    case 7:
        junk = json_real(1.5);
        break;
    case 8:
        junk = json_null();
        break;
    case 9:
        junk = json_true();
        break;
    case 10:
        junk = json_array();
        break;
    case 11:
        junk = json_pack("{s:i}", "x", 1);
        break;
    case 12: /* an unknown member, where there are members */
        if (json_is_object(cur)) {
            json_object_set_new(cur, "zz_unknown", json_integer(1));
            return copy;
        }
        junk = json_object();
        break;
    case 13: /* a member gone: required or defaulted */
        if (json_is_object(cur) && json_object_size(cur)) {
            json_object_del(cur, json_object_iter_key(json_object_iter(cur)));
            return copy;
        }
        junk = json_string("RED");
        break;
    case 14: /* one more item */
        if (json_is_array(cur)) {
            json_array_append_new(cur, json_string("y"));
            return copy;
        }
        junk = json_integer(INT32_MAX + 1LL);
        break;
    default:
        junk = json_object();
        break;
    }
    if (!parent) {
        json_decref(copy);
        return junk;
    }
    if (json_is_object(parent))
        json_object_set_new(parent, key, junk);
    else
        json_array_set_new(parent, idx, junk);
    return copy;
}

/* ---- the two paths ----------------------------------------------------------------------- */

/* The avro-c path on types[t]: 0 with the body (malloc'd) or -1 with err. */
static int avro_c_encode(size_t t, const json_t *j, unsigned char **out, size_t *len, es_err_t *err)
{
    avro_value_t v;
    cr_assert_eq(avro_generic_value_new(types[t].iface, &v), 0);
    int rc = ev_json_to_avro(defaults, j, &v, err);
    if (rc == 0) {
        size_t size = 0;
        cr_assert_eq(avro_value_sizeof(&v, &size), 0, "%s", avro_strerror());
        *out = malloc(size ? size : 1);
        avro_writer_t wr = avro_writer_memory((const char *)*out, (int64_t)size);
        cr_assert_eq(avro_value_write(wr, &v), 0, "%s", avro_strerror());
        avro_writer_free(wr);
        *len = size;
    }
    avro_value_decref(&v);
    return rc;
}

/* Both paths on j as types[t]: the same bytes, or both refuse it and ev_encode says what the
 * avro-c path says. declines: what the encoder leaves to avro-c even when valid (a map key with a
 * NUL, more items than it takes), so only ev_encode must agree. Returns whether j was valid. */
static bool check_same_or_declined(size_t t, const json_t *j, bool declines)
{
    unsigned char *want = NULL;
    size_t want_len = 0;
    es_err_t werr = ES_ERR_INIT;
    int wrc = avro_c_encode(t, j, &want, &want_len, &werr);
    void *got = NULL;
    size_t got_len = 0;
    bool fit = ev_encoder_write(types[t].enc, j, &got, &got_len);
    char *dump = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    if (declines) {
        cr_assert(!fit, "%s: the encoder took a value it should leave to avro-c: %.2000s",
                  types[t].full, dump);
    } else if (wrc == 0) {
        cr_assert(fit, "%s: the encoder did not take a value avro-c takes: %.2000s", types[t].full,
                  dump);
        cr_assert_eq(got_len, EV_ENCODER_HEADER + want_len, "%s: %zu bytes, avro-c %zu: %.2000s",
                     types[t].full, got_len - EV_ENCODER_HEADER, want_len, dump);
        cr_assert(!memcmp((unsigned char *)got + EV_ENCODER_HEADER, want, want_len),
                  "%s: bytes differ from avro-c's: %.2000s", types[t].full, dump);
    } else {
        cr_assert(!fit, "%s: the encoder took a value avro-c refuses (%s): %.2000s", types[t].full,
                  werr.msg, dump);
    }
    /* ev_encode, encoder and fallback: the same bytes, or avro-c's message */
    void *buf = NULL;
    size_t len = 0;
    es_err_t err = ES_ERR_INIT;
    int rc = ev_encode(codec, "t", types[t].full, j, &buf, &len, &err);
    if (wrc == 0) {
        cr_assert_eq(rc, 0, "%s: %s", types[t].full, err.msg);
        cr_assert(len == 5 + want_len && !memcmp((unsigned char *)buf + 5, want, want_len));
        cr_assert_eq(ev_frame_schema_id(buf, len), (int32_t)(1000 + t));
    } else {
        cr_assert_eq(rc, -1);
        cr_assert_eq(err.code, werr.code);
        cr_assert_str_eq(err.msg, werr.msg, "%s: %.2000s", types[t].full, dump);
        cr_assert_null(buf);
    }
    free(dump);
    free(buf);
    free(got);
    free(want);
    return wrc == 0;
}

static bool check_same(size_t t, const json_t *j)
{
    return check_same_or_declined(t, j, false);
}

/* ---- tests ------------------------------------------------------------------------------- */

Test(ev_codec_write, writes_the_bytes_of_avro_c_for_random_valid_values, .init = setup,
     .fini = teardown)
{
    rng_t r = {0x9e3779b97f4a7c15ull};
    for (size_t t = 0; t < n_types; t++) {
        for (int k = 0; k < N_VALID; k++) {
            json_t *j = gen(&r, types[t].schema, 0);
            cr_assert(check_same(t, j), "%s: the generator made an invalid value", types[t].full);
            json_decref(j);
        }
    }
}

Test(ev_codec_write, refuses_what_avro_c_refuses, .init = setup, .fini = teardown)
{
    rng_t r = {0x243f6a8885a308d3ull};
    for (size_t t = 0; t < n_types; t++) {
        int refused = 0;
        for (int k = 0; k < N_BROKEN; k++) {
            json_t *valid = gen(&r, types[t].schema, 0);
            json_t *j = mutate(&r, valid);
            refused += !check_same(t, j);
            json_decref(j);
            json_decref(valid);
        }
        cr_assert_gt(refused, N_BROKEN / 4, "%s: only %d of %d broken values refused",
                     types[t].full, refused, N_BROKEN);
    }
}

static size_t type_index(const char *full)
{
    for (size_t t = 0; t < n_types; t++)
        if (!strcmp(types[t].full, full))
            return t;
    cr_assert_fail("no type %s", full);
    return 0;
}

#define META                                                                                       \
    "\"metadata\": {\"event_id\": \"e\", \"aggregate_id\": \"a\", \"aggregate_version\": 3, "      \
    "\"command_id\": \"c\", \"correlation_id\": \"corr-1\", \"occurred_at\": 1, \"actor\": "       \
    "\"u\"}"

/* Edge cases, each checked both ways; whether avro-c takes it does not matter here. */
Test(ev_codec_write, agrees_with_avro_c_on_edge_cases, .init = setup, .fini = teardown)
{
    static const struct {
        const char *field, *json;
    } cases[] = {
        {"i", "2147483648"},
        {"i", "-2147483649"},
        {"l", "-9223372036854775808"},
        {"f", "3"},
        {"f", "1e39"},
        {"d", "9007199254740993"},
        {"by", "\"AB==\""},
        {"by", "\"A===\""},
        {"by", "\"AAA\""},
        {"fx", "\"AAAA\""},
        {"fx", "\"\""},
        {"e", "\"red\""},
        {"u", "\"RED\""},
        {"u2", "2.5"},
        {"u3", "2147483648"},
        {"u3", "\"GREEN\""},
        {"u3", "{\"x\": 1}"},
        {"u3", "{\"q\": 1}"},
        {"u3", "[\"AAA=\"]"},
        {"u3", "[\"AA==\"]"},
        {"u3", "1.0"},
        {"r", "{\"x\": 1, \"fl\": 2}"},
        {"r", "{\"x\": 1, \"fl\": \"AA==\"}"},
        {"rs", "[{\"x\": 1}, {\"y\": \"no x\"}]"},
        {"mr", "{\"a\": {\"x\": 1}, \"b\": null, \"c\": 3}"},
        {"nested", "[{\"k\": [null, 1, \"BLUE\", \"PINK\"]}]"},
    };
    size_t t = type_index("eventshop.shop.Mix");
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        json_t *in = json_loads("{" META "}", 0, NULL);
        json_t *v = json_loads(cases[k].json, JSON_DECODE_ANY, NULL);
        cr_assert_not_null(v, "bad test json %s", cases[k].json);
        json_object_set_new(in, cases[k].field, v);
        check_same(t, in);
        json_decref(in);
    }
    /* a map key with a NUL, which avro-c cuts short */
    json_t *in = json_loads("{" META "}", 0, NULL);
    json_t *m = json_object();
    json_object_setn_new(m, "a\0x", 3, json_string("RED"));
    json_object_setn_new(m, "a\0y", 3, json_string("BLUE"));
    json_object_set_new(in, "m", m);
    check_same_or_declined(t, in, true);
    json_object_del(in, "m");
    /* more items than the encoder takes, of a type that takes no byte */
    json_t *a = json_array();
    for (int i = 0; i < 5000; i++)
        json_array_append_new(a, json_null());
    json_object_set_new(in, "an", a);
    check_same_or_declined(t, in, true);
    while (json_array_size(a) > EV_ENCODER_MAX_ITEMS)
        json_array_remove(a, 0);
    cr_assert(check_same(t, in), "the most items the encoder takes");
    /* a body longer than the encoder takes, and one just short of it */
    size_t big = EV_ENCODER_MAX_BODY + 1;
    char *text = malloc(big);
    memset(text, 'x', big);
    json_object_set_new(in, "s", json_stringn(text, big));
    check_same_or_declined(t, in, true);
    json_object_set_new(in, "s", json_stringn(text, EV_ENCODER_MAX_BODY - 4096));
    cr_assert(check_same(t, in), "a body just short of the most the encoder takes");
    free(text);
    json_decref(in);
}

/* A tree nested n levels through kids (or next): record fields and array items count as
 * ev_convert counts them. */
static json_t *tree(int n, bool via_next)
{
    json_t *t = json_pack("{s:s}", "label", "leaf");
    for (int i = 0; i < n; i++)
        t = via_next ? json_pack("{s:o}", "next", t) : json_pack("{s:[o]}", "kids", t);
    return t;
}

Test(ev_codec_write, agrees_with_avro_c_on_the_nesting_limit, .init = setup, .fini = teardown)
{
    size_t t = type_index("eventshop.shop.Tree");
    int valid = 0, refused = 0;
    for (int n = 25; n <= 70; n++) {
        for (int via_next = 0; via_next < 2; via_next++) {
            json_t *j = tree(n, via_next);
            if (check_same(t, j))
                valid++;
            else
                refused++;
            json_decref(j);
        }
    }
    cr_assert(valid > 0 && refused > 0, "the limit was not reached: %d valid, %d refused", valid,
              refused);
}

Test(ev_codec_write, output_decodes_to_the_value_with_its_defaults, .init = setup, .fini = teardown)
{
    rng_t r = {0x13198a2e03707344ull};
    for (size_t t = 0; t < n_types; t++) {
        for (int k = 0; k < N_VALID / 4; k++) {
            json_t *j = gen(&r, types[t].schema, 0);
            void *buf = NULL;
            size_t len = 0;
            cr_assert(ev_encoder_write(types[t].enc, j, &buf, &len), "%s", types[t].full);
            memcpy(buf, "\0\0\0\0\0", 5);
            uint32_t id = (uint32_t)(1000 + t);
            ((unsigned char *)buf)[3] = (unsigned char)(id >> 8);
            ((unsigned char *)buf)[4] = (unsigned char)id;
            json_t *out = NULL;
            const char *name = NULL;
            es_err_t err = ES_ERR_INIT;
            cr_assert_eq(ev_decode(codec, buf, len, &name, &out, &err), 0, "%s: %s", types[t].full,
                         err.msg);
            cr_assert_str_eq(name, types[t].full);
            json_t *want = expected(types[t].schema, j);
            char *got_s = json_dumps(out, JSON_SORT_KEYS | JSON_COMPACT);
            char *want_s = json_dumps(want, JSON_SORT_KEYS | JSON_COMPACT);
            cr_assert(json_equal(out, want), "%s:\n got %.3000s\nwant %.3000s", types[t].full,
                      got_s, want_s);
            free(got_s);
            free(want_s);
            json_decref(want);
            json_decref(out);
            free(buf);
            json_decref(j);
        }
    }
}

Test(ev_codec_write, does_not_take_a_value_that_does_not_fit, .init = setup, .fini = teardown)
{
    size_t t = type_index("eventshop.shop.Mix");
    static const char *const bad[] = {"{\"n\": 0}",
                                      "{\"b\": \"yes\"}",
                                      "{\"i\": 2147483648}",
                                      "{\"e\": \"PINK\"}",
                                      "{\"fx\": \"AA==\"}",
                                      "{\"by\": \"!!\"}",
                                      "{\"zz\": 1}",
                                      "{\"r\": {\"y\": \"w\"}}",
                                      "[]",
                                      "null"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        json_t *in = json_loads("{" META "}", 0, NULL);
        json_t *v = json_loads(bad[k], JSON_DECODE_ANY, NULL);
        if (json_is_object(v))
            json_object_update(in, v);
        else
            json_object_set(in, "metadata", v);
        void *buf = (void *)1;
        size_t len = 7;
        cr_assert(!ev_encoder_write(types[t].enc, in, &buf, &len), "took %s", bad[k]);
        cr_assert_eq(buf, (void *)1);
        cr_assert_eq(len, 7);
        json_decref(v);
        json_decref(in);
    }
}
