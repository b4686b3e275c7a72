#include "es_env.h"
#include "es_mem.h"
#include "es_strbuf.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef ES_SCHEMA_DIR
#define ES_SCHEMA_DIR "events/schemas"
#endif

const char *es_env_str(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

long es_env_long(const char *name, long def)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return def;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end) {
        fprintf(stderr, "warning: %s='%s' is not a number, using %ld\n", name, v, def);
        return def;
    }
    return n;
}

char *es_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct es_strbuf buf;
    es_strbuf_init(&buf, 4096);
    int failed = es_strbuf_fread(&buf, f, 0);
    fclose(f);
    if (failed) {
        es_strbuf_release(&buf);
        errno = EIO;
        return NULL;
    }
    return es_strbuf_take(&buf, len);
}

char *es_env_secret(const char *name)
{
    char file_var[256];
    snprintf(file_var, sizeof file_var, "%s_FILE", name);
    const char *path = getenv(file_var);
    if (path && *path) {
        size_t n;
        char *s = es_read_file(path, &n);
        if (!s)
            return NULL;
        while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
            s[--n] = '\0';
        return s;
    }
    const char *v = getenv(name);
    return v ? xstrdup(v) : NULL;
}

const char *es_env_brokers(void)
{
    return es_env_str("EVENTSHOP_KAFKA_BROKERS", ES_DEFAULT_BROKERS);
}

const char *es_env_registry_url(void)
{
    return es_env_str("EVENTSHOP_REGISTRY_URL", ES_DEFAULT_REGISTRY_URL);
}

const char *es_env_schema_dir(void)
{
    return es_env_str("EVENTSHOP_SCHEMA_DIR", ES_SCHEMA_DIR);
}

int es_env_partitions(void)
{
    long n = es_env_long("EVENTSHOP_PARTITIONS", 4);
    return n > 0 && n < 10000 ? (int)n : 4;
}
