/* eventshop-history: the event history for analysts and the projections for operators. The main
 * only finds the subcommand and calls its entry (hi.h). */
#include "es_log.h"
#include "hi.h"
#include <stdio.h>
#include <string.h>

static const struct hi_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *what;
} commands[] = {
    /* one row per subcommand (hi_<name>.c) */
    {"export", hi_export_main, "the events as Avro files (Kafka Connect layout) and a manifest"},
    {"as-of", hi_asof_main, "the read models as of an instant, in a database of their own"},
    {"show", hi_show_main, "an aggregate's events in version order (CONTEXT AGGREGATE_ID)"},
    {"projections", hi_projections_main,
     "list projections (position, lag, state); pause, resume, dead letters"},
    {NULL, NULL, NULL},
};

static void usage(FILE *f)
{
    fputs("usage: eventshop-history <command> [options]   (eventshop-history <command> --help)\n"
          "\ncommands:\n",
          f);
    for (const struct hi_command *c = commands; c->name; c++)
        fprintf(f, "  %-12s %s\n", c->name, c->what);
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (const struct hi_command *c = commands; c->name; c++)
        if (!strcmp(c->name, argv[1])) {
            es_log_init("history");
            return c->run(argc - 1, argv + 1);
        }
    fprintf(stderr, "eventshop-history: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
