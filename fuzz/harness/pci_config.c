/*
 * fuzz_pci_config: guest accesses to the PCI host (ports 0xCF8-0xCFF, ECAM,
 * the MMIO windows, BARs, the MSI-X table and PBA) plus the device side
 * (vector notifications, function resets), on a fresh host per input with
 * two functions:
 *   00:01.0  BAR0 MEM64 16 KiB (MSI-X 4 vectors: table 0x2000, PBA 0x3000),
 *            BAR2 MEM32 4 KiB, a vendor capability before MSI-X;
 *   00:02.0  BAR0 MEM32 64 KiB (MSI-X 33 vectors: table 0, PBA 0x800),
 *            BAR4 MEM64 prefetchable 1 MiB.
 *
 * Checks after every op:
 *  - no decoded BAR overlaps guest RAM, the ECAM area or the APICs, and
 *    each lies inside a window its type may use;
 *  - the owners' view built from bar_remap callbacks (which must form a
 *    valid unmapped/mapped sequence) equals what is decoded;
 *  - bar_io only sees accesses inside its BAR and outside the MSI-X table
 *    and PBA;
 *  - msi ops: route and fire only on live handles of the right function,
 *    fire only after a route, and only while the vector may fire (the fake
 *    refuses to route messages outside 0xFEExxxxx, as a controller may);
 *  - pci_msix_enabled() and pci_msix_nvec() agree with config space;
 *  - identity registers keep their values; the PBA has no bits past nvec.
 *
 * Op = [kind][fields...], kind = byte % 11 (see the switch).  Lengths come
 * from a flags byte: low bits the size, bit 7 write.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "fuzz_input.h"
#include "fuzz_target.h"
#include "layout.h"
#include "memory.h"
#include "pci/pci.h"
#include "pci/pci_internal.h"

#define RAM_SIZE (8ull << 30) /* regions only; no host memory behind them */
#define MMIO64_BASE 0x4000000000ull
#define MMIO64_SIZE (64ull << 30)
#define NFUNCS 2
#define MAX_HANDLES 64

struct fn_desc {
    uint32_t nvec;
    uint64_t table, pba;
};

static const struct fn_desc descs[NFUNCS] = {{4, 0x2000, 0x3000}, {33, 0, 0x800}};

struct owner {
    int idx;
    struct pci_func *f;
    bool mapped[PCI_NUM_BARS];
    uint64_t addr[PCI_NUM_BARS];
};

struct handle_state {
    bool live, routed;
    int owner;    /* function index */
    uint32_t vec; /* vector within it */
};

static struct {
    struct bus pio, mmio;
    struct guest_mem ram;
    struct pci_windows w;
    struct pci_host *h;
    struct owner own[NFUNCS];
    struct handle_state hs[MAX_HANDLES];
    uint32_t next_handle;
    int adding; /* function index whose vectors are being allocated */
    uint32_t adding_vec;
} S;

/* ---- recording callbacks with their own checks ------------------------------ */

static const struct fn_desc *desc_of(const struct pci_func *f)
{
    for (int i = 0; i < NFUNCS; i++)
        if (S.own[i].f == f)
            return &descs[i];
    return NULL;
}

static void own_bar_io(void *opaque, uint32_t bar, uint64_t off, void *data, uint32_t len,
                       int is_write)
{
    struct owner *o = opaque;
    const struct pci_bar *b = bar < PCI_NUM_BARS ? &o->f->bars[bar] : NULL;
    if (!b || !b->size || len == 0 || len > 8 || off >= b->size || len > b->size - off)
        fuzz_fail("bar_io fn%d BAR%u off 0x%llx len %u outside the BAR", o->idx, bar,
                  (unsigned long long)off, len);
    const struct fn_desc *d = &descs[o->idx];
    uint64_t tend = d->table + 16ull * d->nvec, pend = d->pba + (d->nvec + 63) / 64 * 8;
    if (bar == 0 && ((off < tend && d->table < off + len) || (off < pend && d->pba < off + len)))
        fuzz_fail("bar_io fn%d got an MSI-X access at 0x%llx", o->idx, (unsigned long long)off);
    if (!is_write)
        memset(data, 0xa5, len);
}

