/* ev_codec_write — JSON straight into Avro binary (see ev_codec_write.h). Every step mirrors one
 * of ev_convert.c and refuses what it refuses; the bytes are those of avro-c's value writer. */
#include "ev_codec_write.h"

#include "es_mem.h"
#include "ev_convert.h"
#include "ev_schema.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ev_convert's EV_MAX_DEPTH, counted as it counts: one a record field, array item or map entry */
#define EV_WRITE_MAX_DEPTH 64

typedef struct ev_wnode ev_wnode_t;

/* One schema type, compiled. */
struct ev_wnode {
    avro_type_t type;
    avro_schema_t schema; /* unlinked; records are compiled once each (recursion) */
    size_t n;             /* record: fields; union: branches; enum: symbols; fixed: size */
    ev_wnode_t **kids;    /* record: one a field; union: one a branch; array, map: [0] */
    const char **names;   /* record: field names; enum: symbols (borrowed from the schema) */
    json_t **defs;        /* record: each field's default (a reference), or NULL */
};

struct ev_encoder {
    ev_wnode_t **nodes; /* every node, for the record memo and for freeing */
    size_t n, cap;
    ev_wnode_t *root;
};

/* ---- compiling --------------------------------------------------------------------------- */

static ev_wnode_t *ev_wnode_add(ev_encoder_t *w, avro_schema_t s)
{
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 16;
        w->nodes = xrealloc(w->nodes, w->cap * sizeof(*w->nodes));
    }
    ev_wnode_t *n = xcalloc(1, sizeof(*n));
    n->type = avro_typeof(s);
    n->schema = s;
    w->nodes[w->n++] = n;
    return n;
}

static ev_wnode_t *ev_wcompile(ev_encoder_t *w, const json_t *defs, avro_schema_t s)
{
    s = ev_unlink(s);
    if (is_avro_record(s))
        for (size_t i = 0; i < w->n; i++)
            if (w->nodes[i]->schema == s)
                return w->nodes[i];
    ev_wnode_t *n = ev_wnode_add(w, s);
    switch (n->type) {
    case AVRO_RECORD: {
        const json_t *rdefs = ev_record_defaults(defs, s);
        n->n = avro_schema_record_size(s);
        n->kids = xcalloc(n->n ? n->n : 1, sizeof(*n->kids));
        n->names = xcalloc(n->n ? n->n : 1, sizeof(*n->names));
        n->defs = xcalloc(n->n ? n->n : 1, sizeof(*n->defs));
        for (size_t i = 0; i < n->n; i++) {
            n->names[i] = avro_schema_record_field_name(s, (int)i);
            n->defs[i] = json_incref(json_object_get(rdefs, n->names[i]));
            n->kids[i] = ev_wcompile(w, defs, avro_schema_record_field_get_by_index(s, (int)i));
        }
        break;
    }
    case AVRO_UNION:
        n->n = avro_schema_union_size(s);
        n->kids = xcalloc(n->n ? n->n : 1, sizeof(*n->kids));
        for (size_t i = 0; i < n->n; i++)
            n->kids[i] = ev_wcompile(w, defs, avro_schema_union_branch(s, (int)i));
        break;
    case AVRO_ARRAY:
    case AVRO_MAP:
        n->kids = xcalloc(1, sizeof(*n->kids));
        n->kids[0] = ev_wcompile(w, defs,
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
        break;
    }
    default:
        break;
    }
    return n;
}

ev_encoder_t *ev_encoder_new(const json_t *defaults, avro_schema_t s)
{
    ev_encoder_t *w = xcalloc(1, sizeof(*w));
    w->root = ev_wcompile(w, defaults, s);
    return w;
}

void ev_encoder_free(ev_encoder_t *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++) {
        ev_wnode_t *n = w->nodes[i];
        if (n->defs)
            for (size_t k = 0; k < n->n; k++)
                json_decref(n->defs[k]);
        free(n->defs);
        free(n->kids);
        free(n->names);
        free(n);
    }
    free(w->nodes);
    free(w);
}

/* ---- writing ----------------------------------------------------------------------------- */

