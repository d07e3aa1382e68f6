/*
 * Minimal PS/2 (8042) keyboard controller.
 *
 * Enough of the controller for firmware-less guests: the command byte,
 * self-tests, port enable bits, the output port and the CPU reset line
 * (Linux reboots through 0xFE or the output port).  No keyboard or mouse is
 * attached: every byte sent to a device is answered with 0xFE (resend) so
 * drivers conclude "nothing there" at once instead of after timeouts.
 */
#include <stdlib.h>

#include <nimbus/plugin_util.h>

#define IOAPIC_PINS 24u
#define PORT_SPACE 0x10000u
#define STATUS_PORT_OFFSET 4u /* status/command port = iobase + 4 */

#define REG_DATA 0u   /* region 0 */
#define REG_STATUS 1u /* region 1 */

#define ST_OBF 0x01u
#define ST_SYS 0x04u
#define ST_CMD 0x08u      /* last write went to the command port */
#define ST_UNLOCKED 0x10u /* keyboard not inhibited by the keylock */
#define ST_AUXDATA 0x20u

#define CTR_KBDINT 0x01u
#define CTR_AUXINT 0x02u
#define CTR_SYS 0x04u
#define CTR_KBDDIS 0x10u
#define CTR_AUXDIS 0x20u
/* Power-on command byte: translation on, keyboard clock off, no IRQs. */
#define CTR_RESET 0x50u

#define OUT_RESET_N 0x01u /* 0 = assert CPU reset */
#define OUT_KBD_OBF 0x10u /* output-port pins wired to the IRQ outputs */
#define OUT_AUX_OBF 0x20u
#define OUTPORT_RESET 0xcfu

#define REPLY_RESEND 0xfeu
#define QUEUE_LEN 8u
#define RAM_LEN 32u

struct i8042 {
    /* Binding and configuration (not state). */
    const nimbus_host_api *host;
    void *hctx;
    uint16_t iobase;
    uint32_t kbd_gsi, aux_gsi;
    uint32_t kbd_irq_out, aux_irq_out;

    /* Guest-visible state, all carried in the blob. */
    uint8_t ram[RAM_LEN]; /* controller RAM; byte 0 is the command byte */
    uint8_t outport;
    uint8_t pending;      /* command waiting for its data byte, 0 = none */
    uint8_t last_was_cmd;
    uint8_t last_out;     /* what an empty output buffer reads as */
    uint8_t q_count, q_head;
    uint8_t q_data[QUEUE_LEN];
    uint8_t q_aux[QUEUE_LEN]; /* 1 = byte came from the AUX channel */
};

static void set_line(struct i8042 *c, uint32_t gsi, uint32_t *out,
                     uint32_t level, int force)
{
    if (*out == level && !force)
        return;
    *out = level;
    if (c->host->irq_set_level)
        c->host->irq_set_level(c->hctx, gsi, level);
}

/* IRQ1/IRQ12 follow "output buffer full" for their channel, if enabled. */
static void update_irq(struct i8042 *c, int force)
{
    uint8_t ctr = c->ram[0];
    int aux = c->q_count && c->q_aux[c->q_head];
    set_line(c, c->kbd_gsi, &c->kbd_irq_out,
             c->q_count && !aux && (ctr & CTR_KBDINT), force);
    set_line(c, c->aux_gsi, &c->aux_irq_out,
             c->q_count && aux && (ctr & CTR_AUXINT), force);
}

/* The output buffer is a short queue; a flood beyond it is dropped. */
static void enqueue(struct i8042 *c, uint8_t v, int aux)
{
    if (c->q_count >= QUEUE_LEN)
        return;
    unsigned i = (c->q_head + c->q_count) % QUEUE_LEN;
    c->q_data[i] = v;
    c->q_aux[i] = (uint8_t)(aux != 0);
    c->q_count++;
}

