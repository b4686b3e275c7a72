/* eventshop-history projections — the projections as an operator sees them, from the command
 * line: the list (version, per-partition position and lag, state, dead letters), read from each
 * context's database as GET /v1/admin/projections reads it, and the operations, each produced as
 * an OperatorAction to operations.events with --actor and --reason, like the API's: the projector
 * replicas act on it (projections/pj_ops.c). */
#include "es_db.h"
#include "es_env.h"
#include "es_err.h"
#include "es_kafka.h"
#include "es_time.h"
#include "es_uuid.h"
#include "hi.h"
#include "pj_runtime.h"
/* ev_codec.h's comment holds a path with "/\*" in it */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wcomment"
#include "ev_codec.h"
#pragma GCC diagnostic pop
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HI_OPS_TOPIC "operations.events"
#define HI_OPS_TYPE  "eventshop.operations.OperatorAction"

static const char usage_text[] =
    "usage: eventshop-history projections [list | pause NAME | resume NAME | rebuild NAME\n"
    "         [--when-equal] | swap NAME | dead-letters | replay ID | discard ID]\n"
    "         [--reason TEXT] [--actor NAME]\n"
    "  NAME: a projection (e.g. catalog_products); ID: <projection>:<partition>:<offset>\n"
    "  every operation needs --reason and --actor (recorded on operations.events)\n"
    "  rebuild builds shadow tables beside the live ones and compares them (shown by list as\n"
    "  shadow_ready); swap swaps them in; --when-equal: as soon as the comparison passes\n";

/* The contexts that have a projection, each once, in the table's order. */
static int contexts_of_projections(const char *out[], int cap)
{
    int n = 0;
    for (const pj_projection_t *const *p = pj_projections; *p && n < cap; p++) {
        bool seen = false;
        for (int i = 0; i < n; i++)
            seen = seen || !strcmp(out[i], (*p)->context);
        if (!seen)
            out[n++] = (*p)->context;
    }
    return n;
}

/* The context of projection key name: the projection whose name it starts with. */
static const char *context_of(const char *name)
{
    for (const pj_projection_t *const *p = pj_projections; *p; p++)
        if (!strncmp(name, (*p)->name, strlen((*p)->name)))
            return (*p)->context;
    return NULL;
}

/* A shadow rebuild's comparison (pj_rebuild.c: the status detail of state shadow_ready, a new
 * object), or NULL when detail is not one. */
static json_t *compare_of(const char *state, const char *detail)
{
    json_t *cmp = strcmp(state, "shadow_ready") ? NULL : json_loads(detail, 0, NULL);
    if (!json_is_array(json_object_get(cmp, "tables"))) {
        json_decref(cmp);
        return NULL;
    }
    return cmp;
}

/* The comparison cmp (stolen), one line per table. */
static void print_compare(json_t *cmp)
{
    json_t *t;
    printf("    compared with the live tables: %s\n",
           json_is_true(json_object_get(cmp, "equal")) ? "equal" : "DIFFERENT");
    size_t i;
    json_array_foreach(json_object_get(cmp, "tables"), i, t)
    {
        printf("    compare %-28s rows live %lld shadow %lld, checksum %s\n",
               json_string_value(json_object_get(t, "table")),
               (long long)json_integer_value(json_object_get(t, "live_rows")),
               (long long)json_integer_value(json_object_get(t, "shadow_rows")),
               json_string_value(json_object_get(t, "checksum")));
    }
    json_decref(cmp);
}

static void print_partitions(es_db_t *db, es_kafka_t *rk, const char *name, const char *topic)
{
    const es_db_val_t params[] = {ES_DB_S(name), ES_DB_S(topic)};
    json_t *rows = es_db_query(db,
                               "SELECT part, next_offset, CAST(TIMESTAMPDIFF(MICROSECOND, "
                               "updated_at, NOW(3)) / 1000 AS SIGNED) AS idle_ms FROM "
                               "projection_offsets WHERE projection=? AND topic=? ORDER BY part",
                               params, 2, NULL);
    size_t i;
    json_t *o;
    json_array_foreach(rows, i, o)
    {
        int part = (int)json_integer_value(json_object_get(o, "part"));
        int64_t next = json_integer_value(json_object_get(o, "next_offset")), lo = 0, hi = -1;
        long long idle = json_integer_value(json_object_get(o, "idle_ms"));
        es_kafka_query_watermarks(rk, topic, part, &lo, &hi, 2000);
        int64_t lag = hi > next ? hi - next : 0;
        printf("    partition %d: position %lld, high watermark %lld, lag %lld events, %.1f s\n",
               part, (long long)next, (long long)hi, (long long)lag, lag > 0 ? idle / 1000.0 : 0.0);
    }
    json_decref(rows);
}

