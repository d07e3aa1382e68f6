/* cmos plugin: options, ABI entry points and the state blob. */
#include <stdlib.h>

#include <nimbus/plugin_util.h>

#include "cmos.h"

#define IOAPIC_PINS 24u
#define PORT_SPACE 0x10000u
#define NPORTS 2u /* index port, data port */

#define KIB 1024ull
#define MIB (1024ull * KIB)
#define GIB (1024ull * MIB)

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static void put16(uint8_t *ram, unsigned idx, uint64_t v)
{
    ram[idx] = (uint8_t)v;
    ram[idx + 1] = (uint8_t)(v >> 8);
}

/*
 * Memory-size bytes as PC firmware (SeaBIOS and friends) expects them:
 * 0x15/16 base KiB, 0x17/18 and 0x30/31 KiB above 1 MiB (to 64 MiB),
 * 0x34/35 64 KiB units above 16 MiB, 0x5b-0x5d 64 KiB units above 4 GiB.
 */
static void set_mem_below(uint8_t *ram, uint64_t bytes)
{
    put16(ram, 0x15, 640);
    uint64_t ext = bytes > MIB ? min_u64((bytes - MIB) / KIB, 0xffff) : 0;
    put16(ram, 0x17, ext);
    put16(ram, 0x30, ext);
    put16(ram, 0x34,
          bytes > 16 * MIB ? min_u64((bytes - 16 * MIB) / (64 * KIB), 0xffff)
                           : 0);
}

static void set_mem_above(uint8_t *ram, uint64_t bytes)
{
    uint64_t units = min_u64(bytes / (64 * KIB), 0xffffff);
    ram[0x5b] = (uint8_t)units;
    ram[0x5c] = (uint8_t)(units >> 8);
    ram[0x5d] = (uint8_t)(units >> 16);
}

static int parse_options(struct cmos *c, const char *opts, char *err,
                         uint32_t errlen)
{
    char key[32], val[64];
    size_t pos = 0;
    int r;
    uint64_t v;

    c->iobase = 0x70;
    c->gsi = 8;
    while ((r = nimbus_opt_next(opts, &pos, key, sizeof(key), val,
                                sizeof(val))) != 0) {
        if (r < 0) {
            nimbus_errf(err, errlen, "cmos: malformed option '%s'", key);
            return -EINVAL;
        }
        if (!strcmp(key, "iobase")) {
            if (nimbus_opt_u64(val, PORT_SPACE - NPORTS, &v) < 0) {
                nimbus_errf(err, errlen, "cmos: bad iobase '%s' (port 0..0x%x)",
                            val, PORT_SPACE - NPORTS);
                return -EINVAL;
            }
            c->iobase = (uint16_t)v;
        } else if (!strcmp(key, "irq")) {
            if (nimbus_opt_u64(val, IOAPIC_PINS - 1, &v) < 0) {
                nimbus_errf(err, errlen, "cmos: bad irq '%s' (GSI 0..%u)", val,
                            IOAPIC_PINS - 1);
                return -EINVAL;
            }
            c->gsi = (uint32_t)v;
        } else if (!strcmp(key, "mem_below_4g")) {
            if (nimbus_opt_u64(val, 4 * GIB, &v) < 0) {
                nimbus_errf(err, errlen,
                            "cmos: bad mem_below_4g '%s' (bytes, at most 4 GiB)",
                            val);
                return -EINVAL;
            }
            set_mem_below(c->ram_init, v);
        } else if (!strcmp(key, "mem_above_4g")) {
            if (nimbus_opt_u64(val, UINT64_MAX, &v) < 0) {
                nimbus_errf(err, errlen, "cmos: bad mem_above_4g '%s' (bytes)",
                            val);
                return -EINVAL;
            }
            set_mem_above(c->ram_init, v);
        } else {
            nimbus_errf(err, errlen,
                        "cmos: unknown option '%s' (known: iobase, irq, "
                        "mem_below_4g, mem_above_4g)", key);
            return -EINVAL;
        }
    }
    return 0;
}

static int cmos_create(const nimbus_host_api *host, void *hctx,
                       const char *options, void **dev, nimbus_region *regions,
                       uint32_t *nregions, char *err, uint32_t errlen)
{
    if (!host || !dev || !regions || !nregions) {
        nimbus_errf(err, errlen, "cmos: invalid create arguments");
        return -EINVAL;
    }
    if (*nregions < 1) {
        nimbus_errf(err, errlen, "cmos: host offers no region slot");
        return -ENOSPC;
    }
    struct cmos *c = calloc(1, sizeof(*c));
    if (!c) {
        nimbus_errf(err, errlen, "cmos: out of memory");
        return -ENOMEM;
    }
    c->host = host;
    c->hctx = hctx;
    int r = parse_options(c, options ? options : "", err, errlen);
    if (r < 0) {
        free(c);
        return r;
    }
    cmos_power_on(c);
    regions[0] = (nimbus_region){NIMBUS_REGION_PIO, 0, c->iobase, NPORTS};
    *nregions = 1;
    *dev = c;
    return 0;
}

static void cmos_destroy(void *dev)
{
    free(dev);
}

