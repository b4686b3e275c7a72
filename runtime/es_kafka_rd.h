/* es_kafka_rd — for runtime/ only: what es_kafka.c shares with the other librdkafka users of
 * the runtime (es_txn.c, admin_main.c). Roles include es_kafka.h and never this. */
#ifndef ES_KAFKA_RD_H
#define ES_KAFKA_RD_H

#include "es_kafka.h"
#include <librdkafka/rdkafka.h>

/* conf's librdkafka configuration (borrowed), e.g. for a delivery report callback, which gets
 * es_kafka_arg(rk) as its opaque's owner: use es_kafka_arg in it, never the opaque. */
rd_kafka_conf_t *es_kafka_conf_rd(es_kafka_conf_t *conf);

/* A new librdkafka list with l's elements (topic, partition, offset). */
rd_kafka_topic_partition_list_t *es_kafka_parts_to_rd(const es_kafka_parts_t *l);
/* A new es_kafka_parts_t with l's elements (topic, partition, offset, err). */
es_kafka_parts_t *es_kafka_parts_from_rd(const rd_kafka_topic_partition_list_t *l);

/* Converts and destroys kerr (may be NULL: returns 0). ES_EFATAL if fatal, ES_EIO otherwise. */
int es_kafka_error(es_err_t *err, rd_kafka_error_t *kerr, const char *what);

#endif
