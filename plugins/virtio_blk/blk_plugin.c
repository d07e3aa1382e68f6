/* virtio_blk plugin: ABI entry points and the state blob. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blk.h"
#include "qcow2.h"

/*
 * State blob, version 1, little-endian, fixed 32 bytes.  The transport
 * (rings, indices) is the host's; the device itself only has the
 * negotiated features.  Capacity and queue geometry identify the disk so a
 * blob is not restored onto a different one.
 *   0  u32 magic "VBLK"   4  u16 version   6  u16 size
 *   8  u64 features       16 u64 capacity (sectors)
 *  24  u32 activated      28 u16 num_queues   30 u16 queue_size
 */
#define BLOB_MAGIC 0x4b4c4256u /* "VBLK" */
#define BLOB_VERSION 1u
#define BLOB_SIZE 32u

/* Feature bits the transport negotiates: the host's definition, so the two
 * never disagree on which bits are whose (bits 50 and up are device-type
 * bits this device does not offer, and are refused like any other). */
#define TRANSPORT_FEATURES NIMBUS_VIRTIO_TRANSPORT_FEATURES

static void dev_free(struct blk_dev *d)
{
    for (uint32_t i = 0; i < BLK_MAX_QUEUES; i++)
        blk_uring_fini(&d->queues[i]);
    blk_image_close(d);
    blk_file_close(&d->file);
    blk_queues_free(d);
    free(d->zero_buf);
    free(d);
}

/* The device, with every fd marked closed; NULL when out of memory.  Its
 * queues are cache-line aligned, so plain calloc is not enough. */
static struct blk_dev *dev_alloc(void)
{
    struct blk_dev *d = aligned_alloc(_Alignof(struct blk_dev), sizeof(*d));
    if (!d)
        return NULL;
    memset(d, 0, sizeof(*d));
    d->file.fd = d->file.fd_buf = -1;
    for (uint32_t i = 0; i < BLK_MAX_QUEUES; i++)
        d->queues[i].uring.efd = -1;
    return d;
}

/* One ring per queue.  A queue whose ring cannot be set up (old kernel,
 * seccomp, RLIMIT_MEMLOCK before 5.12) runs synchronously on its own. */
static void engines_init(struct blk_dev *d)
{
    uint32_t failed = 0;
    int err = 0;
    for (uint32_t i = 0; i < d->opts.num_queues; i++) {
        int r = blk_uring_init(&d->queues[i]);
        if (r < 0) {
            failed++;
            err = r;
        }
    }
    if (failed)
        BLK_LOG(d, NIMBUS_LOG_WARN,
                "virtio_blk: io_uring unavailable for %u of %u queue(s) (%s); '%s' "
                "uses synchronous I/O there", failed, d->opts.num_queues,
                strerror(-err), d->opts.path);
}

static uint32_t uring_queues(const struct blk_dev *d)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < d->opts.num_queues; i++)
        n += d->queues[i].uring.up != 0;
    return n;
}

static int host_ok(const nimbus_host_api *h)
{
    return NIMBUS_HAS_MEMBER(h, nimbus_host_api, virtio_needs_reset) && h->vq_pop &&
           h->vq_push && h->vq_notify && h->fd_watch && h->fd_unwatch &&
           h->timer_arm && h->clock_ns;
}

static void pick_ident(struct blk_dev *d)
{
    const char *s = d->opts.serial[0] ? d->opts.serial
                    : d->opts.id[0]   ? d->opts.id
                                      : d->file.default_id;
    size_t n = strlen(s);
    memset(d->ident, 0, sizeof(d->ident));
    memcpy(d->ident, s, n < sizeof(d->ident) ? n : sizeof(d->ident));
}

