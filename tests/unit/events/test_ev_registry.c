/* Integration: the codec and sr_client against a running registry (EVENTSHOP_REGISTRY_URL);
 * skipped when it is not set. Subjects use a unique context so runs never collide. */
#define _GNU_SOURCE
#include "ev_codec.h"
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *registry_url(void)
{
    const char *u = getenv("EVENTSHOP_REGISTRY_URL");
    if (!u || !*u)
        cr_skip_test("EVENTSHOP_REGISTRY_URL is not set");
    return u;
}

/* A schema dir with common/ from the real one and one context holding record text. */
static char *make_ctx_dir(const char *ctx, const char *text)
{
    char tmpl[] = "/tmp/ev_registry_test_XXXXXX";
    char *dir = strdup(mkdtemp(tmpl)), *p = NULL;
    cr_assert_neq(asprintf(&p, "%s/common", dir), -1);
    cr_assert_eq(symlink(ES_SCHEMA_DIR "/common", p), 0);
    free(p);
    cr_assert_neq(asprintf(&p, "%s/%s", dir, ctx), -1);
    mkdir(p, 0755);
    free(p);
    cr_assert_neq(asprintf(&p, "%s/%s/events", dir, ctx), -1);
    mkdir(p, 0755);
    free(p);
    cr_assert_neq(asprintf(&p, "%s/%s/events/Thing.avsc", dir, ctx), -1);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    free(p);
    return dir;
}

Test(ev_registry, registers_encodes_and_decodes_by_fetched_id)
{
    es_err_t err = ES_ERR_INIT;
    sr_client_t *sr = sr_client_new(registry_url(), &err);
    cr_assert_not_null(sr, "%s", err.msg);
    ev_codec_t *w = ev_codec_new(ES_SCHEMA_DIR, sr, &err);
    cr_assert_not_null(w, "%s", err.msg);
    cr_assert_eq(ev_codec_register_context(w, "catalog", &err), 0, "%s", err.msg);
    cr_assert_eq(ev_codec_register_context(w, "catalog", &err), 0, "again: %s", err.msg);

    json_t *in =
        json_pack("{s:{s:s,s:s,s:s,s:I,s:s,s:o,s:s},s:s}", "metadata", "command_id",
                  "5e1d2c3b-4a59-4e8f-8a7b-6c5d4e3f2a10", "correlation_id", "c", "aggregate_id",
                  "S", "issued_at", (json_int_t)1718000000000, "actor", "u", "actor_vendor",
                  json_null(), "actor_role", "admin", "sku", "EVTEST-1");
    void *buf = NULL;
    size_t len = 0;
    cr_assert_eq(
        ev_encode(w, "catalog.commands", "eventshop.catalog.DelistProduct", in, &buf, &len, &err),
        0, "%s", err.msg);
    int32_t id = ev_frame_schema_id(buf, len);
    cr_assert_geq(id, 0);

    /* the same text registered straight through the client gives the same id */
    int32_t id2 = -1;
    cr_assert_eq(sr_client_register(sr, "catalog.commands-eventshop.catalog.DelistProduct",
                                    ev_codec_schema_text(w, "eventshop.catalog.DelistProduct"),
                                    &id2, &err),
                 0, "%s", err.msg);
    cr_assert_eq(id, id2);

    /* a fresh codec knows no id: it fetches the writer schema */
    ev_codec_t *r = ev_codec_new(ES_SCHEMA_DIR, sr, &err);
    cr_assert_not_null(r, "%s", err.msg);
    json_t *out = NULL;
    const char *name = NULL;
    cr_assert_eq(ev_decode(r, buf, len, &name, &out, &err), 0, "%s", err.msg);
    cr_assert_str_eq(name, "eventshop.catalog.DelistProduct");
    cr_assert_str_eq(json_string_value(json_object_get(out, "sku")), "EVTEST-1");
    json_decref(out);

    /* an id the registry does not know */
    char *none = sr_client_get_schema(sr, 987654321, &err);
    cr_assert_null(none);
    cr_assert_eq(err.code, ES_ENOTFOUND, "%s", err.msg);
    unsigned char *bad = malloc(len);
    memcpy(bad, buf, len);
    bad[1] = 0x3a; /* id 0x3a.. : 973 million */
    es_clear(&err);
    cr_assert_eq(ev_decode(r, bad, len, NULL, &out, &err), -1);
    cr_assert_eq(err.code, ES_EINVAL, "%s", err.msg);
    free(bad);

    free(buf);
    json_decref(in);
    ev_codec_free(r);
    ev_codec_free(w);
    sr_client_free(sr);
}

Test(ev_registry, refuses_an_incompatible_change)
{
    es_err_t err = ES_ERR_INIT;
    sr_client_t *sr = sr_client_new(registry_url(), &err);
    cr_assert_not_null(sr, "%s", err.msg);
    char ctx[64];
    snprintf(ctx, sizeof(ctx), "evtest%ld%d", (long)time(NULL), (int)getpid());
    char *d1 = make_ctx_dir(ctx, "{\"type\": \"record\", \"name\": \"Thing\", \"namespace\": "
                                 "\"evtest\", \"fields\": [{\"name\": \"a\", \"type\": "
                                 "\"string\"}]}");
    char *d2 = make_ctx_dir(ctx, "{\"type\": \"record\", \"name\": \"Thing\", \"namespace\": "
                                 "\"evtest\", \"fields\": [{\"name\": \"a\", \"type\": "
                                 "\"string\"}, {\"name\": \"b\", \"type\": \"long\"}]}");
    char *d3 = make_ctx_dir(ctx, "{\"type\": \"record\", \"name\": \"Thing\", \"namespace\": "
                                 "\"evtest\", \"fields\": [{\"name\": \"a\", \"type\": "
                                 "\"string\"}, {\"name\": \"b\", \"type\": \"long\", "
                                 "\"default\": 5}]}");
    ev_codec_t *c1 = ev_codec_new(d1, sr, &err);
    ev_codec_t *c2 = ev_codec_new(d2, sr, &err);
    ev_codec_t *c3 = ev_codec_new(d3, sr, &err);
    cr_assert(c1 && c2 && c3, "%s", err.msg);
    cr_assert_eq(ev_codec_register_context(c1, ctx, &err), 0, "%s", err.msg);
    cr_assert_eq(ev_codec_register_context(c2, ctx, &err), -1, "a field without default passed");
    cr_assert_eq(err.code, ES_ECONFLICT, "%s", err.msg);
    es_clear(&err);
    cr_assert_eq(ev_codec_register_context(c3, ctx, &err), 0, "%s", err.msg);
    ev_codec_free(c1);
    ev_codec_free(c2);
    ev_codec_free(c3);
    sr_client_free(sr);
    free(d1);
    free(d2);
    free(d3);
}

Test(ev_registry, unreachable_registry_is_an_io_error)
{
    es_err_t err = ES_ERR_INIT;
    sr_client_t *sr = sr_client_new("http://127.0.0.1:1", &err);
    cr_assert_not_null(sr);
    int32_t id = -1;
    cr_assert_eq(sr_client_register(sr, "x-y", "\"string\"", &id, &err), -1);
    cr_assert_eq(err.code, ES_EIO, "%s", err.msg);
    sr_client_free(sr);
}
