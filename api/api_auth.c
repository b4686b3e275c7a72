/* Authentication and authorization in front of every route: the bearer token (verified by
 * jwt.h) gives the principal; the route table's roles decide. */
#include "api_app.h"
#include "api_reply.h"
#include "api_stream.h"
#include "jwt.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the only place that knows jwt.h's names ---- */

void *api_auth_new(es_err_t *err)
{
    return api_jwt_new_from_env(API_JWT_VERIFY, err);
}

void api_auth_free(void *verifier)
{
    api_jwt_free(verifier);
}

/* Fills who from a verified token; -1 with err (ES_EUNAUTH) for a bad one. */
static int verify_token(void *verifier, const char *token, struct api_principal *who, es_err_t *err)
{
    struct api_jwt_principal p;
    if (api_jwt_verify(verifier, token, 0, &p, err))
        return -1;
    snprintf(who->sub, sizeof who->sub, "%s", p.sub);
    snprintf(who->role, sizeof who->role, "%s", p.role);
    snprintf(who->vendor_id, sizeof who->vendor_id, "%s", p.vendor_id);
    who->exp = p.exp;
    return 0;
}

/* ---- dispatch ---- */

static unsigned role_bit(const char *role)
{
    if (!strcmp(role, "admin"))
        return API_ADMIN;
    if (!strcmp(role, "vendor"))
        return API_VENDOR;
    if (!strcmp(role, "customer"))
        return API_CUSTOMER;
    return 0;
}

static void reply_unauthorized(es_http_req_t *r, const char *why)
{
    es_http_add_header(r, "WWW-Authenticate", "Bearer");
    api_reply_problem(r, 401, NULL, NULL, "%s", why);
}

void api_dispatch(es_http_req_t *r)
{
    const struct api_route *route = es_http_route_data(r);
    struct api_app *app = es_http_app(r);
    struct api_principal who;
    memset(&who, 0, sizeof who);
    if (route->roles == API_PUBLIC) {
        route->fn(r, &who);
        return;
    }
    char *auth = es_http_header_dup(r, "Authorization");
    const char *token = api_jwt_bearer(auth);
    char *ticket = (route->roles & API_TICKET) && !auth ? es_http_query_dup(r, "ticket") : NULL;
    if (ticket) {
        /* a browser's EventSource cannot send Authorization: a single-use ticket instead */
        if (api_stream_ticket_redeem(app->tickets, ticket, &who) != 0) {
            reply_unauthorized(r, "the stream ticket is unknown, used or expired");
            goto out;
        }
    } else if (!token || !*token) {
        reply_unauthorized(r, "a bearer token is required");
        goto out;
    }
    es_err_t err = ES_ERR_INIT;
    if (!ticket && verify_token(app->verifier, token, &who, &err)) {
        /* the reason stays in the message; the token itself is never logged */
        reply_unauthorized(r, err.msg[0] ? err.msg : "invalid token");
        goto out;
    }
    if (!(role_bit(who.role) & route->roles)) {
        api_reply_problem(r, 403, NULL, NULL, "role '%s' may not %s %s", who.role,
                          es_http_method(r), route->pattern);
        goto out;
    }
    route->fn(r, &who);
out:
    free(ticket);
    free(auth);
}
