/* api_validate — checks of client input at the edge: request bodies (size, nesting, duplicate
 * keys, unknown fields, types, the decider's field limits) and header values (If-Match,
 * Idempotency-Key, Prefer, positions, cursors). Pure functions with no I/O, so they are unit
 * tested; the decider re-checks everything that matters. */
#ifndef API_VALIDATE_H
#define API_VALIDATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define API_MAX_BODY   (64u * 1024u) /* bigger bodies: 413 */
#define API_MAX_DEPTH  2             /* body object > attributes object */
#define API_MAX_WAIT_S 30            /* Prefer: wait=N is capped here */

/* Why an input was refused: the HTTP status (400, 403, 413, 415, 422), the field at fault ("" if
 * none) and a lowercase message quoting the culprit. The first error set wins. */
struct api_verr {
    int status;
    char field[64];
    char msg[256];
};

/* Sets e (unless already set) and returns -1. */
int api_verr_set(struct api_verr *e, int status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* true for "application/json", with optional parameters ("; charset=utf-8"). NULL is false. */
bool api_is_json_type(const char *content_type);

/* Checks size (<= max_len, else 413) and bracket nesting outside strings (<= max_depth, else
 * 400) without parsing, then parses with duplicate keys rejected (400) and requires an object
 * (400). Returns a new reference, or NULL with e set. */
json_t *api_parse_body(const char *body, size_t len, size_t max_len, int max_depth,
                       struct api_verr *e);

/* ListProduct fields from a POST /v1/products body (borrowed): a new object with sku, vendor_id,
 * name, description, category, attributes, currency. role is the actor's role; token_vendor its
 * vendor id (NULL if none). A vendor's body may repeat its own vendor_id (another one: 403); an
 * admin must give it. NULL with e set (422 naming the field, or 403). */
json_t *api_validate_list_product(const json_t *body, const char *role, const char *token_vendor,
                                  struct api_verr *e);

/* ChangeProductDetails fields from a PATCH body (borrowed): a new object with those of name,
 * description, category, attributes that were given (at least one). NULL with e set (422). */
json_t *api_validate_change_details(const json_t *body, struct api_verr *e);

/* Checks that obj has only the allowed keys (NULL-terminated). 0, or -1 with e (422 naming the
 * first unknown key, "<where>unknown field 'k'"); where prefixes the message, e.g. "lines: ". */
int api_validate_only_fields(const json_t *obj, const char *const *allowed, const char *where,
                             struct api_verr *e);

/* sku: 1-64 of [A-Za-z0-9._-]. Returns 0 or -1 with e set (status given: 404 for a path, 422
 * for a body field). */
int api_validate_sku(const char *sku, int status, struct api_verr *e);

/* The characters (code points) of UTF-8 text s: what JSON Schema's minLength/maxLength count. */
size_t api_utf8_chars(const char *s);

/* Idempotency-Key: 1-200 printable ASCII characters. */
bool api_is_valid_idempotency_key(const char *key);

/* If-Match: "3" (quoted, as an ETag) or 3, a version >= 0. Returns 0 and sets *version, or -1. */
int api_parse_if_match(const char *value, int64_t *version);

/* Prefer: returns the N of "wait=N" (capped at API_MAX_WAIT_S) among comma-separated
 * preferences, 0 when absent or malformed. NULL gives 0. */
int api_parse_prefer_wait(const char *value);

/* "<partition>:<offset>". Returns 0 and fills both, or -1. */
int api_parse_position(const char *value, int32_t *partition, int64_t *offset);

/* Cursor paging: the cursor is the last sku shown (keyset paging; clients pass next_cursor back
 * and need not look inside), so any sku is one and the contract can say exactly which are.
 * api_cursor_encode returns a new string (caller frees). api_cursor_decode returns a new sku
 * string (caller frees) or NULL when the cursor is not a sku. */
char *api_cursor_encode(const char *sku);
char *api_cursor_decode(const char *cursor);

/* Full-text search (GET /v1/products?q=): q is 1-API_SEARCH_MAX characters of UTF-8. Its words
 * (runs of letters, digits and '_'; any non-ASCII character counts as a letter) of at least
 * API_SEARCH_MIN_WORD characters (InnoDB's innodb_ft_min_token_size: shorter ones are never
 * indexed) become a MATCH ... AGAINST boolean-mode query in which every word is required and
 * matches as a prefix: "red lamp" gives "+red* +lamp*". The client's own operators are never
 * passed on. Returns a new string ("" when no word is long enough: nothing can match), or NULL
 * with e set (400 naming "q"). */
#define API_SEARCH_MAX      100
#define API_SEARCH_MIN_WORD 3
char *api_search_query(const char *q, struct api_verr *e);

/* ?limit=: default 50 when NULL, 1..200 accepted. Returns the limit, or -1 when invalid. */
int api_parse_limit(const char *value);

#endif
