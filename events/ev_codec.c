/* ev_codec — schema loading, the id caches and Confluent framing (see ev_codec.h). JSON is
 * written straight into Avro by ev_codec_write.c, falling back to the avro-c walk of ev_convert.c
 * for what it does not take (and for every error message); Avro is read straight into JSON by
 * ev_codec_read.c; the .avsc checks avro-c lacks are in ev_schema.c. */
#include "ev_codec.h"

#include "es_mem.h"
#include "ev_codec_read.h"
#include "ev_codec_write.h"
#include "ev_convert.h"
#include "ev_schema.h"
#include <avro.h>
#include <dirent.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define EV_RESULT_NAME "eventshop.CommandResult"
/* Avro values kept per schema for reuse (one per thread encoding it at once): making a generic
 * value and its string buffers anew for every record was most of a handler's malloc work.
 * (Decoding makes none: it reads the bytes straight into JSON, ev_codec_read.h.) A value that held
 * a record larger than EV_POOL_KEEP_BYTES is not kept, so that one big (or hostile) message does
 * not pin its buffers. */
#define EV_POOL_MAX        4
#define EV_POOL_KEEP_BYTES (64u << 10)

/* Reset avro values of one schema, ready to be filled; guarded by the codec's lock. */
typedef struct ev_pool {
    avro_value_t values[EV_POOL_MAX];
    size_t n;
} ev_pool_t;

static const char *const ev_kinds[] = {"commands", "events", "changelog"};

/* A local schema, immutable once the codec is built. */
typedef struct ev_schema {
    char *full_name;
    char *text; /* expanded, standalone: what gets registered */
    avro_schema_t schema;
    avro_value_iface_t *iface;
    json_t *topics; /* array of topic names */
    ev_pool_t pool; /* values to encode into, when the encoder does not take a value */
    /* compiled on first encode (under the codec's lock), then only read: set and read with
     * atomic release/acquire so that readers need no lock */
    ev_encoder_t *encoder;
} ev_schema_t;

/* A writer schema known by id; entries live until the codec is freed (full_name is lent out). */
typedef struct ev_writer {
    int32_t id;
    char *full_name;
    avro_schema_t schema;
    avro_value_iface_t *iface;
    bool current;        /* the local schema of full_name, the same JSON once expanded */
    ev_reader_t *reader; /* its bodies into JSON, with the local defaults it lacks */
} ev_writer_t;

struct ev_codec {
    sr_client_t *sr;
    ev_schema_t *schemas;
    size_t n_schemas;
    json_t *common;   /* full name -> definition of common records, for inlining */
    json_t *defaults; /* record full name -> {field: default} */
    json_t *contexts; /* array of context names */

    pthread_mutex_t lock;  /* guards what follows */
    json_t *ids;           /* subject -> id */
    ev_writer_t **writers; /* each entry allocated apart: pointers stay valid on growth */
    size_t n_writers, cap_writers;
};

/* ---- allocator --------------------------------------------------------------------------- */

static void *ev_capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    if (nsize > EV_MAX_ALLOC)
        return NULL; /* avro-c reports ENOMEM: the message is refused, nothing is allocated */
    return realloc(ptr, nsize);
}

static pthread_once_t ev_once = PTHREAD_ONCE_INIT;

static void ev_install_allocator(void)
{
    avro_set_allocator(ev_capped_alloc, NULL);
}

void ev_codec_global_init(void)
{
    pthread_once(&ev_once, ev_install_allocator);
}

/* ---- value pools ------------------------------------------------------------------------- */

/* A value of iface into *v: a reset one from pool, or a new one. 0, or -1 (avro-c's error). */
static int ev_value_take(ev_codec_t *c, ev_pool_t *pool, avro_value_iface_t *iface, avro_value_t *v)
{
    pthread_mutex_lock(&c->lock);
    bool got = pool->n > 0;
    if (got)
        *v = pool->values[--pool->n];
    pthread_mutex_unlock(&c->lock);
    return got ? 0 : avro_generic_value_new(iface, v);
}

