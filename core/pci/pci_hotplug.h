/*
 * ACPI PCI hotplug of bus 0's slots, the register side (the DSDT's slot
 * objects and \_SB.PCI0.PCNT live in acpi/dsdt.c).  Three dword registers
 * at `port`:
 *   +0 PCIU (read)  slots that gained a device since the last read
 *   +4 PCID (read)  slots whose device the host asks the guest to eject
 *   +8 B0EJ (write) slots the guest has ejected (its _EJ0 methods)
 * Reading PCIU or PCID clears it: the GED's _EVT reads both once per event
 * and notifies each slot.  An eject is only recorded here; `ejected` then
 * tells the owner, which takes the slots with pcihp_take_ejected on its
 * control thread (a vCPU thread must not tear a device down).
 */
#ifndef NIMBUS_PCI_HOTPLUG_H
#define NIMBUS_PCI_HOTPLUG_H

#include <stddef.h>
#include <stdint.h>

#include "../bus.h"

#define PCIHP_REG_UP 0u
#define PCIHP_REG_DOWN 4u
#define PCIHP_REG_EJECT 8u
#define PCIHP_PORT_LEN 12u
/* Slot 0 is the host bridge: never plugged, never ejected. */
#define PCIHP_SLOTS_MASK 0xfffffffeu

struct pcihp;

/* Claim [port, port + PCIHP_PORT_LEN) on the PIO bus.  `ejected` runs on
 * the vCPU thread that wrote B0EJ, without the lock: it must not block. */
struct pcihp *pcihp_create(struct bus *pio, uint16_t port, void (*ejected)(void *opaque),
                           void *opaque, char *err, size_t errlen);
/* A device appeared in `slot` / the host wants it out: the caller then
 * raises the GED's PCI event. */
void pcihp_plugged(struct pcihp *p, uint32_t slot);
void pcihp_unplug_request(struct pcihp *p, uint32_t slot);
/* Slots the guest ejected since the last call (cleared). */
uint32_t pcihp_take_ejected(struct pcihp *p);
/* Release the ports; no access may be in flight. */
void pcihp_destroy(struct pcihp *p);

#endif
