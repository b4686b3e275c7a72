/* The notifications subscriber: one e-mail (SMTP, libcurl) per notifying event (see
 * notify_templates.h), plus an SMS through the webhook when the customer gave a phone, and a
 * NotificationSent or NotificationFailed event of its own on notifications.events.
 *
 * At least once, with one Message-ID (docs/ARCHITECTURE.md, "Notifications"). Each (event,
 * template) has a key derived from both (nt_notification_key): the Message-ID's local part and
 * the SMS webhook's Idempotency-Key, the same at every attempt. In database
 * eventshop_notifications:
 *   claims(event_id, kind, message_id, sends, claimed_at): written and committed BEFORE the SMTP
 *     transaction; sends counts the transactions begun that the server may have accepted (one
 *     it certainly refused is taken back); dropped once the record is written, so it holds only
 *     what is in flight or was left ambiguous by a crash;
 *   sent(event_id PK, kind, recipient_hash, message_id, channels, at): the record, written right
 *     after the server accepted the message (channels gains "sms" once the webhook took it).
 * A redelivered event (aborted batch, crash, rebalance) with a record is not mailed again: it only
 * writes its NotificationSent again (same derived event id; an SMS not yet recorded is tried
 * again under the same key). A claim with sends > 0 and no record is ambiguous: the server may
 * have accepted the message just before a crash. It is sent again with the same Message-ID, logged
 * and counted (eventshop_notifications_resent_total{kind}), so the receiver can fold the two.
 * Fault points (es_fault.h): notify.before_claim, notify.after_claim, notify.after_accept (the
 * window: accepted, not recorded), notify.after_record.
 *
 * Recipients: the notifications' own contacts (notify_contacts.h), read from users.events with
 * the e-mail and phone still sealed, opened one at a time by the users context's audited open
 * call (EVENTSHOP_USERS_OPEN_URL, credential EVENTSHOP_USERS_OPEN_SECRET(_FILE)): no other
 * context's database is read, no user key is ever held here. A contact not read yet is waited
 * for (the batch retried) while the triggering event is younger than
 * EVENTSHOP_NOTIFY_CONTACT_WAIT_MS (60000). Order facts the later events lack (customer, total)
 * are kept from OrderPlaced in table order_facts. */
#include "dm_json.h"
#include "es_db.h"
#include "es_env.h"
#include "es_fault.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_metrics.h"
#include "es_time.h"
#include "es_trace.h"
#include "notify_contacts.h"
#include "notify_templates.h"
#include "sb_runtime.h"
#include <curl/curl.h>
#include <openssl/sha.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NOTIFY_TOPIC       "notifications.events"
#define NOTIFY_NS          "eventshop.notifications."
#define NOTIFY_DB_CHECK_MS 3000 /* an idle subscriber pings MariaDB this often (readiness) */

struct notifications {
    es_db_t *db;
    CURL *curl;
    char *smtp_url;
    char *sms_url; /* NULL: no SMS */
    char *from;
    long timeout_ms;
    long long contact_wait_ms;
    nc_opener_t *opener; /* the users context's open call */
    es_metric_t *m_resent[NT_NONE];
};

static const char *const ddl[] = {
    "CREATE TABLE IF NOT EXISTS sent (event_id VARCHAR(64) NOT NULL PRIMARY KEY,"
    " kind VARCHAR(32) NOT NULL, recipient_hash CHAR(64) NOT NULL,"
    " message_id VARCHAR(128) NOT NULL, channels VARCHAR(32) NOT NULL,"
    " at BIGINT NOT NULL) ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS claims (event_id VARCHAR(64) NOT NULL, kind VARCHAR(32) NOT NULL,"
    " message_id VARCHAR(128) NOT NULL, sends INT NOT NULL, claimed_at BIGINT NOT NULL,"
    " PRIMARY KEY (event_id, kind)) ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS order_facts (order_id VARCHAR(128) NOT NULL PRIMARY KEY,"
    " customer_id VARCHAR(128) NOT NULL, total_minor BIGINT NULL, currency CHAR(3) NULL)"
    " ENGINE=InnoDB",
};

