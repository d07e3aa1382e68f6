/*
 * Internal helpers shared by the ACPI table builders: the common 36-byte
 * System Description Table header, checksums, and the per-table builders
 * that acpi_build() lays out in guest memory.
 */
#ifndef NIMBUS_ACPI_SDT_H
#define NIMBUS_ACPI_SDT_H

#include <stddef.h>
#include <stdint.h>

#define SDT_HEADER_LEN 36u

/* Identity stamped into every table (and the RSDP's OEM ID). */
#define ACPI_OEM_ID "NIMBUS"         /* 6 bytes */
#define ACPI_OEM_TABLE_ID "NIMBUSVM" /* 8 bytes */
#define ACPI_OEM_REVISION 1u
#define ACPI_CREATOR_ID "NMBS"       /* 4 bytes */
#define ACPI_CREATOR_REVISION 1u

/* FADT (ACPI 6.3: major revision 6, minor 3; fixed length 276). */
#define FADT_LEN 276u
#define FADT_REVISION 6u
#define FADT_MINOR_REVISION 3u
/* Byte offsets of the FADT fields we set or tests inspect. */
#define FADT_OFF_FACS 36u
#define FADT_OFF_DSDT 40u
#define FADT_OFF_PM_PROFILE 45u
#define FADT_OFF_SCI_INT 46u
#define FADT_OFF_IAPC_BOOT_ARCH 109u
#define FADT_OFF_FLAGS 112u
#define FADT_OFF_RESET_REG 116u
#define FADT_OFF_RESET_VALUE 128u
#define FADT_OFF_MINOR_REVISION 131u
#define FADT_OFF_X_FACS 132u
#define FADT_OFF_X_DSDT 140u
#define FADT_OFF_SLEEP_CONTROL 244u
#define FADT_OFF_SLEEP_STATUS 256u
#define FADT_OFF_HYPERVISOR_ID 268u

#define FADT_FLAG_WBINVD (1u << 0)
#define FADT_FLAG_PWR_BUTTON (1u << 4)  /* no fixed-feature power button */
#define FADT_FLAG_SLP_BUTTON (1u << 5)  /* no fixed-feature sleep button */
#define FADT_FLAG_FIX_RTC (1u << 6)     /* RTC wake status not in fixed regs */
#define FADT_FLAG_RESET_REG_SUP (1u << 10)
#define FADT_FLAG_HW_REDUCED_ACPI (1u << 20)

#define FADT_IAPC_LEGACY_DEVICES (1u << 0)
#define FADT_IAPC_8042 (1u << 1)
#define FADT_IAPC_VGA_NOT_PRESENT (1u << 2)
#define FADT_IAPC_CMOS_RTC_NOT_PRESENT (1u << 5)

/* Generic Address Structure (12 bytes). */
#define GAS_LEN 12u
#define GAS_SPACE_SYSTEM_IO 1u
#define GAS_ACCESS_BYTE 1u

/* MADT. */
#define MADT_REVISION 5u
#define MADT_OFF_LAPIC_ADDR 36u
#define MADT_OFF_FLAGS 40u
#define MADT_HEADER_LEN 44u
#define MADT_TYPE_LAPIC 0u
#define MADT_TYPE_IOAPIC 1u
#define MADT_TYPE_ISO 2u
#define MADT_TYPE_LAPIC_NMI 4u
#define MADT_TYPE_X2APIC 9u
#define MADT_TYPE_X2APIC_NMI 10u
#define MADT_LAPIC_LEN 8u
#define MADT_IOAPIC_LEN 12u
#define MADT_LAPIC_NMI_LEN 6u
#define MADT_X2APIC_LEN 16u
#define MADT_X2APIC_NMI_LEN 12u
#define MADT_LAPIC_ENABLED 1u
#define MADT_LAPIC_ONLINE_CAPABLE 2u
/* xAPIC IDs stop at 254: 0xff is the broadcast ID. */
#define MADT_XAPIC_ID_LIMIT 0xffu

/* DSDT revision 2 makes AML integers 64-bit. */
#define DSDT_REVISION 2u

/* RSDP (ACPI 2.0+). */
#define RSDP_LEN 36u
#define RSDP_V1_LEN 20u
#define RSDP_REVISION 2u
#define RSDP_OFF_CHECKSUM 8u
#define RSDP_OFF_OEM_ID 9u
#define RSDP_OFF_REVISION 15u
#define RSDP_OFF_RSDT 16u
#define RSDP_OFF_LENGTH 20u
#define RSDP_OFF_XSDT 24u
#define RSDP_OFF_EXT_CHECKSUM 32u

#define XSDT_REVISION 1u

/* MCFG (PCI Firmware 3.2, 4.1.2): header, 8 reserved bytes, 16 per segment. */
#define MCFG_REVISION 1u
#define MCFG_OFF_ALLOC 44u
#define MCFG_ALLOC_LEN 16u
#define MCFG_LEN (MCFG_OFF_ALLOC + MCFG_ALLOC_LEN)

/* Sum of len bytes modulo 256; a valid table sums to 0. */
uint8_t acpi_sum(const uint8_t *p, size_t len);

/*
 * Fill the common header of a table of `len` bytes at t (checksum 0);
 * call sdt_finish() once the body is complete.
 */
void sdt_header(uint8_t *t, const char sig[4], uint32_t len, uint8_t revision);
/* Set the header checksum so the whole table sums to 0. */
void sdt_finish(uint8_t *t, size_t len);

/*
 * Table builders: each writes one complete table (header and checksum
 * included) into buf and returns its length, or 0 if it does not fit in
 * cap or the input is invalid.
 */
size_t acpi_build_fadt(uint64_t dsdt_addr, uint16_t sleep_port, uint8_t *buf, size_t cap);
/* ncpus possible vCPUs, [0, enabled) of them present at boot. */
size_t acpi_build_madt(uint32_t ncpus, uint32_t enabled, uint8_t *buf, size_t cap);
/* Exact MADT size for ncpus, or 0 if ncpus is 0. */
size_t acpi_madt_size(uint32_t ncpus);
/* One allocation: segment 0, buses 0..ecam_size/1 MiB - 1 at ecam_base. */
struct pci_windows;
size_t acpi_build_mcfg(const struct pci_windows *w, uint8_t *buf, size_t cap);

#endif
