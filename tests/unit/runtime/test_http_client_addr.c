/* The client's address behind trusted proxies (es_http_cidrs_*, es_http_client_addr): pure
 * functions, no server. */
#include "es_http.h"
#include <criterion/criterion.h>
#include <string.h>

static es_http_cidrs_t *cidrs(const char *spec)
{
    es_err_t err = ES_ERR_INIT;
    es_http_cidrs_t *set = es_http_cidrs_new(spec, &err);
    cr_assert_not_null(set, "'%s': %s", spec, err.msg);
    return set;
}

/* The error es_http_cidrs_new gives for spec (which must be refused). */
static void refused(const char *spec, const char *msg)
{
    es_err_t err = ES_ERR_INIT;
    es_http_cidrs_t *set = es_http_cidrs_new(spec, &err);
    cr_expect_null(set, "'%s' was accepted", spec);
    es_http_cidrs_free(set);
    cr_expect_eq(err.code, ES_EINVAL, "'%s': code %d", spec, err.code);
    cr_expect_str_eq(err.msg, msg);
}

/* es_http_client_addr's answer for peer and xff with trusted spec. */
static void client(const char *spec, const char *peer, const char *xff, const char *want)
{
    es_http_cidrs_t *set = cidrs(spec);
    char out[46] = "junk";
    cr_expect_eq(es_http_client_addr(set, peer, xff, out, sizeof out), 0);
    cr_expect_str_eq(out, want, "trusted '%s', peer %s, X-Forwarded-For '%s': '%s', not '%s'", spec,
                     peer, xff ? xff : "(none)", out, want);
    es_http_cidrs_free(set);
}

Test(http_cidrs, blank_or_unset_trusts_nobody)
{
    const char *specs[] = {NULL, "", "  ", "\t"};
    for (size_t i = 0; i < sizeof specs / sizeof *specs; i++) {
        es_http_cidrs_t *set = cidrs(specs[i]);
        cr_expect_not(es_http_cidrs_has(set, "127.0.0.1"));
        cr_expect_not(es_http_cidrs_has(set, "::1"));
        es_http_cidrs_free(set);
    }
}

Test(http_cidrs, matches_ipv4_and_ipv6_networks_at_their_prefix)
{
    es_http_cidrs_t *set =
        cidrs(" 10.0.0.0/8 ,192.168.1.0/24, 172.16.0.0/12,fd00::/8, 2001:db8::1");
    cr_expect(es_http_cidrs_has(set, "10.0.0.0"));
    cr_expect(es_http_cidrs_has(set, "10.255.255.255"));
    cr_expect_not(es_http_cidrs_has(set, "11.0.0.0"));
    cr_expect(es_http_cidrs_has(set, "192.168.1.77"));
    cr_expect_not(es_http_cidrs_has(set, "192.168.2.1"));
    cr_expect(es_http_cidrs_has(set, "172.31.255.1")); /* /12: 172.16-172.31 */
    cr_expect_not(es_http_cidrs_has(set, "172.32.0.1"));
    cr_expect(es_http_cidrs_has(set, "fdab:1::5"));
    cr_expect_not(es_http_cidrs_has(set, "fe80::1"));
    cr_expect(es_http_cidrs_has(set, "2001:db8::1")); /* a bare address is one host */
    cr_expect_not(es_http_cidrs_has(set, "2001:db8::2"));
    /* the families never mix; an IPv4-mapped IPv6 address is its IPv4 address */
    cr_expect(es_http_cidrs_has(set, "::ffff:10.1.2.3"));
    cr_expect_not(es_http_cidrs_has(set, "::a01:203"));
    cr_expect_not(es_http_cidrs_has(set, "not an address"));
    cr_expect_not(es_http_cidrs_has(set, NULL));
    es_http_cidrs_free(set);
}

