/*
 * ABI 1.3 fixture: the 1.1 fixture's device reporting counters (what 1.3
 * added), built only against the 1.3 headers in v1_3/.
 *
 * One queue.  Every chain is answered by filling its device-writable part
 * (up to FIX_MAX_FILL bytes) with
 *     byte i = FIX13_TAG ^ seed ^ (uint8_t)(i * 13)
 * (seed: the first device-readable byte when feature bit 0 was negotiated,
 * else 0).  Config space: magic (le32 at 0), chains served since reset
 * (le32 at 4).  Counters, from create on and kept across reset as the ABI
 * says: "chains" and "write_bytes".
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nimbus/plugin_abi.h"
#include "nimbus/plugin_util.h"
#include "nimbus/virtio_util.h"

#define FIX13_TAG 0x13u
#define FIX13_DEVICE_ID 0x3f13u /* no real virtio type: only the transport drives it */
#define FIX13_MAGIC 0x4649ab13u
#define FIX_F_SEED 0u
#define FIX_QUEUE_SIZE 16u
#define FIX_CONFIG_SIZE 8u
#define FIX_MAX_BUFS 8u
#define FIX_MAX_FILL 65536u
#define FIX_TIMER 0u

struct fix13 {
    const nimbus_host_api *host;
    void *hctx;
    uint64_t features;
    uint32_t served;
    /* Host-side statistics: reset leaves them alone. */
    uint64_t stat_chains;
    uint64_t stat_write_bytes;
};

static int v_create(const nimbus_host_api *host, void *hctx, const char *options, void **dev,
                    nimbus_region *regions, uint32_t *nregions, char *err, uint32_t errlen)
{
    (void)regions;
    if (!NIMBUS_HAS_MEMBER(host, nimbus_host_api, virtio_needs_reset)) {
        nimbus_errf(err, errlen, "host lacks the ABI 1.1 virtqueue services");
        return -ENOTSUP;
    }
    if (options && *options) {
        nimbus_errf(err, errlen, "takes no options ('%s')", options);
        return -EINVAL;
    }
    struct fix13 *v = calloc(1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    v->host = host;
    v->hctx = hctx;
    *nregions = 0;
    *dev = v;
    return 0;
}

static void v_destroy(void *dev)
{
    free(dev);
}

static void v_reset(void *dev)
{
    struct fix13 *v = dev;
    v->host->timer_arm(v->hctx, FIX_TIMER, 0);
    v->features = 0;
    v->served = 0;
}

static int v_info(void *dev, nimbus_virtio_info *info)
{
    (void)dev;
    memset(info, 0, sizeof(*info));
    info->struct_size = sizeof(*info);
    info->device_id = FIX13_DEVICE_ID;
    info->device_features = NIMBUS_BIT(FIX_F_SEED);
    info->num_queues = 1;
    info->queue_size_max = FIX_QUEUE_SIZE;
    info->config_size = FIX_CONFIG_SIZE;
    info->pci_class = 0xff0000;
    return 0;
}

static int v_config_read(void *dev, uint64_t offset, void *data, uint32_t len)
{
    struct fix13 *v = dev;
    uint8_t img[FIX_CONFIG_SIZE];
    if (offset > sizeof(img) || len > sizeof(img) - offset)
        return -EINVAL;
    nimbus_le_store(img, 4, FIX13_MAGIC);
    nimbus_le_store(img + 4, 4, v->served);
    memcpy(data, img + offset, len);
    return 0;
}

static int v_activate(void *dev, uint64_t features)
{
    struct fix13 *v = dev;
    v->features = features;
    return 0;
}

static uint32_t fill_chain(const nimbus_vq_buf *bufs, uint32_t n, uint8_t seed)
{
    uint64_t want = nimbus_vq_len(bufs, n, 1);
    if (want > FIX_MAX_FILL)
        want = FIX_MAX_FILL;
    uint8_t chunk[256];
    uint64_t done = 0;
    while (done < want) {
        uint64_t c = want - done < sizeof(chunk) ? want - done : sizeof(chunk);
        for (uint64_t i = 0; i < c; i++)
            chunk[i] = (uint8_t)(FIX13_TAG ^ seed ^ (uint8_t)((done + i) * 13u));
        nimbus_vq_scatter(bufs, n, done, chunk, c);
        done += c;
    }
    return (uint32_t)done;
}

/* At most a ring's worth per call; a timer picks up the rest. */
static void serve(struct fix13 *v)
{
    nimbus_vq_buf bufs[FIX_MAX_BUFS];
    uint32_t n, head, done = 0;
    int r = 0;
    while (done < FIX_QUEUE_SIZE &&
           (r = v->host->vq_pop(v->hctx, 0, bufs, FIX_MAX_BUFS, &n, &head)) != 0) {
        if (r == -EMSGSIZE)
            continue;
        if (r < 0)
            break;
        uint8_t seed = 0;
        if (v->features & NIMBUS_BIT(FIX_F_SEED))
            nimbus_vq_gather(bufs, n, 0, &seed, 1);
        uint32_t written = fill_chain(bufs, n, seed);
        v->host->vq_push(v->hctx, 0, head, written);
        v->served++;
        v->stat_chains++;
        v->stat_write_bytes += written;
        done++;
    }
    if (done)
        v->host->vq_notify(v->hctx, 0);
    if (done == FIX_QUEUE_SIZE)
        v->host->timer_arm(v->hctx, FIX_TIMER, 1);
}

static void v_notify(void *dev, uint32_t queue)
{
    if (queue == 0)
        serve(dev);
}

static void v_timer(void *dev, uint32_t timer_id)
{
    if (timer_id == FIX_TIMER)
        serve(dev);
}

static int v_counters(void *dev, void (*emit)(void *ctx, const char *name, uint64_t value),
                      void *ctx)
{
    struct fix13 *v = dev;
    emit(ctx, "chains", v->stat_chains);
    emit(ctx, "write_bytes", v->stat_write_bytes);
    return 0;
}

static const nimbus_device_ops fix13_ops = {
    .struct_size = sizeof(nimbus_device_ops),
    .create = v_create,
    .destroy = v_destroy,
    .reset = v_reset,
    .timer_fired = v_timer,
    .virtio_info = v_info,
    .virtio_config_read = v_config_read,
    .virtio_activate = v_activate,
    .virtio_queue_notify = v_notify,
    .counters = v_counters,
};

NIMBUS_PLUGIN_DECLARE("abifix_v1_3", "1.3", "ABI 1.3 compatibility fixture (virtio, counters)",
                      "", &fix13_ops);
