#include "es_mem.h"
#include "pj_test.h"
#include <criterion/criterion.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>

Test(pj_plan, keeps_statements_in_order_with_their_table_and_kind)
{
    pj_plan_t *p = pj_plan_new();
    struct pj_stmt *st = pj_plan_add(p, PJ_UPSERT, "t", "INSERT INTO `t%s` VALUES (?)", "_x");
    PJ_BIND(st, ES_DB_S("a"));
    for (int i = 0; i < 9; i++) /* past the first allocation */
        PJ_BIND(pj_plan_add(p, PJ_UPDATE, "u", "UPDATE `u%s` SET n=? WHERE k=?", ""), ES_DB_I(i),
                ES_DB_N);
    cr_assert_eq(pj_plan_len(p), 10);
    pj_expect_s(pj_expect_stmt(p, 0, PJ_UPSERT, "t", "INSERT INTO `t_x` VALUES (?)", false, 1), 0,
                "a");
    for (size_t i = 1; i < 10; i++) {
        st = (struct pj_stmt *)pj_expect_stmt(p, i, PJ_UPDATE, "u", "UPDATE `u` SET", false, 2);
        pj_expect_i(st, 0, (long long)i - 1);
        pj_expect_null(st, 1);
    }
    cr_assert_null(pj_plan_stmt(p, 10));
    pj_plan_reset(p);
    cr_assert_eq(pj_plan_len(p), 0);
    cr_assert_str_eq(pj_plan_subject(p), "");
    pj_plan_free(p);
    pj_plan_free(NULL);
}

Test(pj_plan, binds_in_steps_and_keeps_buffers)
{
    pj_plan_t *p = pj_plan_new();
    const char *kept = pj_plan_keep(p, xstrdup("{\"a\":1}"));
    struct pj_stmt *st = pj_plan_add(p, PJ_INSERT, "h", "INSERT INTO h VALUES (?, ?, ?)");
    PJ_BIND(st, ES_DB_S(kept));
    es_db_val_t more[] = {ES_DB_I(1), ES_DB_I(2)};
    pj_stmt_bind(st, more, 2);
    st->must_match = true;
    pj_plan_set_subject(p, "sku '%s'", "AB-1");
    const struct pj_stmt *got = pj_expect_stmt(p, 0, PJ_INSERT, "h", "INSERT INTO h", true, 3);
    pj_expect_s(got, 0, "{\"a\":1}");
    pj_expect_i(got, 2, 2);
    cr_assert_str_eq(pj_plan_subject(p), "sku 'AB-1'");
    pj_plan_free(p); /* frees the kept buffer: the sanitizer build would see a leak */
}

/* A subject of %s conversions is printed when asked for, any other at once; a reset clears it. */
Test(pj_plan, prints_the_subject_when_asked)
{
    pj_plan_t *p = pj_plan_new();
    char rule[] = "summer";
    pj_plan_set_subject(p, "sku '%s' (rule '%s')", "AB-1", rule);
    cr_assert_str_eq(pj_plan_subject(p), "sku 'AB-1' (rule 'summer')");
    rule[0] = 'w'; /* printed once: later asks read the same text */
    cr_assert_str_eq(pj_plan_subject(p), "sku 'AB-1' (rule 'summer')");
    pj_plan_set_subject(p, "order %d of %s", 7, "u-1");
    cr_assert_str_eq(pj_plan_subject(p), "order 7 of u-1");
    pj_plan_set_subject(p, "100%% of '%s'", "x");
    cr_assert_str_eq(pj_plan_subject(p), "100% of 'x'");
    pj_plan_set_subject(p, "sku '%s'", "AB-2");
    pj_plan_reset(p);
    cr_assert_str_eq(pj_plan_subject(p), "");
    pj_plan_free(p);
}

