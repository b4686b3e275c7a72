/* The users context over HTTP: registration, vendor approval, role changes, forgetting, a
 * user's own data, and the token endpoint (the only place a password is ever checked).
 *
 *   POST   /v1/users                  public: {email, password, name, role customer|vendor,
 *                                     phone?} -> RegisterUser; 202, or 201 + Location
 *                                     /v1/users/{id} with Prefer: wait=N
 *   GET    /v1/users/{id}             the user itself or an admin: the opened personal fields;
 *                                     404 unknown, 410 forgotten
 *   DELETE /v1/users/{id}             the user itself or an admin: destroys the user's key, then
 *                                     sends ForgetUser (crypto-shredding)
 *   GET    /v1/vendors                admin: ?status=pending (default) or active, ?limit=;
 *                                     the vendors in order of registration, name and e-mail
 *                                     opened (what an admin approves on)
 *   POST   /v1/vendors/{id}/approval  admin -> ApproveVendor
 *   PUT    /v1/users/{id}/role        admin: {role} -> ChangeUserRole
 *   POST   /v1/auth/token             public: {email, password} -> {access_token, token_type
 *                                     "Bearer", expires_in}; RS256, USERS_TOKEN_TTL seconds
 *   POST   /internal/users/{id}/contact  the notifications service only (X-Service-Credential,
 *                                     the secret EVENTSHOP_USERS_OPEN_SECRET(_FILE)): {purpose,
 *                                     email_enc?, phone_enc?} -> {email, phone}, the sealed
 *                                     fields it holds opened with the user's key; 410 forgotten
 *                                     (no key), 422 does not open, 401 without the credential.
 *                                     Every answer but 401/503 writes one audit line (caller,
 *                                     user id, purpose, outcome; never a value). Not routed by
 *                                     the Ingress (/v1 only): reached inside the cluster.
 *
 * Secrets: the password is hashed (Argon2id) here and then sealed with the user's key with the
 * other personal fields, so neither it nor its hash is in clear on Kafka, in a read model or in a
 * log line. Keys live in MySQL eventshop_keys.user_keys (user EVENTSHOP_MYSQL_KEYS_USER: SELECT,
 * INSERT, DELETE on that one table), reached through a per-thread connection.
 *
 * Login: the user is found by the blind index of the e-mail. Unknown e-mail, forgotten user,
 * wrong password and pending vendor all get the same 401 "invalid e-mail or password" (a pending
 * vendor only once its password was right, so the answer tells nothing to someone without it);
 * an unknown e-mail still runs one Argon2id verification against a dummy hash so the time taken
 * does not tell whether the address is registered. Failed logins are limited per e-mail index
 * and per client IP (api_ratelimit.h): 429 with Retry-After before any verification once a bucket
 * is empty. The client IP is es_http_client_ip's: behind a proxy in EVENTSHOP_TRUSTED_PROXIES
 * (the ingress), the address it put in X-Forwarded-For, else the TCP peer. A successful login
 * clears its e-mail's bucket. Issued tokens stay valid until they expire (15 min): forgetting or
 * demoting a user does not revoke them earlier.
 *
 * State: struct api_users, made once at start (api_users_new) and hung on the app.
 *
 * Configuration: EVENTSHOP_USERS_OPEN_SECRET_FILE (the open call's credential),
 * EVENTSHOP_USERS_INDEX_KEY_FILE (64 hex digits), EVENTSHOP_JWT_PRIVATE_KEY_FILE
 * (signing, see jwt.h), EVENTSHOP_MYSQL_KEYS_USER / _PASSWORD_FILE (es_db.h, context "keys"),
 * EVENTSHOP_LOGIN_EMAIL_BURST (5) and EVENTSHOP_LOGIN_EMAIL_PER_MIN (1),
 * EVENTSHOP_LOGIN_IP_BURST (30) and EVENTSHOP_LOGIN_IP_PER_MIN (20). */
