/* uart16550 plugin, loaded with dlopen and driven through the fake host. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_host.h"
#include "test_plugin_load.h"

#define GSI 4u

/* Register offsets from the 16550 datasheet (independent of the plugin). */
enum { RBR = 0, THR = 0, DLL = 0, IER = 1, DLM = 1, IIR = 2, FCR = 2, LCR = 3,
       MCR = 4, LSR = 5, MSR = 6, SCR = 7 };

struct fx {
    struct fake_host h;
    const nimbus_plugin *p;
    void *dev;
};

static int create_dev(struct fx *f, const char *opts, char *err, size_t errlen)
{
    nimbus_region regs[NIMBUS_MAX_REGIONS];
    uint32_t n = NIMBUS_MAX_REGIONS;
    int r = fake_host_create(&f->h, f->p, opts, &f->dev, regs, &n, err, errlen);
    if (r == 0) {
        assert_int_equal(n, 1);
        assert_int_equal(regs[0].kind, NIMBUS_REGION_PIO);
        assert_int_equal(regs[0].size, 8);
    }
    return r;
}

static struct fx *fx_new(void)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(fake_host_init(&f->h, 0), 0);
    f->h.abort_on_violation = 1;
    f->p = test_load_plugin("uart16550.so");
    char err[256] = "";
    assert_int_equal(create_dev(f, "", err, sizeof(err)), 0);
    return f;
}

static void fx_free(struct fx *f)
{
    if (f->dev)
        f->p->ops->destroy(f->dev);
    assert_int_equal(fake_host_violation_count(&f->h), 0);
    fake_host_fini(&f->h);
    free(f);
}

static int setup(void **state)
{
    *state = fx_new();
    return 0;
}

static int teardown(void **state)
{
    fx_free(*state);
    return 0;
}

static uint8_t in8(struct fx *f, unsigned reg)
{
    uint8_t v = 0;
    assert_int_equal(f->p->ops->io_read(f->dev, 0, reg, &v, 1), 0);
    return v;
}

static void out8(struct fx *f, unsigned reg, uint8_t v)
{
    assert_int_equal(f->p->ops->io_write(f->dev, 0, reg, &v, 1), 0);
}

static uint64_t input(struct fx *f, const char *s, size_t n)
{
    return f->p->ops->chr_input(f->dev, s, n);
}

static size_t save(struct fx *f, void *dev, uint8_t *buf, size_t cap)
{
    uint64_t len = 0;
    assert_int_equal(f->p->ops->state_save(dev, NULL, 0, &len), 0);
    assert_true(len > 0 && len <= cap);
    assert_int_equal(f->p->ops->state_save(dev, buf, cap, &len), 0);
    return (size_t)len;
}

/* ---- plain registers ---- */

static void test_scratch_register(void **state)
{
    struct fx *f = *state;
    for (unsigned v = 0; v < 256; v += 0x55) {
        out8(f, SCR, (uint8_t)v);
        assert_int_equal(in8(f, SCR), v);
    }
}

static void test_divisor_latch(void **state)
{
    struct fx *f = *state;
    out8(f, IER, 0x05);
    out8(f, LCR, 0x83); /* DLAB + 8N1 */
    out8(f, DLL, 0x01);
    out8(f, DLM, 0x02);
    assert_int_equal(in8(f, DLL), 0x01);
    assert_int_equal(in8(f, DLM), 0x02);
    assert_int_equal(in8(f, LCR), 0x83);
    out8(f, LCR, 0x03);
    /* With DLAB clear the same offsets are IER and RBR again. */
    assert_int_equal(in8(f, IER), 0x05);
    assert_int_equal(f->h.chr_out_len, 0);
    out8(f, LCR, 0x80);
    assert_int_equal(in8(f, DLL), 0x01);
    assert_int_equal(in8(f, DLM), 0x02);
}

static void test_lcr_and_ier_masks(void **state)
{
    struct fx *f = *state;
    out8(f, LCR, 0x5b);
    assert_int_equal(in8(f, LCR), 0x5b);
    /* IER bits 4-7 do not exist on a 16550A (Linux's XScale probe). */
    out8(f, IER, 0xff);
    assert_int_equal(in8(f, IER), 0x0f);
    out8(f, IER, 0x00);
    assert_int_equal(in8(f, IER), 0x00);
}

