#include "es_time.h"
#include "hi.h"
#include <inttypes.h>
#include <stdio.h>

void hi_progress_start(hi_progress_t *p, const char *what, int64_t total)
{
    p->what = what;
    p->total = total;
    p->done = 0;
    p->next_check = 0;
    p->t0_ms = p->last_ms = es_mono_ms();
}

static void hi_progress_print(const hi_progress_t *p, int64_t now)
{
    double s = (double)(now - p->t0_ms) / 1000.0;
    double rate = s > 0 ? (double)p->done / s : 0;
    if (p->total > 0) {
        double eta = rate > 0 ? (double)(p->total - p->done) / rate : 0;
        fprintf(stderr, "%s: %" PRId64 " / %" PRId64 " events (%.1f %%), %.0f/s, eta %.0f s\n",
                p->what, p->done, p->total, 100.0 * (double)p->done / (double)p->total, rate,
                eta < 0 ? 0 : eta);
    } else {
        fprintf(stderr, "%s: %" PRId64 " events, %.0f/s\n", p->what, p->done, rate);
    }
}

void hi_progress_add(hi_progress_t *p, int64_t n)
{
    p->done += n;
    if (p->done < p->next_check)
        return;
    p->next_check = p->done + 256;
    int64_t now = es_mono_ms();
    if (now - p->last_ms >= 1000) {
        p->last_ms = now;
        hi_progress_print(p, now);
    }
}

void hi_progress_end(hi_progress_t *p)
{
    hi_progress_print(p, es_mono_ms());
}
