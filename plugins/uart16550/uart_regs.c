/* 16550A register semantics: FIFOs, interrupt identification, modem lines. */
#include "uart.h"

#include <string.h>

#include <nimbus/plugin_util.h>

/* Divisor clock of a PC serial port: 1.8432 MHz, 16 samples per bit. */
#define UART_CLOCK_HZ 1843200ull
#define NS_PER_SEC 1000000000ull

/* Power-on divisor: 12 gives 9600 baud, what PC firmware leaves behind. */
#define UART_RESET_DIVISOR 12u

static int fifo_on(const struct uart *u)
{
    return (u->fcr & UART_FCR_ENABLE) != 0;
}

unsigned uart_rx_capacity(const struct uart *u)
{
    return fifo_on(u) ? UART_FIFO_SIZE : 1u;
}

static unsigned rx_trigger(const struct uart *u)
{
    static const unsigned levels[4] = {1, 4, 8, 14};
    return levels[(u->fcr & UART_FCR_TRIGGER) >> 6];
}

/*
 * Modem status inputs.  Outside loopback the port looks like a cable to a
 * ready terminal (CTS, DSR, DCD asserted) so getty and flow control work;
 * in loopback they are the MCR outputs wired back as the datasheet says.
 */
static uint8_t msr_lines(const struct uart *u)
{
    uint8_t m = u->mcr;
    if (!(m & UART_MCR_LOOP))
        return UART_MSR_CTS | UART_MSR_DSR | UART_MSR_DCD;
    uint8_t l = 0;
    if (m & UART_MCR_RTS)
        l |= UART_MSR_CTS;
    if (m & UART_MCR_DTR)
        l |= UART_MSR_DSR;
    if (m & UART_MCR_OUT1)
        l |= UART_MSR_RI;
    if (m & UART_MCR_OUT2)
        l |= UART_MSR_DCD;
    return l;
}

/* Latch delta bits for a change of the modem inputs from `old` to `now`. */
static void msr_note_change(struct uart *u, uint8_t old, uint8_t now)
{
    uint8_t ch = (uint8_t)(old ^ now);
    if (ch & UART_MSR_CTS)
        u->msr_delta |= UART_MSR_DCTS;
    if (ch & UART_MSR_DSR)
        u->msr_delta |= UART_MSR_DDSR;
    if ((old & UART_MSR_RI) && !(now & UART_MSR_RI)) /* trailing edge only */
        u->msr_delta |= UART_MSR_TERI;
    if (ch & UART_MSR_DCD)
        u->msr_delta |= UART_MSR_DDCD;
}

/* Interrupt identification in 16550 priority order (IIR bits 0-3). */
static uint8_t iir_id(const struct uart *u)
{
    if ((u->ier & UART_IER_ELSI) && u->lsr_err)
        return UART_IIR_RLSI;
    if ((u->ier & UART_IER_ERBFI) && u->rx_count) {
        if (!fifo_on(u) || u->rx_count >= rx_trigger(u))
            return UART_IIR_RDI;
        if (u->rx_timeout)
            return UART_IIR_CTI;
    }
    if ((u->ier & UART_IER_ETBEI) && u->thr_ipending)
        return UART_IIR_THRI;
    if ((u->ier & UART_IER_EDSSI) && u->msr_delta)
        return UART_IIR_MSI;
    return UART_IIR_NONE;
}

/* Enabled interrupt sources that are pending, one bit per IIR cause. */
static uint8_t pending_sources(const struct uart *u)
{
    uint8_t s = 0;
    if ((u->ier & UART_IER_ELSI) && u->lsr_err)
        s |= 1;
    if ((u->ier & UART_IER_ERBFI) && u->rx_count &&
        (!fifo_on(u) || u->rx_count >= rx_trigger(u) || u->rx_timeout))
        s |= 2;
    if ((u->ier & UART_IER_ETBEI) && u->thr_ipending)
        s |= 4;
    if ((u->ier & UART_IER_EDSSI) && u->msr_delta)
        s |= 8;
    return s;
}

/*
 * On PCs the UART's interrupt output reaches the PIC/IOAPIC only through a
 * buffer enabled by OUT2; in loopback mode the OUT2 pin is forced inactive,
 * so interrupts are visible in IIR but never on the line.
 *
 * ISA interrupts are edge-triggered.  Our transmitter is infinitely fast,
 * so a THR write clears and re-asserts THRE inside one access, and input can
 * arrive while another cause holds the line high: either way a real chip
 * would have produced a fresh rising edge, ours would not, and the guest
 * would wait forever for an interrupt it never gets.  So when a cause
 * becomes pending while the line is already high, the line is pulsed.
 */