static void test_power_on_values(void **state)
{
    struct fx *f = *state;
    assert_int_equal(in8(f, IER), 0);
    assert_int_equal(in8(f, IIR), 0x01);
    assert_int_equal(in8(f, LCR), 0);
    assert_int_equal(in8(f, MCR), 0);
    assert_int_equal(in8(f, LSR), 0x60);
    assert_int_equal(in8(f, MSR) & 0xf0, 0xb0);
    assert_int_equal(f->h.irq_level[GSI], 0);
}

static void test_transmit_goes_to_backend(void **state)
{
    struct fx *f = *state;
    const char *msg = "hello\n";
    for (const char *s = msg; *s; s++)
        out8(f, THR, (uint8_t)*s);
    assert_int_equal(f->h.chr_out_len, strlen(msg));
    assert_memory_equal(f->h.chr_out, msg, strlen(msg));
    assert_int_equal(in8(f, LSR) & 0x60, 0x60);
}

static void test_transmit_without_backend_drops(void **state)
{
    struct fx *f = *state;
    f->h.chr_absent = 1;
    out8(f, THR, 'x');
    out8(f, THR, 'y');
    assert_int_equal(f->h.chr_out_len, 0);
    assert_int_equal(f->h.log_lines, 1); /* warned once, not per byte */
    assert_int_equal(in8(f, LSR) & 0x60, 0x60);
}

/* ---- FIFOs ---- */

static void test_fifo_detection(void **state)
{
    struct fx *f = *state;
    out8(f, FCR, 0x01);
    assert_int_equal(in8(f, IIR) >> 6, 3); /* 16550A */
    /* Bit 5 (64-byte FIFO on a 16750) must not stick. */
    out8(f, FCR, 0x21);
    assert_int_equal(in8(f, IIR) & 0xe0, 0xc0);
    out8(f, FCR, 0x00);
    assert_int_equal(in8(f, IIR) >> 6, 0);
}

static void test_fifo_fill_and_overrun(void **state)
{
    struct fx *f = *state;
    out8(f, FCR, 0x07);
    out8(f, MCR, 0x10); /* loopback */
    for (unsigned i = 0; i < 17; i++)
        out8(f, THR, (uint8_t)('a' + i));
    assert_int_equal(f->h.chr_out_len, 0); /* looped, not sent */
    uint8_t lsr = in8(f, LSR);
    assert_int_equal(lsr & 0x03, 0x03); /* DR + OE */
    assert_int_equal(in8(f, LSR) & 0x02, 0); /* OE clears on read */
    for (unsigned i = 0; i < 16; i++)
        assert_int_equal(in8(f, RBR), 'a' + i); /* the 17th was lost */
    assert_int_equal(in8(f, LSR) & 0x01, 0);
    assert_int_equal(in8(f, RBR), 'a' + 15); /* empty RBR: last byte */
}

static void test_fifo_clear(void **state)
{
    struct fx *f = *state;
    out8(f, FCR, 0x01);
    assert_int_equal(input(f, "abc", 3), 3);
    out8(f, FCR, 0x03); /* clear RX */
    assert_int_equal(in8(f, LSR) & 0x01, 0);
    assert_int_equal(input(f, "de", 2), 2);
    out8(f, FCR, 0x00); /* disabling the FIFO empties it too */
    assert_int_equal(in8(f, LSR) & 0x01, 0);
}

static void test_input_capacity(void **state)
{
    struct fx *f = *state;
    char buf[20];
    memset(buf, 'z', sizeof(buf));
    /* Without FIFO the receiver holds one character. */
    assert_int_equal(input(f, buf, sizeof(buf)), 1);
    assert_int_equal(input(f, buf, sizeof(buf)), 0);
    assert_int_equal(in8(f, RBR), 'z');
    assert_int_equal(f->h.chr_input_ready_calls, 1);
    out8(f, FCR, 0x01);
    assert_int_equal(input(f, buf, sizeof(buf)), 16);
    uint64_t ready = f->h.chr_input_ready_calls;
    assert_int_equal(in8(f, LSR) & 0x02, 0); /* host input never overruns */
    for (unsigned i = 0; i < 16; i++)
        in8(f, RBR);
    assert_int_equal(f->h.chr_input_ready_calls, ready + 1);
    /* No ready call when nothing was turned away. */
    assert_int_equal(input(f, buf, 3), 3);
    for (unsigned i = 0; i < 3; i++)
        in8(f, RBR);
    assert_int_equal(f->h.chr_input_ready_calls, ready + 1);
}

/* ---- interrupts ---- */

