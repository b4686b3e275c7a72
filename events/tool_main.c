/* eventshop-avro — decodes one Confluent-framed Avro message from stdin to JSON on stdout, with
 * the registry at EVENTSHOP_REGISTRY_URL (or, offline, a writer schema file given with -s). */
#include "es_mem.h"
#include "es_strbuf.h"
#include "ev_codec.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOOL_MAX_INPUT (64u << 20)

/* f's content (TOOL_MAX_INPUT bytes at most), owned by the caller */
static char *read_all(FILE *f, size_t *len)
{
    struct es_strbuf buf;
    es_strbuf_init(&buf, 4096);
    es_strbuf_fread(&buf, f, TOOL_MAX_INPUT);
    return es_strbuf_take(&buf, len);
}

int main(int argc, char **argv)
{
    const char *schema_file = NULL;
    const char *dir = getenv("EVENTSHOP_SCHEMA_DIR");
    const char *url = getenv("EVENTSHOP_REGISTRY_URL");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
            schema_file = argv[++i];
        } else {
            fprintf(stderr,
                    "usage: %s [-s writer-schema.avsc] < message\n"
                    "  env: EVENTSHOP_SCHEMA_DIR (local schemas, for defaults), "
                    "EVENTSHOP_REGISTRY_URL\n",
                    argv[0]);
            return 2;
        }
    }
    int rc = 1;
    es_err_t err = ES_ERR_INIT;
    sr_client_t *sr = NULL;
    ev_codec_t *c = NULL;
    json_t *value = NULL;
    size_t len = 0;
    char *msg = read_all(stdin, &len);
    if (url && *url && !schema_file && !(sr = sr_client_new(url, &err)))
        goto out;
    if (!(c = ev_codec_new(dir && *dir ? dir : ES_SCHEMA_DIR, sr, &err)))
        goto out;
    if (schema_file) {
        FILE *f = fopen(schema_file, "r");
        if (!f) {
            es_set(&err, ES_EINVAL, "cannot open '%s'", schema_file);
            goto out;
        }
        size_t slen = 0;
        char *text = read_all(f, &slen);
        fclose(f);
        int r = ev_codec_add_writer_schema(c, ev_frame_schema_id(msg, len), text, &err);
        free(text);
        if (r < 0)
            goto out;
    }
    const char *name = NULL;
    if (ev_decode(c, msg, len, &name, &value, &err) < 0)
        goto out;
    json_t *wrap = json_pack("{s:s,s:i,s:O}", "type", name, "schema_id",
                             (int)ev_frame_schema_id(msg, len), "value", value);
    json_dumpf(wrap, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', stdout);
    json_decref(wrap);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "eventshop-avro: %s: %s\n", es_code_name(err.code), err.msg);
    json_decref(value);
    ev_codec_free(c);
    sr_client_free(sr);
    free(msg);
    return rc;
}
