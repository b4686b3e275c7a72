/* The API's one route table: method, path, handler, roles allowed. api_dispatch enforces the
 * roles before any handler runs. */
#include "api_app.h"

const struct api_route api_routes[] = {
    {"POST", "/v1/products", api_products_post, API_VENDOR | API_ADMIN},
    {"PATCH", "/v1/products/{sku}", api_products_patch, API_VENDOR | API_ADMIN},
    {"DELETE", "/v1/products/{sku}", api_products_delete, API_VENDOR | API_ADMIN},
    {"GET", "/v1/products/{sku}", api_products_get, API_PUBLIC},
    {"GET", "/v1/products", api_products_list, API_PUBLIC},
    {"GET", "/v1/commands/{id}", api_commands_get, API_AUTHENTICATED},
    {"GET", "/healthz", api_health_live, API_PUBLIC},
    {"GET", "/readyz", api_health_ready, API_PUBLIC},
    {"GET", "/metrics", api_health_metrics, API_PUBLIC},
};

const size_t api_routes_count = sizeof api_routes / sizeof *api_routes;
