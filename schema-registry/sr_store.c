#include "sr_store.h"
#include "es_log.h"
#include "es_mem.h"
#include "sr_compat.h"
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_LEVEL SR_LEVEL_BACKWARD /* DESIGN.md §3 */

struct sch {
    long id;
    char *text;          /* as stored in the log */
    char *canon;         /* normalised: the identity of a schema */
    sr_schema_t *parsed; /* NULL if the log holds a schema we cannot parse */
};

struct ver {
    long version;
    long id;
    bool deleted;
};

struct subj {
    char *name;
    struct ver *v; /* sorted by version */
    size_t n, cap;
    int level; /* -1: none of its own */
};

struct sr_store {
    pthread_rwlock_t lock; /* guards everything below */
    pthread_mutex_t write; /* one change at a time, log write included */
    sr_store_log_fn log;
    void *log_arg;
    struct sch *s;
    size_t n_s, cap_s;
    struct subj *sub;
    size_t n_sub, cap_sub;
    int level;
    long max_id;
};

sr_store_t *sr_store_new(sr_store_log_fn log, void *arg)
{
    sr_store_t *st = xcalloc(1, sizeof *st);
    pthread_rwlock_init(&st->lock, NULL);
    pthread_mutex_init(&st->write, NULL);
    st->log = log;
    st->log_arg = arg;
    st->level = DEFAULT_LEVEL;
    return st;
}

void sr_store_free(sr_store_t *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n_s; i++) {
        free(st->s[i].text);
        free(st->s[i].canon);
        sr_schema_free(st->s[i].parsed);
    }
    for (size_t i = 0; i < st->n_sub; i++) {
        free(st->sub[i].name);
        free(st->sub[i].v);
    }
    free(st->s);
    free(st->sub);
    pthread_rwlock_destroy(&st->lock);
    pthread_mutex_destroy(&st->write);
    free(st);
}

/* ---- lookups (caller holds a lock) --------------------------------------------------------- */

static struct sch *find_id(sr_store_t *st, long id)
{
    for (size_t i = 0; i < st->n_s; i++)
        if (st->s[i].id == id)
            return &st->s[i];
    return NULL;
}

static struct sch *find_canon(sr_store_t *st, const char *canon)
{
    for (size_t i = 0; i < st->n_s; i++)
        if (strcmp(st->s[i].canon, canon) == 0)
            return &st->s[i];
    return NULL;
}

static struct subj *find_subject(sr_store_t *st, const char *name)
{
    for (size_t i = 0; i < st->n_sub; i++)
        if (strcmp(st->sub[i].name, name) == 0)
            return &st->sub[i];
    return NULL;
}

static struct subj *get_subject(sr_store_t *st, const char *name)
{
    struct subj *sj = find_subject(st, name);
    if (sj)
        return sj;
    if (st->n_sub == st->cap_sub) {
        st->cap_sub = st->cap_sub ? 2 * st->cap_sub : 16;
        st->sub = xrealloc(st->sub, st->cap_sub * sizeof *st->sub);
    }
    sj = &st->sub[st->n_sub++];
    *sj = (struct subj){.name = xstrdup(name), .level = -1};
    return sj;
}

static size_t live_count(const struct subj *sj)
{
    size_t n = 0;
    for (size_t i = 0; sj && i < sj->n; i++)
        n += !sj->v[i].deleted;
    return n;
}

/* The subject name with at least one live version into *out: 0, or SR_ESUBJECT_NOT_FOUND with
 * err set. */
static int live_subject(sr_store_t *st, const char *name, struct subj **out, es_err_t *err)
{
    struct subj *sj = find_subject(st, name);
    if (live_count(sj) == 0) {
        es_set(err, ES_ENOTFOUND, "subject '%s' not found", name);
        return SR_ESUBJECT_NOT_FOUND;
    }
    *out = sj;
    return 0;
}

static struct ver *latest_live(struct subj *sj)
{
    for (size_t i = sj->n; i-- > 0;)
        if (!sj->v[i].deleted)
            return &sj->v[i];
    return NULL;
}

