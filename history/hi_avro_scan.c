/* hi_avro_scan — the export's fast path (see hi_avro.h): an event body re-encoded as the JSON path
 * would write its decoded value, without decoding it. The JSON path writes the canonical encoding
 * (minimal varints, one block per array or map, the first union branch of the value's JSON kind),
 * so the scan re-encodes each varint and refuses what that path would write differently or
 * refuse (a later branch of the same kind, several blocks, duplicate map keys, bad UTF-8,
 * non-finite numbers, trailing bytes): the caller then takes the JSON path. */
#include "es_mem.h"
#include "hi_avro.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HI_SCAN_DEPTH    48        /* deeper: the JSON path decides */
#define HI_SCAN_MAX_DUPS 64        /* a map with more entries: the JSON path checks its keys */
#define HI_SCAN_MAX_LEN  (1 << 24) /* the codec's allocation cap (EV_MAX_ALLOC) */

enum hi_kind {
    K_NULL,
    K_BOOL,
    K_INT,
    K_LONG,
    K_FLOAT,
    K_DOUBLE,
    K_STRING,
    K_BYTES,
    K_ENUM,
    K_ARRAY,
    K_MAP,
    K_UNION,
    K_RECORD
};

/* The JSON kind the codec maps a type to (what picks a union branch, hi_avro.c). */
enum hi_class { C_NULL, C_BOOL, C_INT, C_REAL, C_STRING, C_OBJECT, C_ARRAY };

/* What the scan takes from a field for the envelope (hi_prog_top). */
enum hi_role {
    R_NONE,
    R_METADATA,
    R_USER_ID,
    R_CUSTOMER_ID,
    R_EVENT_ID,
    R_AGGREGATE_ID,
    R_AGGREGATE_VERSION,
    R_OCCURRED_AT
};

struct hi_node {
    enum hi_kind k;
    size_t n;              /* record fields, union branches, enum symbols */
    struct hi_node **kids; /* fields' or branches' types; array and map: kids[0] */
    char **names;          /* record: the field names */
    bool *first_of_kind;   /* union: branch i is the first of its JSON kind */
};

struct hi_avro_prog {
    struct hi_node *root;
    struct hi_node **all; /* every node, for freeing (named types may recurse) */
    size_t n_all;
    json_t *named; /* full name -> index in all */
    bool *sealed;  /* per top-level field: sealed or the blind index (hi_envelope_schema) */
    bool *made_nullable;
    long *null_branch;       /* per top-level field: its union's null branch, -1 if none */
    enum hi_role *role;      /* per top-level field */
    enum hi_role *meta_role; /* per field of the metadata record */
    bool has_sealed;
};

/* --- compiling ------------------------------------------------------------------------------ */

static struct hi_node *hi_node_new(hi_avro_prog_t *p, enum hi_kind k)
{
    struct hi_node *n = xcalloc(1, sizeof *n);
    n->k = k;
    p->all = xrealloc(p->all, (p->n_all + 1) * sizeof *p->all);
    p->all[p->n_all++] = n;
    return n;
}

static enum hi_class hi_class_of(enum hi_kind k)
{
    static const enum hi_class c[] = {C_NULL,   C_BOOL,   C_INT,    C_INT,    C_REAL,
                                      C_REAL,   C_STRING, C_STRING, C_STRING, C_ARRAY,
                                      C_OBJECT, C_NULL,   C_OBJECT};
    return c[k];
}

/* Whether the JSON path's union choice takes a branch of kind k for a value of class c. */
static bool hi_takes(enum hi_kind k, enum hi_class c)
{
    if (k == K_FLOAT || k == K_DOUBLE)
        return c == C_INT || c == C_REAL;
    return k != K_UNION && hi_class_of(k) == c;
}

static const struct {
    const char *name;
    enum hi_kind k;
} hi_primitives[] = {{"null", K_NULL},     {"boolean", K_BOOL}, {"int", K_INT},
                     {"long", K_LONG},     {"float", K_FLOAT},  {"double", K_DOUBLE},
                     {"string", K_STRING}, {"bytes", K_BYTES}};

static struct hi_node *hi_compile(hi_avro_prog_t *p, const json_t *s, const char *ns,
                                  es_err_t *err);

static char *hi_scan_full_name(const char *name, const char *ns)
{
    return strchr(name, '.') || !ns || !*ns ? xstrdup(name) : xasprintf("%s.%s", ns, name);
}

