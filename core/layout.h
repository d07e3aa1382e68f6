/* Guest physical and I/O port layout of a nimbus x86-64 machine. */
#ifndef NIMBUS_LAYOUT_H
#define NIMBUS_LAYOUT_H

#include <stdint.h>

/* Low memory used by the boot path (all below 1 MiB, inside RAM). */
#define LAYOUT_GDT_ADDR 0x500ull        /* boot GDT */
#define LAYOUT_BOOT_STACK 0x8ff0ull     /* initial RSP for the 64-bit entry */
#define LAYOUT_ZERO_PAGE 0x7000ull      /* Linux boot_params / PVH start_info */
#define LAYOUT_PVH_MEMMAP 0x6000ull     /* PVH memory map + module list */
#define LAYOUT_PML4 0x9000ull           /* identity page tables, 6 pages */
#define LAYOUT_CMDLINE 0x20000ull       /* kernel command line */
#define LAYOUT_CMDLINE_MAX 0x10000ull   /* 64 KiB including the NUL */
#define LAYOUT_EBDA_START 0x9fc00ull    /* end of low RAM in the E820 map */
#define LAYOUT_ACPI_START 0xe0000ull    /* RSDP and all ACPI tables */
#define LAYOUT_ACPI_SIZE 0x1f000ull     /* up to the reset-vector page */
#define LAYOUT_RESET_VECTOR 0xffff0ull  /* F000:FFF0, where a CPU reset starts */
#define LAYOUT_HIGH_RAM 0x100000ull     /* kernel loads here (1 MiB) */

/* The 32-bit hole: [3 GiB, 4 GiB) is never RAM. */
#define LAYOUT_MMIO32_START 0xc0000000ull
#define LAYOUT_MMIO32_END 0x100000000ull
#define LAYOUT_PCI_ECAM 0xe0000000ull   /* 256 MiB ECAM (issue 4) */
#define LAYOUT_IOAPIC 0xfec00000ull
#define LAYOUT_LAPIC 0xfee00000ull
#define LAYOUT_RAM_ABOVE_4G 0x100000000ull

/* I/O ports owned by the core. */
#define LAYOUT_PORT_ACPI_SLEEP 0x600u   /* FADT sleep control/status register */
#define LAYOUT_PORT_ACPI_GED 0x601u     /* Generic Event Device register (acpi/ged.h) */
#define LAYOUT_PORT_PCI_HOTPLUG 0x604u /* PCIU/PCID/B0EJ, 12 bytes (pci/pci_hotplug.h) */
#define LAYOUT_PORT_CPU_HOTPLUG 0x610u /* hotplug slots: vCPUs, 9 bytes (hp_slots.h) */
#define LAYOUT_PORT_MEM_HOTPLUG 0x620u /* hotplug slots: memory, 9 bytes (hp_slots.h) */
#define LAYOUT_PORT_BOOT_MARK 0x80u     /* debug/boot-time marker port (POST) */

/* Legacy device placement (given to plugins as options). */
#define LAYOUT_COM1_PORT 0x3f8u
#define LAYOUT_COM1_IRQ 4u
#define LAYOUT_RTC_PORT 0x70u
#define LAYOUT_RTC_IRQ 8u
#define LAYOUT_I8042_PORT 0x60u
/*
 * The GED's interrupt: an ISA IRQ no legacy device uses (COM1 4, RTC 8;
 * PCI devices use MSI-X only), level-triggered, active high.
 */
#define LAYOUT_GED_IRQ 5u

/* IOAPIC has 24 pins; GSIs 0..23. */
#define LAYOUT_IOAPIC_PINS 24u

#endif