static uint8_t read_data(struct i8042 *c)
{
    if (c->q_count == 0)
        return c->last_out;
    uint8_t v = c->q_data[c->q_head];
    c->q_data[c->q_head] = 0;
    c->q_aux[c->q_head] = 0;
    c->q_head = (uint8_t)((c->q_head + 1) % QUEUE_LEN);
    c->q_count--;
    if (c->q_count == 0)
        c->q_head = 0;
    c->last_out = v;
    /* Each byte is a fresh "buffer full" event: give edge-triggered
     * interrupt controllers a new rising edge for the next queued byte. */
    set_line(c, c->kbd_gsi, &c->kbd_irq_out, 0, 0);
    set_line(c, c->aux_gsi, &c->aux_irq_out, 0, 0);
    return v;
}

static uint8_t read_status(const struct i8042 *c)
{
    uint8_t s = ST_UNLOCKED;
    if (c->q_count) {
        s |= ST_OBF;
        if (c->q_aux[c->q_head])
            s |= ST_AUXDATA;
    }
    if (c->ram[0] & CTR_SYS)
        s |= ST_SYS;
    if (c->last_was_cmd)
        s |= ST_CMD;
    return s;
}

static uint8_t read_outport(const struct i8042 *c)
{
    uint8_t v = (uint8_t)(c->outport & ~(OUT_KBD_OBF | OUT_AUX_OBF));
    if (c->q_count)
        v |= c->q_aux[c->q_head] ? OUT_AUX_OBF : OUT_KBD_OBF;
    return v;
}

static void request_reset(struct i8042 *c)
{
    if (c->host->request_shutdown)
        c->host->request_shutdown(c->hctx, NIMBUS_SHUTDOWN_RESET);
}

static void write_outport(struct i8042 *c, uint8_t v)
{
    c->outport = v;
    /* Bit 1 (A20 gate) is ignored: the machine has no A20 masking. */
    if (!(v & OUT_RESET_N))
        request_reset(c);
}

static void write_command(struct i8042 *c, uint8_t cmd)
{
    c->last_was_cmd = 1;
    c->pending = 0; /* a new command abandons an unfinished one */
    if (cmd >= 0x20 && cmd <= 0x3f) {
        enqueue(c, c->ram[cmd & 0x1fu], 0);
        return;
    }
    if ((cmd >= 0x60 && cmd <= 0x7f) || (cmd >= 0xd1 && cmd <= 0xd4)) {
        c->pending = cmd;
        return;
    }
    if (cmd >= 0xf0) {
        /* Pulse output-port bits whose command bit is 0; bit 0 is reset. */
        if (!(cmd & OUT_RESET_N))
            request_reset(c);
        return;
    }
    switch (cmd) {
    case 0xa4: /* password installed? */
        enqueue(c, 0xf1, 0);
        break;
    case 0xa7:
        c->ram[0] |= CTR_AUXDIS;
        break;
    case 0xa8:
        c->ram[0] &= (uint8_t)~CTR_AUXDIS;
        break;
    case 0xa9: /* AUX interface test: lines OK */
    case 0xab: /* keyboard interface test: lines OK */
    case 0xe0: /* read test inputs */
        enqueue(c, 0x00, 0);
        break;
    case 0xaa: /* controller self-test passes and sets the system flag */
        c->ram[0] |= CTR_SYS;
        enqueue(c, 0x55, 0);
        break;
    case 0xad:
        c->ram[0] |= CTR_KBDDIS;
        break;
    case 0xae:
        c->ram[0] &= (uint8_t)~CTR_KBDDIS;
        break;
    case 0xd0:
        enqueue(c, read_outport(c), 0);
        break;
    default:
        break; /* vendor commands: ignored, as many real controllers do */
    }
}

static void write_data(struct i8042 *c, uint8_t v)
{
    uint8_t cmd = c->pending;
    c->last_was_cmd = 0;
    c->pending = 0;
    if (cmd >= 0x60 && cmd <= 0x7f)
        c->ram[cmd & 0x1fu] = v;
    else if (cmd == 0xd1)
        write_outport(c, v);
    else if (cmd == 0xd2)
        enqueue(c, v, 0);
    else if (cmd == 0xd3)
        enqueue(c, v, 1);
    else if (cmd == 0xd4)
        enqueue(c, REPLY_RESEND, 1); /* no mouse attached */
    else
        enqueue(c, REPLY_RESEND, 0); /* no keyboard attached */
}

