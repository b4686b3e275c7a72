/* eventshop-history — the analysts' and operators' tool (issue 11): one binary, one subcommand
 * per file (hi_<name>.c), each an entry int hi_<name>_main(argc, argv) with argv[0] the
 * subcommand's name. Exit status: 0 done, 1 failed (a message on stderr), 2 bad usage. */
#ifndef HI_H
#define HI_H

#include "es_kafka.h"
#include "hi_positions.h"
#include <stdbool.h>
#include <stdint.h>

/* The contexts a run takes when --contexts is not given. */
#define HI_DEFAULT_CONTEXTS "catalog,inventory,pricing,orders,payments,shipping,users"

/* Progress of a long run on stderr, at most one line a second: "<what>: done / total events
 * (pct), rate/s, eta". total 0: not known yet. */
typedef struct hi_progress {
    const char *what;
    int64_t total, done;
    int64_t t0_ms, last_ms;
    int64_t next_check; /* done at which the clock is read next (not once per event) */
} hi_progress_t;

void hi_progress_start(hi_progress_t *p, const char *what, int64_t total);
/* Adds n events done; prints when a second has passed since the last line. */
void hi_progress_add(hi_progress_t *p, int64_t n);
/* The last line, always printed. A caller whose total was an estimate sets it to done first. */
void hi_progress_end(hi_progress_t *p);

/* The offsets of every partition of topic at ms (ES_KAFKA_OFFSET_END: the end) into offs: the
 * first offset with a timestamp at or after it, the end when none (hi_resolve.c). */
int hi_offsets_at(es_kafka_t *rk, const char *topic, int nparts, int64_t ms, int64_t *offs,
                  es_err_t *err);
/* hi_offsets_at for every element of parts (any topics) at once, offs[i] for element i: one
 * request to the brokers, two when some partition has nothing at or after ms. */
int hi_offsets_at_all(es_kafka_t *rk, const es_kafka_parts_t *parts, int64_t ms, int64_t *offs,
                      es_err_t *err);
/* Resolves spec (NULL: none given) for topic into offs: TIME through the timestamps (is_to: the
 * first offset after the events at or before it), POSITIONS as given, the partitions they do not
 * name (and a NULL spec) at the beginning, or with is_to at the end now. */
int hi_resolve(es_kafka_t *rk, const hi_spec_t *spec, bool is_to, const char *topic, int nparts,
               int64_t *offs, es_err_t *err);
/* hi_resolve for every element of parts (any topics) at once, offs[i] for element i. */
int hi_resolve_all(es_kafka_t *rk, const hi_spec_t *spec, bool is_to, const es_kafka_parts_t *parts,
                   int64_t *offs, es_err_t *err);

/* export: the events as Avro Object Container Files (hi_export.c) */
int hi_export_main(int argc, char **argv);
/* as-of: the read models as of a TIME or POSITIONS, in a database of their own (hi_asof.c) */
int hi_asof_main(int argc, char **argv);
/* show CONTEXT AGGREGATE_ID [--json] (hi_show.c) */
int hi_show_main(int argc, char **argv);
/* eventshop-history projections (hi_projections.c). */
int hi_projections_main(int argc, char **argv);

#endif
