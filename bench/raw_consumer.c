/* The baseline of `make bench`'s export figure: a plain read_committed consumer of the same
 * topics eventshop-history export reads, from each partition's start to its high watermark at
 * start, all partitions assigned at once (librdkafka fetches them in parallel). No decoding and
 * no writing: what reading the history costs the client library and the broker.
 *
 *   eventshop-bench-raw-consume TOPIC...
 * prints "raw_consume <records> <seconds>" (the records read, the wall time from the first
 * assign to the last partition's end). */
#include "es_kafka.h"
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Whether every partition of start (start offsets, as assigned) has reached its end. */
static int all_done(rd_kafka_t *rk, const rd_kafka_topic_partition_list_t *start,
                    const rd_kafka_topic_partition_list_t *end)
{
    rd_kafka_topic_partition_list_t *pos = rd_kafka_topic_partition_list_copy(end);
    int done = !rd_kafka_position(rk, pos);
    for (int i = 0; done && i < pos->cnt; i++) /* an empty partition never gets a position */
        done = start->elems[i].offset >= end->elems[i].offset ||
               pos->elems[i].offset >= end->elems[i].offset;
    rd_kafka_topic_partition_list_destroy(pos);
    return done;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s TOPIC...\n", argv[0]);
        return 2;
    }
    char group[64];
    snprintf(group, sizeof group, "eventshop-bench-raw-consume-%ld", (long)time(NULL));
    /* the settings es_kafka_read_committed_conf gives every reader (export's among them), written
     * out here so the baseline depends on nothing of ours but es_kafka_new; a group of its own */
    const char *kv[] = {
        "isolation.level",      "read_committed", "enable.auto.commit", "false", "group.id", group,
        "enable.partition.eof", "false",          "fetch.wait.max.ms",  "10",    NULL};
    es_err_t err = ES_ERR_INIT;
    es_kafka_conf_t *conf = es_kafka_conf_new("eventshop-bench-raw-consume", kv, &err);
    rd_kafka_t *rk = conf ? es_kafka_new(ES_KAFKA_CONSUMER, conf, &err) : NULL;
    if (!rk) {
        fprintf(stderr, "bench-raw-consume: %s\n", err.msg);
        return 1;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16),
                                    *end = rd_kafka_topic_partition_list_new(16);
    double t0 = now_s();
    for (int a = 1; a < argc; a++) {
        const rd_kafka_metadata_t *md = NULL;
        rd_kafka_topic_t *t = rd_kafka_topic_new(rk, argv[a], NULL);
        if (rd_kafka_metadata(rk, 0, t, &md, 10000) || md->topic_cnt != 1) {
            fprintf(stderr, "bench-raw-consume: no metadata for %s\n", argv[a]);
            return 1;
        }
        for (int p = 0; p < md->topics[0].partition_cnt; p++) {
            int64_t lo = 0, hi = 0;
            if (rd_kafka_query_watermark_offsets(rk, argv[a], p, &lo, &hi, 10000))
                return 1;
            rd_kafka_topic_partition_list_add(l, argv[a], p)->offset = lo;
            rd_kafka_topic_partition_list_add(end, argv[a], p)->offset = hi;
        }
        rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(t);
    }
    if (rd_kafka_assign(rk, l)) {
        fprintf(stderr, "bench-raw-consume: assign failed\n");
        return 1;
    }
    long long records = 0;
    for (;;) { /* past the last record nothing comes: then ask whether every end is reached */
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 10);
        if (!m) {
            if (all_done(rk, l, end))
                break;
            continue;
        }
        if (!m->err && m->payload)
            records++;
        else if (m->err)
            fprintf(stderr, "bench-raw-consume: %s\n", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
    }
    double dt = now_s() - t0;
    printf("raw_consume %lld %.3f\n", records, dt);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_topic_partition_list_destroy(end);
    es_kafka_close(rk); /* gives back the queue es_kafka_new took, then closes */
    es_kafka_destroy(rk);
    return 0;
}
