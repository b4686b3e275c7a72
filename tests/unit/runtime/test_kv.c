#include "es_kv.h"
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* es_kv: the LMDB store a handler keeps its partitions' states and decided commands in. */

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/es-kv-test-%d/a/b", (int)getpid());
}

static void teardown(void)
{
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf /tmp/es-kv-test-%d", (int)getpid());
    cr_assert_eq(system(cmd), 0);
}

static int put(es_kv_t *kv, const char *k, const char *v)
{
    es_err_t err = ES_ERR_INIT;
    return es_kv_put(kv, k, strlen(k), v, strlen(v), &err);
}

/* the value of k as a string (owned), or NULL when absent */
static char *get(es_kv_t *kv, const char *k)
{
    es_err_t err = ES_ERR_INIT;
    void *v = NULL;
    size_t n = 0;
    int rc = es_kv_get(kv, k, strlen(k), &v, &n, &err);
    cr_assert_neq(rc, -1, "%s", err.msg);
    if (rc == 1)
        return NULL;
    char *s = malloc(n + 1); /* not strndup: a value has no NUL (ASan's strict_string_checks) */
    cr_assert_not_null(s);
    memcpy(s, v, n);
    s[n] = '\0';
    free(v);
    return s;
}

/* whether k holds want (NULL: k is absent) */
static bool holds(es_kv_t *kv, const char *k, const char *want)
{
    char *v = get(kv, k);
    bool same = v && want ? strcmp(v, want) == 0 : v == want;
    free(v);
    return same;
}

static int drop_odd(const void *k, size_t klen, const void *v, size_t vlen, void *arg)
{
    (void)k;
    (*(int *)arg)++;
    return ((const char *)v)[vlen - 1] % 2 == 1 && klen > 0;
}

Test(es_kv, keeps_commits_across_a_reopen_and_drops_aborted_writes, .init = setup, .fini = teardown)
{
    es_err_t err = ES_ERR_INIT;
    es_kv_t *kv = es_kv_open(dir, 1 << 24, &err);
    cr_assert(kv, "%s", err.msg);
    cr_assert_eq(es_kv_begin(kv, &err), 0);
    cr_assert_eq(put(kv, "s1", "one"), 0);
    cr_assert(holds(kv, "s1", "one"), "a write transaction reads its own writes");
    cr_assert_eq(es_kv_commit(kv, &err), 0);
    cr_assert_eq(es_kv_begin(kv, &err), 0);
    cr_assert_eq(put(kv, "s2", "two"), 0);
    es_kv_abort(kv);
    es_kv_free(kv);
    kv = es_kv_open(dir, 1 << 24, &err);
    cr_assert(kv, "%s", err.msg);
    cr_assert(holds(kv, "s1", "one"));
    cr_assert(holds(kv, "s2", NULL));
    cr_assert_eq(es_kv_trim(kv, &err), 0, "%s", err.msg);
    cr_assert(holds(kv, "s1", "one"), "a trim maps the same file again");
    es_kv_free(kv);
}

Test(es_kv, scan_visits_a_prefix_and_deletes_what_it_is_told, .init = setup, .fini = teardown)
{
    es_err_t err = ES_ERR_INIT;
    es_kv_t *kv = es_kv_open(dir, 1 << 24, &err);
    cr_assert(kv, "%s", err.msg);
    cr_assert_eq(es_kv_begin(kv, &err), 0);
    char k[16], v[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof k, "r%04d", i);
        snprintf(v, sizeof v, "%d", i);
        cr_assert_eq(put(kv, k, v), 0);
    }
    cr_assert_eq(put(kv, "q", "1"), 0);
    cr_assert_eq(put(kv, "s", "1"), 0);
    int seen = 0;
    cr_assert_eq(es_kv_scan(kv, "r", 1, drop_odd, &seen, &err), 0, "%s", err.msg);
    cr_assert_eq(es_kv_commit(kv, &err), 0);
    cr_assert_eq(seen, 1000);
    cr_assert(holds(kv, "r0998", "998"));
    cr_assert(holds(kv, "r0999", NULL));
    cr_assert(holds(kv, "r0001", NULL));
    cr_assert(holds(kv, "q", "1"));
    cr_assert(holds(kv, "s", "1"));
    es_kv_begin(kv, &err);
    cr_assert_eq(es_kv_del(kv, "r0000", 5, &err), 0);
    cr_assert_eq(es_kv_del(kv, "r0001", 5, &err), 0, "deleting what is absent is fine");
    cr_assert_eq(es_kv_commit(kv, &err), 0);
    cr_assert(holds(kv, "r0000", NULL));
    es_kv_free(kv);
}

