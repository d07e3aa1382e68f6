/*
 * Transmit: guest -> backend.  A chain is the 12-byte header and the frame;
 * the header is checked against what was negotiated, then the chain goes to
 * the tap with one writev straight from guest memory.  A full backend keeps
 * the chain and waits for the fd to become writable, so no vCPU and no
 * thread ever blocks on it.
 */
#include <errno.h>
#include <unistd.h>

#include "net.h"

int net_tx_hdr_ok(const struct net_dev *d, const uint8_t h[NET_HDR_LEN], uint64_t len)
{
    uint32_t flags = h[0], gso = h[1];
    uint64_t hdr_len = nimbus_le_load(h + 2, 2), gso_size = nimbus_le_load(h + 4, 2);
    uint64_t cstart = nimbus_le_load(h + 6, 2), coff = nimbus_le_load(h + 8, 2);
    if (flags & ~(NET_HDR_F_NEEDS_CSUM | NET_HDR_F_DATA_VALID))
        return -EINVAL;
    if (flags & NET_HDR_F_NEEDS_CSUM) {
        if (!net_has(d, VIRTIO_NET_F_CSUM) || cstart + coff + 2 > len)
            return -EINVAL;
    }
    uint32_t type = gso & ~NET_HDR_GSO_ECN;
    if (type == NET_HDR_GSO_NONE)
        return (gso & NET_HDR_GSO_ECN) ? -EINVAL : 0;
    uint32_t need = type == NET_HDR_GSO_TCPV4 ? VIRTIO_NET_F_HOST_TSO4
                  : type == NET_HDR_GSO_TCPV6 ? VIRTIO_NET_F_HOST_TSO6
                  : type == NET_HDR_GSO_UDP   ? VIRTIO_NET_F_HOST_UFO
                                              : 64;
    if (need == 64 || !net_has(d, need))
        return -EINVAL;
    if ((gso & NET_HDR_GSO_ECN) && !net_has(d, VIRTIO_NET_F_HOST_ECN))
        return -EINVAL;
    /* Segmentation needs a partial checksum, a segment size and headers
     * that fit: an Ethernet, an IP and a TCP/UDP header at the least. */
    if (!(flags & NET_HDR_F_NEEDS_CSUM) || gso_size == 0 || hdr_len > len ||
        len < NET_ETH_HLEN + 20 + 8)
        return -EINVAL;
    return 0;
}

/* 1: sent or dropped (push it), 0: the backend is full (keep it). */
static int tx_one(struct net_pair *p, const struct net_chain *c)
{
    struct net_dev *d = p->dev;
    uint64_t total = c->cap, flen = total - NET_HDR_LEN;
    uint8_t h[NET_HDR_LEN];
    if (total < NET_HDR_LEN + NET_ETH_HLEN || total > NET_MAX_BUF)
        goto drop;
    nimbus_vq_gather(c->bufs, c->nbufs, 0, h, NET_HDR_LEN);
    if (net_tx_hdr_ok(d, h, flen) < 0)
        goto drop;
    if (d->opts.user) {
        nimbus_vq_gather(c->bufs, c->nbufs, NET_HDR_LEN, p->linear, flen);
        net_user_input(d, p->linear, (uint32_t)flen);
    } else {
        struct iovec iov[NET_CHAIN_MAX];
        for (uint32_t i = 0; i < c->nbufs; i++)
            iov[i] = (struct iovec){c->bufs[i].host, c->bufs[i].len};
        /* The kernel checks the header again after us: the guest may change
         * it under our feet, which can only make the tap refuse the frame. */
        ssize_t n = writev(p->fd, iov, (int)c->nbufs);
        if (n < 0) {
            if (errno == EAGAIN || errno == ENOBUFS)
                return 0;
            if (!p->warned_io) {
                p->warned_io = 1;
                NET_LOG(d, NIMBUS_LOG_WARN, "queue pair %u: write: %s", p->index,
                        strerror(errno));
            }
            goto drop;
        }
    }
    p->tx_frames++;
    p->tx_bytes += flen;
    return 1;
drop:
    p->tx_dropped++;
    return 1;
}

/*
 * Come back to this queue through the pair's own eventfd: the loop then
 * serves the tap (incoming ACKs) before we go on, which is what keeps a
 * busy transmit queue from starving receive on the same thread.
 */
static void tx_resched(struct net_pair *p)
{
    struct net_dev *d = p->dev;
    uint64_t one = 1;
    if (!p->resched_watched) {
        if (d->host->fd_watch_group(d->hctx, p->index, p->resched_fd, NIMBUS_EV_IN,
                                    NET_RESCHED_TOKEN | p->index) < 0)
            return; /* then the next kick carries on */
        p->resched_watched = 1;
    }
    if (write(p->resched_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        NET_LOG(d, NIMBUS_LOG_WARN, "queue pair %u: resched: %s", p->index, strerror(errno));
}

void net_tx_run(struct net_pair *p)
{
    struct net_dev *d = p->dev;
    uint32_t q = NET_TXQ(p->index);
    int pushed = 0;
    if (!d->activated || p->tx_blocked)
        return;
    /*
     * At most a budget per call.  With EVENT_IDX the driver only kicks again
     * once we have found the queue empty, so a full budget reschedules
     * itself instead of waiting for a kick.
     */
    for (uint32_t done = 0;; done++) {
        if (done == NET_BUDGET) {
            tx_resched(p);
            break;
        }
        if (!p->tx_held) {
            if (net_pop(d, q, &p->tx, 0, &p->bad_chains) <= 0)
                break;
            p->tx_held = 1;
        }
        if (!tx_one(p, &p->tx)) {
            p->tx_blocked = 1;
            break;
        }
        d->host->vq_push(d->hctx, q, p->tx.head, 0);
        p->tx_held = 0;
        pushed = 1;
    }
    if (pushed)
        d->host->vq_notify(d->hctx, q);
    if (d->opts.user)
        net_user_rx(&d->pair[0]); /* slirp may have answered at once (ARP, DHCP) */
    else
        net_pair_update(p);
}
