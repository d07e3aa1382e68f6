/* The DSDT's processor objects and CPU hotplug methods (dsdt.c calls it). */
#ifndef NIMBUS_ACPI_DSDT_CPUS_H
#define NIMBUS_ACPI_DSDT_CPUS_H

#include "acpi.h"
#include "aml.h"

#define CPUS_NAME "CPUS"

/* \_SB.CPUS and its processor objects, inside the open \_SB scope. */
void acpi_emit_cpus(struct aml *a, const struct acpi_config *cfg);

#endif