static int blk_create(const nimbus_host_api *host, void *hctx, const char *options,
                      void **dev, nimbus_region *regions, uint32_t *nregions,
                      char *err, uint32_t errlen)
{
    (void)regions;
    if (!host || !dev || !nregions) {
        nimbus_errf(err, errlen, "virtio_blk: invalid create arguments");
        return -EINVAL;
    }
    if (!host_ok(host)) {
        nimbus_errf(err, errlen,
                    "virtio_blk: host has no virtqueue services (needs ABI 1.1)");
        return -ENOTSUP;
    }
    struct blk_dev *d = dev_alloc();
    if (!d) {
        nimbus_errf(err, errlen, "virtio_blk: out of memory");
        return -ENOMEM;
    }
    d->host = host;
    d->hctx = hctx;
    d->groups = NIMBUS_HAS_MEMBER(host, nimbus_host_api, fd_watch_group) &&
                host->fd_watch_group != NULL;
    int r = blk_parse_options(&d->opts, options ? options : "", err, errlen);
    if (r == 0)
        r = blk_file_open(&d->file, &d->opts, host, hctx, err, errlen);
    if (r == 0)
        r = blk_image_open(d, err, errlen);
    if (r < 0) {
        dev_free(d);
        return r;
    }
    d->seg_max = d->opts.queue_size - 2 < BLK_SEG_MAX ? d->opts.queue_size - 2
                                                      : BLK_SEG_MAX;
    d->iov_cap = d->seg_max + 2 + BLK_CHAIN_SLACK;
    if (blk_queues_alloc(d) < 0) {
        nimbus_errf(err, errlen, "virtio_blk: out of memory");
        dev_free(d);
        return -ENOMEM;
    }
    pick_ident(d);
    d->features_offered = blk_features(d);
    blk_config_build(d);
    blk_queues_reset(d);
    /* qcow2 requests never use a ring (the library does its own I/O). */
    if (!d->opts.aio_sync && !d->qcow2)
        engines_init(d);
    uint32_t nu = uring_queues(d);
    BLK_LOG(d, NIMBUS_LOG_INFO,
            "virtio_blk: '%s' %s%llu sectors%s%s, %u queue(s) of %u, %s, %s",
            d->opts.path, d->qcow2 ? "qcow2, " : "", (unsigned long long)d->file.sectors,
            d->opts.readonly ? ", read-only" : "", d->opts.direct ? ", O_DIRECT" : "",
            d->opts.num_queues, d->opts.queue_size,
            d->qcow2                 ? "synchronous qcow2 I/O"
            : nu == d->opts.num_queues ? "io_uring"
            : nu == 0                ? "synchronous I/O"
                                     : "io_uring and synchronous I/O",
            d->groups ? "one I/O thread per queue" : "on the event loop");
    *nregions = 0;
    *dev = d;
    return 0;
}

/* What the driver negotiated goes with every kind of reset. */
static void forget_negotiation(struct blk_dev *d)
{
    d->features = 0;
    d->activated = 0;
    d->writethrough = 0;
}

/* A queue with nothing in flight back to its power-on state.  In q's group
 * calls or device-wide (only its own timer and eventfd). */
static void queue_quiet(struct blk_dev *d, struct blk_queue *q)
{
    blk_queue_reset(q);
    if (q->uring.retry_armed) {
        q->uring.retry_armed = 0;
        d->host->timer_arm(d->hctx, BLK_RETRY_TIMER + q->index, 0);
    }
    /* Watched again at the next activation (back to power-on state). */
    blk_uring_unwatch(q);
    blk_uring_eventfd_clear(q);
}

/* Every in-flight op finishes before the slots are forgotten: after reset
 * the guest may reuse (or unmap) the memory they point at.  This waits, so
 * only destroy, the machine reset and restore (VMM threads) come here; it
 * also ends a driver reset left pending. */
static void quiesce(struct blk_dev *d)
{
    for (uint32_t i = 0; i < d->opts.num_queues; i++) {
        struct blk_queue *q = &d->queues[i];
        blk_uring_drain(q);
        q->uring.resetting = 0;
        queue_quiet(d, q);
    }
    __atomic_store_n(&d->resetting_queues, 0, __ATOMIC_RELAXED);
}

