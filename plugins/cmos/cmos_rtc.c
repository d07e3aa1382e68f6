/* MC146818 register semantics on top of a wall-clock-plus-offset clock. */
#include <string.h>

#include "cmos.h"

/* UIP rises this long before each update (datasheet: 244 us). */
#define UIP_LEAD_NS 244000ll
/* The 32.768 kHz time base every periodic rate divides. */
#define TICKS_PER_SEC 32768ll
/* Releasing the divider reset starts the first second half-way through. */
#define DIVIDER_START_NS 500000000ll
/* Alarm matching looks at most one day of missed seconds back. */
#define ALARM_SCAN_MAX 86400ll

static const uint8_t time_regs[] = {RTC_SEC,  RTC_MIN,   RTC_HOUR, RTC_WDAY,
                                    RTC_MDAY, RTC_MONTH, RTC_YEAR, RTC_CENTURY};

static int is_time_reg(uint8_t idx)
{
    for (unsigned i = 0; i < sizeof(time_regs); i++)
        if (time_regs[i] == idx)
            return 1;
    return 0;
}

static int running(const struct cmos *c)
{
    return (c->ram[RTC_REG_A] & REG_A_DV) == REG_A_DV_RUN;
}

/* Time registers follow the clock only while it runs and SET is clear. */
static int live(const struct cmos *c)
{
    return running(c) && !(c->ram[RTC_REG_B] & REG_B_SET);
}

/* ---- register encodings (BCD/binary, 12/24 h) ---- */

static uint8_t enc(const struct cmos *c, unsigned v)
{
    v %= 100;
    if (c->ram[RTC_REG_B] & REG_B_DM_BINARY)
        return (uint8_t)v;
    return (uint8_t)((v / 10) << 4 | v % 10);
}

static unsigned dec(const struct cmos *c, uint8_t r)
{
    if (c->ram[RTC_REG_B] & REG_B_DM_BINARY)
        return r;
    return (unsigned)(r >> 4) * 10 + (r & 0x0fu);
}

static uint8_t enc_hour(const struct cmos *c, unsigned h)
{
    if (c->ram[RTC_REG_B] & REG_B_24H)
        return enc(c, h);
    unsigned h12 = h % 12 ? h % 12 : 12;
    return (uint8_t)(enc(c, h12) | (h >= 12 ? 0x80u : 0));
}

static unsigned dec_hour(const struct cmos *c, uint8_t r)
{
    if (c->ram[RTC_REG_B] & REG_B_24H)
        return dec(c, r);
    return dec(c, r & 0x7fu) % 12 + ((r & 0x80u) ? 12 : 0);
}

