#include "es_strbuf.h"
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* es_strbuf: the growing string of the SQL, metrics, stream and form writers. */

Test(es_strbuf, starts_empty_and_reads_as_an_empty_string)
{
    struct es_strbuf b = ES_STRBUF_INIT;
    cr_assert_eq(b.len, 0);
    cr_assert_null(b.s);
    cr_assert_str_eq(es_strbuf_str(&b), "");
    es_strbuf_release(&b);
    es_strbuf_release(&b); /* twice is harmless */
}

Test(es_strbuf, appends_bytes_strings_characters_and_printf)
{
    struct es_strbuf b;
    es_strbuf_init(&b, 0);
    es_strbuf_adds(&b, "SELECT x FROM t WHERE k");
    es_strbuf_add(&b, " IN (?", 6);
    es_strbuf_addc(&b, ')');
    es_strbuf_addf(&b, " -- %d %s", 42, "keys");
    cr_assert_str_eq(b.s, "SELECT x FROM t WHERE k IN (?) -- 42 keys");
    cr_assert_eq(b.len, strlen(b.s));
    es_strbuf_release(&b);
}

Test(es_strbuf, keeps_embedded_nul_bytes_and_terminates)
{
    struct es_strbuf b = ES_STRBUF_INIT;
    es_strbuf_add(&b, "a\0b", 3);
    es_strbuf_add(&b, NULL, 0);
    cr_assert_eq(b.len, 3);
    cr_assert_eq(memcmp(b.s, "a\0b", 4), 0); /* the fourth byte is the NUL */
    es_strbuf_release(&b);
}

Test(es_strbuf, grows_across_many_appends_and_at_least_doubles)
{
    struct es_strbuf b = ES_STRBUF_INIT;
    size_t reallocs = 0, cap = 0;
    for (int i = 0; i < 100000; i++) {
        es_strbuf_addc(&b, (char)('a' + i % 26));
        if (b.cap != cap) {
            cr_assert(cap == 0 || b.cap >= 2 * cap, "cap %zu after %zu", b.cap, cap);
            cap = b.cap;
            reallocs++;
        }
    }
    cr_assert_eq(b.len, 100000);
    cr_assert_lt(reallocs, 20);
    cr_assert_eq(b.s[99999], 'a' + 99999 % 26);
    cr_assert_eq(b.s[100000], '\0');
    es_strbuf_release(&b);
}

Test(es_strbuf, printf_longer_than_the_room_left_is_whole)
{
    struct es_strbuf b;
    es_strbuf_init(&b, 4);
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    es_strbuf_adds(&b, "<");
    es_strbuf_addf(&b, "%s|%s", big, big);
    es_strbuf_adds(&b, ">");
    cr_assert_eq(b.len, 1 + 999 + 1 + 999 + 1);
    cr_assert_eq(b.s[0], '<');
    cr_assert_eq(b.s[1000], '|');
    cr_assert_eq(b.s[b.len - 2], 'x');
    cr_assert_eq(b.s[b.len - 1], '>');
    cr_assert_eq(strlen(b.s), b.len);
    es_strbuf_release(&b);
}

Test(es_strbuf, init_hint_reserves_without_content)
{
    struct es_strbuf b;
    es_strbuf_init(&b, 500);
    cr_assert_geq(b.cap, 501);
    cr_assert_eq(b.len, 0);
    cr_assert_str_eq(b.s, "");
    char *before = b.s;
    for (int i = 0; i < 50; i++)
        es_strbuf_adds(&b, "0123456789");
    cr_assert_eq(b.s, before, "500 bytes fit in the reserved room");
    es_strbuf_release(&b);
}

Test(es_strbuf, reset_keeps_the_memory)
{
    struct es_strbuf b = ES_STRBUF_INIT;
    es_strbuf_addf(&b, "%0200d", 7);
    size_t cap = b.cap;
    es_strbuf_reset(&b);
    cr_assert_eq(b.len, 0);
    cr_assert_str_eq(es_strbuf_str(&b), "");
    cr_assert_eq(b.cap, cap);
    es_strbuf_adds(&b, "again");
    cr_assert_str_eq(b.s, "again");
    es_strbuf_release(&b);
}

Test(es_strbuf, take_hands_over_the_string_and_empties)
{
    struct es_strbuf b = ES_STRBUF_INIT;
    es_strbuf_adds(&b, "mine");
    size_t len = 0;
    char *s = es_strbuf_take(&b, &len);
    cr_assert_str_eq(s, "mine");
    cr_assert_eq(len, 4);
    cr_assert_null(b.s);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.cap, 0);
    free(s);
    char *empty = es_strbuf_take(&b, NULL);
    cr_assert_str_eq(empty, "", "an empty buffer hands out an owned empty string");
    free(empty);
    es_strbuf_release(&b);
}

Test(es_strbuf, fread_appends_a_whole_file)
{
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    for (int i = 0; i < 3000; i++)
        fprintf(f, "line %04d\n", i); /* 30000 bytes: several reads */
    rewind(f);
    struct es_strbuf b = ES_STRBUF_INIT;
    es_strbuf_adds(&b, ">");
    cr_assert_eq(es_strbuf_fread(&b, f, 0), 0);
    cr_assert_eq(b.len, 1 + 30000);
    cr_assert_eq(strncmp(b.s, ">line 0000\nline 0001\n", 21), 0);
    cr_assert_str_eq(b.s + b.len - 10, "line 2999\n");
    cr_assert_eq(es_strbuf_fread(&b, f, 0), 0, "at the end: nothing more, no error");
    cr_assert_eq(b.len, 1 + 30000);
    fclose(f);
    es_strbuf_release(&b);
}

Test(es_strbuf, fread_stops_after_most_bytes)
{
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    for (int i = 0; i < 10000; i++)
        fputc('a' + i % 26, f);
    rewind(f);
    struct es_strbuf b = ES_STRBUF_INIT;
    cr_assert_eq(es_strbuf_fread(&b, f, 5000), 0);
    cr_assert_eq(b.len, 5000);
    cr_assert_eq(strlen(b.s), 5000);
    cr_assert_eq(fgetc(f), 'a' + 5000 % 26, "the rest is left in the file");
    fclose(f);
    es_strbuf_release(&b);
}

Test(es_strbuf, fread_reports_a_read_error)
{
    FILE *f = fopen("/dev/null", "w"); /* not open for reading */
    cr_assert_not_null(f);
    struct es_strbuf b = ES_STRBUF_INIT;
    cr_assert_eq(es_strbuf_fread(&b, f, 0), -1);
    cr_assert_eq(b.len, 0);
    fclose(f);
    es_strbuf_release(&b);
}
