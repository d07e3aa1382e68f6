/* virtio_rng plugin, loaded with dlopen and driven through the fake host. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <nimbus/virtio_util.h>

#include "fake_host.h"
#include "test_plugin_load.h"

#define RQ 0u
#define RAM (2u << 20)

struct fx {
    struct fake_host h;
    const nimbus_plugin *p;
    void *dev;
    char dir[64];  /* temp directory for sources */
    char path[96]; /* the source in it */
    int fifo_w;    /* write end when the source is a FIFO, else -1 */
};

static int create(struct fx *f, const char *opts, char *err, size_t errlen)
{
    nimbus_region regs[NIMBUS_MAX_REGIONS];
    uint32_t n = NIMBUS_MAX_REGIONS;
    int r = fake_host_create(&f->h, f->p, opts, &f->dev, regs, &n, err, errlen);
    if (r == 0)
        assert_int_equal(n, 0);
    return r;
}

static struct fx *fx_alloc(void)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(fake_host_init(&f->h, RAM), 0);
    f->h.abort_on_violation = 1;
    f->p = test_load_plugin("virtio_rng.so");
    f->fifo_w = -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/nimbus-rng-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/src", f->dir);
    return f;
}

/* Create with `opts`, attach and activate. */
static void start(struct fx *f, const char *opts)
{
    char err[256] = "";
    if (create(f, opts, err, sizeof(err)) != 0)
        fail_msg("create: %s", err);
    nimbus_virtio_info info;
    assert_int_equal(fake_host_virtio_attach(&f->h, f->p, f->dev, &info), 0);
    assert_int_equal(fake_host_virtio_activate(&f->h, f->p, f->dev,
                                               NIMBUS_BIT(NIMBUS_VIRTIO_F_VERSION_1), 0),
                     0);
    /* The event loop's first turn after DRIVER_OK (activation's timer). */
    fake_host_fire_next(&f->h, f->p, f->dev);
}

