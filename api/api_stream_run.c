/* api_stream_run — see api_stream_run.h.
 *
 * Everything here runs on the stream's loop thread: a pump builds the next piece (a few turns of
 * the catch-up reader or of the ring), writes it, and runs again when it went out (on_ready), when
 * the hub appended records (the waker), or on a short timer while a catch-up reader has nothing
 * fetched yet. A stream that waits for the hub has no timer but its heartbeat. */
#include "api_stream_run.h"
#include "api_access.h"
#include "es_kafka.h"
#include "es_log.h"
#include "es_mem.h"
#include "es_strbuf.h"
#include "es_time.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OWNER_SLOTS   1024 /* cached verdicts of "is this aggregate the principal's" */
#define TURNS         4    /* turns per pump before the piece goes out */
#define YIELD_MS      1
#define FETCH_MS      10
#define FETCH_SLOW_MS 100
#define SLOW_AFTER    20 /* empty polls of a catch-up reader before it is polled less often */
#define CLOSE_TICK_MS 1000
#define STALL_MS      60000 /* a piece not gone out after this: the client stopped reading */

enum turn { TURN_MORE, TURN_WAIT, TURN_IDLE };

struct owner_slot {
    int ctx;
    char id[129];
    bool used, visible;
};

struct run {
    es_http_req_t *r;
    es_http_stream_t *st;
    struct api_app *app;
    api_stream_hub_t *hub;
    struct api_stream_spec *spec;
    es_kafka_t *reader; /* catching up; NULL once live */
    int cu_part;        /* the partition the reader reads, -1 between partitions */
    int empty_polls;
    uint64_t seq; /* live: the next ring record to look at */
    bool caught_up, ending;
    long sent;
    int piece_events;
    struct es_strbuf out; /* written at the next flush */
    es_http_waker_t *waker;
    es_http_timer_t *tick, *turn;
    long long last_write_ms;
    struct api_owner_key key;
    struct owner_slot *owners;
};

static void end_with(struct run *run, const char *reason)
{
    if (run->ending)
        return;
    es_strbuf_addf(&run->out, "event: end\ndata: {\"reason\":\"%s\"}\n\n", reason);
    run->ending = true;
}

/* Writes what was built; ends the stream when ending. 1 when the stream was ended (run may be
 * gone: touch nothing), 0 otherwise. */
static int flush(struct run *run)
{
    if (run->out.len) {
        es_http_stream_write(run->st, run->out.s, run->out.len);
        es_strbuf_reset(&run->out);
        run->piece_events = 0;
        run->last_write_ms = es_mono_ms();
    }
    if (!run->ending)
        return 0;
    es_http_stream_end(run->st);
    return 1;
}

/* ---- who sees what ---- */

static struct owner_slot *owner_slot(struct run *run, int ctx, const char *id)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)ctx;
    for (const char *s = id; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return &run->owners[h % OWNER_SLOTS];
}

static int remember(struct run *run, int ctx, const char *id, bool visible)
{
    struct owner_slot *o = owner_slot(run, ctx, id);
    *o = (struct owner_slot){.ctx = ctx, .used = true, .visible = visible};
    snprintf(o->id, sizeof o->id, "%s", id);
    return visible;
}

/* Whether the principal may see aggregate id of context ctx, the event's payload at hand: 1, 0,
 * or -1 (its read model is unavailable). An event that names its owner (a listing's vendor, an
 * order's customer) decides by itself: the stream may be ahead of the read model. */
static int visible(struct run *run, int ctx, const char *id, json_t *payload)
{
    const struct api_principal *who = &run->spec->who;
    const char *name = run->app->contexts[ctx];
    if (!strcmp(who->role, "admin"))
        return 1;
    const char *named = NULL;
    if (!strcmp(who->role, "vendor") && !strcmp(name, "catalog"))
        named = json_string_value(json_object_get(payload, "vendor_id"));
    else if (!strcmp(who->role, "customer") && !strcmp(name, "orders"))
        named = json_string_value(json_object_get(payload, "customer_id"));
    if (named)
        return remember(run, ctx, id, api_access_is_owner(who, named));
    struct owner_slot *o = owner_slot(run, ctx, id);
    if (o->used && o->ctx == ctx && !strcmp(o->id, id))
        return o->visible;
    char owner[129];
    es_err_t err = ES_ERR_INIT;
    int found = api_access_owner(run->r, who, name, id, owner, sizeof owner, &err);
    if (found < 0)
        es_warn("stream: owner of %s '%.64s': %s", name, id, err.msg);
    if (found <= 0) /* not in the read model yet: not cached, asked again next time */
        return found;
    return remember(run, ctx, id, api_access_is_owner(who, owner));
}

/* ---- events ---- */

