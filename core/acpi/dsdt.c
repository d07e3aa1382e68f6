/*
 * DSDT: the \_S5 sleep package that lets the guest power off through the
 * FADT sleep registers, one \_SB device per legacy platform device so
 * the guest binds drivers (8250_pnp, rtc_cmos) to the right ports and IRQs,
 * on machines with PCI the host bridge and the ECAM reservation, and the
 * Generic Event Device with the power button it raises, and the objects
 * of PCI and CPU hotplug.
 *
 * In a hardware-reduced machine Linux sets up no ISA IRQ mappings of its
 * own (there is no legacy PIC), so these _CRS IRQs are how COM1 and the RTC
 * get their interrupts at all.
 */
#include <stdio.h>
#include <string.h>

#include "acpi.h"
#include "aml.h"
#include "dsdt_cpus.h"
#include "dsdt_mem.h"
#include "dsdt_slots.h"
#include "sdt.h"
#include "../log.h"
#include "../pci/pci.h"
#include "../pci/pci_hotplug.h"

/* Names the PCI devices take in \_SB. */
#define PCI_HOST_NAME "PCI0"
#define PCI_RES_NAME "PRES"
#define GED_NAME "GED_"
#define PWRB_NAME "PWRB"
#define ECAM_BUS_SIZE (1ull << 20)
#define CONFIG_PORT 0xcf8u
#define CONFIG_PORT_LEN 8u

/*
 * A _HID is either an EISA ID ("PNP0501", emitted compressed) or an ACPI
 * ID: four characters [A-Z0-9] then four hex digits ("ACPI0010").
 */
static bool acpi_id_valid(const char *id)
{
    if (!id || strlen(id) != 8)
        return false;
    for (int i = 0; i < 4; i++)
        if (!((id[i] >= 'A' && id[i] <= 'Z') || (id[i] >= '0' && id[i] <= '9')))
            return false;
    for (int i = 4; i < 8; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'A' && id[i] <= 'F')))
            return false;
    return true;
}

bool acpi_hid_valid(const char *hid)
{
    return hid && (aml_eisaid_value(hid, NULL) || acpi_id_valid(hid));
}

static void emit_hid(struct aml *a, const char *hid)
{
    aml_name(a, "_HID");
    if (aml_eisaid_value(hid, NULL))
        aml_eisaid(a, hid);
    else
        aml_string(a, hid);
}

/* One device's name must be a single segment: it lives directly in \_SB. */
static bool dev_name_valid(const char *name)
{
    return name && strlen(name) <= 4 && !strchr(name, '.') && name[0] != '\\' &&
           name[0] != '^' && aml_name_valid(name);
}

static int check_dev(const struct acpi_legacy_dev *d, unsigned idx)
{
    if (!dev_name_valid(d->name)) {
        log_error("acpi: device %u: invalid ACPI device name \"%s\"", idx,
                  d->name ? d->name : "(null)");
        return -1;
    }
    if (!acpi_hid_valid(d->hid)) {
        log_error("acpi: device %s: invalid hardware ID \"%s\" (want e.g. PNP0501)", d->name,
                  d->hid ? d->hid : "(null)");
        return -1;
    }
    /* IO() carries an 8-bit length and the range must stay in 16-bit port space. */
    if (d->port_len > 0xff || (uint32_t)d->port + d->port_len > 0x10000u) {
        log_error("acpi: device %s: I/O range 0x%x+%u is not describable", d->name, d->port,
                  d->port_len);
        return -1;
    }
    return 0;
}

/* Names compare as their 4-byte AML segments ("RTC" == "RTC_"). */
static bool same_name(const char *x, const char *y)
{
    for (size_t i = 0; i < 4; i++) {
        char cx = i < strlen(x) ? x[i] : '_';
        char cy = i < strlen(y) ? y[i] : '_';
        if (cx != cy)
            return false;
    }
    return true;
}

/* _UID must be unique among devices sharing a _HID: number them in order. */
static unsigned dev_uid(const struct acpi_config *cfg, unsigned idx)
{
    unsigned uid = 0;
    for (unsigned i = 0; i < idx; i++)
        if (strcmp(cfg->devs[i].hid, cfg->devs[idx].hid) == 0)
            uid++;
    return uid;
}

