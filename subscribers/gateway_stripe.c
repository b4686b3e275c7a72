/* The Stripe-compatible gateway client: PaymentIntents and Refunds over HTTPS with libcurl. */
#include "es_mem.h"
#include "es_strbuf.h"
#include "gateway.h"
#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BODY_MAX (1u << 20) /* a gateway answer bigger than this is broken */

struct stripe {
    CURL *curl; /* reused: keeps the connection alive */
    char *base_url;
    char *auth_header; /* "Authorization: Bearer <key>": a secret, never logged */
    long timeout_ms;
};

/* ---- form bodies */

/* application/x-www-form-urlencoded: unreserved characters stay, the rest is %XX */
static void buf_add_escaped(struct es_strbuf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            es_strbuf_addc(b, (char)c);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            es_strbuf_add(b, e, 3);
        }
    }
}

static void form_add(struct es_strbuf *b, const char *key, const char *value)
{
    if (b->len)
        es_strbuf_addc(b, '&');
    buf_add_escaped(b, key);
    es_strbuf_addc(b, '=');
    buf_add_escaped(b, value);
}

char *gateway_stripe_charge_form(const gateway_charge_t *c)
{
    struct es_strbuf b = ES_STRBUF_INIT;
    char amount[32], currency[8] = "";
    snprintf(amount, sizeof amount, "%lld", c->amount_minor);
    for (size_t i = 0; c->currency && c->currency[i] && i < sizeof currency - 1; i++)
        currency[i] = (char)tolower((unsigned char)c->currency[i]);
    form_add(&b, "amount", amount);
    form_add(&b, "currency", currency);
    form_add(&b, "confirm", "true");
    form_add(&b, "payment_method", c->payment_method ? c->payment_method : "");
    form_add(&b, "payment_method_types[0]", "card");
    form_add(&b, "metadata[order_id]", c->order_id ? c->order_id : "");
    form_add(&b, "metadata[customer_id]", c->customer_id ? c->customer_id : "");
    return es_strbuf_take(&b, NULL);
}

char *gateway_stripe_refund_form(const char *order_id, const char *ref)
{
    struct es_strbuf b = ES_STRBUF_INIT;
    form_add(&b, "payment_intent", ref ? ref : "");
    form_add(&b, "metadata[order_id]", order_id ? order_id : "");
    return es_strbuf_take(&b, NULL);
}

/* ---- answers */

static void copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static const char *jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* A payment intent's status to an outcome (Stripe's PaymentIntent lifecycle). */
static void parse_intent(const json_t *pi, gateway_result_t *res)
{
    const char *status = jstr(pi, "status");
    copy(res->ref, sizeof res->ref, jstr(pi, "id"));
    copy(res->status, sizeof res->status, status);
    if (!status) {
        res->outcome = GATEWAY_FAILED;
        copy(res->reason, sizeof res->reason, "payment intent without a status");
    } else if (!strcmp(status, "succeeded") || !strcmp(status, "requires_capture")) {
        res->outcome = GATEWAY_OK;
    } else if (!strcmp(status, "processing")) {
        res->outcome = GATEWAY_RETRY; /* asking again (same key) later gives the final answer */
        copy(res->reason, sizeof res->reason, "processing");
    } else {
        /* requires_payment_method (declined), requires_action (3-D Secure, impossible without
         * the customer), canceled: nothing was charged */
        const json_t *last = json_object_get(pi, "last_payment_error");
        const char *why = jstr(last, "decline_code") ?: jstr(last, "code");
        if (!why)
            why = !strcmp(status, "requires_action") ? "authentication_required" : status;
        res->outcome = GATEWAY_DECLINED;
        copy(res->reason, sizeof res->reason, why);
    }
}

void gateway_stripe_parse(int http_status, const char *body, size_t len, gateway_result_t *res)
{
    memset(res, 0, sizeof *res);
    res->http_status = http_status;
    json_t *j = body && len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    const json_t *error = json_object_get(j, "error");
    if (http_status == 0 || http_status >= 500 || http_status == 409 || http_status == 429) {
        /* no answer, the gateway's fault, a concurrent request with the same key, or rate
         * limited: the same request may succeed later */
        res->outcome = GATEWAY_RETRY;
        copy(res->reason, sizeof res->reason,
             jstr(error, "message") ?: (http_status ? "gateway error" : "no answer"));
    } else if (http_status >= 200 && http_status < 300 && json_is_object(j)) {
        const char *object = jstr(j, "object");
        if (object && !strcmp(object, "refund")) {
            const char *status = jstr(j, "status");
            copy(res->ref, sizeof res->ref, jstr(j, "id"));
            copy(res->status, sizeof res->status, status);
            bool ok = status && (!strcmp(status, "succeeded") || !strcmp(status, "pending"));
            res->outcome = ok ? GATEWAY_OK : GATEWAY_FAILED;
            if (!ok)
                copy(res->reason, sizeof res->reason, jstr(j, "failure_reason") ?: status);
        } else {
            parse_intent(j, res);
        }
    } else if (http_status == 402 && json_is_object(error)) {
        /* a card error: declined, with the intent it left behind */
        res->outcome = GATEWAY_DECLINED;
        copy(res->reason, sizeof res->reason,
             jstr(error, "decline_code") ?: jstr(error, "code") ?: "card_declined");
        const json_t *pi = json_object_get(error, "payment_intent");
        copy(res->ref, sizeof res->ref, jstr(pi, "id"));
        copy(res->status, sizeof res->status, jstr(pi, "status"));
    } else {
        res->outcome = GATEWAY_FAILED;
        if (http_status >= 200 && http_status < 300)
            copy(res->reason, sizeof res->reason, "answer is not a JSON object");
        else
            snprintf(res->reason, sizeof res->reason, "http %d: %.200s", http_status,
                     jstr(error, "message") ?: "no error message");
    }
    json_decref(j);
}

