#include "es_mem.h"
#include "sr_store.h"
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* A log in memory: what the Kafka log would hold, replayable into a fresh store. */
struct fake_log {
    char *key[64], *value[64];
    int n;
    bool fail;
};

static int fake_write(void *arg, const char *key, const char *value, es_err_t *err)
{
    struct fake_log *l = arg;
    if (l->fail || l->n == 64)
        return es_set(err, ES_EIO, "log is down");
    l->key[l->n] = xstrdup(key);
    l->value[l->n++] = value ? xstrdup(value) : NULL;
    return 0;
}

static void fake_free(struct fake_log *l)
{
    for (int i = 0; i < l->n; i++) {
        free(l->key[i]);
        free(l->value[i]);
    }
}

#define V1 "{\"type\":\"record\",\"name\":\"T\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"}]}"
#define V1B                                                                                        \
    "{\"fields\": [{\"type\": \"int\", \"name\": \"a\"}], \"name\": \"T\", \"type\": \"record\"}"
#define V2                                                                                         \
    "{\"type\":\"record\",\"name\":\"T\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"},{\"name\":" \
    "\"b\",\"type\":\"int\",\"default\":0}]}"
#define BAD                                                                                        \
    "{\"type\":\"record\",\"name\":\"T\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"},{\"name\":" \
    "\"c\",\"type\":\"int\"}]}"

static int reg(sr_store_t *st, const char *subject, const char *text, int *id, es_err_t *err)
{
    es_clear(err);
    return sr_store_register(st, subject, NULL, text, strlen(text), id, NULL, err);
}

Test(sr_store, same_schema_gives_same_id_and_no_record)
{
    struct fake_log l = {0};
    sr_store_t *st = sr_store_new(fake_write, &l);
    es_err_t err = ES_ERR_INIT;
    int id1 = 0, id2 = 0, id3 = 0;
    cr_assert_eq(reg(st, "s", V1, &id1, &err), 0, "%s", err.msg);
    cr_assert_eq(reg(st, "s", V1B, &id2, &err), 0);
    cr_assert_eq(id1, id2);
    cr_assert_eq(l.n, 1, "the second registration writes nothing");
    cr_assert_eq(reg(st, "other", V1, &id3, &err), 0);
    cr_assert_eq(id3, id1, "another subject reuses the global id");
    cr_assert_eq(sr_store_schema_count(st), 1);
    sr_store_free(st);
    fake_free(&l);
}

Test(sr_store, incompatible_is_409_and_invalid_is_42201)
{
    struct fake_log l = {0};
    sr_store_t *st = sr_store_new(fake_write, &l);
    es_err_t err = ES_ERR_INIT;
    int id = 0;
    cr_assert_eq(reg(st, "s", V1, &id, &err), 0);
    cr_assert_eq(reg(st, "s", BAD, &id, &err), SR_ECONFLICT);
    cr_assert(strstr(err.msg, "reader field 'c' has no default"), "%s", err.msg);
    cr_assert_eq(reg(st, "s", "{\"type\":\"nope\"}", &id, &err), SR_EINVALID_SCHEMA);
    cr_assert_eq(sr_store_set_level(st, "s", "none", &err), 0);
    cr_assert_eq(reg(st, "s", BAD, &id, &err), 0, "NONE lets it in");
    cr_assert_eq(sr_store_set_level(st, "s", "bogus", &err), SR_EINVALID_LEVEL);
    sr_store_free(st);
    fake_free(&l);
}

Test(sr_store, failed_log_write_changes_nothing)
{
    struct fake_log l = {0};
    sr_store_t *st = sr_store_new(fake_write, &l);
    es_err_t err = ES_ERR_INIT;
    int id = 0;
    l.fail = true;
    cr_assert_eq(reg(st, "s", V1, &id, &err), SR_ESTORE);
    json_t *out = NULL;
    es_clear(&err);
    cr_assert_eq(sr_store_versions(st, "s", &out, &err), SR_ESUBJECT_NOT_FOUND);
    cr_assert_eq(sr_store_schema_count(st), 0);
    sr_store_free(st);
}

Test(sr_store, replay_rebuilds_state_and_ids_go_on)
{
    struct fake_log l = {0};
    sr_store_t *st = sr_store_new(fake_write, &l);
    es_err_t err = ES_ERR_INIT;
    int id1 = 0, id2 = 0, id3 = 0;
    reg(st, "s", V1, &id1, &err);
    reg(st, "s", V2, &id2, &err);
    sr_store_set_level(st, "s", "FULL", &err);
    sr_store_set_level(st, NULL, "FORWARD", &err);
    sr_store_free(st);

    sr_store_t *again = sr_store_new(fake_write, &l);
    int n = l.n;
    for (int i = 0; i < n; i++)
        sr_store_apply(again, l.key[i], strlen(l.key[i]), l.value[i],
                       l.value[i] ? strlen(l.value[i]) : 0);
    json_t *out = NULL;
    cr_assert_eq(sr_store_get_version(again, "s", "latest", &out, &err), 0);
    cr_assert_eq(json_integer_value(json_object_get(out, "id")), id2);
    cr_assert_eq(json_integer_value(json_object_get(out, "version")), 2);
    json_decref(out);
    const char *level;
    cr_assert_eq(sr_store_get_level(again, "s", false, &level, &err), 0);
    cr_assert_str_eq(level, "FULL");
    cr_assert_eq(sr_store_get_level(again, NULL, false, &level, &err), 0);
    cr_assert_str_eq(level, "FORWARD");
    cr_assert_eq(reg(again, "s", V1B, &id3, &err), 0);
    cr_assert_eq(id3, id1, "a known schema keeps its id");
    cr_assert_eq(reg(again, "t", "\"string\"", &id3, &err), 0);
    cr_assert_gt(id3, id2, "new ids continue after the max seen");
    sr_store_free(again);
    fake_free(&l);
}

Test(sr_store, versions_errors_and_soft_delete)
{
    struct fake_log l = {0};
    sr_store_t *st = sr_store_new(fake_write, &l);
    es_err_t err = ES_ERR_INIT;
    int id = 0;
    json_t *out = NULL;
    reg(st, "s", V1, &id, &err);
    reg(st, "s", V2, &id, &err);
    es_clear(&err);
    cr_assert_eq(sr_store_get_version(st, "s", "0", &out, &err), SR_EINVALID_VERSION);
    es_clear(&err);
    cr_assert_eq(sr_store_get_version(st, "s", "3", &out, &err), SR_EVERSION_NOT_FOUND);
    es_clear(&err);
    cr_assert_eq(sr_store_get_version(st, "x", "1", &out, &err), SR_ESUBJECT_NOT_FOUND);
    es_clear(&err);
    cr_assert_eq(sr_store_get_level(st, "s", false, &(const char *){0}, &err), SR_ELEVEL_NOT_FOUND);
    es_clear(&err);
    cr_assert_eq(sr_store_delete(st, "s", NULL, &out, &err), 0);
    cr_assert_eq(json_array_size(out), 2);
    json_decref(out);
    cr_assert_eq(sr_store_versions(st, "s", &out, &err), SR_ESUBJECT_NOT_FOUND);
    out = sr_store_subjects(st);
    cr_assert_eq(json_array_size(out), 0);
    json_decref(out);
    /* the same schema again after a soft delete: same id, a new version */
    int id2 = 0;
    cr_assert_eq(reg(st, "s", V2, &id2, &err), 0);
    cr_assert_eq(id2, id);
    cr_assert_eq(sr_store_get_version(st, "s", "latest", &out, &err), 0);
    cr_assert_eq(json_integer_value(json_object_get(out, "version")), 3);
    json_decref(out);
    sr_store_free(st);
    fake_free(&l);
}
