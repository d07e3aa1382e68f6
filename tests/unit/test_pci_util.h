/*
 * Shared rig for the PCI unit tests: a host on private buses, guest-style
 * accessors for ports 0xCF8/0xCFC, ECAM and MMIO, a recording function
 * owner and a recording msi ops.  Include after <cmocka.h>.
 */
#ifndef NIMBUS_TEST_PCI_UTIL_H
#define NIMBUS_TEST_PCI_UTIL_H

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "bus.h"
#include "layout.h"
#include "pci/pci.h"
#include "pci/pci_internal.h"

#define T_ECAM LAYOUT_PCI_ECAM
#define T_MMIO32 LAYOUT_MMIO32_START
#define T_MMIO32_SIZE (LAYOUT_PCI_ECAM - LAYOUT_MMIO32_START)
#define T_MMIO64 0x4000000000ull
#define T_MMIO64_SIZE (64ull << 30)

static const struct pci_windows t_windows = {
    .ecam_base = T_ECAM,
    .ecam_size = 1u << 20,
    .mmio32_base = T_MMIO32,
    .mmio32_size = T_MMIO32_SIZE,
    .mmio64_base = T_MMIO64,
    .mmio64_size = T_MMIO64_SIZE,
};

/* ---- recording msi ops ------------------------------------------------------ */

enum { EV_ALLOC, EV_RELEASE, EV_ROUTE, EV_FIRE };

struct msi_event {
    int kind;
    uint32_t handle;
    uint64_t addr;
    uint32_t data;
};

struct msi_rec {
    struct msi_event ev[256];
    unsigned n;
    uint32_t next_handle;
    int fail_alloc_after; /* alloc fails once this many succeeded (-1: never) */
    unsigned live;        /* allocated minus released */
};

static inline void msi_rec_push(struct msi_rec *r, struct msi_event e)
{
    if (r->n < sizeof(r->ev) / sizeof(r->ev[0]))
        r->ev[r->n++] = e;
}

static inline int rec_alloc(void *opaque, uint32_t *handle)
{
    struct msi_rec *r = opaque;
    if (r->fail_alloc_after >= 0 && r->next_handle >= (uint32_t)r->fail_alloc_after)
        return -ENOSPC;
    *handle = 100 + r->next_handle++;
    r->live++;
    msi_rec_push(r, (struct msi_event){EV_ALLOC, *handle, 0, 0});
    return 0;
}

static inline void rec_release(void *opaque, uint32_t handle)
{
    struct msi_rec *r = opaque;
    r->live--;
    msi_rec_push(r, (struct msi_event){EV_RELEASE, handle, 0, 0});
}

static inline int rec_route(void *opaque, uint32_t handle, uint64_t addr, uint32_t data)
{
    msi_rec_push(opaque, (struct msi_event){EV_ROUTE, handle, addr, data});
    return 0;
}

static inline int rec_fire(void *opaque, uint32_t handle)
{
    msi_rec_push(opaque, (struct msi_event){EV_FIRE, handle, 0, 0});
    return 0;
}

static const struct pci_msi_ops rec_msi_ops = {rec_alloc, rec_release, rec_route, rec_fire};

/* ---- recording function owner ------------------------------------------------ */

struct remap_event {
    uint32_t bar;
    uint64_t addr;
    int mapped;
};

struct owner {
    struct remap_event remaps[64];
    unsigned nremaps;
    unsigned nio;
    uint32_t last_bar, last_len;
    uint64_t last_off, last_val;
    int last_write;
};

static inline void own_bar_io(void *opaque, uint32_t bar, uint64_t offset, void *data,
                              uint32_t len, int is_write)
{
    struct owner *o = opaque;
    o->nio++;
    o->last_bar = bar;
    o->last_off = offset;
    o->last_len = len;
    o->last_write = is_write;
    if (is_write) {
        o->last_val = 0;
        memcpy(&o->last_val, data, len);
    } else {
        /* Recognisable: each byte is the low byte of its offset plus the BAR number. */
        for (uint32_t i = 0; i < len; i++)
            ((uint8_t *)data)[i] = (uint8_t)(offset + i + bar);
    }
}

static inline void own_bar_remap(void *opaque, uint32_t bar, uint64_t addr, int mapped)
{
    struct owner *o = opaque;
    if (o->nremaps < sizeof(o->remaps) / sizeof(o->remaps[0]))
        o->remaps[o->nremaps++] = (struct remap_event){bar, addr, mapped};
}

