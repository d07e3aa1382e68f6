/* i8042 plugin, loaded with dlopen and driven through the fake host. */
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

/* Region indices: data port (0x60) and status/command port (0x64). */
enum { DATA = 0, CMD = 1 };
#define ST_OBF 0x01u
#define ST_IBF 0x02u
#define ST_AUX 0x20u
#define KBD_GSI 1u
#define AUX_GSI 12u

struct fx {
    struct fake_host h;
    const nimbus_plugin *p;
    void *dev;
};

static struct fx *fx_new(void)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(fake_host_init(&f->h, 0), 0);
    f->h.abort_on_violation = 1;
    f->p = test_load_plugin("i8042.so");
    char err[256] = "";
    nimbus_region regs[NIMBUS_MAX_REGIONS];
    uint32_t n = NIMBUS_MAX_REGIONS;
    assert_int_equal(
        fake_host_create(&f->h, f->p, "", &f->dev, regs, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 2);
    assert_int_equal(regs[DATA].kind, NIMBUS_REGION_PIO);
    assert_int_equal(regs[DATA].base, 0x60);
    assert_int_equal(regs[DATA].size, 1);
    assert_int_equal(regs[CMD].base, 0x64);
    assert_int_equal(regs[CMD].size, 1);
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

static uint8_t in8(struct fx *f, unsigned region)
{
    uint8_t v = 0;
    assert_int_equal(f->p->ops->io_read(f->dev, region, 0, &v, 1), 0);
    return v;
}

static void out8(struct fx *f, unsigned region, uint8_t v)
{
    assert_int_equal(f->p->ops->io_write(f->dev, region, 0, &v, 1), 0);
}

/* Issue a controller command and collect its one-byte reply. */
static uint8_t command_reply(struct fx *f, uint8_t cmd)
{
    assert_int_equal(in8(f, CMD) & ST_IBF, 0);
    out8(f, CMD, cmd);
    uint8_t st = in8(f, CMD);
    assert_int_equal(st & ST_OBF, ST_OBF);
    assert_int_equal(st & ST_AUX, 0);
    return in8(f, DATA);
}

static size_t save(struct fx *f, uint8_t *buf, size_t cap)
{
    uint64_t len = 0;
    assert_int_equal(f->p->ops->state_save(f->dev, NULL, 0, &len), 0);
    assert_true(len > 0 && len <= cap);
    assert_int_equal(f->p->ops->state_save(f->dev, buf, cap, &len), 0);
    return (size_t)len;
}

static void test_self_tests(void **state)
{
    struct fx *f = *state;
    assert_int_equal(in8(f, CMD) & (ST_OBF | ST_IBF), 0);
    assert_int_equal(command_reply(f, 0xaa), 0x55);
    assert_int_equal(in8(f, CMD) & 0x04, 0x04); /* system flag after POST */
    assert_int_equal(command_reply(f, 0xab), 0x00);
    assert_int_equal(command_reply(f, 0xa9), 0x00);
    /* Nothing left: the data port repeats the last byte, never blocks. */
    assert_int_equal(in8(f, CMD) & ST_OBF, 0);
    assert_int_equal(in8(f, DATA), 0x00);
    assert_int_equal(command_reply(f, 0xaa), 0x55);
    assert_int_equal(in8(f, DATA), 0x55);
    assert_int_equal(in8(f, DATA), 0x55);
}

static void test_command_byte(void **state)
{
    struct fx *f = *state;
    uint8_t ctr = command_reply(f, 0x20);
    out8(f, CMD, 0x60);
    assert_int_equal(in8(f, CMD) & 0x08, 0x08); /* last write: command */
    out8(f, DATA, 0x47);
    assert_int_equal(in8(f, CMD) & 0x08, 0x00);
    assert_int_equal(command_reply(f, 0x20), 0x47);
    assert_int_not_equal(ctr, 0x47);
    /* Port enable/disable commands flip the command byte bits. */
    out8(f, CMD, 0xad);
    assert_int_equal(command_reply(f, 0x20) & 0x10, 0x10);
    out8(f, CMD, 0xae);
    assert_int_equal(command_reply(f, 0x20) & 0x10, 0x00);
    out8(f, CMD, 0xa7);
    assert_int_equal(command_reply(f, 0x20) & 0x20, 0x20);
    out8(f, CMD, 0xa8);
    assert_int_equal(command_reply(f, 0x20) & 0x20, 0x00);
    /* Controller RAM beyond the command byte. */
    out8(f, CMD, 0x65);
    out8(f, DATA, 0x99);
    assert_int_equal(command_reply(f, 0x25), 0x99);
}

static void test_keyboard_irq_and_no_device(void **state)
{
    struct fx *f = *state;
    out8(f, CMD, 0x60);
    out8(f, DATA, 0x03); /* KBDINT | AUXINT */
    assert_int_equal(f->h.irq_level[KBD_GSI], 0);
    out8(f, DATA, 0xf2); /* "identify" to the (absent) keyboard */
    assert_int_equal(f->h.irq_level[KBD_GSI], 1);
    assert_int_equal(in8(f, DATA), 0xfe);
    assert_int_equal(f->h.irq_level[KBD_GSI], 0);
    /* AUX loopback (0xD3) comes back on the AUX channel and IRQ 12. */
    out8(f, CMD, 0xd3);
    out8(f, DATA, 0x5a);
    assert_int_equal(in8(f, CMD) & (ST_OBF | ST_AUX), ST_OBF | ST_AUX);
    assert_int_equal(f->h.irq_level[AUX_GSI], 1);
    assert_int_equal(f->h.irq_level[KBD_GSI], 0);
    assert_int_equal(in8(f, DATA), 0x5a);
    assert_int_equal(f->h.irq_level[AUX_GSI], 0);
    /* Two queued bytes give two rising edges. */
    uint64_t edges = f->h.irq_edges[KBD_GSI];
    out8(f, DATA, 0xff);
    out8(f, DATA, 0xff);
    in8(f, DATA);
    in8(f, DATA);
    assert_int_equal(f->h.irq_edges[KBD_GSI], edges + 2);
    assert_int_equal(f->h.irq_level[KBD_GSI], 0);
}

static void test_reset_via_pulse(void **state)
{
    struct fx *f = *state;
    assert_int_equal(f->h.shutdown_kind, 0);
    out8(f, CMD, 0xff); /* pulses nothing */
    assert_int_equal(f->h.shutdown_calls, 0);
    out8(f, CMD, 0xfe);
    assert_int_equal(f->h.shutdown_kind, NIMBUS_SHUTDOWN_RESET);
    assert_int_equal(f->h.shutdown_calls, 1);
}

static void test_reset_via_output_port(void **state)
{
    struct fx *f = *state;
    out8(f, CMD, 0xd1);
    out8(f, DATA, 0xdf); /* A20 on, reset line high: no reset */
    assert_int_equal(f->h.shutdown_calls, 0);
    assert_int_equal(command_reply(f, 0xd0) & 0x03, 0x03);
    out8(f, CMD, 0xd1);
    out8(f, DATA, 0xde); /* bit 0 = 0 asserts reset */
    assert_int_equal(f->h.shutdown_kind, NIMBUS_SHUTDOWN_RESET);
    assert_int_equal(f->h.shutdown_calls, 1);
}

static void test_reset_and_state(void **state)
{
    struct fx *f = *state;
    uint8_t a[256], b[256];
    size_t na = save(f, a, sizeof(a));
    out8(f, CMD, 0x60);
    out8(f, DATA, 0x03);
    out8(f, CMD, 0xaa);
    out8(f, DATA, 0x11);
    out8(f, CMD, 0xd1); /* left pending */
    size_t nb = save(f, b, sizeof(b));
    assert_true(na != nb || memcmp(a, b, na) != 0);
    assert_int_equal(f->h.irq_level[KBD_GSI], 1);

    /* Round trip into a fresh instance. */
    struct fx *g = fx_new();
    assert_int_equal(g->p->ops->state_restore(g->dev, b, nb), 0);
    assert_int_equal(g->h.irq_level[KBD_GSI], 1);
    uint8_t c[256];
    size_t nc = save(g, c, sizeof(c));
    assert_int_equal(nb, nc);
    assert_memory_equal(b, c, nb);
    assert_int_equal(in8(g, DATA), 0x55);
    assert_int_equal(in8(g, DATA), 0xfe);
    fx_free(g);

    f->p->ops->reset(f->dev);
    nb = save(f, b, sizeof(b));
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    assert_int_equal(f->h.irq_level[KBD_GSI], 0);
}

static void test_restore_rejects_bad_blobs(void **state)
{
    struct fx *f = *state;
    uint8_t good[256], bad[256], now[256];
    out8(f, CMD, 0xaa);
    size_t n = save(f, good, sizeof(good));
    const nimbus_device_ops *ops = f->p->ops;
    for (size_t cut = 0; cut < n; cut++)
        assert_true(ops->state_restore(f->dev, good, cut) < 0);
    memcpy(bad, good, n);
    bad[0] ^= 1;
    assert_true(ops->state_restore(f->dev, bad, n) < 0);
    srand(42);
    unsigned accepted = 0, rejected = 0;
    for (unsigned iter = 0; iter < 20000; iter++) {
        memcpy(bad, good, n);
        unsigned flips = 1 + (unsigned)rand() % 3;
        for (unsigned k = 0; k < flips; k++)
            bad[8 + (unsigned)rand() % (n - 8)] = (uint8_t)rand();
        if (ops->state_restore(f->dev, bad, n) == 0) {
            accepted++;
            assert_int_equal(save(f, now, sizeof(now)), n);
            assert_memory_equal(now, bad, n);
            in8(f, DATA);
            in8(f, CMD);
        } else {
            rejected++;
        }
    }
    assert_true(accepted > 0);
    assert_true(rejected > 0);
}

static void test_bad_options(void **state)
{
    struct fx *f = *state;
    static const char *cases[][2] = {
        {"iobase=zz", "zz"}, {"irq=99", "99"}, {"mouse=on", "mouse"},
        {"aux_irq=x", "x"},  {"iobase=0x10000", "0x10000"}};
    for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[256] = "";
        void *dev = NULL;
        nimbus_region regs[2];
        uint32_t n = 2;
        assert_true(f->p->ops->create(&f->h.api, &f->h, cases[i][0], &dev,
                                      regs, &n, err, sizeof(err)) < 0);
        if (!strstr(err, cases[i][1]))
            fail_msg("'%s': error does not name '%s': %s", cases[i][0],
                     cases[i][1], err);
    }
    /* Too few region slots is an error, not an overflow. */
    char err[256] = "";
    void *dev = NULL;
    nimbus_region regs[1];
    uint32_t n = 1;
    assert_true(f->p->ops->create(&f->h.api, &f->h, "", &dev, regs, &n, err,
                                  sizeof(err)) < 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_self_tests),
        T(test_command_byte),
        T(test_keyboard_irq_and_no_device),
        T(test_reset_via_pulse),
        T(test_reset_via_output_port),
        T(test_reset_and_state),
        T(test_restore_rejects_bad_blobs),
        T(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
