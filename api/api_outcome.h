/* api_outcome — a command's outcome (from a CommandResult on <ctx>.results) and how it is told
 * to a client: the one table from rejection reason to HTTP status, and the answer's status, body
 * and headers. Pure: no I/O. */
#ifndef API_OUTCOME_H
#define API_OUTCOME_H

#include "es_uuid.h"
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct api_outcome {
    char command_id[ES_UUID_LEN];
    char command_type[96]; /* full record name, e.g. "eventshop.catalog.ListProduct" */
    char aggregate_id[72]; /* the sku for catalog, inventory and pricing */
    bool accepted;
    char reason[64];  /* rejected: stable code, e.g. "not_owner" */
    char detail[256]; /* rejected: human-readable, maybe truncated */
    int64_t version;  /* aggregate version after the command */
    int32_t partition;
    int64_t offset;  /* last event written, -1 if none */
    char actor[128]; /* who sent the command (its metadata's actor); "" if the result lacks it */
};

/* What a creating command creates, named in its answers: the body key (e.g. "order_id"), the id
 * and the resource's URL; a command that creates nothing passes none (NULL). */
struct api_created {
    char key[16];
    char id[72];
    char location[256];
};

/* An answer ready to send. body is owned by the struct until handed on (es_http_complete steals
 * it); headers holds name/value pairs ending in NULL, pointing into the struct's buffers. */
struct api_answer {
    int status;
    json_t *body;
    bool problem;
    char location[256];
    char link[300];
    char etag[32];
    const char *headers[9];
};

/* HTTP status for a rejection reason, from the one table in api_outcome.c (a new context adds
 * its reason codes there): unknown_sku 404, not_owner 403, already_listed 409, delisted 409,
 * invalid_field 422, version_conflict 412, insufficient_stock 409, unknown_reservation 404,
 * invalid_quantity 422, email_taken 409, ...; anything else 422. */
int api_reason_status(const char *reason);

/* The body key naming a command's aggregate id, from its full command type's context: "sku" for
 * catalog, inventory, pricing; "user_id" for users; else "aggregate_id". Borrowed, static. */
const char *api_aggregate_key(const char *command_type);

/* Fills o from a decoded CommandResult (borrowed). Returns 0, or -1 if a field is missing. */
int api_outcome_from_result(const json_t *result, struct api_outcome *o);

/* The answer for a known outcome: accepted -> 201 with Location created_location when that is
 * not NULL (a command that creates a resource), else 200; body {command_id, status,
 * <aggregate key>, aggregate_version, position} and ETag; rejected -> a problem of type
 * "urn:eventshop:problem:<reason>" with the table's status, detail and the aggregate key. */
void api_answer_outcome(struct api_answer *a, const struct api_outcome *o,
                        const char *created_location);
/* 202 {command_id, status: "pending"} with Location /v1/commands/{id}; for a creating command
 * (created not NULL) the body also names what it creates (e.g. "order_id": id) and a header
 * Link: <created->location>; rel="related" points at it. */
void api_answer_pending(struct api_answer *a, const char *command_id,
                        const struct api_created *created);
/* Fills c for a command of command_type on aggregate_id creating the resource at location:
 * key from api_aggregate_key. */
void api_created_init(struct api_created *c, const char *command_type, const char *aggregate_id,
                      const char *location);
/* Adds one more header pair (borrowed strings that must outlive the send). */
void api_answer_add_header(struct api_answer *a, const char *name, const char *value);

#endif
