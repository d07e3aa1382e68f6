/*
 * 16550A UART register model (no ABI glue: see uart_plugin.c).
 *
 * The wire is treated as infinitely fast: a byte written to THR leaves
 * through the host character backend at once, so THR and the TX FIFO are
 * always empty again by the time the guest can look.  The RX side is a real
 * 16-byte FIFO fed by the backend (or by the transmitter in loopback mode).
 */
#ifndef NIMBUS_UART16550_UART_H
#define NIMBUS_UART16550_UART_H

#include <stdint.h>

#include <nimbus/plugin_abi.h>

#define UART_FIFO_SIZE 16u
#define UART_NREGS 8u
#define UART_TIMEOUT_TIMER 0u /* host timer id for the RX char timeout */

/* Register offsets. */
#define UART_RBR 0u /* read, DLAB=0 */
#define UART_THR 0u /* write, DLAB=0 */
#define UART_DLL 0u /* DLAB=1 */
#define UART_IER 1u /* DLAB=0 */
#define UART_DLM 1u /* DLAB=1 */
#define UART_IIR 2u /* read */
#define UART_FCR 2u /* write */
#define UART_LCR 3u
#define UART_MCR 4u
#define UART_LSR 5u
#define UART_MSR 6u
#define UART_SCR 7u

#define UART_IER_ERBFI 0x01u /* received data available */
#define UART_IER_ETBEI 0x02u /* THR empty */
#define UART_IER_ELSI 0x04u  /* receiver line status */
#define UART_IER_EDSSI 0x08u /* modem status */

#define UART_IIR_NONE 0x01u
#define UART_IIR_MSI 0x00u
#define UART_IIR_THRI 0x02u
#define UART_IIR_RDI 0x04u
#define UART_IIR_RLSI 0x06u
#define UART_IIR_CTI 0x0cu
#define UART_IIR_FIFO 0xc0u

#define UART_FCR_ENABLE 0x01u
#define UART_FCR_CLEAR_RX 0x02u
#define UART_FCR_CLEAR_TX 0x04u
#define UART_FCR_DMA 0x08u
#define UART_FCR_TRIGGER 0xc0u
/* Bits that stick in the FCR shadow; 4-5 are reserved on a 16550A. */
#define UART_FCR_STORED (UART_FCR_ENABLE | UART_FCR_DMA | UART_FCR_TRIGGER)

#define UART_LCR_DLAB 0x80u

#define UART_MCR_DTR 0x01u
#define UART_MCR_RTS 0x02u
#define UART_MCR_OUT1 0x04u
#define UART_MCR_OUT2 0x08u
#define UART_MCR_LOOP 0x10u
#define UART_MCR_MASK 0x1fu

#define UART_LSR_DR 0x01u
#define UART_LSR_OE 0x02u
#define UART_LSR_THRE 0x20u
#define UART_LSR_TEMT 0x40u

#define UART_MSR_DCTS 0x01u
#define UART_MSR_DDSR 0x02u
#define UART_MSR_TERI 0x04u
#define UART_MSR_DDCD 0x08u
#define UART_MSR_DELTAS 0x0fu
#define UART_MSR_CTS 0x10u
#define UART_MSR_DSR 0x20u
#define UART_MSR_RI 0x40u
#define UART_MSR_DCD 0x80u

struct uart {
    /* Binding and configuration: survive reset, not part of the state. */
    const nimbus_host_api *host;
    void *hctx;
    uint16_t iobase;
    uint32_t gsi;
    uint32_t irq_out;       /* level last driven on the GSI */
    uint8_t irq_sources;    /* enabled sources pending at the last update */
    int input_blocked;      /* chr_input turned bytes away; owe a ready call */
    uint64_t tx_dropped;    /* bytes the backend did not accept */

    /* Guest-visible state: exactly what the state blob carries. */
    uint8_t ier, lcr, mcr, scr, fcr, dll, dlm;
    uint8_t lsr_err;        /* sticky LSR error bits (only OE is modelled) */
    uint8_t msr_delta;      /* MSR bits 0-3 */
    uint8_t thr_ipending;   /* THRE interrupt latched, not yet acknowledged */
    uint8_t rx_timeout;     /* character timeout indication */
    uint8_t rbr_last;       /* what an empty RBR reads as */
    uint8_t rx_count, rx_head;
    uint8_t rx_fifo[UART_FIFO_SIZE];
};

/* Power-on state; drives the IRQ low and cancels the timeout timer. */
void uart_reset(struct uart *u);
uint8_t uart_read(struct uart *u, uint32_t reg);
void uart_write(struct uart *u, uint32_t reg, uint8_t val);
/* Bytes from the backend: returns how many fit (never overruns). */
uint64_t uart_receive(struct uart *u, const uint8_t *buf, uint64_t len);
void uart_timeout_fired(struct uart *u);
/* Recompute and drive the IRQ; `force` drives even an unchanged level. */
void uart_update_irq(struct uart *u, int force);
/* Re-arm the timeout timer if the current state needs it (after restore). */
void uart_resume_timers(struct uart *u);
/* Capacity of the receive buffer in the current FIFO mode. */
unsigned uart_rx_capacity(const struct uart *u);
/* Owed chr_input_ready, if the receiver has room and input is possible. */
void uart_kick_input(struct uart *u);

#endif
