#include "net/net_addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int net_parse_mac(const char *s, uint8_t mac[6])
{
    uint8_t m[6];
    if (!s || strlen(s) != NET_MAC_STRLEN - 1)
        return -1;
    for (int i = 0; i < 6; i++) {
        const char *p = s + 3 * i;
        int hi = hexval(p[0]), lo = hexval(p[1]);
        if (hi < 0 || lo < 0 || (i < 5 && p[2] != ':'))
            return -1;
        m[i] = (uint8_t)(hi << 4 | lo);
    }
    memcpy(mac, m, 6);
    return 0;
}

void net_format_mac(const uint8_t mac[6], char out[NET_MAC_STRLEN])
{
    snprintf(out, NET_MAC_STRLEN, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2],
             mac[3], mac[4], mac[5]);
}

int net_mac_is_unicast(const uint8_t mac[6])
{
    return !(mac[0] & 1);
}

int net_mac_is_zero(const uint8_t mac[6])
{
    static const uint8_t zero[6];
    return memcmp(mac, zero, 6) == 0;
}

int net_random_mac(uint8_t mac[6])
{
    uint8_t r[5];
    size_t got = 0;
    while (got < sizeof(r)) {
        ssize_t n = getrandom(r + got, sizeof(r) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)n;
    }
    mac[0] = 0x52; /* locally administered (bit 1), unicast (bit 0 clear) */
    memcpy(mac + 1, r, sizeof(r));
    return 0;
}

int net_parse_ipv4(const char *s, uint32_t *out)
{
    uint32_t v = 0;
    if (!s)
        return -1;
    for (int part = 0; part < 4; part++) {
        unsigned n = 0, digits = 0;
        for (; *s >= '0' && *s <= '9'; s++) {
            if (digits == 1 && n == 0)
                return -1; /* leading zero */
            n = n * 10 + (unsigned)(*s - '0');
            if (++digits > 3 || n > 255)
                return -1;
        }
        if (digits == 0 || *s != (part < 3 ? '.' : '\0'))
            return -1;
        if (part < 3)
            s++;
        v = v << 8 | n;
    }
    *out = htonl(v);
    return 0;
}

int net_mask_prefix(uint32_t mask)
{
    uint32_t m = ntohl(mask);
    /* Contiguous ones from the top: the complement is 2^k - 1. */
    if ((~m & (~m + 1)) != 0)
        return -1;
    int n = 0;
    while (m & 0x80000000u) {
        n++;
        m <<= 1;
    }
    return n;
}

/* Copy the field [p, sep) into buf; *p moves past sep.  -1 if sep is absent
 * or the field is too long. */
static int field(const char **p, char sep, char *buf, size_t len)
{
    const char *e = strchr(*p, sep);
    if (!e || (size_t)(e - *p) >= len)
        return -1;
    memcpy(buf, *p, (size_t)(e - *p));
    buf[e - *p] = '\0';
    *p = e + 1;
    return 0;
}

static int parse_port(const char *s)
{
    unsigned n = 0;
    if (!*s || *s == '0' || strlen(s) > 5)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        n = n * 10 + (unsigned)(*s - '0');
    }
    return n <= 65535 ? (int)n : -1;
}

#define WHY(...) (why ? (void)snprintf(why, whylen, __VA_ARGS__) : (void)0, -1)

int net_hostfwd_check(const char *rule, char *why, size_t whylen)
{
    char proto[8], haddr[16], hport[8], gaddr[16];
    uint32_t ip;
    const char *p = rule;
    if (field(&p, ':', proto, sizeof(proto)) < 0 || field(&p, ':', haddr, sizeof(haddr)) < 0 ||
        field(&p, '-', hport, sizeof(hport)) < 0 || field(&p, ':', gaddr, sizeof(gaddr)) < 0)
        return WHY("expected [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport");
    if (proto[0] && strcmp(proto, "tcp") != 0 && strcmp(proto, "udp") != 0)
        return WHY("protocol '%s' is not tcp or udp", proto);
    if (haddr[0] && net_parse_ipv4(haddr, &ip) < 0)
        return WHY("host address '%s' is not an IPv4 address", haddr);
    if (parse_port(hport) < 0)
        return WHY("host port '%s' is not 1-65535", hport);
    if (gaddr[0] && net_parse_ipv4(gaddr, &ip) < 0)
        return WHY("guest address '%s' is not an IPv4 address", gaddr);
    if (parse_port(p) < 0)
        return WHY("guest port '%s' is not 1-65535", p);
    return 0;
}
