/* ev_convert — JSON into avro generic values (see ev_convert.h). */
#include "ev_convert.h"

#include "es_mem.h"
#include "ev_schema.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EV_MAX_DEPTH 64

/* The dotted path of the field being converted, for error messages. */
typedef struct ev_path {
    char buf[200];
    size_t len;
    int depth;
} ev_path_t;

static size_t ev_path_push(ev_path_t *p, const char *fmt, const char *s, size_t idx)
{
    size_t saved = p->len;
    size_t room = sizeof(p->buf) - p->len;
    int n;
    if (s) { /* a field name, on every field of every event: no printf */
        char *d = p->buf + p->len;
        size_t left = room - 1, len = strlen(s);
        if (p->len && left) {
            *d++ = '.';
            left--;
        }
        size_t c = len < left ? len : left;
        memcpy(d, s, c);
        d[c] = '\0';
        n = (int)((p->len ? 1 : 0) + len);
    } else {
        n = snprintf(p->buf + p->len, room, fmt, idx);
    }
    p->len = n < 0 || (size_t)n >= room ? sizeof(p->buf) - 1 : p->len + (size_t)n;
    p->depth++;
    return saved;
}

static void ev_path_pop(ev_path_t *p, size_t saved)
{
    p->len = saved;
    p->buf[saved] = '\0';
    p->depth--;
}

static const char *ev_path_str(const ev_path_t *p)
{
    return p->len ? p->buf : "(value)";
}

static const char *ev_json_kind(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "real";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

/* The defaults of record schema s: looked up on every record encoded or decoded, so its full
 * name is built on the stack (no heap, no printf) unless it is unusually long. */
const json_t *ev_record_defaults(const json_t *defs, avro_schema_t s)
{
    const char *ns = avro_schema_namespace(s);
    const char *name = avro_schema_name(s);
    size_t nl = ns ? strlen(ns) : 0, ml = strlen(name);
    if (!nl)
        return json_object_get(defs, name);
    char buf[256];
    if (nl + 1 + ml < sizeof(buf)) {
        memcpy(buf, ns, nl);
        buf[nl] = '.';
        memcpy(buf + nl + 1, name, ml + 1);
        return json_object_get(defs, buf);
    }
    char *full = xasprintf("%s.%s", ns, name);
    const json_t *d = json_object_get(defs, full);
    free(full);
    return d;
}

avro_schema_t ev_unlink(avro_schema_t s)
{
    while (is_avro_link(s))
        s = avro_schema_link_target(s);
    return s;
}

static int ev_wrong(ev_path_t *p, const char *want, const json_t *j, es_err_t *err)
{
    return es_set(err, ES_EINVAL, "%s: expected %s, got %s", ev_path_str(p), want, ev_json_kind(j));
}

static int ev_avro_fail(ev_path_t *p, const char *what, es_err_t *err)
{
    return es_set(err, ES_EINVAL, "%s: %s: %s", ev_path_str(p), what, avro_strerror());
}

/* The JSON kind an avro type takes, as messages name it; NULL for a type the codec has no
 * mapping for. */
static const char *ev_json_want(avro_type_t t)
{
    switch (t) {
    case AVRO_NULL:
        return "null";
    case AVRO_BOOLEAN:
        return "boolean";
    case AVRO_INT32:
        return "int";
    case AVRO_INT64:
        return "long";
    case AVRO_FLOAT:
        return "float";
    case AVRO_DOUBLE:
        return "double";
    case AVRO_STRING:
        return "string";
    case AVRO_BYTES:
    case AVRO_FIXED:
        return "base64 string";
    case AVRO_ENUM:
        return "enum symbol";
    case AVRO_ARRAY:
        return "array";
    case AVRO_MAP:
        return "map object";
    case AVRO_RECORD:
        return "object";
    default:
        return NULL;
    }
}

/* Whether j is of the JSON kind avro type t takes (ranges and symbols not yet checked). */
bool ev_json_kind_fits(avro_type_t t, const json_t *j)
{
    switch (t) {
    case AVRO_NULL:
        return json_is_null(j);
    case AVRO_BOOLEAN:
        return json_is_boolean(j);
    case AVRO_INT32:
    case AVRO_INT64:
        return json_is_integer(j);
    case AVRO_FLOAT:
    case AVRO_DOUBLE:
        return json_is_number(j);
    case AVRO_STRING:
    case AVRO_BYTES:
    case AVRO_FIXED:
    case AVRO_ENUM:
        return json_is_string(j);
    case AVRO_RECORD:
    case AVRO_MAP:
        return json_is_object(j);
    case AVRO_ARRAY:
        return json_is_array(j);
    default:
        return false;
    }
}

static bool ev_fits_int32(const json_t *j)
{
    return json_integer_value(j) >= INT32_MIN && json_integer_value(j) <= INT32_MAX;
}

/* Whether a JSON value fits a union branch (the first fitting branch is taken). */
static bool ev_branch_fits(avro_schema_t b, const json_t *j)
{
    avro_type_t t = avro_typeof(b);
    if (!ev_json_kind_fits(t, j))
        return false;
    if (t == AVRO_INT32)
        return ev_fits_int32(j);
    if (t == AVRO_ENUM)
        return avro_schema_enum_get_by_name(b, json_string_value(j)) >= 0;
    return true;
}

static int ev_to_avro(const json_t *defs, const json_t *j, avro_value_t *v, ev_path_t *p,
                      es_err_t *err);

/* The first member of j (a record's JSON) that s has no field for, or NULL. */
static const char *ev_unknown_field(const json_t *j, avro_schema_t s)
{
    const char *key;
    json_t *fv;
    json_object_foreach((json_t *)j, key, fv)
    {
        if (avro_schema_record_field_get_index(s, key) < 0)
            return key;
    }
    return NULL;
}

static int ev_record_to_avro(const json_t *defs, const json_t *j, avro_value_t *v, ev_path_t *p,
                             es_err_t *err)
{
    /* An unknown member is the error reported first. Rather than look every member up in the
     * schema (a hash lookup per field of every record), count the members the fields found:
     * only when the count falls short, or a field fails, is there a member to look for. */
    avro_schema_t s = avro_value_get_schema(v);
    es_err_t ferr = ES_ERR_INIT;
    const json_t *rdefs = ev_record_defaults(defs, s);
    size_t n = avro_schema_record_size(s), found = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *fname = avro_schema_record_field_name(s, (int)i);
        avro_value_t child;
        size_t saved = ev_path_push(p, NULL, fname, 0);
        const json_t *val = json_object_get(j, fname);
        if (val)
            found++;
        else
            val = json_object_get(rdefs, fname);
        if (!val)
            rc = es_set(&ferr, ES_EINVAL, "%s: missing required field", ev_path_str(p));
        else if (avro_value_get_by_index(v, i, &child, NULL) != 0)
            rc = ev_avro_fail(p, "cannot get field", &ferr);
        else if (ev_to_avro(defs, val, &child, p, &ferr) < 0)
            rc = -1;
        ev_path_pop(p, saved);
    }
    if (rc == 0 && found == json_object_size(j))
        return 0;
    const char *unknown = ev_unknown_field(j, s);
    if (unknown) {
        size_t saved = ev_path_push(p, NULL, unknown, 0);
        es_set(err, ES_EINVAL, "%s: unknown field", ev_path_str(p));
        ev_path_pop(p, saved);
        return -1;
    }
    if (rc == 0)
        return 0;
    es_set(err, ferr.code, "%s", ferr.msg);
    return -1;
}

