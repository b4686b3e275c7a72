/* ev_schema — .avsc loading, reference inlining and the validation avro-c leaves out. */
#include "ev_schema.h"

#include "es_mem.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

json_t *ev_schema_load_file(const char *path, const char *label, es_err_t *err)
{
    json_error_t jerr;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        es_set(err, ES_EINVAL, "schema file '%s': %s (line %d)", label, jerr.text, jerr.line);
        return NULL;
    }
    if (!json_is_object(j)) {
        es_set(err, ES_EINVAL, "schema file '%s': not a json object", label);
        json_decref(j);
        return NULL;
    }
    return j;
}

/* ---- inlining ---------------------------------------------------------------------------- */

static void ev_expand_node(json_t *node, const json_t *common, json_t *done);

/* If v names a common record not yet inlined, returns a new copy of its definition. */
static json_t *ev_expand_replacement(json_t *v, const json_t *common, json_t *done)
{
    if (!json_is_string(v))
        return NULL;
    const char *name = json_string_value(v);
    json_t *def = json_object_get(common, name);
    if (!def || json_object_get(done, name))
        return NULL;
    json_object_set_new(done, name, json_true());
    json_t *copy = json_deep_copy(def);
    ev_expand_node(copy, common, done);
    return copy;
}

static void ev_expand_slot_array(json_t *arr, const json_t *common, json_t *done)
{
    size_t i;
    json_t *el;
    json_array_foreach(arr, i, el)
    {
        json_t *r = ev_expand_replacement(el, common, done);
        if (r)
            json_array_set_new(arr, i, r);
        else
            ev_expand_node(el, common, done);
    }
}

/* Walks a type node: an object (record, array, map, ...) or a union array. */
static void ev_expand_node(json_t *node, const json_t *common, json_t *done)
{
    static const char *const slots[] = {"type", "items", "values"};
    if (json_is_array(node)) {
        ev_expand_slot_array(node, common, done);
        return;
    }
    if (!json_is_object(node))
        return;
    for (size_t k = 0; k < sizeof(slots) / sizeof(slots[0]); k++) {
        json_t *v = json_object_get(node, slots[k]);
        if (!v)
            continue;
        json_t *r = ev_expand_replacement(v, common, done);
        if (r)
            json_object_set_new(node, slots[k], r);
        else
            ev_expand_node(v, common, done);
    }
    json_t *fields = json_object_get(node, "fields");
    size_t i;
    json_t *f;
    json_array_foreach(fields, i, f)
    {
        ev_expand_node(f, common, done);
    }
}

void ev_schema_expand(json_t *schema, const json_t *common)
{
    json_t *done = json_object();
    /* the schema itself may be a common record: never inline it into itself */
    const char *name = json_string_value(json_object_get(schema, "name"));
    const char *ns = json_string_value(json_object_get(schema, "namespace"));
    if (name) {
        char *full = ns && *ns && !strchr(name, '.') ? xasprintf("%s.%s", ns, name) : xstrdup(name);
        json_object_set_new(done, full, json_true());
        free(full);
    }
    ev_expand_node(schema, common, done);
    json_decref(done);
}

/* ---- validation -------------------------------------------------------------------------- */

typedef struct ev_walk {
    const char *label;
    json_t *named;    /* full name -> definition (borrowed from the schema) */
    json_t *defaults; /* output */
    es_err_t *err;
} ev_walk_t;

static bool ev_is_primitive(const char *t)
{
    static const char *const prims[] = {"null",  "boolean", "int",   "long",
                                        "float", "double",  "bytes", "string"};
    for (size_t i = 0; i < sizeof(prims) / sizeof(prims[0]); i++)
        if (strcmp(t, prims[i]) == 0)
            return true;
    return false;
}

/* Full name of name in namespace ns, as a new string. */
static char *ev_full_name(const char *name, const char *ns)
{
    if (strchr(name, '.') || !ns || !*ns)
        return xstrdup(name);
    return xasprintf("%s.%s", ns, name);
}

/* The namespace a named definition gives its children, as a new string. */
static char *ev_child_ns(const char *full)
{
    const char *dot = strrchr(full, '.');
    return dot ? xstrndup(full, (size_t)(dot - full)) : xstrdup("");
}

