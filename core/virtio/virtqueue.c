/*
 * Split virtqueue, device side (virtio 1.2, 2.7).
 *
 * Guest memory is shared with a running, possibly hostile driver: every
 * field is read exactly once into a local (descriptors through load_desc,
 * ring words through __atomic loads) and only the local is validated and
 * used, so a value cannot change between its check and its use.
 *
 * Decisions the spec leaves open:
 *  - Zero-length descriptors are accepted and skipped: they count towards
 *    the chain length limits but produce no nimbus_vq_buf and take no part
 *    in the readable-before-writable rule (their address is never used).
 *  - An INDIRECT descriptor may end a direct chain (it cannot have NEXT);
 *    its WRITE flag is ignored as the spec requires.  Its table must hold
 *    1..VQ_MAX_CHAIN whole descriptors, lie in RAM, and not nest.
 *  - The INDIRECT_DESC feature is not enforced: accepting a table from a
 *    driver that did not negotiate it is harmless.
 *  - A chain whose head is still in flight is malformed (the driver reused
 *    descriptors the device owns).
 *  - vq_push clamps `written` to the chain's device-writable bytes, so the
 *    driver never sees a length beyond its buffers; q->clamped counts it.
 */
#include "virtio/virtqueue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "virtqueue.c reads little-endian virtio rings natively"
#endif

#define DESC_F_NEXT 1u
#define DESC_F_WRITE 2u
#define DESC_F_INDIRECT 4u
#define AVAIL_F_NO_INTERRUPT 1u

#define DESC_SIZE 16u

/* A descriptor as read from guest memory (little-endian host). */
struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

/* Ring field offsets (bytes). */
#define AVAIL_IDX 2u
#define AVAIL_RING 4u
#define USED_IDX 2u
#define USED_RING 4u

static uint64_t desc_bytes(uint16_t size)
{
    return (uint64_t)DESC_SIZE * size;
}

static uint64_t avail_bytes(uint16_t size)
{
    return 6u + 2ull * size; /* flags, idx, ring[size], used_event */
}

static uint64_t used_bytes(uint16_t size)
{
    return 6u + 8ull * size; /* flags, idx, ring[size], avail_event */
}

static uint16_t *avail_u16(const struct virtqueue *q, uint64_t off)
{
    return (uint16_t *)((uint8_t *)q->avail + off);
}

static uint16_t *used_u16(const struct virtqueue *q, uint64_t off)
{
    return (uint16_t *)((uint8_t *)q->used + off);
}

static uint16_t *used_event_ptr(const struct virtqueue *q)
{
    return avail_u16(q, AVAIL_RING + 2ull * q->size);
}

static uint16_t *avail_event_ptr(const struct virtqueue *q)
{
    return used_u16(q, USED_RING + 8ull * q->size);
}

/*
 * One descriptor into a local.  memcpy copes with unaligned indirect tables;
 * the compiler barrier after it forbids re-reading guest memory in place of
 * the local copy (the classic double fetch).
 */
static void load_desc(const void *p, struct desc *d)
{
    uint8_t raw[DESC_SIZE];
    memcpy(raw, p, sizeof(raw));
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    memcpy(&d->addr, raw, 8);
    memcpy(&d->len, raw + 8, 4);
    memcpy(&d->flags, raw + 12, 2);
    memcpy(&d->next, raw + 14, 2);
}

static int mark_broken(struct virtqueue *q, const char *why)
{
    q->broken = 1;
    if (q->why_broken == NULL)
        q->why_broken = why;
    return -EIO;
}

static int is_pow2(uint32_t v)
{
    return v != 0 && (v & (v - 1)) == 0;
}

static void *map_ring(const struct vq_mem *mem, uint64_t gpa, uint64_t len,
                      uint64_t align)
{
    if (gpa & (align - 1))
        return NULL;
    void *p = mem->map(mem->opaque, gpa, len);
    if (p == NULL || ((uintptr_t)p & (align - 1)))
        return NULL; /* the atomics below need natural alignment */
    return p;
}

static void free_runtime(struct virtqueue *q)
{
    free(q->popped);
    free(q->wcap);
    q->popped = NULL;
    q->wcap = NULL;
}

void vq_init(struct virtqueue *q, uint16_t max_size)
{
    memset(q, 0, sizeof(*q));
    q->size = max_size;
    q->max_size = max_size;
}

void vq_reset(struct virtqueue *q, uint16_t max_size)
{
    free_runtime(q);
    vq_init(q, max_size);
}

void vq_fini(struct virtqueue *q)
{
    free_runtime(q);
    q->started = 0;
}

