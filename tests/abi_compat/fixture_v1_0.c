/*
 * ABI 1.0 fixture: a legacy port-I/O device built only against the 1.0
 * headers in v1_0/, so it is the binary a 1.0 plugin author shipped.
 *
 * Eight ports at `iobase`:
 *   +0..+3  scratch bytes, read/write
 *   +4      doorbell: a write stores the byte and raises `irq`;
 *           a read returns it and lowers `irq` (acknowledge)
 *   +5      id, reads FIX10_ID, writes ignored
 *   +6..+7  little-endian count of guest write accesses, read-only
 * Accesses are handled byte by byte, so every width sees the same model.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nimbus/plugin_abi.h"
#include "nimbus/plugin_util.h"

#define FIX10_PORTS 8u
#define FIX10_ID 0x10u
#define FIX10_MAGIC 0x30314246u /* "FB10" */
#define FIX10_STATE_VERSION 1u
#define FIX10_STATE_SIZE 16u

struct fix10 {
    const nimbus_host_api *host;
    void *hctx;
    uint32_t irq;
    /* Everything below is guest-visible state: reset zeroes it. */
    uint8_t scratch[4];
    uint8_t doorbell;
    uint8_t irq_high;
    uint16_t writes;
};

static void drive_irq(struct fix10 *f)
{
    f->host->irq_set_level(f->hctx, f->irq, f->irq_high);
}

static int parse(struct fix10 *f, const char *options, uint64_t *iobase, char *err,
                 uint32_t errlen)
{
    char key[32], val[32];
    size_t pos = 0;
    int r;
    while ((r = nimbus_opt_next(options, &pos, key, sizeof(key), val, sizeof(val))) > 0) {
        uint64_t v;
        if (!strcmp(key, "iobase") && nimbus_opt_u64(val, 0x10000 - FIX10_PORTS, &v) == 0) {
            *iobase = v;
        } else if (!strcmp(key, "irq") && nimbus_opt_u64(val, 23, &v) == 0) {
            f->irq = (uint32_t)v;
        } else {
            nimbus_errf(err, errlen, "bad option '%s'", key);
            return -EINVAL;
        }
    }
    if (r < 0) {
        nimbus_errf(err, errlen, "bad option '%s'", key);
        return -EINVAL;
    }
    return 0;
}

static int f_create(const nimbus_host_api *host, void *hctx, const char *options, void **dev,
                    nimbus_region *regions, uint32_t *nregions, char *err, uint32_t errlen)
{
    if (!NIMBUS_HAS_MEMBER(host, nimbus_host_api, irq_set_level) || !host->irq_set_level) {
        nimbus_errf(err, errlen, "host lacks irq_set_level");
        return -ENOTSUP;
    }
    if (*nregions < 1) {
        nimbus_errf(err, errlen, "no room for a region");
        return -ENOSPC;
    }
    struct fix10 *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->host = host;
    f->hctx = hctx;
    f->irq = 5;
    uint64_t iobase = 0x520;
    int r = parse(f, options ? options : "", &iobase, err, errlen);
    if (r < 0) {
        free(f);
        return r;
    }
    regions[0] = (nimbus_region){.kind = NIMBUS_REGION_PIO, .base = iobase, .size = FIX10_PORTS};
    *nregions = 1;
    *dev = f;
    return 0;
}

static void f_destroy(void *dev)
{
    free(dev);
}

static void f_reset(void *dev)
{
    struct fix10 *f = dev;
    memset(f->scratch, 0, sizeof(f->scratch));
    f->doorbell = 0;
    f->writes = 0;
    f->irq_high = 0;
    drive_irq(f);
}

static uint8_t read_byte(struct fix10 *f, uint64_t off)
{
    switch (off) {
    case 0: case 1: case 2: case 3:
        return f->scratch[off];
    case 4:
        if (f->irq_high) {
            f->irq_high = 0;
            drive_irq(f);
        }
        return f->doorbell;
    case 5:
        return FIX10_ID;
    case 6:
        return (uint8_t)f->writes;
    default:
        return (uint8_t)(f->writes >> 8);
    }
}

static void write_byte(struct fix10 *f, uint64_t off, uint8_t v)
{
    if (off < 4) {
        f->scratch[off] = v;
    } else if (off == 4) {
        f->doorbell = v;
        if (!f->irq_high) {
            f->irq_high = 1;
            drive_irq(f);
        }
    }
}

/* The host promises offset + len <= size; a guest-facing model checks anyway. */
static int access_ok(uint32_t region, uint64_t offset, uint32_t len)
{
    return region == 0 && (len == 1 || len == 2 || len == 4 || len == 8) &&
           offset < FIX10_PORTS && len <= FIX10_PORTS - offset;
}

static int f_read(void *dev, uint32_t region, uint64_t offset, void *data, uint32_t len)
{
    if (!access_ok(region, offset, len))
        return -EINVAL;
    for (uint32_t i = 0; i < len; i++)
        ((uint8_t *)data)[i] = read_byte(dev, offset + i);
    return 0;
}

static int f_write(void *dev, uint32_t region, uint64_t offset, const void *data, uint32_t len)
{
    struct fix10 *f = dev;
    if (!access_ok(region, offset, len))
        return -EINVAL;
    for (uint32_t i = 0; i < len; i++)
        write_byte(f, offset + i, ((const uint8_t *)data)[i]);
    f->writes++;
    return 0;
}

/* Blob: header, scratch[4] at 8, doorbell at 12, irq_high at 13, writes (LE) at 14. */
static int f_save(void *dev, void *buf, uint64_t cap, uint64_t *len)
{
    struct fix10 *f = dev;
    int r = nimbus_state_begin(buf, cap, len, FIX10_MAGIC, FIX10_STATE_VERSION,
                               FIX10_STATE_SIZE);
    if (r <= 0)
        return r;
    uint8_t *b = buf;
    memcpy(b + 8, f->scratch, sizeof(f->scratch));
    b[12] = f->doorbell;
    b[13] = f->irq_high;
    nimbus_le_store(b + 14, 2, f->writes);
    return 0;
}

static int f_restore(void *dev, const void *buf, uint64_t len)
{
    struct fix10 *f = dev;
    const uint8_t *b = buf;
    if (!nimbus_state_check(buf, len, FIX10_MAGIC, FIX10_STATE_VERSION, FIX10_STATE_SIZE) ||
        b[13] > 1)
        return -EINVAL;
    memcpy(f->scratch, b + 8, sizeof(f->scratch));
    f->doorbell = b[12];
    f->irq_high = b[13];
    f->writes = (uint16_t)nimbus_le_load(b + 14, 2);
    /* The ABI leaves re-driving the line after a restore to the device. */
    drive_irq(f);
    return 0;
}

static const nimbus_device_ops fix10_ops = {
    .struct_size = sizeof(nimbus_device_ops),
    .create = f_create,
    .destroy = f_destroy,
    .reset = f_reset,
    .io_read = f_read,
    .io_write = f_write,
    .state_save = f_save,
    .state_restore = f_restore,
};

NIMBUS_PLUGIN_DECLARE("abifix_v1_0", "1.0", "ABI 1.0 compatibility fixture",
                      "iobase=<port>,irq=<gsi>", &fix10_ops);
