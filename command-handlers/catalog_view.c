#include "catalog_view.h"
#include "catalog.h"
#include <string.h>

void catalog_view_fold(json_t *view, const char *event_type, const json_t *event)
{
    const char *sku = json_string_value(json_object_get(event, "sku"));
    if (!event_type || !sku)
        return;
    json_t *products = json_object_get(view, "products");
    if (!json_is_object(products)) {
        products = json_object();
        json_object_set_new(view, "products", products);
    }
    if (!strcmp(event_type, CATALOG_NS "ProductListed")) {
        const char *vendor = json_string_value(json_object_get(event, "vendor_id"));
        const char *currency = json_string_value(json_object_get(event, "currency"));
        json_object_set_new(products, sku,
                            json_pack("{s:s, s:s, s:s}", "vendor_id", vendor ? vendor : "",
                                      "status", "listed", "currency", currency ? currency : ""));
    } else if (!strcmp(event_type, CATALOG_NS "ProductDelisted")) {
        json_t *p = json_object_get(products, sku);
        if (p)
            json_object_set_new(p, "status", json_string("delisted"));
    }
}

const json_t *catalog_view_product(const json_t *view, const char *sku)
{
    return sku ? json_object_get(json_object_get(view, "products"), sku) : NULL;
}

const char *catalog_view_listed_owner(const json_t *view, const char *sku)
{
    const json_t *p = catalog_view_product(view, sku);
    const char *status = json_string_value(json_object_get(p, "status"));
    if (!status || strcmp(status, "listed"))
        return NULL;
    return json_string_value(json_object_get(p, "vendor_id"));
}
