/*
 * fuzz_hp_slots: the guest's side of the ACPI hotplug slot registers (SEL,
 * NXT and the status/command byte, core/hp_slots.c: CPU and memory hotplug), reached through the real
 * PIO bus dispatch at any port, width and direction around them,
 * interleaved with the host's side (vCPUs plugged, removals requested,
 * ejects taken).  The first bytes pick the number of slots (1-300), how many
 * are present at boot and how many are fixed (never ejected).  A model runs alongside.
 *
 * Checks after every op:
 *  - reads of CSEL, CNXT and the status byte return what the model says;
 *    odd widths and offsets read all-ones and change nothing;
 *  - an eject of a present slot that is not fixed clears it at once and wakes
 *    the owner exactly once; hps_take_ejected returns the ejected vCPUs
 *    lowest first, each once;
 *  - hps_present and hps_removal_pending agree with the model;
 *  - the DSDT's scan (CNXT, select, acknowledge) ends within one pass per
 *    pending vCPU.
 *
 * Op = [kind][fields...], kind = byte % 7 (see the switch).
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "bus.h"
#include "hp_slots.h"
#include "fuzz_input.h"
#include "fuzz_target.h"
#include "layout.h"

#define PORT LAYOUT_PORT_CPU_HOTPLUG
#define PORT_LO (PORT - 8u)
#define PORT_SPAN 32u
#define MAX_CPUS 300u

enum { M_PRESENT = 1, M_INS = 2, M_REM = 4, M_WANT_OUT = 8, M_EJECTED = 16 };

static struct {
    struct bus pio;
    struct hp_slots *c;
    unsigned wakes;
    /* The model. */
    uint32_t n, fixed, sel;
    uint8_t f[MAX_CPUS];
    unsigned want_wakes;
} S;

static void on_eject(void *opaque)
{
    (void)opaque;
    S.wakes++;
}

static void setup(struct fuzz_in *in)
{
    memset(&S, 0, sizeof(S));
    S.n = 1 + (uint32_t)fin_le(in, 2) % MAX_CPUS;
    uint32_t present = 1 + fin_u8(in) % S.n;
    S.fixed = fin_u8(in) % (S.n + 1);
    for (uint32_t i = 0; i < present; i++)
        S.f[i] = M_PRESENT;
    bus_init(&S.pio, "pio");
    char err[256];
    S.c = hps_create(&S.pio, PORT, S.n, present, S.fixed, on_eject, NULL, err, sizeof(err));
    if (!S.c)
        fuzz_fail("setup: %s", err);
}

static void teardown(void)
{
    hps_destroy(S.c);
    bus_destroy(&S.pio);
}

static uint32_t model_next(void)
{
    for (uint32_t i = 0; i < S.n; i++)
        if (S.f[i] & (M_INS | M_REM))
            return i;
    return HPS_NONE;
}

static uint8_t model_status(void)
{
    return S.sel < S.n ? (uint8_t)(S.f[S.sel] & (M_PRESENT | M_INS | M_REM)) : 0;
}

static void model_command(uint8_t v)
{
    if (S.sel >= S.n)
        return;
    uint8_t *f = &S.f[S.sel];
    if (v & HPS_ST_INSERT)
        *f &= (uint8_t)~M_INS;
    if (v & HPS_ST_REMOVE)
        *f &= (uint8_t)~M_REM;
    if ((v & HPS_CMD_EJECT) && S.sel >= S.fixed && (*f & M_PRESENT)) {
        *f = M_EJECTED;
        S.want_wakes++;
    }
}

static void check(void)
{
    if (S.wakes != S.want_wakes)
        fuzz_fail("owner woken %u times, expected %u", S.wakes, S.want_wakes);
    bool pending = false;
    for (uint32_t i = 0; i < S.n; i++) {
        pending |= (S.f[i] & (M_WANT_OUT | M_EJECTED)) != 0;
        if (hps_present(S.c, i) != ((S.f[i] & M_PRESENT) != 0))
            fuzz_fail("vCPU %u present %d, model 0x%x", i, hps_present(S.c, i), S.f[i]);
    }
    if (hps_present(S.c, S.n) || hps_present(S.c, HPS_NONE))
        fuzz_fail("a vCPU past the last is present");
    if (hps_removal_pending(S.c) != pending)
        fuzz_fail("removal pending %d, model %d", hps_removal_pending(S.c), pending);
}

