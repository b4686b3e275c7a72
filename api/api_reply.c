#include "api_reply.h"
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* {"field": field}, the extension member naming the input at fault, or NULL when none */
static json_t *field_member(const char *field)
{
    char clean[256];
    if (!field || !*field)
        return NULL;
    return json_pack("{s:s}", "field", es_http_utf8_clean(field, clean, sizeof clean));
}

/* es_http's problem body with the detail always present */
json_t *api_problem_new(int status, const char *type, const char *field, const char *detail)
{
    return es_http_problem_new(status, type, NULL, detail ? detail : "", field_member(field));
}

void api_reply_problem(es_http_req_t *r, int status, const char *type, const char *field,
                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    es_http_reply_problemv(r, status, type, NULL, field_member(field), fmt, ap);
    va_end(ap);
}

void api_reply_verr(es_http_req_t *r, const struct api_verr *e)
{
    int status = e->status ? e->status : 400;
    es_http_reply_problem_json(r, status, api_problem_new(status, NULL, e->field, e->msg));
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
        es_http_reply_problem_json(r, a->status, a->body);
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

/* Whether the If-None-Match list value names etag (weak tags compare weakly, RFC 9110 13.1.2). */
static bool none_match_names(const char *list, const char *etag)
{
    size_t n = strlen(etag);
    for (const char *s = list; *s;) {
        s += strspn(s, " \t,");
        if (*s == '*')
            return true;
        if (!strncmp(s, "W/", 2))
            s += 2;
        if (!strncmp(s, etag, n) && (s[n] == 0 || s[n] == ',' || s[n] == ' ' || s[n] == '\t'))
            return true;
        s += strcspn(s, ",");
    }
    return false;
}

bool api_if_none_match(es_http_req_t *r, const char *etag)
{
    char *inm = es_http_header_dup(r, "If-None-Match");
    bool same = inm && none_match_names(inm, etag);
    free(inm);
    return same;
}

void api_reply_versioned(es_http_req_t *r, long long version, json_t *body)
{
    char etag[32];
    snprintf(etag, sizeof etag, "\"%lld\"", version);
    es_http_add_header(r, "ETag", etag);
    if (api_if_none_match(r, etag)) {
        json_decref(body);
        es_http_reply(r, 304, NULL, NULL, 0);
        return;
    }
    es_http_reply_json(r, 200, body);
}
