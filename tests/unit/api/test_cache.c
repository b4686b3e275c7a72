/* api_cache's pure parts: the rows a cached snapshot gives a handler, in the shape of its SELECT,
 * and when the cache is not made at all. */
#include "api_cache.h"
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

Test(api_cache, rows_have_the_columns_asked_in_their_order)
{
    json_t *snap = json_loads("{\"prices\":[{\"sku\":\"A\",\"version\":3,\"currency\":\"EUR\","
                              "\"list_amount_minor\":null,\"applied_events\":3}]}",
                              0, NULL);
    json_t *rows = api_cache_rows(snap, "prices", "list_amount_minor, currency, version, nope");
    cr_assert_not_null(rows);
    char *text = json_dumps(rows, JSON_COMPACT);
    cr_assert_str_eq(text, "[{\"list_amount_minor\":null,\"currency\":\"EUR\",\"version\":3,"
                           "\"nope\":null}]");
    free(text);
    json_decref(rows);
    cr_assert_null(api_cache_rows(snap, "price_rules", "sku"));
    json_decref(snap);
}

Test(api_cache, is_off_at_zero_entries_and_without_a_cached_context)
{
    const char contexts[2][32] = {"users", "orders"};
    cr_assert_null(api_cache_new(contexts, 2, NULL));
    const char catalog[1][32] = {"catalog"};
    setenv("EVENTSHOP_API_CACHE_ENTRIES", "0", 1);
    cr_assert_null(api_cache_new(catalog, 1, NULL));
    unsetenv("EVENTSHOP_API_CACHE_ENTRIES");
}

Test(api_cache, made_for_a_cached_context_and_freed)
{
    const char catalog[1][32] = {"catalog"};
    setenv("EVENTSHOP_API_CACHE_ENTRIES", "10", 1);
    api_cache_t *c = api_cache_new(catalog, 1, NULL);
    cr_assert_not_null(c);
    struct api_stream_sink sink = api_cache_sink(c);
    cr_assert(sink.start && sink.record && sink.arg == c);
    api_cache_free(c);
    unsetenv("EVENTSHOP_API_CACHE_ENTRIES");
}
