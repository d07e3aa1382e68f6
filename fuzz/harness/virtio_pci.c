/*
 * The core's virtio-pci transport as a guest driver sees it: PCI config
 * space, BAR 0 (common config, ISR, device config, notify, MSI-X table) and
 * ring memory, with a real virtio plugin (virtio_rng by default) behind it.
 * Input = a sequence of operations (QEMU generic-fuzzer style); between
 * inputs the device is reset and RAM cleared.  Findings are crashes, ASan
 * reports, and broken invariants: a device reset must bring the status back
 * to 0, and the transport must never report a queue as live after a reset.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "device.h"
#include "eventloop.h"
#include "fuzz_input.h"
#include "fuzz_target.h"
#include "layout.h"
#include "memory.h"
#include "nimbus/plugin_util.h"
#include "pci/pci.h"
#include "plugin_target.h"
#include "virtio/virtio_pci.h"

#define RAM_SIZE (1u << 20) /* rings and buffers live in the first MiB */

static struct {
    uint8_t *ram;
    struct guest_mem gm;
    struct bus pio, mmio;
    struct event_loop *el;
    struct pci_host *pci;
    struct device_env env;
    struct device *dev;
    uint32_t slot;
    uint32_t msi_next;
    uint32_t bar_lo, bar_hi; /* BAR 0 as the host placed it */
} g;

static int msi_alloc(void *o, uint32_t *h)
{
    (void)o;
    *h = g.msi_next++;
    return 0;
}
static void msi_release(void *o, uint32_t h) { (void)o; (void)h; }
static int msi_route(void *o, uint32_t h, uint64_t a, uint32_t d)
{
    (void)o; (void)h; (void)a; (void)d;
    return 0;
}
static int msi_fire(void *o, uint32_t h)
{
    (void)o; (void)h;
    return 0;
}
static const struct pci_msi_ops msi_ops = {msi_alloc, msi_release, msi_route, msi_fire};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *name = getenv("NIMBUS_FUZZ_PLUGIN");
    if (!name || !*name)
        name = "virtio_rng";
    char path[4096], err[512];
    if (pt_resolve(name, path, sizeof(path)) < 0) {
        fprintf(stderr, "fuzz_virtio_pci: plugin %s not found\n", name);
        exit(1);
    }
    g.ram = aligned_alloc(4096, RAM_SIZE);
    if (!g.ram || gm_wrap(&g.gm, g.ram, RAM_SIZE) < 0)
        exit(1);
    memset(g.ram, 0, RAM_SIZE);
    bus_init(&g.pio, "pio");
    bus_init(&g.mmio, "mmio");
    g.el = el_create();
    struct pci_windows w = {.ecam_base = LAYOUT_PCI_ECAM, .ecam_size = 1u << 20,
                            .mmio32_base = LAYOUT_MMIO32_START, .mmio32_size = 0x20000000,
                            .mmio64_base = 1ull << 32, .mmio64_size = 1ull << 32};
    g.pci = pci_host_create(&g.pio, &g.mmio, &w, &msi_ops, NULL, err, sizeof(err));
    if (!g.el || !g.pci) {
        fprintf(stderr, "fuzz_virtio_pci: setup: %s\n", err);
        exit(1);
    }
    g.env = (struct device_env){.mem = &g.gm, .el = g.el, .pio = &g.pio, .mmio = &g.mmio,
                                .pci = g.pci};
    const nimbus_plugin *p = plugin_load(path, NULL, err, sizeof(err));
    /* /dev/zero: deterministic bytes, never blocks, never ends. */
    g.dev = p ? device_create(p, "src=/dev/zero", &g.env, NULL, err, sizeof(err)) : NULL;
    if (!g.dev) {
        fprintf(stderr, "fuzz_virtio_pci: %s\n", err);
        exit(1);
    }
    for (g.slot = 1; g.slot < 32; g.slot++)
        if (pci_config_read(g.pci, 0, g.slot, 0, 0, 2) == 0x1af4)
            break;
    if (g.slot == 32)
        exit(1);
    g.bar_lo = pci_config_read(g.pci, 0, g.slot, 0, 0x10, 4);
    g.bar_hi = pci_config_read(g.pci, 0, g.slot, 0, 0x14, 4);
    return 0;
}

/*
 * BAR 0 back where the host put it, decoding on.  Inputs may move it
 * anywhere, over the ECAM window too (where the bus then finds config
 * space, not the device), and PCI config is not device state a reset
 * restores: without this, an input would depend on the ones before it.
 */
