#include "catalog.h"
#include "dm_json.h"
#include <stdbool.h>
#include <string.h>

#define SKU_MAX        64
#define NAME_MAX_CHARS 200
#define DESC_MAX_CHARS 4000
#define CAT_MAX_CHARS  100
#define VENDOR_MAX     64
#define ATTRS_MAX      50
#define ATTR_KEY_MAX   64
#define ATTR_VALUE_MAX 500

/* characters, not bytes: jansson strings are valid UTF-8, so count the non-continuation bytes */
static size_t utf8_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* 0 if s (may be NULL: missing) has lo..hi characters, else a rejection naming field */
static int check_len(hd_decision_t *d, const char *field, const char *s, size_t lo, size_t hi)
{
    if (!s)
        return hd_reject(d, "invalid_field", "%s: is missing", field), -1;
    size_t n = utf8_len(s);
    if (n < lo || n > hi) {
        hd_reject(d, "invalid_field", "%s: must be %zu to %zu characters, got %zu", field, lo, hi,
                  n);
        return -1;
    }
    return 0;
}

static int check_sku(hd_decision_t *d, const char *sku)
{
    if (check_len(d, "sku", sku, 1, SKU_MAX))
        return -1;
    for (const char *p = sku; *p; p++) {
        char c = *p;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-')) {
            hd_reject(d, "invalid_field", "sku: '%s' may hold only A-Z a-z 0-9 . _ -", sku);
            return -1;
        }
    }
    return 0;
}

static int check_currency(hd_decision_t *d, const char *cur)
{
    if (!cur || strlen(cur) != 3 || cur[0] < 'A' || cur[0] > 'Z' || cur[1] < 'A' || cur[1] > 'Z' ||
        cur[2] < 'A' || cur[2] > 'Z') {
        hd_reject(d, "invalid_field", "currency: '%.16s' is not an ISO-4217 code", cur ? cur : "");
        return -1;
    }
    return 0;
}

static int check_attributes(hd_decision_t *d, const json_t *attrs)
{
    if (!json_is_object(attrs))
        return hd_reject(d, "invalid_field", "attributes: must be a map of strings"), -1;
    if (json_object_size(attrs) > ATTRS_MAX) {
        hd_reject(d, "invalid_field", "attributes: at most %d entries, got %zu", ATTRS_MAX,
                  json_object_size(attrs));
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)attrs, k, v)
    {
        size_t kn = utf8_len(k);
        if (kn < 1 || kn > ATTR_KEY_MAX) {
            hd_reject(d, "invalid_field", "attributes: key '%.64s' must be 1 to %d characters", k,
                      ATTR_KEY_MAX);
            return -1;
        }
        if (!json_is_string(v) || utf8_len(json_string_value(v)) > ATTR_VALUE_MAX) {
            hd_reject(d, "invalid_field",
                      "attributes.%.64s: must be a string of at most %d characters", k,
                      ATTR_VALUE_MAX);
            return -1;
        }
    }
    return 0;
}

/* 0 when the actor may act for vendor_id: an admin always, a vendor only for its own id */
static int check_owner(hd_decision_t *d, const json_t *meta, const char *vendor_id, const char *sku)
{
    const char *role = dm_str(meta, "actor_role");
    const char *actor_vendor = dm_str(meta, "actor_vendor");
    if (dm_is_admin(meta))
        return 0;
    if (role && strcmp(role, "vendor") == 0 && actor_vendor && vendor_id &&
        strcmp(actor_vendor, vendor_id) == 0)
        return 0;
    if (role && strcmp(role, "vendor") == 0)
        hd_reject(d, "not_owner", "sku '%.64s' belongs to vendor '%.64s', not to '%.64s'", sku,
                  vendor_id ? vendor_id : "", actor_vendor ? actor_vendor : "");
    else
        hd_reject(d, "not_owner", "role '%.16s' may not manage products", role ? role : "");
    return -1;
}

/* the aggregate is the sku: the command's metadata must name the same one */
static int check_aggregate(hd_decision_t *d, const json_t *cmd, const char *sku)
{
    const char *agg = dm_str(json_object_get(cmd, "metadata"), "aggregate_id");
    if (!agg || !sku || strcmp(agg, sku) != 0) {
        hd_reject(d, "invalid_field", "metadata.aggregate_id: '%.64s' is not the sku '%.64s'",
                  agg ? agg : "", sku ? sku : "");
        return -1;
    }
    return 0;
}

static int decide_list(const json_t *state, const json_t *cmd, hd_decision_t *out)
{
    const json_t *meta = json_object_get(cmd, "metadata");
    const char *sku = dm_str(cmd, "sku");
    const char *vendor = dm_str(cmd, "vendor_id");
    const char *description = dm_str(cmd, "description");
    json_t *attrs = dm_opt(cmd, "attributes");
    if (check_owner(out, meta, vendor, sku ? sku : ""))
        return 0;
    if (check_sku(out, sku) || check_aggregate(out, cmd, sku) ||
        check_len(out, "vendor_id", vendor, 1, VENDOR_MAX) ||
        check_len(out, "name", dm_str(cmd, "name"), 1, NAME_MAX_CHARS) ||
        check_len(out, "description", description ? description : "", 0, DESC_MAX_CHARS) ||
        check_len(out, "category", dm_str(cmd, "category"), 1, CAT_MAX_CHARS) ||
        check_currency(out, dm_str(cmd, "currency")) || (attrs && check_attributes(out, attrs)))
        return 0;
    if (state && dm_is_status(state, "DELISTED"))
        return hd_reject(out, "delisted", "sku '%s' is delisted", sku);
    if (state)
        return hd_reject(out, "already_listed", "sku '%s' is already listed", sku);
    hd_emit(out, CATALOG_NS "ProductListed",
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s}", "sku", sku, "vendor_id", vendor,
                      "name", dm_str(cmd, "name"), "description", description ? description : "",
                      "category", dm_str(cmd, "category"), "attributes",
                      attrs ? json_deep_copy(attrs) : json_object(), "currency",
                      dm_str(cmd, "currency")));
    return 0;
}

