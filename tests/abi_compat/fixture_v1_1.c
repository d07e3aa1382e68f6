/*
 * ABI 1.1 fixture: a minimal virtio device built only against the 1.1
 * headers in v1_1/, driven by the core's virtio-pci transport.
 *
 * One queue.  Every chain the driver posts is answered by filling its
 * device-writable part (up to FIX_MAX_FILL bytes) with
 *     byte i = FIX11_TAG ^ seed ^ (uint8_t)(i * 13)
 * where seed is the first device-readable byte when feature bit 0
 * (FIX_F_SEED) was negotiated, else 0.  Config space: magic (le32 at 0),
 * chains served since reset (le32 at 4).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nimbus/plugin_abi.h"
#include "nimbus/plugin_util.h"
#include "nimbus/virtio_util.h"

#define FIX11_TAG 0x11u
#define FIX11_DEVICE_ID 0x3f11u /* no real virtio type: only the transport drives it */
#define FIX11_MAGIC 0x4649ab11u
#define FIX_F_SEED 0u
#define FIX_QUEUE_SIZE 16u
#define FIX_CONFIG_SIZE 8u
#define FIX_MAX_BUFS 8u
#define FIX_MAX_FILL 65536u
#define FIX_TIMER 0u

struct fix11 {
    const nimbus_host_api *host;
    void *hctx;
    uint64_t features;
    uint32_t served;
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
    struct fix11 *v = calloc(1, sizeof(*v));
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
    struct fix11 *v = dev;
    v->host->timer_arm(v->hctx, FIX_TIMER, 0);
    v->features = 0;
    v->served = 0;
}

static int v_info(void *dev, nimbus_virtio_info *info)
{
    (void)dev;
    *info = (nimbus_virtio_info){
        .struct_size = sizeof(*info),
        .device_id = FIX11_DEVICE_ID,
        .device_features = NIMBUS_BIT(FIX_F_SEED),
        .num_queues = 1,
        .queue_size_max = FIX_QUEUE_SIZE,
        .config_size = FIX_CONFIG_SIZE,
        .pci_class = 0xff0000,
    };
    return 0;
}

static int v_config_read(void *dev, uint64_t offset, void *data, uint32_t len)
{
    struct fix11 *v = dev;
    uint8_t img[FIX_CONFIG_SIZE];
    if (offset > sizeof(img) || len > sizeof(img) - offset)
        return -EINVAL;
    nimbus_le_store(img, 4, FIX11_MAGIC);
    nimbus_le_store(img + 4, 4, v->served);
    memcpy(data, img + offset, len);
    return 0;
}

static int v_activate(void *dev, uint64_t features)
{
    struct fix11 *v = dev;
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
            chunk[i] = (uint8_t)(FIX11_TAG ^ seed ^ (uint8_t)((done + i) * 13u));
        nimbus_vq_scatter(bufs, n, done, chunk, c);
        done += c;
    }
    return (uint32_t)done;
}

/* At most a ring's worth per call: a driver refilling as fast as we
 * answer must not keep the event loop here; a timer picks up the rest. */
static void serve(struct fix11 *v)
{
    nimbus_vq_buf bufs[FIX_MAX_BUFS];
    uint32_t n, head, done = 0;
    int r = 0;
    while (done < FIX_QUEUE_SIZE &&
           (r = v->host->vq_pop(v->hctx, 0, bufs, FIX_MAX_BUFS, &n, &head)) != 0) {
        if (r == -EMSGSIZE)
            continue; /* already handed back to the guest by the host */
        if (r < 0)
            break;    /* malformed ring: the host set NEEDS_RESET */
        uint8_t seed = 0;
        if (v->features & NIMBUS_BIT(FIX_F_SEED))
            nimbus_vq_gather(bufs, n, 0, &seed, 1);
        v->host->vq_push(v->hctx, 0, head, fill_chain(bufs, n, seed));
        v->served++;
        done++;
    }
    if (done)
        v->host->vq_notify(v->hctx, 0);
    if (done == FIX_QUEUE_SIZE)
        v->host->timer_arm(v->hctx, FIX_TIMER, 1); /* past: fires at once */
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

static const nimbus_device_ops fix11_ops = {
    .struct_size = sizeof(nimbus_device_ops),
    .create = v_create,
    .destroy = v_destroy,
    .reset = v_reset,
    .timer_fired = v_timer,
    .virtio_info = v_info,
    .virtio_config_read = v_config_read,
    .virtio_activate = v_activate,
    .virtio_queue_notify = v_notify,
};

NIMBUS_PLUGIN_DECLARE("abifix_v1_1", "1.1", "ABI 1.1 compatibility fixture (virtio)", "",
                      &fix11_ops);