static void test_thre_interrupt(void **state)
{
    struct fx *f = *state;
    out8(f, MCR, 0x08); /* OUT2 */
    assert_int_equal(f->h.irq_level[GSI], 0);
    out8(f, IER, 0x02); /* enabling ETBEI with THR empty raises THRE */
    assert_int_equal(f->h.irq_level[GSI], 1);
    assert_int_equal(in8(f, IIR), 0x02);
    /* Reading IIR acknowledged it. */
    assert_int_equal(f->h.irq_level[GSI], 0);
    assert_int_equal(in8(f, IIR), 0x01);
    uint64_t edges = f->h.irq_edges[GSI];
    out8(f, THR, 'x'); /* THR empties again at once: new THRE */
    assert_int_equal(f->h.irq_edges[GSI], edges + 1);
    assert_int_equal(f->h.irq_level[GSI], 1);
    /*
     * The guest did not acknowledge that THRE and writes again: the line is
     * already high, so only a pulse gives an edge-triggered pin a new edge
     * (without it the guest's driver waits forever).
     */
    edges = f->h.irq_edges[GSI];
    out8(f, THR, 'z');
    assert_int_equal(f->h.irq_edges[GSI], edges + 1);
    assert_int_equal(f->h.irq_level[GSI], 1);
    /* Disabling ETBEI drops it; writing THR then raises nothing. */
    out8(f, IER, 0x00);
    assert_int_equal(f->h.irq_level[GSI], 0);
    out8(f, THR, 'y');
    assert_int_equal(f->h.irq_level[GSI], 0);
    assert_int_equal(in8(f, IIR), 0x01);
    /* Re-enabling raises again (Linux's UART_BUG_THRE probe). */
    out8(f, IER, 0x02);
    assert_int_equal(in8(f, IIR), 0x02);
    out8(f, IER, 0x00);
    out8(f, IER, 0x02);
    assert_int_equal(in8(f, IIR), 0x02);
}

static void test_iir_priorities(void **state)
{
    struct fx *f = *state;
    out8(f, FCR, 0x01); /* trigger level 1 */
    out8(f, IER, 0x0f);
    /* Loopback with only RTS: DSR and DCD fall (CTS stays up). */
    out8(f, MCR, 0x10 | 0x02);
    for (unsigned i = 0; i < 17; i++)
        out8(f, THR, (uint8_t)i); /* overrun */
    assert_int_equal(in8(f, IIR), 0xc6); /* line status first */
    in8(f, LSR);
    assert_int_equal(in8(f, IIR), 0xc4); /* then received data */
    for (unsigned i = 0; i < 16; i++)
        in8(f, RBR);
    assert_int_equal(in8(f, IIR), 0xc2); /* then THRE (acked by this read) */
    assert_int_equal(in8(f, IIR), 0xc0); /* then modem status */
    assert_int_equal(in8(f, MSR), 0x10 | 0x02 | 0x08); /* CTS, DDSR, DDCD */
    assert_int_equal(in8(f, IIR), 0xc1);
}

static void test_rx_interrupt_and_trigger_levels(void **state)
{
    struct fx *f = *state;
    out8(f, MCR, 0x0b); /* DTR RTS OUT2 */
    out8(f, IER, 0x01);
    /* No FIFO: every character interrupts. */
    assert_int_equal(input(f, "a", 1), 1);
    assert_int_equal(f->h.irq_level[GSI], 1);
    assert_int_equal(in8(f, IIR), 0x04);
    assert_int_equal(in8(f, RBR), 'a');
    assert_int_equal(f->h.irq_level[GSI], 0);

    static const struct { uint8_t fcr; unsigned level; } t[] = {
        {0x01, 1}, {0x41, 4}, {0x81, 8}, {0xc1, 14}};
    for (unsigned k = 0; k < 4; k++) {
        out8(f, FCR, (uint8_t)(t[k].fcr | 0x02));
        for (unsigned i = 1; i < t[k].level; i++) {
            assert_int_equal(input(f, "b", 1), 1);
            assert_int_equal(f->h.irq_level[GSI], 0);
        }
        assert_int_equal(input(f, "c", 1), 1);
        assert_int_equal(f->h.irq_level[GSI], 1);
        assert_int_equal(in8(f, IIR), 0xc4);
        out8(f, FCR, (uint8_t)(t[k].fcr | 0x02));
        assert_int_equal(f->h.irq_level[GSI], 0);
    }
}

