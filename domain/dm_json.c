#include "dm_json.h"
#include <string.h>

const char *dm_str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

json_t *dm_opt(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

json_int_t dm_int(const json_t *obj, const char *key)
{
    return json_integer_value(json_object_get(obj, key));
}

bool dm_str_is(const json_t *obj, const char *key, const char *want)
{
    const char *s = dm_str(obj, key);
    return s && strcmp(s, want) == 0;
}

bool dm_is_status(const json_t *state, const char *status)
{
    return dm_str_is(state, "status", status);
}

bool dm_is_admin(const json_t *meta)
{
    return dm_str_is(meta, "actor_role", "admin");
}