Test(pj_plan, too_many_parameters_is_a_bug, .signal = SIGABRT)
{
    pj_plan_t *p = pj_plan_new();
    struct pj_stmt *st = pj_plan_add(p, PJ_INSERT, "t", "INSERT");
    es_db_val_t v[PJ_STMT_MAX_PARAMS + 1] = {0};
    pj_stmt_bind(st, v, PJ_STMT_MAX_PARAMS + 1);
}

/* The next event's statement printed from the same format and suffix is not printed again; a
 * different suffix, or a format with other conversions, is. */
Test(pj_plan, reprints_a_statement_only_when_its_text_changes)
{
    static const char fmt[] = "UPDATE `u%s` SET n=? WHERE k=?";
    pj_plan_t *p = pj_plan_new();
    const char *first = pj_plan_add(p, PJ_UPDATE, "u", fmt, "_a")->sql;
    pj_plan_reset(p);
    const char *again = pj_plan_add(p, PJ_UPDATE, "u", fmt, "_a")->sql;
    cr_assert_eq(again, first);
    cr_assert_str_eq(again, "UPDATE `u_a` SET n=? WHERE k=?");
    pj_plan_reset(p);
    cr_assert_str_eq(pj_plan_add(p, PJ_UPDATE, "u", fmt, "_b")->sql,
                     "UPDATE `u_b` SET n=? WHERE k=?");
    pj_plan_reset(p);
    cr_assert_str_eq(pj_plan_add(p, PJ_UPDATE, "u", "UPDATE `u%s` SET n=%d", "_b", 1)->sql,
                     "UPDATE `u_b` SET n=1");
    pj_plan_reset(p);
    cr_assert_str_eq(pj_plan_add(p, PJ_UPDATE, "u", "UPDATE `u%s` SET n=%d", "_b", 2)->sql,
                     "UPDATE `u_b` SET n=2");
    struct pj_stmt *st = pj_plan_add(p, PJ_UPDATE, "u", fmt, "_b");
    st->must_match = true;
    pj_stmt_set_upsert(p, st, "INSERT INTO `u%s` (n, k) VALUES (?, ?)", "_b");
    cr_assert_str_eq(st->upsert, "INSERT INTO `u_b` (n, k) VALUES (?, ?)");
    pj_plan_free(p);
}

Test(pj_plan, position_key_prints_part_and_offset_as_printf_would)
{
    pj_plan_t *p = pj_plan_new();
    const struct {
        int32_t part;
        int64_t offset;
    } cases[] = {{0, 0},
                 {3, 6},
                 {12, 9007199254740993LL},
                 {2147483647, INT64_MAX},
                 {-1, -1},
                 {INT32_MIN, INT64_MIN}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char want[64];
        snprintf(want, sizeof want, "%d:%lld", (int)cases[i].part, (long long)cases[i].offset);
        cr_assert_str_eq(pj_plan_position_key(p, cases[i].part, cases[i].offset), want);
    }
    pj_plan_free(p);
}

Test(pj_plan, dumps_as_json_dumps_would_and_keeps_each_text_until_the_reset)
{
    pj_plan_t *p = pj_plan_new();
    const char *docs[] = {"{}", "{\"k\":\"v\"}", "{\"b\":\"2\",\"a\":\"1\",\"c\":\"\\u0001\\\"\"}",
                          "{\"z\":{\"y\":[1,2],\"x\":null}}"};
    size_t flags = JSON_COMPACT | JSON_SORT_KEYS;
    for (int round = 0; round < 2; round++) { /* the second round reuses the buffers */
        const char *got[4];
        char *want[4];
        for (size_t i = 0; i < 4; i++) {
            json_t *v = json_loads(docs[i], 0, NULL);
            cr_assert(v);
            want[i] = json_dumps(v, flags);
            got[i] = pj_plan_dump(p, v, flags);
            json_decref(v);
        }
        for (size_t i = 0; i < 4; i++) {
            cr_assert_str_eq(got[i], want[i], "%zu: '%s' != '%s'", i, got[i], want[i]);
            free(want[i]);
        }
        pj_plan_reset(p);
    }
    pj_plan_free(p);
}