/* Gives v back: reset into pool when keep and there is room, else freed. */
static void ev_value_give(ev_codec_t *c, ev_pool_t *pool, avro_value_t *v, bool keep)
{
    if (keep && avro_value_reset(v) == 0) {
        pthread_mutex_lock(&c->lock);
        bool kept = pool->n < EV_POOL_MAX;
        if (kept)
            pool->values[pool->n++] = *v;
        pthread_mutex_unlock(&c->lock);
        if (kept)
            return;
    }
    avro_value_decref(v);
}

static void ev_pool_release(ev_pool_t *pool)
{
    for (size_t i = 0; i < pool->n; i++)
        avro_value_decref(&pool->values[i]);
    pool->n = 0;
}

/* ---- loading ----------------------------------------------------------------------------- */

static int ev_filter_avsc(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return d->d_name[0] != '.' && n > 5 && strcmp(d->d_name + n - 5, ".avsc") == 0;
}

static int ev_filter_dir(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

static ev_schema_t *ev_find(ev_codec_t *c, const char *full_name)
{
    for (size_t i = 0; i < c->n_schemas; i++)
        if (strcmp(c->schemas[i].full_name, full_name) == 0)
            return &c->schemas[i];
    return NULL;
}

/* Parses text with avro-c and makes sure its top level is the record full_name. */
static int ev_avro_parse(const char *text, const char *full_name, const char *label,
                         avro_schema_t *out, es_err_t *err)
{
    avro_schema_t s = NULL;
    if (avro_schema_from_json_length(text, strlen(text), &s) != 0)
        return es_set(err, ES_EINVAL, "schema '%s': avro: %s", label, avro_strerror());
    char *got = NULL;
    if (is_avro_record(s)) {
        const char *ns = avro_schema_namespace(s);
        got =
            ns && *ns ? xasprintf("%s.%s", ns, avro_schema_name(s)) : xstrdup(avro_schema_name(s));
    }
    if (!got || strcmp(got, full_name) != 0) {
        es_set(err, ES_EINVAL, "schema '%s': avro sees '%s', not the record '%s'", label,
               got ? got : "(not a record)", full_name);
        free(got);
        avro_schema_decref(s);
        return -1;
    }
    free(got);
    *out = s;
    return 0;
}

/* Loads one file as a local schema going on topic (NULL: none yet). */
static int ev_load_one(ev_codec_t *c, const char *path, const char *label, const char *topic,
                       char **full_out, es_err_t *err)
{
    int rc = -1;
    char *full = NULL, *text = NULL;
    avro_schema_t s = NULL;
    json_t *j = ev_schema_load_file(path, label, err);
    if (!j)
        goto out;
    ev_schema_expand(j, c->common);
    if (ev_schema_validate(j, label, c->defaults, &full, err) < 0)
        goto out;
    if (ev_find(c, full)) {
        es_set(err, ES_EINVAL, "schema file '%s': record '%s' is defined twice", label, full);
        goto out;
    }
    text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (ev_avro_parse(text, full, label, &s, err) < 0)
        goto out;
    c->schemas = xrealloc(c->schemas, (c->n_schemas + 1) * sizeof(*c->schemas));
    ev_schema_t *e = &c->schemas[c->n_schemas++];
    e->full_name = full;
    e->text = text;
    e->schema = s;
    e->iface = avro_generic_class_from_schema(s);
    e->topics = json_array();
    e->pool.n = 0;
    e->encoder = NULL;
    if (topic)
        json_array_append_new(e->topics, json_string(topic));
    if (full_out)
        *full_out = full;
    full = NULL;
    text = NULL;
    rc = 0;
out:
    free(full);
    free(text);
    json_decref(j);
    return rc;
}

static int ev_load_common(ev_codec_t *c, const char *dir, es_err_t *err)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, ev_filter_avsc, alphasort);
    int rc = 0;
    if (n < 0)
        return es_set(err, ES_EINVAL, "schema dir '%s' has no common/ folder", dir);
    /* first pass: the definitions others inline */
    for (int i = 0; i < n && rc == 0; i++) {
        char *path = xasprintf("%s/%s", dir, names[i]->d_name);
        char *label = xasprintf("common/%s", names[i]->d_name);
        json_t *j = ev_schema_load_file(path, label, err);
        if (!j) {
            rc = -1;
        } else {
            const char *name = json_string_value(json_object_get(j, "name"));
            const char *ns = json_string_value(json_object_get(j, "namespace"));
            if (!name) {
                rc = es_set(err, ES_EINVAL, "schema file '%s': no name", label);
            } else {
                char *full = ns && *ns ? xasprintf("%s.%s", ns, name) : xstrdup(name);
                json_object_set(c->common, full, j);
                free(full);
            }
            json_decref(j);
        }
        free(label);
        free(path);
    }
    for (int i = 0; i < n && rc == 0; i++) {
        char *path = xasprintf("%s/%s", dir, names[i]->d_name);
        char *label = xasprintf("common/%s", names[i]->d_name);
        rc = ev_load_one(c, path, label, NULL, NULL, err);
        free(label);
        free(path);
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

/* Loads context ctx's schemas of kind (NULL: of every kind). */
static int ev_load_context(ev_codec_t *c, const char *dir, const char *ctx, const char *kind,
                           es_err_t *err)
{
    int rc = 0;
    for (size_t k = 0; k < sizeof(ev_kinds) / sizeof(ev_kinds[0]) && rc == 0; k++) {
        if (kind && strcmp(kind, ev_kinds[k]))
            continue;
        char *kdir = xasprintf("%s/%s/%s", dir, ctx, ev_kinds[k]);
        char *topic = xasprintf("%s.%s", ctx, ev_kinds[k]);
        struct dirent **names = NULL;
        int n = scandir(kdir, &names, ev_filter_avsc, alphasort);
        for (int i = 0; i < n; i++) {
            if (rc == 0) {
                char *path = xasprintf("%s/%s", kdir, names[i]->d_name);
                char *label = xasprintf("%s/%s/%s", ctx, ev_kinds[k], names[i]->d_name);
                rc = ev_load_one(c, path, label, topic, NULL, err);
                free(label);
                free(path);
            }
            free(names[i]);
        }
        free(names);
        free(topic);
        free(kdir);
    }
    return rc;
}

ev_codec_t *ev_codec_new(const char *schema_dir, sr_client_t *sr, es_err_t *err)
{
    return ev_codec_new_kind(schema_dir, sr, NULL, err);
}

ev_codec_t *ev_codec_new_kind(const char *schema_dir, sr_client_t *sr, const char *kind,
                              es_err_t *err)
{
    ev_codec_global_init();
    ev_codec_t *c = xcalloc(1, sizeof(*c));
    c->sr = sr;
    c->common = json_object();
    c->defaults = json_object();
    c->contexts = json_array();
    c->ids = json_object();
    pthread_mutex_init(&c->lock, NULL);

    char *common = xasprintf("%s/common", schema_dir);
    int rc = ev_load_common(c, common, err);
    free(common);
    if (rc < 0)
        goto fail;

    struct dirent **names = NULL;
    int n = scandir(schema_dir, &names, ev_filter_dir, alphasort);
    if (n < 0) {
        es_set(err, ES_EINVAL, "cannot read schema dir '%s'", schema_dir);
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        const char *ctx = names[i]->d_name;
        char *path = xasprintf("%s/%s", schema_dir, ctx);
        struct stat st;
        if (rc == 0 && strcmp(ctx, "common") != 0 && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            json_array_append_new(c->contexts, json_string(ctx));
            rc = ev_load_context(c, schema_dir, ctx, kind, err);
        }
        free(path);
        free(names[i]);
    }
    free(names);
    if (rc < 0)
        goto fail;

    ev_schema_t *res = ev_find(c, EV_RESULT_NAME);
    if (res) {
        size_t i;
        json_t *ctx;
        json_array_foreach(c->contexts, i, ctx)
        {
            char *topic = xasprintf("%s.results", json_string_value(ctx));
            json_array_append_new(res->topics, json_string(topic));
            free(topic);
        }
    }
    return c;
fail:
    ev_codec_free(c);
    return NULL;
}

void ev_codec_free(ev_codec_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_schemas; i++) {
        ev_schema_t *e = &c->schemas[i];
        ev_pool_release(&e->pool);
        ev_encoder_free(e->encoder);
        avro_value_iface_decref(e->iface);
        avro_schema_decref(e->schema);
        json_decref(e->topics);
        free(e->text);
        free(e->full_name);
    }
    free(c->schemas);
    for (size_t i = 0; i < c->n_writers; i++) {
        ev_reader_free(c->writers[i]->reader);
        avro_value_iface_decref(c->writers[i]->iface);
        avro_schema_decref(c->writers[i]->schema);
        free(c->writers[i]->full_name);
        free(c->writers[i]);
    }
    free(c->writers);
    json_decref(c->common);
    json_decref(c->defaults);
    json_decref(c->contexts);
    json_decref(c->ids);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* ---- caches (callers hold the lock) ------------------------------------------------------ */

static ev_writer_t *ev_writer_find(ev_codec_t *c, int32_t id)
{
    for (size_t i = 0; i < c->n_writers; i++)
        if (c->writers[i]->id == id)
            return c->writers[i];
    return NULL;
}

/* Adds a writer entry, taking new references to schema and iface. */
static ev_writer_t *ev_writer_add(ev_codec_t *c, int32_t id, const char *full_name,
                                  avro_schema_t schema, avro_value_iface_t *iface, bool current)
{
    if (c->n_writers == c->cap_writers) {
        c->cap_writers = c->cap_writers ? 2 * c->cap_writers : 16;
        c->writers = xrealloc(c->writers, c->cap_writers * sizeof(*c->writers));
    }
    ev_writer_t *w = xcalloc(1, sizeof(*w));
    c->writers[c->n_writers++] = w;
    w->id = id;
    w->full_name = xstrdup(full_name);
    w->schema = avro_schema_incref(schema);
    w->iface = avro_value_iface_incref(iface);
    w->current = current;
    w->reader = ev_reader_new(c->defaults, schema);
    return w;
}

/* Records subject -> id and makes id decodable with the local schema e. */
static int ev_remember_id(ev_codec_t *c, const char *subject, ev_schema_t *e, int32_t id,
                          es_err_t *err)
{
    int rc = 0;
    pthread_mutex_lock(&c->lock);
    ev_writer_t *w = ev_writer_find(c, id);
    if (w && strcmp(w->full_name, e->full_name) != 0) {
        rc = es_set(err, ES_ECONFLICT, "schema id %d is '%s', not '%s'", (int)id, w->full_name,
                    e->full_name);
    } else {
        json_object_set_new(c->ids, subject, json_integer(id));
        if (!w)
            ev_writer_add(c, id, e->full_name, e->schema, e->iface, true);
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

static bool ev_has_topic(const ev_schema_t *e, const char *topic)
{
    size_t i;
    json_t *t;
    json_array_foreach(e->topics, i, t)
    {
        if (strcmp(json_string_value(t), topic) == 0)
            return true;
    }
    return false;
}

/* The id of topic's subject for e: cached, or registered now. */
static int ev_subject_id(ev_codec_t *c, const char *topic, ev_schema_t *e, int32_t *id,
                         es_err_t *err)
{
    int rc = 0;
    /* on every record encoded: the subject on the stack, unless it is unusually long */
    char stack[256], *subject = stack;
    size_t tl = strlen(topic), fl = strlen(e->full_name);
    if (tl + 1 + fl < sizeof(stack)) {
        memcpy(stack, topic, tl);
        stack[tl] = '-';
        memcpy(stack + tl + 1, e->full_name, fl + 1);
    } else {
        subject = xasprintf("%s-%s", topic, e->full_name);
    }
    pthread_mutex_lock(&c->lock);
    json_t *jid = json_object_get(c->ids, subject);
    if (jid)
        *id = (int32_t)json_integer_value(jid);
    pthread_mutex_unlock(&c->lock);
    if (!jid) {
        if (!c->sr)
            rc =
                es_set(err, ES_ENOTFOUND, "no schema id for subject '%s' (offline codec)", subject);
        else if ((rc = sr_client_register(c->sr, subject, e->text, id, err)) == 0)
            rc = ev_remember_id(c, subject, e, *id, err);
    }
    if (subject != stack)
        free(subject);
    return rc < 0 ? -1 : 0;
}

/* ---- public API -------------------------------------------------------------------------- */

int ev_codec_register_context(ev_codec_t *c, const char *context, es_err_t *err)
{
    static const char *const kinds[] = {"commands", "events", "changelog", "results"};
    if (!c->sr)
        return es_set(err, ES_EINVAL, "offline codec cannot register context '%s'", context);
    int rc = 0, count = 0;
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]) && rc == 0; k++) {
        char *topic = xasprintf("%s.%s", context, kinds[k]);
        for (size_t i = 0; i < c->n_schemas && rc == 0; i++) {
            ev_schema_t *e = &c->schemas[i];
            if (!ev_has_topic(e, topic))
                continue;
            char *subject = xasprintf("%s-%s", topic, e->full_name);
            int32_t id = -1;
            rc = sr_client_register(c->sr, subject, e->text, &id, err);
            if (rc == 0)
                rc = ev_remember_id(c, subject, e, id, err);
            free(subject);
            count++;
        }
        free(topic);
    }
    if (rc == 0 && count == 0)
        rc = es_set(err, ES_ENOTFOUND, "no schema for context '%s'", context);
    return rc < 0 ? -1 : 0;
}