static void emit_legacy_dev(struct aml *a, const struct acpi_config *cfg, unsigned idx)
{
    const struct acpi_legacy_dev *d = &cfg->devs[idx];

    aml_device(a, d->name);
    emit_hid(a, d->hid);
    aml_name(a, "_UID");
    aml_integer(a, dev_uid(cfg, idx));
    /* Present, enabled, shown in UI, functioning. */
    aml_method(a, "_STA", 0, false);
    aml_return(a);
    aml_integer(a, 0x0f);
    aml_end(a);
    aml_name(a, "_CRS");
    aml_restemplate(a);
    if (d->port_len)
        aml_res_io(a, d->port, (uint16_t)d->port, 1, (uint8_t)d->port_len);
    if (d->irq < 16)
        aml_res_irq_noflags(a, d->irq);
    else if (d->irq != 0xff)
        /* Beyond the ISA range: an explicit edge/high GSI, like IRQNoFlags. */
        aml_res_interrupt(a, d->irq, false, false, false);
    aml_end(a);
    aml_end(a);
}

static bool pci_valid(const struct pci_windows *w)
{
    uint64_t nbuses = w->ecam_size / ECAM_BUS_SIZE;
    return nbuses >= 1 && nbuses <= 256 && w->ecam_size % ECAM_BUS_SIZE == 0 &&
           w->ecam_base % ECAM_BUS_SIZE == 0 && w->ecam_base + (w->ecam_size - 1) > w->ecam_base && w->mmio32_size > 0 &&
           w->mmio32_base + w->mmio32_size <= 0x100000000ull &&
           (w->mmio64_size == 0 || w->mmio64_base + (w->mmio64_size - 1) > w->mmio64_base);
}

static void emit_std_ids(struct aml *a, const char *hid, const char *cid, unsigned uid)
{
    aml_name(a, "_HID");
    aml_eisaid(a, hid);
    if (cid) {
        aml_name(a, "_CID");
        aml_eisaid(a, cid);
    }
    aml_name(a, "_UID");
    aml_integer(a, uid);
}

/* If (LocalN & mask) { ... aml_end }: how the methods here test event bits. */
static void emit_if_bits(struct aml *a, unsigned local, uint64_t mask)
{
    aml_if(a);
    aml_and(a);
    aml_local(a, local);
    aml_integer(a, mask);
    aml_null_target(a);
}

/*
 * ACPI PCI hotplug, Cloud Hypervisor's and QEMU's scheme: one slot object
 * per device number so Linux's acpiphp registers the slots (it wants _ADR
 * and _EJ0), and PCNT, which the GED's _EVT calls: Local0 = PCIU, Local1 =
 * PCID, then per slot Notify (SLxx, 1) (device check: scan it) for an arrival
 * and Notify (SLxx, 3) (eject request) for a removal.  The guest's
 * driver lets go, then _EJ0 writes the slot's bit to B0EJ and the host
 * frees the device.  Unrolled per slot: AML has loops, but constants keep
 * the interpreter's work and this builder small.
 */
static void emit_pci_hotplug(struct aml *a, uint16_t port)
{
    aml_operation_region(a, "PCST", AML_REGION_SYSTEM_IO, port, PCIHP_PORT_LEN);
    aml_field(a, "PCST", AML_FIELD_DWORD_ACC | AML_FIELD_WRITE_AS_ZEROS);
    aml_field_unit(a, "PCIU", 32);
    aml_field_unit(a, "PCID", 32);
    aml_field_unit(a, "B0EJ", 32);
    aml_end(a);

    aml_method(a, "PCNT", 0, true);
    aml_store(a);
    aml_namepath(a, "PCIU");
    aml_local(a, 0);
    aml_store(a);
    aml_namepath(a, "PCID");
    aml_local(a, 1);
    for (uint32_t slot = 1; slot < 32; slot++) {
        char name[8];
        snprintf(name, sizeof(name), "SL%02X", slot);
        for (unsigned which = 0; which < 2; which++) {
            emit_if_bits(a, which, 1ull << slot);
            aml_notify(a);
            aml_namepath(a, name);
            aml_integer(a, which == 0 ? 1 : 3);
            aml_end(a);
        }
    }
    aml_end(a);

    for (uint32_t slot = 1; slot < 32; slot++) {
        char name[8];
        snprintf(name, sizeof(name), "SL%02X", slot);
        aml_device(a, name);
        aml_name(a, "_ADR");
        aml_integer(a, (uint64_t)slot << 16);
        aml_name(a, "_SUN");
        aml_integer(a, slot);
        aml_method(a, "_EJ0", 1, false);
        aml_store(a);
        aml_integer(a, 1ull << slot);
        aml_namepath(a, "B0EJ");
        aml_end(a);
        aml_end(a);
    }
}

