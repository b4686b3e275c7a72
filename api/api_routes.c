/* The API's one route table: method, path, handler, roles allowed. api_dispatch enforces the
 * roles before any handler runs.
 *
 * Adding a context <ctx>: (1) its handlers go in api/api_<ctx>.c (add the file to
 * api/server.cmake) and their prototypes in api/api_app.h; they validate the body
 * (api_json_body_or_reply, api_path_sku_or_reply), check what the token alone decides, then
 * call api_command_send(r, who, "<ctx>", "eventshop.<ctx>.<Command>", id, fields, location)
 * for commands and api_query_at_position(r, who, "<ctx>", "<projection>", run) +
 * api_query_or_reply(r, "<ctx>", ...) for queries; (2) one line per route below; (3) its
 * rejection reasons in the table of api_outcome.c (and its aggregate key there if not "sku");
 * (4) the context in ES_CONTEXTS, so the API registers its schemas, reads <ctx>.results and
 * connects to eventshop_<ctx> with EVENTSHOP_MYSQL_<CTX>_USER (scripts/stack.sh exports them).
 * A route of a context not in ES_CONTEXTS answers 503. */
#include "api_app.h"
#include "api_stream.h"

const struct api_route api_routes[] = {
    {"POST", "/v1/products", api_products_post, API_VENDOR | API_ADMIN},
    {"PATCH", "/v1/products/{sku}", api_products_patch, API_VENDOR | API_ADMIN},
    {"DELETE", "/v1/products/{sku}", api_products_delete, API_VENDOR | API_ADMIN},
    {"GET", "/v1/products/{sku}", api_products_get, API_PUBLIC},
    {"GET", "/v1/products", api_products_list, API_PUBLIC},
    {"POST", "/v1/users", api_users_register, API_PUBLIC},
    {"GET", "/v1/users/{id}", api_users_get, API_AUTHENTICATED},
    {"DELETE", "/v1/users/{id}", api_users_forget, API_AUTHENTICATED},
    {"PUT", "/v1/users/{id}/role", api_users_change_role, API_ADMIN},
    {"GET", "/v1/vendors", api_vendors_list, API_ADMIN},
    {"POST", "/v1/vendors/{id}/approval", api_vendors_approve, API_ADMIN},
    {"POST", "/v1/auth/token", api_auth_token, API_PUBLIC},
    {"POST", "/internal/users/{id}/contact", api_users_open_contact, API_PUBLIC},
    {"PUT", "/v1/prices/{sku}", api_prices_put, API_VENDOR | API_ADMIN},
    {"POST", "/v1/prices/{sku}/rules", api_prices_rules_post, API_VENDOR | API_ADMIN},
    {"DELETE", "/v1/prices/{sku}/rules/{rule_id}", api_prices_rules_delete, API_VENDOR | API_ADMIN},
    {"GET", "/v1/prices/{sku}/history", api_prices_history, API_PUBLIC},
    {"GET", "/v1/prices/{sku}", api_prices_get, API_PUBLIC},
    {"POST", "/v1/inventory/{sku}/receipts", api_inventory_receive, API_VENDOR | API_ADMIN},
    {"POST", "/v1/inventory/{sku}/adjustments", api_inventory_adjust, API_VENDOR | API_ADMIN},
    {"POST", "/v1/inventory/{sku}/reservations", api_inventory_reserve, API_ADMIN},
    {"DELETE", "/v1/inventory/{sku}/reservations/{order_id}", api_inventory_release, API_ADMIN},
    {"POST", "/v1/inventory/{sku}/reservations/{order_id}/commit", api_inventory_commit, API_ADMIN},
    {"GET", "/v1/inventory/{sku}/movements", api_inventory_movements, API_VENDOR | API_ADMIN},
    {"GET", "/v1/inventory/{sku}", api_inventory_get, API_PUBLIC},
    {"POST", "/v1/orders", api_orders_post, API_CUSTOMER},
    {"GET", "/v1/orders", api_orders_list, API_AUTHENTICATED},
    {"GET", "/v1/orders/{id}", api_orders_get, API_AUTHENTICATED},
    {"POST", "/v1/orders/{id}/cancel", api_orders_cancel, API_CUSTOMER | API_ADMIN},
    {"GET", "/v1/commands/{id}", api_commands_get, API_AUTHENTICATED},
    {"GET", "/v1/history/{context}/{aggregate_id}", api_history_get, API_AUTHENTICATED},
    {"GET", "/v1/stream", api_stream_get, API_AUTHENTICATED | API_TICKET},
    {"POST", "/v1/stream/tickets", api_stream_tickets_post, API_AUTHENTICATED},
    {"GET", "/v1/admin/projections", api_admin_projections, API_ADMIN},
    {"POST", "/v1/admin/projections/{name}/pause", api_admin_projection_action, API_ADMIN},
    {"POST", "/v1/admin/projections/{name}/resume", api_admin_projection_action, API_ADMIN},
    {"POST", "/v1/admin/projections/{name}/rebuild", api_admin_projection_action, API_ADMIN},
    {"POST", "/v1/admin/projections/{name}/swap", api_admin_projection_action, API_ADMIN},
    {"GET", "/v1/admin/dead-letters", api_admin_dead_letters, API_ADMIN},
    {"POST", "/v1/admin/dead-letters/{id}/replay", api_admin_dead_letter_action, API_ADMIN},
    {"POST", "/v1/admin/dead-letters/{id}/discard", api_admin_dead_letter_action, API_ADMIN},
    {"GET", "/v1/admin/activity", api_admin_activity, API_ADMIN},
    {"GET", "/v1/admin/sagas", api_admin_sagas, API_ADMIN},
    {"GET", "/healthz", api_health_live, API_PUBLIC},
    {"GET", "/readyz", api_health_ready, API_PUBLIC},
    {"GET", "/metrics", api_health_metrics, API_PUBLIC},
    {"GET", "/openapi.yaml", api_openapi_get, API_PUBLIC},
    {"GET", "/shop/", api_web_get, API_PUBLIC},
    {"GET", "/shop/{file}", api_web_get, API_PUBLIC},
    {"GET", "/console/", api_web_get, API_PUBLIC},
    {"GET", "/console/{file}", api_web_get, API_PUBLIC},
};

const size_t api_routes_count = sizeof api_routes / sizeof *api_routes;