int ev_codec_set_id(ev_codec_t *c, const char *topic, const char *full_name, int32_t id,
                    es_err_t *err)
{
    ev_schema_t *e = ev_find(c, full_name);
    if (!e)
        return es_set(err, ES_ENOTFOUND, "unknown record '%s'", full_name);
    if (id < 0)
        return es_set(err, ES_EINVAL, "schema id %d is negative", (int)id);
    char *subject = xasprintf("%s-%s", topic, full_name);
    int rc = ev_remember_id(c, subject, e, id, err);
    free(subject);
    return rc;
}

/* Whether expanded (a writer schema's JSON, expanded) is the local schema full_name. */
static bool ev_is_local(ev_codec_t *c, const char *full_name, const json_t *expanded)
{
    ev_schema_t *e = ev_find(c, full_name);
    json_t *local = e ? json_loads(e->text, 0, NULL) : NULL;
    bool same = local && json_equal(local, expanded);
    json_decref(local);
    return same;
}

/* Builds a writer entry from schema text (inlining common references, as for local files). */
static int ev_writer_from_text(ev_codec_t *c, int32_t id, const char *text, ev_writer_t **out,
                               es_err_t *err)
{
    int rc = -1;
    char label[32], *full = NULL, *expanded = NULL;
    avro_schema_t s = NULL;
    avro_value_iface_t *iface = NULL;
    json_t *dummy = json_object();
    json_error_t jerr;
    snprintf(label, sizeof(label), "id %d", (int)id);
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        es_set(err, ES_EINVAL, "schema %s: %s", label, jerr.text);
        goto out;
    }
    ev_schema_expand(j, c->common);
    /* writer defaults do not matter: the reader's fill missing fields */
    if (ev_schema_validate(j, label, dummy, &full, err) < 0)
        goto out;
    expanded = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (ev_avro_parse(expanded, full, label, &s, err) < 0)
        goto out;
    iface = avro_generic_class_from_schema(s);
    pthread_mutex_lock(&c->lock);
    ev_writer_t *w = ev_writer_find(c, id);
    if (w && strcmp(w->full_name, full) != 0)
        es_set(err, ES_ECONFLICT, "schema id %d is already '%s'", (int)id, w->full_name);
    else if (!w)
        w = ev_writer_add(c, id, full, s, iface, ev_is_local(c, full, j));
    pthread_mutex_unlock(&c->lock);
    if (es_failed(err))
        goto out;
    *out = w;
    rc = 0;