static struct hi_node *hi_compile_name(hi_avro_prog_t *p, const char *name, const char *ns,
                                       es_err_t *err)
{
    for (size_t i = 0; i < sizeof hi_primitives / sizeof hi_primitives[0]; i++)
        if (!strcmp(name, hi_primitives[i].name))
            return hi_node_new(p, hi_primitives[i].k);
    char *full = hi_scan_full_name(name, ns);
    json_t *at = json_object_get(p->named, full);
    if (!at)
        at = json_object_get(p->named, name);
    free(full);
    if (!at)
        es_set(err, ES_EINVAL, "type '%s' is not defined", name);
    return at ? p->all[json_integer_value(at)] : NULL;
}

static struct hi_node *hi_compile_union(hi_avro_prog_t *p, const json_t *s, const char *ns,
                                        es_err_t *err)
{
    struct hi_node *n = hi_node_new(p, K_UNION);
    n->n = json_array_size(s);
    n->kids = xcalloc(n->n, sizeof *n->kids);
    n->first_of_kind = xcalloc(n->n, sizeof *n->first_of_kind);
    for (size_t i = 0; i < n->n; i++)
        if (!(n->kids[i] = hi_compile(p, json_array_get(s, i), ns, err)))
            return NULL;
    for (size_t i = 0; i < n->n; i++) {
        n->first_of_kind[i] = true;
        for (size_t j = 0; j < i; j++)
            if (hi_takes(n->kids[j]->k, hi_class_of(n->kids[i]->k)))
                n->first_of_kind[i] = false;
    }
    return n;
}

/* A named type's definition: registered under its full name before its fields (recursion). */
static struct hi_node *hi_compile_named(hi_avro_prog_t *p, const json_t *s, const char *type,
                                        const char *ns, es_err_t *err)
{
    if (!strcmp(type, "fixed")) {
        es_set(err, ES_EINVAL, "fixed is not supported");
        return NULL;
    }
    const char *name = json_string_value(json_object_get(s, "name"));
    const char *own = json_string_value(json_object_get(s, "namespace"));
    char *full = hi_scan_full_name(name ? name : "", own ? own : ns);
    struct hi_node *n = hi_node_new(p, strcmp(type, "enum") ? K_RECORD : K_ENUM);
    json_object_set_new(p->named, full, json_integer((json_int_t)p->n_all - 1));
    const char *dot = strrchr(full, '.');
    char *inner = dot ? xstrndup(full, (size_t)(dot - full)) : xstrdup("");
    json_t *list = json_object_get(s, n->k == K_ENUM ? "symbols" : "fields");
    n->n = json_array_size(list);
    if (n->k == K_RECORD) {
        n->kids = xcalloc(n->n, sizeof *n->kids);
        n->names = xcalloc(n->n, sizeof *n->names);
        for (size_t i = 0; i < n->n && n; i++) {
            json_t *f = json_array_get(list, i);
            n->names[i] = xstrdup(json_string_value(json_object_get(f, "name")));
            if (!(n->kids[i] = hi_compile(p, json_object_get(f, "type"), inner, err)))
                n = NULL;
        }
    }
    free(inner);
    free(full);
    return n;
}

static struct hi_node *hi_compile(hi_avro_prog_t *p, const json_t *s, const char *ns, es_err_t *err)
{
    if (json_is_string(s))
        return hi_compile_name(p, json_string_value(s), ns, err);
    if (json_is_array(s))
        return hi_compile_union(p, s, ns, err);
    const json_t *t = json_object_get(s, "type");
    const char *type = json_string_value(t);
    if (!type) {
        es_set(err, ES_EINVAL, "bad schema");
        return NULL;
    }
    if (!strcmp(type, "array") || !strcmp(type, "map")) {
        struct hi_node *n = hi_node_new(p, type[0] == 'a' ? K_ARRAY : K_MAP);
        n->n = 1;
        n->kids = xcalloc(1, sizeof *n->kids);
        n->kids[0] =
            hi_compile(p, json_object_get(s, type[0] == 'a' ? "items" : "values"), ns, err);
        return n->kids[0] ? n : NULL;
    }
    if (!strcmp(type, "record") || !strcmp(type, "error") || !strcmp(type, "enum") ||
        !strcmp(type, "fixed"))
        return hi_compile_named(p, s, type, ns, err);
    return hi_compile_name(p, type, ns, err); /* {"type": "long", "logicalType": ...} */
}

