/*
 * The asynchronous engine, one io_uring per queue: each queue is its own
 * I/O group, so its ring is only ever touched by its group thread (or by
 * device-wide ops, which exclude group calls) and needs no locking.
 * Chains go to io_uring as READV/WRITEV straight on guest memory (no
 * copies), FSYNC(DATASYNC) and FALLOCATE; one submit per batch.
 * Completions raise the queue's eventfd, which its group thread watches,
 * so nothing here ever blocks except destroy, a machine reset and state
 * restore, which must wait for the kernel to let go of guest memory (the
 * driver's reset does not: blk_uring_cancel_all, then the completions end
 * it on the queue's thread).
 *
 * A seccomp filter sees io_uring_enter, not what the ring does: each ring
 * is confined to the opcodes below (IORING_REGISTER_RESTRICTIONS, 5.10+)
 * before it runs, so a compromised process cannot use it to open, connect
 * or read other files behind the filter's back.
 *
 * A request has at most one op in the ring at a time; its slot is the
 * user_data.  The completion queue holds two entries per slot of the
 * queue, so it cannot overflow, even with one cancel per request.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "blk.h"

/* Everything prep() and blk_uring_cancel_all() queue; no SQE flags, and no
 * register operation once the ring runs (the eventfd is registered first). */
static const uint8_t allowed_ops[] = {
    IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC, IORING_OP_FALLOCATE,
    IORING_OP_ASYNC_CANCEL,
};

static int ring_init(struct blk_queue *q, int disabled)
{
    struct blk_uring *u = &q->uring;
    /* One SQE per slot: a batch never needs more, and N queues cost about
     * what one shared ring of N * queue_size entries did.  Two CQEs per
     * slot (the default): room for a cancel's beside each request's. */
    uint32_t n = q->dev->opts.queue_size; /* a power of two */
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    /* Disabled until confined (blk_uring_init). */
    p.flags = disabled ? IORING_SETUP_R_DISABLED : 0;
    return io_uring_queue_init_params(n, &u->ring, &p);
}

/* The raw register call: Debian's liburing 2.3 declares
 * io_uring_enable_rings and io_uring_register_restrictions but does not
 * export them. */
static int ring_enable(struct blk_queue *q)
{
    return io_uring_register((unsigned)q->uring.ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL,
                             0);
}

/* Confine the ring to allowed_ops and start it.  0, or -errno with the ring
 * still disabled (the caller then starts it unconfined). */
static int ring_confine(struct blk_queue *q)
{
    struct io_uring_restriction res[sizeof(allowed_ops)];
    memset(res, 0, sizeof(res));
    for (size_t i = 0; i < sizeof(allowed_ops); i++) {
        res[i].opcode = IORING_RESTRICTION_SQE_OP;
        res[i].sqe_op = allowed_ops[i];
    }
    int r = io_uring_register((unsigned)q->uring.ring.ring_fd, IORING_REGISTER_RESTRICTIONS, res,
                              (unsigned)sizeof(allowed_ops));
    if (r < 0)
        return r;
    return ring_enable(q);
}

int blk_uring_init(struct blk_queue *q)
{
    struct blk_uring *u = &q->uring;
    u->efd = -1;
    int disabled = 1;
    int r = ring_init(q, disabled);
    if (r == -EINVAL) {
        /* Before 5.10 there is no IORING_SETUP_R_DISABLED (nor restrictions). */
        disabled = 0;
        r = ring_init(q, disabled);
    }
    if (r < 0)
        return r;
    struct io_uring_probe *probe = io_uring_get_probe_ring(&u->ring);
    u->has_falloc = probe && io_uring_opcode_supported(probe, IORING_OP_FALLOCATE);
    int ok = probe && io_uring_opcode_supported(probe, IORING_OP_READV) &&
             io_uring_opcode_supported(probe, IORING_OP_WRITEV) &&
             io_uring_opcode_supported(probe, IORING_OP_FSYNC);
    if (probe)
        io_uring_free_probe(probe);
    if (!ok) {
        r = -EOPNOTSUPP;
        goto fail;
    }
    u->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (u->efd < 0) {
        r = -errno;
        goto fail;
    }
    r = io_uring_register_eventfd(&u->ring, u->efd);
    if (r < 0)
        goto fail;
    u->restricted = 0;
    if (disabled) {
        int rc = ring_confine(q);
        if (rc == 0) {
            u->restricted = 1;
        } else {
            r = ring_enable(q);
            if (r < 0)
                goto fail;
        }
        if (rc < 0 && q->index == 0)
            BLK_LOG(q->dev, NIMBUS_LOG_INFO,
                    "virtio_blk: the kernel refused io_uring restrictions (%s); rings "
                    "run unconfined", strerror(-rc));
    } else if (q->index == 0) {
        BLK_LOG(q->dev, NIMBUS_LOG_INFO,
                "virtio_blk: io_uring rings cannot be confined on this kernel (before "
                "5.10); they run unconfined");
    }
    u->up = 1;
    return 0;
fail:
    if (u->efd >= 0)
        close(u->efd);
    u->efd = -1;
    io_uring_queue_exit(&u->ring);
    return r;
}

