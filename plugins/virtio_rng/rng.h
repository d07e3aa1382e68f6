/*
 * virtio-rng (virtio 1.2, 5.4): one requestq whose device-writable buffers
 * are filled from a host entropy source read with non-blocking reads.
 * rng_queue.c is the data path, rng_plugin.c the options and ABI glue.
 */
#ifndef NIMBUS_VIRTIO_RNG_RNG_H
#define NIMBUS_VIRTIO_RNG_RNG_H

#include <stdint.h>

#include <nimbus/plugin_abi.h>

#define RNG_QUEUE 0u
#define RNG_QUEUE_SIZE 64u
#define RNG_MAX_BUFS 16u /* buffers per chain; Linux sends one */
#define RNG_TIMER 0u     /* host timer id: continue after a yield or poll */
#define RNG_SRC_MAX 4096u

struct vrng {
    const nimbus_host_api *host;
    void *hctx;
    int fd;                 /* the source, O_NONBLOCK */
    char src[RNG_SRC_MAX];  /* its path, for messages */

    int active; /* DRIVER_OK seen since the last reset */

    /* A request waiting for the source to become readable. */
    int busy;
    uint32_t head, nbufs;
    uint64_t want, filled; /* bytes to give (capped) and given so far */
    nimbus_vq_buf bufs[RNG_MAX_BUFS];

    int watching; /* fd_watch armed on fd */
    int waiting;  /* a watch or the timer will resume processing */

    int warned_eof, warned_err, warned_long_chain;
};

/* Serve requests until the queue is empty or the source would block. */
void rng_run(struct vrng *r);
/* Have the event loop call rng_run soon (through the timer). */
void rng_schedule(struct vrng *r);
/* The source became readable (or failed): resume. */
void rng_source_ready(struct vrng *r);
/* The timer fired: resume. */
void rng_timer(struct vrng *r);
/* Drop the request in flight, stop watching, cancel the timer. */
void rng_queue_reset(struct vrng *r);

#endif