static void notifications_release(void *state)
{
    struct notifications *n = state;
    if (!n)
        return;
    es_db_close(n->db);
    nc_opener_free(n->opener);
    if (n->curl)
        curl_easy_cleanup(n->curl);
    free(n->smtp_url);
    free(n->sms_url);
    free(n->from);
    free(n);
}

static void *notifications_init(es_err_t *err)
{
    struct notifications *n = xcalloc(1, sizeof *n);
    n->timeout_ms = es_env_long("EVENTSHOP_NOTIFY_TIMEOUT_MS", 10000);
    n->contact_wait_ms = es_env_long("EVENTSHOP_NOTIFY_CONTACT_WAIT_MS", 60000);
    if (!(n->opener =
              nc_opener_new(es_env_str("EVENTSHOP_USERS_OPEN_URL", NULL),
                            es_env_secret("EVENTSHOP_USERS_OPEN_SECRET"), n->timeout_ms, err)))
        goto fail;
    if (!(n->db = es_db_open("notifications", err)))
        goto fail;
    for (size_t i = 0; i < sizeof ddl / sizeof *ddl; i++)
        if (es_db_exec(n->db, ddl[i], NULL, 0, NULL, err))
            goto fail;
    if (es_db_exec(n->db, nc_contacts_ddl(), NULL, 0, NULL, err))
        goto fail;
    /* from here a lost connection is reopened on next use; the batch it broke is redone */
    es_db_set_reconnect(n->db, "mysql");
    if (!(n->curl = curl_easy_init())) {
        es_set(err, ES_EINTERNAL, "curl_easy_init failed");
        goto fail;
    }
    n->smtp_url = xstrdup(es_env_str("EVENTSHOP_SMTP_URL", "smtp://127.0.0.1:2525"));
    const char *sms = es_env_str("EVENTSHOP_SMS_WEBHOOK_URL", "");
    n->sms_url = *sms ? xstrdup(sms) : NULL;
    n->from = xstrdup(es_env_str("EVENTSHOP_MAIL_FROM", "eventshop <orders@eventshop.local>"));
    for (int k = 0; k < NT_NONE; k++) {
        char labels[64];
        snprintf(labels, sizeof labels, "kind=\"%s\"", nt_kind_name((nt_kind_t)k));
        n->m_resent[k] = es_counter("eventshop_notifications_resent_total",
                                    "e-mails sent again with the same Message-ID under a claim "
                                    "without a record (the server may have accepted the earlier "
                                    "one)",
                                    labels);
    }
    return n;
fail:
    notifications_release(n);
    return NULL;
}

static void sha256_hex(const char *s, char out[65])
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)s, strlen(s), d);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* --- the outside world ------------------------------------------------------------------- */

struct upload {
    const char *data;
    size_t len, off;
};

static size_t on_read(char *p, size_t size, size_t nmemb, void *arg)
{
    struct upload *u = arg;
    size_t n = size * nmemb;
    if (n > u->len - u->off)
        n = u->len - u->off;
    memcpy(p, u->data + u->off, n);
    u->off += n;
    return n;
}

static size_t on_discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

/* Sends one e-mail. 0 when the server accepted it; ES_EIO (retry) or ES_EINVAL (rejected for
 * good: a 5xx answer) with err. *refused tells a failure where the server certainly did not take
 * the message (no connection, or its last answer an error) from one where it may have (a timeout
 * or a lost connection during or after the data). */
