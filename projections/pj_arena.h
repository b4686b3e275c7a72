/* pj_arena — where a batch's decoded events live: one region, allocated from by bumping a
 * pointer and let go of all at once when the last decoded event of the batch is released.
 *
 * A projector decodes every event of a batch into a JSON tree, keeps them all while the batch
 * is planned and applied, then frees them all: tens of thousands of small blocks a batch, for
 * which malloc and free took about a third of a live projector's time. jansson allocates through
 * functions a process sets once (json_set_alloc_funcs); pj_arena_install sets them to: the
 * region, while the calling thread is between pj_arena_enter and pj_arena_leave and the region
 * has room, else malloc. Freeing a block of the region does nothing; any other block is free()d,
 * so what jansson hands out outside the region (json_dumps' text) is still plain malloc memory.
 *
 * A thread's region is let go of (its pointer back at its start, the region free for any thread)
 * when as many decoded values were released (pj_arena_release, on the thread that decoded them)
 * as were made in it (pj_arena_leave with kept): so only values that die with their batch may be
 * made in it. A decode that may fetch and cache a schema must not (the projector asks for the
 * writer first, outside). Each decoding thread claims a region of its own (a live projector's
 * and a shadow rebuild's threads decode at once; up to 4), virtual until used and past its first
 * 4 MiB given back when let go of; a thread without one, or a batch that needs more than a region
 * has, falls back to malloc. Under ASan a region's free part is poisoned, so a value used after
 * its batch was let go of is reported.
 */
#ifndef PJ_ARENA_H
#define PJ_ARENA_H

#include <stdbool.h>

/* Routes jansson's allocations through the regions (once; later calls no-op). */
void pj_arena_install(void);
/* The calling thread's jansson allocations go to its region (claimed now if it holds none)
 * until pj_arena_leave. */
void pj_arena_enter(void);
/* Ends that; kept: a value made in between lives until one pj_arena_release. Returns whether
 * every block made in between is in the region: a value made then that nothing outside holds
 * may then be dropped without json_decref (its release walk frees nothing: the region is let go
 * of as a whole), only with its pj_arena_release. */
bool pj_arena_leave(bool kept);
/* One value made in the calling thread's region was released (json_decref'd): when none is
 * left, the region is let go of. */
void pj_arena_release(void);

/* A region, for a thread that keeps two batches' values at once (a live projector decodes the
 * next batch while the last one is written): the calling thread's current region (NULL: none,
 * its values are malloc'd), and a release of one value made in r (NULL: no-op), on the thread
 * that made it. */
typedef struct pj_region pj_arena_t;
pj_arena_t *pj_arena_current(void);
void pj_arena_release_in(pj_arena_t *r);
/* The calling thread's later values go to another region: the current one stays claimed until
 * its last value is released (pj_arena_release_in), then is let go of. */
void pj_arena_detach(void);

#endif
