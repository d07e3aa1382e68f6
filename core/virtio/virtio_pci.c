#include "virtio_pci.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../device.h"
#include "../log.h"
#include "../pci/pci.h"
#include "nimbus/plugin_util.h"
#include "nimbus/virtio_util.h"
#include "virtqueue.h"

#define VIRTIO_PCI_VENDOR 0x1af4u
#define VIRTIO_PCI_DEVICE_BASE 0x1040u /* modern ids: 0x1040 + device id */

/* Capability cfg_type values (virtio 1.2, 4.1.4). */
#define CAP_COMMON 1u
#define CAP_NOTIFY 2u
#define CAP_ISR 3u
#define CAP_DEVICE 4u
#define PCI_CAP_VENDOR 0x09u

/* What the host itself offers on top of the plugin's device features. */
#define TRANSPORT_FEATURES                                                                   \
    (NIMBUS_BIT(NIMBUS_VIRTIO_F_VERSION_1) | NIMBUS_BIT(NIMBUS_VIRTIO_F_INDIRECT_DESC) |   \
     NIMBUS_BIT(NIMBUS_VIRTIO_F_EVENT_IDX))
/* A plugin must not offer what belongs to the transport. */
#define TRANSPORT_RESERVED NIMBUS_VIRTIO_TRANSPORT_FEATURES

/*
 * A reset the driver asked for (status 0) that has not ended yet: the queues
 * are inert and device_status keeps reading non-zero until it has.
 */
#define RESET_NONE 0
#define RESET_WAIT_LOCKS 1   /* a group thread was inside the plugin: the plugin's
                                reset starts at the next access that gets every lock */
#define RESET_WAIT_PLUGIN 2  /* virtio_reset_begin left it pending */
#define RESET_PLUGIN_DONE 3  /* virtio_reset_done came: only the transport's part is left */

struct vpci_queue {
    struct virtqueue vq;
    struct virtio_pci *owner;
    uint32_t index;
    uint32_t group;      /* I/O group, NIMBUS_VQ_GROUP_NONE: device-wide */
    uint16_t msix_vector;
    uint16_t enabled;
    int kick_fd;         /* eventfd: KVM signals it on a notify write */
    uint64_t ioevent_at; /* guest address registered with KVM, 0 = none */
};

struct virtio_pci {
    struct device *dev;
    struct pci_func *func;
    nimbus_virtio_info info;
    struct vq_mem mem;

    uint64_t offered;
    uint64_t driver_features;
    uint32_t dfselect, gfselect;
    uint8_t status;
    uint8_t config_generation;
    uint8_t isr;
    uint16_t queue_select;
    uint16_t config_vector;
    int activated;
    int resetting; /* RESET_*: written device-wide or by reset_done in a group call */

    uint64_t bar_addr; /* where BAR 0 is decoded, 0 when it is not */
    uint32_t nq;
    struct vpci_queue q[NIMBUS_VIRTIO_MAX_QUEUES];
};

static void *mem_map(void *opaque, uint64_t gpa, uint64_t len)
{
    return gm_ptr(opaque, gpa, len);
}

static uint32_t nvectors(const struct virtio_pci *v)
{
    return v->nq + 1; /* one per queue plus configuration changes */
}

/*
 * Concurrency: device-wide calls hold every lock, so they never overlap a
 * group call; group calls of different groups overlap each other.  What
 * group calls change here (the NEEDS_RESET bit, the ISR, the config
 * generation) is therefore changed atomically; everything else only
 * changes device-wide.
 */
static uint8_t status_of(const struct virtio_pci *v)
{
    return __atomic_load_n(&v->status, __ATOMIC_ACQUIRE);
}

static int resetting(const struct virtio_pci *v)
{
    return __atomic_load_n(&v->resetting, __ATOMIC_ACQUIRE);
}

static void irq_config(struct virtio_pci *v)
{
    __atomic_fetch_or(&v->isr, 2, __ATOMIC_RELAXED);
    if (v->func)
        pci_msix_notify(v->func, v->config_vector);
}

