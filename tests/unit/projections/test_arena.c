#include "pj_arena.h"
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* A decoded event's worth of JSON. */
static json_t *tree(int i)
{
    return json_pack("{s:i, s:s, s:{s:s, s:[i, i]}}", "i", i, "name", "some product name",
                     "metadata", "event_id", "00000000-0000-4000-8000-000000000001", "v", i, i);
}

/* Criterion runs each test in a process of its own: the alloc functions set here stay here. */
Test(pj_arena, values_made_inside_live_until_released_and_the_region_is_reused)
{
    pj_arena_install();
    json_t *outside = tree(0); /* not entered: plain malloc */
    pj_arena_enter();
    json_t *a = tree(1);
    pj_arena_leave(true);
    pj_arena_enter();
    json_t *b = tree(2);
    pj_arena_leave(true);
    cr_assert_neq(a, b);
    /* changed outside: what the change allocates is malloc's, and freed as such */
    json_object_set_new(a, "added", json_string("after the decode"));
    char *text = json_dumps(a, JSON_COMPACT | JSON_SORT_KEYS);
    cr_assert(strstr(text, "\"added\":\"after the decode\""), "%s", text);
    free(text); /* json_dumps' text is malloc memory */
    json_decref(a);
    pj_arena_release();
    cr_assert_eq(json_integer_value(json_object_get(b, "i")), 2); /* b is still alive */
    json_decref(b);
    pj_arena_release(); /* none left: the region is let go of */
    pj_arena_enter();
    json_t *c = tree(3);
    pj_arena_leave(true);
    cr_assert_eq((void *)c, (void *)a, "the region starts over once every value is released");
    json_decref(c);
    pj_arena_release();
    cr_assert_eq(json_integer_value(json_object_get(outside, "i")), 0);
    json_decref(outside);
}

Test(pj_arena, a_decode_not_kept_leaves_nothing_behind)
{
    pj_arena_install();
    pj_arena_enter();
    json_t *a = tree(1);
    json_decref(a); /* as a failed decode frees what it made */
    pj_arena_leave(false);
    pj_arena_enter();
    json_t *b = tree(2);
    pj_arena_leave(true);
    cr_assert_eq((void *)a, (void *)b);
    json_decref(b);
    pj_arena_release();
}

/* A thread decoding while another holds values (a shadow rebuild beside the live projector). */
static void *other_thread(void *arg)
{
    json_t **out = arg;
    pj_arena_enter();
    *out = tree(7);
    pj_arena_leave(true);
    cr_assert_eq(json_integer_value(json_object_get(*out, "i")), 7);
    json_decref(*out);
    pj_arena_release();
    return NULL;
}

Test(pj_arena, each_decoding_thread_has_a_region_of_its_own)
{
    pj_arena_install();
    pj_arena_enter();
    json_t *a = tree(1);
    pj_arena_leave(true);
    json_t *b = NULL;
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, other_thread, &b), 0);
    pthread_join(t, NULL);
    cr_assert((char *)b < (char *)a || (char *)b >= (char *)a + (1 << 20),
              "the other thread's values are not in this thread's region");
    cr_assert_eq(json_integer_value(json_object_get(a, "i")), 1); /* untouched by the other */
    json_decref(a);
    pj_arena_release();
}

/* A live projector's two batches (one written while the next is decoded): after a detach the
 * next values go to another region, and each region is let go of with its own last value. */
Test(pj_arena, a_detached_region_lives_until_its_last_value)
{
    pj_arena_install();
    pj_arena_enter();
    json_t *a = tree(1);
    pj_arena_leave(true);
    pj_arena_t *ra = pj_arena_current();
    cr_assert_not_null(ra);
    pj_arena_detach();
    pj_arena_enter();
    json_t *b = tree(2);
    pj_arena_leave(true);
    pj_arena_t *rb = pj_arena_current();
    cr_assert_not_null(rb);
    cr_assert_neq(ra, rb);
    cr_assert((char *)b < (char *)a || (char *)b >= (char *)a + (1 << 20));
    json_decref(a);
    pj_arena_release_in(ra); /* a's region let go of; b's untouched */
    cr_assert_eq(json_integer_value(json_object_get(b, "i")), 2);
    cr_assert_eq(pj_arena_current(), rb);
    pj_arena_detach();
    pj_arena_enter(); /* a's region is free again: claimed anew */
    json_t *c = tree(3);
    pj_arena_leave(true);
    cr_assert_eq(pj_arena_current(), ra);
    json_decref(b);
    pj_arena_release_in(rb);
    json_decref(c);
    pj_arena_release_in(ra);
    cr_assert_null(pj_arena_current());
}

/* A value whose every block is in the region may be dropped without its json_decref walk; one
 * made while no region was claimed may not. */
Test(pj_arena, leave_tells_whether_the_value_is_all_in_the_region)
{
    pj_arena_install();
    pj_arena_enter();
    json_t *a = tree(1);
    cr_assert(pj_arena_leave(true), "a small value fits the region");
    pj_arena_release(); /* a dropped without json_decref: nothing to free */
    (void)a;
    pj_arena_detach();
    cr_assert_not(pj_arena_leave(false), "not entered: nothing made in the region");
}
