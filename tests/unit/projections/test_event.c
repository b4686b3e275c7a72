#include "pj_event.h"
#include <criterion/criterion.h>
#include <jansson.h>

/* Lengths are counted in characters, ASCII eight bytes at a time and any other byte one by one;
 * a string holding a NUL is refused whatever its length. */
Test(pj_event, str_counts_characters_and_refuses_a_nul)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string("0b3c7a9e-3f51-4c55-9a35-6e7f0b1d2c11"));
    json_object_set_new(o, "name", json_string("\xc3\xa9t\xc3\xa9 lamp \xe2\x82\xac 12")); /* 13 */
    json_object_set_new(o, "nul", json_stringn("abcdefgh\0ijkl", 13));
    json_object_set_new(o, "short", json_string("ab"));
    es_err_t err = ES_ERR_INIT;
    cr_assert_not_null(pj_event_str(o, "", "id", 36, 36, &err), "%s", err.msg);
    cr_assert_not_null(pj_event_str(o, "", "name", 13, 13, &err), "%s", err.msg);
    cr_assert_null(pj_event_str(o, "", "name", 1, 12, &err));
    cr_assert_str_eq(err.msg, "name: '\xc3\xa9t\xc3\xa9 lamp \xe2\x82\xac 12' must have 1 to 12 "
                              "characters");
    es_clear(&err);
    cr_assert_null(pj_event_str(o, "", "nul", 0, 100, &err));
    cr_assert_eq(err.code, ES_EINVAL);
    es_clear(&err);
    cr_assert_null(pj_event_str(o, "m.", "short", 3, 8, &err));
    cr_assert_str_eq(err.msg, "m.short: 'ab' must have 3 to 8 characters");
    json_decref(o);
}