static unsigned clampu(unsigned v, unsigned lo, unsigned hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* ---- the clock ---- */

static void wall(const struct cmos *c, int64_t *sec, int64_t *frac)
{
    int64_t w = c->host->wallclock_ns ? c->host->wallclock_ns(c->hctx) : 0;
    *sec = rtc_floor_div(w, NS_PER_SEC);
    *frac = w - *sec * NS_PER_SEC;
}

static void guest_clock(const struct cmos *c, int64_t *sec, int64_t *frac)
{
    int64_t ws, wf;
    wall(c, &ws, &wf);
    *sec = ws + c->off_sec;
    *frac = wf + c->off_nsec;
    if (*frac >= NS_PER_SEC) {
        *frac -= NS_PER_SEC;
        (*sec)++;
    }
}

/* Make the guest clock read (sec, frac) now; restarts flag bookkeeping. */
static void set_clock(struct cmos *c, int64_t sec, int64_t frac)
{
    int64_t ws, wf;
    wall(c, &ws, &wf);
    c->off_sec = sec - ws;
    c->off_nsec = frac - wf;
    if (c->off_nsec < 0) {
        c->off_nsec += NS_PER_SEC;
        c->off_sec--;
    }
    c->seen_valid = 0;
}

/* Render the time registers for `secs` in the current format. */
static void render(const struct cmos *c, int64_t secs, uint8_t *regs)
{
    struct rtc_tm tm;
    rtc_tm_from_secs(secs, &tm);
    int64_t y = tm.year - rtc_floor_div(tm.year, 10000) * 10000;
    regs[RTC_SEC] = enc(c, tm.sec);
    regs[RTC_MIN] = enc(c, tm.min);
    regs[RTC_HOUR] = enc_hour(c, tm.hour);
    regs[RTC_WDAY] = enc(c, tm.wday + 1); /* 1 = Sunday */
    regs[RTC_MDAY] = enc(c, tm.mday);
    regs[RTC_MONTH] = enc(c, tm.mon);
    regs[RTC_YEAR] = enc(c, (unsigned)(y % 100));
    regs[RTC_CENTURY] = enc(c, (unsigned)(y / 100));
}

/* Parse time registers; nonsense fields are clamped (weekday ignored). */
static int64_t parse(const struct cmos *c, const uint8_t *regs)
{
    struct rtc_tm tm = {
        .year = (int64_t)clampu(dec(c, regs[RTC_CENTURY]), 0, 99) * 100 +
                clampu(dec(c, regs[RTC_YEAR]), 0, 99),
        .mon = clampu(dec(c, regs[RTC_MONTH]), 1, 12),
        .mday = clampu(dec(c, regs[RTC_MDAY]), 1, 31),
        .hour = clampu(dec_hour(c, regs[RTC_HOUR]), 0, 23),
        .min = clampu(dec(c, regs[RTC_MIN]), 0, 59),
        .sec = clampu(dec(c, regs[RTC_SEC]), 0, 59),
    };
    return rtc_secs_from_tm(&tm);
}

/* ---- interrupt flags ---- */

static int alarm_field_matches(uint8_t alarm, uint8_t now)
{
    return (alarm & 0xc0u) == 0xc0u || alarm == now; /* 11xxxxxx: any */
}

/*
 * Did the time match the alarm at any second in [from, to]?  Walks the
 * minutes the interval touches (at most 1441 for a day), not the seconds.
 */
static int alarm_hit(const struct cmos *c, int64_t from, int64_t to)
{
    uint8_t as = c->ram[RTC_SEC_ALARM];
    int any_sec = (as & 0xc0u) == 0xc0u;
    int64_t want_sec = -1;
    for (unsigned x = 0; x < 60 && !any_sec; x++)
        if (enc(c, x) == as)
            want_sec = x;
    if (!any_sec && want_sec < 0)
        return 0; /* no second ever encodes as this alarm byte */
    for (int64_t m = rtc_floor_div(from, 60); m <= rtc_floor_div(to, 60); m++) {
        int64_t mod = m - rtc_floor_div(m, 1440) * 1440; /* minute of day */
        if (!alarm_field_matches(c->ram[RTC_MIN_ALARM],
                                 enc(c, (unsigned)(mod % 60))) ||
            !alarm_field_matches(c->ram[RTC_HOUR_ALARM],
                                 enc_hour(c, (unsigned)(mod / 60))))
            continue;
        if (any_sec)
            return 1;
        int64_t t = m * 60 + want_sec;
        if (t >= from && t <= to)
            return 1;
    }
    return 0;
}

/* Periodic period in 32.768 kHz ticks; 0 = off (rates 1, 2 alias 8, 9). */
static int64_t periodic_ticks(const struct cmos *c)
{
    unsigned rs = c->ram[RTC_REG_A] & REG_A_RS;
    if (rs == 0)
        return 0;
    if (rs < 3)
        rs += 7;
    return 1ll << (rs - 1);
}

static int64_t periodic_index(int64_t sec, int64_t frac, int64_t p)
{
    return sec * (TICKS_PER_SEC / p) + frac * TICKS_PER_SEC / NS_PER_SEC / p;
}

/*
 * Set UF/AF/PF for everything that happened since the last look.  Flags
 * rise whether or not their interrupt is enabled, as on the chip.
 */
static void catch_up(struct cmos *c)
{
    if (!running(c)) {
        c->seen_valid = 0;
        return;
    }
    int64_t s, f;
    guest_clock(c, &s, &f);
    if (!c->seen_valid || s < c->seen_sec ||
        (s == c->seen_sec && f < c->seen_frac)) {
        /* First look, or the host clock stepped back: nothing happened. */
        c->seen_valid = 1;
        c->seen_sec = s;
        c->seen_frac = f;
        return;
    }
    if (live(c) && s > c->seen_sec) {
        c->ram[RTC_REG_C] |= REG_C_UF;
        int64_t from = c->seen_sec + 1;
        if (s - from >= ALARM_SCAN_MAX)
            from = s - ALARM_SCAN_MAX + 1;
        if (alarm_hit(c, from, s))
            c->ram[RTC_REG_C] |= REG_C_AF;
    }
    int64_t p = periodic_ticks(c);
    if (p && periodic_index(s, f, p) > periodic_index(c->seen_sec, c->seen_frac, p))
        c->ram[RTC_REG_C] |= REG_C_PF;
    c->seen_sec = s;
    c->seen_frac = f;
}

static int irqf(const struct cmos *c)
{
    uint8_t fl = c->ram[RTC_REG_C], b = c->ram[RTC_REG_B];
    return ((fl & REG_C_PF) && (b & REG_B_PIE)) ||
           ((fl & REG_C_AF) && (b & REG_B_AIE)) ||
           ((fl & REG_C_UF) && (b & REG_B_UIE));
}

static void drive_irq(struct cmos *c, int force)
{
    uint32_t level = (uint32_t)irqf(c);
    if (level == c->irq_out && !force)
        return;
    c->irq_out = level;
    if (c->host->irq_set_level)
        c->host->irq_set_level(c->hctx, c->gsi, level);
}

/*
 * Wake up for the next event that could raise the line.  While the line
 * is up nothing new can be signalled until the guest reads C, so an
 * unserviced interrupt costs no timer firings.
 */
static void schedule(struct cmos *c, int force)
{
    if (!c->host->timer_arm)
        return;
    int64_t delta = 0; /* guest-clock ns until the wakeup, 0 = none */
    if (!irqf(c) && running(c)) {
        int64_t s, f;
        guest_clock(c, &s, &f);
        uint8_t b = c->ram[RTC_REG_B];
        if (live(c) && (b & (REG_B_UIE | REG_B_AIE)))
            delta = NS_PER_SEC - f;
        int64_t p = periodic_ticks(c);
        if (p && (b & REG_B_PIE)) {
            int64_t next = (f * TICKS_PER_SEC / NS_PER_SEC / p + 1) * p;
            int64_t d = next >= TICKS_PER_SEC
                            ? NS_PER_SEC - f
                            : (next * NS_PER_SEC + TICKS_PER_SEC - 1) /
                                      TICKS_PER_SEC - f;
            if (delta == 0 || d < delta)
                delta = d;
        }
    }
    uint64_t deadline = 0;
    if (delta > 0) {
        uint64_t now = c->host->clock_ns ? c->host->clock_ns(c->hctx) : 0;
        deadline = now + (uint64_t)delta;
    }
    if (deadline == c->armed && !force)
        return;
    c->armed = deadline;
    c->host->timer_arm(c->hctx, CMOS_TIMER, deadline);
}

static void settle(struct cmos *c)
{
    drive_irq(c, 0);
    schedule(c, 0);
}

void cmos_timer_fired(struct cmos *c)
{
    c->armed = 0; /* host timers are one-shot */
    catch_up(c);
    settle(c);
}

void cmos_resync(struct cmos *c)
{
    c->seen_valid = 0;
    catch_up(c);
    drive_irq(c, 1);
    schedule(c, 1);
}

void cmos_power_on(struct cmos *c)
{
    memcpy(c->ram, c->ram_init, CMOS_SIZE);
    c->ram[RTC_REG_A] = REG_A_DV_RUN | 0x06u; /* 1024 Hz periodic rate */
    c->ram[RTC_REG_B] = REG_B_24H;            /* BCD, 24 h, no interrupts */
    c->ram[RTC_REG_C] = 0;
    c->ram[RTC_REG_D] = REG_D_VRT;
    c->index = 0;
    c->off_sec = 0;
    c->off_nsec = 0;
    cmos_resync(c);
}

/* ---- guest access ---- */

uint8_t cmos_read_reg(struct cmos *c, uint8_t idx)
{
    idx &= CMOS_SIZE - 1;
    if (is_time_reg(idx) && live(c)) {
        int64_t s, f;
        uint8_t regs[CMOS_SIZE];
        guest_clock(c, &s, &f);
        render(c, s, regs);
        return regs[idx];
    }
    switch (idx) {
    case RTC_REG_A: {
        uint8_t v = c->ram[RTC_REG_A];
        if (live(c)) {
            int64_t s, f;
            guest_clock(c, &s, &f);
            if (f >= NS_PER_SEC - UIP_LEAD_NS)
                v |= REG_A_UIP;
        }
        return v;
    }
    case RTC_REG_C: {
        catch_up(c);
        uint8_t v = (uint8_t)(c->ram[RTC_REG_C] | (irqf(c) ? REG_C_IRQF : 0));
        c->ram[RTC_REG_C] = 0; /* reading C acknowledges everything */
        settle(c);
        return v;
    }
    default:
        return c->ram[idx];
    }
}

/* A time register written while the clock runs moves the clock. */
static void write_live_time(struct cmos *c, uint8_t idx, uint8_t val)
{
    int64_t s, f;
    uint8_t regs[CMOS_SIZE];
    guest_clock(c, &s, &f);
    render(c, s, regs);
    regs[idx] = val;
    set_clock(c, parse(c, regs), f);
}

/* Registers A and B: start/stop the clock and switch register modes. */
static void write_control(struct cmos *c, uint8_t idx, uint8_t val)
{
    int was_live = live(c), was_running = running(c);
    uint8_t a = c->ram[RTC_REG_A], b = c->ram[RTC_REG_B];
    int64_t s, f;

    if (idx == RTC_REG_A) {
        a = (uint8_t)(val & ~REG_A_UIP);
    } else {
        b = val;
        if (b & REG_B_SET)
            b &= (uint8_t)~REG_B_UIE; /* setting SET clears UIE */
    }
    int will_run = (a & REG_A_DV) == REG_A_DV_RUN;
    int will_live = will_run && !(b & REG_B_SET);
    if (was_live && !will_live) {
        /* The registers stop following the clock, frozen in the format
         * they were last updated in. */
        guest_clock(c, &s, &f);
        render(c, s, c->ram);
    }
    c->ram[RTC_REG_A] = a;
    c->ram[RTC_REG_B] = b;
    if (will_run && !was_running) {
        set_clock(c, parse(c, c->ram), DIVIDER_START_NS);
    } else if (will_live && !was_live) {
        /* SET released with the divider running: keep its phase. */
        guest_clock(c, &s, &f);
        set_clock(c, parse(c, c->ram), f);
    }
}

void cmos_write_reg(struct cmos *c, uint8_t idx, uint8_t val)
{
    idx &= CMOS_SIZE - 1;
    /* Account for what happened under the old settings first. */
    catch_up(c);
    if (idx == RTC_REG_A || idx == RTC_REG_B)
        write_control(c, idx, val);
    else if (idx == RTC_REG_C || idx == RTC_REG_D)
        return; /* read-only */
    else if (is_time_reg(idx) && live(c))
        write_live_time(c, idx, val);
    else
        c->ram[idx] = val;
    catch_up(c); /* restart bookkeeping if the clock moved */
    settle(c);
}
