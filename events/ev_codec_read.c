/* ev_codec_read — Avro binary straight into JSON (see ev_codec_read.h). */
#include "ev_codec_read.h"

#include "es_mem.h"
#include "ev_codec.h"
#include "ev_convert.h"
#include "ev_schema.h"
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EV_READ_MAX_DEPTH 64
/* Items of a type that takes no byte (null, an empty record) cost nothing to claim: a block of
 * more of them than this is refused as hostile, as any block claiming more items than bytes. */
#define EV_READ_MAX_EMPTY_ITEMS (1u << 16)

typedef struct ev_rnode ev_rnode_t;

/* One writer type, compiled: what a body of it holds, in the order it comes. */
struct ev_rnode {
    avro_type_t type;
    avro_schema_t schema; /* unlinked; records are compiled once each (recursion) */
    size_t n;             /* record: fields; union: branches; enum: symbols; fixed: size */
    ev_rnode_t **kids;    /* record: one a field; union: one a branch; array, map: [0] */
    const char **names;   /* record: field names; enum: symbols (borrowed from the schema) */
    json_t *fill;         /* record: {field: default} of the reader's fields the writer lacks */
    bool empty;           /* a value of it may take no byte */
};

struct ev_reader {
    ev_rnode_t **nodes; /* every node, for the record memo and for freeing */
    size_t n, cap;
    ev_rnode_t *root;
};

/* ---- compiling --------------------------------------------------------------------------- */

static ev_rnode_t *ev_rnode_add(ev_reader_t *r, avro_schema_t s)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 16;
        r->nodes = xrealloc(r->nodes, r->cap * sizeof(*r->nodes));
    }
    ev_rnode_t *n = xcalloc(1, sizeof(*n));
    n->type = avro_typeof(s);
    n->schema = s;
    r->nodes[r->n++] = n;
    return n;
}

static ev_rnode_t *ev_compile(ev_reader_t *r, const json_t *defs, avro_schema_t s);

static void ev_compile_record(ev_reader_t *r, const json_t *defs, ev_rnode_t *n)
{
    avro_schema_t s = n->schema;
    n->n = avro_schema_record_size(s);
    n->kids = xcalloc(n->n ? n->n : 1, sizeof(*n->kids));
    n->names = xcalloc(n->n ? n->n : 1, sizeof(*n->names));
    n->empty = true;
    for (size_t i = 0; i < n->n; i++) {
        n->names[i] = avro_schema_record_field_name(s, (int)i);
        n->kids[i] = ev_compile(r, defs, avro_schema_record_field_get_by_index(s, (int)i));
        n->empty = n->empty && n->kids[i]->empty;
    }
    const char *key;
    json_t *d;
    json_object_foreach((json_t *)ev_record_defaults(defs, s), key, d)
    {
        bool has = false;
        for (size_t i = 0; i < n->n && !has; i++)
            has = strcmp(n->names[i], key) == 0;
        if (has)
            continue;
        if (!n->fill)
            n->fill = json_object();
        json_object_set(n->fill, key, d);
    }
}

static ev_rnode_t *ev_compile(ev_reader_t *r, const json_t *defs, avro_schema_t s)
{
    s = ev_unlink(s);
    if (is_avro_record(s))
        for (size_t i = 0; i < r->n; i++)
            if (r->nodes[i]->schema == s)
                return r->nodes[i];
    ev_rnode_t *n = ev_rnode_add(r, s);
    switch (n->type) {
    case AVRO_NULL:
        n->empty = true;
        break;
    case AVRO_RECORD:
        ev_compile_record(r, defs, n);
        break;
    case AVRO_UNION:
        n->n = avro_schema_union_size(s);
        n->kids = xcalloc(n->n ? n->n : 1, sizeof(*n->kids));
        for (size_t i = 0; i < n->n; i++)
            n->kids[i] = ev_compile(r, defs, avro_schema_union_branch(s, (int)i));
        break;
    case AVRO_ARRAY:
    case AVRO_MAP:
        n->kids = xcalloc(1, sizeof(*n->kids));
        n->kids[0] = ev_compile(r, defs,
                                n->type == AVRO_ARRAY ? avro_schema_array_items(s)
                                                      : avro_schema_map_values(s));
        break;
    case AVRO_ENUM: {
        int k = avro_schema_enum_number_of_symbols(s);
        n->n = k > 0 ? (size_t)k : 0;
        n->names = xcalloc(n->n ? n->n : 1, sizeof(*n->names));
        for (size_t i = 0; i < n->n; i++)
            n->names[i] = avro_schema_enum_get(s, (int)i);
        break;
    }
    case AVRO_FIXED: {
        int64_t size = avro_schema_fixed_size(s);
        n->n = size > 0 ? (size_t)size : 0;
        n->empty = n->n == 0;
        break;
    }
    default:
        break;
    }
    return n;
}