/* A store holding k1 = v1, closed cleanly. */
static void store_one(void)
{
    es_err_t err = ES_ERR_INIT;
    es_kv_t *kv = es_kv_open(dir, 1 << 24, &err);
    cr_assert(kv, "%s", err.msg);
    cr_assert_eq(es_kv_begin(kv, &err), 0);
    cr_assert_eq(put(kv, "k1", "v1"), 0);
    cr_assert_eq(es_kv_commit(kv, &err), 0);
    es_kv_free(kv);
}

/* Writes text into dir/name (truncated first). */
static void write_file(const char *name, const char *text)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

static bool exists(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

Test(es_kv, an_open_store_is_marked_unsynced_until_a_clean_close, .init = setup, .fini = teardown)
{
    es_err_t err = ES_ERR_INIT;
    es_kv_t *kv = es_kv_open(dir, 1 << 24, &err);
    cr_assert(kv, "%s", err.msg);
    cr_assert(exists("unsynced"), "an open store's writes may not be on disk yet");
    es_kv_free(kv);
    cr_assert_not(exists("unsynced"), "a clean close syncs, then drops the marker");
}

Test(es_kv, a_store_left_unsynced_by_this_boot_is_kept, .init = setup, .fini = teardown)
{
    store_one();
    /* what a killed process leaves: the marker of the running kernel's boot */
    char boot[64] = "";
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    cr_assert(f && fgets(boot, sizeof boot, f));
    fclose(f);
    write_file("unsynced", boot);
    es_err_t err = ES_ERR_INIT;
    es_kv_t *kv = es_kv_open(dir, 1 << 24, &err);
    cr_assert(kv, "%s", err.msg);
    cr_assert_null(es_kv_discarded(kv), "the page cache held every commit: %s",
                   es_kv_discarded(kv));
    cr_assert(holds(kv, "k1", "v1"));
    es_kv_free(kv);
}

Test(es_kv, a_store_left_unsynced_by_another_boot_is_discarded, .init = setup, .fini = teardown)
{
    store_one();
    write_file("unsynced", "5b6a4c3e-0000-4000-8000-000000000000\n");
    es_err_t err = ES_ERR_INIT;
    es_kv_t *kv = es_kv_open(dir, 1 << 24, &err);
    cr_assert(kv, "%s", err.msg);
    cr_assert_not_null(es_kv_discarded(kv), "the machine went down with writes unsynced");
    cr_assert(holds(kv, "k1", NULL), "the discarded store opens empty");
    cr_assert_eq(es_kv_begin(kv, &err), 0);
    cr_assert_eq(put(kv, "k2", "v2"), 0);
    cr_assert_eq(es_kv_commit(kv, &err), 0, "%s", err.msg);
    es_kv_free(kv);
    kv = es_kv_open(dir, 1 << 24, &err);
    cr_assert(kv, "%s", err.msg);
    cr_assert_null(es_kv_discarded(kv), "the new store, closed cleanly, is kept");
    cr_assert(holds(kv, "k2", "v2"));
    es_kv_free(kv);
}

Test(es_kv, an_unreadable_store_is_discarded_and_opened_empty, .init = setup, .fini = teardown)
{
    store_one();
    char junk[8192];
    memset(junk, 0x5a, sizeof junk - 1);
    junk[sizeof junk - 1] = '\0';
    write_file("data.mdb", junk);
    es_err_t err = ES_ERR_INIT;
    es_kv_t *kv = es_kv_open(dir, 1 << 24, &err);
    cr_assert(kv, "an unreadable store does not stop its owner: %s", err.msg);
    cr_assert_not_null(es_kv_discarded(kv));
    cr_assert(holds(kv, "k1", NULL));
    cr_assert_eq(es_kv_begin(kv, &err), 0);
    cr_assert_eq(put(kv, "k1", "again"), 0);
    cr_assert_eq(es_kv_commit(kv, &err), 0, "%s", err.msg);
    cr_assert(holds(kv, "k1", "again"));
    es_kv_free(kv);
}
