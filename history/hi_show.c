/* eventshop-history show CONTEXT AGGREGATE_ID [--json]: an aggregate's events for an operator, as
 * GET /v1/history answers them, read the same way: the positions from the context's event index
 * (PJ_INDEX_TABLE in eventshop_<ctx>, with the projector's database settings), then only those
 * records from <ctx>.events (read_committed), decoded with the registry's schemas. Sealed
 * personal fields stay sealed: opening them is the API's, for the entitled. */
#include "es_db.h"
#include "es_env.h"
#include "es_kafka.h"
#include "es_log.h"
#include "es_mem.h"
#include "ev_codec.h"
#include "hi.h"
#include "pj_runtime.h"
#include "sr_client.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KAFKA_WAIT_MS 30000

struct show {
    ev_codec_t *codec;
    json_t *rows; /* the index rows, version order; each gets "type" and "payload" when read */
    es_err_t err;
};

static int show_take(const es_kafka_msg_t *m, void *arg)
{
    struct show *s = arg;
    size_t i;
    json_t *row;
    json_array_foreach(s->rows, i, row)
    {
        if (json_integer_value(json_object_get(row, "part")) != m->partition ||
            json_integer_value(json_object_get(row, "offset")) != m->offset)
            continue;
        const char *full_name = NULL;
        json_t *value = NULL;
        if (!m->value)
            return es_set(&s->err, ES_EINVAL, "%s[%d]@%lld has no payload", m->topic,
                          (int)m->partition, (long long)m->offset);
        if (ev_decode(s->codec, m->value, m->len, &full_name, &value, &s->err))
            return -1;
        json_object_del(value, "metadata");
        json_object_set_new(row, "type", json_string(full_name));
        json_object_set_new(row, "payload", value);
    }
    return 0;
}

/* Reads every row's record, one partition at a time: 0, or -1 with s->err. */
static int show_read(struct show *s, const char *ctx)
{
    char topic[64];
    es_topic(topic, sizeof topic, ctx, "events");
    size_t n = json_array_size(s->rows);
    int64_t *offsets = xmalloc((n ? n : 1) * sizeof *offsets);
    int rc = 0;
    for (int32_t part = 0; rc == 0; part++) {
        size_t k = 0, later = 0;
        size_t i;
        json_t *row;
        json_array_foreach(s->rows, i, row)
        {
            int32_t p = (int32_t)json_integer_value(json_object_get(row, "part"));
            if (p == part)
                offsets[k++] = json_integer_value(json_object_get(row, "offset"));
            later += p > part;
        }
        /* the index gives one aggregate's rows in version order: its offsets ascend */
        if (k)
            rc = es_kafka_read_offsets(topic, part, offsets, k, show_take, s, KAFKA_WAIT_MS,
                                       &s->err);
        if (!later)
            break;
    }
    free(offsets);
    return rc ? -1 : 0;
}

static void print_text(const json_t *rows)
{
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        long long ms = json_integer_value(json_object_get(row, "occurred_at"));
        time_t secs = (time_t)(ms / 1000);
        struct tm tm;
        char when[32];
        gmtime_r(&secs, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        char *payload = json_dumps(json_object_get(row, "payload"), JSON_COMPACT);
        printf("%4lld  %s.%03lldZ  %lld:%lld  %s  %s\n",
               json_integer_value(json_object_get(row, "version")), when, ms % 1000,
               json_integer_value(json_object_get(row, "part")),
               json_integer_value(json_object_get(row, "offset")),
               json_string_value(json_object_get(row, "type")), payload ? payload : "null");
        free(payload);
    }
}

static int usage(void)
{
    fputs("usage: eventshop-history show CONTEXT AGGREGATE_ID [--json]\n"
          "  the aggregate's events in version order: version, time, position, type, payload\n"
          "  (sealed personal fields stay sealed); --json: one JSON document\n",
          stderr);
    return 2;
}

int hi_show_main(int argc, char **argv)
{
    const char *ctx = NULL, *id = NULL;
    bool as_json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            as_json = true;
        else if (!strcmp(argv[i], "--help") || argv[i][0] == '-')
            return usage();
        else if (!ctx)
            ctx = argv[i];
        else if (!id)
            id = argv[i];
        else
            return usage();
    }
    if (!ctx || !id || !pj_projection_find(ctx, NULL))
        return usage();
    es_err_t err = ES_ERR_INIT;
    struct show s = {.err = ES_ERR_INIT};
    sr_client_t *sr = NULL;
    int rc = 1;
    es_db_t *db = es_db_open(ctx, &err);
    const es_db_val_t p[] = {ES_DB_S(id)};
    if (!db || !(s.rows = es_db_query(db,
                                      "SELECT part, `offset`, aggregate_version AS version, "
                                      "occurred_at FROM " PJ_INDEX_TABLE " WHERE aggregate_id = ? "
                                      "ORDER BY aggregate_version, part, `offset`",
                                      p, 1, &err)))
        goto out;
    if (json_array_size(s.rows) == 0) {
        es_set(&err, ES_ENOTFOUND, "no aggregate '%s' in the index of %s", id, ctx);
        goto out;
    }
    if (!(sr = sr_client_new(es_env_registry_url(), &err)) ||
        !(s.codec = ev_codec_new(es_env_schema_dir(), sr, &err)))
        goto out;
    if (show_read(&s, ctx)) {
        err = s.err;
        goto out;
    }
    if (as_json) {
        json_t *doc =
            json_pack("{s:s, s:s, s:O}", "context", ctx, "aggregate_id", id, "items", s.rows);
        json_dumpf(doc, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(doc);
    } else {
        print_text(s.rows);
    }
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "eventshop-history show: %s\n", err.msg);
    ev_codec_free(s.codec);
    sr_client_free(sr);
    json_decref(s.rows);
    es_db_close(db);
    return rc;
}