#include "api_app.h"
#include "api_ratelimit.h"
#include "api_reply.h"
#include "es_env.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_time.h"
#include "es_uuid.h"
#include "jwt.h"
#include "users_crypto.h"
#include "users_keys.h"
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define USERS_CTX        "users"
#define USERS_NS         "eventshop.users."
#define USERS_TOKEN_TTL  900
#define NAME_MAX_CHARS   200
#define PHONE_MAX        32
#define BAD_LOGIN        "invalid e-mail or password"
#define OPEN_CALLER      "notifications" /* the one caller of the open call */
#define OPEN_PURPOSE_MAX 200

/* The users endpoints' state (a handle on the app, made at start by api_users_new). */
struct api_users {
    int ready; /* 1 when the index key and the signer loaded */
    unsigned char index_key[USERS_KEY_BYTES];
    api_jwt_t *signer;
    api_ratelimit_t *by_email;
    api_ratelimit_t *by_ip;
    char *open_secret; /* the notifications' credential for the open call; NULL: refused */
};

struct api_users *api_users_new(const struct api_app *app)
{
    struct api_users *u = xcalloc(1, sizeof *u);
    if (!api_context_enabled(app, USERS_CTX))
        return u; /* every users route answers 503 */
    es_err_t err = ES_ERR_INIT;
    u->by_email = api_ratelimit_new(65536, (double)es_env_long("EVENTSHOP_LOGIN_EMAIL_BURST", 5),
                                    es_env_long("EVENTSHOP_LOGIN_EMAIL_PER_MIN", 1) / 60.0);
    u->by_ip = api_ratelimit_new(65536, (double)es_env_long("EVENTSHOP_LOGIN_IP_BURST", 30),
                                 es_env_long("EVENTSHOP_LOGIN_IP_PER_MIN", 20) / 60.0);
    u->open_secret = es_env_secret("EVENTSHOP_USERS_OPEN_SECRET");
    if (!u->open_secret || !*u->open_secret)
        es_warn("the contact open call is refused: EVENTSHOP_USERS_OPEN_SECRET(_FILE) is unset");
    if (users_crypto_init(&err) ||
        users_index_key_load(getenv("EVENTSHOP_USERS_INDEX_KEY_FILE"), u->index_key, &err)) {
        es_error("users endpoints disabled: %s", err.msg);
        return u;
    }
    u->signer = api_jwt_new_from_env(API_JWT_SIGN, &err);
    if (!u->signer) {
        es_error("users endpoints disabled: no token signer: %s", err.msg);
        return u;
    }
    u->ready = 1;
    return u;
}

void api_users_free(struct api_users *u)
{
    if (!u)
        return;
    api_jwt_free(u->signer);
    api_ratelimit_free(u->by_email);
    api_ratelimit_free(u->by_ip);
    if (u->open_secret) {
        sodium_memzero(u->open_secret, strlen(u->open_secret));
        free(u->open_secret);
    }
    sodium_memzero(u->index_key, sizeof u->index_key);
    free(u);
}

static struct api_users *users_of(es_http_req_t *r)
{
    return ((struct api_app *)es_http_app(r))->users;
}

/* the users endpoints' state when they can serve, else NULL after answering 503 */
static struct api_users *ready_or_reply(es_http_req_t *r)
{
    struct api_users *u = users_of(r);
    if (u && u->ready && api_context_enabled(es_http_app(r), USERS_CTX))
        return u;
    api_reply_problem(r, 503, NULL, NULL, "the users service is not configured");
    return NULL;
}

/* ---- the key store ---- */

static int key_get(es_http_req_t *r, const char *user_id, unsigned char key[USERS_KEY_BYTES],
                   es_err_t *err)
{
    es_db_t *db = api_db_keys(r, err);
    int rc = db ? users_keys_get(db, user_id, key, err) : -1;
    if (rc < 0)
        api_db_keys_failed(r, err);
    return rc;
}

static int key_get_or_make(es_http_req_t *r, const char *user_id,
                           unsigned char key[USERS_KEY_BYTES], es_err_t *err)
{
    es_db_t *db = api_db_keys(r, err);
    int rc = db ? users_keys_get_or_make(db, user_id, key, err) : -1;
    if (rc < 0)
        api_db_keys_failed(r, err);
    return rc;
}

