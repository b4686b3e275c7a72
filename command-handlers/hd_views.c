/* hd_views — see hd_views.h. */
#include "hd_views.h"
#include "es_fault.h"
#include "es_kafka.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_time.h"
#include "es_uuid.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hd_views {
    const hd_context_t *ctx;
    ev_codec_t *codec;
    const volatile sig_atomic_t *stop;
    es_kafka_t *consumer; /* NULL when the context has no views */
    json_t *view;         /* the one object every view folds into */
    struct hd_view_part {
        size_t view;
        int32_t partition;
        int64_t pos;    /* next offset to read: last message + 1, or an EOF's offset */
        int64_t target; /* the last stable offset to reach before deciding */
    } * parts;
    size_t nparts;
};

/* The consumer, assigned nothing yet. */
static es_kafka_t *views_consumer_new(const hd_context_t *ctx, es_err_t *err)
{
    char group[160], id[ES_UUID_LEN], client[160];
    /* librdkafka wants a group id; it is never joined (assign only) and nothing is committed.
     * partition EOF events tell the position past trailing transaction markers */
    es_uuid_random(id);
    snprintf(group, sizeof group, "eventshop-%s-handler-views-%s", ctx->name, id);
    snprintf(client, sizeof client, "eventshop-%s-handler-views", ctx->name);
    const char *kv[] = {"enable.auto.offset.store", "false",
                        /* librdkafka's default, as always (views are assigned from the
                         * beginning: only an offset out of range uses it) */
                        "auto.offset.reset", "latest",
                        /* a batch waits for its views to reach the high watermark, which lies
                         * past the transaction marker no message reports: only the next EOF
                         * does, so the broker must not hold empty fetches for long */
                        "fetch.wait.max.ms", "5", NULL};
    es_kafka_conf_t *conf = es_kafka_read_committed_conf(client, group, true, kv, err);
    if (!conf)
        return NULL;
    return es_kafka_new(ES_KAFKA_CONSUMER, conf, err);
}

/* Assigns every partition of every view topic from its beginning. */
static int views_assign(hd_views_t *v, es_err_t *err)
{
    es_kafka_parts_t *parts = es_kafka_parts_new(8);
    int rc = -1;
    for (size_t i = 0; i < v->ctx->n_views; i++) {
        const char *topic = v->ctx->views[i].topic;
        int n = es_kafka_partition_count(v->consumer, topic, err);
        if (n < 0)
            goto out;
        for (int p = 0; p < n; p++) {
            es_kafka_parts_add(parts, topic, p)->offset = ES_KAFKA_OFFSET_BEGINNING;
            v->parts = xrealloc(v->parts, (v->nparts + 1) * sizeof *v->parts);
            v->parts[v->nparts++] = (struct hd_view_part){i, p, 0, 0};
        }
    }
    int e = es_kafka_assign(v->consumer, parts);
    if (e) {
        es_kafka_resp_error(err, e, "assign view partitions");
        goto out;
    }
    rc = 0;
out:
    es_kafka_parts_free(parts);
    return rc;
}

hd_views_t *hd_views_new(const hd_context_t *ctx, ev_codec_t *codec,
                         const volatile sig_atomic_t *stop, es_err_t *err)
{
    hd_views_t *v = xcalloc(1, sizeof *v);
    v->ctx = ctx;
    v->codec = codec;
    v->stop = stop;
    v->view = json_object();
    if (ctx->n_views == 0)
        return v;
    if (!(v->consumer = views_consumer_new(ctx, err)) || views_assign(v, err) != 0) {
        hd_views_free(v);
        return NULL;
    }
    return v;
}

static struct hd_view_part *view_part_find(hd_views_t *v, const char *topic, int32_t p,
                                           size_t *view)
{
    for (size_t i = 0; i < v->nparts; i++) {
        struct hd_view_part *vp = &v->parts[i];
        if (vp->partition == p && !strcmp(v->ctx->views[vp->view].topic, topic)) {
            *view = vp->view;
            return vp;
        }
    }
    return NULL;
}

