/*
 * PCI: one root bus (segment 0, bus 0) behind a host bridge, reached through
 * ports 0xCF8/0xCFC and ECAM (announced in the ACPI MCFG table), with BARs
 * allocated from a 32-bit and a 64-bit MMIO window and MSI-X emulated here
 * (table and PBA) so function owners only ever say "fire vector n".
 *
 * Decoding: the host claims ports 0xCF8-0xCFF, the ECAM area and its two
 * MMIO windows on the VM's buses once, at creation; decoded BARs live on a
 * private bus behind the windows, so moving a BAR never adds or removes
 * ranges on the VM's buses.  A BAR is decoded while COMMAND.MEM is set, it
 * lies entirely inside a window its type may use, and it does not overlap
 * another decoded BAR.
 *
 * Locking: each function has its own lock around config space and the MSI-X
 * table.  The callbacks in pci_func_ops are never called with a PCI lock
 * held, so an owner may take its own lock inside them and also call
 * pci_msix_notify() while holding that lock.  Decode changes reach an
 * owner in order (unmapped at the old address before mapped at the new
 * one), on the thread of whichever call made them or of another one
 * delivering changes at that moment; so do not call pci_func_reset(),
 * pci_func_add_bar() or pci_config_write() while holding a lock your
 * bar_remap takes.  Like any bus handler, bar_io may still see an access
 * that was looked up just before its BAR stopped decoding.
 */
#ifndef NIMBUS_PCI_H
#define NIMBUS_PCI_H

#include <stddef.h>
#include <stdint.h>

#include "../bus.h"

#define PCI_MAX_SLOTS 32u /* device numbers on bus 0; function 0 only */
#define PCI_NUM_BARS 6u
#define PCI_MSIX_MAX_VECTORS 2048u
#define PCI_MSIX_NO_VECTOR 0xffffu

/* BAR kinds for pci_func_add_bar. */
#define PCI_BAR_MEM32 1u
#define PCI_BAR_MEM64 2u
#define PCI_BAR_PREFETCH 0x100u /* or-ed into the kind */

struct pci_host;
struct pci_func;

/* The guest-physical windows BARs are allocated from (also in the DSDT _CRS). */
struct pci_windows {
    uint64_t ecam_base, ecam_size;   /* LAYOUT_PCI_ECAM, 1 MiB per bus */
    uint64_t mmio32_base, mmio32_size;
    uint64_t mmio64_base, mmio64_size;
};

/*
 * How MSI-X messages reach the guest.  The VM implements it with KVM irqfds
 * and GSI routes; tests use a recorder.  A handle is one vector's route.
 */
struct pci_msi_ops {
    /* Create a route slot; *handle identifies it afterwards. */
    int (*alloc)(void *opaque, uint32_t *handle);
    void (*release)(void *opaque, uint32_t handle);
    /* Program (or reprogram) the message of a slot. */
    int (*route)(void *opaque, uint32_t handle, uint64_t addr, uint32_t data);
    /* Deliver the slot's message now (an eventfd write for KVM: no ioctl). */
    int (*fire)(void *opaque, uint32_t handle);
};

struct pci_func_ops {
    /*
     * Guest access to BAR `bar` at `offset` (outside the MSI-X table and
     * PBA, which the PCI layer answers itself).  offset + len <= BAR size.
     */
    void (*bar_io)(void *opaque, uint32_t bar, uint64_t offset, void *data, uint32_t len,
                   int is_write);
    /*
     * The BAR became decoded at `addr` (mapped = 1) or stopped being decoded
     * (memory decoding off, or the guest is moving it).  Owners that
     * registered ioeventfds inside the BAR move them here.  Optional.
     */
    void (*bar_remap)(void *opaque, uint32_t bar, uint64_t addr, int mapped);
};

struct pci_func_ids {
    uint16_t vendor, device;
    uint16_t subsys_vendor, subsys_id;
    uint8_t revision;
    uint32_t class_code; /* 24 bits: base class, subclass, prog-if */
};

/*
 * The host bridge (00:00.0) plus config access on `pio` (0xCF8-0xCFF) and
 * `mmio` (ECAM).  msi may be NULL (then MSI-X vectors never fire).
 */