ev_reader_t *ev_reader_new(const json_t *defaults, avro_schema_t s)
{
    ev_reader_t *r = xcalloc(1, sizeof(*r));
    r->root = ev_compile(r, defaults, s);
    return r;
}

void ev_reader_free(ev_reader_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->nodes[i]->kids);
        free(r->nodes[i]->names);
        json_decref(r->nodes[i]->fill);
        free(r->nodes[i]);
    }
    free(r->nodes);
    free(r);
}

/* ---- reading ----------------------------------------------------------------------------- */

/* Where the reading is: a stack of path parts, turned into a dotted path only for a message. */
typedef struct ev_frame {
    const char *s; /* a field name or a map key (len bytes); NULL: an array index */
    size_t len, idx;
} ev_frame_t;

typedef struct ev_rd {
    const unsigned char *p, *end;
    const char *name; /* the writer's record full name and id, for messages */
    int32_t id;
    es_err_t *err;
    int depth;
    ev_frame_t frames[EV_READ_MAX_DEPTH];
} ev_rd_t;

/* The dotted path of the value being read into buf ("(value)" at the top). */
static const char *ev_rd_path(const ev_rd_t *rd, char *buf, size_t size)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < rd->depth && o + 1 < size; i++) {
        const ev_frame_t *f = &rd->frames[i];
        int n = f->s ? snprintf(buf + o, size - o, "%s%.*s", o ? "." : "", (int)f->len, f->s)
                     : snprintf(buf + o, size - o, "[%zu]", f->idx);
        if (n < 0)
            break;
        o = o + (size_t)n >= size ? size - 1 : o + (size_t)n;
    }
    return o ? buf : "(value)";
}

/* A body that does not parse: NULL, with the message naming the writer. */
static json_t *ev_rd_malformed(ev_rd_t *rd, const char *why)
{
    es_set(rd->err, ES_EINVAL, "cannot decode '%s' (schema id %d): truncated or malformed: %s",
           rd->name, (int)rd->id, why);
    return NULL;
}

/* A value that parses but has no JSON form: NULL, with the message naming the field. */
static json_t *ev_rd_bad_value(ev_rd_t *rd, const char *what)
{
    char path[200];
    es_set(rd->err, ES_EINVAL, "%s: %s", ev_rd_path(rd, path, sizeof path), what);
    return NULL;
}

/* A zigzag varint of at most 10 bytes. */
static bool ev_rd_long(ev_rd_t *rd, int64_t *out)
{
    uint64_t z = 0;
    for (unsigned shift = 0; shift < 70; shift += 7) {
        if (rd->p == rd->end)
            return false;
        unsigned char b = *rd->p++;
        z |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
            return true;
        }
    }
    return false;
}

/* A length (of a string, bytes or block in bytes) that the rest of the body holds. */
static bool ev_rd_len(ev_rd_t *rd, size_t *out, const char **why)
{
    int64_t n = 0;
    if (!ev_rd_long(rd, &n) || n < 0) {
        *why = "bad length";
        return false;
    }
    if ((uint64_t)n > EV_MAX_ALLOC) {
        *why = "a length above what the codec will allocate";
        return false;
    }
    if ((uint64_t)n > (uint64_t)(rd->end - rd->p)) {
        *why = "a length past the end";
        return false;
    }
    *out = (size_t)n;
    return true;
}

