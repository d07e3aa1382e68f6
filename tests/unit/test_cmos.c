/* cmos (MC146818 RTC) plugin, loaded with dlopen and driven by the fake host. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_host.h"
#include "test_plugin_load.h"

#define GSI 8u
#define NS 1000000000ll
/* 2026-11-25 13:45:07 UTC, a Wednesday. */
#define T0 1795614307ll

enum { SEC = 0, SEC_ALARM, MIN, MIN_ALARM, HOUR, HOUR_ALARM, WDAY, MDAY, MONTH,
       YEAR, REG_A, REG_B, REG_C, REG_D, CENTURY = 0x32 };

struct fx {
    struct fake_host h;
    const nimbus_plugin *p;
    void *dev;
};

static struct fx *fx_new_opts(const char *opts)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(fake_host_init(&f->h, 0), 0);
    f->h.abort_on_violation = 1;
    f->h.now_ns = 1000; /* arbitrary monotonic origin */
    f->h.wall_ns = T0 * NS + NS / 4;
    f->p = test_load_plugin("cmos.so");
    char err[256] = "";
    nimbus_region regs[NIMBUS_MAX_REGIONS];
    uint32_t n = NIMBUS_MAX_REGIONS;
    assert_int_equal(
        fake_host_create(&f->h, f->p, opts, &f->dev, regs, &n, err, sizeof(err)),
        0);
    assert_int_equal(n, 1);
    assert_int_equal(regs[0].base, 0x70);
    assert_int_equal(regs[0].size, 2);
    return f;
}

static void fx_free(struct fx *f)
{
    if (f->dev)
        f->p->ops->destroy(f->dev);
    assert_int_equal(fake_host_violation_count(&f->h), 0);
    fake_host_fini(&f->h);
    free(f);
}

static int setup(void **state)
{
    *state = fx_new_opts("");
    return 0;
}

static int teardown(void **state)
{
    fx_free(*state);
    return 0;
}

static uint8_t rd(struct fx *f, uint8_t idx)
{
    uint8_t v = 0;
    assert_int_equal(f->p->ops->io_write(f->dev, 0, 0, &idx, 1), 0);
    assert_int_equal(f->p->ops->io_read(f->dev, 0, 1, &v, 1), 0);
    return v;
}

static void wr(struct fx *f, uint8_t idx, uint8_t v)
{
    assert_int_equal(f->p->ops->io_write(f->dev, 0, 0, &idx, 1), 0);
    assert_int_equal(f->p->ops->io_write(f->dev, 0, 1, &v, 1), 0);
}

static void advance(struct fx *f, int64_t ns)
{
    fake_host_advance(&f->h, f->p, f->dev, (uint64_t)ns);
}

/* Move the host wall clock (and the monotonic clock) to an instant. */
static void set_wall(struct fx *f, int64_t wall_ns)
{
    assert_true(wall_ns >= f->h.wall_ns);
    advance(f, wall_ns - f->h.wall_ns);
}

static void expect_time(struct fx *f, const uint8_t want[8])
{
    static const uint8_t idx[8] = {SEC, MIN, HOUR, WDAY, MDAY, MONTH, YEAR,
                                   CENTURY};
    for (unsigned i = 0; i < 8; i++)
        if (rd(f, idx[i]) != want[i])
            fail_msg("register 0x%02x: got 0x%02x, want 0x%02x", idx[i],
                     rd(f, idx[i]), want[i]);
}

/* Set the time like Linux's mc146818_set_time (BCD 24 h values). */
static void set_time_bcd(struct fx *f, uint8_t cent, uint8_t yy, uint8_t mon,
                         uint8_t day, uint8_t h, uint8_t m, uint8_t s,
                         int reset_divider)
{
    uint8_t b = rd(f, REG_B), a = rd(f, REG_A);
    wr(f, REG_B, b | 0x80);
    if (reset_divider)
        wr(f, REG_A, a | 0x70);
    wr(f, YEAR, yy);
    wr(f, MONTH, mon);
    wr(f, MDAY, day);
    wr(f, HOUR, h);
    wr(f, MIN, m);
    wr(f, SEC, s);
    wr(f, CENTURY, cent);
    wr(f, REG_B, b);
    wr(f, REG_A, a);
}

static size_t save(struct fx *f, uint8_t *buf, size_t cap)
{
    uint64_t len = 0;
    assert_int_equal(f->p->ops->state_save(f->dev, NULL, 0, &len), 0);
    assert_true(len > 0 && len <= cap);
    assert_int_equal(f->p->ops->state_save(f->dev, buf, cap, &len), 0);
    return (size_t)len;
}

