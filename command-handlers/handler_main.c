/* eventshop-handler <context> [--check-schemas]: the command handler role of one bounded
 * context (handler_role.h). With --check-schemas it only registers the context's schemas with
 * the registry and exits: 0 when every one is accepted, 3 naming the subject the registry
 * rejects as incompatible, 1 on any other failure (the registry unreachable: worth a retry). The
 * deploy's schema Job runs this before any Deployment rolls. */
#include "es_log.h"
#include "handler_role.h"
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    es_log_init("handler");
    bool check_only = argc == 3 && strcmp(argv[2], "--check-schemas") == 0;
    const hd_context_t *ctx = argc == 2 || check_only ? hd_context_find(argv[1]) : NULL;
    if (!ctx) {
        fprintf(stderr, "usage: eventshop-handler <context> [--check-schemas]   (contexts:");
        for (const char *const *n = hd_context_names(); *n; n++)
            fprintf(stderr, " %s", *n);
        fprintf(stderr, ")\n");
        return 2;
    }
    return handler_role_run(ctx, check_only);
}
