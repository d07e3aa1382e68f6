/* virtio_template plugin, loaded with dlopen and driven through the fake host. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <nimbus/plugin_util.h>
#include <nimbus/virtio_util.h>

#include "fake_host.h"
#include "test_plugin_load.h"

#define RQ 0u
#define TIMER 0u
#define RAM (4u << 20)
#define SEED 0x0123456789abcdefull
#define CAP 65536u /* bytes per request */

struct fx {
    struct fake_host h;
    const nimbus_plugin *p;
    void *dev;
};

/* ---- the stream, recomputed from README.md's formula ---- */

static uint8_t ref_byte(uint64_t seed, uint64_t i)
{
    uint64_t k = i / 8;
    uint64_t z = seed + (k + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (uint8_t)(z >> (8 * (i % 8)));
}

/* Guest memory [gpa, gpa+len) holds stream bytes [pos, pos+len). */
static void assert_stream(struct fx *f, uint64_t seed, uint64_t gpa, uint64_t pos,
                          uint64_t len)
{
    for (uint64_t i = 0; i < len; i++)
        if (f->h.ram[gpa + i] != ref_byte(seed, pos + i))
            fail_msg("byte %llu of the buffer (stream byte %llu): got 0x%02x, want 0x%02x",
                     (unsigned long long)i, (unsigned long long)(pos + i), f->h.ram[gpa + i],
                     ref_byte(seed, pos + i));
}

/* ---- fixture ---- */

static int create(struct fx *f, const char *opts, char *err, size_t errlen)
{
    nimbus_region regs[NIMBUS_MAX_REGIONS];
    uint32_t n = NIMBUS_MAX_REGIONS;
    int r = fake_host_create(&f->h, f->p, opts, &f->dev, regs, &n, err, errlen);
    if (r == 0)
        assert_int_equal(n, 0);
    return r;
}

static void attach(struct fx *f, const char *opts)
{
    char err[256] = "";
    if (create(f, opts, err, sizeof(err)) != 0)
        fail_msg("create: %s", err);
    assert_int_equal(fake_host_virtio_attach(&f->h, f->p, f->dev, NULL), 0);
}

static void activate(struct fx *f)
{
    assert_int_equal(fake_host_virtio_activate(&f->h, f->p, f->dev,
                                               NIMBUS_BIT(NIMBUS_VIRTIO_F_VERSION_1), 0),
                     0);
}

/* Create, attach, activate, and let the activation timer run (nothing
 * queued yet), so each test starts from an idle, running device. */
static void start(struct fx *f, const char *opts)
{
    attach(f, opts);
    activate(f);
    assert_int_equal(fake_host_fire_next(&f->h, f->p, f->dev), 1);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(fake_host_init(&f->h, RAM), 0);
    f->h.abort_on_violation = 1;
    f->p = test_load_plugin("virtio_template.so");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->dev)
        f->p->ops->destroy(f->dev);
    assert_int_equal(fake_host_violation_count(&f->h), 0);
    fake_host_fini(&f->h);
    free(f);
    return 0;
}

static struct fake_vq_seg wbuf(struct fx *f, uint32_t len)
{
    uint64_t gpa = fake_host_buf(&f->h, len);
    assert_int_not_equal(gpa, 0);
    return (struct fake_vq_seg){gpa, len, 1};
}

static struct fake_vq_seg rbuf(struct fx *f, uint32_t len, uint8_t fill)
{
    uint64_t gpa = fake_host_buf(&f->h, len);
    assert_int_not_equal(gpa, 0);
    memset(f->h.ram + gpa, fill, len);
    return (struct fake_vq_seg){gpa, len, 0};
}

static int add(struct fx *f, const struct fake_vq_seg *segs, uint32_t n)
{
    int head = fake_host_vq_add(&f->h, RQ, segs, n);
    assert_true(head >= 0);
    return head;
}

static void kick(struct fx *f)
{
    assert_int_equal(fake_host_vq_kick(&f->h, f->p, f->dev, RQ), 0);
}

static void assert_used(struct fx *f, int head, uint32_t len)
{
    uint32_t id = 0, l = 0;
    assert_int_equal(fake_host_vq_used(&f->h, RQ, &id, &l), 1);
    assert_int_equal(id, (uint32_t)head);
    assert_int_equal(l, len);
}

