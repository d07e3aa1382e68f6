/*
 * Network value parsers shared by --net and the VM: MAC and IPv4 addresses,
 * netmasks, QEMU-style hostfwd rules, and the random MAC a --net without
 * mac= gets.  Strict: what they accept is what the kernel and the plugin
 * will be given, so nothing is re-interpreted later.
 */
#ifndef NIMBUS_NET_ADDR_H
#define NIMBUS_NET_ADDR_H

#include <stddef.h>
#include <stdint.h>

#define NET_MAC_STRLEN 18 /* "52:54:00:12:34:56" + NUL */

/* Six pairs of hex digits separated by ':'.  Returns 0 or -1. */
int net_parse_mac(const char *s, uint8_t mac[6]);
void net_format_mac(const uint8_t mac[6], char out[NET_MAC_STRLEN]);
/* The group bit (bit 0 of the first byte) is clear. */
int net_mac_is_unicast(const uint8_t mac[6]);
int net_mac_is_zero(const uint8_t mac[6]);
/* A locally administered unicast MAC, 52:xx:xx:xx:xx:xx with 40 random bits
 * (QEMU's guests start with 52 too).  Returns 0 or -errno. */
int net_random_mac(uint8_t mac[6]);

/* Dotted quad "a.b.c.d", each 0-255 in decimal without leading zeros (so
 * "010" cannot mean 8 to one tool and 10 to another).  *out is in network
 * byte order.  Returns 0 or -1. */
int net_parse_ipv4(const char *s, uint32_t *out);
/* Prefix length of a netmask (network byte order) whose ones are
 * contiguous from the top, or -1. */
int net_mask_prefix(uint32_t mask);

/* One QEMU hostfwd rule, [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport,
 * addresses dotted quads or empty, ports 1-65535.  Returns 0 or -1 with a
 * reason in why (may be NULL). */
int net_hostfwd_check(const char *rule, char *why, size_t whylen);

#endif