static const struct pci_func_ops own_ops = {own_bar_io, own_bar_remap};

/* ---- the rig -------------------------------------------------------------------- */

struct rig {
    struct bus pio, mmio;
    struct pci_host *h;
    struct msi_rec msi;
    char err[256];
};

static inline struct rig *rig_new(int with_msi)
{
    struct rig *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    bus_init(&r->pio, "pio");
    bus_init(&r->mmio, "mmio");
    r->msi.fail_alloc_after = -1;
    r->h = pci_host_create(&r->pio, &r->mmio, &t_windows, with_msi ? &rec_msi_ops : NULL,
                           with_msi ? &r->msi : NULL, r->err, sizeof(r->err));
    if (!r->h)
        fail_msg("pci_host_create: %s", r->err);
    return r;
}

static inline void rig_free(struct rig *r)
{
    pci_host_destroy(r->h);
    bus_destroy(&r->pio);
    bus_destroy(&r->mmio);
    free(r);
}

static inline uint64_t t_le(const uint8_t *p, uint32_t len)
{
    uint64_t v = 0;
    for (uint32_t i = 0; i < len; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static inline void t_put(uint8_t *p, uint32_t len, uint64_t v)
{
    for (uint32_t i = 0; i < len; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* A guest access; unclaimed reads give all-ones, like the vCPU loop. */
static inline uint64_t bus_rd(struct bus *bus, uint64_t addr, uint32_t len)
{
    uint8_t b[8];
    if (bus_access(bus, addr, b, len, 0) < 0)
        memset(b, 0xff, sizeof(b));
    return t_le(b, len);
}

static inline void bus_wr(struct bus *bus, uint64_t addr, uint32_t len, uint64_t v)
{
    uint8_t b[8];
    t_put(b, len, v);
    bus_access(bus, addr, b, len, 1);
}

static inline uint64_t pio_rd(struct rig *r, uint16_t port, uint32_t len)
{
    return bus_rd(&r->pio, port, len);
}

static inline void pio_wr(struct rig *r, uint16_t port, uint32_t len, uint64_t v)
{
    bus_wr(&r->pio, port, len, v);
}

static inline uint64_t mmio_rd(struct rig *r, uint64_t addr, uint32_t len)
{
    return bus_rd(&r->mmio, addr, len);
}

static inline void mmio_wr(struct rig *r, uint64_t addr, uint32_t len, uint64_t v)
{
    bus_wr(&r->mmio, addr, len, v);
}

static inline uint32_t cf8_addr(uint32_t bus, uint32_t slot, uint32_t fn, uint32_t off)
{
    return 0x80000000u | bus << 16 | slot << 11 | fn << 8 | (off & 0xfcu);
}

static inline uint32_t cf8_rd(struct rig *r, uint32_t slot, uint32_t off, uint32_t len)
{
    pio_wr(r, 0xcf8, 4, cf8_addr(0, slot, 0, off));
    return (uint32_t)pio_rd(r, (uint16_t)(0xcfc + (off & 3)), len);
}

static inline void cf8_wr(struct rig *r, uint32_t slot, uint32_t off, uint32_t len, uint32_t v)
{
    pio_wr(r, 0xcf8, 4, cf8_addr(0, slot, 0, off));
    pio_wr(r, (uint16_t)(0xcfc + (off & 3)), len, v);
}

static inline uint64_t ecam_addr(uint32_t bus, uint32_t slot, uint32_t fn, uint32_t off)
{
    return T_ECAM + ((uint64_t)bus << 20 | slot << 15 | fn << 12 | off);
}

static inline uint32_t ecam_rd(struct rig *r, uint32_t slot, uint32_t off, uint32_t len)
{
    return (uint32_t)mmio_rd(r, ecam_addr(0, slot, 0, off), len);
}

static inline void ecam_wr(struct rig *r, uint32_t slot, uint32_t off, uint32_t len, uint32_t v)
{
    mmio_wr(r, ecam_addr(0, slot, 0, off), len, v);
}

static inline struct pci_func *add_func(struct rig *r, struct owner *o, uint16_t device)
{
    struct pci_func_ids ids = {.vendor = 0x1af4,
                               .device = device,
                               .subsys_vendor = 0x1af4,
                               .subsys_id = 0x1100,
                               .revision = 1,
                               .class_code = 0x018000};
    struct pci_func *f = pci_func_add(r->h, &ids, &own_ops, o, r->err, sizeof(r->err));
    if (!f)
        fail_msg("pci_func_add: %s", r->err);
    return f;
}

#endif
