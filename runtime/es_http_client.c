/* es_http_client — who the client of a request is behind trusted proxies: parsing
 * EVENTSHOP_TRUSTED_PROXIES into a set of networks and choosing the client's address from the TCP
 * peer and X-Forwarded-For (es_http.h). Text in, text out: no h2o, so it is tested alone
 * (tests/unit/runtime/test_http_client_addr.c); es_http_client_ip in es_http.c feeds it a
 * request's peer and headers. */
#include "es_err.h"
#include "es_http.h"
#include "es_mem.h"
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef struct cidr {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    int bits;
} cidr_t;

struct es_http_cidrs {
    cidr_t *nets;
    size_t n;
};

static const unsigned char v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Parses the len bytes at text as one IPv4 or IPv6 address into family and addr (network order;
 * IPv4-mapped IPv6 stays IPv6 here: callers decide). */
static bool addr_parse(const char *text, size_t len, int *family, unsigned char addr[16])
{
    char buf[INET6_ADDRSTRLEN + 1];
    memset(addr, 0, 16);
    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, text, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET, buf, addr) == 1) {
        *family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, buf, addr) == 1) {
        *family = AF_INET6;
        return true;
    }
    return false;
}

/* An IPv4-mapped IPv6 address becomes the IPv4 address (a dual-stack listener reports IPv4
 * peers so); true if it was one. */
static bool addr_unmap(int *family, unsigned char addr[16])
{
    if (*family != AF_INET6 || memcmp(addr, v4_mapped_prefix, sizeof v4_mapped_prefix) != 0)
        return false;
    memmove(addr, addr + 12, 4);
    *family = AF_INET;
    return true;
}

