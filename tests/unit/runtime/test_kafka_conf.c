#include "es_kafka.h"
#include <criterion/criterion.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* es_kafka_conf_new's security settings from the environment. Each criterion test runs in its
 * own process, so each sets its own environment. */

#define PASSWORD "s3cret-Pa55"

static char pw_path[64], ca_path[64];

static void write_file(char *path, const char *text)
{
    strcpy(path, "/tmp/es-kafka-conf-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void setup(void)
{
    static const char *const names[] = {"EVENTSHOP_KAFKA_SECURITY_PROTOCOL",
                                        "EVENTSHOP_KAFKA_SASL_MECHANISM",
                                        "EVENTSHOP_KAFKA_SASL_USERNAME",
                                        "EVENTSHOP_KAFKA_SASL_PASSWORD_FILE",
                                        "EVENTSHOP_KAFKA_SASL_PASSWORD",
                                        "EVENTSHOP_KAFKA_SSL_CA_FILE",
                                        NULL};
    for (const char *const *n = names; *n; n++)
        unsetenv(*n);
    write_file(pw_path, PASSWORD "\n");
    write_file(ca_path, "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n");
}

static void teardown(void)
{
    unlink(pw_path);
    unlink(ca_path);
}

/* The property's value in conf, or "" when unset (static buffer). */
static const char *get(es_kafka_conf_t *conf, const char *key)
{
    static char buf[512];
    if (!es_kafka_conf_get(conf, key, buf, sizeof buf))
        return "";
    return buf;
}

static void sasl_env(void)
{
    setenv("EVENTSHOP_KAFKA_SECURITY_PROTOCOL", "sasl_ssl", 1);
    setenv("EVENTSHOP_KAFKA_SASL_USERNAME", "eventshop-api", 1);
    setenv("EVENTSHOP_KAFKA_SASL_PASSWORD_FILE", pw_path, 1);
    setenv("EVENTSHOP_KAFKA_SSL_CA_FILE", ca_path, 1);
}

/* es_kafka_conf_new must fail with ES_EINVAL, a message naming want and never the password. */
static void expect_error(const char *want)
{
    es_err_t err = ES_ERR_INIT;
    es_kafka_conf_t *conf = es_kafka_conf_new("test", NULL, &err);
    cr_assert_null(conf);
    cr_assert_eq(err.code, ES_EINVAL, "code %d: %s", err.code, err.msg);
    cr_assert(strstr(err.msg, want), "'%s' does not name %s", err.msg, want);
    cr_assert_null(strstr(err.msg, PASSWORD), "the password is in '%s'", err.msg);
}

TestSuite(kafka_conf, .init = setup, .fini = teardown);

Test(kafka_conf, plaintext_by_default)
{
    es_err_t err = ES_ERR_INIT;
    es_kafka_conf_t *conf = es_kafka_conf_new("test", NULL, &err);
    cr_assert_not_null(conf, "%s", err.msg);
    cr_assert_str_eq(get(conf, "security.protocol"), "plaintext");
    cr_assert_str_eq(get(conf, "sasl.username"), "");
    es_kafka_conf_free(conf);
}

Test(kafka_conf, sasl_ssl_maps_every_setting)
{
    sasl_env();
    es_err_t err = ES_ERR_INIT;
    const char *kv[] = {"group.id", "g", NULL};
    es_kafka_conf_t *conf = es_kafka_conf_new("test", kv, &err);
    cr_assert_not_null(conf, "%s", err.msg);
    cr_assert_str_eq(get(conf, "security.protocol"), "sasl_ssl");
    cr_assert_str_eq(get(conf, "sasl.mechanisms"), "SCRAM-SHA-512"); /* the default */
    cr_assert_str_eq(get(conf, "sasl.username"), "eventshop-api");
    cr_assert_str_eq(get(conf, "sasl.password"), PASSWORD); /* the file, its newline dropped */
    cr_assert_str_eq(get(conf, "ssl.ca.location"), ca_path);
    cr_assert_str_eq(get(conf, "group.id"), "g");
    es_kafka_conf_free(conf);
}

Test(kafka_conf, mechanism_and_protocol_ignore_case)
{
    sasl_env();
    setenv("EVENTSHOP_KAFKA_SECURITY_PROTOCOL", "SASL_SSL", 1);
    setenv("EVENTSHOP_KAFKA_SASL_MECHANISM", "scram-sha-256", 1);
    es_err_t err = ES_ERR_INIT;
    es_kafka_conf_t *conf = es_kafka_conf_new("test", NULL, &err);
    cr_assert_not_null(conf, "%s", err.msg);
    cr_assert_str_eq(get(conf, "security.protocol"), "sasl_ssl");
    cr_assert_str_eq(get(conf, "sasl.mechanisms"), "SCRAM-SHA-256");
    es_kafka_conf_free(conf);
}

Test(kafka_conf, ssl_without_sasl)
{
    setenv("EVENTSHOP_KAFKA_SECURITY_PROTOCOL", "ssl", 1);
    setenv("EVENTSHOP_KAFKA_SSL_CA_FILE", ca_path, 1);
    es_err_t err = ES_ERR_INIT;
    es_kafka_conf_t *conf = es_kafka_conf_new("test", NULL, &err);
    cr_assert_not_null(conf, "%s", err.msg);
    cr_assert_str_eq(get(conf, "security.protocol"), "ssl");
    cr_assert_str_eq(get(conf, "ssl.ca.location"), ca_path);
    cr_assert_str_eq(get(conf, "sasl.username"), "");
    es_kafka_conf_free(conf);
}

Test(kafka_conf, bad_protocol_is_an_error)
{
    sasl_env();
    setenv("EVENTSHOP_KAFKA_SECURITY_PROTOCOL", "sasl_plaintext", 1);
    expect_error("EVENTSHOP_KAFKA_SECURITY_PROTOCOL 'sasl_plaintext'");
}

Test(kafka_conf, bad_mechanism_is_an_error)
{
    sasl_env();
    setenv("EVENTSHOP_KAFKA_SASL_MECHANISM", "GSSAPI", 1);
    expect_error("EVENTSHOP_KAFKA_SASL_MECHANISM 'GSSAPI'");
}

Test(kafka_conf, sasl_needs_a_username)
{
    sasl_env();
    unsetenv("EVENTSHOP_KAFKA_SASL_USERNAME");
    expect_error("EVENTSHOP_KAFKA_SASL_USERNAME is required");
}

Test(kafka_conf, the_password_comes_from_a_file_only)
{
    sasl_env();
    unsetenv("EVENTSHOP_KAFKA_SASL_PASSWORD_FILE");
    setenv("EVENTSHOP_KAFKA_SASL_PASSWORD", PASSWORD, 1);
    expect_error("EVENTSHOP_KAFKA_SASL_PASSWORD_FILE is required");
}

Test(kafka_conf, unreadable_or_empty_password_file_is_an_error)
{
    sasl_env();
    setenv("EVENTSHOP_KAFKA_SASL_PASSWORD_FILE", "/nonexistent/password", 1);
    expect_error("EVENTSHOP_KAFKA_SASL_PASSWORD_FILE '/nonexistent/password'");
    FILE *f = fopen(pw_path, "w");
    cr_assert_not_null(f);
    fputs("\n", f);
    fclose(f);
    setenv("EVENTSHOP_KAFKA_SASL_PASSWORD_FILE", pw_path, 1);
    expect_error("empty");
}

Test(kafka_conf, missing_ca_file_is_an_error)
{
    sasl_env();
    setenv("EVENTSHOP_KAFKA_SSL_CA_FILE", "/nonexistent/ca.crt", 1);
    expect_error("EVENTSHOP_KAFKA_SSL_CA_FILE '/nonexistent/ca.crt'");
}

Test(kafka_conf, sasl_settings_on_plaintext_are_an_error)
{
    setenv("EVENTSHOP_KAFKA_SASL_USERNAME", "eventshop-api", 1);
    expect_error("EVENTSHOP_KAFKA_SASL_USERNAME is set");
    unsetenv("EVENTSHOP_KAFKA_SASL_USERNAME");
    setenv("EVENTSHOP_KAFKA_SSL_CA_FILE", ca_path, 1);
    expect_error("EVENTSHOP_KAFKA_SSL_CA_FILE is set");
}

/* es_kafka_read_committed_conf: the one place a read_committed consumer's settings are written
 * (the readers, the transactional loops' consumers and the history export all take them). */
Test(kafka_conf, read_committed_settings_then_the_callers)
{
    es_err_t err = ES_ERR_INIT;
    const char *const kv[] = {"session.timeout.ms", "15000", "enable.partition.eof", "false", NULL};
    es_kafka_conf_t *conf = es_kafka_read_committed_conf("test", "g1", true, kv, &err);
    cr_assert_not_null(conf, "%s", err.msg);
    cr_assert_str_eq(get(conf, "isolation.level"), "read_committed");
    cr_assert_str_eq(get(conf, "enable.auto.commit"), "false");
    cr_assert_str_eq(get(conf, "group.id"), "g1");
    cr_assert_str_eq(get(conf, "session.timeout.ms"), "15000");
    cr_assert_str_eq(get(conf, "enable.partition.eof"), "false", "the caller's pairs come last");
    cr_assert_str_eq(get(conf, "client.id"), "test");
    es_kafka_conf_free(conf);

    for (int eof = 0; eof < 2; eof++) {
        conf = es_kafka_read_committed_conf("test", "g2", eof, NULL, &err);
        cr_assert_not_null(conf, "%s", err.msg);
        cr_assert_str_eq(get(conf, "enable.partition.eof"), eof ? "true" : "false");
        cr_assert_str_eq(get(conf, "auto.offset.reset"), "smallest"); /* librdkafka's "earliest" */
        es_kafka_conf_free(conf);
    }
}

Test(kafka_conf, read_committed_conf_refuses_a_bad_key)
{
    es_err_t err = ES_ERR_INIT;
    const char *const kv[] = {"no.such.setting", "1", NULL};
    cr_assert_null(es_kafka_read_committed_conf("test", "g", true, kv, &err));
    cr_assert_eq(err.code, ES_EINVAL);
    cr_assert(strstr(err.msg, "no.such.setting"), "%s", err.msg);
}

/* rk's effective setting of key ("" when unset). */
static const char *rk_get(es_kafka_t *rk, const char *key)
{
    static char buf[512];
    size_t n = sizeof buf;
    if (rd_kafka_conf_get(rd_kafka_conf(rk), key, buf, &n) != RD_KAFKA_CONF_OK)
        return "";
    return buf;
}

/* es_kafka_reader_new_with: the read_committed settings, the reader's short fetch wait, then the
 * caller's pairs, which win (the three lists are joined once). Nothing is read. */
Test(kafka_conf, reader_settings_then_the_callers)
{
    es_err_t err = ES_ERR_INIT;
    es_kafka_t *rk = es_kafka_reader_new("test-reader", &err);
    cr_assert_not_null(rk, "%s", err.msg);
    cr_assert_str_eq(rk_get(rk, "fetch.wait.max.ms"), "10");
    cr_assert_str_eq(rk_get(rk, "group.id"), "test-reader");
    cr_assert_str_eq(rk_get(rk, "enable.partition.eof"), "true");
    cr_assert_str_eq(rk_get(rk, "isolation.level"), "read_committed");
    es_kafka_destroy(rk);

    const char *const kv[] = {"fetch.wait.max.ms", "250", "queued.max.messages.kbytes", "4096",
                              NULL};
    rk = es_kafka_reader_new_with("test-reader", kv, &err);
    cr_assert_not_null(rk, "%s", err.msg);
    cr_assert_str_eq(rk_get(rk, "fetch.wait.max.ms"), "250", "the caller's pairs come last");
    cr_assert_str_eq(rk_get(rk, "queued.max.messages.kbytes"), "4096");
    cr_assert_str_eq(rk_get(rk, "enable.auto.commit"), "false");
    es_kafka_destroy(rk);
}
