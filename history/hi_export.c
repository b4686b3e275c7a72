/* eventshop-history export (issue 11, item 1): every selected context's events, read_committed,
 * as Avro Object Container Files in Kafka Connect's storage-sink layout
 * DIR/<topic>/partition=<p>/<topic>+<p>+<first offset, 10 digits>.avro, one envelope schema per
 * topic (hi_avro.h), rolled every N events, and DIR/manifest.json: the resolved offset range of
 * every topic-partition, its record count and each file's SHA-256. Every partition of the run is
 * read at once (a file being written per partition). The manifest is rewritten as files are
 * finished (at most once a second, and at the end, also of a failed run), so an interrupted run
 * resumes (same --out) after the last file it recorded; file boundaries do not depend on where
 * it was interrupted nor on how partitions interleave, so the bytes are those of an uninterrupted
 * run. Events written with their type's current schema go through the fast path (hi_avro.h:
 * their bodies copied, not decoded), the others through the codec's JSON. Personal data: a
 * forgotten user's sealed fields and blind index are nulled (named in the record's "shredded");
 * with --unseal, a live user's are opened (audited). */
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
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HI_STALL_MS    60000 /* no progress below the end this long: an open transaction */
#define HI_SAVE_MS     1000  /* the manifest is rewritten at most this often while files come */
#define HI_RESERVE_MAX (64u << 20) /* the most a file's buffer is given ahead of its records */
#define HI_SEEN        16 /* writer schema ids remembered per topic (more: asked each time) */
#define HI_HUGE_PAGE   (2u << 20) /* a transparent huge page (x86-64, arm64 with 4 KiB pages) */

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
    json_t *branches;       /* record full name -> branch index */
    hi_avro_prog_t **progs; /* per branch: its schema compiled for the fast path, or NULL */
    size_t n_branches;
    struct hi_seen { /* the writer schema ids seen on the topic, as the fast path sees them */
        int32_t id;
        const char *type; /* borrowed from the codec */
        long branch;      /* -1: the JSON path (not current, or not a type of the topic) */
    } seen[HI_SEEN];
    size_t n_seen;
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
    bool json_path; /* --json-path: no fast path (a check that both write the same bytes) */
    struct hi_codec_load *loading; /* the codec while a thread loads it (hi_codec_ready) */
    struct hi_writer *writer;      /* while partitions are read: writes their files */
    bool unsaved;                  /* the manifest has changed since it was last written */
    long long saved_ms;
    hi_progress_t pg;
};

/* The file being written: records of one partition from first, encoded back to back. */
struct hi_file {
    int64_t first, last, count;
    hi_buf_t data;
};

/* A partition read in a run: its range [start, end), and for the export its topic, manifest entry
 * and file being written. */
struct hi_part {
    const char *topic;
    int32_t p;
    int64_t start, end;
    bool eof_ends; /* the partition's end (read_committed: its last stable offset) ends it */
    bool done;
    struct hi_topic *t;
    json_t *entry;
    struct hi_file f;
};

typedef int (*hi_msg_fn)(struct hi_export *x, struct hi_part *pt, const es_kafka_msg_t *m,
                         es_err_t *err);
typedef int (*hi_end_fn)(struct hi_export *x, struct hi_part *pt, es_err_t *err);
static int hi_read(struct hi_export *x, struct hi_part *parts, size_t n, hi_msg_fn on_msg,
                   hi_end_fn on_end, es_err_t *err);

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
          "  --json-path: every event decoded and re-encoded (slower, the same bytes: a check).\n"
          "  env: EVENTSHOP_KAFKA_BROKERS, EVENTSHOP_REGISTRY_URL (as the projectors)\n",
          f);
    return rc;
}

