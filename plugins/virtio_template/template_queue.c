/* virtio_template data path: requestq chains filled from the seeded stream. */
#include "template.h"

#include <errno.h>

#include <nimbus/plugin_util.h>
#include <nimbus/virtio_util.h>

/*
 * splitmix64 output number k for state `seed`.  Computed from k alone, not
 * from a running state, so any stream position costs one word and the
 * device state is just `pos`.  Unsigned overflow is the intended mod 2^64.
 */
static uint64_t stream_word(uint64_t seed, uint64_t k)
{
    uint64_t z = seed + (k + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void tpl_stream(uint64_t seed, uint64_t pos, uint8_t *dst, uint64_t len)
{
    while (len > 0) {
        uint64_t w = stream_word(seed, pos / 8);
        /* Little-endian byte order, whatever the host's. */
        for (uint32_t b = (uint32_t)(pos % 8); b < 8 && len > 0; b++, len--, pos++)
            *dst++ = (uint8_t)(w >> (8 * b));
    }
}

int tpl_schedule(struct vtpl *t)
{
    uint64_t now = t->host->clock_ns(t->hctx);
    /* A deadline of 0 cancels; "now" is past by the time the loop looks. */
    return t->host->timer_arm(t->hctx, TPL_TIMER, now ? now : 1);
}

void tpl_unschedule(struct vtpl *t)
{
    /* Cancelling a valid timer id cannot fail. */
    t->host->timer_arm(t->hctx, TPL_TIMER, 0);
}

/*
 * Give the chain's device-writable buffers, in order, the next stream
 * bytes (at most TPL_MAX_PER_REQ in all).  Device-readable buffers carry
 * nothing for an entropy device and are left alone.  The host validated
 * every buffer (inside guest RAM), so writing through `host` is safe; the
 * guest may race us on that memory, which only spoils its own data.
 */
static uint32_t fill_chain(struct vtpl *t, const nimbus_vq_buf *bufs, uint32_t n)
{
    uint32_t given = 0;
    for (uint32_t i = 0; i < n && given < TPL_MAX_PER_REQ; i++) {
        if (!(bufs[i].flags & NIMBUS_VQ_BUF_WRITE))
            continue;
        uint32_t c = bufs[i].len;
        if (c > TPL_MAX_PER_REQ - given)
            c = TPL_MAX_PER_REQ - given;
        tpl_stream(t->seed, t->pos, bufs[i].host, c);
        t->pos += c;
        given += c;
    }
    return given;
}

/* An unrecoverable device error: tell the driver instead of going quiet. */
static void fail(struct vtpl *t, const char *why, int err)
{
    nimbus_logf(t->host, t->hctx, NIMBUS_LOG_ERROR, "virtio_template: %s (%d); needs reset",
                why, err);
    t->host->virtio_needs_reset(t->hctx);
}

void tpl_serve(struct vtpl *t)
{
    uint64_t bytes = 0;
    uint32_t chains = 0;
    int pushed = 0;

    if (!t->active)
        return; /* a stale timer or kick from before a reset */
    for (;;) {
        if (chains >= TPL_BUDGET_CHAINS || bytes >= TPL_BUDGET_BYTES) {
            /* Turn used up: come back through the loop, never spin here. */
            int rc = tpl_schedule(t);
            if (rc < 0)
                fail(t, "cannot arm the yield timer", rc);
            break;
        }
        nimbus_vq_buf bufs[TPL_MAX_BUFS];
        uint32_t n = 0, head = 0;
        int rc = t->host->vq_pop(t->hctx, TPL_QUEUE, bufs, TPL_MAX_BUFS, &n, &head);
        if (rc == -EMSGSIZE) {
            /* The host already returned it used with 0 bytes: the guest
             * still needs the interrupt, and it counts against the turn. */
            if (!t->warned_long_chain) {
                t->warned_long_chain = 1;
                nimbus_logf(t->host, t->hctx, NIMBUS_LOG_WARN,
                            "virtio_template: request of more than %u buffers returned "
                            "empty", TPL_MAX_BUFS);
            }
            chains++;
            pushed = 1;
            continue;
        }
        /* 0: queue empty.  -EIO: malformed chain, the host has already
         * set DEVICE_NEEDS_RESET and the queue yields nothing more. */
        if (rc <= 0)
            break;
        if (n > TPL_MAX_BUFS)
            n = TPL_MAX_BUFS; /* never trust a count to index a stack array */
        chains++;
        /* A chain without writable buffers is returned with 0 bytes. */
        uint32_t given = fill_chain(t, bufs, n);
        rc = t->host->vq_push(t->hctx, TPL_QUEUE, head, given);
        if (rc < 0) {
            fail(t, "vq_push refused a chain it gave us", rc);
            break;
        }
        pushed = 1;
        bytes += given;
        t->stat_bytes += given;
        t->stat_requests++;
    }
    /* One interrupt for the whole batch. */
    if (pushed)
        t->host->vq_notify(t->hctx, TPL_QUEUE);
}