/* "latest", "-1" or 1..2^31-1 into *v (0 for latest); SR_EINVALID_VERSION otherwise. */
static int parse_version(const char *s, long *v, es_err_t *err)
{
    if (strcmp(s, "latest") == 0 || strcmp(s, "-1") == 0) {
        *v = 0;
        return 0;
    }
    char *end;
    errno = 0;
    long n = strtol(s, &end, 10);
    if (errno || end == s || *end || n < 1 || n > INT_MAX) {
        es_set(err, ES_EINVAL,
               "the specified version '%s' is not a valid version id, allowed values are between "
               "[1, 2^31-1] and the string \"latest\"",
               s);
        return SR_EINVALID_VERSION;
    }
    *v = n;
    return 0;
}

/* A live version of sj (v 0: the latest), or NULL with SR_EVERSION_NOT_FOUND. */
static struct ver *find_version(struct subj *sj, long v, const char *text, es_err_t *err)
{
    if (v == 0) {
        struct ver *l = latest_live(sj);
        if (l)
            return l;
    }
    for (size_t i = 0; i < sj->n; i++)
        if (sj->v[i].version == v && !sj->v[i].deleted)
            return &sj->v[i];
    es_set(err, ES_ENOTFOUND, "version %s not found", text);
    return NULL;
}

/* ---- applying records ---------------------------------------------------------------------- */

static void add_schema(sr_store_t *st, long id, const char *text)
{
    if (find_id(st, id))
        return;
    es_err_t err = ES_ERR_INIT;
    sr_schema_t *p = sr_schema_parse(text, strlen(text), &err);
    if (!p)
        es_warn("schema id %ld in the log does not parse: %s", id, err.msg);
    if (st->n_s == st->cap_s) {
        st->cap_s = st->cap_s ? 2 * st->cap_s : 16;
        st->s = xrealloc(st->s, st->cap_s * sizeof *st->s);
    }
    st->s[st->n_s++] =
        (struct sch){id, xstrdup(text), xstrdup(p ? sr_schema_canonical(p) : text), p};
    if (id > st->max_id)
        st->max_id = id;
}

static void put_version(struct subj *sj, long version, long id, bool deleted)
{
    size_t i = 0;
    while (i < sj->n && sj->v[i].version < version)
        i++;
    if (i < sj->n && sj->v[i].version == version) {
        sj->v[i] = (struct ver){version, id, deleted};
        return;
    }
    if (sj->n == sj->cap) {
        sj->cap = sj->cap ? 2 * sj->cap : 8;
        sj->v = xrealloc(sj->v, sj->cap * sizeof *sj->v);
    }
    memmove(&sj->v[i + 1], &sj->v[i], (sj->n - i) * sizeof *sj->v);
    sj->v[i] = (struct ver){version, id, deleted};
    sj->n++;
}

static void drop_version(struct subj *sj, long version)
{
    for (size_t i = 0; i < sj->n; i++) {
        if (sj->v[i].version == version) {
            memmove(&sj->v[i], &sj->v[i + 1], (sj->n - i - 1) * sizeof *sj->v);
            sj->n--;
            return;
        }
    }
}

static void apply_locked(sr_store_t *st, json_t *key, json_t *value)
{
    const char *type = json_string_value(json_object_get(key, "keytype"));
    json_t *subject = json_object_get(key, "subject");
    if (type && strcmp(type, "SCHEMA") == 0) {
        json_t *ver = json_object_get(key, "version");
        if (!json_is_string(subject) || !json_is_integer(ver))
            goto bad;
        struct subj *sj = get_subject(st, json_string_value(subject));
        if (!value) {
            drop_version(sj, json_integer_value(ver));
            return;
        }
        json_t *id = json_object_get(value, "id");
        const char *schema = json_string_value(json_object_get(value, "schema"));
        if (!json_is_integer(id) || !schema)
            goto bad;
        add_schema(st, json_integer_value(id), schema);
        put_version(sj, json_integer_value(ver), json_integer_value(id),
                    json_is_true(json_object_get(value, "deleted")));
        return;
    }
    if (type && strcmp(type, "CONFIG") == 0) {
        int level = -1;
        if (value) {
            level = sr_level_parse(json_string_value(json_object_get(value, "compatibilityLevel")));
            if (level < 0)
                goto bad;
        }
        if (json_is_string(subject))
            get_subject(st, json_string_value(subject))->level = level;
        else
            st->level = level < 0 ? DEFAULT_LEVEL : level;
        return;
    }
    return; /* NOOP, DELETE_SUBJECT, MODE, ...: nothing we keep */
bad:
    es_warn("skipping a malformed %s record in the schema log", type);
}

