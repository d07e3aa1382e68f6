/*
 * virtio-console (virtio 1.2, 5.3), single port, no MULTIPORT: the data path
 * (vcon_queues.c) and the ABI glue (vcon_plugin.c) share this state.
 *
 * Bytes move both ways unchanged; everything a terminal does (echo, line
 * editing, signals) is the guest's tty layer.  Guest output is never dropped
 * while a backend exists: a chain the backend could not take in full is kept
 * with its offset and retried from a timer.
 */
#ifndef NIMBUS_VIRTIO_CONSOLE_VCON_H
#define NIMBUS_VIRTIO_CONSOLE_VCON_H

#include <stdint.h>

#include <nimbus/plugin_abi.h>

#define VCON_QUEUE_RX 0u /* receiveq: host -> guest */
#define VCON_QUEUE_TX 1u /* transmitq: guest -> host */
#define VCON_NUM_QUEUES 2u
#define VCON_QUEUE_SIZE 256u
/* Buffers per chain we take; Linux uses one, longer chains are returned
 * unprocessed by the host (vq_pop -EMSGSIZE). */
#define VCON_MAX_BUFS 64u
#define VCON_TX_TIMER 0u /* host timer id: transmit retry / continuation */

struct vcon {
    const nimbus_host_api *host;
    void *hctx;

    int active;        /* DRIVER_OK seen since the last reset */
    uint64_t features; /* negotiated */

    /* The transmit chain being written out.  Its buffers stay valid until
     * it is pushed or the device is reset (ABI, nimbus_vq_buf). */
    int tx_busy;
    uint32_t tx_head, tx_nbufs;
    uint32_t tx_idx;   /* current buffer in tx_bufs */
    uint64_t tx_off;   /* bytes of it already written */
    nimbus_vq_buf tx_bufs[VCON_MAX_BUFS];
    int tx_waiting;    /* the retry timer is armed for a full backend */
    uint64_t tx_backoff_ns;

    /* chr_input turned bytes away: call chr_input_ready once there may be
     * room.  Deliberately kept across reset, because the backend keeps the
     * bytes and waits for that call whatever the driver does meanwhile. */
    int input_blocked;

    uint64_t tx_discarded; /* guest output lost because there was no backend */
    int warned_long_chain;
};

/* Move as much guest output to the backend as it takes now. */
void vcon_tx_run(struct vcon *v);
/* Have the event loop run vcon_tx_run soon (the transmit timer). */
void vcon_tx_schedule(struct vcon *v);
/* Backend input into receive buffers; returns the bytes taken. */
uint64_t vcon_rx_input(struct vcon *v, const uint8_t *buf, uint64_t len);
/* The driver added receive buffers. */
void vcon_rx_refilled(struct vcon *v);
/* Drop everything in flight and cancel the timer (device reset). */
void vcon_queues_reset(struct vcon *v);

#endif