static int key_destroy(es_http_req_t *r, const char *user_id, es_err_t *err)
{
    es_db_t *db = api_db_keys(r, err);
    int rc = db ? users_keys_destroy(db, user_id, err) : -1;
    if (rc < 0)
        api_db_keys_failed(r, err);
    return rc;
}

/* ---- validation ---- */

static size_t utf8_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* body must be an object with only the allowed keys; answers 400 otherwise */
static int only_keys_or_reply(es_http_req_t *r, const json_t *body, const char *const *allowed)
{
    const char *k;
    json_t *v;
    if (!json_is_object(body)) {
        api_reply_problem(r, 400, NULL, NULL, "the body must be a JSON object");
        return -1;
    }
    json_object_foreach((json_t *)body, k, v)
    {
        size_t i = 0;
        while (allowed[i] && strcmp(allowed[i], k))
            i++;
        if (!allowed[i]) {
            api_reply_problem(r, 400, NULL, k, "unknown field '%.64s'", k);
            return -1;
        }
    }
    return 0;
}

/* a string member, or NULL after answering 422 (required) */
static const char *str_field_or_reply(es_http_req_t *r, const json_t *body, const char *name,
                                      int required)
{
    const json_t *v = json_object_get(body, name);
    if ((!v || json_is_null(v)) && !required)
        return "";
    if (!json_is_string(v)) {
        api_reply_problem(r, 422, NULL, name, "%s: must be a string", name);
        return NULL;
    }
    return json_string_value(v);
}

static int valid_phone(const char *p)
{
    size_t n = strlen(p);
    if (n < 3 || n > PHONE_MAX)
        return 0;
    for (; *p; p++)
        if (!((*p >= '0' && *p <= '9') || *p == '+' || *p == '-' || *p == ' ' || *p == '(' ||
              *p == ')'))
            return 0;
    return 1;
}

static const char *path_user_or_reply(es_http_req_t *r)
{
    const char *id = es_http_param(r, "id");
    if (!id || !es_uuid_valid(id)) {
        api_reply_problem(r, 404, "urn:eventshop:problem:unknown_user", "user_id",
                          "no user '%.64s'", id ? id : "");
        return NULL;
    }
    return id;
}

/* the user itself or an admin; answers 403 otherwise */
static int self_or_admin_or_reply(es_http_req_t *r, const struct api_principal *who,
                                  const char *user_id)
{
    if (!strcmp(who->role, "admin") || !strcmp(who->sub, user_id))
        return 0;
    api_reply_problem(r, 403, "urn:eventshop:problem:forbidden", NULL,
                      "only the user itself or an admin may do this");
    return -1;
}

/* ---- POST /v1/users ---- */