static void list_context(const char *ctx, es_kafka_t *rk)
{
    es_err_t err = ES_ERR_INIT;
    es_db_t *db = es_db_open(ctx, &err);
    json_t *st = db ? es_db_query(db,
                                  "SELECT projection, version, state, detail, CAST(TIMESTAMPDIFF("
                                  "MICROSECOND, updated_at, NOW(3)) / 1000 AS SIGNED) AS age_ms, "
                                  "(SELECT COUNT(*) "
                                  "FROM projection_dead_letters d WHERE d.projection="
                                  "s.projection) AS dead FROM projection_status s ORDER BY "
                                  "projection",
                                  NULL, 0, &err)
                    : NULL;
    if (!st) {
        printf("%s: degraded: database unreachable: %s\n", ctx, err.msg);
        es_db_close(db);
        return;
    }
    char topic[64];
    es_topic(topic, sizeof topic, ctx, "events");
    size_t i;
    json_t *s;
    json_array_foreach(st, i, s)
    {
        const char *name = json_string_value(json_object_get(s, "projection"));
        const char *state = json_string_value(json_object_get(s, "state"));
        long long dead = json_integer_value(json_object_get(s, "dead"));
        /* as GET /v1/admin/projections says it: a status not renewed for a minute is no
         * projector running; a running one with dead letters is degraded */
        if (!strcmp(state, "running") && json_integer_value(json_object_get(s, "age_ms")) > 60000)
            state = "stopped";
        const char *detail = json_string_value(json_object_get(s, "detail"));
        json_t *cmp = compare_of(state, detail);
        printf("%s (%s) version %lld: %s%s%s, %lld dead letters\n", name, ctx,
               (long long)json_integer_value(json_object_get(s, "version")),
               dead > 0 && !strcmp(state, "running") ? "degraded" : state,
               *detail && !cmp ? ": " : "", cmp ? "" : detail, dead);
        if (cmp)
            print_compare(cmp);
        print_partitions(db, rk, name, topic);
    }
    json_decref(st);
    es_db_close(db);
}

static void list_dead_letters(const char *ctx)
{
    es_err_t err = ES_ERR_INIT;
    es_db_t *db = es_db_open(ctx, &err);
    json_t *rows = db ? es_db_query(db,
                                    "SELECT projection, part, `offset`, error FROM "
                                    "projection_dead_letters ORDER BY projection, part, `offset`",
                                    NULL, 0, &err)
                      : NULL;
    if (!rows)
        fprintf(stderr, "%s: %s\n", ctx, err.msg);
    size_t i;
    json_t *d;
    json_array_foreach(rows, i, d)
        printf("%s:%lld:%lld\t%s\n", json_string_value(json_object_get(d, "projection")),
               (long long)json_integer_value(json_object_get(d, "part")),
               (long long)json_integer_value(json_object_get(d, "offset")),
               json_string_value(json_object_get(d, "error")));
    json_decref(rows);
    es_db_close(db);
}

static int list(bool dead_letters)
{
    const char *ctxs[16];
    int n = contexts_of_projections(ctxs, 16);
    es_err_t err = ES_ERR_INIT;
    es_kafka_t *rk =
        dead_letters ? NULL : es_kafka_idempotent_new("eventshop-history", 0, 5000, &err);
    if (!dead_letters && !rk) {
        fprintf(stderr, "eventshop-history projections: %s\n", err.msg);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        if (dead_letters)
            list_dead_letters(ctxs[i]);
        else
            list_context(ctxs[i], rk);
    }
    es_kafka_destroy(rk);
    return 0;
}

/* The OperatorAction for what and arg (a projection, or a dead letter's id), as a new object
 * without id, actor, reason and time; NULL when arg is not valid for it. swap: a rebuild's
 * "when_equal", or NULL. */
