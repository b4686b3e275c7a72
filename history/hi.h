/* eventshop-history — the analysts' and operators' tool (issue 11): one binary, one subcommand
 * per file (hi_<name>.c), each an entry int hi_<name>_main(argc, argv) with argv[0] the
 * subcommand's name. Exit status: 0 done, 1 failed (a message on stderr), 2 bad usage. */
#ifndef HI_H
#define HI_H

#include <stdint.h>

/* Progress of a long run on stderr, at most one line a second: "<what>: done / total events
 * (pct), rate/s, eta". total 0: not known yet. */
typedef struct hi_progress {
    const char *what;
    int64_t total, done;
    int64_t t0_ms, last_ms;
} hi_progress_t;

void hi_progress_start(hi_progress_t *p, const char *what, int64_t total);
/* Adds n events done; prints when a second has passed since the last line. */
void hi_progress_add(hi_progress_t *p, int64_t n);
/* The last line, always printed. */
void hi_progress_end(hi_progress_t *p);

/* eventshop-history projections (hi_projections.c). */
int hi_projections_main(int argc, char **argv);

#endif
