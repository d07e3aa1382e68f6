/* virtio-net plugin: ABI entry points. */
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "net.h"

/* The services this device cannot work without (ABI minor 2: I/O groups). */
static int host_ok(const nimbus_host_api *h)
{
    return NIMBUS_HAS_MEMBER(h, nimbus_host_api, vq_size) && h->vq_size && h->fd_watch_group &&
           h->vq_pop && h->vq_push && h->vq_notify && h->timer_arm && h->clock_ns &&
           h->fd_unwatch;
}

static void net_destroy(void *dev);

static int net_create(const nimbus_host_api *host, void *hctx, const char *options, void **dev,
                      nimbus_region *regions, uint32_t *nregions, char *err, uint32_t errlen)
{
    (void)regions;
    if (!host || !dev || !nregions) {
        nimbus_errf(err, errlen, "virtio_net: invalid create arguments");
        return -EINVAL;
    }
    if (!host_ok(host)) {
        nimbus_errf(err, errlen, "virtio_net: host lacks I/O groups (needs ABI minor 2)");
        return -ENOTSUP;
    }
    struct net_dev *d = calloc(1, sizeof(*d));
    if (!d) {
        nimbus_errf(err, errlen, "virtio_net: out of memory");
        return -ENOMEM;
    }
    d->host = host;
    d->hctx = hctx;
    for (uint32_t i = 0; i < NET_MAX_PAIRS; i++) {
        d->pair[i].fd = -1;
        d->pair[i].resched_fd = -1;
        d->pair[i].dev = d;
        d->pair[i].index = i;
    }
    int rc = net_parse_options(&d->opts, options ? options : "", err, errlen);
    if (rc < 0) {
        free(d);
        return rc;
    }
    d->pairs = d->opts.num_queues / 2;
    d->ctrl_q = 2 * d->pairs;
    d->active_pairs = 1;
    for (uint32_t i = 0; i < d->pairs && rc == 0; i++) {
        struct net_pair *p = &d->pair[i];
        p->resched_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (p->resched_fd < 0) {
            nimbus_errf(err, errlen, "virtio_net: eventfd: %s", strerror(errno));
            rc = -errno;
        } else if (net_rx_alloc(d, p) < 0) {
            nimbus_errf(err, errlen, "virtio_net: out of memory");
            rc = -ENOMEM;
        } else if (!d->opts.user) {
            rc = net_fd_setup(d, p, d->opts.fds[i], err, errlen);
        }
    }
    if (rc == 0 && d->opts.user) {
        d->pair[0].linear = malloc(NET_MAX_FRAME);
        rc = d->pair[0].linear ? net_user_create(d, err, errlen) : -ENOMEM;
        if (!d->pair[0].linear)
            nimbus_errf(err, errlen, "virtio_net: out of memory");
    }
    if (rc < 0) {
        net_destroy(d);
        return rc;
    }
    d->features_offered = net_features(d);
    net_config_build(d);
    const uint8_t *m = d->opts.mac;
    NET_LOG(d, NIMBUS_LOG_INFO, "%s%s%u queue pair(s), mac %02x:%02x:%02x:%02x:%02x:%02x, %s",
            d->opts.id, d->opts.id[0] ? ": " : "", d->pairs, m[0], m[1], m[2], m[3], m[4], m[5],
            d->opts.user ? "user-mode networking" : d->pair[0].is_tap ? "tap" : "socket");
    *nregions = 0; /* the host's virtio-pci transport owns the BARs */
    *dev = d;
    return 0;
}

static void pairs_quiesce(struct net_dev *d)
{
    for (uint32_t i = 0; i < d->pairs; i++) {
        struct net_pair *p = &d->pair[i];
        if (p->events && p->fd >= 0)
            d->host->fd_unwatch(d->hctx, p->fd);
        p->events = 0;
        if (p->resched_watched)
            d->host->fd_unwatch(d->hctx, p->resched_fd);
        p->resched_watched = 0;
        uint64_t v;
        if (p->resched_fd >= 0 && read(p->resched_fd, &v, sizeof(v)) < 0)
            v = 0; /* nothing was pending */
        net_rx_reset(p);
        p->tx_held = p->tx_blocked = 0;
        p->eof = 0;
    }
}

