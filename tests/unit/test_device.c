/* The device layer: real plugins mapped on a bus, shared GSIs, conflicts. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "device.h"
#include "device_acpi.h"

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

/* ---- ACPI nodes of --device plugins (ABI minor 4) ---- */

static void test_uart_describes_its_acpi_node(void **state)
{
    struct fixture *f = *state;
    char err[256] = "";
    struct device *d = device_create(f->uart, "iobase=0x2f8,irq=3", &f->env, NULL, err,
                                     sizeof(err));
    assert_non_null(d);
    struct device_acpi a;
    assert_int_equal(device_acpi_node(d, &a, err, sizeof(err)), 1);
    assert_string_equal(a.hid, "PNP0501");
    assert_int_equal(a.port, 0x2f8);
    assert_int_equal(a.port_len, 8);
    assert_int_equal(a.irq, 3);
    device_destroy(d);
}

/* A plugin whose acpi_node answers what the test asks for. */
static const char *fake_hid;
static uint32_t fake_irq;
static int fake_rc;
static uint32_t fake_kind = NIMBUS_REGION_PIO;
static uint64_t fake_size = 4;

static int fake_create(const nimbus_host_api *h, void *hctx, const char *o, void **dev,
                       nimbus_region *r, uint32_t *n, char *err, uint32_t errlen)
{
    static int instance;
    *dev = &instance;
    uint64_t base = fake_kind == NIMBUS_REGION_PIO ? 0x500 : 0xfe000000u;
    r[0] = (nimbus_region){.kind = fake_kind, .base = base, .size = fake_size};
    *n = 1;
    return 0;
}
static void fake_nop(void *dev) {}
static int fake_io(void *d, uint32_t r, uint64_t o, void *data, uint32_t l) { return 0; }
static int fake_iow(void *d, uint32_t r, uint64_t o, const void *data, uint32_t l) { return 0; }
static int fake_node(void *dev, nimbus_acpi_node *node)
{
    assert_int_equal(node->struct_size, sizeof(*node));
    node->hid = fake_hid;
    node->irq = fake_irq;
    return fake_rc;
}
static const nimbus_device_ops fake_ops = {
    .struct_size = sizeof(nimbus_device_ops), .create = fake_create, .destroy = fake_nop,
    .reset = fake_nop, .io_read = fake_io, .io_write = fake_iow, .acpi_node = fake_node};
static const nimbus_plugin fake_plugin = {NIMBUS_ABI_MAJOR, NIMBUS_ABI_MINOR,
                                          sizeof(nimbus_plugin), 0, "fakeacpi", "1", "", "",
                                          &fake_ops};

/* Returns device_acpi_node's answer; err gets its message. */
static int fake_node_answer(struct fixture *f, const char *hid, uint32_t irq, int rc,
                            struct device_acpi *a, char *err, size_t errlen)
{
    fake_hid = hid;
    fake_irq = irq;
    fake_rc = rc;
    struct device *d = device_create(&fake_plugin, "", &f->env, NULL, err, errlen);
    if (!d)
        fail_msg("%s", err);
    int r = device_acpi_node(d, a, err, errlen);
    device_destroy(d);
    return r;
}

static void test_hostile_acpi_nodes_refused(void **state)
{
    struct fixture *f = *state;
    char err[256];
    struct device_acpi a;
    assert_int_equal(fake_node_answer(f, "ABCD0001", NIMBUS_ACPI_NO_IRQ, 0, &a, err, sizeof(err)),
                     1);
    assert_int_equal(a.irq, 0xff);
    assert_int_equal(a.port, 0x500);
    assert_int_equal(fake_node_answer(f, NULL, 3, -ENOENT, &a, err, sizeof(err)), 0);
    static const char *bad_hids[] = {NULL, "", "pnp0501", "PNP0501Z", "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                                     "AB\"D0001"};
    for (size_t i = 0; i < sizeof(bad_hids) / sizeof(bad_hids[0]); i++) {
        err[0] = '\0';
        assert_int_equal(fake_node_answer(f, bad_hids[i], 3, 0, &a, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "fakeacpi"));
        assert_non_null(strstr(err, "hardware ID"));
    }
    assert_int_equal(fake_node_answer(f, "PNP0501", 24, 0, &a, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "IRQ 24"));
    assert_int_equal(fake_node_answer(f, "PNP0501", 3, -EIO, &a, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "acpi_node failed"));
    /* The ports come from what the device decodes, and must be describable. */
    fake_kind = NIMBUS_REGION_MMIO;
    assert_int_equal(fake_node_answer(f, "PNP0501", 3, 0, &a, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "port-I/O region"));
    fake_kind = NIMBUS_REGION_PIO;
    fake_size = 256;
    assert_int_equal(fake_node_answer(f, "PNP0501", 3, 0, &a, err, sizeof(err)), -1);
    fake_size = 4;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_gsi_is_ored),
        cmocka_unit_test(test_port_conflict_named),
        cmocka_unit_test(test_bad_options_reported),
        cmocka_unit_test(test_unclaimed_port_not_dispatched),
        cmocka_unit_test(test_uart_describes_its_acpi_node),
        cmocka_unit_test(test_hostile_acpi_nodes_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