static json_t *ev_rd_value(ev_rd_t *rd, const ev_rnode_t *n);

static bool ev_rd_push(ev_rd_t *rd, const char *s, size_t len, size_t idx)
{
    if (rd->depth == EV_READ_MAX_DEPTH)
        return false;
    rd->frames[rd->depth++] = (ev_frame_t){s, len, idx};
    return true;
}

static json_t *ev_rd_record(ev_rd_t *rd, const ev_rnode_t *n)
{
    json_t *obj = json_object();
    for (size_t i = 0; i < n->n; i++) {
        if (!ev_rd_push(rd, n->names[i], strlen(n->names[i]), 0)) {
            ev_rd_bad_value(rd, "nested too deeply");
            goto fail;
        }
        json_t *c = ev_rd_value(rd, n->kids[i]);
        if (!c)
            goto fail;
        rd->depth--;
        /* an avro field name is [A-Za-z_][A-Za-z0-9_]*: no utf-8 check needed */
        json_object_set_new_nocheck(obj, n->names[i], c);
    }
    if (n->fill) {
        const char *key;
        json_t *d;
        json_object_foreach(n->fill, key, d)
        {
            json_object_set_new_nocheck(obj, key, json_deep_copy(d));
        }
    }
    return obj;
fail:
    json_decref(obj);
    return NULL;
}

/* An array or a map: blocks of items, each block a count (negative: followed by its size in
 * bytes), until a count of 0. */
static json_t *ev_rd_items(ev_rd_t *rd, const ev_rnode_t *n)
{
    bool map = n->type == AVRO_MAP;
    const ev_rnode_t *item = n->kids[0];
    json_t *out = map ? json_object() : json_array();
    size_t idx = 0;
    for (;;) {
        int64_t count = 0;
        if (!ev_rd_long(rd, &count)) {
            ev_rd_malformed(rd, "bad block count");
            goto fail;
        }
        if (count == 0)
            break;
        if (count < 0) {
            int64_t bytes = 0;
            if (count == INT64_MIN || !ev_rd_long(rd, &bytes) || bytes < 0) {
                ev_rd_malformed(rd, "bad block size");
                goto fail;
            }
            count = -count;
        }
        uint64_t left = (uint64_t)(rd->end - rd->p);
        if (map || !item->empty ? (uint64_t)count > left
                                : (uint64_t)count > EV_READ_MAX_EMPTY_ITEMS - idx) {
            ev_rd_malformed(rd, "a block of more items than the body holds");
            goto fail;
        }
        for (int64_t k = 0; k < count; k++, idx++) {
            const char *key = NULL;
            size_t klen = 0;
            if (map) {
                const char *why = NULL;
                if (!ev_rd_len(rd, &klen, &why)) {
                    ev_rd_malformed(rd, why);
                    goto fail;
                }
                key = (const char *)rd->p;
                rd->p += klen;
            }
            if (!ev_rd_push(rd, key, klen, idx)) {
                ev_rd_bad_value(rd, "nested too deeply");
                goto fail;
            }
            json_t *c = ev_rd_value(rd, item);
            if (!c)
                goto fail;
            rd->depth--;
            if (!map) {
                json_array_append_new(out, c);
                continue;
            }
            /* a key is any avro string: NUL-terminated and checked as jansson wants */
            char stack[128], *k0 = klen < sizeof stack ? stack : xmalloc(klen + 1);
            memcpy(k0, key, klen);
            k0[klen] = '\0';
            bool nul = strlen(k0) != klen; /* jansson keys end at their first NUL */
            if (nul)
                json_decref(c);
            /* json_object_set_new releases c itself when it refuses the key */
            bool bad = nul || json_object_set_new(out, k0, c) != 0;
            if (k0 != stack)
                free(k0);
            if (bad) {
                ev_rd_bad_value(rd, "map key is not valid utf-8");
                goto fail;
            }
        }
    }
    return out;
fail:
    json_decref(out);
    return NULL;
}

