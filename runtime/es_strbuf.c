/* es_strbuf — see es_strbuf.h. */
#include "es_strbuf.h"
#include "es_mem.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STRBUF_FIRST 64   /* the smallest allocation: short strings grow once or not at all */
#define STRBUF_READ  4096 /* room made before each read of es_strbuf_fread at least */

void es_strbuf_init(struct es_strbuf *b, size_t hint)
{
    *b = (struct es_strbuf)ES_STRBUF_INIT;
    if (hint)
        es_strbuf_grow(b, hint);
}

void es_strbuf_release(struct es_strbuf *b)
{
    free(b->s);
    *b = (struct es_strbuf)ES_STRBUF_INIT;
}

void es_strbuf_grow(struct es_strbuf *b, size_t extra)
{
    if (extra >= SIZE_MAX - b->len) {
        fprintf(stderr, "fatal: string of %zu + %zu bytes is too long\n", b->len, extra);
        abort();
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap < STRBUF_FIRST ? STRBUF_FIRST : b->cap;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    b->s = xrealloc(b->s, cap);
    b->cap = cap;
    b->s[b->len] = '\0';
}

void es_strbuf_add(struct es_strbuf *b, const void *data, size_t n)
{
    es_strbuf_grow(b, n);
    if (n)
        memcpy(b->s + b->len, data, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void es_strbuf_adds(struct es_strbuf *b, const char *s)
{
    es_strbuf_add(b, s, strlen(s));
}

void es_strbuf_addc(struct es_strbuf *b, char c)
{
    es_strbuf_grow(b, 1);
    b->s[b->len++] = c;
    b->s[b->len] = '\0';
}

void es_strbuf_vaddf(struct es_strbuf *b, const char *fmt, va_list ap)
{
    /* once into the room there is; again, after growing, only when it did not fit */
    es_strbuf_grow(b, 0);
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    if (n < 0) {
        fprintf(stderr, "fatal: bad format '%s'\n", fmt);
        abort();
    }
    if ((size_t)n >= b->cap - b->len) {
        es_strbuf_grow(b, (size_t)n);
        vsnprintf(b->s + b->len, b->cap - b->len, fmt, again);
    }
    va_end(again);
    b->len += (size_t)n;
}

void es_strbuf_addf(struct es_strbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    es_strbuf_vaddf(b, fmt, ap);
    va_end(ap);
}

int es_strbuf_fread(struct es_strbuf *b, FILE *f, size_t most)
{
    size_t start = b->len;
    for (;;) {
        size_t left = most ? most - (b->len - start) : SIZE_MAX;
        if (!left)
            return 0;
        if (b->cap - b->len < STRBUF_READ + 1)
            es_strbuf_grow(b, STRBUF_READ);
        size_t room = b->cap - b->len - 1;
        if (room > left)
            room = left;
        size_t got = fread(b->s + b->len, 1, room, f);
        b->len += got;
        b->s[b->len] = '\0';
        if (got < room)
            return ferror(f) ? -1 : 0;
    }
}

void es_strbuf_reset(struct es_strbuf *b)
{
    b->len = 0;
    if (b->s)
        b->s[0] = '\0';
}

const char *es_strbuf_str(const struct es_strbuf *b)
{
    return b->s ? b->s : "";
}

char *es_strbuf_take(struct es_strbuf *b, size_t *len)
{
    es_strbuf_grow(b, 0); /* an empty buffer hands out "" */
    char *s = b->s;
    if (len)
        *len = b->len;
    *b = (struct es_strbuf)ES_STRBUF_INIT;
    return s;
}