struct pci_host *pci_host_create(struct bus *pio, struct bus *mmio, const struct pci_windows *w,
                                 const struct pci_msi_ops *msi, void *msi_opaque, char *err,
                                 size_t errlen);
/*
 * Remove every function's BARs and config decoders; frees the host and
 * releases every msi ops slot.  No vCPU may run; bar_remap is not called
 * (owners may already be gone: they drop their ioeventfds themselves).
 */
void pci_host_destroy(struct pci_host *h);
const struct pci_windows *pci_host_windows(const struct pci_host *h);

/* Add a function at the next free slot (1..31). */
struct pci_func *pci_func_add(struct pci_host *h, const struct pci_func_ids *ids,
                              const struct pci_func_ops *ops, void *opaque, char *err,
                              size_t errlen);
/*
 * Take f off the bus and free it: its slot reads as empty, its BARs stop
 * decoding, its MSI-X routes are released.  As for pci_host_destroy, no
 * vCPU may be running (a handler in flight would hold f) and bar_remap is
 * not called: the owner drops its ioeventfds itself, before.  The slot can
 * be given to a later pci_func_add.
 */
void pci_func_remove(struct pci_func *f);
/* Slot number (device number on bus 0) of f. */
uint32_t pci_func_slot(const struct pci_func *f);

/*
 * Give f a memory BAR of `size` bytes (power of two, >= 4 KiB) allocated
 * from the window `kind` asks for (MEM64 falls back to the 32-bit window if
 * the 64-bit one is full), mapped on the MMIO bus once the guest enables
 * memory decoding.  A MEM64 BAR uses slots bar and bar+1.  The address is
 * naturally aligned and programmed into the BAR, as firmware would, so the
 * guest keeps it.  Returns 0, -EINVAL (bad slot, size or kind; the host
 * bridge), -EBUSY (slot taken) or -ENOSPC (no room in the windows).
 */
int pci_func_add_bar(struct pci_func *f, uint32_t bar, uint64_t size, uint32_t kind);
/* Current guest address of a BAR (0 when unassigned). */
uint64_t pci_func_bar_addr(const struct pci_func *f, uint32_t bar);

/*
 * Append a capability to the config-space list: `cap` is the whole
 * capability with its id in byte 0 (the next pointer in byte 1 is filled in
 * here).  Read-only to the guest.  *offset receives its config offset
 * (dword aligned, from 0x40 up).  -ENOSPC when it does not fit in the
 * 256-byte header.
 */
int pci_func_add_cap(struct pci_func *f, const void *cap, uint32_t len, uint32_t *offset);

/*
 * MSI-X with nvec vectors, table and PBA inside BAR `bar` at the offsets
 * (8-byte aligned, inside the BAR, not overlapping).  Allocates one msi ops
 * slot per vector.  Once per function, before the guest enables memory
 * decoding (-EBUSY otherwise).  Vectors start masked.
 */
int pci_func_add_msix(struct pci_func *f, uint32_t nvec, uint32_t bar, uint64_t table_off,
                      uint64_t pba_off);
/*
 * Signal vector `vec`: delivered when MSI-X is enabled and neither the
 * function nor the vector is masked, otherwise its PBA bit is set and it is
 * delivered on unmask.  PCI_MSIX_NO_VECTOR and out-of-range vectors are
 * ignored (returns -EINVAL for out-of-range).  Any thread.
 */
int pci_msix_notify(struct pci_func *f, uint32_t vec);
int pci_msix_enabled(const struct pci_func *f);
uint32_t pci_msix_nvec(const struct pci_func *f);

/* Config space back to power-on (command 0, MSI-X off, vectors masked); BARs keep addresses. */
void pci_func_reset(struct pci_func *f);

/* Config space access as the guest sees it (tests and fuzzers drive these). */
uint32_t pci_config_read(struct pci_host *h, uint32_t bus, uint32_t slot, uint32_t fn,
                         uint32_t off, uint32_t len);
void pci_config_write(struct pci_host *h, uint32_t bus, uint32_t slot, uint32_t fn,
                      uint32_t off, uint32_t len, uint32_t val);

#endif