static void net_destroy(void *dev)
{
    struct net_dev *d = dev;
    if (!d)
        return;
    pairs_quiesce(d);
    net_user_destroy(d);
    for (uint32_t i = 0; i < NET_MAX_PAIRS; i++) {
        struct net_pair *p = &d->pair[i];
        if (p->fd >= 0)
            close(p->fd);
        if (p->resched_fd >= 0)
            close(p->resched_fd);
        net_rx_free(p);
        free(p->linear);
    }
    free(d);
}

static void net_reset(void *dev)
{
    struct net_dev *d = dev;
    /* Chains in flight die with the rings: forget them, touch nothing. */
    pairs_quiesce(d);
    net_user_reset(d);
    d->activated = 0;
    d->features = 0;
    d->guest_offloads = 0;
    d->active_pairs = 1;
}

static int net_virtio_info(void *dev, nimbus_virtio_info *info)
{
    struct net_dev *d = dev;
    if (!info)
        return -EINVAL;
    memset(info, 0, sizeof(*info));
    info->struct_size = sizeof(*info);
    info->device_id = NIMBUS_VIRTIO_ID_NET;
    info->device_features = d->features_offered;
    info->num_queues = 2 * d->pairs + 1;
    info->queue_size_max = d->opts.queue_size;
    info->config_size = NET_CONFIG_SIZE;
    info->pci_class = NET_PCI_CLASS;
    /* A thread per queue pair, as Cloud Hypervisor; control stays device-wide. */
    info->num_groups = d->pairs;
    for (uint32_t i = 0; i < d->pairs; i++)
        info->queue_group[NET_RXQ(i)] = info->queue_group[NET_TXQ(i)] = (uint8_t)i;
    info->queue_group[d->ctrl_q] = NIMBUS_VQ_GROUP_NONE;
    return 0;
}

static int net_config_read(void *dev, uint64_t offset, void *data, uint32_t len)
{
    struct net_dev *d = dev;
    if (offset > NET_CONFIG_SIZE || len > NET_CONFIG_SIZE - offset)
        return -EINVAL;
    memcpy(data, d->config + offset, len);
    return 0;
}

static int net_config_write(void *dev, uint64_t offset, const void *data, uint32_t len)
{
    (void)dev;
    (void)offset;
    (void)data;
    (void)len;
    return -EPERM; /* the MAC is the device's: no CTRL_MAC_ADDR, legacy writes */
}

static int net_activate(void *dev, uint64_t features)
{
    struct net_dev *d = dev;
    d->features = features & (d->features_offered | NIMBUS_BIT(NIMBUS_VIRTIO_F_VERSION_1) |
                              NIMBUS_BIT(NIMBUS_VIRTIO_F_EVENT_IDX) |
                              NIMBUS_BIT(NIMBUS_VIRTIO_F_INDIRECT_DESC));
    d->guest_offloads = d->features;
    for (uint32_t i = 0; i < d->pairs; i++)
        net_tap_set_offload(d, &d->pair[i], d->features);
    d->activated = 1;
    /* The driver starts on one pair and asks for more on the control queue. */
    net_set_active_pairs(d, 1);
    if (d->opts.user)
        net_user_activate(d);
    return 0;
}

static void net_queue_notify(void *dev, uint32_t queue)
{
    struct net_dev *d = dev;
    if (queue == d->ctrl_q) {
        net_ctrl_run(d);
        return;
    }
    if (queue >= d->ctrl_q)
        return;
    struct net_pair *p = &d->pair[queue / 2];
    if (queue & 1) {
        net_tx_run(p);
    } else {
        p->rx_wait = 0;
        net_rx_run(p);
        if (!d->opts.user)
            net_pair_update(p);
    }
}