/* ---- reading the host's time ---- */

static void test_power_on_registers(void **state)
{
    struct fx *f = *state;
    assert_int_equal(rd(f, REG_A), 0x26);
    assert_int_equal(rd(f, REG_B), 0x02);
    assert_int_equal(rd(f, REG_C), 0x00);
    assert_int_equal(rd(f, REG_D), 0x80);
    /* Bit 7 of the index port gates NMI and is not part of the index. */
    assert_int_equal(rd(f, 0x80 | REG_D), 0x80);
    uint8_t v = 0;
    assert_int_equal(f->p->ops->io_read(f->dev, 0, 0, &v, 1), 0);
    assert_int_equal(v, 0xff); /* index port is write-only */
    assert_int_equal(f->h.irq_level[GSI], 0);
}

static void test_reads_host_time_bcd(void **state)
{
    struct fx *f = *state;
    static const uint8_t want[8] = {0x07, 0x45, 0x13, 0x04,
                                    0x25, 0x11, 0x26, 0x20};
    expect_time(f, want);
}

static void test_reads_host_time_binary(void **state)
{
    struct fx *f = *state;
    wr(f, REG_B, 0x06);
    static const uint8_t want[8] = {7, 45, 13, 4, 25, 11, 26, 20};
    expect_time(f, want);
}

static void test_twelve_hour_mode(void **state)
{
    struct fx *f = *state;
    wr(f, REG_B, 0x00); /* BCD, 12 h */
    assert_int_equal(rd(f, HOUR), 0x81); /* 1 PM */
    wr(f, REG_B, 0x04); /* binary, 12 h */
    assert_int_equal(rd(f, HOUR), 0x81);
    set_wall(f, (T0 + 10 * 3600 + 20 * 60) * NS); /* 00:05 next day */
    wr(f, REG_B, 0x00);
    assert_int_equal(rd(f, HOUR), 0x12); /* 12 AM */
    assert_int_equal(rd(f, MDAY), 0x26);
    set_wall(f, (T0 + 22 * 3600 + 20 * 60) * NS); /* 12:05 */
    assert_int_equal(rd(f, HOUR), 0x92); /* 12 PM */
    wr(f, REG_B, 0x04);
    assert_int_equal(rd(f, HOUR), 0x8c);
    /* Setting the time in 12 h mode (released in 12 h mode, then read in
     * 24 h): 12 AM is hour 0, 12 PM hour 12. */
    static const uint8_t h12[3] = {0x12, 0x92, 0x83}, h24[3] = {0x00, 0x12,
                                                                0x15};
    for (unsigned i = 0; i < 3; i++) {
        wr(f, REG_B, 0x80); /* SET, BCD, 12 h */
        wr(f, HOUR, h12[i]);
        wr(f, REG_B, 0x00);
        wr(f, REG_B, 0x02);
        assert_int_equal(rd(f, HOUR), h24[i]);
    }
}

static void test_clock_follows_host(void **state)
{
    struct fx *f = *state;
    advance(f, 53 * NS); /* 13:46:00.25 */
    assert_int_equal(rd(f, SEC), 0x00);
    assert_int_equal(rd(f, MIN), 0x46);
}

/* ---- setting the time ---- */

static void test_guest_sets_time(void **state)
{
    struct fx *f = *state;
    int64_t wall = f->h.wall_ns;
    set_time_bcd(f, 0x19, 0x99, 0x12, 0x31, 0x23, 0x59, 0x58, 1);
    static const uint8_t then[8] = {0x58, 0x59, 0x23, 0x06,
                                    0x31, 0x12, 0x99, 0x19};
    expect_time(f, then);
    /* Divider released half-way into the second: first tick after .5 s. */
    advance(f, NS / 2 - 1000);
    assert_int_equal(rd(f, SEC), 0x58);
    advance(f, 2000);
    assert_int_equal(rd(f, SEC), 0x59);
    advance(f, 2 * NS);
    static const uint8_t now[8] = {0x01, 0x00, 0x00, 0x07,
                                   0x01, 0x01, 0x00, 0x20};
    expect_time(f, now);
    assert_int_equal(f->h.wall_ns, wall + NS / 2 + 1000 + 2 * NS);
}

