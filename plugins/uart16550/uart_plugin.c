/* uart16550 plugin: options, ABI entry points and the state blob. */
#include <stdlib.h>

#include <nimbus/plugin_util.h>

#include "uart.h"

#define IOAPIC_PINS 24u   /* GSIs a legacy device can be wired to */
#define PORT_SPACE 0x10000u

/*
 * State blob, version 1, little-endian, fixed 40 bytes:
 *   0  u32 magic "U550"     4  u16 version      6  u16 total size
 *   8  ier lcr mcr scr fcr dll dlm lsr_err
 *  16  msr_delta thr_ipending rx_timeout rbr_last rx_count 0 0 0
 *  24  rx_fifo[16], oldest byte first, unused tail zero
 */
#define BLOB_MAGIC 0x30353555u /* "U550" */
#define BLOB_VERSION 1u
#define BLOB_SIZE 40u

static int parse_options(struct uart *u, const char *opts, char *err,
                         uint32_t errlen)
{
    char key[32], val[64];
    size_t pos = 0;
    int r;
    uint64_t v;

    u->iobase = 0x3f8;
    u->gsi = 4;
    while ((r = nimbus_opt_next(opts, &pos, key, sizeof(key), val,
                                sizeof(val))) != 0) {
        if (r < 0) {
            nimbus_errf(err, errlen, "uart16550: malformed option '%s'", key);
            return -EINVAL;
        }
        if (!strcmp(key, "iobase")) {
            if (nimbus_opt_u64(val, PORT_SPACE - UART_NREGS, &v) < 0) {
                nimbus_errf(err, errlen,
                            "uart16550: bad iobase '%s' (port 0..0x%x)", val,
                            PORT_SPACE - UART_NREGS);
                return -EINVAL;
            }
            u->iobase = (uint16_t)v;
        } else if (!strcmp(key, "irq")) {
            if (nimbus_opt_u64(val, IOAPIC_PINS - 1, &v) < 0) {
                nimbus_errf(err, errlen, "uart16550: bad irq '%s' (GSI 0..%u)",
                            val, IOAPIC_PINS - 1);
                return -EINVAL;
            }
            u->gsi = (uint32_t)v;
        } else {
            nimbus_errf(err, errlen,
                        "uart16550: unknown option '%s' (known: iobase, irq)",
                        key);
            return -EINVAL;
        }
    }
    return 0;
}

static int uart_create(const nimbus_host_api *host, void *hctx,
                       const char *options, void **dev, nimbus_region *regions,
                       uint32_t *nregions, char *err, uint32_t errlen)
{
    if (!host || !dev || !regions || !nregions) {
        nimbus_errf(err, errlen, "uart16550: invalid create arguments");
        return -EINVAL;
    }
    if (*nregions < 1) {
        nimbus_errf(err, errlen, "uart16550: host offers no region slot");
        return -ENOSPC;
    }
    struct uart *u = calloc(1, sizeof(*u));
    if (!u) {
        nimbus_errf(err, errlen, "uart16550: out of memory");
        return -ENOMEM;
    }
    u->host = host;
    u->hctx = hctx;
    int r = parse_options(u, options ? options : "", err, errlen);
    if (r < 0) {
        free(u);
        return r;
    }
    uart_reset(u);
    regions[0] = (nimbus_region){.kind = NIMBUS_REGION_PIO, .flags = 0,
                                 .base = u->iobase, .size = UART_NREGS};
    *nregions = 1;
    *dev = u;
    return 0;
}

static void uart_destroy(void *dev)
{
    struct uart *u = dev;
    if (!u)
        return;
    if (u->tx_dropped)
        nimbus_logf(u->host, u->hctx, NIMBUS_LOG_INFO,
                    "uart16550@0x%x: %llu output bytes dropped",
                    (unsigned)u->iobase, (unsigned long long)u->tx_dropped);
    free(u);
}

static void uart_op_reset(void *dev)
{
    uart_reset(dev);
}

/*
 * Wider accesses are split into byte cycles the way the ISA bus splits
 * them for an 8-bit device; bytes past the register block float high.
 */
static int uart_io_read(void *dev, uint32_t region, uint64_t offset,
                        void *data, uint32_t len)
{
    uint8_t *out = data;
    if (region != 0 || offset >= UART_NREGS || !len || len > 8)
        return -EINVAL;
    for (uint32_t i = 0; i < len; i++)
        out[i] = offset + i < UART_NREGS
                     ? uart_read(dev, (uint32_t)(offset + i))
                     : 0xff;
    return 0;
}

