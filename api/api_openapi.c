/* GET /openapi.yaml: the API's contract, api/openapi.yaml, embedded at build time (embed.cmake
 * via server.cmake), so the binary serves the document it was built with, whatever the disk
 * holds. */
#include "api_app.h"
#include <stddef.h>

extern const unsigned char api_openapi_yaml[];
extern const size_t api_openapi_yaml_len;

void api_openapi_get(es_http_req_t *r, const struct api_principal *who)
{
    (void)who;
    es_http_reply(r, 200, "application/yaml", (const char *)api_openapi_yaml, api_openapi_yaml_len);
}