static void view_message(hd_views_t *v, es_kafka_msg_t *m)
{
    size_t i = 0;
    struct hd_view_part *vp = m->topic ? view_part_find(v, m->topic, m->partition, &i) : NULL;
    if (m->err) {
        if (m->err == ES_KAFKA_ERR_PARTITION_EOF) {
            if (vp && m->offset > vp->pos)
                vp->pos = m->offset;
        } else {
            es_warn("view consumer: %s", m->errstr);
        }
        return;
    }
    if (!vp)
        return;
    vp->pos = m->offset + 1;
    if (!m->value)
        return;
    const char *type = NULL;
    json_t *ev = NULL;
    es_err_t err = ES_ERR_INIT;
    if (ev_decode(v->codec, m->value, m->len, &type, &ev, &err) != 0) {
        es_error("view %s[%d]@%lld: %s", v->ctx->views[i].topic, (int)m->partition,
                 (long long)m->offset, err.msg);
        return;
    }
    v->ctx->views[i].fold(v->view, type, ev);
    json_decref(ev);
}

/* Sets each view partition's target to its end now (read_committed: the last stable offset),
 * asked of the broker for every partition in one request (before each batch: a round trip per
 * partition was a command's latency). 0, or -1 with err. */
static int views_targets(hd_views_t *v, int timeout_ms, es_err_t *err)
{
    es_kafka_parts_t *ends = es_kafka_parts_new((int)v->nparts);
    for (size_t i = 0; i < v->nparts; i++)
        es_kafka_parts_add(ends, v->ctx->views[v->parts[i].view].topic, v->parts[i].partition)
            ->offset = ES_KAFKA_OFFSET_END;
    if (es_fault_hit("hd.views_ends")) { /* as topics just made answer for a moment */
        es_kafka_parts_free(ends);
        return es_set(err, ES_EIO, "the views' ends: fault 'hd.views_ends' (not leader)");
    }
    int rc = 0, e = es_kafka_offsets_for_times(v->consumer, ends, timeout_ms);
    for (size_t i = 0; i < v->nparts && !e; i++) {
        const es_kafka_part_t *end = &ends->elems[i];
        if ((e = end->err) == 0 && end->offset < 0)
            e = ES_KAFKA_ERR_NO_OFFSET;
        if (!e)
            v->parts[i].target = end->offset;
    }
    if (e)
        rc = es_kafka_resp_error(err, e, "the views' ends");
    es_kafka_parts_free(ends);
    return rc;
}

/* hd_views_catch_up with the partitions resumed. */
static int views_catch_up_resumed(hd_views_t *v, int timeout_ms, es_err_t *err)
{
    double deadline = es_mono_s() + timeout_ms / 1000.0;
    if (views_targets(v, timeout_ms, err) != 0)
        return -1;
    for (;;) {
        bool behind = false;
        for (size_t i = 0; i < v->nparts && !behind; i++)
            behind = v->parts[i].pos < v->parts[i].target;
        if (!behind)
            return 0;
        if (es_mono_s() >= deadline || (v->stop && *v->stop))
            return es_set(err, ES_ETIMEOUT, "the views of '%s' did not catch up in %d ms",
                          v->ctx->name, timeout_ms);
        es_kafka_msg_t *m = es_kafka_poll(v->consumer, 5);
        if (m) {
            view_message(v, m);
            es_kafka_msg_free(m);
        }
    }
}

int hd_views_catch_up(hd_views_t *v, int timeout_ms, es_err_t *err)
{
    if (!v->consumer)
        return 0;
    es_kafka_parts_t *parts = NULL;
    es_kafka_assignment(v->consumer, &parts);
    es_kafka_resume(v->consumer, parts);
    int rc = views_catch_up_resumed(v, timeout_ms, err);
    es_kafka_pause(v->consumer, parts);
    es_kafka_parts_free(parts);
    return rc;
}

const json_t *hd_views_get(const hd_views_t *v)
{
    return v->view;
}

size_t hd_views_partition_count(const hd_views_t *v)
{
    return v->nparts;
}

void hd_views_free(hd_views_t *v)
{
    if (!v)
        return;
    if (v->consumer) {
        es_kafka_close(v->consumer);
        es_kafka_destroy(v->consumer);
    }
    json_decref(v->view);
    free(v->parts);
    free(v);
}
