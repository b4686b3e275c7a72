/* es_strbuf — a growing string: append bytes, a string, a character or printf output; always
 * NUL-terminated once anything was added. Embedded by value (es_strbuf_init / _release), like
 * git's strbuf. Growth at least doubles, so n appends cost O(total length); allocation goes
 * through es_mem (aborts on failure), so no caller checks for out of memory.
 *
 * Not thread-safe: one owner at a time. */
#ifndef ES_STRBUF_H
#define ES_STRBUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

/* s: the bytes (NULL until something was added or reserved: use es_strbuf_str for a string
 * that is never NULL); len: how many, without the terminating NUL; cap: allocated size. Read
 * s and len freely; change them only through the functions below. */
struct es_strbuf {
    char *s;
    size_t len, cap;
};

#define ES_STRBUF_INIT                                                                             \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* An empty buffer with room for hint bytes (0: nothing allocated until the first append). */
void es_strbuf_init(struct es_strbuf *b, size_t hint);
/* Frees the bytes; b is empty again (may be reused). */
void es_strbuf_release(struct es_strbuf *b);

/* Makes room for extra more bytes (plus the NUL) without changing the content. */
void es_strbuf_grow(struct es_strbuf *b, size_t extra);
/* Appends n bytes of data (may hold NULs; may be NULL when n is 0). */
void es_strbuf_add(struct es_strbuf *b, const void *data, size_t n);
/* Appends the string s. */
void es_strbuf_adds(struct es_strbuf *b, const char *s);
/* Appends the character c. */
void es_strbuf_addc(struct es_strbuf *b, char c);
/* Appends printf output. */
void es_strbuf_addf(struct es_strbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void es_strbuf_vaddf(struct es_strbuf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Appends what f holds from where it stands to its end, or only most bytes of it (0: no limit):
 * 0, or -1 on a read error (what was read stays appended; errno as stdio set it). */
int es_strbuf_fread(struct es_strbuf *b, FILE *f, size_t most);

/* Empties b, keeping its memory for the next appends. */
void es_strbuf_reset(struct es_strbuf *b);
/* The content as a string, borrowed until the next change of b: "" when empty, never NULL. */
const char *es_strbuf_str(const struct es_strbuf *b);
/* Hands the content to the caller (owned, free(); "" when empty, never NULL), its length in
 * *len when len is not NULL; b is empty again and owns nothing. */
char *es_strbuf_take(struct es_strbuf *b, size_t *len);

#endif
