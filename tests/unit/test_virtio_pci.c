/*
 * The virtio-pci transport end to end, without KVM: a PCI host over real
 * buses, the virtio_rng plugin behind the transport, and a driver written
 * here that enumerates the function, walks its capabilities, programs
 * MSI-X, negotiates features, sets up a queue and kicks it, as Linux does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

#include "device.h"
#include "eventloop.h"
#include "layout.h"
#include "memory.h"
#include "nimbus/plugin_util.h"
#include "pci/pci.h"
#include "virtio/virtio_pci.h"

#define RAM_SIZE (16u << 20)
#define NVEC_MAX 8

struct fake_msi {
    uint32_t next;
    uint64_t addr[NVEC_MAX * 4];
    uint32_t data[NVEC_MAX * 4];
    uint32_t fired[NVEC_MAX * 4];
};

static int msi_alloc(void *o, uint32_t *h)
{
    struct fake_msi *m = o;
    if (m->next >= NVEC_MAX * 4)
        return -ENOSPC;
    *h = m->next++;
    return 0;
}
static void msi_release(void *o, uint32_t h) { (void)o; (void)h; }
static int msi_route(void *o, uint32_t h, uint64_t addr, uint32_t data)
{
    struct fake_msi *m = o;
    m->addr[h] = addr;
    m->data[h] = data;
    return 0;
}
static int msi_fire(void *o, uint32_t h)
{
    struct fake_msi *m = o;
    m->fired[h]++;
    return 0;
}
static const struct pci_msi_ops fake_msi_ops = {msi_alloc, msi_release, msi_route, msi_fire};

struct rig {
    uint8_t *ram;
    struct guest_mem gm;
    struct bus pio, mmio;
    struct event_loop *el;
    struct fake_msi msi;
    struct pci_host *pci;
    struct device_env env;
    struct device *dev;
    char src[64];
    uint8_t srcbytes[4096];
    /* what the "driver" found */
    uint32_t slot;
    uint64_t bar;
    uint32_t common, notify, isr, notify_mult;
    uint32_t msix_cap;
};

static uint64_t mmio_rd(struct rig *r, uint64_t addr, uint32_t len)
{
    uint8_t b[8] = {0};
    assert_int_equal(bus_access(&r->mmio, addr, b, len, 0), 0);
    return nimbus_le_load(b, len);
}

static void mmio_wr(struct rig *r, uint64_t addr, uint32_t len, uint64_t v)
{
    uint8_t b[8];
    nimbus_le_store(b, len, v);
    assert_int_equal(bus_access(&r->mmio, addr, b, len, 1), 0);
}

static uint32_t cfg_rd(struct rig *r, uint32_t off, uint32_t len)
{
    return pci_config_read(r->pci, 0, r->slot, 0, off, len);
}

static int setup(void **state)
{
    struct rig *r = calloc(1, sizeof(*r));
    r->ram = aligned_alloc(4096, RAM_SIZE);
    memset(r->ram, 0, RAM_SIZE);
    assert_int_equal(gm_wrap(&r->gm, r->ram, RAM_SIZE), 0);
    bus_init(&r->pio, "pio");
    bus_init(&r->mmio, "mmio");
    r->el = el_create();
    assert_non_null(r->el);
    struct pci_windows w = {.ecam_base = LAYOUT_PCI_ECAM, .ecam_size = 1u << 20,
                            .mmio32_base = LAYOUT_MMIO32_START, .mmio32_size = 0x20000000,
                            .mmio64_base = 1ull << 32, .mmio64_size = 1ull << 32};
    char err[256] = "";
    r->pci = pci_host_create(&r->pio, &r->mmio, &w, &fake_msi_ops, &r->msi, err, sizeof(err));
    assert_non_null(r->pci);
    r->env = (struct device_env){.mem = &r->gm, .el = r->el, .pio = &r->pio, .mmio = &r->mmio,
                                 .pci = r->pci};
    /* A source file with known bytes, so the guest buffer can be checked. */
    snprintf(r->src, sizeof(r->src), "/tmp/nimbus-vpci-XXXXXX");
    int fd = mkstemp(r->src);
    assert_true(fd >= 0);
    for (size_t i = 0; i < sizeof(r->srcbytes); i++)
        r->srcbytes[i] = (uint8_t)(i * 7 + 3);
    assert_int_equal(write(fd, r->srcbytes, sizeof(r->srcbytes)), (ssize_t)sizeof(r->srcbytes));
    close(fd);

    const nimbus_plugin *p =
        plugin_load(NIMBUS_TEST_PLUGIN_DIR "/virtio_rng.so", NULL, err, sizeof(err));
    if (!p)
        fail_msg("%s", err);
    char opts[128];
    snprintf(opts, sizeof(opts), "src=%s", r->src);
    r->dev = device_create(p, opts, &r->env, NULL, err, sizeof(err));
    if (!r->dev)
        fail_msg("%s", err);
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    struct rig *r = *state;
    device_destroy(r->dev);
    pci_host_destroy(r->pci);
    el_destroy(r->el);
    bus_destroy(&r->pio);
    bus_destroy(&r->mmio);
    unlink(r->src);
    free(r->ram);
    free(r);
    return 0;
}

