/*
 * MSI delivery over KVM for the PCI layer: every pci_msi_ops slot is an
 * eventfd bound to its own GSI with KVM_IRQFD, and the GSI's MSI route is
 * set with KVM_SET_GSI_ROUTING.  Firing a vector is one eventfd write, no
 * ioctl; the kernel injects the interrupt.
 *
 * Usage: m = msi_kvm_create(&vm->kvm, ...); then
 * pci_host_create(..., &msi_kvm_ops, m, ...); destroy the host first,
 * then m.
 */
#ifndef NIMBUS_MSI_KVM_H
#define NIMBUS_MSI_KVM_H

#include <stddef.h>
#include <stdint.h>

#include "../kvm.h"
#include "pci.h"

/* GSIs below this are the IOAPIC's pins; MSI slots take the ones above. */
#define MSI_KVM_FIRST_GSI 24u
/* Fixed entries of every table we install: IOAPIC pins 0-23, nothing else. */
#define MSI_KVM_DEFAULT_ROUTES 24u

struct msi_kvm;

/* Opaque for these ops: the struct msi_kvm.  All four are thread-safe. */
extern const struct pci_msi_ops msi_kvm_ops;

/* k must stay open until msi_kvm_destroy.  Installs the legacy routes at once. */
struct msi_kvm *msi_kvm_create(struct kvm *k, char *err, size_t errlen);
/* Detach every irqfd, drop the MSI routes, close the eventfds. */
void msi_kvm_destroy(struct msi_kvm *m);

/* The eventfd behind a slot (-1 if none), e.g. to hand to another notifier. */
int msi_kvm_eventfd(struct msi_kvm *m, uint32_t handle);

/*
 * Fill out[0..MSI_KVM_DEFAULT_ROUTES) with the legacy part of our routing:
 * GSI n -> IOAPIC pin n for 0-23.  KVM_SET_GSI_ROUTING replaces the whole
 * table, so every update carries these.  Unlike KVM's default table there
 * are no PIC routes: the machine is hardware-reduced ACPI without
 * PCAT_COMPAT, the guest never programs the in-kernel 8259, and that
 * uninitialised PIC (everything unmasked, vector base 0) would otherwise
 * hand the BSP, whose LINT0 is ExtINT, exception vectors 0-15 as
 * interrupts whenever a legacy line rises.  Returns the count.
 */
size_t msi_kvm_default_routes(struct kvm_irq_routing_entry *out);

#endif
