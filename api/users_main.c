/* eventshop-users — the users context's operator tool.
 *
 *   eventshop-users bootstrap-admin --email E --password-file F [--name N]
 *
 * Makes (or reuses) the admin's key in the key store, hashes and seals like the API, and sends
 * one BootstrapAdmin command to users.commands as actor "bootstrap" with role admin; the
 * command id is derived from the user id, so running it again is harmless (the handler answers
 * the first outcome, and bootstrapping an admin again is a no-op). Kafka write access to
 * users.commands is what makes an admin: the API never produces this command. Prints the admin's
 * user id. Environment as the API (EVENTSHOP_USERS_INDEX_KEY_FILE, EVENTSHOP_MYSQL_KEYS_*,
 * EVENTSHOP_KAFKA_BROKERS, EVENTSHOP_REGISTRY_URL, EVENTSHOP_SCHEMA_DIR). */
#include "api_producer.h"
#include "es_env.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_time.h"
#include "ev_codec.h"
#include "users_crypto.h"
#include "users_keys.h"
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int delivered; /* 0 waiting, 1 ok, -1 failed */

static void on_delivered(void *opaque, bool ok, const char *error)
{
    (void)opaque;
    if (!ok)
        fprintf(stderr, "eventshop-users: command not delivered: %s\n", error);
    atomic_store(&delivered, ok ? 1 : -1);
}

static char *read_password(const char *path, es_err_t *err)
{
    size_t len = 0;
    char *pw = es_read_file(path, &len);
    if (!pw) {
        es_set(err, ES_EIO, "password file '%s' is not readable", path);
        return NULL;
    }
    while (len && (pw[len - 1] == '\n' || pw[len - 1] == '\r'))
        pw[--len] = '\0';
    if (len < USERS_PASSWORD_MIN || len > USERS_PASSWORD_MAX || strlen(pw) != len) {
        sodium_memzero(pw, len);
        free(pw);
        es_set(err, ES_EINVAL, "password in '%s' must be %d to %d bytes", path, USERS_PASSWORD_MIN,
               USERS_PASSWORD_MAX);
        return NULL;
    }
    return pw;
}

static int bootstrap(const char *raw_email, const char *pw_file, const char *name, es_err_t *err)
{
    char email[USERS_EMAIL_MAX + 1], index[USERS_INDEX_HEX_LEN], user_id[ES_UUID_LEN];
    char command_id[ES_UUID_LEN];
    unsigned char index_key[USERS_KEY_BYTES], key[USERS_KEY_BYTES];
    char *pw = NULL, *hash = NULL;
    es_db_t *db = NULL;
    sr_client_t *sr = NULL;
    ev_codec_t *codec = NULL;
    api_producer_t *prod = NULL;
    json_t *cmd = NULL;
    void *buf = NULL;
    size_t len = 0;
    int rc = -1;

    if (users_crypto_init(err) ||
        users_index_key_load(getenv("EVENTSHOP_USERS_INDEX_KEY_FILE"), index_key, err) ||
        users_email_normalise(raw_email, email, sizeof email, err) ||
        !(pw = read_password(pw_file, err)) || !(hash = users_password_hash(pw, err)))
        goto out;
    users_blind_index(index_key, email, index);
    users_user_id(index, user_id);
    if (!(db = es_db_open("keys", err)) || users_keys_get_or_make(db, user_id, key, err))
        goto out;
    es_uuid_derive("eventshop-users-bootstrap", user_id, command_id);
    cmd = json_pack("{s:{s:s, s:s, s:s, s:I, s:s, s:s, s:n, s:n}, s:s, s:s, s:o, s:o, s:n, s:o}",
                    "metadata", "command_id", command_id, "correlation_id", command_id,
                    "aggregate_id", user_id, "issued_at", (json_int_t)es_wall_ms(), "actor",
                    "bootstrap", "actor_role", "admin", "actor_vendor", "expected_version",
                    "user_id", user_id, "email_index", index, "email_enc",
                    users_seal_json(key, user_id, "email", email), "name_enc",
                    users_seal_json(key, user_id, "name", name), "phone_enc", "password_hash_enc",
                    users_seal_json(key, user_id, "password_hash", hash));
    if (!(sr = sr_client_new(es_env_registry_url(), err)) ||
        !(codec = ev_codec_new(es_env_schema_dir(), sr, err)) ||
        ev_encode(codec, "users.commands", "eventshop.users.BootstrapAdmin", cmd, &buf, &len,
                  err) ||
        !(prod = api_producer_new("eventshop-users", err)) ||
        api_producer_send(prod, "users.commands", user_id, buf, len, NULL, on_delivered, NULL, err))
        goto out;
    for (int i = 0; i < 300 && atomic_load(&delivered) == 0; i++)
        usleep(100 * 1000);
    if (atomic_load(&delivered) != 1) {
        es_set(err, ES_EIO, "the command was not delivered to users.commands");
        goto out;
    }
    printf("%s\n", user_id);
    rc = 0;
out:
    api_producer_free(prod);
    ev_codec_free(codec);
    sr_client_free(sr);
    es_db_close(db);
    json_decref(cmd);
    free(buf);
    if (pw) {
        sodium_memzero(pw, strlen(pw));
        free(pw);
    }
    if (hash) {
        sodium_memzero(hash, strlen(hash));
        free(hash);
    }
    sodium_memzero(key, sizeof key);
    sodium_memzero(index_key, sizeof index_key);
    return rc;
}

static void usage(void)
{
    fprintf(stderr, "usage: eventshop-users bootstrap-admin --email E --password-file F "
                    "[--name N]\n");
}

int main(int argc, char **argv)
{
    const char *email = NULL, *pw_file = NULL, *name = "Administrator";
    if (argc < 2 || strcmp(argv[1], "bootstrap-admin") != 0) {
        usage();
        return 2;
    }
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--email"))
            email = argv[i + 1];
        else if (!strcmp(argv[i], "--password-file"))
            pw_file = argv[i + 1];
        else if (!strcmp(argv[i], "--name"))
            name = argv[i + 1];
        else {
            usage();
            return 2;
        }
    }
    if (!email || !pw_file) {
        usage();
        return 2;
    }
    es_log_init("users-tool");
    es_err_t err = ES_ERR_INIT;
    if (bootstrap(email, pw_file, name, &err)) {
        fprintf(stderr, "eventshop-users: %s\n", err.msg);
        return 1;
    }
    return 0;
}