out:
    if (iface)
        avro_value_iface_decref(iface);
    if (s)
        avro_schema_decref(s);
    free(expanded);
    free(full);
    json_decref(dummy);
    json_decref(j);
    return rc;
}

int ev_codec_add_writer_schema(ev_codec_t *c, int32_t id, const char *schema_json, es_err_t *err)
{
    ev_writer_t *w = NULL;
    return ev_writer_from_text(c, id, schema_json, &w, err);
}

const char *ev_codec_schema_text(ev_codec_t *c, const char *full_name)
{
    ev_schema_t *e = ev_find(c, full_name);
    return e ? e->text : NULL;
}

json_t *ev_codec_types_for_topic(ev_codec_t *c, const char *topic)
{
    json_t *out = json_array();
    for (size_t i = 0; i < c->n_schemas; i++)
        if (ev_has_topic(&c->schemas[i], topic))
            json_array_append_new(out, json_string(c->schemas[i].full_name));
    return out;
}

/* e's encoder, compiled on first use. */
static const ev_encoder_t *ev_schema_encoder(ev_codec_t *c, ev_schema_t *e)
{
    ev_encoder_t *enc = __atomic_load_n(&e->encoder, __ATOMIC_ACQUIRE);
    if (enc)
        return enc;
    pthread_mutex_lock(&c->lock);
    enc = e->encoder;
    if (!enc) {
        enc = ev_encoder_new(c->defaults, e->schema);
        __atomic_store_n(&e->encoder, enc, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&c->lock);
    return enc;
}

static void ev_frame_header(unsigned char *buf, int32_t id)
{
    buf[0] = 0;
    buf[1] = (unsigned char)((uint32_t)id >> 24);
    buf[2] = (unsigned char)((uint32_t)id >> 16);
    buf[3] = (unsigned char)((uint32_t)id >> 8);
    buf[4] = (unsigned char)id;
}

/* The avro-c path: value converts through a generic value, then is sized and written. What the
 * encoder does not take comes here, and every encode error message is made here. */
static int ev_encode_generic(ev_codec_t *c, const char *topic, ev_schema_t *e, const json_t *value,
                             void **out, size_t *len, es_err_t *err)
{
    const char *full_name = e->full_name;
    int rc = -1;
    int32_t id = -1;
    avro_value_t v;
    bool have_v = false;
    avro_writer_t wr = NULL;
    unsigned char *buf = NULL;
    if (ev_value_take(c, &e->pool, e->iface, &v) != 0) {
        es_set(err, ES_EINTERNAL, "avro value for '%s': %s", full_name, avro_strerror());
        goto out;
    }
    have_v = true;
    if (ev_json_to_avro(c->defaults, value, &v, err) < 0)
        goto out;
    if (ev_subject_id(c, topic, e, &id, err) < 0)
        goto out;
    size_t size = 0;
    if (avro_value_sizeof(&v, &size) != 0) {
        es_set(err, ES_EINVAL, "sizing '%s': %s", full_name, avro_strerror());
        goto out;
    }
    buf = xmalloc(5 + size);
    ev_frame_header(buf, id);
    wr = avro_writer_memory((const char *)buf + 5, (int64_t)size);
    if (avro_value_write(wr, &v) != 0) {
        es_set(err, ES_EINTERNAL, "writing '%s': %s", full_name, avro_strerror());
        goto out;
    }
    *out = buf;
    *len = 5 + size;
    buf = NULL;
    rc = 0;
out:
    if (wr)
        avro_writer_free(wr);
    if (have_v) /* after a failure it may be half filled: reset all the same */
        ev_value_give(c, &e->pool, &v, rc == 0 && *len <= EV_POOL_KEEP_BYTES);
    free(buf);
    return rc;
}

int ev_encode(ev_codec_t *c, const char *topic, const char *full_name, const json_t *value,
              void **out, size_t *len, es_err_t *err)
{
    ev_schema_t *e = ev_find(c, full_name);
    if (!e) {
        es_set(err, ES_ENOTFOUND, "unknown record '%s'", full_name);
        return -1;
    }
    if (!value) {
        es_set(err, ES_EINVAL, "no value to encode as '%s'", full_name);
        return -1;
    }
    void *buf = NULL;
    size_t n = 0;
    if (!ev_encoder_write(ev_schema_encoder(c, e), value, &buf, &n))
        return ev_encode_generic(c, topic, e, value, out, len, err);
    int32_t id = -1;
    if (ev_subject_id(c, topic, e, &id, err) < 0) {
        free(buf);
        return -1;
    }
    ev_frame_header(buf, id);
    *out = buf;
    *len = n;
    return 0;
}

int32_t ev_frame_schema_id(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    if (!buf || len < 5 || p[0] != 0)
        return -1;
    uint32_t id = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
    return id > INT32_MAX ? -1 : (int32_t)id;
}

/* The writer entry for id: cached, or fetched from the registry. */
static ev_writer_t *ev_writer_get(ev_codec_t *c, int32_t id, es_err_t *err)
{
    pthread_mutex_lock(&c->lock);
    ev_writer_t *w = ev_writer_find(c, id);
    pthread_mutex_unlock(&c->lock);
    if (w)
        return w;
    if (!c->sr) {
        es_set(err, ES_EINVAL, "unknown schema id %d", (int)id);
        return NULL;
    }
    es_err_t ferr = ES_ERR_INIT;
    char *text = sr_client_get_schema(c->sr, id, &ferr);
    if (!text) {
        /* an id the registry does not know is bad input; an unreachable registry is not */
        es_set(err, ferr.code == ES_ENOTFOUND ? ES_EINVAL : ferr.code, "%s", ferr.msg);
        return NULL;
    }
    int rc = ev_writer_from_text(c, id, text, &w, err);
    free(text);
    return rc == 0 ? w : NULL;
}

int ev_codec_writer_info(ev_codec_t *c, int32_t id, const char **full_name, bool *current,
                         es_err_t *err)
{
    ev_writer_t *w = ev_writer_get(c, id, err);
    if (!w)
        return -1;
    *full_name = w->full_name;
    *current = w->current;
    return 0;
}

int ev_decode(ev_codec_t *c, const void *buf, size_t len, const char **full_name, json_t **value,
              es_err_t *err)
{
    int rc = -1;
    ev_writer_t *w = NULL;
    const unsigned char *p = buf;
    if (!buf || len < 5) {
        es_set(err, ES_EINVAL, "message of %zu bytes is shorter than the wire header", len);
        goto out;
    }
    if (p[0] != 0) {
        es_set(err, ES_EINVAL, "bad magic byte 0x%02x", p[0]);
        goto out;
    }
    int32_t id = ev_frame_schema_id(buf, len);
    if (id < 0) {
        es_set(err, ES_EINVAL, "bad schema id in the wire header");
        goto out;
    }
    w = ev_writer_get(c, id, err);
    if (!w)
        goto out;
    json_t *j = ev_reader_decode(w->reader, w->full_name, id, p + 5, len - 5, err);
    if (!j)
        goto out;
    *value = j;
    if (full_name)
        *full_name = w->full_name;
    rc = 0;
out:
    return rc;
}