Test(http_cidrs, edge_prefixes)
{
    es_http_cidrs_t *all = cidrs("0.0.0.0/0, ::/0");
    cr_expect(es_http_cidrs_has(all, "203.0.113.9"));
    cr_expect(es_http_cidrs_has(all, "2001:db8::9"));
    es_http_cidrs_free(all);
    es_http_cidrs_t *odd = cidrs("10.128.0.0/9, 2001:db8:8000::/33, ::ffff:192.0.2.0/120");
    cr_expect(es_http_cidrs_has(odd, "10.200.0.1"));
    cr_expect_not(es_http_cidrs_has(odd, "10.127.255.255"));
    cr_expect(es_http_cidrs_has(odd, "2001:db8:ffff::1"));
    cr_expect_not(es_http_cidrs_has(odd, "2001:db8:7fff::1"));
    cr_expect(es_http_cidrs_has(odd, "192.0.2.200")); /* written mapped, held as IPv4 /24 */
    cr_expect_not(es_http_cidrs_has(odd, "192.0.3.1"));
    es_http_cidrs_free(odd);
}

Test(http_cidrs, refuses_malformed_entries_quoting_them)
{
    refused("10.0.0.0/33", "'10.0.0.0/33': the prefix length must be 0-32");
    refused("fd00::/129", "'fd00::/129': the prefix length must be 0-128");
    refused("10.0.0.0/", "'10.0.0.0/': the prefix length must be 0-32");
    refused("10.0.0.0/-1", "'10.0.0.0/-1': the prefix length must be 0-32");
    refused("10.0.0.0/8x", "'10.0.0.0/8x': the prefix length must be 0-32");
    refused("10.0.0.0/0008", "'10.0.0.0/0008': the prefix length must be 0-32");
    refused("10.0.0/8", "'10.0.0/8' is not an IPv4 or IPv6 address or CIDR");
    refused("10.0.0.0.0/8", "'10.0.0.0.0/8' is not an IPv4 or IPv6 address or CIDR");
    refused("ingress", "'ingress' is not an IPv4 or IPv6 address or CIDR");
    refused("10.0.0.0/8 192.168.0.0/16",
            "'10.0.0.0/8 192.168.0.0/16' is not one CIDR (separate entries with commas)");
    refused("10.1.2.3/8", "'10.1.2.3/8' has bits set past its prefix (the network is 10.0.0.0/8)");
    refused("fd00::1/8", "'fd00::1/8' has bits set past its prefix (the network is fd00::/8)");
    refused("::ffff:10.0.0.0/8", "'::ffff:10.0.0.0/8': write IPv4 networks as IPv4");
    refused("10.0.0.0/8,", "empty entry in '10.0.0.0/8,'");
    refused("10.0.0.0/8,,fd00::/8", "empty entry in '10.0.0.0/8,,fd00::/8'");
    refused(",", "empty entry in ','");
}

Test(http_client_addr, an_untrusted_peer_is_the_client_whatever_the_header_says)
{
    client("", "127.0.0.1", "203.0.113.7", "127.0.0.1");
    client("", "127.0.0.1", NULL, "127.0.0.1");
    client("10.0.0.0/8", "192.0.2.1", "203.0.113.7, 10.0.0.1", "192.0.2.1");
    client("10.0.0.0/8", "2001:db8::1", "203.0.113.7", "2001:db8::1");
}

Test(http_client_addr, a_trusted_peer_hands_over_to_the_rightmost_untrusted_entry)
{
    /* one proxy (the ingress): it appended the address it saw */
    client("10.0.0.0/8", "10.1.2.3", "203.0.113.7", "203.0.113.7");
    /* what the client wrote itself stays left of it and is never used */
    client("10.0.0.0/8", "10.1.2.3", "1.1.1.1, 9.9.9.9,203.0.113.7", "203.0.113.7");
    /* two trusted hops (a load balancer, then the ingress) */
    client("10.0.0.0/8, 192.168.0.0/16", "10.1.2.3", "6.6.6.6, 203.0.113.7, 192.168.4.4",
           "203.0.113.7");
    /* several header lines joined into one list keep their order */
    client("127.0.0.1/32", "127.0.0.1", "6.6.6.6,203.0.113.7", "203.0.113.7");
}