static void start_with_file(struct fx *f, const void *data, size_t len)
{
    FILE *fp = fopen(f->path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    fclose(fp);
    char opts[128];
    snprintf(opts, sizeof(opts), "src=%s", f->path);
    start(f, opts);
}

static void fx_free(struct fx *f)
{
    if (f->dev)
        f->p->ops->destroy(f->dev);
    assert_int_equal(fake_host_violation_count(&f->h), 0);
    /* destroy released the watch on the source */
    assert_int_equal(fake_host_watched(&f->h, 0), -1);
    fake_host_fini(&f->h);
    if (f->fifo_w >= 0)
        close(f->fifo_w);
    unlink(f->path);
    rmdir(f->dir);
    free(f);
}

static int setup(void **state)
{
    *state = fx_alloc();
    return 0;
}

static int teardown(void **state)
{
    fx_free(*state);
    return 0;
}

static struct fake_vq_seg wbuf(struct fx *f, uint32_t len)
{
    uint64_t gpa = fake_host_buf(&f->h, len);
    assert_int_not_equal(gpa, 0);
    return (struct fake_vq_seg){gpa, len, 1};
}

static int request(struct fx *f, struct fake_vq_seg *segs, uint32_t n)
{
    int head = fake_host_vq_add(&f->h, RQ, segs, n);
    assert_true(head >= 0);
    return head;
}

static void assert_used(struct fx *f, int head, uint32_t len)
{
    uint32_t id = 0, l = 0;
    assert_int_equal(fake_host_vq_used(&f->h, RQ, &id, &l), 1);
    assert_int_equal(id, (uint32_t)head);
    assert_int_equal(l, len);
}

static void pattern(uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(i * 7 + 3);
}

/* ---- tests ---- */

static void test_info(void **state)
{
    struct fx *f = *state;
    start(f, "");
    nimbus_virtio_info info;
    assert_int_equal(f->p->ops->virtio_info(f->dev, &info), 0);
    assert_int_equal(info.device_id, 4);
    assert_int_equal(info.num_queues, 1);
    assert_int_equal(info.config_size, 0);
    assert_int_equal(info.device_features, 0);
    uint8_t b[4];
    assert_int_equal(f->p->ops->virtio_config_read(f->dev, 0, b, 4), -EINVAL);
}

static void test_fills_from_file(void **state)
{
    struct fx *f = *state;
    uint8_t src[1000];
    pattern(src, sizeof(src));
    start_with_file(f, src, sizeof(src));

    struct fake_vq_seg a = wbuf(f, 64);
    int h1 = request(f, &a, 1);
    assert_int_equal(fake_host_vq_kick(&f->h, f->p, f->dev, RQ), 0);
    assert_used(f, h1, 64);
    assert_memory_equal(f->h.ram + a.gpa, src, 64);
    assert_int_equal(f->h.virtio.interrupts[RQ], 1);

    /* A chain of two writable buffers continues where the file left off. */
    struct fake_vq_seg two[2] = {wbuf(f, 10), wbuf(f, 20)};
    int h2 = request(f, two, 2);
    fake_host_vq_kick(&f->h, f->p, f->dev, RQ);
    assert_used(f, h2, 30);
    assert_memory_equal(f->h.ram + two[0].gpa, src + 64, 10);
    assert_memory_equal(f->h.ram + two[1].gpa, src + 74, 20);
}

/* Device-readable buffers are not entropy requests. */
static void test_no_writable_buffer(void **state)
{
    struct fx *f = *state;
    uint8_t src[64];
    pattern(src, sizeof(src));
    start_with_file(f, src, sizeof(src));
    uint64_t gpa = fake_host_buf(&f->h, 16);
    memset(f->h.ram + gpa, 0xee, 16);
    struct fake_vq_seg ro = {gpa, 16, 0};
    int h1 = request(f, &ro, 1);
    /* readable then writable: only the writable part is filled */
    struct fake_vq_seg mixed[2] = {{gpa, 16, 0}, wbuf(f, 8)};
    int h2 = request(f, mixed, 2);
    fake_host_vq_kick(&f->h, f->p, f->dev, RQ);
    assert_used(f, h1, 0);
    assert_used(f, h2, 8);
    assert_memory_equal(f->h.ram + mixed[1].gpa, src, 8);
    for (unsigned i = 0; i < 16; i++)
        assert_int_equal(f->h.ram[gpa + i], 0xee);
}

/* Regression (issue 19): activation runs on the vCPU that set DRIVER_OK,
 * so it must not read the source there; a request queued before DRIVER_OK
 * is served by the event loop's timer. */
static void test_activation_defers_work_to_the_loop(void **state)
{
    struct fx *f = *state;
    uint8_t src[64];
    pattern(src, sizeof(src));
    start_with_file(f, src, sizeof(src));
    /* A chain already queued when activate runs (the fake transport only
     * starts queues by activating, so reset and activate the device alone,
     * its rings staying live): untouched until the loop's timer fires. */
    struct fake_vq_seg a = wbuf(f, 16);
    int h = request(f, &a, 1);
    f->p->ops->reset(f->dev);
    uint64_t pops = f->h.virtio.pops;
    assert_int_equal(f->p->ops->virtio_activate(f->dev, f->h.virtio.features), 0);
    assert_int_equal(f->h.virtio.pops, pops); /* no queue access, no read */
    assert_int_not_equal(f->h.timer_deadline[0], 0);
    assert_int_equal(fake_host_fire_next(&f->h, f->p, f->dev), 1);
    assert_used(f, h, 16);
    assert_memory_equal(f->h.ram + a.gpa, src, 16);
}

/* An ended source: what is left, then empty replies and one warning. */
static void test_source_ends(void **state)
{
    struct fx *f = *state;
    uint8_t src[10];
    pattern(src, sizeof(src));
    start_with_file(f, src, sizeof(src));
    struct fake_vq_seg a = wbuf(f, 64), b = wbuf(f, 64), c = wbuf(f, 64);
    int h1 = request(f, &a, 1);
    fake_host_vq_kick(&f->h, f->p, f->dev, RQ);
    assert_used(f, h1, 10);
    assert_memory_equal(f->h.ram + a.gpa, src, 10);
    uint64_t logs = f->h.log_lines;
    int h2 = request(f, &b, 1);
    int h3 = request(f, &c, 1);
    fake_host_vq_kick(&f->h, f->p, f->dev, RQ);
    assert_used(f, h2, 0);
    assert_used(f, h3, 0);
    assert_int_equal(f->h.log_lines, logs + 1);
    assert_non_null(strstr(f->h.last_log, f->path));
    assert_int_equal(f->h.timer_deadline[0], 0); /* no polling of a dead source */
}

static void test_default_source(void **state)
{
    struct fx *f = *state;
    start(f, "");
    struct fake_vq_seg a = wbuf(f, 256);
    int h = request(f, &a, 1);
    fake_host_vq_kick(&f->h, f->p, f->dev, RQ);
    assert_used(f, h, 256);
    unsigned zero = 0;
    for (unsigned i = 0; i < 256; i++)
        zero += f->h.ram[a.gpa + i] == 0;
    assert_true(zero < 32); /* /dev/urandom, not an untouched buffer */
}

/* One request cannot make the device read without bound. */
static void test_request_is_capped(void **state)
{
    struct fx *f = *state;
    start(f, "src=/dev/zero");
    uint32_t len = 256u * 1024;
    struct fake_vq_seg a = wbuf(f, len);
    int h = request(f, &a, 1);
    fake_host_vq_kick(&f->h, f->p, f->dev, RQ);
    uint32_t id, got;
    assert_int_equal(fake_host_vq_used(&f->h, RQ, &id, &got), 1);
    assert_int_equal(id, (uint32_t)h);
    assert_true(got > 0 && got <= 65536);
}

static void test_bad_options(void **state)
{
    struct fx *f = *state;
    char err[256];
    err[0] = '\0';
    assert_true(create(f, "src=/nonexistent/entropy", err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "'/nonexistent/entropy'"));
    err[0] = '\0';
    assert_int_equal(create(f, "rate=10", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "'rate'"));
    err[0] = '\0';
    assert_int_equal(create(f, "src=", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "src"));
    err[0] = '\0';
    char opts[128];
    snprintf(opts, sizeof(opts), "src=%s", f->dir);
    assert_true(create(f, opts, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, f->dir));
    f->dev = NULL;
}

/* The device reading a FIFO that has a writer (f->fifo_w) but no data yet:
 * O_RDWR keeps the writer open, so reads see EAGAIN rather than EOF. */
static void start_on_fifo(struct fx *f)
{
    assert_int_equal(mkfifo(f->path, 0600), 0);
    f->fifo_w = open(f->path, O_RDWR | O_NONBLOCK);
    assert_true(f->fifo_w >= 0);
    char opts[128];
    snprintf(opts, sizeof(opts), "src=%s", f->path);
    start(f, opts);
}

/* A source that would block (a FIFO with a quiet writer): the request waits
 * on fd_watch, is filled when data arrives, and the watch goes away. */
static void test_blocking_source(void **state)
{
    struct fx *f = *state;
    start_on_fifo(f);

    struct fake_vq_seg a = wbuf(f, 32);
    int h = request(f, &a, 1);
    fake_host_vq_kick(&f->h, f->p, f->dev, RQ);
    assert_int_equal(fake_host_vq_used(&f->h, RQ, NULL, NULL), 0);
    assert_true(fake_host_watched(&f->h, 0) >= 0);
    /* Nothing to read: polling wakes nobody, the request stays. */
    assert_int_equal(fake_host_poll(&f->h, f->p, f->dev, 0), 0);
    /* A kick meanwhile does not busy-read. */
    fake_host_vq_kick(&f->h, f->p, f->dev, RQ);
    assert_int_equal(fake_host_vq_used(&f->h, RQ, NULL, NULL), 0);

    assert_int_equal(write(f->fifo_w, "12345", 5), 5);
    assert_int_equal(fake_host_poll(&f->h, f->p, f->dev, 1000), 1);
    assert_used(f, h, 5);
    assert_memory_equal(f->h.ram + a.gpa, "12345", 5);
    assert_int_equal(fake_host_watched(&f->h, 0), -1);
}

/* Reset while waiting for the source drops the request and the watch. */
static void test_reset_while_waiting(void **state)
{
    struct fx *f = *state;
    start_on_fifo(f);
    struct fake_vq_seg a = wbuf(f, 32);
    request(f, &a, 1);
    fake_host_vq_kick(&f->h, f->p, f->dev, RQ);
    int slot = fake_host_watched(&f->h, 0);
    assert_true(slot >= 0);
    int fd = f->h.fds[slot].fd;
    uint64_t token = f->h.fds[slot].token;

    fake_host_virtio_reset(&f->h, f->p, f->dev);
    assert_int_equal(fake_host_watched(&f->h, 0), -1);
    assert_int_equal(write(f->fifo_w, "abc", 3), 3);
    /* A wake-up already queued before the reset must neither touch the old
     * ring (the fake host counts stale pushes) nor consume the data. */
    f->p->ops->fd_ready(f->dev, fd, token, NIMBUS_EV_IN);

    assert_int_equal(fake_host_virtio_activate(&f->h, f->p, f->dev,
                                               NIMBUS_BIT(NIMBUS_VIRTIO_F_VERSION_1), 0),
                     0);
    struct fake_vq_seg b = wbuf(f, 32);
    int h = request(f, &b, 1);
    fake_host_vq_kick(&f->h, f->p, f->dev, RQ);
    assert_used(f, h, 3);
    assert_memory_equal(f->h.ram + b.gpa, "abc", 3);
}

static void test_malformed_chain(void **state)
{
    struct fx *f = *state;
    start(f, "");
    struct fake_vq_seg bad = {RAM - 4, 64, 1};
    request(f, &bad, 1);
    fake_host_vq_kick(&f->h, f->p, f->dev, RQ);
    assert_true(f->h.virtio.device_needs_reset);
    assert_int_equal(fake_host_vq_used(&f->h, RQ, NULL, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_info, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fills_from_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_writable_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_activation_defers_work_to_the_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_source_ends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_source, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_is_capped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blocking_source, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_while_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_chain, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
