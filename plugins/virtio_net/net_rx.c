/*
 * Receive: backend -> guest.  A tap frame is read straight into the first
 * guest chain; only what does not fit (a large GSO frame over small merged
 * buffers) lands in the bounce buffer and is copied into further chains.
 * The backend is not read while the guest has no buffers, so nothing is
 * dropped for lack of them and nothing spins.
 */
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include "net.h"

int net_pop(struct net_dev *d, uint32_t queue, struct net_chain *c, int writable,
            uint64_t *bad)
{
    /* Bounded: a hostile ring can only hold queue_size malformed chains. */
    for (uint32_t tries = 0; tries <= d->opts.queue_size; tries++) {
        uint32_t n = 0, head = 0;
        int r = d->host->vq_pop(d->hctx, queue, c->bufs, NET_CHAIN_MAX, &n, &head);
        if (r == -EMSGSIZE) { /* already returned to the guest, empty */
            (*bad)++;
            continue;
        }
        if (r <= 0)
            return r;
        c->head = head;
        c->nbufs = n;
        c->cap = 0;
        int ok = 1;
        for (uint32_t i = 0; i < n; i++) {
            if (((c->bufs[i].flags & NIMBUS_VQ_BUF_WRITE) != 0) != (writable != 0))
                ok = 0;
            c->cap += c->bufs[i].len;
        }
        if (ok && (!writable || c->cap >= NET_HDR_LEN))
            return 1;
        (*bad)++;
        d->host->vq_push(d->hctx, queue, head, 0);
    }
    return 0;
}

int net_rx_alloc(struct net_dev *d, struct net_pair *p)
{
    p->bounce = malloc(NET_MAX_BUF);
    p->held.heads = calloc(d->opts.queue_size, sizeof(uint32_t));
    p->held.lens = calloc(d->opts.queue_size, sizeof(uint32_t));
    return p->bounce && p->held.heads && p->held.lens ? 0 : -ENOMEM;
}

void net_rx_free(struct net_pair *p)
{
    free(p->bounce);
    free(p->held.heads);
    free(p->held.lens);
    p->bounce = NULL;
    p->held.heads = p->held.lens = NULL;
}

void net_rx_reset(struct net_pair *p)
{
    p->cur_valid = 0;
    p->held.active = 0;
    p->rx_wait = 0;
}

static void held_drop(struct net_pair *p)
{
    struct net_dev *d = p->dev;
    /* Zero-length buffers are what a driver discards as runt frames. */
    for (uint32_t i = 0; i < p->held.nheads; i++)
        d->host->vq_push(d->hctx, NET_RXQ(p->index), p->held.heads[i], 0);
    p->held.active = 0;
    p->rx_dropped++;
}

/* 1: the held frame is delivered (or dropped); 0: waiting for buffers. */
static int held_deliver(struct net_pair *p, int *pushed)
{
    struct net_dev *d = p->dev;
    struct net_held *h = &p->held;
    int mrg = net_has(d, VIRTIO_NET_F_MRG_RXBUF);
    while (h->left) {
        struct net_chain c;
        int r = net_pop(d, NET_RXQ(p->index), &c, 1, &p->bad_chains);
        if (r <= 0) {
            /* Holding every entry of the ring: no more buffers can come. */
            if (h->nheads && h->nheads >= d->host->vq_size(d->hctx, NET_RXQ(p->index))) {
                held_drop(p);
                *pushed = 1;
                return 1;
            }
            return 0;
        }
        if (!mrg && c.cap < h->left) {
            d->host->vq_push(d->hctx, NET_RXQ(p->index), c.head, 0);
            h->active = 0;
            p->rx_dropped++;
            *pushed = 1;
            return 1;
        }
        if (h->nheads >= d->opts.queue_size) { /* cannot happen: a ring holds fewer */
            d->host->vq_push(d->hctx, NET_RXQ(p->index), c.head, 0);
            held_drop(p);
            *pushed = 1;
            return 1;
        }
        if (h->nheads == 0)
            h->first = c;
        uint32_t n = c.cap < h->left ? c.cap : h->left;
        nimbus_vq_scatter(c.bufs, c.nbufs, 0, p->bounce + h->off, n);
        h->heads[h->nheads] = c.head;
        h->lens[h->nheads] = n;
        h->nheads++;
        h->off += n;
        h->left -= n;
    }
    uint8_t nb[2];
    nimbus_le_store(nb, 2, h->nheads);
    nimbus_vq_scatter(h->first.bufs, h->first.nbufs, NET_HDR_OFF_NUM_BUFFERS, nb, 2);
    uint64_t total = 0;
    for (uint32_t i = 0; i < h->nheads; i++) {
        d->host->vq_push(d->hctx, NET_RXQ(p->index), h->heads[i], h->lens[i]);
        total += h->lens[i];
    }
    h->active = 0;
    p->rx_frames++;
    p->rx_bytes += total - NET_HDR_LEN;
    *pushed = 1;
    return 1;
}