Test(http_client_addr, a_trusted_peer_without_a_usable_header_is_the_client)
{
    client("127.0.0.1", "127.0.0.1", NULL, "127.0.0.1");
    client("127.0.0.1", "127.0.0.1", "", "127.0.0.1");
    client("127.0.0.1", "127.0.0.1", "  ", "127.0.0.1");
    client("127.0.0.1", "127.0.0.1", "unknown", "127.0.0.1");
}

Test(http_client_addr, the_walk_stops_at_garbage_on_the_last_address_read)
{
    /* the trusted hop 10.9.9.9 passed on garbage: it is the best known client */
    client("10.0.0.0/8", "10.1.2.3", "203.0.113.7, _hidden, 10.9.9.9", "10.9.9.9");
    client("10.0.0.0/8", "10.1.2.3", "203.0.113.7,,10.9.9.9", "10.9.9.9");
    client("10.0.0.0/8", "10.1.2.3", "garbage", "10.1.2.3");
    /* an untrusted entry stops the walk before any garbage left of it */
    client("10.0.0.0/8", "10.1.2.3", "garbage, 203.0.113.7", "203.0.113.7");
}

Test(http_client_addr, every_entry_trusted_gives_the_leftmost)
{
    client("10.0.0.0/8", "10.1.2.3", "10.4.4.4, 10.5.5.5", "10.4.4.4");
}

Test(http_client_addr, ports_brackets_ipv6_and_canonical_form)
{
    client("10.0.0.0/8", "10.1.2.3", "203.0.113.7:4711", "203.0.113.7");
    client("10.0.0.0/8", "10.1.2.3", "[2001:DB8:0:0::7]:4711", "2001:db8::7");
    client("10.0.0.0/8", "10.1.2.3", "[2001:db8::7]", "2001:db8::7");
    client("10.0.0.0/8", "10.1.2.3", "2001:db8::7", "2001:db8::7");
    client("10.0.0.0/8", "10.1.2.3", "::ffff:203.0.113.7", "203.0.113.7");
    client("10.0.0.0/8", "::ffff:10.1.2.3", "203.0.113.7", "203.0.113.7"); /* dual-stack peer */
    client("fd00::/8", "fd00::5", "203.0.113.7", "203.0.113.7");
    /* malformed forms are garbage: the walk stops on the trusted peer */
    client("10.0.0.0/8", "10.1.2.3", "203.0.113.7:", "10.1.2.3");
    client("10.0.0.0/8", "10.1.2.3", "203.0.113.7:port", "10.1.2.3");
    client("10.0.0.0/8", "10.1.2.3", "[203.0.113.7]", "10.1.2.3");
    client("10.0.0.0/8", "10.1.2.3", "[2001:db8::7", "10.1.2.3");
    client("10.0.0.0/8", "10.1.2.3", "[2001:db8::7]x", "10.1.2.3");
    client("10.0.0.0/8", "10.1.2.3", "2001:db8::7%eth0", "10.1.2.3");
    client("10.0.0.0/8", "10.1.2.3",
           "203.0.113.7000000000000000000000000000000000000000000000000000000000000000",
           "10.1.2.3");
}

Test(http_client_addr, unknown_peer)
{
    es_http_cidrs_t *set = cidrs("0.0.0.0/0");
    char out[46] = "junk";
    cr_expect_eq(es_http_client_addr(set, "", "203.0.113.7", out, sizeof out), -1);
    cr_expect_str_eq(out, "");
    strcpy(out, "junk");
    cr_expect_eq(es_http_client_addr(set, NULL, "203.0.113.7", out, sizeof out), -1);
    cr_expect_str_eq(out, "");
    /* a peer that is no address (a unix socket's name) is kept as it is */
    cr_expect_eq(es_http_client_addr(set, "local", "203.0.113.7", out, sizeof out), 0);
    cr_expect_str_eq(out, "local");
    es_http_cidrs_free(set);
}
