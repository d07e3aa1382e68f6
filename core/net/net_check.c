#include "net/net_check.h"

#include <arpa/inet.h>
#include <string.h>

#include "config_limits.h"
#include "net/net_addr.h"

const char *net_check_mac(const char *s, uint8_t mac[6])
{
    if (net_parse_mac(s, mac) < 0)
        return "is not a MAC address (expected six hex pairs such as 52:54:00:12:34:56)";
    if (!net_mac_is_unicast(mac))
        return "is a multicast address (the lowest bit of the first byte must be 0)";
    if (net_mac_is_zero(mac))
        return "is all zeros";
    return NULL;
}

const char *net_check_host_ip(const char *s, uint32_t *ip)
{
    if (net_parse_ipv4(s, ip) < 0)
        return "is not an IPv4 address (expected a dotted quad such as 192.168.249.1)";
    /* 0.0.0.0 and multicast/reserved (224/3) cannot be given to an interface. */
    uint32_t first = ntohl(*ip) >> 24;
    if (*ip == 0 || first >= 224)
        return "cannot be a host address";
    return NULL;
}

const char *net_check_mask(const char *s, uint32_t *mask)
{
    if (net_parse_ipv4(s, mask) < 0)
        return "is not a dotted quad such as 255.255.255.0";
    if (net_mask_prefix(*mask) < 1)
        return "is not a netmask (contiguous ones from the left, at least one)";
    return NULL;
}

int net_tap_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CLI_NET_IFNAME_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return 0;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}
