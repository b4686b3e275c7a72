#include "hi_avro.h"
#include "es_mem.h"
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void hi_buf_put(hi_buf_t *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->data = xrealloc(b->data, b->cap);
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
}

void hi_buf_reserve(hi_buf_t *b, size_t cap)
{
    if (cap > b->cap) {
        b->cap = cap;
        b->data = xrealloc(b->data, b->cap);
    }
}

void hi_buf_long(hi_buf_t *b, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    unsigned char tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (unsigned char)((z & 0x7f) | (z > 0x7f ? 0x80 : 0));
        z >>= 7;
    } while (z);
    hi_buf_put(b, tmp, n);
}

void hi_buf_free(hi_buf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

static void hi_buf_str(hi_buf_t *b, const char *s, size_t n)
{
    hi_buf_long(b, (int64_t)n);
    hi_buf_put(b, s, n);
}

/* --- the envelope ------------------------------------------------------------------------- */

static const char hi_envelope_fields[] =
    "[{\"name\": \"event_id\", \"type\": {\"type\": \"string\", \"logicalType\": \"uuid\"}},"
    " {\"name\": \"event_type\", \"type\": \"string\", \"doc\": \"the payload's record full "
    "name\"},"
    " {\"name\": \"aggregate_id\", \"type\": \"string\"},"
    " {\"name\": \"aggregate_version\", \"type\": \"long\"},"
    " {\"name\": \"occurred_at\", \"type\": {\"type\": \"long\", \"logicalType\": "
    "\"timestamp-millis\"}},"
    " {\"name\": \"topic\", \"type\": \"string\"},"
    " {\"name\": \"partition\", \"type\": \"int\"},"
    " {\"name\": \"offset\", \"type\": \"long\"},"
    " {\"name\": \"timestamp\", \"type\": {\"type\": \"long\", \"logicalType\": "
    "\"timestamp-millis\"}, \"doc\": \"the Kafka record's\"},"
    " {\"name\": \"shredded\", \"type\": {\"type\": \"array\", \"items\": \"string\"}, "
    "\"default\": [], \"doc\": \"payload fields set to null: sealed with the key of a forgotten "
    "user\"},"
    " {\"name\": \"unsealed\", \"type\": {\"type\": \"array\", \"items\": \"string\"}, "
    "\"default\": [], \"doc\": \"payload fields opened with the user's key (--unseal), as the "
    "plaintext's bytes\"}]";

static const char *hi_full_name(const char *name, const char *ns, char *buf, size_t size)
{
    if (strchr(name, '.') || !ns || !*ns)
        return name;
    snprintf(buf, size, "%s.%s", ns, name);
    return buf;
}

static bool hi_is_named(const char *type)
{
    return type && (!strcmp(type, "record") || !strcmp(type, "enum") || !strcmp(type, "fixed") ||
                    !strcmp(type, "error"));
}

/* Walks schema (namespace ns): adds each named definition to names; with dedupe, a definition
 * already in names is replaced (in its parent, through *slot) by its full name. */
static void hi_walk(json_t **slot, const char *ns, json_t *names, bool dedupe)
{
    json_t *s = *slot;
    if (json_is_array(s)) {
        for (size_t i = 0; i < json_array_size(s); i++) {
            json_t *b = json_array_get(s, i);
            hi_walk(&b, ns, names, dedupe);
            if (b != json_array_get(s, i))
                json_array_set_new(s, i, b);
        }
        return;
    }
    if (!json_is_object(s))
        return;
    const char *type = json_string_value(json_object_get(s, "type"));
    if (!hi_is_named(type)) {
        json_t *inner = json_object_get(s, json_object_get(s, "items") ? "items" : "values");
        if (inner) {
            json_t *b = inner;
            hi_walk(&b, ns, names, dedupe);
            if (b != inner)
                json_object_set_new(s, json_object_get(s, "items") ? "items" : "values", b);
        } else if (json_is_object(json_object_get(s, "type")) ||
                   json_is_array(json_object_get(s, "type"))) {
            json_t *b = json_object_get(s, "type");
            hi_walk(&b, ns, names, dedupe);
        }
        return;
    }
    char buf[512];
    const char *name = json_string_value(json_object_get(s, "name"));
    const char *own_ns = json_string_value(json_object_get(s, "namespace"));
    const char *full = hi_full_name(name ? name : "", own_ns ? own_ns : ns, buf, sizeof buf);
    if (json_object_get(names, full)) {
        if (dedupe)
            *slot = json_string(full);
        return;
    }
    json_object_set(names, full, s);
    const char *dot = strrchr(full, '.');
    char *inner_ns = dot ? xstrndup(full, (size_t)(dot - full)) : xstrdup("");
    json_t *fields = json_object_get(s, "fields");
    for (size_t i = 0; i < json_array_size(fields); i++) {
        json_t *f = json_array_get(fields, i), *t = json_object_get(f, "type");
        json_t *b = t;
        hi_walk(&b, inner_ns, names, dedupe);
        if (b != t)
            json_object_set_new(f, "type", b);
    }
    free(inner_ns);
}

json_t *hi_avro_names(const json_t *root)
{
    json_t *names = json_object(), *r = (json_t *)root;
    hi_walk(&r, "", names, false);
    return names;
}

/* Makes the top-level sealed fields and the blind index of record r nullable. */
static void hi_nullable_sealed(json_t *r)
{
    json_t *fields = json_object_get(r, "fields");
    for (size_t i = 0; i < json_array_size(fields); i++) {
        json_t *f = json_array_get(fields, i);
        const char *name = json_string_value(json_object_get(f, "name"));
        size_t n = name ? strlen(name) : 0;
        json_t *t = json_object_get(f, "type");
        bool sealed = n > 4 && !strcmp(name + n - 4, "_enc");
        if ((!sealed && strcmp(name ? name : "", "email_index")) || json_is_array(t))
            continue;
        json_object_set_new(f, "type", json_pack("[sO]", "null", t));
        json_object_set_new(f, "default", json_null());
    }
}

json_t *hi_envelope_schema(const char *topic, const json_t *types)
{
    char ctx[128];
    snprintf(ctx, sizeof ctx, "%.*s", (int)strcspn(topic, "."), topic);
    for (char *p = ctx; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
            *p = '_';
    json_t *fields = json_loads(hi_envelope_fields, 0, NULL), *branches = json_array();
    for (size_t i = 0; i < json_array_size(types); i++) {
        json_t *b = json_deep_copy(json_array_get(types, i));
        hi_nullable_sealed(b);
        json_array_append_new(branches, b);
    }
    json_t *names = json_object(), *br = branches;
    hi_walk(&br, "", names, true);
    json_decref(names);
    json_array_append_new(fields, json_pack("{s:s, s:o}", "name", "payload", "type", branches));
    char *doc = xasprintf("One event of %s, as eventshop-history export writes it", topic);
    char *ns = xasprintf("eventshop.history.%s", ctx);
    json_t *env = json_pack("{s:s, s:s, s:s, s:s, s:o}", "type", "record", "name", "Envelope",
                            "namespace", ns, "doc", doc, "fields", fields);
    free(ns);
    free(doc);
    return env;
}

const char *hi_envelope_branch(const json_t *envelope, size_t i)
{
    json_t *fields = json_object_get(envelope, "fields");
    json_t *payload = json_array_get(fields, json_array_size(fields) - 1);
    json_t *b = json_array_get(json_object_get(payload, "type"), i);
    if (json_is_string(b))
        return json_string_value(b);
    static __thread char buf[512];
    const char *name = json_string_value(json_object_get(b, "name"));
    const char *ns = json_string_value(json_object_get(b, "namespace"));
    return name ? hi_full_name(name, ns, buf, sizeof buf) : NULL;
}

/* --- encoding ------------------------------------------------------------------------------ */

struct hi_enc {
    const json_t *names;
    hi_buf_t *out;
    es_err_t *err;
    long branch; /* >= 0: the branch the first union takes (the envelope's payload) */
    char path[256];
};

static int hi_enc_value(struct hi_enc *e, const json_t *schema, const char *ns, const json_t *v);

static int hi_enc_fail(struct hi_enc *e, const char *what)
{
    return es_set(e->err, ES_EINVAL, "%s: %s", e->path[0] ? e->path : "(value)", what);
}

/* Whether JSON value v is of the kind the codec maps Avro type t to (a union's branch choice). */
static bool hi_kind_matches(const char *t, const json_t *v)
{
    if (!strcmp(t, "null"))
        return json_is_null(v);
    if (!strcmp(t, "boolean"))
        return json_is_boolean(v);
    if (!strcmp(t, "int") || !strcmp(t, "long"))
        return json_is_integer(v);
    if (!strcmp(t, "float") || !strcmp(t, "double"))
        return json_is_number(v);
    if (!strcmp(t, "string") || !strcmp(t, "bytes") || !strcmp(t, "enum") || !strcmp(t, "fixed"))
        return json_is_string(v);
    if (!strcmp(t, "record") || !strcmp(t, "error") || !strcmp(t, "map"))
        return json_is_object(v);
    if (!strcmp(t, "array"))
        return json_is_array(v);
    return false;
}

/* The definition a type names ("long", a named type's name, or an object), and the type's word. */
static const json_t *hi_resolve(struct hi_enc *e, const json_t *schema, const char *ns,
                                const char **type)
{
    if (json_is_string(schema)) {
        char buf[512];
        const char *name = json_string_value(schema);
        const json_t *def = json_object_get(e->names, hi_full_name(name, ns, buf, sizeof buf));
        if (!def)
            def = json_object_get(e->names, name);
        if (def) {
            *type = json_string_value(json_object_get(def, "type"));
            return def;
        }
        *type = name;
        return schema;
    }
    const json_t *t = json_object_get(schema, "type");
    if (json_is_string(t) && !hi_is_named(json_string_value(t)) &&
        !json_object_get(schema, "items") && !json_object_get(schema, "values") &&
        !json_object_get(schema, "symbols"))
        return hi_resolve(e, t, ns, type); /* {"type": "long", "logicalType": ...} */
    *type = json_is_array(schema) ? "union" : json_string_value(t);
    return schema;
}

static int hi_enc_union(struct hi_enc *e, const json_t *schema, const char *ns, const json_t *v)
{
    if (e->branch >= 0) {
        size_t i = (size_t)e->branch;
        e->branch = -1;
        if (i >= json_array_size(schema))
            return hi_enc_fail(e, "no such branch");
        hi_buf_long(e->out, (int64_t)i);
        return hi_enc_value(e, json_array_get(schema, i), ns, v);
    }
    for (size_t i = 0; i < json_array_size(schema); i++) {
        const char *t = NULL;
        hi_resolve(e, json_array_get(schema, i), ns, &t);
        if (t && hi_kind_matches(t, v)) {
            hi_buf_long(e->out, (int64_t)i);
            return hi_enc_value(e, json_array_get(schema, i), ns, v);
        }
    }
    return hi_enc_fail(e, "no branch of the union takes this value");
}

static int hi_enc_record(struct hi_enc *e, const json_t *def, const json_t *v)
{
    char buf[512];
    const char *name = json_string_value(json_object_get(def, "name"));
    const char *own = json_string_value(json_object_get(def, "namespace"));
    const char *full = hi_full_name(name ? name : "", own ? own : "", buf, sizeof buf);
    const char *dot = strrchr(full, '.');
    char *ns = dot ? xstrndup(full, (size_t)(dot - full)) : xstrdup("");
    json_t *fields = json_object_get(def, "fields");
    size_t plen = strlen(e->path);
    int rc = 0;
    if (!json_is_object(v))
        rc = hi_enc_fail(e, "not an object");
    for (size_t i = 0; !rc && i < json_array_size(fields); i++) {
        json_t *f = json_array_get(fields, i);
        const char *fname = json_string_value(json_object_get(f, "name"));
        const json_t *fv = json_object_get(v, fname);
        if (!fv)
            fv = json_object_get(f, "default");
        snprintf(e->path + plen, sizeof e->path - plen, "%s%s", plen ? "." : "", fname);
        rc = fv ? hi_enc_value(e, json_object_get(f, "type"), ns, fv)
                : hi_enc_fail(e, "missing, without default");
        e->path[plen] = 0;
    }
    free(ns);
    return rc;
}

static int hi_enc_bytes(struct hi_enc *e, const json_t *v)
{
    size_t n = 0, len = json_string_length(v);
    unsigned char *raw = xmalloc(len / 4 * 3 + 3);
    int rc = sodium_base642bin(raw, len / 4 * 3 + 3, json_string_value(v), len, NULL, &n, NULL,
                               sodium_base64_VARIANT_ORIGINAL);
    if (!rc) {
        hi_buf_long(e->out, (int64_t)n);
        hi_buf_put(e->out, raw, n);
    }
    free(raw);
    return rc ? hi_enc_fail(e, "not base64") : 0;
}

static int hi_enc_enum(struct hi_enc *e, const json_t *def, const json_t *v)
{
    json_t *symbols = json_object_get(def, "symbols");
    for (size_t i = 0; i < json_array_size(symbols); i++)
        if (json_equal(json_array_get(symbols, i), v)) {
            hi_buf_long(e->out, (int64_t)i);
            return 0;
        }
    return hi_enc_fail(e, "not a symbol of the enum");
}

static int hi_enc_array(struct hi_enc *e, const json_t *def, const char *ns, const json_t *v)
{
    const bool map = !json_is_array(v);
    size_t n = map ? json_object_size(v) : json_array_size(v);
    if (n)
        hi_buf_long(e->out, (int64_t)n);
    if (map) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            hi_buf_str(e->out, k, strlen(k));
            if (hi_enc_value(e, json_object_get(def, "values"), ns, x))
                return -1;
        }
    } else {
        for (size_t i = 0; i < n; i++)
            if (hi_enc_value(e, json_object_get(def, "items"), ns, json_array_get(v, i)))
                return -1;
    }
    hi_buf_long(e->out, 0);
    return 0;
}

