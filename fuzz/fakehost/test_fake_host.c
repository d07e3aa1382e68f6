/* Unit tests of the fake host itself: harness findings are only as good as
 * the host they run against. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include <cmocka.h>

#include <nimbus/virtio_util.h>

#include "fake_host.h"

static void test_gpa_bounds(void **unused)
{
    struct fake_host h;
    uint8_t buf[16] = {1, 2, 3};
    assert_int_equal(fake_host_init(&h, 4096), 0);
    const nimbus_host_api *a = &h.api;
    assert_int_equal(a->gpa_write(&h, 4096 - 16, buf, 16), 0);
    assert_int_equal(h.ram[4096 - 15], 2);
    assert_int_equal(a->gpa_write(&h, 4096 - 15, buf, 16), -EFAULT);
    assert_int_equal(a->gpa_read(&h, UINT64_MAX - 2, buf, 8), -EFAULT);
    assert_int_equal(a->gpa_read(&h, 8, buf, UINT64_MAX), -EFAULT);
    assert_int_equal(a->gpa_read(&h, 4096, buf, 0), 0);
    assert_null(a->gpa_map(&h, 4000, 97, 0));
    assert_ptr_equal(a->gpa_map(&h, 4000, 96, 1), h.ram + 4000);
    assert_int_equal(h.gpa_faults, 4);
    assert_int_equal(h.ram_dirty, 1);
    h.ram[0] = 7; /* outside the dirty range: clear_ram leaves it alone */
    assert_int_equal(h.dirty_lo, 4000);
    assert_int_equal(h.dirty_hi, 4096);
    fake_host_clear_ram(&h);
    assert_int_equal(h.ram[4096 - 15], 0);
    assert_int_equal(h.ram[0], 7);
    fake_host_fini(&h);
}

static void test_irq(void **unused)
{
    struct fake_host h;
    assert_int_equal(fake_host_init(&h, 0), 0);
    const nimbus_host_api *a = &h.api;
    assert_int_equal(a->irq_set_level(&h, 4, 1), 0);
    assert_int_equal(a->irq_set_level(&h, 4, 1), 0);
    assert_int_equal(a->irq_set_level(&h, 4, 0), 0);
    assert_int_equal(a->irq_set_level(&h, 4, 1), 0);
    assert_int_equal(h.irq_edges[4], 2);
    assert_int_equal(h.irq_level[4], 1);
    assert_int_equal(a->irq_set_level(&h, 24, 1), -EINVAL);
    assert_int_equal(a->irq_set_level(&h, UINT32_MAX, 0), -EINVAL);
    assert_int_equal(a->irq_set_level(&h, 3, 2), -EINVAL);
    assert_int_equal(h.violations.bad_gsi, 2);
    assert_int_equal(h.violations.bad_level, 1);
    assert_int_equal(fake_host_violation_count(&h), 3);
    fake_host_fini(&h);
}

static void test_chr_out_never_overflows(void **unused)
{
    struct fake_host *h = malloc(sizeof(*h));
    static uint8_t big[40000];
    memset(big, 'x', sizeof(big));
    assert_int_equal(fake_host_init(h, 0), 0);
    assert_int_equal(h->api.chr_write(h, big, sizeof(big)), (int64_t)sizeof(big));
    assert_int_equal(h->api.chr_write(h, big, sizeof(big)), (int64_t)sizeof(big));
    assert_int_equal(h->chr_out_len, FAKE_HOST_CHR_OUT);
    assert_int_equal(h->chr_out_total, 2 * sizeof(big));
    h->chr_accept_max = 3;
    assert_int_equal(h->api.chr_write(h, big, 10), 3);
    h->chr_absent = 1;
    assert_int_equal(h->api.chr_write(h, big, 10), -ENOTCONN);
    fake_host_fini(h);
    free(h);
}

/* A plugin-less timer client: records the order timers fire in. */
static uint32_t fired_ids[8];
static uint64_t fired_at[8];
static unsigned nfired;
static struct fake_host *timer_host;
static int periodic;

static void rec_timer(void *dev, uint32_t id)
{
    if (nfired < 8) {
        fired_ids[nfired] = id;
        fired_at[nfired] = timer_host->now_ns;
    }
    nfired++;
    if (id == 7) /* re-arm in the past: a livelock the host must cut off */
        timer_host->api.timer_arm(timer_host, 7, 1);
    if (id == 0 && periodic)
        timer_host->api.timer_arm(timer_host, 0, timer_host->now_ns + 10);
}

static const nimbus_device_ops rec_ops = {
    .struct_size = sizeof(nimbus_device_ops), .timer_fired = rec_timer};