void api_users_register(es_http_req_t *r, const struct api_principal *who)
{
    static const char *const allowed[] = {"email", "password", "name", "role", "phone", NULL};
    (void)who;
    struct api_users *u = ready_or_reply(r);
    if (!u)
        return;
    json_t *body = api_json_body_or_reply(r);
    char *hash = NULL;
    char email[USERS_EMAIL_MAX + 1];
    unsigned char key[USERS_KEY_BYTES];
    if (!body || only_keys_or_reply(r, body, allowed))
        goto out;
    const char *raw_email = str_field_or_reply(r, body, "email", 1);
    const char *password = raw_email ? str_field_or_reply(r, body, "password", 1) : NULL;
    const char *name = password ? str_field_or_reply(r, body, "name", 1) : NULL;
    const char *role = name ? str_field_or_reply(r, body, "role", 1) : NULL;
    const char *phone = role ? str_field_or_reply(r, body, "phone", 0) : NULL;
    if (!phone)
        goto out;
    es_err_t err = ES_ERR_INIT;
    if (users_email_normalise(raw_email, email, sizeof email, &err)) {
        api_reply_problem(r, 422, NULL, "email", "%s", err.msg);
        goto out;
    }
    size_t pwlen = utf8_len(password); /* characters, as the contract's minLength/maxLength */
    if (pwlen < USERS_PASSWORD_MIN || pwlen > USERS_PASSWORD_MAX) {
        api_reply_problem(r, 422, NULL, "password", "password: must be %d to %d characters",
                          USERS_PASSWORD_MIN, USERS_PASSWORD_MAX);
        goto out;
    }
    size_t nlen = utf8_len(name);
    if (nlen < 1 || nlen > NAME_MAX_CHARS) {
        api_reply_problem(r, 422, NULL, "name", "name: must be 1 to %d characters", NAME_MAX_CHARS);
        goto out;
    }
    if (strcmp(role, "customer") && strcmp(role, "vendor")) {
        api_reply_problem(r, 422, NULL, "role", "role: must be customer or vendor");
        goto out;
    }
    if (*phone && !valid_phone(phone)) {
        api_reply_problem(r, 422, NULL, "phone", "phone: must be 3 to %d of 0-9 + - ( ) and blank",
                          PHONE_MAX);
        goto out;
    }

    char index[USERS_INDEX_HEX_LEN], user_id[ES_UUID_LEN];
    users_blind_index(u->index_key, email, index);
    users_user_id(index, user_id);
    if (key_get_or_make(r, user_id, key, &err)) {
        es_error("user key store: %s", err.msg);
        api_reply_problem(r, 503, NULL, NULL, "the key store is unavailable");
        goto out;
    }
    if (!(hash = users_password_hash(password, &err))) {
        api_reply_err(r, &err);
        goto out;
    }
    json_t *fields =
        json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o}", "user_id", user_id, "email_index", index,
                  "role", role, "email_enc", users_seal_json(key, user_id, "email", email),
                  "name_enc", users_seal_json(key, user_id, "name", name), "phone_enc",
                  *phone ? users_seal_json(key, user_id, "phone", phone) : json_null(),
                  "password_hash_enc", users_seal_json(key, user_id, "password_hash", hash));
    /* the registrant acts for itself */
    struct api_principal actor;
    memset(&actor, 0, sizeof actor);
    snprintf(actor.sub, sizeof actor.sub, "%s", user_id);
    snprintf(actor.role, sizeof actor.role, "%s", role);
    char location[64];
    snprintf(location, sizeof location, "/v1/users/%s", user_id);
    api_command_send(r, &actor, USERS_CTX, USERS_NS "RegisterUser", user_id, fields, location);
out:
    if (hash) {
        sodium_memzero(hash, strlen(hash));
        free(hash);
    }
    sodium_memzero(key, sizeof key);
    json_decref(body); /* holds the password: jansson frees it; the string is not wiped */
}

/* ---- GET /v1/users/{id} ---- */

static const char user_columns[] = "SELECT user_id, role, status, vendor_id, email_enc, name_enc, "
                                   "phone_enc, password_hash_enc, version FROM users";

/* opens field of row into out (new member) or null; -1 when it does not open */
static int open_into(json_t *out, const char *name, const json_t *row, const char *column,
                     const unsigned char key[USERS_KEY_BYTES], const char *user_id)
{
    const char *sealed_b64 = json_string_value(json_object_get(row, column));
    if (!sealed_b64) {
        json_object_set_new(out, name, json_null());
        return 0;
    }
    es_err_t err = ES_ERR_INIT;
    char *plain = users_open(key, user_id, name, sealed_b64, &err);
    if (!plain)
        return -1;
    json_object_set_new(out, name, json_string(plain));
    sodium_memzero(plain, strlen(plain));
    free(plain);
    return 0;
}

