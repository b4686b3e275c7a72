/* The baseline of `make bench`: a plain transactional producer writing, per simulated command,
 * the same three records the handler writes (event, changelog state, result) with the same
 * batch size per transaction, to the same broker. No decoding, deciding or encoding.
 *
 *   eventshop-bench-raw TOPICS COMMANDS BATCH EVENT_BYTES STATE_BYTES RESULT_BYTES
 * TOPICS: one topic for all three records, or three comma-separated (event, state, result), as
 * the handler writes them; command i goes to partition i % 4 of each. Prints
 * "raw_commands_per_s <rate>". */
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

static void check(rd_kafka_error_t *e, const char *what)
{
    if (e) {
        fprintf(stderr, "bench-raw: %s: %s\n", what, rd_kafka_error_string(e));
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: %s TOPIC COMMANDS BATCH EVENT_BYTES STATE_BYTES RESULT_BYTES\n",
                argv[0]);
        return 2;
    }
    char topics_arg[512];
    snprintf(topics_arg, sizeof topics_arg, "%s", argv[1]);
    const char *topic[3];
    int ntopics = 0;
    for (char *save = NULL, *t = strtok_r(topics_arg, ",", &save); t && ntopics < 3;
         t = strtok_r(NULL, ",", &save))
        topic[ntopics++] = t;
    if (ntopics != 1 && ntopics != 3) {
        fprintf(stderr, "bench-raw: TOPICS is one topic or three, comma-separated\n");
        return 2;
    }
    long n = atol(argv[2]), batch = atol(argv[3]);
    size_t sizes[3] = {(size_t)atol(argv[4]), (size_t)atol(argv[5]), (size_t)atol(argv[6])};
    char txid[64];
    snprintf(txid, sizeof txid, "eventshop-bench-raw-%ld", (long)time(NULL));
    const char *kv[] = {"transactional.id", txid, "linger.ms", "5", NULL};
    es_err_t err = ES_ERR_INIT;
    /* the client is made by es_kafka (the environment's settings); everything after is raw */
    es_kafka_conf_t *conf = es_kafka_conf_new("eventshop-bench-raw", kv, &err);
    rd_kafka_t *rk = conf ? es_kafka_new(ES_KAFKA_PRODUCER, conf, &err) : NULL;
    if (!rk) {
        fprintf(stderr, "bench-raw: %s\n", err.msg);
        return 1;
    }
    check(rd_kafka_init_transactions(rk, 30000), "init_transactions");
    char *payload = calloc(1, 4096);
    memset(payload, 'x', 4095);
    double t0 = now_s();
    for (long done = 0; done < n;) {
        check(rd_kafka_begin_transaction(rk), "begin");
        for (long i = 0; i < batch && done < n; i++, done++) {
            char key[32];
            int klen = snprintf(key, sizeof key, "sku-%ld", done);
            for (int r = 0; r < 3; r++) {
                rd_kafka_resp_err_t e;
                while ((e = rd_kafka_producev(
                            rk, RD_KAFKA_V_TOPIC(topic[r % ntopics]),
                            RD_KAFKA_V_PARTITION((int32_t)(done % 4)),
                            RD_KAFKA_V_KEY(key, (size_t)klen),
                            RD_KAFKA_V_VALUE(payload, sizes[r] < 4095 ? sizes[r] : 4095),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
                       RD_KAFKA_RESP_ERR__QUEUE_FULL)
                    rd_kafka_poll(rk, 10);
                if (e) {
                    fprintf(stderr, "bench-raw: produce: %s\n", rd_kafka_err2str(e));
                    return 1;
                }
            }
        }
        /* flushed first, as the handler does: commit_transaction's own flush waits out
         * linger.ms (5 ms a transaction, measured: the limit fell below the handler at batch 100
         * and 500) */
        if (rd_kafka_flush(rk, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "bench-raw: flush timed out\n");
            return 1;
        }
        check(rd_kafka_commit_transaction(rk, 60000), "commit");
    }
    double dt = now_s() - t0;
    printf("raw_commands_per_s %.0f\n", n / dt);
    free(payload);
    es_kafka_destroy(rk);
    return 0;
}