static void blk_destroy(void *dev)
{
    struct blk_dev *d = dev;
    if (!d)
        return;
    quiesce(d);
    /* qcow2: qcow2_close in dev_free writes the metadata back and syncs. */
    if (!d->opts.readonly && !d->qcow2 && fdatasync(d->file.fd) < 0)
        BLK_LOG(d, NIMBUS_LOG_ERROR, "virtio_blk: '%s': final fdatasync failed: %s",
                d->opts.path, strerror(errno));
    if (d->io_errors || d->bad_chains)
        BLK_LOG(d, NIMBUS_LOG_INFO,
                "virtio_blk: '%s': %llu I/O errors, %llu malformed requests",
                d->opts.path, (unsigned long long)d->io_errors,
                (unsigned long long)d->bad_chains);
    dev_free(d);
}

static void blk_reset(void *dev)
{
    struct blk_dev *d = dev;
    quiesce(d);
    forget_negotiation(d);
}

/*
 * The driver's reset, on its vCPU (ABI minor 5): never waits.  Queues with
 * requests in flight ask the kernel to cancel them and stay "resetting";
 * each ends on its own thread when its last completion arrives
 * (reset_progress), and the last one tells the host.  Until then nothing
 * is popped (activated is 0, and the host yields nothing) and completions
 * touch neither the guest's memory nor its rings.
 */
static int blk_reset_begin(void *dev)
{
    struct blk_dev *d = dev;
    if (!NIMBUS_HAS_MEMBER(d->host, nimbus_host_api, virtio_reset_done) ||
        !d->host->virtio_reset_done) {
        blk_reset(d); /* a host that cannot be told later */
        return 0;
    }
    uint32_t pending = 0;
    for (uint32_t i = 0; i < d->opts.num_queues; i++) {
        struct blk_queue *q = &d->queues[i];
        struct blk_uring *u = &q->uring;
        if (u->up && u->inflight > 0 && u->watched) {
            blk_uring_cancel_all(q);
            blk_uring_reap(q); /* what already ended is dropped now */
        }
        if (u->up && u->inflight > 0 && u->watched) {
            /* Its eventfd stays watched: the completions end the reset. */
            u->resetting = 1;
            pending++;
            continue;
        }
        /* Nothing in flight (synchronous engines run inside group calls,
         * which never overlap this one): at power-on at once. */
        blk_uring_drain(q);
        queue_quiet(d, q);
    }
    forget_negotiation(d);
    if (!pending)
        return 0;
    __atomic_store_n(&d->resetting_queues, pending, __ATOMIC_RELEASE);
    return NIMBUS_VIRTIO_RESET_PENDING;
}

/* q's group call (its eventfd) or device-wide (its retry timer), during a
 * pending driver reset: reap, and once q has nothing in flight put it back
 * to power-on; the last queue to get there ends the reset. */
static void reset_progress(struct blk_dev *d, struct blk_queue *q)
{
    struct blk_uring *u = &q->uring;
    blk_uring_submit(q); /* SQEs a failed submit left (the cancel among them) */
    blk_uring_reap(q);
    if (u->inflight > 0)
        return;
    u->resetting = 0;
    u->draining = 0;
    queue_quiet(d, q);
    if (__atomic_sub_fetch(&d->resetting_queues, 1, __ATOMIC_ACQ_REL) == 0)
        d->host->virtio_reset_done(d->hctx);
}

static int blk_virtio_info(void *dev, nimbus_virtio_info *info)
{
    const struct blk_dev *d = dev;
    if (!info)
        return -EINVAL;
    memset(info, 0, sizeof(*info));
    info->struct_size = sizeof(*info);
    info->device_id = NIMBUS_VIRTIO_ID_BLOCK;
    info->device_features = d->features_offered;
    info->num_queues = d->opts.num_queues;
    info->queue_size_max = d->opts.queue_size;
    info->config_size = BLK_CONFIG_SIZE;
    info->pci_class = 0x018000; /* mass storage, other */
    /* Queue i is I/O group i: each queue's kicks and completions get their
     * own thread, so queues the guest spreads over vCPUs run in parallel. */
    memset(info->queue_group, NIMBUS_VQ_GROUP_NONE, sizeof(info->queue_group));
    if (d->groups) {
        info->num_groups = d->opts.num_queues;
        for (uint32_t i = 0; i < d->opts.num_queues; i++)
            info->queue_group[i] = (uint8_t)i;
    }
    return 0;
}

