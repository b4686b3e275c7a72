#include "sr_compat.h"
#include "es_mem.h"
#include <avro.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_DEPTH 64 /* nesting cap: keeps the recursive checks' stack small */

typedef enum kind {
    K_NULL,
    K_BOOLEAN,
    K_INT,
    K_LONG,
    K_FLOAT,
    K_DOUBLE,
    K_BYTES,
    K_STRING,
    K_RECORD,
    K_ENUM,
    K_ARRAY,
    K_MAP,
    K_FIXED,
    K_UNION,
    K_BAD,
} kind_t;

static const char *const kind_names[] = {"null",   "boolean", "int",    "long",   "float",
                                         "double", "bytes",   "string", "record", "enum",
                                         "array",  "map",     "fixed",  "union",  "invalid"};

/* A named type (record, enum, fixed) of one schema. */
struct named {
    char *full;   /* "eventshop.catalog.ProductListed" */
    char *ns;     /* the namespace its own fields' names resolve in */
    json_t *node; /* borrowed from the schema's root */
};

struct sr_schema {
    json_t *root;
    char *text;
    char *canon;
    struct named *names;
    size_t n_names, cap_names;
};

/* A schema node with its named-type references resolved. */
typedef struct tview {
    kind_t kind;
    json_t *node;     /* object, union array, or NULL for a bare primitive name */
    const char *ns;   /* namespace for names inside node */
    const char *full; /* full name of a named type, else NULL */
} tview_t;

static const char *const level_names[] = {
    "NONE", "BACKWARD",       "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE",
    "FULL", "FULL_TRANSITIVE"};

int sr_level_parse(const char *name)
{
    for (size_t i = 0; name && i < sizeof level_names / sizeof *level_names; i++)
        if (strcasecmp(name, level_names[i]) == 0)
            return (int)i;
    return -1;
}

const char *sr_level_name(sr_level_t level)
{
    if ((unsigned)level >= sizeof level_names / sizeof *level_names)
        return "NONE";
    return level_names[level];
}

static kind_t primitive_kind(const char *name)
{
    for (int k = K_NULL; k <= K_STRING; k++)
        if (strcmp(name, kind_names[k]) == 0)
            return (kind_t)k;
    return K_BAD;
}