void virtio_pci_needs_reset(struct virtio_pci *v, const char *why)
{
    if (resetting(v))
        return; /* the driver is resetting it already; the status goes to 0 */
    uint8_t old = __atomic_fetch_or(&v->status, VIRTIO_STATUS_NEEDS_RESET, __ATOMIC_ACQ_REL);
    if (old & VIRTIO_STATUS_NEEDS_RESET)
        return; /* logged once per reset, however hostile the guest */
    /* Once per reset, but a guest can reset and fail again in a loop. */
    log_ratelimited(LOG_WARN, "%s: device error, needs reset: %s", v->dev->name,
                    why ? why : "unknown");
    /* Only a driver that finished setup may be told (virtio 1.2, 2.1.2). */
    if (old & VIRTIO_STATUS_DRIVER_OK)
        irq_config(v);
}

/* ---- queue kicks ------------------------------------------------------------ */

static void kick_ready(void *opaque, int fd, uint32_t revents)
{
    struct vpci_queue *q = opaque;
    struct virtio_pci *v = q->owner;
    struct device *d = v->dev;
    uint64_t n;
    (void)revents;
    if (read(fd, &n, sizeof(n)) != (ssize_t)sizeof(n))
        return;
    device_group_lock(d, q->group);
    if (d->state && v->activated && q->vq.started && !resetting(v) &&
        !(status_of(v) & VIRTIO_STATUS_NEEDS_RESET) && d->ops.virtio_queue_notify)
        d->ops.virtio_queue_notify(d->state, q->index);
    device_group_unlock(d, q->group);
}

static void kick(struct vpci_queue *q)
{
    uint64_t one = 1;
    if (write(q->kick_fd, &one, sizeof(one)) < 0)
        log_debug("queue kick lost: %s", strerror(errno));
}

static void ioevents_move(struct virtio_pci *v, uint64_t bar_addr)
{
    const struct device_env *env = v->dev->env;
    for (uint32_t i = 0; i < v->nq; i++) {
        struct vpci_queue *q = &v->q[i];
        if (q->ioevent_at && env->ioeventfd) {
            env->ioeventfd(env->opaque, q->ioevent_at, 2, q->kick_fd, 0);
            q->ioevent_at = 0;
        }
        if (!bar_addr || !env->ioeventfd)
            continue;
        uint64_t at = bar_addr + VPCI_NOTIFY_OFF + (uint64_t)i * VPCI_NOTIFY_MULT;
        /* Linux writes the queue index as 16 bits; other widths take the exit path. */
        int r = env->ioeventfd(env->opaque, at, 2, q->kick_fd, 1);
        if (r == 0)
            q->ioevent_at = at;
        else
            log_debug("%s: no ioeventfd for queue %u (%s); kicks exit to userspace",
                      v->dev->name, i, strerror(-r));
    }
}

static void bar_remap(void *opaque, uint32_t bar, uint64_t addr, int mapped)
{
    struct virtio_pci *v = opaque;
    if (bar != 0)
        return;
    device_lock(v->dev);
    v->bar_addr = mapped ? addr : 0;
    ioevents_move(v, v->bar_addr);
    device_unlock(v->dev);
}

/* ---- device reset ------------------------------------------------------------- */

/* The transport's half of a reset, once the plugin has let go of the rings.
 * Device-wide. */
static void transport_reset(struct virtio_pci *v)
{
    for (uint32_t i = 0; i < v->nq; i++) {
        vq_reset(&v->q[i].vq, (uint16_t)v->info.queue_size_max);
        v->q[i].msix_vector = PCI_MSIX_NO_VECTOR;
        v->q[i].enabled = 0;
    }
    v->driver_features = 0;
    v->dfselect = v->gfselect = 0;
    v->status = 0;
    v->isr = 0;
    v->queue_select = 0;
    v->config_vector = PCI_MSIX_NO_VECTOR;
    v->activated = 0;
    __atomic_store_n(&v->resetting, RESET_NONE, __ATOMIC_RELEASE);
}

/* Device-wide.  reset() also ends a reset the plugin left pending: it waits
 * for the I/O, which is why only the machine reset (no vCPU runs) calls it
 * on a plugin that has virtio_reset_begin. */
static void device_reset_locked(struct virtio_pci *v)
{
    struct device *d = v->dev;
    /* The plugin drains its in-flight I/O first: the rings die right after. */
    if (d->state)
        d->ops.reset(d->state);
    transport_reset(v);
}

