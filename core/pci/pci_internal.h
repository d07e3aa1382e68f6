/*
 * State shared by the PCI sources (host, config space, BAR decoding,
 * MSI-X).  Not part of the API: device code uses pci.h only.  Tests and
 * fuzzers may include it to check invariants.
 *
 * Locks, outermost first:
 *   h->remap_lock  serialises BAR decode changes host-wide (config writes
 *                  to COMMAND or a BAR, reset, add_bar); held while ranges
 *                  are added to or removed from h->bars.
 *   h->add_lock    the slot table (pci_func_add, pci_func_remove).
 *   h->bars.lock   (the private decoder bus) held only to look a BAR up;
 *                  the access itself (MSI-X table, bar_io) runs after, so
 *                  one may arrive just after its BAR stopped decoding.
 *   f->lock        config bytes and MSI-X state of one function; msi ops
 *                  may be called under it, pci_func_ops callbacks never.
 *   h->ev_lock     the decode state bar_remap callbacks report (leaf).
 */
#ifndef NIMBUS_PCI_INTERNAL_H
#define NIMBUS_PCI_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "pci.h"

#define PCI_CFG_SIZE 256u      /* standard header + capabilities */
#define PCI_ECAM_FN_SIZE 4096u /* per function, extended space included */
#define PCI_ECAM_BUS_SIZE (1u << 20)

/* Standard header offsets and bits (PCI Local Bus 3.0, chapter 6). */
#define PCI_VENDOR_ID 0x00u
#define PCI_DEVICE_ID 0x02u
#define PCI_COMMAND 0x04u
#define PCI_STATUS 0x06u
#define PCI_REVISION 0x08u
#define PCI_CLASS_PROG 0x09u
#define PCI_CACHE_LINE 0x0cu
#define PCI_HEADER_TYPE 0x0eu
#define PCI_BAR0 0x10u
#define PCI_SUBSYS_VENDOR 0x2cu
#define PCI_SUBSYS_ID 0x2eu
#define PCI_CAP_PTR 0x34u
#define PCI_INT_LINE 0x3cu
#define PCI_INT_PIN 0x3du
#define PCI_CAP_START 0x40u

#define PCI_CMD_IO 0x0001u
#define PCI_CMD_MEM 0x0002u
#define PCI_CMD_MASTER 0x0004u
#define PCI_CMD_PARITY 0x0040u
#define PCI_CMD_SERR 0x0100u
#define PCI_CMD_INTX_DISABLE 0x0400u
#define PCI_STATUS_CAP_LIST 0x0010u

#define PCI_BAR_TYPE_64 0x4u
#define PCI_BAR_PREFETCHABLE 0x8u

#define PCI_CAP_ID_MSIX 0x11u
#define PCI_MSIX_CAP_LEN 12u
#define PCI_MSIX_CTRL_ENABLE 0x8000u
#define PCI_MSIX_CTRL_MASKALL 0x4000u
#define PCI_MSIX_ENTRY_SIZE 16u
#define PCI_MSIX_ENTRY_MASKED 0x1u

struct pci_bar {
    uint64_t size; /* 0: no BAR in this slot (or the high half of a MEM64) */
    uint32_t kind; /* PCI_BAR_MEM32/MEM64 | PCI_BAR_PREFETCH */
    /* Where the BAR is decoded: written under remap_lock and ev_lock. */
    bool mapped;
    uint64_t mapped_addr;
    /* What ops->bar_remap was last told (ev_lock). */
    bool told_mapped;
    uint64_t told_addr;
};

struct pci_msix_entry {
    uint32_t addr_lo, addr_hi, data, ctrl;
};

/* The message last handed to msi ops route() for a vector. */
struct pci_msix_route {
    uint64_t addr;
    uint32_t data;
    bool valid;
};

struct pci_msix {
    uint32_t nvec; /* 0: no MSI-X */
    uint32_t bar;
    uint64_t table_off, pba_off, pba_size;
    uint32_t cap_off;
    struct pci_msix_entry *table;
    uint64_t *pba;
    uint32_t *handle; /* msi ops slot per vector (NULL without msi ops) */
    struct pci_msix_route *routed;
};

struct pci_func {
    struct pci_host *h;
    uint32_t slot;
    pthread_mutex_t lock;
    uint8_t cfg[PCI_CFG_SIZE];
    uint8_t wmask[PCI_CFG_SIZE]; /* guest-writable bits per byte */
    uint32_t cap_next; /* next free capability offset */
    uint32_t cap_last; /* offset of the last capability, 0 if none */
    struct pci_bar bars[PCI_NUM_BARS];
    struct pci_msix msix;
    struct pci_func_ops ops;
    void *opaque;
};

struct pci_host {
    struct bus *pio, *mmio;
    struct pci_windows w;
    struct pci_msi_ops msi;
    bool has_msi;
    void *msi_opaque;
    uint32_t cf8; /* CONFIG_ADDRESS latch (atomic access) */
    uint32_t nbuses;
    /* Registered on the VM's buses (undone by destroy). */
    bool pio_cf8, pio_cfc, mmio_ecam, mmio_win32, mmio_win64;

    struct pci_func *funcs[PCI_MAX_SLOTS]; /* atomic loads: added while running */
    pthread_mutex_t add_lock; /* serialises pci_func_add */

    pthread_mutex_t remap_lock;
    struct bus bars; /* decoded BARs, dispatched from the window handlers */
    uint64_t next32, next64; /* bump allocators for pre-assigned BARs */

    pthread_mutex_t ev_lock;
    bool draining;
};

/* pci_host.c */
struct pci_func *pci_lookup(struct pci_host *h, uint32_t bus, uint32_t slot, uint32_t fn);
void pci_func_init(struct pci_func *f, struct pci_host *h, uint32_t slot,
                   const struct pci_func_ids *ids, const struct pci_func_ops *ops, void *opaque);
void pci_func_free(struct pci_func *f);
/* pci_func_add_cap with f->lock held. */
int pci_cap_add_locked(struct pci_func *f, const void *cap, uint32_t len, uint32_t *offset);

/* pci_bar.c */
/* Bring every BAR's decoding in line with config space (remap_lock held). */
void pci_bars_reconcile(struct pci_host *h);
/* Stop decoding every BAR of f, with remap_lock held (pci_func_remove). */
void pci_bars_undecode(struct pci_host *h, struct pci_func *f);
/* Tell owners about decode changes, outside every PCI lock. */
void pci_bars_notify(struct pci_host *h);
/* Guest address a BAR's registers hold (f->lock held). */
uint64_t pci_bar_reg_addr(const struct pci_func *f, uint32_t bar);
/* The window handler for mmio32 (region 0) and mmio64 (region 1). */
void pci_window_io(void *opaque, uint32_t region, uint64_t offset, void *data, uint32_t len,
                   int is_write);

/* pci_msix.c (all with f->lock held unless noted) */
/* A guest BAR access touching the table or PBA is answered here (takes f->lock). */
bool pci_msix_bar_access(struct pci_func *f, uint32_t bar, uint64_t off, void *data,
                         uint32_t len, int is_write);
/* Message control may have changed from `old`: deliver what became unmasked. */
void pci_msix_control_written(struct pci_func *f, uint16_t old);
void pci_msix_reset(struct pci_func *f);
void pci_msix_free(struct pci_func *f);

#endif