int sr_store_apply(sr_store_t *st, const char *key, size_t klen, const char *value, size_t vlen)
{
    json_t *k = json_loadb(key, klen, 0, NULL);
    json_t *v = value && vlen ? json_loadb(value, vlen, 0, NULL) : NULL;
    if (!json_is_object(k) || (value && vlen && !json_is_object(v))) {
        es_warn("skipping a record of the schema log that is not a JSON object");
    } else {
        pthread_rwlock_wrlock(&st->lock);
        apply_locked(st, k, v);
        pthread_rwlock_unlock(&st->lock);
    }
    json_decref(k);
    json_decref(v);
    return 0;
}

/* Writes a record to the log, then applies it. Caller holds st->write. */
static int commit(sr_store_t *st, json_t *key /* stolen */, json_t *value /* stolen, NULL */,
                  es_err_t *err)
{
    int rc = 0;
    char *k = json_dumps(key, JSON_COMPACT);
    char *v = value ? json_dumps(value, JSON_COMPACT) : NULL;
    if (st->log(st->log_arg, k, v, err)) {
        rc = SR_ESTORE;
        goto out;
    }
    pthread_rwlock_wrlock(&st->lock);
    apply_locked(st, key, value);
    pthread_rwlock_unlock(&st->lock);
out:
    free(k);
    free(v);
    json_decref(key);
    json_decref(value);
    return rc;
}

static json_t *schema_key(const char *subject, long version)
{
    return json_pack("{s:s, s:s, s:I, s:i}", "keytype", "SCHEMA", "subject", subject, "version",
                     (json_int_t)version, "magic", 1);
}

static json_t *schema_value(const char *subject, long version, long id, const char *text,
                            bool deleted)
{
    return json_pack("{s:s, s:I, s:I, s:s, s:b}", "subject", subject, "version",
                     (json_int_t)version, "id", (json_int_t)id, "schema", text, "deleted", deleted);
}

/* ---- operations ---------------------------------------------------------------------------- */

size_t sr_store_schema_count(sr_store_t *st)
{
    pthread_rwlock_rdlock(&st->lock);
    size_t n = st->n_s;
    pthread_rwlock_unlock(&st->lock);
    return n;
}

static sr_schema_t *parse_candidate(const char *schema_type, const char *text, size_t len,
                                    es_err_t *err)
{
    if (schema_type && strcmp(schema_type, "AVRO") != 0) {
        es_set(err, ES_EINVAL, "invalid schema: schema type '%s' is not supported", schema_type);
        return NULL;
    }
    es_err_t perr = ES_ERR_INIT;
    sr_schema_t *s = sr_schema_parse(text, len, &perr);
    if (!s)
        es_set(err, ES_EINVAL, "invalid schema: %s", perr.msg);
    return s;
}

static struct ver *live_with_canon(sr_store_t *st, struct subj *sj, const char *canon)
{
    for (size_t i = 0; sj && i < sj->n; i++) {
        struct sch *s = find_id(st, sj->v[i].id);
        if (!sj->v[i].deleted && s && strcmp(s->canon, canon) == 0)
            return &sj->v[i];
    }
    return NULL;
}

