/* GET /v1/stream and POST /v1/stream/tickets: see api_stream.h. This file holds the requests
 * (parameters, cursors, tickets, caps); api_stream_run.c runs an accepted stream. */
#include "api_stream.h"
#include "api_access.h"
#include "api_reply.h"
#include "api_stream_hub.h"
#include "api_stream_run.h"
#include "es_env.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_metrics.h"
#include "es_strbuf.h"
#include "es_time.h"
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TICKETS    4096
#define TICKET_BYTES   32
#define TICKET_CHARS   44 /* unpadded base64url of 32 bytes, and its NUL */
#define CURSOR_MAX     8192
#define LIMIT_MAX      100000
#define URN_STREAM_CAP "urn:eventshop:problem:too_many_streams"

/* ---- tickets ---- */

struct ticket {
    char id[TICKET_CHARS];
    struct api_principal who;
    long long expires_ms; /* 0: free */
};

struct api_tickets {
    pthread_mutex_t lock;
    struct ticket t[MAX_TICKETS];
};

struct api_tickets *api_tickets_new(void)
{
    struct api_tickets *t = xcalloc(1, sizeof *t);
    pthread_mutex_init(&t->lock, NULL);
    return t;
}

void api_tickets_free(struct api_tickets *t)
{
    if (!t)
        return;
    sodium_memzero(t->t, sizeof t->t);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

int api_stream_ticket_redeem(struct api_tickets *t, const char *ticket, struct api_principal *who)
{
    int rc = -1;
    long long now = es_wall_ms();
    if (!t || strlen(ticket) != TICKET_CHARS - 1)
        return -1;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < MAX_TICKETS && rc; i++) {
        struct ticket *k = &t->t[i];
        if (!k->expires_ms || sodium_memcmp(k->id, ticket, TICKET_CHARS - 1))
            continue;
        if (k->expires_ms > now) {
            *who = k->who;
            rc = 0;
        }
        sodium_memzero(k, sizeof *k); /* used or expired: gone either way */
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

/* A new ticket for who into id: 0, or -1 when every slot holds a live ticket. */
static int ticket_issue(struct api_tickets *t, const struct api_principal *who, char *id,
                        long long *expires_ms)
{
    unsigned char raw[TICKET_BYTES];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(id, TICKET_CHARS, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
    long long now = es_wall_ms(), until = now + API_STREAM_TICKET_TTL_S * 1000LL;
    if (who->exp && who->exp * 1000 < until)
        until = who->exp * 1000;
    int rc = -1;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < MAX_TICKETS && rc; i++) {
        struct ticket *k = &t->t[i];
        if (k->expires_ms > now)
            continue;
        snprintf(k->id, sizeof k->id, "%s", id);
        k->who = *who;
        k->expires_ms = until;
        rc = 0;
    }
    pthread_mutex_unlock(&t->lock);
    *expires_ms = until;
    return rc;
}

void api_stream_tickets_post(es_http_req_t *r, const struct api_principal *who)
{
    struct api_app *app = es_http_app(r);
    char id[TICKET_CHARS];
    long long expires_ms = 0;
    if (ticket_issue(app->tickets, who, id, &expires_ms)) {
        es_http_add_header(r, "Retry-After", "5");
        api_reply_problem(r, 503, NULL, NULL, "too many stream tickets are waiting to be used");
        return;
    }
    es_http_add_header(r, "Cache-Control", "no-store");
    es_http_reply_json(r, 201,
                       json_pack("{s:s, s:I, s:i}", "ticket", id, "expires_at",
                                 (json_int_t)expires_ms, "expires_in",
                                 (int)((expires_ms - es_wall_ms() + 999) / 1000)));
    sodium_memzero(id, sizeof id);
}

/* ---- parameters ---- */

/* The next item of a comma-separated list at *p (NUL-terminated in place; "" for an empty one),
 * or NULL at its end. */
static char *next_item(char **p)
{
    if (!*p)
        return NULL;
    char *item = *p, *comma = strchr(item, ',');
    if (comma)
        *comma = 0;
    *p = comma ? comma + 1 : NULL;
    return item;
}

/* s as a decimal of 1-max_digits digits (no sign, no space): 0 with *out, or -1. */
static int parse_digits(const char *s, size_t max_digits, long long *out)
{
    size_t n = strlen(s);
    if (n < 1 || n > max_digits)
        return -1;
    long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Whether s has 1-max characters (UTF-8) and none is a control character. */
static bool is_id_text(const char *s, size_t max)
{
    size_t chars = 0;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c < 0x20 || *c == 0x7f)
            return false;
        chars += (*c & 0xc0) != 0x80;
    }
    return chars >= 1 && chars <= max;
}

/* The contexts of ?context= (comma separated) into spec->ctx_want, or every served context
 * who may read: 0, or -1 after answering (400 unknown, 403 never readable). */
static int contexts_or_reply(es_http_req_t *r, const struct api_principal *who,
                             struct api_stream_spec *spec)
{
    struct api_app *app = es_http_app(r);
    char *v = es_http_query_dup(r, "context");
    int rc = 0;
    for (size_t i = 0; !v && i < app->n_contexts; i++)
        spec->ctx_want[i] = api_access_role_reads(who, app->contexts[i]);
    char *rest = v;
    for (char *tok = next_item(&rest); tok && !rc; tok = next_item(&rest)) {
        size_t i = 0;
        while (i < app->n_contexts && strcmp(app->contexts[i], tok))
            i++;
        if (i == app->n_contexts) {
            api_reply_problem(r, 400, "urn:eventshop:problem:unknown_context", "context",
                              "no context '%.32s'", tok);
            rc = -1;
        } else if (!api_access_role_reads(who, tok)) {
            api_reply_problem(r, 403, "urn:eventshop:problem:forbidden", "context",
                              "a %s may read no events of %s", who->role, tok);
            rc = -1;
        } else {
            spec->ctx_want[i] = true;
        }
    }
    bool any = false;
    for (size_t i = 0; i < app->n_contexts; i++)
        any = any || spec->ctx_want[i];
    if (v && !rc && !any) { /* "context=" or "context=," */
        api_reply_problem(r, 400, NULL, "context", "context must name a context");
        rc = -1;
    }
    free(v);
    return rc;
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.';
}

/* ?type= (comma separated, each a record name or a full name) and ?aggregate=: 0, or -1 after
 * answering 400. */
static int filters_or_reply(es_http_req_t *r, struct api_stream_spec *spec)
{
    char *v = es_http_query_dup(r, "type");
    int rc = 0;
    char *rest = v;
    for (char *tok = next_item(&rest); tok && !rc; tok = next_item(&rest)) {
        size_t n = strlen(tok);
        bool ok = n >= 1 && n < sizeof spec->types[0] && spec->n_types < API_STREAM_TYPES_MAX;
        for (size_t i = 0; ok && i < n; i++)
            ok = is_name_char(tok[i]);
        if (!ok)
            rc = -1;
        else
            snprintf(spec->types[spec->n_types++], sizeof spec->types[0], "%s", tok);
    }
    if (rc || (v && spec->n_types == 0))
        api_reply_problem(r, 400, NULL, "type",
                          "type must be up to %d event type names, comma separated",
                          API_STREAM_TYPES_MAX);
    free(v);
    if (rc || (v && spec->n_types == 0))
        return -1;
    char *a = es_http_query_dup(r, "aggregate");
    bool ok = !a || (is_id_text(a, 128) && strlen(a) < sizeof spec->aggregate);
    if (ok && a)
        snprintf(spec->aggregate, sizeof spec->aggregate, "%s", a);
    free(a);
    if (!ok)
        api_reply_problem(r, 400, NULL, "aggregate",
                          "aggregate must be an aggregate id (1-128 characters)");
    return ok ? 0 : -1;
}

/* ?limit= (none: 0, no limit) and ?until= ("now"): 0, or -1 after answering 400. */
static int bounds_or_reply(es_http_req_t *r, struct api_stream_spec *spec)
{
    char *v = es_http_query_dup(r, "limit");
    char *end = NULL;
    long limit = v ? strtol(v, &end, 10) : 0;
    bool ok = !v || (v[0] >= '0' && v[0] <= '9' && !*end && strlen(v) <= 6 && limit >= 1 &&
                     limit <= LIMIT_MAX);
    free(v);
    if (!ok) {
        api_reply_problem(r, 400, NULL, "limit", "limit must be 1-%d", LIMIT_MAX);
        return -1;
    }
    spec->limit = limit;
    v = es_http_query_dup(r, "until");
    ok = !v || !strcmp(v, "now");
    spec->until_now = v != NULL;
    free(v);
    if (!ok)
        api_reply_problem(r, 400, NULL, "until", "until must be 'now'");
    return ok ? 0 : -1;
}

/* ---- cursors ---- */

/* Sets cursor[part] for "<ctx><sep><partition><sep><offset>" (s, NUL-terminated): 0, or -1 if
 * it is malformed or names a partition the stream does not cover. */
static int cursor_entry(api_stream_hub_t *hub, const struct api_app *app,
                        const struct api_stream_spec *spec, char *s, char sep, int64_t *cursor)
{
    char *p1 = strchr(s, sep), *p2 = p1 ? strchr(p1 + 1, sep) : NULL;
    if (!p1 || !p2)
        return -1;
    *p1 = *p2 = 0;
    int ctx = -1;
    for (size_t i = 0; i < app->n_contexts; i++)
        if (!strcmp(app->contexts[i], s))
            ctx = (int)i;
    long long partition = 0, offset = 0;
    if (ctx < 0 || !spec->ctx_want[ctx] || parse_digits(p1 + 1, 7, &partition) ||
        parse_digits(p2 + 1, 18, &offset))
        return -1;
    int part = api_stream_hub_find(hub, ctx, (int32_t)partition);
    if (part < 0)
        return -1;
    cursor[part] = offset;
    return 0;
}

/* Fills cursor from list (entries separated by ','), starting from 0 for what it omits. */
static int cursor_parse(api_stream_hub_t *hub, const struct api_app *app,
                        const struct api_stream_spec *spec, char *list, char sep, int64_t *cursor)
{
    char *rest = list;
    for (char *tok = next_item(&rest); tok; tok = next_item(&rest))
        if (cursor_entry(hub, app, spec, tok, sep, cursor))
            return -1;
    return 0;
}

char *api_stream_cursor_encode(api_stream_hub_t *hub, const struct api_app *app, const bool *want,
                               const int64_t *cursor)
{
    struct es_strbuf text = ES_STRBUF_INIT;
    for (int i = 0; i < api_stream_hub_count(hub); i++) {
        if (!want[i])
            continue;
        int ctx;
        int32_t partition;
        api_stream_hub_part(hub, i, &ctx, &partition);
        es_strbuf_addf(&text, "%s%s.%d.%lld", text.len ? "," : "", app->contexts[ctx],
                       (int)partition, (long long)cursor[i]);
    }
    size_t b64 = sodium_base64_ENCODED_LEN(text.len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *out = xmalloc(b64);
    sodium_bin2base64(out, b64, (const unsigned char *)es_strbuf_str(&text), text.len,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    es_strbuf_release(&text);
    return out;
}

/* The start of the stream from Last-Event-ID, else ?from= (default now): 0 with spec->cursor set
 * (spec->from_now for now), or -1 after answering 400. */
static int start_or_reply(es_http_req_t *r, struct api_stream_spec *spec)
{
    struct api_app *app = es_http_app(r);
    api_stream_hub_t *hub = app->stream_hub;
    char *id = es_http_header_dup(r, "Last-Event-ID");
    char *from = id ? NULL : es_http_query_dup(r, "from");
    int rc = 0;
    if (id) {
        unsigned char *text = xmalloc(CURSOR_MAX + 1);
        size_t len = 0;
        rc = strlen(id) > CURSOR_MAX ||
                     sodium_base642bin(text, CURSOR_MAX, id, strlen(id), NULL, &len, NULL,
                                       sodium_base64_VARIANT_URLSAFE_NO_PADDING)
                 ? -1
                 : 0;
        text[rc ? 0 : len] = 0;
        rc = rc ? -1 : cursor_parse(hub, app, spec, (char *)text, '.', spec->cursor);
        free(text);
        if (rc)
            api_reply_problem(r, 400, NULL, "Last-Event-ID",
                              "Last-Event-ID is not a cursor of this stream's contexts");
    } else if (!from || !strcmp(from, "now")) {
        spec->from_now = true;
    } else if (strcmp(from, "earliest") &&
               (rc = cursor_parse(hub, app, spec, from, ':', spec->cursor))) {
        api_reply_problem(r, 400, NULL, "from",
                          "from must be earliest, now or positions <context>:<partition>:<offset>"
                          " of the stream's contexts, comma separated");
    }
    free(id);
    free(from);
    return rc;
}

/* ---- caps ---- */

static atomic_int n_streams, n_catchups;

static void count_open(int delta)
{
    es_metric_add(es_gauge("eventshop_api_streams_open", "GET /v1/stream answers open", ""), delta);
}

static void reply_cap(es_http_req_t *r, const char *what, long cap)
{
    es_http_add_header(r, "Retry-After", "5");
    api_reply_problem(r, 503, URN_STREAM_CAP, NULL, "%s: at most %ld per API process", what, cap);
}

bool api_stream_catchup_take(void)
{
    long cap = es_env_long("EVENTSHOP_STREAM_CATCHUP_MAX", API_STREAM_CATCHUP_MAX);
    if (atomic_fetch_add(&n_catchups, 1) < cap)
        return true;
    atomic_fetch_sub(&n_catchups, 1);
    return false;
}

void api_stream_catchup_give(void)
{
    atomic_fetch_sub(&n_catchups, 1);
}

void api_stream_slot_give(void)
{
    atomic_fetch_sub(&n_streams, 1);
    count_open(-1);
}

static bool slot_take_or_reply(es_http_req_t *r)
{
    long cap = es_env_long("EVENTSHOP_STREAM_MAX", API_STREAM_MAX);
    if (atomic_fetch_add(&n_streams, 1) < cap) {
        count_open(1);
        return true;
    }
    atomic_fetch_sub(&n_streams, 1);
    reply_cap(r, "too many open streams", cap);
    return false;
}

/* ---- the request ---- */

static struct api_stream_spec *spec_new(int n_parts)
{
    struct api_stream_spec *spec = xcalloc(1, sizeof *spec);
    spec->cursor = xcalloc((size_t)(n_parts ? n_parts : 1), sizeof *spec->cursor);
    spec->want = xcalloc((size_t)(n_parts ? n_parts : 1), sizeof *spec->want);
    return spec;
}

void api_stream_spec_free(struct api_stream_spec *spec)
{
    if (!spec)
        return;
    free(spec->cursor);
    free(spec->want);
    free(spec);
}

void api_stream_get(es_http_req_t *r, const struct api_principal *who)
{
    struct api_app *app = es_http_app(r);
    api_stream_hub_t *hub = app->stream_hub;
    if (!api_stream_hub_ready(hub)) {
        es_http_add_header(r, "Retry-After", "2");
        api_reply_problem(r, 503, NULL, NULL, "the event stream is not connected to Kafka yet");
        return;
    }
    int n_parts = api_stream_hub_count(hub);
    struct api_stream_spec *spec = spec_new(n_parts);
    spec->who = *who;
    if (contexts_or_reply(r, who, spec) || filters_or_reply(r, spec) || bounds_or_reply(r, spec) ||
        start_or_reply(r, spec)) {
        api_stream_spec_free(spec);
        return;
    }
    for (int i = 0; i < n_parts; i++) {
        int ctx;
        int32_t partition;
        api_stream_hub_part(hub, i, &ctx, &partition);
        spec->want[i] = spec->ctx_want[ctx];
    }
    if (!slot_take_or_reply(r)) {
        api_stream_spec_free(spec);
        return;
    }
    if (api_stream_run(r, spec) != 0) { /* took spec; answered */
        api_stream_slot_give();
        reply_cap(r, "too many streams catching up",
                  es_env_long("EVENTSHOP_STREAM_CATCHUP_MAX", API_STREAM_CATCHUP_MAX));
    }
}
