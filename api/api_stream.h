/* api_stream — GET /v1/stream (Server-Sent Events) and POST /v1/stream/tickets (internal to api/).
 *
 * A stream delivers the committed events of the contexts it covers (?context=, default every
 * served context the principal may read) from ?from= (earliest, now, or positions
 * "<ctx>:<partition>:<offset>,..."), or from a Last-Event-ID, then live. Each event's SSE id is
 * an opaque cursor: the next offset of every partition the stream covers, so a client that
 * reconnects with it resumes right after that event. Order: a catch-up (a cursor older than what
 * the hub's ring holds) goes partition by partition (contexts in ES_CONTEXTS order, partitions in
 * order, offsets in order), read by a reader of the stream's own (at most
 * EVENTSHOP_STREAM_CATCHUP_MAX at once, each with a bounded prefetch); then the hub's ring, in the
 * order its one consumer received the records. Who sees what and personal fields: api_access.h.
 *
 * Control events (no id, so a client's Last-Event-ID stays put): "caught-up" once the stream has
 * delivered everything committed when it reached the ring's end, "end" with a reason
 * (token_expired, limit, caught_up for ?until=now, overflow for a reader that fell behind the
 * ring, unavailable, shutdown) before the server closes the stream. */
#ifndef API_STREAM_H
#define API_STREAM_H

#include "api_app.h"

struct api_tickets;

/* The process's stream tickets (single use, API_STREAM_TICKET_TTL_S seconds at most, never past
 * their token's expiry), kept in memory: a ticket is redeemed on the API process that issued it
 * (the Ingress hashes /v1/stream by client address). */
#define API_STREAM_TICKET_TTL_S 30
struct api_tickets *api_tickets_new(void);
void api_tickets_free(struct api_tickets *t); /* NULL is a no-op */
/* Takes ticket (single use): 0 with who filled as the principal that asked for it, or -1 when it
 * is unknown, used or expired. */
int api_stream_ticket_redeem(struct api_tickets *t, const char *ticket, struct api_principal *who);

void api_stream_get(es_http_req_t *r, const struct api_principal *who);
void api_stream_tickets_post(es_http_req_t *r, const struct api_principal *who);

#endif
