/*
 * The PCI host: the bridge at 00:00.0, the two ways the guest reaches
 * config space (mechanism #1 on ports 0xCF8/0xCFC and ECAM), and the
 * windows on the VM's MMIO bus through which decoded BARs are reached.
 *
 * BARs are not registered on the VM's MMIO bus one by one.  The host
 * claims its two windows once, as a real root complex decodes its
 * apertures, and keeps the BARs on a private bus behind them (pci_bar.c):
 * whatever the guest writes into a BAR, it can only ever decode inside the
 * windows (never over RAM, the APICs or a platform device), and moving it
 * never takes the VM bus's write lock that every vCPU exit contends on.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pci_internal.h"
#include "../boot/bytes.h"
#include "../log.h"

#define CF8_PORT 0xcf8u
#define CFC_PORT 0xcfcu
#define CF8_ENABLE 0x80000000u
/* Enable, bus, device, function, register; reserved bits read back 0. */
#define CF8_LATCH_MASK 0x80fffffcu

/* Host bridge identity (the ids QEMU's PCIe host uses: Linux needs no quirks). */
#define HOSTBRIDGE_VENDOR 0x1b36u
#define HOSTBRIDGE_DEVICE 0x0008u
#define HOSTBRIDGE_CLASS 0x060000u

enum { REGION_CF8, REGION_CFC };

static uint32_t all_ones(uint32_t len)
{
    return len >= 4 ? 0xffffffffu : (1u << (8 * len)) - 1u;
}

struct pci_func *pci_lookup(struct pci_host *h, uint32_t bus, uint32_t slot, uint32_t fn)
{
    /* Functions 1-7 are absent: every device is single-function. */
    if (bus != 0 || slot >= PCI_MAX_SLOTS || fn != 0)
        return NULL;
    return __atomic_load_n(&h->funcs[slot], __ATOMIC_ACQUIRE);
}

/*
 * A config access is 1, 2 or 4 bytes that stay inside one dword of the
 * 4 KiB function space; anything else is dropped (reads give all-ones).
 */
static bool access_ok(uint32_t off, uint32_t len)
{
    return (len == 1 || len == 2 || len == 4) && off < PCI_ECAM_FN_SIZE &&
           (off & 3u) + len <= 4u;
}

uint32_t pci_config_read(struct pci_host *h, uint32_t bus, uint32_t slot, uint32_t fn,
                         uint32_t off, uint32_t len)
{
    if (!h || !access_ok(off, len))
        return all_ones(len > 4 ? 4 : len);
    struct pci_func *f = pci_lookup(h, bus, slot, fn);
    if (!f)
        return all_ones(len);
    if (off >= PCI_CFG_SIZE)
        return 0; /* extended space: no extended capabilities */
    uint32_t v = 0;
    pthread_mutex_lock(&f->lock);
    for (uint32_t i = 0; i < len; i++)
        v |= (uint32_t)f->cfg[off + i] << (8 * i);
    pthread_mutex_unlock(&f->lock);
    return v;
}

static bool overlaps(uint32_t off, uint32_t len, uint32_t start, uint32_t n)
{
    return off < start + n && start < off + len;
}

void pci_config_write(struct pci_host *h, uint32_t bus, uint32_t slot, uint32_t fn,
                      uint32_t off, uint32_t len, uint32_t val)
{
    if (!h || !access_ok(off, len) || off >= PCI_CFG_SIZE)
        return;
    struct pci_func *f = pci_lookup(h, bus, slot, fn);
    if (!f)
        return;
    /* Only COMMAND and the BARs change what is decoded where. */
    bool decode = overlaps(off, len, PCI_COMMAND, 2) ||
                  overlaps(off, len, PCI_BAR0, 4 * PCI_NUM_BARS);
    if (decode)
        pthread_mutex_lock(&h->remap_lock);
    pthread_mutex_lock(&f->lock);
    uint16_t msix_old = 0;
    if (f->msix.nvec)
        msix_old = get_le16(f->cfg + f->msix.cap_off + 2);
    for (uint32_t i = 0; i < len; i++) {
        uint8_t m = f->wmask[off + i];
        f->cfg[off + i] = (uint8_t)((f->cfg[off + i] & ~m) | ((val >> (8 * i)) & m));
    }
    if (f->msix.nvec && overlaps(off, len, f->msix.cap_off + 2, 2))
        pci_msix_control_written(f, msix_old);
    pthread_mutex_unlock(&f->lock);
    if (decode) {
        pci_bars_reconcile(h);
        pthread_mutex_unlock(&h->remap_lock);
        pci_bars_notify(h);
    }
}

