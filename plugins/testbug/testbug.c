/*
 * testbug: a tiny register-file device with a DELIBERATE heap overflow.
 *
 * It exists only to prove that the fuzz harnesses find bugs (ctest
 * fuzz.selftest.planted_bug, ci/fuzz.sh --selftest).  It is built only with
 * tests or fuzzing, is never installed, and lands outside the VMM's plugin
 * directory, so the VMM cannot load it by name.
 *
 * Registers (one PIO region of 16 bytes, default base 0x510):
 *   0x0-0x7  scratch bytes, any width
 *   0x8      INDEX  (w) window index, 0..15 (0..31 once unlocked: the bug;
 *                   before that, larger values are rejected)
 *   0x9      DATA   (rw) window[INDEX]; writes post-increment INDEX mod 16;
 *                   with ECHO set in CTL the byte also goes to the chr backend
 *   0xa      KEY_A  (w8) 0x4e ('N') starts the unlock sequence
 *   0xc      KEY_B  (w8) 0x42 ('B') right after KEY_A unlocks
 *   0xe      CTL    (rw) bit0 raise IRQ, bit1 lower it 1 us later, bit7 ECHO
 *   0xf      RXDATA (r) last byte received from the chr backend
 *
 * The planted bug: once unlocked, INDEX accepts 16..31 and a DATA write then
 * stores past the end of the 16-byte window, which is the last member of the
 * heap-allocated instance.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <nimbus/plugin_abi.h>
#include <nimbus/plugin_util.h>

#define TB_REGION_SIZE 16u
#define TB_KEY_A 0x4eu
#define TB_KEY_B 0x42u
#define TB_CTL_IRQ 0x01u
#define TB_CTL_IRQ_PULSE 0x02u
#define TB_CTL_ECHO 0x80u
#define TB_PULSE_NS 1000u

#define TB_STATE_MAGIC 0x31474254u /* "TBG1" */

struct tb_state { /* the saved blob, little-endian host layout, version 1 */
    uint32_t magic;
    uint8_t scratch[8];
    uint8_t index;
    uint8_t stage;    /* 1 after KEY_A */
    uint8_t unlocked; /* 1 after KEY_A, KEY_B */
    uint8_t ctl;
    uint8_t rx;
    uint8_t irq;
    uint8_t pad[2];
    uint8_t window[16];
};

struct testbug {
    const nimbus_host_api *host;
    void *hctx;
    uint32_t gsi;
    struct tb_state s;
    uint8_t window[16]; /* must stay last: the planted overflow runs off it */
};

static void tb_set_irq(struct testbug *t, uint8_t level)
{
    t->s.irq = level;
    t->host->irq_set_level(t->hctx, t->gsi, level);
}

static int tb_create(const nimbus_host_api *host, void *hctx, const char *options,
                     void **dev, nimbus_region *regions, uint32_t *nregions,
                     char *err, uint32_t errlen)
{
    uint64_t base = 0x510, irq = 5;
    size_t pos = 0;
    char key[32], val[32];
    int r;
    if (*nregions < 1) {
        nimbus_errf(err, errlen, "testbug: needs 1 region slot");
        return -EINVAL;
    }
    while ((r = nimbus_opt_next(options, &pos, key, sizeof(key), val, sizeof(val))) != 0) {
        if (r < 0) {
            nimbus_errf(err, errlen, "testbug: malformed option '%s'", key);
            return -EINVAL;
        }
        if (!strcmp(key, "base"))
            r = nimbus_opt_u64(val, 0xffff - TB_REGION_SIZE + 1, &base);
        else if (!strcmp(key, "irq"))
            r = nimbus_opt_u64(val, 23, &irq);
        else
            r = -ENOENT;
        if (r < 0) {
            nimbus_errf(err, errlen, "testbug: bad option '%s=%s'", key, val);
            return -EINVAL;
        }
    }
    struct testbug *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        nimbus_errf(err, errlen, "testbug: out of memory");
        return -ENOMEM;
    }
    t->host = host;
    t->hctx = hctx;
    t->gsi = (uint32_t)irq;
    t->s.magic = TB_STATE_MAGIC;
    regions[0] = (nimbus_region){NIMBUS_REGION_PIO, 0, base, TB_REGION_SIZE};
    *nregions = 1;
    *dev = t;
    return 0;
}

static void tb_destroy(void *dev)
{
    free(dev);
}

static void tb_reset(void *dev)
{
    struct testbug *t = dev;
    memset(&t->s, 0, sizeof(t->s));
    memset(t->window, 0, sizeof(t->window));
    t->s.magic = TB_STATE_MAGIC;
    t->host->timer_arm(t->hctx, 0, 0);
    tb_set_irq(t, 0);
}