static int ev_fail(ev_walk_t *w, const char *what, const char *culprit)
{
    return es_set(w->err, ES_EINVAL, "schema file '%s': %s '%s'", w->label, what, culprit);
}

/* Resolves a type node to its definition: a named reference gives the stored definition and its
 * namespace. Returns the node (borrowed) or NULL when unknown. *ns_out is new. */
static const json_t *ev_resolve(ev_walk_t *w, const json_t *type, const char *ns, char **ns_out)
{
    if (json_is_string(type) && !ev_is_primitive(json_string_value(type))) {
        char *full = ev_full_name(json_string_value(type), ns);
        const json_t *def = json_object_get(w->named, full);
        *ns_out = ev_child_ns(full);
        free(full);
        return def;
    }
    *ns_out = xstrdup(ns ? ns : "");
    return type;
}

/* The primitive or complex type word of a resolved node. */
static const char *ev_type_word(const json_t *t)
{
    if (json_is_string(t))
        return json_string_value(t);
    if (json_is_array(t))
        return "union";
    const json_t *tt = json_object_get(t, "type");
    if (json_is_string(tt))
        return json_string_value(tt);
    return NULL; /* {"type": {...}} wrapping */
}

static json_t *ev_default_of(ev_walk_t *w, const json_t *type, const json_t *d, const char *ns);

/* A primitive's default of type word k, or NULL when d does not fit (k is not a primitive:
 * NULL too). */
static json_t *ev_primitive_default(const char *k, const json_t *d)
{
    if (strcmp(k, "null") == 0)
        return json_is_null(d) ? json_null() : NULL;
    if (strcmp(k, "boolean") == 0 || strcmp(k, "string") == 0) {
        bool fits = k[0] == 'b' ? json_is_boolean(d) : json_is_string(d);
        return fits ? json_copy((json_t *)d) : NULL;
    }
    if (strcmp(k, "int") == 0) {
        bool fits = json_is_integer(d) && json_integer_value(d) >= INT32_MIN &&
                    json_integer_value(d) <= INT32_MAX;
        return fits ? json_integer(json_integer_value(d)) : NULL;
    }
    if (strcmp(k, "long") == 0)
        return json_is_integer(d) ? json_integer(json_integer_value(d)) : NULL;
    if (strcmp(k, "float") == 0 || strcmp(k, "double") == 0)
        return json_is_number(d) ? json_real(json_number_value(d)) : NULL;
    return NULL;
}

/* Bytes or a fixed of t: Avro writes byte defaults as a string of code points 0..255; the codec
 * maps them to base64. NULL when d is not such a string, or not of the fixed's size. */
static json_t *ev_bytes_default(const char *k, const json_t *t, const json_t *d)
{
    if (!json_is_string(d))
        return NULL;
    const unsigned char *s = (const unsigned char *)json_string_value(d);
    size_t n = json_string_length(d), o = 0;
    unsigned char *raw = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x80) {
            raw[o++] = s[i];
        } else if ((s[i] == 0xc2 || s[i] == 0xc3) && i + 1 < n) {
            raw[o++] = (unsigned char)(((s[i] & 0x03) << 6) | (s[i + 1] & 0x3f));
            i++;
        } else {
            free(raw);
            return NULL;
        }
    }
    json_t *out = NULL;
    json_t *size = json_object_get(t, "size");
    if (strcmp(k, "bytes") == 0 ||
        (json_is_integer(size) && (size_t)json_integer_value(size) == o)) {
        char *b64 = ev_base64_encode(raw, o);
        out = json_string(b64);
        free(b64);
    }
    free(raw);
    return out;
}

static json_t *ev_enum_default(const json_t *t, const json_t *d)
{
    json_t *out = NULL;
    size_t i;
    json_t *sym;
    json_array_foreach(json_object_get(t, "symbols"), i, sym)
    {
        if (json_is_string(d) && json_equal(sym, (json_t *)d))
            out = json_copy((json_t *)d);
    }
    return out;
}

