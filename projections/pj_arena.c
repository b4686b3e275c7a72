#include "pj_arena.h"
#include <jansson.h>
#include <pthread.h>
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

#define PJ_ARENA_BYTES   (64u << 20) /* virtual: only what a batch touches becomes memory */
#define PJ_ARENA_ALIGN   16
#define PJ_ARENA_KEEP    (4u << 20) /* touched pages kept from batch to batch; past it, given back */
#define PJ_ARENA_REGIONS 4          /* threads decoding at once (a live projector and its shadow) */

/* One region, claimed by one decoding thread from its first value to its last release. */
struct pj_region {
    char *base;
    size_t used;
    long live; /* values made here and not yet released */
    bool claimed;
};

static struct pj_region pj_regions[PJ_ARENA_REGIONS];
static int pj_nregions; /* made so far (never unmapped): read without the lock */
static pthread_mutex_t pj_regions_lock = PTHREAD_MUTEX_INITIALIZER;
static bool pj_installed;
static __thread struct pj_region *pj_mine; /* the calling thread's claimed region */
static __thread bool pj_entered;           /* it allocates from it */
static __thread bool pj_spilled; /* since pj_arena_enter, a block went to malloc (no room) */

static void *pj_arena_malloc(size_t n)
{
    size_t want = (n + PJ_ARENA_ALIGN - 1) & ~(size_t)(PJ_ARENA_ALIGN - 1);
    struct pj_region *r = pj_mine;
    if (!pj_entered)
        return malloc(n);
    if (want > PJ_ARENA_BYTES - r->used) {
        pj_spilled = true;
        return malloc(n);
    }
    char *p = r->base + r->used;
    r->used += want;
    PJ_UNPOISON(p, n);
    return p;
}

static void pj_arena_free(void *p)
{
    int n = __atomic_load_n(&pj_nregions, __ATOMIC_ACQUIRE);
    for (int i = 0; i < n; i++)
        if ((char *)p >= pj_regions[i].base && (char *)p < pj_regions[i].base + PJ_ARENA_BYTES)
            return; /* let go of with the whole region */
    free(p);
}

void pj_arena_install(void)
{
    pthread_mutex_lock(&pj_regions_lock);
    if (!pj_installed)
        json_set_alloc_funcs(pj_arena_malloc, pj_arena_free);
    pj_installed = true;
    pthread_mutex_unlock(&pj_regions_lock);
}

/* A free region for the calling thread (made when none is free and fewer than
 * PJ_ARENA_REGIONS exist), or NULL: then it allocates with malloc. */
static struct pj_region *pj_region_claim(void)
{
    struct pj_region *r = NULL;
    pthread_mutex_lock(&pj_regions_lock);
    for (int i = 0; i < pj_nregions && !r; i++)
        if (!pj_regions[i].claimed)
            r = &pj_regions[i];
    if (!r && pj_installed && pj_nregions < PJ_ARENA_REGIONS) {
        void *m = mmap(NULL, PJ_ARENA_BYTES, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m != MAP_FAILED) {
            r = &pj_regions[pj_nregions];
            *r = (struct pj_region){.base = m};
            PJ_POISON(r->base, PJ_ARENA_BYTES);
            __atomic_store_n(&pj_nregions, pj_nregions + 1, __ATOMIC_RELEASE);
        }
    }
    if (r)
        r->claimed = true;
    pthread_mutex_unlock(&pj_regions_lock);
    return r;
}

/* Lets go of everything made in the thread's region and gives the region back; pages past
 * PJ_ARENA_KEEP that a large batch touched go back to the system (an idle projector's memory
 * stays that of a usual batch). */
static void pj_region_reset(struct pj_region *r)
{
    PJ_POISON(r->base, r->used);
    if (r->used > PJ_ARENA_KEEP)
        madvise(r->base + PJ_ARENA_KEEP, r->used - PJ_ARENA_KEEP, MADV_DONTNEED);
    r->used = 0;
    pthread_mutex_lock(&pj_regions_lock);
    r->claimed = false;
    pthread_mutex_unlock(&pj_regions_lock);
    if (pj_mine == r)
        pj_mine = NULL;
}

void pj_arena_enter(void)
{
    if (!pj_mine && pj_installed)
        pj_mine = pj_region_claim();
    pj_entered = pj_mine != NULL;
    pj_spilled = false;
}

bool pj_arena_leave(bool kept)
{
    bool whole = pj_entered && !pj_spilled;
    if (pj_entered && kept)
        pj_mine->live++;
    pj_entered = false;
    if (pj_mine && pj_mine->live == 0)
        pj_region_reset(pj_mine); /* nothing kept: what was made is garbage */
    return whole;
}

void pj_arena_release(void)
{
    pj_arena_release_in(pj_mine);
}

pj_arena_t *pj_arena_current(void)
{
    return pj_mine;
}

void pj_arena_release_in(pj_arena_t *r)
{
    if (r && r->live > 0 && --r->live == 0)
        pj_region_reset(r);
}

void pj_arena_detach(void)
{
    if (pj_mine && pj_mine->live == 0)
        pj_region_reset(pj_mine);
    pj_mine = NULL;
}
