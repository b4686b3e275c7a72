#include "carrier.h"
#include "es_mem.h"
#include "es_strbuf.h"
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#define BODY_MAX (64 * 1024)

struct carrier {
    char *base;
    long timeout_ms;
    CURL *curl;
};

struct buf {
    struct es_strbuf body;
    bool too_big;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct buf *b = arg;
    size_t add = size * n;
    if (b->body.len + add > BODY_MAX) {
        b->too_big = true;
        return 0;
    }
    es_strbuf_add(&b->body, p, add);
    return add;
}

carrier_t *carrier_http_new(const char *base_url, long timeout_ms, es_err_t *err)
{
    if (!base_url || !*base_url) {
        es_set(err, ES_EINVAL, "carrier url is empty (EVENTSHOP_CARRIER_URL)");
        return NULL;
    }
    carrier_t *c = xcalloc(1, sizeof *c);
    c->base = xstrdup(base_url);
    size_t n = strlen(c->base);
    while (n > 0 && c->base[n - 1] == '/')
        c->base[--n] = '\0';
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
    c->curl = curl_easy_init();
    if (!c->curl) {
        es_set(err, ES_EINTERNAL, "curl_easy_init failed");
        carrier_free(c);
        return NULL;
    }
    return c;
}

void carrier_free(carrier_t *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    free(c->base);
    free(c);
}

void carrier_idempotency_key(const char *order_id, char out[ES_UUID_LEN])
{
    es_uuid_derive("eventshop-shipment", order_id, out);
}

/* One request; the answer's body goes to b (owned by the caller). 0 for a 2xx. */
static int request(carrier_t *c, const char *method, const char *url, const char *body,
                   const char *idem_key, struct buf *b, es_err_t *err)
{
    struct curl_slist *hdrs = NULL;
    char line[96];
    int rc = 0;
    long status = 0;
    curl_easy_reset(c->curl);
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    if (body)
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    if (idem_key) {
        snprintf(line, sizeof line, "Idempotency-Key: %s", idem_key);
        hdrs = curl_slist_append(hdrs, line);
    }
    curl_easy_setopt(c->curl, CURLOPT_URL, url);
    curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, b);
    if (body)
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
    CURLcode cc = curl_easy_perform(c->curl);
    if (cc != CURLE_OK) {
        rc = es_set(err, ES_EIO, "carrier %s '%s': %s", method, url,
                    b->too_big ? "answer too large" : curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 500 || status == 429 || status == 409)
        rc = es_set(err, ES_EIO, "carrier %s '%s' answered %ld", method, url, status);
    else if (status < 200 || status >= 300)
        rc = es_set(err, ES_EINVAL, "carrier %s '%s' answered %ld", method, url, status);
out:
    curl_slist_free_all(hdrs);
    return rc;
}

int carrier_parse_booking(const char *body, size_t len, char tracking[CARRIER_TRACKING_MAX + 1],
                          es_err_t *err)
{
    json_t *j = body ? json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    const char *t = json_string_value(json_object_get(j, "tracking_number"));
    int rc = 0;
    if (!t || !*t || strlen(t) > CARRIER_TRACKING_MAX)
        rc = es_set(err, ES_EIO, "carrier answer has no valid 'tracking_number'");
    else
        memcpy(tracking, t, strlen(t) + 1);
    json_decref(j);
    return rc;
}

int carrier_parse_tracking(const char *body, size_t len, long long now_ms, bool *delivered,
                           long long *delivered_at, es_err_t *err)
{
    json_t *j = body ? json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    const char *status = json_string_value(json_object_get(j, "status"));
    const json_t *at = json_object_get(j, "delivered_at");
    int rc = 0;
    if (!status) {
        rc = es_set(err, ES_EIO, "carrier answer has no 'status'");
        goto out;
    }
    *delivered = !strcmp(status, "delivered");
    *delivered_at =
        json_is_integer(at) && json_integer_value(at) > 0 ? json_integer_value(at) : now_ms;
out:
    json_decref(j);
    return rc;
}

int carrier_book(carrier_t *c, const char *order_id, const json_t *parcels,
                 char tracking[CARRIER_TRACKING_MAX + 1], es_err_t *err)
{
    char key[ES_UUID_LEN];
    struct buf b = {0};
    carrier_idempotency_key(order_id, key);
    json_t *req = json_pack("{s:s, s:s, s:o}", "order_id", order_id, "reference", key, "parcels",
                            parcels ? json_incref((json_t *)parcels) : json_array());
    char *body = json_dumps(req, JSON_COMPACT);
    char *url = xasprintf("%s/shipments", c->base);
    int rc = request(c, "POST", url, body, key, &b, err);
    if (rc == 0)
        rc = carrier_parse_booking(b.body.s, b.body.len, tracking, err);
    json_decref(req);
    free(body);
    free(url);
    es_strbuf_release(&b.body);
    return rc;
}

int carrier_track(carrier_t *c, const char *tracking, long long now_ms, bool *delivered,
                  long long *delivered_at, es_err_t *err)
{
    struct buf b = {0};
    char *escaped = curl_easy_escape(c->curl, tracking, 0);
    char *url = xasprintf("%s/shipments/%s", c->base, escaped ? escaped : "");
    int rc = request(c, "GET", url, NULL, NULL, &b, err);
    if (rc == 0)
        rc = carrier_parse_tracking(b.body.s, b.body.len, now_ms, delivered, delivered_at, err);
    curl_free(escaped);
    free(url);
    es_strbuf_release(&b.body);
    return rc;
}
