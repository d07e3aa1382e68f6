/*
 * Checks of network values that the command line (--net) and the REST API
 * (vm.create net[], vm.add-net) share, so both refuse the same values with
 * the same words.  Each returns NULL when the value is good, else a reason
 * that reads after the quoted value: "mac '<v>' <reason>".
 */
#ifndef NIMBUS_NET_CHECK_H
#define NIMBUS_NET_CHECK_H

#include <stdint.h>

/* A guest or host MAC: six hex pairs, unicast, not all zeros. */
const char *net_check_mac(const char *s, uint8_t mac[6]);
/* The host side's address: a dotted quad that can be a host's. */
const char *net_check_host_ip(const char *s, uint32_t *ip);
/* A netmask with at least one leading one bit. */
const char *net_check_mask(const char *s, uint32_t *mask);
/* A tap name that needs no quoting anywhere: 1-15 of A-Z a-z 0-9 . _ -,
 * not "." or "..".  Returns 1 or 0. */
int net_tap_name_ok(const char *s);

#endif