static void test_set_keeps_divider_phase(void **state)
{
    struct fx *f = *state;
    /* SET alone: the divider keeps running, the phase (.25) is kept. */
    set_time_bcd(f, 0x20, 0x00, 0x02, 0x28, 0x23, 0x59, 0x59, 0);
    advance(f, NS * 3 / 4 - 1000);
    assert_int_equal(rd(f, MDAY), 0x28);
    advance(f, 2000);
    assert_int_equal(rd(f, MDAY), 0x29); /* 2000 is a leap year */
    set_time_bcd(f, 0x21, 0x00, 0x02, 0x28, 0x23, 0x59, 0x59, 0);
    advance(f, NS);
    assert_int_equal(rd(f, MONTH), 0x03); /* 2100 is not */
    assert_int_equal(rd(f, MDAY), 0x01);
}

static void test_write_while_running(void **state)
{
    struct fx *f = *state;
    wr(f, MIN, 0x10); /* no SET: the clock jumps, the rest is kept */
    assert_int_equal(rd(f, MIN), 0x10);
    assert_int_equal(rd(f, HOUR), 0x13);
    assert_int_equal(rd(f, SEC), 0x07);
    advance(f, NS);
    assert_int_equal(rd(f, SEC), 0x08);
    assert_int_equal(rd(f, MIN), 0x10);
}

static void test_frozen_while_set(void **state)
{
    struct fx *f = *state;
    wr(f, REG_B, 0x82);
    advance(f, 5 * NS);
    assert_int_equal(rd(f, SEC), 0x07); /* updates inhibited */
    assert_int_equal(rd(f, REG_A) & 0x80, 0);
    wr(f, REG_B, 0x02);
    advance(f, NS);
    assert_int_equal(rd(f, SEC), 0x08);
}

/* ---- UIP, flags and interrupts ---- */

static void test_uip(void **state)
{
    struct fx *f = *state;
    assert_int_equal(rd(f, REG_A) & 0x80, 0); /* .25 */
    set_wall(f, (T0 + 1) * NS - 250000);        /* 250 us before the tick */
    assert_int_equal(rd(f, REG_A) & 0x80, 0);
    set_wall(f, (T0 + 1) * NS - 244000);
    assert_int_equal(rd(f, REG_A), 0xa6);
    assert_int_equal(rd(f, SEC), 0x07); /* data still the old second */
    set_wall(f, (T0 + 1) * NS - 1);
    assert_int_equal(rd(f, REG_A) & 0x80, 0x80);
    set_wall(f, (T0 + 1) * NS);
    assert_int_equal(rd(f, REG_A) & 0x80, 0);
    assert_int_equal(rd(f, SEC), 0x08);
    /* Writes cannot set UIP. */
    wr(f, REG_A, 0xa6);
    assert_int_equal(rd(f, REG_A), 0x26);
}

static void test_flags_without_interrupts(void **state)
{
    struct fx *f = *state;
    advance(f, NS);
    /* UF and PF rise without their enables; no IRQ, no timer. */
    assert_int_equal(f->h.timer_deadline[0], 0);
    assert_int_equal(f->h.irq_level[GSI], 0);
    assert_int_equal(rd(f, REG_C), 0x50);
    assert_int_equal(rd(f, REG_C), 0x00);
}

static void test_update_interrupt_and_reg_c(void **state)
{
    struct fx *f = *state;
    wr(f, REG_A, 0x20); /* no periodic rate */
    wr(f, REG_B, 0x12); /* UIE */
    assert_int_equal(f->h.irq_level[GSI], 0);
    assert_int_not_equal(f->h.timer_deadline[0], 0);
    advance(f, NS / 2);
    assert_int_equal(f->h.irq_level[GSI], 0);
    advance(f, NS / 4);
    assert_int_equal(f->h.irq_level[GSI], 1);
    assert_int_equal(f->h.irq_edges[GSI], 1);
    assert_int_equal(rd(f, SEC), 0x08);
    assert_int_equal(rd(f, REG_C), 0x90);
    assert_int_equal(f->h.irq_level[GSI], 0);
    assert_int_equal(rd(f, REG_C), 0x00);
    /* Unacknowledged, the line stays up and no timer keeps firing. */
    advance(f, NS);
    assert_int_equal(f->h.irq_level[GSI], 1);
    uint64_t fired = f->h.timers_fired;
    advance(f, 10 * NS);
    assert_int_equal(f->h.timers_fired, fired);
    assert_int_equal(f->h.irq_edges[GSI], 2);
    assert_int_equal(rd(f, REG_C), 0x90);
    /* Clearing UIE drops a pending IRQF too. */
    advance(f, NS);
    assert_int_equal(f->h.irq_level[GSI], 1);
    wr(f, REG_B, 0x02);
    assert_int_equal(f->h.irq_level[GSI], 0);
    assert_int_equal(rd(f, REG_C), 0x10);
    /* Setting SET clears UIE. */
    wr(f, REG_B, 0x92);
    assert_int_equal(rd(f, REG_B), 0x82);
}