static int smtp_send(struct notifications *n, const char *to, const char *msg, bool *refused,
                     es_err_t *err)
{
    struct upload u = {msg, strlen(msg), 0};
    struct curl_slist *rcpt = NULL;
    char addr[300];
    snprintf(addr, sizeof addr, "<%s>", to);
    rcpt = curl_slist_append(rcpt, addr);
    curl_easy_reset(n->curl);
    curl_easy_setopt(n->curl, CURLOPT_URL, n->smtp_url);
    curl_easy_setopt(n->curl, CURLOPT_MAIL_FROM, "<orders@eventshop.local>");
    curl_easy_setopt(n->curl, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(n->curl, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(n->curl, CURLOPT_READDATA, &u);
    curl_easy_setopt(n->curl, CURLOPT_UPLOAD, 1L);
    long code = 0;
    CURLcode cc = nc_perform(n->curl, n->timeout_ms, &code);
    curl_slist_free_all(rcpt);
    if (cc == CURLE_OK)
        return 0;
    *refused = (code >= 400 && code < 600) || cc == CURLE_COULDNT_CONNECT ||
               cc == CURLE_COULDNT_RESOLVE_HOST;
    if (code >= 500 && code < 600)
        return es_set(err, ES_EINVAL, "smtp server rejected the message (%ld)", code);
    return es_set(err, ES_EIO, "smtp '%s': %s (%ld)", n->smtp_url, curl_easy_strerror(cc), code);
}

/* Posts one SMS to the webhook, with an Idempotency-Key; 0 when accepted (2xx). */
static int sms_send(struct notifications *n, const char *phone, const char *text, const char *key,
                    es_err_t *err)
{
    json_t *j = json_pack("{s:s, s:s}", "to", phone, "text", text);
    char *body = json_dumps(j, JSON_COMPACT);
    char hdr[128];
    snprintf(hdr, sizeof hdr, "Idempotency-Key: %s", key);
    long code = 0;
    CURLcode cc =
        nc_post_json(n->curl, n->sms_url, hdr, body, n->timeout_ms, on_discard, NULL, &code);
    free(body);
    json_decref(j);
    if (cc != CURLE_OK || code < 200 || code >= 300)
        return es_set(err, ES_EIO, "sms webhook: %s (%ld)",
                      cc != CURLE_OK ? curl_easy_strerror(cc) : "answer", code);
    return 0;
}

/* --- handling ------------------------------------------------------------------------------ */

static int remember_order(struct notifications *n, const json_t *event, es_err_t *err)
{
    const char *order = dm_str(event, "order_id");
    const char *customer = dm_str(event, "customer_id");
    const json_t *total = json_object_get(event, "total_minor");
    const char *currency = dm_str(event, "currency");
    if (!order || !customer)
        return 0;
    es_db_val_t p[] = {ES_DB_S(order), ES_DB_S(customer),
                       json_is_integer(total) ? ES_DB_I(json_integer_value(total)) : ES_DB_N,
                       currency ? ES_DB_S(currency) : ES_DB_N};
    return es_db_exec(n->db,
                      "INSERT INTO order_facts (order_id, customer_id, total_minor, currency) "
                      "VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE order_id = order_id",
                      p, 4, NULL, err);
}

static void emit_failed(sb_out_t *out, const char *trigger, const char *order, const char *customer,
                        nt_kind_t kind, const char *reason)
{
    es_warn("notification '%s' for order '%s' failed: %s", nt_kind_name(kind), order, reason);
    sb_out_event(out, NOTIFY_TOPIC, NOTIFY_NS "NotificationFailed", trigger,
                 json_pack("{s:s, s:s, s:s, s:s, s:s}", "trigger_event_id", trigger, "order_id",
                           order, "customer_id", customer ? customer : "", "kind",
                           nt_kind_name(kind), "reason", reason));
}

static void emit_sent(sb_out_t *out, const char *trigger, const char *order, const char *customer,
                      nt_kind_t kind, const char *channels, const char *hash, const char *msgid)
{
    json_t *ch = json_array();
    json_array_append_new(ch, json_string("email"));
    if (strstr(channels, "sms"))
        json_array_append_new(ch, json_string("sms"));
    sb_out_event(out, NOTIFY_TOPIC, NOTIFY_NS "NotificationSent", trigger,
                 json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:s}", "trigger_event_id", trigger,
                           "order_id", order, "customer_id", customer, "kind", nt_kind_name(kind),
                           "channels", ch, "recipient_hash", hash, "message_id", msgid));
}

