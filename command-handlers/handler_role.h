/* handler_role — the eventshop-handler role's one entry, below its main (which only parses the
 * arguments): serve a context's commands, or only check its schemas against the registry. */
#ifndef HANDLER_ROLE_H
#define HANDLER_ROLE_H

#include "hd_context.h"
#include <stdbool.h>

/* Registers ctx's schemas with the registry (EVENTSHOP_REGISTRY_URL), then, unless check_only,
 * serves /metrics (EVENTSHOP_METRICS_ADDR), starts tracing and runs the handler runtime until
 * SIGTERM or SIGINT. Returns the process's exit status: 0 done (check_only: every schema
 * accepted), 3 (check_only) a schema the registry rejects as incompatible, 1 any other failure
 * (logged; the registry unreachable is worth a retry). */
int handler_role_run(const hd_context_t *ctx, bool check_only);

#endif