static void bar_restore(void)
{
    pci_config_write(g.pci, 0, g.slot, 0, 0x04, 2, 0);
    pci_config_write(g.pci, 0, g.slot, 0, 0x10, 4, g.bar_lo);
    pci_config_write(g.pci, 0, g.slot, 0, 0x14, 4, g.bar_hi);
    pci_config_write(g.pci, 0, g.slot, 0, 0x04, 2, 0x6);
}

static uint64_t bar0(void)
{
    uint64_t lo = pci_config_read(g.pci, 0, g.slot, 0, 0x10, 4);
    uint64_t hi = pci_config_read(g.pci, 0, g.slot, 0, 0x14, 4);
    return (hi << 32) | (lo & ~0xfull);
}

static void bar_access(uint32_t off, uint32_t len, uint64_t val, int is_write)
{
    uint8_t b[8];
    nimbus_le_store(b, 8, val);
    /* Not decoded (the input turned memory decoding off or moved it): no-op. */
    (void)bus_access(&g.mmio, bar0() + off, b, len, is_write);
}

/* A correct driver bring-up, so inputs reach live queues quickly. */
static void driver_up(struct fuzz_in *in)
{
    static const uint32_t sizes[] = {2, 4, 8, 16};
    uint32_t size = sizes[fin_u8(in) & 3];
    pci_config_write(g.pci, 0, g.slot, 0, 0x04, 2, 0x6);
    bar_access(0x14, 1, 0, 1);
    bar_access(0x14, 1, 3, 1);
    bar_access(0x08, 4, 1, 1);
    bar_access(0x0c, 4, 1, 1); /* VERSION_1 */
    bar_access(0x08, 4, 0, 1);
    bar_access(0x0c, 4, (uint64_t)fin_u8(in) << 24, 1);   /* maybe INDIRECT/EVENT_IDX */
    bar_access(0x14, 1, 11, 1);
    bar_access(0x16, 2, 0, 1);
    bar_access(0x18, 2, size, 1);
    bar_access(0x20, 8, 0x1000, 1);
    bar_access(0x28, 8, 0x2000, 1);
    bar_access(0x30, 8, 0x3000, 1);
    bar_access(0x1c, 2, 1, 1);
    bar_access(0x14, 1, 15, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    bar_restore();
    device_reset(g.dev);
    memset(g.ram, 0, 0x10000);
    unsigned ops = 0;
    while (fin_more(&in) && ops++ < 512) {
        uint8_t op = fin_u8(&in);
        uint32_t len = 1u << (fin_u8(&in) & 3); /* 1, 2, 4, 8 */
        switch (op % 8) {
        case 0: { /* config write (extended space through the same path) */
            uint32_t off = (uint32_t)fin_le(&in, 2) & 0xfff;
            uint32_t l = len > 4 ? 4 : len;
            pci_config_write(g.pci, 0, g.slot, 0, off & ~(l - 1), l, (uint32_t)fin_le(&in, 4));
            break;
        }
        case 1: {
            uint32_t off = (uint32_t)fin_le(&in, 2) & 0xfff;
            uint32_t l = len > 4 ? 4 : len;
            (void)pci_config_read(g.pci, 0, g.slot, 0, off & ~(l - 1), l);
            break;
        }
        case 2: {
            uint32_t off = (uint32_t)fin_le(&in, 2) % VPCI_BAR_SIZE;
            if (off + len > VPCI_BAR_SIZE)
                off = VPCI_BAR_SIZE - len;
            bar_access(off, len, fin_le(&in, len), 1);
            break;
        }
        case 3: {
            uint32_t off = (uint32_t)fin_le(&in, 2) % VPCI_BAR_SIZE;
            if (off + len > VPCI_BAR_SIZE)
                off = VPCI_BAR_SIZE - len;
            bar_access(off, len, 0, 0);
            break;
        }
        case 4: { /* guest memory: descriptors, rings, buffers */
            uint32_t off = (uint32_t)fin_le(&in, 2);
            const uint8_t *src;
            size_t n = fin_take(&in, 1 + (fin_u8(&in) & 31), &src);
            memcpy(g.ram + off, src, n);
            break;
        }
        case 5:
            el_run_once(g.el, 0);
            break;
        case 6:
            driver_up(&in);
            break;
        case 7: /* notify queue 0 (also through the notify window of case 2) */
            bar_access(VPCI_NOTIFY_OFF, 2, 0, 1);
            el_run_once(g.el, 0);
            break;
        }
    }
    el_run_once(g.el, 0);
    /* Invariant: a device reset always lands in status 0 with no live queue. */
    device_reset(g.dev);
    bar_restore();
    uint8_t b[8] = {0};
    if (bus_access(&g.mmio, bar0() + 0x14, b, 1, 0) == 0 && b[0] != 0)
        fuzz_fail("device status %#x after reset", b[0]);
    return 0;
}