static json_t *ev_rd_string(ev_rd_t *rd, const ev_rnode_t *n)
{
    size_t len = 0;
    const char *why = NULL;
    if (n->type == AVRO_FIXED) {
        len = n->n;
        if (len > (size_t)(rd->end - rd->p))
            return ev_rd_malformed(rd, "a fixed past the end");
    } else if (!ev_rd_len(rd, &len, &why)) {
        return ev_rd_malformed(rd, why);
    }
    const char *s = (const char *)rd->p;
    rd->p += len;
    if (n->type == AVRO_STRING) {
        json_t *out = json_stringn(s, len);
        return out ? out : ev_rd_bad_value(rd, "string is not valid utf-8");
    }
    char *b64 = ev_base64_encode(s, len);
    json_t *out = json_string(b64);
    free(b64);
    return out;
}

static json_t *ev_rd_number(ev_rd_t *rd, const ev_rnode_t *n)
{
    size_t w = n->type == AVRO_FLOAT ? 4 : 8;
    if ((size_t)(rd->end - rd->p) < w)
        return ev_rd_malformed(rd, "a number past the end");
    uint64_t bits = 0;
    for (size_t i = 0; i < w; i++) /* little-endian on the wire */
        bits |= (uint64_t)rd->p[i] << (8 * i);
    rd->p += w;
    double x;
    if (w == 4) {
        uint32_t b32 = (uint32_t)bits;
        float f;
        memcpy(&f, &b32, sizeof f);
        x = f;
    } else {
        memcpy(&x, &bits, sizeof x);
    }
    return isfinite(x) ? json_real(x) : ev_rd_bad_value(rd, "not a finite number");
}

static json_t *ev_rd_value(ev_rd_t *rd, const ev_rnode_t *n)
{
    int64_t x = 0;
    switch (n->type) {
    case AVRO_NULL:
        return json_null();
    case AVRO_BOOLEAN:
        if (rd->p == rd->end)
            return ev_rd_malformed(rd, "a boolean past the end");
        return json_boolean(*rd->p++ != 0);
    case AVRO_INT32:
        if (!ev_rd_long(rd, &x) || x < INT32_MIN || x > INT32_MAX)
            return ev_rd_malformed(rd, "bad int");
        return json_integer(x);
    case AVRO_INT64:
        if (!ev_rd_long(rd, &x))
            return ev_rd_malformed(rd, "bad long");
        return json_integer(x);
    case AVRO_FLOAT:
    case AVRO_DOUBLE:
        return ev_rd_number(rd, n);
    case AVRO_STRING:
    case AVRO_BYTES:
    case AVRO_FIXED:
        return ev_rd_string(rd, n);
    case AVRO_ENUM:
        if (!ev_rd_long(rd, &x))
            return ev_rd_malformed(rd, "bad enum index");
        if (x < 0 || (uint64_t)x >= n->n) {
            char what[64];
            snprintf(what, sizeof what, "enum index %lld out of range", (long long)x);
            return ev_rd_bad_value(rd, what);
        }
        return json_string(n->names[x]);
    case AVRO_ARRAY:
    case AVRO_MAP:
        return ev_rd_items(rd, n);
    case AVRO_UNION:
        if (!ev_rd_long(rd, &x) || x < 0 || (uint64_t)x >= n->n)
            return ev_rd_malformed(rd, "bad union branch");
        return ev_rd_value(rd, n->kids[x]);
    case AVRO_RECORD:
        return ev_rd_record(rd, n);
    default:
        es_set(rd->err, ES_EINTERNAL, "cannot decode '%s' (schema id %d): unsupported avro type",
               rd->name, (int)rd->id);
        return NULL;
    }
}

json_t *ev_reader_decode(const ev_reader_t *r, const char *name, int32_t id, const unsigned char *p,
                         size_t len, es_err_t *err)
{
    ev_rd_t rd = {.p = p, .end = p + len, .name = name, .id = id, .err = err, .depth = 0};
    json_t *j = ev_rd_value(&rd, r->root);
    if (j && rd.p != rd.end) {
        es_set(err, ES_EINVAL, "'%s' (schema id %d) has trailing bytes", name, (int)id);
        json_decref(j);
        return NULL;
    }
    return j;
}