/*
 * Device-wide: the driver's reset, without waiting for the plugin's I/O on
 * this (vCPU) thread.  A plugin without virtio_reset_begin (minor <= 4)
 * resets synchronously, as before; so does every plugin when the device
 * was never started (status 0: nothing can be in flight).
 */
static void reset_start(struct virtio_pci *v)
{
    struct device *d = v->dev;
    if (!d->state || !d->ops.virtio_reset_begin || v->status == 0) {
        device_reset_locked(v);
        return;
    }
    /* Before the call: a plugin that (against the rules) signals done from
     * inside virtio_reset_begin is still understood. */
    __atomic_store_n(&v->resetting, RESET_WAIT_PLUGIN, __ATOMIC_RELEASE);
    int r = d->ops.virtio_reset_begin(d->state);
    if (r == 0 || resetting(v) == RESET_PLUGIN_DONE) {
        transport_reset(v);
    } else if (r != NIMBUS_VIRTIO_RESET_PENDING) {
        log_ratelimited(LOG_WARN, "%s: virtio_reset_begin returned %d; resetting synchronously",
                        d->name, r);
        device_reset_locked(v);
    }
}

/* Device-wide, at every access to the common configuration: move a pending
 * reset on as far as it can go now. */
static void reset_advance(struct virtio_pci *v)
{
    switch (resetting(v)) {
    case RESET_WAIT_LOCKS:
        reset_start(v);
        break;
    case RESET_PLUGIN_DONE:
        transport_reset(v);
        break;
    default:
        break;
    }
}

void virtio_pci_reset_done(struct virtio_pci *v)
{
    int want = RESET_WAIT_PLUGIN;
    /* Release: the plugin's last completions happen before the driver can
     * read status 0 (the reader's acquire in resetting()). */
    __atomic_compare_exchange_n(&v->resetting, &want, RESET_PLUGIN_DONE, 0, __ATOMIC_ACQ_REL,
                                __ATOMIC_ACQUIRE);
}

void virtio_pci_reset(struct virtio_pci *v)
{
    device_lock(v->dev);
    device_reset_locked(v);
    device_unlock(v->dev);
    if (v->func)
        pci_func_reset(v->func);
}

/* ---- common configuration ----------------------------------------------------------- */

/* Field offsets in struct virtio_pci_common_cfg (virtio 1.2, 4.1.4.3). */
enum {
    CC_DFSELECT = 0x00, CC_DF = 0x04, CC_GFSELECT = 0x08, CC_GF = 0x0c,
    CC_MSIX = 0x10, CC_NUMQ = 0x12, CC_STATUS = 0x14, CC_GENERATION = 0x15,
    CC_QSELECT = 0x16, CC_QSIZE = 0x18, CC_QMSIX = 0x1a, CC_QENABLE = 0x1c,
    CC_QNOTIFY_OFF = 0x1e, CC_QDESC = 0x20, CC_QDRIVER = 0x28, CC_QDEVICE = 0x30,
    CC_QNOTIFY_DATA = 0x38, CC_QRESET = 0x3a, CC_SIZE = 0x3c,
};

static const struct { uint8_t off, size; } cc_fields[] = {
    {CC_DFSELECT, 4}, {CC_DF, 4}, {CC_GFSELECT, 4}, {CC_GF, 4}, {CC_MSIX, 2},
    {CC_NUMQ, 2}, {CC_STATUS, 1}, {CC_GENERATION, 1}, {CC_QSELECT, 2}, {CC_QSIZE, 2},
    {CC_QMSIX, 2}, {CC_QENABLE, 2}, {CC_QNOTIFY_OFF, 2}, {CC_QDESC, 8}, {CC_QDRIVER, 8},
    {CC_QDEVICE, 8}, {CC_QNOTIFY_DATA, 2}, {CC_QRESET, 2},
};

static struct vpci_queue *selected(struct virtio_pci *v)
{
    return v->queue_select < v->nq ? &v->q[v->queue_select] : NULL;
}

