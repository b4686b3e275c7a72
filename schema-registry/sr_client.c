/* sr_client — Confluent Schema Registry REST client over libcurl (see sr_client.h). */
#include "sr_client.h"

#include "es_mem.h"
#include "es_strbuf.h"
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SR_TIMEOUT_MS   5000L
#define SR_MAX_BODY     (8u << 20) /* a registry answer larger than this is refused */
#define SR_CONTENT_TYPE "application/vnd.schemaregistry.v1+json"

struct sr_client {
    char *base_url; /* without trailing slash */
};

typedef struct sr_buf {
    struct es_strbuf body;
    bool too_large;
} sr_buf_t;

static pthread_once_t sr_curl_once = PTHREAD_ONCE_INIT;

static void sr_curl_init(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
}

sr_client_t *sr_client_new(const char *base_url, es_err_t *err)
{
    if (!base_url || !*base_url) {
        es_set(err, ES_EINVAL, "empty schema registry url");
        return NULL;
    }
    if (strncmp(base_url, "http://", 7) != 0 && strncmp(base_url, "https://", 8) != 0) {
        es_set(err, ES_EINVAL, "schema registry url '%s' is not http(s)", base_url);
        return NULL;
    }
    pthread_once(&sr_curl_once, sr_curl_init);
    sr_client_t *sr = xcalloc(1, sizeof(*sr));
    sr->base_url = xstrdup(base_url);
    size_t n = strlen(sr->base_url);
    while (n > 0 && sr->base_url[n - 1] == '/')
        sr->base_url[--n] = '\0';
    return sr;
}

void sr_client_free(sr_client_t *sr)
{
    if (!sr)
        return;
    free(sr->base_url);
    free(sr);
}

static size_t sr_write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    sr_buf_t *b = userdata;
    size_t n = size * nmemb;
    if (b->body.len + n > SR_MAX_BODY) {
        b->too_large = true;
        return 0;
    }
    es_strbuf_add(&b->body, ptr, n);
    return n;
}

/* The registry's own message from an error body {"error_code": n, "message": "..."}, or the
 * raw body, as a new string. */
static char *sr_error_message(const sr_buf_t *b)
{
    if (!b->body.s)
        return xstrdup("(empty body)");
    json_t *j = json_loadb(b->body.s, b->body.len, 0, NULL);
    const char *m = j ? json_string_value(json_object_get(j, "message")) : NULL;
    char *out = m ? xstrdup(m) : xstrndup(b->body.s, b->body.len > 200 ? 200 : b->body.len);
    json_decref(j);
    return out;
}

/* One HTTP exchange. body may be NULL (GET). On success (transport ok) returns 0 with *status
 * and *resp (owned by the caller, data may be NULL); transport failures set ES_EIO. */
static int sr_http(sr_client_t *sr, const char *path, const char *body, long *status,
                   sr_buf_t *resp, es_err_t *err)
{
    int rc = -1;
    char *url = xasprintf("%s%s", sr->base_url, path);
    struct curl_slist *hdrs = NULL;
    CURL *h = curl_easy_init();
    if (!h) {
        es_set(err, ES_EIO, "curl_easy_init failed");
        goto out;
    }
    hdrs = curl_slist_append(hdrs, "Content-Type: " SR_CONTENT_TYPE);
    hdrs = curl_slist_append(hdrs, "Accept: " SR_CONTENT_TYPE ", application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, SR_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, SR_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sr_write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        if (resp->too_large)
            es_set(err, ES_EIO, "schema registry answer to '%s' is over %u bytes", path,
                   SR_MAX_BODY);
        else
            es_set(err, ES_EIO, "schema registry '%s': %s", url, curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    rc = 0;
out:
    curl_slist_free_all(hdrs);
    if (h)
        curl_easy_cleanup(h);
    free(url);
    return rc;
}

int sr_client_register(sr_client_t *sr, const char *subject, const char *schema_json, int32_t *id,
                       es_err_t *err)
{
    int rc = -1;
    sr_buf_t resp = {0};
    char *path = NULL, *body = NULL, *esc = NULL;
    json_t *req = NULL, *ans = NULL;
    long status = 0;

    esc = curl_easy_escape(NULL, subject, 0);
    if (!esc) {
        es_set(err, ES_EINTERNAL, "cannot url-encode subject '%s'", subject);
        goto out;
    }
    path = xasprintf("/subjects/%s/versions", esc);
    req = json_pack("{s:s}", "schema", schema_json);
    if (!req) {
        es_set(err, ES_EINVAL, "schema for subject '%s' is not valid utf-8", subject);
        goto out;
    }
    body = json_dumps(req, JSON_COMPACT);
    if (sr_http(sr, path, body, &status, &resp, err) < 0)
        goto out;
    if (status != 200) {
        char *m = sr_error_message(&resp);
        es_code_t code = status == 409   ? ES_ECONFLICT
                         : status == 422 ? ES_EINVAL
                         : status == 404 ? ES_ENOTFOUND
                                         : ES_EIO;
        es_set(err, code, "registering subject '%s': http %ld: %s", subject, status, m);
        free(m);
        goto out;
    }
    ans = resp.body.s ? json_loadb(resp.body.s, resp.body.len, 0, NULL) : NULL;
    json_t *jid = json_object_get(ans, "id");
    if (!json_is_integer(jid) || json_integer_value(jid) < 0 ||
        json_integer_value(jid) > INT32_MAX) {
        es_set(err, ES_EIO, "registering subject '%s': answer has no valid id", subject);
        goto out;
    }
    *id = (int32_t)json_integer_value(jid);
    rc = 0;
out:
    curl_free(esc);
    json_decref(req);
    json_decref(ans);
    free(body);
    free(path);
    es_strbuf_release(&resp.body);
    return rc;
}

char *sr_client_get_schema(sr_client_t *sr, int32_t id, es_err_t *err)
{
    char *out = NULL;
    sr_buf_t resp = {0};
    json_t *ans = NULL;
    long status = 0;
    char *path = xasprintf("/schemas/ids/%d", (int)id);

    if (sr_http(sr, path, NULL, &status, &resp, err) < 0)
        goto out;
    if (status != 200) {
        char *m = sr_error_message(&resp);
        es_set(err, status == 404 ? ES_ENOTFOUND : ES_EIO, "schema id %d: http %ld: %s", (int)id,
               status, m);
        free(m);
        goto out;
    }
    ans = resp.body.s ? json_loadb(resp.body.s, resp.body.len, 0, NULL) : NULL;
    const char *s = json_string_value(json_object_get(ans, "schema"));
    if (!s) {
        es_set(err, ES_EIO, "schema id %d: answer has no schema", (int)id);
        goto out;
    }
    out = xstrdup(s);
out:
    json_decref(ans);
    free(path);
    es_strbuf_release(&resp.body);
    return out;
}