/* The roles of the metadata record's fields: what the envelope copies (string ids, integers). */
static enum hi_role *hi_meta_roles(const struct hi_node *m)
{
    enum hi_role *r = xcalloc(m->n + 1, sizeof *r);
    for (size_t i = 0; i < m->n; i++) {
        const char *name = m->names[i];
        enum hi_kind k = m->kids[i]->k;
        bool integer = k == K_INT || k == K_LONG;
        r[i] = k == K_STRING && !strcmp(name, "event_id")       ? R_EVENT_ID
               : k == K_STRING && !strcmp(name, "aggregate_id") ? R_AGGREGATE_ID
               : integer && !strcmp(name, "aggregate_version")  ? R_AGGREGATE_VERSION
               : integer && !strcmp(name, "occurred_at")        ? R_OCCURRED_AT
                                                                : R_NONE;
    }
    return r;
}

/* The top-level fields' roles, as hi_envelope_schema and the export's shredding see them. */
static void hi_prog_top(hi_avro_prog_t *p, const json_t *record)
{
    json_t *fields = json_object_get(record, "fields");
    size_t n = p->root->n;
    p->sealed = xcalloc(n, sizeof *p->sealed);
    p->made_nullable = xcalloc(n, sizeof *p->made_nullable);
    p->null_branch = xcalloc(n, sizeof *p->null_branch);
    p->role = xcalloc(n, sizeof *p->role);
    for (size_t i = 0; i < n; i++) {
        const char *name = p->root->names[i];
        size_t len = strlen(name);
        struct hi_node *t = p->root->kids[i];
        p->role[i] = !strcmp(name, "user_id")       ? R_USER_ID
                     : !strcmp(name, "customer_id") ? R_CUSTOMER_ID
                     : !strcmp(name, "metadata") && t->k == K_RECORD && !p->meta_role ? R_METADATA
                                                                                      : R_NONE;
        if (p->role[i] == R_METADATA)
            p->meta_role = hi_meta_roles(t);
        p->sealed[i] = (len > 4 && !strcmp(name + len - 4, "_enc")) || !strcmp(name, "email_index");
        p->made_nullable[i] =
            p->sealed[i] && !json_is_array(json_object_get(json_array_get(fields, i), "type"));
        p->null_branch[i] = -1;
        for (size_t b = 0; t->k == K_UNION && b < t->n && p->null_branch[i] < 0; b++)
            if (t->kids[b]->k == K_NULL)
                p->null_branch[i] = (long)b;
        p->has_sealed |= p->sealed[i];
    }
}

hi_avro_prog_t *hi_avro_prog_new(const json_t *record, es_err_t *err)
{
    hi_avro_prog_t *p = xcalloc(1, sizeof *p);
    p->named = json_object();
    p->root = hi_compile(p, record, "", err);
    if (p->root && (p->root->k != K_RECORD || p->root->n > HI_AVRO_MAX_FIELDS)) {
        es_set(err, ES_EINVAL, "not a record of at most %d fields", HI_AVRO_MAX_FIELDS);
        p->root = NULL;
    }
    if (!p->root) {
        hi_avro_prog_free(p);
        return NULL;
    }
    hi_prog_top(p, record);
    return p;
}

void hi_avro_prog_free(hi_avro_prog_t *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_all; i++) {
        struct hi_node *n = p->all[i];
        for (size_t f = 0; n->names && f < n->n; f++)
            free(n->names[f]);
        free(n->names);
        free(n->kids);
        free(n->first_of_kind);
        free(n);
    }
    free(p->all);
    json_decref(p->named);
    free(p->sealed);
    free(p->made_nullable);
    free(p->null_branch);
    free(p->role);
    free(p->meta_role);
    free(p);
}

bool hi_avro_prog_has_sealed(const hi_avro_prog_t *p)
{
    return p->has_sealed;
}

/* --- scanning --------------------------------------------------------------------------------- */

struct hi_scanner {
    const unsigned char *start, *p, *end;
    int depth;
    enum hi_kind kind; /* of the value scanned last (a union's: its branch's) */
    enum hi_class cls;
    hi_avro_span_t str; /* the last string's bytes */
    int64_t num;        /* the last int, long, count or index */
};

/* A varint in its minimal encoding (what hi_buf_long writes: no trailing zero group, and in a
 * tenth byte only bit 63), into s->num. */