static void run_get(es_http_req_t *r, const struct api_principal *who)
{
    (void)who;
    const char *user_id = es_http_param(r, "id");
    char sql[256];
    snprintf(sql, sizeof sql, "%s WHERE user_id = ?", user_columns);
    es_db_val_t p[] = {ES_DB_S(user_id)};
    json_t *rows = api_query_or_reply(r, USERS_CTX, sql, p, 1);
    unsigned char key[USERS_KEY_BYTES];
    if (!rows)
        return;
    const json_t *row = json_array_get(rows, 0);
    const char *status = json_string_value(json_object_get(row, "status"));
    es_err_t err = ES_ERR_INIT;
    int got = 0;
    if (!row) {
        api_reply_problem(r, 404, "urn:eventshop:problem:unknown_user", "user_id", "no user '%s'",
                          user_id);
    } else if (!status || !strcmp(status, "forgotten") ||
               (got = key_get(r, user_id, key, &err)) == 0) {
        api_reply_problem(r, 410, "urn:eventshop:problem:user_forgotten", "user_id",
                          "user '%s' was forgotten", user_id);
    } else if (got < 0) {
        es_error("user key store: %s", err.msg);
        api_reply_problem(r, 503, NULL, NULL, "the key store is unavailable");
    } else {
        json_t *out = json_pack("{s:s, s:O, s:s, s:O, s:O}", "user_id", user_id, "role",
                                json_object_get(row, "role"), "status", status, "vendor_id",
                                json_object_get(row, "vendor_id"), "version",
                                json_object_get(row, "version"));
        if (open_into(out, "email", row, "email_enc", key, user_id) ||
            open_into(out, "name", row, "name_enc", key, user_id) ||
            open_into(out, "phone", row, "phone_enc", key, user_id)) {
            json_decref(out);
            es_error("user '%s': a sealed field does not open with its key", user_id);
            api_reply_problem(r, 500, NULL, NULL, "the user's data cannot be read");
        } else {
            es_http_reply_json(r, 200, out);
        }
    }
    sodium_memzero(key, sizeof key);
    json_decref(rows);
}

void api_users_get(es_http_req_t *r, const struct api_principal *who)
{
    const char *user_id = path_user_or_reply(r);
    if (!user_id || self_or_admin_or_reply(r, who, user_id) || !ready_or_reply(r))
        return;
    api_query_at_position(r, who, USERS_CTX, "users_accounts", run_get);
}

/* ---- GET /v1/vendors: the vendors an admin decides on ---- */

/* One vendor as the list shows it (new reference): its name and e-mail opened with its key, null
 * when the key is gone (forgotten meanwhile) or a field does not open; NULL with err when the key
 * store does not answer. */
static json_t *vendor_item(es_http_req_t *r, const json_t *row, es_err_t *err)
{
    const char *user_id = json_string_value(json_object_get(row, "user_id"));
    unsigned char key[USERS_KEY_BYTES];
    int got = key_get(r, user_id, key, err);
    if (got < 0)
        return NULL;
    json_t *out = json_pack(
        "{s:s, s:O, s:O, s:O, s:O}", "user_id", user_id, "status", json_object_get(row, "status"),
        "vendor_id", json_object_get(row, "vendor_id"), "registered_at",
        json_object_get(row, "registered_at"), "version", json_object_get(row, "version"));
    if (got == 0 || open_into(out, "email", row, "email_enc", key, user_id) ||
        open_into(out, "name", row, "name_enc", key, user_id)) {
        if (got > 0)
            es_warn("vendor '%s': a sealed field does not open with its key", user_id);
        json_object_set_new(out, "email", json_null());
        json_object_set_new(out, "name", json_null());
    }
    sodium_memzero(key, sizeof key);
    return out;
}

static void run_vendors(es_http_req_t *r, const struct api_principal *who)
{
    (void)who;
    char *status = es_http_query_dup(r, "status");
    int limit = api_query_limit_or_reply(r);
    if (limit < 0)
        goto out;
    if (status && strcmp(status, "pending") && strcmp(status, "active")) {
        api_reply_problem(r, 400, NULL, "status", "status must be pending or active");
        goto out;
    }
    static const char sql[] =
        "SELECT user_id, status, vendor_id, registered_at, version, email_enc, name_enc "
        "FROM users WHERE role = 'vendor' AND status = ? ORDER BY registered_at, user_id LIMIT ?";
    es_db_val_t p[] = {ES_DB_S(status ? status : "pending"), ES_DB_I(limit)};
    json_t *rows = api_query_or_reply(r, USERS_CTX, sql, p, 2);
    if (!rows)
        goto out;
    json_t *items = json_array();
    size_t i;
    json_t *row;
    es_err_t err = ES_ERR_INIT;
    json_array_foreach(rows, i, row)
    {
        json_t *item = vendor_item(r, row, &err);
        if (!item)
            break;
        json_array_append_new(items, item);
    }
    json_decref(rows);
    if (err.code) {
        json_decref(items);
        es_error("user key store: %s", err.msg);
        api_reply_problem(r, 503, NULL, NULL, "the key store is unavailable");
        goto out;
    }
    es_http_add_header(r, "Cache-Control", "no-store");
    es_http_reply_json(r, 200, json_pack("{s:o}", "items", items));
out:
    free(status);
}