/* unknown -> delisted -> not the owner, shared by the commands on an existing product */
static int check_existing(const json_t *state, const json_t *cmd, const char *sku,
                          hd_decision_t *out)
{
    if (!sku)
        return hd_reject(out, "invalid_field", "sku: is missing"), -1;
    if (check_aggregate(out, cmd, sku))
        return -1;
    if (!state)
        return hd_reject(out, "unknown_sku", "sku '%.64s' is not listed", sku), -1;
    if (dm_is_status(state, "DELISTED"))
        return hd_reject(out, "delisted", "sku '%s' is delisted", sku), -1;
    return check_owner(out, json_object_get(cmd, "metadata"), dm_str(state, "vendor_id"), sku);
}

static int decide_change(const json_t *state, const json_t *cmd, hd_decision_t *out)
{
    const char *sku = dm_str(cmd, "sku");
    if (check_existing(state, cmd, sku, out))
        return 0;
    const char *name = dm_str(cmd, "name");
    const char *description = dm_str(cmd, "description");
    const char *category = dm_str(cmd, "category");
    json_t *attrs = dm_opt(cmd, "attributes");
    if ((name && check_len(out, "name", name, 1, NAME_MAX_CHARS)) ||
        (description && check_len(out, "description", description, 0, DESC_MAX_CHARS)) ||
        (category && check_len(out, "category", category, 1, CAT_MAX_CHARS)) ||
        (attrs && check_attributes(out, attrs)))
        return 0;
    json_t *next = json_pack(
        "{s:s, s:s, s:s, s:s, s:o}", "sku", sku, "name", name ? name : dm_str(state, "name"),
        "description", description ? description : (dm_str(state, "description") ?: ""), "category",
        category ? category : dm_str(state, "category"), "attributes",
        json_deep_copy(attrs ? attrs : json_object_get(state, "attributes")));
    if (!next) /* a state missing a member: refuse rather than guess */
        return hd_reject(out, "invalid_field", "sku '%s' has an incomplete state", sku);
    bool same =
        strcmp(dm_str(next, "name"), dm_str(state, "name") ?: "") == 0 &&
        strcmp(dm_str(next, "description"), dm_str(state, "description") ?: "") == 0 &&
        strcmp(dm_str(next, "category"), dm_str(state, "category") ?: "") == 0 &&
        json_equal(json_object_get(next, "attributes"), json_object_get(state, "attributes"));
    if (same) {
        json_decref(next);
        return 0; /* accepted, nothing happened */
    }
    hd_emit(out, CATALOG_NS "ProductDetailsChanged", next);
    return 0;
}

static int decide_delist(const json_t *state, const json_t *cmd, hd_decision_t *out)
{
    const char *sku = dm_str(cmd, "sku");
    if (check_existing(state, cmd, sku, out))
        return 0;
    hd_emit(out, CATALOG_NS "ProductDelisted", json_pack("{s:s}", "sku", sku));
    return 0;
}

int catalog_decide(const json_t *state, const char *cmd_type, const json_t *cmd, const json_t *view,
                   hd_decision_t *out)
{
    (void)view; /* the catalog reads no global view */
    if (!json_is_object(cmd))
        return -1;
    if (strcmp(cmd_type, CATALOG_NS "ListProduct") == 0)
        return decide_list(state, cmd, out);
    if (strcmp(cmd_type, CATALOG_NS "ChangeProductDetails") == 0)
        return decide_change(state, cmd, out);
    if (strcmp(cmd_type, CATALOG_NS "DelistProduct") == 0)
        return decide_delist(state, cmd, out);
    return hd_reject(out, "unknown_command", "'%.128s' is not a catalog command", cmd_type);
}

json_t *catalog_evolve(json_t *state, const char *event_type, const json_t *payload)
{
    if (strcmp(event_type, CATALOG_NS "ProductListed") == 0) {
        json_decref(state);
        json_t *attrs = json_object_get(payload, "attributes");
        return json_pack(
            "{s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:I}", "sku", dm_str(payload, "sku") ?: "",
            "vendor_id", dm_str(payload, "vendor_id") ?: "", "name", dm_str(payload, "name") ?: "",
            "description", dm_str(payload, "description") ?: "", "category",
            dm_str(payload, "category") ?: "", "attributes",
            attrs ? json_deep_copy(attrs) : json_object(), "currency",
            dm_str(payload, "currency") ?: "", "status", "LISTED", "version", (json_int_t)0);
    }
    if (!state)
        return NULL; /* a change to nothing: the log is broken; keep no state rather than crash */
    if (strcmp(event_type, CATALOG_NS "ProductDetailsChanged") == 0) {
        static const char *const fields[] = {"name", "description", "category"};
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
            const char *v = dm_str(payload, fields[i]);
            if (v)
                json_object_set_new(state, fields[i], json_string(v));
        }
        json_t *attrs = json_object_get(payload, "attributes");
        if (json_is_object(attrs))
            json_object_set_new(state, "attributes", json_deep_copy(attrs));
    } else if (strcmp(event_type, CATALOG_NS "ProductDelisted") == 0) {
        json_object_set_new(state, "status", json_string("DELISTED"));
    }
    return state;
}
