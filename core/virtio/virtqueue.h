/*
 * Split virtqueues (virtio 1.2, 2.7): the device side of one queue, with
 * indirect descriptors and EVENT_IDX.  Everything the driver wrote into the
 * rings is hostile: every index, address, length, flag and chain shape is
 * checked, and a malformed chain marks the queue broken (the transport then
 * sets DEVICE_NEEDS_RESET) instead of touching memory outside guest RAM.
 *
 * The library is self-contained (no VMM dependencies beyond the ABI header)
 * so the core transport, the fake host used by plugin tests and fuzzers, and
 * the virtqueue fuzzer all run exactly this code.  Not thread-safe: the
 * caller serialises calls per queue (the transport holds the device lock).
 */
#ifndef NIMBUS_VIRTQUEUE_H
#define NIMBUS_VIRTQUEUE_H

#include <stdint.h>

#include "nimbus/plugin_abi.h"

#define VQ_MAX_SIZE 32768u
/* Longest chain accepted, direct and indirect descriptors together. */
#define VQ_MAX_CHAIN 4096u

/* Guest memory as the queue sees it: NULL unless [gpa, gpa+len) is RAM. */
struct vq_mem {
    void *(*map)(void *opaque, uint64_t gpa, uint64_t len);
    void *opaque;
};

struct virtqueue {
    /* Programmed by the driver through the transport before vq_start. */
    uint16_t size;      /* power of two, 1..VQ_MAX_SIZE */
    uint64_t desc_gpa, avail_gpa, used_gpa;

    /* Private to virtqueue.c. */
    int started;
    int broken;
    int event_idx;
    void *desc, *avail, *used; /* host views of the rings */
    uint16_t last_avail;       /* next avail ring slot to read */
    uint16_t used_idx;         /* our copy of used->idx */
    uint16_t signalled_used;   /* used_idx at the last interrupt (EVENT_IDX) */
    int signalled_valid;
    uint32_t inflight;         /* chains popped and not yet pushed */
    uint8_t *popped;           /* per head: 1 while in flight (size bytes) */
    const char *why_broken;    /* static string, for logs */
    uint16_t max_size;         /* from vq_init: vq_start refuses a larger size */
    uint32_t *wcap;            /* per head: device-writable bytes of the chain */
    uint64_t clamped;          /* pushes whose `written` exceeded wcap */
};

/* Zero the queue and set the driver-visible defaults (size = max_size). */
void vq_init(struct virtqueue *q, uint16_t max_size);
/*
 * Check and map the rings the driver programmed (sizes, alignment, inside
 * RAM) and start processing.  -EINVAL for a bad size, -EFAULT when a ring is
 * not in RAM or misaligned, -ENOMEM; the queue stays stopped then.  Calling
 * it on a running queue restarts it (everything in flight is forgotten).
 */
int vq_start(struct virtqueue *q, const struct vq_mem *mem, int event_idx);
/* Forget everything in flight and stop (device reset).  Keeps the max size. */
void vq_reset(struct virtqueue *q, uint16_t max_size);
/* Free what vq_start allocated and stop, keeping the programmed addresses
 * (teardown of a queue that is never used again; vq_reset also frees). */
void vq_fini(struct virtqueue *q);

/*
 * Take the next chain: 1 with bufs/nbufs/head filled, 0 when empty (with
 * EVENT_IDX the avail_event is updated so the driver kicks for the next
 * buffer), -EMSGSIZE when the chain has more than `cap` buffers (already
 * pushed back with 0 bytes), -EIO when the queue is (now) broken.
 */
int vq_pop(struct virtqueue *q, const struct vq_mem *mem, nimbus_vq_buf *bufs, uint32_t cap,
           uint32_t *nbufs, uint16_t *head);
/* Return a popped chain; -EINVAL when `head` is not in flight.  `written`
 * is clamped to the chain's device-writable bytes (counted in q->clamped). */
int vq_push(struct virtqueue *q, uint16_t head, uint32_t written);
/*
 * After pushes: 1 when the driver wants an interrupt now (honouring
 * VIRTQ_AVAIL_F_NO_INTERRUPT or used_event), 0 otherwise.
 */
int vq_should_notify(struct virtqueue *q);

/* State for snapshot/restore (later): what a restore needs to resume. */
struct vq_state {
    uint16_t size, last_avail, used_idx, pad;
    uint64_t desc_gpa, avail_gpa, used_gpa;
    uint32_t started, event_idx;
};
void vq_save(const struct virtqueue *q, struct vq_state *s);

#endif