static void test_rx_timeout(void **state)
{
    struct fx *f = *state;
    out8(f, LCR, 0x83);
    out8(f, DLL, 1); /* 115200 baud: 4 chars of 10 bits = 347 us */
    out8(f, DLM, 0);
    out8(f, LCR, 0x03);
    out8(f, FCR, 0x81); /* trigger 8 */
    out8(f, MCR, 0x08);
    out8(f, IER, 0x01);
    assert_int_equal(input(f, "ab", 2), 2);
    assert_int_equal(f->h.irq_level[GSI], 0);
    fake_host_advance(&f->h, f->p, f->dev, 300000);
    assert_int_equal(f->h.irq_level[GSI], 0);
    fake_host_advance(&f->h, f->p, f->dev, 100000);
    assert_int_equal(f->h.irq_level[GSI], 1);
    assert_int_equal(in8(f, IIR), 0xcc);
    /* Reading a character clears the indication and restarts the count. */
    assert_int_equal(in8(f, RBR), 'a');
    assert_int_equal(f->h.irq_level[GSI], 0);
    fake_host_advance(&f->h, f->p, f->dev, 400000);
    assert_int_equal(in8(f, IIR), 0xcc);
    assert_int_equal(in8(f, RBR), 'b');
    assert_int_equal(in8(f, IIR), 0xc1);
    /* An empty FIFO leaves no timer behind. */
    assert_int_equal(f->h.timer_deadline[0], 0);
}

static void test_out2_gates_irq(void **state)
{
    struct fx *f = *state;
    out8(f, IER, 0x01);
    assert_int_equal(input(f, "x", 1), 1);
    assert_int_equal(in8(f, IIR) & 0x0f, 0x04); /* pending ... */
    assert_int_equal(f->h.irq_level[GSI], 0);  /* ... but not on the line */
    out8(f, MCR, 0x08);
    assert_int_equal(f->h.irq_level[GSI], 1);
    out8(f, MCR, 0x00);
    assert_int_equal(f->h.irq_level[GSI], 0);
    out8(f, MCR, 0x18); /* loopback forces OUT2 inactive */
    assert_int_equal(f->h.irq_level[GSI], 0);
}

/* ---- loopback and modem lines ---- */

static void test_loopback(void **state)
{
    struct fx *f = *state;
    /* Linux autoconfig: MCR = LOOP | OUT2 | RTS must read MSR 0x90. */
    out8(f, MCR, 0x1a);
    assert_int_equal(in8(f, MSR) & 0xf0, 0x90);
    out8(f, MCR, 0x1f);
    assert_int_equal(in8(f, MSR) & 0xf0, 0xf0);
    out8(f, MCR, 0x1b); /* OUT1 (RI) falls: trailing-edge indicator */
    assert_int_equal(in8(f, MSR), 0xb4);
    out8(f, THR, 'L');
    assert_int_equal(in8(f, LSR) & 0x01, 1);
    assert_int_equal(in8(f, RBR), 'L');
    assert_int_equal(f->h.chr_out_len, 0);
    /* The outside line is disconnected while looping. */
    assert_int_equal(input(f, "q", 1), 0);
    uint64_t ready = f->h.chr_input_ready_calls;
    out8(f, MCR, 0x03);
    assert_int_equal(f->h.chr_input_ready_calls, ready + 1);
    assert_int_equal(input(f, "q", 1), 1);
    out8(f, THR, 'T');
    assert_int_equal(f->h.chr_out_len, 1);
    assert_int_equal(f->h.chr_out[0], 'T');
}

/* The register sequence of Linux's 8250 autoconfig + startup. */
static void test_linux_probe_sequence(void **state)
{
    struct fx *f = *state;
    out8(f, IER, 0);
    assert_int_equal(in8(f, IER) & 0x0f, 0);
    out8(f, IER, 0x0f);
    assert_int_equal(in8(f, IER) & 0x0f, 0x0f);
    out8(f, IER, 0);
    out8(f, MCR, 0x1a);
    assert_int_equal(in8(f, MSR) & 0xf0, 0x90);
    out8(f, MCR, 0);
    out8(f, FCR, 0x01);
    assert_int_equal(in8(f, IIR) >> 6, 3);
    out8(f, LCR, 0xbf); /* EFR probe: offset 2 must not read 0 */
    assert_int_not_equal(in8(f, IIR), 0);
    out8(f, LCR, 0);
    out8(f, FCR, 0x07);
    out8(f, FCR, 0);
    in8(f, LSR);
    in8(f, RBR);
    in8(f, IIR);
    in8(f, MSR);
    assert_int_not_equal(in8(f, LSR), 0xff);
    out8(f, FCR, 0x81);
    out8(f, LCR, 0x03);
    out8(f, MCR, 0x0b);
    /* THRE test: IIR must report THRI after enabling ETBEI. */
    out8(f, IER, 0x02);
    uint8_t iir1 = in8(f, IIR);
    out8(f, IER, 0);
    out8(f, IER, 0x02);
    uint8_t iir = in8(f, IIR);
    out8(f, IER, 0);
    assert_int_equal(iir1 & 0x01, 0);
    assert_int_equal(iir & 0x01, 0);
    /* Interactive use: RX and TX interrupts on the line. */
    out8(f, IER, 0x05);
    assert_int_equal(input(f, "ls\r", 3), 3);
    fake_host_advance(&f->h, f->p, f->dev, 10 * 1000 * 1000);
    assert_int_equal(f->h.irq_level[GSI], 1);
    assert_int_equal(in8(f, IIR), 0xcc);
    char got[3];
    for (unsigned i = 0; in8(f, LSR) & 1; i++) {
        assert_true(i < 3);
        got[i] = (char)in8(f, RBR);
    }
    assert_memory_equal(got, "ls\r", 3);
    assert_int_equal(f->h.irq_level[GSI], 0);
}

