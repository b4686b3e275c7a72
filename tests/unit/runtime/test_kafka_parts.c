#include "es_kafka.h"
#include "es_kafka_rd.h"
#include "es_txn.h"
#include <criterion/criterion.h>
#include <string.h>

/* es_kafka's partition lists (es_kafka_parts_t), their conversion to and from librdkafka's, and
 * the settings of a transactional loop's consumer (es_txn_consumer_conf) and es_txn's
 * classification of transactional errors. No broker needed. */

Test(kafka_parts, add_find_copy)
{
    es_kafka_parts_t *l = es_kafka_parts_new(1); /* grows past its first size */
    char topic[16];
    strcpy(topic, "orders.events");
    for (int p = 0; p < 5; p++)
        es_kafka_parts_add(l, topic, p)->offset = 10 * p;
    strcpy(topic, "overwritten"); /* the list keeps its own copy */
    es_kafka_parts_add(l, "payments.events", 0)->offset = ES_KAFKA_OFFSET_BEGINNING;
    cr_assert_eq(l->cnt, 6);
    cr_assert_str_eq(l->elems[3].topic, "orders.events");
    cr_assert_eq(l->elems[3].partition, 3);
    cr_assert_eq(l->elems[3].err, 0);
    es_kafka_part_t *f = es_kafka_parts_find(l, "orders.events", 4);
    cr_assert_not_null(f);
    cr_assert_eq(f->offset, 40);
    cr_assert_null(es_kafka_parts_find(l, "orders.events", 7));
    cr_assert_null(es_kafka_parts_find(l, "payments.events", 1));
    cr_assert_eq(es_kafka_parts_find(l, "payments.events", 0)->offset, ES_KAFKA_OFFSET_BEGINNING);
    es_kafka_parts_t *c = es_kafka_parts_copy(l);
    es_kafka_parts_free(l);
    cr_assert_eq(c->cnt, 6);
    cr_assert_str_eq(c->elems[5].topic, "payments.events");
    cr_assert_eq(c->elems[2].offset, 20);
    es_kafka_parts_free(c);
    es_kafka_parts_free(NULL);
}

Test(kafka_parts, a_new_element_has_no_offset)
{
    es_kafka_parts_t *l = es_kafka_parts_new(0);
    cr_assert_eq(es_kafka_parts_add(l, "t", 0)->offset, RD_KAFKA_OFFSET_INVALID);
    es_kafka_parts_free(l);
}

Test(kafka_parts, round_trip_through_librdkafka)
{
    es_kafka_parts_t *l = es_kafka_parts_new(2);
    es_kafka_parts_add(l, "a", 0)->offset = 5;
    es_kafka_parts_add(l, "b", 3)->offset = ES_KAFKA_OFFSET_END;
    rd_kafka_topic_partition_list_t *r = es_kafka_parts_to_rd(l);
    cr_assert_eq(r->cnt, 2);
    cr_assert_str_eq(r->elems[1].topic, "b");
    cr_assert_eq(r->elems[1].partition, 3);
    cr_assert_eq(r->elems[1].offset, RD_KAFKA_OFFSET_END);
    r->elems[0].err = RD_KAFKA_RESP_ERR__PARTITION_EOF;
    es_kafka_parts_t *back = es_kafka_parts_from_rd(r);
    rd_kafka_topic_partition_list_destroy(r);
    cr_assert_eq(back->cnt, 2);
    cr_assert_str_eq(back->elems[0].topic, "a");
    cr_assert_eq(back->elems[0].offset, 5);
    cr_assert_eq(back->elems[0].err, ES_KAFKA_ERR_PARTITION_EOF);
    es_kafka_parts_free(back);
    es_kafka_parts_free(l);
}

Test(kafka_parts, error_text)
{
    cr_assert_str_eq(es_kafka_err_str(ES_KAFKA_ERR_MSG_TIMED_OUT),
                     rd_kafka_err2str(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT));
}

