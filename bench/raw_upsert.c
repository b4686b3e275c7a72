/* The baseline of `make bench`'s projector figures: the rows the catalog projector writes for the
 * bench's events (bench/rebuild_bench.py: event i is ProductListed of sku i/2 when i is even,
 * ProductDetailsChanged of it when odd), written straight through libmariadb as multi-row
 * INSERT ... ON DUPLICATE KEY UPDATE of ROWS rows a statement (prepared once), TX rows a
 * transaction, into scratch tables made LIKE the live ones (raw_products LIKE products,
 * raw_event_index LIKE event_index) in eventshop_catalog, as the catalog projector's user: one
 * products row and one event_index row per event. No Kafka, no decoding, no offsets.
 *
 *   eventshop-bench-raw-upsert EVENTS [ROWS [TX]]      (ROWS default 500, TX default 500)
 * prints "raw_upsert <events> <seconds>" (wall time of the writes, tables made and dropped
 * outside it). Connection settings as the projector's (EVENTSHOP_MYSQL_*). */
#include "es_env.h"
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PRODUCT_COLS 13
#define INDEX_COLS   6

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(MYSQL *my, const char *what)
{
    fprintf(stderr, "bench-raw-upsert: %s: %s\n", what, mysql_error(my));
    exit(1);
}

static void run(MYSQL *my, const char *sql)
{
    if (mysql_query(my, sql))
        die(my, sql);
}

/* "<head>(?, ..., ?), ... (n rows of cols)<tail>", new string. */
static char *multi_row(const char *head, int cols, int n, const char *tail)
{
    size_t cap = strlen(head) + strlen(tail) + (size_t)n * (size_t)(cols * 3 + 4) + 1;
    char *s = malloc(cap), *p = s;
    p += sprintf(p, "%s", head);
    for (int r = 0; r < n; r++) {
        p += sprintf(p, "%s(", r ? ", " : "");
        for (int c = 0; c < cols; c++)
            p += sprintf(p, "%s?", c ? ", " : "");
        p += sprintf(p, ")");
    }
    sprintf(p, "%s", tail);
    return s;
}

static const char product_head[] =
    "INSERT INTO raw_products (sku, vendor_id, name, description, category, attributes, "
    "currency, status, version, applied_events, listed_at, updated_at, last_event_id) VALUES ";
static const char product_tail[] =
    " ON DUPLICATE KEY UPDATE vendor_id=VALUES(vendor_id), name=VALUES(name), "
    "description=VALUES(description), category=VALUES(category), attributes=VALUES(attributes), "
    "currency=VALUES(currency), status=VALUES(status), version=VALUES(version), "
    "applied_events=applied_events+1, updated_at=VALUES(updated_at), "
    "last_event_id=VALUES(last_event_id)";
static const char index_head[] =
    "INSERT IGNORE INTO raw_event_index (part, `offset`, "
    "aggregate_id, aggregate_version, event_type, occurred_at) VALUES ";

/* The values of one event's rows, kept alive while a statement binds them. */
struct row {
    char sku[64], name[96], event_id[40];
    const char *desc, *cat, *attrs; /* static strings */
    long long version, applied, at, part, offset;
    unsigned long lsku, lname, levent, ldesc, lcat, lattrs;
};

static void bind_str(MYSQL_BIND *b, const char *s, unsigned long *len)
{
    *len = strlen(s);
    b->buffer_type = MYSQL_TYPE_STRING;
    b->buffer = (void *)s;
    b->buffer_length = *len;
    b->length = len;
}

static void bind_int(MYSQL_BIND *b, long long *v)
{
    b->buffer_type = MYSQL_TYPE_LONGLONG;
    b->buffer = v;
}

static unsigned long len_v = 4, len_cur = 3, len_st = 6;

/* The values are the bench's events' (rebuild_bench.py: listed() and changed() of
 * tests/integration/test_projector.py), so that a changed row grows or shrinks as the
 * projector's does (an update that changes a column's length is not done in place) */
static void bind_product(MYSQL_BIND *b, struct row *r)
{
    static const char vendor[] = "v-pj", cur[] = "EUR", status[] = "listed";
    bind_str(&b[0], r->sku, &r->lsku);
    bind_str(&b[1], vendor, &len_v);
    bind_str(&b[2], r->name, &r->lname);
    bind_str(&b[3], r->desc, &r->ldesc);
    bind_str(&b[4], r->cat, &r->lcat);
    bind_str(&b[5], r->attrs, &r->lattrs);
    bind_str(&b[6], cur, &len_cur);
    bind_str(&b[7], status, &len_st);
    bind_int(&b[8], &r->version);
    bind_int(&b[9], &r->applied);
    bind_int(&b[10], &r->at);
    bind_int(&b[11], &r->at);
    bind_str(&b[12], r->event_id, &r->levent);
}

static void bind_index(MYSQL_BIND *b, struct row *r, int listed)
{
    static const char t_listed[] = "ProductListed", t_changed[] = "ProductDetailsChanged";
    static unsigned long l_listed = sizeof t_listed - 1, l_changed = sizeof t_changed - 1;
    bind_int(&b[0], &r->part);
    bind_int(&b[1], &r->offset);
    bind_str(&b[2], r->sku, &r->lsku);
    bind_int(&b[3], &r->version);
    bind_str(&b[4], listed ? t_listed : t_changed, listed ? &l_listed : &l_changed);
    bind_int(&b[5], &r->at);
}