static void cc_image(struct virtio_pci *v, uint8_t img[CC_SIZE])
{
    memset(img, 0, CC_SIZE);
    nimbus_le_store(img + CC_DFSELECT, 4, v->dfselect);
    nimbus_le_store(img + CC_DF, 4, v->dfselect < 2 ? (uint32_t)(v->offered >> (32 * v->dfselect)) : 0);
    nimbus_le_store(img + CC_GFSELECT, 4, v->gfselect);
    nimbus_le_store(img + CC_GF, 4,
                    v->gfselect < 2 ? (uint32_t)(v->driver_features >> (32 * v->gfselect)) : 0);
    nimbus_le_store(img + CC_MSIX, 2, v->config_vector);
    nimbus_le_store(img + CC_NUMQ, 2, v->nq);
    /* During a reset the old status, never 0: the driver polls for 0. */
    img[CC_STATUS] = status_of(v);
    img[CC_GENERATION] = __atomic_load_n(&v->config_generation, __ATOMIC_RELAXED);
    nimbus_le_store(img + CC_QSELECT, 2, v->queue_select);
    struct vpci_queue *q = selected(v);
    if (!q)
        return; /* a queue that does not exist reads as size 0 */
    nimbus_le_store(img + CC_QSIZE, 2, q->vq.size);
    nimbus_le_store(img + CC_QMSIX, 2, q->msix_vector);
    nimbus_le_store(img + CC_QENABLE, 2, q->enabled);
    nimbus_le_store(img + CC_QNOTIFY_OFF, 2, q->index);
    nimbus_le_store(img + CC_QDESC, 8, q->vq.desc_gpa);
    nimbus_le_store(img + CC_QDRIVER, 8, q->vq.avail_gpa);
    nimbus_le_store(img + CC_QDEVICE, 8, q->vq.used_gpa);
}

static uint16_t checked_vector(const struct virtio_pci *v, uint64_t val)
{
    /* A vector the function does not have reads back as NO_VECTOR (4.1.5.1.2). */
    return val < nvectors(v) ? (uint16_t)val : PCI_MSIX_NO_VECTOR;
}

static void activate(struct virtio_pci *v)
{
    struct device *d = v->dev;
    int r = d->ops.virtio_activate ? d->ops.virtio_activate(d->state, v->driver_features) : 0;
    if (r < 0) {
        char why[64];
        snprintf(why, sizeof(why), "activation failed: %s", strerror(-r));
        virtio_pci_needs_reset(v, why);
        return;
    }
    v->activated = 1;
    /*
     * Drivers may fill queues before DRIVER_OK (virtio-console's receive
     * queue): those kicks were dropped, so look at every live queue once.
     */
    for (uint32_t i = 0; i < v->nq; i++)
        if (v->q[i].vq.started)
            kick(&v->q[i]);
}

static void write_status(struct virtio_pci *v, uint8_t val)
{
    if (val == 0) {
        reset_start(v);
        return;
    }
    uint8_t old = v->status;
    /* The driver only ever adds bits; NEEDS_RESET is ours to set. */
    uint8_t nv = (uint8_t)((val & ~VIRTIO_STATUS_NEEDS_RESET) | (old & VIRTIO_STATUS_NEEDS_RESET));
    if ((nv & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK)) {
        /* Modern transport only: a driver that did not take VERSION_1 is refused. */
        if (!(v->driver_features & NIMBUS_BIT(NIMBUS_VIRTIO_F_VERSION_1))) {
            log_ratelimited(LOG_WARN,
                            "%s: driver did not accept VIRTIO_F_VERSION_1; refusing FEATURES_OK",
                            v->dev->name);
            nv &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
        }
    }
    v->status = nv;
    if ((nv & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK)) {
        if (!(nv & VIRTIO_STATUS_FEATURES_OK))
            virtio_pci_needs_reset(v, "DRIVER_OK without FEATURES_OK");
        else if (!(nv & VIRTIO_STATUS_NEEDS_RESET))
            activate(v);
    }
}

