#include "api_validate.h"
#include "es_mem.h"
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int api_verr_set(struct api_verr *e, int status, const char *field, const char *fmt, ...)
{
    if (!e || e->status)
        return -1;
    e->status = status;
    snprintf(e->field, sizeof e->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

bool api_is_json_type(const char *ct)
{
    static const char json[] = "application/json";
    if (!ct)
        return false;
    while (*ct == ' ')
        ct++;
    if (strncasecmp(ct, json, sizeof json - 1))
        return false;
    ct += sizeof json - 1;
    while (*ct == ' ')
        ct++;
    return *ct == '\0' || *ct == ';';
}

/* Nesting is checked on the raw bytes so that a hostile body never reaches the parser's own,
 * much deeper, recursion. */
static int check_depth(const char *s, size_t len, int max_depth, struct api_verr *e)
{
    int depth = 0;
    bool in_str = false, esc = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (esc)
                esc = false;
            else if (c == '\\')
                esc = true;
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max_depth)
                return api_verr_set(e, 400, "", "body nests deeper than %d levels", max_depth);
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return 0;
}

/* JSON has one number type: 3.0 is the integer 3 (as JSON Schema says), so a real without a
 * fraction within the int64 range becomes an integer before any type check; every other real
 * stays one and is refused where an integer is wanted. */
static json_t *as_integer(const json_t *x)
{
    double d = json_real_value(x);
    if (!json_is_real(x) || d < -9223372036854775808.0 || d >= 9223372036854775808.0 ||
        d != (double)(json_int_t)d)
        return NULL;
    return json_integer((json_int_t)d);
}

static void integral_reals_to_integers(json_t *v)
{
    const char *k;
    json_t *x, *n;
    size_t i;
    json_object_foreach(v, k, x) /* replacing a key's value keeps the iteration valid */
    {
        if ((n = as_integer(x)))
            json_object_set_new(v, k, n);
        else
            integral_reals_to_integers(x);
    }
    json_array_foreach(v, i, x)
    {
        if ((n = as_integer(x)))
            json_array_set_new(v, i, n);
        else
            integral_reals_to_integers(x);
    }
}

json_t *api_parse_body(const char *body, size_t len, size_t max_len, int max_depth,
                       struct api_verr *e)
{
    if (len > max_len) {
        api_verr_set(e, 413, "", "body of %zu bytes is over the %zu byte limit", len, max_len);
        return NULL;
    }
    if (!body || len == 0) {
        api_verr_set(e, 400, "", "empty body");
        return NULL;
    }
    if (check_depth(body, len, max_depth, e))
        return NULL;
    json_error_t jerr;
    json_t *v = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v) {
        api_verr_set(e, 400, "", "malformed json at line %d column %d: %s", jerr.line, jerr.column,
                     jerr.text);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        api_verr_set(e, 400, "", "body must be a json object");
        return NULL;
    }
    integral_reals_to_integers(v);
    return v;
}

/* ---- field rules (as the catalog decider's) ---- */

enum ftype { F_STR, F_MAP };

struct field_rule {
    const char *name;
    enum ftype type;
    size_t min, max;           /* characters (F_STR) or entries (F_MAP) */
    bool (*ok)(const char *s); /* extra check of a string, may be NULL */
    const char *shape;         /* what ok() wants, for the message */
};

size_t api_utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static bool is_sku_chars(const char *s)
{
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
            return false;
    return true;
}

static bool is_currency(const char *s)
{
    return strlen(s) == 3 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z' &&
           s[2] >= 'A' && s[2] <= 'Z';
}

static const struct field_rule rule_sku = {"sku", F_STR,        1,
                                           64,    is_sku_chars, "1-64 of [A-Za-z0-9._-]"};
static const struct field_rule rule_vendor = {"vendor_id", F_STR, 1, 64, NULL, NULL};
static const struct field_rule rule_name = {"name", F_STR, 1, 200, NULL, NULL};
static const struct field_rule rule_desc = {"description", F_STR, 0, 4000, NULL, NULL};
static const struct field_rule rule_cat = {"category", F_STR, 1, 100, NULL, NULL};
static const struct field_rule rule_attrs = {"attributes", F_MAP, 0, 50, NULL, NULL};
static const struct field_rule rule_cur = {"currency", F_STR, 3, 3, is_currency, "^[A-Z]{3}$"};

static int check_string(const char *field, const char *s, size_t min, size_t max,
                        struct api_verr *e)
{
    size_t n = api_utf8_chars(s);
    if (n < min || n > max) {
        if (min == max)
            return api_verr_set(e, 422, field, "'%s' must be %zu characters long", field, min);
        return api_verr_set(e, 422, field, "'%s' must be %zu-%zu characters long, not %zu", field,
                            min, max, n);
    }
    return 0;
}