typedef struct ev_wr {
    unsigned char *buf;
    size_t len, cap;
    int depth;
} ev_wr_t;

/* Room for more bytes; false once the body would pass EV_ENCODER_MAX_BODY. */
static bool ev_wr_room(ev_wr_t *wr, size_t more)
{
    if (more > EV_ENCODER_MAX_BODY || wr->len + more > EV_ENCODER_HEADER + EV_ENCODER_MAX_BODY)
        return false;
    if (wr->len + more > wr->cap) {
        size_t cap = wr->cap * 2;
        while (cap < wr->len + more)
            cap *= 2;
        wr->buf = xrealloc(wr->buf, cap);
        wr->cap = cap;
    }
    return true;
}

/* A zigzag varint, as avro writes both int and long. */
static bool ev_wr_long(ev_wr_t *wr, int64_t v)
{
    if (!ev_wr_room(wr, 10))
        return false;
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    unsigned char *p = wr->buf + wr->len;
    while (z > 0x7f) {
        *p++ = (unsigned char)(z & 0x7f) | 0x80;
        z >>= 7;
    }
    *p++ = (unsigned char)z;
    wr->len = (size_t)(p - wr->buf);
    return true;
}

static bool ev_wr_raw(ev_wr_t *wr, const void *s, size_t len)
{
    if (!ev_wr_room(wr, len))
        return false;
    memcpy(wr->buf + wr->len, s, len);
    wr->len += len;
    return true;
}

/* A length-prefixed string or bytes. */
static bool ev_wr_bytes(ev_wr_t *wr, const void *s, size_t len)
{
    return len <= EV_ENCODER_MAX_BODY && ev_wr_long(wr, (int64_t)len) && ev_wr_raw(wr, s, len);
}

/* bits of width bytes, little-endian, as avro writes float and double */
static bool ev_wr_le(ev_wr_t *wr, uint64_t bits, size_t width)
{
    if (!ev_wr_room(wr, width))
        return false;
    for (size_t i = 0; i < width; i++)
        wr->buf[wr->len++] = (unsigned char)(bits >> (8 * i));
    return true;
}

static bool ev_fits_int32(const json_t *j)
{
    return json_integer_value(j) >= INT32_MIN && json_integer_value(j) <= INT32_MAX;
}

/* The index of enum symbol s, or -1. C-string compare, as avro-c's lookup by name. */
static int ev_wr_symbol(const ev_wnode_t *n, const char *s)
{
    for (size_t i = 0; i < n->n; i++)
        if (strcmp(n->names[i], s) == 0)
            return (int)i;
    return -1;
}

/* Whether j fits union branch b (ev_convert's ev_branch_fits: the first fitting one is taken). */
static bool ev_wr_branch_fits(const ev_wnode_t *b, const json_t *j)
{
    if (!ev_json_kind_fits(b->type, j))
        return false;
    if (b->type == AVRO_INT32)
        return ev_fits_int32(j);
    if (b->type == AVRO_ENUM)
        return ev_wr_symbol(b, json_string_value(j)) >= 0;
    return true;
}

static bool ev_wr_value(ev_wr_t *wr, const ev_wnode_t *n, const json_t *j);

static bool ev_wr_record(ev_wr_t *wr, const ev_wnode_t *n, const json_t *j)
{
    size_t found = 0;
    bool ok = true;
    wr->depth++;
    for (size_t i = 0; i < n->n && ok; i++) {
        const json_t *val = json_object_get(j, n->names[i]);
        if (val)
            found++;
        else
            val = n->defs[i];
        ok = val && ev_wr_value(wr, n->kids[i], val);
    }
    wr->depth--;
    /* a member matching no field is an unknown field */
    return ok && found == json_object_size(j);
}

/* An array or a map: one block of all its items, then the count 0 that ends it (none for no
 * item), as avro-c writes them. */
