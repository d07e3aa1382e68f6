/*
 * ABI compatibility by test: plugins built from the headers of every
 * published older ABI minor (tests/abi_compat) load through the current
 * core's loader and work through its real device path: port I/O on the
 * bus and GSI lines for 1.0, the virtio-pci transport over guest memory
 * for 1.1 to 1.3, a legacy device's ACPI node for 1.4.
 *
 *   test_abi_compat          inventory: every minor below ours has a fixture
 *                            that really was built for that minor
 *   test_abi_compat v1_N     drive fixture v1_N (ctest: abi_compat.v1_N)
 *
 * Refusal of newer minors and other majors is test_abi's (abi_newminor,
 * abi_major2, abi_major2in1 in tests/unit/abi_plugins).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "device.h"
#include "device_acpi.h"
#include "eventloop.h"
#include "layout.h"
#include "memory.h"
#include "nimbus/plugin_util.h"
#include "pci/pci.h"
#include "virtio/virtio_pci.h"

#define RAM_SIZE (1u << 20)

static const nimbus_plugin *load_fixture(const char *name)
{
    char path[512], err[512] = "";
    snprintf(path, sizeof(path), "%s/abi_fixture_%s.so", NIMBUS_ABI_FIXTURE_DIR, name);
    const nimbus_plugin *p = plugin_load(path, NULL, err, sizeof(err));
    if (!p)
        fail_msg("fixture %s refused by the loader: %s", name, err);
    return p;
}

/* ---- the machine: guest RAM, buses, GSI lines, PCI host with MSI-X ----- */

struct rig {
    uint8_t *ram;
    struct guest_mem gm;
    struct bus pio, mmio;
    struct irq_share share;
    int gsi_level[24];
    struct event_loop *el;
    struct pci_host *pci;
    /* MSI slots: the message data routed to each and how often it fired
     * (from I/O group threads too, hence atomics). */
    uint32_t msi_next;
    uint32_t msi_data[64];
    uint32_t msi_fired[64];
    struct device_env env;
    struct device *dev;
    uint64_t bar;
    uint32_t slot, msix_cap;
};

static int rec_gsi(void *opaque, uint32_t gsi, uint32_t level)
{
    struct rig *r = opaque;
    r->gsi_level[gsi] = (int)level;
    return 0;
}

static int msi_alloc(void *o, uint32_t *h)
{
    struct rig *r = o;
    if (r->msi_next >= 64)
        return -ENOSPC;
    *h = r->msi_next++;
    return 0;
}
static void msi_release(void *o, uint32_t h) { (void)o; (void)h; }
static int msi_route(void *o, uint32_t h, uint64_t addr, uint32_t data)
{
    struct rig *r = o;
    (void)addr;
    __atomic_store_n(&r->msi_data[h], data, __ATOMIC_SEQ_CST);
    return 0;
}
static int msi_fire(void *o, uint32_t h)
{
    struct rig *r = o;
    __atomic_add_fetch(&r->msi_fired[h], 1, __ATOMIC_SEQ_CST);
    return 0;
}
static const struct pci_msi_ops msi_ops = {msi_alloc, msi_release, msi_route, msi_fire};

static int rig_setup(void **state)
{
    struct rig *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->ram = aligned_alloc(4096, RAM_SIZE);
    assert_non_null(r->ram);
    memset(r->ram, 0, RAM_SIZE);
    assert_int_equal(gm_wrap(&r->gm, r->ram, RAM_SIZE), 0);
    bus_init(&r->pio, "I/O ports");
    bus_init(&r->mmio, "MMIO");
    pthread_mutex_init(&r->share.lock, NULL);
    r->el = el_create();
    assert_non_null(r->el);
    assert_int_equal(el_start(r->el), 0);
    struct pci_windows w = {.ecam_base = LAYOUT_PCI_ECAM, .ecam_size = 1u << 20,
                            .mmio32_base = LAYOUT_MMIO32_START, .mmio32_size = 0x20000000,
                            .mmio64_base = 1ull << 32, .mmio64_size = 1ull << 32};
    char err[256] = "";
    r->pci = pci_host_create(&r->pio, &r->mmio, &w, &msi_ops, r, err, sizeof(err));
    if (!r->pci)
        fail_msg("%s", err);
    r->env = (struct device_env){.mem = &r->gm, .el = r->el, .pio = &r->pio, .mmio = &r->mmio,
                                 .irq_line = rec_gsi, .opaque = r, .irqs = &r->share,
                                 .pci = r->pci};
    *state = r;
    return 0;
}

