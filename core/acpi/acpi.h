/* ACPI tables: RSDP, XSDT, FADT (hardware-reduced), DSDT, MADT, MCFG. */
#ifndef NIMBUS_ACPI_H
#define NIMBUS_ACPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../memory.h"

struct acpi_legacy_dev {
    const char *hid;   /* "PNP0501" (UART), "PNP0B00" (RTC) */
    const char *name;  /* 4-char ACPI name, e.g. "COM1" */
    uint16_t port, port_len;
    uint8_t irq;       /* ISA IRQ, 0xff = none */
};

/* A _HID the DSDT can carry: an EISA id ("PNP0501") or an ACPI id ("ACPI0010"). */
bool acpi_hid_valid(const char *hid);

struct pci_windows; /* pci/pci.h */

struct acpi_config {
    uint32_t ncpus;               /* present at boot: vCPUs [0, ncpus) */
    uint32_t max_cpus;            /* possible vCPUs, 0 = ncpus */
    uint16_t sleep_port;          /* FADT sleep control/status register */
    const struct acpi_legacy_dev *devs;
    unsigned ndevs;
    /*
     * The PCI host's windows, or NULL for a machine without PCI.  When set:
     * an MCFG table for the ECAM area, and in the DSDT the host bridge
     * \_SB.PCI0 (config ports, bus range, MMIO windows) plus \_SB.PRES, a
     * motherboard-resources device reserving the ECAM area, which Linux
     * requires before it uses MMCONFIG.  The names PCI0 and PRES are then
     * taken.
     */
    const struct pci_windows *pci;
    /*
     * The Generic Event Device's register port and interrupt, 0 = none.
     * When set, the DSDT has \_SB.GED_ (ACPI0013: level-triggered,
     * active-high GSI; _EVT reads the one-byte register, see
     * ACPI_GED_EVT_*) and the power button \_SB.PWRB (PNP0C0C) it
     * notifies; the names GED_ and PWRB are then taken.
     */
    uint16_t ged_port;
    uint32_t ged_gsi;
    /*
     * The PCI hotplug registers (pci/pci_hotplug.h), 0 = none; needs `pci`
     * and the GED.  When set, \_SB.PCI0 holds a slot object SL01-SL1F per
     * device number (_ADR, _SUN, _EJ0 writing B0EJ) and the method PCNT
     * that notifies the slots PCIU and PCID name; the GED's _EVT calls it.
     */
    uint16_t pcihp_port;
    /*
     * The CPU hotplug registers (hp_slots.h), 0 = none; needs the GED.
     * When set, \_SB.CPUS (ACPI0010) holds a processor object Cxxx
     * (ACPI0007, _UID = vCPU index, _STA, _MAT, _EJ0) per possible vCPU
     * and the method CSCN that the GED's _EVT calls; the name CPUS is then
     * taken.
     */
    uint16_t cpuhp_port;
    /*
     * The memory hotplug registers (hp_slots.h), 0 = none; needs the GED.
     * When set, \_SB.MHPC holds memhp_slots memory devices Mxxx (PNP0C80,
     * _UID = slot, _STA, the _CRS of [memhp_base + slot * memhp_slot_size,
     * + memhp_slot_size)) and the method CSCN that the GED's _EVT calls;
     * the name MHPC is then taken.
     */
    uint16_t memhp_port;
    uint32_t memhp_slots;
    uint64_t memhp_base, memhp_slot_size;
};

/* max_cpus, or ncpus when max_cpus is 0. */
uint32_t acpi_possible_cpus(const struct acpi_config *cfg);

/*
 * Write all tables into guest memory at [LAYOUT_ACPI_START,
 * +LAYOUT_ACPI_SIZE); returns the RSDP address or 0 on failure.
 */
uint64_t acpi_build(struct guest_mem *gm, const struct acpi_config *cfg);

/*
 * Build only the DSDT into buf (unit tests dump it for `iasl -d`).
 * Returns its length or 0 if cap is too small.
 */
size_t acpi_build_dsdt(const struct acpi_config *cfg, uint8_t *buf, size_t cap);

/*
 * The IOAPIC ID the MADT announces for ncpus vCPUs (not colliding with any
 * xAPIC ID where possible).  An IOAPIC model may load it into its ID
 * register so the two agree; Linux on x86-64 does not require that.
 */
uint8_t acpi_ioapic_id(uint32_t ncpus);

/* Value the guest writes to the sleep control register to enter S5. */
#define ACPI_SLP_TYP_S5 5u
#define ACPI_SLP_EN (1u << 5)

/* Pending-event bits of the GED register (reading it returns and clears them). */
#define ACPI_GED_EVT_POWER_BUTTON 0x01u
/* PCI slots changed: _EVT calls \_SB.PCI0.PCNT (pci/pci_hotplug.h). */
#define ACPI_GED_EVT_PCI 0x02u
/* vCPUs arrived or should leave: _EVT calls \_SB.CPUS.CSCN. */
#define ACPI_GED_EVT_CPU 0x04u
/* Memory arrived: _EVT calls \_SB.MHPC.CSCN. */
#define ACPI_GED_EVT_MEM 0x08u

#endif
