/*
 * ACPI nodes for legacy devices loaded with --device (ABI minor 4): the
 * plugin names its _HID and IRQ, the core checks them and takes the ports
 * from the region the device really decodes, so a plugin cannot describe
 * resources it does not own.
 */
#include "device_acpi.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "acpi/acpi.h"

int device_acpi_node(struct device *d, struct device_acpi *out, char *err, size_t errlen)
{
    if (!d->ops.acpi_node)
        return 0;
    nimbus_acpi_node node;
    memset(&node, 0, sizeof(node));
    node.struct_size = sizeof(node);
    node.irq = NIMBUS_ACPI_NO_IRQ;
    device_lock(d);
    int r = d->ops.acpi_node(d->state, &node);
    device_unlock(d);
    if (r == -ENOENT)
        return 0;
    if (r < 0) {
        snprintf(err, errlen, "device %s: acpi_node failed: %s", d->name, strerror(-r));
        return -1;
    }
    /* Copied at once: the plugin's string need not outlive the call. */
    if (!node.hid || strnlen(node.hid, sizeof(out->hid)) >= sizeof(out->hid) ||
        !acpi_hid_valid(node.hid)) {
        snprintf(err, errlen, "device %s: invalid ACPI hardware ID '%.16s' (want e.g. PNP0501)",
                 d->name, node.hid ? node.hid : "(null)");
        return -1;
    }
    if (node.irq != NIMBUS_ACPI_NO_IRQ && node.irq > 23) {
        snprintf(err, errlen, "device %s: ACPI node IRQ %u is not a GSI 0..23", d->name, node.irq);
        return -1;
    }
    const nimbus_region *pio = NULL;
    for (uint32_t i = 0; i < d->nregions && !pio; i++)
        if (d->regions[i].kind == NIMBUS_REGION_PIO)
            pio = &d->regions[i];
    if (!pio || pio->size > 0xff || pio->base + pio->size > 0x10000u) {
        snprintf(err, errlen,
                 "device %s: an ACPI node needs a port-I/O region of at most 255 ports", d->name);
        return -1;
    }
    snprintf(out->hid, sizeof(out->hid), "%s", node.hid);
    out->port = (uint16_t)pio->base;
    out->port_len = (uint16_t)pio->size;
    out->irq = node.irq == NIMBUS_ACPI_NO_IRQ ? 0xff : (uint8_t)node.irq;
    return 1;
}
