/* eventshop-admin — operator commands on the Kafka side. `eventshop-admin topics [ctx...]`
 * creates (idempotently) every topic of DESIGN.md §2 for the given contexts, waiting up to 60 s
 * for the broker to answer first, so scripts can use it as the broker's readiness probe. */
#include "es_env.h"
#include "es_err.h"
#include "es_kafka.h"
#include "es_kafka_rd.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct topic_kind {
    const char *kind;
    const char *const cfg[6]; /* name, value pairs, NULL-terminated */
} topic_kind_t;

/* events keep everything (source of truth); the changelog is compacted; results are the
 * idempotency window of command ids, a week. The pseudo-context "operations" has only an events
 * topic: operations.events, the operators' actions (OperatorAction), kept forever too. */
static const topic_kind_t kinds[] = {
    {"commands", {"retention.ms", "604800000", NULL}},
    {"events", {"retention.ms", "-1", "retention.bytes", "-1", NULL}},
    {"changelog", {"cleanup.policy", "compact", NULL}},
    {"results", {"retention.ms", "604800000", NULL}},
};

static rd_kafka_NewTopic_t *new_topic(const char *name, int partitions, int rf,
                                      const char *const *cfg)
{
    char errstr[256];
    rd_kafka_NewTopic_t *t = rd_kafka_NewTopic_new(name, partitions, rf, errstr, sizeof errstr);
    if (!t) {
        fprintf(stderr, "eventshop-admin: topic '%s': %s\n", name, errstr);
        exit(1);
    }
    for (; cfg && cfg[0]; cfg += 2)
        rd_kafka_NewTopic_set_config(t, cfg[0], cfg[1]);
    return t;
}

static int wait_for_broker(es_kafka_t *rk)
{
    for (int i = 0; i < 120; i++) {
        if (es_kafka_reachable(rk, 1000))
            return 0;
        usleep(500 * 1000);
    }
    return -1;
}

static int create_topics(int nctx, char **ctxs)
{
    es_err_t err = ES_ERR_INIT;
    /* quiet while the broker is still starting: failures are reported below */
    const char *kv[] = {"log_level", "0", NULL};
    es_kafka_conf_t *conf = es_kafka_conf_new("eventshop-admin", kv, &err);
    es_kafka_t *rk = conf ? es_kafka_new(ES_KAFKA_PRODUCER, conf, &err) : NULL;
    if (!rk) {
        fprintf(stderr, "eventshop-admin: %s\n", err.msg);
        return 1;
    }
    int rc = 1;
    if (wait_for_broker(rk)) {
        fprintf(stderr, "eventshop-admin: no broker answered at '%s' within 60 s\n",
                es_env_brokers());
        goto out;
    }
    int parts = es_env_partitions();
    int rf = (int)es_env_long("EVENTSHOP_REPLICATION_FACTOR", 1);
    size_t n = 0, cap = 1 + (size_t)nctx * (sizeof kinds / sizeof kinds[0]);
    rd_kafka_NewTopic_t **topics = calloc(cap, sizeof *topics);
    const char *const schemas_cfg[] = {"cleanup.policy", "compact", NULL};
    topics[n++] = new_topic(es_env_str("EVENTSHOP_REGISTRY_TOPIC", "_schemas"), 1, rf, schemas_cfg);
    for (int c = 0; c < nctx; c++) {
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
            if (!strcmp(ctxs[c], "operations") && strcmp(kinds[k].kind, "events"))
                continue;
            char name[256];
            es_topic(name, sizeof name, ctxs[c], kinds[k].kind);
            topics[n++] = new_topic(name, parts, rf, kinds[k].cfg);
        }
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, topics, n, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    const rd_kafka_CreateTopics_result_t *res = ev ? rd_kafka_event_CreateTopics_result(ev) : NULL;
    if (!res) {
        fprintf(stderr, "eventshop-admin: no answer to CreateTopics\n");
    } else {
        size_t cnt;
        const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &cnt);
        rc = 0;
        for (size_t i = 0; i < cnt; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
            if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                fprintf(stderr, "eventshop-admin: topic '%s': %s\n",
                        rd_kafka_topic_result_name(tr[i]),
                        rd_kafka_topic_result_error_string(tr[i]));
                rc = 1;
            }
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy_array(topics, n);
    free(topics);
out:
    es_kafka_destroy(rk);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "topics")) {
        static char *def[] = {"catalog"};
        return argc > 2 ? create_topics(argc - 2, argv + 2) : create_topics(1, def);
    }
    fprintf(stderr, "usage: eventshop-admin topics [context...]\n");
    return 2;
}
