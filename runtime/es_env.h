/* es_env — configuration from environment variables with local defaults (DESIGN.md §6).
 * Secrets are read from files (EVENTSHOP_*_FILE) or the environment and never logged. */
#ifndef ES_ENV_H
#define ES_ENV_H

#include <stddef.h>

/* Borrowed: the environment's value, or def. */
const char *es_env_str(const char *name, const char *def);
long es_env_long(const char *name, long def);
/* Owned: the secret from $name_FILE's file contents (trailing newline stripped) or $name,
 * or NULL if neither is set. */
char *es_env_secret(const char *name);
/* Owned: a whole file's contents, NUL-terminated, or NULL on error (errno set). len may be NULL. */
char *es_read_file(const char *path, size_t *len);

/* Common settings, each with its default. */
#define ES_DEFAULT_BROKERS      "127.0.0.1:9092"
#define ES_DEFAULT_REGISTRY_URL "http://127.0.0.1:8081"
const char *es_env_brokers(void);      /* EVENTSHOP_KAFKA_BROKERS */
const char *es_env_registry_url(void); /* EVENTSHOP_REGISTRY_URL */
const char *es_env_schema_dir(void);   /* EVENTSHOP_SCHEMA_DIR, default: compiled-in source dir */
int es_env_partitions(void);           /* EVENTSHOP_PARTITIONS, default 4 */

#endif
