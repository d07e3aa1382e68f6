/* virtio_console plugin, loaded with dlopen and driven through the fake host
 * (which plays both the virtio-pci transport and the guest driver). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <nimbus/virtio_util.h>

#include "fake_host.h"
#include "test_plugin_load.h"

/* virtio 1.2, 5.3: queue numbers of a console without MULTIPORT. */
#define RXQ 0u
#define TXQ 1u
#define RAM (4u << 20)
#define MS 1000000ull

struct fx {
    struct fake_host h;
    const nimbus_plugin *p;
    void *dev;
};

static int create(struct fx *f, const char *opts, char *err, size_t errlen)
{
    nimbus_region regs[NIMBUS_MAX_REGIONS];
    uint32_t n = NIMBUS_MAX_REGIONS;
    int r = fake_host_create(&f->h, f->p, opts, &f->dev, regs, &n, err, errlen);
    if (r == 0)
        assert_int_equal(n, 0); /* the transport owns the BARs */
    return r;
}

/* Created and attached, not yet activated. */
static struct fx *fx_new_idle(void)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(fake_host_init(&f->h, RAM), 0);
    f->h.abort_on_violation = 1;
    f->p = test_load_plugin("virtio_console.so");
    char err[256] = "";
    assert_int_equal(create(f, "", err, sizeof(err)), 0);
    assert_int_equal(fake_host_virtio_attach(&f->h, f->p, f->dev, NULL), 0);
    return f;
}

