/* Feature bits and the virtio_net_config bytes (virtio 1.2, 5.1.3-5.1.4). */
#include "net.h"

uint64_t net_features(const struct net_dev *d)
{
    const struct net_opts *o = &d->opts;
    uint64_t f = NIMBUS_BIT(VIRTIO_NET_F_MAC) | NIMBUS_BIT(VIRTIO_NET_F_MRG_RXBUF) |
                 NIMBUS_BIT(VIRTIO_NET_F_STATUS) | NIMBUS_BIT(VIRTIO_NET_F_CTRL_VQ);
    if (o->mtu)
        f |= NIMBUS_BIT(VIRTIO_NET_F_MTU);
    if (d->pairs > 1)
        f |= NIMBUS_BIT(VIRTIO_NET_F_MQ);
    /* slirp takes and gives plain frames: no partial checksums, no GSO. */
    if (o->user || !o->offload_csum)
        return f;
    f |= NIMBUS_BIT(VIRTIO_NET_F_CSUM) | NIMBUS_BIT(VIRTIO_NET_F_GUEST_CSUM) |
         NIMBUS_BIT(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS);
    if (o->offload_tso)
        f |= NIMBUS_BIT(VIRTIO_NET_F_GUEST_TSO4) | NIMBUS_BIT(VIRTIO_NET_F_GUEST_TSO6) |
             NIMBUS_BIT(VIRTIO_NET_F_GUEST_ECN) | NIMBUS_BIT(VIRTIO_NET_F_HOST_TSO4) |
             NIMBUS_BIT(VIRTIO_NET_F_HOST_TSO6) | NIMBUS_BIT(VIRTIO_NET_F_HOST_ECN);
    if (o->offload_ufo)
        f |= NIMBUS_BIT(VIRTIO_NET_F_GUEST_UFO) | NIMBUS_BIT(VIRTIO_NET_F_HOST_UFO);
    return f;
}

void net_config_build(struct net_dev *d)
{
    memset(d->config, 0, sizeof(d->config));
    memcpy(d->config + NET_CFG_MAC, d->opts.mac, 6);
    nimbus_le_store(d->config + NET_CFG_STATUS, 2, VIRTIO_NET_S_LINK_UP);
    nimbus_le_store(d->config + NET_CFG_MAX_PAIRS, 2, d->pairs);
    nimbus_le_store(d->config + NET_CFG_MTU, 2, d->opts.mtu);
}
