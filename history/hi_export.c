/* eventshop-history export (issue 11, item 1): every selected context's events, read_committed,
 * as Avro Object Container Files in Kafka Connect's storage-sink layout
 * DIR/<topic>/partition=<p>/<topic>+<p>+<first offset, 10 digits>.avro, one envelope schema per
 * topic (hi_avro.h), rolled every N events, and DIR/manifest.json: the resolved offset range of
 * every topic-partition, its record count and each file's SHA-256. The manifest is rewritten
 * after each file, so an interrupted run resumes (same --out) after the last file it finished;
 * file boundaries do not depend on where it was interrupted, so the bytes are those of an
 * uninterrupted run. Personal data: a forgotten user's sealed fields and blind index are nulled
 * (named in the record's "shredded"); with --unseal, a live user's are opened (audited). */
#include "es_db.h"
#include "es_env.h"
#include "es_kafka.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_time.h"
#include "ev_codec.h"
#include "hi.h"
#include "hi_avro.h"
#include "hi_positions.h"
#include "sr_client.h"
#include "users_crypto.h"
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HI_STALL_MS 60000 /* no progress below the end this long: an open transaction */

static volatile sig_atomic_t hi_export_stopping;

static void hi_export_on_signal(int sig)
{
    (void)sig;
    hi_export_stopping = 1;
}

struct hi_topic {
    char name[128];
    json_t *envelope, *names; /* the envelope schema and its named types */
    char *schema_text;
    json_t *branches; /* record full name -> branch index */
};

struct hi_export {
    const char *dir, *contexts, *from_s, *to_s;
    int roll;
    bool unseal;
    hi_spec_t from, to;
    es_kafka_t *rk;
    sr_client_t *sr;
    ev_codec_t *codec;
    json_t *forgotten; /* user id -> true */
    json_t *keys;      /* --unseal: user id -> key (hex) */
    json_t *manifest;
    hi_progress_t pg;
};

/* The file being written: records of one partition from first, encoded back to back. */
struct hi_file {
    int64_t first, last, count;
    hi_buf_t data;
};

static int hi_export_usage(FILE *f, int rc)
{
    fputs("usage: eventshop-history export --out DIR [--contexts " HI_DEFAULT_CONTEXTS "]\n"
          "         [--from TIME|POSITIONS] [--to TIME|POSITIONS] [--roll N] [--unseal]\n"
          "  Writes the contexts' events (read_committed) as Avro files\n"
          "  DIR/<topic>/partition=<p>/<topic>+<p>+<first offset>.avro (a new file every N "
          "events,\n"
          "  default 10000) and DIR/manifest.json (offset ranges, counts, SHA-256 per file).\n"
          "  TIME: ISO-8601 (2024-05-01T12:00:00Z), resolved through the record timestamps:\n"
          "  --from takes events at or after it, --to events at or before it. POSITIONS:\n"
          "  TOPIC:PARTITION=OFFSET,... (--to: the first offset left out). Without --to: the\n"
          "  end of every partition when the run starts. Re-running with the same --out\n"
          "  resumes an interrupted run. A forgotten user's sealed fields come out null (named\n"
          "  in the record's 'shredded'); others stay sealed unless --unseal, which opens them\n"
          "  with the keys database (EVENTSHOP_MYSQL_KEYS_USER, _PASSWORD_FILE; logged).\n"
          "  env: EVENTSHOP_KAFKA_BROKERS, EVENTSHOP_REGISTRY_URL (as the projectors)\n",
          f);
    return rc;
}

static int hi_export_args(struct hi_export *x, int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},  {"contexts", required_argument, NULL, 'c'},
        {"from", required_argument, NULL, 'f'}, {"to", required_argument, NULL, 't'},
        {"roll", required_argument, NULL, 'r'}, {"unseal", no_argument, NULL, 'u'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0}};
    x->contexts = HI_DEFAULT_CONTEXTS;
    x->roll = 10000;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        switch (c) {
        case 'o':
            x->dir = optarg;
            break;
        case 'c':
            x->contexts = optarg;
            break;
        case 'f':
            x->from_s = optarg;
            break;
        case 't':
            x->to_s = optarg;
            break;
        case 'r':
            x->roll = atoi(optarg);
            break;
        case 'u':
            x->unseal = true;
            break;
        case 'h':
            return hi_export_usage(stdout, 3);
        default:
            return hi_export_usage(stderr, 2);
        }
    }
    if (!x->dir || optind < argc || x->roll <= 0)
        return hi_export_usage(stderr, 2);
    es_err_t err = ES_ERR_INIT;
    if ((x->from_s && hi_spec_parse(x->from_s, &x->from, &err)) ||
        (x->to_s && hi_spec_parse(x->to_s, &x->to, &err))) {
        fprintf(stderr, "eventshop-history export: %s\n", err.msg);
        return 2;
    }
    return 0;
}

