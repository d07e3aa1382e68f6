/*
 * ACPI CPU hotplug, the AML side (registers: cpu_hotplug.h), after Cloud
 * Hypervisor's and QEMU's scheme.  Linux's processor driver binds one
 * ACPI0007 object per possible vCPU; an object whose _STA says "absent"
 * is skipped at boot.  When the GED reports a CPU event its _EVT calls
 * CSCN, which walks the vCPUs with pending events (CNXT) and notifies
 * each: 1 (device check) makes Linux evaluate _STA and add the CPU, whose
 * APIC ID it takes from _MAT, because the MADT lists it as not enabled;
 * 3 (eject request) makes Linux offline the CPU and call _EJ0.
 *
 * One mutex covers select-then-access, as two vCPUs may run AML at once.
 * The notify dispatch (CTFY) is unrolled per vCPU because Notify needs a
 * named object; everything else is shared so the table grows by about 90
 * bytes per possible vCPU.
 */
#include "dsdt_cpus.h"

#include <stdio.h>

#include "sdt.h"
#include "../boot/bytes.h"
#include "../cpu_hotplug.h"

#define LOCK_NAME "CPLK"
#define LOCK_FOREVER 0xffffu

static void object_name(char out[8], uint32_t i)
{
    snprintf(out, 8, "C%03X", i & 0xfffu);
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
    aml_operation_region(a, "PRSD", AML_REGION_SYSTEM_IO, port, CPUHP_REG_STATUS);
    aml_field(a, "PRSD", AML_FIELD_DWORD_ACC | AML_FIELD_WRITE_AS_ZEROS);
    aml_field_unit(a, "CSEL", 32);
    aml_field_unit(a, "CNXT", 32);
    aml_end(a);
    /* WriteAsZeros: acknowledging one event must not write the other's bit. */
    aml_operation_region(a, "PRSB", AML_REGION_SYSTEM_IO, port + CPUHP_REG_STATUS, 1);
    aml_field(a, "PRSB", AML_FIELD_BYTE_ACC | AML_FIELD_WRITE_AS_ZEROS);
    aml_field_unit(a, "CPEN", 1);
    aml_field_unit(a, "CINS", 1);
    aml_field_unit(a, "CRMV", 1);
    aml_field_unit(a, "CEJ0", 1);
    aml_end(a);
    aml_mutex(a, LOCK_NAME, 0);
}

/* CSTA (i): 0x0F when vCPU i is present, else 0.  CEJT (i): eject it. */
static void emit_status_and_eject(struct aml *a)
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

    aml_method(a, "CEJT", 1, false);
    lock_and_select(a);
    aml_store(a);
    aml_integer(a, 1);
    aml_namepath(a, "CEJ0");
    aml_release(a, LOCK_NAME);
    aml_end(a);
}

/* CTFY (i, code): Notify (Cxxx, code) for vCPU i. */
static void emit_notify_dispatch(struct aml *a, uint32_t n)
{
    aml_method(a, "CTFY", 2, false);
    for (uint32_t i = 0; i < n; i++) {
        char name[8];
        object_name(name, i);
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
    char name[8];
    object_name(name, i);
    aml_device(a, name);
    aml_name(a, "_HID");
    aml_string(a, "ACPI0007");
    aml_name(a, "_UID");
    aml_integer(a, i);
    aml_method(a, "_STA", 0, false);
    aml_return(a);
    aml_namepath(a, "CSTA");
    aml_integer(a, i);
    aml_end(a);
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
    emit_registers(a, cfg->cpuhp_port);
    emit_status_and_eject(a);
    emit_notify_dispatch(a, n);
    emit_scan(a, n);
    for (uint32_t i = 0; i < n; i++)
        emit_processor(a, i);
    aml_end(a);
}