int blk_uring_watch(struct blk_queue *q)
{
    struct blk_dev *d = q->dev;
    struct blk_uring *u = &q->uring;
    if (!u->up)
        return 0;
    /* The token is the queue, so fd_ready finds its ring without a search. */
    int r = d->groups ? d->host->fd_watch_group(d->hctx, q->index, u->efd,
                                                NIMBUS_EV_IN, q->index)
                      : d->host->fd_watch(d->hctx, u->efd, NIMBUS_EV_IN, q->index);
    if (r == 0)
        u->watched = 1;
    return r;
}

void blk_uring_unwatch(struct blk_queue *q)
{
    struct blk_uring *u = &q->uring;
    if (u->watched)
        q->dev->host->fd_unwatch(q->dev->hctx, u->efd);
    u->watched = 0;
}

void blk_uring_fini(struct blk_queue *q)
{
    struct blk_uring *u = &q->uring;
    if (!u->up)
        return;
    blk_uring_unwatch(q);
    io_uring_queue_exit(&u->ring);
    close(u->efd);
    u->efd = -1;
    u->up = 0;
}

void blk_uring_mute(struct blk_queue *q, int mute)
{
    /* Before 5.8 the flag does not exist: every CQE then signals. */
    if (q->uring.up)
        (void)io_uring_cq_eventfd_toggle(&q->uring.ring, !mute);
}

void blk_uring_eventfd_clear(struct blk_queue *q)
{
    uint64_t v;
    if (q->uring.up && read(q->uring.efd, &v, sizeof(v)) < 0) {
        /* EAGAIN: nothing pending.  Nothing else can fail on an eventfd. */
    }
}

static void prep(struct io_uring_sqe *sqe, const struct blk_op *op)
{
    switch (op->kind) {
    case BLK_OP_READV:
        io_uring_prep_readv(sqe, op->fd, op->iov, op->iovcnt, op->off);
        break;
    case BLK_OP_WRITEV:
        io_uring_prep_writev2(sqe, op->fd, op->iov, op->iovcnt, op->off,
                              op->rw_flags);
        break;
    case BLK_OP_FSYNC:
        io_uring_prep_fsync(sqe, op->fd, IORING_FSYNC_DATASYNC);
        break;
    default: /* BLK_OP_FALLOC */
        io_uring_prep_fallocate(sqe, op->fd, op->mode, (off_t)op->off,
                                (off_t)op->len);
        break;
    }
}

void blk_uring_start(struct blk_queue *q, struct blk_req *r)
{
    struct blk_dev *d = q->dev;
    struct blk_uring *u = &q->uring;
    struct blk_op op;
    for (;;) {
        if (!blk_req_next_op(d, r, &op)) {
            blk_req_finish(d, r);
            return;
        }
        if (op.kind == BLK_OP_FALLOC && !u->has_falloc) {
            /* Old kernel: discard/write-zeroes block briefly instead. */
            blk_req_op_done(d, r, blk_sync_op(&op));
            continue;
        }
        struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
        if (!sqe) {
            blk_uring_submit(q);
            sqe = io_uring_get_sqe(&u->ring);
        }
        if (!sqe) {
            /* The kernel takes nothing right now: do this one inline
             * rather than leave the guest waiting. */
            blk_sync_run(d, r);
            return;
        }
        prep(sqe, &op);
        io_uring_sqe_set_data(sqe, r);
        u->inflight++;
        return;
    }
}

