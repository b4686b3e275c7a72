/* api_web — the pages (/shop/, /console/): the static files of one folder (EVENTSHOP_WEB_DIR,
 * by default the source tree's web/; the image's /usr/share/eventshop/web), read once at start
 * into memory. A request names a file of the table, never a path: nothing outside the folder can
 * be answered, whatever the URL says. */
#ifndef API_WEB_H
#define API_WEB_H

#include "es_err.h"
#include <stdbool.h>
#include <stddef.h>

typedef struct api_web api_web_t;

/* The areas served: shop and console, each a subfolder of the web folder and the URL prefix
 * /<area>/ (the route table names them). */

/* Reads every servable file of dir/<area>/ (regular files only, names [A-Za-z0-9_-] then
 * [A-Za-z0-9._-], of a known type, at most API_WEB_MAX_FILE bytes; anything else is skipped with
 * a warning). A missing area folder serves nothing (a warning). NULL with err when dir itself
 * cannot be read or a file cannot. Caller frees with api_web_free. */
#define API_WEB_MAX_FILE  (1024 * 1024)
#define API_WEB_MAX_FILES 64
api_web_t *api_web_new(const char *dir, es_err_t *err);
void api_web_free(api_web_t *w);

/* The file `name` of `area` (borrowed from w), or NULL. */
struct api_web_file {
    char area[16];
    char name[64];
    const char *type; /* Content-Type */
    char etag[24];    /* "\"<16 hex digits>\"": a hash of the content */
    char *body;
    size_t len;
};
const struct api_web_file *api_web_find(const api_web_t *w, const char *area, const char *name);
/* The Content-Type a file name's extension serves as, or NULL for a type not served. */
const char *api_web_type(const char *name);
/* Whether name may be a served file's name (see api_web_new). */
bool api_web_name_ok(const char *name);

#endif
