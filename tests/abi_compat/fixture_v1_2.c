/*
 * ABI 1.2 fixture: the 1.1 fixture's device using what 1.2 added, built
 * only against the 1.2 headers in v1_2/.
 *
 * Two queues, each in an I/O group of its own.  A queue kick (on the
 * group's thread) fills every chain it can pop, at most vq_size() per
 * call, with
 *     byte i = FIX12_TAG ^ seed ^ (uint8_t)(i * 13)
 * (seed: the first device-readable byte when feature bit 0 was negotiated,
 * else 0) and keeps it pending; the group's eventfd, watched with
 * fd_watch_group, then completes the batch on the same thread: vq_push
 * and vq_notify happen only in fd_ready.  Config space: magic (le32 at 0),
 * chains served per queue since reset (le32 at 4 and 8), ring size the
 * driver set up as vq_size() reported it (le16 at 12 and 14).
 *
 * Per-queue state is touched only by its own group's calls and by
 * device-wide ops, which the core runs with every group stopped.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "nimbus/plugin_abi.h"
#include "nimbus/plugin_util.h"
#include "nimbus/virtio_util.h"

#define FIX12_TAG 0x12u
#define FIX12_DEVICE_ID 0x3f12u /* no real virtio type: only the transport drives it */
#define FIX12_MAGIC 0x4649ab12u
#define FIX_F_SEED 0u
#define FIX_NQ 2u
#define FIX_QUEUE_SIZE 16u
#define FIX_CONFIG_SIZE 16u
#define FIX_MAX_BUFS 8u
#define FIX_MAX_FILL 65536u

struct fix_queue {
    int efd;           /* completion doorbell, watched in the queue's group */
    uint32_t npending; /* filled chains waiting for fd_ready */
    uint32_t pending_head[FIX_QUEUE_SIZE];
    uint32_t pending_len[FIX_QUEUE_SIZE];
    uint32_t served;
    uint16_t ring_size;
};

struct fix12 {
    const nimbus_host_api *host;
    void *hctx;
    uint64_t features;
    struct fix_queue q[FIX_NQ];
};

static void v_destroy(void *dev)
{
    struct fix12 *v = dev;
    for (uint32_t i = 0; i < FIX_NQ; i++) {
        if (v->q[i].efd < 0)
            continue;
        v->host->fd_unwatch(v->hctx, v->q[i].efd);
        close(v->q[i].efd);
    }
    free(v);
}

static int v_create(const nimbus_host_api *host, void *hctx, const char *options, void **dev,
                    nimbus_region *regions, uint32_t *nregions, char *err, uint32_t errlen)
{
    (void)regions;
    if (!NIMBUS_HAS_MEMBER(host, nimbus_host_api, vq_size) || !host->fd_watch_group ||
        !host->vq_size) {
        nimbus_errf(err, errlen, "host lacks the ABI 1.2 I/O group services");
        return -ENOTSUP;
    }
    if (options && *options) {
        nimbus_errf(err, errlen, "takes no options ('%s')", options);
        return -EINVAL;
    }
    struct fix12 *v = calloc(1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    v->host = host;
    v->hctx = hctx;
    for (uint32_t i = 0; i < FIX_NQ; i++)
        v->q[i].efd = -1;
    for (uint32_t i = 0; i < FIX_NQ; i++) {
        v->q[i].efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (v->q[i].efd < 0) {
            int e = errno;
            nimbus_errf(err, errlen, "eventfd: %s", strerror(e));
            v_destroy(v);
            return -e;
        }
    }
    *nregions = 0;
    *dev = v;
    return 0;
}

static void drain(int fd)
{
    uint64_t n;
    while (read(fd, &n, sizeof(n)) == (ssize_t)sizeof(n))
        ;
}

/* Device-wide: no group call runs now, so every queue's state is ours. */
static void v_reset(void *dev)
{
    struct fix12 *v = dev;
    v->features = 0;
    for (uint32_t i = 0; i < FIX_NQ; i++) {
        struct fix_queue *q = &v->q[i];
        v->host->timer_arm(v->hctx, i, 0);
        drain(q->efd);
        /* The rings are gone after reset: chains in flight are dropped. */
        q->npending = 0;
        q->served = 0;
        q->ring_size = 0;
    }
}

static int v_info(void *dev, nimbus_virtio_info *info)
{
    (void)dev;
    memset(info, 0, sizeof(*info));
    info->struct_size = sizeof(*info);
    info->device_id = FIX12_DEVICE_ID;
    info->device_features = NIMBUS_BIT(FIX_F_SEED);
    info->num_queues = FIX_NQ;
    info->queue_size_max = FIX_QUEUE_SIZE;
    info->config_size = FIX_CONFIG_SIZE;
    info->pci_class = 0xff0000;
    info->num_groups = FIX_NQ;
    for (uint32_t i = 0; i < FIX_NQ; i++)
        info->queue_group[i] = (uint8_t)i;
    return 0;
}

static int v_config_read(void *dev, uint64_t offset, void *data, uint32_t len)
{
    struct fix12 *v = dev;
    uint8_t img[FIX_CONFIG_SIZE];
    if (offset > sizeof(img) || len > sizeof(img) - offset)
        return -EINVAL;
    nimbus_le_store(img, 4, FIX12_MAGIC);
    nimbus_le_store(img + 4, 4, v->q[0].served);
    nimbus_le_store(img + 8, 4, v->q[1].served);
    nimbus_le_store(img + 12, 2, v->q[0].ring_size);
    nimbus_le_store(img + 14, 2, v->q[1].ring_size);
    memcpy(data, img + offset, len);
    return 0;
}

/* Groups exist from virtio_info on, so the watches start here, not in create. */
static int v_activate(void *dev, uint64_t features)
{
    struct fix12 *v = dev;
    v->features = features;
    for (uint32_t i = 0; i < FIX_NQ; i++) {
        int r = v->host->fd_watch_group(v->hctx, i, v->q[i].efd, NIMBUS_EV_IN, i);
        if (r < 0)
            return r;
    }
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
            chunk[i] = (uint8_t)(FIX12_TAG ^ seed ^ (uint8_t)((done + i) * 13u));
        nimbus_vq_scatter(bufs, n, done, chunk, c);
        done += c;
    }
    return (uint32_t)done;
}

