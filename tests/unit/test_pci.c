/*
 * PCI host: config space through ports 0xCF8/0xCFC and ECAM (the host
 * bridge, functions, absent devices), writable masks, BAR pre-assignment,
 * sizing, decoding and moving (with the owner's bar_remap callbacks), the
 * capability list, reset, and hostile accesses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include <pthread.h>
#include <time.h>

#include "test_pci_util.h"

static unsigned count_fires(const struct msi_rec *r)
{
    unsigned n = 0;
    for (unsigned i = 0; i < r->n; i++)
        n += r->ev[i].kind == EV_FIRE;
    return n;
}

/* Both mechanisms must agree on every dword of a function's header. */
static void assert_mechanisms_agree(struct rig *r, uint32_t slot)
{
    for (uint32_t off = 0; off < 256; off += 4)
        assert_int_equal(cf8_rd(r, slot, off, 4), ecam_rd(r, slot, off, 4));
}

static void test_host_bridge(void **state)
{
    (void)state;
    struct rig *r = rig_new(1);
    for (int via_ecam = 0; via_ecam < 2; via_ecam++) {
        uint32_t (*rd)(struct rig *, uint32_t, uint32_t, uint32_t) = via_ecam ? ecam_rd : cf8_rd;
        assert_int_equal(rd(r, 0, 0x00, 4), 0x00081b36u);
        assert_int_equal(rd(r, 0, 0x00, 2), 0x1b36);
        assert_int_equal(rd(r, 0, 0x02, 2), 0x0008);
        assert_int_equal(rd(r, 0, 0x08, 4) >> 8, 0x060000u);
        assert_int_equal(rd(r, 0, 0x0e, 1), 0); /* header type 0, single function */
        assert_int_equal(rd(r, 0, 0x10, 4), 0); /* no BARs */
        assert_int_equal(rd(r, 0, 0x06, 2) & PCI_STATUS_CAP_LIST, 0);
        assert_int_equal(rd(r, 0, 0x3d, 1), 0); /* no interrupt pin */
        /* Absent device: all-ones at every width. */
        assert_int_equal(rd(r, 1, 0x00, 4), 0xffffffffu);
        assert_int_equal(rd(r, 31, 0x00, 2), 0xffff);
        assert_int_equal(rd(r, 5, 0x3c, 1), 0xff);
    }
    assert_mechanisms_agree(r, 0);
    /* Functions 1-7 of a present device are absent. */
    for (uint32_t fn = 1; fn < 8; fn++) {
        pio_wr(r, 0xcf8, 4, cf8_addr(0, 0, fn, 0));
        assert_int_equal(pio_rd(r, 0xcfc, 4), 0xffffffffu);
        assert_int_equal(mmio_rd(r, ecam_addr(0, 0, fn, 0), 4), 0xffffffffu);
    }
    /* Bus 1 through CF8; ECAM only maps bus 0 (what the MCFG announces). */
    pio_wr(r, 0xcf8, 4, cf8_addr(1, 0, 0, 0));
    assert_int_equal(pio_rd(r, 0xcfc, 4), 0xffffffffu);
    assert_int_equal(mmio_rd(r, ecam_addr(1, 0, 0, 0), 4), 0xffffffffu);
    assert_int_equal(r->mmio.n, 3); /* ECAM (1 MiB), 32-bit window, 64-bit window */
    /* Extended config space exists (zeros) for present functions only. */
    assert_int_equal(ecam_rd(r, 0, 0x100, 4), 0);
    assert_int_equal(ecam_rd(r, 0, 0xffc, 4), 0);
    assert_int_equal(ecam_rd(r, 3, 0x100, 4), 0xffffffffu);
    /* Read-only identity. */
    ecam_wr(r, 0, 0x00, 4, 0x12345678);
    cf8_wr(r, 0, 0x08, 4, 0);
    assert_int_equal(cf8_rd(r, 0, 0x00, 4), 0x00081b36u);
    assert_int_equal(cf8_rd(r, 0, 0x08, 4) >> 8, 0x060000u);
    rig_free(r);
}

static void test_cf8_latch(void **state)
{
    (void)state;
    struct rig *r = rig_new(1);
    /* Reserved bits 30:24 and 1:0 do not latch. */
    pio_wr(r, 0xcf8, 4, 0xffffffffu);
    assert_int_equal(pio_rd(r, 0xcf8, 4), 0x80fffffcu);
    assert_int_equal(pio_rd(r, 0xcfa, 2), 0x80ff);
    /* ... and do not select anything: bus 0xff slot 31 fn 7 is absent. */
    assert_int_equal(pio_rd(r, 0xcfc, 4), 0xffffffffu);
    /* Only dword writes latch (Linux pokes 0xCFB with a byte when probing). */
    pio_wr(r, 0xcf8, 4, cf8_addr(0, 0, 0, 0));
    pio_wr(r, 0xcfb, 1, 0x01);
    pio_wr(r, 0xcf8, 2, 0x1234);
    assert_int_equal(pio_rd(r, 0xcf8, 4), 0x80000000u);
    /* Enable bit clear: data reads all-ones, writes go nowhere. */
    pio_wr(r, 0xcf8, 4, 0x00000000u);
    assert_int_equal(pio_rd(r, 0xcfc, 4), 0xffffffffu);
    pio_wr(r, 0xcfc, 4, 0);
    /* Sub-dword data accesses at every offset inside the dword. */
    pio_wr(r, 0xcf8, 4, cf8_addr(0, 0, 0, 0));
    assert_int_equal(pio_rd(r, 0xcfc, 1), 0x36);
    assert_int_equal(pio_rd(r, 0xcfd, 1), 0x1b);
    assert_int_equal(pio_rd(r, 0xcfe, 1), 0x08);
    assert_int_equal(pio_rd(r, 0xcff, 1), 0x00);
    assert_int_equal(pio_rd(r, 0xcfd, 2), 0x081b);
    assert_int_equal(pio_rd(r, 0xcfe, 2), 0x0008);
    /* An access that would run past 0xCFF is not claimed at all. */
    assert_int_equal(pio_rd(r, 0xcfe, 4), 0xffffffffu);
    /* The register offset's low bits come from the port, not the latch. */
    pio_wr(r, 0xcf8, 4, cf8_addr(0, 0, 0, 0) | 3u);
    assert_int_equal(pio_rd(r, 0xcf8, 4), 0x80000000u);
    rig_free(r);
}