static int ev_union_to_avro(const json_t *defs, const json_t *j, avro_value_t *v, ev_path_t *p,
                            es_err_t *err)
{
    avro_schema_t s = avro_value_get_schema(v);
    size_t n = avro_schema_union_size(s);
    for (size_t i = 0; i < n; i++) {
        avro_schema_t b = ev_unlink(avro_schema_union_branch(s, (int)i));
        if (!ev_branch_fits(b, j))
            continue;
        avro_value_t branch;
        if (avro_value_set_branch(v, (int)i, &branch) != 0)
            return ev_avro_fail(p, "cannot set union branch", err);
        return ev_to_avro(defs, j, &branch, p, err);
    }
    char want[160] = "";
    size_t o = 0;
    for (size_t i = 0; i < n && o < sizeof(want); i++) {
        avro_schema_t b = ev_unlink(avro_schema_union_branch(s, (int)i));
        int w =
            snprintf(want + o, sizeof(want) - o, "%s%s", i ? " or " : "", avro_schema_type_name(b));
        o = w < 0 ? sizeof(want) : o + (size_t)w;
    }
    return ev_wrong(p, want, j, err);
}

/* A null, boolean, number or string (its JSON kind already checked). */
static int ev_scalar_to_avro(const json_t *j, avro_value_t *v, ev_path_t *p, es_err_t *err)
{
    int r;
    switch (avro_value_get_type(v)) {
    case AVRO_NULL:
        r = avro_value_set_null(v);
        break;
    case AVRO_BOOLEAN:
        r = avro_value_set_boolean(v, json_is_true(j));
        break;
    case AVRO_INT32:
        if (!ev_fits_int32(j))
            return es_set(err, ES_EINVAL, "%s: %lld is out of range for int", ev_path_str(p),
                          (long long)json_integer_value(j));
        r = avro_value_set_int(v, (int32_t)json_integer_value(j));
        break;
    case AVRO_INT64:
        r = avro_value_set_long(v, (int64_t)json_integer_value(j));
        break;
    case AVRO_FLOAT:
        r = avro_value_set_float(v, (float)json_number_value(j));
        break;
    case AVRO_DOUBLE:
        r = avro_value_set_double(v, json_number_value(j));
        break;
    default: /* AVRO_STRING; avro-c string sizes count the terminating NUL */
        r = avro_value_set_string_len(v, json_string_value(j), json_string_length(j) + 1);
        break;
    }
    return r != 0 ? ev_avro_fail(p, "cannot set value", err) : 0;
}

