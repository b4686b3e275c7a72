#include "api_reply.h"
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *reason_phrase(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 409:
        return "Conflict";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return status >= 500 ? "Internal Server Error" : "Error";
    }
}

/* Copies s into out (cap bytes) with every byte that does not start a valid UTF-8 sequence
 * replaced by '?': a detail quotes client input (a path segment may decode to any bytes) and
 * "%.64s" may cut a character in two, while jansson refuses a string that is not UTF-8. */
static const char *utf8_clean(const char *s, char *out, size_t cap)
{
    static const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p && o + 1 < cap) {
        size_t n = *p < 0x80             ? 1
                   : (*p & 0xe0) == 0xc0 ? 2
                   : (*p & 0xf0) == 0xe0 ? 3
                   : (*p & 0xf8) == 0xf0 ? 4
                                         : 0;
        uint32_t cp = n == 1 ? *p : n ? (uint32_t)(*p & (0x7f >> n)) : 0;
        size_t i = 1;
        for (; n > 1 && i < n && (p[i] & 0xc0) == 0x80; i++)
            cp = (cp << 6) | (p[i] & 0x3f);
        bool ok = n && i == n && cp >= min_cp[n] && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff);
        if (!ok || o + n >= cap) {
            out[o++] = '?';
            p++;
            continue;
        }
        memcpy(out + o, p, n);
        o += n;
        p += n;
    }
    out[o] = '\0';
    return out;
}

json_t *api_problem_new(int status, const char *type, const char *field, const char *detail)
{
    char clean[1024];
    json_t *o = json_pack("{s:s, s:s, s:i, s:s}", "type", type ? type : "about:blank", "title",
                          reason_phrase(status), "status", status, "detail",
                          utf8_clean(detail, clean, sizeof clean));
    if (field && *field)
        json_object_set_new(o, "field", json_string(utf8_clean(field, clean, sizeof clean)));
    return o;
}

static void reply_body(es_http_req_t *r, int status, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    es_http_reply(r, status, "application/problem+json", s, strlen(s));
    free(s);
}

void api_reply_problem(es_http_req_t *r, int status, const char *type, const char *field,
                       const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    reply_body(r, status, api_problem_new(status, type, field, detail));
}

void api_reply_verr(es_http_req_t *r, const struct api_verr *e)
{
    int status = e->status ? e->status : 400;
    reply_body(r, status, api_problem_new(status, NULL, e->field, e->msg));
}

static const struct {
    es_code_t code;
    int status;
} code_table[] = {
    {ES_EINVAL, 400},  {ES_ENOTFOUND, 404}, {ES_ECONFLICT, 409}, {ES_EFORBIDDEN, 403},
    {ES_EUNAUTH, 401}, {ES_ETOOLARGE, 413}, {ES_EIO, 503},       {ES_ETIMEOUT, 504},
};

int api_err_status(es_code_t code)
{
    for (size_t i = 0; i < sizeof code_table / sizeof *code_table; i++)
        if (code_table[i].code == code)
            return code_table[i].status;
    return 500;
}

void api_reply_err(es_http_req_t *r, const es_err_t *err)
{
    int status = api_err_status(err->code);
    /* a 5xx does not leak internals beyond the message, which never holds a secret */
    api_reply_problem(r, status, NULL, NULL, "%s", err->msg[0] ? err->msg : "internal error");
}

void api_reply_answer(es_http_req_t *r, struct api_answer *a)
{
    for (size_t i = 0; a->headers[i]; i += 2)
        es_http_add_header(r, a->headers[i], a->headers[i + 1]);
    if (a->problem) {
        reply_body(r, a->status, a->body);
    } else {
        es_http_reply_json(r, a->status, a->body);
    }
    a->body = NULL;
}

void api_complete_answer(es_http_pending_t *p, struct api_answer *a)
{
    es_http_complete(p, a->status, a->body, a->problem, a->headers);
    a->body = NULL;
}