static void own_bar_remap(void *opaque, uint32_t bar, uint64_t addr, int mapped)
{
    struct owner *o = opaque;
    if (bar >= PCI_NUM_BARS)
        fuzz_fail("bar_remap BAR%u", bar);
    if (mapped) {
        if (o->mapped[bar])
            fuzz_fail("fn%d BAR%u mapped at 0x%llx while mapped at 0x%llx", o->idx, bar,
                      (unsigned long long)addr, (unsigned long long)o->addr[bar]);
    } else if (!o->mapped[bar] || o->addr[bar] != addr) {
        fuzz_fail("fn%d BAR%u unmapped at 0x%llx but was %s 0x%llx", o->idx, bar,
                  (unsigned long long)addr, o->mapped[bar] ? "at" : "not mapped,",
                  (unsigned long long)o->addr[bar]);
    }
    o->mapped[bar] = mapped != 0;
    o->addr[bar] = addr;
}

static const struct pci_func_ops own_ops = {own_bar_io, own_bar_remap};

static int msi_alloc(void *opaque, uint32_t *handle)
{
    (void)opaque;
    if (S.next_handle >= MAX_HANDLES)
        return -1;
    *handle = S.next_handle;
    S.hs[S.next_handle++] =
        (struct handle_state){.live = true, .owner = S.adding, .vec = S.adding_vec++};
    return 0;
}

static struct handle_state *live_handle(uint32_t handle, const char *what)
{
    if (handle >= MAX_HANDLES || !S.hs[handle].live)
        fuzz_fail("msi %s on handle %u, which is not live", what, handle);
    return &S.hs[handle];
}

static void msi_release(void *opaque, uint32_t handle)
{
    (void)opaque;
    live_handle(handle, "release")->live = false;
}

static int msi_route(void *opaque, uint32_t handle, uint64_t addr, uint32_t data)
{
    (void)opaque;
    (void)data;
    struct handle_state *hs = live_handle(handle, "route");
    /* Refused like a message an interrupt controller cannot take: outside
     * the LAPIC window 0xFEExxxxx.  The handle keeps its old route, so the
     * vector must not fire until a route succeeds again. */
    hs->routed = addr >> 20 == 0xfee;
    return hs->routed ? 0 : -EINVAL;
}

static int msi_fire(void *opaque, uint32_t handle)
{
    (void)opaque;
    struct handle_state *hs = live_handle(handle, "fire");
    if (!hs->routed)
        fuzz_fail("msi fire on handle %u without a valid route", handle);
    /* Called under the function's lock: its state can be inspected as is. */
    struct pci_func *f = S.own[hs->owner].f;
    uint16_t ctrl = (uint16_t)(f->cfg[f->msix.cap_off + 2] | f->cfg[f->msix.cap_off + 3] << 8);
    if (!(ctrl & PCI_MSIX_CTRL_ENABLE) || (ctrl & PCI_MSIX_CTRL_MASKALL) ||
        (f->msix.table[hs->vec].ctrl & PCI_MSIX_ENTRY_MASKED))
        fuzz_fail("fn%d vector %u fired while it may not (ctrl 0x%x)", hs->owner, hs->vec,
                  ctrl);
    return 0;
}

static const struct pci_msi_ops msi_ops = {msi_alloc, msi_release, msi_route, msi_fire};

