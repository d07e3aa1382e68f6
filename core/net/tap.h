/*
 * Host tap devices for --net: open or create a tap with one queue fd per
 * rx/tx pair, check taps the caller passed as fds, and configure the host
 * side (MAC, MTU, IPv4 address, link up).
 *
 * Taps are opened IFF_TAP|IFF_NO_PI|IFF_VNET_HDR (+IFF_MULTI_QUEUE for more
 * than one pair) with a 12-byte virtio_net_hdr_v1 in front of every frame.
 * A tap created here is not persistent: the kernel removes it when the last
 * queue fd closes, on every exit path.  Error messages name the tap or fd
 * and carry no "--net: " prefix.
 */
#ifndef NIMBUS_NET_TAP_H
#define NIMBUS_NET_TAP_H

#include <net/if.h>
#include <stddef.h>
#include <stdint.h>

#define TAP_NAME_TEMPLATE "vmtap%d"
#define TAP_VNET_HDR_LEN 12 /* struct virtio_net_hdr_v1 */

/*
 * Open tap `name` with npairs queue fds (O_CLOEXEC), creating it when it
 * does not exist; NULL or "" creates a new one the kernel names from
 * TAP_NAME_TEMPLATE.  Fills fds[0..npairs), the device's name and whether
 * it was created here.  Returns 0, or -1 with nothing left open.
 */
int tap_open(const char *name, uint32_t npairs, int *fds, char ifname[IFNAMSIZ], int *created,
             char *err, size_t errlen);

/*
 * Check fds passed in by the caller: each must be a queue of the same tap
 * with IFF_TAP and IFF_VNET_HDR, and IFF_MULTI_QUEUE exactly when there is
 * more than one (IFF_NO_PI cannot be read back, see tap.c).  Sets the 12-byte vnet header on them and fills
 * ifname.  The fds stay the caller's.  Returns 0 or -1.
 */
int tap_check_fds(const int *fds, uint32_t nfds, char ifname[IFNAMSIZ], char *err,
                  size_t errlen);

struct tap_link {
    const uint8_t *mac; /* host-side MAC, NULL: leave it */
    uint32_t mtu;       /* 0: leave it */
    uint32_t ip;        /* IPv4 address, network byte order; 0: none */
    int prefix;         /* its prefix length, with ip */
    int up;             /* bring the link up */
};

/*
 * Configure tap `ifname`.  An MTU, MAC or link state that already holds is
 * not written again, so a tap an administrator prepared needs no privileges
 * here unless ip is given.
 * Returns 0 or -1 (EPERM says CAP_NET_ADMIN is needed).
 */
int tap_configure(const char *ifname, const struct tap_link *l, char *err, size_t errlen);

/* Close fds[0..n) that are >= 0 and set them to -1. */
void tap_close(int *fds, uint32_t n);

#endif