/* ---- reset and state ---- */

static void scribble(struct fx *f)
{
    out8(f, LCR, 0x80);
    out8(f, DLL, 0x33);
    out8(f, DLM, 0x44);
    out8(f, LCR, 0x1f);
    out8(f, FCR, 0xc9);
    out8(f, IER, 0x0f);
    out8(f, SCR, 0xa5);
    out8(f, MCR, 0x1f);
    for (unsigned i = 0; i < 20; i++)
        out8(f, THR, (uint8_t)i);
    out8(f, MCR, 0x0d);
    in8(f, RBR);
}

static void test_reset_restores_power_on(void **state)
{
    struct fx *f = *state;
    uint8_t a[256], b[256];
    size_t na = save(f, f->dev, a, sizeof(a));
    scribble(f);
    size_t nb = save(f, f->dev, b, sizeof(b));
    assert_true(na != nb || memcmp(a, b, na) != 0); /* the test can fail */
    assert_int_equal(f->h.irq_level[GSI], 1);
    f->p->ops->reset(f->dev);
    nb = save(f, f->dev, b, sizeof(b));
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    assert_int_equal(f->h.irq_level[GSI], 0);
    assert_int_equal(f->h.timer_deadline[0], 0);
}

static void test_state_round_trip(void **state)
{
    struct fx *f = *state;
    out8(f, FCR, 0x41);
    out8(f, MCR, 0x0b);
    out8(f, IER, 0x03);
    out8(f, SCR, 0x77);
    assert_int_equal(input(f, "xyz", 3), 3);
    in8(f, RBR); /* move the ring head off 0 */
    assert_int_equal(input(f, "w", 1), 1);
    uint8_t a[256], b[256];
    size_t na = save(f, f->dev, a, sizeof(a));

    /* Too small a buffer is refused without writing past it. */
    uint64_t len = 0;
    uint8_t tiny[4] = {0};
    assert_true(f->p->ops->state_save(f->dev, tiny, sizeof(tiny), &len) < 0);
    assert_int_equal(len, na);

    struct fx *g = fx_new();
    assert_int_equal(g->p->ops->state_restore(g->dev, a, na), 0);
    size_t nb = save(g, g->dev, b, sizeof(b));
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    /* The restored device drives its line (THRE pending, OUT2 set). */
    assert_int_equal(g->h.irq_level[GSI], 1);
    assert_int_equal(in8(g, SCR), 0x77);
    assert_int_equal(in8(g, RBR), 'y');
    assert_int_equal(in8(g, RBR), 'z');
    assert_int_equal(in8(g, RBR), 'w');
    assert_int_equal(in8(g, LSR) & 1, 0);
    fx_free(g);
}

