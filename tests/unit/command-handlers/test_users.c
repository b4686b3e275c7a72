#include "es_uuid.h"
#include "users.h"
#include <criterion/criterion.h>
#include <string.h>

#define NS    USERS_NS
#define INDEX "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

static char user_id[ES_UUID_LEN];

static void setup(void)
{
    es_uuid_derive(USERS_ID_NS, INDEX, user_id);
}

static json_t *meta(const char *actor, const char *role, const char *aggregate)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:n, s:n}", "command_id",
                     "6f1c1f4e-0000-4000-8000-000000000001", "correlation_id", "corr-1",
                     "aggregate_id", aggregate, "issued_at", (json_int_t)1700000000000, "actor",
                     actor, "actor_role", role, "actor_vendor", "expected_version");
}

static json_t *register_cmd(const char *actor, const char *actor_role, const char *role)
{
    return json_pack("{s:o, s:s, s:s, s:s, s:s, s:s, s:n, s:s}", "metadata",
                     meta(actor, actor_role, user_id), "user_id", user_id, "email_index", INDEX,
                     "role", role, "email_enc", "c2VhbGVkLWVtYWls", "name_enc",
                     "c2VhbGVkLW5hbWU=", "phone_enc", "password_hash_enc", "c2VhbGVkLWhhc2g=");
}

static json_t *simple_cmd(const char *actor, const char *actor_role, const char *id)
{
    return json_pack("{s:o, s:s}", "metadata", meta(actor, actor_role, id), "user_id", id);
}

static json_t *state(const char *role, const char *status)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:I}", "user_id", user_id, "email_index", INDEX, "role",
                     role, "status", status, "version", (json_int_t)1);
}

/* decides cmd (stolen); returns the reason or NULL, events left in d */
static const char *decide(const json_t *st, const char *type, json_t *cmd, hd_decision_t *d)
{
    hd_decision_init(d);
    json_t *view = json_object();
    cr_assert_eq(users_decide(st, type, cmd, view, d), 0);
    json_decref(view);
    json_decref(cmd);
    if (d->reason)
        cr_assert_eq(json_array_size(d->events), 0);
    return d->reason;
}

static void expect_reason(const json_t *st, const char *type, json_t *cmd, const char *reason)
{
    hd_decision_t d;
    const char *got = decide(st, type, cmd, &d);
    cr_assert(got, "expected %s, got accepted", reason);
    cr_assert_str_eq(got, reason, "detail: %s", d.detail);
    hd_decision_release(&d);
}

static const json_t *only_event(hd_decision_t *d, const char *type)
{
    cr_assert_eq(json_array_size(d->events), 1);
    const json_t *ev = json_array_get(d->events, 0);
    cr_assert_str_eq(json_string_value(json_object_get(ev, "type")), type);
    return json_object_get(ev, "payload");
}

TestSuite(users, .init = setup);

Test(users, customer_registers_active_with_sealed_fields_copied)
{
    hd_decision_t d;
    cr_assert_null(
        decide(NULL, NS "RegisterUser", register_cmd(user_id, "customer", "customer"), &d));
    const json_t *p = only_event(&d, NS "UserRegistered");
    cr_assert_str_eq(json_string_value(json_object_get(p, "status")), "active");
    cr_assert_str_eq(json_string_value(json_object_get(p, "email_enc")), "c2VhbGVkLWVtYWls");
    cr_assert(json_is_null(json_object_get(p, "phone_enc")));
    hd_decision_release(&d);
}

Test(users, vendor_registers_pending)
{
    hd_decision_t d;
    cr_assert_null(decide(NULL, NS "RegisterUser", register_cmd(user_id, "vendor", "vendor"), &d));
    const json_t *p = only_event(&d, NS "UserRegistered");
    cr_assert_str_eq(json_string_value(json_object_get(p, "status")), "pending");
    hd_decision_release(&d);
}

Test(users, same_email_twice_is_already_registered)
{
    json_t *st = state("customer", "active");
    expect_reason(st, NS "RegisterUser", register_cmd(user_id, "customer", "customer"),
                  "already_registered");
    json_decref(st);
}

Test(users, forgotten_email_may_register_again)
{
    json_t *st = state("customer", "forgotten");
    hd_decision_t d;
    cr_assert_null(
        decide(st, NS "RegisterUser", register_cmd(user_id, "customer", "customer"), &d));
    only_event(&d, NS "UserRegistered");
    hd_decision_release(&d);
    json_decref(st);
}

Test(users, user_id_must_derive_from_email_index)
{
    json_t *cmd = register_cmd(user_id, "customer", "customer");
    json_object_set_new(
        cmd, "email_index",
        json_string("0000000000000000000000000000000000000000000000000000000000000000"));
    expect_reason(NULL, NS "RegisterUser", cmd, "invalid_field");
}

Test(users, missing_sealed_password_is_invalid)
{
    json_t *cmd = register_cmd(user_id, "customer", "customer");
    json_object_del(cmd, "password_hash_enc");
    expect_reason(NULL, NS "RegisterUser", cmd, "invalid_field");
}

Test(users, registrant_cannot_make_itself_admin)
{
    expect_reason(NULL, NS "RegisterUser", register_cmd(user_id, "customer", "admin"), "not_admin");
    expect_reason(NULL, NS "RegisterUser", register_cmd(user_id, "admin", "admin"), "not_admin");
}

