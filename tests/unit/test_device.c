/* The device layer: real plugins mapped on a bus, shared GSIs, conflicts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "device.h"

struct irq_log {
    int level[24];
    int calls;
};

static int rec_irq(void *opaque, uint32_t gsi, uint32_t level)
{
    struct irq_log *l = opaque;
    l->level[gsi] = (int)level;
    l->calls++;
    return 0;
}

struct fixture {
    uint8_t ram[1 << 16];
    struct guest_mem gm;
    struct bus pio, mmio;
    struct irq_share share;
    struct irq_log log;
    struct device_env env;
    const nimbus_plugin *uart;
};

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof(f));
    assert_int_equal(gm_wrap(&f.gm, f.ram, sizeof(f.ram)), 0);
    bus_init(&f.pio, "I/O ports");
    bus_init(&f.mmio, "MMIO");
    pthread_mutex_init(&f.share.lock, NULL);
    f.env = (struct device_env){.mem = &f.gm, .pio = &f.pio, .mmio = &f.mmio,
                                .irq_line = rec_irq, .opaque = &f.log, .irqs = &f.share};
    char err[256];
    const char *dirs[] = {NIMBUS_TEST_PLUGIN_DIR, NULL};
    f.uart = plugin_load("uart16550", dirs, err, sizeof(err));
    if (!f.uart)
        fail_msg("%s", err);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    bus_destroy(&f->pio);
    bus_destroy(&f->mmio);
    return 0;
}

static void outb(struct fixture *f, uint16_t port, uint8_t v)
{
    assert_int_equal(bus_access(&f->pio, port, &v, 1, 1), 0);
}

/* OUT2 routes the UART's interrupt to the line; IER bit 1 asks for THRE. */
static void thre_irq(struct fixture *f, uint16_t base, int on)
{
    outb(f, base + 4, 0x08);
    outb(f, base + 1, on ? 0x02 : 0x00);
}

static void test_shared_gsi_is_ored(void **state)
{
    struct fixture *f = *state;
    char err[256] = "";
    struct device *a = device_create(f->uart, "iobase=0x3f8,irq=4", &f->env, NULL, err,
                                     sizeof(err));
    assert_non_null(a);
    struct device *b = device_create(f->uart, "iobase=0x2f8,irq=4", &f->env, NULL, err,
                                     sizeof(err));
    assert_non_null(b);
    thre_irq(f, 0x3f8, 1);
    assert_int_equal(f->log.level[4], 1);
    thre_irq(f, 0x2f8, 1);
    assert_int_equal(f->log.level[4], 1);
    assert_int_equal(f->share.count[4], 2);
    thre_irq(f, 0x3f8, 0);
    assert_int_equal(f->log.level[4], 1); /* b still asserts it */
    thre_irq(f, 0x2f8, 0);
    assert_int_equal(f->log.level[4], 0);
    /* Destroying an asserting device releases its contribution. */
    thre_irq(f, 0x2f8, 1);
    assert_int_equal(f->log.level[4], 1);
    device_destroy(b);
    assert_int_equal(f->log.level[4], 0);
    assert_int_equal(f->share.count[4], 0);
    device_destroy(a);
}

static void test_port_conflict_named(void **state)
{
    struct fixture *f = *state;
    char err[256] = "";
    struct device *a = device_create(f->uart, "iobase=0x3f8,irq=4", &f->env, NULL, err,
                                     sizeof(err));
    assert_non_null(a);
    struct device *b = device_create(f->uart, "iobase=0x3fc,irq=3", &f->env, NULL, err,
                                     sizeof(err));
    assert_null(b);
    assert_non_null(strstr(err, "already used by another device"));
    assert_non_null(strstr(err, "0x3fc"));
    device_destroy(a);
    /* The range is free again once the owner is gone. */
    b = device_create(f->uart, "iobase=0x3fc,irq=3", &f->env, NULL, err, sizeof(err));
    assert_non_null(b);
    device_destroy(b);
}

static void test_bad_options_reported(void **state)
{
    struct fixture *f = *state;
    char err[256] = "";
    assert_null(device_create(f->uart, "iobase=0x3f8,bogus=1", &f->env, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "uart16550"));
    assert_non_null(strstr(err, "bogus"));
}

static void test_unclaimed_port_not_dispatched(void **state)
{
    struct fixture *f = *state;
    uint8_t v = 0;
    assert_int_not_equal(bus_access(&f->pio, 0x3f8, &v, 1, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_gsi_is_ored),
        cmocka_unit_test(test_port_conflict_named),
        cmocka_unit_test(test_bad_options_reported),
        cmocka_unit_test(test_unclaimed_port_not_dispatched),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