/* --- the ranges and the manifest ------------------------------------------------------------ */

/* The manifest's entry of one topic: its partitions' ranges, from the options. */
static json_t *hi_topic_ranges(struct hi_export *x, const char *topic, es_err_t *err)
{
    int n = es_kafka_partition_count(x->rk, topic, err);
    if (n < 0)
        return NULL;
    int64_t *from = xcalloc((size_t)n, sizeof *from), *to = xcalloc((size_t)n, sizeof *to);
    json_t *parts = NULL;
    if (!hi_resolve(x->rk, x->from_s ? &x->from : NULL, false, topic, n, from, err) &&
        !hi_resolve(x->rk, x->to_s ? &x->to : NULL, true, topic, n, to, err)) {
        parts = json_object();
        for (int p = 0; p < n; p++) {
            char key[16];
            snprintf(key, sizeof key, "%d", p);
            json_object_set_new(parts, key,
                                json_pack("{s:I, s:I, s:I, s:b, s:[]}", "from", (json_int_t)from[p],
                                          "to", (json_int_t)(to[p] > from[p] ? to[p] : from[p]),
                                          "records", (json_int_t)0, "complete", 0, "files"));
        }
    }
    free(from);
    free(to);
    return parts;
}

static char *hi_path(const struct hi_export *x, const char *name)
{
    return xasprintf("%s/%s", x->dir, name);
}

static int hi_manifest_save(const struct hi_export *x, es_err_t *err)
{
    char *tmp = hi_path(x, "manifest.json.tmp"), *path = hi_path(x, "manifest.json");
    int rc =
        json_dump_file(x->manifest, tmp, JSON_INDENT(2) | JSON_PRESERVE_ORDER) || rename(tmp, path)
            ? es_set(err, ES_EIO, "writing %s: %s", path, strerror(errno))
            : 0;
    free(tmp);
    free(path);
    return rc;
}