static void test_function_header(void **state)
{
    (void)state;
    struct rig *r = rig_new(1);
    struct owner o = {0};
    struct pci_func *f = add_func(r, &o, 0x1042);
    assert_int_equal(pci_func_slot(f), 1);
    assert_int_equal(cf8_rd(r, 1, 0x00, 4), 0x10421af4u);
    assert_int_equal(cf8_rd(r, 1, 0x08, 4), 0x01800001u);
    assert_int_equal(cf8_rd(r, 1, 0x2c, 4), 0x11001af4u);
    assert_int_equal(cf8_rd(r, 1, 0x0e, 1), 0);
    assert_int_equal(cf8_rd(r, 1, 0x3d, 1), 0);
    assert_int_equal(cf8_rd(r, 1, 0x30, 4), 0); /* no expansion ROM */
    cf8_wr(r, 1, 0x30, 4, 0xffffffffu);
    assert_int_equal(cf8_rd(r, 1, 0x30, 4), 0);

    /* COMMAND: only IO, MEM, MASTER, PARITY, SERR and INTX_DISABLE stick. */
    cf8_wr(r, 1, 0x04, 2, 0xffff);
    assert_int_equal(cf8_rd(r, 1, 0x04, 2), 0x0547);
    cf8_wr(r, 1, 0x04, 2, 0);
    /* STATUS is read-only (no error bits to clear). */
    cf8_wr(r, 1, 0x06, 2, 0xffff);
    assert_int_equal(cf8_rd(r, 1, 0x06, 2), 0);
    /* Interrupt line and cache line size are scratch registers. */
    ecam_wr(r, 1, 0x3c, 1, 0x0b);
    assert_int_equal(cf8_rd(r, 1, 0x3c, 4), 0x0000000bu);
    cf8_wr(r, 1, 0x0c, 1, 0x10);
    assert_int_equal(ecam_rd(r, 1, 0x0c, 1), 0x10);
    /* A dword write across read-only and writable bytes keeps the read-only ones. */
    cf8_wr(r, 1, 0x3c, 4, 0xffffff22u);
    assert_int_equal(cf8_rd(r, 1, 0x3c, 4), 0x00000022u);
    assert_mechanisms_agree(r, 1);

    /* Slots fill 1..31, then adding fails with a message. */
    for (uint32_t s = 2; s < 32; s++)
        assert_int_equal(pci_func_slot(add_func(r, &o, 0x1041)), s);
    struct pci_func_ids ids = {.vendor = 0x1af4, .device = 1};
    assert_null(pci_func_add(r->h, &ids, &own_ops, &o, r->err, sizeof(r->err)));
    assert_non_null(strstr(r->err, "slots"));
    rig_free(r);

    r = rig_new(1);
    ids.vendor = 0xffff;
    assert_null(pci_func_add(r->h, &ids, NULL, NULL, r->err, sizeof(r->err)));
    assert_non_null(strstr(r->err, "0xffff"));
    ids.vendor = 0x1af4;
    ids.class_code = 0x1000000;
    assert_null(pci_func_add(r->h, &ids, NULL, NULL, r->err, sizeof(r->err)));
    assert_null(pci_func_add(r->h, NULL, NULL, NULL, r->err, sizeof(r->err)));
    assert_null(pci_func_add(NULL, &ids, NULL, NULL, r->err, sizeof(r->err)));
    /* No ops at all: BAR reads give zeros, nothing crashes. */
    ids.class_code = 0;
    struct pci_func *f2 = pci_func_add(r->h, &ids, NULL, NULL, r->err, sizeof(r->err));
    assert_non_null(f2);
    assert_int_equal(pci_func_add_bar(f2, 0, 4096, PCI_BAR_MEM32), 0);
    cf8_wr(r, 1, 0x04, 2, PCI_CMD_MEM);
    assert_int_equal(mmio_rd(r, pci_func_bar_addr(f2, 0), 4), 0);
    mmio_wr(r, pci_func_bar_addr(f2, 0), 4, 1);
    rig_free(r);
}