/* What one notification is about; every string borrowed. */
struct notice {
    const char *trigger, *order, *customer;
    nt_kind_t kind;
    const json_t *md; /* the triggering event's metadata */
    const char *msgid, *trace_id;
};

/* Claims notice c, committed before its SMTP transaction begins: claims.sends counts the
 * transactions begun under the claim that the server may have accepted. A claim found without a
 * record (and sends > 0) makes this send a resend: logged and counted. Returns 0 or -1 with err. */
static int claim(struct notifications *n, const struct notice *c, es_err_t *err)
{
    const char *kname = nt_kind_name(c->kind);
    const char *trace = c->trace_id[0] ? c->trace_id : NULL;
    es_db_val_t p[] = {ES_DB_S(c->trigger), ES_DB_S(kname), ES_DB_S(c->msgid),
                       ES_DB_I(es_wall_ms())};
    json_t *rows =
        es_db_query(n->db, "SELECT sends FROM claims WHERE event_id = ? AND kind = ?", p, 2, err);
    if (!rows)
        return -1;
    const json_t *row = json_array_get(rows, 0);
    long long prior = row ? json_integer_value(json_object_get(row, "sends")) : -1;
    json_decref(rows);
    if (prior > 0) {
        es_metric_add(n->m_resent[c->kind], 1);
        es_log_kv(ES_LOG_WARN, trace,
                  ES_F("order_id", c->order, "kind", kname, "message_id", c->msgid, "event_id",
                       c->trigger),
                  "resending notification '%s' for order '%s' with the same Message-ID: claimed "
                  "without a record after %lld send(s) the server may have accepted",
                  kname, c->order, prior);
    } else {
        es_log_kv(ES_LOG_INFO, trace,
                  ES_F("order_id", c->order, "kind", kname, "message_id", c->msgid, "event_id",
                       c->trigger),
                  "sending notification '%s' for order '%s'", kname, c->order);
    }
    es_fault_hit("notify.before_claim");
    /* one statement for both: a replica that claimed it meanwhile (a rebalance) only adds */
    int rc = es_db_exec(n->db,
                        "INSERT INTO claims (event_id, kind, message_id, sends, claimed_at) "
                        "VALUES (?, ?, ?, 1, ?) ON DUPLICATE KEY UPDATE sends = sends + 1",
                        p, 4, NULL, err);
    if (rc)
        return -1;
    es_fault_hit("notify.after_claim");
    return 0;
}

/* The server certainly did not take the message: that send no longer counts. Best effort (a
 * failure only makes the next attempt count as a resend). */
static void unclaim(struct notifications *n, const char *trigger, nt_kind_t kind)
{
    es_db_val_t p[] = {ES_DB_S(trigger), ES_DB_S(nt_kind_name(kind))};
    es_err_t e = ES_ERR_INIT;
    if (es_db_exec(n->db,
                   "UPDATE claims SET sends = sends - 1 WHERE event_id = ? AND kind = ? AND "
                   "sends > 0",
                   p, 2, NULL, &e))
        es_warn("claim of event '%s' not released: %s", trigger, e.msg);
}

/* Once the record is written the claim says nothing more (a redelivery finds the record first):
 * dropped, so that claims holds only the notifications in flight or left ambiguous by a crash.
 * Best effort: a claim left behind beside its record is harmless. */
static void forget_claim(struct notifications *n, const struct notice *c, const char *kname)
{
    es_fault_hit("notify.after_record");
    es_db_val_t p[] = {ES_DB_S(c->trigger), ES_DB_S(kname)};
    es_err_t e = ES_ERR_INIT;
    if (es_db_exec(n->db, "DELETE FROM claims WHERE event_id = ? AND kind = ?", p, 2, NULL, &e))
        es_warn("claim of event '%s' not dropped: %s", c->trigger, e.msg);
}