static void cmos_reset(void *dev)
{
    cmos_power_on(dev);
}

/* The index port is write-only on PC chipsets: it reads as all ones. */
static uint8_t port_read(struct cmos *c, uint64_t port)
{
    return port == 0 ? 0xff : cmos_read_reg(c, c->index);
}

static void port_write(struct cmos *c, uint64_t port, uint8_t v)
{
    if (port == 0)
        c->index = v & (CMOS_SIZE - 1); /* bit 7 gates NMI: no effect here */
    else
        cmos_write_reg(c, c->index, v);
}

/* Wider accesses split into byte cycles; bytes past port 1 float high. */
static int cmos_io_read(void *dev, uint32_t region, uint64_t offset,
                        void *data, uint32_t len)
{
    uint8_t *out = data;
    if (region != 0 || offset >= NPORTS || !len || len > 8)
        return -EINVAL;
    for (uint32_t i = 0; i < len; i++)
        out[i] = offset + i < NPORTS ? port_read(dev, offset + i) : 0xff;
    return 0;
}

static int cmos_io_write(void *dev, uint32_t region, uint64_t offset,
                         const void *data, uint32_t len)
{
    const uint8_t *in = data;
    if (region != 0 || offset >= NPORTS || !len || len > 8)
        return -EINVAL;
    for (uint32_t i = 0; i < len && offset + i < NPORTS; i++)
        port_write(dev, offset + i, in[i]);
    return 0;
}

static void cmos_op_timer(void *dev, uint32_t timer_id)
{
    if (timer_id == CMOS_TIMER)
        cmos_timer_fired(dev);
}

/*
 * State blob, version 1, little-endian, fixed 160 bytes:
 *   0 u32 magic "CMOS"   4 u16 version   6 u16 total size
 *   8 index, 7 zero bytes
 *  16 i64 off_sec        24 u32 off_nsec, 4 zero bytes
 *  32 ram[128] (A without UIP, C holding only PF/AF/UF)
 * The clock travels as an offset from the host wall clock, so a restored
 * guest keeps its own idea of time relative to UTC.
 */
#define BLOB_MAGIC 0x534f4d43u /* "CMOS" */
#define BLOB_VERSION 1u
#define BLOB_SIZE 160u
/* Offsets beyond +-10000 years cannot come from guest register writes. */
#define MAX_OFF_SEC 320000000000ll

static int cmos_state_save(void *dev, void *buf, uint64_t cap, uint64_t *len)
{
    const struct cmos *c = dev;
    int r = nimbus_state_begin(buf, cap, len, BLOB_MAGIC, BLOB_VERSION, BLOB_SIZE);
    if (r <= 0)
        return r;
    uint8_t *b = buf;
    b[8] = c->index;
    nimbus_le_store(b + 16, 8, (uint64_t)c->off_sec);
    nimbus_le_store(b + 24, 4, (uint64_t)c->off_nsec);
    memcpy(b + 32, c->ram, CMOS_SIZE);
    return 0;
}

static int cmos_state_restore(void *dev, const void *buf, uint64_t len)
{
    struct cmos *c = dev;
    const uint8_t *b = buf;
    if (!nimbus_state_check(b, len, BLOB_MAGIC, BLOB_VERSION, BLOB_SIZE))
        return -EINVAL;
    for (unsigned i = 9; i < 16; i++)
        if (b[i])
            return -EINVAL;
    if (nimbus_le_load(b + 28, 4) != 0)
        return -EINVAL;
    int64_t off_sec = (int64_t)nimbus_le_load(b + 16, 8);
    uint64_t off_nsec = nimbus_le_load(b + 24, 4);
    const uint8_t *ram = b + 32;
    if (b[8] >= CMOS_SIZE || off_nsec >= (uint64_t)NS_PER_SEC ||
        off_sec > MAX_OFF_SEC || off_sec < -MAX_OFF_SEC ||
        (ram[RTC_REG_A] & REG_A_UIP) || (ram[RTC_REG_C] & ~REG_C_FLAGS) ||
        ram[RTC_REG_D] != REG_D_VRT ||
        ((ram[RTC_REG_B] & REG_B_SET) && (ram[RTC_REG_B] & REG_B_UIE)))
        return -EINVAL;
    c->index = b[8];
    c->off_sec = off_sec;
    c->off_nsec = (int64_t)off_nsec;
    memcpy(c->ram, ram, CMOS_SIZE);
    cmos_resync(c);
    return 0;
}

static const nimbus_device_ops cmos_ops = {
    .struct_size = sizeof(nimbus_device_ops),
    .create = cmos_create,
    .destroy = cmos_destroy,
    .reset = cmos_reset,
    .io_read = cmos_io_read,
    .io_write = cmos_io_write,
    .timer_fired = cmos_op_timer,
    .state_save = cmos_state_save,
    .state_restore = cmos_state_restore,
};

NIMBUS_PLUGIN_DECLARE("cmos", "1.0", "MC146818 RTC and 128-byte CMOS RAM",
                      "iobase=<port>,irq=<gsi>,mem_below_4g=<bytes>,"
                      "mem_above_4g=<bytes>",
                      &cmos_ops);