static void queue_enable(struct virtio_pci *v, struct vpci_queue *q)
{
    if (q->enabled)
        return;
    if (!(v->status & VIRTIO_STATUS_FEATURES_OK)) {
        virtio_pci_needs_reset(v, "queue enabled before FEATURES_OK");
        return;
    }
    int event_idx = (v->driver_features & NIMBUS_BIT(NIMBUS_VIRTIO_F_EVENT_IDX)) != 0;
    int r = vq_start(&q->vq, &v->mem, event_idx);
    if (r < 0) {
        char why[96];
        snprintf(why, sizeof(why), "queue %u rings invalid (size %u): %s", q->index, q->vq.size,
                 strerror(-r));
        virtio_pci_needs_reset(v, why);
        return;
    }
    q->enabled = 1;
}

static void cc_field_write(struct virtio_pci *v, unsigned off, uint64_t val)
{
    struct vpci_queue *q = selected(v);
    /* Queue layout is frozen once the queue is enabled (4.1.4.3.2). */
    int q_writable = q && !q->enabled;
    switch (off) {
    case CC_DFSELECT: v->dfselect = (uint32_t)val; break;
    case CC_GFSELECT: v->gfselect = (uint32_t)val; break;
    case CC_GF:
        if (v->gfselect < 2 && !(v->status & VIRTIO_STATUS_FEATURES_OK)) {
            uint64_t mask = 0xffffffffull << (32 * v->gfselect);
            v->driver_features = (v->driver_features & ~mask) |
                                 (((uint64_t)(uint32_t)val << (32 * v->gfselect)) & v->offered);
        }
        break;
    case CC_MSIX: v->config_vector = checked_vector(v, val); break;
    case CC_STATUS: write_status(v, (uint8_t)val); break;
    case CC_QSELECT: v->queue_select = (uint16_t)val; break;
    case CC_QSIZE:
        /* Split rings need a power of two no larger than what we offered. */
        if (q_writable && val && !(val & (val - 1)) && val <= v->info.queue_size_max)
            q->vq.size = (uint16_t)val;
        break;
    case CC_QMSIX:
        if (q)
            q->msix_vector = checked_vector(v, val);
        break;
    case CC_QENABLE:
        if (q && val == 1)
            queue_enable(v, q);
        break;
    case CC_QDESC: if (q_writable) q->vq.desc_gpa = val; break;
    case CC_QDRIVER: if (q_writable) q->vq.avail_gpa = val; break;
    case CC_QDEVICE: if (q_writable) q->vq.used_gpa = val; break;
    default: break; /* read-only fields */
    }
}

static void common_access(struct virtio_pci *v, uint64_t off, void *data, uint32_t len,
                          int is_write)
{
    uint8_t img[CC_SIZE];
    if (off >= CC_SIZE || len > CC_SIZE - off) {
        if (!is_write)
            memset(data, 0, len);
        return;
    }
    cc_image(v, img);
    if (!is_write) {
        memcpy(data, img + off, len);
        return;
    }
    /* Until a reset ends the driver may only poll the status (2.4.2). */
    if (resetting(v))
        return;
    memcpy(img + off, data, len);
    /* Apply every field the write touched, merged with its untouched bytes. */
    for (size_t i = 0; i < sizeof(cc_fields) / sizeof(cc_fields[0]); i++) {
        unsigned fo = cc_fields[i].off, fs = cc_fields[i].size;
        if (fo < off + len && off < fo + fs)
            cc_field_write(v, fo, nimbus_le_load(img + fo, fs));
    }
}

/* ---- BAR dispatch ---------------------------------------------------------------------- */

/* The driver's reset, a one-byte write of 0 to device_status of a device
 * it has started. */
static int is_reset_write(const struct virtio_pci *v, uint64_t off, const void *data,
                          uint32_t len)
{
    return off == CC_STATUS && len == 1 && *(const uint8_t *)data == 0 && status_of(v) != 0;
}

