/* The pages' files (api_web.h) and their route handler (api_web_get). Every answer of these
 * routes, a 404 as much as a 200, carries the same security headers: a Content-Security-Policy
 * that admits only this origin's scripts, styles and requests (the pages have nothing inline),
 * nosniff, no referrer and no framing. The files are revalidated on each use (ETag, no-cache):
 * they carry no version in their names, and a deployment must show at once. */
#include "api_web.h"
#include "api_app.h"
#include "api_reply.h"
#include "es_log.h"
#include "es_mem.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct api_web {
    struct api_web_file files[API_WEB_MAX_FILES * 2];
    size_t n;
};

static const char *const areas[] = {"shop", "console"};

const char *api_web_type(const char *name)
{
    static const char *const types[][2] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".json", "application/json"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = name ? strrchr(name, '.') : NULL;
    for (size_t i = 0; dot && i < sizeof types / sizeof *types; i++)
        if (!strcmp(dot, types[i][0]))
            return types[i][1];
    return NULL;
}

bool api_web_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 63 || name[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

/* FNV-1a, 64 bits: a validator, not a defence */
static void etag_of(const char *body, size_t len, char *out, size_t cap)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)body[i]) * 0x100000001b3ULL;
    snprintf(out, cap, "\"%016llx\"", (unsigned long long)h);
}

/* Reads the regular file dir/name (not a link) into f; 1 when skipped (with a warning). */
static int read_file(struct api_web_file *f, const char *dir, const char *name, es_err_t *err)
{
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path) {
        es_warn("web: '%s/%s' is not served (path too long)", dir, name);
        return 1;
    }
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > API_WEB_MAX_FILE) {
        es_warn("web: '%s' is not served (not a regular file of at most %d bytes)", path,
                API_WEB_MAX_FILE);
        if (fd >= 0)
            close(fd);
        return 1;
    }
    f->len = (size_t)st.st_size;
    f->body = xmalloc(f->len + 1);
    size_t got = 0;
    while (got < f->len) {
        ssize_t r = read(fd, f->body + got, f->len - got);
        if (r <= 0 && !(r < 0 && errno == EINTR)) {
            close(fd);
            return es_set(err, ES_EIO, "web: cannot read '%s'", path);
        }
        got += r > 0 ? (size_t)r : 0;
    }
    close(fd);
    f->body[f->len] = '\0';
    etag_of(f->body, f->len, f->etag, sizeof f->etag);
    return 0;
}

static int load_area(api_web_t *w, const char *dir, const char *area, es_err_t *err)
{
    char path[4000];
    int n = snprintf(path, sizeof path, "%s/%s", dir, area);
    if (n < 0 || (size_t)n >= sizeof path)
        return es_set(err, ES_EINVAL, "web folder '%.200s' (EVENTSHOP_WEB_DIR): path too long",
                      dir);
    DIR *d = opendir(path);
    if (!d) {
        es_warn("web: no folder '%s': /%s/ serves nothing", path, area);
        return 0;
    }
    size_t in_area = 0;
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        if (!api_web_name_ok(e->d_name) || !api_web_type(e->d_name) ||
            in_area == API_WEB_MAX_FILES) {
            es_warn("web: '%s/%s' is not served (name, type or count)", path, e->d_name);
            continue;
        }
        struct api_web_file *f = &w->files[w->n];
        memset(f, 0, sizeof *f);
        rc = read_file(f, path, e->d_name, err);
        if (rc != 0) {
            free(f->body);
            rc = rc < 0 ? rc : 0;
            continue;
        }
        snprintf(f->area, sizeof f->area, "%s", area);
        snprintf(f->name, sizeof f->name, "%.63s", e->d_name);
        f->type = api_web_type(f->name);
        w->n++;
        in_area++;
    }
    closedir(d);
    return rc;
}

api_web_t *api_web_new(const char *dir, es_err_t *err)
{
    struct stat st;
    if (!dir || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        es_set(err, ES_EINVAL, "web folder '%s' (EVENTSHOP_WEB_DIR) is not a folder",
               dir ? dir : "");
        return NULL;
    }
    api_web_t *w = xcalloc(1, sizeof *w);
    for (size_t i = 0; i < sizeof areas / sizeof *areas; i++) {
        if (load_area(w, dir, areas[i], err)) {
            api_web_free(w);
            return NULL;
        }
    }
    es_info("web: %zu files from '%s'", w->n, dir);
    return w;
}

void api_web_free(api_web_t *w)
{
    for (size_t i = 0; w && i < w->n; i++)
        free(w->files[i].body);
    free(w);
}

const struct api_web_file *api_web_find(const api_web_t *w, const char *area, const char *name)
{
    for (size_t i = 0; w && area && name && i < w->n; i++)
        if (!strcmp(w->files[i].area, area) && !strcmp(w->files[i].name, name))
            return &w->files[i];
    return NULL;
}

/* GET /<area>/ and /<area>/{file}: the area is the path's first segment (the route table admits
 * only the areas). */
void api_web_get(es_http_req_t *r, const struct api_principal *who)
{
    (void)who;
    const struct api_app *app = es_http_app(r);
    const char *path = es_http_path(r), *file = es_http_param(r, "file");
    char area[16];
    snprintf(area, sizeof area, "%.*s", (int)strcspn(path + 1, "/"), path + 1);
    const char *name = file ? file : "index.html";
    es_http_add_header(r, "Content-Security-Policy",
                       "default-src 'self'; base-uri 'none'; form-action 'self'; "
                       "frame-ancestors 'none'");
    es_http_add_header(r, "X-Content-Type-Options", "nosniff");
    es_http_add_header(r, "Referrer-Policy", "no-referrer");
    es_http_add_header(r, "Cache-Control", "no-cache");
    const struct api_web_file *f = api_web_find(app->web, area, name);
    if (!f) {
        api_reply_problem(r, 404, NULL, NULL, "no file '%.100s' in /%s/", name, area);
        return;
    }
    es_http_add_header(r, "ETag", f->etag);
    if (api_if_none_match(r, f->etag)) {
        es_http_reply(r, 304, NULL, NULL, 0);
        return;
    }
    es_http_reply(r, 200, f->type, f->body, f->len);
}