static json_t *action_of(const char *what, const char *arg, const char *swap)
{
    char name[72];
    int part = -1;
    long long off = -1;
    char tail;
    bool dead = !strcmp(what, "replay") || !strcmp(what, "discard");
    if (dead) {
        const char *c = strchr(arg, ':');
        if (!c || c - arg >= (long)sizeof name ||
            sscanf(c + 1, "%d:%lld%c", &part, &off, &tail) != 2 || part < 0 || off < 0)
            return NULL;
        snprintf(name, sizeof name, "%.*s", (int)(c - arg), arg);
    } else {
        snprintf(name, sizeof name, "%s", arg);
    }
    if (!pj_suffix_is_valid(name) || !*name || !context_of(name))
        return NULL;
    return json_pack("{s:s, s:s, s:o, s:o, s:s?}", "action", what, "projection", name,
                     "dead_letter_part", dead ? json_integer(part) : json_null(),
                     "dead_letter_offset", dead ? json_integer(off) : json_null(), "swap", swap);
}

static int operate(const char *what, const char *arg, const char *actor, const char *reason,
                   const char *swap)
{
    json_t *a = action_of(what, arg, swap);
    if (!a) {
        fprintf(stderr, "eventshop-history projections %s: '%s' is not a %s\n", what, arg,
                strchr("rd", what[0]) && strcmp(what, "rebuild") ? "dead letter id" : "projection");
        return 2;
    }
    char id[ES_UUID_LEN];
    es_uuid_random(id);
    json_object_set_new(a, "action_id", json_string(id));
    json_object_set_new(a, "actor", json_string(actor));
    json_object_set_new(a, "reason", json_string(reason));
    json_object_set_new(a, "requested_at", json_integer(es_wall_ms()));
    es_err_t err = ES_ERR_INIT;
    sr_client_t *sr = sr_client_new(es_env_registry_url(), &err);
    ev_codec_t *codec = sr ? ev_codec_new(es_env_schema_dir(), sr, &err) : NULL;
    es_kafka_t *rk = codec ? es_kafka_idempotent_new("eventshop-history", 0, 10000, &err) : NULL;
    void *buf = NULL;
    size_t len = 0;
    int rc = 1;
    const char *key = json_string_value(json_object_get(a, "projection"));
    if (rk && ev_encode(codec, HI_OPS_TOPIC, HI_OPS_TYPE, a, &buf, &len, &err) == 0) {
        int e = es_kafka_produce_sync(rk, HI_OPS_TOPIC, ES_KAFKA_PARTITION_ANY, key, strlen(key),
                                      buf, len);
        if (e)
            es_set(&err, ES_EIO, "produce to %s: %s", HI_OPS_TOPIC, es_kafka_err_str(e));
        rc = e ? 1 : 0;
    }
    if (rc)
        fprintf(stderr, "eventshop-history projections %s: %s\n", what, err.msg);
    else
        printf("%s %s: recorded as action %s on %s\n", what, arg, id, HI_OPS_TOPIC);
    free(buf);
    es_kafka_destroy(rk);
    ev_codec_free(codec);
    sr_client_free(sr);
    json_decref(a);
    return rc;
}

int hi_projections_main(int argc, char **argv)
{
    static const struct option opts[] = {{"reason", required_argument, NULL, 'r'},
                                         {"actor", required_argument, NULL, 'a'},
                                         {"when-equal", no_argument, NULL, 'w'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *reason = NULL, *actor = NULL, *swap = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "r:a:wh", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage_text, stdout);
            return 0;
        }
        if (c == '?')
            return fputs(usage_text, stderr), 2;
        if (c == 'w')
            swap = "when_equal";
        else
            *(c == 'r' ? &reason : &actor) = optarg;
    }
    const char *what = optind < argc ? argv[optind] : "list";
    if (!strcmp(what, "list") || !strcmp(what, "dead-letters"))
        return list(what[0] == 'd');
    static const char *const ops[] = {"pause",  "resume",  "rebuild", "swap",
                                      "replay", "discard", NULL};
    bool known = false;
    for (const char *const *o = ops; *o; o++)
        known = known || !strcmp(*o, what);
    if (!known || optind + 1 >= argc || !reason || !*reason || !actor || !*actor ||
        (swap && strcmp(what, "rebuild"))) {
        fputs(usage_text, stderr);
        return 2;
    }
    return operate(what, argv[optind + 1], actor, reason, swap);
}