int vq_start(struct virtqueue *q, const struct vq_mem *mem, int event_idx)
{
    free_runtime(q);
    q->started = 0;
    q->broken = 0;
    q->why_broken = NULL;
    if (!is_pow2(q->size) || q->size > VQ_MAX_SIZE ||
        (q->max_size != 0 && q->size > q->max_size))
        return -EINVAL;
    void *d = map_ring(mem, q->desc_gpa, desc_bytes(q->size), 16);
    void *a = map_ring(mem, q->avail_gpa, avail_bytes(q->size), 2);
    void *u = map_ring(mem, q->used_gpa, used_bytes(q->size), 4);
    if (d == NULL || a == NULL || u == NULL)
        return -EFAULT;
    q->popped = calloc(q->size, sizeof(*q->popped));
    q->wcap = calloc(q->size, sizeof(*q->wcap));
    if (q->popped == NULL || q->wcap == NULL) {
        free_runtime(q);
        return -ENOMEM;
    }
    q->desc = d;
    q->avail = a;
    q->used = u;
    q->event_idx = event_idx != 0;
    q->last_avail = 0;
    q->used_idx = 0;
    /* Nothing pushed yet counts as "signalled at 0": no spurious first
     * interrupt, and need_event covers the first real one. */
    q->signalled_used = 0;
    q->signalled_valid = 1;
    q->inflight = 0;
    q->clamped = 0;
    q->started = 1;
    return 0;
}

/* Where the walk over one chain stands. */
struct walk {
    nimbus_vq_buf *bufs;
    uint32_t cap;
    uint32_t nbufs;   /* buffers seen (may exceed cap: then nothing stored) */
    uint32_t ndesc;   /* descriptors visited, direct and indirect */
    uint64_t total;   /* bytes in the chain */
    uint64_t wtotal;  /* device-writable bytes */
    int seen_write;
};

/* Validate one data descriptor and append it.  0 or -EIO. */
static int add_buf(struct virtqueue *q, const struct vq_mem *mem, struct walk *w,
                   const struct desc *d)
{
    if (d->len == 0)
        return 0;
    int writable = (d->flags & DESC_F_WRITE) != 0;
    if (!writable && w->seen_write)
        return mark_broken(q, "device-readable descriptor after a writable one");
    if (d->addr + d->len < d->addr)
        return mark_broken(q, "descriptor address + length wraps");
    w->total += d->len;
    if (w->total > UINT32_MAX)
        return mark_broken(q, "chain longer than 4 GiB");
    void *host = mem->map(mem->opaque, d->addr, d->len);
    if (host == NULL)
        return mark_broken(q, "descriptor buffer outside guest RAM");
    if (writable) {
        w->seen_write = 1;
        w->wtotal += d->len;
    }
    if (w->nbufs < w->cap) {
        nimbus_vq_buf *b = &w->bufs[w->nbufs];
        b->host = host;
        b->gpa = d->addr;
        b->len = d->len;
        b->flags = writable ? NIMBUS_VQ_BUF_WRITE : 0;
    }
    w->nbufs++;
    return 0;
}

/* Walk an indirect table (the descriptor `d` pointing at it). */
static int walk_indirect(struct virtqueue *q, const struct vq_mem *mem, struct walk *w,
                         const struct desc *d)
{
    if (d->flags & DESC_F_NEXT)
        return mark_broken(q, "INDIRECT descriptor with NEXT set");
    if (d->len == 0 || d->len % DESC_SIZE != 0)
        return mark_broken(q, "indirect table length not a non-zero multiple of 16");
    uint32_t n = d->len / DESC_SIZE;
    if (n > VQ_MAX_CHAIN)
        return mark_broken(q, "indirect table longer than VQ_MAX_CHAIN");
    const uint8_t *table = mem->map(mem->opaque, d->addr, d->len);
    if (table == NULL)
        return mark_broken(q, "indirect table outside guest RAM");
    uint32_t i = 0;
    for (uint32_t seen = 0;; seen++) {
        struct desc e;
        if (seen >= n)
            return mark_broken(q, "loop in indirect table");
        if (++w->ndesc > VQ_MAX_CHAIN)
            return mark_broken(q, "chain longer than VQ_MAX_CHAIN descriptors");
        load_desc(table + (uint64_t)i * DESC_SIZE, &e);
        if (e.flags & DESC_F_INDIRECT)
            return mark_broken(q, "nested indirect table");
        int r = add_buf(q, mem, w, &e);
        if (r < 0)
            return r;
        if (!(e.flags & DESC_F_NEXT))
            return 0;
        if (e.next >= n)
            return mark_broken(q, "indirect next index outside its table");
        i = e.next;
    }
}

/* Walk the chain starting at `head` (already range-checked). */
static int walk_chain(struct virtqueue *q, const struct vq_mem *mem, struct walk *w,
                      uint16_t head)
{
    const uint8_t *table = q->desc;
    uint16_t i = head;
    for (uint32_t seen = 0;; seen++) {
        struct desc d;
        if (seen >= q->size)
            return mark_broken(q, "loop in descriptor chain");
        if (++w->ndesc > VQ_MAX_CHAIN)
            return mark_broken(q, "chain longer than VQ_MAX_CHAIN descriptors");
        load_desc(table + (uint64_t)i * DESC_SIZE, &d);
        if (d.flags & DESC_F_INDIRECT)
            return walk_indirect(q, mem, w, &d);
        int r = add_buf(q, mem, w, &d);
        if (r < 0)
            return r;
        if (!(d.flags & DESC_F_NEXT))
            return 0;
        if (d.next >= q->size)
            return mark_broken(q, "next descriptor index out of range");
        i = d.next;
    }
}