static void assert_no_used(struct fx *f)
{
    assert_int_equal(fake_host_vq_used(&f->h, RQ, NULL, NULL), 0);
}

/* One request of `len` writable bytes: checked against the stream at pos. */
static void request_and_check(struct fx *f, uint64_t seed, uint32_t len, uint64_t pos)
{
    struct fake_vq_seg s = wbuf(f, len);
    int head = add(f, &s, 1);
    kick(f);
    assert_used(f, head, len);
    assert_stream(f, seed, s.gpa, pos, len);
}

static uint64_t save(struct fx *f, uint8_t *buf, uint64_t cap)
{
    uint64_t len = 0;
    assert_int_equal(f->p->ops->state_save(f->dev, buf, cap, &len), 0);
    return len;
}

static uint64_t counter(struct fx *f, const char *name)
{
    struct fake_host_counters c;
    uint64_t v = 0;
    assert_int_equal(fake_host_counters(&f->h, f->p, f->dev, &c), 0);
    assert_int_equal(c.total, 2);
    assert_true(fake_host_counter(&c, name, &v));
    return v;
}

/* ---- tests ---- */

/* The reference implementation above against splitmix64's published
 * outputs for seed 0, so the test and the device cannot share a mistake. */
static void test_reference_known_answer(void **state)
{
    (void)state;
    static const uint64_t want[3] = {0xe220a8397b1dcdafull, 0x6e789e6aa1b965f4ull,
                                     0x06c45d188009454full};
    for (unsigned k = 0; k < 3; k++)
        for (unsigned b = 0; b < 8; b++)
            assert_int_equal(ref_byte(0, 8 * k + b), (uint8_t)(want[k] >> (8 * b)));
}

static void test_descriptor_and_info(void **state)
{
    struct fx *f = *state;
    assert_string_equal(f->p->name, "virtio_template");
    assert_string_equal(f->p->version, "1.0");
    assert_string_equal(f->p->options, "seed=<u64>");
    assert_int_equal(f->p->abi_minor, NIMBUS_ABI_MINOR);
    attach(f, "");
    nimbus_virtio_info info;
    assert_int_equal(f->p->ops->virtio_info(f->dev, &info), 0);
    assert_int_equal(info.device_id, NIMBUS_VIRTIO_ID_RNG);
    assert_int_equal(info.num_queues, 1);
    assert_int_equal(info.queue_size_max, 64);
    assert_int_equal(info.device_features, 0);
    assert_int_equal(info.config_size, 0);
    assert_int_equal(info.num_groups, 0);
}

static void test_bad_options(void **state)
{
    struct fx *f = *state;
    static const struct {
        const char *opts, *named;
    } bad[] = {
        {"seed=abc", "'abc'"},
        {"seed=", "''"},
        {"seed=-1", "'-1'"},
        {"seed=0x", "'0x'"},
        {"seed=18446744073709551616", "'18446744073709551616'"}, /* 2^64 */
        {"seed=0x1ffffffffffffffff", "'0x1ffffffffffffffff'"},
        {"rate=10", "'rate'"},
        {"seed=1,colour=red", "'colour'"},
        {"seed", "'seed'"},
        {"seed=1,seed=2", "'seed'"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256] = "";
        f->dev = NULL;
        assert_int_equal(create(f, bad[i].opts, err, sizeof(err)), -EINVAL);
        if (!strstr(err, bad[i].named))
            fail_msg("options '%s': message '%s' does not name %s", bad[i].opts, err,
                     bad[i].named);
    }
    f->dev = NULL;
}

static void test_good_options(void **state)
{
    struct fx *f = *state;
    /* Decimal and hex spell the same seed; the largest u64 is accepted. */
    static const struct {
        const char *opts;
        uint64_t seed;
    } good[] = {
        {"", 0},
        {"seed=81985529216486895", SEED},
        {"seed=0x0123456789ABCDEF", SEED},
        {"seed=18446744073709551615", UINT64_MAX},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        start(f, good[i].opts);
        request_and_check(f, good[i].seed, 24, 0);
        /* A fresh host for the next device: one transport per host. */
        f->p->ops->destroy(f->dev);
        f->dev = NULL;
        assert_int_equal(fake_host_violation_count(&f->h), 0);
        fake_host_fini(&f->h);
        assert_int_equal(fake_host_init(&f->h, RAM), 0);
        f->h.abort_on_violation = 1;
    }
}

