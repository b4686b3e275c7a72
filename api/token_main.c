/* eventshop-token — mints a bearer token for the API from the JWT settings of jwt.h (RS256 needs
 * EVENTSHOP_JWT_PRIVATE_KEY_FILE). Prints only the token on stdout; exit 2 on bad arguments.
 * --exp EPOCH sets the expiry instead of now + ttl (iat and nbf become EPOCH - ttl): a past EPOCH
 * gives an expired token, for tests. */
#include "jwt.h"
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_TTL 3600

static int usage(const char *why)
{
    if (why)
        fprintf(stderr, "eventshop-token: %s\n", why);
    fprintf(stderr, "usage: eventshop-token --role admin|vendor|customer --sub ID [--vendor VID] "
                    "[--ttl SECONDS] [--exp EPOCH]\n");
    return 2;
}

static int copy_arg(char *dst, size_t size, const char *v, const char *what)
{
    if (!v[0] || strlen(v) >= size) {
        fprintf(stderr, "eventshop-token: %s must have 1 to %zu characters\n", what, size - 1);
        return -1;
    }
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"role", required_argument, NULL, 'r'},
        {"sub", required_argument, NULL, 's'},
        {"vendor", required_argument, NULL, 'v'},
        {"ttl", required_argument, NULL, 't'},
        {"exp", required_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct api_jwt_principal p = {0};
    long ttl = DEFAULT_TTL;
    long long exp = 0;
    int c;
    while ((c = getopt_long(argc, argv, "r:s:v:t:e:h", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'r':
            if (copy_arg(p.role, sizeof p.role, optarg, "--role") != 0)
                return 2;
            break;
        case 's':
            if (copy_arg(p.sub, sizeof p.sub, optarg, "--sub") != 0)
                return 2;
            break;
        case 'v':
            if (copy_arg(p.vendor_id, sizeof p.vendor_id, optarg, "--vendor") != 0)
                return 2;
            break;
        case 't':
            ttl = strtol(optarg, &end, 10);
            if (*end || ttl <= 0)
                return usage("--ttl must be a positive number of seconds");
            break;
        case 'e':
            exp = strtoll(optarg, &end, 10);
            if (*end || exp <= 0)
                return usage("--exp must be a positive number of seconds since the epoch");
            break;
        case 'h':
            usage(NULL);
            return 0;
        default:
            return usage(NULL);
        }
    }
    if (optind < argc)
        return usage("unexpected argument");
    if (!p.role[0] || !p.sub[0])
        return usage("--role and --sub are required");
    if (!api_jwt_role_is_valid(p.role))
        return usage("--role must be admin, vendor or customer");
    if (strcmp(p.role, "vendor") == 0 && !p.vendor_id[0])
        return usage("a vendor token needs --vendor");
    if (strcmp(p.role, "vendor") != 0 && p.vendor_id[0])
        return usage("--vendor is only for --role vendor");
    if (exp && exp <= ttl)
        return usage("--exp must be later than --ttl seconds after the epoch");

    es_err_t err = ES_ERR_INIT;
    api_jwt_t *j = api_jwt_new_from_env(API_JWT_SIGN, &err);
    if (!j) {
        fprintf(stderr, "eventshop-token: %s\n", err.msg);
        return 1;
    }
    char *token = api_jwt_mint(j, &p, ttl, exp ? (time_t)(exp - ttl) : 0, &err);
    api_jwt_free(j);
    if (!token) {
        fprintf(stderr, "eventshop-token: %s\n", err.msg);
        return 1;
    }
    printf("%s\n", token);
    free(token);
    return 0;
}
