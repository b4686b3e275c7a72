/* users_crypto — the users context's secrets, shared by the API, the eventshop-users tool and the
 * notifications subscriber (which opens recipients' sealed addresses):
 *
 *   - E-mail normalisation and the blind index: hex HMAC-SHA256 of the normalised e-mail under
 *     the server's index key (32 bytes, from EVENTSHOP_USERS_INDEX_KEY_FILE as 64 hex digits).
 *     Events and read models carry only the index, never the e-mail, so login can find a user
 *     and the decider can tell a duplicate without anyone reading the address; being keyed, it
 *     cannot be reversed by hashing guessed addresses without the server key.
 *   - Sealing: each personal field (and the password hash) is sealed with the user's own 32-byte
 *     key by XChaCha20-Poly1305 (libsodium, IETF AEAD) with a random 24-byte nonce and associated
 *     data "eventshop-user:<user_id>:<field>", so a sealed field cannot be moved to another user
 *     or field unnoticed. Wire form: base64(nonce || ciphertext || tag), the codec's bytes
 *     mapping. The keys live outside Kafka (MySQL eventshop_keys.user_keys); destroying a key
 *     makes every field sealed with it unreadable (crypto-shredding).
 *   - Passwords: Argon2id (libargon2) encoded strings, t=2, m=19 MiB, p=1 (OWASP's minimum
 *     recommendation, ~20-40 ms here), 16-byte random salt, 32-byte tag. A dummy verification
 *     exists so that a login for an unknown e-mail costs the same as one with a wrong password.
 *
 * Nothing here logs; no function puts a secret in an error message. Thread-safe once
 * users_crypto_init has returned 0. */
#ifndef USERS_CRYPTO_H
#define USERS_CRYPTO_H

#include "es_err.h"
#include "es_uuid.h"
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define USERS_KEY_BYTES     32
#define USERS_INDEX_HEX_LEN 65 /* 64 hex digits + NUL */
#define USERS_EMAIL_MAX     254
#define USERS_PASSWORD_MIN  8
#define USERS_PASSWORD_MAX  256
#define USERS_ARGON2_T      2
#define USERS_ARGON2_M_KIB  19456
#define USERS_ARGON2_P      1
#define USERS_USER_ID_NS    "eventshop-user"

/* Initialises libsodium; 0, or -1 with err ES_EINTERNAL. Call once before anything else. */
int users_crypto_init(es_err_t *err);

/* Normalises email (borrowed) into out (cap bytes): surrounding blanks trimmed, lowercased
 * (ASCII), then checked: one '@', non-empty local part and domain, a dot in the domain, only
 * printable ASCII without blanks, at most USERS_EMAIL_MAX bytes. 0, or -1 with err ES_EINVAL
 * (the message does not quote the address). */
int users_email_normalise(const char *email, char *out, size_t cap, es_err_t *err);

/* Loads the index key from path (borrowed): a file holding 64 hex digits (blanks around them
 * ignored). 0, or -1 with err (ES_EIO unreadable, ES_EINVAL malformed; never the content). */
int users_index_key_load(const char *path, unsigned char key[USERS_KEY_BYTES], es_err_t *err);

/* The blind index of a normalised e-mail, as 64 lowercase hex digits into out. */
void users_blind_index(const unsigned char key[USERS_KEY_BYTES], const char *norm_email,
                       char out[USERS_INDEX_HEX_LEN]);
/* The user id of a blind index: es_uuid_derive(USERS_USER_ID_NS, index). */
void users_user_id(const char *index, char out[ES_UUID_LEN]);

/* A fresh random user key. */
void users_key_new(unsigned char key[USERS_KEY_BYTES]);
/* Hex (64 digits + NUL) of a key and back; users_key_from_hex returns 0 or -1. */
void users_key_to_hex(const unsigned char key[USERS_KEY_BYTES], char out[2 * USERS_KEY_BYTES + 1]);
int users_key_from_hex(const char *hex, unsigned char key[USERS_KEY_BYTES]);

/* Seals plain (borrowed, NUL-terminated) for (user_id, field); returns the owned base64 string
 * (free()). Never fails. */
char *users_seal(const unsigned char key[USERS_KEY_BYTES], const char *user_id, const char *field,
                 const char *plain);
/* users_seal as a new JSON string (the codec's bytes mapping), e.g. for a command's field. */
json_t *users_seal_json(const unsigned char key[USERS_KEY_BYTES], const char *user_id,
                        const char *field, const char *plain);
/* Opens a sealed base64 string for (user_id, field); returns the owned plaintext (free(); wipe
 * it if it is a secret) or NULL with err ES_EUNAUTH when it is not valid base64, was sealed with
 * another key, for another user or field, or was altered. */
char *users_open(const unsigned char key[USERS_KEY_BYTES], const char *user_id, const char *field,
                 const char *sealed, es_err_t *err);

/* Argon2id-hashes password (borrowed); returns the owned encoded string
 * ("$argon2id$v=19$m=19456,t=2,p=1$salt$tag", free()) or NULL with err ES_EINTERNAL. */
char *users_password_hash(const char *password, es_err_t *err);
/* Whether password matches the encoded Argon2id hash; false for a malformed hash. */
bool users_password_verify(const char *encoded, const char *password);
/* Spends the time of one verification against a fixed hash and returns false: call it when the
 * user does not exist, so that timing does not tell which e-mails are registered. */
bool users_password_verify_dummy(const char *password);

#endif