static void activate(struct fx *f)
{
    assert_int_equal(fake_host_virtio_activate(&f->h, f->p, f->dev,
                                               NIMBUS_BIT(NIMBUS_VIRTIO_F_VERSION_1), 0),
                     0);
    /* The event loop's first turn after DRIVER_OK (activation's timer). */
    fake_host_fire_next(&f->h, f->p, f->dev);
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
    struct fx *f = fx_new_idle();
    activate(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_free(*state);
    return 0;
}

/* A guest buffer holding `s` (device-readable) or `len` zero bytes. */
static struct fake_vq_seg out_seg(struct fx *f, const void *s, uint32_t len)
{
    uint64_t gpa = fake_host_buf(&f->h, len);
    assert_int_not_equal(gpa, 0);
    memcpy(f->h.ram + gpa, s, len);
    return (struct fake_vq_seg){gpa, len, 0};
}

static struct fake_vq_seg in_seg(struct fx *f, uint32_t len)
{
    uint64_t gpa = fake_host_buf(&f->h, len);
    assert_int_not_equal(gpa, 0);
    return (struct fake_vq_seg){gpa, len, 1};
}

static int send(struct fx *f, const char *s)
{
    struct fake_vq_seg seg = out_seg(f, s, (uint32_t)strlen(s));
    int head = fake_host_vq_add(&f->h, TXQ, &seg, 1);
    assert_true(head >= 0);
    return head;
}

static int add_rx(struct fx *f, struct fake_vq_seg *seg, uint32_t len)
{
    *seg = in_seg(f, len);
    int head = fake_host_vq_add(&f->h, RXQ, seg, 1);
    assert_true(head >= 0);
    return head;
}

static uint64_t input(struct fx *f, const char *s, size_t n)
{
    return f->p->ops->chr_input(f->dev, s, n);
}

static void assert_out(struct fx *f, const char *want)
{
    size_t n = strlen(want);
    assert_int_equal(f->h.chr_out_len, n);
    assert_memory_equal(f->h.chr_out, want, n);
}

static void assert_used(struct fx *f, uint32_t q, int head, uint32_t len)
{
    uint32_t id = 0, l = 0;
    assert_int_equal(fake_host_vq_used(&f->h, q, &id, &l), 1);
    assert_int_equal(id, (uint32_t)head);
    assert_int_equal(l, len);
}

static void assert_no_used(struct fx *f, uint32_t q)
{
    assert_int_equal(fake_host_vq_used(&f->h, q, NULL, NULL), 0);
}

/* ---- description and options ---- */

static void test_info_and_config(void **state)
{
    (void)state;
    struct fx *f = fx_new_idle();
    nimbus_virtio_info info;
    memset(&info, 0xa5, sizeof(info));
    assert_int_equal(f->p->ops->virtio_info(f->dev, &info), 0);
    assert_int_equal(info.struct_size, sizeof(info));
    assert_int_equal(info.device_id, 3);
    assert_int_equal(info.num_queues, 2);
    assert_int_equal(info.device_features, 0); /* no SIZE, no MULTIPORT */
    assert_true(info.queue_size_max >= 64);
    assert_int_equal(info.pci_class, 0x078000);
    /* Config space reads as zeros, whole and in parts. */
    uint8_t b[8];
    memset(b, 0xff, sizeof(b));
    assert_int_equal(fake_host_virtio_config_read(&f->h, f->p, f->dev, 0, b, 8), 0);
    for (unsigned i = 0; i < 8; i++)
        assert_int_equal(b[i], 0);
    assert_int_equal(fake_host_virtio_config_read(&f->h, f->p, f->dev, 8, b, 4), 0);
    /* The plugin checks ranges itself, whatever the transport does. */
    assert_int_equal(f->p->ops->virtio_config_read(f->dev, info.config_size, b, 1), -EINVAL);
    assert_int_equal(f->p->ops->virtio_config_read(f->dev, UINT64_MAX, b, 4), -EINVAL);
    assert_int_equal(f->p->ops->virtio_config_write(f->dev, 1000, b, 4), -EINVAL);
    fx_free(f);
}

static void test_options(void **state)
{
    (void)state;
    struct fx f;
    char err[256];
    assert_int_equal(fake_host_init(&f.h, 0), 0);
    f.p = test_load_plugin("virtio_console.so");
    err[0] = '\0';
    assert_int_equal(create(&f, "speed=9600", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "'speed'"));
    err[0] = '\0';
    assert_int_equal(create(&f, "bogus", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "'bogus'"));
    /* Empty tokens are tolerated, like every other plugin's options. */
    assert_int_equal(create(&f, ",", err, sizeof(err)), 0);
    f.p->ops->destroy(f.dev);
    fake_host_fini(&f.h);
}

/* ---- transmit ---- */

static void test_tx_gathers_chain(void **state)
{
    struct fx *f = *state;
    struct fake_vq_seg segs[3] = {out_seg(f, "hello ", 6), {0, 0, 0},
                                  out_seg(f, "world\n", 6)};
    segs[1].gpa = segs[0].gpa; /* a zero-length buffer in the middle */
    int head = fake_host_vq_add(&f->h, TXQ, segs, 3);
    assert_true(head >= 0);
    assert_int_equal(fake_host_vq_kick(&f->h, f->p, f->dev, TXQ), 0);
    assert_out(f, "hello world\n");
    assert_used(f, TXQ, head, 0); /* nothing written into a transmit chain */
    assert_int_equal(f->h.virtio.interrupts[TXQ], 1);
    assert_int_equal(f->h.timer_deadline[0], 0);
}

/* Regression (issue 19): activation runs on the vCPU that set DRIVER_OK;
 * output queued before it is written from the event loop, not there. */
static void test_activation_defers_tx_to_the_loop(void **state)
{
    struct fx *f = *state;
    /* A chain queued when activate runs (the fake transport only starts
     * queues by activating: reset and activate the device alone, its rings
     * staying live). */
    int head = send(f, "early\n");
    f->p->ops->reset(f->dev);
    assert_int_equal(f->p->ops->virtio_activate(f->dev, f->h.virtio.features), 0);
    assert_int_equal(f->h.chr_out_len, 0); /* nothing written on the vCPU */
    assert_int_not_equal(f->h.timer_deadline[0], 0);
    assert_int_equal(fake_host_fire_next(&f->h, f->p, f->dev), 1);
    assert_out(f, "early\n");
    assert_used(f, TXQ, head, 0);
}

static void test_tx_many_chains_in_order(void **state)
{
    struct fx *f = *state;
    int h1 = send(f, "one ");
    int h2 = send(f, "two ");
    struct fake_vq_seg ind[2] = {out_seg(f, "thr", 3), out_seg(f, "ee", 2)};
    int h3 = fake_host_vq_add_indirect(&f->h, TXQ, ind, 2);
    assert_true(h3 >= 0);
    assert_int_equal(fake_host_vq_kick(&f->h, f->p, f->dev, TXQ), 0);
    assert_out(f, "one two three");
    assert_used(f, TXQ, h1, 0);
    assert_used(f, TXQ, h2, 0);
    assert_used(f, TXQ, h3, 0);
    /* One interrupt for the batch. */
    assert_int_equal(f->h.virtio.notify_calls[TXQ], 1);
}

/* Device-writable buffers carry no output on a transmitq. */
static void test_tx_skips_writable_buffers(void **state)
{
    struct fx *f = *state;
    struct fake_vq_seg segs[2] = {out_seg(f, "abc", 3), in_seg(f, 16)};
    memset(f->h.ram + segs[1].gpa, 'X', 16);
    int head = fake_host_vq_add(&f->h, TXQ, segs, 2);
    fake_host_vq_kick(&f->h, f->p, f->dev, TXQ);
    assert_out(f, "abc");
    assert_used(f, TXQ, head, 0);
}

static void test_tx_short_writes_are_resumed(void **state)
{
    struct fx *f = *state;
    f->h.chr_accept_max = 3;
    int head = send(f, "0123456789");
    fake_host_vq_kick(&f->h, f->p, f->dev, TXQ);
    assert_out(f, "0123456789");
    assert_int_equal(f->h.chr_write_calls, 4);
    assert_used(f, TXQ, head, 0);
}

/* A full backend: the chain is kept, retried from the timer, nothing lost,
 * nothing reordered, and the guest gets it back only once written. */
static void test_tx_backpressure(void **state)
{
    struct fx *f = *state;
    f->h.chr_stall = 1;
    int h1 = send(f, "first ");
    fake_host_vq_kick(&f->h, f->p, f->dev, TXQ);
    assert_int_equal(f->h.chr_out_len, 0);
    assert_no_used(f, TXQ);
    assert_int_not_equal(f->h.timer_deadline[0], 0);

    int h2 = send(f, "second");
    fake_host_vq_kick(&f->h, f->p, f->dev, TXQ);
    fake_host_advance(&f->h, f->p, f->dev, 200 * MS);
    assert_int_equal(f->h.chr_out_len, 0);
    assert_no_used(f, TXQ);
    /* Still retrying, but backing off: a stalled backend is not polled at
     * the 1 ms rate forever. */
    uint64_t calls = f->h.chr_write_calls;
    fake_host_advance(&f->h, f->p, f->dev, 100 * MS);
    assert_true(f->h.chr_write_calls - calls <= 5);
    assert_int_not_equal(f->h.timer_deadline[0], 0);

    f->h.chr_stall = 0;
    f->h.chr_accept_max = 4;
    fake_host_advance(&f->h, f->p, f->dev, 100 * MS);
    assert_out(f, "first second");
    assert_used(f, TXQ, h1, 0);
    assert_used(f, TXQ, h2, 0);
    assert_int_equal(f->h.timer_deadline[0], 0);
}

/* More than one event-loop turn's worth: the device yields part way through
 * a chain and resumes at the right offset, including across a stall. */
static void test_tx_large_chain_yields_and_resumes(void **state)
{
    struct fx *f = *state;
    const uint32_t len = 3u << 19; /* 1.5 MiB */
    uint64_t gpa = fake_host_buf(&f->h, len);
    assert_int_not_equal(gpa, 0);
    for (uint32_t i = 0; i < len; i++)
        f->h.ram[gpa + i] = (uint8_t)(i % 251);
    struct fake_vq_seg seg = {gpa, len, 0};
    int head = fake_host_vq_add(&f->h, TXQ, &seg, 1);
    fake_host_vq_kick(&f->h, f->p, f->dev, TXQ);
    assert_true(f->h.chr_out_total > 0 && f->h.chr_out_total < len);
    assert_no_used(f, TXQ);
    f->h.chr_stall = 1;
    fake_host_advance(&f->h, f->p, f->dev, 10 * MS);
    uint64_t so_far = f->h.chr_out_total;
    assert_true(so_far < len);
    f->h.chr_stall = 0;
    for (int i = 0; i < 10 && f->h.chr_out_total < len; i++)
        fake_host_advance(&f->h, f->p, f->dev, 40 * MS);
    assert_int_equal(f->h.chr_out_total, len);
    assert_used(f, TXQ, head, 0);
    for (uint32_t i = 0; i < FAKE_HOST_CHR_OUT; i++)
        assert_int_equal(f->h.chr_out[i], (uint8_t)(i % 251));
}

/* No backend at all: output is discarded, the guest is not held up. */
static void test_tx_without_backend(void **state)
{
    struct fx *f = *state;
    f->h.chr_absent = 1;
    int head = send(f, "into the void");
    fake_host_vq_kick(&f->h, f->p, f->dev, TXQ);
    assert_used(f, TXQ, head, 0);
    assert_int_equal(f->h.timer_deadline[0], 0);
    assert_true(f->h.log_lines >= 1);
}

/* ---- receive ---- */

static void test_rx_round_trip(void **state)
{
    struct fx *f = *state;
    struct fake_vq_seg seg;
    int head = add_rx(f, &seg, 64);
    fake_host_vq_kick(&f->h, f->p, f->dev, RXQ);
    assert_int_equal(input(f, "ls -l\r", 6), 6);
    assert_used(f, RXQ, head, 6);
    assert_memory_equal(f->h.ram + seg.gpa, "ls -l\r", 6);
    assert_int_equal(f->h.virtio.interrupts[RXQ], 1);

    /* Control characters are bytes like any other: ^C, ^D, ESC sequences. */
    head = add_rx(f, &seg, 64);
    assert_int_equal(input(f, "\x03\x04\x1b[A", 5), 5);
    assert_used(f, RXQ, head, 5);
    assert_memory_equal(f->h.ram + seg.gpa, "\x03\x04\x1b[A", 5);
}

static void test_rx_spreads_over_chains(void **state)
{
    struct fx *f = *state;
    struct fake_vq_seg s1, s2, s3;
    int h1 = add_rx(f, &s1, 16);
    int h2 = add_rx(f, &s2, 16);
    /* A two-buffer chain is filled across both buffers. */
    struct fake_vq_seg two[2] = {in_seg(f, 4), in_seg(f, 4)};
    int h3 = fake_host_vq_add(&f->h, RXQ, two, 2);
    (void)s3;
    char data[40];
    for (unsigned i = 0; i < sizeof(data); i++)
        data[i] = (char)('a' + i % 26);
    assert_int_equal(input(f, data, sizeof(data)), 40);
    assert_used(f, RXQ, h1, 16);
    assert_used(f, RXQ, h2, 16);
    assert_used(f, RXQ, h3, 8);
    assert_memory_equal(f->h.ram + s1.gpa, data, 16);
    assert_memory_equal(f->h.ram + s2.gpa, data + 16, 16);
    assert_memory_equal(f->h.ram + two[0].gpa, data + 32, 4);
    assert_memory_equal(f->h.ram + two[1].gpa, data + 36, 4);
}

/* No receive buffer: nothing is taken (the backend keeps the bytes), and
 * chr_input_ready comes once the driver adds buffers. */
static void test_rx_waits_for_buffers(void **state)
{
    struct fx *f = *state;
    assert_int_equal(input(f, "abc", 3), 0);
    assert_int_equal(f->h.chr_input_ready_calls, 0);
    /* A kick with no buffer shortage pending calls nothing. */
    fake_host_vq_kick(&f->h, f->p, f->dev, TXQ);
    assert_int_equal(f->h.chr_input_ready_calls, 0);

    struct fake_vq_seg seg;
    int head = add_rx(f, &seg, 2);
    fake_host_vq_kick(&f->h, f->p, f->dev, RXQ);
    assert_int_equal(f->h.chr_input_ready_calls, 1);
    /* The backend retries: the buffer holds 2 of the 3 bytes. */
    assert_int_equal(input(f, "abc", 3), 2);
    assert_used(f, RXQ, head, 2);
    assert_memory_equal(f->h.ram + seg.gpa, "ab", 2);
    head = add_rx(f, &seg, 8);
    fake_host_vq_kick(&f->h, f->p, f->dev, RXQ);
    assert_int_equal(f->h.chr_input_ready_calls, 2);
    assert_int_equal(input(f, "c", 1), 1);
    assert_used(f, RXQ, head, 1);
    /* Further kicks without a shortage do not call it again. */
    add_rx(f, &seg, 8);
    fake_host_vq_kick(&f->h, f->p, f->dev, RXQ);
    assert_int_equal(f->h.chr_input_ready_calls, 2);
}

/* Typed before the driver was up: kept by the backend, asked for at DRIVER_OK. */
static void test_rx_before_driver_ok(void **state)
{
    (void)state;
    struct fx *f = fx_new_idle();
    assert_int_equal(input(f, "early", 5), 0);
    activate(f);
    assert_int_equal(f->h.chr_input_ready_calls, 1);
    struct fake_vq_seg seg;
    int head = add_rx(f, &seg, 16);
    fake_host_vq_kick(&f->h, f->p, f->dev, RXQ);
    assert_int_equal(input(f, "early", 5), 5);
    assert_used(f, RXQ, head, 5);
    fx_free(f);
}

/* ---- hostile chains ---- */

/* A receive chain with no writable buffer takes nothing and is returned. */
static void test_rx_readonly_chain(void **state)
{
    struct fx *f = *state;
    struct fake_vq_seg ro = out_seg(f, "guest", 5);
    int bad = fake_host_vq_add(&f->h, RXQ, &ro, 1);
    struct fake_vq_seg seg;
    int good = add_rx(f, &seg, 8);
    assert_int_equal(input(f, "xy", 2), 2);
    assert_used(f, RXQ, bad, 0);
    assert_used(f, RXQ, good, 2);
    assert_memory_equal(f->h.ram + ro.gpa, "guest", 5);
}

/* Longer than the device takes: the host returns it, the next one is used. */
static void test_long_chains_skipped(void **state)
{
    struct fx *f = *state;
    enum { N = 100 };
    struct fake_vq_seg segs[N];
    for (unsigned i = 0; i < N; i++)
        segs[i] = out_seg(f, "z", 1);
    int longh = fake_host_vq_add_indirect(&f->h, TXQ, segs, N);
    assert_true(longh >= 0);
    int head = send(f, "ok");
    fake_host_vq_kick(&f->h, f->p, f->dev, TXQ);
    assert_used(f, TXQ, longh, 0);
    assert_used(f, TXQ, head, 0);
    assert_out(f, "ok");

    for (unsigned i = 0; i < N; i++)
        segs[i] = in_seg(f, 1);
    longh = fake_host_vq_add_indirect(&f->h, RXQ, segs, N);
    struct fake_vq_seg seg;
    head = add_rx(f, &seg, 4);
    assert_int_equal(input(f, "in", 2), 2);
    assert_used(f, RXQ, longh, 0);
    assert_used(f, RXQ, head, 2);
}

/* A descriptor outside guest RAM: the host flags NEEDS_RESET, the device
 * stops using the queue and recovers after a driver reset. */
static void test_malformed_chain(void **state)
{
    struct fx *f = *state;
    struct fake_vq_seg bad = {RAM - 8, 64, 0};
    fake_host_vq_add(&f->h, TXQ, &bad, 1);
    fake_host_vq_kick(&f->h, f->p, f->dev, TXQ);
    assert_true(f->h.virtio.device_needs_reset);
    assert_int_equal(f->h.chr_out_len, 0);

    struct fake_vq_seg badin = {RAM + 4096, 16, 1};
    fake_host_vq_add(&f->h, RXQ, &badin, 1);
    assert_int_equal(input(f, "q", 1), 0);

    fake_host_virtio_reset(&f->h, f->p, f->dev);
    activate(f);
    int head = send(f, "again");
    fake_host_vq_kick(&f->h, f->p, f->dev, TXQ);
    assert_out(f, "again");
    assert_used(f, TXQ, head, 0);
}

/* ---- reset and destroy ---- */

static void test_reset_drops_pending_chain(void **state)
{
    struct fx *f = *state;
    f->h.chr_stall = 1;
    send(f, "stale");
    fake_host_vq_kick(&f->h, f->p, f->dev, TXQ);
    assert_int_not_equal(f->h.timer_deadline[0], 0);
    fake_host_virtio_reset(&f->h, f->p, f->dev);
    assert_int_equal(f->h.timer_deadline[0], 0);
    f->h.chr_stall = 0;
    /* Nothing of the old rings is touched after the reset (the fake host
     * counts a push of a stale head as a violation). */
    fake_host_advance(&f->h, f->p, f->dev, 100 * MS);
    assert_int_equal(f->h.chr_out_len, 0);
    activate(f);
    int head = send(f, "fresh");
    fake_host_vq_kick(&f->h, f->p, f->dev, TXQ);
    assert_out(f, "fresh");
    assert_used(f, TXQ, head, 0);
    /* Input is refused while reset and asked for again at DRIVER_OK. */
    fake_host_virtio_reset(&f->h, f->p, f->dev);
    uint64_t ready = f->h.chr_input_ready_calls;
    assert_int_equal(input(f, "k", 1), 0);
    activate(f);
    assert_int_equal(f->h.chr_input_ready_calls, ready + 1);
}

/* Output the guest already wrote reaches the backend even at teardown. */
static void test_destroy_flushes_pending_output(void **state)
{
    struct fx *f = *state;
    f->h.chr_stall = 1;
    send(f, "last words");
    fake_host_vq_kick(&f->h, f->p, f->dev, TXQ);
    assert_int_equal(f->h.chr_out_len, 0);
    f->h.chr_stall = 0;
    f->p->ops->destroy(f->dev);
    f->dev = NULL;
    assert_out(f, "last words");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_info_and_config),
        cmocka_unit_test(test_options),
        cmocka_unit_test_setup_teardown(test_tx_gathers_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_activation_defers_tx_to_the_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_many_chains_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_skips_writable_buffers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_short_writes_are_resumed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_large_chain_yields_and_resumes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tx_without_backend, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_spreads_over_chains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_waits_for_buffers, setup, teardown),
        cmocka_unit_test(test_rx_before_driver_ok),
        cmocka_unit_test_setup_teardown(test_rx_readonly_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_chains_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_drops_pending_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_flushes_pending_output, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