void api_vendors_list(es_http_req_t *r, const struct api_principal *who)
{
    if (ready_or_reply(r))
        api_query_at_position(r, who, USERS_CTX, "users_accounts", run_vendors);
}

/* ---- DELETE /v1/users/{id} ---- */

void api_users_forget(es_http_req_t *r, const struct api_principal *who)
{
    const char *user_id = path_user_or_reply(r);
    if (!user_id || self_or_admin_or_reply(r, who, user_id) || !ready_or_reply(r))
        return;
    /* the key first: once it is gone the data is unreadable whatever happens next; a failed
     * send is retried by the client (DELETE is idempotent, so is ForgetUser) */
    es_err_t err = ES_ERR_INIT;
    if (key_destroy(r, user_id, &err)) {
        es_error("user key store: %s", err.msg);
        api_reply_problem(r, 503, NULL, NULL, "the key store is unavailable");
        return;
    }
    es_info("user '%s': key destroyed by '%s'", user_id, who->sub);
    api_command_send(r, who, USERS_CTX, USERS_NS "ForgetUser", user_id,
                     json_pack("{s:s}", "user_id", user_id), NULL);
}

/* ---- admin: approval and roles ---- */

void api_vendors_approve(es_http_req_t *r, const struct api_principal *who)
{
    const char *user_id = path_user_or_reply(r);
    if (!user_id || !ready_or_reply(r))
        return;
    api_command_send(r, who, USERS_CTX, USERS_NS "ApproveVendor", user_id,
                     json_pack("{s:s}", "user_id", user_id), NULL);
}

void api_users_change_role(es_http_req_t *r, const struct api_principal *who)
{
    static const char *const allowed[] = {"role", NULL};
    const char *user_id = path_user_or_reply(r);
    if (!user_id || !ready_or_reply(r))
        return;
    json_t *body = api_json_body_or_reply(r);
    if (!body || only_keys_or_reply(r, body, allowed))
        goto out;
    const char *role = str_field_or_reply(r, body, "role", 1);
    if (!role)
        goto out;
    if (!api_jwt_role_is_valid(role)) {
        api_reply_problem(r, 422, NULL, "role", "role: must be admin, vendor or customer");
        goto out;
    }
    api_command_send(r, who, USERS_CTX, USERS_NS "ChangeUserRole", user_id,
                     json_pack("{s:s, s:s}", "user_id", user_id, "role", role), NULL);
out:
    json_decref(body);
}

/* ---- POST /v1/auth/token ---- */

static void reply_limited(es_http_req_t *r, long wait)
{
    char s[24];
    snprintf(s, sizeof s, "%ld", wait);
    es_http_add_header(r, "Retry-After", s);
    api_reply_problem(r, 429, "urn:eventshop:problem:too_many_failed_logins", NULL,
                      "too many failed logins: retry in %ld s", wait);
}

static void reply_bad_login(es_http_req_t *r)
{
    es_http_add_header(r, "WWW-Authenticate", "Bearer");
    api_reply_problem(r, 401, "urn:eventshop:problem:invalid_credentials", NULL, BAD_LOGIN);
}

/* Verifies password for row (may be NULL: unknown e-mail); 1 when it matches. Costs one Argon2id
 * verification in every case. */
static int password_matches(es_http_req_t *r, const json_t *row, const char *password,
                            es_err_t *err)
{
    const char *user_id = json_string_value(json_object_get(row, "user_id"));
    const char *sealed_hash = json_string_value(json_object_get(row, "password_hash_enc"));
    unsigned char key[USERS_KEY_BYTES];
    int got = user_id && sealed_hash ? key_get(r, user_id, key, err) : 0;
    if (got < 0)
        return -1;
    char *hash = got ? users_open(key, user_id, "password_hash", sealed_hash, err) : NULL;
    sodium_memzero(key, sizeof key);
    int ok = hash ? users_password_verify(hash, password) : users_password_verify_dummy(password);
    if (hash) {
        sodium_memzero(hash, strlen(hash));
        free(hash);
    }
    return ok ? 1 : 0;
}