static void test_periodic_interrupt(void **state)
{
    struct fx *f = *state;
    wr(f, REG_A, 0x26); /* 1024 Hz */
    wr(f, REG_B, 0x42); /* PIE */
    uint64_t start = f->h.now_ns;
    for (unsigned i = 0; i < 1024; i++) {
        assert_int_equal(f->h.irq_level[GSI], 0);
        assert_int_equal(fake_host_fire_next(&f->h, f->p, f->dev), 1);
        assert_int_equal(f->h.irq_level[GSI], 1);
        assert_int_equal(rd(f, REG_C) & 0xc0, 0xc0);
    }
    int64_t elapsed = (int64_t)(f->h.now_ns - start);
    assert_true(elapsed >= NS - 1000 && elapsed <= NS + 1000);
    assert_int_equal(f->h.irq_edges[GSI], 1024);

    /* 2 Hz: one interrupt every 500 ms. */
    wr(f, REG_A, 0x2f);
    rd(f, REG_C);
    start = f->h.now_ns;
    assert_int_equal(fake_host_fire_next(&f->h, f->p, f->dev), 1);
    assert_int_equal(rd(f, REG_C) & 0xc0, 0xc0);
    assert_int_equal(fake_host_fire_next(&f->h, f->p, f->dev), 1);
    assert_int_equal(rd(f, REG_C) & 0xc0, 0xc0);
    elapsed = (int64_t)(f->h.now_ns - start);
    assert_true(elapsed > NS / 2 && elapsed <= NS);

    /* Rate 0 stops it. */
    wr(f, REG_A, 0x20);
    rd(f, REG_C);
    assert_int_equal(f->h.timer_deadline[0], 0);
    /* So does stopping the divider. */
    wr(f, REG_A, 0x76);
    assert_int_equal(f->h.timer_deadline[0], 0);
}

static void test_alarm_interrupt(void **state)
{
    struct fx *f = *state;
    wr(f, REG_A, 0x20);
    wr(f, SEC_ALARM, 0x09);
    wr(f, MIN_ALARM, 0x45);
    wr(f, HOUR_ALARM, 0x13);
    wr(f, REG_B, 0x22); /* AIE */
    advance(f, NS);      /* 13:45:08.25 */
    assert_int_equal(f->h.irq_level[GSI], 0);
    advance(f, NS);      /* 13:45:09.25 */
    assert_int_equal(f->h.irq_level[GSI], 1);
    assert_int_equal(rd(f, REG_C) & 0xa0, 0xa0);
    advance(f, 5 * NS);
    assert_int_equal(f->h.irq_level[GSI], 0);
    /* Don't-care fields (0xc0-0xff) match every second. */
    wr(f, SEC_ALARM, 0xc0);
    wr(f, MIN_ALARM, 0xff);
    wr(f, HOUR_ALARM, 0xc0);
    advance(f, NS);
    assert_int_equal(f->h.irq_level[GSI], 1);
    assert_int_equal(rd(f, REG_C), 0xb0);
}

static void test_alarm_flag_after_long_gap(void **state)
{
    struct fx *f = *state;
    wr(f, SEC_ALARM, 0x00);
    wr(f, MIN_ALARM, 0x00);
    wr(f, HOUR_ALARM, 0x02);
    rd(f, REG_C);
    advance(f, 6 * 3600 * NS); /* passes 02:00:00 without looking */
    assert_int_equal(rd(f, REG_C) & 0x20, 0);
    advance(f, 7 * 3600 * NS);
    assert_int_equal(rd(f, REG_C) & 0x20, 0x20);
}

static uint8_t bcd(unsigned v)
{
    return (uint8_t)((v / 10) << 4 | v % 10);
}

static int field_ok(uint8_t alarm, unsigned v)
{
    return (alarm & 0xc0) == 0xc0 || alarm == bcd(v);
}