/* Fill what the ring holds, then ring the group's own doorbell. */
static void serve(struct fix12 *v, uint32_t qi)
{
    struct fix_queue *q = &v->q[qi];
    uint32_t size = v->host->vq_size(v->hctx, qi);
    if (size == 0)
        return; /* not running */
    q->ring_size = (uint16_t)size;
    nimbus_vq_buf bufs[FIX_MAX_BUFS];
    uint32_t n, head, popped = 0;
    int r = 0;
    /* A ring never has more than `size` chains in flight, so neither has pending. */
    while (popped < size && q->npending < FIX_QUEUE_SIZE &&
           (r = v->host->vq_pop(v->hctx, qi, bufs, FIX_MAX_BUFS, &n, &head)) != 0) {
        if (r == -EMSGSIZE)
            continue;
        if (r < 0)
            break;
        uint8_t seed = 0;
        if (v->features & NIMBUS_BIT(FIX_F_SEED))
            nimbus_vq_gather(bufs, n, 0, &seed, 1);
        q->pending_head[q->npending] = head;
        q->pending_len[q->npending] = fill_chain(bufs, n, seed);
        q->npending++;
        popped++;
    }
    if (q->npending) {
        uint64_t one = 1;
        if (write(q->efd, &one, sizeof(one)) != (ssize_t)sizeof(one))
            v->host->virtio_needs_reset(v->hctx);
    }
    /* Stopped by the budget: the driver may have refilled, look again soon. */
    if (popped == size)
        v->host->timer_arm(v->hctx, qi, 1);
}

static void v_notify(void *dev, uint32_t queue)
{
    if (queue < FIX_NQ)
        serve(dev, queue);
}

static void v_timer(void *dev, uint32_t timer_id)
{
    if (timer_id < FIX_NQ)
        serve(dev, timer_id);
}

static void v_fd_ready(void *dev, int fd, uint64_t token, uint32_t revents)
{
    struct fix12 *v = dev;
    (void)revents;
    if (token >= FIX_NQ || fd != v->q[token].efd)
        return;
    struct fix_queue *q = &v->q[token];
    uint32_t qi = (uint32_t)token;
    drain(fd);
    for (uint32_t i = 0; i < q->npending; i++)
        v->host->vq_push(v->hctx, qi, q->pending_head[i], q->pending_len[i]);
    q->served += q->npending;
    if (q->npending)
        v->host->vq_notify(v->hctx, qi);
    q->npending = 0;
}

static const nimbus_device_ops fix12_ops = {
    .struct_size = sizeof(nimbus_device_ops),
    .create = v_create,
    .destroy = v_destroy,
    .reset = v_reset,
    .fd_ready = v_fd_ready,
    .timer_fired = v_timer,
    .virtio_info = v_info,
    .virtio_config_read = v_config_read,
    .virtio_activate = v_activate,
    .virtio_queue_notify = v_notify,
};

NIMBUS_PLUGIN_DECLARE("abifix_v1_2", "1.2", "ABI 1.2 compatibility fixture (virtio, I/O groups)",
                      "", &fix12_ops);