static int rig_teardown(void **state)
{
    struct rig *r = *state;
    el_stop(r->el);
    device_destroy(r->dev);
    pci_host_destroy(r->pci);
    el_destroy(r->el);
    bus_destroy(&r->pio);
    bus_destroy(&r->mmio);
    pthread_mutex_destroy(&r->share.lock);
    free(r->ram);
    free(r);
    return 0;
}

static struct device *create(struct rig *r, const char *fixture, const char *options)
{
    char err[256] = "";
    r->dev = device_create(load_fixture(fixture), options, &r->env, NULL, err, sizeof(err));
    if (!r->dev)
        fail_msg("%s: device_create: %s", fixture, err);
    return r->dev;
}

/* The core's copy of the ops: every op appended after the plugin's minor
 * reads as absent (NULL), whatever follows the plugin's table in memory. */
static void expect_ops_through(const struct device *d, size_t plugin_ops_size)
{
    assert_int_equal(d->plugin->ops->struct_size, plugin_ops_size);
    assert_true(plugin_ops_size <= sizeof(d->ops));
    const uint8_t *newer = (const uint8_t *)&d->ops + plugin_ops_size;
    for (size_t i = 0; i < sizeof(d->ops) - plugin_ops_size; i++)
        if (newer[i])
            fail_msg("ops byte %zu (beyond the plugin's %zu) is set", plugin_ops_size + i,
                     plugin_ops_size);
}

/* ---- ABI 1.0: port I/O, a GSI line, state save/restore ----------------- */

#define F10_BASE 0x530
#define F10_GSI 6

static uint64_t pin(struct rig *r, uint16_t port, uint32_t len)
{
    uint8_t b[8] = {0};
    assert_int_equal(bus_access(&r->pio, port, b, len, 0), 0);
    return nimbus_le_load(b, len);
}

static void pout(struct rig *r, uint16_t port, uint32_t len, uint64_t v)
{
    uint8_t b[8];
    nimbus_le_store(b, len, v);
    assert_int_equal(bus_access(&r->pio, port, b, len, 1), 0);
}

static int save(struct device *d, uint8_t *buf, uint64_t cap, uint64_t *len)
{
    device_lock(d);
    int rc = d->ops.state_save(d->state, buf, cap, len);
    device_unlock(d);
    return rc;
}

static int restore(struct device *d, const uint8_t *buf, uint64_t len)
{
    device_lock(d);
    int rc = d->ops.state_restore(d->state, buf, len);
    device_unlock(d);
    return rc;
}

static void test_v1_0_options_checked(void **state)
{
    struct rig *r = *state;
    char err[256] = "";
    assert_null(device_create(load_fixture("v1_0"), "iobase=0x530,bogus=1", &r->env, NULL, err,
                              sizeof(err)));
    assert_non_null(strstr(err, "abifix_v1_0"));
    assert_non_null(strstr(err, "bogus"));
}