/* AF after a gap, against a brute-force scan of every second (BCD, 24 h). */
static void test_alarm_matches_reference(void **state)
{
    struct fx *f = *state;
    static const uint8_t pool[] = {0x00, 0x05, 0x13, 0x23, 0x30, 0x45, 0x59,
                                   0x5a, 0x60, 0x99, 0xc0, 0xff, 0x7f, 0x24};
    srand(99);
    for (unsigned iter = 0; iter < 400; iter++) {
        uint8_t as = pool[rand() % sizeof(pool)];
        uint8_t am = pool[rand() % sizeof(pool)];
        uint8_t ah = pool[rand() % sizeof(pool)];
        wr(f, SEC_ALARM, as);
        wr(f, MIN_ALARM, am);
        wr(f, HOUR_ALARM, ah);
        rd(f, REG_C);
        int64_t s0 = (f->h.wall_ns - NS / 4) / NS; /* phase stays .25 */
        int64_t gap = 1 + rand() % (iter % 4 == 0 ? 200000 : 5000);
        advance(f, gap * NS);
        int want = 0;
        int64_t from = s0 + 1 > s0 + gap - 86399 ? s0 + 1 : s0 + gap - 86399;
        for (int64_t t = from; t <= s0 + gap && !want; t++) {
            int64_t sod = t % 86400;
            want = field_ok(as, (unsigned)(sod % 60)) &&
                   field_ok(am, (unsigned)(sod / 60 % 60)) &&
                   field_ok(ah, (unsigned)(sod / 3600));
        }
        uint8_t c = rd(f, REG_C);
        if (!!(c & 0x20) != want)
            fail_msg("alarm %02x:%02x:%02x after %lld s from %lld: AF=%d want %d",
                     ah, am, as, (long long)gap, (long long)s0, !!(c & 0x20),
                     want);
    }
}

/* ---- reset, state, options ---- */

static void test_reset_restores_power_on(void **state)
{
    struct fx *f = *state;
    uint8_t a[512], b[512];
    size_t na = save(f, a, sizeof(a));
    set_time_bcd(f, 0x19, 0x85, 0x07, 0x04, 0x10, 0x11, 0x12, 1);
    wr(f, 0x40, 0x5a);
    wr(f, REG_B, 0x72);
    wr(f, REG_A, 0x23);
    advance(f, NS);
    assert_int_equal(f->h.irq_level[GSI], 1);
    size_t nb = save(f, b, sizeof(b));
    assert_true(na != nb || memcmp(a, b, na) != 0);
    f->p->ops->reset(f->dev);
    nb = save(f, b, sizeof(b));
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    assert_int_equal(f->h.irq_level[GSI], 0);
    assert_int_equal(f->h.timer_deadline[0], 0);
    static const uint8_t want[8] = {0x08, 0x45, 0x13, 0x04,
                                    0x25, 0x11, 0x26, 0x20};
    expect_time(f, want); /* host time again */
}

static void test_state_round_trip(void **state)
{
    struct fx *f = *state;
    set_time_bcd(f, 0x19, 0x99, 0x12, 0x31, 0x23, 0x59, 0x58, 0);
    wr(f, 0x40, 0xa5);
    wr(f, REG_B, 0x12); /* UIE */
    uint8_t a[512], b[512];
    size_t na = save(f, a, sizeof(a));

    struct fx *g = fx_new_opts("");
    assert_int_equal(g->p->ops->state_restore(g->dev, a, na), 0);
    size_t nb = save(g, b, sizeof(b));
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    assert_int_equal(rd(g, 0x40), 0xa5);
    assert_int_equal(rd(g, YEAR), 0x99);
    assert_int_equal(rd(g, SEC), 0x58);
    assert_int_not_equal(g->h.timer_deadline[0], 0); /* UIE re-armed */
    advance(g, 2 * NS);
    assert_int_equal(rd(g, YEAR), 0x00);
    assert_int_equal(rd(g, CENTURY), 0x20);
    assert_int_equal(g->h.irq_level[GSI], 1);
    fx_free(g);
}

