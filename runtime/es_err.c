#include "es_err.h"
#include <stdarg.h>
#include <stdio.h>

int es_set(es_err_t *err, es_code_t code, const char *fmt, ...)
{
    if (!err || err->code != ES_OK)
        return -1;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

void es_clear(es_err_t *err)
{
    if (err) {
        err->code = ES_OK;
        err->msg[0] = '\0';
    }
}

const char *es_code_name(es_code_t code)
{
    static const char *const names[] = {
        [ES_OK] = "ok",
        [ES_EINVAL] = "invalid",
        [ES_ENOTFOUND] = "not_found",
        [ES_ECONFLICT] = "conflict",
        [ES_EFORBIDDEN] = "forbidden",
        [ES_EUNAUTH] = "unauthorized",
        [ES_ETOOLARGE] = "too_large",
        [ES_EIO] = "unavailable",
        [ES_ETIMEOUT] = "timeout",
        [ES_EFATAL] = "fatal",
        [ES_EINTERNAL] = "internal",
    };
    if ((unsigned)code >= sizeof names / sizeof names[0])
        return "internal";
    return names[code];
}