static void test_v1_0_ports_and_irq(void **state)
{
    struct rig *r = *state;
    struct device *d = create(r, "v1_0", "iobase=0x530,irq=6");
    expect_ops_through(d, offsetof(nimbus_device_ops, virtio_info));
    assert_null(d->virtio);
    assert_int_equal(device_counters(d, NULL, NULL), -ENOTSUP);
    assert_int_equal(d->nregions, 1);
    assert_int_equal(d->regions[0].kind, NIMBUS_REGION_PIO);
    assert_int_equal(d->regions[0].base, F10_BASE);
    assert_int_equal(d->regions[0].size, 8);

    assert_int_equal(pin(r, F10_BASE + 5, 1), 0x10); /* id */
    pout(r, F10_BASE, 4, 0x11223344);
    assert_int_equal(pin(r, F10_BASE, 1), 0x44);
    assert_int_equal(pin(r, F10_BASE + 3, 1), 0x11);
    assert_int_equal(pin(r, F10_BASE + 2, 2), 0x1122);
    pout(r, F10_BASE + 1, 1, 0xab);
    assert_int_equal(pin(r, F10_BASE, 4), 0x1122ab44);

    /* Doorbell: a write raises the line, a read returns the byte and lowers it. */
    assert_int_equal(r->gsi_level[F10_GSI], 0);
    pout(r, F10_BASE + 4, 1, 0x5a);
    assert_int_equal(r->gsi_level[F10_GSI], 1);
    assert_int_equal(r->share.count[F10_GSI], 1);
    assert_int_equal(pin(r, F10_BASE + 4, 1), 0x5a);
    assert_int_equal(r->gsi_level[F10_GSI], 0);
    assert_int_equal(r->share.count[F10_GSI], 0);
    /* Three guest writes so far; the counter is read-only. */
    assert_int_equal(pin(r, F10_BASE + 6, 2), 3);
    pout(r, F10_BASE + 6, 2, 0xffff);
    assert_int_equal(pin(r, F10_BASE + 6, 2), 4);
    /* One 8-byte access covers the whole register file. */
    assert_int_equal(pin(r, F10_BASE, 8), 0x0004105a1122ab44ull);

    /* A removed device lets go of a line it still drives. */
    pout(r, F10_BASE + 4, 1, 1);
    assert_int_equal(r->gsi_level[F10_GSI], 1);
    device_destroy(d);
    r->dev = NULL;
    assert_int_equal(r->gsi_level[F10_GSI], 0);
    uint8_t b = 0;
    assert_int_not_equal(bus_access(&r->pio, F10_BASE, &b, 1, 0), 0); /* unmapped */
}

static void test_v1_0_reset_and_state_round_trip(void **state)
{
    struct rig *r = *state;
    struct device *d = create(r, "v1_0", "iobase=0x530,irq=6");
    uint8_t power_on[64], blob[64], after_reset[64];
    uint64_t len = 0, len2 = 0;
    assert_int_equal(save(d, NULL, 0, &len), 0);
    assert_int_equal(len, 16);
    assert_int_equal(save(d, power_on, sizeof(power_on), &len), 0);

    pout(r, F10_BASE, 4, 0xdeadbeef);
    pout(r, F10_BASE + 4, 1, 0x77);
    assert_int_equal(r->gsi_level[F10_GSI], 1);
    assert_int_equal(save(d, blob, 4, &len), -ENOSPC);
    assert_int_equal(len, 16);
    assert_int_equal(save(d, blob, sizeof(blob), &len), 0);

    /* Machine reset: power-on state again, line low. */
    device_reset(d);
    assert_int_equal(r->gsi_level[F10_GSI], 0);
    assert_int_equal(save(d, after_reset, sizeof(after_reset), &len2), 0);
    assert_int_equal(len2, len);
    assert_memory_equal(after_reset, power_on, len);
    assert_int_equal(pin(r, F10_BASE, 4), 0);

    /* Hostile blobs change nothing. */
    assert_int_equal(restore(d, blob, len - 1), -EINVAL);
    uint8_t bad[64];
    memcpy(bad, blob, len);
    bad[13] = 2; /* irq level must be 0 or 1 */
    assert_int_equal(restore(d, bad, len), -EINVAL);
    memcpy(bad, blob, len);
    bad[0] ^= 1; /* magic */
    assert_int_equal(restore(d, bad, len), -EINVAL);
    assert_int_equal(r->gsi_level[F10_GSI], 0);
    assert_int_equal(pin(r, F10_BASE, 4), 0);

    /* The real blob brings registers back and the device re-drives its line. */
    assert_int_equal(restore(d, blob, len), 0);
    assert_int_equal(r->gsi_level[F10_GSI], 1);
    assert_int_equal(pin(r, F10_BASE, 4), 0xdeadbeef);
    assert_int_equal(pin(r, F10_BASE + 6, 2), 2);
    assert_int_equal(pin(r, F10_BASE + 4, 1), 0x77);
    assert_int_equal(r->gsi_level[F10_GSI], 0);
}

static int run_v1_0(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_v1_0_options_checked, rig_setup, rig_teardown),
        cmocka_unit_test_setup_teardown(test_v1_0_ports_and_irq, rig_setup, rig_teardown),
        cmocka_unit_test_setup_teardown(test_v1_0_reset_and_state_round_trip, rig_setup,
                                        rig_teardown),
    };
    return cmocka_run_group_tests_name("abi_compat.v1_0", tests, NULL, NULL);
}