static void test_restore_rejects_bad_blobs(void **state)
{
    struct fx *f = *state;
    uint8_t good[512], bad[512], now[512];
    size_t n = save(f, good, sizeof(good));
    const nimbus_device_ops *ops = f->p->ops;
    for (size_t cut = 0; cut < n; cut++)
        assert_true(ops->state_restore(f->dev, good, cut) < 0);
    assert_true(ops->state_restore(f->dev, good, n + 1) < 0);
    memcpy(bad, good, n);
    bad[1] ^= 1;
    assert_true(ops->state_restore(f->dev, bad, n) < 0);
    memcpy(bad, good, n);
    bad[32 + REG_A] |= 0x80; /* UIP is not state */
    assert_true(ops->state_restore(f->dev, bad, n) < 0);
    memcpy(bad, good, n);
    bad[16 + 7] = 0x7f; /* absurd clock offset */
    assert_true(ops->state_restore(f->dev, bad, n) < 0);
    assert_int_equal(save(f, now, sizeof(now)), n);
    assert_memory_equal(now, good, n);

    srand(7);
    unsigned accepted = 0, rejected = 0;
    for (unsigned iter = 0; iter < 20000; iter++) {
        memcpy(bad, good, n);
        unsigned flips = 1 + (unsigned)rand() % 3;
        for (unsigned k = 0; k < flips; k++) {
            /* Bias towards the header and the RTC registers. */
            unsigned at = rand() % 2 ? 8 + (unsigned)rand() % 24
                                     : 32 + (unsigned)rand() % 16;
            bad[at] = (uint8_t)rand();
        }
        if (ops->state_restore(f->dev, bad, n) == 0) {
            accepted++;
            assert_int_equal(save(f, now, sizeof(now)), n);
            assert_memory_equal(now, bad, n);
            for (uint8_t r = 0; r < 14; r++)
                rd(f, r);
            advance(f, NS / 3);
        } else {
            rejected++;
        }
    }
    assert_true(accepted > 0);
    assert_true(rejected > 0);
}

static void test_memory_size_options(void **state)
{
    (void)state;
    struct fx *g = fx_new_opts("mem_below_4g=0x80000000,mem_above_4g=0x100000000");
    /* (2 GiB - 16 MiB) / 64 KiB = 0x7f00 */
    assert_int_equal(rd(g, 0x34), 0x00);
    assert_int_equal(rd(g, 0x35), 0x7f);
    /* 4 GiB / 64 KiB = 0x010000 */
    assert_int_equal(rd(g, 0x5b), 0x00);
    assert_int_equal(rd(g, 0x5c), 0x00);
    assert_int_equal(rd(g, 0x5d), 0x01);
    assert_int_equal(rd(g, 0x15) | rd(g, 0x16) << 8, 640);
    assert_int_equal(rd(g, 0x30) | rd(g, 0x31) << 8, 0xffff);
    /* Guest writes are not sticky across reset. */
    wr(g, 0x35, 0);
    g->p->ops->reset(g->dev);
    assert_int_equal(rd(g, 0x35), 0x7f);
    fx_free(g);
    /* Without the options the bytes stay zero. */
    g = fx_new_opts("");
    assert_int_equal(rd(g, 0x34) | rd(g, 0x35) | rd(g, 0x5d), 0);
    fx_free(g);
}

static void test_bad_options(void **state)
{
    struct fx *f = *state;
    static const char *cases[][2] = {{"iobase=zz", "zz"},
                                     {"irq=99", "99"},
                                     {"century=20", "century"},
                                     {"mem_below_4g=0x200000000", "0x200000000"},
                                     {"mem_above_4g=lots", "lots"},
                                     {"irq=8,,bogus", "bogus"}};
    for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[256] = "";
        void *dev = NULL;
        nimbus_region regs[1];
        uint32_t n = 1;
        assert_true(f->p->ops->create(&f->h.api, &f->h, cases[i][0], &dev,
                                      regs, &n, err, sizeof(err)) < 0);
        if (!strstr(err, cases[i][1]))
            fail_msg("'%s': error does not name '%s': %s", cases[i][0],
                     cases[i][1], err);
    }
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_power_on_registers),
        T(test_reads_host_time_bcd),
        T(test_reads_host_time_binary),
        T(test_twelve_hour_mode),
        T(test_clock_follows_host),
        T(test_guest_sets_time),
        T(test_set_keeps_divider_phase),
        T(test_write_while_running),
        T(test_frozen_while_set),
        T(test_uip),
        T(test_flags_without_interrupts),
        T(test_update_interrupt_and_reg_c),
        T(test_periodic_interrupt),
        T(test_alarm_interrupt),
        T(test_alarm_flag_after_long_gap),
        T(test_alarm_matches_reference),
        T(test_reset_restores_power_on),
        T(test_state_round_trip),
        T(test_restore_rejects_bad_blobs),
        T(test_memory_size_options),
        T(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