static void net_fd_ready(void *dev, int fd, uint64_t token, uint32_t revents)
{
    struct net_dev *d = dev;
    if (token == NET_USER_TOKEN) {
        if (fd == net_user_fd(d))
            net_user_fd_ready(d);
        return;
    }
    if ((token & ~0xffull) == NET_RESCHED_TOKEN && (token & 0xff) < d->pairs) {
        struct net_pair *p = &d->pair[token & 0xff];
        uint64_t v;
        if (fd == p->resched_fd && read(fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
            net_tx_run(p);
        return;
    }
    if (token >= d->pairs || d->pair[token].fd != fd)
        return;
    struct net_pair *p = &d->pair[token];
    if ((revents & (NIMBUS_EV_OUT | NIMBUS_EV_ERR)) && p->tx_blocked) {
        p->tx_blocked = 0;
        net_tx_run(p);
    }
    if (revents & (NIMBUS_EV_IN | NIMBUS_EV_ERR | NIMBUS_EV_HUP))
        net_rx_run(p);
    if ((revents & NIMBUS_EV_HUP) && !p->is_tap)
        p->eof = 1;
    net_pair_update(p);
}

static void net_timer_fired(void *dev, uint32_t timer_id)
{
    net_user_timer(dev, timer_id);
}

/* Device-wide (ABI minor 3): no pair's calls run now, so their counters
 * read plainly are consistent. */
static int net_counters(void *dev, void (*emit)(void *ctx, const char *name, uint64_t value),
                        void *ctx)
{
    const struct net_dev *d = dev;
    if (!d || !emit)
        return -EINVAL;
    uint64_t rx_bytes = 0, rx_frames = 0, tx_bytes = 0, tx_frames = 0;
    uint64_t rx_dropped = net_user_dropped(d), tx_dropped = 0, bad = 0;
    for (uint32_t i = 0; i < d->pairs; i++) {
        const struct net_pair *p = &d->pair[i];
        rx_bytes += p->rx_bytes;
        rx_frames += p->rx_frames;
        tx_bytes += p->tx_bytes;
        tx_frames += p->tx_frames;
        rx_dropped += p->rx_dropped;
        tx_dropped += p->tx_dropped;
        bad += p->bad_chains;
    }
    /* Cloud Hypervisor's four first. */
    emit(ctx, "rx_bytes", rx_bytes);
    emit(ctx, "rx_frames", rx_frames);
    emit(ctx, "tx_bytes", tx_bytes);
    emit(ctx, "tx_frames", tx_frames);
    emit(ctx, "rx_dropped", rx_dropped);
    emit(ctx, "tx_dropped", tx_dropped);
    emit(ctx, "bad_chains", bad);
    emit(ctx, "ctrl_errors", d->ctrl_bad);
    return 0;
}

static const nimbus_device_ops ops = {
    .struct_size = sizeof(nimbus_device_ops),
    .create = net_create,
    .destroy = net_destroy,
    .reset = net_reset,
    .fd_ready = net_fd_ready,
    .timer_fired = net_timer_fired,
    .virtio_info = net_virtio_info,
    .virtio_config_read = net_config_read,
    .virtio_config_write = net_config_write,
    .virtio_activate = net_activate,
    .virtio_queue_notify = net_queue_notify,
    .counters = net_counters,
};

NIMBUS_PLUGIN_DECLARE("virtio_net", "1.1",
                      "virtio-net: tap (multiqueue, offloads) or user-mode networking",
                      "fd=<fd>[:<fd>...]|user=on[,hostfwd=<rule>[;<rule>...]],mac=<mac>,"
                      "mtu=<n>,num_queues=<n>,queue_size=<n>,offload_tso=on|off,"
                      "offload_ufo=on|off,offload_csum=on|off,id=<name>",
                      &ops);