static bool hi_scan_varint(struct hi_scanner *s)
{
    if (s->p < s->end && !(*s->p & 0x80)) { /* one byte (most lengths and counts): minimal */
        s->num = (int64_t)(*s->p >> 1) ^ -(int64_t)(*s->p & 1);
        s->p++;
        return true;
    }
    uint64_t z = 0;
    size_t i = 0;
    for (;; i++) {
        if (i == 10 || s->p + i >= s->end)
            return false;
        z |= (uint64_t)(s->p[i] & 0x7f) << (7 * i);
        if (!(s->p[i] & 0x80))
            break;
    }
    unsigned char last = s->p[i];
    s->num = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
    s->p += i + 1;
    return (i == 0 || last != 0) && (i < 9 || last == 1);
}

/* Valid UTF-8 as jansson takes it (no overlong form, surrogate or code point past U+10FFFF). */
static bool hi_utf8_ok(const unsigned char *p, size_t n, bool nul_ok)
{
    size_t i = 0;
    for (uint64_t w[4]; nul_ok && i + 32 <= n; i += 32) { /* 32 ASCII bytes at a time */
        memcpy(w, p + i, 32);
        if ((w[0] | w[1] | w[2] | w[3]) & 0x8080808080808080ULL)
            break;
    }
    if (nul_ok) { /* then 8 at a time, then the last few at once: all ASCII is the common case */
        uint64_t w;
        for (; i + 8 <= n && (memcpy(&w, p + i, 8), !(w & 0x8080808080808080ULL)); i += 8)
            ;
        unsigned char high = 0;
        for (size_t j = i; i + 8 > n && j < n; j++)
            high |= p[j];
        if (i + 8 > n && !(high & 0x80))
            return true;
    }
    while (i < n) {
        uint64_t w;
        if (nul_ok && i + 8 <= n && (memcpy(&w, p + i, 8), !(w & 0x8080808080808080ULL))) {
            i += 8; /* eight ASCII bytes */
            continue;
        }
        unsigned char c = p[i];
        size_t k = c < 0x80                 ? 1
                   : c >= 0xc2 && c <= 0xdf ? 2
                   : c >= 0xe0 && c <= 0xef ? 3
                   : c >= 0xf0 && c <= 0xf4 ? 4
                                            : 0;
        if (!k || i + k > n || (!c && !nul_ok))
            return false;
        for (size_t j = 1; j < k; j++)
            if ((p[i + j] & 0xc0) != 0x80)
                return false;
        if ((c == 0xe0 && p[i + 1] < 0xa0) || (c == 0xed && p[i + 1] > 0x9f) ||
            (c == 0xf0 && p[i + 1] < 0x90) || (c == 0xf4 && p[i + 1] > 0x8f))
            return false;
        i += k;
    }
    return true;
}

/* A length and that many bytes (a string: valid UTF-8), into s->str. */
static bool hi_scan_bytes(struct hi_scanner *s, bool string, bool nul_ok)
{
    if (!hi_scan_varint(s) || s->num < 0 || s->num > HI_SCAN_MAX_LEN || s->num > s->end - s->p)
        return false;
    s->str.off = (size_t)(s->p - s->start);
    s->str.len = (size_t)s->num;
    s->p += s->num;
    return !string || hi_utf8_ok(s->start + s->str.off, s->str.len, nul_ok);
}

static bool hi_scan_value(struct hi_scanner *s, const struct hi_node *n);

/* Whether a map's key (the last string) is new among its keys so far. */
static bool hi_key_new(const struct hi_scanner *s, const hi_avro_span_t *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (keys[i].len == s->str.len &&
            !memcmp(s->start + keys[i].off, s->start + s->str.off, s->str.len))
            return false;
    return true;
}

/* One block of items (the JSON path writes a single one) then the 0 that ends it. */
static bool hi_scan_items(struct hi_scanner *s, const struct hi_node *n)
{
    if (!hi_scan_varint(s) || s->num < 0)
        return false;
    int64_t count = s->num;
    if (!count)
        return true;
    if (n->k == K_MAP && count > HI_SCAN_MAX_DUPS)
        return false;
    hi_avro_span_t keys[HI_SCAN_MAX_DUPS];
    for (int64_t i = 0; i < count; i++) {
        if (n->k == K_MAP) { /* keys are C strings in avro-c and unique in JSON */
            if (!hi_scan_bytes(s, true, false) || !hi_key_new(s, keys, (size_t)i))
                return false;
            keys[i] = s->str;
        }
        if (!hi_scan_value(s, n->kids[0]))
            return false;
    }
    return hi_scan_varint(s) && s->num == 0;
}