static int hi_export_args(struct hi_export *x, int argc, char **argv)
{
    static const struct option opts[] = {{"out", required_argument, NULL, 'o'},
                                         {"contexts", required_argument, NULL, 'c'},
                                         {"from", required_argument, NULL, 'f'},
                                         {"to", required_argument, NULL, 't'},
                                         {"roll", required_argument, NULL, 'r'},
                                         {"unseal", no_argument, NULL, 'u'},
                                         {"json-path", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
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
        case 'j':
            x->json_path = true;
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

/* The manifest's "topics": each topic's partitions' ranges, from the options. All topics at once:
 * one metadata request and one or two offset requests for every partition of every topic (asked
 * topic by topic, 35 round trips took a fifth of a short export's time). */
static json_t *hi_topics_ranges(struct hi_export *x, const char *const *topics, int nt,
                                es_err_t *err)
{
    int *counts = xcalloc((size_t)nt + 1, sizeof *counts);
    es_kafka_parts_t *l = es_kafka_parts_new(4 * nt + 1);
    json_t *out = NULL;
    int64_t *from = NULL, *to = NULL;
    if (es_kafka_partition_counts(x->rk, topics, nt, counts, err))
        goto done;
    for (int t = 0; t < nt; t++)
        for (int p = 0; p < counts[t]; p++)
            es_kafka_parts_add(l, topics[t], p);
    from = xcalloc((size_t)l->cnt + 1, sizeof *from);
    to = xcalloc((size_t)l->cnt + 1, sizeof *to);
    if (!hi_resolve_all(x->rk, x->from_s ? &x->from : NULL, false, l, from, err) &&
        !hi_resolve_all(x->rk, x->to_s ? &x->to : NULL, true, l, to, err)) {
        out = json_object();
        for (int t = 0, i = 0; t < nt; t++) {
            json_t *parts = json_object();
            for (int p = 0; p < counts[t]; p++, i++) {
                char key[16];
                snprintf(key, sizeof key, "%d", p);
                json_object_set_new(parts, key,
                                    json_pack("{s:I, s:I, s:I, s:b, s:[]}", "from",
                                              (json_int_t)from[i], "to",
                                              (json_int_t)(to[i] > from[i] ? to[i] : from[i]),
                                              "records", (json_int_t)0, "complete", 0, "files"));
            }
            json_object_set_new(out, topics[t], json_pack("{s:o}", "partitions", parts));
        }
    }
done:
    free(from);
    free(to);
    es_kafka_parts_free(l);
    free(counts);
    return out;
}

static char *hi_path(const struct hi_export *x, const char *name)
{
    return xasprintf("%s/%s", x->dir, name);
}

static int hi_manifest_save(struct hi_export *x, es_err_t *err)
{
    x->unsaved = false;
    x->saved_ms = es_mono_ms();
    char *tmp = hi_path(x, "manifest.json.tmp"), *path = hi_path(x, "manifest.json");
    int rc =
        json_dump_file(x->manifest, tmp, JSON_INDENT(2) | JSON_PRESERVE_ORDER) || rename(tmp, path)
            ? es_set(err, ES_EIO, "writing %s: %s", path, strerror(errno))
            : 0;
    free(tmp);
    free(path);
    return rc;
}

/* Records that the manifest changed, writing it when it was last written HI_SAVE_MS ago: each
 * rename over it makes ext4 flush it (auto_da_alloc), which took most of an export's time when
 * done after each file. Files written but not yet recorded are written again, the same bytes,
 * by a resumed run. */
static int hi_manifest_changed(struct hi_export *x, es_err_t *err)
{
    x->unsaved = true;
    return es_mono_ms() - x->saved_ms >= HI_SAVE_MS ? hi_manifest_save(x, err) : 0;
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
    char *list = xstrdup(x->contexts), *save = NULL;
    size_t cap = strlen(x->contexts) / 2 + 1;
    char(*names)[128] = xcalloc(cap, sizeof *names);
    const char **topics = xcalloc(cap, sizeof *topics);
    int nt = 0;
    for (char *c = strtok_r(list, ",", &save); c; c = strtok_r(NULL, ",", &save), nt++)
        topics[nt] = es_topic(names[nt], sizeof names[nt], c, "events");
    json_t *ranges = hi_topics_ranges(x, topics, nt, err);
    free(list);
    free(names);
    free(topics);
    if (!ranges)
        goto out;
    json_object_set_new(want, "topics", ranges);
    x->manifest = json_incref(want);
    rc = hi_manifest_save(x, err);
out:
    json_decref(want);
    json_decref(m);
    free(path);
    return rc;
}

/* --- the codec ------------------------------------------------------------------------------ */

/* The codec, loaded by a thread of its own while the manifest's ranges are asked of the brokers
 * and the forgotten users' scan waits for its first records: it parses every schema file, the
 * longest step before the reading. The same thread then opens the contexts' topics (their
 * envelope schemas and fast path programs), which the reading needs next. */
struct hi_codec_load {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool loaded; /* under the lock: codec (or err) is set */
    sr_client_t *sr;
    const char *contexts;
    ev_codec_t *codec;
    es_err_t err;
    struct hi_topic *ts; /* the topics that opened (others: the reading thread says why) */
    size_t nt;
};

static int hi_topic_open(ev_codec_t *codec, struct hi_topic *t, const char *topic, es_err_t *err);
static void hi_topic_close(struct hi_topic *t);

static void *hi_codec_load(void *arg)
{
    struct hi_codec_load *l = arg;
    ev_codec_t *codec = ev_codec_new_kind(es_env_schema_dir(), l->sr, "events", &l->err);
    pthread_mutex_lock(&l->lock);
    l->codec = codec;
    l->loaded = true;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
    char *list = xstrdup(l->contexts), *save = NULL;
    l->ts = xcalloc(strlen(l->contexts) / 2 + 2, sizeof *l->ts);
    for (char *c = strtok_r(list, ",", &save); codec && c; c = strtok_r(NULL, ",", &save)) {
        char name[128];
        es_err_t e = ES_ERR_INIT;
        if (!hi_topic_open(codec, &l->ts[l->nt], es_topic(name, sizeof name, c, "events"), &e))
            l->nt++;
        else { /* what it made before failing */
            hi_topic_close(&l->ts[l->nt]);
            memset(&l->ts[l->nt], 0, sizeof l->ts[l->nt]);
        }
    }
    free(list);
    return NULL;
}

/* Waits for the codec, once: 0 with x->codec, or -1 with err. */
static int hi_codec_ready(struct hi_export *x, es_err_t *err)
{
    struct hi_codec_load *l = x->loading;
    if (!x->codec && l) {
        pthread_mutex_lock(&l->lock);
        while (!l->loaded)
            pthread_cond_wait(&l->cond, &l->lock);
        pthread_mutex_unlock(&l->lock);
        if (!(x->codec = l->codec))
            es_set(err, l->err.code, "%s", l->err.msg);
    }
    return x->codec ? 0 : -1;
}

/* --- personal data ---------------------------------------------------------------------------- */

/* Records UserForgotten's user id into x->forgotten (only that type is decoded). */
static int hi_forgotten_msg(struct hi_export *x, struct hi_part *pt, const es_kafka_msg_t *m,
                            es_err_t *err)
{
    (void)pt;
    const char *type = NULL;
    bool current = false;
    json_t *v = NULL;
    es_err_t e = ES_ERR_INIT;
    int32_t id = ev_frame_schema_id(m->value, m->len);
    if (hi_codec_ready(x, err))
        return -1;
    if (id < 0 || ev_codec_writer_info(x->codec, id, &type, &current, &e) ||
        strcmp(type, "eventshop.users.UserForgotten"))
        return 0;
    if (!ev_decode(x->codec, m->value, m->len, &type, &v, &e))
        json_object_set_new(x->forgotten, json_string_value(json_object_get(v, "user_id")),
                            json_true());
    json_decref(v);
    return 0;
}

static int hi_forgotten_end(struct hi_export *x, struct hi_part *pt, es_err_t *err)
{
    (void)x;
    (void)pt;
    (void)err;
    return 0;
}

/* Reads users.events, every partition at once, from its beginning to its end now (an open
 * transaction's records, not stable yet, are not waited for). The ends from one request; the
 * beginning is the consumer's (a partition with no end offset has nothing to read). */
static int hi_forgotten_scan(struct hi_export *x, es_err_t *err)
{
    int n = es_kafka_partition_count(x->rk, "users.events", err);
    if (n < 0)
        return -1;
    struct hi_part *parts = xcalloc((size_t)n + 1, sizeof *parts);
    int64_t *ends = xcalloc((size_t)n + 1, sizeof *ends);
    int rc = hi_offsets_at(x->rk, "users.events", n, ES_KAFKA_OFFSET_END, ends, err);
    for (int p = 0; p < n && !rc; p++)
        parts[p] = (struct hi_part){.topic = "users.events",
                                    .p = p,
                                    .eof_ends = true,
                                    .start = ends[p] > 0 ? ES_KAFKA_OFFSET_BEGINNING : 0,
                                    .end = ends[p]};
    if (!rc)
        rc = hi_read(x, parts, (size_t)n, hi_forgotten_msg, hi_forgotten_end, err);
    free(ends);
    free(parts);
    return rc ? -1 : 0;
}

/* The forgotten users (UserForgotten on users.events, to its end now: forgetting after the
 * exported range counts), and with --unseal the live users' keys. */
static int hi_personal_open(struct hi_export *x, es_err_t *err)
{
    x->forgotten = json_object();
    if (hi_forgotten_scan(x, err))
        return -1;
    if (!x->unseal)
        return 0;
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

static int hi_topic_open(ev_codec_t *codec, struct hi_topic *t, const char *topic, es_err_t *err)
{
    snprintf(t->name, sizeof t->name, "%s", topic);
    json_t *names = ev_codec_types_for_topic(codec, topic), *types = json_array();
    size_t i;
    json_t *n;
    t->branches = json_object();
    t->n_branches = json_array_size(names);
    t->progs = xcalloc(t->n_branches + 1, sizeof *t->progs);
    json_array_foreach(names, i, n)
    {
        const char *text = ev_codec_schema_text(codec, json_string_value(n));
        json_t *type = text ? json_loads(text, 0, NULL) : json_null();
        es_err_t perr = ES_ERR_INIT; /* a type the fast path does not take goes the JSON path */
        t->progs[i] = text ? hi_avro_prog_new(type, &perr) : NULL;
        json_array_append_new(types, type);
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
    for (size_t i = 0; i < t->n_branches; i++)
        hi_avro_prog_free(t->progs[i]);
    free(t->progs);
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

#define HI_SHA256_BYTES 32

/* The SHA-256 of n pieces (p[i], len[i] bytes) into out: OpenSSL's, which uses the CPU's SHA
 * instructions (libsodium's portable one took a quarter of an export's time). */
static void hi_sha256(unsigned char out[HI_SHA256_BYTES], const void *const *p, const size_t *len,
                      size_t n)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned int got = 0;
    if (!c || !EVP_DigestInit_ex(c, EVP_sha256(), NULL))
        abort(); /* allocation failure, as xmalloc */
    for (size_t i = 0; i < n; i++)
        EVP_DigestUpdate(c, p[i], len[i]);
    EVP_DigestFinal_ex(c, out, &got);
    EVP_MD_CTX_free(c);
}

/* Writes f's container file (t's schema) to path, its SHA-256 into hex, without copying the
 * records: the header, then the block's data as gathered. The sync marker is the SHA-256 of the
 * schema and the records: the same content gives the same bytes. Both hashes are taken here, in
 * the writer thread: the reading thread is the one that paces an export. */
static int hi_file_put(const struct hi_topic *t, const struct hi_file *f, const char *path,
                       char hex[2 * HI_SHA256_BYTES + 1])
{
    unsigned char sync[HI_SHA256_BYTES], sum[HI_SHA256_BYTES];
    const void *sp[] = {t->schema_text, f->data.data};
    const size_t sn[] = {strlen(t->schema_text), f->data.len};
    hi_sha256(sync, sp, sn, 2);
    hi_buf_t head = {0};
    hi_ocf_header(&head, t->schema_text, sync);
    hi_ocf_block_start(&head, f->count, f->data.len);
    const void *fp_[] = {head.data, f->data.data, sync};
    const size_t fn[] = {head.len, f->data.len, HI_OCF_SYNC_BYTES};
    hi_sha256(sum, fp_, fn, 3);
    sodium_bin2hex(hex, 2 * HI_SHA256_BYTES + 1, sum, sizeof sum);
    FILE *fp = fopen(path, "wb");
    int rc = !fp || fwrite(head.data, 1, head.len, fp) != head.len ||
             fwrite(f->data.data, 1, f->data.len, fp) != f->data.len ||
             fwrite(sync, 1, HI_OCF_SYNC_BYTES, fp) != HI_OCF_SYNC_BYTES;
    rc |= fp && fclose(fp);
    hi_buf_free(&head);
    return rc ? -1 : 0;
}

/* Writes f (records of t's partition p) as its .avro file: its path relative to the export's
 * directory into *rel (the caller frees it, also on failure) and its SHA-256 into hex. */
static int hi_file_store(const struct hi_export *x, const struct hi_topic *t, int32_t p,
                         const struct hi_file *f, char **rel, char hex[2 * HI_SHA256_BYTES + 1],
                         es_err_t *err)
{
    *rel = xasprintf("%s/partition=%d/%s+%d+%010" PRId64 ".avro", t->name, p, t->name, p, f->first);
    char *dir = xasprintf("%s/%s/partition=%d", x->dir, t->name, p), *path = hi_path(x, *rel);
    char *tmp = xasprintf("%s.tmp", path);
    int rc = hi_mkdirs(dir) || hi_file_put(t, f, tmp, hex) || rename(tmp, path)
                 ? es_set(err, ES_EIO, "writing %s: %s", path, strerror(errno))
                 : 0;
    free(dir);
    free(path);
    free(tmp);
    return rc;
}

/* Records in the manifest (then saved) the file rel of f, written with hash hex, the records of
 * t's partition p before next. */
static int hi_file_record(struct hi_export *x, const struct hi_topic *t, int32_t p,
                          const struct hi_file *f, const char *rel, const char *hex, int64_t next,
                          es_err_t *err)
{
    char key[16];
    snprintf(key, sizeof key, "%d", p);
    json_t *part = json_object_get(
        json_object_get(json_object_get(json_object_get(x->manifest, "topics"), t->name),
                        "partitions"),
        key);
    json_array_append_new(json_object_get(part, "files"),
                          json_pack("{s:s, s:I, s:I, s:I, s:I, s:s}", "path", rel, "first_offset",
                                    (json_int_t)f->first, "last_offset", (json_int_t)f->last,
                                    "next_offset", (json_int_t)next, "records",
                                    (json_int_t)f->count, "sha256", hex));
    json_object_set_new(
        part, "records",
        json_integer(json_integer_value(json_object_get(part, "records")) + f->count));
    return hi_manifest_changed(x, err);
}

/* m's writer schema on t: its type and branch, or -1 for the JSON path. */
static long hi_writer_branch(struct hi_export *x, struct hi_topic *t, int32_t id, const char **type)
{
    for (size_t i = 0; i < t->n_seen; i++)
        if (t->seen[i].id == id) {
            *type = t->seen[i].type;
            return t->seen[i].branch;
        }
    bool current = false;
    es_err_t err = ES_ERR_INIT;
    if (ev_codec_writer_info(x->codec, id, type, &current, &err))
        return -1; /* the JSON path says why */
    json_t *b = current ? json_object_get(t->branches, *type) : NULL;
    long branch = b && t->progs[json_integer_value(b)] ? (long)json_integer_value(b) : -1;
    if (t->n_seen < HI_SEEN)
        t->seen[t->n_seen++] = (struct hi_seen){id, *type, branch};
    return branch;
}

/* The fast path (hi_avro.h): appends m's envelope record to f straight from its body when it was
 * written with its type's current schema, the type is on t and its body is in canonical form, and
 * no sealed field is to be opened. Whether it did; if not, the JSON path takes m. */
static bool hi_file_add_fast(struct hi_export *x, struct hi_topic *t, struct hi_file *f,
                             const es_kafka_msg_t *m)
{
    const char *type = NULL;
    int32_t id = ev_frame_schema_id(m->value, m->len);
    long branch = x->json_path || id < 0 || *(const unsigned char *)m->value
                      ? -1
                      : hi_writer_branch(x, t, id, &type);
    const hi_avro_prog_t *p = branch < 0 ? NULL : t->progs[branch];
    hi_avro_scan_t s;
    if (!p || (x->keys && hi_avro_prog_has_sealed(p)) ||
        hi_avro_scan(p, (const char *)m->value + 5, m->len - 5, &s))
        return false;
    const char *owner = (const char *)s.body + s.owner.off;
    if (s.has_owner && memchr(owner, 0, s.owner.len))
        return false; /* the JSON path's owner is a C string */
    bool shred = s.has_owner && hi_avro_prog_has_sealed(p) &&
                 json_object_getn(x->forgotten, owner, s.owner.len);
    hi_avro_where_t w = {.event_type = type,
                         .topic = m->topic,
                         .partition = m->partition,
                         .offset = m->offset,
                         .timestamp = m->timestamp_ms,
                         .branch = (size_t)branch};
    return !hi_avro_put_envelope(&f->data, p, &s, &w, shred);
}

/* Makes room for cap bytes in b. A buffer first made this large gets memory of its own, aligned
 * for huge pages and marked for them: writing an export's files into fresh memory took a page
 * fault every 4 KiB, a tenth of the reading thread's time; one every 2 MiB costs little. The
 * buffers are then reused from file to file (hi_writer). */
static void hi_file_room(hi_buf_t *b, size_t cap)
{
    if (cap <= b->cap)
        return;
    void *p = NULL;
    if (cap < 2 * HI_HUGE_PAGE || b->cap >= HI_HUGE_PAGE || posix_memalign(&p, HI_HUGE_PAGE, cap)) {
        hi_buf_reserve(b, cap);
        return;
    }
    madvise(p, cap & ~(size_t)(HI_HUGE_PAGE - 1), MADV_HUGEPAGE); /* advice: failing is fine */
    if (b->len)
        memcpy(p, b->data, b->len);
    free(b->data);
    b->data = p;
    b->cap = cap;
}

/* Records that f took m's record (its bytes from at). */
static void hi_file_took(struct hi_file *f, const es_kafka_msg_t *m, size_t at, size_t roll)
{
    if (!f->count++) {
        f->first = m->offset;
        /* room for the whole file as its first record goes: each doubling of a large buffer
         * copied it into fresh pages, and first touches of memory are dear (in a VM) */
        size_t want = (f->data.len - at) * roll / 4 * 5 + 4096;
        hi_file_room(&f->data, want < HI_RESERVE_MAX ? want : HI_RESERVE_MAX);
    }
    f->last = m->offset;
}

/* Appends message m (an event of t) to f as an envelope record. */
static int hi_file_add(struct hi_export *x, struct hi_topic *t, struct hi_file *f,
                       const es_kafka_msg_t *m, es_err_t *err)
{
    const char *type = NULL;
    json_t *payload = NULL;
    size_t at = f->data.len;
    if (hi_file_add_fast(x, t, f, m)) {
        hi_file_took(f, m, at, (size_t)x->roll);
        return 0;
    }
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
    if (!rc)
        hi_file_took(f, m, at, (size_t)x->roll);
    return rc;
}

/* --- reading -------------------------------------------------------------------------------- */

static struct hi_part *hi_part_find(struct hi_part *parts, size_t n, const char *topic, int32_t p)
{
    for (size_t i = 0; i < n; i++)
        if (parts[i].p == p && !strcmp(parts[i].topic, topic))
            return &parts[i];
    return NULL;
}

/* Marks pt read to its end: stops fetching it, and on_end. */
static int hi_part_end(struct hi_export *x, struct hi_part *pt, size_t *left, hi_end_fn on_end,
                       es_err_t *err)
{
    es_kafka_parts_t *l = es_kafka_parts_new(1);
    es_kafka_parts_add(l, pt->topic, pt->p);
    es_kafka_pause(x->rk, l);
    es_kafka_parts_free(l);
    pt->done = true;
    (*left)--;
    return on_end(x, pt, err);
}

/* The partitions whose position reached their end (past control records, a transaction's marker
 * last: no record ends them, and their EOF comes only after a fetch the broker holds up to
 * fetch.wait.max.ms) are done. */
static int hi_read_ended(struct hi_export *x, struct hi_part *parts, size_t n, size_t *left,
                         hi_end_fn on_end, es_err_t *err)
{
    es_kafka_parts_t *l = es_kafka_parts_new((int)n + 1);
    for (size_t i = 0; i < n; i++)
        if (!parts[i].done)
            es_kafka_parts_add(l, parts[i].topic, parts[i].p);
    int rc = 0;
    if (!es_kafka_position(x->rk, l))
        for (int i = 0; !rc && i < l->cnt; i++) {
            struct hi_part *pt = hi_part_find(parts, n, l->elems[i].topic, l->elems[i].partition);
            if (l->elems[i].offset >= pt->end)
                rc = hi_part_end(x, pt, left, on_end, err);
        }
    es_kafka_parts_free(l);
    return rc;
}

/* Nothing came for a while: the partitions at their end are done; none moving for HI_STALL_MS is
 * an open transaction. */
static int hi_read_idle(struct hi_export *x, struct hi_part *parts, size_t n, size_t *left,
                        hi_end_fn on_end, long long seen, es_err_t *err)
{
    int rc = hi_read_ended(x, parts, n, left, on_end, err);
    for (size_t i = 0; !rc && *left && es_mono_ms() - seen > HI_STALL_MS && i < n; i++)
        if (!parts[i].done)
            rc = es_set(err, ES_ETIMEOUT, "%s[%d]: nothing read below %" PRId64 " for %d s",
                        parts[i].topic, parts[i].p, parts[i].end, HI_STALL_MS / 1000);
    return rc;
}

/* Whether message m (of pt, not done) ends pt: past its end, the last offset before it, or the
 * partition's end (read_committed: the last stable offset) at or past it. */
static bool hi_ends(const struct hi_part *pt, const es_kafka_msg_t *m)
{
    if (m->err == ES_KAFKA_ERR_PARTITION_EOF)
        return pt->eof_ends || m->offset >= pt->end;
    return !m->err && m->offset + 1 >= pt->end;
}

/* The partition of parts message m is of (NULL: none): *last first, as a batch mostly holds runs
 * of one partition's records. */
static struct hi_part *hi_part_of(struct hi_part *parts, size_t n, const es_kafka_msg_t *m,
                                  struct hi_part **last)
{
    if (!m->topic)
        return NULL;
    if (!*last || (*last)->p != m->partition || strcmp((*last)->topic, m->topic))
        *last = hi_part_find(parts, n, m->topic, m->partition);
    return *last;
}

/* Reads every partition of parts at once from its start to its end (read_committed), calling
 * on_msg for each record in it (in order within a partition) and on_end once it is read. The
 * messages come in batches (es_kafka_poll_batch): a message at a time took a fifth of the
 * reading thread's time in librdkafka's poll. */
#define HI_BATCH 256
static int hi_read(struct hi_export *x, struct hi_part *parts, size_t n, hi_msg_fn on_msg,
                   hi_end_fn on_end, es_err_t *err)
{
    es_kafka_parts_t *l = es_kafka_parts_new((int)n + 1);
    size_t left = n;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
        if (parts[i].start >= parts[i].end) {
            parts[i].done = true;
            left--;
            rc = on_end(x, &parts[i], err);
        } else {
            es_kafka_parts_add(l, parts[i].topic, parts[i].p)->offset = parts[i].start;
        }
    if (!rc && left)
        rc = es_kafka_resp_error(err, es_kafka_assign(x->rk, l), "assign");
    es_kafka_parts_free(l);
    es_kafka_msg_t *batch = xcalloc(HI_BATCH, sizeof *batch);
    struct hi_part *last = NULL;
    bool moved = false;    /* a record since the last idle poll (the clock is read only then) */
    long long checked = 0; /* when the positions were last looked at */
    for (long long seen = es_mono_ms(); !rc && left;) {
        if (hi_export_stopping) {
            rc = es_set(err, ES_EIO, "interrupted: run it again with the same --out to resume");
            break;
        }
        size_t got = es_kafka_poll_batch(x->rk, 100, batch, HI_BATCH);
        if (!got) {
            seen = moved ? es_mono_ms() : seen;
            moved = false;
            rc = hi_read_idle(x, parts, n, &left, on_end, seen, err);
        }
        for (size_t i = 0; i < got && !rc; i++) {
            const es_kafka_msg_t *m = &batch[i];
            struct hi_part *pt = hi_part_of(parts, n, m, &last);
            if (m->err && m->err != ES_KAFKA_ERR_PARTITION_EOF) {
                es_warn("export: consumer: %s", m->errstr);
            } else if (pt && !pt->done) {
                if (!m->err && m->offset < pt->end && m->value) {
                    moved = true;
                    rc = on_msg(x, pt, m, err);
                }
                if (!rc && hi_ends(pt, m))
                    rc = hi_part_end(x, pt, &left, on_end, err);
            }
        }
        es_kafka_msgs_release(batch, got);
        /* what was fetched is read: the positions say which partitions ended (at most once a
         * millisecond, as a reading faster than the fetching drains the queue at each batch) */
        if (!rc && left && got && got < HI_BATCH && es_mono_ms() != checked) {
            checked = es_mono_ms();
            rc = hi_read_ended(x, parts, n, &left, on_end, err);
        }
    }
    free(batch);
    /* a pause outlives the assignment (librdkafka keeps it on the partition): lift it */
    l = es_kafka_parts_new((int)n + 1);
    for (size_t i = 0; i < n; i++)
        es_kafka_parts_add(l, parts[i].topic, parts[i].p);
    es_kafka_resume(x->rk, l);
    es_kafka_parts_free(l);
    es_kafka_assign(x->rk, NULL);
    return rc;
}

/* --- the writer thread ---------------------------------------------------------------------- */

/* Finished files are hashed, written, renamed and recorded in the manifest by a thread of their
 * own while the reading goes on: on a busy disk the writes held the reading up for most of an
 * export's time. Once the reading is done the reading thread writes files too (the last files of
 * every partition come at once: written one after the other they were most of what followed the
 * reading). Files may be written in any order, but are recorded in the order they came, so each
 * partition's files are recorded in order; while the writer runs, only the thread holding its lock
 * touches the manifest. */

#define HI_QUEUE_MAX 4 /* files waiting to be written: the reading waits beyond */

enum hi_job_state { HI_JOB_QUEUED, HI_JOB_TAKEN, HI_JOB_STORED };

struct hi_job {
    struct hi_job *next;
    const struct hi_topic *t;
    int32_t p;
    json_t *entry;    /* the partition's manifest entry */
    struct hi_file f; /* count 0: no file */
    int64_t next_offset;
    bool complete; /* the partition is read: marked complete after the file */
    enum hi_job_state state;
    char *rel; /* the file written, and its hash */
    char hex[2 * HI_SHA256_BYTES + 1];
    int rc; /* writing it failed (err) */
    es_err_t err;
};

struct hi_writer {
    struct hi_export *x;
    pthread_t thread;
    pthread_mutex_t lock; /* guards what follows */
    pthread_cond_t cond;  /* a job came or was done, or the writer is closing */
    struct hi_job *head, *tail;
    size_t queued;
    bool closing;
    int rc; /* the first failure, then jobs are dropped */
    es_err_t err;
    hi_buf_t spare[HI_QUEUE_MAX]; /* buffers of written files, for the next ones */
    size_t n_spare;
};

/* Done with job j (under the lock): its buffer kept for reuse. */
static void hi_job_free(struct hi_writer *w, struct hi_job *j)
{
    j->f.data.len = 0;
    if (j->f.data.data && w->n_spare < HI_QUEUE_MAX)
        w->spare[w->n_spare++] = j->f.data;
    else
        hi_buf_free(&j->f.data);
    free(j->rel);
    free(j);
}

/* Records the jobs at the head of the queue whose files are written (under the lock), in order. */
static void hi_writer_record(struct hi_writer *w)
{
    struct hi_job *j;
    while ((j = w->head) && j->state == HI_JOB_STORED) {
        es_err_t err = ES_ERR_INIT;
        int rc = w->rc ? 0 : j->rc;
        if (rc)
            err = j->err;
        else if (!w->rc && j->f.count)
            rc = hi_file_record(w->x, j->t, j->p, &j->f, j->rel, j->hex, j->next_offset, &err);
        if (!rc && !w->rc && j->complete)
            json_object_set_new(j->entry, "complete", json_true());
        if (!rc && !w->rc)
            rc = hi_manifest_changed(w->x, &err);
        if (rc && !w->rc) {
            w->rc = rc;
            w->err = err;
        }
        if (!(w->head = j->next))
            w->tail = NULL;
        w->queued--;
        hi_job_free(w, j);
        pthread_cond_broadcast(&w->cond);
    }
}

/* Writes the first job not taken yet, if any (called and returning under the lock), then records
 * what can be. Whether there was one. */
static bool hi_writer_step(struct hi_writer *w)
{
    struct hi_job *j = w->head;
    while (j && j->state != HI_JOB_QUEUED)
        j = j->next;
    if (!j)
        return false;
    j->state = HI_JOB_TAKEN;
    bool failed = w->rc != 0;
    pthread_mutex_unlock(&w->lock);
    j->err = (es_err_t)ES_ERR_INIT;
    if (!failed && j->f.count)
        j->rc = hi_file_store(w->x, j->t, j->p, &j->f, &j->rel, j->hex, &j->err);
    pthread_mutex_lock(&w->lock);
    j->state = HI_JOB_STORED;
    hi_writer_record(w);
    return true;
}

static void *hi_writer_main(void *arg)
{
    struct hi_writer *w = arg;
    pthread_mutex_lock(&w->lock);
    while (w->head || !w->closing)
        if (!hi_writer_step(w))
            pthread_cond_wait(&w->cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static struct hi_writer *hi_writer_start(struct hi_export *x)
{
    struct hi_writer *w = xcalloc(1, sizeof *w);
    w->x = x;
    w->err = (es_err_t)ES_ERR_INIT;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    if (pthread_create(&w->thread, NULL, hi_writer_main, w))
        abort(); /* no thread: as an allocation failure */
    return w;
}

/* Hands pt's file (the records before next) to the writer, and with complete pt's completion;
 * pt gets an empty file. Waits while HI_QUEUE_MAX files wait. 0, or the writer's failure. */
static int hi_writer_put(struct hi_writer *w, struct hi_part *pt, int64_t next, bool complete,
                         es_err_t *err)
{
    struct hi_job *j = xcalloc(1, sizeof *j);
    *j = (struct hi_job){.t = pt->t,
                         .p = pt->p,
                         .entry = pt->entry,
                         .f = pt->f,
                         .next_offset = next,
                         .complete = complete,
                         .state = HI_JOB_QUEUED};
    memset(&pt->f, 0, sizeof pt->f);
    pthread_mutex_lock(&w->lock);
    if (!complete && w->n_spare)
        pt->f.data = w->spare[--w->n_spare];
    while (w->queued >= HI_QUEUE_MAX && !w->rc)
        pthread_cond_wait(&w->cond, &w->lock);
    int rc = w->rc;
    if (rc) {
        es_set(err, w->err.code, "%s", w->err.msg);
        hi_job_free(w, j);
    } else {
        *(w->tail ? &w->tail->next : &w->head) = j;
        w->tail = j;
        w->queued++;
        pthread_cond_broadcast(&w->cond);
    }
    pthread_mutex_unlock(&w->lock);
    return rc;
}

/* Writes, beside the writer, the files it was given and has not taken yet, lets it finish, then
 * stops it. 0, or its failure into err. */
static int hi_writer_close(struct hi_writer *w, es_err_t *err)
{
    pthread_mutex_lock(&w->lock);
    w->closing = true;
    pthread_cond_broadcast(&w->cond);
    while (hi_writer_step(w))
        ;
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    int rc = w->rc;
    if (rc)
        es_set(err, w->err.code, "%s", w->err.msg);
    for (size_t i = 0; i < w->n_spare; i++)
        hi_buf_free(&w->spare[i]);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w);
    return rc;
}

/* --- the export's partitions ------------------------------------------------------------------ */

static int hi_export_msg(struct hi_export *x, struct hi_part *pt, const es_kafka_msg_t *m,
                         es_err_t *err)
{
    int rc = hi_file_add(x, pt->t, &pt->f, m, err);
    hi_progress_add(&x->pg, 1);
    if (!rc && pt->f.count >= x->roll)
        rc = hi_writer_put(x->writer, pt, m->offset + 1, false, err);
    return rc;
}

static int hi_export_end(struct hi_export *x, struct hi_part *pt, es_err_t *err)
{
    return hi_writer_put(x->writer, pt, pt->end, true, err);
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

/* The partitions not complete in the manifest, with their topics (opened into ts). */
static size_t hi_export_parts(struct hi_export *x, struct hi_topic *ts, struct hi_part **out,
                              int64_t *total)
{
    json_t *topics = json_object_get(x->manifest, "topics"), *tv, *part;
    const char *topic, *pk;
    size_t n = 0, ti = 0;
    *out = NULL;
    json_object_foreach(topics, topic, tv)
    {
        json_object_foreach(json_object_get(tv, "partitions"), pk, part)
        {
            int64_t at = hi_resume_at(part);
            if (at < 0)
                continue;
            *out = xrealloc(*out, (n + 1) * sizeof **out);
            (*out)[n++] = (struct hi_part){.topic = ts[ti].name,
                                           .p = atoi(pk),
                                           .start = at,
                                           .t = &ts[ti],
                                           .entry = part,
                                           .end = json_integer_value(json_object_get(part, "to"))};
            *total += (*out)[n - 1].end > at ? (*out)[n - 1].end - at : 0;
        }
        ti++;
    }
    return n;
}

static void *hi_kafka_close(void *rk)
{
    es_kafka_close(rk);
    es_kafka_destroy(rk);
    return NULL;
}

/* The manifest's topics, taken from those the codec's thread opened (l), opened here if it did
 * not (it says why); l's others are closed. */
static int hi_export_topics(struct hi_export *x, struct hi_codec_load *l, es_err_t *err)
{
    json_t *topics = json_object_get(x->manifest, "topics"), *tv;
    const char *topic;
    size_t nt = 0, n = 0;
    struct hi_topic *ts = xcalloc(json_object_size(topics) + 1, sizeof *ts);
    struct hi_part *parts = NULL;
    int64_t total = 0;
    int rc = 0;
    json_object_foreach(topics, topic, tv)
    {
        size_t i = 0;
        while (i < l->nt && (!l->ts[i].envelope || strcmp(l->ts[i].name, topic)))
            i++;
        if (i < l->nt) {
            ts[nt] = l->ts[i];
            memset(&l->ts[i], 0, sizeof l->ts[i]);
        } else if ((rc = hi_topic_open(x->codec, &ts[nt], topic, err))) {
            goto out;
        }
        nt++;
    }
    n = hi_export_parts(x, ts, &parts, &total);
    hi_progress_start(&x->pg, "export", total);
    x->writer = hi_writer_start(x);
    rc = hi_read(x, parts, n, hi_export_msg, hi_export_end, err);
    /* the client is done with: it leaves (its threads stopping) while the last files are written */
    pthread_t closer;
    bool closing = !pthread_create(&closer, NULL, hi_kafka_close, x->rk);
    if (closing)
        x->rk = NULL;
    rc |= hi_writer_close(x->writer, err); /* also when reading failed: what was read is kept */
    x->writer = NULL;
    if (x->unsaved) /* also when it failed: a resumed run starts after what was written */
        rc |= hi_manifest_save(x, err);
    if (!rc) {
        x->pg.total = x->pg.done; /* offsets overcount: transaction markers, aborted records */
        hi_progress_end(&x->pg);
    }
    if (closing)
        pthread_join(closer, NULL);
out:
    for (size_t i = 0; i < n; i++)
        hi_buf_free(&parts[i].f.data);
    free(parts);
    for (size_t i = 0; i < nt; i++)
        hi_topic_close(&ts[i]);
    free(ts);
    return rc ? -1 : 0;
}

/* es_kafka_reader_new's consumer, with larger local queues. librdkafka 2.0 stops fetching a
 * partition once the consumer's queue holds queued.min.messages (100000) or
 * queued.max.messages.kbytes, and looks again only when its broker thread next wakes, up to a
 * second later: an export, slower than a local broker, filled the queue and then spent most of its
 * time waiting for fetches. A queue of 128 MB (about half a second of an export's work) hides
 * most of that wait, and keeps the export well within the Job's memory limit (1 GiB). */
static es_kafka_t *hi_export_reader(es_err_t *err)
{
    static const char *const queues[] = {"queued.min.messages", "1000000",
                                         "queued.max.messages.kbytes", "131072", NULL};
    return es_kafka_reader_new_with("eventshop-history", queues, err);
}

static int hi_export_run(struct hi_export *x, es_err_t *err)
{
    char *dir = xstrdup(x->dir);
    int rc = -1;
    struct hi_codec_load load = {.err = ES_ERR_INIT, .contexts = x->contexts};
    pthread_mutex_init(&load.lock, NULL);
    pthread_cond_init(&load.cond, NULL);
    /* the codec's thread first: it is the longest before the reading */
    if (!(load.sr = x->sr = sr_client_new(es_env_registry_url(), err)))
        goto out;
    if (pthread_create(&load.thread, NULL, hi_codec_load, &load))
        abort(); /* no thread: as an allocation failure */
    x->loading = &load;
    if (!(x->rk = hi_export_reader(err)))
        rc = -1;
    else if (hi_mkdirs(dir))
        es_set(err, ES_EIO, "cannot make %s: %s", x->dir, strerror(errno));
    else
        rc = hi_manifest_open(x, err) || hi_personal_open(x, err) ? -1 : 0;
    rc = hi_codec_ready(x, err) || rc ? -1 : 0; /* waited for also when something failed */
    pthread_join(load.thread, NULL);
    x->loading = NULL;
    if (!rc)
        rc = hi_export_topics(x, &load, err);
    for (size_t i = 0; i < load.nt; i++)
        if (load.ts[i].envelope)
            hi_topic_close(&load.ts[i]);
    free(load.ts);
out:
    pthread_mutex_destroy(&load.lock);
    pthread_cond_destroy(&load.cond);
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
