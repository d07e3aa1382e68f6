/*
 * Request slots and the dispatch loop of one queue: pop chains while slots
 * are free, start them on the queue's engine, reap completions, then one
 * vq_notify if chains went back.  Everything here touches only the queue
 * it is given (it runs on that queue's I/O group thread).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

#include "blk.h"

/* Dispatch rounds per call before yielding to the event loop. */
#define RUN_ROUNDS 8

int blk_queues_alloc(struct blk_dev *d)
{
    uint32_t qs = d->opts.queue_size;
    for (uint32_t i = 0; i < d->opts.num_queues; i++) {
        struct blk_queue *q = &d->queues[i];
        q->dev = d;
        q->index = i;
        q->reqs = calloc(qs, sizeof(*q->reqs));
        q->iov_pool = calloc((size_t)qs * d->iov_cap, sizeof(*q->iov_pool));
        q->free = calloc(qs, sizeof(*q->free));
        q->scratch = calloc(d->iov_cap, sizeof(*q->scratch));
        if (!q->reqs || !q->iov_pool || !q->free || !q->scratch)
            return -ENOMEM;
        for (uint32_t s = 0; s < qs; s++) {
            q->reqs[s].q = q;
            q->reqs[s].iov = q->iov_pool + (size_t)s * d->iov_cap;
        }
    }
    return 0;
}

void blk_queues_free(struct blk_dev *d)
{
    for (uint32_t i = 0; i < BLK_MAX_QUEUES; i++) {
        struct blk_queue *q = &d->queues[i];
        free(q->reqs);
        free(q->iov_pool);
        free(q->free);
        free(q->scratch);
        q->reqs = NULL;
        q->iov_pool = NULL;
        q->free = NULL;
        q->scratch = NULL;
    }
}

void blk_queue_reset(struct blk_queue *q)
{
    uint32_t qs = q->dev->opts.queue_size;
    /* Lowest slot on top: a light load keeps touching the same slots. */
    for (uint32_t s = 0; s < qs; s++)
        q->free[s] = qs - 1 - s;
    q->nfree = qs;
    q->stalled = 0;
    q->need_notify = 0;
}

void blk_queues_reset(struct blk_dev *d)
{
    for (uint32_t i = 0; i < d->opts.num_queues; i++)
        blk_queue_reset(&d->queues[i]);
}

static void slot_put(struct blk_queue *q, struct blk_req *r)
{
    q->free[q->nfree++] = (uint32_t)(r - q->reqs);
}

/* Where a request completes, as Cloud Hypervisor counts: successes only. */
static void count_done(struct blk_queue *q, const struct blk_req *r)
{
    switch (r->type) {
    case VIRTIO_BLK_T_IN:
        q->read_ops++;
        q->read_bytes += r->data_len;
        break;
    case VIRTIO_BLK_T_OUT:
        q->write_ops++;
        q->write_bytes += r->data_len;
        break;
    case VIRTIO_BLK_T_FLUSH:
        q->flush_ops++;
        break;
    case VIRTIO_BLK_T_DISCARD:
        q->discard_ops++;
        break;
    case VIRTIO_BLK_T_WRITE_ZEROES:
        q->write_zeroes_ops++;
        break;
    default:
        break;
    }
}

void blk_req_finish(struct blk_dev *d, struct blk_req *r)
{
    struct blk_queue *q = r->q;
    uint32_t written = 0;
    if (r->status_ptr) {
        *r->status_ptr = r->status;
        written = r->status == VIRTIO_BLK_S_OK ? r->written : 1;
        if (r->status == VIRTIO_BLK_S_OK)
            count_done(q, r);
    }
    d->host->vq_push(d->hctx, q->index, r->head, written);
    q->need_notify = 1;
    slot_put(q, r);
}

void blk_req_drop(struct blk_dev *d, struct blk_req *r)
{
    (void)d;
    slot_put(r->q, r);
}

static void pop_queue(struct blk_dev *d, struct blk_queue *q)
{
    q->stalled = 0;
    for (;;) {
        if (q->nfree == 0) {
            /* Chains stay in the ring; completions restart us. */
            q->stalled = 1;
            return;
        }
        struct blk_req *r = &q->reqs[q->free[q->nfree - 1]];
        uint32_t n = 0, head = 0;
        int rc = d->host->vq_pop(d->hctx, q->index, q->scratch, d->iov_cap, &n,
                                 &head);
        if (rc == -EMSGSIZE) {
            /* The host already returned it, used with 0 bytes. */
            if (BLK_COUNT(&d->bad_chains) < 8)
                BLK_LOG(d, NIMBUS_LOG_WARN,
                        "virtio_blk: queue %u: chain of more than %u buffers "
                        "(seg_max %u) dropped", q->index, d->iov_cap, d->seg_max);
            q->need_notify = 1;
            continue;
        }
        if (rc != 1)
            return; /* empty, not enabled, or broken (host set NEEDS_RESET) */
        q->nfree--;
        r->head = head;
        if (!blk_req_parse(d, r, n))
            blk_req_finish(d, r);
        else if (d->qcow2)
            blk_qcow2_run(d, r);
        else if (q->uring.up)
            blk_uring_start(q, r);
        else
            blk_sync_run(d, r);
    }
}

uint32_t blk_active_queues(const struct blk_dev *d)
{
    return d->features & NIMBUS_BIT(VIRTIO_BLK_F_MQ) ? d->opts.num_queues : 1;
}

void blk_run_queue(struct blk_dev *d, struct blk_queue *q, int kicked)
{
    struct blk_uring *u = &q->uring;
    int round;

    /* Nothing is in flight before activation or after a reset (drained). */
    if (!d->activated || q->index >= blk_active_queues(d))
        return;
    /* Completions we reap ourselves below need no eventfd wakeup. */
    blk_uring_mute(q, 1);
    for (round = 0; round < RUN_ROUNDS; round++) {
        if (kicked || (q->stalled && q->nfree > 0))
            pop_queue(d, q);
        kicked = 0;
        if (!u->up)
            break;
        blk_uring_submit(q);
        /* Page-cache hits often complete inside submit: finish them now
         * instead of a trip through the event loop. */
        if (blk_uring_reap(q) == 0)
            break;
    }
    if (u->up) {
        blk_uring_submit(q);
        blk_uring_mute(q, 0);
        /*
         * Completions that arrived while muted, or work left after the
         * last round: make sure fd_ready comes back soon.  The kernel posts
         * a CQE and then reads the mute flag; we clear the flag and then
         * read the CQ tail.  Without a full fence between our store and
         * load (x86 reorders a store after a later load) both sides can
         * miss each other: a CQE from an io-wq worker lands unsignalled
         * and, if it was the last one in flight, the guest waits forever.
         */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        int more = io_uring_cq_ready(&u->ring) != 0 ||
                   (round == RUN_ROUNDS && q->stalled && q->nfree > 0);
        if (more)
            eventfd_write(u->efd, 1);
    }
    if (q->need_notify) {
        q->need_notify = 0;
        d->host->vq_notify(d->hctx, q->index);
    }
}
