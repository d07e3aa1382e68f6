/*
 * The fake host's virtio side: the minor-1 vq_* services over the fake RAM
 * (running core/virtio/virtqueue.c, as the real transport does) and a
 * minimal driver that lays out rings, adds chains and collects used ones.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include <nimbus/virtio_util.h>

#include "fake_host.h"
#include "fake_host_priv.h"

#define DESC_F_NEXT 1u
#define DESC_F_WRITE 2u
#define DESC_F_INDIRECT 4u
#define PAGE 4096u

static struct fake_host *host_of(void *hctx)
{
    return (struct fake_host *)hctx;
}

static uint64_t page_up(uint64_t v)
{
    return (v + PAGE - 1) & ~(uint64_t)(PAGE - 1);
}

static int ram_range_ok(const struct fake_host *h, uint64_t gpa, uint64_t len)
{
    return h->ram != NULL && gpa <= h->ram_size && len <= h->ram_size - gpa;
}

static void *fv_map(void *opaque, uint64_t gpa, uint64_t len)
{
    struct fake_host *h = opaque;
    return ram_range_ok(h, gpa, len) ? h->ram + gpa : NULL;
}

/* Bytes of one queue's three rings, each rounded up to a page. */
static uint64_t ring_stride(uint16_t qs)
{
    return page_up(16ull * qs) + page_up(6ull + 2ull * qs) + page_up(6ull + 8ull * qs);
}

static void layout_of(uint16_t qs, uint32_t q, uint64_t *desc, uint64_t *avail,
                      uint64_t *used)
{
    uint64_t base = FAKE_HOST_VQ_BASE + (uint64_t)q * ring_stride(qs);
    *desc = base;
    *avail = base + page_up(16ull * qs);
    *used = *avail + page_up(6ull + 2ull * qs);
}

static void le16_put(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, 2); /* x86-64: native order is the virtio order */
}

/* ---- host services ------------------------------------------------------------ */

/* The queue a service names, or NULL after counting the violation. */
static struct virtqueue *service_queue(struct fake_host *h, uint32_t queue,
                                       const char *what)
{
    struct fake_host_virtio *v = &h->virtio;
    if (!v->attached || queue >= v->info.num_queues) {
        fake_host_violation(h, &h->violations.bad_queue, what);
        return NULL;
    }
    return &v->vq[queue];
}

static void mark_used_ring(struct fake_host *h, uint32_t queue)
{
    const struct fake_host_vq_drv *d = &h->virtio.drv[queue];
    fake_host_mark_dirty(h, d->used, 6ull + 8ull * h->virtio.queue_size);
}

static int fv_vq_pop(void *hctx, uint32_t queue, nimbus_vq_buf *bufs, uint32_t cap,
                     uint32_t *nbufs, uint32_t *head)
{
    struct fake_host *h = host_of(hctx);
    if (nbufs == NULL || head == NULL || (bufs == NULL && cap != 0)) {
        fake_host_violation(h, &h->violations.null_arg, "vq_pop() with a NULL output");
        return -EINVAL;
    }
    struct virtqueue *q = service_queue(h, queue, "vq_pop() on a queue the device does not have");
    if (q == NULL)
        return -EINVAL;
    if (!h->virtio.active)
        return 0;
    int was_broken = q->broken;
    uint16_t h16 = 0;
    int r = vq_pop(q, &h->virtio.mem, bufs, cap, nbufs, &h16);
    if (q->started)
        mark_used_ring(h, queue); /* avail_event, and the -EMSGSIZE push */
    if (r == 1) {
        *head = h16;
        h->virtio.pops++;
        for (uint32_t i = 0; i < *nbufs; i++)
            if (bufs[i].flags & NIMBUS_VQ_BUF_WRITE)
                fake_host_mark_dirty(h, bufs[i].gpa, bufs[i].len);
    } else if (r == -EIO) {
        if (!was_broken)
            h->virtio.broken++;
        h->virtio.device_needs_reset = 1;
    }
    return r;
}