/* Bytes or a fixed, from a base64 string. */
static int ev_bytes_to_avro(const json_t *j, avro_value_t *v, ev_path_t *p, es_err_t *err)
{
    size_t n = 0;
    void *raw = ev_base64_decode(json_string_value(j), json_string_length(j), &n);
    if (!raw)
        return es_set(err, ES_EINVAL, "%s: not valid base64", ev_path_str(p));
    int r;
    if (avro_value_get_type(v) == AVRO_FIXED) {
        int64_t want = avro_schema_fixed_size(avro_value_get_schema(v));
        if ((int64_t)n != want) {
            free(raw);
            return es_set(err, ES_EINVAL, "%s: %zu bytes for a fixed of %lld", ev_path_str(p), n,
                          (long long)want);
        }
        r = avro_value_set_fixed(v, raw, n);
    } else {
        r = avro_value_set_bytes(v, raw, n);
    }
    free(raw);
    return r != 0 ? ev_avro_fail(p, "cannot set value", err) : 0;
}

static int ev_enum_to_avro(const json_t *j, avro_value_t *v, ev_path_t *p, es_err_t *err)
{
    int idx = avro_schema_enum_get_by_name(avro_value_get_schema(v), json_string_value(j));
    if (idx < 0)
        return es_set(err, ES_EINVAL, "%s: '%.60s' is not a symbol", ev_path_str(p),
                      json_string_value(j));
    return avro_value_set_enum(v, idx) != 0 ? ev_avro_fail(p, "cannot set value", err) : 0;
}

/* One element of an array (key NULL, at idx) or entry of a map (under key): made in v, then
 * filled from el. */
static int ev_child_to_avro(const json_t *defs, const json_t *el, const char *key, size_t idx,
                            avro_value_t *v, ev_path_t *p, es_err_t *err)
{
    avro_value_t child;
    int r;
    size_t saved = key ? ev_path_push(p, NULL, key, 0) : ev_path_push(p, "[%zu]", NULL, idx);
    if (key && avro_value_add(v, key, &child, NULL, NULL) != 0)
        r = ev_avro_fail(p, "cannot add map entry", err);
    else if (!key && avro_value_append(v, &child, NULL) != 0)
        r = ev_avro_fail(p, "cannot append", err);
    else
        r = ev_to_avro(defs, el, &child, p, err);
    ev_path_pop(p, saved);
    return r < 0 ? -1 : 0;
}

/* An array or a map, element by element. */
static int ev_items_to_avro(const json_t *defs, const json_t *j, avro_value_t *v, ev_path_t *p,
                            es_err_t *err)
{
    size_t i;
    const char *key;
    json_t *el;
    if (avro_value_get_type(v) == AVRO_ARRAY) {
        json_array_foreach(j, i, el)
        {
            if (ev_child_to_avro(defs, el, NULL, i, v, p, err))
                return -1;
        }
        return 0;
    }
    json_object_foreach((json_t *)j, key, el)
    {
        if (ev_child_to_avro(defs, el, key, 0, v, p, err))
            return -1;
    }
    return 0;
}

/* Checks j's JSON kind against v's type once, then hands it to the step for that type. */
static int ev_to_avro(const json_t *defs, const json_t *j, avro_value_t *v, ev_path_t *p,
                      es_err_t *err)
{
    if (p->depth > EV_MAX_DEPTH)
        return es_set(err, ES_EINVAL, "%s: nested too deeply", ev_path_str(p));
    avro_type_t t = avro_value_get_type(v);
    if (t == AVRO_UNION)
        return ev_union_to_avro(defs, j, v, p, err);
    const char *want = ev_json_want(t);
    if (!want)
        return es_set(err, ES_EINTERNAL, "%s: unsupported avro type", ev_path_str(p));
    if (!ev_json_kind_fits(t, j))
        return ev_wrong(p, want, j, err);
    switch (t) {
    case AVRO_BYTES:
    case AVRO_FIXED:
        return ev_bytes_to_avro(j, v, p, err);
    case AVRO_ENUM:
        return ev_enum_to_avro(j, v, p, err);
    case AVRO_ARRAY:
    case AVRO_MAP:
        return ev_items_to_avro(defs, j, v, p, err);
    case AVRO_RECORD:
        return ev_record_to_avro(defs, j, v, p, err);
    default:
        return ev_scalar_to_avro(j, v, p, err);
    }
}

int ev_json_to_avro(const json_t *defaults, const json_t *j, avro_value_t *v, es_err_t *err)
{
    ev_path_t p = {.buf = "", .len = 0, .depth = 0};
    return ev_to_avro(defaults, j, v, &p, err) < 0 ? -1 : 0;
}