static bool type_matches(const struct api_stream_spec *spec, const char *full_name)
{
    const char *dot = strrchr(full_name, '.');
    const char *short_name = dot ? dot + 1 : full_name;
    for (int i = 0; i < spec->n_types; i++)
        if (!strcmp(spec->types[i], full_name) || !strcmp(spec->types[i], short_name))
            return true;
    return spec->n_types == 0;
}

/* The event as GET /v1/history shows an item, plus its context and aggregate (new). */
static json_t *item_new(const char *ctx, int32_t partition, int64_t offset, const char *type,
                        json_t *payload)
{
    json_t *md = json_object_get(payload, "metadata");
    char pos[48];
    snprintf(pos, sizeof pos, "%d:%lld", (int)partition, (long long)offset);
    json_t *item = json_pack(
        "{s:s, s:s, s:O, s:O, s:s, s:O, s:O, s:O}", "context", ctx, "type", type, "aggregate_id",
        json_object_get(md, "aggregate_id"), "version", json_object_get(md, "aggregate_version"),
        "position", pos, "occurred_at", json_object_get(md, "occurred_at"), "event_id",
        json_object_get(md, "event_id"), "actor", json_object_get(md, "actor"));
    if (!item)
        item = json_pack("{s:s, s:s, s:s}", "context", ctx, "type", type, "position", pos);
    json_object_del(payload, "metadata");
    json_object_set(item, "payload", payload);
    return item;
}

/* Appends the record at offset of partition number part when the stream shows it, and moves the
 * cursor past it: 0, or -1 when the stream is ending (the cursor stays before the record, which
 * a reconnect reads again). */
static int deliver(struct run *run, int part, int64_t offset, const void *value, size_t len)
{
    struct api_stream_spec *spec = run->spec;
    int ctx;
    int32_t partition;
    api_stream_hub_part(run->hub, part, &ctx, &partition);
    const char *full_name = NULL;
    json_t *payload = NULL;
    es_err_t err = ES_ERR_INIT;
    if (!value || ev_decode(run->app->codec, value, len, &full_name, &payload, &err) != 0) {
        es_warn("stream: %s.events[%d]@%lld passed over: %s", run->app->contexts[ctx],
                (int)partition, (long long)offset, value ? err.msg : "no payload");
        spec->cursor[part] = offset + 1;
        return 0;
    }
    const char *id =
        json_string_value(json_object_get(json_object_get(payload, "metadata"), "aggregate_id"));
    int show =
        id && type_matches(spec, full_name) && (!spec->aggregate[0] || !strcmp(spec->aggregate, id))
            ? visible(run, ctx, id, payload)
            : 0;
    json_t *item =
        show > 0 ? item_new(run->app->contexts[ctx], partition, offset, full_name, payload) : NULL;
    if (item && api_access_open_personal(run->r, &spec->who, item, &run->key, &err)) {
        json_decref(item);
        item = NULL;
        show = -1; /* the key store is unavailable */
    }
    json_decref(payload);
    if (show < 0) {
        json_decref(item);
        end_with(run, "unavailable");
        return -1;
    }
    spec->cursor[part] = offset + 1;
    if (item) {
        char *cursor = api_stream_cursor_encode(run->hub, run->app, spec->want, spec->cursor);
        char *text = json_dumps(item, JSON_COMPACT);
        es_strbuf_addf(&run->out, "id: %s\ndata: %s\n\n", cursor, text);
        free(text);
        free(cursor);
        json_decref(item);
        run->piece_events++;
        if (spec->limit && ++run->sent >= spec->limit)
            end_with(run, "limit");
    }
    return 0;
}

/* ---- live: the hub's ring ---- */

static enum turn live_turn(struct run *run)
{
    struct api_stream_record recs[API_STREAM_PIECE_EVENTS];
    bool at_end = false;
    int n = api_stream_hub_read(run->hub, &run->seq, run->spec->want, recs, API_STREAM_PIECE_EVENTS,
                                API_STREAM_PIECE_BYTES, &at_end);
    if (n < 0) {
        end_with(run, "overflow"); /* a reconnect catches up from the last id */
        return TURN_IDLE;
    }
    for (int i = 0; i < n && !run->ending; i++)
        if (recs[i].offset >= run->spec->cursor[recs[i].part])
            deliver(run, recs[i].part, recs[i].offset, recs[i].value, recs[i].len);
    api_stream_hub_records_free(recs, n);
    if (run->ending)
        return TURN_IDLE;
    if (!at_end)
        return TURN_MORE;
    if (!run->caught_up) {
        run->caught_up = true;
        es_strbuf_adds(&run->out, "event: caught-up\ndata: {}\n\n");
        if (run->spec->until_now)
            end_with(run, "caught_up");
    }
    return TURN_IDLE;
}

/* ---- catching up: a reader of the stream's own, a partition at a time ---- */

