#include "notify_contacts.h"
#include "dm_json.h"
#include "es_mem.h"
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define NC_USERS_NS   "eventshop.users."
#define NC_ANSWER_MAX 16384 /* an answer is two short fields */

struct nc_opener {
    CURL *curl;
    char *url;
    char *secret;
    long timeout_ms;
};

CURLcode nc_perform(CURL *curl, long timeout_ms, long *code)
{
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    CURLcode cc = curl_easy_perform(curl);
    *code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, code);
    return cc;
}

CURLcode nc_post_json(CURL *curl, const char *url, const char *header, const char *body,
                      long timeout_ms, curl_write_callback on_data, void *data, long *code)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, header);
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, data);
    CURLcode cc = nc_perform(curl, timeout_ms, code);
    curl_slist_free_all(h);
    return cc;
}

const char *nc_contacts_ddl(void)
{
    return "CREATE TABLE IF NOT EXISTS contacts (user_id VARCHAR(64) NOT NULL PRIMARY KEY,"
           " email_enc TEXT NULL, phone_enc TEXT NULL, forgotten TINYINT NOT NULL,"
           " version BIGINT NOT NULL) ENGINE=InnoDB";
}

int nc_apply(es_db_t *db, const char *event_type, const json_t *event, es_err_t *err)
{
    if (strncmp(event_type, NC_USERS_NS, strlen(NC_USERS_NS)) != 0)
        return 0;
    const char *type = event_type + strlen(NC_USERS_NS);
    bool registered = !strcmp(type, "UserRegistered");
    if (!registered && strcmp(type, "UserForgotten") != 0)
        return 1; /* roles and approvals: no contact in them */
    const char *user_id = dm_str(event, "user_id");
    const json_t *v = json_object_get(json_object_get(event, "metadata"), "aggregate_version");
    if (!user_id || !json_is_integer(v))
        return 1;
    const char *email = registered ? dm_str(event, "email_enc") : NULL;
    const char *phone = registered ? dm_str(event, "phone_enc") : NULL;
    es_db_val_t p[] = {ES_DB_S(user_id), email ? ES_DB_S(email) : ES_DB_N,
                       phone ? ES_DB_S(phone) : ES_DB_N, ES_DB_I(registered ? 0 : 1),
                       ES_DB_I(json_integer_value(v))};
    /* only a newer version writes; version last, as MariaDB assigns left to right */
    static const char sql[] =
        "INSERT INTO contacts (user_id, email_enc, phone_enc, forgotten, version)"
        " VALUES (?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE"
        " email_enc = IF(VALUES(version) > version, VALUES(email_enc), email_enc),"
        " phone_enc = IF(VALUES(version) > version, VALUES(phone_enc), phone_enc),"
        " forgotten = IF(VALUES(version) > version, VALUES(forgotten), forgotten),"
        " version = GREATEST(version, VALUES(version))";
    return es_db_exec(db, sql, p, 5, NULL, err) ? -1 : 1;
}

nc_opener_t *nc_opener_new(const char *url, char *secret, long timeout_ms, es_err_t *err)
{
    nc_opener_t *o = xcalloc(1, sizeof *o);
    o->secret = secret;
    o->timeout_ms = timeout_ms;
    if (!url || !*url || !secret || !*secret) {
        es_set(err, ES_EINVAL,
               "the users context's open call needs EVENTSHOP_USERS_OPEN_URL and "
               "EVENTSHOP_USERS_OPEN_SECRET(_FILE)");
        nc_opener_free(o);
        return NULL;
    }
    o->url = xstrdup(url);
    if (!(o->curl = curl_easy_init())) {
        es_set(err, ES_EINTERNAL, "curl_easy_init failed");
        nc_opener_free(o);
        return NULL;
    }
    return o;
}

void nc_wipe_free(char *s)
{
    if (s) {
        memset(s, 0, strlen(s));
        free(s);
    }
}

void nc_opener_free(nc_opener_t *o)
{
    if (!o)
        return;
    if (o->curl)
        curl_easy_cleanup(o->curl);
    free(o->url);
    nc_wipe_free(o->secret);
    free(o);
}

struct answer {
    char buf[NC_ANSWER_MAX];
    size_t len;
};

static size_t on_answer(char *p, size_t size, size_t n, void *arg)
{
    struct answer *a = arg;
    size_t len = size * n;
    if (len > sizeof a->buf - 1 - a->len)
        return 0; /* too long: the transfer fails */
    memcpy(a->buf + a->len, p, len);
    a->len += len;
    return len;
}