/* ---- ABI 1.1 to 1.3: a driver on the core's virtio-pci transport -------- */

/* The virtio fixtures' answer (tests/abi_compat/fixture_v1_[123].c). */
#define FIX_F_SEED 0u
static uint8_t pattern(uint8_t tag, uint8_t seed, uint32_t i)
{
    return (uint8_t)(tag ^ seed ^ (uint8_t)(i * 13u));
}

/* Per queue q: rings in one page, buffers in another 16 KiB. */
#define RING(q) (0x10000u + (q) * 0x1000u)
#define DESC(q) RING(q)
#define AVAIL(q) (RING(q) + 0x200u)
#define USED(q) (RING(q) + 0x400u)
#define BUF(q) (0x40000u + (q) * 0x4000u)
#define GUARD 0xeeu

static uint64_t bar_rd(struct rig *r, uint64_t off, uint32_t len)
{
    uint8_t b[8] = {0};
    assert_int_equal(bus_access(&r->mmio, r->bar + off, b, len, 0), 0);
    return nimbus_le_load(b, len);
}

static void bar_wr(struct rig *r, uint64_t off, uint32_t len, uint64_t v)
{
    uint8_t b[8];
    nimbus_le_store(b, len, v);
    assert_int_equal(bus_access(&r->mmio, r->bar + off, b, len, 1), 0);
}

static uint32_t cfg_rd(struct rig *r, uint32_t off, uint32_t len)
{
    return pci_config_read(r->pci, 0, r->slot, 0, off, len);
}

/* Find the function as a guest would: ids, BAR 0, MSI-X with one vector per
 * queue plus config, each vector routed to data 0x40 + vector. */
static void pci_bringup(struct rig *r, uint32_t device_id, uint32_t nq)
{
    r->slot = virtio_pci_slot(r->dev->virtio);
    assert_int_equal(cfg_rd(r, 0x00, 2), 0x1af4);
    assert_int_equal(cfg_rd(r, 0x02, 2), 0x1040 + device_id);
    uint32_t lo = cfg_rd(r, 0x10, 4), hi = cfg_rd(r, 0x14, 4);
    r->bar = ((uint64_t)hi << 32) | (lo & ~0xfu);
    assert_true(r->bar != 0);
    pci_config_write(r->pci, 0, r->slot, 0, 0x04, 2, 0x6); /* memory, bus master */
    for (uint32_t c = cfg_rd(r, 0x34, 1), n = 0; c && n < 48; c = cfg_rd(r, c + 1, 1), n++)
        if (cfg_rd(r, c, 1) == 0x11)
            r->msix_cap = c;
    assert_true(r->msix_cap != 0);
    assert_int_equal((cfg_rd(r, r->msix_cap + 2, 2) & 0x7ff) + 1, nq + 1);
    for (uint32_t v = 0; v <= nq; v++) {
        uint64_t e = VPCI_MSIX_TABLE_OFF + 16u * v;
        bar_wr(r, e, 4, 0xfee00000u);
        bar_wr(r, e + 4, 4, 0);
        bar_wr(r, e + 8, 4, 0x40 + v);
        bar_wr(r, e + 12, 4, 0); /* unmasked */
    }
    pci_config_write(r->pci, 0, r->slot, 0, r->msix_cap + 2, 2, 0x8000);
}

/* Negotiate VERSION_1 and the seed feature, give each queue its rings and
 * vector q + 1, and set DRIVER_OK, in the order Linux does. */