static void test_bar_assign_and_size(void **state)
{
    (void)state;
    struct rig *r = rig_new(1);
    struct owner o = {0};
    struct pci_func *f = add_func(r, &o, 0x1042);
    assert_int_equal(pci_func_add_bar(f, 0, 64 << 10, PCI_BAR_MEM32), 0);
    assert_int_equal(pci_func_add_bar(f, 2, 1 << 20, PCI_BAR_MEM64 | PCI_BAR_PREFETCH), 0);
    assert_int_equal(pci_func_add_bar(f, 4, 16 << 10, PCI_BAR_MEM32 | PCI_BAR_PREFETCH), 0);

    /* Pre-assigned, naturally aligned, inside the right window. */
    uint64_t a0 = pci_func_bar_addr(f, 0), a2 = pci_func_bar_addr(f, 2);
    uint64_t a4 = pci_func_bar_addr(f, 4);
    assert_int_equal(a0 % (64 << 10), 0);
    assert_true(a0 >= T_MMIO32 && a0 + (64 << 10) <= T_MMIO32 + T_MMIO32_SIZE);
    assert_int_equal(a2 % (1 << 20), 0);
    assert_true(a2 >= T_MMIO64 && a2 + (1 << 20) <= T_MMIO64 + T_MMIO64_SIZE);
    assert_true(a4 >= T_MMIO32 && a4 % (16 << 10) == 0 && (a4 >= a0 + (64 << 10) || a4 + (16 << 10) <= a0));
    assert_int_equal(pci_func_bar_addr(f, 3), 0); /* high half of BAR2 */
    assert_int_equal(pci_func_bar_addr(f, 1), 0);
    assert_int_equal(pci_func_bar_addr(f, 6), 0);

    /* Register contents: address | type bits. */
    assert_int_equal(cf8_rd(r, 1, 0x10, 4), (uint32_t)a0);
    assert_int_equal(cf8_rd(r, 1, 0x18, 4), (uint32_t)a2 | 0xc);
    assert_int_equal(cf8_rd(r, 1, 0x1c, 4), (uint32_t)(a2 >> 32));
    assert_int_equal(cf8_rd(r, 1, 0x20, 4), (uint32_t)a4 | 0x8);
    assert_int_equal(cf8_rd(r, 1, 0x14, 4), 0); /* unused BARs read 0 and stay 0 */
    cf8_wr(r, 1, 0x14, 4, 0xffffffffu);
    assert_int_equal(cf8_rd(r, 1, 0x14, 4), 0);
    cf8_wr(r, 1, 0x24, 4, 0xffffffffu);
    assert_int_equal(cf8_rd(r, 1, 0x24, 4), 0);

    /* Sizing: all-ones in, size mask out, type bits kept. */
    cf8_wr(r, 1, 0x10, 4, 0xffffffffu);
    assert_int_equal(cf8_rd(r, 1, 0x10, 4), 0xffff0000u);
    cf8_wr(r, 1, 0x10, 4, (uint32_t)a0);
    ecam_wr(r, 1, 0x18, 4, 0xffffffffu);
    ecam_wr(r, 1, 0x1c, 4, 0xffffffffu);
    assert_int_equal(ecam_rd(r, 1, 0x18, 4), 0xfff0000cu);
    assert_int_equal(ecam_rd(r, 1, 0x1c, 4), 0xffffffffu);
    ecam_wr(r, 1, 0x18, 4, (uint32_t)a2);
    ecam_wr(r, 1, 0x1c, 4, (uint32_t)(a2 >> 32));
    assert_int_equal(pci_func_bar_addr(f, 2), a2);
    /* Byte writes merge with the mask too. */
    cf8_wr(r, 1, 0x13, 1, 0x12);
    assert_int_equal(cf8_rd(r, 1, 0x10, 4), ((uint32_t)a0 & 0x00ffffffu) | 0x12000000u);
    cf8_wr(r, 1, 0x10, 4, (uint32_t)a0);
    /* None of that decoded anything: memory decoding is still off. */
    assert_int_equal(o.nremaps, 0);

    /* Bad requests. */
    assert_int_equal(pci_func_add_bar(f, 0, 4096, PCI_BAR_MEM32), -EBUSY);
    assert_int_equal(pci_func_add_bar(f, 3, 4096, PCI_BAR_MEM32), -EBUSY); /* BAR2's high half */
    assert_int_equal(pci_func_add_bar(f, 1, 4096, PCI_BAR_MEM64), -EBUSY); /* would take BAR2 */
    assert_int_equal(pci_func_add_bar(f, 5, 4096, PCI_BAR_MEM64), -EINVAL);
    assert_int_equal(pci_func_add_bar(f, 6, 4096, PCI_BAR_MEM32), -EINVAL);
    assert_int_equal(pci_func_add_bar(f, 1, 2048, PCI_BAR_MEM32), -EINVAL);
    assert_int_equal(pci_func_add_bar(f, 1, 12288, PCI_BAR_MEM32), -EINVAL);
    assert_int_equal(pci_func_add_bar(f, 1, 4096, 0), -EINVAL);
    assert_int_equal(pci_func_add_bar(f, 1, 4096, PCI_BAR_MEM32 | PCI_BAR_MEM64), -EINVAL);
    assert_int_equal(pci_func_add_bar(f, 1, 4ull << 30, PCI_BAR_MEM32), -EINVAL);
    assert_int_equal(pci_func_add_bar(NULL, 1, 4096, PCI_BAR_MEM32), -EINVAL);
    /* Larger than the 32-bit window. */
    assert_int_equal(pci_func_add_bar(f, 1, 1ull << 30, PCI_BAR_MEM32), -ENOSPC);
    /* The host bridge has none. */
    struct pci_func *bridge = pci_lookup(r->h, 0, 0, 0);
    assert_int_equal(pci_func_add_bar(bridge, 0, 4096, PCI_BAR_MEM32), -EINVAL);
    rig_free(r);
}

