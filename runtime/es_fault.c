/* Fault points (see es_fault.h). Parsed once from the environment; hits are counted atomically. */
#include "es_fault.h"
#include "es_log.h"
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ES_FAULT_MAX 16

struct es_fault {
    char point[64];
    bool crash;
    bool and_later; /* "@n+": every hit from the n-th on */
    long at;
    long hits; /* atomic */
};

static struct es_fault faults[ES_FAULT_MAX];
static int nfaults;
static pthread_once_t faults_once = PTHREAD_ONCE_INIT;

static void es_fault_parse(void)
{
    const char *env = getenv("EVENTSHOP_FAULTS");
    if (!env || !*env)
        return;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", env);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok && nfaults < ES_FAULT_MAX;
         tok = strtok_r(NULL, ",", &save)) {
        struct es_fault *f = &faults[nfaults];
        memset(f, 0, sizeof *f);
        f->crash = true;
        f->at = 1;
        char *at = strchr(tok, '@');
        if (at) {
            *at++ = '\0';
            f->at = strtol(at, &at, 10);
            f->and_later = *at == '+';
            if (f->at < 1)
                f->at = 1;
        }
        char *act = strchr(tok, '=');
        if (act) {
            *act++ = '\0';
            f->crash = strcmp(act, "fail") != 0;
        }
        if (!*tok)
            continue;
        snprintf(f->point, sizeof f->point, "%s", tok);
        nfaults++;
    }
}

bool es_fault_hit(const char *point)
{
    pthread_once(&faults_once, es_fault_parse);
    for (int i = 0; i < nfaults; i++) {
        struct es_fault *f = &faults[i];
        if (strcmp(f->point, point) != 0)
            continue;
        long n = __atomic_add_fetch(&f->hits, 1, __ATOMIC_SEQ_CST);
        if (n != f->at && !(f->and_later && n > f->at))
            return false;
        if (!f->crash) {
            es_warn("fault '%s' fired (hit %ld): failing", point, n);
            return true;
        }
        es_warn("fault '%s' fired (hit %ld): crashing", point, n);
        fflush(NULL);
        raise(SIGKILL);
        _exit(137); /* not reached */
    }
    return false;
}