/*
 * \_SB.PCI0: root bridge of segment 0.  It consumes the config ports and
 * forwards the rest of the I/O space (no I/O BARs exist, but this is the
 * shape Linux and Windows expect) and the two MMIO windows BARs live in.
 * Both memory windows are non-prefetchable: Linux refuses to keep a
 * non-prefetchable BAR inside a prefetchable window, while the reverse is
 * fine.  No _ADR: a device has a _HID or an _ADR, not both (iasl warns),
 * and Linux finds the root bridge by its _HID.  No _OSC: it is optional,
 * and Linux then keeps the firmware-first defaults for PCIe features this
 * machine does not have.
 */
static void emit_pci_host(struct aml *a, const struct pci_windows *w, uint16_t pcihp_port)
{
    aml_device(a, PCI_HOST_NAME);
    emit_std_ids(a, "PNP0A08", "PNP0A03", 0);
    aml_name(a, "_SEG");
    aml_integer(a, 0);
    aml_name(a, "_BBN");
    aml_integer(a, 0);
    aml_name(a, "_CRS");
    aml_restemplate(a);
    aml_res_word_bus_number(a, 0, (uint16_t)(w->ecam_size / ECAM_BUS_SIZE - 1));
    aml_res_io(a, CONFIG_PORT, CONFIG_PORT, 1, CONFIG_PORT_LEN);
    aml_res_word_io(a, 0x0000, CONFIG_PORT - 1);
    aml_res_word_io(a, 0x0d00, 0xffff);
    aml_res_dword_memory(a, (uint32_t)w->mmio32_base,
                         (uint32_t)(w->mmio32_base + w->mmio32_size - 1), false);
    if (w->mmio64_size)
        aml_res_qword_memory(a, w->mmio64_base, w->mmio64_base + w->mmio64_size - 1, false);
    aml_end(a);
    if (pcihp_port)
        emit_pci_hotplug(a, pcihp_port);
    aml_end(a);
}

/*
 * \_SB.PRES: motherboard resources holding the ECAM area.  Linux uses
 * MMCONFIG only where this (or the E820 map) reserves it.
 */
static void emit_pci_reserved(struct aml *a, const struct pci_windows *w, unsigned uid)
{
    aml_device(a, PCI_RES_NAME);
    emit_std_ids(a, "PNP0C02", NULL, uid);
    aml_name(a, "_CRS");
    aml_restemplate(a);
    if (w->ecam_base + w->ecam_size <= 0x100000000ull) {
        aml_res_memory32_fixed(a, true, (uint32_t)w->ecam_base, (uint32_t)w->ecam_size);
    } else {
        struct aml_addr_space r = {.type = AML_ADDR_MEMORY,
                                   .consumer = true,
                                   .min_fixed = true,
                                   .max_fixed = true,
                                   .type_flags = 0x01, /* ReadWrite, NonCacheable */
                                   .min = w->ecam_base,
                                   .max = w->ecam_base + w->ecam_size - 1,
                                   .length = w->ecam_size};
        aml_res_address(a, 8, &r);
    }
    aml_end(a);
    aml_end(a);
}

/* _UID for one more device of `hid` after the legacy ones. */
static unsigned next_uid(const struct acpi_config *cfg, const char *hid)
{
    unsigned uid = 0;
    for (unsigned i = 0; i < cfg->ndevs; i++)
        if (strcmp(cfg->devs[i].hid, hid) == 0)
            uid++;
    return uid;
}