static void test_bar_decode(void **state)
{
    (void)state;
    struct rig *r = rig_new(1);
    struct owner o = {0};
    struct pci_func *f = add_func(r, &o, 0x1042);
    assert_int_equal(pci_func_add_bar(f, 0, 64 << 10, PCI_BAR_MEM32), 0);
    assert_int_equal(pci_func_add_bar(f, 2, 1 << 20, PCI_BAR_MEM64), 0);
    uint64_t a0 = pci_func_bar_addr(f, 0), a2 = pci_func_bar_addr(f, 2);

    /* Off: master abort. */
    assert_int_equal(mmio_rd(r, a0, 4), 0xffffffffu);
    assert_int_equal(o.nio, 0);

    cf8_wr(r, 1, 0x04, 2, PCI_CMD_MEM | PCI_CMD_MASTER);
    assert_int_equal(o.nremaps, 2);
    assert_int_equal(o.remaps[0].bar, 0);
    assert_int_equal(o.remaps[0].addr, a0);
    assert_int_equal(o.remaps[0].mapped, 1);
    assert_int_equal(o.remaps[1].bar, 2);
    assert_int_equal(o.remaps[1].addr, a2);
    assert_int_equal(o.remaps[1].mapped, 1);

    /* Reads and writes reach bar_io with BAR-relative offsets. */
    assert_int_equal(mmio_rd(r, a0 + 0x10, 4), 0x13121110u);
    assert_int_equal(o.last_bar, 0);
    assert_int_equal(o.last_off, 0x10);
    mmio_wr(r, a2 + 0x8, 8, 0x1122334455667788ull);
    assert_int_equal(o.last_bar, 2);
    assert_int_equal(o.last_off, 0x8);
    assert_int_equal(o.last_len, 8);
    assert_true(o.last_write);
    assert_int_equal(o.last_val, 0x1122334455667788ull);
    /* The last byte of a BAR, and just past it. */
    assert_int_equal(mmio_rd(r, a0 + 0xffff, 1), (uint8_t)(0xffff));
    unsigned nio = o.nio;
    assert_int_equal(mmio_rd(r, a0 + 0x10000, 4), 0xffffffffu);
    assert_int_equal(mmio_rd(r, a0 + 0xfffe, 4), 0xffffffffu); /* straddles the end */
    assert_int_equal(o.nio, nio);

    /* Moving a decoded BAR: unmapped at the old address, then mapped at the new. */
    uint64_t nb = a0 + (16ull << 20);
    cf8_wr(r, 1, 0x10, 4, (uint32_t)nb);
    assert_int_equal(o.nremaps, 4);
    assert_int_equal(o.remaps[2].mapped, 0);
    assert_int_equal(o.remaps[2].addr, a0);
    assert_int_equal(o.remaps[3].mapped, 1);
    assert_int_equal(o.remaps[3].addr, nb);
    assert_int_equal(mmio_rd(r, a0, 4), 0xffffffffu);
    assert_int_equal(mmio_rd(r, nb + 4, 1), 4);

    /* Sizing while decoding: the all-ones address is outside every window. */
    cf8_wr(r, 1, 0x10, 4, 0xffffffffu);
    assert_int_equal(o.nremaps, 5);
    assert_int_equal(o.remaps[4].mapped, 0);
    assert_int_equal(mmio_rd(r, nb, 4), 0xffffffffu);
    cf8_wr(r, 1, 0x10, 4, (uint32_t)a0);
    assert_int_equal(o.nremaps, 6);
    assert_int_equal(o.remaps[5].addr, a0);

    /* A 32-bit BAR cannot live in the 64-bit window; a 64-bit one may use both. */
    ecam_wr(r, 1, 0x18, 4, (uint32_t)(T_MMIO32 + (256u << 20)));
    ecam_wr(r, 1, 0x1c, 4, 0);
    assert_int_equal(mmio_rd(r, T_MMIO32 + (256u << 20) + 1, 1), 3); /* offset 1 + BAR 2 */
    /* Half-written 64-bit address (high first) is simply not decoded meanwhile. */
    ecam_wr(r, 1, 0x1c, 4, (uint32_t)(a2 >> 32));
    assert_int_equal(mmio_rd(r, T_MMIO32 + (256u << 20), 4), 0xffffffffu);
    ecam_wr(r, 1, 0x18, 4, (uint32_t)a2);
    assert_int_equal(mmio_rd(r, a2, 1), 2);

    /* Outside the windows (RAM, ECAM, APIC): never decoded. */
    static const uint64_t bad[] = {0x100000, LAYOUT_PCI_ECAM, LAYOUT_IOAPIC,
                                   T_MMIO32 + T_MMIO32_SIZE - 0x8000};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cf8_wr(r, 1, 0x10, 4, (uint32_t)bad[i]);
        for (size_t k = 0; k < r->h->bars.n; k++)
            assert_true(r->h->bars.ranges[k].base != bad[i]);
    }
    assert_int_equal(ecam_rd(r, 0, 0, 4), 0x00081b36u); /* ECAM still answers */
    cf8_wr(r, 1, 0x10, 4, (uint32_t)a0);

    /* Memory decoding off: both go away. */
    unsigned before = o.nremaps;
    cf8_wr(r, 1, 0x04, 2, 0);
    assert_int_equal(o.nremaps, before + 2);
    assert_int_equal(o.remaps[before].mapped + o.remaps[before + 1].mapped, 0);
    assert_int_equal(r->h->bars.n, 0);
    assert_int_equal(mmio_rd(r, a0, 4), 0xffffffffu);
    /* Writing the same COMMAND value again changes nothing. */
    cf8_wr(r, 1, 0x04, 2, 0);
    assert_int_equal(o.nremaps, before + 2);
    rig_free(r);
}

static void test_bar_overlap(void **state)
{
    (void)state;
    struct rig *r = rig_new(1);
    struct owner o1 = {0}, o2 = {0};
    struct pci_func *f1 = add_func(r, &o1, 0x1042);
    struct pci_func *f2 = add_func(r, &o2, 0x1043);
    assert_int_equal(pci_func_add_bar(f1, 0, 64 << 10, PCI_BAR_MEM32), 0);
    assert_int_equal(pci_func_add_bar(f2, 0, 64 << 10, PCI_BAR_MEM32), 0);
    uint64_t a1 = pci_func_bar_addr(f1, 0), a2 = pci_func_bar_addr(f2, 0);
    assert_true(a1 != a2);
    cf8_wr(r, 1, 0x04, 2, PCI_CMD_MEM);
    cf8_wr(r, 2, 0x04, 2, PCI_CMD_MEM);
    /* f2 moved on top of f1: f1 keeps the range, f2 is off. */
    cf8_wr(r, 2, 0x10, 4, (uint32_t)a1);
    assert_int_equal(o2.nremaps, 2);
    assert_int_equal(o2.remaps[1].mapped, 0);
    assert_int_equal(mmio_rd(r, a1, 1), 0);
    assert_int_equal(o1.nio, 1);
    assert_int_equal(o2.nio, 0);
    /* f1 moves away: f2 gets decoded where it asked to be. */
    cf8_wr(r, 1, 0x10, 4, (uint32_t)a2);
    assert_int_equal(o2.nremaps, 3);
    assert_int_equal(o2.remaps[2].mapped, 1);
    assert_int_equal(o2.remaps[2].addr, a1);
    mmio_rd(r, a1, 1);
    assert_int_equal(o2.nio, 1);
    mmio_rd(r, a2, 1);
    assert_int_equal(o1.nio, 2);
    rig_free(r);
}