/* Enumerate bus 0 through ports 0xCF8/0xCFC as a guest without ECAM would. */
static uint32_t find_virtio(struct rig *r, uint16_t device_id)
{
    for (uint32_t slot = 0; slot < 32; slot++) {
        uint32_t addr = 0x80000000u | (slot << 11);
        uint8_t b[4];
        nimbus_le_store(b, 4, addr);
        assert_int_equal(bus_access(&r->pio, 0xcf8, b, 4, 1), 0);
        assert_int_equal(bus_access(&r->pio, 0xcfc, b, 4, 0), 0);
        uint32_t id = (uint32_t)nimbus_le_load(b, 4);
        if (id == (0x1af4u | ((uint32_t)device_id << 16)))
            return slot;
    }
    fail_msg("virtio device %#x not found on bus 0", device_id);
    return 0;
}

static void discover(struct rig *r)
{
    r->slot = find_virtio(r, 0x1044);
    assert_int_equal(cfg_rd(r, 0x08, 1), 1); /* modern-only revision */
    uint32_t lo = cfg_rd(r, 0x10, 4), hi = cfg_rd(r, 0x14, 4);
    assert_int_equal(lo & 0x6, 0x4); /* 64-bit memory BAR */
    r->bar = ((uint64_t)hi << 32) | (lo & ~0xfu);
    assert_true(r->bar != 0);
    /* BAR sizing: all-ones, read back the mask, restore. */
    pci_config_write(r->pci, 0, r->slot, 0, 0x10, 4, 0xffffffffu);
    assert_int_equal(cfg_rd(r, 0x10, 4) & ~0xfu, (uint32_t)~(VPCI_BAR_SIZE - 1) & ~0xfu);
    pci_config_write(r->pci, 0, r->slot, 0, 0x10, 4, lo);
    /* Memory decoding and bus mastering on. */
    pci_config_write(r->pci, 0, r->slot, 0, 0x04, 2, 0x6);
    assert_true(cfg_rd(r, 0x06, 2) & 0x10); /* capability list */
    uint32_t seen = 0;
    for (uint32_t c = cfg_rd(r, 0x34, 1), n = 0; c && n < 48; c = cfg_rd(r, c + 1, 1), n++) {
        uint32_t id = cfg_rd(r, c, 1);
        if (id == 0x11) {
            r->msix_cap = c;
            continue;
        }
        assert_int_equal(id, 0x09);
        uint32_t type = cfg_rd(r, c + 3, 1), off = cfg_rd(r, c + 8, 4);
        assert_int_equal(cfg_rd(r, c + 4, 1), 0); /* BAR 0 */
        seen |= 1u << type;
        if (type == 1) r->common = off;
        if (type == 2) {
            r->notify = off;
            r->notify_mult = cfg_rd(r, c + 16, 4);
        }
        if (type == 3) r->isr = off;
    }
    assert_int_equal(seen & 0xe, 0xe); /* common, notify, ISR (rng has no config) */
    assert_true(r->msix_cap != 0);
}

static void enable_msix(struct rig *r)
{
    uint32_t ctrl = cfg_rd(r, r->msix_cap + 2, 2);
    uint32_t nvec = (ctrl & 0x7ff) + 1;
    assert_int_equal(nvec, 2); /* one queue + config */
    uint32_t tbl = cfg_rd(r, r->msix_cap + 4, 4);
    assert_int_equal(tbl & 7, 0); /* in BAR 0 */
    for (uint32_t v = 0; v < nvec; v++) {
        uint64_t e = r->bar + (tbl & ~7u) + 16 * v;
        mmio_wr(r, e, 4, 0xfee00000u);
        mmio_wr(r, e + 4, 4, 0);
        mmio_wr(r, e + 8, 4, 0x40 + v);
        mmio_wr(r, e + 12, 4, 0); /* unmask */
    }
    pci_config_write(r->pci, 0, r->slot, 0, r->msix_cap + 2, 2, 0x8000);
}