/* ---- setup ---------------------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    int n = gm_layout(RAM_SIZE, S.ram.regions, GUEST_MEM_MAX_REGIONS);
    if (n <= 0) {
        fprintf(stderr, "fuzz_pci_config: gm_layout failed\n");
        exit(1);
    }
    S.ram.nregions = (unsigned)n;
    S.ram.ram_size = RAM_SIZE;
    S.w = (struct pci_windows){.ecam_base = LAYOUT_PCI_ECAM,
                               .ecam_size = PCI_ECAM_BUS_SIZE,
                               .mmio32_base = LAYOUT_MMIO32_START,
                               .mmio32_size = LAYOUT_PCI_ECAM - LAYOUT_MMIO32_START,
                               .mmio64_base = MMIO64_BASE,
                               .mmio64_size = MMIO64_SIZE};
    return 0;
}

static void must(int r, const char *what)
{
    if (r < 0)
        fuzz_fail("setup: %s failed (%d)", what, r);
}

static void setup(void)
{
    char err[256];
    memset(S.own, 0, sizeof(S.own));
    memset(S.hs, 0, sizeof(S.hs));
    S.next_handle = 0;
    bus_init(&S.pio, "pio");
    bus_init(&S.mmio, "mmio");
    S.h = pci_host_create(&S.pio, &S.mmio, &S.w, &msi_ops, NULL, err, sizeof(err));
    if (!S.h)
        fuzz_fail("setup: %s", err);
    const struct pci_windows *w = pci_host_windows(S.h);
    if (!w || memcmp(w, &S.w, sizeof(*w)) != 0)
        fuzz_fail("setup: the host reports other windows than it was given");
    for (int i = 0; i < NFUNCS; i++) {
        struct pci_func_ids ids = {.vendor = 0x1af4,
                                   .device = (uint16_t)(0x1041 + i),
                                   .subsys_vendor = 0x1af4,
                                   .subsys_id = (uint16_t)(0x40 + i),
                                   .class_code = 0x018000};
        S.own[i].idx = i;
        S.own[i].f = pci_func_add(S.h, &ids, &own_ops, &S.own[i], err, sizeof(err));
        if (!S.own[i].f)
            fuzz_fail("setup: %s", err);
    }
    struct pci_func *f1 = S.own[0].f, *f2 = S.own[1].f;
    static const uint8_t vcap[16] = {0x09, 0, 16, 1};
    must(pci_func_add_cap(f1, vcap, sizeof(vcap), NULL), "add_cap");
    must(pci_func_add_bar(f1, 0, 16u << 10, PCI_BAR_MEM64), "f1 BAR0");
    must(pci_func_add_bar(f1, 2, 4u << 10, PCI_BAR_MEM32), "f1 BAR2");
    S.adding = 0;
    S.adding_vec = 0;
    must(pci_func_add_msix(f1, descs[0].nvec, 0, descs[0].table, descs[0].pba), "f1 MSI-X");
    must(pci_func_add_bar(f2, 0, 64u << 10, PCI_BAR_MEM32), "f2 BAR0");
    must(pci_func_add_bar(f2, 4, 1u << 20, PCI_BAR_MEM64 | PCI_BAR_PREFETCH), "f2 BAR4");
    S.adding = 1;
    S.adding_vec = 0;
    must(pci_func_add_msix(f2, descs[1].nvec, 0, descs[1].table, descs[1].pba), "f2 MSI-X");
}

static void teardown(void)
{
    pci_host_destroy(S.h);
    S.h = NULL;
    for (uint32_t i = 0; i < S.next_handle; i++)
        if (S.hs[i].live)
            fuzz_fail("msi handle %u leaked by pci_host_destroy", i);
    if (S.pio.n || S.mmio.n)
        fuzz_fail("pci_host_destroy left %zu + %zu ranges on the buses", S.pio.n, S.mmio.n);
    bus_destroy(&S.pio);
    bus_destroy(&S.mmio);
}

/* ---- invariants ------------------------------------------------------------------ */

static bool overlap(uint64_t a, uint64_t an, uint64_t b, uint64_t bn)
{
    return a < b + bn && b < a + an;
}

static bool inside(uint64_t a, uint64_t an, uint64_t b, uint64_t bn)
{
    return a >= b && an <= bn && a - b <= bn - an;
}

static void check(void)
{
    const struct bus *bars = &S.h->bars;
    size_t decoded = 0;
    for (int i = 0; i < NFUNCS; i++)
        for (uint32_t b = 0; b < PCI_NUM_BARS; b++)
            decoded += S.own[i].mapped[b];
    if (decoded != bars->n)
        fuzz_fail("owners were told of %zu decoded BARs, %zu are", decoded, bars->n);
    for (size_t k = 0; k < bars->n; k++) {
        const struct bus_range *r = &bars->ranges[k];
        for (unsigned g = 0; g < S.ram.nregions; g++)
            if (overlap(r->base, r->size, S.ram.regions[g].gpa, S.ram.regions[g].size))
                fuzz_fail("BAR at 0x%llx+0x%llx overlaps RAM", (unsigned long long)r->base,
                          (unsigned long long)r->size);
        if (overlap(r->base, r->size, S.w.ecam_base, S.w.ecam_size) ||
            overlap(r->base, r->size, LAYOUT_IOAPIC, 0x1000) ||
            overlap(r->base, r->size, LAYOUT_LAPIC, 0x1000))
            fuzz_fail("BAR at 0x%llx overlaps a platform range", (unsigned long long)r->base);
        const struct pci_func *f = r->opaque; /* the decoder bus dispatches to functions */
        const struct owner *o = f->opaque;
        const struct pci_bar *b = &f->bars[r->region];
        bool ok32 = inside(r->base, r->size, S.w.mmio32_base, S.w.mmio32_size);
        bool ok64 = (b->kind & PCI_BAR_MEM64) &&
                    inside(r->base, r->size, S.w.mmio64_base, S.w.mmio64_size);
        if (!ok32 && !ok64)
            fuzz_fail("BAR at 0x%llx is outside the windows it may use",
                      (unsigned long long)r->base);
        if (!o->mapped[r->region] || o->addr[r->region] != r->base || b->size != r->size)
            fuzz_fail("fn%d BAR%u decoded at 0x%llx, owner was told %d/0x%llx", o->idx,
                      r->region, (unsigned long long)r->base, o->mapped[r->region],
                      (unsigned long long)o->addr[r->region]);
    }
    for (int i = 0; i < NFUNCS; i++) {
        uint32_t id = pci_config_read(S.h, 0, 1 + (uint32_t)i, 0, 0, 4);
        if (id != ((uint32_t)(0x1041 + i) << 16 | 0x1af4u))
            fuzz_fail("fn%d identity changed to 0x%08x", i, id);
        const struct pci_msix *m = &S.own[i].f->msix;
        uint32_t words = (m->nvec + 63) / 64;
        if (m->nvec % 64 && m->pba[words - 1] >> (m->nvec % 64))
            fuzz_fail("fn%d PBA has bits past vector %u", i, m->nvec);
        uint32_t cap = S.own[i].f->msix.cap_off;
        uint32_t ctrl = pci_config_read(S.h, 0, 1 + (uint32_t)i, 0, cap + 2, 2);
        if (pci_msix_nvec(S.own[i].f) != descs[i].nvec ||
            pci_msix_enabled(S.own[i].f) != ((ctrl & PCI_MSIX_CTRL_ENABLE) != 0))
            fuzz_fail("fn%d MSI-X: %u vectors, enabled %d, control 0x%x", i,
                      pci_msix_nvec(S.own[i].f), pci_msix_enabled(S.own[i].f), ctrl);
    }
    if (pci_config_read(S.h, 0, 0, 0, 0, 4) != 0x00081b36u)
        fuzz_fail("host bridge identity changed");
}