static int tb_io_read(void *dev, uint32_t region, uint64_t offset, void *data,
                      uint32_t len)
{
    struct testbug *t = dev;
    uint8_t view[TB_REGION_SIZE] = {0};
    if (region != 0 || offset >= TB_REGION_SIZE || len > TB_REGION_SIZE - offset)
        return -EINVAL;
    memcpy(view, t->s.scratch, sizeof(t->s.scratch));
    view[0x8] = t->s.index;
    view[0x9] = t->window[t->s.index & 0xf];
    view[0xe] = t->s.ctl;
    view[0xf] = t->s.rx;
    memcpy(data, view + offset, len);
    return 0;
}

static int tb_io_write(void *dev, uint32_t region, uint64_t offset,
                       const void *data, uint32_t len)
{
    struct testbug *t = dev;
    if (region != 0 || offset >= TB_REGION_SIZE || len > TB_REGION_SIZE - offset)
        return -EINVAL;
    uint64_t v = nimbus_le_load(data, len);
    if (offset < 8) {
        memcpy(t->s.scratch + offset, data, len > 8 - offset ? 8 - offset : len);
        return 0;
    }
    switch (offset) {
    case 0x8:
        if (v > 0xf) {
            if (!t->s.unlocked)
                return -EINVAL; /* the extended window needs the key */
            nimbus_logf(t->host, t->hctx, NIMBUS_LOG_DEBUG,
                        "testbug: extended index %u", (unsigned)(v & 0x1f));
        }
        t->s.index = (uint8_t)(v & 0x1f);
        return 0;
    case 0x9:
        t->window[t->s.index] = (uint8_t)v; /* PLANTED BUG: index may be >= 16 */
        t->s.index = (uint8_t)((t->s.index + 1) & 0xf);
        if (t->s.ctl & TB_CTL_ECHO)
            t->host->chr_write(t->hctx, &t->window[(t->s.index - 1) & 0xf], 1);
        return 0;
    case 0xa:
        /* Each step logs, like a real device would: it also gives the
         * fuzzer a coverage edge per step instead of one blind jump. */
        t->s.stage = 0;
        if (len == 1 && v == TB_KEY_A) {
            t->s.stage = 1;
            nimbus_logf(t->host, t->hctx, NIMBUS_LOG_DEBUG, "testbug: key A accepted");
        }
        return 0;
    case 0xc:
        if (len == 1 && v == TB_KEY_B && t->s.stage == 1) {
            t->s.unlocked = 1;
            nimbus_logf(t->host, t->hctx, NIMBUS_LOG_DEBUG, "testbug: unlocked");
        }
        t->s.stage = 0;
        return 0;
    case 0xe:
        t->s.ctl = (uint8_t)v;
        if (v & TB_CTL_IRQ)
            tb_set_irq(t, 1);
        if (v & TB_CTL_IRQ_PULSE)
            t->host->timer_arm(t->hctx, 0, t->host->clock_ns(t->hctx) + TB_PULSE_NS);
        return 0;
    default:
        return 0; /* read-only or unused: writes ignored */
    }
}

static void tb_timer_fired(void *dev, uint32_t timer_id)
{
    struct testbug *t = dev;
    if (timer_id == 0)
        tb_set_irq(t, 0);
}

static uint64_t tb_chr_input(void *dev, const void *buf, uint64_t len)
{
    struct testbug *t = dev;
    if (len == 0)
        return 0;
    t->s.rx = *(const uint8_t *)buf;
    return 1;
}

static int tb_state_save(void *dev, void *buf, uint64_t cap, uint64_t *len)
{
    struct testbug *t = dev;
    struct tb_state s = t->s;
    memcpy(s.window, t->window, sizeof(s.window));
    *len = sizeof(s);
    if (cap == 0)
        return 0;
    if (cap < sizeof(s))
        return -ENOSPC;
    memcpy(buf, &s, sizeof(s));
    return 0;
}

static int tb_state_restore(void *dev, const void *buf, uint64_t len)
{
    struct testbug *t = dev;
    struct tb_state s;
    if (len != sizeof(s))
        return -EINVAL;
    memcpy(&s, buf, sizeof(s));
    if (s.magic != TB_STATE_MAGIC || s.index > (s.unlocked ? 31 : 15) || s.stage > 1 ||
        s.unlocked > 1 || s.irq > 1 || s.pad[0] || s.pad[1])
        return -EINVAL;
    memcpy(t->window, s.window, sizeof(t->window));
    memset(s.window, 0, sizeof(s.window));
    t->s = s;
    tb_set_irq(t, s.irq);
    return 0;
}

static const nimbus_device_ops tb_ops = {
    .struct_size = sizeof(nimbus_device_ops),
    .create = tb_create,
    .destroy = tb_destroy,
    .reset = tb_reset,
    .io_read = tb_io_read,
    .io_write = tb_io_write,
    .timer_fired = tb_timer_fired,
    .chr_input = tb_chr_input,
    .state_save = tb_state_save,
    .state_restore = tb_state_restore,
};

NIMBUS_PLUGIN_DECLARE("testbug", "1", "FUZZ SELF-TEST ONLY: device with a planted heap overflow",
                      "base=<port>,irq=<gsi>", &tb_ops);