static void common_io(struct virtio_pci *v, uint64_t off, void *data, uint32_t len, int is_write)
{
    struct device *d = v->dev;
    pthread_mutex_lock(&d->lock);
    if (device_groups_trylock(d) < 0) {
        /*
         * A group thread is inside the plugin, maybe for as long as a
         * synchronous read on a hung file system takes.  Waiting for it
         * here would stall this vCPU, and through d->lock the event loop.
         * Reads, writes during a reset (ignored) and the reset itself need
         * no plugin call: the transport's state only changes under d->lock,
         * held here.  The plugin's part of the reset starts at the first
         * access after the group let go, typically the driver's next poll.
         */
        if (!is_write || resetting(v)) {
            common_access(v, off, data, len, is_write);
            pthread_mutex_unlock(&d->lock);
            return;
        }
        if (is_reset_write(v, off, data, len)) {
            __atomic_store_n(&v->resetting, RESET_WAIT_LOCKS, __ATOMIC_RELEASE);
            pthread_mutex_unlock(&d->lock);
            return;
        }
        device_groups_lock(d); /* driver setup: no I/O of this device is running */
    }
    reset_advance(v);
    common_access(v, off, data, len, is_write);
    device_unlock(d);
}

static void bar_io(void *opaque, uint32_t bar, uint64_t off, void *data, uint32_t len,
                   int is_write)
{
    struct virtio_pci *v = opaque;
    struct device *d = v->dev;
    if (!is_write)
        memset(data, 0, len);
    if (bar != 0 || !d->state)
        return;
    if (off >= VPCI_NOTIFY_OFF && off < VPCI_NOTIFY_OFF + VPCI_REGION_SIZE) {
        /*
         * A notify KVM did not catch (no ioeventfd, or an odd width).  The
         * kick fds never change, so no lock: a vCPU must not wait for an I/O
         * thread's batch just to ring a doorbell.
         */
        uint64_t qi = (off - VPCI_NOTIFY_OFF) / VPCI_NOTIFY_MULT;
        if (is_write && qi < v->nq)
            kick(&v->q[qi]);
        return;
    }
    if (off < VPCI_COMMON_OFF + VPCI_REGION_SIZE) {
        common_io(v, off - VPCI_COMMON_OFF, data, len, is_write);
        return;
    }
    device_lock(d);
    if (off < VPCI_ISR_OFF + VPCI_REGION_SIZE) {
        /* Reading ISR acknowledges it (4.1.4.5); writes are ignored. */
        if (!is_write && off == VPCI_ISR_OFF)
            *(uint8_t *)data = __atomic_exchange_n(&v->isr, 0, __ATOMIC_RELAXED);
    } else if (off < VPCI_DEVCFG_OFF + VPCI_REGION_SIZE) {
        uint64_t o = off - VPCI_DEVCFG_OFF;
        int r = -EINVAL;
        if (resetting(v)) {
            r = 0; /* no virtio op until the plugin's reset ended: reads 0 */
        } else if (o < v->info.config_size && len <= v->info.config_size - o) {
            if (is_write && d->ops.virtio_config_write)
                r = d->ops.virtio_config_write(d->state, o, data, len);
            else if (!is_write && d->ops.virtio_config_read)
                r = d->ops.virtio_config_read(d->state, o, data, len);
        }
        if (r < 0) {
            d->bad_accesses++;
            if (!is_write)
                memset(data, 0, len);
        }
    }
    device_unlock(d);
}

/* ---- host services ----------------------------------------------------------------- */

int virtio_pci_vq_pop(struct virtio_pci *v, uint32_t queue, nimbus_vq_buf *bufs, uint32_t cap,
                      uint32_t *nbufs, uint32_t *head)
{
    if (queue >= v->nq || !bufs || !nbufs || !head)
        return -EINVAL;
    struct vpci_queue *q = &v->q[queue];
    if (!q->vq.started || resetting(v) || (status_of(v) & VIRTIO_STATUS_NEEDS_RESET))
        return 0;
    uint16_t h = 0;
    int r = vq_pop(&q->vq, &v->mem, bufs, cap, nbufs, &h);
    if (r == -EIO) {
        char why[128];
        snprintf(why, sizeof(why), "queue %u: %s", queue,
                 q->vq.why_broken ? q->vq.why_broken : "malformed chain");
        virtio_pci_needs_reset(v, why);
    }
    if (r == 1)
        *head = h;
    return r;
}

int virtio_pci_vq_push(struct virtio_pci *v, uint32_t queue, uint32_t head, uint32_t written)
{
    if (queue >= v->nq || head > 0xffff)
        return -EINVAL;
    if (!v->q[queue].vq.started)
        return -EINVAL;
    /* The driver reset the device: its rings are no longer the device's. */
    if (resetting(v))
        return -ECANCELED;
    return vq_push(&v->q[queue].vq, (uint16_t)head, written);
}