static es_kafka_t *reader_new(es_err_t *err)
{
    const char *kv[] = {"fetch.wait.max.ms", "100", "queued.max.messages.kbytes",
                        API_STREAM_READER_KBYTES, NULL};
    es_kafka_conf_t *conf = es_kafka_read_committed_conf(
        "eventshop-api-stream-catchup", "eventshop-api-stream-catchup", true, kv, err);
    return conf ? es_kafka_new(ES_KAFKA_CONSUMER, conf, err) : NULL;
}

static void reader_free(struct run *run)
{
    if (!run->reader)
        return;
    es_kafka_destroy(run->reader);
    run->reader = NULL;
    api_stream_catchup_give();
}

static void go_live(struct run *run)
{
    reader_free(run);
    run->seq = api_stream_hub_first(run->hub); /* records before the cursor are passed over */
}

/* Assigns the reader the next partition behind the ring: 0, 1 when there is none (live now), -1
 * when the assignment failed (ending). */
static int next_partition(struct run *run)
{
    int n = api_stream_hub_count(run->hub);
    int p = 0;
    while (p < n && (!run->spec->want[p] ||
                     run->spec->cursor[p] >= api_stream_hub_covered_from(run->hub, p)))
        p++;
    if (p == n) {
        if (!api_stream_hub_covers(run->hub, run->spec->cursor, run->spec->want))
            return next_partition(run); /* the ring moved on meanwhile: another pass */
        go_live(run);
        return 1;
    }
    int ctx;
    int32_t partition;
    api_stream_hub_part(run->hub, p, &ctx, &partition);
    char topic[64];
    es_kafka_parts_t *parts = es_kafka_parts_new(1);
    es_kafka_parts_add(parts, es_topic(topic, sizeof topic, run->app->contexts[ctx], "events"),
                       partition)
        ->offset = run->spec->cursor[p];
    int e = es_kafka_assign(run->reader, parts);
    es_kafka_parts_free(parts);
    if (e) {
        es_warn("stream: catch-up reader: assign %s[%d]: %s", topic, (int)partition,
                es_kafka_err_str(e));
        end_with(run, "unavailable");
        return -1;
    }
    run->cu_part = p;
    run->empty_polls = 0;
    return 0;
}

/* Takes one message of the reader: the current partition done (the cursor reached what the ring
 * holds) sets cu_part to -1. */
static void catchup_take(struct run *run, const es_kafka_msg_t *m)
{
    int p = run->cu_part, ctx;
    int32_t partition;
    api_stream_hub_part(run->hub, p, &ctx, &partition);
    size_t cn = strlen(run->app->contexts[ctx]);
    if (!m->topic || m->partition != partition || strncmp(m->topic, run->app->contexts[ctx], cn) ||
        strcmp(m->topic + cn, ".events"))
        return;
    if (m->err == ES_KAFKA_ERR_PARTITION_EOF) {
        if (m->offset > run->spec->cursor[p])
            run->spec->cursor[p] = m->offset; /* past aborted records and commit markers */
    } else if (!m->err && m->offset >= run->spec->cursor[p]) {
        deliver(run, p, m->offset, m->value, m->len);
    }
    if (!run->ending && run->spec->cursor[p] >= api_stream_hub_covered_from(run->hub, p))
        run->cu_part = -1;
}

static enum turn catchup_turn(struct run *run)
{
    if (run->cu_part < 0) {
        int rc = next_partition(run);
        if (rc)
            return rc > 0 ? TURN_MORE : TURN_IDLE;
    }
    int got = 0;
    while (run->cu_part >= 0 && !run->ending && run->piece_events < API_STREAM_PIECE_EVENTS &&
           run->out.len < API_STREAM_PIECE_BYTES) {
        es_kafka_msg_t *m = es_kafka_poll(run->reader, 0);
        if (!m)
            break;
        got++;
        if (m->err && m->err != ES_KAFKA_ERR_PARTITION_EOF)
            es_debug("stream: catch-up reader: %s", m->errstr);
        catchup_take(run, m);
        es_kafka_msg_free(m);
    }
    if (run->ending)
        return TURN_IDLE;
    run->empty_polls = got ? 0 : run->empty_polls + 1;
    return got || run->cu_part < 0 ? TURN_MORE : TURN_WAIT;
}

/* ---- the pump, the clock, the end ---- */