/* Guest bytes are the stream; consecutive requests continue it, across
 * word boundaries and odd sizes. */
static void test_stream_continues(void **state)
{
    struct fx *f = *state;
    start(f, "seed=0x0123456789abcdef");
    uint64_t pos = 0;
    static const uint32_t sizes[] = {1, 7, 8, 13, 64, 3, 100, 4096};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        request_and_check(f, SEED, sizes[i], pos);
        pos += sizes[i];
    }
    assert_int_equal(f->h.virtio.interrupts[RQ], sizeof(sizes) / sizeof(sizes[0]));
}

/* Writable buffers of a chain get consecutive stream bytes in order;
 * readable ones are neither written nor consume stream bytes. */
static void test_multi_buffer_chain(void **state)
{
    struct fx *f = *state;
    start(f, "seed=0x0123456789abcdef");
    struct fake_vq_seg chain[4] = {rbuf(f, 16, 0xee), wbuf(f, 5), wbuf(f, 11), wbuf(f, 20)};
    int h1 = add(f, chain, 4);
    /* Indirect chains reach the device as the same buffer list. */
    struct fake_vq_seg ind[2] = {wbuf(f, 9), wbuf(f, 3)};
    int h2 = fake_host_vq_add_indirect(&f->h, RQ, ind, 2);
    assert_true(h2 >= 0);
    kick(f);
    assert_used(f, h1, 36);
    assert_used(f, h2, 12);
    for (unsigned i = 0; i < 16; i++)
        assert_int_equal(f->h.ram[chain[0].gpa + i], 0xee);
    assert_stream(f, SEED, chain[1].gpa, 0, 5);
    assert_stream(f, SEED, chain[2].gpa, 5, 11);
    assert_stream(f, SEED, chain[3].gpa, 16, 20);
    assert_stream(f, SEED, ind[0].gpa, 36, 9);
    assert_stream(f, SEED, ind[1].gpa, 45, 3);
}

static void test_no_writable_buffer(void **state)
{
    struct fx *f = *state;
    start(f, "seed=0x0123456789abcdef");
    struct fake_vq_seg ro = rbuf(f, 32, 0x5a);
    int h1 = add(f, &ro, 1);
    kick(f);
    assert_used(f, h1, 0);
    for (unsigned i = 0; i < 32; i++)
        assert_int_equal(f->h.ram[ro.gpa + i], 0x5a);
    request_and_check(f, SEED, 16, 0); /* nothing was consumed */
}

/* A request gets at most 64 KiB, spread over its buffers; the stream goes
 * on from there. */
static void test_request_cap(void **state)
{
    struct fx *f = *state;
    start(f, "seed=0x0123456789abcdef");
    struct fake_vq_seg two[2] = {wbuf(f, 60000), wbuf(f, 60000)};
    memset(f->h.ram + two[1].gpa, 0xcc, 60000);
    int h = add(f, two, 2);
    kick(f);
    assert_used(f, h, CAP);
    assert_stream(f, SEED, two[0].gpa, 0, 60000);
    assert_stream(f, SEED, two[1].gpa, 60000, CAP - 60000);
    assert_int_equal(f->h.ram[two[1].gpa + (CAP - 60000)], 0xcc); /* untouched beyond */
    request_and_check(f, SEED, 10, CAP);
}

/* Activation (a vCPU thread) only arms the timer; the queue is served
 * when the timer fires on the event loop. */