static int uart_io_write(void *dev, uint32_t region, uint64_t offset,
                         const void *data, uint32_t len)
{
    const uint8_t *in = data;
    if (region != 0 || offset >= UART_NREGS || !len || len > 8)
        return -EINVAL;
    for (uint32_t i = 0; i < len && offset + i < UART_NREGS; i++)
        uart_write(dev, (uint32_t)(offset + i), in[i]);
    return 0;
}

static void uart_timer_fired(void *dev, uint32_t timer_id)
{
    if (timer_id == UART_TIMEOUT_TIMER)
        uart_timeout_fired(dev);
}

static uint64_t uart_chr_input(void *dev, const void *buf, uint64_t len)
{
    if (!buf)
        return 0;
    return uart_receive(dev, buf, len);
}

static int uart_state_save(void *dev, void *buf, uint64_t cap, uint64_t *len)
{
    const struct uart *u = dev;
    int r = nimbus_state_begin(buf, cap, len, BLOB_MAGIC, BLOB_VERSION, BLOB_SIZE);
    if (r <= 0)
        return r;
    uint8_t *b = buf;
    const uint8_t regs[13] = {u->ier,       u->lcr,          u->mcr,
                              u->scr,       u->fcr,          u->dll,
                              u->dlm,       u->lsr_err,      u->msr_delta,
                              u->thr_ipending, u->rx_timeout, u->rbr_last,
                              u->rx_count};
    memcpy(b + 8, regs, sizeof(regs));
    for (unsigned i = 0; i < u->rx_count; i++)
        b[24 + i] = u->rx_fifo[(u->rx_head + i) % UART_FIFO_SIZE];
    return 0;
}

/* Every field is checked against what the register model can produce. */
static int uart_state_restore(void *dev, const void *buf, uint64_t len)
{
    struct uart *u = dev;
    const uint8_t *b = buf;
    if (!nimbus_state_check(b, len, BLOB_MAGIC, BLOB_VERSION, BLOB_SIZE))
        return -EINVAL;
    struct uart n = *u;
    n.ier = b[8];
    n.lcr = b[9];
    n.mcr = b[10];
    n.scr = b[11];
    n.fcr = b[12];
    n.dll = b[13];
    n.dlm = b[14];
    n.lsr_err = b[15];
    n.msr_delta = b[16];
    n.thr_ipending = b[17];
    n.rx_timeout = b[18];
    n.rbr_last = b[19];
    n.rx_count = b[20];
    if (b[21] | b[22] | b[23])
        return -EINVAL;
    if ((n.ier & 0xf0u) || (n.mcr & ~UART_MCR_MASK) ||
        (n.lsr_err & ~UART_LSR_OE) || (n.msr_delta & ~UART_MSR_DELTAS) ||
        (n.fcr & ~UART_FCR_STORED) ||
        (!(n.fcr & UART_FCR_ENABLE) && n.fcr != 0) || n.thr_ipending > 1 ||
        (n.thr_ipending && !(n.ier & UART_IER_ETBEI)) || n.rx_timeout > 1 ||
        n.rx_count > uart_rx_capacity(&n) ||
        (n.rx_timeout && (!(n.fcr & UART_FCR_ENABLE) || n.rx_count == 0)))
        return -EINVAL;
    for (unsigned i = n.rx_count; i < UART_FIFO_SIZE; i++)
        if (b[24 + i])
            return -EINVAL;
    memcpy(n.rx_fifo, b + 24, UART_FIFO_SIZE);
    n.rx_head = 0;
    *u = n;
    uart_update_irq(u, 1);
    uart_resume_timers(u);
    /* Whatever the old backend was told, the new one may have input. */
    u->input_blocked = 1;
    uart_kick_input(u);
    return 0;
}

/* A UART loaded with --device (COM2 at 0x2f8, say) is found by the guest's
 * PNP serial driver through this node, as COM1 is through the core's. */
static int uart_acpi_node(void *dev, nimbus_acpi_node *node)
{
    struct uart *u = dev;
    node->hid = "PNP0501";
    node->irq = u->gsi;
    return 0;
}

static const nimbus_device_ops uart_ops = {
    .struct_size = sizeof(nimbus_device_ops),
    .create = uart_create,
    .destroy = uart_destroy,
    .reset = uart_op_reset,
    .io_read = uart_io_read,
    .io_write = uart_io_write,
    .timer_fired = uart_timer_fired,
    .chr_input = uart_chr_input,
    .state_save = uart_state_save,
    .state_restore = uart_state_restore,
    .acpi_node = uart_acpi_node,
};

NIMBUS_PLUGIN_DECLARE("uart16550", "1.0",
                      "16550A UART (PC serial port) with 16-byte FIFOs",
                      "iobase=<port>,irq=<gsi>", &uart_ops);
