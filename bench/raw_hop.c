/* The latency limits of `make bench`'s command figures (bench/latency_bench.py), measured one at
 * a time on the same broker and MariaDB as the stack:
 *   - txn:     a transactional produce of one record (begin, produce, commit), until a
 *              read_committed consumer assigned to its partition returns it: the hop between a
 *              handler's transaction and whoever reads it (the API's results reader, a projector);
 *   - consume: an idempotent produce of one record (acks=all, linger 0) until a consumer returns
 *              it: the hop from the API's producer to the handler;
 *   - mysql:   one upsert of one row and its commit on the context's database: a projector's
 *              smallest batch.
 * The clients are made by es_kafka/es_db (the environment's settings); everything after is raw.
 *
 *   eventshop-bench-raw-hop TOPIC COUNT
 * prints "raw_hop <name> <p50 ms> <p99 ms>" per hop. TOPIC exists (partition 0 is used). */
#include "es_db.h"
#include "es_kafka.h"
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "bench-raw-hop: %s: %s\n", what, msg);
    exit(1);
}

static void check(rd_kafka_error_t *e, const char *what)
{
    if (e)
        die(what, rd_kafka_error_string(e));
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *name, double *ms, long n)
{
    qsort(ms, (size_t)n, sizeof *ms, cmp_double);
    long p99 = (long)(n * 0.99);
    printf("raw_hop %s %.3f %.3f\n", name, ms[n / 2], ms[p99 < n ? p99 : n - 1]);
    fflush(stdout);
}

static rd_kafka_t *client(es_kafka_type_t kind, const char *id, const char *const *kv)
{
    es_err_t err = ES_ERR_INIT;
    es_kafka_conf_t *conf = es_kafka_conf_new(id, kv, &err);
    rd_kafka_t *rk = conf ? es_kafka_new(kind, conf, &err) : NULL;
    if (!rk)
        die(id, err.msg);
    return rk;
}

/* A consumer of topic partition 0 from its end. */
static rd_kafka_t *tail_consumer(const char *topic, const char *isolation)
{
    char group[64];
    snprintf(group, sizeof group, "eventshop-bench-raw-hop-%ld", (long)time(NULL));
    const char *kv[] = {"group.id",
                        group,
                        "isolation.level",
                        isolation,
                        "enable.auto.commit",
                        "false",
                        "enable.partition.eof",
                        "false",
                        NULL};
    rd_kafka_t *c = client(ES_KAFKA_CONSUMER, "eventshop-bench-raw-hop-c", kv);
    int64_t lo = 0, hi = 0;
    if (rd_kafka_query_watermark_offsets(c, topic, 0, &lo, &hi, 10000))
        die("watermarks", topic);
    /* at the end known now: OFFSET_END resolved later could skip the first record */
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, 0)->offset = hi;
    if (rd_kafka_assign(c, l))
        die("assign", topic);
    rd_kafka_topic_partition_list_destroy(l);
    return c;
}

/* Waits until c returns the record whose value is tag. */
static void await(rd_kafka_t *c, const char *tag)
{
    for (;;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 5000);
        if (!m)
            die("consume", "no record within 5 s");
        int hit = !m->err && m->len == strlen(tag) && !memcmp(m->payload, tag, m->len);
        rd_kafka_message_destroy(m);
        if (hit)
            return;
    }
}

static void produce(rd_kafka_t *p, const char *topic, const char *tag)
{
    rd_kafka_resp_err_t e =
        rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
                          RD_KAFKA_V_KEY("hop", 3), RD_KAFKA_V_VALUE((void *)tag, strlen(tag)),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (e)
        die("produce", rd_kafka_err2str(e));
}