#define DESC 0x10000u
#define AVAIL 0x11000u
#define USED 0x12000u
#define BUF 0x20000u

static void driver_init(struct rig *r, uint16_t qsize)
{
    uint64_t c = r->bar + r->common;
    mmio_wr(r, c + 0x14, 1, 0); /* reset */
    mmio_wr(r, c + 0x14, 1, 1 | 2);
    mmio_wr(r, c + 0x00, 4, 1);
    assert_true(mmio_rd(r, c + 0x04, 4) & 1); /* VERSION_1 */
    mmio_wr(r, c + 0x08, 4, 1);
    mmio_wr(r, c + 0x0c, 4, 1); /* accept VERSION_1 only */
    mmio_wr(r, c + 0x14, 1, 1 | 2 | 8);
    assert_true(mmio_rd(r, c + 0x14, 1) & 8);
    assert_int_equal(mmio_rd(r, c + 0x12, 2), 1);
    mmio_wr(r, c + 0x10, 2, 0); /* config vector 0 */
    mmio_wr(r, c + 0x16, 2, 0);
    assert_true(mmio_rd(r, c + 0x18, 2) >= qsize);
    mmio_wr(r, c + 0x18, 2, qsize);
    mmio_wr(r, c + 0x1a, 2, 1); /* queue vector 1 */
    assert_int_equal(mmio_rd(r, c + 0x1a, 2), 1);
    mmio_wr(r, c + 0x20, 4, DESC);
    mmio_wr(r, c + 0x24, 4, 0);
    mmio_wr(r, c + 0x28, 8, AVAIL);
    mmio_wr(r, c + 0x30, 8, USED);
    mmio_wr(r, c + 0x1c, 2, 1);
    mmio_wr(r, c + 0x14, 1, 1 | 2 | 8 | 4);
    assert_int_equal(mmio_rd(r, c + 0x14, 1), 1 | 2 | 8 | 4);
}

static void put_desc(struct rig *r, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                     uint16_t next)
{
    uint8_t *d = r->ram + DESC + 16u * i;
    nimbus_le_store(d, 8, addr);
    nimbus_le_store(d + 8, 4, len);
    nimbus_le_store(d + 12, 2, flags);
    nimbus_le_store(d + 14, 2, next);
}

static void publish(struct rig *r, uint16_t head)
{
    uint16_t idx = (uint16_t)nimbus_le_load(r->ram + AVAIL + 2, 2);
    uint16_t size = 8;
    nimbus_le_store(r->ram + AVAIL + 4 + 2u * (idx % size), 2, head);
    nimbus_le_store(r->ram + AVAIL + 2, 2, (uint16_t)(idx + 1));
    mmio_wr(r, r->bar + r->notify, 2, 0); /* kick queue 0 */
    /* The kick is an eventfd; the device runs on the loop thread. */
    for (int i = 0; i < 4; i++)
        el_run_once(r->el, 50);
}

static void test_rng_through_transport(void **state)
{
    struct rig *r = *state;
    discover(r);
    enable_msix(r);
    driver_init(r, 8);
    put_desc(r, 0, BUF, 64, 2 /* WRITE */, 0);
    publish(r, 0);
    assert_int_equal(nimbus_le_load(r->ram + USED + 2, 2), 1);
    assert_int_equal(nimbus_le_load(r->ram + USED + 4, 4), 0);      /* id */
    uint32_t got = (uint32_t)nimbus_le_load(r->ram + USED + 8, 4); /* len */
    assert_true(got > 0 && got <= 64);
    assert_memory_equal(r->ram + BUF, r->srcbytes, got);
    /* Queue vector 1 was routed to its message and fired. */
    uint32_t fired = 0;
    for (uint32_t h = 0; h < r->msi.next; h++)
        if (r->msi.data[h] == 0x41)
            fired += r->msi.fired[h];
    assert_true(fired >= 1);
}