static const nimbus_plugin rec_plugin = {
    NIMBUS_ABI_MAJOR, NIMBUS_ABI_MINOR, sizeof(nimbus_plugin), 0,
    "rec", "1", "", "", &rec_ops};

static void test_timers_in_order(void **unused)
{
    struct fake_host h;
    assert_int_equal(fake_host_init(&h, 0), 0);
    timer_host = &h;
    nfired = 0;
    h.now_ns = 100;
    int64_t wall0 = h.wall_ns;
    assert_int_equal(h.api.timer_arm(&h, 3, 300), 0);
    assert_int_equal(h.api.timer_arm(&h, 1, 200), 0);
    assert_int_equal(h.api.timer_arm(&h, 2, 300), 0);
    assert_int_equal(h.api.timer_arm(&h, 5, 900), 0);
    assert_int_equal(h.api.timer_arm(&h, 16, 1), -EINVAL);
    assert_int_equal(h.violations.bad_timer, 1);
    assert_int_equal(fake_host_advance(&h, &rec_plugin, NULL, 400), 3);
    assert_int_equal(nfired, 3);
    assert_int_equal(fired_ids[0], 1);
    assert_int_equal(fired_at[0], 200);
    assert_int_equal(fired_ids[1], 2);
    assert_int_equal(fired_ids[2], 3);
    assert_int_equal(fired_at[2], 300);
    assert_int_equal(h.now_ns, 500);
    assert_int_equal(h.wall_ns - wall0, 400);
    assert_int_equal(h.timer_deadline[5], 900);
    assert_int_equal(fake_host_fire_next(&h, &rec_plugin, NULL), 1);
    assert_int_equal(h.now_ns, 900);
    assert_int_equal(fake_host_fire_next(&h, &rec_plugin, NULL), 0);
    /* Storm: a timer re-arming in the past is cut off, the clock still moves. */
    h.api.timer_arm(&h, 7, 1);
    assert_int_equal(fake_host_advance(&h, &rec_plugin, NULL, 10), FAKE_HOST_STORM - 1);
    assert_int_equal(h.violations.timer_storm, 1);
    assert_int_equal(h.now_ns, 910);
    /* A fast periodic timer over a long advance is cut short, not a storm. */
    h.api.timer_arm(&h, 7, 0);
    h.api.timer_arm(&h, 0, 911);
    periodic = 1;
    assert_int_equal(fake_host_advance(&h, &rec_plugin, NULL, 1000000), FAKE_HOST_MAX_FIRINGS);
    assert_int_equal(h.timer_skips, 1);
    assert_int_equal(h.violations.timer_storm, 1);
    periodic = 0;
    /* Huge advances clamp instead of overflowing. */
    h.api.timer_arm(&h, 7, 0);
    fake_host_advance(&h, &rec_plugin, NULL, UINT64_MAX);
    assert_true(h.wall_ns > 0);
    fake_host_fini(&h);
}

static void test_fd_table_and_snapshot(void **unused)
{
    struct fake_host h;
    struct fake_host_snapshot s;
    assert_int_equal(fake_host_init(&h, 0), 0);
    assert_int_equal(h.api.fd_watch(&h, 7, NIMBUS_EV_IN, 70), 0);
    assert_int_equal(h.api.fd_watch(&h, 9, NIMBUS_EV_IN, 90), 0);
    assert_int_equal(h.api.fd_watch(&h, 7, NIMBUS_EV_OUT, 71), 0);
    assert_int_equal(h.api.fd_watch(&h, -1, NIMBUS_EV_IN, 0), -EBADF);
    int i = fake_host_watched(&h, 1);
    assert_int_equal(h.fds[i].fd, 9);
    assert_int_equal(h.fds[fake_host_watched(&h, 0)].token, 71);
    assert_int_equal(fake_host_watched(&h, 2), -1);
    fake_host_snapshot_take(&h, &s);
    assert_int_equal(h.api.fd_unwatch(&h, 9), 0);
    assert_int_equal(h.api.fd_unwatch(&h, 9), -ENOENT);
    h.api.request_shutdown(&h, NIMBUS_SHUTDOWN_RESET);
    h.api.log(&h, NIMBUS_LOG_INFO, "hello");
    h.api.msi_send(&h, 0xfee00000, 0x41);
    assert_int_equal(h.shutdown_kind, NIMBUS_SHUTDOWN_RESET);
    assert_string_equal(h.last_log, "hello");
    assert_int_equal(h.msi[0].data, 0x41);
    fake_host_snapshot_restore(&h, &s);
    assert_int_equal(fake_host_watched(&h, 1), i);
    assert_int_equal(h.shutdown_kind, 0);
    assert_int_equal(h.log_lines, 0);
    assert_int_equal(h.msi_count, 0);
    assert_int_equal(fake_host_violation_count(&h), 0);
    fake_host_fini(&h);
}