void uart_update_irq(struct uart *u, int force)
{
    uint8_t sources = pending_sources(u);
    uint32_t level = sources != 0 &&
                     (u->mcr & (UART_MCR_OUT2 | UART_MCR_LOOP)) == UART_MCR_OUT2;
    int fresh = (sources & ~u->irq_sources) != 0;
    u->irq_sources = sources;
    if (level && u->irq_out && fresh && !force) {
        if (u->host->irq_set_level) {
            u->host->irq_set_level(u->hctx, u->gsi, 0);
            u->host->irq_set_level(u->hctx, u->gsi, 1);
        }
        return;
    }
    if (level == u->irq_out && !force)
        return;
    u->irq_out = level;
    if (u->host->irq_set_level)
        u->host->irq_set_level(u->hctx, u->gsi, level);
}

/* Four character times at the programmed baud rate and frame format. */
static uint64_t char_timeout_ns(const struct uart *u)
{
    uint64_t div = (uint64_t)u->dll | ((uint64_t)u->dlm << 8);
    if (div == 0)
        div = 65536; /* the 16-bit divisor counter wraps: 0 divides by 2^16 */
    uint64_t bits = 1 + 5 + (u->lcr & 3u) + ((u->lcr & 0x08u) ? 1 : 0) +
                    ((u->lcr & 0x04u) ? 2 : 1);
    /* At most 4 * 12 * 65536 * 16 * 1e9, well inside 64 bits. */
    return 4 * bits * div * 16 * NS_PER_SEC / UART_CLOCK_HZ;
}

static void timer_arm(struct uart *u, uint64_t deadline)
{
    if (u->host->timer_arm)
        u->host->timer_arm(u->hctx, UART_TIMEOUT_TIMER, deadline);
}

/*
 * The timeout counter restarts whenever a character enters or leaves the
 * FIFO and runs only while the FIFO holds data in FIFO mode.
 */
static void restart_timeout(struct uart *u)
{
    u->rx_timeout = 0;
    if (!fifo_on(u) || u->rx_count == 0) {
        timer_arm(u, 0);
        return;
    }
    uint64_t now = u->host->clock_ns ? u->host->clock_ns(u->hctx) : 0;
    uint64_t d = now + char_timeout_ns(u);
    timer_arm(u, d ? d : 1); /* 0 would mean "cancel" */
}

void uart_resume_timers(struct uart *u)
{
    if (fifo_on(u) && u->rx_count && !u->rx_timeout)
        restart_timeout(u);
    else
        timer_arm(u, 0);
}

void uart_timeout_fired(struct uart *u)
{
    if (fifo_on(u) && u->rx_count)
        u->rx_timeout = 1;
    uart_update_irq(u, 0);
}

static void rx_clear(struct uart *u)
{
    u->rx_count = 0;
    u->rx_head = 0;
    memset(u->rx_fifo, 0, sizeof(u->rx_fifo));
    u->rx_timeout = 0;
    timer_arm(u, 0);
}

/* One character arriving at the receiver: FIFO, or overrun if full. */
static void rx_push(struct uart *u, uint8_t c)
{
    if (u->rx_count >= uart_rx_capacity(u)) {
        /* The shift register is overwritten; the FIFO keeps its contents. */
        u->lsr_err |= UART_LSR_OE;
        return;
    }
    u->rx_fifo[(u->rx_head + u->rx_count) % UART_FIFO_SIZE] = c;
    u->rx_count++;
}

void uart_kick_input(struct uart *u)
{
    if (!u->input_blocked || (u->mcr & UART_MCR_LOOP) ||
        u->rx_count >= uart_rx_capacity(u))
        return;
    u->input_blocked = 0;
    if (u->host->chr_input_ready)
        u->host->chr_input_ready(u->hctx);
}

uint64_t uart_receive(struct uart *u, const uint8_t *buf, uint64_t len)
{
    if (u->mcr & UART_MCR_LOOP) {
        /* The serial input pin is disconnected in loopback mode. */
        if (len)
            u->input_blocked = 1;
        return 0;
    }
    uint64_t room = uart_rx_capacity(u) - u->rx_count;
    uint64_t n = len < room ? len : room;
    for (uint64_t i = 0; i < n; i++)
        rx_push(u, buf[i]);
    if (n < len)
        u->input_blocked = 1;
    if (n)
        restart_timeout(u);
    uart_update_irq(u, 0);
    return n;
}

/* A byte written to THR leaves at once: onto the wire or back to RX. */
static void transmit(struct uart *u, uint8_t c)
{
    u->thr_ipending = 0;
    /* The written byte consumed THRE: its re-assertion below is a new cause. */
    u->irq_sources &= (uint8_t)~4u;
    if (u->mcr & UART_MCR_LOOP) {
        rx_push(u, c);
        restart_timeout(u);
    } else {
        int64_t r = u->host->chr_write ? u->host->chr_write(u->hctx, &c, 1) : -1;
        if (r != 1 && u->tx_dropped++ == 0) {
            /* No backend or a full one: the byte is lost, as on a real
             * line with nobody listening.  Counted; logged once. */
            nimbus_logf(u->host, u->hctx, NIMBUS_LOG_WARN,
                        "uart16550@0x%x: backend not accepting output, "
                        "dropping bytes", (unsigned)u->iobase);
        }
    }
    /* THR (and the shift register) are empty again immediately. */
    if (u->ier & UART_IER_ETBEI)
        u->thr_ipending = 1;
}