/* NotificationSent again for a recorded notification (rec: its row in sent, borrowed). */
static void emit_recorded(sb_out_t *out, const char *trigger, const char *order,
                          const char *customer, nt_kind_t kind, const json_t *rec)
{
    emit_sent(out, trigger, order, customer ? customer : "", kind, dm_str(rec, "channels"),
              dm_str(rec, "recipient_hash"), dm_str(rec, "message_id"));
}

/* Sends the e-mail of notice c to email once the claim is committed, and records it once the
 * server accepted it. Returns 0 when accepted (hash filled), 1 when it will not be sent
 * (NotificationFailed emitted), -1 with err for a failure worth a retry. */
static int mail_once(struct notifications *n, const struct notice *c, const char *email,
                     const nt_message_t *m, char hash[65], sb_out_t *out, es_err_t *err)
{
    const char *kname = nt_kind_name(c->kind);
    long long at = json_integer_value(json_object_get(c->md, "occurred_at"));
    char *msg = nt_email_build(n->from, email, m, c->msgid, at);
    if (!msg) {
        emit_failed(out, c->trigger, c->order, c->customer, c->kind, "address_invalid");
        return 1;
    }
    int rc = -1;
    if (claim(n, c, err))
        goto out;
    es_err_t serr = ES_ERR_INIT;
    bool refused = false;
    if (smtp_send(n, email, msg, &refused, &serr)) {
        if (refused)
            unclaim(n, c->trigger, c->kind);
        if (serr.code == ES_EINVAL) {
            emit_failed(out, c->trigger, c->order, c->customer, c->kind, "smtp_rejected");
            rc = 1;
            goto out;
        }
        es_set(err, ES_EIO, "%s", serr.msg);
        goto out;
    }
    /* accepted: from here to the record is the window where a crash causes a resend */
    es_fault_hit("notify.after_accept");
    sha256_hex(email, hash);
    es_db_val_t p[] = {ES_DB_S(c->trigger), ES_DB_S(kname),   ES_DB_S(hash),
                       ES_DB_S(c->msgid),   ES_DB_S("email"), ES_DB_I(at)};
    es_err_t werr = ES_ERR_INIT;
    /* not retried: the batch goes on, so the event is not delivered again (the claim without a
     * record only leaves the state unknown here; the NotificationSent event says it was sent) */
    if (es_db_exec(n->db,
                   "INSERT IGNORE INTO sent (event_id, kind, recipient_hash, message_id, channels, "
                   "at) VALUES (?, ?, ?, ?, ?, ?)",
                   p, 6, NULL, &werr))
        es_error("sent record of event '%s' not written: %s", c->trigger, werr.msg);
    else
        forget_claim(n, c, kname);
    rc = 0;
out:
    free(msg);
    return rc;
}

/* What one notification needs beside its notice: the stored record and order facts, the
 * opened contact, the rendered message; released by notification_release. */
struct notification {
    struct notice c;
    char key[NT_KEY_LEN], msgid[160], trace_id[ES_TRACE_ID_LEN];
    json_t *sent, *facts;
    const json_t *rec, *f; /* the record in sent (NULL: none), the order facts (may be NULL) */
    char *email, *phone;
    nt_message_t m;
};

static void notification_release(struct notification *x)
{
    nc_wipe_free(x->email);
    nc_wipe_free(x->phone);
    nt_message_release(&x->m);
    json_decref(x->facts);
    json_decref(x->sent);
}

/* Reads the record and the order facts of x (its notice filled); the customer defaults to the
 * facts'. 0, or -1 with err. */