/* The parsed live schemas of sj, oldest first (borrowed pointers; array owned by caller). */
static const sr_schema_t **live_schemas(sr_store_t *st, struct subj *sj, size_t *n)
{
    const sr_schema_t **prev = xcalloc(sj ? sj->n + 1 : 1, sizeof *prev);
    *n = 0;
    for (size_t i = 0; sj && i < sj->n; i++) {
        struct sch *s = sj->v[i].deleted ? NULL : find_id(st, sj->v[i].id);
        if (s && s->parsed)
            prev[(*n)++] = s->parsed;
    }
    return prev;
}

static int level_of(sr_store_t *st, struct subj *sj)
{
    return sj && sj->level >= 0 ? sj->level : st->level;
}

static void join_messages(es_err_t *err, const char *subject, json_t *messages)
{
    char buf[200] = "";
    size_t used = 0;
    for (size_t i = 0; i < json_array_size(messages) && used + 1 < sizeof buf; i++)
        used += (size_t)snprintf(buf + used, sizeof buf - used, "%s%s", i ? "; " : "",
                                 json_string_value(json_array_get(messages, i)));
    es_set(err, ES_ECONFLICT,
           "schema being registered is incompatible with an earlier schema for subject '%s': %s",
           subject, buf);
}

int sr_store_register(sr_store_t *st, const char *subject, const char *schema_type,
                      const char *text, size_t len, int *id, json_t *messages, es_err_t *err)
{
    sr_schema_t *cand = parse_candidate(schema_type, text, len, err);
    if (!cand)
        return SR_EINVALID_SCHEMA;
    int rc = 0;
    json_t *msgs = json_array();
    /* holding the writer mutex, nothing changes under us: read without the rwlock */
    pthread_mutex_lock(&st->write);
    struct subj *sj = find_subject(st, subject);
    struct ver *same = live_with_canon(st, sj, sr_schema_canonical(cand));
    if (same) {
        *id = (int)same->id;
        goto out;
    }
    size_t n;
    const sr_schema_t **prev = live_schemas(st, sj, &n);
    bool ok = sr_compat_check((sr_level_t)level_of(st, sj), cand, prev, n, msgs);
    free(prev);
    if (!ok) {
        join_messages(err, subject, msgs);
        if (messages)
            json_array_extend(messages, msgs);
        rc = SR_ECONFLICT;
        goto out;
    }
    struct sch *known = find_canon(st, sr_schema_canonical(cand));
    long new_id = known ? known->id : st->max_id + 1;
    long version = sj && sj->n ? sj->v[sj->n - 1].version + 1 : 1;
    const char *stored = known ? known->text : sr_schema_text(cand);
    rc = commit(st, schema_key(subject, version),
                schema_value(subject, version, new_id, stored, false), err);
    if (!rc) {
        *id = (int)new_id;
        es_info("registered schema id %ld as version %ld of subject '%s'", new_id, version,
                subject);
    }
out:
    pthread_mutex_unlock(&st->write);
    json_decref(msgs);
    sr_schema_free(cand);
    return rc;
}

int sr_store_lookup(sr_store_t *st, const char *subject, const char *text, size_t len, json_t **out,
                    es_err_t *err)
{
    sr_schema_t *cand = parse_candidate(NULL, text, len, err);
    if (!cand)
        return SR_EINVALID_SCHEMA;
    struct subj *sj = NULL;
    pthread_rwlock_rdlock(&st->lock);
    int rc = live_subject(st, subject, &sj, err);
    if (rc)
        goto out;
    struct ver *v = live_with_canon(st, sj, sr_schema_canonical(cand));
    if (!v) {
        es_set(err, ES_ENOTFOUND, "schema not found");
        rc = SR_ESCHEMA_NOT_FOUND;
        goto out;
    }
    *out = json_pack("{s:s, s:I, s:I, s:s}", "subject", subject, "id", (json_int_t)v->id, "version",
                     (json_int_t)v->version, "schema", find_id(st, v->id)->text);
out:
    pthread_rwlock_unlock(&st->lock);
    sr_schema_free(cand);
    return rc;
}