static int check_map(const char *field, const json_t *v, size_t max, struct api_verr *e)
{
    if (json_object_size(v) > max)
        return api_verr_set(e, 422, field, "'%s' has %zu entries, more than %zu", field,
                            json_object_size(v), max);
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x)
    {
        char path[64];
        snprintf(path, sizeof path, "%s.%.40s", field, k);
        if (!json_is_string(x))
            return api_verr_set(e, 422, path, "'%s' must be a string", path);
        size_t kn = api_utf8_chars(k);
        if (kn < 1 || kn > 64)
            return api_verr_set(e, 422, field, "keys of '%s' must be 1-64 characters long", field);
        if (api_utf8_chars(json_string_value(x)) > 500)
            return api_verr_set(e, 422, path, "'%s' is longer than 500 characters", path);
    }
    return 0;
}

/* Checks body[rule->name] if present; returns 1 if present and valid, 0 if absent, -1 on error
 * (e set). A JSON null counts as a wrong type: no field here is nullable for a client. */
static int check_field(const json_t *body, const struct field_rule *rule, bool required,
                       struct api_verr *e)
{
    json_t *v = json_object_get(body, rule->name);
    if (!v) {
        if (required)
            return api_verr_set(e, 422, rule->name, "missing field '%s'", rule->name);
        return 0;
    }
    if (rule->type == F_MAP) {
        if (!json_is_object(v))
            return api_verr_set(e, 422, rule->name, "'%s' must be an object of strings",
                                rule->name);
        return check_map(rule->name, v, rule->max, e) ? -1 : 1;
    }
    if (!json_is_string(v))
        return api_verr_set(e, 422, rule->name, "'%s' must be a string", rule->name);
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v))
        return api_verr_set(e, 422, rule->name, "'%s' must not contain NUL", rule->name);
    if (check_string(rule->name, s, rule->min, rule->max, e))
        return -1;
    if (rule->ok && !rule->ok(s))
        return api_verr_set(e, 422, rule->name, "'%s' must match %s, not '%.64s'", rule->name,
                            rule->shape, s);
    return 1;
}

static int check_known(const json_t *body, const struct field_rule *const *rules, size_t n,
                       struct api_verr *e)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)body, k, v)
    {
        size_t i = 0;
        while (i < n && strcmp(rules[i]->name, k))
            i++;
        if (i == n)
            return api_verr_set(e, 422, k, "unknown field '%.64s'", k);
    }
    return 0;
}

json_t *api_validate_list_product(const json_t *body, const char *role, const char *token_vendor,
                                  struct api_verr *e)
{
    static const struct field_rule *const rules[] = {
        &rule_sku, &rule_vendor, &rule_name, &rule_desc, &rule_cat, &rule_attrs, &rule_cur};
    if (check_known(body, rules, sizeof rules / sizeof *rules, e))
        return NULL;
    if (check_field(body, &rule_sku, true, e) < 0 || check_field(body, &rule_name, true, e) < 0 ||
        check_field(body, &rule_desc, false, e) < 0 || check_field(body, &rule_cat, true, e) < 0 ||
        check_field(body, &rule_attrs, false, e) < 0 || check_field(body, &rule_cur, true, e) < 0)
        return NULL;

    const char *vendor = NULL;
    int has_vendor = check_field(body, &rule_vendor, false, e);
    if (has_vendor < 0)
        return NULL;
    const char *body_vendor =
        has_vendor ? json_string_value(json_object_get(body, "vendor_id")) : NULL;
    if (role && !strcmp(role, "vendor")) {
        if (!token_vendor || !*token_vendor) {
            api_verr_set(e, 403, "vendor_id", "the token names no vendor id");
            return NULL;
        }
        if (body_vendor && strcmp(body_vendor, token_vendor)) {
            api_verr_set(e, 403, "vendor_id", "vendor '%s' cannot list for vendor '%.64s'",
                         token_vendor, body_vendor);
            return NULL;
        }
        vendor = token_vendor;
    } else if (role && !strcmp(role, "admin")) {
        if (!body_vendor) {
            api_verr_set(e, 422, "vendor_id", "missing field 'vendor_id'");
            return NULL;
        }
        vendor = body_vendor;
    } else {
        api_verr_set(e, 403, "", "role '%s' cannot list products", role ? role : "");
        return NULL;
    }

    json_t *desc = json_object_get(body, "description");
    json_t *attrs = json_object_get(body, "attributes");
    return json_pack("{s:O, s:s, s:O, s:o, s:O, s:o, s:O}", "sku", json_object_get(body, "sku"),
                     "vendor_id", vendor, "name", json_object_get(body, "name"), "description",
                     desc ? json_incref(desc) : json_string(""), "category",
                     json_object_get(body, "category"), "attributes",
                     attrs ? json_incref(attrs) : json_object(), "currency",
                     json_object_get(body, "currency"));
}