/* A new manifest from the options, or the one in DIR (resume) when it was made with the same. */
static int hi_manifest_open(struct hi_export *x, es_err_t *err)
{
    char *path = hi_path(x, "manifest.json");
    json_t *m = access(path, F_OK) ? NULL : json_load_file(path, 0, NULL);
    json_t *want =
        json_pack("{s:i, s:s, s:s?, s:s?, s:i, s:b}", "format", 1, "contexts", x->contexts,
                  "from_spec", x->from_s, "to_spec", x->to_s, "roll", x->roll, "unseal", x->unseal);
    int rc = -1;
    if (m) {
        const char *k;
        json_t *v;
        json_object_foreach(want, k, v) if (!json_equal(v, json_object_get(m, k)))
        {
            es_set(err, ES_ECONFLICT, "%s holds an export made with another %s: use another --out",
                   x->dir, k);
            goto out;
        }
        fprintf(stderr, "export: resuming the run recorded in %s\n", path);
        x->manifest = json_incref(m);
        rc = 0;
        goto out;
    }
    char at[32];
    json_object_set_new(want, "started_at",
                        json_string(hi_time_format((int64_t)time(NULL) * 1000, at)));
    if (x->from.is_time)
        json_object_set_new(want, "from_time_ms", json_integer(x->from.time_ms));
    if (x->to.is_time)
        json_object_set_new(want, "to_time_ms", json_integer(x->to.time_ms));
    json_t *topics = json_object();
    json_object_set_new(want, "topics", topics);
    char *list = xstrdup(x->contexts), *save = NULL;
    for (char *c = strtok_r(list, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
        char topic[128];
        json_t *parts = hi_topic_ranges(x, es_topic(topic, sizeof topic, c, "events"), err);
        if (!parts) {
            free(list);
            goto out;
        }
        json_object_set_new(topics, topic, json_pack("{s:o}", "partitions", parts));
    }
    free(list);
    x->manifest = json_incref(want);
    rc = hi_manifest_save(x, err);
out:
    json_decref(want);
    json_decref(m);
    free(path);
    return rc;
}

/* --- personal data ---------------------------------------------------------------------------- */

/* Records UserForgotten's user id into x->forgotten. */
static int hi_forgotten_msg(const es_kafka_msg_t *m, void *arg)
{
    struct hi_export *x = arg;
    const char *type = NULL;
    json_t *v = NULL;
    es_err_t err = ES_ERR_INIT;
    if (m->value && !ev_decode(x->codec, m->value, m->len, &type, &v, &err) &&
        !strcmp(type, "eventshop.users.UserForgotten"))
        json_object_set_new(x->forgotten, json_string_value(json_object_get(v, "user_id")),
                            json_true());
    json_decref(v);
    return 0;
}

/* The forgotten users (UserForgotten on users.events, to its end now: forgetting after the
 * exported range counts), and with --unseal the live users' keys. */
static int hi_personal_open(struct hi_export *x, es_err_t *err)
{
    x->forgotten = json_object();
    int n = es_kafka_partition_count(x->rk, "users.events", err);
    for (int p = 0; p < n; p++)
        if (es_kafka_read_partition("users.events", p, hi_forgotten_msg, x, 600000, err))
            return -1;
    if (n < 0 || !x->unseal)
        return n < 0 ? -1 : 0;
    if (users_crypto_init(err))
        return -1;
    es_db_t *db = es_db_open("keys", err);
    json_t *rows = db ? es_db_query(db,
                                    "SELECT user_id AS u, LOWER(HEX(key_material)) AS k FROM "
                                    "user_keys",
                                    NULL, 0, err)
                      : NULL;
    es_db_close(db);
    if (!rows)
        return -1;
    x->keys = json_object();
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) json_object_set(
        x->keys, json_string_value(json_object_get(r, "u")), json_object_get(r, "k"));
    json_decref(rows);
    const char *who = getenv("USER");
    es_warn("export: --unseal: personal fields of %zu users are written in clear to %s "
            "(operator %s, keys user %s)",
            json_object_size(x->keys), x->dir, who ? who : "unknown",
            es_env_str("EVENTSHOP_MYSQL_KEYS_USER", "eventshop_keys"));
    return 0;
}

/* Opens field (a sealed "<name>_enc" of payload) with owner's key hex, in place: the plaintext's
 * bytes (base64, the codec's bytes mapping). Whether it opened. */
static bool hi_unseal_field(json_t *payload, const char *field, const char *owner, const char *hex)
{
    unsigned char key[USERS_KEY_BYTES];
    es_err_t err = ES_ERR_INIT;
    char *name = xstrndup(field, strlen(field) - 4);
    char *plain = users_key_from_hex(hex, key)
                      ? NULL
                      : users_open(key, owner, name,
                                   json_string_value(json_object_get(payload, field)), &err);
    if (plain) {
        size_t n = strlen(plain),
               cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
        char *b64 = xmalloc(cap);
        sodium_bin2base64(b64, cap, (const unsigned char *)plain, n,
                          sodium_base64_VARIANT_ORIGINAL);
        json_object_set_new(payload, field, json_string(b64));
        sodium_memzero(plain, n);
        free(b64);
    }
    bool opened = plain != NULL;
    free(plain);
    free(name);
    sodium_memzero(key, sizeof key);
    return opened;
}

/* The sealed fields of payload: nulled for a forgotten owner (their names into shredded, with
 * the blind index), opened with --unseal (names into unsealed), else left sealed. The owner is
 * the record's user_id, else its customer_id (orders seal addresses with the customer's key). */