/* Writes events [from, from + n) as one statement per table. */
static void write_rows(MYSQL *my, MYSQL_STMT *ps, MYSQL_STMT *is, struct row *rows, MYSQL_BIND *pb,
                       MYSQL_BIND *ib, long from, int n, const char *prefix)
{
    memset(pb, 0, sizeof *pb * (size_t)n * PRODUCT_COLS);
    memset(ib, 0, sizeof *ib * (size_t)n * INDEX_COLS);
    for (int k = 0; k < n; k++) {
        long i = from + k;
        int listed = i % 2 == 0;
        struct row *r = &rows[k];
        snprintf(r->sku, sizeof r->sku, "%s-%07ld", prefix, i / 2);
        if (listed)
            snprintf(r->name, sizeof r->name, "name %s", r->sku);
        else
            snprintf(r->name, sizeof r->name, "renamed %ld", i);
        r->desc = listed ? "d" : "v2";
        r->cat = listed ? "cat-pj" : "cat-pj2";
        r->attrs = listed ? "{\"k\":\"v\"}" : "{\"v\":\"2\"}";
        snprintf(r->event_id, sizeof r->event_id, "00000000-0000-4000-8000-%012ld", i);
        r->version = listed ? 1 : 2;
        r->applied = 1;
        r->at = 1700000000000LL + i;
        r->part = i % 3;
        r->offset = i;
        bind_product(&pb[k * PRODUCT_COLS], r);
        bind_index(&ib[k * INDEX_COLS], r, listed);
    }
    if (mysql_stmt_bind_param(ps, pb) || mysql_stmt_execute(ps))
        die(my, mysql_stmt_error(ps));
    if (mysql_stmt_bind_param(is, ib) || mysql_stmt_execute(is))
        die(my, mysql_stmt_error(is));
}

static MYSQL_STMT *prepare(MYSQL *my, const char *head, int cols, int n, const char *tail)
{
    char *sql = multi_row(head, cols, n, tail);
    MYSQL_STMT *st = mysql_stmt_init(my);
    if (!st || mysql_stmt_prepare(st, sql, strlen(sql)))
        die(my, "prepare");
    free(sql);
    return st;
}

static MYSQL *connect_catalog(void)
{
    MYSQL *my = mysql_init(NULL);
    mysql_options(my, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    char *password = es_env_secret("EVENTSHOP_MYSQL_CATALOG_PASSWORD");
    if (!mysql_real_connect(my, es_env_str("EVENTSHOP_MYSQL_HOST", "127.0.0.1"),
                            es_env_str("EVENTSHOP_MYSQL_CATALOG_USER", "eventshop_catalog"),
                            password, "eventshop_catalog",
                            (unsigned)es_env_long("EVENTSHOP_MYSQL_PORT", 3306),
                            es_env_str("EVENTSHOP_MYSQL_SOCKET", NULL), 0))
        die(my, "connect");
    free(password);
    return my;
}

int main(int argc, char **argv)
{
    long events = argc > 1 ? atol(argv[1]) : 0;
    int rows = argc > 2 ? atoi(argv[2]) : 500, tx = argc > 3 ? atoi(argv[3]) : 500;
    if (events <= 0 || rows <= 0 || tx < rows) {
        fprintf(stderr, "usage: %s EVENTS [ROWS [TX]] (TX >= ROWS)\n", argv[0]);
        return 2;
    }
    MYSQL *my = connect_catalog();
    run(my, "DROP TABLE IF EXISTS raw_products, raw_event_index");
    run(my, "CREATE TABLE raw_products LIKE products");
    run(my, "CREATE TABLE raw_event_index LIKE event_index");
    MYSQL_STMT *ps = prepare(my, product_head, PRODUCT_COLS, rows, product_tail);
    MYSQL_STMT *is = prepare(my, index_head, INDEX_COLS, rows, "");
    struct row *r = calloc((size_t)rows, sizeof *r);
    MYSQL_BIND *pb = calloc((size_t)rows * PRODUCT_COLS, sizeof *pb);
    MYSQL_BIND *ib = calloc((size_t)rows * INDEX_COLS, sizeof *ib);
    char prefix[24];
    snprintf(prefix, sizeof prefix, "rw-%08lx",
             (unsigned long)time(NULL)); /* as long as the bench's "rb-%08x" */
    double t0 = now_s();
    long done = 0;
    while (done < events) {
        run(my, "START TRANSACTION");
        for (long in_tx = 0; in_tx < tx && done < events;) {
            int n = events - done < rows ? (int)(events - done) : rows;
            MYSQL_STMT *p = ps, *i = is;
            if (n < rows) { /* the last, shorter statement */
                p = prepare(my, product_head, PRODUCT_COLS, n, product_tail);
                i = prepare(my, index_head, INDEX_COLS, n, "");
            }
            write_rows(my, p, i, r, pb, ib, done, n, prefix);
            if (n < rows) {
                mysql_stmt_close(p);
                mysql_stmt_close(i);
            }
            done += n;
            in_tx += n;
        }
        run(my, "COMMIT");
    }
    double dt = now_s() - t0;
    printf("raw_upsert %ld %.3f\n", done, dt);
    run(my, "DROP TABLE raw_products, raw_event_index");
    mysql_stmt_close(ps);
    mysql_stmt_close(is);
    free(r);
    free(pb);
    free(ib);
    mysql_close(my);
    return 0;
}
