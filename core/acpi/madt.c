/*
 * MADT (ACPI 6.3, section 5.2.12): one processor per possible vCPU with
 * APIC ID == vCPU index (the present ones enabled), the IOAPIC, and the
 * LINT1 NMI wiring.
 *
 * Choices, each checked against Linux (arch/x86/kernel/acpi/boot.c) and
 * KVM's in-kernel irqchip:
 *
 * - Flags = 0 (no PCAT_COMPAT).  With HW_REDUCED_ACPI in the FADT Linux
 *   installs null_legacy_pic before it parses the MADT, so the 8259 is
 *   never used either way; 0 states that honestly.  (Linux 6.1 ignores the
 *   flag; newer kernels use PCAT_COMPAT=1 only to skip probing a PIC they
 *   would then assume present.)
 *
 * - No Interrupt Source Override at all.  The usual IRQ0 -> GSI2 override
 *   describes QEMU, which re-routes the PIT to IOAPIC pin 2; KVM's default
 *   GSI routing (which nimbus keeps) is the identity, PIT on pin 0, so that
 *   override would be wrong.  HW-reduced Linux never uses the PIT interrupt
 *   anyway (timer_init is a no-op; LAPIC timer + TSC).  COM1/RTC IRQs come
 *   from their DSDT _CRS (IRQNoFlags: edge, active high, identity GSI),
 *   which is exactly what an identity override with "conforms to bus"
 *   flags would say, so such overrides would add nothing.
 *
 * - Processor Local APIC entries for IDs 0-254 and Processor Local x2APIC
 *   entries for IDs >= 255 only: the spec reserves x2APIC entries for IDs
 *   that do not fit xAPIC, and newer Linux drops x2APIC entries below 255
 *   when LAPIC entries exist.  (The guest also needs x2APIC enabled to
 *   start CPUs >= 255, i.e. KVM_FEATURE_MSI_EXT_DEST_ID or an IOMMU.)
 *
 * - ACPI Processor UID == vCPU index, unique across both entry types.
 */
#include <string.h>

#include "acpi.h"
#include "sdt.h"
#include "../boot/bytes.h"
#include "../layout.h"

/* Processor UID "all processors" in the NMI structures. */
#define NMI_ALL_XAPIC 0xffu
#define NMI_ALL_X2APIC 0xffffffffu
#define NMI_LINT1 1u

uint32_t acpi_possible_cpus(const struct acpi_config *cfg)
{
    return cfg->max_cpus ? cfg->max_cpus : cfg->ncpus;
}

uint8_t acpi_ioapic_id(uint32_t ncpus)
{
    /*
     * Past the vCPUs' xAPIC IDs where that fits.  With >= 255 vCPUs every
     * 8-bit ID is taken and the choice is moot: IOAPIC IDs only had to be
     * unique on the old APIC serial bus, which KVM does not model.
     */
    return ncpus < MADT_XAPIC_ID_LIMIT ? (uint8_t)ncpus : 0;
}

static uint32_t n_xapic(uint32_t ncpus)
{
    return ncpus < MADT_XAPIC_ID_LIMIT ? ncpus : MADT_XAPIC_ID_LIMIT;
}

size_t acpi_madt_size(uint32_t ncpus)
{
    if (ncpus == 0)
        return 0;
    /* 64-bit arithmetic: 2^32 vCPUs * 16 bytes cannot overflow it. */
    uint64_t nx = n_xapic(ncpus), nx2 = ncpus - nx;
    uint64_t size = MADT_HEADER_LEN + nx * MADT_LAPIC_LEN + MADT_IOAPIC_LEN + MADT_LAPIC_NMI_LEN;
    if (nx2)
        size += nx2 * MADT_X2APIC_LEN + MADT_X2APIC_NMI_LEN;
    return size > SIZE_MAX ? 0 : (size_t)size;
}

size_t acpi_build_madt(uint32_t ncpus, uint32_t enabled, uint8_t *buf, size_t cap)
{
    size_t size = acpi_madt_size(ncpus);
    uint8_t *p;

    if (!buf || size == 0 || size > cap || size > UINT32_MAX || enabled == 0 || enabled > ncpus)
        return 0;
    memset(buf, 0, size);
    sdt_header(buf, "APIC", (uint32_t)size, MADT_REVISION);
    put_le32(buf + MADT_OFF_LAPIC_ADDR, (uint32_t)LAYOUT_LAPIC);
    put_le32(buf + MADT_OFF_FLAGS, 0);
    p = buf + MADT_HEADER_LEN;

    /*
     * vCPU 0 first: the boot processor must be the first entry.  vCPUs
     * that may be hot-plugged later are there too, not enabled but
     * "online capable": Linux counts them as possible CPUs (the MADT is
     * revision 5, so newer kernels require the flag for that).
     */
    for (uint32_t i = 0; i < ncpus; i++) {
        uint32_t flags = i < enabled ? MADT_LAPIC_ENABLED : MADT_LAPIC_ONLINE_CAPABLE;
        if (i < MADT_XAPIC_ID_LIMIT) {
            p[0] = MADT_TYPE_LAPIC;
            p[1] = MADT_LAPIC_LEN;
            p[2] = (uint8_t)i; /* ACPI processor UID */
            p[3] = (uint8_t)i; /* APIC ID */
            put_le32(p + 4, flags);
            p += MADT_LAPIC_LEN;
        } else {
            p[0] = MADT_TYPE_X2APIC;
            p[1] = MADT_X2APIC_LEN;
            put_le32(p + 4, i);                  /* x2APIC ID */
            put_le32(p + 8, flags);
            put_le32(p + 12, i);                 /* ACPI processor UID */
            p += MADT_X2APIC_LEN;
        }
    }

    p[0] = MADT_TYPE_IOAPIC;
    p[1] = MADT_IOAPIC_LEN;
    p[2] = acpi_ioapic_id(ncpus);
    put_le32(p + 4, (uint32_t)LAYOUT_IOAPIC);
    put_le32(p + 8, 0); /* GSI base: pins 0-23 are GSIs 0-23 */
    p += MADT_IOAPIC_LEN;

    /* LINT1 is the NMI input on every processor; flags 0 = bus default. */
    p[0] = MADT_TYPE_LAPIC_NMI;
    p[1] = MADT_LAPIC_NMI_LEN;
    p[2] = NMI_ALL_XAPIC;
    put_le16(p + 3, 0);
    p[5] = NMI_LINT1;
    p += MADT_LAPIC_NMI_LEN;
    if (ncpus > MADT_XAPIC_ID_LIMIT) {
        /* x2APIC processors are only covered by the x2APIC NMI structure. */
        p[0] = MADT_TYPE_X2APIC_NMI;
        p[1] = MADT_X2APIC_NMI_LEN;
        put_le16(p + 2, 0);
        put_le32(p + 4, NMI_ALL_X2APIC);
        p[8] = NMI_LINT1;
        p += MADT_X2APIC_NMI_LEN;
    }

    sdt_finish(buf, size);
    return size;
}
