/* AML for ACPI hotplug slots, shared by CPU and memory hotplug (dsdt_slots.c). */
#ifndef NIMBUS_ACPI_DSDT_SLOTS_H
#define NIMBUS_ACPI_DSDT_SLOTS_H

#include <stdbool.h>
#include <stdint.h>

#include "aml.h"

/* Slot object names <prefix>000-<prefix>FFF. */
#define ACPI_SLOTS_MAX 0x1000u

/* The slot object's name: prefix, then i in three hex digits. */
void acpi_slot_name(char out[8], char prefix, uint32_t i);
/* Open Device (<prefix>xxx) for slot i (close it with aml_end). */
void acpi_open_slot(struct aml *a, char prefix, uint32_t i);
/* Inside a slot object: Name (_UID, i) and Method (_STA) { Return (CSTA (i)) }. */
void acpi_emit_slot_status(struct aml *a, uint32_t i);
/*
 * Inside the open container device: the fields of the registers at port,
 * the mutex, CSTA, CEJT (with eject), CTFY for n slots named by prefix, and
 * CSCN.
 */
void acpi_emit_slot_methods(struct aml *a, uint16_t port, uint32_t n, char prefix, bool eject);

#endif