static void power_on(struct i8042 *c)
{
    memset(c->ram, 0, sizeof(c->ram));
    c->ram[0] = CTR_RESET;
    c->outport = OUTPORT_RESET;
    c->pending = 0;
    c->last_was_cmd = 0;
    c->last_out = 0;
    c->q_count = 0;
    c->q_head = 0;
    memset(c->q_data, 0, sizeof(c->q_data));
    memset(c->q_aux, 0, sizeof(c->q_aux));
    update_irq(c, 1);
}

static int parse_gsi(const char *key, const char *val, uint32_t *out,
                     char *err, uint32_t errlen)
{
    uint64_t v;
    if (nimbus_opt_u64(val, IOAPIC_PINS - 1, &v) < 0) {
        nimbus_errf(err, errlen, "i8042: bad %s '%s' (GSI 0..%u)", key, val,
                    IOAPIC_PINS - 1);
        return -EINVAL;
    }
    *out = (uint32_t)v;
    return 0;
}

static int parse_options(struct i8042 *c, const char *opts, char *err,
                         uint32_t errlen)
{
    char key[32], val[64];
    size_t pos = 0;
    int r;
    uint64_t v;

    c->iobase = 0x60;
    c->kbd_gsi = 1;
    c->aux_gsi = 12;
    while ((r = nimbus_opt_next(opts, &pos, key, sizeof(key), val,
                                sizeof(val))) != 0) {
        if (r < 0) {
            nimbus_errf(err, errlen, "i8042: malformed option '%s'", key);
            return -EINVAL;
        }
        if (!strcmp(key, "iobase")) {
            if (nimbus_opt_u64(val, PORT_SPACE - 1 - STATUS_PORT_OFFSET, &v) <
                0) {
                nimbus_errf(err, errlen, "i8042: bad iobase '%s' (port 0..0x%x)",
                            val, PORT_SPACE - 1 - STATUS_PORT_OFFSET);
                return -EINVAL;
            }
            c->iobase = (uint16_t)v;
        } else if (!strcmp(key, "irq")) {
            if (parse_gsi(key, val, &c->kbd_gsi, err, errlen) < 0)
                return -EINVAL;
        } else if (!strcmp(key, "aux_irq")) {
            if (parse_gsi(key, val, &c->aux_gsi, err, errlen) < 0)
                return -EINVAL;
        } else {
            nimbus_errf(err, errlen,
                        "i8042: unknown option '%s' (known: iobase, irq, "
                        "aux_irq)", key);
            return -EINVAL;
        }
    }
    return 0;
}

static int i8042_create(const nimbus_host_api *host, void *hctx,
                        const char *options, void **dev,
                        nimbus_region *regions, uint32_t *nregions, char *err,
                        uint32_t errlen)
{
    if (!host || !dev || !regions || !nregions) {
        nimbus_errf(err, errlen, "i8042: invalid create arguments");
        return -EINVAL;
    }
    if (*nregions < 2) {
        nimbus_errf(err, errlen, "i8042: needs 2 region slots, host offers %u",
                    *nregions);
        return -ENOSPC;
    }
    struct i8042 *c = calloc(1, sizeof(*c));
    if (!c) {
        nimbus_errf(err, errlen, "i8042: out of memory");
        return -ENOMEM;
    }
    c->host = host;
    c->hctx = hctx;
    int r = parse_options(c, options ? options : "", err, errlen);
    if (r < 0) {
        free(c);
        return r;
    }
    power_on(c);
    regions[REG_DATA] = (nimbus_region){NIMBUS_REGION_PIO, 0, c->iobase, 1};
    regions[REG_STATUS] = (nimbus_region){
        NIMBUS_REGION_PIO, 0, (uint64_t)c->iobase + STATUS_PORT_OFFSET, 1};
    *nregions = 2;
    *dev = c;
    return 0;
}

static void i8042_destroy(void *dev)
{
    free(dev);
}

static void i8042_reset(void *dev)
{
    power_on(dev);
}