static void pump(void *arg)
{
    struct run *run = arg;
    if (es_http_stream_busy(run->st)) {
        /* a live client that fell behind the ring while its piece waits to go out can be told
         * nothing more: it reconnects from its last id */
        if (!run->reader && !run->ending && run->seq < api_stream_hub_first(run->hub))
            es_http_stream_abort(run->st);
        return;
    }
    enum turn t = TURN_MORE;
    for (int i = 0;
         i < TURNS && t == TURN_MORE && !run->ending &&
         run->piece_events < API_STREAM_PIECE_EVENTS && run->out.len < API_STREAM_PIECE_BYTES;
         i++)
        t = run->reader ? catchup_turn(run) : live_turn(run);
    bool wrote = run->out.len > 0;
    if (flush(run) || wrote)
        return; /* ended, or on_ready pumps again */
    if (t == TURN_MORE)
        es_http_timer_arm(run->turn, YIELD_MS);
    else if (t == TURN_WAIT)
        es_http_timer_arm(run->turn, run->empty_polls > SLOW_AFTER ? FETCH_SLOW_MS : FETCH_MS);
}

/* The token's end and the heartbeat: every API_STREAM_HEARTBEAT_MS, every second near the end. */
static void tick(void *arg)
{
    struct run *run = arg;
    long long now = es_wall_ms(), exp_ms = run->spec->who.exp * 1000;
    if (es_http_stream_busy(run->st) && es_mono_ms() - run->last_write_ms > STALL_MS) {
        es_http_stream_abort(run->st); /* a backstop to h2o's own I/O timeout */
        es_http_timer_arm(run->tick, API_STREAM_HEARTBEAT_MS);
        return;
    }
    if (run->spec->who.exp && now >= exp_ms) {
        end_with(run, "token_expired");
        if (!es_http_stream_busy(run->st))
            flush(run);
        return; /* on_ready ends it otherwise */
    }
    if (!es_http_stream_busy(run->st) &&
        es_mono_ms() - run->last_write_ms >= API_STREAM_HEARTBEAT_MS - CLOSE_TICK_MS) {
        es_strbuf_adds(&run->out, ": keep-alive\n\n");
        flush(run);
    }
    bool near = run->spec->who.exp && exp_ms - now <= API_STREAM_HEARTBEAT_MS + CLOSE_TICK_MS;
    es_http_timer_arm(run->tick, near ? CLOSE_TICK_MS : API_STREAM_HEARTBEAT_MS);
}

static void gone(void *arg)
{
    struct run *run = arg;
    if (run->waker) {
        api_stream_hub_unwatch(run->hub, run->waker);
        es_http_waker_free(run->waker);
    }
    es_http_timer_free(run->tick);
    es_http_timer_free(run->turn);
    reader_free(run);
    api_stream_slot_give();
    api_access_key_release(&run->key);
    api_stream_spec_free(run->spec);
    free(run->owners);
    es_strbuf_release(&run->out);
    free(run);
}

/* Where the stream starts: live at once, or -1 when a catch-up reader cannot be had. */
static int start(struct run *run, es_err_t *err)
{
    struct api_stream_spec *spec = run->spec;
    if (spec->from_now) {
        run->seq = api_stream_hub_now(run->hub, spec->cursor);
        return 0;
    }
    if (api_stream_hub_covers(run->hub, spec->cursor, spec->want)) {
        run->seq = api_stream_hub_first(run->hub);
        return 0;
    }
    if (!api_stream_catchup_take())
        return es_set(err, ES_ETOOLARGE, "too many catch-up readers");
    if (!(run->reader = reader_new(err))) {
        api_stream_catchup_give();
        return -1;
    }
    run->cu_part = -1;
    return 0;
}

int api_stream_run(es_http_req_t *r, struct api_stream_spec *spec)
{
    struct run *run = xcalloc(1, sizeof *run);
    run->r = r;
    run->app = es_http_app(r);
    run->hub = run->app->stream_hub;
    run->spec = spec;
    run->owners = xcalloc(OWNER_SLOTS, sizeof *run->owners);
    es_err_t err = ES_ERR_INIT;
    if (start(run, &err)) {
        free(run->owners);
        free(run);
        api_stream_spec_free(spec);
        if (err.code == ES_ETOOLARGE)
            return -1;
        es_error("stream: %s", err.msg);
        es_http_add_header(r, "Retry-After", "2");
        es_http_reply_problem(r, 503, NULL, NULL, "the event log is unavailable");
        api_stream_slot_give();
        return 0;
    }
    es_http_add_header(r, "Cache-Control", "no-cache");
    es_http_add_header(r, "X-Accel-Buffering", "no"); /* nginx: pass each event on at once */
    es_http_stream_cbs_t cbs = {.on_ready = pump, .on_gone = gone, .arg = run};
    run->st = es_http_stream_start(r, 200, "text/event-stream", &cbs);
    run->waker = es_http_waker_new(r, pump, run);
    api_stream_hub_watch(run->hub, run->waker);
    run->tick = es_http_timer_new(r, tick, run);
    run->turn = es_http_timer_new(r, pump, run);
    es_strbuf_adds(&run->out, "retry: 2000\n\n");
    run->last_write_ms = es_mono_ms();
    tick(run);
    pump(run);
    return 0;
}