json_t *api_validate_change_details(const json_t *body, struct api_verr *e)
{
    static const struct field_rule *const rules[] = {&rule_name, &rule_desc, &rule_cat,
                                                     &rule_attrs};
    const size_t n = sizeof rules / sizeof *rules;
    if (check_known(body, rules, n, e))
        return NULL;
    json_t *out = json_object();
    for (size_t i = 0; i < n; i++) {
        int rc = check_field(body, rules[i], false, e);
        if (rc < 0) {
            json_decref(out);
            return NULL;
        }
        if (rc)
            json_object_set(out, rules[i]->name, json_object_get(body, rules[i]->name));
    }
    if (json_object_size(out) == 0) {
        json_decref(out);
        api_verr_set(e, 422, "",
                     "nothing to change: give name, description, category or "
                     "attributes");
        return NULL;
    }
    return out;
}

int api_validate_only_fields(const json_t *obj, const char *const *allowed, const char *where,
                             struct api_verr *e)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        const char *const *a = allowed;
        while (*a && strcmp(*a, k))
            a++;
        if (!*a)
            return api_verr_set(e, 422, k, "%sunknown field '%.64s'", where, k);
    }
    return 0;
}

int api_validate_sku(const char *sku, int status, struct api_verr *e)
{
    size_t n = sku ? strlen(sku) : 0;
    if (n < 1 || n > 64 || !is_sku_chars(sku))
        return api_verr_set(e, status, "sku", "sku '%.64s' is not 1-64 of [A-Za-z0-9._-]",
                            sku ? sku : "");
    return 0;
}

bool api_is_valid_idempotency_key(const char *key)
{
    size_t n = key ? strlen(key) : 0;
    if (n < 1 || n > 200)
        return false;
    for (size_t i = 0; i < n; i++)
        if (key[i] < 0x20 || key[i] > 0x7e)
            return false;
    return true;
}

static int parse_i64(const char *s, size_t n, int64_t *out)
{
    if (n == 0 || n > 18)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int api_parse_if_match(const char *value, int64_t *version)
{
    if (!value)
        return -1;
    size_t n = strlen(value);
    if (n >= 2 && value[0] == '"' && value[n - 1] == '"')
        return parse_i64(value + 1, n - 2, version);
    return parse_i64(value, n, version);
}

int api_parse_prefer_wait(const char *value)
{
    if (!value)
        return 0;
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == ';')
            p++;
        if (!strncasecmp(p, "wait=", 5)) {
            p += 5;
            size_t n = strspn(p, "0123456789");
            int64_t v;
            if (parse_i64(p, n, &v) || (p[n] && p[n] != ',' && p[n] != ';' && p[n] != ' '))
                return 0;
            return v > API_MAX_WAIT_S ? API_MAX_WAIT_S : (int)v;
        }
        p += strcspn(p, ",");
    }
    return 0;
}

int api_parse_position(const char *value, int32_t *partition, int64_t *offset)
{
    if (!value)
        return -1;
    const char *colon = strchr(value, ':');
    int64_t p, o;
    /* partition: 1-9 digits (any int32 partition count is far below 10^9), as the contract's
     * pattern says */
    if (!colon || colon - value > 9 || parse_i64(value, (size_t)(colon - value), &p) ||
        parse_i64(colon + 1, strlen(colon + 1), &o))
        return -1;
    *partition = (int32_t)p;
    *offset = o;
    return 0;
}

char *api_cursor_encode(const char *sku)
{
    return xstrdup(sku);
}

char *api_cursor_decode(const char *cursor)
{
    return api_validate_sku(cursor, 400, NULL) ? NULL : xstrdup(cursor);
}

int api_parse_limit(const char *value)
{
    if (!value)
        return 50;
    int64_t v;
    if (parse_i64(value, strlen(value), &v) || v < 1 || v > 200)
        return -1;
    return (int)v;
}

static bool is_search_word_byte(unsigned char c)
{
    return isalnum(c) || c == '_' || c >= 0x80;
}

char *api_search_query(const char *q, struct api_verr *e)
{
    json_t *text = json_string(q); /* NULL when q is not UTF-8 */
    size_t n = text ? api_utf8_chars(q) : 0;
    json_decref(text);
    if (!text) {
        api_verr_set(e, 400, "q", "q is not UTF-8 text");
        return NULL;
    }
    if (n < 1 || n > API_SEARCH_MAX) {
        api_verr_set(e, 400, "q", "q must be 1-%d characters, not %zu", API_SEARCH_MAX, n);
        return NULL;
    }
    /* each byte of q gives at most itself plus "+*" around a word and one space */
    char *out = xmalloc(strlen(q) * 4 + 1), *o = out;
    const unsigned char *p = (const unsigned char *)q;
    while (*p) {
        const unsigned char *w = p;
        while (*p && is_search_word_byte(*p))
            p++;
        char word[4 * API_SEARCH_MAX + 1];
        size_t len = (size_t)(p - w);
        memcpy(word, w, len);
        word[len] = '\0';
        if (len && api_utf8_chars(word) >= API_SEARCH_MIN_WORD)
            o += sprintf(o, "%s+%s*", o == out ? "" : " ", word);
        while (*p && !is_search_word_byte(*p))
            p++;
    }
    *o = '\0';
    return out;
}
