/*
 * virtio_template: the virtio device plugin to copy when starting a new one.
 *
 * It is a virtio entropy device (id 4, so Linux's virtio-rng driver binds)
 * whose data is a deterministic stream: splitmix64 of a seed, see README.md.
 * Determinism is the point: a test can recompute every byte the guest got.
 *
 * template_plugin.c is the ABI glue (options, lifecycle, state, counters),
 * template_queue.c the data path and the stream generator.  This header is
 * what the two share; nothing here is visible outside the plugin.
 */
#ifndef NIMBUS_VIRTIO_TEMPLATE_H
#define NIMBUS_VIRTIO_TEMPLATE_H

#include <stdint.h>

#include <nimbus/plugin_abi.h>

#define TPL_QUEUE 0u       /* the one requestq */
#define TPL_QUEUE_SIZE 64u /* queue_size_max offered to the driver */
/* Buffers per chain we accept; Linux sends one.  A longer chain is handed
 * back empty by the host (vq_pop -EMSGSIZE), so this bounds the stack. */
#define TPL_MAX_BUFS 16u
#define TPL_TIMER 0u /* host timer id: "serve the queue on the event loop" */

/* One request gets at most this much, so a huge guest buffer cannot make a
 * single chain an unbounded amount of work. */
#define TPL_MAX_PER_REQ 65536u
/* Work per event-loop turn before yielding (re-arming TPL_TIMER), so other
 * devices on the same loop keep running while a guest floods this queue. */
#define TPL_BUDGET_BYTES (1u << 20)
#define TPL_BUDGET_CHAINS 256u

struct vtpl {
    const nimbus_host_api *host;
    void *hctx;

    /* Configuration: set by create, kept across reset. */
    uint64_t seed;

    /* Device state: exactly what state_save records and reset clears. */
    uint64_t pos; /* stream bytes handed out since reset */
    int active;   /* DRIVER_OK seen since the last reset */

    /* The host's view, not device state: counters only count up (ABI
     * minor 3) and warnings stay rate-limited across guest reboots. */
    uint64_t stat_bytes, stat_requests;
    int warned_long_chain;
};

/* Serve available requests for one turn (event-loop thread only). */
void tpl_serve(struct vtpl *t);
/* Have the event loop call tpl_serve soon (via TPL_TIMER).  0 or -errno. */
int tpl_schedule(struct vtpl *t);
/* Stop a pending tpl_schedule. */
void tpl_unschedule(struct vtpl *t);
/* Stream bytes [pos, pos + len) for `seed` into dst. */
void tpl_stream(uint64_t seed, uint64_t pos, uint8_t *dst, uint64_t len);

#endif