static bool ev_wr_items(ev_wr_t *wr, const ev_wnode_t *n, const json_t *j)
{
    bool map = n->type == AVRO_MAP;
    size_t count = map ? json_object_size(j) : json_array_size(j);
    if (count > EV_ENCODER_MAX_ITEMS)
        return false;
    if (count && !ev_wr_long(wr, (int64_t)count))
        return false;
    bool ok = true;
    wr->depth++;
    if (map) {
        for (void *it = json_object_iter((json_t *)j); it && ok;
             it = json_object_iter_next((json_t *)j, it)) {
            /* avro-c takes a map key up to its first NUL (two keys may then be one): such keys
             * are left to it */
            const char *key = json_object_iter_key(it);
            size_t klen = json_object_iter_key_len(it);
            ok = strlen(key) == klen && ev_wr_bytes(wr, key, klen) &&
                 ev_wr_value(wr, n->kids[0], json_object_iter_value(it));
        }
    } else {
        size_t i;
        json_t *el;
        json_array_foreach(j, i, el)
        {
            if (!(ok = ev_wr_value(wr, n->kids[0], el)))
                break;
        }
    }
    wr->depth--;
    return ok && ev_wr_long(wr, 0);
}

/* Bytes or a fixed, from a base64 string. */
static bool ev_wr_base64(ev_wr_t *wr, const ev_wnode_t *n, const json_t *j)
{
    size_t slen = json_string_length(j), len = 0;
    if (slen / 4 * 3 > EV_ENCODER_MAX_BODY)
        return false;
    void *raw = ev_base64_decode(json_string_value(j), slen, &len);
    if (!raw)
        return false;
    bool ok =
        n->type == AVRO_FIXED ? len == n->n && ev_wr_raw(wr, raw, len) : ev_wr_bytes(wr, raw, len);
    free(raw);
    return ok;
}

static bool ev_wr_value(ev_wr_t *wr, const ev_wnode_t *n, const json_t *j)
{
    if (wr->depth > EV_WRITE_MAX_DEPTH)
        return false;
    if (n->type == AVRO_UNION) {
        for (size_t i = 0; i < n->n; i++)
            if (ev_wr_branch_fits(n->kids[i], j))
                return ev_wr_long(wr, (int64_t)i) && ev_wr_value(wr, n->kids[i], j);
        return false;
    }
    if (!ev_json_kind_fits(n->type, j))
        return false;
    switch (n->type) {
    case AVRO_NULL:
        return true;
    case AVRO_BOOLEAN: {
        unsigned char b = json_is_true(j) ? 1 : 0;
        return ev_wr_raw(wr, &b, 1);
    }
    case AVRO_INT32:
        return ev_fits_int32(j) && ev_wr_long(wr, (int64_t)json_integer_value(j));
    case AVRO_INT64:
        return ev_wr_long(wr, (int64_t)json_integer_value(j));
    case AVRO_FLOAT: {
        float f = (float)json_number_value(j);
        uint32_t bits;
        memcpy(&bits, &f, sizeof bits);
        return ev_wr_le(wr, bits, 4);
    }
    case AVRO_DOUBLE: {
        double d = json_number_value(j);
        uint64_t bits;
        memcpy(&bits, &d, sizeof bits);
        return ev_wr_le(wr, bits, 8);
    }
    case AVRO_STRING:
        return ev_wr_bytes(wr, json_string_value(j), json_string_length(j));
    case AVRO_BYTES:
    case AVRO_FIXED:
        return ev_wr_base64(wr, n, j);
    case AVRO_ENUM: {
        int idx = ev_wr_symbol(n, json_string_value(j));
        return idx >= 0 && ev_wr_long(wr, idx);
    }
    case AVRO_ARRAY:
    case AVRO_MAP:
        return ev_wr_items(wr, n, j);
    case AVRO_RECORD:
        return ev_wr_record(wr, n, j);
    default:
        return false;
    }
}

bool ev_encoder_write(const ev_encoder_t *w, const json_t *j, void **out, size_t *len)
{
    ev_wr_t wr = {.buf = xmalloc(256), .len = EV_ENCODER_HEADER, .cap = 256, .depth = 0};
    if (!j || !ev_wr_value(&wr, w->root, j)) {
        free(wr.buf);
        return false;
    }
    *out = wr.buf;
    *len = wr.len;
    return true;
}