/* An array's default: each element a default of the items' type. */
static json_t *ev_array_default(ev_walk_t *w, const json_t *t, const json_t *d, const char *ns)
{
    if (!json_is_array(d))
        return NULL;
    json_t *out = json_array();
    size_t i;
    json_t *el;
    json_array_foreach(d, i, el)
    {
        json_t *c = ev_default_of(w, json_object_get(t, "items"), el, ns);
        if (!c) {
            json_decref(out);
            return NULL;
        }
        json_array_append_new(out, c);
    }
    return out;
}

/* A map's default: each value a default of the values' type. */
static json_t *ev_map_default(ev_walk_t *w, const json_t *t, const json_t *d, const char *ns)
{
    if (!json_is_object(d))
        return NULL;
    json_t *out = json_object();
    const char *key;
    json_t *el;
    json_object_foreach((json_t *)d, key, el)
    {
        json_t *c = ev_default_of(w, json_object_get(t, "values"), el, ns);
        if (!c) {
            json_decref(out);
            return NULL;
        }
        json_object_set_new(out, key, c);
    }
    return out;
}

/* A record's default: every field given in d or by its own default, and nothing else in d. */
static json_t *ev_record_default(ev_walk_t *w, const json_t *t, const json_t *d, const char *ns)
{
    if (!json_is_object(d))
        return NULL;
    /* the record's own namespace applies to its fields */
    const char *name = json_string_value(json_object_get(t, "name"));
    const char *rns = json_string_value(json_object_get(t, "namespace"));
    char *full = ev_full_name(name ? name : "", rns ? rns : ns);
    char *fns = ev_child_ns(full);
    free(full);
    json_t *out = json_object();
    size_t i, matched = 0;
    json_t *f;
    json_array_foreach(json_object_get(t, "fields"), i, f)
    {
        const char *fname = json_string_value(json_object_get(f, "name"));
        json_t *fv = json_object_get(d, fname);
        json_t *c = NULL;
        if (fv) {
            matched++;
            c = ev_default_of(w, json_object_get(f, "type"), fv, fns);
        } else if (json_object_get(f, "default")) {
            c = ev_default_of(w, json_object_get(f, "type"), json_object_get(f, "default"), fns);
        }
        if (!c) {
            json_decref(out);
            out = NULL;
            break;
        }
        json_object_set_new(out, fname, c);
    }
    free(fns);
    if (out && matched != json_object_size(d)) {
        json_decref(out);
        out = NULL;
    }
    return out;
}

/* The default of a resolved type node t of type word k; ns is the namespace inside t. */
static json_t *ev_default_of_kind(ev_walk_t *w, const char *k, const json_t *t, const json_t *d,
                                  const char *ns)
{
    if (strcmp(k, "union") == 0) /* a union's default is its first branch's */
        return json_array_size(t) > 0 ? ev_default_of(w, json_array_get(t, 0), d, ns) : NULL;
    if (strcmp(k, "bytes") == 0 || strcmp(k, "fixed") == 0)
        return ev_bytes_default(k, t, d);
    if (strcmp(k, "enum") == 0)
        return ev_enum_default(t, d);
    if (strcmp(k, "array") == 0)
        return ev_array_default(w, t, d, ns);
    if (strcmp(k, "map") == 0)
        return ev_map_default(w, t, d, ns);
    if (strcmp(k, "record") == 0 || strcmp(k, "error") == 0)
        return ev_record_default(w, t, d, ns);
    return ev_primitive_default(k, d);
}

/* Returns the default converted to the JSON mapping (new reference), NULL when it does not
 * match the type. */
static json_t *ev_default_of(ev_walk_t *w, const json_t *type, const json_t *d, const char *ns)
{
    char *cns = NULL;
    json_t *out = NULL;
    const json_t *t = ev_resolve(w, type, ns, &cns);
    if (t && json_is_object(t) && json_is_object(json_object_get(t, "type"))) {
        out = ev_default_of(w, json_object_get(t, "type"), d, cns);
    } else if (t) {
        const char *k = ev_type_word(t);
        if (k)
            out = ev_default_of_kind(w, k, t, d, cns);
    }
    free(cns);
    return out;
}

static int ev_validate_type(ev_walk_t *w, const json_t *type, const char *ns);

