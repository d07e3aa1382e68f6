/*
 * A do-nothing plugin compiled several times with different ABI claims so
 * test_abi can check that the loader accepts and refuses the right ones.
 */
#include <errno.h>
#include <stdlib.h>

#include "nimbus/plugin_abi.h"

static int t_create(const nimbus_host_api *h, void *hctx, const char *o, void **dev,
                    nimbus_region *r, uint32_t *n, char *err, uint32_t errlen)
{
    (void)h; (void)hctx; (void)o; (void)r; (void)err; (void)errlen;
    *n = 0;
    *dev = calloc(1, 1);
    return *dev ? 0 : -ENOMEM;
}
static void t_destroy(void *dev) { free(dev); }
static void t_reset(void *dev) { (void)dev; }
static int t_read(void *d, uint32_t r, uint64_t o, void *data, uint32_t l)
{
    (void)d; (void)r; (void)o; (void)data; (void)l;
    return 0;
}
static int t_write(void *d, uint32_t r, uint64_t o, const void *data, uint32_t l)
{
    (void)d; (void)r; (void)o; (void)data; (void)l;
    return 0;
}

static const nimbus_device_ops ops = {
    .struct_size = sizeof(nimbus_device_ops),
#ifndef ABI_NO_RESET
    .reset = t_reset,
#endif
    .create = t_create,
    .destroy = t_destroy,
    .io_read = t_read,
    .io_write = t_write,
};

#ifndef ABI_SYMBOL
#define ABI_SYMBOL nimbus_plugin_v1
#endif
NIMBUS_EXPORT const nimbus_plugin ABI_SYMBOL = {
    ABI_MAJOR, ABI_MINOR, sizeof(nimbus_plugin), 0, "abitest", "0", "ABI test plugin", "", &ops};

#ifdef ABI_NO_RESET
/* Keep t_reset referenced so -Werror does not trip on the variant without it. */
void *abi_keep_reset(void);
NIMBUS_EXPORT void *abi_keep_reset(void) { return (void *)t_reset; }
#endif