/* The property's value in conf, or "" when unset (static buffer). */
static const char *get(es_kafka_conf_t *conf, const char *key)
{
    static char buf[256];
    return es_kafka_conf_get(conf, key, buf, sizeof buf) ? buf : "";
}

Test(txn_consumer_conf, static_member_with_extra_settings)
{
    es_err_t err = ES_ERR_INIT;
    const char *extra[] = {"topic.metadata.refresh.interval.ms", "10000", NULL};
    es_kafka_conf_t *conf =
        es_txn_consumer_conf("client", "the-group", "the-group-1", false, extra, NULL, NULL, &err);
    cr_assert_not_null(conf, "%s", err.msg);
    cr_assert_str_eq(get(conf, "group.id"), "the-group");
    cr_assert_str_eq(get(conf, "group.instance.id"), "the-group-1");
    cr_assert_str_eq(get(conf, "isolation.level"), "read_committed");
    cr_assert_str_eq(get(conf, "enable.auto.commit"), "false");
    cr_assert_str_eq(get(conf, "auto.offset.reset"), "smallest"); /* librdkafka's name */
    cr_assert_str_eq(get(conf, "enable.partition.eof"), "false");
    cr_assert_str_eq(get(conf, "session.timeout.ms"), "15000");
    cr_assert_str_eq(get(conf, "topic.metadata.refresh.interval.ms"), "10000");
    es_kafka_conf_free(conf);
}

Test(txn_consumer_conf, dynamic_member_with_eof)
{
    es_err_t err = ES_ERR_INIT;
    es_kafka_conf_t *conf = es_txn_consumer_conf("client", "g", NULL, true, NULL, NULL, NULL, &err);
    cr_assert_not_null(conf, "%s", err.msg);
    cr_assert_str_eq(get(conf, "group.instance.id"), "");
    cr_assert_str_eq(get(conf, "enable.partition.eof"), "true");
    es_kafka_conf_t *dup = es_kafka_conf_dup(conf);
    es_kafka_conf_free(conf);
    cr_assert_str_eq(get(dup, "group.id"), "g");
    es_kafka_conf_free(dup);
}

/* es_txn's classification of transactional errors (LIBRARY-NOTES "Transactions"). */
Test(txn_classify, fatal_requires_abort_retriable_other)
{
    bool retry = true;
    cr_assert_eq(es_txn_error_outcome(true, true, true, ES_TXN_ABORT, &retry), ES_TXN_LOST);
    cr_assert_not(retry);
    cr_assert_eq(es_txn_error_outcome(false, true, true, ES_TXN_LOST, &retry), ES_TXN_ABORT);
    cr_assert_not(retry, "an abortable error is aborted, not retried");
    cr_assert_eq(es_txn_error_outcome(false, false, true, ES_TXN_LOST, &retry), ES_TXN_ABORT);
    cr_assert(retry);
    cr_assert_eq(es_txn_error_outcome(false, false, false, ES_TXN_LOST, &retry), ES_TXN_LOST);
    cr_assert_not(retry);
    cr_assert_eq(es_txn_error_outcome(false, false, false, ES_TXN_ABORT, &retry), ES_TXN_ABORT);
    cr_assert_not(retry);
}

Test(txn_classify, a_fence_within_the_timeout_is_a_twin)
{
    const int codes[] = {RD_KAFKA_RESP_ERR__FENCED, RD_KAFKA_RESP_ERR_PRODUCER_FENCED,
                         RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        cr_assert_eq(es_txn_fatal_outcome(codes[i], 0, 60000), ES_TXN_FENCED);
        cr_assert_eq(es_txn_fatal_outcome(codes[i], 59.9, 60000), ES_TXN_FENCED);
        cr_assert_eq(es_txn_fatal_outcome(codes[i], 60.0, 60000), ES_TXN_LOST,
                     "the coordinator times an open transaction out itself");
    }
    cr_assert_eq(es_txn_fatal_outcome(RD_KAFKA_RESP_ERR_INVALID_PRODUCER_ID_MAPPING, 1, 60000),
                 ES_TXN_LOST);
}