static void access(uint32_t port, uint32_t len, bool write, uint64_t val)
{
    uint8_t buf[8];
    memset(buf, 0xa5, sizeof(buf));
    if (write)
        memcpy(buf, &val, len);
    int r = bus_access(&S.pio, port, buf, len, write);
    bool in = port >= PORT && port + len <= PORT + HPS_PORT_LEN;
    if (r < 0) {
        if (in)
            fuzz_fail("access at 0x%x len %u not dispatched", port, len);
        return;
    }
    if (!in)
        fuzz_fail("access at 0x%x len %u dispatched outside the registers", port, len);
    uint32_t off = port - PORT;
    bool dword = len == 4 && (off == HPS_REG_SEL || off == HPS_REG_NEXT);
    bool byte = len == 1 && off == HPS_REG_STATUS;
    if (!dword && !byte) {
        if (!write)
            for (uint32_t i = 0; i < len; i++)
                if (buf[i] != 0xff)
                    fuzz_fail("odd read at +%u len %u gave 0x%02x", off, len, buf[i]);
        return;
    }
    uint32_t v32;
    memcpy(&v32, buf, 4);
    if (write) {
        if (off == HPS_REG_SEL)
            S.sel = (uint32_t)val;
        else if (byte)
            model_command((uint8_t)val);
        return;
    }
    if (byte) {
        if (buf[0] != model_status())
            fuzz_fail("status of %u read 0x%02x, model 0x%02x", S.sel, buf[0], model_status());
        return;
    }
    uint32_t want = off == HPS_REG_SEL ? S.sel : model_next();
    if (v32 != want)
        fuzz_fail("read +%u = 0x%08x, model 0x%08x", off, v32, want);
}

static uint32_t reg_read(uint32_t off, uint32_t len)
{
    uint32_t v = 0;
    if (bus_access(&S.pio, PORT + off, &v, len, false) < 0)
        fuzz_fail("read +%u not dispatched", off);
    return v;
}

/* What \_SB.CPUS.CSCN does; every pass acknowledges one vCPU's events. */
static void scan(void)
{
    uint32_t passes = 0, i;
    while ((i = reg_read(HPS_REG_NEXT, 4)) < S.n) {
        if (i != model_next())
            fuzz_fail("CNXT %u, model %u", i, model_next());
        if (++passes > S.n)
            fuzz_fail("the scan does not end (%u passes)", passes);
        access(PORT + HPS_REG_SEL, 4, true, i);
        uint8_t st = (uint8_t)reg_read(HPS_REG_STATUS, 1);
        if (st != model_status())
            fuzz_fail("status 0x%02x, model 0x%02x", st, model_status());
        access(PORT + HPS_REG_STATUS, 1, true, st & (HPS_ST_INSERT | HPS_ST_REMOVE));
    }
    if (i != HPS_NONE || model_next() != HPS_NONE)
        fuzz_fail("scan ended with CNXT 0x%x, model 0x%x", i, model_next());
}

static void run_op(struct fuzz_in *in)
{
    switch (fin_u8(in) % 7u) {
    case 0: { /* a guest access anywhere near the registers */
        uint32_t port = PORT_LO + fin_u8(in) % PORT_SPAN;
        uint8_t fl = fin_u8(in);
        static const uint32_t lens[4] = {1, 2, 4, 8};
        uint32_t len = lens[fl & 3u];
        bool write = fl >> 7;
        access(port, len, write, write ? fin_le(in, 8) : 0);
        break;
    }
    case 1:
        scan();
        break;
    case 2: { /* the host plugs a vCPU */
        uint32_t i = (uint32_t)fin_le(in, 2) % (S.n + 4);
        hps_plugged(S.c, i);
        if (i < S.n)
            S.f[i] = M_PRESENT | M_INS;
        break;
    }
    case 3: { /* the host asks for a removal */
        uint32_t i = (uint32_t)fin_le(in, 2) % (S.n + 4);
        hps_unplug_request(S.c, i);
        if (i < S.n && (S.f[i] & M_PRESENT))
            S.f[i] = M_PRESENT | M_REM | M_WANT_OUT;
        break;
    }
    case 4: { /* the control thread takes one eject */
        uint32_t got = hps_take_ejected(S.c), want = HPS_NONE;
        for (uint32_t i = 0; i < S.n && want == HPS_NONE; i++)
            if (S.f[i] & M_EJECTED)
                want = i;
        if (got != want)
            fuzz_fail("took vCPU %u, model %u", got, want);
        if (want != HPS_NONE)
            S.f[want] &= (uint8_t)~M_EJECTED;
        break;
    }
    case 5: { /* _EJ0: select, then eject */
        uint32_t i = (uint32_t)fin_le(in, 2) % (S.n + 4);
        access(PORT + HPS_REG_SEL, 4, true, i);
        access(PORT + HPS_REG_STATUS, 1, true, HPS_CMD_EJECT);
        break;
    }
    case 6: /* _STA of the selected vCPU */
        access(PORT + HPS_REG_STATUS, 1, false, 0);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    setup(&in);
    check();
    for (unsigned ops = 0; fin_more(&in) && ops < 4096; ops++) {
        run_op(&in);
        check();
    }
    teardown();
    return 0;
}