static int fv_vq_push(void *hctx, uint32_t queue, uint32_t head, uint32_t written)
{
    struct fake_host *h = host_of(hctx);
    struct virtqueue *q = service_queue(h, queue, "vq_push() on a queue the device does not have");
    if (q == NULL)
        return -EINVAL;
    if (head > UINT16_MAX || vq_push(q, (uint16_t)head, written) < 0) {
        fake_host_violation(h, &h->violations.bad_push,
                            "vq_push() of a head that is not in flight");
        return -EINVAL;
    }
    h->virtio.pushes++;
    mark_used_ring(h, queue);
    return 0;
}

static int fv_vq_notify(void *hctx, uint32_t queue)
{
    struct fake_host *h = host_of(hctx);
    struct virtqueue *q = service_queue(h, queue, "vq_notify() on a queue the device does not have");
    if (q == NULL)
        return -EINVAL;
    h->virtio.notify_calls[queue]++;
    if (!h->virtio.active || !q->started) {
        fake_host_violation(h, &h->violations.idle_notify,
                            "vq_notify() on a queue that is not running");
        return 0;
    }
    if (vq_should_notify(q))
        h->virtio.interrupts[queue]++;
    return 0;
}

static uint32_t fv_vq_size(void *hctx, uint32_t queue)
{
    struct fake_host *h = host_of(hctx);
    struct virtqueue *q = service_queue(h, queue, "vq_size() on a queue the device does not have");
    return q && h->virtio.active && q->started ? q->size : 0;
}

static int fv_config_changed(void *hctx)
{
    host_of(hctx)->virtio.config_changed++;
    return 0;
}

static void fv_needs_reset(void *hctx)
{
    struct fake_host *h = host_of(hctx);
    h->virtio.needs_reset++;
    h->virtio.device_needs_reset = 1;
}

void fake_virtio_init(struct fake_host *h)
{
    nimbus_host_api *a = &h->api;
    a->vq_pop = fv_vq_pop;
    a->vq_push = fv_vq_push;
    a->vq_notify = fv_vq_notify;
    a->vq_size = fv_vq_size;
    a->virtio_config_changed = fv_config_changed;
    a->virtio_needs_reset = fv_needs_reset;
    h->virtio.mem.map = fv_map;
    h->virtio.mem.opaque = h;
}

/* ---- transport ---------------------------------------------------------------- */

static void drv_free(struct fake_host_vq_drv *d)
{
    free(d->link);
    free(d->chain_len);
    memset(d, 0, sizeof(*d));
}

/* Stop every queue and forget the driver side; stays attached. */
static void teardown(struct fake_host *h)
{
    struct fake_host_virtio *v = &h->virtio;
    for (uint32_t i = 0; i < NIMBUS_VIRTIO_MAX_QUEUES; i++) {
        vq_reset(&v->vq[i], (uint16_t)v->info.queue_size_max);
        drv_free(&v->drv[i]);
    }
    v->active = 0;
    v->device_needs_reset = 0;
    v->features = 0;
    v->queue_size = 0;
    v->buf_next = v->buf_end = 0;
}

void fake_virtio_fini(struct fake_host *h)
{
    teardown(h);
    h->virtio.attached = 0;
}

/* Lay out and start every queue with qs entries; no device op runs. */
static int setup_queues(struct fake_host *h, uint64_t features, uint16_t qs)
{
    struct fake_host_virtio *v = &h->virtio;
    uint32_t nq = v->info.num_queues;
    uint64_t end = FAKE_HOST_VQ_BASE + (uint64_t)nq * ring_stride(qs);
    if (!ram_range_ok(h, FAKE_HOST_VQ_BASE, end - FAKE_HOST_VQ_BASE))
        return -ENOMEM;
    memset(h->ram + FAKE_HOST_VQ_BASE, 0, end - FAKE_HOST_VQ_BASE);
    fake_host_mark_dirty(h, FAKE_HOST_VQ_BASE, end - FAKE_HOST_VQ_BASE);
    int event_idx = (features & NIMBUS_BIT(NIMBUS_VIRTIO_F_EVENT_IDX)) != 0;
    for (uint32_t i = 0; i < nq; i++) {
        struct virtqueue *q = &v->vq[i];
        struct fake_host_vq_drv *d = &v->drv[i];
        vq_reset(q, (uint16_t)v->info.queue_size_max);
        q->size = qs;
        layout_of(qs, i, &q->desc_gpa, &q->avail_gpa, &q->used_gpa);
        int r = vq_start(q, &v->mem, event_idx);
        drv_free(d);
        d->link = calloc(qs, sizeof(*d->link));
        d->chain_len = calloc(qs, sizeof(*d->chain_len));
        if (r < 0 || d->link == NULL || d->chain_len == NULL) {
            teardown(h);
            return r < 0 ? r : -ENOMEM;
        }
        d->desc = q->desc_gpa;
        d->avail = q->avail_gpa;
        d->used = q->used_gpa;
        for (uint16_t k = 0; k < qs; k++)
            d->link[k] = (uint16_t)(k + 1); /* the last link is never followed */
        d->nfree = qs;
    }
    v->features = features;
    v->queue_size = qs;
    v->buf_next = end;
    v->buf_end = h->ram_size;
    v->active = 1;
    v->device_needs_reset = 0;
    return 0;
}