static void test_bar_window_fallback(void **state)
{
    (void)state;
    struct bus pio, mmio;
    bus_init(&pio, "pio");
    bus_init(&mmio, "mmio");
    struct pci_windows w = t_windows;
    w.mmio64_base = w.mmio64_size = 0; /* no 64-bit window */
    char err[256];
    struct pci_host *h = pci_host_create(&pio, &mmio, &w, NULL, NULL, err, sizeof(err));
    assert_non_null(h);
    assert_int_equal(mmio.n, 2);
    struct pci_func_ids ids = {.vendor = 0x1af4, .device = 0x1042};
    struct pci_func *f = pci_func_add(h, &ids, NULL, NULL, err, sizeof(err));
    assert_non_null(f);
    assert_int_equal(pci_func_add_bar(f, 0, 1 << 20, PCI_BAR_MEM64), 0);
    uint64_t a = pci_func_bar_addr(f, 0);
    assert_true(a >= T_MMIO32 && a < T_MMIO32 + T_MMIO32_SIZE);
    /* Fill the 32-bit window: 511 MiB left. */
    assert_int_equal(pci_func_add_bar(f, 2, 256 << 20, PCI_BAR_MEM64), 0);
    assert_int_equal(pci_func_add_bar(f, 4, 256 << 20, PCI_BAR_MEM64), -ENOSPC);
    pci_host_destroy(h);
    assert_int_equal(pio.n, 0);
    assert_int_equal(mmio.n, 0);
    bus_destroy(&pio);
    bus_destroy(&mmio);
}

static void test_caps(void **state)
{
    (void)state;
    struct rig *r = rig_new(1);
    struct owner o = {0};
    struct pci_func *f = add_func(r, &o, 0x1042);
    assert_int_equal(cf8_rd(r, 1, 0x34, 1), 0);
    uint8_t vcap[16] = {0x09, 0xee, 16, 1, 0, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd};
    uint8_t small[6] = {0x05, 0x77, 1, 2, 3, 4};
    uint32_t off1 = 0, off2 = 0, off3 = 0;
    assert_int_equal(pci_func_add_cap(f, vcap, sizeof(vcap), &off1), 0);
    assert_int_equal(pci_func_add_cap(f, small, sizeof(small), &off2), 0);
    assert_int_equal(pci_func_add_cap(f, vcap, sizeof(vcap), &off3), 0);
    assert_int_equal(off1, 0x40);
    assert_int_equal(off2, 0x50);
    assert_int_equal(off3, 0x58); /* 0x56 rounded up to a dword */
    assert_true(cf8_rd(r, 1, 0x06, 2) & PCI_STATUS_CAP_LIST);
    /* Walk the list the way a driver does. */
    uint32_t at = cf8_rd(r, 1, 0x34, 1), seen[3], n = 0;
    while (at && n < 4) {
        seen[n++] = at;
        at = ecam_rd(r, 1, at + 1, 1);
    }
    assert_int_equal(n, 3);
    assert_int_equal(seen[0], off1);
    assert_int_equal(seen[1], off2);
    assert_int_equal(seen[2], off3);
    assert_int_equal(ecam_rd(r, 1, off1, 1), 0x09);
    assert_int_equal(ecam_rd(r, 1, off1 + 8, 4), 0xddccbbaau);
    assert_int_equal(ecam_rd(r, 1, off2 + 2, 2), 0x0201u);
    assert_int_equal(ecam_rd(r, 1, off2 + 4, 2), 0x0403u);
    assert_int_equal(ecam_rd(r, 1, off2 + 2, 4), 0xffffffffu); /* crosses a dword */
    /* Read-only to the guest. */
    cf8_wr(r, 1, off1 + 8, 4, 0);
    cf8_wr(r, 1, off1 + 1, 1, 0);
    cf8_wr(r, 1, 0x34, 1, 0);
    assert_int_equal(ecam_rd(r, 1, off1 + 8, 4), 0xddccbbaau);
    assert_int_equal(cf8_rd(r, 1, 0x34, 1), off1);
    assert_int_equal(ecam_rd(r, 1, off1 + 1, 1), off2);
    /* Full: 0x68 + 0x98 = 0x100 fits exactly, then nothing does. */
    uint8_t big[0x98] = {0x09};
    assert_int_equal(pci_func_add_cap(f, big, sizeof(big), NULL), 0);
    assert_int_equal(pci_func_add_cap(f, small, 2, NULL), -ENOSPC);
    assert_int_equal(pci_func_add_cap(f, small, 1, NULL), -EINVAL);
    assert_int_equal(pci_func_add_cap(f, NULL, 4, NULL), -EINVAL);
    assert_int_equal(pci_func_add_cap(NULL, small, 4, NULL), -EINVAL);
    rig_free(r);
}

static void test_reset(void **state)
{
    (void)state;
    struct rig *r = rig_new(1);
    struct owner o = {0};
    struct pci_func *f = add_func(r, &o, 0x1042);
    assert_int_equal(pci_func_add_bar(f, 0, 64 << 10, PCI_BAR_MEM32), 0);
    uint64_t a0 = pci_func_bar_addr(f, 0);
    uint64_t moved = a0 + (1 << 20);
    cf8_wr(r, 1, 0x10, 4, (uint32_t)moved);
    cf8_wr(r, 1, 0x04, 2, PCI_CMD_MEM | PCI_CMD_MASTER);
    cf8_wr(r, 1, 0x3c, 1, 11);
    cf8_wr(r, 1, 0x0c, 1, 16);
    assert_int_equal(o.nremaps, 1);
    pci_func_reset(f);
    assert_int_equal(cf8_rd(r, 1, 0x04, 2), 0);
    assert_int_equal(cf8_rd(r, 1, 0x3c, 1), 0);
    assert_int_equal(cf8_rd(r, 1, 0x0c, 1), 0);
    assert_int_equal(o.nremaps, 2);
    assert_int_equal(o.remaps[1].mapped, 0);
    assert_int_equal(o.remaps[1].addr, moved);
    /* BARs keep the address the guest gave them. */
    assert_int_equal(pci_func_bar_addr(f, 0), moved);
    assert_int_equal(mmio_rd(r, moved, 4), 0xffffffffu);
    pci_func_reset(NULL);
    rig_free(r);
}