int virtio_pci_vq_notify(struct virtio_pci *v, uint32_t queue)
{
    if (queue >= v->nq)
        return -EINVAL;
    struct vpci_queue *q = &v->q[queue];
    if (!q->vq.started || resetting(v) || !vq_should_notify(&q->vq))
        return 0;
    __atomic_fetch_or(&v->isr, 1, __ATOMIC_RELAXED);
    return v->func ? pci_msix_notify(v->func, q->msix_vector) : 0;
}

uint32_t virtio_pci_vq_size(struct virtio_pci *v, uint32_t queue)
{
    /* size only changes while the queue is stopped, device-wide. */
    if (queue >= v->nq || !v->q[queue].vq.started)
        return 0;
    return v->q[queue].vq.size;
}

int virtio_pci_config_changed(struct virtio_pci *v)
{
    __atomic_fetch_add(&v->config_generation, 1, __ATOMIC_RELAXED);
    if ((status_of(v) & VIRTIO_STATUS_DRIVER_OK) && !resetting(v))
        irq_config(v);
    return 0;
}

uint32_t virtio_pci_slot(const struct virtio_pci *v)
{
    return v->func ? pci_func_slot(v->func) : 0;
}

/* ---- construction -------------------------------------------------------------------- */

static int info_ok(const struct device *d, const nimbus_virtio_info *in, char *err,
                   size_t errlen)
{
    const char *bad = NULL;
    if (in->device_id == 0 || in->device_id > 0xffff - VIRTIO_PCI_DEVICE_BASE)
        bad = "device_id";
    else if (in->num_queues == 0 || in->num_queues > NIMBUS_VIRTIO_MAX_QUEUES)
        bad = "num_queues";
    else if (in->queue_size_max < 2 || in->queue_size_max > VQ_MAX_SIZE ||
             (in->queue_size_max & (in->queue_size_max - 1)))
        bad = "queue_size_max";
    else if (in->config_size > NIMBUS_VIRTIO_MAX_CONFIG)
        bad = "config_size";
    else if (in->device_features & TRANSPORT_RESERVED)
        bad = "device_features (transport bits 24..49)";
    else if (in->pci_class > 0xffffff)
        bad = "pci_class";
    else if (in->num_groups > NIMBUS_MAX_IO_GROUPS)
        bad = "num_groups";
    for (uint32_t i = 0; !bad && in->num_groups && i < in->num_queues; i++)
        if (in->queue_group[i] != NIMBUS_VQ_GROUP_NONE && in->queue_group[i] >= in->num_groups)
            bad = "queue_group";
    if (bad) {
        snprintf(err, errlen, "%s: plugin reported an invalid virtio %s", d->name, bad);
        return -1;
    }
    return 0;
}

static int add_vcap(struct virtio_pci *v, uint8_t type, uint32_t off, uint32_t len,
                    uint32_t mult)
{
    uint8_t cap[20] = {0};
    uint32_t size = type == CAP_NOTIFY ? 20 : 16;
    cap[0] = PCI_CAP_VENDOR;
    cap[2] = (uint8_t)size;
    cap[3] = type;
    cap[4] = 0; /* BAR 0 */
    nimbus_le_store(cap + 8, 4, off);
    nimbus_le_store(cap + 12, 4, len);
    if (type == CAP_NOTIFY)
        nimbus_le_store(cap + 16, 4, mult);
    uint32_t at;
    return pci_func_add_cap(v->func, cap, size, &at);
}