static void test_activate_defers_work(void **state)
{
    struct fx *f = *state;
    attach(f, "seed=0x0123456789abcdef");
    activate(f);
    assert_int_equal(f->h.virtio.pops, 0); /* no queue access from activate */
    uint64_t deadline = f->h.timer_deadline[TIMER];
    assert_int_not_equal(deadline, 0);
    assert_true(deadline <= f->h.now_ns + 1); /* "now": no delay */

    /* Queued without a kick, as a driver may before DRIVER_OK. */
    struct fake_vq_seg s = wbuf(f, 32);
    int h = add(f, &s, 1);
    assert_no_used(f);
    assert_int_equal(f->h.virtio.pops, 0);
    assert_int_equal(fake_host_fire_next(&f->h, f->p, f->dev), 1);
    assert_used(f, h, 32);
    assert_stream(f, SEED, s.gpa, 0, 32);
    assert_int_equal(f->h.virtio.interrupts[RQ], 1);
    /* The kick path serves at once and leaves no timer behind. */
    assert_int_equal(f->h.timer_deadline[TIMER], 0);
    request_and_check(f, SEED, 8, 32);
    assert_int_equal(f->h.timer_deadline[TIMER], 0);

    /* A chain already queued when activate runs (the fake transport cannot
     * start queues without activating, so reset and activate the device
     * alone, its rings staying live): still untouched until the timer. */
    struct fake_vq_seg s2 = wbuf(f, 16);
    int h2 = add(f, &s2, 1);
    f->p->ops->reset(f->dev);
    uint64_t pops = f->h.virtio.pops;
    assert_int_equal(f->p->ops->virtio_activate(f->dev, f->h.virtio.features), 0);
    assert_int_equal(f->h.virtio.pops, pops);
    assert_no_used(f);
    assert_int_equal(fake_host_fire_next(&f->h, f->p, f->dev), 1);
    assert_used(f, h2, 16);
    assert_stream(f, SEED, s2.gpa, 0, 16); /* the reset restarted the stream */
}

/* Queue 20 requests of 64 KiB, the last one kicked; return how many were
 * completed at once, checking each against the stream. */
static int flood(struct fx *f, struct fake_vq_seg *segs, int *heads, int n)
{
    for (int i = 0; i < n; i++) {
        segs[i] = wbuf(f, CAP);
        heads[i] = add(f, &segs[i], 1);
    }
    kick(f);
    int done = 0;
    uint32_t id, len;
    while (fake_host_vq_used(&f->h, RQ, &id, &len) == 1) {
        assert_int_equal(id, (uint32_t)heads[done]);
        assert_int_equal(len, CAP);
        assert_stream(f, SEED, segs[done].gpa, (uint64_t)done * CAP, CAP);
        done++;
    }
    return done;
}

/* One turn serves 1 MiB, then yields through the timer (without moving
 * the clock: a yield is not a delay), and the next turn goes on. */
static void test_budget_yields(void **state)
{
    struct fx *f = *state;
    start(f, "seed=0x0123456789abcdef");
    struct fake_vq_seg segs[20];
    int heads[20];
    assert_int_equal(flood(f, segs, heads, 20), 16);
    assert_int_equal(f->h.virtio.interrupts[RQ], 1);
    assert_int_not_equal(f->h.timer_deadline[TIMER], 0);
    uint64_t now = f->h.now_ns;
    assert_int_equal(fake_host_fire_next(&f->h, f->p, f->dev), 1);
    assert_true(f->h.now_ns <= now + 1);
    for (int i = 16; i < 20; i++) {
        assert_used(f, heads[i], CAP);
        assert_stream(f, SEED, segs[i].gpa, (uint64_t)i * CAP, CAP);
    }
    assert_int_equal(f->h.virtio.interrupts[RQ], 2);
    assert_int_equal(f->h.timer_deadline[TIMER], 0); /* drained: no more turns */
}

/* Reset returns to exactly the post-create state: same state blob, timer
 * cancelled, inactive; the next activation restarts the stream. */
static void test_reset(void **state)
{
    struct fx *f = *state;
    uint8_t fresh[64], now[64];
    attach(f, "seed=0x0123456789abcdef");
    uint64_t flen = save(f, fresh, sizeof(fresh));
    activate(f);
    assert_int_equal(fake_host_fire_next(&f->h, f->p, f->dev), 1);
    struct fake_vq_seg segs[20];
    int heads[20];
    assert_int_equal(flood(f, segs, heads, 20), 16); /* leaves the yield timer armed */
    assert_int_not_equal(f->h.timer_deadline[TIMER], 0);

    fake_host_virtio_reset(&f->h, f->p, f->dev);
    assert_int_equal(f->h.timer_deadline[TIMER], 0);
    assert_int_equal(save(f, now, sizeof(now)), flen);
    assert_memory_equal(now, fresh, flen);
    /* A timer event already on its way is ignored (the fake host would
     * abort on a push to the stopped queue). */
    f->p->ops->timer_fired(f->dev, TIMER);
    f->p->ops->virtio_queue_notify(f->dev, RQ);

    activate(f);
    assert_int_equal(fake_host_fire_next(&f->h, f->p, f->dev), 1);
    request_and_check(f, SEED, 100, 0);
}