int sr_store_get_schema(sr_store_t *st, long id, json_t **out, es_err_t *err)
{
    int rc = 0;
    pthread_rwlock_rdlock(&st->lock);
    struct sch *s = find_id(st, id);
    if (s) {
        *out = json_pack("{s:s}", "schema", s->text);
    } else {
        es_set(err, ES_ENOTFOUND, "schema %ld not found", id);
        rc = SR_ESCHEMA_NOT_FOUND;
    }
    pthread_rwlock_unlock(&st->lock);
    return rc;
}

int sr_store_get_schema_versions(sr_store_t *st, long id, json_t **out, es_err_t *err)
{
    int rc = 0;
    pthread_rwlock_rdlock(&st->lock);
    if (!find_id(st, id)) {
        es_set(err, ES_ENOTFOUND, "schema %ld not found", id);
        rc = SR_ESCHEMA_NOT_FOUND;
        goto out;
    }
    *out = json_array();
    for (size_t i = 0; i < st->n_sub; i++)
        for (size_t j = 0; j < st->sub[i].n; j++)
            if (st->sub[i].v[j].id == id && !st->sub[i].v[j].deleted)
                json_array_append_new(*out,
                                      json_pack("{s:s, s:I}", "subject", st->sub[i].name, "version",
                                                (json_int_t)st->sub[i].v[j].version));
out:
    pthread_rwlock_unlock(&st->lock);
    return rc;
}

json_t *sr_store_subjects(sr_store_t *st)
{
    json_t *a = json_array();
    pthread_rwlock_rdlock(&st->lock);
    for (size_t i = 0; i < st->n_sub; i++)
        if (live_count(&st->sub[i]))
            json_array_append_new(a, json_string(st->sub[i].name));
    pthread_rwlock_unlock(&st->lock);
    return a;
}

int sr_store_versions(sr_store_t *st, const char *subject, json_t **out, es_err_t *err)
{
    struct subj *sj = NULL;
    pthread_rwlock_rdlock(&st->lock);
    int rc = live_subject(st, subject, &sj, err);
    if (!rc) {
        *out = json_array();
        for (size_t i = 0; i < sj->n; i++)
            if (!sj->v[i].deleted)
                json_array_append_new(*out, json_integer(sj->v[i].version));
    }
    pthread_rwlock_unlock(&st->lock);
    return rc;
}

int sr_store_get_version(sr_store_t *st, const char *subject, const char *version, json_t **out,
                         es_err_t *err)
{
    long v;
    int rc = parse_version(version, &v, err);
    if (rc)
        return rc;
    struct subj *sj = NULL;
    struct ver *ver = NULL;
    pthread_rwlock_rdlock(&st->lock);
    rc = live_subject(st, subject, &sj, err);
    if (!rc && !(ver = find_version(sj, v, version, err)))
        rc = SR_EVERSION_NOT_FOUND;
    if (!rc)
        *out = json_pack("{s:s, s:I, s:I, s:s}", "subject", subject, "version",
                         (json_int_t)ver->version, "id", (json_int_t)ver->id, "schema",
                         find_id(st, ver->id)->text);
    pthread_rwlock_unlock(&st->lock);
    return rc;
}

int sr_store_delete(sr_store_t *st, const char *subject, const char *version, json_t **out,
                    es_err_t *err)
{
    long v = 0;
    int rc = version ? parse_version(version, &v, err) : 0;
    if (rc)
        return rc;
    struct subj *sj = NULL;
    pthread_mutex_lock(&st->write);
    rc = live_subject(st, subject, &sj, err);
    if (rc)
        goto out;
    /* the versions to delete, copied: commit() changes sj->v */
    size_t n = 0;
    struct ver *todo = xcalloc(sj->n, sizeof *todo);
    if (version) {
        struct ver *one = find_version(sj, v, version, err);
        if (one)
            todo[n++] = *one;
        else
            rc = SR_EVERSION_NOT_FOUND;
    } else {
        for (size_t i = 0; i < sj->n; i++)
            if (!sj->v[i].deleted)
                todo[n++] = sj->v[i];
    }
    json_t *done = json_array();
    for (size_t i = 0; i < n && !rc; i++) {
        struct sch *s = find_id(st, todo[i].id);
        rc = commit(st, schema_key(subject, todo[i].version),
                    schema_value(subject, todo[i].version, todo[i].id, s->text, true), err);
        if (!rc)
            json_array_append_new(done, json_integer(todo[i].version));
    }
    free(todo);
    if (rc) {
        json_decref(done);
    } else if (version) {
        *out = json_incref(json_array_get(done, 0));
        json_decref(done);
    } else {
        *out = done;
    }
out:
    pthread_mutex_unlock(&st->write);
    return rc;
}

