/* es_uuid — UUID strings (36 chars + NUL). */
#ifndef ES_UUID_H
#define ES_UUID_H

#define ES_UUID_LEN 37

void es_uuid_random(char out[ES_UUID_LEN]);
/* A stable name-based UUID (SHA-1, version 5) of ns and name: the same input always gives the
 * same id. Used to turn (actor, Idempotency-Key) into a command id. */
void es_uuid_derive(const char *ns, const char *name, char out[ES_UUID_LEN]);
int es_uuid_valid(const char *s);

#endif