static void hi_personal(const struct hi_export *x, json_t *payload, json_t *shredded,
                        json_t *unsealed)
{
    const char *owner = json_string_value(json_object_get(payload, "user_id"));
    if (!owner)
        owner = json_string_value(json_object_get(payload, "customer_id"));
    if (!owner)
        return;
    const char *hex = x->keys ? json_string_value(json_object_get(x->keys, owner)) : NULL;
    bool gone = json_object_get(x->forgotten, owner) || (x->keys && !hex);
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(payload, tmp, k, v)
    {
        size_t n = strlen(k);
        bool sealed = n > 4 && !strcmp(k + n - 4, "_enc") && json_is_string(v);
        if (gone && (sealed || (!strcmp(k, "email_index") && json_is_string(v)))) {
            json_array_append_new(shredded, json_string(k));
            json_object_set_new(payload, k, json_null());
        } else if (sealed && hex && hi_unseal_field(payload, k, owner, hex)) {
            json_array_append_new(unsealed, json_string(k));
        }
    }
}

/* --- writing ------------------------------------------------------------------------------- */

static int hi_topic_open(struct hi_export *x, struct hi_topic *t, const char *topic, es_err_t *err)
{
    snprintf(t->name, sizeof t->name, "%s", topic);
    json_t *names = ev_codec_types_for_topic(x->codec, topic), *types = json_array();
    size_t i;
    json_t *n;
    t->branches = json_object();
    json_array_foreach(names, i, n)
    {
        const char *text = ev_codec_schema_text(x->codec, json_string_value(n));
        json_array_append_new(types, text ? json_loads(text, 0, NULL) : json_null());
        json_object_set_new(t->branches, json_string_value(n), json_integer((json_int_t)i));
    }
    json_decref(names);
    if (!json_array_size(types)) {
        json_decref(types);
        return es_set(err, ES_ENOTFOUND, "no event schema goes on %s", topic);
    }
    t->envelope = hi_envelope_schema(topic, types);
    json_decref(types);
    t->names = hi_avro_names(t->envelope);
    t->schema_text = json_dumps(t->envelope, JSON_COMPACT | JSON_PRESERVE_ORDER);
    return 0;
}

static void hi_topic_close(struct hi_topic *t)
{
    json_decref(t->envelope);
    json_decref(t->names);
    json_decref(t->branches);
    free(t->schema_text);
}

static int hi_mkdirs(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        int rc = mkdir(path, 0755);
        *p = '/';
        if (rc && errno != EEXIST)
            return -1;
    }
    return mkdir(path, 0755) && errno != EEXIST ? -1 : 0;
}

/* Writes f (records of t's partition p) as its .avro file, next the offset after it, and records
 * it in the manifest (then saved). The sync marker is the SHA-256 of the schema and the records:
 * the same content gives the same bytes. */
static int hi_file_write(struct hi_export *x, const struct hi_topic *t, int32_t p,
                         struct hi_file *f, int64_t next, es_err_t *err)
{
    unsigned char sync[crypto_hash_sha256_BYTES], sum[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)t->schema_text, strlen(t->schema_text));
    crypto_hash_sha256_update(&st, f->data.data, f->data.len);
    crypto_hash_sha256_final(&st, sync);
    hi_buf_t out = {0};
    hi_ocf_header(&out, t->schema_text, sync);
    hi_ocf_block(&out, f->count, f->data.data, f->data.len, sync);
    crypto_hash_sha256(sum, out.data, out.len);
    char hex[2 * crypto_hash_sha256_BYTES + 1];
    sodium_bin2hex(hex, sizeof hex, sum, sizeof sum);
    char *rel =
        xasprintf("%s/partition=%d/%s+%d+%010" PRId64 ".avro", t->name, p, t->name, p, f->first);
    char *dir = xasprintf("%s/%s/partition=%d", x->dir, t->name, p), *path = hi_path(x, rel);
    char *tmp = xasprintf("%s.tmp", path);
    FILE *fp = hi_mkdirs(dir) ? NULL : fopen(tmp, "wb");
    int rc = !fp || fwrite(out.data, 1, out.len, fp) != out.len;
    rc |= fp && fclose(fp);
    if (rc || rename(tmp, path)) {
        rc = es_set(err, ES_EIO, "writing %s: %s", path, strerror(errno));
    } else {
        char key[16];
        snprintf(key, sizeof key, "%d", p);
        json_t *part = json_object_get(
            json_object_get(json_object_get(json_object_get(x->manifest, "topics"), t->name),
                            "partitions"),
            key);
        json_array_append_new(json_object_get(part, "files"),
                              json_pack("{s:s, s:I, s:I, s:I, s:I, s:s}", "path", rel,
                                        "first_offset", (json_int_t)f->first, "last_offset",
                                        (json_int_t)f->last, "next_offset", (json_int_t)next,
                                        "records", (json_int_t)f->count, "sha256", hex));
        json_object_set_new(
            part, "records",
            json_integer(json_integer_value(json_object_get(part, "records")) + f->count));
        rc = hi_manifest_save(x, err);
    }
    free(rel);
    free(dir);
    free(path);
    free(tmp);
    hi_buf_free(&out);
    f->count = 0;
    f->data.len = 0;
    return rc;
}

