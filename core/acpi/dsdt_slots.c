/*
 * The AML shared by CPU and memory hotplug (registers: hp_slots.h), after
 * Cloud Hypervisor's and QEMU's scheme: the register fields, CSTA (a
 * slot's _STA), CEJT (its _EJ0), and CSCN, which the GED's _EVT calls: it
 * walks the slots with pending events (CNXT) and notifies each, 1 (device
 * check: Linux evaluates _STA and adds the device) or 3 (eject request).
 * Each user puts them in its own container device, so the names repeat
 * without clashing, and the slot objects there find them by the upward
 * search of a bare NameSeg.
 *
 * One mutex covers select-then-access, as two vCPUs may run AML at once.
 * The notify dispatch (CTFY) is unrolled per slot because Notify needs a
 * named object; everything else is shared.
 */
#include "dsdt_slots.h"

#include <stdio.h>

#include "../hp_slots.h"

#define LOCK_NAME "CPLK"
#define LOCK_FOREVER 0xffffu

void acpi_slot_name(char out[8], char prefix, uint32_t i)
{
    snprintf(out, 8, "%c%03X", prefix, i & 0xfffu);
}

/* Acquire (CPLK, 0xFFFF); CSEL = Arg0 */
static void lock_and_select(struct aml *a)
{
    aml_acquire(a, LOCK_NAME, LOCK_FOREVER);
    aml_store(a);
    aml_arg(a, 0);
    aml_namepath(a, "CSEL");
}

static void emit_registers(struct aml *a, uint16_t port)
{
    aml_operation_region(a, "PRSD", AML_REGION_SYSTEM_IO, port, HPS_REG_STATUS);
    aml_field(a, "PRSD", AML_FIELD_DWORD_ACC | AML_FIELD_WRITE_AS_ZEROS);
    aml_field_unit(a, "CSEL", 32);
    aml_field_unit(a, "CNXT", 32);
    aml_end(a);
    /* WriteAsZeros: acknowledging one event must not write the other's bit. */
    aml_operation_region(a, "PRSB", AML_REGION_SYSTEM_IO, port + HPS_REG_STATUS, 1);
    aml_field(a, "PRSB", AML_FIELD_BYTE_ACC | AML_FIELD_WRITE_AS_ZEROS);
    aml_field_unit(a, "CPEN", 1);
    aml_field_unit(a, "CINS", 1);
    aml_field_unit(a, "CRMV", 1);
    aml_field_unit(a, "CEJ0", 1);
    aml_end(a);
    aml_mutex(a, LOCK_NAME, 0);
}

/* CSTA (i): 0x0F when slot i is present, else 0.  CEJT (i): eject it. */
static void emit_status_and_eject(struct aml *a, bool eject)
{
    aml_method(a, "CSTA", 1, false);
    lock_and_select(a);
    aml_store(a);
    aml_integer(a, 0);
    aml_local(a, 0);
    aml_if(a);
    aml_namepath(a, "CPEN");
    aml_store(a);
    aml_integer(a, 0x0f);
    aml_local(a, 0);
    aml_end(a);
    aml_release(a, LOCK_NAME);
    aml_return(a);
    aml_local(a, 0);
    aml_end(a);

    if (!eject)
        return;
    aml_method(a, "CEJT", 1, false);
    lock_and_select(a);
    aml_store(a);
    aml_integer(a, 1);
    aml_namepath(a, "CEJ0");
    aml_release(a, LOCK_NAME);
    aml_end(a);
}

/* CTFY (i, code): Notify (<prefix>xxx, code) for slot i. */
static void emit_notify_dispatch(struct aml *a, uint32_t n, char prefix)
{
    aml_method(a, "CTFY", 2, false);
    for (uint32_t i = 0; i < n; i++) {
        char name[8];
        acpi_slot_name(name, prefix, i);
        aml_if(a);
        aml_lequal(a);
        aml_arg(a, 0);
        aml_integer(a, i);
        aml_notify(a);
        aml_namepath(a, name);
        aml_arg(a, 1);
        aml_end(a);
    }
    aml_end(a);
}

/* If (<flag>) { CTFY (Local0, code); <flag> = One } */
static void emit_event(struct aml *a, const char *flag, unsigned code)
{
    aml_if(a);
    aml_namepath(a, flag);
    aml_namepath(a, "CTFY");
    aml_local(a, 0);
    aml_integer(a, code);
    aml_store(a);
    aml_integer(a, 1);
    aml_namepath(a, flag);
    aml_end(a);
}

/*
 * CSCN: Local0 = CNXT; While (Local0 < n) { CSEL = Local0; report and
 * acknowledge its events; Local0 = CNXT }.  CNXT is 0xFFFFFFFF when
 * nothing is pending, and an acknowledged event leaves it, so the loop
 * ends.
 */
static void emit_scan(struct aml *a, uint32_t n)
{
    aml_method(a, "CSCN", 0, false);
    aml_acquire(a, LOCK_NAME, LOCK_FOREVER);
    aml_store(a);
    aml_namepath(a, "CNXT");
    aml_local(a, 0);
    aml_while(a);
    aml_lless(a);
    aml_local(a, 0);
    aml_integer(a, n);
    aml_store(a);
    aml_local(a, 0);
    aml_namepath(a, "CSEL");
    emit_event(a, "CINS", 1);
    emit_event(a, "CRMV", 3);
    aml_store(a);
    aml_namepath(a, "CNXT");
    aml_local(a, 0);
    aml_end(a);
    aml_release(a, LOCK_NAME);
    aml_end(a);
}

void acpi_open_slot(struct aml *a, char prefix, uint32_t i)
{
    char name[8];
    acpi_slot_name(name, prefix, i);
    aml_device(a, name);
}

void acpi_emit_slot_status(struct aml *a, uint32_t i)
{
    aml_name(a, "_UID");
    aml_integer(a, i);
    aml_method(a, "_STA", 0, false);
    aml_return(a);
    aml_namepath(a, "CSTA");
    aml_integer(a, i);
    aml_end(a);
}

void acpi_emit_slot_methods(struct aml *a, uint16_t port, uint32_t n, char prefix, bool eject)
{
    emit_registers(a, port);
    emit_status_and_eject(a, eject);
    emit_notify_dispatch(a, n, prefix);
    emit_scan(a, n);
}