/* POSTs body to the open call for user_id: the HTTP status (0: no answer), *opened (new
 * reference) the parsed 200 answer. The answer's buffer is wiped. */
static long open_call(nc_opener_t *o, const char *user_id, json_t *body, json_t **opened,
                      es_err_t *err)
{
    char url[512], cred[512];
    struct answer *a = xcalloc(1, sizeof *a);
    snprintf(url, sizeof url, "%s/internal/users/%s/contact", o->url, user_id);
    snprintf(cred, sizeof cred, "X-Service-Credential: %s", o->secret);
    char *text = json_dumps(body, JSON_COMPACT);
    long code = 0;
    CURLcode cc = nc_post_json(o->curl, url, cred, text, o->timeout_ms, on_answer, a, &code);
    memset(cred, 0, sizeof cred);
    free(text);
    if (cc != CURLE_OK) {
        es_set(err, ES_EIO, "users open call: %s", curl_easy_strerror(cc));
        code = 0;
    } else if (code == 200 && !(*opened = json_loadb(a->buf, a->len, 0, NULL))) {
        es_set(err, ES_EIO, "users open call: the answer is not JSON");
        code = 0;
    }
    memset(a, 0, sizeof *a);
    free(a);
    return code;
}

/* The users context's answer as contact_of's: 1 opened, 0 none (*why), -1 retry */
static int read_answer(long code, json_t *opened, char **email, char **phone, const char **why,
                       es_err_t *err)
{
    if (code == 200) {
        const char *e = dm_str(opened, "email"), *p = dm_str(opened, "phone");
        *email = e ? xstrdup(e) : NULL;
        *phone = p && *p ? xstrdup(p) : NULL;
        *why = "no_address";
        return *email ? 1 : 0;
    }
    if (code == 404 || code == 410 || code == 422) { /* no such user id; no key; no opening */
        *why = code == 404 ? "no_address" : code == 410 ? "no_key" : "address_unreadable";
        return 0;
    }
    /* 401 (the credential), 5xx, 429: retried; another refusal of the request will not change */
    if (code == 400 || code == 413 || code == 415)
        return es_set(err, ES_EINVAL, "users open call refused the request (%ld)", code);
    if (code)
        es_set(err, ES_EIO, "users open call answered %ld", code);
    return -1;
}

/* Wipes the opened plaintext of an answer before it is freed. */
static void wipe_answer(json_t *opened)
{
    const char *k;
    json_t *v;
    json_object_foreach(opened, k, v)
    {
        if (json_is_string(v))
            memset((char *)json_string_value(v), 0, json_string_length(v));
    }
    json_decref(opened);
}

/* The contact row of user_id (new reference to the rows), NULL with err. */
static json_t *contact_row(es_db_t *db, const char *user_id, es_err_t *err)
{
    es_db_val_t p[] = {ES_DB_S(user_id)};
    return es_db_query(db, "SELECT email_enc, phone_enc, forgotten FROM contacts WHERE user_id = ?",
                       p, 1, err);
}

int nc_contact_of(nc_opener_t *o, es_db_t *db, const char *user_id, const char *purpose,
                  long long age_ms, long long wait_ms, char **email, char **phone, const char **why,
                  es_err_t *err)
{
    json_t *rows = contact_row(db, user_id, err);
    if (!rows)
        return -1;
    const json_t *row = json_array_get(rows, 0);
    const char *email_enc = dm_str(row, "email_enc");
    const char *phone_enc = dm_str(row, "phone_enc");
    *why = "no_address";
    int rc = 0;
    if (row && !email_enc) /* forgotten, or registered without one */
        goto out;
    /* no row: the open call without fields asks only whether the user has a key */
    json_t *body = json_pack("{s:s}", "purpose", purpose), *opened = NULL;
    if (email_enc)
        json_object_set_new(body, "email_enc", json_string(email_enc));
    if (phone_enc && *phone_enc)
        json_object_set_new(body, "phone_enc", json_string(phone_enc));
    long code = open_call(o, user_id, body, &opened, err);
    json_decref(body);
    rc = read_answer(code, opened, email, phone, why, err);
    wipe_answer(opened);
    if (!row && code == 200 && age_ms < wait_ms) /* registered, not read yet: later */
        rc = es_set(err, ES_EIO, "the contact of user '%s' is not known yet", user_id);
    else if (!row)
        *why = "no_address";
out:
    json_decref(rows);
    return rc;
}
