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
/* Entries KVM_CREATE_IRQCHIP installs: IOAPIC pins 0-23 and PIC lines 0-15. */
#define MSI_KVM_DEFAULT_ROUTES 40u

struct msi_kvm;

/* Opaque for these ops: the struct msi_kvm.  All four are thread-safe. */
extern const struct pci_msi_ops msi_kvm_ops;

/* k must stay open until msi_kvm_destroy. */
struct msi_kvm *msi_kvm_create(struct kvm *k, char *err, size_t errlen);
/* Detach every irqfd, drop the MSI routes, close the eventfds. */
void msi_kvm_destroy(struct msi_kvm *m);

/* The eventfd behind a slot (-1 if none), e.g. to hand to another notifier. */
int msi_kvm_eventfd(struct msi_kvm *m, uint32_t handle);

/*
 * Fill out[0..MSI_KVM_DEFAULT_ROUTES) with KVM's default x86 routing:
 * GSI n -> IOAPIC pin n for 0-23, and GSI n -> PIC pin n%8 of the master
 * (n < 8) or slave for 0-15.  KVM_SET_GSI_ROUTING replaces the whole table,
 * so every update must carry these too.  Returns the count.
 */
size_t msi_kvm_default_routes(struct kvm_irq_routing_entry *out);

#endif