static void driver_up(struct rig *r, uint32_t nq, uint16_t qsize)
{
    uint64_t c = VPCI_COMMON_OFF;
    bar_wr(r, c + 0x14, 1, 0);
    bar_wr(r, c + 0x14, 1, 1 | 2);
    bar_wr(r, c + 0x00, 4, 0);
    assert_true(bar_rd(r, c + 0x04, 4) & (1u << FIX_F_SEED));
    bar_wr(r, c + 0x00, 4, 1);
    assert_true(bar_rd(r, c + 0x04, 4) & 1); /* VERSION_1 */
    bar_wr(r, c + 0x08, 4, 0);
    bar_wr(r, c + 0x0c, 4, 1u << FIX_F_SEED);
    bar_wr(r, c + 0x08, 4, 1);
    bar_wr(r, c + 0x0c, 4, 1);
    bar_wr(r, c + 0x14, 1, 1 | 2 | 8);
    assert_int_equal(bar_rd(r, c + 0x14, 1), 1 | 2 | 8);
    assert_int_equal(bar_rd(r, c + 0x12, 2), nq);
    bar_wr(r, c + 0x10, 2, 0);
    for (uint32_t q = 0; q < nq; q++) {
        bar_wr(r, c + 0x16, 2, q);
        assert_true(bar_rd(r, c + 0x18, 2) >= qsize);
        bar_wr(r, c + 0x18, 2, qsize);
        bar_wr(r, c + 0x1a, 2, q + 1);
        assert_int_equal(bar_rd(r, c + 0x1a, 2), q + 1);
        bar_wr(r, c + 0x20, 8, DESC(q));
        bar_wr(r, c + 0x28, 8, AVAIL(q));
        bar_wr(r, c + 0x30, 8, USED(q));
        bar_wr(r, c + 0x1c, 2, 1);
    }
    bar_wr(r, c + 0x14, 1, 1 | 2 | 8 | 4);
    assert_int_equal(bar_rd(r, c + 0x14, 1), 1 | 2 | 8 | 4);
}

static void put_desc(struct rig *r, uint32_t q, uint16_t i, uint64_t addr, uint32_t len,
                     uint16_t flags, uint16_t next)
{
    uint8_t *d = r->ram + DESC(q) + 16u * i;
    nimbus_le_store(d, 8, addr);
    nimbus_le_store(d + 8, 4, len);
    nimbus_le_store(d + 12, 2, flags);
    nimbus_le_store(d + 14, 2, next);
}

