/* Unit tests of the fake host itself: harness findings are only as good as
 * the host they run against. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include <cmocka.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpa_bounds),
        cmocka_unit_test(test_irq),
        cmocka_unit_test(test_chr_out_never_overflows),
        cmocka_unit_test(test_timers_in_order),
        cmocka_unit_test(test_fd_table_and_snapshot),
        cmocka_unit_test(test_load_plugin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