/* Wider accesses: byte 0 hits the register, the rest float high. */
static int i8042_io_read(void *dev, uint32_t region, uint64_t offset,
                         void *data, uint32_t len)
{
    struct i8042 *c = dev;
    uint8_t *out = data;
    if (region > REG_STATUS || offset != 0 || !len || len > 8)
        return -EINVAL;
    memset(out, 0xff, len);
    out[0] = region == REG_DATA ? read_data(c) : read_status(c);
    update_irq(c, 0);
    return 0;
}

static int i8042_io_write(void *dev, uint32_t region, uint64_t offset,
                          const void *data, uint32_t len)
{
    struct i8042 *c = dev;
    if (region > REG_STATUS || offset != 0 || !len || len > 8)
        return -EINVAL;
    uint8_t v = ((const uint8_t *)data)[0];
    if (region == REG_DATA)
        write_data(c, v);
    else
        write_command(c, v);
    update_irq(c, 0);
    return 0;
}

/*
 * State blob, version 1, little-endian, fixed 64 bytes:
 *   0 u32 magic "8042"   4 u16 version   6 u16 total size
 *   8 ram[32]
 *  40 outport pending last_was_cmd last_out q_count 0 0 0
 *  48 q_data[8] oldest first    56 q_aux[8]   (unused tails zero)
 */
#define BLOB_MAGIC 0x32343038u /* "8042" */
#define BLOB_VERSION 1u
#define BLOB_SIZE 64u

static int i8042_state_save(void *dev, void *buf, uint64_t cap, uint64_t *len)
{
    const struct i8042 *c = dev;
    int r = nimbus_state_begin(buf, cap, len, BLOB_MAGIC, BLOB_VERSION, BLOB_SIZE);
    if (r <= 0)
        return r;
    uint8_t *b = buf;
    memcpy(b + 8, c->ram, RAM_LEN);
    b[40] = c->outport;
    b[41] = c->pending;
    b[42] = c->last_was_cmd;
    b[43] = c->last_out;
    b[44] = c->q_count;
    for (unsigned i = 0; i < c->q_count; i++) {
        unsigned j = (c->q_head + i) % QUEUE_LEN;
        b[48 + i] = c->q_data[j];
        b[56 + i] = c->q_aux[j];
    }
    return 0;
}

static int valid_pending(uint8_t p)
{
    return p == 0 || (p >= 0x60 && p <= 0x7f) || (p >= 0xd1 && p <= 0xd4);
}

static int i8042_state_restore(void *dev, const void *buf, uint64_t len)
{
    struct i8042 *c = dev;
    const uint8_t *b = buf;
    if (!nimbus_state_check(b, len, BLOB_MAGIC, BLOB_VERSION, BLOB_SIZE))
        return -EINVAL;
    uint8_t count = b[44];
    if (!valid_pending(b[41]) || b[42] > 1 || count > QUEUE_LEN ||
        (b[45] | b[46] | b[47]))
        return -EINVAL;
    for (unsigned i = 0; i < QUEUE_LEN; i++) {
        if (b[56 + i] > 1 || (i >= count && (b[48 + i] | b[56 + i])))
            return -EINVAL;
    }
    memcpy(c->ram, b + 8, RAM_LEN);
    c->outport = b[40];
    c->pending = b[41];
    c->last_was_cmd = b[42];
    c->last_out = b[43];
    c->q_count = count;
    c->q_head = 0;
    memcpy(c->q_data, b + 48, QUEUE_LEN);
    memcpy(c->q_aux, b + 56, QUEUE_LEN);
    update_irq(c, 1);
    return 0;
}

static const nimbus_device_ops i8042_ops = {
    .struct_size = sizeof(nimbus_device_ops),
    .create = i8042_create,
    .destroy = i8042_destroy,
    .reset = i8042_reset,
    .io_read = i8042_io_read,
    .io_write = i8042_io_write,
    .state_save = i8042_state_save,
    .state_restore = i8042_state_restore,
};

NIMBUS_PLUGIN_DECLARE("i8042", "1.0",
                      "PS/2 controller (reset line, no keyboard or mouse)",
                      "iobase=<port>,irq=<gsi>,aux_irq=<gsi>", &i8042_ops);
