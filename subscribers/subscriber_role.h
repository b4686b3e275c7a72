/* subscriber_role — the eventshop-subscriber role's one entry, below its main (which only parses
 * the arguments): run one event subscriber, or replay its dead letters once. */
#ifndef SUBSCRIBER_ROLE_H
#define SUBSCRIBER_ROLE_H

#include "sb_runtime.h"
#include <stdbool.h>

/* Runs sub (borrowed) on the subscriber runtime until SIGTERM or SIGINT, serving /metrics
 * (EVENTSHOP_METRICS_ADDR); with replay, re-processes the messages of "<name>.deadletter" once
 * under a transactional id of its own ("<EVENTSHOP_INSTANCE_ID or host>-replay": it must not
 * fence the running subscriber), prints how many and returns. Returns the process's exit status:
 * 0, or 1 on a failure (logged). */
int subscriber_role_run(const sb_subscriber_t *sub, bool replay);

#endif