static int hi_enc_value(struct hi_enc *e, const json_t *schema, const char *ns, const json_t *v)
{
    const char *t = NULL;
    const json_t *def = hi_resolve(e, schema, ns, &t);
    if (!t)
        return hi_enc_fail(e, "bad schema");
    if (!strcmp(t, "union"))
        return hi_enc_union(e, def, ns, v);
    if (strcmp(t, "null") && !hi_kind_matches(t, v))
        return hi_enc_fail(e, "wrong kind of value");
    if (!strcmp(t, "null"))
        return json_is_null(v) ? 0 : hi_enc_fail(e, "not null");
    if (!strcmp(t, "boolean")) {
        unsigned char b = json_is_true(v);
        hi_buf_put(e->out, &b, 1);
    } else if (!strcmp(t, "int") || !strcmp(t, "long")) {
        hi_buf_long(e->out, json_integer_value(v));
    } else if (!strcmp(t, "float")) {
        float f = (float)json_number_value(v);
        hi_buf_put(e->out, &f, 4); /* little-endian hosts only (x86-64, arm64) */
    } else if (!strcmp(t, "double")) {
        double d = json_number_value(v);
        hi_buf_put(e->out, &d, 8);
    } else if (!strcmp(t, "string")) {
        hi_buf_str(e->out, json_string_value(v), json_string_length(v));
    } else if (!strcmp(t, "bytes")) {
        return hi_enc_bytes(e, v);
    } else if (!strcmp(t, "enum")) {
        return hi_enc_enum(e, def, v);
    } else if (!strcmp(t, "array") || !strcmp(t, "map")) {
        return hi_enc_array(e, def, ns, v);
    } else if (!strcmp(t, "record") || !strcmp(t, "error")) {
        return hi_enc_record(e, def, v);
    } else {
        return hi_enc_fail(e, "unsupported type (fixed)");
    }
    return 0;
}