static bool hi_scan_number(struct hi_scanner *s, size_t size)
{
    if ((size_t)(s->end - s->p) < size)
        return false;
    double d = 0;
    if (size == 4) {
        float f;
        memcpy(&f, s->p, 4);
        d = f;
    } else {
        memcpy(&d, s->p, 8);
    }
    s->p += size;
    return isfinite(d);
}

static bool hi_scan_record(struct hi_scanner *s, const struct hi_node *n)
{
    for (size_t i = 0; i < n->n; i++)
        if (!hi_scan_value(s, n->kids[i]))
            return false;
    return true;
}

static bool hi_scan_value(struct hi_scanner *s, const struct hi_node *n)
{
    if (++s->depth > HI_SCAN_DEPTH)
        return false;
    bool ok = true;
    switch (n->k) {
    case K_NULL:
        break;
    case K_BOOL:
        ok = s->p < s->end && *s->p <= 1;
        s->p++;
        break;
    case K_INT:
        ok = hi_scan_varint(s) && s->num >= INT32_MIN && s->num <= INT32_MAX;
        break;
    case K_LONG:
        ok = hi_scan_varint(s);
        break;
    case K_FLOAT:
    case K_DOUBLE:
        ok = hi_scan_number(s, n->k == K_FLOAT ? 4 : 8);
        break;
    case K_STRING:
    case K_BYTES:
        ok = hi_scan_bytes(s, n->k == K_STRING, true);
        break;
    case K_ENUM:
        ok = hi_scan_varint(s) && s->num >= 0 && (uint64_t)s->num < n->n;
        break;
    case K_ARRAY:
    case K_MAP:
        ok = hi_scan_items(s, n);
        break;
    case K_UNION:
        ok = hi_scan_varint(s) && s->num >= 0 && (uint64_t)s->num < n->n &&
             n->first_of_kind[s->num] && hi_scan_value(s, n->kids[s->num]);
        break;
    case K_RECORD:
        ok = hi_scan_record(s, n);
        break;
    }
    if (n->k != K_UNION) { /* a union's value is its branch's */
        s->kind = n->k;
        s->cls = hi_class_of(n->k);
    }
    s->depth--;
    return ok;
}

/* The envelope's fields from the event's metadata record (the first field of every event). */
static bool hi_scan_metadata(struct hi_scanner *s, const hi_avro_prog_t *p, const struct hi_node *n,
                             hi_avro_scan_t *out)
{
    unsigned found = 0;
    for (size_t i = 0; i < n->n; i++) {
        if (!hi_scan_value(s, n->kids[i]))
            return false;
        switch (p->meta_role[i]) {
        case R_EVENT_ID:
            out->event_id = s->str;
            break;
        case R_AGGREGATE_ID:
            out->aggregate_id = s->str;
            break;
        case R_AGGREGATE_VERSION:
            out->aggregate_version = s->num;
            break;
        case R_OCCURRED_AT:
            out->occurred_at = s->num;
            break;
        default:
            continue;
        }
        found |= 1u << p->meta_role[i];
    }
    return found == (1u << R_EVENT_ID | 1u << R_AGGREGATE_ID | 1u << R_AGGREGATE_VERSION |
                     1u << R_OCCURRED_AT);
}

/* The owner (hi_export.c: user_id, else customer_id, when a string): the field's value, scanned
 * last, as rank (0 user_id, 1 customer_id). */
static bool hi_scan_owner(const struct hi_scanner *s, int rank, hi_avro_scan_t *out)
{
    if (s->kind == K_BYTES || s->kind == K_ENUM)
        return false; /* an owner the JSON path reads as base64 or a symbol: it decides */
    if (s->kind == K_STRING && (!out->has_owner || rank < out->owner_rank)) {
        out->owner = s->str;
        out->owner_rank = rank;
        out->has_owner = true;
    }
    return true;
}

int hi_avro_scan(const hi_avro_prog_t *p, const void *body, size_t len, hi_avro_scan_t *out)
{
    struct hi_scanner s = {.start = body, .p = body, .end = (const unsigned char *)body + len};
    const struct hi_node *r = p->root;
    memset(out, 0, sizeof *out);
    out->body = body;
    bool meta = false;
    for (size_t i = 0; i < r->n; i++) {
        if (p->role[i] == R_METADATA) {
            if (!hi_scan_metadata(&s, p, r->kids[i], out))
                return -1;
            meta = true;
        } else if (!hi_scan_value(&s, r->kids[i])) {
            return -1;
        }
        if ((p->role[i] == R_USER_ID || p->role[i] == R_CUSTOMER_ID) &&
            !hi_scan_owner(&s, p->role[i] == R_USER_ID ? 0 : 1, out))
            return -1;
        out->has_value[i] = s.cls == C_STRING;
        out->field_end[i] = (size_t)(s.p - s.start);
    }
    return meta && s.p == s.end ? 0 : -1;
}