/* ---- config mechanism #1 ------------------------------------------------ */

static void put_bytes(void *data, uint32_t len, uint64_t v)
{
    uint8_t *p = data;
    for (uint32_t i = 0; i < len; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_bytes(const void *data, uint32_t len)
{
    const uint8_t *p = data;
    uint64_t v = 0;
    for (uint32_t i = 0; i < len && i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void pio_io(void *opaque, uint32_t region, uint64_t offset, void *data, uint32_t len,
                   int is_write)
{
    struct pci_host *h = opaque;
    uint32_t latch = __atomic_load_n(&h->cf8, __ATOMIC_ACQUIRE);

    if (region == REGION_CF8) {
        /*
         * Only dword writes latch an address; byte writes to 0xCF8-0xCFB
         * (Linux probes 0xCFB, the chipset's mechanism select) are ignored.
         */
        if (is_write) {
            if (offset == 0 && len == 4)
                __atomic_store_n(&h->cf8, (uint32_t)get_bytes(data, 4) & CF8_LATCH_MASK,
                                 __ATOMIC_RELEASE);
        } else {
            put_bytes(data, len, (uint64_t)latch >> (8 * offset));
        }
        return;
    }
    /* The bus guarantees offset + len <= 4. */
    if (!(latch & CF8_ENABLE)) {
        if (!is_write)
            put_bytes(data, len, all_ones(4));
        return;
    }
    uint32_t bus = (latch >> 16) & 0xffu, slot = (latch >> 11) & 0x1fu, fn = (latch >> 8) & 7u;
    uint32_t reg = (latch & 0xfcu) + (uint32_t)offset;
    if (is_write)
        pci_config_write(h, bus, slot, fn, reg, len, (uint32_t)get_bytes(data, len));
    else
        put_bytes(data, len, pci_config_read(h, bus, slot, fn, reg, len));
}

/* ---- ECAM ------------------------------------------------------------------ */

static void ecam_access(struct pci_host *h, uint64_t offset, void *data, uint32_t len,
                        int is_write)
{
    uint32_t bus = (uint32_t)(offset >> 20), slot = (uint32_t)(offset >> 15) & 0x1fu;
    uint32_t fn = (uint32_t)(offset >> 12) & 7u, reg = (uint32_t)offset & 0xfffu;
    if (is_write)
        pci_config_write(h, bus, slot, fn, reg, len, (uint32_t)get_bytes(data, len));
    else
        put_bytes(data, len, pci_config_read(h, bus, slot, fn, reg, len));
}

static void ecam_io(void *opaque, uint32_t region, uint64_t offset, void *data, uint32_t len,
                    int is_write)
{
    struct pci_host *h = opaque;
    (void)region;
    if (len != 1 && len != 2 && len != 4 && len != 8) {
        if (!is_write)
            memset(data, 0xff, len);
        return;
    }
    /* A qword access is not a config transaction; treat an aligned one as two dwords. */
    if (len == 8) {
        if ((offset & 7u) == 0) {
            ecam_access(h, offset, data, 4, is_write);
            ecam_access(h, offset + 4, (uint8_t *)data + 4, 4, is_write);
        } else if (!is_write) {
            memset(data, 0xff, len);
        }
        return;
    }
    ecam_access(h, offset, data, len, is_write);
}

/* ---- functions ------------------------------------------------------------------ */

void pci_func_init(struct pci_func *f, struct pci_host *h, uint32_t slot,
                   const struct pci_func_ids *ids, const struct pci_func_ops *ops, void *opaque)
{
    memset(f, 0, sizeof(*f));
    f->h = h;
    f->slot = slot;
    pthread_mutex_init(&f->lock, NULL);
    if (ops)
        f->ops = *ops;
    f->opaque = opaque;
    f->cap_next = PCI_CAP_START;

    put_le16(f->cfg + PCI_VENDOR_ID, ids->vendor);
    put_le16(f->cfg + PCI_DEVICE_ID, ids->device);
    f->cfg[PCI_REVISION] = ids->revision;
    f->cfg[PCI_CLASS_PROG] = (uint8_t)ids->class_code;
    f->cfg[PCI_CLASS_PROG + 1] = (uint8_t)(ids->class_code >> 8);
    f->cfg[PCI_CLASS_PROG + 2] = (uint8_t)(ids->class_code >> 16);
    f->cfg[PCI_HEADER_TYPE] = 0; /* type 0, single function */
    put_le16(f->cfg + PCI_SUBSYS_VENDOR, ids->subsys_vendor);
    put_le16(f->cfg + PCI_SUBSYS_ID, ids->subsys_id);
    /* Interrupt pin 0: no INTx, MSI-X only. */

    put_le16(f->wmask + PCI_COMMAND, PCI_CMD_IO | PCI_CMD_MEM | PCI_CMD_MASTER |
                                         PCI_CMD_PARITY | PCI_CMD_SERR |
                                         PCI_CMD_INTX_DISABLE);
    f->wmask[PCI_CACHE_LINE] = 0xff;
    f->wmask[PCI_INT_LINE] = 0xff;
}

void pci_func_free(struct pci_func *f)
{
    pci_msix_free(f);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

struct pci_func *pci_func_add(struct pci_host *h, const struct pci_func_ids *ids,
                              const struct pci_func_ops *ops, void *opaque, char *err,
                              size_t errlen)
{
    if (!h || !ids) {
        snprintf(err, errlen, "PCI: no host or no ids for the new function");
        return NULL;
    }
    if (ids->vendor == 0xffffu || ids->vendor == 0) {
        snprintf(err, errlen, "PCI: vendor id 0x%04x is not valid", ids->vendor);
        return NULL;
    }
    if (ids->class_code > 0xffffffu) {
        snprintf(err, errlen, "PCI: class code 0x%x does not fit 24 bits", ids->class_code);
        return NULL;
    }
    struct pci_func *f = calloc(1, sizeof(*f));
    if (!f) {
        snprintf(err, errlen, "PCI: out of memory");
        return NULL;
    }
    pthread_mutex_lock(&h->add_lock);
    uint32_t slot = 1;
    while (slot < PCI_MAX_SLOTS && h->funcs[slot])
        slot++;
    if (slot == PCI_MAX_SLOTS) {
        pthread_mutex_unlock(&h->add_lock);
        free(f);
        snprintf(err, errlen, "PCI: all %u device slots of bus 0 are in use",
                 PCI_MAX_SLOTS - 1);
        return NULL;
    }
    pci_func_init(f, h, slot, ids, ops, opaque);
    __atomic_store_n(&h->funcs[slot], f, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&h->add_lock);
    return f;
}

void pci_func_remove(struct pci_func *f)
{
    if (!f)
        return;
    struct pci_host *h = f->h;
    pthread_mutex_lock(&h->remap_lock);
    pci_bars_undecode(h, f);
    /* Under ev_lock too: a notify drain scanning the slots must not find it. */
    pthread_mutex_lock(&h->add_lock);
    pthread_mutex_lock(&h->ev_lock);
    __atomic_store_n(&h->funcs[f->slot], NULL, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&h->ev_lock);
    pthread_mutex_unlock(&h->add_lock);
    /* A BAR that overlapped one of f's may decode now. */
    pci_bars_reconcile(h);
    pthread_mutex_unlock(&h->remap_lock);
    pci_bars_notify(h);
    pci_func_free(f);
}

uint32_t pci_func_slot(const struct pci_func *f)
{
    return f ? f->slot : 0;
}

int pci_cap_add_locked(struct pci_func *f, const void *cap, uint32_t len, uint32_t *offset)
{
    uint32_t off = f->cap_next;
    if (len > PCI_CFG_SIZE - off)
        return -ENOSPC;
    memcpy(f->cfg + off, cap, len);
    memset(f->wmask + off, 0, len);
    f->cfg[off + 1] = 0; /* end of list */
    if (f->cap_last)
        f->cfg[f->cap_last + 1] = (uint8_t)off;
    else
        f->cfg[PCI_CAP_PTR] = (uint8_t)off;
    f->cap_last = off;
    f->cap_next = (off + len + 3u) & ~3u; /* capabilities are dword aligned */
    put_le16(f->cfg + PCI_STATUS, get_le16(f->cfg + PCI_STATUS) | PCI_STATUS_CAP_LIST);
    if (offset)
        *offset = off;
    return 0;
}

int pci_func_add_cap(struct pci_func *f, const void *cap, uint32_t len, uint32_t *offset)
{
    if (!f || !cap || len < 2)
        return -EINVAL;
    pthread_mutex_lock(&f->lock);
    int r = pci_cap_add_locked(f, cap, len, offset);
    pthread_mutex_unlock(&f->lock);
    return r;
}

void pci_func_reset(struct pci_func *f)
{
    if (!f)
        return;
    struct pci_host *h = f->h;
    pthread_mutex_lock(&h->remap_lock);
    pthread_mutex_lock(&f->lock);
    put_le16(f->cfg + PCI_COMMAND, 0);
    f->cfg[PCI_CACHE_LINE] = 0;
    f->cfg[PCI_INT_LINE] = 0;
    pci_msix_reset(f);
    pthread_mutex_unlock(&f->lock);
    pci_bars_reconcile(h);
    pthread_mutex_unlock(&h->remap_lock);
    pci_bars_notify(h);
}

/* ---- the host ------------------------------------------------------------------ */

static bool ranges_overlap(uint64_t a, uint64_t an, uint64_t b, uint64_t bn)
{
    return an && bn && a < b + bn && b < a + an;
}

static bool range_wraps(uint64_t base, uint64_t size)
{
    return size && base + (size - 1) < base;
}

static int check_windows(const struct pci_windows *w, char *err, size_t errlen)
{
    if (w->ecam_size == 0 || w->ecam_size % PCI_ECAM_BUS_SIZE ||
        w->ecam_size > 256ull * PCI_ECAM_BUS_SIZE || w->ecam_base % PCI_ECAM_BUS_SIZE ||
        range_wraps(w->ecam_base, w->ecam_size)) {
        snprintf(err, errlen,
                 "PCI: ECAM 0x%llx+0x%llx must be 1-256 MiB-aligned buses of 1 MiB",
                 (unsigned long long)w->ecam_base, (unsigned long long)w->ecam_size);
        return -1;
    }
    if (w->mmio32_size == 0 || (w->mmio32_base | w->mmio32_size) % 4096u ||
        w->mmio32_base + w->mmio32_size > 0x100000000ull ||
        w->mmio32_base + w->mmio32_size < w->mmio32_base) {
        snprintf(err, errlen, "PCI: 32-bit window 0x%llx+0x%llx must be page-aligned below 4 GiB",
                 (unsigned long long)w->mmio32_base, (unsigned long long)w->mmio32_size);
        return -1;
    }
    if ((w->mmio64_base | w->mmio64_size) % 4096u || range_wraps(w->mmio64_base, w->mmio64_size)) {
        snprintf(err, errlen, "PCI: 64-bit window 0x%llx+0x%llx is not page-aligned",
                 (unsigned long long)w->mmio64_base, (unsigned long long)w->mmio64_size);
        return -1;
    }
    if (ranges_overlap(w->ecam_base, w->ecam_size, w->mmio32_base, w->mmio32_size) ||
        ranges_overlap(w->ecam_base, w->ecam_size, w->mmio64_base, w->mmio64_size) ||
        ranges_overlap(w->mmio32_base, w->mmio32_size, w->mmio64_base, w->mmio64_size)) {
        snprintf(err, errlen, "PCI: the ECAM area and the MMIO windows overlap");
        return -1;
    }
    return 0;
}

static int claim(struct bus *b, uint64_t base, uint64_t size, bus_io_fn fn, void *opaque,
                 uint32_t region, bool *done, const char *what, char *err, size_t errlen)
{
    int r = bus_add(b, base, size, fn, opaque, region);
    if (r < 0) {
        snprintf(err, errlen, "PCI: cannot claim the %s 0x%llx-0x%llx on the %s bus: %s", what,
                 (unsigned long long)base, (unsigned long long)(base + size - 1), b->name,
                 r == -EEXIST ? "another device uses part of it" : strerror(-r));
        return -1;
    }
    *done = true;
    return 0;
}

struct pci_host *pci_host_create(struct bus *pio, struct bus *mmio, const struct pci_windows *w,
                                 const struct pci_msi_ops *msi, void *msi_opaque, char *err,
                                 size_t errlen)
{
    if (!pio || !mmio || !w) {
        snprintf(err, errlen, "PCI: no buses or windows given");
        return NULL;
    }
    if (check_windows(w, err, errlen) < 0)
        return NULL;
    if (msi && (!msi->alloc || !msi->release || !msi->route || !msi->fire)) {
        snprintf(err, errlen, "PCI: incomplete MSI operations");
        return NULL;
    }
    struct pci_host *h = calloc(1, sizeof(*h));
    struct pci_func *bridge = calloc(1, sizeof(*bridge));
    if (!h || !bridge) {
        free(h);
        free(bridge);
        snprintf(err, errlen, "PCI: out of memory");
        return NULL;
    }
    h->pio = pio;
    h->mmio = mmio;
    h->w = *w;
    h->nbuses = (uint32_t)(w->ecam_size / PCI_ECAM_BUS_SIZE);
    if (msi) {
        h->msi = *msi;
        h->has_msi = true;
    }
    h->msi_opaque = msi_opaque;
    h->next32 = w->mmio32_base;
    h->next64 = w->mmio64_base;
    pthread_mutex_init(&h->add_lock, NULL);
    pthread_mutex_init(&h->remap_lock, NULL);
    pthread_mutex_init(&h->ev_lock, NULL);
    bus_init(&h->bars, "PCI BAR");

    static const struct pci_func_ids bridge_ids = {
        .vendor = HOSTBRIDGE_VENDOR, .device = HOSTBRIDGE_DEVICE, .class_code = HOSTBRIDGE_CLASS};
    pci_func_init(bridge, h, 0, &bridge_ids, NULL, NULL);
    h->funcs[0] = bridge;

    if (claim(pio, CF8_PORT, 4, pio_io, h, REGION_CF8, &h->pio_cf8, "CONFIG_ADDRESS port", err,
              errlen) < 0 ||
        claim(pio, CFC_PORT, 4, pio_io, h, REGION_CFC, &h->pio_cfc, "CONFIG_DATA port", err,
              errlen) < 0 ||
        claim(mmio, w->ecam_base, w->ecam_size, ecam_io, h, 0, &h->mmio_ecam, "ECAM area", err,
              errlen) < 0 ||
        claim(mmio, w->mmio32_base, w->mmio32_size, pci_window_io, h, 0, &h->mmio_win32,
              "32-bit MMIO window", err, errlen) < 0 ||
        (w->mmio64_size && claim(mmio, w->mmio64_base, w->mmio64_size, pci_window_io, h, 1,
                                 &h->mmio_win64, "64-bit MMIO window", err, errlen) < 0)) {
        pci_host_destroy(h);
        return NULL;
    }
    return h;
}

void pci_host_destroy(struct pci_host *h)
{
    if (!h)
        return;
    /*
     * The caller has stopped the vCPUs: bus handlers run outside the bus
     * lock, so nothing else keeps h alive for an access in flight.
     */
    if (h->pio_cf8)
        bus_remove(h->pio, CF8_PORT);
    if (h->pio_cfc)
        bus_remove(h->pio, CFC_PORT);
    if (h->mmio_ecam)
        bus_remove(h->mmio, h->w.ecam_base);
    if (h->mmio_win32)
        bus_remove(h->mmio, h->w.mmio32_base);
    if (h->mmio_win64)
        bus_remove(h->mmio, h->w.mmio64_base);
    /*
     * Owners are not told their BARs went away: they may already be gone,
     * and they tear down their own ioeventfds.
     */
    for (uint32_t i = 0; i < PCI_MAX_SLOTS; i++)
        if (h->funcs[i])
            pci_func_free(h->funcs[i]);
    bus_destroy(&h->bars);
    pthread_mutex_destroy(&h->add_lock);
    pthread_mutex_destroy(&h->remap_lock);
    pthread_mutex_destroy(&h->ev_lock);
    free(h);
}

const struct pci_windows *pci_host_windows(const struct pci_host *h)
{
    return h ? &h->w : NULL;
}