struct virtio_pci *virtio_pci_create(struct device *d, const nimbus_virtio_info *info,
                                     char *err, size_t errlen)
{
    const struct device_env *env = d->env;
    if (!env->pci || !env->el) {
        snprintf(err, errlen, "%s: virtio devices need the PCI bus, which this machine lacks",
                 d->name);
        return NULL;
    }
    if (info_ok(d, info, err, errlen) < 0)
        return NULL;
    struct virtio_pci *v = calloc(1, sizeof(*v));
    if (!v) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    v->dev = d;
    v->info = *info;
    v->nq = info->num_queues;
    v->offered = info->device_features | TRANSPORT_FEATURES;
    v->config_vector = PCI_MSIX_NO_VECTOR;
    v->mem = (struct vq_mem){mem_map, env->mem};
    for (uint32_t i = 0; i < NIMBUS_VIRTIO_MAX_QUEUES; i++)
        v->q[i].kick_fd = -1;
    for (uint32_t i = 0; i < v->nq; i++) {
        struct vpci_queue *q = &v->q[i];
        q->owner = v;
        q->index = i;
        q->msix_vector = PCI_MSIX_NO_VECTOR;
        vq_init(&q->vq, (uint16_t)info->queue_size_max);
        q->group = info->queue_group[i] < info->num_groups ? info->queue_group[i]
                                                           : NIMBUS_VQ_GROUP_NONE;
        q->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (q->kick_fd < 0 ||
            el_watch(device_group_loop(d, q->group), q->kick_fd, EPOLLIN, kick_ready, q) < 0) {
            snprintf(err, errlen, "%s: cannot set up queue %u notification: %s", d->name, i,
                     strerror(errno));
            goto fail;
        }
    }

    static const struct pci_func_ops ops = {.bar_io = bar_io, .bar_remap = bar_remap};
    struct pci_func_ids ids = {.vendor = VIRTIO_PCI_VENDOR,
                               .device = (uint16_t)(VIRTIO_PCI_DEVICE_BASE + info->device_id),
                               .subsys_vendor = VIRTIO_PCI_VENDOR,
                               .subsys_id = (uint16_t)info->device_id,
                               .revision = 1, /* modern-only device (4.1.2.1) */
                               .class_code = info->pci_class};
    v->func = pci_func_add(env->pci, &ids, &ops, v, err, errlen);
    if (!v->func)
        goto fail;
    if (pci_func_add_bar(v->func, 0, VPCI_BAR_SIZE, PCI_BAR_MEM64) < 0 ||
        add_vcap(v, CAP_COMMON, VPCI_COMMON_OFF, CC_SIZE, 0) < 0 ||
        add_vcap(v, CAP_ISR, VPCI_ISR_OFF, 1, 0) < 0 ||
        (info->config_size && add_vcap(v, CAP_DEVICE, VPCI_DEVCFG_OFF, info->config_size, 0) < 0) ||
        add_vcap(v, CAP_NOTIFY, VPCI_NOTIFY_OFF, v->nq * VPCI_NOTIFY_MULT, VPCI_NOTIFY_MULT) < 0 ||
        pci_func_add_msix(v->func, nvectors(v), 0, VPCI_MSIX_TABLE_OFF, VPCI_MSIX_PBA_OFF) < 0) {
        snprintf(err, errlen, "%s: cannot set up its PCI function (BAR or capabilities)",
                 d->name);
        goto fail;
    }
    log_debug("%s: virtio device %u on PCI 00:%02x.0 with %u queue(s)", d->name,
              info->device_id, pci_func_slot(v->func), v->nq);
    return v;
fail:
    virtio_pci_destroy(v);
    return NULL;
}

void virtio_pci_destroy(struct virtio_pci *v)
{
    if (!v)
        return;
    const struct device_env *env = v->dev->env;
    ioevents_move(v, 0);
    for (uint32_t i = 0; i < NIMBUS_VIRTIO_MAX_QUEUES; i++) {
        struct vpci_queue *q = &v->q[i];
        if (q->kick_fd >= 0 && env->el)
            el_unwatch(device_group_loop(v->dev, q->group), q->kick_fd);
    }
    /* A kick callback already started may still be reading a queue.  The
     * I/O-group loops are stopped by now (device_destroy), the main one not
     * necessarily. */
    el_sync(env->el);
    for (uint32_t i = 0; i < NIMBUS_VIRTIO_MAX_QUEUES; i++) {
        struct vpci_queue *q = &v->q[i];
        if (q->kick_fd >= 0)
            close(q->kick_fd);
        if (i < v->nq)
            vq_reset(&q->vq, (uint16_t)v->info.queue_size_max);
    }
    /* The guest must not reach `v` through config space or a BAR again. */
    pci_func_remove(v->func);
    free(v);
}
