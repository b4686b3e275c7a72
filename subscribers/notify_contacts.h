/* notify_contacts — the notifications' own read model of contacts, and the one way a contact is
 * opened (docs/ARCHITECTURE.md, "Notifications: whose data").
 *
 * The read model: table contacts of eventshop_notifications, from users.events, the personal
 * fields still sealed (never opened here):
 *
 *   contacts(user_id PK, email_enc, phone_enc, forgotten, version)
 *
 * UserRegistered writes the sealed e-mail and phone; UserForgotten erases them (the row keeps
 * only user_id, forgotten = 1 and the version, so a redelivered registration older than the
 * forgetting cannot bring them back). Every write is guarded by the event's aggregate_version,
 * so a redelivered or replayed event changes nothing. The subscriber reads users.events in its
 * consumer group from the earliest offset when the group has none for it: the first start
 * back-fills the whole history (a database reset needs the group's users.events offsets reset
 * too).
 *
 * Opening: the users context owns the keys (eventshop_keys); the notifications never see one.
 * They send the sealed fields to the users context's open call (POST
 * <url>/internal/users/{id}/contact, X-Service-Credential: the shared secret, with a stated
 * purpose), which answers the plaintext, 410 once the user's key is destroyed (forgotten), and
 * writes an audit line. Unreachable or failing (5xx, timeout), the call is a transient error:
 * the batch is retried with backoff, no notification is dropped. */
#ifndef NOTIFY_CONTACTS_H
#define NOTIFY_CONTACTS_H

#include "es_db.h"
#include "es_err.h"
#include <curl/curl.h>
#include <jansson.h>

/* Performs the transfer set up on curl (the notifications' calls out: SMTP, SMS webhook, the
 * open call) with timeout_ms and no signals; *code gets the last response code (0: none). */
CURLcode nc_perform(CURL *curl, long timeout_ms, long *code);
/* POSTs body (JSON) to url with one more header line (e.g. "Idempotency-Key: k") on curl (reset
 * first), the answer's bytes to on_data(data); *code as nc_perform's. */
CURLcode nc_post_json(CURL *curl, const char *url, const char *header, const char *body,
                      long timeout_ms, curl_write_callback on_data, void *data, long *code);
/* Wipes a secret string (may be NULL) and frees it. */
void nc_wipe_free(char *s);

/* The table's DDL (static string). */
const char *nc_contacts_ddl(void);

/* Applies one users event (event_type its full name, event borrowed) to contacts. 1 when it was
 * a users event (applied, or nothing to apply), 0 when it is not one, -1 with err (the
 * database). */
int nc_apply(es_db_t *db, const char *event_type, const json_t *event, es_err_t *err);

typedef struct nc_opener nc_opener_t;

/* The client of the open call: url the users context's base URL (e.g. http://127.0.0.1:8080,
 * borrowed), secret the credential (stolen: wiped and freed with the opener), timeout_ms per
 * call. NULL with err. */
nc_opener_t *nc_opener_new(const char *url, char *secret, long timeout_ms, es_err_t *err);
void nc_opener_free(nc_opener_t *o);

/* The opened e-mail and phone of user_id (owned, wipe before free; *phone may stay NULL), for
 * purpose (logged by the users context). 1 found; 0 none, *why says why ("no_address": unknown
 * or forgotten, "no_key": key destroyed, "address_unreadable"); -1 with err: ES_EIO (the
 * database, the open call unreachable, 401, 5xx: retry) or ES_EINVAL (the call refused the
 * request itself: the event is dead-lettered). A user with a key but no contact row yet (its
 * registration not read yet) is ES_EIO while age_ms (the triggering event's age) is below wait_ms,
 * then "no_address". */
int nc_contact_of(nc_opener_t *o, es_db_t *db, const char *user_id, const char *purpose,
                  long long age_ms, long long wait_ms, char **email, char **phone, const char **why,
                  es_err_t *err);

#endif
