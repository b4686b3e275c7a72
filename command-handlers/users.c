#include "users.h"
#include "dm_json.h"
#include "es_uuid.h"
#include <stdbool.h>
#include <string.h>

static bool eq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* user_id must be a uuid, the command's aggregate, and (for a new user) the one its e-mail's
 * blind index derives: the invariant "one e-mail, one aggregate" holds whoever sent it */
static int check_user_id(hd_decision_t *d, const json_t *cmd, const char **user_id)
{
    const char *id = dm_str(cmd, "user_id");
    const char *agg = dm_str(json_object_get(cmd, "metadata"), "aggregate_id");
    if (!id || !es_uuid_valid(id))
        return hd_reject(d, "invalid_field", "user_id: '%.64s' is not a uuid", id ? id : ""), -1;
    if (!eq(agg, id)) {
        hd_reject(d, "invalid_field", "metadata.aggregate_id: '%.64s' is not the user_id '%s'",
                  agg ? agg : "", id);
        return -1;
    }
    *user_id = id;
    return 0;
}

static int check_index(hd_decision_t *d, const char *user_id, const char *index)
{
    size_t n = index ? strlen(index) : 0;
    bool hex = n == USERS_INDEX_HEX;
    for (size_t i = 0; hex && i < n; i++)
        hex = (index[i] >= '0' && index[i] <= '9') || (index[i] >= 'a' && index[i] <= 'f');
    if (!hex)
        return hd_reject(d, "invalid_field", "email_index: must be 64 lowercase hex digits"), -1;
    char want[ES_UUID_LEN];
    es_uuid_derive(USERS_ID_NS, index, want);
    if (strcmp(want, user_id) != 0) {
        hd_reject(d, "invalid_field", "user_id: '%s' is not derived from the email_index", user_id);
        return -1;
    }
    return 0;
}

/* a sealed field (base64 in JSON): present when required, non-empty, bounded */
static int check_sealed(hd_decision_t *d, const json_t *cmd, const char *field, bool required)
{
    const json_t *v = dm_opt(cmd, field);
    if (!v) {
        if (!required)
            return 0;
        return hd_reject(d, "invalid_field", "%s: is missing", field), -1;
    }
    size_t n = json_string_length(v);
    if (!json_is_string(v) || n < 4 || n > USERS_SEALED_MAX_B64) {
        hd_reject(d, "invalid_field", "%s: must be sealed bytes of at most %d base64 characters",
                  field, USERS_SEALED_MAX_B64);
        return -1;
    }
    return 0;
}

static bool is_role(const char *role)
{
    return eq(role, "admin") || eq(role, "vendor") || eq(role, "customer");
}

/* the UserRegistered of a RegisterUser or BootstrapAdmin, sealed fields copied as they came */
static json_t *registered(const json_t *cmd, const char *user_id, const char *role)
{
    json_t *ev = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:O, s:O, s:O, s:O}", "user_id", user_id, "email_index",
        dm_str(cmd, "email_index"), "role", role, "status",
        eq(role, "vendor") ? "pending" : "active", "crypto",
        dm_str(cmd, "crypto") ? dm_str(cmd, "crypto") : "xchacha20poly1305-ietf/v1", "email_enc",
        json_object_get(cmd, "email_enc"), "name_enc", json_object_get(cmd, "name_enc"),
        "phone_enc",
        json_object_get(cmd, "phone_enc") ? json_object_get(cmd, "phone_enc") : json_null(),
        "password_hash_enc", json_object_get(cmd, "password_hash_enc"));
    return ev;
}

static int check_registration(hd_decision_t *d, const json_t *cmd, const char **user_id)
{
    if (check_user_id(d, cmd, user_id) || check_index(d, *user_id, dm_str(cmd, "email_index")) ||
        check_sealed(d, cmd, "email_enc", true) || check_sealed(d, cmd, "name_enc", true) ||
        check_sealed(d, cmd, "phone_enc", false) || check_sealed(d, cmd, "password_hash_enc", true))
        return -1;
    return 0;
}

static int decide_register(const json_t *state, const json_t *cmd, hd_decision_t *out)
{
    const json_t *meta = json_object_get(cmd, "metadata");
    const char *user_id = NULL;
    const char *role = dm_str(cmd, "role");
    if (check_registration(out, cmd, &user_id))
        return 0;
    if (!is_role(role))
        return hd_reject(out, "invalid_field", "role: '%.16s' is not a role", role ? role : "");
    if (eq(role, "admin") && (!dm_is_admin(meta) || eq(dm_str(meta, "actor"), user_id)))
        return hd_reject(out, "not_admin", "only an admin may register an admin");
    if (state && !dm_is_status(state, "forgotten"))
        return hd_reject(out, "already_registered", "this e-mail is already registered");
    hd_emit(out, USERS_NS "UserRegistered", registered(cmd, user_id, role));
    return 0;
}

static int decide_bootstrap(const json_t *state, const json_t *cmd, hd_decision_t *out)
{
    const char *user_id = NULL;
    if (!dm_is_admin(json_object_get(cmd, "metadata")))
        return hd_reject(out, "not_admin", "only the operator's admin actor may bootstrap");
    if (check_registration(out, cmd, &user_id))
        return 0;
    if (state && !dm_is_status(state, "forgotten")) {
        if (eq(dm_str(state, "role"), "admin"))
            return 0; /* bootstrapping again is harmless: accepted, nothing happens */
        return hd_reject(out, "already_registered", "this e-mail is already registered");
    }
    hd_emit(out, USERS_NS "UserRegistered", registered(cmd, user_id, "admin"));
    return 0;
}