/* Make chain `head` available in queue q (ring of qsize) and kick. */
static void post(struct rig *r, uint32_t q, uint16_t qsize, uint16_t head)
{
    uint8_t *avail = r->ram + AVAIL(q);
    uint16_t idx = (uint16_t)nimbus_le_load(avail + 2, 2);
    nimbus_le_store(avail + 4 + 2u * (idx % qsize), 2, head);
    __atomic_store_n((uint16_t *)(avail + 2), (uint16_t)(idx + 1), __ATOMIC_RELEASE);
    bar_wr(r, VPCI_NOTIFY_OFF + q * VPCI_NOTIFY_MULT, 2, q);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The device runs on the core's threads: wait for used->idx to reach `want`. */
static void wait_used(struct rig *r, uint32_t q, uint16_t want)
{
    uint16_t *idx = (uint16_t *)(r->ram + USED(q) + 2);
    uint64_t end = now_ms() + 5000;
    while (__atomic_load_n(idx, __ATOMIC_ACQUIRE) != want && now_ms() < end)
        usleep(1000);
    assert_int_equal(__atomic_load_n(idx, __ATOMIC_ACQUIRE), want);
}

static void expect_used(struct rig *r, uint32_t q, uint16_t slot, uint32_t id, uint32_t len)
{
    const uint8_t *e = r->ram + USED(q) + 4 + 8u * slot;
    assert_int_equal(nimbus_le_load(e, 4), id);
    assert_int_equal(nimbus_le_load(e + 4, 4), len);
}

static void expect_pattern(struct rig *r, uint64_t gpa, uint32_t len, uint8_t tag, uint8_t seed,
                           uint32_t from)
{
    for (uint32_t i = 0; i < len; i++)
        if (r->ram[gpa + i] != pattern(tag, seed, from + i))
            fail_msg("guest byte %#llx: %#x, want %#x", (unsigned long long)(gpa + i),
                     r->ram[gpa + i], pattern(tag, seed, from + i));
}

static uint32_t fired(struct rig *r, uint32_t data)
{
    uint32_t n = 0;
    for (uint32_t h = 0; h < r->msi_next; h++)
        if (__atomic_load_n(&r->msi_data[h], __ATOMIC_SEQ_CST) == data)
            n += __atomic_load_n(&r->msi_fired[h], __ATOMIC_SEQ_CST);
    return n;
}

/* vq_notify comes after vq_push, on the device's thread: wait for it too. */
static void wait_fired(struct rig *r, uint32_t data, uint32_t more_than)
{
    uint64_t end = now_ms() + 5000;
    while (fired(r, data) <= more_than && now_ms() < end)
        usleep(1000);
    assert_true(fired(r, data) > more_than);
}

/*
 * One request on queue q, as a guest would post it: a readable seed byte,
 * then 40 + 24 writable bytes in two buffers with guards behind them.
 * Then a chain with no readable part (seed 0).  Checks the bytes the
 * device wrote, the used ring and the queue's interrupt.
 */
static void round_trip(struct rig *r, uint32_t q, uint16_t qsize, uint8_t tag)
{
    uint64_t b = BUF(q);
    memset(r->ram + b, GUARD, 0x4000);
    r->ram[b] = 0x3c;
    put_desc(r, q, 0, b, 1, 1 /* NEXT */, 1);
    put_desc(r, q, 1, b + 0x100, 40, 1 | 2 /* NEXT|WRITE */, 2);
    put_desc(r, q, 2, b + 0x200, 24, 2, 0);
    uint32_t irq0 = fired(r, 0x40 + q + 1);
    post(r, q, qsize, 0);
    wait_used(r, q, 1);
    expect_used(r, q, 0, 0, 64);
    expect_pattern(r, b + 0x100, 40, tag, 0x3c, 0);
    expect_pattern(r, b + 0x200, 24, tag, 0x3c, 40);
    assert_int_equal(r->ram[b + 0x100 + 40], GUARD);
    assert_int_equal(r->ram[b + 0x200 + 24], GUARD);
    assert_int_equal(r->ram[b], 0x3c); /* device-readable: untouched */
    wait_fired(r, 0x40 + q + 1, irq0);

    put_desc(r, q, 3, b + 0x1000, 100, 2, 0);
    post(r, q, qsize, 3);
    wait_used(r, q, 2);
    expect_used(r, q, 1, 3, 100);
    expect_pattern(r, b + 0x1000, 100, tag, 0, 0);
    assert_int_equal(r->ram[b + 0x1000 + 100], GUARD);
}

static uint32_t devcfg32(struct rig *r, uint32_t off)
{
    return (uint32_t)bar_rd(r, VPCI_DEVCFG_OFF + off, 4);
}

static void test_v1_1_virtio_round_trip(void **state)
{
    struct rig *r = *state;
    struct device *d = create(r, "v1_1", "");
    expect_ops_through(d, offsetof(nimbus_device_ops, counters));
    assert_non_null(d->virtio);
    assert_int_equal(d->ngroups, 0); /* a 1.1 info has no group fields */
    pci_bringup(r, 0x3f11, 1);
    driver_up(r, 1, 8);
    assert_int_equal(devcfg32(r, 0), 0x4649ab11u);
    round_trip(r, 0, 8, 0x11);
    assert_int_equal(devcfg32(r, 4), 2);
    /* A driver reset reaches the plugin's reset. */
    bar_wr(r, VPCI_COMMON_OFF + 0x14, 1, 0);
    assert_int_equal(devcfg32(r, 4), 0);
}

static void test_v1_1_refuses_options(void **state)
{
    struct rig *r = *state;
    char err[256] = "";
    assert_null(device_create(load_fixture("v1_1"), "x=1", &r->env, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "abifix_v1_1"));
}

static int run_v1_1(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_v1_1_virtio_round_trip, rig_setup, rig_teardown),
        cmocka_unit_test_setup_teardown(test_v1_1_refuses_options, rig_setup, rig_teardown),
    };
    return cmocka_run_group_tests_name("abi_compat.v1_1", tests, NULL, NULL);
}