/* ---- ops ---------------------------------------------------------------------- */

static uint32_t len4(uint8_t flags)
{
    static const uint32_t l[4] = {1, 2, 4, 4};
    return l[flags & 3];
}

static uint32_t len8(uint8_t flags)
{
    return 1u + (flags & 7u);
}

static void pio(uint16_t port, uint32_t len, int is_write, uint64_t val)
{
    uint8_t b[8];
    for (uint32_t i = 0; i < 8; i++)
        b[i] = (uint8_t)(val >> (8 * i));
    bus_access(&S.pio, port, b, len, is_write);
}

static void mmio(uint64_t addr, uint32_t len, int is_write, uint64_t val)
{
    uint8_t b[8];
    for (uint32_t i = 0; i < 8; i++)
        b[i] = (uint8_t)(val >> (8 * i));
    bus_access(&S.mmio, addr, b, len, is_write);
}

/* Enable decoding and MSI-X on a function and unmask its vectors, as a driver would. */
static void driver_up(struct owner *o, uint8_t arg)
{
    uint32_t slot = pci_func_slot(o->f);
    pci_config_write(S.h, 0, slot, 0, PCI_COMMAND, 2, PCI_CMD_MEM | PCI_CMD_MASTER);
    const struct fn_desc *d = desc_of(o->f);
    uint64_t bar = pci_func_bar_addr(o->f, 0);
    for (uint32_t v = 0; v < d->nvec; v++) {
        uint64_t e = bar + d->table + 16ull * v;
        mmio(e, 4, 1, 0xfee00000u | (uint32_t)(arg & 0xf) << 12);
        mmio(e + 4, 4, 1, 0);
        mmio(e + 8, 4, 1, 0x4020 + v);
        mmio(e + 12, 4, 1, (arg >> 4) & 1); /* bit 4 of arg: leave masked */
    }
    uint32_t cap = o->f->msix.cap_off;
    pci_config_write(S.h, 0, slot, 0, cap + 2, 2,
                     PCI_MSIX_CTRL_ENABLE | ((arg & 0x20) ? PCI_MSIX_CTRL_MASKALL : 0));
}

