/*
 * ACPI CPU hotplug, the AML side (registers: hp_slots.h; the methods:
 * dsdt_slots.c).  Linux's processor driver binds one ACPI0007 object per
 * possible vCPU; an object whose _STA says "absent" is skipped at boot.
 * When the GED reports a CPU event its _EVT calls CSCN, whose notify 1
 * makes Linux evaluate _STA and add the CPU, taking its APIC ID from _MAT
 * because the MADT lists it as not enabled, and whose 3 makes Linux
 * offline the CPU and call _EJ0.  About 95 bytes per possible vCPU.
 */
#include "dsdt_cpus.h"

#include <stdio.h>

#include "dsdt_slots.h"
#include "sdt.h"
#include "../boot/bytes.h"

/* The MADT entry Linux reads from _MAT for a CPU that was absent at boot. */
static void emit_mat(struct aml *a, uint32_t i)
{
    uint8_t e[MADT_X2APIC_LEN] = {0};
    size_t len;
    if (i < MADT_XAPIC_ID_LIMIT) {
        e[0] = MADT_TYPE_LAPIC;
        e[1] = MADT_LAPIC_LEN;
        e[2] = (uint8_t)i;
        e[3] = (uint8_t)i;
        put_le32(e + 4, MADT_LAPIC_ENABLED);
        len = MADT_LAPIC_LEN;
    } else {
        e[0] = MADT_TYPE_X2APIC;
        e[1] = MADT_X2APIC_LEN;
        put_le32(e + 4, i);
        put_le32(e + 8, MADT_LAPIC_ENABLED);
        put_le32(e + 12, i);
        len = MADT_X2APIC_LEN;
    }
    aml_name(a, "_MAT");
    aml_buffer(a);
    aml_bytes(a, e, len);
    aml_end(a);
}

static void emit_processor(struct aml *a, uint32_t i)
{
    acpi_open_slot(a, 'C', i);
    aml_name(a, "_HID");
    aml_string(a, "ACPI0007");
    acpi_emit_slot_status(a, i);
    emit_mat(a, i);
    /* The boot vCPU cannot leave (the registers refuse it too). */
    if (i) {
        aml_method(a, "_EJ0", 1, false);
        aml_namepath(a, "CEJT");
        aml_integer(a, i);
        aml_end(a);
    }
    aml_end(a);
}

void acpi_emit_cpus(struct aml *a, const struct acpi_config *cfg)
{
    uint32_t n = acpi_possible_cpus(cfg);
    aml_device(a, CPUS_NAME);
    aml_name(a, "_HID");
    aml_string(a, "ACPI0010");
    aml_name(a, "_CID");
    aml_eisaid(a, "PNP0A05");
    acpi_emit_slot_methods(a, cfg->cpuhp_port, n, 'C', true);
    for (uint32_t i = 0; i < n; i++)
        emit_processor(a, i);
    aml_end(a);
}
