/*
 * ACPI memory hotplug, the AML side (registers: hp_slots.h; the methods:
 * dsdt_slots.c), as QEMU and Cloud Hypervisor offer it.  The hotplug area
 * is cut into fixed slots, one PNP0C80 memory device each with a constant
 * _CRS, so no method has to build a resource template at run time; its
 * _STA follows the registers.  Linux's acpi_memhotplug adds a slot's
 * memory when CSCN notifies it (1, device check), and at boot for the slots
 * that are already present; onlining the new blocks is the guest's choice
 * (memhp_default_state=online, a udev rule).  No _EJ0: nimbus does not
 * take memory back.
 */
#include "dsdt_mem.h"

#include "dsdt_slots.h"

static void emit_slot(struct aml *a, const struct acpi_config *cfg, uint32_t i)
{
    uint64_t base = cfg->memhp_base + (uint64_t)i * cfg->memhp_slot_size;
    acpi_open_slot(a, 'M', i);
    aml_name(a, "_HID");
    aml_eisaid(a, "PNP0C80");
    acpi_emit_slot_status(a, i);
    aml_name(a, "_CRS");
    aml_restemplate(a);
    aml_res_qword_memory(a, base, base + cfg->memhp_slot_size - 1, false);
    aml_end(a);
    aml_end(a);
}

void acpi_emit_memory(struct aml *a, const struct acpi_config *cfg)
{
    aml_device(a, MEMS_NAME);
    aml_name(a, "_HID");
    aml_eisaid(a, "PNP0A06");
    aml_name(a, "_UID");
    aml_string(a, "Memory hotplug");
    acpi_emit_slot_methods(a, cfg->memhp_port, cfg->memhp_slots, 'M', false);
    for (uint32_t i = 0; i < cfg->memhp_slots; i++)
        emit_slot(a, cfg, i);
    aml_end(a);
}