void blk_uring_submit(struct blk_queue *q)
{
    struct blk_dev *d = q->dev;
    struct blk_uring *u = &q->uring;
    if (!u->up || io_uring_sq_ready(&u->ring) == 0)
        return;
    int r = io_uring_submit(&u->ring);
    if (r >= 0 && io_uring_sq_ready(&u->ring) == 0)
        return;
    /* -EAGAIN/-ENOMEM/-EBUSY: the SQEs stay queued; try again shortly. */
    if (r < 0 && !u->warned_submit) {
        u->warned_submit = 1;
        BLK_LOG(d, NIMBUS_LOG_WARN,
                "virtio_blk: queue %u: io_uring_submit failed: %s; retrying",
                q->index, strerror(-r));
    }
    if (!u->retry_armed) {
        u->retry_armed = 1;
        d->host->timer_arm(d->hctx, BLK_RETRY_TIMER + q->index,
                           d->host->clock_ns(d->hctx) + BLK_RETRY_NS);
    }
}

static void complete_one(struct blk_queue *q, struct blk_req *r, int64_t res)
{
    struct blk_dev *d = q->dev;
    q->uring.inflight--;
    /* Only device-wide ops (reset, destroy, restore) set draining, and a
     * queue's calls are serialised with them: a plain read is enough. */
    if (q->uring.draining) {
        blk_req_drop(d, r);
        return;
    }
    blk_req_op_done(d, r, res);
    blk_uring_start(q, r);
}

/* Handle every CQE visible now; completions may queue follow-up SQEs. */
static uint32_t reap_visible(struct blk_queue *q)
{
    struct io_uring *ring = &q->uring.ring;
    uint32_t total = 0;
    for (;;) {
        unsigned head, n = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(ring, head, cqe) {
            struct blk_req *r = io_uring_cqe_get_data(cqe);
            int64_t res = cqe->res;
            n++;
            if (r)
                complete_one(q, r, res);
        }
        if (n == 0)
            return total;
        io_uring_cq_advance(ring, n);
        total += n;
    }
}

uint32_t blk_uring_reap(struct blk_queue *q)
{
    if (!q->uring.up)
        return 0;
    return reap_visible(q);
}

void blk_uring_drain(struct blk_queue *q)
{
    struct blk_dev *d = q->dev;
    struct blk_uring *u = &q->uring;
    if (!u->up)
        return;
    u->draining = 1;
    int warned = 0;
    while (u->inflight > 0) {
        int r = io_uring_submit_and_wait(&u->ring, 1);
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY && r != -ETIME) {
            /*
             * The wait failed, not the requests: they still run against
             * guest memory, and closing the ring would not stop them (the
             * kernel finishes them after the close, into pages the guest
             * got back at reset).  Keep the ring and poll for their
             * completions; each nanosleep also runs the task work that
             * posts them.
             */
            if (!warned) {
                warned = 1;
                BLK_LOG(d, NIMBUS_LOG_ERROR,
                        "virtio_blk: queue %u: waiting for %u requests failed: %s; "
                        "polling for them", q->index, u->inflight, strerror(-r));
            }
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
            reap_visible(q);
            continue;
        }
        if (reap_visible(q) == 0 && r < 0 && r != -EINTR) {
            /* Kernel short of resources: back off instead of spinning. */
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    u->draining = 0;
}

void blk_uring_cancel_all(struct blk_queue *q)
{
    struct blk_uring *u = &q->uring;
    if (!u->up)
        return;
    u->draining = 1;
    /* One SQE cancels every request of the ring; its own CQE carries no
     * slot (user_data 0), so reaping skips it.  Older kernels answer it
     * with -EINVAL: the requests then simply run to their end.  A request
     * the kernel cannot stop (a read stuck in a hung file system) ends
     * when the file system lets it. */
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (!sqe) {
        blk_uring_submit(q);
        sqe = io_uring_get_sqe(&u->ring);
    }
    if (sqe) {
        io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
        io_uring_sqe_set_data(sqe, NULL);
    }
    blk_uring_submit(q);
}