/* Appends message m (an event of t) to f as an envelope record. */
static int hi_file_add(struct hi_export *x, const struct hi_topic *t, struct hi_file *f,
                       const es_kafka_msg_t *m, es_err_t *err)
{
    const char *type = NULL;
    json_t *payload = NULL;
    if (ev_decode(x->codec, m->value, m->len, &type, &payload, err))
        return es_set(err, err->code, "%s[%d]@%" PRId64 ": %s", m->topic, m->partition, m->offset,
                      err->msg);
    json_t *branch = json_object_get(t->branches, type),
           *meta = json_object_get(payload, "metadata");
    json_t *shredded = json_array(), *unsealed = json_array();
    hi_personal(x, payload, shredded, unsealed);
    json_t *env = json_pack("{s:O, s:s, s:O, s:O, s:O, s:s, s:i, s:I, s:I, s:o, s:o, s:o}",
                            "event_id", json_object_get(meta, "event_id"), "event_type", type,
                            "aggregate_id", json_object_get(meta, "aggregate_id"),
                            "aggregate_version", json_object_get(meta, "aggregate_version"),
                            "occurred_at", json_object_get(meta, "occurred_at"), "topic", m->topic,
                            "partition", (int)m->partition, "offset", (json_int_t)m->offset,
                            "timestamp", (json_int_t)m->timestamp_ms, "shredded", shredded,
                            "unsealed", unsealed, "payload", payload);
    int rc = !branch || !env
                 ? es_set(err, ES_EINVAL, "%s[%d]@%" PRId64 ": %s is not an event of %s", m->topic,
                          m->partition, m->offset, type, t->name)
                 : hi_avro_encode_envelope(t->names, t->envelope, env,
                                           (size_t)json_integer_value(branch), &f->data, err);
    json_decref(env);
    if (!rc) {
        if (!f->count++)
            f->first = m->offset;
        f->last = m->offset;
    }
    return rc;
}

/* --- reading -------------------------------------------------------------------------------- */

/* Whether the consumer's position in topic/p has reached end (past control records). */
static bool hi_reached(struct hi_export *x, const char *topic, int32_t p, int64_t end)
{
    es_kafka_parts_t *l = es_kafka_parts_new(1);
    es_kafka_parts_add(l, topic, p);
    bool done = !es_kafka_position(x->rk, l) && l->elems[0].offset >= end;
    es_kafka_parts_free(l);
    return done;
}

/* Exports t's partition p from start to end (its manifest entry part), a file per roll events. */
static int hi_partition(struct hi_export *x, const struct hi_topic *t, int32_t p, json_t *part,
                        int64_t start, es_err_t *err)
{
    int64_t end = json_integer_value(json_object_get(part, "to"));
    struct hi_file f = {0};
    if (start >= end) {
        json_object_set_new(part, "complete", json_true());
        return hi_manifest_save(x, err);
    }
    es_kafka_parts_t *l = es_kafka_parts_new(1);
    es_kafka_parts_add(l, t->name, p)->offset = start;
    int rc = es_kafka_resp_error(err, es_kafka_assign(x->rk, l), "assign");
    es_kafka_parts_free(l);
    for (long long seen = es_mono_ms(); !rc;) {
        if (hi_export_stopping) {
            rc = es_set(err, ES_EIO, "interrupted: run it again with the same --out to resume");
            break;
        }
        es_kafka_msg_t *m = es_kafka_poll(x->rk, 200);
        bool at_end = false;
        if (!m) {
            at_end = hi_reached(x, t->name, p, end);
            if (!at_end && es_mono_ms() - seen > HI_STALL_MS)
                rc = es_set(err, ES_ETIMEOUT, "%s[%d]: nothing read below %" PRId64 " for %d s",
                            t->name, p, end, HI_STALL_MS / 1000);
        } else if (m->err == ES_KAFKA_ERR_PARTITION_EOF) {
            at_end = hi_reached(x, t->name, p, end);
        } else if (m->err) {
            es_warn("export: consumer: %s", m->errstr);
        } else if (m->offset >= end) {
            at_end = true;
        } else if (m->value) {
            seen = es_mono_ms();
            rc = hi_file_add(x, t, &f, m, err);
            hi_progress_add(&x->pg, 1);
            if (!rc && f.count >= x->roll)
                rc = hi_file_write(x, t, p, &f, m->offset + 1, err);
        }
        es_kafka_msg_free(m);
        if (at_end && !rc) {
            if (f.count)
                rc = hi_file_write(x, t, p, &f, end, err);
            json_object_set_new(part, "complete", json_true());
            if (!rc)
                rc = hi_manifest_save(x, err);
            break;
        }
    }
    es_kafka_assign(x->rk, NULL);
    hi_buf_free(&f.data);
    return rc;
}

