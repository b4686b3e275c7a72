/* hi_positions — where a history run starts or stops: a TIME (ISO-8601, resolved later through
 * the Kafka record timestamps) or POSITIONS (explicit offsets), as the options --from, --to and
 * as-of's argument give them. Pure: no Kafka here. */
#ifndef HI_POSITIONS_H
#define HI_POSITIONS_H

#include "es_err.h"
#include <stdint.h>

typedef struct hi_position {
    char *topic; /* "catalog.events" */
    int32_t partition;
    int64_t offset;
} hi_position_t;

typedef struct hi_spec {
    int is_time;     /* 1: time_ms is set; 0: the n positions */
    int64_t time_ms; /* Unix ms */
    int n;
    hi_position_t *pos;
} hi_spec_t;

/* Parses ISO-8601 "YYYY-MM-DD[THH:MM[:SS[.fff]]][Z|+HH:MM|-HH:MM]" (no zone: UTC) into Unix ms.
 * 0, or -1 with err ES_EINVAL. */
int hi_time_parse(const char *s, int64_t *ms, es_err_t *err);
/* ms as "YYYY-MM-DDTHH:MM:SS.fffZ" into out (at least 25 bytes). Returns out. */
char *hi_time_format(int64_t ms, char *out);

/* Parses a TIME, or POSITIONS "TOPIC:PARTITION=OFFSET[,TOPIC:PARTITION=OFFSET...]" (told apart
 * by the '='), or "latest" (POSITIONS naming none: every partition at its end when the run
 * starts). *spec is filled (free with hi_spec_free). 0, or -1 with err ES_EINVAL. */
int hi_spec_parse(const char *s, hi_spec_t *spec, es_err_t *err);
void hi_spec_free(hi_spec_t *spec);
/* The offset spec gives for topic/partition, or dflt when it names none. */
int64_t hi_spec_offset(const hi_spec_t *spec, const char *topic, int32_t partition, int64_t dflt);

/* Whether name may be an as-of's database: 1 to 64 of [A-Za-z0-9_] (pasted into SQL between
 * backquotes), not the server's own schemas nor a live eventshop_* one. 0, or -1 with err
 * ES_EINVAL. */
int hi_database_check(const char *name, es_err_t *err);

#endif
