/*
 * ACPI CPU hotplug, the register side (the DSDT's processor objects and
 * \_SB.CPUS methods live in acpi/dsdt_cpus.c).  At `port`:
 *   +0 CSEL (dword, read/write) selects a vCPU by index
 *   +4 CNXT (dword, read)  the lowest vCPU with an event to report, or
 *                          0xffffffff: how the scan finds work without
 *                          touching every vCPU (each access is a VM exit)
 *   +8 status/command byte of the selected vCPU:
 *      read:  bit 0 present, bit 1 insert event, bit 2 removal event
 *      write: bit 1 / bit 2 acknowledge that event, bit 3 eject
 * The guest's scan notifies each vCPU with an event and acknowledges it;
 * its _STA reads the present bit; _EJ0 writes the eject bit after the guest
 * took the CPU offline.  An eject clears "present" at once (Linux reads
 * _STA right after _EJ0 and warns if the device is still there) and is
 * otherwise only recorded: `ejected` tells the owner, whose control thread
 * then stops the vCPU (a vCPU thread must not join another).
 */
#ifndef NIMBUS_CPU_HOTPLUG_H
#define NIMBUS_CPU_HOTPLUG_H

#include <stddef.h>
#include <stdint.h>

#include "bus.h"

#define CPUHP_REG_SEL 0u
#define CPUHP_REG_NEXT 4u
#define CPUHP_REG_STATUS 8u
#define CPUHP_PORT_LEN 9u

#define CPUHP_ST_PRESENT 0x01u
#define CPUHP_ST_INSERT 0x02u
#define CPUHP_ST_REMOVE 0x04u
#define CPUHP_CMD_EJECT 0x08u
#define CPUHP_NONE 0xffffffffu

struct cpuhp;

/* Claim the ports for `n` vCPUs, vCPUs [0, present) present.  `ejected`
 * runs on the vCPU thread that ejected one, without the lock: it must not
 * block. */
struct cpuhp *cpuhp_create(struct bus *pio, uint16_t port, uint32_t n, uint32_t present,
                           void (*ejected)(void *opaque), void *opaque, char *err,
                           size_t errlen);
/* vCPU `i` arrived / the host wants it out: the caller then raises the
 * GED's CPU event.  Out-of-range indices are ignored. */
void cpuhp_plugged(struct cpuhp *c, uint32_t i);
void cpuhp_unplug_request(struct cpuhp *c, uint32_t i);
/* 1 when vCPU i is present as the guest sees it. */
int cpuhp_present(struct cpuhp *c, uint32_t i);
/* 1 while a removal the host asked for has not ended in an eject, or an
 * eject has not been taken yet. */
int cpuhp_removal_pending(struct cpuhp *c);
/* The lowest vCPU ejected since it was last taken (cleared), or CPUHP_NONE. */
uint32_t cpuhp_take_ejected(struct cpuhp *c);
/* Release the ports; no access may be in flight. */
void cpuhp_destroy(struct cpuhp *c);

#endif
