#include "api_web.h"
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static void put(const char *rel, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

/* a web folder: shop/ with a page, a script, a hidden file, a file of no served type, a link to a
 * file outside and a subfolder; no console/ */
static void make_folder(void)
{
    snprintf(dir, sizeof dir, "/tmp/es-web-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/shop", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/shop/sub", dir);
    mkdir(path, 0755);
    put("secret.txt", "outside");
    put("shop/index.html", "<!doctype html><p>shop</p>");
    put("shop/app.js", "\"use strict\";");
    put("shop/.env", "hidden");
    put("shop/notes.exe", "no type");
    put("shop/sub/deep.js", "deep");
    char target[256];
    snprintf(target, sizeof target, "%s/secret.txt", dir);
    snprintf(path, sizeof path, "%s/shop/link.txt", dir);
    cr_assert_eq(symlink(target, path), 0);
}

static void remove_folder(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(web, .init = make_folder, .fini = remove_folder);

Test(web, serves_the_regular_files_of_known_types_only)
{
    es_err_t err = ES_ERR_INIT;
    api_web_t *w = api_web_new(dir, &err);
    cr_assert_not_null(w, "%s", err.msg);
    const struct api_web_file *f = api_web_find(w, "shop", "index.html");
    cr_assert_not_null(f);
    cr_assert_str_eq(f->body, "<!doctype html><p>shop</p>");
    cr_assert_eq(f->len, strlen(f->body));
    cr_assert_str_eq(f->type, "text/html; charset=utf-8");
    cr_assert_eq(strlen(f->etag), 18, "a quoted 16-digit hash: %s", f->etag);
    cr_assert_str_eq(api_web_find(w, "shop", "app.js")->type, "text/javascript; charset=utf-8");
    cr_assert_null(api_web_find(w, "shop", ".env"), "hidden files are not served");
    cr_assert_null(api_web_find(w, "shop", "notes.exe"), "unknown types are not served");
    cr_assert_null(api_web_find(w, "shop", "link.txt"), "links are not followed");
    cr_assert_null(api_web_find(w, "shop", "sub"));
    cr_assert_null(api_web_find(w, "shop", "sub/deep.js"), "no subfolders");
    cr_assert_null(api_web_find(w, "shop", "../secret.txt"));
    cr_assert_null(api_web_find(w, "console", "index.html"), "a missing area serves nothing");
    cr_assert_null(api_web_find(w, "..", "secret.txt"));
    api_web_free(w);
}

Test(web, a_missing_folder_is_an_error_that_names_it)
{
    es_err_t err = ES_ERR_INIT;
    cr_assert_null(api_web_new("/no/such/web", &err));
    cr_assert(strstr(err.msg, "'/no/such/web'"), "%s", err.msg);
    api_web_free(NULL);
    cr_assert_null(api_web_find(NULL, "shop", "index.html"));
}

Test(web, names_and_types)
{
    cr_assert(api_web_name_ok("shop.js"));
    cr_assert(api_web_name_ok("a_b-c.1.css"));
    cr_assert_not(api_web_name_ok(""));
    cr_assert_not(api_web_name_ok(".."));
    cr_assert_not(api_web_name_ok(".hidden"));
    cr_assert_not(api_web_name_ok("a/b.js"));
    cr_assert_not(api_web_name_ok("a\\b.js"));
    cr_assert_not(api_web_name_ok("a b.js"));
    cr_assert_str_eq(api_web_type("x.css"), "text/css; charset=utf-8");
    cr_assert_str_eq(api_web_type("x.svg"), "image/svg+xml");
    cr_assert_null(api_web_type("x.php"));
    cr_assert_null(api_web_type("Makefile"));
}