void api_auth_token(es_http_req_t *r, const struct api_principal *who)
{
    static const char *const allowed[] = {"email", "password", NULL};
    (void)who;
    struct api_users *u = ready_or_reply(r);
    if (!u)
        return;
    json_t *body = api_json_body_or_reply(r);
    json_t *rows = NULL;
    char ip_key[64] = "ip:", email_key[72] = "em:";
    if (!body || only_keys_or_reply(r, body, allowed))
        goto out;
    const char *raw_email = str_field_or_reply(r, body, "email", 1);
    const char *password = raw_email ? str_field_or_reply(r, body, "password", 1) : NULL;
    if (!password)
        goto out;
    char email[USERS_EMAIL_MAX + 1], index[USERS_INDEX_HEX_LEN];
    es_err_t err = ES_ERR_INIT;
    if (users_email_normalise(raw_email, email, sizeof email, &err) ||
        utf8_len(password) > USERS_PASSWORD_MAX) {
        reply_bad_login(r); /* no hint which part was wrong */
        goto out;
    }
    users_blind_index(u->index_key, email, index);
    es_http_client_ip(r, ip_key + 3, sizeof ip_key - 3);
    snprintf(email_key + 3, sizeof email_key - 3, "%s", index);
    double now = es_mono_s();
    long wait_ip = api_ratelimit_check(u->by_ip, ip_key, now);
    long wait_em = api_ratelimit_check(u->by_email, email_key, now);
    if (wait_ip || wait_em) {
        reply_limited(r, wait_ip > wait_em ? wait_ip : wait_em);
        goto out;
    }

    char sql[256];
    snprintf(sql, sizeof sql, "%s WHERE email_index = ?", user_columns);
    es_db_val_t p[] = {ES_DB_S(index)};
    if (!(rows = api_query_or_reply(r, USERS_CTX, sql, p, 1)))
        goto out;
    const json_t *row = json_array_get(rows, 0);
    const char *status = json_string_value(json_object_get(row, "status"));
    if (status && !strcmp(status, "forgotten"))
        row = NULL;
    int ok = password_matches(r, row, password, &err);
    if (ok < 0) {
        es_error("user key store: %s", err.msg);
        api_reply_problem(r, 503, NULL, NULL, "the key store is unavailable");
        goto out;
    }
    if (!ok) {
        api_ratelimit_charge(u->by_ip, ip_key, now);
        api_ratelimit_charge(u->by_email, email_key, now);
        es_info("failed login from %s", ip_key + 3);
        reply_bad_login(r);
        goto out;
    }
    api_ratelimit_reset(u->by_email, email_key);
    if (strcmp(status, "active") != 0) { /* a vendor waiting for approval */
        reply_bad_login(r);
        goto out;
    }
    struct api_jwt_principal pr;
    memset(&pr, 0, sizeof pr);
    const char *role = json_string_value(json_object_get(row, "role"));
    const char *vendor = json_string_value(json_object_get(row, "vendor_id"));
    snprintf(pr.sub, sizeof pr.sub, "%s", json_string_value(json_object_get(row, "user_id")));
    snprintf(pr.role, sizeof pr.role, "%s", role ? role : "");
    if (role && !strcmp(role, "vendor") && vendor)
        snprintf(pr.vendor_id, sizeof pr.vendor_id, "%s", vendor);
    char *token = api_jwt_mint(u->signer, &pr, USERS_TOKEN_TTL, 0, &err);
    if (!token) {
        es_error("token for user '%s' not minted: %s", pr.sub, err.msg);
        api_reply_problem(r, 500, NULL, NULL, "no token could be issued");
        goto out;
    }
    es_http_add_header(r, "Cache-Control", "no-store");
    es_http_reply_json(r, 200,
                       json_pack("{s:s, s:s, s:i}", "access_token", token, "token_type", "Bearer",
                                 "expires_in", USERS_TOKEN_TTL));
    free(token);
out:
    json_decref(rows);
    json_decref(body);
}