static void test_save_sizes(void **state)
{
    struct fx *f = *state;
    attach(f, "");
    uint64_t need = 0;
    assert_int_equal(f->p->ops->state_save(f->dev, NULL, 0, &need), 0);
    assert_int_equal(need, 32);
    uint8_t small[31];
    uint64_t len = 0;
    assert_int_equal(f->p->ops->state_save(f->dev, small, sizeof(small), &len), -ENOSPC);
    assert_int_equal(len, 32);
}

/* A blob taken mid-stream continues the stream in the same device (after
 * it moved on) and in a new one with the same seed. */
static void test_save_restore_continues(void **state)
{
    struct fx *f = *state;
    uint8_t blob[32];
    start(f, "seed=0x0123456789abcdef");
    request_and_check(f, SEED, 10, 0);
    assert_int_equal(save(f, blob, sizeof(blob)), 32);
    request_and_check(f, SEED, 20, 10);

    assert_int_equal(f->p->ops->state_restore(f->dev, blob, sizeof(blob)), 0);
    request_and_check(f, SEED, 20, 10);

    /* Migration: a second device on a second host gets the blob. */
    struct fx *g = calloc(1, sizeof(*g));
    assert_non_null(g);
    assert_int_equal(fake_host_init(&g->h, RAM), 0);
    g->h.abort_on_violation = 1;
    g->p = f->p;
    start(g, "seed=81985529216486895");
    assert_int_equal(g->h.timer_deadline[TIMER], 0);
    assert_int_equal(g->p->ops->state_restore(g->dev, blob, sizeof(blob)), 0);
    /* Restored active: the timer is re-armed and serves what is queued. */
    assert_int_not_equal(g->h.timer_deadline[TIMER], 0);
    struct fake_vq_seg s = wbuf(g, 40);
    int h = add(g, &s, 1);
    assert_int_equal(fake_host_fire_next(&g->h, g->p, g->dev), 1);
    assert_used(g, h, 40);
    assert_stream(g, SEED, s.gpa, 10, 40);
    uint8_t again[32];
    assert_int_equal(save(g, again, sizeof(again)), 32);
    assert_int_equal(nimbus_le_load(again + 16, 8), 50);
    void *gs = g;
    teardown(&gs);
}

/* Every damaged blob is refused and leaves the device as it was. */
static void test_restore_refuses(void **state)
{
    struct fx *f = *state;
    uint8_t good[32], before[32], after[32], bad[40];
    start(f, "seed=0x0123456789abcdef");
    request_and_check(f, SEED, 10, 0);
    save(f, good, sizeof(good));
    request_and_check(f, SEED, 5, 10);
    save(f, before, sizeof(before));

    /* Truncated and extended. */
    assert_int_equal(f->p->ops->state_restore(f->dev, good, 31), -EINVAL);
    memcpy(bad, good, 32);
    memset(bad + 32, 0, 8);
    assert_int_equal(f->p->ops->state_restore(f->dev, bad, 33), -EINVAL);
    assert_int_equal(f->p->ops->state_restore(f->dev, good, 0), -EINVAL);
    /* Any byte of the header, the active flag, the reserved word. */
    static const struct {
        unsigned off;
        uint8_t val;
    } flips[] = {
        {0, 'X'}, {3, 0}, {4, 2}, {5, 1}, {6, 31}, {7, 1}, {24, 2}, {27, 0x80}, {28, 1}, {31, 1},
    };
    for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
        memcpy(bad, good, 32);
        bad[flips[i].off] = flips[i].val;
        if (f->p->ops->state_restore(f->dev, bad, 32) != -EINVAL)
            fail_msg("blob with byte %u = 0x%02x accepted", flips[i].off, flips[i].val);
    }
    /* Another seed's state. */
    memcpy(bad, good, 32);
    bad[8] ^= 1;
    uint64_t logs = f->h.log_lines;
    assert_int_equal(f->p->ops->state_restore(f->dev, bad, 32), -EINVAL);
    assert_int_equal(f->h.log_lines, logs + 1);
    assert_non_null(strstr(f->h.last_log, "seed"));

    save(f, after, sizeof(after));
    assert_memory_equal(after, before, 32);
    request_and_check(f, SEED, 5, 15);
}