static bool cidr_contains(const cidr_t *c, int family, const unsigned char *addr)
{
    if (c->family != family)
        return false;
    int full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(c->addr, addr, (size_t)full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (c->addr[full] & mask) == (addr[full] & mask);
}

static bool cidrs_match(const es_http_cidrs_t *set, int family, const unsigned char *addr)
{
    for (size_t i = 0; set && i < set->n; i++)
        if (cidr_contains(&set->nets[i], family, addr))
            return true;
    return false;
}

static const char *skip_blank(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

static const char *trim_blank_end(const char *start, const char *p)
{
    while (p > start && (p[-1] == ' ' || p[-1] == '\t'))
        p--;
    return p;
}

/* One entry "address" or "address/bits" of a trusted-proxies list into c. */
static int cidr_parse(const char *text, size_t len, cidr_t *c, es_err_t *err)
{
    if (memchr(text, ' ', len) || memchr(text, '\t', len))
        return es_set(err, ES_EINVAL, "'%.*s' is not one CIDR (separate entries with commas)",
                      (int)len, text);
    const char *slash = memchr(text, '/', len);
    size_t alen = slash ? (size_t)(slash - text) : len;
    if (!addr_parse(text, alen, &c->family, c->addr))
        return es_set(err, ES_EINVAL, "'%.*s' is not an IPv4 or IPv6 address or CIDR", (int)len,
                      text);
    int max = c->family == AF_INET ? 32 : 128;
    c->bits = max;
    if (slash) {
        const char *d = slash + 1, *end = text + len;
        int bits = 0;
        if (d == end || end - d > 3)
            return es_set(err, ES_EINVAL, "'%.*s': the prefix length must be 0-%d", (int)len, text,
                          max);
        for (; d < end; d++) {
            if (*d < '0' || *d > '9')
                return es_set(err, ES_EINVAL, "'%.*s': the prefix length must be 0-%d", (int)len,
                              text, max);
            bits = bits * 10 + (*d - '0');
        }
        if (bits > max)
            return es_set(err, ES_EINVAL, "'%.*s': the prefix length must be 0-%d", (int)len, text,
                          max);
        c->bits = bits;
    }
    if (c->family == AF_INET6 && memcmp(c->addr, v4_mapped_prefix, sizeof v4_mapped_prefix) == 0) {
        if (c->bits < 96)
            return es_set(err, ES_EINVAL, "'%.*s': write IPv4 networks as IPv4", (int)len, text);
        addr_unmap(&c->family, c->addr);
        c->bits -= 96;
    }
    /* bits past the prefix are most likely a typo of the network meant: refuse, naming it */
    cidr_t net = *c;
    size_t nbytes = c->family == AF_INET ? 4 : 16;
    for (size_t i = 0; i < nbytes; i++) {
        int keep = c->bits - (int)i * 8;
        net.addr[i] &= keep >= 8 ? 0xff : keep <= 0 ? 0 : (unsigned char)(0xff << (8 - keep));
    }
    if (memcmp(net.addr, c->addr, nbytes) != 0) {
        char text_net[INET6_ADDRSTRLEN];
        inet_ntop(net.family, net.addr, text_net, sizeof text_net);
        return es_set(err, ES_EINVAL, "'%.*s' has bits set past its prefix (the network is %s/%d)",
                      (int)len, text, text_net, c->bits);
    }
    return 0;
}

es_http_cidrs_t *es_http_cidrs_new(const char *spec, es_err_t *err)
{
    es_http_cidrs_t *set = xcalloc(1, sizeof *set);
    if (!spec)
        return set;
    const char *end = spec + strlen(spec);
    if (skip_blank(spec, end) == end)
        return set;
    for (const char *p = spec; p <= end;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        const char *a = skip_blank(p, stop), *b = trim_blank_end(a, stop);
        if (a == b) {
            es_set(err, ES_EINVAL, "empty entry in '%s'", spec);
            goto fail;
        }
        cidr_t c;
        if (cidr_parse(a, (size_t)(b - a), &c, err))
            goto fail;
        set->nets = xrealloc(set->nets, sizeof *set->nets * (set->n + 1));
        set->nets[set->n++] = c;
        p = stop + 1;
    }
    return set;
fail:
    es_http_cidrs_free(set);
    return NULL;
}

void es_http_cidrs_free(es_http_cidrs_t *set)
{
    if (!set)
        return;
    free(set->nets);
    free(set);
}

size_t es_http_cidrs_count(const es_http_cidrs_t *set)
{
    return set ? set->n : 0;
}

bool es_http_cidrs_has(const es_http_cidrs_t *set, const char *ip)
{
    int family;
    unsigned char addr[16];
    if (!ip || !addr_parse(ip, strlen(ip), &family, addr))
        return false;
    addr_unmap(&family, addr);
    return cidrs_match(set, family, addr);
}

/* One X-Forwarded-For entry (already trimmed): an address, "[v6]", "[v6]:port" or "v4:port". */
static bool forwarded_parse(const char *text, size_t len, int *family, unsigned char addr[16])
{
    const char *end = text + len;
    if (len > 0 && text[0] == '[') {
        const char *close = memchr(text, ']', len);
        if (!close)
            return false;
        const char *after = close + 1;
        if (after < end && (*after != ':' || after + 1 == end))
            return false;
        for (const char *d = after + 1; d < end; d++)
            if (*d < '0' || *d > '9')
                return false;
        if (!addr_parse(text + 1, (size_t)(close - text - 1), family, addr) || *family != AF_INET6)
            return false;
        addr_unmap(family, addr);
        return true;
    }
    const char *colon = memchr(text, ':', len);
    if (colon && !memchr(colon + 1, ':', (size_t)(end - colon - 1))) { /* one colon: v4:port */
        if (colon + 1 == end)
            return false;
        for (const char *d = colon + 1; d < end; d++)
            if (*d < '0' || *d > '9')
                return false;
        return addr_parse(text, (size_t)(colon - text), family, addr) && *family == AF_INET;
    }
    if (!addr_parse(text, len, family, addr))
        return false;
    addr_unmap(family, addr);
    return true;
}

int es_http_client_addr(const es_http_cidrs_t *trusted, const char *peer, const char *xff,
                        char *out, size_t cap)
{
    if (cap == 0)
        return -1;
    out[0] = '\0';
    if (!peer || !*peer)
        return -1;
    int family;
    unsigned char addr[16];
    if (!addr_parse(peer, strlen(peer), &family, addr)) {
        snprintf(out, cap, "%s", peer);
        return 0;
    }
    addr_unmap(&family, addr);
    if (cidrs_match(trusted, family, addr) && xff) {
        /* right to left: each entry was appended by the hop after it; a trusted hop vouches for
         * the entry it appended, nobody vouches for what an untrusted one sent */
        const char *end = xff + strlen(xff);
        for (;;) {
            const char *item = end;
            while (item > xff && item[-1] != ',')
                item--;
            const char *a = skip_blank(item, end), *b = trim_blank_end(a, end);
            int f;
            unsigned char next[16];
            if (!forwarded_parse(a, (size_t)(b - a), &f, next))
                break;
            family = f;
            memcpy(addr, next, sizeof next);
            if (!cidrs_match(trusted, family, addr) || item == xff)
                break;
            end = item - 1; /* the comma */
        }
    }
    if (!inet_ntop(family, addr, out, (socklen_t)cap)) {
        out[0] = '\0';
        return -1;
    }
    return 0;
}