/* Where partition entry part resumes: after its last file, else at its start; -1 if complete. */
static int64_t hi_resume_at(const json_t *part)
{
    json_t *files = json_object_get(part, "files");
    if (json_is_true(json_object_get(part, "complete")))
        return -1;
    if (json_array_size(files))
        return json_integer_value(
            json_object_get(json_array_get(files, json_array_size(files) - 1), "next_offset"));
    return json_integer_value(json_object_get(part, "from"));
}

static int hi_export_topics(struct hi_export *x, es_err_t *err)
{
    json_t *topics = json_object_get(x->manifest, "topics"), *tv, *part;
    const char *topic, *pk;
    int64_t total = 0;
    json_object_foreach(topics, topic, tv)
        json_object_foreach(json_object_get(tv, "partitions"), pk, part)
    {
        int64_t at = hi_resume_at(part);
        if (at >= 0)
            total += json_integer_value(json_object_get(part, "to")) - at;
    }
    hi_progress_start(&x->pg, "export", total);
    json_object_foreach(topics, topic, tv)
    {
        struct hi_topic t = {0};
        if (hi_topic_open(x, &t, topic, err))
            return -1;
        int rc = 0;
        json_object_foreach(json_object_get(tv, "partitions"), pk, part)
        {
            int64_t at = hi_resume_at(part);
            if (at >= 0 && (rc = hi_partition(x, &t, atoi(pk), part, at, err)))
                break;
        }
        hi_topic_close(&t);
        if (rc)
            return -1;
    }
    hi_progress_end(&x->pg);
    return 0;
}

static int hi_export_run(struct hi_export *x, es_err_t *err)
{
    char *dir = xstrdup(x->dir);
    int rc = -1;
    if (!(x->rk = es_kafka_reader_new("eventshop-history", err)) ||
        !(x->sr = sr_client_new(es_env_registry_url(), err)) ||
        !(x->codec = ev_codec_new(es_env_schema_dir(), x->sr, err)))
        goto out;
    if (hi_mkdirs(dir)) {
        es_set(err, ES_EIO, "cannot make %s: %s", x->dir, strerror(errno));
        goto out;
    }
    rc = hi_manifest_open(x, err) || hi_personal_open(x, err) || hi_export_topics(x, err) ? -1 : 0;
out:
    free(dir);
    return rc;
}

int hi_export_main(int argc, char **argv)
{
    struct hi_export x = {0};
    int rc = hi_export_args(&x, argc, argv);
    if (rc)
        return rc == 3 ? 0 : rc;
    struct sigaction sa = {.sa_handler = hi_export_on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    es_err_t err = ES_ERR_INIT;
    rc = hi_export_run(&x, &err);
    if (rc)
        fprintf(stderr, "eventshop-history export: %s\n", err.msg);
    else
        fprintf(stderr, "export: done, manifest %s/manifest.json\n", x.dir);
    if (x.rk) {
        es_kafka_close(x.rk);
        es_kafka_destroy(x.rk);
    }
    ev_codec_free(x.codec);
    sr_client_free(x.sr);
    json_decref(x.forgotten);
    json_decref(x.keys);
    json_decref(x.manifest);
    hi_spec_free(&x.from);
    hi_spec_free(&x.to);
    return rc ? 1 : 0;
}