static int blk_config_read(void *dev, uint64_t offset, void *data, uint32_t len)
{
    const struct blk_dev *d = dev;
    if (!data || len == 0 || len > 8 || offset > BLK_CONFIG_SIZE ||
        len > BLK_CONFIG_SIZE - offset)
        return -EINVAL;
    memcpy(data, d->config + offset, len);
    return 0;
}

/* Nothing is writable without CONFIG_WCE (not offered): writes are ignored,
 * as the spec lets a device do with read-only fields. */
static int blk_config_write(void *dev, uint64_t offset, const void *data,
                            uint32_t len)
{
    (void)dev;
    if (!data || len == 0 || len > 8 || offset > BLK_CONFIG_SIZE ||
        len > BLK_CONFIG_SIZE - offset)
        return -EINVAL;
    return 0;
}

static void set_features(struct blk_dev *d, uint64_t features)
{
    d->features = features & (d->features_offered | TRANSPORT_FEATURES);
    d->activated = 1;
    /* FLUSH offered but not negotiated: writes must be stable when they
     * complete (virtio 1.2, 5.2.6.2). */
    d->writethrough = !(d->features & NIMBUS_BIT(VIRTIO_BLK_F_FLUSH));
    /* The groups exist once the host has read virtio_info (after create):
     * watching here rather than in create is the first chance. */
    for (uint32_t i = 0; i < d->opts.num_queues; i++) {
        struct blk_queue *q = &d->queues[i];
        int r = blk_uring_watch(q);
        if (r < 0) {
            BLK_LOG(d, NIMBUS_LOG_WARN,
                    "virtio_blk: '%s' queue %u: cannot watch its completions (%s); "
                    "using synchronous I/O there", d->opts.path, i, strerror(-r));
            blk_uring_fini(q); /* nothing in flight before activation */
        }
    }
}

static int blk_activate(void *dev, uint64_t features)
{
    struct blk_dev *d = dev;
    if (features & ~(d->features_offered | TRANSPORT_FEATURES))
        return -EINVAL;
    set_features(d, features);
    return 0;
}

/* Queue `queue`'s group thread. */
static void blk_queue_notify(void *dev, uint32_t queue)
{
    struct blk_dev *d = dev;
    if (queue >= d->opts.num_queues)
        return;
    blk_run_queue(d, &d->queues[queue], 1);
}

/* Group `token`'s thread: the token is the queue whose eventfd fired. */
static void blk_fd_ready(void *dev, int fd, uint64_t token, uint32_t revents)
{
    struct blk_dev *d = dev;
    (void)revents;
    if (token >= d->opts.num_queues)
        return;
    struct blk_queue *q = &d->queues[token];
    if (!q->uring.up || fd != q->uring.efd)
        return;
    blk_uring_eventfd_clear(q);
    if (q->uring.resetting)
        reset_progress(d, q);
    else
        blk_run_queue(d, q, 0);
}

/* Device-wide, so it may run any queue: the one whose submit failed. */
static void blk_timer_fired(void *dev, uint32_t timer_id)
{
    struct blk_dev *d = dev;
    uint32_t i = timer_id - BLK_RETRY_TIMER; /* ids below wrap to huge */
    if (i >= d->opts.num_queues)
        return;
    d->queues[i].uring.retry_armed = 0;
    if (d->queues[i].uring.resetting)
        reset_progress(d, &d->queues[i]);
    else
        blk_run_queue(d, &d->queues[i], 0);
}

static int blk_flush(void *dev)
{
    struct blk_dev *d = dev;
    if (d->opts.readonly)
        return 0;
    if (d->qcow2)
        return qcow2_flush(d->qcow2);
    return fdatasync(d->file.fd) < 0 ? -errno : 0;
}

