/* virtio-rng data path: requestq buffers filled straight from the source. */
#include "rng.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <nimbus/plugin_util.h>
#include <nimbus/virtio_util.h>

/* Linux asks for at most a few dozen bytes at a time; anything larger is
 * capped so one request cannot keep the loop reading for long. */
#define RNG_MAX_PER_REQ 65536u
/* Per event-loop turn, then yield through an immediate timer. */
#define RNG_BUDGET_BYTES (1u << 20)
#define RNG_BUDGET_CHAINS 1024u
/* Poll interval when the source blocks and the host cannot watch it. */
#define RNG_POLL_NS 10000000ull

enum fill_result { FILL_DONE, FILL_WAIT };

static void arm_timer(struct vrng *r, uint64_t delay_ns)
{
    uint64_t deadline = r->host->clock_ns(r->hctx) + delay_ns;
    r->waiting = 1;
    /* 0 would cancel instead of firing "as soon as possible". */
    r->host->timer_arm(r->hctx, RNG_TIMER, deadline ? deadline : 1);
}

static void unwatch(struct vrng *r)
{
    if (!r->watching)
        return;
    r->watching = 0;
    if (r->host->fd_unwatch)
        r->host->fd_unwatch(r->hctx, r->fd);
}

/*
 * Wait for the source.  The watch is removed again at every wake-up rather
 * than paused, because epoll keeps reporting HUP on a paused FIFO whose
 * writer went away, which would spin the event loop.
 */
static void wait_source(struct vrng *r)
{
    if (r->host->fd_watch && r->host->fd_watch(r->hctx, r->fd, NIMBUS_EV_IN, 0) == 0) {
        r->watching = 1;
        r->waiting = 1;
        return;
    }
    arm_timer(r, RNG_POLL_NS);
}

/* The writable buffer holding byte `off` of the request, and where in it. */
static nimbus_vq_buf *locate(struct vrng *r, uint64_t off, uint64_t *in)
{
    for (uint32_t i = 0; i < r->nbufs; i++) {
        nimbus_vq_buf *b = &r->bufs[i];
        if (!(b->flags & NIMBUS_VQ_BUF_WRITE))
            continue;
        if (off < b->len) {
            *in = off;
            return b;
        }
        off -= b->len;
    }
    return NULL;
}

/*
 * Read into the request until it is full, the source has nothing more
 * right now (short read: give what we have), ends, or fails.  Only a
 * request that got nothing yet waits; a partial one is returned, as the
 * spec allows, so the guest is never held up for the remainder.
 */
static enum fill_result fill(struct vrng *r, uint64_t *budget)
{
    while (r->filled < r->want && *budget > 0) {
        uint64_t in = 0;
        nimbus_vq_buf *b = locate(r, r->filled, &in);
        if (!b)
            break;
        uint64_t ask = b->len - in;
        if (ask > r->want - r->filled)
            ask = r->want - r->filled;
        if (ask > *budget)
            ask = *budget;
        ssize_t n = read(r->fd, (uint8_t *)b->host + in, ask);
        if (n > 0) {
            r->filled += (uint64_t)n;
            *budget -= (uint64_t)n;
            if ((uint64_t)n < ask)
                break;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return r->filled ? FILL_DONE : FILL_WAIT;
        if (n == 0 && !r->warned_eof) {
            r->warned_eof = 1;
            nimbus_logf(r->host, r->hctx, NIMBUS_LOG_WARN,
                        "virtio-rng: source '%s' has no more data; the guest gets "
                        "empty replies", r->src);
        } else if (n < 0 && !r->warned_err) {
            r->warned_err = 1;
            nimbus_logf(r->host, r->hctx, NIMBUS_LOG_WARN,
                        "virtio-rng: reading '%s': %s; the guest gets empty replies",
                        r->src, strerror(errno));
        }
        break;
    }
    return FILL_DONE;
}

/* Pop the next request: 1 when it became current, 0 when the queue is
 * empty or broken, 2 when the host returned it unprocessed (too long). */
static int next_request(struct vrng *r)
{
    uint32_t n = 0, head = 0;
    int rc = r->host->vq_pop(r->hctx, RNG_QUEUE, r->bufs, RNG_MAX_BUFS, &n, &head);
    if (rc == -EMSGSIZE) {
        if (!r->warned_long_chain) {
            r->warned_long_chain = 1;
            nimbus_logf(r->host, r->hctx, NIMBUS_LOG_WARN,
                        "virtio-rng: request longer than %u buffers returned empty",
                        RNG_MAX_BUFS);
        }
        return 2;
    }
    if (rc <= 0)
        return 0;
    r->busy = 1;
    r->head = head;
    r->nbufs = n < RNG_MAX_BUFS ? n : RNG_MAX_BUFS;
    r->filled = 0;
    r->want = nimbus_vq_len(r->bufs, r->nbufs, 1);
    if (r->want > RNG_MAX_PER_REQ)
        r->want = RNG_MAX_PER_REQ;
    return 1;
}

void rng_run(struct vrng *r)
{
    if (!r->active || r->waiting)
        return; /* the armed watch or timer comes back here */
    uint64_t budget = RNG_BUDGET_BYTES;
    uint32_t chains = 0;
    int pushed = 0;
    for (;;) {
        if (!r->busy) {
            if (chains >= RNG_BUDGET_CHAINS || budget == 0) {
                arm_timer(r, 0);
                break;
            }
            int rc = next_request(r);
            if (rc == 0)
                break;
            chains++;
            if (rc == 2) {
                pushed = 1; /* already used: the driver needs an interrupt */
                continue;
            }
        }
        if (fill(r, &budget) == FILL_WAIT) {
            wait_source(r);
            break;
        }
        /* A request without writable buffers is returned with 0 bytes. */
        r->host->vq_push(r->hctx, RNG_QUEUE, r->head, (uint32_t)r->filled);
        r->busy = 0;
        pushed = 1;
    }
    if (pushed)
        r->host->vq_notify(r->hctx, RNG_QUEUE);
}

void rng_schedule(struct vrng *r)
{
    /* Not through arm_timer: `waiting` would hold off the kicks that may
     * come before the timer fires, and they can serve the queue as well. */
    if (!r->waiting) {
        uint64_t now = r->host->clock_ns(r->hctx);
        r->host->timer_arm(r->hctx, RNG_TIMER, now ? now : 1);
    }
}

void rng_source_ready(struct vrng *r)
{
    unwatch(r);
    r->waiting = 0;
    rng_run(r);
}

void rng_timer(struct vrng *r)
{
    if (r->watching)
        return; /* a stale firing; the watch resumes us */
    r->waiting = 0;
    rng_run(r);
}

void rng_queue_reset(struct vrng *r)
{
    unwatch(r);
    r->host->timer_arm(r->hctx, RNG_TIMER, 0);
    r->waiting = 0;
    r->busy = 0;
    r->head = 0;
    r->nbufs = 0;
    r->want = 0;
    r->filled = 0;
    memset(r->bufs, 0, sizeof(r->bufs));
    r->active = 0;
}