static void test_v1_2_groups_round_trip(void **state)
{
    struct rig *r = *state;
    struct device *d = create(r, "v1_2", "");
    expect_ops_through(d, offsetof(nimbus_device_ops, counters));
    assert_int_equal(d->ngroups, 2); /* the 1.2 group fields were read */
    pci_bringup(r, 0x3f12, 2);
    driver_up(r, 2, 8);
    assert_int_equal(devcfg32(r, 0), 0x4649ab12u);
    round_trip(r, 0, 8, 0x12);
    round_trip(r, 1, 8, 0x12);
    assert_int_equal(devcfg32(r, 4), 2);
    assert_int_equal(devcfg32(r, 8), 2);
    /* vq_size told the device the ring the driver set up, not the maximum. */
    assert_int_equal(bar_rd(r, VPCI_DEVCFG_OFF + 12, 2), 8);
    assert_int_equal(bar_rd(r, VPCI_DEVCFG_OFF + 14, 2), 8);
    bar_wr(r, VPCI_COMMON_OFF + 0x14, 1, 0);
    assert_int_equal(devcfg32(r, 4), 0);
    assert_int_equal(bar_rd(r, VPCI_DEVCFG_OFF + 12, 2), 0);
}

/* A full ring in one kick: the budget is the ring, and nothing is lost. */
static void test_v1_2_full_ring(void **state)
{
    struct rig *r = *state;
    create(r, "v1_2", "");
    pci_bringup(r, 0x3f12, 2);
    driver_up(r, 2, 4);
    uint8_t *avail = r->ram + AVAIL(1);
    for (uint16_t i = 0; i < 4; i++) {
        put_desc(r, 1, i, BUF(1) + 0x100u * i, 16, 2, 0);
        nimbus_le_store(avail + 4 + 2u * i, 2, i);
    }
    __atomic_store_n((uint16_t *)(avail + 2), (uint16_t)4, __ATOMIC_RELEASE);
    bar_wr(r, VPCI_NOTIFY_OFF + 1 * VPCI_NOTIFY_MULT, 2, 1);
    wait_used(r, 1, 4);
    for (uint16_t i = 0; i < 4; i++) {
        expect_used(r, 1, i, i, 16);
        expect_pattern(r, BUF(1) + 0x100u * i, 16, 0x12, 0, 0);
    }
    assert_int_equal(devcfg32(r, 8), 4);
    assert_int_equal(devcfg32(r, 4), 0);
}

static int run_v1_2(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_v1_2_groups_round_trip, rig_setup, rig_teardown),
        cmocka_unit_test_setup_teardown(test_v1_2_full_ring, rig_setup, rig_teardown),
    };
    return cmocka_run_group_tests_name("abi_compat.v1_2", tests, NULL, NULL);
}

struct counter_seen {
    uint64_t chains, write_bytes;
    int others;
};

static void count_emit(void *ctx, const char *name, uint64_t value)
{
    struct counter_seen *c = ctx;
    if (!strcmp(name, "chains"))
        c->chains = value;
    else if (!strcmp(name, "write_bytes"))
        c->write_bytes = value;
    else
        c->others++;
}

static void test_v1_3_counters(void **state)
{
    struct rig *r = *state;
    struct device *d = create(r, "v1_3", "");
    expect_ops_through(d, offsetof(nimbus_device_ops, counters) + sizeof(void *));
    assert_int_equal(d->ngroups, 0);
    pci_bringup(r, 0x3f13, 1);
    driver_up(r, 1, 8);
    assert_int_equal(devcfg32(r, 0), 0x4649ab13u);
    struct counter_seen c = {0};
    assert_int_equal(device_counters(d, count_emit, &c), 0);
    assert_int_equal(c.chains, 0);
    round_trip(r, 0, 8, 0x13);
    assert_int_equal(device_counters(d, count_emit, &c), 0);
    assert_int_equal(c.chains, 2);
    assert_int_equal(c.write_bytes, 64 + 100);
    assert_int_equal(c.others, 0);
    /* A driver reset clears device state, not the host's statistics. */
    bar_wr(r, VPCI_COMMON_OFF + 0x14, 1, 0);
    assert_int_equal(devcfg32(r, 4), 0);
    memset(&c, 0, sizeof(c));
    assert_int_equal(device_counters(d, count_emit, &c), 0);
    assert_int_equal(c.chains, 2);
    assert_int_equal(c.write_bytes, 64 + 100);
}

static int run_v1_3(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_v1_3_counters, rig_setup, rig_teardown),
    };
    return cmocka_run_group_tests_name("abi_compat.v1_3", tests, NULL, NULL);
}

/* ---- ABI 1.4: a legacy device's ACPI node ---------------------------------- */