static int blk_state_save(void *dev, void *buf, uint64_t cap, uint64_t *len)
{
    const struct blk_dev *d = dev;
    int r = nimbus_state_begin(buf, cap, len, BLOB_MAGIC, BLOB_VERSION, BLOB_SIZE);
    if (r <= 0)
        return r;
    uint8_t *b = buf;
    nimbus_le_store(b + 8, 8, d->features);
    nimbus_le_store(b + 16, 8, d->file.sectors);
    nimbus_le_store(b + 24, 4, (uint64_t)d->activated);
    nimbus_le_store(b + 28, 2, d->opts.num_queues);
    nimbus_le_store(b + 30, 2, d->opts.queue_size);
    return 0;
}

static int blk_state_restore(void *dev, const void *buf, uint64_t len)
{
    struct blk_dev *d = dev;
    const uint8_t *b = buf;
    if (!nimbus_state_check(b, len, BLOB_MAGIC, BLOB_VERSION, BLOB_SIZE))
        return -EINVAL;
    uint64_t features = nimbus_le_load(b + 8, 8);
    uint32_t activated = (uint32_t)nimbus_le_load(b + 24, 4);
    if (nimbus_le_load(b + 16, 8) != d->file.sectors ||
        nimbus_le_load(b + 28, 2) != d->opts.num_queues ||
        nimbus_le_load(b + 30, 2) != d->opts.queue_size || activated > 1 ||
        (features & ~(d->features_offered | TRANSPORT_FEATURES)) ||
        (!activated && features))
        return -EINVAL;
    quiesce(d);
    forget_negotiation(d);
    if (activated)
        set_features(d, features);
    return 0;
}

/* Device-wide (ABI minor 3): no queue's calls run now, so the per-queue
 * counts read plainly are consistent; the shared error counts are atomic. */
static int blk_counters(void *dev, void (*emit)(void *ctx, const char *name, uint64_t value),
                        void *ctx)
{
    const struct blk_dev *d = dev;
    if (!d || !emit)
        return -EINVAL;
    struct blk_queue sum = {0};
    for (uint32_t i = 0; i < d->opts.num_queues; i++) {
        const struct blk_queue *q = &d->queues[i];
        sum.read_bytes += q->read_bytes;
        sum.write_bytes += q->write_bytes;
        sum.read_ops += q->read_ops;
        sum.write_ops += q->write_ops;
        sum.flush_ops += q->flush_ops;
        sum.discard_ops += q->discard_ops;
        sum.write_zeroes_ops += q->write_zeroes_ops;
    }
    /* Cloud Hypervisor's four first. */
    emit(ctx, "read_bytes", sum.read_bytes);
    emit(ctx, "write_bytes", sum.write_bytes);
    emit(ctx, "read_ops", sum.read_ops);
    emit(ctx, "write_ops", sum.write_ops);
    emit(ctx, "flush_ops", sum.flush_ops);
    emit(ctx, "discard_ops", sum.discard_ops);
    emit(ctx, "write_zeroes_ops", sum.write_zeroes_ops);
    emit(ctx, "io_errors", BLK_LOAD(&d->io_errors));
    emit(ctx, "bad_chains", BLK_LOAD(&d->bad_chains));
    return 0;
}

static const nimbus_device_ops blk_ops = {
    .struct_size = sizeof(nimbus_device_ops),
    .create = blk_create,
    .destroy = blk_destroy,
    .reset = blk_reset,
    .fd_ready = blk_fd_ready,
    .timer_fired = blk_timer_fired,
    .state_save = blk_state_save,
    .state_restore = blk_state_restore,
    .flush = blk_flush,
    .virtio_info = blk_virtio_info,
    .virtio_config_read = blk_config_read,
    .virtio_config_write = blk_config_write,
    .virtio_activate = blk_activate,
    .virtio_queue_notify = blk_queue_notify,
    .counters = blk_counters,
    .virtio_reset_begin = blk_reset_begin,
};

NIMBUS_PLUGIN_DECLARE("virtio_blk", "1.3",
                      "virtio block device (raw or qcow2 image, or block device)",
                      "path=<file>,readonly=on|off,direct=on|off,num_queues=<1..16>,"
                      "queue_size=<4..1024>,id=<text>,serial=<text>,aio=io_uring|sync,"
                      "image_type=raw|qcow2,backing_files=on|off",
                      &blk_ops);
