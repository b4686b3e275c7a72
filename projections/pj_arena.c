#include "pj_arena.h"
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define PJ_POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define PJ_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define PJ_POISON(p, n)   ((void)(p), (void)(n))
#define PJ_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define PJ_ARENA_BYTES (256u << 20) /* virtual: only what a batch touches becomes memory */
#define PJ_ARENA_ALIGN 16
#define PJ_ARENA_KEEP  (4u << 20) /* touched pages kept from batch to batch; past it, given back */

static char *pj_arena_base;
static size_t pj_arena_used;
static long pj_arena_live;             /* values made in the region and not yet released */
static __thread bool pj_arena_entered; /* the calling thread allocates from the region */

static void *pj_arena_malloc(size_t n)
{
    size_t want = (n + PJ_ARENA_ALIGN - 1) & ~(size_t)(PJ_ARENA_ALIGN - 1);
    if (!pj_arena_entered || want > PJ_ARENA_BYTES - pj_arena_used)
        return malloc(n);
    char *p = pj_arena_base + pj_arena_used;
    pj_arena_used += want;
    PJ_UNPOISON(p, n);
    return p;
}

static void pj_arena_free(void *p)
{
    if ((char *)p >= pj_arena_base && (char *)p < pj_arena_base + PJ_ARENA_BYTES)
        return; /* let go of with the whole region */
    free(p);
}

void pj_arena_install(void)
{
    if (pj_arena_base)
        return;
    void *m = mmap(NULL, PJ_ARENA_BYTES, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return;
    pj_arena_base = m;
    PJ_POISON(pj_arena_base, PJ_ARENA_BYTES);
    json_set_alloc_funcs(pj_arena_malloc, pj_arena_free);
}

/* Lets go of everything made in the region; pages past PJ_ARENA_KEEP that a large batch touched
 * go back to the system (an idle projector's memory stays that of a usual batch). */
static void pj_arena_reset(void)
{
    PJ_POISON(pj_arena_base, pj_arena_used);
    if (pj_arena_used > PJ_ARENA_KEEP)
        madvise(pj_arena_base + PJ_ARENA_KEEP, pj_arena_used - PJ_ARENA_KEEP, MADV_DONTNEED);
    pj_arena_used = 0;
}

void pj_arena_enter(void)
{
    pj_arena_entered = pj_arena_base != NULL;
}

void pj_arena_leave(bool kept)
{
    if (pj_arena_entered && kept)
        pj_arena_live++;
    pj_arena_entered = false;
    if (pj_arena_live == 0 && pj_arena_used > 0)
        pj_arena_reset(); /* nothing kept: what was made is garbage */
}

void pj_arena_release(void)
{
    if (pj_arena_live > 0 && --pj_arena_live == 0)
        pj_arena_reset();
}
