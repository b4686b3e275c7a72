/* sb_out — the pure part of the subscriber runtime: collecting what a handler asks for and
 * building the complete records (with CommandMetadata or Metadata) the runtime writes. No Kafka,
 * no clock (the time is passed in): unit-tested on its own. */
#ifndef SB_OUT_H
#define SB_OUT_H

#include "sb_runtime.h"
#include <jansson.h>
#include <stddef.h>

typedef enum { SB_OUT_COMMAND, SB_OUT_EVENT } sb_out_kind_t;

/* An empty collector, owned by the caller (sb_out_free). */
sb_out_t *sb_out_new(void);
void sb_out_free(sb_out_t *out); /* NULL is a no-op */
/* Forgets every output and the dead-letter reason. */
void sb_out_clear(sb_out_t *out);
size_t sb_out_count(const sb_out_t *out);
/* Sets what sb_out_source reports (topic borrowed: valid until the next call); sb_out_clear
 * resets it. */
void sb_out_set_source(sb_out_t *out, const char *topic, int partition, long long offset);
/* The reason given to sb_out_dead_letter (borrowed), or NULL. */
const char *sb_out_dead_reason(const sb_out_t *out);

/* Builds output i as a complete record, owned by the caller. subscriber names the actor
 * ("svc-<subscriber>", role admin). trigger is the metadata of the event being handled
 * (borrowed), or NULL for outputs of a tick: ids then derive from the output's content, so the
 * same tick output twice is the same command. *topic, *type and *key are set to borrowed strings
 * (valid until sb_out_clear): the topic ("<ctx>.commands" for a command), the record full name,
 * the Kafka key (the aggregate id). */
json_t *sb_out_build(const sb_out_t *out, size_t i, const char *subscriber, const json_t *trigger,
                     long long now_ms, const char **topic, const char **type, const char **key);

#endif