static uint8_t read_rbr(struct uart *u)
{
    if (u->rx_count == 0)
        return u->rbr_last;
    uint8_t c = u->rx_fifo[u->rx_head];
    u->rx_fifo[u->rx_head] = 0; /* keep the blob canonical */
    u->rx_head = (uint8_t)((u->rx_head + 1) % UART_FIFO_SIZE);
    u->rx_count--;
    u->rbr_last = c;
    if (u->rx_count == 0)
        u->rx_head = 0;
    restart_timeout(u);
    return c;
}

uint8_t uart_read(struct uart *u, uint32_t reg)
{
    uint8_t v = 0xff;
    int dlab = (u->lcr & UART_LCR_DLAB) != 0;

    switch (reg) {
    case UART_RBR:
        v = dlab ? u->dll : read_rbr(u);
        break;
    case UART_IER:
        v = dlab ? u->dlm : u->ier;
        break;
    case UART_IIR: {
        uint8_t id = iir_id(u);
        v = (uint8_t)(id | (fifo_on(u) ? UART_IIR_FIFO : 0));
        /* Reading IIR acknowledges a THRE interrupt it reports. */
        if (id == UART_IIR_THRI)
            u->thr_ipending = 0;
        break;
    }
    case UART_LCR:
        v = u->lcr;
        break;
    case UART_MCR:
        v = u->mcr;
        break;
    case UART_LSR:
        v = (uint8_t)((u->rx_count ? UART_LSR_DR : 0) | u->lsr_err |
                      UART_LSR_THRE | UART_LSR_TEMT);
        u->lsr_err = 0;
        break;
    case UART_MSR:
        v = (uint8_t)(msr_lines(u) | u->msr_delta);
        u->msr_delta = 0;
        break;
    case UART_SCR:
        v = u->scr;
        break;
    default:
        return 0xff;
    }
    uart_update_irq(u, 0);
    if (reg == UART_RBR && !dlab)
        uart_kick_input(u);
    return v;
}

static void write_fcr(struct uart *u, uint8_t val)
{
    /* Toggling the enable bit empties both FIFOs. */
    if ((val ^ u->fcr) & UART_FCR_ENABLE)
        rx_clear(u);
    if (!(val & UART_FCR_ENABLE)) {
        /* The other bits are only programmed while FCR0 is written as 1. */
        u->fcr = 0;
        return;
    }
    if (val & UART_FCR_CLEAR_RX)
        rx_clear(u);
    /* UART_FCR_CLEAR_TX: the TX FIFO is always empty, nothing to do. */
    u->fcr = (uint8_t)(val & UART_FCR_STORED);
    if (u->rx_count)
        restart_timeout(u);
}

static void write_ier(struct uart *u, uint8_t val)
{
    uint8_t old = u->ier;
    u->ier = (uint8_t)(val & 0x0fu);
    /* Enabling ETBEI while THR is empty (always) raises THRE at once. */
    if ((u->ier & UART_IER_ETBEI) && !(old & UART_IER_ETBEI))
        u->thr_ipending = 1;
    else if (!(u->ier & UART_IER_ETBEI))
        u->thr_ipending = 0;
}

static void write_mcr(struct uart *u, uint8_t val)
{
    uint8_t old_lines = msr_lines(u);
    u->mcr = (uint8_t)(val & UART_MCR_MASK);
    msr_note_change(u, old_lines, msr_lines(u));
}

void uart_write(struct uart *u, uint32_t reg, uint8_t val)
{
    int dlab = (u->lcr & UART_LCR_DLAB) != 0;

    switch (reg) {
    case UART_THR:
        if (dlab)
            u->dll = val;
        else
            transmit(u, val);
        break;
    case UART_IER:
        if (dlab)
            u->dlm = val;
        else
            write_ier(u, val);
        break;
    case UART_FCR:
        write_fcr(u, val);
        break;
    case UART_LCR:
        u->lcr = val;
        break;
    case UART_MCR:
        write_mcr(u, val);
        break;
    case UART_SCR:
        u->scr = val;
        break;
    default:
        /* LSR and MSR are read-only (factory test writes are ignored). */
        return;
    }
    uart_update_irq(u, 0);
    /* Leaving loopback or clearing the FIFO makes room for input. */
    uart_kick_input(u);
}

void uart_reset(struct uart *u)
{
    u->ier = 0;
    u->lcr = 0;
    u->mcr = 0;
    u->scr = 0;
    u->fcr = 0;
    u->dll = (uint8_t)(UART_RESET_DIVISOR & 0xffu);
    u->dlm = (uint8_t)(UART_RESET_DIVISOR >> 8);
    u->lsr_err = 0;
    u->msr_delta = 0;
    u->thr_ipending = 0;
    u->rbr_last = 0;
    rx_clear(u);
    u->irq_out = 0;
    u->irq_sources = 0;
    uart_update_irq(u, 1);
    uart_kick_input(u);
}
