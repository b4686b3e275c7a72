/* users — the users context's read model. users_accounts keeps one row per user in table
 * users<suffix> of eventshop_users, read by the API (read-only user) for login and GET
 * /v1/users/{id}: column names are a contract.
 *
 * The read model holds no personal data in clear: only the blind index of the e-mail (for the
 * login lookup) and the sealed fields as the events carry them (base64), which the API opens
 * with the user's key from the key store. On UserForgotten the row keeps user_id, role, status
 * 'forgotten' and its counters; the index and every sealed field are set to NULL. So after
 * forgetting there is nothing left here to decrypt, even with a key. */
#ifndef PJ_USERS_H
#define PJ_USERS_H

#include "es_db.h"
#include "es_err.h"
#include "pj_runtime.h"
#include <jansson.h>
#include <stdbool.h>

extern const pj_projection_t users_accounts_projection;

#define USERS_STMT_MAX_PARAMS 16

/* One statement an event turns into, built without I/O (unit-tested). */
struct users_stmt {
    char *sql;                                 /* owned; NULL: the event changes nothing */
    es_db_val_t params[USERS_STMT_MAX_PARAMS]; /* strings borrowed from the event */
    size_t n;
    bool must_match; /* an UPDATE that must find its row (else ES_ENOTFOUND) */
};

/* CREATE TABLE IF NOT EXISTS users<suffix> ...; owned by the caller (free()). */
char *users_accounts_ddl(const char *suffix);
/* Fills *out (zeroed first) with the statement event (borrowed) of event_type (name without
 * namespace) turns into. ES_EINVAL naming the field when the event is malformed. Release *out in
 * every case. */
int users_accounts_plan(const char *suffix, const char *event_type, const json_t *event,
                        struct users_stmt *out, es_err_t *err);
void users_stmt_release(struct users_stmt *s);

#endif
