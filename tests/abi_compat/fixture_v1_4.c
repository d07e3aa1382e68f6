/*
 * ABI 1.4 fixture: a legacy port-I/O device with an ACPI node (what 1.4
 * added), built only against the 1.4 headers in v1_4/.
 *
 * Eight ports at FIX14_BASE: port 0 is a byte register (0 after reset),
 * port 1 reads FIX14_TAG.  Its node: _HID FIX14_HID, IRQ FIX14_IRQ.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nimbus/plugin_abi.h"
#include "nimbus/plugin_util.h"

#define FIX14_TAG 0x14u
#define FIX14_BASE 0x540u
#define FIX14_PORTS 8u
#define FIX14_IRQ 5u
#define FIX14_HID "NIMB0014"

struct fix14 {
    uint8_t reg;
};

static int l_create(const nimbus_host_api *host, void *hctx, const char *options, void **dev,
                    nimbus_region *regions, uint32_t *nregions, char *err, uint32_t errlen)
{
    (void)host;
    (void)hctx;
    if (options && *options) {
        nimbus_errf(err, errlen, "takes no options ('%s')", options);
        return -EINVAL;
    }
    if (*nregions < 1)
        return -ENOSPC;
    struct fix14 *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    regions[0] = (nimbus_region){NIMBUS_REGION_PIO, 0, FIX14_BASE, FIX14_PORTS};
    *nregions = 1;
    *dev = f;
    return 0;
}

static void l_destroy(void *dev)
{
    free(dev);
}

static void l_reset(void *dev)
{
    struct fix14 *f = dev;
    f->reg = 0;
}

static int l_read(void *dev, uint32_t region, uint64_t offset, void *data, uint32_t len)
{
    struct fix14 *f = dev;
    if (region != 0 || len != 1 || offset > 1)
        return -EINVAL;
    *(uint8_t *)data = offset == 0 ? f->reg : (uint8_t)FIX14_TAG;
    return 0;
}

static int l_write(void *dev, uint32_t region, uint64_t offset, const void *data, uint32_t len)
{
    struct fix14 *f = dev;
    if (region != 0 || len != 1 || offset != 0)
        return -EINVAL;
    f->reg = *(const uint8_t *)data;
    return 0;
}

static int l_acpi_node(void *dev, nimbus_acpi_node *node)
{
    (void)dev;
    if (!NIMBUS_HAS_MEMBER(node, nimbus_acpi_node, hid))
        return -EINVAL;
    node->hid = FIX14_HID;
    node->irq = FIX14_IRQ;
    return 0;
}

static const nimbus_device_ops ops = {
    .struct_size = sizeof(nimbus_device_ops),
    .create = l_create,
    .destroy = l_destroy,
    .reset = l_reset,
    .io_read = l_read,
    .io_write = l_write,
    .acpi_node = l_acpi_node,
};

NIMBUS_PLUGIN_DECLARE("abifix_v1_4", "1.4", "ABI 1.4 compatibility fixture (ACPI node)", "",
                      &ops);
