/* Where a history run starts or stops, in offsets: a TIME or POSITIONS (hi_positions.h) resolved
 * against the brokers. Shared by export and as-of. */
#include "hi.h"

int hi_offsets_at_all(es_kafka_t *rk, const es_kafka_parts_t *parts, int64_t ms, int64_t *offs,
                      es_err_t *err)
{
    es_kafka_parts_t *l = es_kafka_parts_copy(parts), *ends = NULL;
    for (int i = 0; i < l->cnt; i++)
        l->elems[i].offset = ms;
    int code = es_kafka_offsets_for_times(rk, l, 15000);
    for (int i = 0; !code && i < l->cnt && !ends; i++)
        if (ms != ES_KAFKA_OFFSET_END && !l->elems[i].err && l->elems[i].offset < 0)
            ends = es_kafka_parts_copy(parts); /* none at or after ms: the end, asked once */
    for (int i = 0; ends && i < ends->cnt; i++)
        ends->elems[i].offset = ES_KAFKA_OFFSET_END;
    if (!code && ends)
        code = es_kafka_offsets_for_times(rk, ends, 15000);
    const char *topic = l->cnt ? l->elems[0].topic : "";
    for (int i = 0; !code && i < l->cnt; i++) {
        const es_kafka_part_t *e = l->elems[i].offset < 0 && ends ? &ends->elems[i] : &l->elems[i];
        if ((code = l->elems[i].err ? l->elems[i].err : e->err)) {
            topic = l->elems[i].topic;
            break;
        }
        offs[i] = e->offset;
    }
    code = es_kafka_resp_error(err, code, topic);
    es_kafka_parts_free(l);
    es_kafka_parts_free(ends);
    return code;
}

int hi_offsets_at(es_kafka_t *rk, const char *topic, int nparts, int64_t ms, int64_t *offs,
                  es_err_t *err)
{
    es_kafka_parts_t *l = es_kafka_parts_new(nparts);
    for (int p = 0; p < nparts; p++)
        es_kafka_parts_add(l, topic, p);
    int rc = hi_offsets_at_all(rk, l, ms, offs, err);
    es_kafka_parts_free(l);
    return rc;
}

int hi_resolve_all(es_kafka_t *rk, const hi_spec_t *spec, bool is_to, const es_kafka_parts_t *parts,
                   int64_t *offs, es_err_t *err)
{
    if (spec && spec->is_time)
        return hi_offsets_at_all(rk, parts, spec->time_ms + (is_to ? 1 : 0), offs, err);
    if (hi_offsets_at_all(rk, parts, is_to ? ES_KAFKA_OFFSET_END : 0, offs, err))
        return -1;
    for (int i = 0; spec && i < parts->cnt; i++)
        offs[i] = hi_spec_offset(spec, parts->elems[i].topic, parts->elems[i].partition, offs[i]);
    return 0;
}

int hi_resolve(es_kafka_t *rk, const hi_spec_t *spec, bool is_to, const char *topic, int nparts,
               int64_t *offs, es_err_t *err)
{
    es_kafka_parts_t *l = es_kafka_parts_new(nparts);
    for (int p = 0; p < nparts; p++)
        es_kafka_parts_add(l, topic, p);
    int rc = hi_resolve_all(rk, spec, is_to, l, offs, err);
    es_kafka_parts_free(l);
    return rc;
}
