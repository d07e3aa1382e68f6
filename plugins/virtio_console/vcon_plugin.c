/* virtio-console plugin: options, device description, ABI entry points. */
#include <stdlib.h>

#include <nimbus/plugin_util.h>
#include <nimbus/virtio_util.h>

#include "vcon.h"

/*
 * Config space as the spec lays it out (cols, rows, max_nr_ports, emerg_wr).
 * It reads as zeros: F_SIZE is not offered because Linux before commit
 * 5326ab737a47 reads cols and rows swapped, so any size we reported would
 * be wrong on one kernel generation; without it the guest falls back to
 * its own default (80 columns for busybox) or `stty`.
 */
#define VCON_CONFIG_SIZE 12u
/* PCI class 0x0780: communication controller, other (what guests expect
 * for a virtio console). */
#define VCON_PCI_CLASS 0x078000u

static int parse_options(const char *opts, char *err, uint32_t errlen)
{
    char key[64], val[64];
    size_t pos = 0;
    int r = nimbus_opt_next(opts, &pos, key, sizeof(key), val, sizeof(val));
    if (r == 0)
        return 0;
    if (r < 0)
        nimbus_errf(err, errlen, "virtio_console: malformed option '%s'", key);
    else
        nimbus_errf(err, errlen, "virtio_console: unknown option '%s' (it takes none)", key);
    return -EINVAL;
}

/* The services this device cannot work without (ABI minor 1). */
static int host_ok(const nimbus_host_api *h)
{
    return NIMBUS_HAS_MEMBER(h, nimbus_host_api, virtio_needs_reset) && h->vq_pop &&
           h->vq_push && h->vq_notify && h->timer_arm && h->clock_ns;
}

static int vcon_create(const nimbus_host_api *host, void *hctx, const char *options,
                       void **dev, nimbus_region *regions, uint32_t *nregions, char *err,
                       uint32_t errlen)
{
    (void)regions;
    if (!host || !dev || !nregions) {
        nimbus_errf(err, errlen, "virtio_console: invalid create arguments");
        return -EINVAL;
    }
    if (!host_ok(host)) {
        nimbus_errf(err, errlen, "virtio_console: host lacks virtqueue services "
                                 "(needs ABI minor 1)");
        return -ENOTSUP;
    }
    int r = parse_options(options ? options : "", err, errlen);
    if (r < 0)
        return r;
    struct vcon *v = calloc(1, sizeof(*v));
    if (!v) {
        nimbus_errf(err, errlen, "virtio_console: out of memory");
        return -ENOMEM;
    }
    v->host = host;
    v->hctx = hctx;
    vcon_queues_reset(v);
    *nregions = 0; /* the host's virtio-pci transport owns the BARs */
    *dev = v;
    return 0;
}

static void vcon_destroy(void *dev)
{
    struct vcon *v = dev;
    if (!v)
        return;
    /* The guest is gone, but what it already wrote should still reach the
     * terminal: hand the unfinished chain's tail to the backend (ABI: the
     * host drains it after destroy). */
    if (v->tx_busy && v->host->chr_write) {
        for (uint32_t i = v->tx_idx; i < v->tx_nbufs; i++) {
            const nimbus_vq_buf *b = &v->tx_bufs[i];
            uint64_t off = i == v->tx_idx ? v->tx_off : 0;
            if (!(b->flags & NIMBUS_VQ_BUF_WRITE) && off < b->len)
                v->host->chr_write(v->hctx, (const uint8_t *)b->host + off, b->len - off);
        }
    }
    if (v->tx_discarded)
        nimbus_logf(v->host, v->hctx, NIMBUS_LOG_INFO,
                    "virtio-console: %llu output bytes discarded (no backend)",
                    (unsigned long long)v->tx_discarded);
    free(v);
}

static void vcon_reset(void *dev)
{
    vcon_queues_reset(dev);
}

static void vcon_timer_fired(void *dev, uint32_t timer_id)
{
    struct vcon *v = dev;
    if (timer_id != VCON_TX_TIMER)
        return;
    v->tx_waiting = 0;
    vcon_tx_run(v);
}

static uint64_t vcon_chr_input(void *dev, const void *buf, uint64_t len)
{
    struct vcon *v = dev;
    if (!buf || len == 0)
        return 0;
    uint64_t n = vcon_rx_input(v, buf, len);
    if (!v->active)
        v->input_blocked = 1; /* kept by the backend until DRIVER_OK */
    return n;
}

static int vcon_virtio_info(void *dev, nimbus_virtio_info *info)
{
    (void)dev;
    if (!info)
        return -EINVAL;
    *info = (nimbus_virtio_info){
        .struct_size = sizeof(*info),
        .device_id = NIMBUS_VIRTIO_ID_CONSOLE,
        .device_features = 0,
        .num_queues = VCON_NUM_QUEUES,
        .queue_size_max = VCON_QUEUE_SIZE,
        .config_size = VCON_CONFIG_SIZE,
        .pci_class = VCON_PCI_CLASS,
    };
    return 0;
}

static int config_range_ok(uint64_t offset, uint32_t len)
{
    return len >= 1 && len <= 8 && offset < VCON_CONFIG_SIZE &&
           len <= VCON_CONFIG_SIZE - offset;
}

static int vcon_config_read(void *dev, uint64_t offset, void *data, uint32_t len)
{
    (void)dev;
    if (!data || !config_range_ok(offset, len))
        return -EINVAL;
    memset(data, 0, len);
    return 0;
}

/* emerg_wr is the only writable field and EMERG_WRITE is not offered. */
static int vcon_config_write(void *dev, uint64_t offset, const void *data, uint32_t len)
{
    (void)dev;
    if (!data || !config_range_ok(offset, len))
        return -EINVAL;
    return 0;
}

static int vcon_activate(void *dev, uint64_t features)
{
    struct vcon *v = dev;
    v->features = features;
    v->active = 1;
    /* Input that arrived before DRIVER_OK is waiting in the backend. */
    vcon_rx_refilled(v);
    /* Output queued before DRIVER_OK: written from the event loop, since
     * this runs on the vCPU that set DRIVER_OK and a backend write may
     * block or be long. */
    vcon_tx_schedule(v);
    return 0;
}

static void vcon_queue_notify(void *dev, uint32_t queue)
{
    struct vcon *v = dev;
    if (queue == VCON_QUEUE_RX)
        vcon_rx_refilled(v);
    else if (queue == VCON_QUEUE_TX)
        vcon_tx_run(v);
}

static const nimbus_device_ops vcon_ops = {
    .struct_size = sizeof(nimbus_device_ops),
    .create = vcon_create,
    .destroy = vcon_destroy,
    .reset = vcon_reset,
    .timer_fired = vcon_timer_fired,
    .chr_input = vcon_chr_input,
    .virtio_info = vcon_virtio_info,
    .virtio_config_read = vcon_config_read,
    .virtio_config_write = vcon_config_write,
    .virtio_activate = vcon_activate,
    .virtio_queue_notify = vcon_queue_notify,
};

NIMBUS_PLUGIN_DECLARE("virtio_console", "1.0",
                      "virtio-console (single port) for the guest's hvc0 console", "",
                      &vcon_ops);