/* Restoring an inactive state stops the device until the next activation. */
static void test_restore_inactive(void **state)
{
    struct fx *f = *state;
    uint8_t fresh[32];
    attach(f, "");
    save(f, fresh, sizeof(fresh));
    activate(f); /* arms the activation timer */
    assert_int_equal(f->p->ops->state_restore(f->dev, fresh, sizeof(fresh)), 0);
    assert_int_equal(f->h.timer_deadline[TIMER], 0);
    struct fake_vq_seg s = wbuf(f, 8);
    add(f, &s, 1);
    kick(f);
    assert_no_used(f);
}

/* "bytes" and "requests" count what was completed, and survive reset. */
static void test_counters(void **state)
{
    struct fx *f = *state;
    start(f, "");
    assert_int_equal(counter(f, "bytes"), 0);
    assert_int_equal(counter(f, "requests"), 0);
    request_and_check(f, 0, 100, 0);
    request_and_check(f, 0, 28, 100);
    struct fake_vq_seg ro = rbuf(f, 8, 0);
    int h = add(f, &ro, 1);
    kick(f);
    assert_used(f, h, 0);
    assert_int_equal(counter(f, "bytes"), 128);
    assert_int_equal(counter(f, "requests"), 3);
    fake_host_virtio_reset(&f->h, f->p, f->dev);
    assert_int_equal(counter(f, "bytes"), 128);
    assert_int_equal(counter(f, "requests"), 3);
}

/* A chain longer than the device takes is returned empty by the host; the
 * device still interrupts, warns once and the stream does not move. */
static void test_long_chain(void **state)
{
    struct fx *f = *state;
    start(f, "seed=0x0123456789abcdef");
    struct fake_vq_seg segs[17];
    for (unsigned i = 0; i < 17; i++)
        segs[i] = wbuf(f, 4);
    uint64_t logs = f->h.log_lines;
    int h1 = add(f, segs, 17);
    int h2 = add(f, segs, 17);
    kick(f);
    assert_used(f, h1, 0);
    assert_used(f, h2, 0);
    assert_int_equal(f->h.virtio.interrupts[RQ], 1);
    assert_int_equal(f->h.log_lines, logs + 1);
    assert_int_equal(counter(f, "requests"), 0);
    request_and_check(f, SEED, 16, 0);
}

static void test_malformed_chain(void **state)
{
    struct fx *f = *state;
    start(f, "");
    struct fake_vq_seg bad = {RAM - 4, 64, 1};
    add(f, &bad, 1);
    kick(f);
    assert_true(f->h.virtio.device_needs_reset);
    assert_no_used(f);
}

/* A host older than the virtqueue services, or one missing the timer, is
 * refused at create with a message. */
static void test_host_too_old(void **state)
{
    struct fx *f = *state;
    nimbus_host_api old = f->h.api;
    nimbus_region regs[1];
    uint32_t n = 1;
    char err[256] = "";
    void *dev = NULL;
    old.struct_size = (uint32_t)offsetof(nimbus_host_api, vq_pop);
    assert_int_equal(f->p->ops->create(&old, &f->h, "", &dev, regs, &n, err, sizeof(err)),
                     -ENOTSUP);
    assert_null(dev);
    assert_non_null(strstr(err, "virtio_template"));
    old = f->h.api;
    old.timer_arm = NULL;
    err[0] = '\0';
    assert_int_equal(f->p->ops->create(&old, &f->h, "", &dev, regs, &n, err, sizeof(err)),
                     -ENOTSUP);
    assert_null(dev);
    assert_true(err[0] != '\0');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_known_answer),
        cmocka_unit_test_setup_teardown(test_descriptor_and_info, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_good_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_continues, setup, teardown),
        cmocka_unit_test_setup_teardown(test_multi_buffer_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_writable_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_activate_defers_work, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budget_yields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_restore_continues, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_inactive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_too_old, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
