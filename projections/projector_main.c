/* eventshop-projector: keeps a context's read tables in MariaDB, or rebuilds one projection. */
#include "es_log.h"
#include "pj_policy.h"
#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: eventshop-projector <context> [projection]\n"
    "       eventshop-projector <context> --rebuild [projection] [--keep-old]\n"
    "\n"
    "Without --rebuild: projects <context>.events into the live tables of the projection (the\n"
    "context's first when not named). If the live tables were built with another projection\n"
    "version than the code's, it logs an error and first rebuilds them itself (readers keep the\n"
    "old tables meanwhile, frozen); EVENTSHOP_PROJECTOR_AUTO_REBUILD=0 makes it wait for an\n"
    "operator's rebuild instead.\n"
    "\n"
    "--rebuild: rebuilds the projection with no downtime for readers: new tables beside the live\n"
    "ones, filled from offset 0 (progress as JSON log lines: events_per_s, remaining, eta_s; and\n"
    "eventshop_projector_rebuild_* metrics), caught up with the live projector, then swapped in\n"
    "with one RENAME TABLE. --keep-old keeps the replaced tables as <table>_old<time>.\n";

int main(int argc, char **argv)
{
    const char *context = NULL, *name = NULL;
    bool rebuild = false, keep_old = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(argv[i], "--rebuild") == 0) {
            rebuild = true;
        } else if (strcmp(argv[i], "--keep-old") == 0) {
            keep_old = true;
        } else if (argv[i][0] == '-' || (context && name)) {
            fputs(usage, stderr);
            return 2;
        } else if (!context) {
            context = argv[i];
        } else {
            name = argv[i];
        }
    }
    if (!context || (keep_old && !rebuild)) {
        fputs(usage, stderr);
        return 2;
    }
    es_log_init("projector");
    const pj_projection_t *p = pj_projection_find(context, name);
    if (!p) {
        es_error("no projection '%s' for context '%s'", name ? name : "", context);
        return 2;
    }
    return pj_role_run(p, &(pj_role_options_t){.rebuild = rebuild, .keep_old = keep_old});
}