static int ev_define(ev_walk_t *w, const json_t *t, const char *ns, char **full_out)
{
    const char *name = json_string_value(json_object_get(t, "name"));
    if (!name || !*name)
        return ev_fail(w, "named type without a name in", ev_type_word(t));
    const json_t *jns = json_object_get(t, "namespace");
    char *full = ev_full_name(name, json_is_string(jns) ? json_string_value(jns) : ns);
    if (json_object_get(w->named, full)) {
        ev_fail(w, "type defined twice", full);
        free(full);
        return -1;
    }
    json_object_set_new(w->named, full, json_copy((json_t *)t)); /* shallow: shares children */
    *full_out = full;
    return 0;
}

static int ev_validate_record(ev_walk_t *w, const json_t *t, const char *ns)
{
    int rc = -1;
    char *full = NULL, *cns = NULL;
    json_t *seen = json_object(), *defs = json_object();
    if (ev_define(w, t, ns, &full) < 0)
        goto out;
    cns = ev_child_ns(full);
    const json_t *fields = json_object_get(t, "fields");
    if (!json_is_array(fields)) {
        ev_fail(w, "record has no fields array", full);
        goto out;
    }
    size_t i;
    json_t *f;
    json_array_foreach(fields, i, f)
    {
        const char *fname = json_string_value(json_object_get(f, "name"));
        if (!fname || !*fname) {
            ev_fail(w, "field without a name in record", full);
            goto out;
        }
        if (json_object_get(seen, fname)) {
            es_set(w->err, ES_EINVAL, "schema file '%s': record '%s' has field '%s' twice",
                   w->label, full, fname);
            goto out;
        }
        json_object_set_new(seen, fname, json_true());
        const json_t *ftype = json_object_get(f, "type");
        if (!ftype) {
            es_set(w->err, ES_EINVAL, "schema file '%s': field '%s.%s' has no type", w->label, full,
                   fname);
            goto out;
        }
        if (ev_validate_type(w, ftype, cns) < 0)
            goto out;
        const json_t *d = json_object_get(f, "default");
        if (d) {
            json_t *nd = ev_default_of(w, ftype, d, cns);
            if (!nd) {
                es_set(w->err, ES_EINVAL,
                       "schema file '%s': default of field '%s.%s' does not match its type",
                       w->label, full, fname);
                goto out;
            }
            json_object_set_new(defs, fname, nd);
        }
    }
    if (!json_object_get(w->defaults, full))
        json_object_set(w->defaults, full, defs);
    rc = 0;
out:
    json_decref(seen);
    json_decref(defs);
    free(full);
    free(cns);
    return rc;
}

static int ev_validate_type(ev_walk_t *w, const json_t *type, const char *ns)
{
    if (json_is_string(type)) {
        const char *s = json_string_value(type);
        if (ev_is_primitive(s))
            return 0;
        char *full = ev_full_name(s, ns);
        bool known = json_object_get(w->named, full) != NULL;
        if (!known)
            ev_fail(w, "unknown type", full);
        free(full);
        return known ? 0 : -1;
    }
    if (json_is_array(type)) {
        size_t i;
        json_t *b;
        json_array_foreach(type, i, b)
        {
            if (json_is_array(b))
                return ev_fail(w, "union directly inside a union near", ns);
            if (ev_validate_type(w, b, ns) < 0)
                return -1;
        }
        return 0;
    }
    if (!json_is_object(type))
        return ev_fail(w, "type is neither a name, a union nor an object near", ns);
    const json_t *tt = json_object_get(type, "type");
    if (json_is_object(tt) || json_is_array(tt))
        return ev_validate_type(w, tt, ns);
    const char *k = json_string_value(tt);
    if (!k)
        return ev_fail(w, "object without a type near", ns);
    if (strcmp(k, "record") == 0 || strcmp(k, "error") == 0)
        return ev_validate_record(w, type, ns);
    if (strcmp(k, "enum") == 0) {
        char *full = NULL;
        if (ev_define(w, type, ns, &full) < 0)
            return -1;
        int rc = 0;
        json_t *seen = json_object();
        const json_t *syms = json_object_get(type, "symbols");
        size_t i;
        json_t *s;
        if (!json_is_array(syms) || json_array_size(syms) == 0)
            rc = ev_fail(w, "enum without symbols", full);
        json_array_foreach(syms, i, s)
        {
            if (rc < 0)
                break;
            if (!json_is_string(s)) {
                rc = ev_fail(w, "enum has a symbol that is not a string", full);
            } else if (json_object_get(seen, json_string_value(s))) {
                es_set(w->err, ES_EINVAL, "schema file '%s': enum '%s' has symbol '%s' twice",
                       w->label, full, json_string_value(s));
                rc = -1;
            }
            json_object_set_new(seen, json_string_value(s) ? json_string_value(s) : "",
                                json_true());
        }
        json_decref(seen);
        free(full);
        return rc;
    }
    if (strcmp(k, "fixed") == 0) {
        char *full = NULL;
        if (ev_define(w, type, ns, &full) < 0)
            return -1;
        const json_t *size = json_object_get(type, "size");
        int rc = 0;
        if (!json_is_integer(size) || json_integer_value(size) < 0)
            rc = ev_fail(w, "fixed without a valid size", full);
        free(full);
        return rc;
    }
    if (strcmp(k, "array") == 0) {
        const json_t *items = json_object_get(type, "items");
        return items ? ev_validate_type(w, items, ns) : ev_fail(w, "array without items near", ns);
    }
    if (strcmp(k, "map") == 0) {
        const json_t *values = json_object_get(type, "values");
        return values ? ev_validate_type(w, values, ns) : ev_fail(w, "map without values near", ns);
    }
    if (ev_is_primitive(k))
        return 0;
    /* a named reference in the "type" slot: {"type": "eventshop.Metadata"} */
    return ev_validate_type(w, tt, ns);
}

