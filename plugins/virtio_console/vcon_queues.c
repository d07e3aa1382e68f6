/* virtio-console data path: transmitq to the backend, backend to receiveq. */
#include "vcon.h"

#include <nimbus/plugin_util.h>
#include <nimbus/virtio_util.h>

/*
 * One event-loop turn moves at most this much guest output, then yields
 * through an immediate timer so a guest streaming into a fast backend
 * (null, a file) cannot monopolise the loop.
 */
#define TX_BUDGET_BYTES (1u << 20)
#define TX_BUDGET_CHAINS 1024u
/* Chains per chr_input call: several times the queue size, only a guest
 * posting receive chains without writable buffers ever reaches it. */
#define RX_BUDGET_CHAINS 1024u

/*
 * A full backend drains at terminal speed, so waiting is cheap: retry soon
 * at first (an interactive echo should not lag), then back off so a stalled
 * backend (nobody reading the pty) costs a wake-up every 32 ms.
 */
#define TX_BACKOFF_MIN_NS 1000000ull
#define TX_BACKOFF_MAX_NS 32000000ull

enum tx_result { TX_DONE, TX_FULL, TX_YIELD };

static void arm_timer(struct vcon *v, uint64_t delay_ns)
{
    uint64_t deadline = v->host->clock_ns(v->hctx) + delay_ns;
    v->tx_waiting = 1;
    /* 0 would cancel instead of firing "as soon as possible". */
    v->host->timer_arm(v->hctx, VCON_TX_TIMER, deadline ? deadline : 1);
}

/* Bytes of the current chain not yet handed to the backend. */
static uint64_t tx_remaining(const struct vcon *v)
{
    uint64_t left = 0;
    for (uint32_t i = v->tx_idx; i < v->tx_nbufs; i++) {
        const nimbus_vq_buf *b = &v->tx_bufs[i];
        if (b->flags & NIMBUS_VQ_BUF_WRITE)
            continue;
        uint64_t done = i == v->tx_idx ? v->tx_off : 0;
        left += b->len > done ? b->len - done : 0;
    }
    return left;
}

/* Write the current chain from where it stopped.  Buffers the guest marked
 * device-writable carry no output on a transmitq and are skipped. */
static enum tx_result tx_write(struct vcon *v, uint64_t *budget)
{
    while (v->tx_idx < v->tx_nbufs) {
        const nimbus_vq_buf *b = &v->tx_bufs[v->tx_idx];
        if ((b->flags & NIMBUS_VQ_BUF_WRITE) || v->tx_off >= b->len) {
            v->tx_idx++;
            v->tx_off = 0;
            continue;
        }
        if (*budget == 0)
            return TX_YIELD;
        uint64_t want = b->len - v->tx_off;
        if (want > *budget)
            want = *budget;
        int64_t r = v->host->chr_write
                        ? v->host->chr_write(v->hctx, (const uint8_t *)b->host + v->tx_off, want)
                        : -ENOTCONN;
        if (r < 0) {
            /* No backend at all: there is nowhere to keep the bytes, and
             * holding the chain would only stall the guest forever. */
            if (v->tx_discarded == 0)
                nimbus_logf(v->host, v->hctx, NIMBUS_LOG_WARN,
                            "virtio-console: no character backend, discarding output");
            v->tx_discarded += tx_remaining(v);
            v->tx_idx = v->tx_nbufs;
            return TX_DONE;
        }
        if (r == 0)
            return TX_FULL;
        if ((uint64_t)r > want) /* a host overstating what it took */
            r = (int64_t)want;
        v->tx_off += (uint64_t)r;
        *budget -= (uint64_t)r;
        v->tx_backoff_ns = TX_BACKOFF_MIN_NS;
    }
    return TX_DONE;
}

/* Pop the next transmit chain: 1 when it became current, 0 when the queue
 * is empty or broken (the host then set NEEDS_RESET), 2 when the host
 * returned it unprocessed because it was too long. */
static int tx_next(struct vcon *v)
{
    uint32_t n = 0, head = 0;
    int r = v->host->vq_pop(v->hctx, VCON_QUEUE_TX, v->tx_bufs, VCON_MAX_BUFS, &n, &head);
    if (r == -EMSGSIZE) {
        if (!v->warned_long_chain) {
            v->warned_long_chain = 1;
            nimbus_logf(v->host, v->hctx, NIMBUS_LOG_WARN,
                        "virtio-console: transmit chain longer than %u buffers "
                        "returned unwritten", VCON_MAX_BUFS);
        }
        return 2;
    }
    if (r <= 0)
        return 0;
    v->tx_busy = 1;
    v->tx_head = head;
    v->tx_nbufs = n < VCON_MAX_BUFS ? n : VCON_MAX_BUFS;
    v->tx_idx = 0;
    v->tx_off = 0;
    return 1;
}