/* --- the envelope --------------------------------------------------------------------------- */

/* The envelope is written straight into room made for it once (hi_env_room): no capacity check
 * and no call a field, as hi_buf_put and hi_buf_long make. */
#define HI_VARINT_MAX 10

static unsigned char *hi_put_long(unsigned char *o, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (z > 0x7f) {
        *o++ = (unsigned char)(z | 0x80);
        z >>= 7;
    }
    *o++ = (unsigned char)z;
    return o;
}

static unsigned char *hi_put_str(unsigned char *o, const void *s, size_t n)
{
    o = hi_put_long(o, (int64_t)n);
    memcpy(o, s, n);
    return o + n;
}

/* Whether shredding top-level field i nulls a value (a sealed field or the index holding one). */
static bool hi_shreds(const hi_avro_prog_t *p, const hi_avro_scan_t *s, size_t i)
{
    return p->sealed[i] && s->has_value[i];
}

int hi_avro_put_envelope(hi_buf_t *out, const hi_avro_prog_t *p, const hi_avro_scan_t *s,
                         const hi_avro_where_t *w, bool shred)
{
    const struct hi_node *r = p->root;
    const unsigned char *b = s->body;
    size_t shredded = 0, names = 0, type_len = strlen(w->event_type), topic_len = strlen(w->topic);
    for (size_t i = 0; shred && i < r->n; i++) {
        if (hi_shreds(p, s, i) && !p->made_nullable[i] && p->null_branch[i] < 0)
            return -1; /* no null to write: the JSON path fails it */
        if (hi_shreds(p, s, i)) {
            shredded++;
            names += strlen(r->names[i]) + HI_VARINT_MAX;
        }
    }
    /* the most it can take: the strings, a varint for each number, length and union branch */
    size_t body = r->n ? s->field_end[r->n - 1] : 0;
    size_t most = s->event_id.len + type_len + s->aggregate_id.len + topic_len + names + body +
                  (16 + r->n) * HI_VARINT_MAX;
    hi_buf_reserve(out, out->len + most > out->cap ? (out->len + most) * 2 : out->cap);
    unsigned char *o = out->data + out->len;
    o = hi_put_str(o, b + s->event_id.off, s->event_id.len);
    o = hi_put_str(o, w->event_type, type_len);
    o = hi_put_str(o, b + s->aggregate_id.off, s->aggregate_id.len);
    o = hi_put_long(o, s->aggregate_version);
    o = hi_put_long(o, s->occurred_at);
    o = hi_put_str(o, w->topic, topic_len);
    o = hi_put_long(o, w->partition);
    o = hi_put_long(o, w->offset);
    o = hi_put_long(o, w->timestamp);
    if (shredded) {
        o = hi_put_long(o, (int64_t)shredded);
        for (size_t i = 0; i < r->n; i++)
            if (hi_shreds(p, s, i))
                o = hi_put_str(o, r->names[i], strlen(r->names[i]));
    }
    *o++ = 0; /* shredded's end */
    *o++ = 0; /* unsealed: none on this path */
    o = hi_put_long(o, (int64_t)w->branch);
    /* the body's fields as they came, a run of them at a time: a field shredded or made nullable
     * ends a run */
    size_t from = 0;
    for (size_t i = 0; i < r->n; i++) {
        size_t start = i ? s->field_end[i - 1] : 0;
        bool shredding = shred && hi_shreds(p, s, i);
        if (!shredding && !p->made_nullable[i])
            continue;
        memcpy(o, b + from, start - from);
        o += start - from;
        if (shredding) {
            o = hi_put_long(o, p->made_nullable[i] ? 0 : p->null_branch[i]);
            from = s->field_end[i];
        } else {
            *o++ = 2; /* the branch after null (1, zig-zag) */
            from = start;
        }
    }
    memcpy(o, b + from, body - from);
    o += body - from;
    out->len = (size_t)(o - out->data);
    return 0;
}