static void test_load_plugin(void **unused)
{
    char err[256];
    assert_null(fake_host_load_plugin("/nonexistent/x.so", err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/x.so"));
    /* libc is a shared object without the descriptor symbol. */
    assert_null(fake_host_load_plugin("libc.so.6", err, sizeof(err)));
    assert_non_null(strstr(err, NIMBUS_PLUGIN_SYMBOL));

    const nimbus_plugin *p = fake_host_load_plugin(TESTBUG_PLUGIN, err, sizeof(err));
    assert_non_null(p);
    assert_string_equal(p->name, "testbug");
    struct fake_host h;
    nimbus_region r[NIMBUS_MAX_REGIONS];
    uint32_t n = NIMBUS_MAX_REGIONS;
    void *dev = NULL;
    assert_int_equal(fake_host_init(&h, 0), 0);
    assert_int_equal(fake_host_create(&h, p, "irq=99", &dev, r, &n, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "irq=99"));
    n = NIMBUS_MAX_REGIONS;
    assert_int_equal(fake_host_create(&h, p, "irq=6", &dev, r, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 1);
    uint8_t v = 1;
    assert_int_equal(p->ops->io_write(dev, 0, 0xe, &v, 1), 0);
    assert_int_equal(h.irq_level[6], 1);
    assert_int_equal(h.irq_edges[6], 1);
    p->ops->destroy(dev);
    fake_host_fini(&h);
}


/* ---- virtio ------------------------------------------------------------------ */

/*
 * A minimal in-test virtio device: queue 0 echoes (copies the readable bytes
 * into the writable ones), queue 1 is never serviced.  Knobs let tests make
 * it misbehave.
 */
struct echo_dev {
    struct fake_host *h;
    nimbus_virtio_info info;
    uint64_t features;
    int activate_ret;
    int last_pop;
    uint32_t resets, ready_calls;
    uint64_t ready_token;
};

static int echo_info(void *dev, nimbus_virtio_info *info)
{
    *info = ((struct echo_dev *)dev)->info;
    return 0;
}

static int echo_activate(void *dev, uint64_t features)
{
    struct echo_dev *d = dev;
    d->features = features;
    return d->activate_ret;
}

static void echo_notify(void *dev, uint32_t queue)
{
    struct echo_dev *d = dev;
    const nimbus_host_api *a = &d->h->api;
    nimbus_vq_buf bufs[8];
    uint32_t n, head;
    uint8_t tmp[256];
    if (queue != 0)
        return;
    while ((d->last_pop = a->vq_pop(d->h, 0, bufs, 8, &n, &head)) == 1) {
        uint64_t in = nimbus_vq_gather(bufs, n, 0, tmp, sizeof(tmp));
        uint64_t out = nimbus_vq_scatter(bufs, n, 0, tmp, in);
        a->vq_push(d->h, 0, head, (uint32_t)out);
    }
    a->vq_notify(d->h, 0);
}

static void echo_reset(void *dev)
{
    ((struct echo_dev *)dev)->resets++;
}

static void echo_ready(void *dev, int fd, uint64_t token, uint32_t revents)
{
    struct echo_dev *d = dev;
    char c;
    d->ready_calls++;
    d->ready_token = token;
    if (revents & NIMBUS_EV_IN)
        assert_int_equal(read(fd, &c, 1), 1);
}

static int echo_cfg_read(void *dev, uint64_t off, void *data, uint32_t len)
{
    memset(data, (int)(0x10 + off), len);
    return 0;
}

static const nimbus_device_ops echo_ops = {
    .struct_size = sizeof(nimbus_device_ops),
    .reset = echo_reset,
    .fd_ready = echo_ready,
    .virtio_info = echo_info,
    .virtio_config_read = echo_cfg_read,
    .virtio_activate = echo_activate,
    .virtio_queue_notify = echo_notify,
};
static const nimbus_plugin echo_plugin = {
    NIMBUS_ABI_MAJOR, NIMBUS_ABI_MINOR, sizeof(nimbus_plugin), 0,
    "echo", "1", "", "", &echo_ops};

#define ECHO_RAM (1u << 20)

static void echo_init(struct fake_host *h, struct echo_dev *d)
{
    assert_int_equal(fake_host_init(h, ECHO_RAM), 0);
    memset(d, 0, sizeof(*d));
    d->h = h;
    d->info.struct_size = sizeof(d->info);
    d->info.device_id = 4;
    d->info.device_features = NIMBUS_BIT(3);
    d->info.num_queues = 2;
    d->info.queue_size_max = 16;
    d->info.config_size = 8;
    d->info.pci_class = 0xff0000;
}

static void test_virtio_attach_validates(void **unused)
{
    struct fake_host h;
    struct echo_dev d;
    nimbus_virtio_info got;
    echo_init(&h, &d);
    assert_int_equal(fake_host_virtio_attach(&h, &rec_plugin, &d, &got), -ENOTSUP);
    d.info.num_queues = 0;
    assert_int_equal(fake_host_virtio_attach(&h, &echo_plugin, &d, &got), -EINVAL);
    d.info.num_queues = NIMBUS_VIRTIO_MAX_QUEUES + 1;
    assert_int_equal(fake_host_virtio_attach(&h, &echo_plugin, &d, &got), -EINVAL);
    d.info.num_queues = 2;
    d.info.queue_size_max = 24;
    assert_int_equal(fake_host_virtio_attach(&h, &echo_plugin, &d, &got), -EINVAL);
    d.info.queue_size_max = 16;
    d.info.config_size = NIMBUS_VIRTIO_MAX_CONFIG + 1;
    assert_int_equal(fake_host_virtio_attach(&h, &echo_plugin, &d, &got), -EINVAL);
    d.info.config_size = 8;
    d.info.struct_size = 8;
    assert_int_equal(fake_host_virtio_attach(&h, &echo_plugin, &d, &got), -EINVAL);
    assert_false(h.virtio.attached);
    d.info.struct_size = sizeof(d.info);
    assert_int_equal(fake_host_virtio_attach(&h, &echo_plugin, &d, &got), 0);
    assert_int_equal(got.device_id, 4);
    /* Nothing runs before activation; popping then is allowed and empty. */
    uint32_t n, head;
    nimbus_vq_buf b[1];
    assert_int_equal(h.api.vq_pop(&h, 0, b, 1, &n, &head), 0);
    assert_int_equal(fake_host_vq_add(&h, 0, &(struct fake_vq_seg){0x1000, 1, 0}, 1), -ENODEV);
    assert_int_equal(fake_host_buf(&h, 16), 0);
    assert_int_equal(fake_host_violation_count(&h), 0);
    fake_host_fini(&h);
}

static void test_virtio_activate(void **unused)
{
    struct fake_host h;
    struct echo_dev d;
    echo_init(&h, &d);
    assert_int_equal(fake_host_virtio_activate(&h, &echo_plugin, &d, 0, 0), -ENODEV);
    assert_int_equal(fake_host_virtio_attach(&h, &echo_plugin, &d, NULL), 0);
    assert_int_equal(fake_host_virtio_activate(&h, &echo_plugin, &d, 0, 12), -EINVAL);
    assert_int_equal(fake_host_virtio_activate(&h, &echo_plugin, &d, 0, 32), -EINVAL);
    /* Masked to what is offered, VERSION_1 forced. */
    assert_int_equal(fake_host_virtio_activate(&h, &echo_plugin, &d, ~0ull, 0), 0);
    assert_int_equal(d.features, NIMBUS_BIT(3) | NIMBUS_BIT(NIMBUS_VIRTIO_F_INDIRECT_DESC) |
                                     NIMBUS_BIT(NIMBUS_VIRTIO_F_EVENT_IDX) |
                                     NIMBUS_BIT(NIMBUS_VIRTIO_F_VERSION_1));
    assert_int_equal(h.virtio.queue_size, 16);
    assert_int_equal(fake_host_virtio_activate(&h, &echo_plugin, &d, 0, 0), -EBUSY);
    uint64_t desc, avail, used, desc1;
    assert_int_equal(fake_host_vq_layout(&h, 0, &desc, &avail, &used), 0);
    assert_int_equal(desc, FAKE_HOST_VQ_BASE);
    assert_int_equal(avail, FAKE_HOST_VQ_BASE + 0x1000);
    assert_int_equal(used, FAKE_HOST_VQ_BASE + 0x2000);
    assert_int_equal(fake_host_vq_layout(&h, 1, &desc1, NULL, NULL), 0);
    assert_int_equal(desc1, FAKE_HOST_VQ_BASE + 0x3000);
    assert_int_equal(fake_host_vq_layout(&h, 2, &desc1, NULL, NULL), -EINVAL);
    /* Buffers start after the last ring and never leave RAM. */
    uint64_t b = fake_host_buf(&h, 1);
    assert_int_equal(b, FAKE_HOST_VQ_BASE + 0x6000);
    assert_int_equal(fake_host_buf(&h, 3) % 16, 0);
    assert_int_equal(fake_host_buf(&h, ECHO_RAM), 0);
    assert_int_equal(fake_host_buf(&h, UINT64_MAX), 0);
    /* b + 0x20 onwards is free: fill it up to 16 bytes before the end. */
    assert_int_equal(fake_host_buf(&h, ECHO_RAM - b - 0x20 - 16), b + 0x20);
    assert_int_equal(fake_host_buf(&h, 17), 0);
    assert_int_equal(fake_host_buf(&h, 16), ECHO_RAM - 16);
    assert_int_equal(fake_host_buf(&h, 1), 0);

    /* A failing activate sets NEEDS_RESET; reset clears it and re-lays out. */
    fake_host_virtio_reset(&h, &echo_plugin, &d);
    assert_int_equal(d.resets, 1);
    assert_false(h.virtio.active);
    d.activate_ret = -EIO;
    assert_int_equal(fake_host_virtio_activate(&h, &echo_plugin, &d, 0, 2), -EIO);
    assert_true(h.virtio.device_needs_reset);
    assert_int_equal(d.features, NIMBUS_BIT(NIMBUS_VIRTIO_F_VERSION_1));
    fake_host_virtio_reset(&h, &echo_plugin, &d);
    assert_false(h.virtio.device_needs_reset);
    fake_host_fini(&h);

    /* Rings that do not fit in RAM. */
    struct fake_host small;
    assert_int_equal(fake_host_init(&small, 0x4000), 0);
    d.h = &small;
    d.activate_ret = 0;
    assert_int_equal(fake_host_virtio_attach(&small, &echo_plugin, &d, NULL), 0);
    assert_int_equal(fake_host_virtio_activate(&small, &echo_plugin, &d, 0, 0), -ENOMEM);
    assert_false(small.virtio.active);
    fake_host_fini(&small);
}

static void test_virtio_chains(void **unused)
{
    struct fake_host h;
    struct echo_dev d;
    echo_init(&h, &d);
    assert_int_equal(fake_host_virtio_attach(&h, &echo_plugin, &d, NULL), 0);
    assert_int_equal(fake_host_virtio_activate(&h, &echo_plugin, &d, 0, 4), 0);
    uint64_t in = fake_host_buf(&h, 8), out = fake_host_buf(&h, 16);
    memcpy(h.ram + in, "abcdefgh", 8);
    struct fake_vq_seg segs[2] = {{in, 8, 0}, {out, 16, 1}};
    uint32_t head, len;
    assert_int_equal(fake_host_vq_used(&h, 0, &head, &len), 0);
    int hd = fake_host_vq_add(&h, 0, segs, 2);
    assert_true(hd >= 0);
    assert_int_equal(fake_host_vq_kick(&h, &echo_plugin, &d, 0), 0);
    assert_int_equal(fake_host_vq_used(&h, 0, &head, &len), 1);
    assert_int_equal(head, (uint32_t)hd);
    assert_int_equal(len, 8);
    assert_memory_equal(h.ram + out, "abcdefgh", 8);
    assert_int_equal(h.virtio.interrupts[0], 1);
    assert_int_equal(h.virtio.pops, 1);
    assert_int_equal(h.virtio.pushes, 1);
    assert_int_equal(fake_host_vq_used(&h, 0, &head, &len), 0);

    /* Descriptors are recycled: many more chains than the queue size. */
    for (int i = 0; i < 20; i++) {
        assert_true(fake_host_vq_add(&h, 0, segs, 2) >= 0);
        assert_true(fake_host_vq_add(&h, 0, segs, 2) >= 0);
        assert_int_equal(fake_host_vq_add(&h, 0, segs, 1), -ENOSPC);
        assert_int_equal(fake_host_vq_kick(&h, &echo_plugin, &d, 0), 0);
        assert_int_equal(fake_host_vq_used(&h, 0, NULL, NULL), 1);
        assert_int_equal(fake_host_vq_used(&h, 0, NULL, &len), 1);
        assert_int_equal(len, 8);
    }
    /* Indirect: one descriptor for any number of segments. */
    struct fake_vq_seg many[6] = {{in, 2, 0}, {in + 2, 2, 0}, {in + 4, 4, 0},
                                  {out, 4, 1}, {out + 4, 4, 1}, {out + 8, 8, 1}};
    memset(h.ram + out, 0, 16);
    for (int i = 0; i < 4; i++)
        assert_true(fake_host_vq_add_indirect(&h, 0, many, 6) >= 0);
    assert_int_equal(fake_host_vq_add(&h, 0, segs, 1), -ENOSPC);
    assert_int_equal(fake_host_vq_kick(&h, &echo_plugin, &d, 0), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(fake_host_vq_used(&h, 0, NULL, &len), 1);
        assert_int_equal(len, 8);
    }
    assert_memory_equal(h.ram + out, "abcdefgh", 8);
    /* Bad arguments. */
    assert_int_equal(fake_host_vq_add(&h, 2, segs, 1), -EINVAL);
    assert_int_equal(fake_host_vq_add(&h, 0, segs, 0), -EINVAL);
    assert_int_equal(fake_host_vq_kick(&h, &echo_plugin, &d, 2), -EINVAL);
    assert_int_equal(fake_host_vq_kick(&h, &rec_plugin, &d, 0), -ENOTSUP);
    assert_int_equal(fake_host_vq_used(&h, 7, NULL, NULL), 0);
    assert_int_equal(fake_host_violation_count(&h), 0);
    fake_host_fini(&h);
}

static void test_virtio_event_idx(void **unused)
{
    struct fake_host h;
    struct echo_dev d;
    echo_init(&h, &d);
    assert_int_equal(fake_host_virtio_attach(&h, &echo_plugin, &d, NULL), 0);
    assert_int_equal(fake_host_virtio_activate(&h, &echo_plugin, &d,
                                               NIMBUS_BIT(NIMBUS_VIRTIO_F_EVENT_IDX), 8), 0);
    uint64_t b = fake_host_buf(&h, 8);
    struct fake_vq_seg s = {b, 8, 1};
    /* Linux-style: consuming every used entry re-arms the interrupt. */
    for (int i = 1; i <= 3; i++) {
        fake_host_vq_add(&h, 0, &s, 1);
        fake_host_vq_kick(&h, &echo_plugin, &d, 0);
        assert_int_equal(h.virtio.interrupts[0], (uint64_t)i);
        assert_int_equal(fake_host_vq_used(&h, 0, NULL, NULL), 1);
    }
    /* The driver asks only for the entry at used idx 5: two more chains
     * without an interrupt, the third gets one. */
    assert_int_equal(fake_host_vq_set_used_event(&h, 0, 5), 0);
    for (int i = 0; i < 3; i++) {
        fake_host_vq_add(&h, 0, &s, 1);
        fake_host_vq_kick(&h, &echo_plugin, &d, 0);
        assert_int_equal(fake_host_vq_used(&h, 0, NULL, NULL), 1);
    }
    assert_int_equal(h.virtio.interrupts[0], 4);
    assert_int_equal(h.virtio.notify_calls[0], 6);
    fake_host_fini(&h);

    /* Without EVENT_IDX: NO_INTERRUPT suppresses. */
    echo_init(&h, &d);
    assert_int_equal(fake_host_virtio_attach(&h, &echo_plugin, &d, NULL), 0);
    assert_int_equal(fake_host_virtio_activate(&h, &echo_plugin, &d, 0, 8), 0);
    b = fake_host_buf(&h, 8);
    s.gpa = b;
    assert_int_equal(fake_host_vq_set_avail_flags(&h, 0, 1), 0);
    fake_host_vq_add(&h, 0, &s, 1);
    fake_host_vq_kick(&h, &echo_plugin, &d, 0);
    assert_int_equal(h.virtio.interrupts[0], 0);
    assert_int_equal(fake_host_vq_set_avail_flags(&h, 0, 0), 0);
    fake_host_vq_add(&h, 0, &s, 1);
    fake_host_vq_kick(&h, &echo_plugin, &d, 0);
    assert_int_equal(h.virtio.interrupts[0], 1);
    fake_host_fini(&h);
}

static void test_virtio_violations(void **unused)
{
    struct fake_host h;
    struct echo_dev d;
    nimbus_vq_buf b[2];
    uint32_t n, head;
    echo_init(&h, &d);
    /* Before attach every queue number is wrong. */
    assert_int_equal(h.api.vq_pop(&h, 0, b, 2, &n, &head), -EINVAL);
    assert_int_equal(h.violations.bad_queue, 1);
    assert_int_equal(fake_host_virtio_attach(&h, &echo_plugin, &d, NULL), 0);
    assert_int_equal(h.api.vq_notify(&h, 0), 0);
    assert_int_equal(h.violations.idle_notify, 1);
    assert_int_equal(h.api.vq_push(&h, 0, 0, 0), -EINVAL);
    assert_int_equal(h.violations.bad_push, 1);
    assert_int_equal(fake_host_virtio_activate(&h, &echo_plugin, &d, 0, 0), 0);
    assert_int_equal(h.api.vq_pop(&h, 2, b, 2, &n, &head), -EINVAL);
    assert_int_equal(h.api.vq_push(&h, 64, 0, 0), -EINVAL);
    assert_int_equal(h.api.vq_notify(&h, UINT32_MAX), -EINVAL);
    assert_int_equal(h.violations.bad_queue, 4);
    assert_int_equal(h.api.vq_pop(&h, 0, NULL, 2, &n, &head), -EINVAL);
    assert_int_equal(h.violations.null_arg, 1);
    /* A head popped once can be pushed once; a reset drops everything. */
    uint64_t buf = fake_host_buf(&h, 4);
    struct fake_vq_seg s = {buf, 4, 1};
    int hd = fake_host_vq_add(&h, 0, &s, 1);
    assert_int_equal(h.api.vq_pop(&h, 0, b, 2, &n, &head), 1);
    assert_int_equal(head, (uint32_t)hd);
    assert_int_equal(h.api.vq_push(&h, 0, head, 4), 0);
    assert_int_equal(h.api.vq_push(&h, 0, head, 4), -EINVAL);
    assert_int_equal(h.api.vq_push(&h, 0, 0x10000, 4), -EINVAL);
    fake_host_vq_add(&h, 0, &s, 1);
    assert_int_equal(h.api.vq_pop(&h, 0, b, 2, &n, &head), 1);
    fake_host_virtio_reset(&h, &echo_plugin, &d);
    assert_int_equal(h.api.vq_push(&h, 0, head, 4), -EINVAL);
    assert_int_equal(h.violations.bad_push, 4);
    assert_int_equal(fake_host_violation_count(&h), 10);
    fake_host_fini(&h);
}

static void test_virtio_malformed_chain(void **unused)
{
    struct fake_host h;
    struct echo_dev d;
    echo_init(&h, &d);
    assert_int_equal(fake_host_virtio_attach(&h, &echo_plugin, &d, NULL), 0);
    assert_int_equal(fake_host_virtio_activate(&h, &echo_plugin, &d, 0, 0), 0);
    /* Buffers outside RAM are written by the fake driver unchecked ... */
    struct fake_vq_seg s = {ECHO_RAM - 4, 8, 1};
    assert_true(fake_host_vq_add(&h, 0, &s, 1) >= 0);
    assert_int_equal(fake_host_vq_kick(&h, &echo_plugin, &d, 0), 0);
    /* ... and refused by the host: the device sees -EIO, NEEDS_RESET. */
    assert_int_equal(d.last_pop, -EIO);
    assert_true(h.virtio.device_needs_reset);
    assert_int_equal(h.virtio.broken, 1);
    assert_int_equal(fake_host_vq_used(&h, 0, NULL, NULL), 0);
    s.gpa = fake_host_buf(&h, 8);
    assert_true(fake_host_vq_add(&h, 0, &s, 1) >= 0);
    fake_host_vq_kick(&h, &echo_plugin, &d, 0);
    assert_int_equal(d.last_pop, -EIO); /* sticky until reset */
    assert_int_equal(h.virtio.broken, 1);
    /* Scribbling on the avail ring directly (what harnesses do). */
    fake_host_virtio_reset(&h, &echo_plugin, &d);
    assert_int_equal(fake_host_virtio_activate(&h, &echo_plugin, &d, 0, 0), 0);
    uint64_t avail;
    assert_int_equal(fake_host_vq_layout(&h, 0, NULL, &avail, NULL), 0);
    h.ram[avail + 2] = 40; /* idx far past the queue size */
    fake_host_vq_kick(&h, &echo_plugin, &d, 0);
    assert_int_equal(d.last_pop, -EIO);
    assert_int_equal(fake_host_violation_count(&h), 0);
    fake_host_fini(&h);
}

static void test_virtio_poll(void **unused)
{
    struct fake_host h;
    struct echo_dev d;
    int p[2];
    echo_init(&h, &d);
    assert_int_equal(pipe(p), 0);
    assert_int_equal(fake_host_poll(&h, &echo_plugin, &d, 0), 0); /* nothing watched */
    assert_int_equal(h.api.fd_watch(&h, p[0], NIMBUS_EV_IN, 42), 0);
    assert_int_equal(fake_host_poll(&h, &echo_plugin, &d, 0), 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(fake_host_poll(&h, &echo_plugin, &d, 1000), 1);
    assert_int_equal(d.ready_calls, 1);
    assert_int_equal(d.ready_token, 42);
    /* Paused watches are not polled. */
    assert_int_equal(write(p[1], "y", 1), 1);
    assert_int_equal(h.api.fd_watch(&h, p[0], 0, 42), 0);
    assert_int_equal(fake_host_poll(&h, &echo_plugin, &d, 0), 0);
    /* A watched fd closed behind the host's back is a contract violation. */
    assert_int_equal(h.api.fd_watch(&h, p[0], NIMBUS_EV_IN, 43), 0);
    close(p[0]);
    close(p[1]);
    assert_int_equal(fake_host_poll(&h, &echo_plugin, &d, 0), 0);
    assert_int_equal(h.violations.closed_fd, 1);
    fake_host_fini(&h);
}

static void test_virtio_config(void **unused)
{
    struct fake_host h;
    struct echo_dev d;
    uint8_t v[8];
    echo_init(&h, &d);
    assert_int_equal(fake_host_virtio_config_read(&h, &echo_plugin, &d, 0, v, 4), -EINVAL);
    assert_int_equal(fake_host_virtio_attach(&h, &echo_plugin, &d, NULL), 0);
    assert_int_equal(fake_host_virtio_config_read(&h, &echo_plugin, &d, 4, v, 4), 0);
    assert_int_equal(v[0], 0x14);
    assert_int_equal(fake_host_virtio_config_read(&h, &echo_plugin, &d, 6, v, 4), -EINVAL);
    assert_int_equal(fake_host_virtio_config_read(&h, &echo_plugin, &d, 0, v, 3), -EINVAL);
    assert_int_equal(fake_host_virtio_config_read(&h, &echo_plugin, &d, UINT64_MAX, v, 1), -EINVAL);
    assert_int_equal(fake_host_virtio_config_write(&h, &echo_plugin, &d, 0, v, 1), -ENOTSUP);
    h.api.virtio_config_changed(&h);
    h.api.virtio_needs_reset(&h);
    assert_int_equal(h.virtio.config_changed, 1);
    assert_int_equal(h.virtio.needs_reset, 1);
    assert_true(h.virtio.device_needs_reset);
    fake_host_fini(&h);
}

static void test_virtio_snapshot(void **unused)
{
    struct fake_host h;
    struct echo_dev d;
    struct fake_host_snapshot attached, active;
    echo_init(&h, &d);
    assert_int_equal(fake_host_virtio_attach(&h, &echo_plugin, &d, NULL), 0);
    fake_host_snapshot_take(&h, &attached);
    assert_int_equal(fake_host_virtio_activate(&h, &echo_plugin, &d,
                                               NIMBUS_BIT(NIMBUS_VIRTIO_F_EVENT_IDX), 4), 0);
    fake_host_snapshot_take(&h, &active);
    uint64_t b = fake_host_buf(&h, 8);
    struct fake_vq_seg s = {b, 8, 1};
    for (int i = 0; i < 3; i++) {
        fake_host_vq_add(&h, 0, &s, 1);
        fake_host_vq_kick(&h, &echo_plugin, &d, 0);
    }
    h.api.virtio_needs_reset(&h);
    /* Back to "activated, rings empty": same layout, fresh indices. */
    fake_host_snapshot_restore(&h, &active);
    fake_host_clear_ram(&h);
    assert_true(h.virtio.active);
    assert_false(h.virtio.device_needs_reset);
    assert_int_equal(h.virtio.interrupts[0], 0);
    assert_int_equal(h.virtio.pops, 0);
    assert_int_equal(h.virtio.needs_reset, 0);
    assert_int_equal(fake_host_buf(&h, 8), b);
    assert_int_equal(fake_host_vq_used(&h, 0, NULL, NULL), 0);
    assert_int_equal(fake_host_vq_add(&h, 0, &s, 1), 0);
    fake_host_vq_kick(&h, &echo_plugin, &d, 0);
    assert_int_equal(fake_host_vq_used(&h, 0, NULL, NULL), 1);
    assert_int_equal(fake_host_vq_used(&h, 0, NULL, NULL), 0);
    assert_int_equal(h.virtio.interrupts[0], 1);
    /* And back to "attached". */
    fake_host_snapshot_restore(&h, &attached);
    assert_true(h.virtio.attached);
    assert_false(h.virtio.active);
    assert_int_equal(fake_host_vq_add(&h, 0, &s, 1), -ENODEV);
    assert_int_equal(fake_host_violation_count(&h), 0);
    fake_host_fini(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpa_bounds),
        cmocka_unit_test(test_irq),
        cmocka_unit_test(test_chr_out_never_overflows),
        cmocka_unit_test(test_timers_in_order),
        cmocka_unit_test(test_fd_table_and_snapshot),
        cmocka_unit_test(test_load_plugin),
        cmocka_unit_test(test_virtio_attach_validates),
        cmocka_unit_test(test_virtio_activate),
        cmocka_unit_test(test_virtio_chains),
        cmocka_unit_test(test_virtio_event_idx),
        cmocka_unit_test(test_virtio_violations),
        cmocka_unit_test(test_virtio_malformed_chain),
        cmocka_unit_test(test_virtio_poll),
        cmocka_unit_test(test_virtio_config),
        cmocka_unit_test(test_virtio_snapshot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
