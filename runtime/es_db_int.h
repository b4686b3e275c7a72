/* es_db_int — what es_db.c shares with es_db_async.c (runtime/ only): the connection's target
 * and options, the one error-number table, parameter binding and result reading, so that the
 * blocking and the non-blocking paths keep the same typing and error rules. */
#ifndef ES_DB_INT_H
#define ES_DB_INT_H

#include "es_db.h"
#include <mysql.h>
#include <stdbool.h>

/* Where and as whom an account connects (es_db.h: EVENTSHOP_MYSQL_*); password owned. */
struct es_db_target {
    char user[128];
    const char *host, *sock; /* borrowed from the environment */
    unsigned int port;
    char *password;
};
void es_db_target_load(struct es_db_target *t, const char *account);
/* Wipes and frees the password. */
void es_db_target_release(struct es_db_target *t);
/* mysql_init with utf8mb4, no auto-reconnect and the timeouts; NULL if out of memory. */
MYSQL *es_db_init_options(unsigned connect_s, unsigned io_s);

/* Whether MariaDB error no means the connection is unusable. */
bool es_db_is_lost_error(unsigned int no);
/* Our code for MariaDB error no (es_err.h). */
es_code_t es_db_code_of(unsigned int no);
/* The error of a failed statement into err; the error number when the connection is lost. */
unsigned int es_db_note_stmt(es_err_t *err, MYSQL_STMT *st, const char *what);
/* Fills bind[i] (and lens[i]) with params[i] (borrowed) for n parameters. */
void es_db_bind_params(MYSQL_BIND *bind, unsigned long *lens, const es_db_val_t *params, size_t n);

/* The buffers a stored result set is fetched into: one per column, integers as long long, the
 * rest as strings sized by the column's longest value. */
struct es_db_result {
    MYSQL_RES *meta;
    MYSQL_FIELD *fields;
    unsigned int ncols;
    MYSQL_BIND *bind;
    struct db_col {
        long long i;
        char *buf;
        unsigned long len;
        my_bool is_null, error;
    } * cols;
};
/* Sizes and binds res's buffers to st's stored result (res->meta set): 0, or -1 with err and
 * *lost the error number of a lost connection. */
int es_db_result_bind(MYSQL_STMT *st, struct es_db_result *res, unsigned int *lost, es_err_t *err);
/* Every row of st's bound result, as a new array; NULL with err and *lost as above. */
json_t *es_db_result_rows(MYSQL_STMT *st, const struct es_db_result *res, unsigned int *lost,
                          es_err_t *err);
void es_db_result_release(struct es_db_result *res);

#endif
