/*
 * ACPI hotplug slots, the register side shared by CPU hotplug (a slot per
 * possible vCPU, acpi/dsdt_cpus.c) and memory hotplug (a slot per block
 * of the hotplug area, acpi/dsdt_mem.c).  At `port`:
 *   +0 SEL (dword, read/write) selects a slot by index
 *   +4 NXT (dword, read)  the lowest slot with an event to report, or
 *                         0xffffffff: how the DSDT's scan finds work
 *                         without touching every slot (each access is a
 *                         VM exit)
 *   +8 status/command byte of the selected slot:
 *      read:  bit 0 present, bit 1 insert event, bit 2 removal event
 *      write: bit 1 / bit 2 acknowledge that event, bit 3 eject
 * The guest's scan notifies each slot with an event and acknowledges it;
 * its _STA reads the present bit; _EJ0 writes the eject bit once the guest
 * let go (a CPU offline).  An eject clears "present" at once (Linux reads
 * _STA right after _EJ0 and warns if the device is still there) and is
 * otherwise only recorded: `ejected` tells the owner, whose control thread
 * then tears down (a vCPU thread must not join another).
 */
#ifndef NIMBUS_HP_SLOTS_H
#define NIMBUS_HP_SLOTS_H

#include <stddef.h>
#include <stdint.h>

#include "bus.h"

#define HPS_REG_SEL 0u
#define HPS_REG_NEXT 4u
#define HPS_REG_STATUS 8u
#define HPS_PORT_LEN 9u

#define HPS_ST_PRESENT 0x01u
#define HPS_ST_INSERT 0x02u
#define HPS_ST_REMOVE 0x04u
#define HPS_CMD_EJECT 0x08u
#define HPS_NONE 0xffffffffu

struct hp_slots;

/* Claim the ports for `n` slots, [0, present) present; slots [0, fixed)
 * are never ejected whatever the guest writes (the boot vCPU; memory,
 * which nimbus does not unplug).  `ejected` runs on the vCPU thread that
 * ejected one, without the lock: it must not block. */
struct hp_slots *hps_create(struct bus *pio, uint16_t port, uint32_t n, uint32_t present,
                            uint32_t fixed, void (*ejected)(void *opaque), void *opaque,
                            char *err, size_t errlen);
/* slot `i` was filled / the host wants it out: the caller then raises the
 * GED's event.  Out-of-range indices are ignored. */
void hps_plugged(struct hp_slots *c, uint32_t i);
void hps_unplug_request(struct hp_slots *c, uint32_t i);
/* 1 when slot i is present as the guest sees it. */
int hps_present(struct hp_slots *c, uint32_t i);
/* 1 while a removal the host asked for has not ended in an eject, or an
 * eject has not been taken yet. */
int hps_removal_pending(struct hp_slots *c);
/* The lowest slot ejected since it was last taken (cleared), or HPS_NONE. */
uint32_t hps_take_ejected(struct hp_slots *c);
/* Release the ports; no access may be in flight. */
void hps_destroy(struct hp_slots *c);

#endif