static void hop_txn(const char *topic, long n, double *ms)
{
    char txid[64];
    snprintf(txid, sizeof txid, "eventshop-bench-raw-hop-%ld", (long)time(NULL));
    const char *kv[] = {"transactional.id", txid, "linger.ms", "0", NULL};
    rd_kafka_t *p = client(ES_KAFKA_PRODUCER, "eventshop-bench-raw-hop", kv);
    check(rd_kafka_init_transactions(p, 30000), "init_transactions");
    rd_kafka_t *c = tail_consumer(topic, "read_committed");
    for (long i = -20; i < n; i++) { /* 20 to warm up: connections, metadata, assignment */
        char tag[64];
        snprintf(tag, sizeof tag, "txn-%ld-%ld", (long)time(NULL), i);
        double t0 = now_ms();
        check(rd_kafka_begin_transaction(p), "begin");
        produce(p, topic, tag);
        check(rd_kafka_commit_transaction(p, 30000), "commit");
        double t1 = now_ms();
        await(c, tag);
        if (i >= 0)
            ms[i] = now_ms() - t0;
        if (getenv("BENCH_HOP_TRACE"))
            fprintf(stderr, "txn commit %.2f ms, consume %.2f ms\n", t1 - t0, now_ms() - t1);
    }
    es_kafka_close(c); /* the queue es_kafka_new took goes back first */
    es_kafka_destroy(c);
    es_kafka_destroy(p);
}

static void hop_consume(const char *topic, long n, double *ms)
{
    const char *kv[] = {"enable.idempotence", "true", "acks", "all", "linger.ms", "0", NULL};
    rd_kafka_t *p = client(ES_KAFKA_PRODUCER, "eventshop-bench-raw-hop-p", kv);
    rd_kafka_t *c = tail_consumer(topic, "read_uncommitted");
    for (long i = -20; i < n; i++) {
        char tag[64];
        snprintf(tag, sizeof tag, "plain-%ld-%ld", (long)time(NULL), i);
        double t0 = now_ms();
        produce(p, topic, tag);
        await(c, tag);
        if (i >= 0)
            ms[i] = now_ms() - t0;
        rd_kafka_poll(p, 0);
    }
    rd_kafka_flush(p, 10000);
    es_kafka_close(c); /* the queue es_kafka_new took goes back first */
    es_kafka_destroy(c);
    es_kafka_destroy(p);
}

static void hop_mysql(long n, double *ms)
{
    es_err_t err = ES_ERR_INIT;
    es_db_t *db = es_db_open("catalog", &err);
    if (!db || es_db_exec(db,
                          "CREATE TABLE IF NOT EXISTS bench_hop (id INT PRIMARY KEY, "
                          "v BIGINT NOT NULL) ENGINE=InnoDB",
                          NULL, 0, NULL, &err))
        die("mysql", err.msg);
    for (long i = -20; i < n; i++) {
        es_db_val_t v[] = {ES_DB_I(i)};
        double t0 = now_ms();
        if (es_db_begin(db, &err) ||
            es_db_exec(db,
                       "INSERT INTO bench_hop (id, v) VALUES (1, ?) "
                       "ON DUPLICATE KEY UPDATE v = VALUES(v)",
                       v, 1, NULL, &err) ||
            es_db_commit(db, &err))
            die("mysql", err.msg);
        if (i >= 0)
            ms[i] = now_ms() - t0;
    }
    es_db_exec(db, "DROP TABLE bench_hop", NULL, 0, NULL, &err);
    es_db_close(db);
}

int main(int argc, char **argv)
{
    if (argc != 3 || atol(argv[2]) < 1) {
        fprintf(stderr, "usage: %s TOPIC COUNT\n", argv[0]);
        return 2;
    }
    long n = atol(argv[2]);
    double *ms = calloc((size_t)n, sizeof *ms);
    hop_txn(argv[1], n, ms);
    report("txn", ms, n);
    hop_consume(argv[1], n, ms);
    report("consume", ms, n);
    hop_mysql(n, ms);
    report("mysql", ms, n);
    free(ms);
    return 0;
}
