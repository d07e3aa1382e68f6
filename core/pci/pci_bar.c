/*
 * Memory BARs: pre-assignment from the host's windows, sizing through the
 * writable masks, and decoding.
 *
 * A BAR is decoded while COMMAND.MEM is set and its whole range lies in a
 * window it may use (so never over RAM, the ECAM area or the APICs: the VM
 * keeps the windows clear of them) without overlapping another decoded BAR.
 * Decoded BARs live on the host's private bus, reached through the window
 * handlers; moving one never touches the VM's buses.
 *
 * Owners hear about decode changes through ops->bar_remap with no PCI lock
 * held.  Changes are made under remap_lock and recorded per BAR; whichever
 * thread finds undelivered changes delivers them one at a time (the others
 * return at once), always "unmapped at the old address" before "mapped at
 * the new one", so an owner sees a consistent sequence even when vCPUs
 * race on config space.
 */
#include <errno.h>
#include <string.h>

#include "pci_internal.h"
#include "../boot/bytes.h"
#include "../log.h"

#define BAR_MIN_SIZE 4096ull

static uint32_t bar_reg(uint32_t bar)
{
    return PCI_BAR0 + 4u * bar;
}

uint64_t pci_bar_reg_addr(const struct pci_func *f, uint32_t bar)
{
    const struct pci_bar *b = &f->bars[bar];
    uint64_t lo = get_le32(f->cfg + bar_reg(bar)) & ~0xfull;
    if ((b->kind & PCI_BAR_MEM64) && bar + 1 < PCI_NUM_BARS)
        lo |= (uint64_t)get_le32(f->cfg + bar_reg(bar + 1)) << 32;
    return lo;
}

uint64_t pci_func_bar_addr(const struct pci_func *f, uint32_t bar)
{
    if (!f || bar >= PCI_NUM_BARS)
        return 0;
    struct pci_func *mf = (struct pci_func *)f; /* the lock is not part of the value */
    pthread_mutex_lock(&mf->lock);
    uint64_t a = f->bars[bar].size ? pci_bar_reg_addr(f, bar) : 0;
    pthread_mutex_unlock(&mf->lock);
    return a;
}

static bool inside(uint64_t addr, uint64_t size, uint64_t base, uint64_t wsize)
{
    return wsize >= size && addr >= base && addr - base <= wsize - size;
}

/* Whether a BAR of this kind may be decoded at [addr, addr+size). */
static bool addr_valid(const struct pci_host *h, uint32_t kind, uint64_t addr, uint64_t size)
{
    if (inside(addr, size, h->w.mmio32_base, h->w.mmio32_size))
        return true;
    return (kind & PCI_BAR_MEM64) && inside(addr, size, h->w.mmio64_base, h->w.mmio64_size);
}

/* Take the next naturally aligned [*a, *a+size) in [*next, base+wsize). */
static bool bump(uint64_t *next, uint64_t base, uint64_t wsize, uint64_t size, uint64_t *a)
{
    uint64_t at = (*next + size - 1) & ~(size - 1);
    if (at < *next || !inside(at, size, base, wsize))
        return false;
    *next = at + size;
    *a = at;
    return true;
}

int pci_func_add_bar(struct pci_func *f, uint32_t bar, uint64_t size, uint32_t kind)
{
    if (!f || bar >= PCI_NUM_BARS || size < BAR_MIN_SIZE || (size & (size - 1)))
        return -EINVAL;
    uint32_t type = kind & ~PCI_BAR_PREFETCH;
    if (type != PCI_BAR_MEM32 && type != PCI_BAR_MEM64)
        return -EINVAL;
    bool is64 = type == PCI_BAR_MEM64;
    if (is64 && bar + 1 >= PCI_NUM_BARS)
        return -EINVAL;
    if (!is64 && size > (1ull << 31))
        return -EINVAL;
    if (f->slot == 0)
        return -EINVAL; /* the host bridge has no BARs */

    struct pci_host *h = f->h;
    pthread_mutex_lock(&h->remap_lock);
    pthread_mutex_lock(&f->lock);
    int r = 0;
    /* A slot is taken by a BAR or by the high half of a MEM64 one. */
    bool taken = f->bars[bar].size || (bar > 0 && (f->bars[bar - 1].kind & PCI_BAR_MEM64)) ||
                 (is64 && f->bars[bar + 1].size);
    uint64_t addr = 0;
    if (taken)
        r = -EBUSY;
    else if (!(is64 && bump(&h->next64, h->w.mmio64_base, h->w.mmio64_size, size, &addr)) &&
             !bump(&h->next32, h->w.mmio32_base, h->w.mmio32_size, size, &addr))
        r = -ENOSPC;
    if (r == 0) {
        struct pci_bar *b = &f->bars[bar];
        b->size = size;
        b->kind = kind;
        uint32_t flags = (is64 ? PCI_BAR_TYPE_64 : 0) |
                         ((kind & PCI_BAR_PREFETCH) ? PCI_BAR_PREFETCHABLE : 0);
        /* Programmed as firmware would, so the guest keeps the address. */
        put_le32(f->cfg + bar_reg(bar), (uint32_t)addr | flags);
        put_le32(f->wmask + bar_reg(bar), (uint32_t)~(size - 1));
        if (is64) {
            put_le32(f->cfg + bar_reg(bar + 1), (uint32_t)(addr >> 32));
            put_le32(f->wmask + bar_reg(bar + 1), (uint32_t)(~(size - 1) >> 32));
        }
    }
    pthread_mutex_unlock(&f->lock);
    if (r == 0)
        pci_bars_reconcile(h);
    pthread_mutex_unlock(&h->remap_lock);
    if (r == 0)
        pci_bars_notify(h);
    return r;
}

