/* api_access — see api_access.h. */
#include "api_access.h"
#include "es_log.h"
#include "users_keys.h"
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_sku_context(const char *ctx)
{
    return !strcmp(ctx, "catalog") || !strcmp(ctx, "inventory") || !strcmp(ctx, "pricing");
}

bool api_access_role_reads(const struct api_principal *who, const char *ctx)
{
    if (!strcmp(who->role, "admin"))
        return true;
    if (!strcmp(who->role, "vendor"))
        return is_sku_context(ctx);
    if (!strcmp(who->role, "customer"))
        return !strcmp(ctx, "orders") || !strcmp(ctx, "users");
    return false;
}

bool api_access_is_owner(const struct api_principal *who, const char *owner)
{
    if (!strcmp(who->role, "admin"))
        return true;
    if (!strcmp(who->role, "vendor"))
        return who->vendor_id[0] && owner && !strcmp(owner, who->vendor_id);
    return who->sub[0] && owner && !strcmp(owner, who->sub);
}

/* column of the single row of sql (one parameter id) in ctx into out: 1, 0 (no row), -1 */
static int read_column(es_http_req_t *r, const char *ctx, const char *sql, const char *id,
                       const char *column, char *out, size_t size, es_err_t *err)
{
    es_db_val_t p[] = {ES_DB_S(id)};
    json_t *rows = api_query(r, ctx, sql, p, 1, err);
    if (!rows)
        return -1;
    const char *v = json_string_value(json_object_get(json_array_get(rows, 0), column));
    int found = json_array_size(rows) > 0;
    snprintf(out, size, "%s", v ? v : "");
    json_decref(rows);
    return found;
}

int api_access_owner(es_http_req_t *r, const struct api_principal *who, const char *ctx,
                     const char *id, char *owner, size_t size, es_err_t *err)
{
    owner[0] = 0;
    if (!strcmp(who->role, "admin") || !api_access_role_reads(who, ctx))
        return 1;
    if (!strcmp(who->role, "vendor"))
        return api_context_enabled(es_http_app(r), "catalog")
                   ? read_column(r, "catalog", "SELECT vendor_id FROM products WHERE sku = ?", id,
                                 "vendor_id", owner, size, err)
                   : 0;
    if (!strcmp(ctx, "orders"))
        return read_column(r, ctx, "SELECT customer_id FROM orders WHERE order_id = ?", id,
                           "customer_id", owner, size, err);
    snprintf(owner, size, "%s", id); /* users: an account is its own */
    return 1;
}

void api_access_key_release(struct api_owner_key *ok)
{
    sodium_memzero(ok->key, sizeof ok->key);
    ok->state = 0;
}

static bool has_sealed(json_t *payload)
{
    const char *k;
    json_t *v;
    json_object_foreach(payload, k, v)
    {
        size_t n = strlen(k);
        if (n > 4 && !strcmp(k + n - 4, "_enc"))
            return true;
    }
    return false;
}

int api_access_open_personal(es_http_req_t *r, const struct api_principal *who, json_t *item,
                             struct api_owner_key *ok, es_err_t *err)
{
    json_t *payload = json_object_get(item, "payload");
    const char *owner = json_string_value(json_object_get(payload, "user_id"));
    if (!owner)
        owner = json_string_value(json_object_get(payload, "customer_id"));
    /* only the owner and an admin are entitled: anyone else sees the fields sealed */
    if (!has_sealed(payload) || !owner || (strcmp(who->role, "admin") && strcmp(who->sub, owner)))
        return 0;
    if (ok->state == 0 || strcmp(ok->owner, owner)) {
        es_db_t *db = api_db_keys(r, err);
        int got = db ? users_keys_get(db, owner, ok->key, err) : -1;
        if (got < 0) {
            api_db_keys_failed(r, err);
            es_error("user key store: %s", err->msg);
            err->code = ES_EIO;
            return -1;
        }
        snprintf(ok->owner, sizeof ok->owner, "%s", owner);
        ok->state = got ? 1 : 2;
    }
    json_t *sealed = json_deep_copy(payload);
    int rc = api_history_unseal(payload, ok->state == 1 ? ok->key : NULL);
    if (rc < 0) {
        /* sealed under a key that no longer exists: a user id is derived from the e-mail, so a
         * forgotten user who registers again has a new key that cannot open the old events;
         * nothing can open them any more, so they show as shredded, marked unreadable */
        es_warn("a sealed field of '%s' does not open with its key: shown as unreadable", owner);
        json_object_update(payload, sealed);
        api_history_unseal(payload, NULL);
        json_object_set_new(item, "unreadable", json_true());
        rc = 1;
    }
    json_decref(sealed);
    if (rc > 0)
        json_object_set_new(item, "shredded", json_true());
    return 0;
}
