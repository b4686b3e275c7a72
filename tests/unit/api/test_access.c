#include "api_access.h"
#include <criterion/criterion.h>
#include <string.h>

static struct api_principal principal(const char *role, const char *sub, const char *vendor)
{
    struct api_principal p;
    memset(&p, 0, sizeof p);
    strcpy(p.role, role);
    strcpy(p.sub, sub);
    strcpy(p.vendor_id, vendor);
    return p;
}

Test(api_access, each_role_reads_its_contexts_only)
{
    struct api_principal admin = principal("admin", "a", ""),
                         vendor = principal("vendor", "v-user", "acme"),
                         customer = principal("customer", "c1", "");
    const char *all[] = {"catalog", "inventory", "pricing", "users",
                         "orders",  "payments",  "shipping"};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        cr_expect(api_access_role_reads(&admin, all[i]), "admin: %s", all[i]);
    cr_expect(api_access_role_reads(&vendor, "catalog"));
    cr_expect(api_access_role_reads(&vendor, "inventory"));
    cr_expect(api_access_role_reads(&vendor, "pricing"));
    cr_expect_not(api_access_role_reads(&vendor, "orders"));
    cr_expect_not(api_access_role_reads(&vendor, "users"));
    cr_expect(api_access_role_reads(&customer, "orders"));
    cr_expect(api_access_role_reads(&customer, "users"));
    cr_expect_not(api_access_role_reads(&customer, "catalog"));
    cr_expect_not(api_access_role_reads(&customer, "payments"));
}

Test(api_access, an_owner_is_the_vendor_id_or_the_subject)
{
    struct api_principal vendor = principal("vendor", "v-user", "acme"),
                         customer = principal("customer", "c1", ""),
                         admin = principal("admin", "a", ""),
                         no_vendor = principal("vendor", "v-user", "");
    cr_expect(api_access_is_owner(&vendor, "acme"));
    cr_expect_not(api_access_is_owner(&vendor, "v-user"));
    cr_expect_not(api_access_is_owner(&vendor, "other"));
    cr_expect_not(api_access_is_owner(&no_vendor, ""));
    cr_expect(api_access_is_owner(&customer, "c1"));
    cr_expect_not(api_access_is_owner(&customer, "c2"));
    cr_expect_not(api_access_is_owner(&customer, NULL));
    cr_expect(api_access_is_owner(&admin, "anyone"));
}