Test(users, admin_may_register_another_admin)
{
    hd_decision_t d;
    cr_assert_null(decide(NULL, NS "RegisterUser", register_cmd("admin-1", "admin", "admin"), &d));
    only_event(&d, NS "UserRegistered");
    hd_decision_release(&d);
}

Test(users, bootstrap_needs_admin_actor_and_is_idempotent)
{
    json_t *cmd = register_cmd("bootstrap", "customer", "admin");
    json_object_del(cmd, "role");
    expect_reason(NULL, NS "BootstrapAdmin", cmd, "not_admin");

    hd_decision_t d;
    cmd = register_cmd("bootstrap", "admin", "admin");
    json_object_del(cmd, "role");
    cr_assert_null(decide(NULL, NS "BootstrapAdmin", json_deep_copy(cmd), &d));
    const json_t *p = only_event(&d, NS "UserRegistered");
    cr_assert_str_eq(json_string_value(json_object_get(p, "role")), "admin");
    hd_decision_release(&d);

    json_t *st = state("admin", "active");
    cr_assert_null(decide(st, NS "BootstrapAdmin", json_deep_copy(cmd), &d));
    cr_assert_eq(json_array_size(d.events), 0);
    hd_decision_release(&d);
    json_decref(st);

    st = state("customer", "active");
    expect_reason(st, NS "BootstrapAdmin", cmd, "already_registered");
    json_decref(st);
}

Test(users, only_admin_approves_pending_vendor)
{
    json_t *st = state("vendor", "pending");
    expect_reason(st, NS "ApproveVendor", simple_cmd(user_id, "vendor", user_id), "not_admin");
    hd_decision_t d;
    cr_assert_null(decide(st, NS "ApproveVendor", simple_cmd("admin-1", "admin", user_id), &d));
    const json_t *p = only_event(&d, NS "VendorApproved");
    cr_assert_str_eq(json_string_value(json_object_get(p, "vendor_id")), user_id);
    hd_decision_release(&d);

    json_t *next = users_evolve(json_deep_copy(st), NS "VendorApproved", p);
    cr_assert_str_eq(json_string_value(json_object_get(next, "status")), "active");
    cr_assert_null(decide(next, NS "ApproveVendor", simple_cmd("admin-1", "admin", user_id), &d));
    cr_assert_eq(json_array_size(d.events), 0, "approving twice emits nothing");
    hd_decision_release(&d);
    json_decref(next);
    json_decref(st);
}

Test(users, approving_a_customer_or_nobody_is_rejected)
{
    json_t *st = state("customer", "active");
    expect_reason(st, NS "ApproveVendor", simple_cmd("admin-1", "admin", user_id), "not_vendor");
    expect_reason(NULL, NS "ApproveVendor", simple_cmd("admin-1", "admin", user_id),
                  "unknown_user");
    json_decref(st);
}

Test(users, change_role_rules)
{
    json_t *st = state("customer", "active");
    json_t *cmd = simple_cmd("admin-1", "admin", user_id);
    json_object_set_new(cmd, "role", json_string("vendor"));
    hd_decision_t d;
    cr_assert_null(decide(st, NS "ChangeUserRole", json_deep_copy(cmd), &d));
    const json_t *p = only_event(&d, NS "UserRoleChanged");
    cr_assert_str_eq(json_string_value(json_object_get(p, "status")), "pending");
    cr_assert_str_eq(json_string_value(json_object_get(p, "previous_role")), "customer");
    hd_decision_release(&d);
    json_object_set_new(json_object_get(cmd, "metadata"), "actor_role", json_string("vendor"));
    expect_reason(st, NS "ChangeUserRole", cmd, "not_admin");

    json_t *self = simple_cmd(user_id, "admin", user_id);
    json_object_set_new(self, "role", json_string("customer"));
    json_t *admin = state("admin", "active");
    expect_reason(admin, NS "ChangeUserRole", self, "self_role_change");
    json_decref(admin);
    json_decref(st);
}

Test(users, forget_by_self_or_admin_only_and_idempotent)
{
    json_t *st = state("customer", "active");
    expect_reason(st, NS "ForgetUser", simple_cmd("someone-else", "customer", user_id),
                  "not_owner");
    hd_decision_t d;
    cr_assert_null(decide(st, NS "ForgetUser", simple_cmd(user_id, "customer", user_id), &d));
    const json_t *p = only_event(&d, NS "UserForgotten");
    json_t *next = users_evolve(json_deep_copy(st), NS "UserForgotten", p);
    hd_decision_release(&d);
    cr_assert_str_eq(json_string_value(json_object_get(next, "status")), "forgotten");
    cr_assert_str_eq(json_string_value(json_object_get(next, "email_index")), "",
                     "the compacted state must not keep the index");
    cr_assert_null(decide(next, NS "ForgetUser", simple_cmd("admin-1", "admin", user_id), &d));
    cr_assert_eq(json_array_size(d.events), 0);
    hd_decision_release(&d);
    expect_reason(next, NS "ApproveVendor", simple_cmd("admin-1", "admin", user_id),
                  "user_forgotten");
    json_decref(next);
    json_decref(st);
}

Test(users, unknown_command_is_rejected)
{
    expect_reason(NULL, NS "Nope", simple_cmd("a", "admin", user_id), "unknown_command");
}
