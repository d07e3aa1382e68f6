/* The DSDT's memory devices of ACPI memory hotplug (dsdt.c calls it). */
#ifndef NIMBUS_ACPI_DSDT_MEM_H
#define NIMBUS_ACPI_DSDT_MEM_H

#include "acpi.h"
#include "aml.h"

#define MEMS_NAME "MHPC"

/* \_SB.MHPC and its memory devices, inside the open \_SB scope. */
void acpi_emit_memory(struct aml *a, const struct acpi_config *cfg);

#endif
