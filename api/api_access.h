/* api_access — who may read which events, and how their personal fields are shown: the one rule
 * behind GET /v1/history (api_history.c) and GET /v1/stream (api_stream.c).
 *
 * An admin reads every aggregate of every served context; a vendor the skus it owns (the
 * catalog's vendor_id) in catalog, inventory and pricing; a customer its own orders and its own
 * account (users). Sealed personal fields ("<f>_enc") are opened with their owner's key for the
 * owner and admins only (others see them sealed); a forgotten owner's come out null, with
 * "shredded": true on the item; a password hash is never shown. */
#ifndef API_ACCESS_H
#define API_ACCESS_H

#include "api_app.h"
#include "users_crypto.h"
#include <stdbool.h>

/* Whether who's role may read any aggregate of ctx at all. */
bool api_access_role_reads(const struct api_principal *who, const char *ctx);

/* The owner of aggregate id in ctx as far as who's role cares (a sku's vendor_id, an order's
 * customer_id, a user's own id), read from ctx's read model with r's thread connection. 1 with
 * owner filled, 0 when the read model has no such aggregate (yet), -1 with err (ES_EIO: the
 * database is unavailable). Admins and roles that never read ctx: 1 with owner "". */
int api_access_owner(es_http_req_t *r, const struct api_principal *who, const char *ctx,
                     const char *id, char *owner, size_t size, es_err_t *err);

/* Whether owner (from api_access_owner or from an event itself) is who: the subject for a
 * customer, the vendor id for a vendor; always for an admin. */
bool api_access_is_owner(const struct api_principal *who, const char *owner);

/* The sealed fields' owner's key, fetched once per owner and kept by the caller (a request, a
 * stream); api_access_key_release wipes it. */
struct api_owner_key {
    char owner[129];
    int state; /* 0: not asked; 1: found; 2: none (forgotten) */
    unsigned char key[USERS_KEY_BYTES];
};
void api_access_key_release(struct api_owner_key *ok);

/* Opens (or nulls) the sealed fields of item's "payload" for who (see the top): 0, or -1 with
 * err ES_EIO (the key store is unavailable). Sets "shredded": true on item when the owner was
 * forgotten, and also "unreadable": true when a field does not open with the owner's current
 * key (sealed under a key destroyed before the user registered again): every personal field
 * null. ok caches the last owner's key. */
int api_access_open_personal(es_http_req_t *r, const struct api_principal *who, json_t *item,
                             struct api_owner_key *ok, es_err_t *err);

#endif
