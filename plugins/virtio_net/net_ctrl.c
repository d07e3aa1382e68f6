/*
 * The control queue (virtio 1.2, 5.1.6.5): the driver picks how many queue
 * pairs it uses and which receive offloads it wants.  Device-wide: it runs
 * with every queue pair's thread excluded, so it may touch every pair.
 */
#include "net.h"

#define GUEST_OFFLOAD_BITS                                                                   \
    (NIMBUS_BIT(VIRTIO_NET_F_GUEST_CSUM) | NIMBUS_BIT(VIRTIO_NET_F_GUEST_TSO4) |             \
     NIMBUS_BIT(VIRTIO_NET_F_GUEST_TSO6) | NIMBUS_BIT(VIRTIO_NET_F_GUEST_ECN) |              \
     NIMBUS_BIT(VIRTIO_NET_F_GUEST_UFO))

int net_set_active_pairs(struct net_dev *d, uint32_t n)
{
    if (n < 1 || n > d->pairs)
        return -EINVAL;
    /* Attach first, then detach: the tap must always keep one queue. */
    for (uint32_t i = 0; i < n; i++)
        net_tap_attach(d, &d->pair[i], 1);
    for (uint32_t i = n; i < d->pairs; i++)
        net_tap_attach(d, &d->pair[i], 0);
    __atomic_store_n(&d->active_pairs, n, __ATOMIC_RELEASE);
    for (uint32_t i = 0; i < d->pairs; i++) {
        d->pair[i].rx_wait = 0;
        net_pair_update(&d->pair[i]);
    }
    return 0;
}

static uint8_t ctrl_exec(struct net_dev *d, const uint8_t *cmd, uint64_t len)
{
    if (len < 2)
        return NET_CTRL_ERR;
    uint8_t cls = cmd[0], op = cmd[1];
    const uint8_t *data = cmd + 2;
    uint64_t dlen = len - 2;
    if (cls == NET_CTRL_MQ && op == NET_CTRL_MQ_VQ_PAIRS_SET) {
        if (!net_has(d, VIRTIO_NET_F_MQ) || dlen < 2)
            return NET_CTRL_ERR;
        return net_set_active_pairs(d, (uint32_t)nimbus_le_load(data, 2)) == 0 ? NET_CTRL_OK
                                                                              : NET_CTRL_ERR;
    }
    if (cls == NET_CTRL_GUEST_OFFLOADS && op == NET_CTRL_GUEST_OFFLOADS_SET) {
        if (!net_has(d, VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) || dlen < 8)
            return NET_CTRL_ERR;
        uint64_t want = nimbus_le_load(data, 8);
        /* Only offloads that were negotiated may be switched on (5.1.6.5.6.1). */
        if (want & ~(d->features & GUEST_OFFLOAD_BITS))
            return NET_CTRL_ERR;
        d->guest_offloads = want;
        for (uint32_t i = 0; i < d->pairs; i++)
            net_tap_set_offload(d, &d->pair[i], want);
        return NET_CTRL_OK;
    }
    return NET_CTRL_ERR;
}

void net_ctrl_run(struct net_dev *d)
{
    int pushed = 0;
    for (;;) {
        uint32_t n = 0, head = 0;
        nimbus_vq_buf bufs[NET_CHAIN_MAX];
        int r = d->host->vq_pop(d->hctx, d->ctrl_q, bufs, NET_CHAIN_MAX, &n, &head);
        if (r == -EMSGSIZE) {
            d->ctrl_bad++;
            continue;
        }
        if (r <= 0)
            break;
        uint64_t rlen = nimbus_vq_len(bufs, n, 0), wlen = nimbus_vq_len(bufs, n, 1);
        uint32_t written = 0;
        if (wlen >= 1) { /* a short command is answered ERR by ctrl_exec */
            uint8_t cmd[2 + 16];
            uint64_t got = nimbus_vq_gather(bufs, n, 0, cmd, rlen < sizeof(cmd) ? rlen : sizeof(cmd));
            uint8_t ack = ctrl_exec(d, cmd, got);
            if (ack != NET_CTRL_OK)
                d->ctrl_bad++;
            nimbus_vq_scatter(bufs, n, 0, &ack, 1);
            written = 1;
        } else {
            d->ctrl_bad++; /* nowhere to put the answer */
        }
        d->host->vq_push(d->hctx, d->ctrl_q, head, written);
        pushed = 1;
    }
    if (pushed)
        d->host->vq_notify(d->hctx, d->ctrl_q);
}