/*
 * \_SB.GED_: a hardware-reduced machine has no fixed power button and no
 * GPE blocks, so platform events arrive as the GED's interrupt (ACPI 6.3
 * section 5.6.9).  Linux (drivers/acpi/evged.c) looks for _Lxx first, then
 * runs _EVT (GSI) from a threaded handler with the line masked.  The _CRS
 * holds the interrupt and nothing else: evged refuses any other resource.
 * Level-triggered, so a press made before the guest unmasks the line is
 * still seen; reading GDAT returns the pending events, clears them and
 * drops the line.  WriteAsZeros: nothing ever reads the register to
 * rebuild a write, which would consume events.
 */
static void emit_ged(struct aml *a, const struct acpi_config *cfg)
{
    aml_device(a, GED_NAME);
    emit_hid(a, "ACPI0013");
    aml_name(a, "_UID");
    aml_integer(a, next_uid(cfg, "ACPI0013"));
    aml_name(a, "_CRS");
    aml_restemplate(a);
    aml_res_interrupt(a, cfg->ged_gsi, true, false, false);
    aml_end(a);
    aml_operation_region(a, "GDST", AML_REGION_SYSTEM_IO, cfg->ged_port, 1);
    aml_field(a, "GDST", AML_FIELD_BYTE_ACC | AML_FIELD_WRITE_AS_ZEROS);
    aml_field_unit(a, "GDAT", 8);
    aml_end(a);
    /* Local0 = GDAT; If (Local0 & 1) { Notify (PWRB, 0x80) } */
    aml_method(a, "_EVT", 1, true);
    aml_store(a);
    aml_namepath(a, "GDAT");
    aml_local(a, 0);
    emit_if_bits(a, 0, ACPI_GED_EVT_POWER_BUTTON);
    aml_notify(a);
    /* \_SB.PWRB found by the upward search of a bare NameSeg, as iasl encodes it. */
    aml_namepath(a, PWRB_NAME);
    aml_integer(a, 0x80); /* power button: "button pressed" */
    aml_end(a);
    if (cfg->pcihp_port) {
        /* If (Local0 & PCI) { \_SB.PCI0.PCNT () }, relative to _EVT as iasl
         * encodes it (^^ is \_SB). */
        emit_if_bits(a, 0, ACPI_GED_EVT_PCI);
        aml_namepath(a, "^^" PCI_HOST_NAME ".PCNT");
        aml_end(a);
    }
    if (cfg->cpuhp_port) {
        emit_if_bits(a, 0, ACPI_GED_EVT_CPU);
        aml_namepath(a, "^^" CPUS_NAME ".CSCN");
        aml_end(a);
    }
    if (cfg->memhp_port) {
        emit_if_bits(a, 0, ACPI_GED_EVT_MEM);
        aml_namepath(a, "^^" MEMS_NAME ".CSCN");
        aml_end(a);
    }
    aml_end(a);
    aml_end(a);
}

/* \_SB.PWRB: a control-method power button; Linux's button driver reports KEY_POWER. */
static void emit_power_button(struct aml *a, const struct acpi_config *cfg)
{
    aml_device(a, PWRB_NAME);
    emit_hid(a, "PNP0C0C");
    aml_name(a, "_UID");
    aml_integer(a, next_uid(cfg, "PNP0C0C"));
    aml_end(a);
}

static int check_ged(const struct acpi_config *cfg)
{
    if (!cfg->ged_port && !cfg->ged_gsi)
        return 0;
    if (!cfg->ged_port || !cfg->ged_gsi) {
        log_error("acpi: the GED needs both a port and a GSI (got port 0x%x, GSI %u)",
                  cfg->ged_port, cfg->ged_gsi);
        return -1;
    }
    for (unsigned i = 0; i < cfg->ndevs; i++)
        if (same_name(cfg->devs[i].name, GED_NAME) || same_name(cfg->devs[i].name, PWRB_NAME)) {
            log_error("acpi: device name \"%s\" is taken by the GED", cfg->devs[i].name);
            return -1;
        }
    return 0;
}