static void test_v1_4_acpi_node(void **state)
{
    struct rig *r = *state;
    struct device *d = create(r, "v1_4", "");
    /* No virtio_reset_begin (1.5) or anything later reaches the core. */
    expect_ops_through(d, offsetof(nimbus_device_ops, acpi_node) + sizeof(void *));
    struct device_acpi a;
    char err[256] = "";
    memset(&a, 0, sizeof(a));
    assert_int_equal(device_acpi_node(d, &a, err, sizeof(err)), 1);
    assert_string_equal(a.hid, "NIMB0014");
    assert_int_equal(a.port, 0x540);
    assert_int_equal(a.port_len, 8);
    assert_int_equal(a.irq, 5);
    assert_int_equal(pin(r, 0x541, 1), 0x14);
    pout(r, 0x540, 1, 0xa5);
    assert_int_equal(pin(r, 0x540, 1), 0xa5);
    device_reset(d);
    assert_int_equal(pin(r, 0x540, 1), 0);
}

static int run_v1_4(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_v1_4_acpi_node, rig_setup, rig_teardown),
    };
    return cmocka_run_group_tests_name("abi_compat.v1_4", tests, NULL, NULL);
}

/* ---- the fixtures --------------------------------------------------------- */

/*
 * One row per published minor below ours (tests/abi_compat/README.md).
 * ops_size: sizeof(nimbus_device_ops) in that minor's header, i.e. the
 * offset of the first op a later minor appended.
 */
static const struct fixture_row {
    const char *name;
    uint32_t minor;
    size_t ops_size;
    int (*run)(void);
} fixtures[] = {
    {"v1_0", 0, offsetof(nimbus_device_ops, virtio_info), run_v1_0},
    {"v1_1", 1, offsetof(nimbus_device_ops, counters), run_v1_1},
    {"v1_2", 2, offsetof(nimbus_device_ops, counters), run_v1_2},
    {"v1_3", 3, offsetof(nimbus_device_ops, counters) + sizeof(void *), run_v1_3},
    {"v1_4", 4, offsetof(nimbus_device_ops, acpi_node) + sizeof(void *), run_v1_4},
};
#define NFIXTURES (sizeof(fixtures) / sizeof(fixtures[0]))

/* A minor bump must bring the fixture of the minor it supersedes. */
static void test_every_older_minor_has_a_fixture(void **state)
{
    (void)state;
    for (uint32_t m = 0; m < NIMBUS_ABI_MINOR; m++) {
        size_t i = 0;
        while (i < NFIXTURES && fixtures[i].minor != m)
            i++;
        if (i == NFIXTURES)
            fail_msg("ABI %u.%u has no fixture: add tests/abi_compat/v%u_%u "
                     "(tests/abi_compat/README.md)",
                     NIMBUS_ABI_MAJOR, m, NIMBUS_ABI_MAJOR, m);
    }
}

/* Each binary claims its minor and carries that minor's table sizes, so it
 * was built from the old headers, not from the current ones. */
static void test_fixtures_built_for_their_minor(void **state)
{
    (void)state;
    for (size_t i = 0; i < NFIXTURES; i++) {
        const nimbus_plugin *p = load_fixture(fixtures[i].name);
        assert_int_equal(p->abi_major, NIMBUS_ABI_MAJOR);
        assert_int_equal(p->abi_minor, fixtures[i].minor);
        assert_int_equal(p->struct_size, sizeof(nimbus_plugin));
        assert_int_equal(p->ops->struct_size, fixtures[i].ops_size);
    }
}

int main(int argc, char **argv)
{
    if (argc == 1) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_every_older_minor_has_a_fixture),
            cmocka_unit_test(test_fixtures_built_for_their_minor),
        };
        return cmocka_run_group_tests_name("abi_compat.inventory", tests, NULL, NULL);
    }
    for (size_t i = 0; argc == 2 && i < NFIXTURES; i++)
        if (!strcmp(argv[1], fixtures[i].name))
            return fixtures[i].run();
    fprintf(stderr, "usage: %s [fixture]   (fixtures:", argv[0]);
    for (size_t i = 0; i < NFIXTURES; i++)
        fprintf(stderr, " %s", fixtures[i].name);
    fprintf(stderr, ")\n");
    return 2;
}