void vcon_tx_schedule(struct vcon *v)
{
    /* Not through arm_timer: tx_waiting would hold off the kicks that may
     * come before the timer fires, and they can serve the queue as well. */
    if (!v->tx_waiting) {
        uint64_t now = v->host->clock_ns(v->hctx);
        v->host->timer_arm(v->hctx, VCON_TX_TIMER, now ? now : 1);
    }
}

void vcon_tx_run(struct vcon *v)
{
    if (!v->active || v->tx_waiting)
        return; /* the armed timer comes back here */
    uint64_t budget = TX_BUDGET_BYTES;
    uint32_t chains = 0;
    int pushed = 0;
    for (;;) {
        if (!v->tx_busy) {
            if (chains >= TX_BUDGET_CHAINS) {
                arm_timer(v, 0);
                break;
            }
            int r = tx_next(v);
            if (r == 0)
                break;
            chains++;
            if (r == 2) {
                /* Already used with 0 bytes: the driver needs an
                 * interrupt to reclaim it. */
                pushed = 1;
                continue;
            }
        }
        enum tx_result r = tx_write(v, &budget);
        if (r == TX_FULL) {
            arm_timer(v, v->tx_backoff_ns);
            if (v->tx_backoff_ns < TX_BACKOFF_MAX_NS)
                v->tx_backoff_ns *= 2;
            break;
        }
        if (r == TX_YIELD) {
            arm_timer(v, 0);
            break;
        }
        /* The transmitq has no device-writable data: 0 bytes written. */
        v->host->vq_push(v->hctx, VCON_QUEUE_TX, v->tx_head, 0);
        v->tx_busy = 0;
        pushed = 1;
    }
    if (pushed)
        v->host->vq_notify(v->hctx, VCON_QUEUE_TX);
}

uint64_t vcon_rx_input(struct vcon *v, const uint8_t *buf, uint64_t len)
{
    nimbus_vq_buf bufs[VCON_MAX_BUFS];
    uint64_t taken = 0;
    uint32_t chains = 0;
    int pushed = 0;

    while (v->active && taken < len && chains < RX_BUDGET_CHAINS) {
        uint32_t n = 0, head = 0;
        int r = v->host->vq_pop(v->hctx, VCON_QUEUE_RX, bufs, VCON_MAX_BUFS, &n, &head);
        chains++;
        if (r == -EMSGSIZE) {
            pushed = 1;
            continue;
        }
        if (r <= 0)
            break;
        if (n > VCON_MAX_BUFS)
            n = VCON_MAX_BUFS;
        uint64_t want = len - taken;
        if (want > UINT32_MAX) /* vq_push counts in 32 bits */
            want = UINT32_MAX;
        /* A chain without device-writable buffers takes nothing and is
         * simply returned. */
        uint64_t w = nimbus_vq_scatter(bufs, n, 0, buf + taken, want);
        v->host->vq_push(v->hctx, VCON_QUEUE_RX, head, (uint32_t)w);
        pushed = 1;
        taken += w;
    }
    if (pushed)
        v->host->vq_notify(v->hctx, VCON_QUEUE_RX);
    if (taken < len) {
        if (v->active && chains >= RX_BUDGET_CHAINS && v->host->chr_input_ready)
            v->host->chr_input_ready(v->hctx); /* come back next turn */
        else
            v->input_blocked = 1;
    }
    return taken;
}

void vcon_rx_refilled(struct vcon *v)
{
    if (!v->active || !v->input_blocked)
        return;
    v->input_blocked = 0;
    if (v->host->chr_input_ready)
        v->host->chr_input_ready(v->hctx);
}

void vcon_queues_reset(struct vcon *v)
{
    /* The chain's buffers belong to rings the reset just discarded. */
    v->tx_busy = 0;
    v->tx_head = 0;
    v->tx_nbufs = 0;
    v->tx_idx = 0;
    v->tx_off = 0;
    memset(v->tx_bufs, 0, sizeof(v->tx_bufs));
    v->tx_waiting = 0;
    v->tx_backoff_ns = TX_BACKOFF_MIN_NS;
    v->host->timer_arm(v->hctx, VCON_TX_TIMER, 0);
    v->active = 0;
    v->features = 0;
}