static void run_op(struct fuzz_in *in)
{
    uint8_t kind = fin_u8(in) % 11;
    switch (kind) {
    case 0: /* CONFIG_ADDRESS */
        pio(0xcf8, 4, 1, fin_le(in, 4));
        break;
    case 1: { /* config access through 0xCF8/0xCFC: slot, reg, flags, value */
        uint32_t slot = fin_u8(in) % 4, reg = fin_u8(in);
        uint8_t fl = fin_u8(in);
        pio(0xcf8, 4, 1, 0x80000000u | slot << 11 | (reg & 0xfc));
        pio((uint16_t)(0xcfc + (reg & 3)), len4(fl), fl >> 7, fl >> 7 ? fin_le(in, 4) : 0);
        break;
    }
    case 2: { /* raw port access in 0xCF8-0xCFF */
        uint16_t port = (uint16_t)(0xcf8 + fin_u8(in) % 8);
        uint8_t fl = fin_u8(in);
        pio(port, 1 + (fl & 3u), fl >> 7, fl >> 7 ? fin_le(in, 4) : 0);
        break;
    }
    case 3: { /* raw ECAM access anywhere in the area */
        uint64_t off = fin_le(in, 3) & (PCI_ECAM_BUS_SIZE - 1);
        uint8_t fl = fin_u8(in);
        mmio(S.w.ecam_base + off, len8(fl), fl >> 7, fl >> 7 ? fin_le(in, 8) : 0);
        break;
    }
    case 4: { /* ECAM access to slot 0-3, function 0-1 */
        uint8_t sel = fin_u8(in);
        uint32_t reg = (uint32_t)fin_le(in, 2) & 0xfffu;
        uint8_t fl = fin_u8(in);
        uint64_t off = (uint64_t)(sel & 3) << 15 | (uint64_t)((sel >> 2) & 1) << 12 | reg;
        mmio(S.w.ecam_base + off, len8(fl), fl >> 7, fl >> 7 ? fin_le(in, 8) : 0);
        break;
    }
    case 5: { /* BAR access at the BAR's current address (decoded or not) */
        uint8_t sel = fin_u8(in);
        struct owner *o = &S.own[sel & 1];
        uint64_t off = fin_le(in, 2) << ((sel >> 4) & 7);
        uint8_t fl = fin_u8(in);
        mmio(pci_func_bar_addr(o->f, (sel >> 1) % PCI_NUM_BARS) + off, len8(fl), fl >> 7,
             fl >> 7 ? fin_le(in, 8) : 0);
        break;
    }
    case 6: { /* MSI-X table or PBA access */
        uint8_t sel = fin_u8(in);
        struct owner *o = &S.own[sel & 1];
        const struct fn_desc *d = &descs[sel & 1];
        uint32_t vec = fin_u8(in) % (d->nvec + 1);
        uint8_t field = fin_u8(in);
        uint8_t fl = fin_u8(in);
        uint64_t base = pci_func_bar_addr(o->f, 0);
        uint64_t at = (sel & 2) ? base + d->pba + (field % 16) * 1u
                                : base + d->table + 16ull * vec + (field & 15);
        mmio(at, len8(fl), fl >> 7, fl >> 7 ? fin_le(in, 8) : 0);
        break;
    }
    case 7: { /* the device signals a vector (any value, including NO_VECTOR) */
        uint8_t sel = fin_u8(in);
        uint32_t vec = (uint32_t)fin_le(in, 2);
        if (sel & 0x80)
            vec = PCI_MSIX_NO_VECTOR;
        pci_msix_notify(S.own[sel & 1].f, vec);
        break;
    }
    case 8: /* function reset */
        pci_func_reset(S.own[fin_u8(in) & 1].f);
        break;
    case 9: { /* direct config call with arbitrary arguments */
        uint32_t bus = fin_u8(in) % 3, slot = fin_u8(in) % 34, fn = fin_u8(in) % 9;
        uint32_t off = (uint32_t)fin_le(in, 2) % 4100u;
        uint8_t fl = fin_u8(in);
        uint32_t len = fl & 7u;
        if (fl >> 7)
            pci_config_write(S.h, bus, slot, fn, off, len, (uint32_t)fin_le(in, 4));
        else
            (void)pci_config_read(S.h, bus, slot, fn, off, len);
        break;
    }
    case 10: { /* driver bring-up macro, or a window access at an arbitrary offset */
        uint8_t sel = fin_u8(in);
        if (sel & 0x40) {
            uint64_t off = fin_le(in, 5);
            uint8_t fl = fin_u8(in);
            uint64_t at = (sel & 1) ? S.w.mmio64_base + off % S.w.mmio64_size
                                    : S.w.mmio32_base + off % S.w.mmio32_size;
            mmio(at, len8(fl), fl >> 7, fl >> 7 ? fin_le(in, 8) : 0);
        } else {
            driver_up(&S.own[sel & 1], fin_u8(in));
        }
        break;
    }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    setup();
    check();
    for (unsigned ops = 0; fin_more(&in) && ops < 4096; ops++) {
        run_op(&in);
        check();
    }
    teardown();
    return 0;
}
