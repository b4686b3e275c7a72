/* Where a history run starts or stops, in offsets: a TIME or POSITIONS (hi_positions.h) resolved
 * against the brokers. Shared by export and as-of. */
#include "hi.h"

int hi_offsets_at(es_kafka_t *rk, const char *topic, int nparts, int64_t ms, int64_t *offs,
                  es_err_t *err)
{
    es_kafka_parts_t *l = es_kafka_parts_new(nparts), *ends = es_kafka_parts_new(nparts);
    for (int p = 0; p < nparts; p++) {
        es_kafka_parts_add(l, topic, p)->offset = ms;
        es_kafka_parts_add(ends, topic, p)->offset = ES_KAFKA_OFFSET_END;
    }
    int code = es_kafka_offsets_for_times(rk, l, 15000);
    if (!code)
        code = es_kafka_offsets_for_times(rk, ends, 15000);
    for (int p = 0; !code && p < nparts; p++) {
        if ((code = l->elems[p].err ? l->elems[p].err : ends->elems[p].err))
            break;
        offs[p] = l->elems[p].offset < 0 ? ends->elems[p].offset : l->elems[p].offset;
    }
    es_kafka_parts_free(l);
    es_kafka_parts_free(ends);
    return es_kafka_resp_error(err, code, topic);
}

int hi_resolve(es_kafka_t *rk, const hi_spec_t *spec, bool is_to, const char *topic, int nparts,
               int64_t *offs, es_err_t *err)
{
    if (spec && spec->is_time)
        return hi_offsets_at(rk, topic, nparts, spec->time_ms + (is_to ? 1 : 0), offs, err);
    if (hi_offsets_at(rk, topic, nparts, is_to ? ES_KAFKA_OFFSET_END : 0, offs, err))
        return -1;
    for (int p = 0; spec && p < nparts; p++)
        offs[p] = hi_spec_offset(spec, topic, p, offs[p]);
    return 0;
}