/* ---- HTTP */

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct es_strbuf *b = arg;
    if (b->len + size * n > BODY_MAX)
        return 0; /* aborts the transfer */
    es_strbuf_add(b, data, size * n);
    return size * n;
}

/* POSTs form to path with key; fills res. Transport failures are GATEWAY_RETRY answers. */
static int post(struct stripe *s, const char *path, const char *form, const char *key,
                gateway_result_t *res, es_err_t *err)
{
    (void)err;
    char *url = xasprintf("%s%s", s->base_url, path);
    char *idem = xasprintf("Idempotency-Key: %s", key);
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, s->auth_header);
    h = curl_slist_append(h, idem);
    h = curl_slist_append(h, "Content-Type: application/x-www-form-urlencoded");
    h = curl_slist_append(h, "Expect:");
    struct es_strbuf body = ES_STRBUF_INIT;
    CURL *c = s->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, s->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, s->timeout_ms < 5000 ? s->timeout_ms : 5000);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "eventshop-payments/1");
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    gateway_stripe_parse((int)status, body.s, body.len, res);
    if (rc != CURLE_OK)
        snprintf(res->reason, sizeof res->reason, "%s", curl_easy_strerror(rc));
    es_strbuf_release(&body);
    curl_slist_free_all(h);
    free(idem);
    free(url);
    return 0;
}

static int stripe_create(void *impl, const gateway_charge_t *c, const char *key,
                         gateway_result_t *res, es_err_t *err)
{
    char *form = gateway_stripe_charge_form(c);
    int rc = post(impl, "/v1/payment_intents", form, key, res, err);
    free(form);
    return rc;
}

static int stripe_capture(void *impl, const char *ref, const char *key, gateway_result_t *res,
                          es_err_t *err)
{
    struct stripe *s = impl;
    char *esc = curl_easy_escape(s->curl, ref, 0);
    char *path = xasprintf("/v1/payment_intents/%s/capture", esc);
    curl_free(esc);
    int rc = post(s, path, "", key, res, err);
    free(path);
    return rc;
}

static int stripe_refund(void *impl, const char *order_id, const char *ref, const char *key,
                         gateway_result_t *res, es_err_t *err)
{
    char *form = gateway_stripe_refund_form(order_id, ref);
    int rc = post(impl, "/v1/refunds", form, key, res, err);
    free(form);
    return rc;
}

static void stripe_free(void *impl)
{
    struct stripe *s = impl;
    if (!s)
        return;
    curl_easy_cleanup(s->curl);
    if (s->auth_header) /* wipe the key before giving the memory back */
        memset(s->auth_header, 0, strlen(s->auth_header));
    free(s->auth_header);
    free(s->base_url);
    free(s);
}

static const gateway_ops_t stripe_ops = {
    .create = stripe_create,
    .capture = stripe_capture,
    .refund = stripe_refund,
    .free = stripe_free,
};

gateway_t *gateway_stripe_new(const gateway_stripe_config_t *cfg, const gateway_retry_t *retry,
                              es_err_t *err)
{
    if (!cfg->base_url || !*cfg->base_url) {
        es_set(err, ES_EINVAL, "payment gateway url is empty");
        return NULL;
    }
    if (!cfg->secret_key || !*cfg->secret_key || strpbrk(cfg->secret_key, "\r\n")) {
        es_set(err, ES_EINVAL, "payment gateway secret key is empty or not one line");
        return NULL;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct stripe *s = xcalloc(1, sizeof *s);
    s->curl = curl_easy_init();
    if (!s->curl) {
        free(s);
        es_set(err, ES_EIO, "curl_easy_init failed");
        return NULL;
    }
    size_t n = strlen(cfg->base_url);
    while (n && cfg->base_url[n - 1] == '/')
        n--;
    s->base_url = xstrndup(cfg->base_url, n);
    s->auth_header = xasprintf("Authorization: Bearer %s", cfg->secret_key);
    s->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 10000;
    return gateway_new(&stripe_ops, s, retry);
}