static int is_pow2(uint32_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

int fake_host_virtio_attach(struct fake_host *h, const nimbus_plugin *p, void *dev,
                            nimbus_virtio_info *info)
{
    int (*get)(void *, nimbus_virtio_info *) = FAKE_HOST_OP(p, virtio_info);
    if (get == NULL)
        return -ENOTSUP;
    struct fake_host_virtio *v = &h->virtio;
    teardown(h);
    v->attached = 0;
    nimbus_virtio_info vi;
    memset(&vi, 0, sizeof(vi));
    int r = get(dev, &vi);
    if (r < 0)
        return r;
    if (vi.struct_size < sizeof(vi) || vi.device_id == 0 || vi.num_queues == 0 ||
        vi.num_queues > NIMBUS_VIRTIO_MAX_QUEUES || !is_pow2(vi.queue_size_max) ||
        vi.queue_size_max < 2 || vi.queue_size_max > VQ_MAX_SIZE ||
        vi.config_size > NIMBUS_VIRTIO_MAX_CONFIG || vi.num_groups > NIMBUS_MAX_IO_GROUPS)
        return -EINVAL;
    for (uint32_t i = 0; vi.num_groups && i < vi.num_queues; i++)
        if (vi.queue_group[i] != NIMBUS_VQ_GROUP_NONE && vi.queue_group[i] >= vi.num_groups)
            return -EINVAL;
    v->info = vi;
    v->attached = 1;
    for (uint32_t i = 0; i < NIMBUS_VIRTIO_MAX_QUEUES; i++)
        vq_init(&v->vq[i], (uint16_t)vi.queue_size_max);
    if (info)
        *info = vi;
    return 0;
}

int fake_host_virtio_activate(struct fake_host *h, const nimbus_plugin *p, void *dev,
                              uint64_t features, uint16_t queue_size)
{
    struct fake_host_virtio *v = &h->virtio;
    if (!v->attached)
        return -ENODEV;
    if (v->active)
        return -EBUSY;
    uint32_t qs = queue_size ? queue_size : v->info.queue_size_max;
    if (!is_pow2(qs) || qs > v->info.queue_size_max)
        return -EINVAL;
    uint64_t offered = v->info.device_features | NIMBUS_BIT(NIMBUS_VIRTIO_F_INDIRECT_DESC) |
                       NIMBUS_BIT(NIMBUS_VIRTIO_F_EVENT_IDX) |
                       NIMBUS_BIT(NIMBUS_VIRTIO_F_VERSION_1);
    uint64_t neg = (features & offered) | NIMBUS_BIT(NIMBUS_VIRTIO_F_VERSION_1);
    int r = setup_queues(h, neg, (uint16_t)qs);
    if (r < 0)
        return r;
    int (*act)(void *, uint64_t) = FAKE_HOST_OP(p, virtio_activate);
    r = act ? act(dev, neg) : 0;
    if (r < 0)
        v->device_needs_reset = 1;
    return r;
}

void fake_host_virtio_reset(struct fake_host *h, const nimbus_plugin *p, void *dev)
{
    /* The device first: it must drop its chains while the rings still exist. */
    p->ops->reset(dev);
    teardown(h);
}

/* Driver side of queue q, or NULL with *err set. */
static struct fake_host_vq_drv *drv_queue(const struct fake_host *h, uint32_t q, int *err)
{
    const struct fake_host_virtio *v = &h->virtio;
    if (!v->attached || q >= v->info.num_queues) {
        *err = -EINVAL;
        return NULL;
    }
    if (!v->active) {
        *err = -ENODEV;
        return NULL;
    }
    return (struct fake_host_vq_drv *)&v->drv[q];
}

int fake_host_vq_layout(const struct fake_host *h, uint32_t q, uint64_t *desc,
                        uint64_t *avail, uint64_t *used)
{
    int err;
    const struct fake_host_vq_drv *d = drv_queue(h, q, &err);
    if (d == NULL)
        return -EINVAL;
    if (desc)
        *desc = d->desc;
    if (avail)
        *avail = d->avail;
    if (used)
        *used = d->used;
    return 0;
}

static void put_desc(uint8_t *p, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    memcpy(p, &addr, 8);
    memcpy(p + 8, &len, 4);
    memcpy(p + 12, &flags, 2);
    memcpy(p + 14, &next, 2);
}

/* Take n linked descriptors off the free list and fill them from segs
 * (flags_or added to each).  Returns the head; n <= nfree is checked. */
static uint16_t write_chain(struct fake_host *h, struct fake_host_vq_drv *d,
                            const struct fake_vq_seg *segs, uint32_t n, uint16_t flags_or)
{
    uint16_t qs = h->virtio.queue_size;
    uint16_t head = d->free_head, i = head;
    for (uint32_t k = 0; k < n; k++) {
        uint16_t flags = flags_or;
        if (segs[k].write)
            flags |= DESC_F_WRITE;
        if (k + 1 < n)
            flags |= DESC_F_NEXT;
        uint16_t next = k + 1 < n ? d->link[i] : 0;
        put_desc(h->ram + d->desc + 16ull * i, segs[k].gpa, segs[k].len, flags, next);
        if (k + 1 < n)
            i = d->link[i];
    }
    d->free_head = d->link[i] < qs ? d->link[i] : 0;
    d->nfree = (uint16_t)(d->nfree - n);
    d->chain_len[head] = (uint16_t)n;
    fake_host_mark_dirty(h, d->desc, 16ull * qs);
    return head;
}

static void publish(struct fake_host *h, struct fake_host_vq_drv *d, uint16_t head)
{
    uint16_t qs = h->virtio.queue_size;
    uint8_t *avail = h->ram + d->avail;
    le16_put(avail + 4 + 2u * (d->avail_idx & (qs - 1)), head);
    d->avail_idx++;
    __atomic_store_n((uint16_t *)(avail + 2), d->avail_idx, __ATOMIC_RELEASE);
    fake_host_mark_dirty(h, d->avail, 6ull + 2ull * qs);
}

int fake_host_vq_add(struct fake_host *h, uint32_t q, const struct fake_vq_seg *segs,
                     uint32_t n)
{
    int err;
    struct fake_host_vq_drv *d = drv_queue(h, q, &err);
    if (d == NULL)
        return err;
    if (n == 0 || segs == NULL)
        return -EINVAL;
    if (n > d->nfree)
        return -ENOSPC;
    uint16_t head = write_chain(h, d, segs, n, 0);
    publish(h, d, head);
    return head;
}

int fake_host_vq_add_indirect(struct fake_host *h, uint32_t q,
                              const struct fake_vq_seg *segs, uint32_t n)
{
    int err;
    struct fake_host_vq_drv *d = drv_queue(h, q, &err);
    if (d == NULL)
        return err;
    if (n == 0 || segs == NULL || n > VQ_MAX_CHAIN)
        return -EINVAL;
    if (d->nfree == 0)
        return -ENOSPC;
    uint64_t table = fake_host_buf(h, 16ull * n);
    if (table == 0)
        return -ENOMEM;
    for (uint32_t k = 0; k < n; k++) {
        uint16_t flags = (segs[k].write ? DESC_F_WRITE : 0) | (k + 1 < n ? DESC_F_NEXT : 0);
        put_desc(h->ram + table + 16ull * k, segs[k].gpa, segs[k].len, flags,
                 (uint16_t)(k + 1 < n ? k + 1 : 0));
    }
    struct fake_vq_seg one = {table, 16u * n, 0};
    uint16_t head = write_chain(h, d, &one, 1, DESC_F_INDIRECT);
    publish(h, d, head);
    return head;
}

int fake_host_vq_kick(struct fake_host *h, const nimbus_plugin *p, void *dev, uint32_t q)
{
    int err;
    if (drv_queue(h, q, &err) == NULL)
        return err;
    void (*notify)(void *, uint32_t) = FAKE_HOST_OP(p, virtio_queue_notify);
    if (notify == NULL)
        return -ENOTSUP;
    notify(dev, q);
    return 0;
}

int fake_host_vq_used(struct fake_host *h, uint32_t q, uint32_t *head, uint32_t *len)
{
    int err;
    struct fake_host_vq_drv *d = drv_queue(h, q, &err);
    if (d == NULL)
        return 0;
    uint16_t qs = h->virtio.queue_size;
    const uint8_t *used = h->ram + d->used;
    uint16_t idx = __atomic_load_n((const uint16_t *)(used + 2), __ATOMIC_ACQUIRE);
    if (idx == d->used_seen)
        return 0;
    uint32_t id, n;
    memcpy(&id, used + 4 + 8u * (d->used_seen & (qs - 1)), 4);
    memcpy(&n, used + 8 + 8u * (d->used_seen & (qs - 1)), 4);
    d->used_seen++;
    /* Give the chain's descriptors back (only if the driver side agrees it
     * is in flight: ring memory may have been scribbled over). */
    if (id < qs && d->chain_len[id]) {
        uint16_t last = (uint16_t)id;
        for (uint16_t k = 1; k < d->chain_len[id]; k++)
            last = d->link[last];
        d->link[last] = d->nfree ? d->free_head : 0;
        d->free_head = (uint16_t)id;
        d->nfree = (uint16_t)(d->nfree + d->chain_len[id]);
        d->chain_len[id] = 0;
    }
    if ((h->virtio.features & NIMBUS_BIT(NIMBUS_VIRTIO_F_EVENT_IDX)) && !d->manual_used_event) {
        le16_put(h->ram + d->avail + 4 + 2u * qs, d->used_seen);
        fake_host_mark_dirty(h, d->avail, 6ull + 2ull * qs);
    }
    if (head)
        *head = id;
    if (len)
        *len = n;
    return 1;
}

int fake_host_vq_set_avail_flags(struct fake_host *h, uint32_t q, uint16_t flags)
{
    int err;
    struct fake_host_vq_drv *d = drv_queue(h, q, &err);
    if (d == NULL)
        return err;
    le16_put(h->ram + d->avail, flags);
    fake_host_mark_dirty(h, d->avail, 2);
    return 0;
}

int fake_host_vq_set_used_event(struct fake_host *h, uint32_t q, uint16_t used_event)
{
    int err;
    struct fake_host_vq_drv *d = drv_queue(h, q, &err);
    if (d == NULL)
        return err;
    uint64_t at = d->avail + 4 + 2ull * h->virtio.queue_size;
    le16_put(h->ram + at, used_event);
    fake_host_mark_dirty(h, at, 2);
    d->manual_used_event = 1;
    return 0;
}

uint64_t fake_host_buf(struct fake_host *h, uint64_t len)
{
    struct fake_host_virtio *v = &h->virtio;
    if (!v->active || len == 0)
        return 0;
    uint64_t at = (v->buf_next + 15) & ~15ull;
    if (at > v->buf_end || len > v->buf_end - at)
        return 0;
    v->buf_next = at + len;
    fake_host_mark_dirty(h, at, len);
    return at;
}

int fake_host_poll(struct fake_host *h, const nimbus_plugin *p, void *dev, int timeout_ms)
{
    struct pollfd pfd[FAKE_HOST_FDS];
    unsigned slot[FAKE_HOST_FDS];
    nfds_t n = 0;
    for (unsigned i = 0; i < FAKE_HOST_FDS; i++) {
        if (h->fds[i].fd < 0 || h->fds[i].events == 0)
            continue;
        pfd[n].fd = h->fds[i].fd;
        pfd[n].events = (short)(h->fds[i].events & (NIMBUS_EV_IN | NIMBUS_EV_OUT));
        pfd[n].revents = 0;
        slot[n++] = i;
    }
    if (n == 0)
        return 0;
    int r = poll(pfd, n, timeout_ms);
    if (r < 0)
        return errno == EINTR ? 0 : -errno;
    void (*ready)(void *, int, uint64_t, uint32_t) = FAKE_HOST_OP(p, fd_ready);
    int calls = 0;
    for (nfds_t k = 0; k < n; k++) {
        if (pfd[k].revents & POLLNVAL) {
            fake_host_violation(h, &h->violations.closed_fd,
                                "an fd still watched was closed (fd_unwatch first)");
            continue;
        }
        /* An earlier fd_ready may have changed the watch table. */
        const struct fake_host_fd *f = &h->fds[slot[k]];
        uint32_t ev = (uint32_t)pfd[k].revents & (f->events | NIMBUS_EV_ERR | NIMBUS_EV_HUP);
        if (f->fd != pfd[k].fd || f->events == 0 || ev == 0 || ready == NULL)
            continue;
        ready(dev, f->fd, f->token, ev);
        calls++;
    }
    return calls;
}

/* The transport forwards only whole 1/2/4/8-byte accesses inside config. */
static int config_access_ok(const struct fake_host *h, uint64_t offset, uint32_t len)
{
    const struct fake_host_virtio *v = &h->virtio;
    return v->attached && (len == 1 || len == 2 || len == 4 || len == 8) &&
           offset <= v->info.config_size && len <= v->info.config_size - offset;
}

int fake_host_virtio_config_read(struct fake_host *h, const nimbus_plugin *p, void *dev,
                                 uint64_t offset, void *data, uint32_t len)
{
    int (*rd)(void *, uint64_t, void *, uint32_t) = FAKE_HOST_OP(p, virtio_config_read);
    if (rd == NULL)
        return -ENOTSUP;
    if (!config_access_ok(h, offset, len) || data == NULL)
        return -EINVAL;
    return rd(dev, offset, data, len);
}

int fake_host_virtio_config_write(struct fake_host *h, const nimbus_plugin *p, void *dev,
                                  uint64_t offset, const void *data, uint32_t len)
{
    int (*wr)(void *, uint64_t, const void *, uint32_t) = FAKE_HOST_OP(p, virtio_config_write);
    if (wr == NULL)
        return -ENOTSUP;
    if (!config_access_ok(h, offset, len) || data == NULL)
        return -EINVAL;
    return wr(dev, offset, data, len);
}

/* ---- snapshot ------------------------------------------------------------------ */

void fake_virtio_snapshot_take(const struct fake_host *h, struct fake_host_snapshot *s)
{
    const struct fake_host_virtio *v = &h->virtio;
    s->virtio_attached = v->attached;
    s->virtio_active = v->active;
    s->virtio_info = v->info;
    s->virtio_features = v->features;
    s->virtio_queue_size = v->queue_size;
}

void fake_virtio_snapshot_restore(struct fake_host *h, const struct fake_host_snapshot *s)
{
    struct fake_host_virtio *v = &h->virtio;
    teardown(h);
    v->attached = s->virtio_attached;
    v->info = s->virtio_info;
    for (uint32_t i = 0; i < NIMBUS_VIRTIO_MAX_QUEUES; i++)
        vq_init(&v->vq[i], (uint16_t)v->info.queue_size_max);
    memset(v->interrupts, 0, sizeof(v->interrupts));
    memset(v->notify_calls, 0, sizeof(v->notify_calls));
    v->pops = v->pushes = v->config_changed = v->needs_reset = v->broken = 0;
    if (s->virtio_attached && s->virtio_active)
        (void)setup_queues(h, s->virtio_features, s->virtio_queue_size);
}