/* the user exists and is not forgotten */
static int check_existing(const json_t *state, const json_t *cmd, const char **user_id,
                          hd_decision_t *out)
{
    if (check_user_id(out, cmd, user_id))
        return -1;
    if (!state)
        return hd_reject(out, "unknown_user", "no user '%s'", *user_id), -1;
    if (dm_is_status(state, "forgotten"))
        return hd_reject(out, "user_forgotten", "user '%s' was forgotten", *user_id), -1;
    return 0;
}

static int decide_approve(const json_t *state, const json_t *cmd, hd_decision_t *out)
{
    const char *user_id = NULL;
    if (!dm_is_admin(json_object_get(cmd, "metadata")))
        return hd_reject(out, "not_admin", "only an admin may approve a vendor");
    if (check_existing(state, cmd, &user_id, out))
        return 0;
    if (!eq(dm_str(state, "role"), "vendor"))
        return hd_reject(out, "not_vendor", "user '%s' is not a vendor", user_id);
    if (eq(dm_str(state, "status"), "active"))
        return 0; /* already approved */
    hd_emit(out, USERS_NS "VendorApproved",
            json_pack("{s:s, s:s}", "user_id", user_id, "vendor_id", user_id));
    return 0;
}

static int decide_change_role(const json_t *state, const json_t *cmd, hd_decision_t *out)
{
    const json_t *meta = json_object_get(cmd, "metadata");
    const char *user_id = NULL;
    const char *role = dm_str(cmd, "role");
    if (!dm_is_admin(meta))
        return hd_reject(out, "not_admin", "only an admin may change a role");
    if (check_existing(state, cmd, &user_id, out))
        return 0;
    if (!is_role(role))
        return hd_reject(out, "invalid_field", "role: '%.16s' is not a role", role ? role : "");
    if (eq(dm_str(meta, "actor"), user_id))
        return hd_reject(out, "self_role_change", "an admin may not change its own role");
    if (eq(dm_str(state, "role"), role))
        return 0;
    hd_emit(out, USERS_NS "UserRoleChanged",
            json_pack("{s:s, s:s, s:s, s:s}", "user_id", user_id, "role", role, "previous_role",
                      dm_str(state, "role"), "status", eq(role, "vendor") ? "pending" : "active"));
    return 0;
}

static int decide_forget(const json_t *state, const json_t *cmd, hd_decision_t *out)
{
    const json_t *meta = json_object_get(cmd, "metadata");
    const char *user_id = NULL;
    if (check_user_id(out, cmd, &user_id))
        return 0;
    if (!dm_is_admin(meta) && !eq(dm_str(meta, "actor"), user_id))
        return hd_reject(out, "not_owner", "only the user itself or an admin may forget a user");
    if (!state)
        return hd_reject(out, "unknown_user", "no user '%s'", user_id);
    if (dm_is_status(state, "forgotten"))
        return 0; /* forgetting is idempotent */
    hd_emit(out, USERS_NS "UserForgotten", json_pack("{s:s}", "user_id", user_id));
    return 0;
}

int users_decide(const json_t *state, const char *cmd_type, const json_t *cmd, const json_t *view,
                 hd_decision_t *out)
{
    (void)view;
    if (!json_is_object(cmd) || !cmd_type)
        return -1;
    if (strcmp(cmd_type, USERS_NS "RegisterUser") == 0)
        return decide_register(state, cmd, out);
    if (strcmp(cmd_type, USERS_NS "BootstrapAdmin") == 0)
        return decide_bootstrap(state, cmd, out);
    if (strcmp(cmd_type, USERS_NS "ApproveVendor") == 0)
        return decide_approve(state, cmd, out);
    if (strcmp(cmd_type, USERS_NS "ChangeUserRole") == 0)
        return decide_change_role(state, cmd, out);
    if (strcmp(cmd_type, USERS_NS "ForgetUser") == 0)
        return decide_forget(state, cmd, out);
    return hd_reject(out, "unknown_command", "'%.128s' is not a users command", cmd_type);
}

json_t *users_evolve(json_t *state, const char *event_type, const json_t *payload)
{
    if (strcmp(event_type, USERS_NS "UserRegistered") == 0) {
        json_decref(state);
        return json_pack("{s:s, s:s, s:s, s:s, s:I}", "user_id", dm_str(payload, "user_id") ?: "",
                         "email_index", dm_str(payload, "email_index") ?: "", "role",
                         dm_str(payload, "role") ?: "customer", "status",
                         dm_str(payload, "status") ?: "active", "version", (json_int_t)0);
    }
    if (!state)
        return NULL; /* a change to nothing: the log is broken; keep no state rather than crash */
    if (strcmp(event_type, USERS_NS "VendorApproved") == 0) {
        json_object_set_new(state, "status", json_string("active"));
    } else if (strcmp(event_type, USERS_NS "UserRoleChanged") == 0) {
        if (dm_str(payload, "role"))
            json_object_set_new(state, "role", json_string(dm_str(payload, "role")));
        if (dm_str(payload, "status"))
            json_object_set_new(state, "status", json_string(dm_str(payload, "status")));
    } else if (strcmp(event_type, USERS_NS "UserForgotten") == 0) {
        /* the compacted changelog keeps the latest state only: drop the index from it */
        json_object_set_new(state, "status", json_string("forgotten"));
        json_object_set_new(state, "email_index", json_string(""));
    }
    return state;
}