static int load_notification(struct notifications *n, struct notification *x, const json_t *event,
                             es_err_t *err)
{
    es_db_val_t pt[] = {ES_DB_S(x->c.trigger)};
    if (!(x->sent = es_db_query(
              n->db, "SELECT recipient_hash, channels, message_id FROM sent WHERE event_id = ?", pt,
              1, err)))
        return -1;
    es_db_val_t po[] = {ES_DB_S(x->c.order)};
    if (!(x->facts = es_db_query(n->db,
                                 "SELECT customer_id, total_minor, currency FROM order_facts "
                                 "WHERE order_id = ?",
                                 po, 1, err)))
        return -1;
    x->f = json_array_get(x->facts, 0);
    x->rec = json_array_get(x->sent, 0);
    x->c.customer = dm_str(event, "customer_id");
    if (!x->c.customer || !*x->c.customer)
        x->c.customer = dm_str(x->f, "customer_id");
    return 0;
}

/* The contact of x's customer into x->email / x->phone. 1 to send, 0 when the notification ends
 * here (its NotificationSent again, or NotificationFailed, emitted), -1 with err. */
static int find_contact(struct notifications *n, struct notification *x, sb_out_t *out,
                        es_err_t *err)
{
    const struct notice *c = &x->c;
    const char *why = "unknown_customer";
    int found = 0;
    if (c->customer) {
        char purpose[128];
        snprintf(purpose, sizeof purpose, "notification %s of event %s", nt_kind_name(c->kind),
                 c->trigger);
        long long at = json_integer_value(json_object_get(c->md, "occurred_at"));
        found = nc_contact_of(n->opener, n->db, c->customer, purpose, es_wall_ms() - at,
                              n->contact_wait_ms, &x->email, &x->phone, &why, err);
        if (found < 0)
            return -1;
    }
    /* recorded already, and no SMS left to try: only its NotificationSent again */
    if (found && !(x->rec && !x->phone))
        return 1;
    if (x->rec)
        emit_recorded(out, c->trigger, c->order, c->customer, c->kind, x->rec);
    else
        emit_failed(out, c->trigger, c->order, c->customer, c->kind, why);
    return 0;
}

static void render(struct notification *x, const json_t *event)
{
    const json_t *total = json_object_get(event, "total_minor");
    if (!json_is_integer(total))
        total = json_object_get(x->f, "total_minor");
    const char *currency = dm_str(event, "currency");
    nt_facts_t facts = {
        .order_id = x->c.order,
        .total_minor = json_is_integer(total) ? json_integer_value(total) : -1,
        .currency = currency ? currency : dm_str(x->f, "currency"),
        .tracking_number = dm_str(event, "tracking_number"),
        .reason = dm_str(event, "reason"),
    };
    nt_render(x->c.kind, &facts, &x->m);
}

/* Texts x's phone when there is one and a webhook; returns the channels notified. */
static const char *text_phone(struct notifications *n, const struct notification *x)
{
    if (!x->phone || !n->sms_url)
        return "email";
    es_err_t merr = ES_ERR_INIT;
    if (sms_send(n, x->phone, x->m.sms, x->key, &merr) != 0) {
        es_warn("sms for order '%s' not sent: %s", x->c.order, merr.msg);
        return "email";
    }
    es_db_val_t pc[] = {ES_DB_S("email,sms"), ES_DB_S(x->c.trigger)};
    if (es_db_exec(n->db, "UPDATE sent SET channels = ? WHERE event_id = ?", pc, 2, NULL, &merr))
        es_warn("sms record of event '%s' not written: %s", x->c.trigger, merr.msg);
    return "email,sms";
}

/* Mails (unless recorded) and texts x, then emits NotificationSent. 0, or -1 with err. */
static int deliver(struct notifications *n, struct notification *x, sb_out_t *out, es_err_t *err)
{
    const struct notice *c = &x->c;
    char hash[65] = "";
    if (x->rec) {
        snprintf(hash, sizeof hash, "%s", dm_str(x->rec, "recipient_hash"));
    } else {
        int mrc = mail_once(n, c, x->email, &x->m, hash, out, err);
        if (mrc != 0)
            return mrc < 0 ? -1 : 0;
    }
    const char *channels = text_phone(n, x);
    const char *kname = nt_kind_name(c->kind);
    const char *sent_id = x->rec ? dm_str(x->rec, "message_id") : x->msgid; /* as it was mailed */
    es_log_kv(
        ES_LOG_INFO, c->trace_id[0] ? c->trace_id : NULL,
        ES_F("order_id", c->order, "kind", kname, "message_id", sent_id, "event_id", c->trigger),
        "notification '%s' for order '%s' sent (%s)", kname, c->order, channels);
    emit_sent(out, c->trigger, c->order, c->customer, c->kind, channels, hash, sent_id);
    return 0;
}

