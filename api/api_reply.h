/* api_reply — every error answer of the API is application/problem+json, built here: from an
 * input check (api_verr), from an es_err code (the one code -> status table) or from an
 * outcome (api_answer). */
#ifndef API_REPLY_H
#define API_REPLY_H

#include "api_outcome.h"
#include "api_validate.h"
#include "es_err.h"
#include "es_http.h"

/* {type, title, status, detail[, field]}; type "about:blank" when NULL, title the status's
 * reason phrase; field omitted when NULL or "". */
void api_reply_problem(es_http_req_t *r, int status, const char *type, const char *field,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The same body, new reference, for es_http_complete. */
json_t *api_problem_new(int status, const char *type, const char *field, const char *detail);
void api_reply_verr(es_http_req_t *r, const struct api_verr *e);
/* Status for an es_err code: EINVAL 400, ENOTFOUND 404, ECONFLICT 409, EFORBIDDEN 403,
 * EUNAUTH 401, ETOOLARGE 413, EIO 503, ETIMEOUT 504, others 500. */
int api_err_status(es_code_t code);
void api_reply_err(es_http_req_t *r, const es_err_t *err);
/* Sends a (stolen body of a) ready answer now, or later through p. */
void api_reply_answer(es_http_req_t *r, struct api_answer *a);
void api_complete_answer(es_http_pending_t *p, struct api_answer *a);
/* Answers body (stolen), the representation of one aggregate at version, with ETag "<version>";
 * 304 without a body when the request's If-None-Match names that tag (or is "*"). Only for
 * answers that version alone determines (a product, a stock level): not a price, which rules and
 * time change, nor an order, which shows other contexts' states. */
void api_reply_versioned(es_http_req_t *r, long long version, json_t *body);
/* Whether the request's If-None-Match names etag (a quoted tag; weak tags compare weakly) or is
 * "*". */
bool api_if_none_match(es_http_req_t *r, const char *etag);

#endif
