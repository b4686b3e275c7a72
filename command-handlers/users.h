/* users — the decider of the users context: the User aggregate, keyed by user_id =
 * es_uuid_derive("eventshop-user", email_index), where email_index is the blind index (hex
 * HMAC-SHA256 of the normalised e-mail under a server key). So one e-mail always lands on one
 * aggregate and one owner, and "e-mail already registered" needs no global index; and since the
 * index is keyed, a user id does not reveal the e-mail to anyone without the server key (a plain
 * hash of the e-mail could be reversed by guessing).
 *
 * Commands RegisterUser, BootstrapAdmin, ApproveVendor, ChangeUserRole, ForgetUser; events
 * UserRegistered, VendorApproved, UserRoleChanged, UserForgotten; state UserState
 * (events/schemas/users/). The decider never sees personal data in clear: commands carry it
 * sealed with the user's own key (the API and the eventshop-users tool seal it), and the decider
 * copies the sealed bytes into the event. The state holds no personal data at all.
 *
 * Rules:
 *   RegisterUser   role customer|vendor by anyone (the API makes the registrant its own actor),
 *                  role admin only by an admin acting for someone else. A vendor starts
 *                  "pending", others "active". A forgotten e-mail may register again (with a new
 *                  key: the old events stay unreadable).
 *   BootstrapAdmin by an admin actor (the operator tool); again on an admin is a no-op.
 *   ApproveVendor  admin; the user must be a vendor; approving an active vendor is a no-op.
 *   ChangeUserRole admin, not on itself; to vendor means pending approval again.
 *   ForgetUser     the user itself or an admin; forgetting twice is a no-op.
 * Pure: no I/O, clock or randomness. */
#ifndef USERS_H
#define USERS_H

#include "hd_context.h"

#define USERS_NS             "eventshop.users."
#define USERS_ID_NS          "eventshop-user" /* es_uuid_derive namespace of user ids */
#define USERS_INDEX_HEX      64               /* hex chars of an e-mail blind index */
#define USERS_SEALED_MAX_B64 4096             /* longest sealed field, as base64 */

/* hd_context_t.decide for users (view unused): see hd_context.h for ownership. Rejection codes:
 * invalid_field, already_registered, unknown_user, user_forgotten, not_vendor, not_admin,
 * not_owner, self_role_change, unknown_command. */
hd_decide_fn users_decide;
/* hd_context_t.evolve for users: state stolen, payload borrowed, new state owned. */
hd_evolve_fn users_evolve;

#endif