/* Read avail->idx (acquire: ring entries and descriptors are read after). */
static uint16_t avail_idx(const struct virtqueue *q)
{
    return __atomic_load_n(avail_u16(q, AVAIL_IDX), __ATOMIC_ACQUIRE);
}

static void set_avail_event(struct virtqueue *q, uint16_t v)
{
    __atomic_store_n(avail_event_ptr(q), v, __ATOMIC_RELAXED);
}

/* Publish one used element (release: the element before the index). */
static void put_used(struct virtqueue *q, uint16_t head, uint32_t written)
{
    uint8_t *elem = (uint8_t *)q->used + USED_RING + 8ull * (q->used_idx & (q->size - 1));
    __atomic_store_n((uint32_t *)elem, (uint32_t)head, __ATOMIC_RELAXED);
    __atomic_store_n((uint32_t *)(elem + 4), written, __ATOMIC_RELAXED);
    q->used_idx++;
    __atomic_store_n(used_u16(q, USED_IDX), q->used_idx, __ATOMIC_RELEASE);
}

int vq_pop(struct virtqueue *q, const struct vq_mem *mem, nimbus_vq_buf *bufs, uint32_t cap,
           uint32_t *nbufs, uint16_t *head)
{
    if (!q->started)
        return 0;
    if (q->broken)
        return -EIO;
    uint16_t idx = avail_idx(q);
    if (idx == q->last_avail) {
        if (!q->event_idx)
            return 0;
        /* Ask for a kick at the next buffer, then look again: the driver may
         * have published one before it could see the new avail_event. */
        set_avail_event(q, q->last_avail);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        idx = avail_idx(q);
        if (idx == q->last_avail)
            return 0;
    }
    if ((uint16_t)(idx - q->last_avail) > q->size)
        return mark_broken(q, "avail index moved more than the queue size ahead");
    uint16_t h = __atomic_load_n(avail_u16(q, AVAIL_RING + 2ull * (q->last_avail & (q->size - 1))),
                                 __ATOMIC_RELAXED);
    if (h >= q->size)
        return mark_broken(q, "avail ring entry (chain head) out of range");
    if (q->popped[h])
        return mark_broken(q, "chain head is already in flight");

    struct walk w = {bufs, bufs ? cap : 0, 0, 0, 0, 0, 0};
    int r = walk_chain(q, mem, &w, h);
    if (r < 0)
        return r;
    q->last_avail++;
    if (q->event_idx)
        set_avail_event(q, q->last_avail);
    q->popped[h] = 1;
    q->wcap[h] = (uint32_t)w.wtotal; /* <= total <= UINT32_MAX */
    q->inflight++;
    if (w.nbufs > w.cap) {
        /* Too long for the caller: hand it back unprocessed, as documented. */
        vq_push(q, h, 0);
        return -EMSGSIZE;
    }
    *nbufs = w.nbufs;
    *head = h;
    return 1;
}

int vq_push(struct virtqueue *q, uint16_t head, uint32_t written)
{
    if (!q->started || head >= q->size || !q->popped[head])
        return -EINVAL;
    q->popped[head] = 0;
    q->inflight--;
    if (written > q->wcap[head]) {
        written = q->wcap[head];
        q->clamped++;
    }
    put_used(q, head, written);
    return 0;
}

/* virtio 1.2, 2.7.10: the driver asked to be interrupted when used idx
 * passes `event`; true when it moved past it in (old, new]. */
static int need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx)
{
    return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

int vq_should_notify(struct virtqueue *q)
{
    if (!q->started)
        return 0;
    /* Our used->idx store must be visible before we read the driver's
     * suppression fields, or both sides can miss each other's update. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint16_t old_idx = q->signalled_used;
    uint16_t new_idx = q->used_idx;
    if (q->signalled_valid && old_idx == new_idx)
        return 0; /* nothing new since the last interrupt decision */
    int first = !q->signalled_valid;
    q->signalled_used = new_idx;
    q->signalled_valid = 1;
    if (!q->event_idx) {
        uint16_t flags = __atomic_load_n(avail_u16(q, 0), __ATOMIC_RELAXED);
        return !(flags & AVAIL_F_NO_INTERRUPT);
    }
    uint16_t event = __atomic_load_n(used_event_ptr(q), __ATOMIC_RELAXED);
    return first || need_event(event, new_idx, old_idx);
}

void vq_save(const struct virtqueue *q, struct vq_state *s)
{
    memset(s, 0, sizeof(*s));
    s->size = q->size;
    s->last_avail = q->last_avail;
    s->used_idx = q->used_idx;
    s->desc_gpa = q->desc_gpa;
    s->avail_gpa = q->avail_gpa;
    s->used_gpa = q->used_gpa;
    s->started = (uint32_t)q->started;
    s->event_idx = (uint32_t)q->event_idx;
}