int ev_schema_validate(const json_t *schema, const char *label, json_t *defaults, char **full_name,
                       es_err_t *err)
{
    ev_walk_t w = {.label = label, .named = json_object(), .defaults = defaults, .err = err};
    int rc = -1;
    const char *k = json_string_value(json_object_get(schema, "type"));
    if (!k || strcmp(k, "record") != 0) {
        es_set(err, ES_EINVAL, "schema file '%s': top level is not a record", label);
        goto out;
    }
    if (ev_validate_type(&w, schema, "") < 0)
        goto out;
    const char *name = json_string_value(json_object_get(schema, "name"));
    const char *ns = json_string_value(json_object_get(schema, "namespace"));
    *full_name = ev_full_name(name, ns);
    rc = 0;
out:
    json_decref(w.named);
    return rc;
}

/* ---- base64 ------------------------------------------------------------------------------ */

static const char ev_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *ev_base64_encode(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    char *out = xmalloc((len + 2) / 3 * 4 + 1), *o = out;
    size_t i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = ev_b64[v >> 18];
        *o++ = ev_b64[(v >> 12) & 63];
        *o++ = ev_b64[(v >> 6) & 63];
        *o++ = ev_b64[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0);
        *o++ = ev_b64[v >> 18];
        *o++ = ev_b64[(v >> 12) & 63];
        *o++ = i + 1 < len ? ev_b64[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

static int ev_b64_val(char c)
{
    const char *p = c ? strchr(ev_b64, c) : NULL;
    return p ? (int)(p - ev_b64) : -1;
}

void *ev_base64_decode(const char *s, size_t slen, size_t *len)
{
    if (slen % 4 != 0)
        return NULL;
    unsigned char *out = xmalloc(slen / 4 * 3 + 1);
    size_t o = 0;
    for (size_t i = 0; i < slen; i += 4) {
        int a = ev_b64_val(s[i]), b = ev_b64_val(s[i + 1]);
        bool last = i + 4 == slen;
        bool pad2 = last && s[i + 2] == '=' && s[i + 3] == '=';
        bool pad1 = last && !pad2 && s[i + 3] == '=';
        int c = pad2 ? 0 : ev_b64_val(s[i + 2]);
        int d = pad1 || pad2 ? 0 : ev_b64_val(s[i + 3]);
        if (a < 0 || b < 0 || c < 0 || d < 0) {
            free(out);
            return NULL;
        }
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        out[o++] = (unsigned char)(v >> 16);
        if (!pad2)
            out[o++] = (unsigned char)(v >> 8);
        if (!pad1 && !pad2)
            out[o++] = (unsigned char)v;
    }
    *len = o;
    return out;
}