int sr_store_test(sr_store_t *st, const char *subject, const char *version, const char *text,
                  size_t len, bool *ok, json_t *messages, es_err_t *err)
{
    long v = 0;
    int rc = version ? parse_version(version, &v, err) : 0;
    if (rc)
        return rc;
    sr_schema_t *cand = parse_candidate(NULL, text, len, err);
    if (!cand)
        return SR_EINVALID_SCHEMA;
    pthread_rwlock_rdlock(&st->lock);
    struct subj *sj = find_subject(st, subject);
    size_t n = 0;
    const sr_schema_t **prev = NULL;
    if (!version) {
        prev = live_schemas(st, sj, &n); /* a subject with no version: compatible */
    } else if ((rc = live_subject(st, subject, &sj, err))) {
        goto out;
    } else {
        struct ver *one = find_version(sj, v, version, err);
        if (!one) {
            rc = SR_EVERSION_NOT_FOUND;
            goto out;
        }
        struct sch *s = find_id(st, one->id);
        prev = xcalloc(1, sizeof *prev);
        if (s->parsed)
            prev[n++] = s->parsed;
    }
    *ok = sr_compat_check((sr_level_t)level_of(st, sj), cand, prev, n, messages);
out:
    pthread_rwlock_unlock(&st->lock);
    free(prev);
    sr_schema_free(cand);
    return rc;
}

int sr_store_get_level(sr_store_t *st, const char *subject, bool default_to_global,
                       const char **level, es_err_t *err)
{
    int rc = 0;
    pthread_rwlock_rdlock(&st->lock);
    struct subj *sj = subject ? find_subject(st, subject) : NULL;
    if (subject && !(sj && sj->level >= 0) && !default_to_global) {
        es_set(err, ES_ENOTFOUND,
               "subject '%s' does not have subject-level compatibility configured", subject);
        rc = SR_ELEVEL_NOT_FOUND;
    } else {
        *level = sr_level_name((sr_level_t)level_of(st, sj));
    }
    pthread_rwlock_unlock(&st->lock);
    return rc;
}

static json_t *config_key(const char *subject)
{
    return json_pack("{s:s, s:o, s:i}", "keytype", "CONFIG", "subject",
                     subject ? json_string(subject) : json_null(), "magic", 0);
}

int sr_store_set_level(sr_store_t *st, const char *subject, const char *level, es_err_t *err)
{
    int l = sr_level_parse(level);
    if (l < 0) {
        es_set(err, ES_EINVAL,
               "invalid compatibility level, valid values are none, backward, forward, full, "
               "backward_transitive, forward_transitive, and full_transitive");
        return SR_EINVALID_LEVEL;
    }
    pthread_mutex_lock(&st->write);
    int rc = commit(st, config_key(subject),
                    json_pack("{s:s}", "compatibilityLevel", sr_level_name((sr_level_t)l)), err);
    pthread_mutex_unlock(&st->write);
    return rc;
}

int sr_store_delete_level(sr_store_t *st, const char *subject, const char **old, es_err_t *err)
{
    pthread_mutex_lock(&st->write);
    int rc = sr_store_get_level(st, subject, false, old, err);
    if (!rc)
        rc = commit(st, config_key(subject), NULL, err);
    pthread_mutex_unlock(&st->write);
    return rc;
}
