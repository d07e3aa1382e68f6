/* A --device plugin's ACPI node (ABI minor 4), checked, for the DSDT. */
#ifndef NIMBUS_DEVICE_ACPI_H
#define NIMBUS_DEVICE_ACPI_H

#include "device.h"

struct device_acpi {
    char hid[16];
    char name[5]; /* filled by the caller: unique in \_SB */
    uint16_t port, port_len;
    uint8_t irq; /* 0xff: none */
};

/* 1 with *out filled (but for name), 0 when the device wants no node, -1
 * with err naming the device when its node cannot be described. */
int device_acpi_node(struct device *d, struct device_acpi *out, char *err, size_t errlen);

#endif