/* ---- POST /internal/users/{id}/contact: the narrow, audited open call ---- */

/* Whether the request carries the caller's credential (X-Service-Credential), compared in
 * constant time through a hash of each side. */
static bool caller_is_notifications(es_http_req_t *r, const struct api_users *u)
{
    char *given = es_http_header_dup(r, "X-Service-Credential");
    bool ok = false;
    if (given && u->open_secret && *u->open_secret) {
        unsigned char a[crypto_generichash_BYTES], b[crypto_generichash_BYTES];
        crypto_generichash(a, sizeof a, (const unsigned char *)given, strlen(given), NULL, 0);
        crypto_generichash(b, sizeof b, (const unsigned char *)u->open_secret,
                           strlen(u->open_secret), NULL, 0);
        ok = sodium_memcmp(a, b, sizeof a) == 0;
    }
    if (given) {
        sodium_memzero(given, strlen(given));
        free(given);
    }
    return ok;
}

static void audit(const char *user_id, const char *purpose, const char *outcome)
{
    es_log_kv(ES_LOG_INFO, NULL,
              ES_F("audit", "contact_open", "caller", OPEN_CALLER, "user_id", user_id, "purpose",
                   purpose, "outcome", outcome),
              "audit: contact of user '%s' asked by '%s' for '%s': %s", user_id, OPEN_CALLER,
              purpose, outcome);
}

/* Opens the sealed fields of body into out; -1 when one does not open with key. */
static int open_contact(json_t *out, const json_t *body, const unsigned char key[USERS_KEY_BYTES],
                        const char *user_id)
{
    return open_into(out, "email", body, "email_enc", key, user_id) ||
                   open_into(out, "phone", body, "phone_enc", key, user_id)
               ? -1
               : 0;
}

void api_users_open_contact(es_http_req_t *r, const struct api_principal *who)
{
    static const char *const allowed[] = {"purpose", "email_enc", "phone_enc", NULL};
    (void)who;
    struct api_users *u = users_of(r);
    if (!u || !api_context_enabled(es_http_app(r), USERS_CTX) || !u->open_secret) {
        api_reply_problem(r, 503, NULL, NULL, "the users service is not configured");
        return;
    }
    if (!caller_is_notifications(r, u)) {
        es_http_add_header(r, "WWW-Authenticate", "X-Service-Credential");
        api_reply_problem(r, 401, "urn:eventshop:problem:invalid_credentials", NULL,
                          "a service credential is required");
        return;
    }
    const char *user_id = path_user_or_reply(r);
    json_t *body = user_id ? api_json_body_or_reply(r) : NULL;
    unsigned char key[USERS_KEY_BYTES];
    if (!body || only_keys_or_reply(r, body, allowed))
        goto out;
    const char *purpose = str_field_or_reply(r, body, "purpose", 1);
    if (!purpose)
        goto out;
    if (!*purpose || utf8_len(purpose) > OPEN_PURPOSE_MAX) {
        api_reply_problem(r, 422, NULL, "purpose", "purpose: must be 1 to %d characters",
                          OPEN_PURPOSE_MAX);
        goto out;
    }
    es_err_t err = ES_ERR_INIT;
    int got = key_get(r, user_id, key, &err);
    json_t *opened = json_object();
    if (got < 0) {
        es_error("user key store: %s", err.msg);
        api_reply_problem(r, 503, NULL, NULL, "the key store is unavailable");
    } else if (got == 0) {
        audit(user_id, purpose, "forgotten");
        api_reply_problem(r, 410, "urn:eventshop:problem:user_forgotten", "user_id",
                          "user '%s' was forgotten", user_id);
    } else if (open_contact(opened, body, key, user_id)) {
        audit(user_id, purpose, "unreadable");
        api_reply_problem(r, 422, NULL, NULL, "a sealed field does not open with the user's key");
    } else {
        audit(user_id, purpose, "opened");
        es_http_add_header(r, "Cache-Control", "no-store");
        es_http_reply_json(r, 200, opened);
        opened = NULL;
    }
    json_decref(opened);
out:
    sodium_memzero(key, sizeof key);
    json_decref(body);
}