/* A function taken off the bus (a device that failed half-way, later an
 * unplug) is gone for the guest at once, gives its routes back, and a BAR
 * it shadowed decodes; its slot goes to the next function added. */
static void test_remove(void **state)
{
    (void)state;
    struct rig *r = rig_new(1);
    struct owner o1 = {0}, o2 = {0};
    struct pci_func *f1 = add_func(r, &o1, 0x1042);
    struct pci_func *f2 = add_func(r, &o2, 0x1043);
    assert_int_equal(pci_func_slot(f1), 1);
    assert_int_equal(pci_func_slot(f2), 2);
    assert_int_equal(pci_func_add_bar(f1, 0, 64 << 10, PCI_BAR_MEM32), 0);
    assert_int_equal(pci_func_add_bar(f2, 0, 64 << 10, PCI_BAR_MEM32), 0);
    assert_int_equal(pci_func_add_msix(f1, 4, 0, 0x8000, 0x9000), 0);
    uint64_t a1 = pci_func_bar_addr(f1, 0);
    cf8_wr(r, 1, 0x04, 2, PCI_CMD_MEM | PCI_CMD_MASTER);
    /* Function 2's BAR moved onto function 1's: it waits for the space. */
    cf8_wr(r, 2, 0x10, 4, (uint32_t)a1);
    cf8_wr(r, 2, 0x04, 2, PCI_CMD_MEM | PCI_CMD_MASTER);
    uint32_t cap = 0x40; /* the MSI-X capability, the first one */
    cf8_wr(r, 1, cap + 2, 2, 0x8000); /* MSI-X enable */
    assert_true(r->msi.live > 0);
    assert_int_equal(mmio_rd(r, a1 + 0x10, 4), 0x13121110u);
    unsigned io1 = o1.nio, io2 = o2.nio;
    assert_int_equal(o2.nremaps, 0);

    unsigned remaps1 = o1.nremaps;
    pci_func_remove(f1);
    assert_int_equal(o1.nremaps, remaps1); /* the owner is not called */
    assert_int_equal(r->msi.live, 0);
    assert_int_equal(cf8_rd(r, 1, 0x00, 4), 0xffffffffu);
    assert_int_equal(ecam_rd(r, 1, 0x00, 4), 0xffffffffu);
    cf8_wr(r, 1, 0x04, 2, PCI_CMD_MEM); /* ignored, no crash */
    /* The address now reaches function 2, never function 1. */
    assert_int_equal(o2.nremaps, 1);
    assert_int_equal(o2.remaps[0].mapped, 1);
    assert_int_equal(mmio_rd(r, a1 + 0x10, 4), 0x13121110u);
    assert_int_equal(o1.nio, io1);
    assert_int_equal(o2.nio, io2 + 1);

    struct owner o3 = {0};
    struct pci_func *f3 = add_func(r, &o3, 0x1044);
    assert_int_equal(pci_func_slot(f3), 1);
    assert_int_equal(cf8_rd(r, 1, 0x00, 4), 0x10441af4u);
    assert_int_equal(cf8_rd(r, 1, 0x04, 2), 0); /* a fresh function */
    pci_func_remove(NULL);
    rig_free(r);
}

static void test_hostile(void **state)
{
    (void)state;
    struct rig *r = rig_new(1);
    struct owner o = {0};
    add_func(r, &o, 0x1042);
    /* Odd sizes and dword-crossing accesses: all-ones, writes dropped. */
    assert_int_equal(pci_config_read(r->h, 0, 1, 0, 0, 3), 0xffffffu);
    assert_int_equal(pci_config_read(r->h, 0, 1, 0, 3, 2), 0xffff);
    assert_int_equal(pci_config_read(r->h, 0, 1, 0, 2, 4), 0xffffffffu);
    assert_int_equal(pci_config_read(r->h, 0, 1, 0, 0, 0), 0);
    assert_int_equal(pci_config_read(r->h, 0, 1, 0, 0, 8), 0xffffffffu);
    assert_int_equal(pci_config_read(r->h, 0, 1, 0, 4096, 4), 0xffffffffu);
    assert_int_equal(pci_config_read(r->h, 0, 1, 0, UINT32_MAX, 1), 0xff);
    assert_int_equal(pci_config_read(r->h, 0, 32, 0, 0, 4), 0xffffffffu);
    assert_int_equal(pci_config_read(r->h, 0, UINT32_MAX, 0, 0, 4), 0xffffffffu);
    assert_int_equal(pci_config_read(r->h, 1, 1, 0, 0, 4), 0xffffffffu);
    assert_int_equal(pci_config_read(r->h, 0, 1, 8, 0, 4), 0xffffffffu);
    assert_int_equal(pci_config_read(NULL, 0, 1, 0, 0, 4), 0xffffffffu);
    pci_config_write(r->h, 0, 1, 0, 0x3b, 2, 0xffff);
    pci_config_write(r->h, 0, 1, 0, 0x3c, 3, 0xffffff);
    pci_config_write(r->h, 0, 1, 0, 0x1000, 4, 0);
    pci_config_write(r->h, 0, 1, 0, 0x104, 4, 0xffffffffu);
    pci_config_write(r->h, 0, 40, 0, 0x3c, 1, 1);
    pci_config_write(r->h, 2, 1, 0, 0x3c, 1, 1);
    pci_config_write(NULL, 0, 1, 0, 0x3c, 1, 1);
    assert_int_equal(pci_config_read(r->h, 0, 1, 0, 0x3c, 1), 0);
    assert_int_equal(pci_config_read(r->h, 0, 1, 0, 0x104, 4), 0);

    /* ECAM: 8-byte aligned accesses are two dwords, others all-ones. */
    assert_int_equal(mmio_rd(r, ecam_addr(0, 1, 0, 0), 8), 0x0000000010421af4ull);
    assert_int_equal(mmio_rd(r, ecam_addr(0, 1, 0, 8), 8),
                     (uint64_t)cf8_rd(r, 1, 0x0c, 4) << 32 | cf8_rd(r, 1, 0x08, 4));
    assert_int_equal(mmio_rd(r, ecam_addr(0, 1, 0, 4), 8), 0xffffffffffffffffull);
    assert_int_equal(mmio_rd(r, ecam_addr(0, 1, 0, 1), 3), 0xffffff);
    assert_int_equal(mmio_rd(r, ecam_addr(0, 1, 0, 3), 2), 0xffff);
    assert_int_equal(mmio_rd(r, ecam_addr(0, 1, 0, 0), 5), 0xffffffffffull);
    mmio_wr(r, ecam_addr(0, 1, 0, 0x38), 8, 0x0000001100000000ull);
    assert_int_equal(ecam_rd(r, 1, 0x3c, 1), 0x11);
    mmio_wr(r, ecam_addr(0, 1, 0, 0x3b), 2, 0xffff);
    mmio_wr(r, ecam_addr(0, 1, 0, 0x3c), 7, 0xffffffffffffffull);
    assert_int_equal(ecam_rd(r, 1, 0x3c, 1), 0x11);
    /* The last bytes of the ECAM area. */
    assert_int_equal(mmio_rd(r, T_ECAM + (1u << 20) - 1, 1), 0xff);
    assert_int_equal(mmio_rd(r, T_ECAM + (1u << 20) - 4, 8), 0xffffffffffffffffull);
    /* Window accesses where nothing is decoded. */
    assert_int_equal(mmio_rd(r, T_MMIO32, 8), 0xffffffffffffffffull);
    assert_int_equal(mmio_rd(r, T_MMIO64 + T_MMIO64_SIZE - 1, 1), 0xff);
    mmio_wr(r, T_MMIO32 + 0x1000, 4, 0);
    rig_free(r);
}