/* ---- decoding ---------------------------------------------------------------- */

static void bar_dispatch(void *opaque, uint32_t region, uint64_t offset, void *data,
                         uint32_t len, int is_write)
{
    struct pci_func *f = opaque;
    if (pci_msix_bar_access(f, region, offset, data, len, is_write))
        return;
    if (f->ops.bar_io)
        f->ops.bar_io(f->opaque, region, offset, data, len, is_write);
    else if (!is_write)
        memset(data, 0, len);
}

void pci_window_io(void *opaque, uint32_t region, uint64_t offset, void *data, uint32_t len,
                   int is_write)
{
    struct pci_host *h = opaque;
    uint64_t base = region == 0 ? h->w.mmio32_base : h->w.mmio64_base;
    /* Nothing decodes there (or the access straddles BARs): master abort. */
    if (bus_access(&h->bars, base + offset, data, len, is_write) < 0 && !is_write)
        memset(data, 0xff, len);
}

static void set_decoded(struct pci_host *h, struct pci_bar *b, bool mapped, uint64_t addr)
{
    pthread_mutex_lock(&h->ev_lock);
    b->mapped = mapped;
    b->mapped_addr = addr;
    pthread_mutex_unlock(&h->ev_lock);
}

void pci_bars_undecode(struct pci_host *h, struct pci_func *f)
{
    for (uint32_t i = 0; i < PCI_NUM_BARS; i++) {
        struct pci_bar *b = &f->bars[i];
        if (b->mapped) {
            bus_remove(&h->bars, b->mapped_addr);
            set_decoded(h, b, false, 0);
        }
    }
}

void pci_bars_reconcile(struct pci_host *h)
{
    struct {
        uint64_t addr;
        bool want;
    } want[PCI_MAX_SLOTS][PCI_NUM_BARS];

    memset(want, 0, sizeof(want));
    /* Pass 1: what config space asks for; stop decoding what moved or was disabled. */
    for (uint32_t s = 0; s < PCI_MAX_SLOTS; s++) {
        struct pci_func *f = pci_lookup(h, 0, s, 0);
        if (!f)
            continue;
        pthread_mutex_lock(&f->lock);
        bool mem = get_le16(f->cfg + PCI_COMMAND) & PCI_CMD_MEM;
        for (uint32_t i = 0; i < PCI_NUM_BARS; i++) {
            const struct pci_bar *b = &f->bars[i];
            if (!b->size)
                continue;
            want[s][i].addr = pci_bar_reg_addr(f, i);
            want[s][i].want = mem && addr_valid(h, b->kind, want[s][i].addr, b->size);
        }
        pthread_mutex_unlock(&f->lock);
        for (uint32_t i = 0; i < PCI_NUM_BARS; i++) {
            struct pci_bar *b = &f->bars[i];
            if (b->mapped && (!want[s][i].want || b->mapped_addr != want[s][i].addr)) {
                bus_remove(&h->bars, b->mapped_addr);
                set_decoded(h, b, false, 0);
            }
        }
    }
    /*
     * Pass 2: decode what should be, now that everything that moved away has
     * freed its range.  A BAR overlapping a decoded one stays off until a
     * later change frees the space (the guest's overlap, the guest's loss).
     */
    for (uint32_t s = 0; s < PCI_MAX_SLOTS; s++) {
        struct pci_func *f = pci_lookup(h, 0, s, 0);
        if (!f)
            continue;
        for (uint32_t i = 0; i < PCI_NUM_BARS; i++) {
            struct pci_bar *b = &f->bars[i];
            if (!want[s][i].want || b->mapped)
                continue;
            int r = bus_add(&h->bars, want[s][i].addr, b->size, bar_dispatch, f, i);
            if (r == 0)
                set_decoded(h, b, true, want[s][i].addr);
            else
                log_debug("PCI 00:%02x.0 BAR%u at 0x%llx not decoded: %s", s, i,
                          (unsigned long long)want[s][i].addr,
                          r == -EEXIST ? "overlaps another BAR" : "no memory");
        }
    }
}

/* The next undelivered change, applied to the "told" state; false if none. */
static bool next_event(struct pci_host *h, struct pci_func **fo, uint32_t *bar, uint64_t *addr,
                       int *mapped)
{
    for (uint32_t s = 0; s < PCI_MAX_SLOTS; s++) {
        struct pci_func *f = pci_lookup(h, 0, s, 0);
        if (!f)
            continue;
        for (uint32_t i = 0; i < PCI_NUM_BARS; i++) {
            struct pci_bar *b = &f->bars[i];
            if (b->told_mapped == b->mapped && (!b->mapped || b->told_addr == b->mapped_addr))
                continue;
            *fo = f;
            *bar = i;
            if (b->told_mapped) {
                *addr = b->told_addr;
                *mapped = 0;
                b->told_mapped = false;
            } else {
                *addr = b->told_addr = b->mapped_addr;
                *mapped = 1;
                b->told_mapped = true;
            }
            return true;
        }
    }
    return false;
}

void pci_bars_notify(struct pci_host *h)
{
    pthread_mutex_lock(&h->ev_lock);
    if (h->draining) {
        /* The draining thread rescans after each callback and will see ours. */
        pthread_mutex_unlock(&h->ev_lock);
        return;
    }
    h->draining = true;
    struct pci_func *f;
    uint32_t bar;
    uint64_t addr;
    int mapped;
    while (next_event(h, &f, &bar, &addr, &mapped)) {
        pthread_mutex_unlock(&h->ev_lock);
        if (f->ops.bar_remap)
            f->ops.bar_remap(f->opaque, bar, addr, mapped);
        pthread_mutex_lock(&h->ev_lock);
    }
    h->draining = false;
    pthread_mutex_unlock(&h->ev_lock);
}
