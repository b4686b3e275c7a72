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

#include "pj_runtime.h"

extern const pj_projection_t users_accounts_projection;

#endif