int hi_avro_encode(const json_t *names, const json_t *schema, const json_t *value, hi_buf_t *out,
                   es_err_t *err)
{
    struct hi_enc e = {.names = names, .out = out, .err = err, .branch = -1};
    return hi_enc_value(&e, schema, "", value);
}

int hi_avro_encode_envelope(const json_t *names, const json_t *envelope, const json_t *value,
                            size_t branch, hi_buf_t *out, es_err_t *err)
{
    struct hi_enc e = {.names = names, .out = out, .err = err, .branch = (long)branch};
    return hi_enc_value(&e, envelope, "", value);
}

/* --- the container ------------------------------------------------------------------------ */

void hi_ocf_header(hi_buf_t *out, const char *schema_text, const unsigned char sync[16])
{
    hi_buf_put(out, "Obj\x01", 4);
    hi_buf_long(out, 2);
    hi_buf_str(out, "avro.schema", 11);
    hi_buf_str(out, schema_text, strlen(schema_text));
    hi_buf_str(out, "avro.codec", 10);
    hi_buf_str(out, "null", 4);
    hi_buf_long(out, 0);
    hi_buf_put(out, sync, 16);
}

void hi_ocf_block_start(hi_buf_t *out, int64_t count, size_t len)
{
    hi_buf_long(out, count);
    hi_buf_long(out, (int64_t)len);
}

void hi_ocf_block(hi_buf_t *out, int64_t count, const void *data, size_t len,
                  const unsigned char sync[16])
{
    hi_ocf_block_start(out, count, len);
    hi_buf_put(out, data, len);
    hi_buf_put(out, sync, 16);
}