int net_rx_deliver(struct net_pair *p, uint32_t len, int *pushed)
{
    struct net_held *h = &p->held;
    h->active = 1;
    h->off = 0;
    h->left = len;
    h->nheads = 0;
    return held_deliver(p, pushed);
}

int net_rx_resume(struct net_pair *p, int *pushed)
{
    return p->held.active ? held_deliver(p, pushed) : 1;
}

/* A 0-byte read from a datagram socket is an empty datagram; only a
 * SEQPACKET peer that closed also hangs up. */
static int peer_gone(int fd)
{
    struct pollfd pfd = {fd, POLLIN, 0};
    return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLHUP);
}

static void rx_backend(struct net_pair *p)
{
    struct net_dev *d = p->dev;
    int pushed = 0;
    for (uint32_t done = 0; done < NET_BUDGET;) {
        if (p->held.active) {
            if (!held_deliver(p, &pushed))
                goto wait;
            continue;
        }
        if (!p->cur_valid) {
            if (net_pop(d, NET_RXQ(p->index), &p->cur, 1, &p->bad_chains) <= 0)
                goto wait;
            p->cur_valid = 1;
        }
        struct iovec iov[NET_CHAIN_MAX + 1];
        uint32_t n = 0;
        for (; n < p->cur.nbufs; n++)
            iov[n] = (struct iovec){p->cur.bufs[n].host, p->cur.bufs[n].len};
        /* The bounce catches what the chain cannot hold (or proves it too big). */
        iov[n++] = (struct iovec){p->bounce, NET_MAX_BUF};
        ssize_t got = readv(p->fd, iov, (int)n);
        if (got < 0) {
            if (errno != EAGAIN && errno != EINTR && !p->warned_io) {
                p->warned_io = 1;
                NET_LOG(d, NIMBUS_LOG_WARN, "queue pair %u: read: %s", p->index,
                        strerror(errno));
            }
            break;
        }
        if (got == 0 && peer_gone(p->fd)) {
            p->eof = 1;
            break;
        }
        done++; /* an empty datagram is dropped as a runt below */
        if ((size_t)got < NET_HDR_LEN + NET_ETH_HLEN) {
            p->rx_dropped++; /* runt datagram: keep the chain for the next */
            continue;
        }
        if ((uint64_t)got <= p->cur.cap) {
            uint8_t nb[2] = {1, 0};
            nimbus_vq_scatter(p->cur.bufs, p->cur.nbufs, NET_HDR_OFF_NUM_BUFFERS, nb, 2);
            d->host->vq_push(d->hctx, NET_RXQ(p->index), p->cur.head, (uint32_t)got);
            p->cur_valid = 0;
            p->rx_frames++;
            p->rx_bytes += (uint64_t)got - NET_HDR_LEN;
            pushed = 1;
        } else if (!net_has(d, VIRTIO_NET_F_MRG_RXBUF)) {
            p->rx_dropped++; /* a driver without merged buffers posted too little */
        } else {
            struct net_held *h = &p->held;
            h->active = 1;
            h->first = p->cur;
            h->heads[0] = p->cur.head;
            h->lens[0] = p->cur.cap;
            h->nheads = 1;
            h->off = 0;
            h->left = (uint32_t)((uint64_t)got - p->cur.cap);
            p->cur_valid = 0;
        }
    }
    if (pushed)
        d->host->vq_notify(d->hctx, NET_RXQ(p->index));
    net_pair_update(p);
    return;
wait:
    p->rx_wait = 1;
    if (pushed)
        d->host->vq_notify(d->hctx, NET_RXQ(p->index));
    net_pair_update(p);
}

void net_rx_run(struct net_pair *p)
{
    struct net_dev *d = p->dev;
    if (!d->activated || p->index >= net_active_pairs(d))
        return;
    if (d->opts.user)
        net_user_rx(p);
    else
        rx_backend(p);
}