static void test_host_create_errors(void **state)
{
    (void)state;
    struct bus pio, mmio;
    bus_init(&pio, "pio");
    bus_init(&mmio, "mmio");
    char err[256];
    struct pci_windows w;

#define EXPECT_FAIL(what)                                                                   \
    do {                                                                                     \
        err[0] = 0;                                                                          \
        assert_null(pci_host_create(&pio, &mmio, &w, NULL, NULL, err, sizeof(err)));         \
        if (!strstr(err, what))                                                              \
            fail_msg("expected \"%s\" in \"%s\"", what, err);                                \
        assert_int_equal(pio.n, 0);                                                          \
        assert_int_equal(mmio.n, 0);                                                         \
    } while (0)

    w = t_windows;
    w.ecam_base += 0x1000;
    EXPECT_FAIL("ECAM");
    w = t_windows;
    w.ecam_size = 0;
    EXPECT_FAIL("ECAM");
    w = t_windows;
    w.ecam_size = 512u << 20;
    EXPECT_FAIL("ECAM");
    w = t_windows;
    w.mmio32_size = 0;
    EXPECT_FAIL("32-bit window");
    w = t_windows;
    w.mmio32_base = 0xfffff000;
    w.mmio32_size = 0x2000;
    EXPECT_FAIL("32-bit window");
    w = t_windows;
    w.mmio64_base = UINT64_MAX - 0xfff;
    w.mmio64_size = 0x2000;
    EXPECT_FAIL("64-bit window");
    w = t_windows;
    w.mmio32_size += 0x1000; /* runs into the ECAM area */
    EXPECT_FAIL("overlap");
    w = t_windows;
    w.mmio64_base = T_MMIO32;
    EXPECT_FAIL("overlap");

    /* Someone already owns part of what the host needs. */
    static char dummy;
    bus_io_fn nop = own_bar_io;
    w = t_windows;
    assert_int_equal(bus_add(&pio, 0xcfc, 1, nop, &dummy, 0), 0);
    err[0] = 0;
    assert_null(pci_host_create(&pio, &mmio, &w, NULL, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "0xcfc"));
    assert_int_equal(pio.n, 1);
    assert_int_equal(mmio.n, 0);
    bus_remove(&pio, 0xcfc);
    assert_int_equal(bus_add(&mmio, T_MMIO64 + (1u << 30), 1, nop, &dummy, 0), 0);
    assert_null(pci_host_create(&pio, &mmio, &w, NULL, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "64-bit MMIO window"));
    assert_int_equal(pio.n, 0);
    assert_int_equal(mmio.n, 1);
    bus_remove(&mmio, T_MMIO64 + (1u << 30));

    static const struct pci_msi_ops partial = {.alloc = rec_alloc};
    assert_null(pci_host_create(&pio, &mmio, &w, &partial, NULL, err, sizeof(err)));
    assert_null(pci_host_create(NULL, &mmio, &w, NULL, NULL, err, sizeof(err)));
    assert_null(pci_host_create(&pio, &mmio, NULL, NULL, NULL, err, sizeof(err)));

    struct pci_host *h = pci_host_create(&pio, &mmio, &w, NULL, NULL, err, sizeof(err));
    assert_non_null(h);
    assert_int_equal(pci_host_windows(h)->ecam_base, T_ECAM);
    assert_null(pci_host_windows(NULL));
    pci_host_destroy(h);
    pci_host_destroy(NULL);
    assert_int_equal(pio.n + mmio.n, 0);
    bus_destroy(&pio);
    bus_destroy(&mmio);
}

/*
 * vCPUs racing on config space and BARs while a device thread signals
 * vectors: no deadlock, no crash (the sanitizer builds check the rest), and
 * afterwards the owner's view from bar_remap equals what is decoded.
 */