static void test_restore_rejects_bad_blobs(void **state)
{
    struct fx *f = *state;
    uint8_t good[256], bad[256], now[256];
    out8(f, FCR, 0x01);
    assert_int_equal(input(f, "abc", 3), 3);
    size_t n = save(f, f->dev, good, sizeof(good));
    const nimbus_device_ops *ops = f->p->ops;

    for (size_t cut = 0; cut < n; cut++)
        assert_true(ops->state_restore(f->dev, good, cut) < 0);
    memcpy(bad, good, n);
    bad[n] = 0;
    assert_true(ops->state_restore(f->dev, bad, n + 1) < 0);
    assert_true(ops->state_restore(f->dev, NULL, n) < 0);
    memcpy(bad, good, n);
    bad[0] ^= 0xff; /* magic */
    assert_true(ops->state_restore(f->dev, bad, n) < 0);
    memcpy(bad, good, n);
    bad[4] = 99; /* version */
    assert_true(ops->state_restore(f->dev, bad, n) < 0);

    /* A rejected restore leaves the device untouched. */
    size_t m = save(f, f->dev, now, sizeof(now));
    assert_int_equal(m, n);
    assert_memory_equal(now, good, n);

    /* Random corruption: never crashes; accepted blobs re-save identically. */
    srand(12345);
    unsigned accepted = 0, rejected = 0;
    for (unsigned iter = 0; iter < 20000; iter++) {
        memcpy(bad, good, n);
        unsigned flips = 1 + (unsigned)rand() % 4;
        for (unsigned k = 0; k < flips; k++)
            bad[8 + (unsigned)rand() % (n - 8)] = (uint8_t)rand();
        if (ops->state_restore(f->dev, bad, n) == 0) {
            accepted++;
            m = save(f, f->dev, now, sizeof(now));
            assert_int_equal(m, n);
            assert_memory_equal(now, bad, n);
            for (unsigned r = 0; r < 8; r++)
                in8(f, r); /* and the device still works */
        } else {
            rejected++;
        }
    }
    assert_true(accepted > 0);
    assert_true(rejected > 0);
}

/* ---- options ---- */

static void expect_bad_option(struct fx *f, const char *opts, const char *tok)
{
    char err[256] = "";
    void *dev = NULL;
    nimbus_region regs[1];
    uint32_t n = 1;
    int r = f->p->ops->create(&f->h.api, &f->h, opts, &dev, regs, &n, err,
                              sizeof(err));
    assert_true(r < 0);
    if (!strstr(err, tok))
        fail_msg("error for '%s' does not name '%s': %s", opts, tok, err);
}

static void test_bad_options(void **state)
{
    struct fx *f = *state;
    expect_bad_option(f, "iobase=zz", "zz");
    expect_bad_option(f, "irq=99", "99");
    expect_bad_option(f, "speed=9600", "speed");
    expect_bad_option(f, "iobase=0xfffff", "0xfffff");
    expect_bad_option(f, "irq", "irq");
    expect_bad_option(f, "irq=", "irq");
}

static void test_options_applied(void **state)
{
    struct fx *f = *state;
    char err[256] = "";
    void *dev = NULL;
    nimbus_region regs[NIMBUS_MAX_REGIONS];
    uint32_t n = NIMBUS_MAX_REGIONS;
    assert_int_equal(f->p->ops->create(&f->h.api, &f->h, "iobase=0x2f8,irq=3",
                                       &dev, regs, &n, err, sizeof(err)),
                     0);
    assert_int_equal(regs[0].base, 0x2f8);
    uint8_t v = 0x08;
    f->p->ops->io_write(dev, 0, MCR, &v, 1);
    v = 0x02;
    f->p->ops->io_write(dev, 0, IER, &v, 1);
    assert_int_equal(f->h.irq_level[3], 1);
    assert_int_equal(f->h.irq_level[GSI], 0);
    /* Out-of-range accesses are refused, not crashed on. */
    assert_true(f->p->ops->io_read(dev, 1, 0, &v, 1) < 0);
    assert_true(f->p->ops->io_read(dev, 0, 8, &v, 1) < 0);
    uint8_t w[4];
    assert_int_equal(f->p->ops->io_read(dev, 0, 6, w, 4), 0);
    assert_int_equal(w[2], 0xff);
    assert_int_equal(w[3], 0xff);
    f->p->ops->destroy(dev);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_scratch_register),
        T(test_divisor_latch),
        T(test_lcr_and_ier_masks),
        T(test_power_on_values),
        T(test_transmit_goes_to_backend),
        T(test_transmit_without_backend_drops),
        T(test_fifo_detection),
        T(test_fifo_fill_and_overrun),
        T(test_fifo_clear),
        T(test_input_capacity),
        T(test_thre_interrupt),
        T(test_iir_priorities),
        T(test_rx_interrupt_and_trigger_levels),
        T(test_rx_timeout),
        T(test_out2_gates_irq),
        T(test_loopback),
        T(test_linux_probe_sequence),
        T(test_reset_restores_power_on),
        T(test_state_round_trip),
        T(test_restore_rejects_bad_blobs),
        T(test_bad_options),
        T(test_options_applied),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