static bool is_name_part(const char *s, size_t n)
{
    if (n == 0 || !(s[0] == '_' || (s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!(c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

/* A dotted name ("a.b.C") or, with allow_empty, the empty namespace. */
static bool is_valid_name(const char *s, bool allow_empty)
{
    if (!*s)
        return allow_empty;
    for (;;) {
        const char *dot = strchr(s, '.');
        size_t n = dot ? (size_t)(dot - s) : strlen(s);
        if (!is_name_part(s, n))
            return false;
        if (!dot)
            return true;
        s = dot + 1;
    }
}

static const char *last_part(const char *full)
{
    const char *dot = strrchr(full, '.');
    return dot ? dot + 1 : full;
}

static struct named *find_named(const sr_schema_t *s, const char *full)
{
    for (size_t i = 0; i < s->n_names; i++)
        if (strcmp(s->names[i].full, full) == 0)
            return &s->names[i];
    return NULL;
}

static struct named *find_named_node(const sr_schema_t *s, const json_t *node)
{
    for (size_t i = 0; i < s->n_names; i++)
        if (s->names[i].node == node)
            return &s->names[i];
    return NULL;
}

/* A reference "Foo" or "a.b.Foo" seen in namespace ns. */
static struct named *resolve_name(const sr_schema_t *s, const char *name, const char *ns)
{
    if (!strchr(name, '.') && ns && *ns) {
        char *full = xasprintf("%s.%s", ns, name);
        struct named *n = find_named(s, full);
        free(full);
        if (n)
            return n;
    }
    return find_named(s, name);
}

static kind_t named_kind(const json_t *node)
{
    const char *t = json_string_value(json_object_get(node, "type"));
    if (!t)
        return K_BAD;
    if (strcmp(t, "record") == 0 || strcmp(t, "error") == 0)
        return K_RECORD;
    if (strcmp(t, "enum") == 0)
        return K_ENUM;
    if (strcmp(t, "fixed") == 0)
        return K_FIXED;
    return K_BAD;
}

static tview_t resolve(const sr_schema_t *s, json_t *node, const char *ns, int depth)
{
    tview_t v = {K_BAD, node, ns, NULL};
    if (depth > MAX_DEPTH)
        return v;
    if (json_is_array(node)) {
        v.kind = K_UNION;
        return v;
    }
    if (json_is_string(node)) {
        const char *name = json_string_value(node);
        v.kind = primitive_kind(name);
        v.node = NULL;
        if (v.kind != K_BAD)
            return v;
        struct named *n = resolve_name(s, name, ns);
        if (n) {
            v.kind = named_kind(n->node);
            v.node = n->node;
            v.ns = n->ns;
            v.full = n->full;
        }
        return v;
    }
    json_t *t = json_object_get(node, "type");
    if (json_is_string(t)) {
        const char *tn = json_string_value(t);
        if ((v.kind = primitive_kind(tn)) != K_BAD)
            return v;
        if (strcmp(tn, "array") == 0) {
            v.kind = K_ARRAY;
            return v;
        }
        if (strcmp(tn, "map") == 0) {
            v.kind = K_MAP;
            return v;
        }
        if (named_kind(node) != K_BAD) {
            struct named *n = find_named_node(s, node);
            if (n) {
                v.kind = named_kind(node);
                v.ns = n->ns;
                v.full = n->full;
            }
            return v;
        }
    }
    if (t)
        return resolve(s, t, ns, depth + 1);
    return v;
}

/* ---- validation ---------------------------------------------------------------------------- */

static void add_named(sr_schema_t *s, char *full, char *ns, json_t *node)
{
    if (s->n_names == s->cap_names) {
        s->cap_names = s->cap_names ? 2 * s->cap_names : 8;
        s->names = xrealloc(s->names, s->cap_names * sizeof *s->names);
    }
    s->names[s->n_names++] = (struct named){full, ns, node};
}

static bool default_ok(const sr_schema_t *s, json_t *type, const char *ns, json_t *value, int depth)
{
    tview_t v = resolve(s, type, ns, depth);
    if (depth > MAX_DEPTH)
        return false;
    switch (v.kind) {
    case K_NULL:
        return json_is_null(value);
    case K_BOOLEAN:
        return json_is_boolean(value);
    case K_INT:
        return json_is_integer(value) && json_integer_value(value) >= INT32_MIN &&
               json_integer_value(value) <= INT32_MAX;
    case K_LONG:
        return json_is_integer(value);
    case K_FLOAT:
    case K_DOUBLE:
        return json_is_number(value);
    case K_BYTES:
    case K_STRING:
    case K_FIXED:
        return json_is_string(value);
    case K_ENUM: {
        json_t *sym;
        size_t i;
        if (!json_is_string(value))
            return false;
        json_array_foreach(json_object_get(v.node, "symbols"), i, sym)
        {
            if (json_equal(sym, value))
                return true;
        }
        return false;
    }
    case K_ARRAY: {
        json_t *item;
        size_t i;
        if (!json_is_array(value))
            return false;
        json_array_foreach(value, i, item)
        {
            if (!default_ok(s, json_object_get(v.node, "items"), v.ns, item, depth + 1))
                return false;
        }
        return true;
    }
    case K_MAP: {
        json_t *item;
        const char *k;
        if (!json_is_object(value))
            return false;
        json_object_foreach(value, k, item)
        {
            if (!default_ok(s, json_object_get(v.node, "values"), v.ns, item, depth + 1))
                return false;
        }
        return true;
    }
    case K_RECORD: {
        json_t *f;
        size_t i;
        if (!json_is_object(value))
            return false;
        json_array_foreach(json_object_get(v.node, "fields"), i, f)
        {
            json_t *fv = json_object_get(value, json_string_value(json_object_get(f, "name")));
            if (fv ? !default_ok(s, json_object_get(f, "type"), v.ns, fv, depth + 1)
                   : !json_object_get(f, "default"))
                return false;
        }
        return true;
    }
    case K_UNION: /* a union's default belongs to its first branch (Avro specification) */
        return json_array_size(v.node) > 0 &&
               default_ok(s, json_array_get(v.node, 0), v.ns, value, depth + 1);
    default:
        return false;
    }
}

static int walk(sr_schema_t *s, json_t *node, const char *ns, int depth, es_err_t *err);

/* A record, enum or fixed definition: register its name, then check its body. */
static int walk_named(sr_schema_t *s, json_t *node, const char *type, const char *ns, int depth,
                      es_err_t *err)
{
    const char *name = json_string_value(json_object_get(node, "name"));
    json_t *nsj = json_object_get(node, "namespace");
    if (!name)
        return es_set(err, ES_EINVAL, "%s without a name", type);
    if (nsj && !json_is_string(nsj) && !json_is_null(nsj))
        return es_set(err, ES_EINVAL, "namespace of '%s' is not a string", name);
    const char *nsa = json_string_value(nsj);
    if (!is_valid_name(name, false) || (nsa && !is_valid_name(nsa, true)))
        return es_set(err, ES_EINVAL, "invalid name '%s%s%s'", nsa ? nsa : "",
                      nsa && *nsa ? "." : "", name);
    char *full, *own_ns;
    if (strchr(name, '.')) {
        full = xstrdup(name);
        own_ns = xstrndup(name, (size_t)(strrchr(name, '.') - name));
    } else {
        const char *base = nsa ? nsa : (ns ? ns : "");
        full = *base ? xasprintf("%s.%s", base, name) : xstrdup(name);
        own_ns = xstrdup(base);
    }
    if (primitive_kind(last_part(full)) != K_BAD) {
        es_set(err, ES_EINVAL, "name '%s' is a primitive type", full);
        free(full);
        free(own_ns);
        return -1;
    }
    if (find_named(s, full)) {
        es_set(err, ES_EINVAL, "type '%s' is defined twice", full);
        free(full);
        free(own_ns);
        return -1;
    }
    add_named(s, full, own_ns, node);
    json_t *aliases = json_object_get(node, "aliases");
    if (aliases && !json_is_array(aliases))
        return es_set(err, ES_EINVAL, "aliases of '%s' are not an array", full);

    if (strcmp(type, "fixed") == 0) {
        json_t *size = json_object_get(node, "size");
        if (!json_is_integer(size) || json_integer_value(size) < 0)
            return es_set(err, ES_EINVAL, "fixed '%s' needs a non-negative integer size", full);
        return 0;
    }
    if (strcmp(type, "enum") == 0) {
        json_t *syms = json_object_get(node, "symbols"), *sym, *other;
        size_t i, j;
        if (!json_is_array(syms))
            return es_set(err, ES_EINVAL, "enum '%s' needs an array of symbols", full);
        json_array_foreach(syms, i, sym)
        {
            if (!json_is_string(sym) ||
                !is_name_part(json_string_value(sym), strlen(json_string_value(sym))))
                return es_set(err, ES_EINVAL, "enum '%s' has an invalid symbol", full);
            json_array_foreach(syms, j, other)
            {
                if (j < i && json_equal(sym, other))
                    return es_set(err, ES_EINVAL, "enum '%s' repeats symbol '%s'", full,
                                  json_string_value(sym));
            }
        }
        json_t *def = json_object_get(node, "default");
        if (def && !default_ok(s, node, ns, def, depth))
            return es_set(err, ES_EINVAL, "default of enum '%s' is not one of its symbols", full);
        return 0;
    }
    json_t *fields = json_object_get(node, "fields"), *f, *g;
    size_t i, j;
    if (!json_is_array(fields))
        return es_set(err, ES_EINVAL, "record '%s' needs an array of fields", full);
    json_array_foreach(fields, i, f)
    {
        const char *fname = json_string_value(json_object_get(f, "name"));
        if (!json_is_object(f) || !fname)
            return es_set(err, ES_EINVAL, "record '%s' has a field without a name", full);
        if (!is_name_part(fname, strlen(fname)))
            return es_set(err, ES_EINVAL, "record '%s' has an invalid field name '%s'", full,
                          fname);
        json_array_foreach(fields, j, g)
        {
            if (j < i && strcmp(fname, json_string_value(json_object_get(g, "name"))) == 0)
                return es_set(err, ES_EINVAL, "record '%s' has two fields named '%s'", full, fname);
        }
        json_t *ftype = json_object_get(f, "type");
        if (!ftype)
            return es_set(err, ES_EINVAL, "field '%s.%s' has no type", full, fname);
        if (walk(s, ftype, own_ns, depth + 1, err))
            return -1;
        json_t *def = json_object_get(f, "default");
        if (def && !default_ok(s, ftype, own_ns, def, depth + 1))
            return es_set(err, ES_EINVAL, "default of field '%s.%s' does not match its type", full,
                          fname);
    }
    return 0;
}

static bool same_branch(const sr_schema_t *s, json_t *a, json_t *b, const char *ns)
{
    tview_t va = resolve(s, a, ns, 0), vb = resolve(s, b, ns, 0);
    if (va.kind != vb.kind)
        return false;
    return !va.full || !vb.full || strcmp(va.full, vb.full) == 0;
}

static int walk(sr_schema_t *s, json_t *node, const char *ns, int depth, es_err_t *err)
{
    if (depth > MAX_DEPTH)
        return es_set(err, ES_EINVAL, "schema nests deeper than %d levels", MAX_DEPTH);
    if (json_is_string(node)) {
        const char *name = json_string_value(node);
        if (primitive_kind(name) == K_BAD && !resolve_name(s, name, ns))
            return es_set(err, ES_EINVAL, "unknown type '%s'", name);
        return 0;
    }
    if (json_is_array(node)) {
        json_t *b;
        size_t i;
        json_array_foreach(node, i, b)
        {
            if (json_is_array(b))
                return es_set(err, ES_EINVAL, "union directly inside a union");
            if (walk(s, b, ns, depth + 1, err))
                return -1;
            for (size_t j = 0; j < i; j++) {
                if (same_branch(s, json_array_get(node, j), b, ns)) {
                    tview_t v = resolve(s, b, ns, 0);
                    return es_set(err, ES_EINVAL, "union repeats type '%s'",
                                  v.full ? v.full : kind_names[v.kind]);
                }
            }
        }
        return 0;
    }
    if (!json_is_object(node))
        return es_set(err, ES_EINVAL, "a schema is a JSON string, object or array");
    json_t *t = json_object_get(node, "type");
    if (!t)
        return es_set(err, ES_EINVAL, "object without a 'type'");
    if (!json_is_string(t))
        return walk(s, t, ns, depth + 1, err);
    const char *tn = json_string_value(t);
    if (primitive_kind(tn) != K_BAD)
        return 0;
    if (strcmp(tn, "record") == 0 || strcmp(tn, "error") == 0 || strcmp(tn, "enum") == 0 ||
        strcmp(tn, "fixed") == 0)
        return walk_named(s, node, tn, ns, depth, err);
    if (strcmp(tn, "array") == 0 || strcmp(tn, "map") == 0) {
        const char *attr = tn[0] == 'a' ? "items" : "values";
        json_t *sub = json_object_get(node, attr);
        if (!sub)
            return es_set(err, ES_EINVAL, "%s without '%s'", tn, attr);
        return walk(s, sub, ns, depth + 1, err);
    }
    if (!resolve_name(s, tn, ns))
        return es_set(err, ES_EINVAL, "unknown type '%s'", tn);
    return 0;
}

static pthread_mutex_t avro_lock = PTHREAD_MUTEX_INITIALIZER;

sr_schema_t *sr_schema_parse(const char *text, size_t len, es_err_t *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!root) {
        es_set(err, ES_EINVAL, "schema is not JSON: %s at line %d", jerr.text, jerr.line);
        return NULL;
    }
    sr_schema_t *s = xcalloc(1, sizeof *s);
    s->root = root;
    if (walk(s, root, "", 0, err))
        goto fail;
    /* avro-c's own parser too: whatever it refuses, the codec could not use */
    avro_schema_t as = NULL;
    pthread_mutex_lock(&avro_lock);
    if (avro_schema_from_json_length(text, len, &as)) {
        es_set(err, ES_EINVAL, "avro: %s", avro_strerror());
        as = NULL;
    }
    pthread_mutex_unlock(&avro_lock);
    if (!as)
        goto fail;
    avro_schema_decref(as);
    s->text = json_dumps(root, JSON_COMPACT | JSON_ENCODE_ANY);
    s->canon = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    return s;
fail:
    sr_schema_free(s);
    return NULL;
}

void sr_schema_free(sr_schema_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_names; i++) {
        free(s->names[i].full);
        free(s->names[i].ns);
    }
    free(s->names);
    free(s->text);
    free(s->canon);
    json_decref(s->root);
    free(s);
}

const char *sr_schema_text(const sr_schema_t *s)
{
    return s->text;
}

const char *sr_schema_canonical(const sr_schema_t *s)
{
    return s->canon;
}

/* ---- compatibility ------------------------------------------------------------------------- */

struct cctx {
    const sr_schema_t *rs, *ws;
    json_t *messages; /* NULL while probing union branches */
    const json_t *seen[MAX_DEPTH][2];
    int n_seen;
};

static void report(struct cctx *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report(struct cctx *c, const char *path, const char *fmt, ...)
{
    if (!c->messages)
        return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char *m = xasprintf("%s (at '%s')", buf, *path ? path : "/");
    json_array_append_new(c->messages, json_string(m));
    free(m);
}

static const char *type_name(const tview_t *v)
{
    return v->full ? v->full : kind_names[v->kind];
}

/* Unqualified names equal (the Avro specification's rule), or an alias of the reader names
 * the writer's full name. */
static bool names_match(const tview_t *r, const tview_t *w)
{
    if (strcmp(last_part(r->full), last_part(w->full)) == 0)
        return true;
    json_t *a;
    size_t i;
    json_array_foreach(json_object_get(r->node, "aliases"), i, a)
    {
        const char *alias = json_string_value(a);
        if (!alias)
            continue;
        char *full =
            strchr(alias, '.') || !*r->ns ? xstrdup(alias) : xasprintf("%s.%s", r->ns, alias);
        bool eq = strcmp(full, w->full) == 0;
        free(full);
        if (eq)
            return true;
    }
    return false;
}

static bool promotable(kind_t w, kind_t r)
{
    switch (w) {
    case K_INT:
        return r == K_LONG || r == K_FLOAT || r == K_DOUBLE;
    case K_LONG:
        return r == K_FLOAT || r == K_DOUBLE;
    case K_FLOAT:
        return r == K_DOUBLE;
    case K_STRING:
        return r == K_BYTES;
    case K_BYTES:
        return r == K_STRING;
    default:
        return false;
    }
}

static bool compat(struct cctx *c, tview_t r, tview_t w, const char *path, int depth);

static json_t *find_writer_field(json_t *wfields, json_t *rf)
{
    const char *name = json_string_value(json_object_get(rf, "name"));
    json_t *wf, *a;
    size_t i, j;
    json_array_foreach(wfields, i, wf)
    {
        if (strcmp(name, json_string_value(json_object_get(wf, "name"))) == 0)
            return wf;
    }
    json_array_foreach(json_object_get(rf, "aliases"), j, a)
    {
        json_array_foreach(wfields, i, wf)
        {
            if (json_equal(a, json_object_get(wf, "name")))
                return wf;
        }
    }
    return NULL;
}

static bool compat_record(struct cctx *c, tview_t r, tview_t w, const char *path, int depth)
{
    for (int i = 0; i < c->n_seen; i++)
        if (c->seen[i][0] == r.node && c->seen[i][1] == w.node)
            return true; /* a recursive type: already being compared further up */
    if (c->n_seen == MAX_DEPTH)
        return true;
    c->seen[c->n_seen][0] = r.node;
    c->seen[c->n_seen][1] = w.node;
    c->n_seen++;
    bool ok = true;
    json_t *wfields = json_object_get(w.node, "fields"), *rf;
    size_t i;
    json_array_foreach(json_object_get(r.node, "fields"), i, rf)
    {
        const char *name = json_string_value(json_object_get(rf, "name"));
        char sub[512];
        snprintf(sub, sizeof sub, "%s/%s", path, name);
        json_t *wf = find_writer_field(wfields, rf);
        if (!wf) {
            if (!json_object_get(rf, "default")) {
                report(c, path, "reader field '%s' has no default and is missing in the writer",
                       name);
                ok = false;
            }
            continue;
        }
        tview_t rt = resolve(c->rs, json_object_get(rf, "type"), r.ns, depth);
        tview_t wt = resolve(c->ws, json_object_get(wf, "type"), w.ns, depth);
        if (!compat(c, rt, wt, sub, depth + 1))
            ok = false;
    }
    c->n_seen--;
    return ok;
}

/* A writer union: the reader must read every branch the writer may have written. */
static bool compat_writer_union(struct cctx *c, tview_t r, tview_t w, const char *path, int depth)
{
    bool ok = true;
    json_t *b;
    size_t i;
    json_array_foreach(w.node, i, b)
    {
        if (!compat(c, r, resolve(c->ws, b, w.ns, depth), path, depth + 1))
            ok = false;
    }
    return ok;
}

/* A reader union: some branch must read the writer's type. The branches are probed quietly;
 * only the failure of all of them is reported. */
static bool compat_reader_union(struct cctx *c, tview_t r, tview_t w, const char *path, int depth)
{
    json_t *saved = c->messages, *b;
    size_t i;
    c->messages = NULL;
    bool ok = false;
    json_array_foreach(r.node, i, b)
    {
        if (compat(c, resolve(c->rs, b, r.ns, depth), w, path, depth + 1)) {
            ok = true;
            break;
        }
    }
    c->messages = saved;
    if (!ok)
        report(c, path, "no branch of the reader union can read writer type '%s'", type_name(&w));
    return ok;
}

/* Without a default of its own, the reader enum must hold every writer symbol. */
static bool compat_enum(struct cctx *c, tview_t r, tview_t w, const char *path)
{
    json_t *rsyms = json_object_get(r.node, "symbols"), *ws, *rsym;
    size_t i, j;
    if (json_object_get(r.node, "default"))
        return true;
    bool ok = true;
    json_array_foreach(json_object_get(w.node, "symbols"), i, ws)
    {
        bool found = false;
        json_array_foreach(rsyms, j, rsym)
        {
            if (json_equal(ws, rsym))
                found = true;
        }
        if (!found) {
            report(c, path, "writer symbol '%s' is missing in reader enum '%s' (no default)",
                   json_string_value(ws), r.full);
            ok = false;
        }
    }
    return ok;
}

static bool compat_fixed(struct cctx *c, tview_t r, tview_t w, const char *path)
{
    json_int_t rsz = json_integer_value(json_object_get(r.node, "size"));
    json_int_t wsz = json_integer_value(json_object_get(w.node, "size"));
    if (rsz != wsz) {
        report(c, path, "reader fixed '%s' has size %lld, writer size %lld", r.full, (long long)rsz,
               (long long)wsz);
        return false;
    }
    return true;
}

/* An array's items or a map's values, at path/items or path/values. */
static bool compat_items(struct cctx *c, tview_t r, tview_t w, const char *path, int depth)
{
    const char *attr = r.kind == K_ARRAY ? "items" : "values";
    char sub[512];
    snprintf(sub, sizeof sub, "%s/%s", path, attr);
    return compat(c, resolve(c->rs, json_object_get(r.node, attr), r.ns, depth),
                  resolve(c->ws, json_object_get(w.node, attr), w.ns, depth), sub, depth + 1);
}

/* Two types of the same kind: named ones must match by name, then each kind's own rule. */
static bool compat_same_kind(struct cctx *c, tview_t r, tview_t w, const char *path, int depth)
{
    bool named = r.kind == K_RECORD || r.kind == K_ENUM || r.kind == K_FIXED;
    if (named && !names_match(&r, &w)) {
        report(c, path, "reader %s '%s' does not match writer %s '%s'", kind_names[r.kind], r.full,
               kind_names[w.kind], w.full);
        return false;
    }
    switch (r.kind) {
    case K_RECORD:
        return compat_record(c, r, w, path, depth);
    case K_ENUM:
        return compat_enum(c, r, w, path);
    case K_FIXED:
        return compat_fixed(c, r, w, path);
    case K_ARRAY:
    case K_MAP:
        return compat_items(c, r, w, path, depth);
    default:
        return true; /* the same primitive */
    }
}

/* Can reader type r read what writer type w wrote (the Avro specification's resolution)? */
static bool compat(struct cctx *c, tview_t r, tview_t w, const char *path, int depth)
{
    if (depth > MAX_DEPTH || r.kind == K_BAD || w.kind == K_BAD) {
        report(c, path, "cannot resolve reader type '%s' against writer type '%s'", type_name(&r),
               type_name(&w));
        return false;
    }
    if (w.kind == K_UNION)
        return compat_writer_union(c, r, w, path, depth);
    if (r.kind == K_UNION)
        return compat_reader_union(c, r, w, path, depth);
    if (r.kind == w.kind)
        return compat_same_kind(c, r, w, path, depth);
    if (promotable(w.kind, r.kind))
        return true;
    report(c, path, "reader type '%s' cannot read writer type '%s'", type_name(&r), type_name(&w));
    return false;
}

bool sr_compat_can_read(const sr_schema_t *reader, const sr_schema_t *writer, json_t *messages)
{
    struct cctx c = {.rs = reader, .ws = writer, .messages = messages};
    return compat(&c, resolve(reader, reader->root, "", 0), resolve(writer, writer->root, "", 0),
                  "", 0);
}

bool sr_compat_check(sr_level_t level, const sr_schema_t *candidate, const sr_schema_t *const *prev,
                     size_t n, json_t *messages)
{
    if (level == SR_LEVEL_NONE || n == 0)
        return true;
    bool transitive = level == SR_LEVEL_BACKWARD_TRANSITIVE ||
                      level == SR_LEVEL_FORWARD_TRANSITIVE || level == SR_LEVEL_FULL_TRANSITIVE;
    bool backward = level != SR_LEVEL_FORWARD && level != SR_LEVEL_FORWARD_TRANSITIVE;
    bool forward = level != SR_LEVEL_BACKWARD && level != SR_LEVEL_BACKWARD_TRANSITIVE;
    bool ok = true;
    /* newest first, so the messages about the latest version come first */
    for (size_t k = n; k-- > (transitive ? 0 : n - 1);) {
        if (backward && !sr_compat_can_read(candidate, prev[k], messages))
            ok = false;
        if (forward && !sr_compat_can_read(prev[k], candidate, messages))
            ok = false;
    }
    return ok;
}