size_t acpi_build_dsdt(const struct acpi_config *cfg, uint8_t *buf, size_t cap)
{
    struct aml a;

    if (!cfg || !buf || cap < SDT_HEADER_LEN || (cfg->ndevs && !cfg->devs))
        return 0;
    for (unsigned i = 0; i < cfg->ndevs; i++)
        if (check_dev(&cfg->devs[i], i) < 0)
            return 0;
    for (unsigned i = 0; i < cfg->ndevs; i++)
        for (unsigned j = 0; j < i; j++)
            if (same_name(cfg->devs[i].name, cfg->devs[j].name)) {
                log_error("acpi: two devices are named \"%s\"", cfg->devs[i].name);
                return 0;
            }

    if (cfg->pci) {
        if (!pci_valid(cfg->pci)) {
            log_error("acpi: the PCI windows cannot be described (empty or wrapping)");
            return 0;
        }
        for (unsigned i = 0; i < cfg->ndevs; i++)
            if (same_name(cfg->devs[i].name, PCI_HOST_NAME) ||
                same_name(cfg->devs[i].name, PCI_RES_NAME)) {
                log_error("acpi: device name \"%s\" is taken by PCI", cfg->devs[i].name);
                return 0;
            }
    }

    if (check_ged(cfg) < 0)
        return 0;
    if (cfg->pcihp_port && (!cfg->pci || !cfg->ged_port)) {
        log_error("acpi: PCI hotplug needs the PCI host and the GED");
        return 0;
    }
    if (cfg->memhp_port) {
        if (!cfg->ged_port || !cfg->memhp_slots || cfg->memhp_slots > ACPI_SLOTS_MAX ||
            !cfg->memhp_slot_size ||
            cfg->memhp_slot_size > (UINT64_MAX - cfg->memhp_base) / cfg->memhp_slots) {
            log_error("acpi: memory hotplug needs the GED and 1-%u slots that fit",
                      ACPI_SLOTS_MAX);
            return 0;
        }
        for (unsigned i = 0; i < cfg->ndevs; i++)
            if (same_name(cfg->devs[i].name, MEMS_NAME)) {
                log_error("acpi: device name \"%s\" is taken by memory hotplug",
                          cfg->devs[i].name);
                return 0;
            }
    }
    if (cfg->cpuhp_port) {
        if (!cfg->ged_port || acpi_possible_cpus(cfg) > ACPI_SLOTS_MAX) {
            log_error("acpi: CPU hotplug needs the GED and at most %u vCPUs",
                      ACPI_SLOTS_MAX);
            return 0;
        }
        for (unsigned i = 0; i < cfg->ndevs; i++)
            if (same_name(cfg->devs[i].name, CPUS_NAME)) {
                log_error("acpi: device name \"%s\" is taken by CPU hotplug",
                          cfg->devs[i].name);
                return 0;
            }
    }

    aml_init(&a, buf + SDT_HEADER_LEN, cap - SDT_HEADER_LEN);

    /*
     * \_S5: {SLP_TYPa, SLP_TYPb, reserved, reserved}; Linux writes SLP_TYPa.
     * The DSDT body is in the root scope, so "_S5_" and "_SB_" are \_S5_
     * and \_SB_ (without the '\', as iasl would emit them).
     */
    aml_name(&a, "_S5_");
    aml_package(&a);
    aml_integer(&a, ACPI_SLP_TYP_S5);
    aml_integer(&a, 0);
    aml_integer(&a, 0);
    aml_integer(&a, 0);
    aml_end(&a);

    aml_scope(&a, "_SB_");
    for (unsigned i = 0; i < cfg->ndevs; i++)
        emit_legacy_dev(&a, cfg, i);
    if (cfg->pci) {
        emit_pci_host(&a, cfg->pci, cfg->pcihp_port);
        emit_pci_reserved(&a, cfg->pci, next_uid(cfg, "PNP0C02"));
    }
    if (cfg->cpuhp_port)
        acpi_emit_cpus(&a, cfg);
    if (cfg->memhp_port)
        acpi_emit_memory(&a, cfg);
    if (cfg->ged_port) {
        emit_ged(&a, cfg);
        emit_power_button(&a, cfg);
    }
    aml_end(&a);

    size_t body = aml_finish(&a);
    if (!body)
        return 0;
    size_t total = SDT_HEADER_LEN + body;
    if (total > UINT32_MAX)
        return 0;
    sdt_header(buf, "DSDT", (uint32_t)total, DSDT_REVISION);
    sdt_finish(buf, total);
    return total;
}