struct stress {
    struct rig *r;
    struct pci_func *f;
    uint64_t a0;
    int stop; /* atomic */
    pthread_mutex_t lock; /* owner callbacks may come from any thread */
    struct owner o;
    int mapped;
    uint64_t addr;
};

static void stress_remap(void *opaque, uint32_t bar, uint64_t addr, int mapped)
{
    struct stress *s = opaque;
    pthread_mutex_lock(&s->lock);
    if (bar == 0) {
        if (mapped == s->mapped || (!mapped && addr != s->addr))
            fail_msg("inconsistent bar_remap(%d, 0x%llx) after (%d, 0x%llx)", mapped,
                     (unsigned long long)addr, s->mapped, (unsigned long long)s->addr);
        s->mapped = mapped;
        s->addr = addr;
    }
    pthread_mutex_unlock(&s->lock);
}

static void stress_io(void *opaque, uint32_t bar, uint64_t offset, void *data, uint32_t len,
                      int is_write)
{
    struct stress *s = opaque;
    /* What a device does: its own lock, and a vector from under it. */
    pthread_mutex_lock(&s->lock);
    if (!is_write)
        memset(data, 0, len);
    pci_msix_notify(s->f, (uint32_t)(offset & 1));
    pthread_mutex_unlock(&s->lock);
}

static void *stress_cfg(void *arg)
{
    struct stress *s = arg;
    unsigned i = 0;
    while (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
        i++;
        uint64_t at = s->a0 + (uint64_t)(i % 4) * (64 << 10);
        switch (i % 5) {
        case 0: cf8_wr(s->r, 1, 0x04, 2, PCI_CMD_MEM); break;
        case 1: ecam_wr(s->r, 1, 0x04, 2, 0); break;
        case 2: pci_config_write(s->r->h, 0, 1, 0, 0x10, 4, (uint32_t)at); break;
        case 3: pci_config_write(s->r->h, 0, 1, 0, 0x10, 4, 0xffffffffu); break;
        case 4:
            pci_config_write(s->r->h, 0, 1, 0, s->f->msix.cap_off + 2, 2,
                             (i & 8) ? 0x8000 : 0xc000);
            break;
        }
    }
    return NULL;
}

static void *stress_mmio(void *arg)
{
    struct stress *s = arg;
    unsigned i = 0;
    while (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
        i++;
        uint64_t at = s->a0 + (uint64_t)(i % 4) * (64 << 10);
        mmio_rd(s->r, at + (i & 0x1f), 4);
        mmio_wr(s->r, at + 0x8000 + 16 * (i % 2) + 12, 4, i & 1); /* MSI-X vector control */
        mmio_rd(s->r, at + 0x9000, 8);                           /* PBA */
    }
    return NULL;
}

static void *stress_dev(void *arg)
{
    struct stress *s = arg;
    unsigned i = 0;
    while (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
        pci_msix_notify(s->f, i++ % 2);
        if (i % 64 == 0)
            pci_func_reset(s->f);
    }
    return NULL;
}

static void test_concurrency(void **state)
{
    (void)state;
    struct stress *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    pthread_mutex_init(&s->lock, NULL);
    s->r = rig_new(1);
    static const struct pci_func_ops ops = {stress_io, stress_remap};
    struct pci_func_ids ids = {.vendor = 0x1af4, .device = 0x1042};
    s->f = pci_func_add(s->r->h, &ids, &ops, s, s->r->err, sizeof(s->r->err));
    assert_non_null(s->f);
    assert_int_equal(pci_func_add_bar(s->f, 0, 64 << 10, PCI_BAR_MEM32), 0);
    uint8_t vcap[4] = {0x09, 0, 4, 0};
    assert_int_equal(pci_func_add_cap(s->f, vcap, sizeof(vcap), NULL), 0);
    assert_int_equal(pci_func_add_msix(s->f, 2, 0, 0x8000, 0x9000), 0);
    assert_int_equal(s->f->msix.cap_off, 0x44);
    s->a0 = pci_func_bar_addr(s->f, 0);

    pthread_t t[5];
    void *(*fn[5])(void *) = {stress_cfg, stress_cfg, stress_mmio, stress_mmio, stress_dev};
    for (int i = 0; i < 5; i++)
        assert_int_equal(pthread_create(&t[i], NULL, fn[i], s), 0);
    struct timespec ts = {0, 400 * 1000 * 1000};
    nanosleep(&ts, NULL);
    __atomic_store_n(&s->stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 5; i++)
        pthread_join(t[i], NULL);

    /* Settle with one last write; then both views must agree. */
    cf8_wr(s->r, 1, 0x10, 4, (uint32_t)s->a0);
    cf8_wr(s->r, 1, 0x04, 2, PCI_CMD_MEM);
    assert_int_equal(s->mapped, 1);
    assert_int_equal(s->addr, s->a0);
    assert_int_equal(s->r->h->bars.n, 1);
    assert_int_equal(s->r->h->bars.ranges[0].base, s->a0);
    /* Delivery still works after the storm. */
    pci_config_write(s->r->h, 0, 1, 0, s->f->msix.cap_off + 2, 2, PCI_MSIX_CTRL_ENABLE);
    mmio_wr(s->r, s->a0 + 0x8000 + 12, 4, 0);
    s->r->msi.n = 0;
    assert_int_equal(pci_msix_notify(s->f, 0), 0);
    assert_int_equal(count_fires(&s->r->msi), 1);
    rig_free(s->r);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_bridge),
        cmocka_unit_test(test_cf8_latch),
        cmocka_unit_test(test_function_header),
        cmocka_unit_test(test_bar_assign_and_size),
        cmocka_unit_test(test_bar_decode),
        cmocka_unit_test(test_bar_overlap),
        cmocka_unit_test(test_bar_window_fallback),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_remove),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_host_create_errors),
        cmocka_unit_test(test_concurrency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
