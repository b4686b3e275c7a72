/* es_mem — allocation that aborts on failure, so no caller carries OOM branches. */
#ifndef ES_MEM_H
#define ES_MEM_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a fresh heap string, owned by the caller */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Hands the heap's free memory back to the system (after a burst, e.g. a recovery, whose
 * buffers are gone): RSS then shows what is in use. */
void es_mem_release_free(void);

#endif