/* One notification (see the top of this file). Per (event, template): a record in `sent` means
 * the e-mail was accepted, and it is never sent again; a claim without a record is ambiguous (a
 * crash or a failure after the claim: the server may have accepted the message) and the e-mail
 * is sent again with the same Message-ID, counted as a resend. */
static int notify(struct notifications *n, struct notification *x, const json_t *event,
                  sb_out_t *out, es_err_t *err)
{
    if (load_notification(n, x, event, err))
        return -1;
    /* recorded before a crash or an aborted batch: the e-mail is never sent again; only an SMS
     * that may not have gone out yet is tried again (the webhook dedupes by its key) */
    if (x->rec && (!n->sms_url || strstr(dm_str(x->rec, "channels"), "sms"))) {
        emit_recorded(out, x->c.trigger, x->c.order, x->c.customer, x->c.kind, x->rec);
        return 0;
    }
    int found = find_contact(n, x, out, err);
    if (found <= 0)
        return found;
    render(x, event);
    return deliver(n, x, out, err);
}

static int notifications_handle(void *state, const char *event_type, const json_t *event,
                                const char *traceparent, sb_out_t *out, es_err_t *err)
{
    struct notifications *n = state;
    int contact = nc_apply(n->db, event_type, event, err); /* users.events: the contacts */
    if (contact != 0)
        return contact < 0 ? -1 : 0;
    const char *short_type = strrchr(event_type, '.') ? strrchr(event_type, '.') + 1 : event_type;
    if (!strcmp(short_type, "OrderPlaced"))
        return remember_order(n, event, err);
    nt_kind_t kind = nt_kind_of(event_type, event);
    if (kind == NT_NONE)
        return 0;
    struct notification x = {.c = {.kind = kind}};
    x.c.md = json_object_get(event, "metadata");
    x.c.trigger = dm_str(x.c.md, "event_id");
    x.c.order = dm_str(event, "order_id");
    if (!x.c.trigger || !x.c.order) {
        sb_out_dead_letter(out, "notifying event without metadata.event_id or order_id");
        return 0;
    }
    nt_notification_key(x.c.trigger, kind, x.key);
    nt_message_id(x.key, x.msgid, sizeof x.msgid);
    es_trace_id(traceparent, x.trace_id);
    x.c.msgid = x.msgid;
    x.c.trace_id = x.trace_id;
    int rc = notify(n, &x, event, out, err);
    notification_release(&x);
    return rc;
}

/* Between batches: keeps readiness true to MariaDB while no event comes (es_db_check pings once
 * every NOTIFY_DB_CHECK_MS of idleness, and reconnects when the backoff allows). */
static int notifications_tick(void *state, long long now_ms, sb_out_t *out, es_err_t *err)
{
    struct notifications *n = state;
    (void)now_ms;
    (void)out;
    (void)err;
    es_err_t e = ES_ERR_INIT;
    es_db_check(n->db, NOTIFY_DB_CHECK_MS, &e); /* es_db logs the loss and the return */
    return 0;
}

/* users.events: the contacts (notify_contacts.h), from the beginning on the first start */
static const char *const notifications_topics[] = {"orders.events", "payments.events",
                                                   "shipping.events", "users.events", NULL};

const sb_subscriber_t sb_notifications = {
    .name = "notifications",
    .topics = notifications_topics,
    .init = notifications_init,
    .release = notifications_release,
    .handle = notifications_handle,
    .tick = notifications_tick,
};
