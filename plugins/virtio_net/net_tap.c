/*
 * Backend fds: a tap opened IFF_TAP|IFF_NO_PI|IFF_VNET_HDR (the core or the
 * caller opened it), or an AF_UNIX datagram socket carrying the same
 * header-prefixed frames (unit tests, fuzzers, VM-to-VM links).
 */
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net.h"

int net_fd_setup(struct net_dev *d, struct net_pair *p, int fd, char *err, uint32_t errlen)
{
    int own = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (own < 0) {
        nimbus_errf(err, errlen, "virtio_net: fd %d is not open: %s", fd, strerror(errno));
        return -EBADF;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    if (ioctl(own, TUNGETIFF, &ifr) == 0) {
        unsigned flags = (unsigned short)ifr.ifr_flags;
        /* IFF_NO_PI cannot be checked: TUNGETIFF reports another flag in its
         * bit.  A tap with packet info would fail the header checks anyway. */
        if (!(flags & IFF_TAP) || !(flags & IFF_VNET_HDR)) {
            nimbus_errf(err, errlen,
                        "virtio_net: fd %d (%.16s) must be a tap opened with "
                        "IFF_TAP|IFF_NO_PI|IFF_VNET_HDR",
                        fd, ifr.ifr_name);
            close(own);
            return -EINVAL;
        }
        if (d->pairs > 1 && !(flags & IFF_MULTI_QUEUE)) {
            nimbus_errf(err, errlen,
                        "virtio_net: fd %d (%.16s): %u queue pairs need a tap opened "
                        "with IFF_MULTI_QUEUE",
                        fd, ifr.ifr_name, d->pairs);
            close(own);
            return -EINVAL;
        }
        int hdr = NET_HDR_LEN;
        if (ioctl(own, TUNSETVNETHDRSZ, &hdr) < 0) {
            nimbus_errf(err, errlen, "virtio_net: fd %d: cannot set the vnet header size: %s",
                        fd, strerror(errno));
            close(own);
            return -EINVAL;
        }
        p->is_tap = 1;
    } else {
        struct stat st;
        int type = 0;
        socklen_t tl = sizeof(type);
        if (fstat(own, &st) < 0 || !S_ISSOCK(st.st_mode) ||
            getsockopt(own, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
            (type != SOCK_DGRAM && type != SOCK_SEQPACKET)) {
            nimbus_errf(err, errlen,
                        "virtio_net: fd %d is neither a tap nor a datagram socket", fd);
            close(own);
            return -EINVAL;
        }
        p->is_tap = 0;
    }
    int fl = fcntl(own, F_GETFL);
    if (fl < 0 || fcntl(own, F_SETFL, fl | O_NONBLOCK) < 0) {
        nimbus_errf(err, errlen, "virtio_net: fd %d: cannot make it non-blocking", fd);
        close(own);
        return -EINVAL;
    }
    p->fd = own;
    return 0;
}

int net_tap_set_offload(struct net_dev *d, struct net_pair *p, uint64_t g)
{
    if (!p->is_tap || p->fd < 0)
        return 0;
    unsigned off = 0;
    /* The tap may only hand us what the guest can take (virtio 5.1.6.4). */
    if (g & NIMBUS_BIT(VIRTIO_NET_F_GUEST_CSUM)) {
        off |= TUN_F_CSUM;
        if (g & NIMBUS_BIT(VIRTIO_NET_F_GUEST_TSO4))
            off |= TUN_F_TSO4;
        if (g & NIMBUS_BIT(VIRTIO_NET_F_GUEST_TSO6))
            off |= TUN_F_TSO6;
        if ((off & (TUN_F_TSO4 | TUN_F_TSO6)) && (g & NIMBUS_BIT(VIRTIO_NET_F_GUEST_ECN)))
            off |= TUN_F_TSO_ECN;
        if (g & NIMBUS_BIT(VIRTIO_NET_F_GUEST_UFO))
            off |= TUN_F_UFO;
    }
    if (ioctl(p->fd, TUNSETOFFLOAD, (unsigned long)off) == 0)
        return 0;
    /* Kernels without UFO on taps refuse the whole set: as QEMU, drop UFO. */
    if ((off & TUN_F_UFO) && ioctl(p->fd, TUNSETOFFLOAD, (unsigned long)(off & ~TUN_F_UFO)) == 0)
        return 0;
    NET_LOG(d, NIMBUS_LOG_WARN, "queue pair %u: TUNSETOFFLOAD 0x%x failed: %s", p->index, off,
            strerror(errno));
    return -errno;
}

int net_tap_attach(struct net_dev *d, struct net_pair *p, int attach)
{
    if (!p->is_tap || p->fd < 0 || d->pairs < 2)
        return 0;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = (short)(attach ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE);
    if (ioctl(p->fd, TUNSETQUEUE, &ifr) == 0 || errno == EINVAL)
        return 0; /* EINVAL: already in that state */
    NET_LOG(d, NIMBUS_LOG_WARN, "queue pair %u: cannot %s the tap queue: %s", p->index,
            attach ? "attach" : "detach", strerror(errno));
    return -errno;
}

void net_pair_watch(struct net_pair *p, uint32_t events)
{
    struct net_dev *d = p->dev;
    if (p->fd < 0 || p->events == events)
        return;
    /*
     * Nothing wanted: drop the watch instead of pausing it, since epoll
     * reports ERR/HUP even for an empty mask, and a detached tap queue polls
     * as ERR forever.
     */
    if (!events) {
        d->host->fd_unwatch(d->hctx, p->fd);
        p->events = 0;
        return;
    }
    if (d->host->fd_watch_group(d->hctx, p->index, p->fd, events, p->index) == 0)
        p->events = events;
}

void net_pair_update(struct net_pair *p)
{
    struct net_dev *d = p->dev;
    uint32_t ev = 0;
    if (d->activated && p->index < net_active_pairs(d) && !p->rx_wait && !p->eof)
        ev |= NIMBUS_EV_IN;
    if (p->tx_blocked)
        ev |= NIMBUS_EV_OUT;
    net_pair_watch(p, ev);
}