static void test_hostile_chain_needs_reset(void **state)
{
    struct rig *r = *state;
    discover(r);
    enable_msix(r);
    driver_init(r, 8);
    /* A buffer far outside guest RAM must not be touched: NEEDS_RESET. */
    put_desc(r, 0, 0x7ff000000ull, 64, 2, 0);
    publish(r, 0);
    uint64_t c = r->bar + r->common;
    assert_true(mmio_rd(r, c + 0x14, 1) & 0x40);
    assert_int_equal(nimbus_le_load(r->ram + USED + 2, 2), 0);
    /* A device reset brings it back. */
    mmio_wr(r, c + 0x14, 1, 0);
    assert_int_equal(mmio_rd(r, c + 0x14, 1), 0);
    memset(r->ram + AVAIL, 0, 0x3000);
    driver_init(r, 8);
    put_desc(r, 0, BUF, 32, 2, 0);
    publish(r, 0);
    assert_int_equal(nimbus_le_load(r->ram + USED + 2, 2), 1);
}

static void test_bad_driver_inputs(void **state)
{
    struct rig *r = *state;
    discover(r);
    uint64_t c = r->bar + r->common;
    mmio_wr(r, c + 0x14, 1, 1 | 2);
    /* Not accepting VERSION_1: FEATURES_OK must not stick. */
    mmio_wr(r, c + 0x08, 4, 1);
    mmio_wr(r, c + 0x0c, 4, 0);
    mmio_wr(r, c + 0x14, 1, 1 | 2 | 8);
    assert_false(mmio_rd(r, c + 0x14, 1) & 8);
    /* Bad queue sizes are ignored; a vector beyond the table reads NO_VECTOR. */
    mmio_wr(r, c + 0x16, 2, 0);
    uint64_t max = mmio_rd(r, c + 0x18, 2);
    mmio_wr(r, c + 0x18, 2, 3);
    assert_int_equal(mmio_rd(r, c + 0x18, 2), max);
    mmio_wr(r, c + 0x18, 2, (uint32_t)max * 2);
    assert_int_equal(mmio_rd(r, c + 0x18, 2), max);
    mmio_wr(r, c + 0x1a, 2, 99);
    assert_int_equal(mmio_rd(r, c + 0x1a, 2), 0xffff);
    /* A queue that does not exist reads as size 0 and ignores writes. */
    mmio_wr(r, c + 0x16, 2, 5);
    assert_int_equal(mmio_rd(r, c + 0x18, 2), 0);
    mmio_wr(r, c + 0x1c, 2, 1);
    /* Reads past the common structure, odd widths: zeros, no crash. */
    assert_int_equal(mmio_rd(r, c + 0x3c, 4), 0);
    assert_int_equal(mmio_rd(r, c + 0xff8, 8), 0);
    mmio_wr(r, r->bar + r->notify + 4 * 40, 2, 0); /* notify for a missing queue */
    mmio_wr(r, r->bar + r->isr, 1, 0xff);
    (void)mmio_rd(r, r->bar + r->isr, 1);
}

/* Regression (issue 19): a guest repeating a refused FEATURES_OK (or any
 * other guest-triggered warning) gets a bounded number of log lines. */
static void test_guest_triggered_logs_are_limited(void **state)
{
    struct rig *r = *state;
    discover(r);
    uint64_t c = r->bar + r->common;
    char path[] = "/tmp/nimbus-vpci-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(log_set_file(path), 0);
    uint64_t dropped = log_suppressed_total();
    for (int i = 0; i < 1000; i++) {
        mmio_wr(r, c + 0x14, 1, 0); /* reset */
        mmio_wr(r, c + 0x14, 1, 1 | 2);
        mmio_wr(r, c + 0x08, 4, 1);
        mmio_wr(r, c + 0x0c, 4, 0); /* no VERSION_1 */
        mmio_wr(r, c + 0x14, 1, 1 | 2 | 8);
    }
    log_set_file("/dev/stderr");
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    int lines = 0, ch;
    while ((ch = fgetc(fp)) != EOF)
        lines += ch == '\n';
    fclose(fp);
    unlink(path);
    assert_true(lines >= 1);
    assert_true(lines <= (int)LOG_LIMIT_BURST + 1);
    assert_true(log_suppressed_total() - dropped >= 1000 - LOG_LIMIT_BURST);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rng_through_transport, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_chain_needs_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_driver_inputs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guest_triggered_logs_are_limited, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
