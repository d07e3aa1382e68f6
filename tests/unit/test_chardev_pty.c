/* The pty character backend (--serial pty / --console pty) on a real event
 * loop thread, with the test playing the user's terminal on the slave. */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "chardev.h"
#include "eventloop.h"

/* What the "device" received; it takes at most `room` bytes per call. */
struct sink {
    pthread_mutex_t lock;
    char got[8192];
    size_t n;
    size_t room;
};

struct fx {
    struct event_loop *el;
    struct chardev *c;
    struct sink s;
};

static uint64_t sink_fn(void *opaque, const void *buf, uint64_t len)
{
    struct sink *s = opaque;
    pthread_mutex_lock(&s->lock);
    uint64_t n = len < s->room ? len : s->room;
    if (n > sizeof(s->got) - s->n)
        n = sizeof(s->got) - s->n;
    memcpy(s->got + s->n, buf, n);
    s->n += n;
    pthread_mutex_unlock(&s->lock);
    return n;
}

static size_t sink_len(struct fx *f)
{
    pthread_mutex_lock(&f->s.lock);
    size_t n = f->s.n;
    pthread_mutex_unlock(&f->s.lock);
    return n;
}

static void sink_room(struct fx *f, size_t room)
{
    pthread_mutex_lock(&f->s.lock);
    f->s.room = room;
    pthread_mutex_unlock(&f->s.lock);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    pthread_mutex_init(&f->s.lock, NULL);
    f->s.room = SIZE_MAX;
    f->el = el_create();
    assert_non_null(f->el);
    struct chr_config cfg = {.mode = CHR_PTY, .path = NULL};
    char err[256] = "";
    f->c = chr_open_named(&cfg, "test console", f->el, err, sizeof(err));
    if (!f->c)
        fail_msg("chr_open_named: %s", err);
    assert_int_equal(chr_attach(f->c, sink_fn, &f->s), 0);
    assert_int_equal(el_start(f->el), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    el_stop(f->el);
    chr_close(f->c);
    el_destroy(f->el);
    pthread_mutex_destroy(&f->s.lock);
    free(f);
    return 0;
}

static int open_slave(struct fx *f)
{
    int fd = open(chr_pty_name(f->c), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

/* Read until `want` bytes arrived or nothing came for `quiet_ms`. */
static size_t slurp(int fd, char *buf, size_t want, int quiet_ms)
{
    size_t n = 0;
    while (n < want) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, quiet_ms) <= 0)
            break;
        ssize_t r = read(fd, buf + n, want - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    return n;
}

static void wait_sink(struct fx *f, size_t n)
{
    for (int i = 0; i < 200 && sink_len(f) < n; i++)
        usleep(5000);
    assert_int_equal(sink_len(f), n);
}

static double cpu_seconds(void)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
           (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

static void test_name_and_raw_mode(void **state)
{
    struct fx *f = *state;
    const char *name = chr_pty_name(f->c);
    assert_non_null(name);
    assert_memory_equal(name, "/dev/pts/", 9);
    int fd = open_slave(f);
    struct termios t;
    assert_int_equal(tcgetattr(fd, &t), 0);
    /* The guest echoes and edits lines itself; ^C must arrive as a byte. */
    assert_int_equal(t.c_lflag & (ICANON | ECHO | ISIG), 0);
    assert_int_equal(t.c_oflag & OPOST, 0);
    close(fd);
}

/* Nobody attached: output waits in the ring, and the loop does not spin on
 * the master's hang-up. */
static void test_output_waits_for_client(void **state)
{
    struct fx *f = *state;
    assert_int_equal(chr_write(f->c, "boot log\r\n", 10), 10);
    double c0 = cpu_seconds();
    usleep(600000);
    assert_true(cpu_seconds() - c0 < 0.1);
    int fd = open_slave(f);
    char buf[64];
    assert_int_equal(slurp(fd, buf, 10, 1000), 10);
    assert_memory_equal(buf, "boot log\r\n", 10);
    close(fd);
}

static void test_input_reaches_device(void **state)
{
    struct fx *f = *state;
    int fd = open_slave(f);
    chr_write(f->c, "$ ", 2); /* wait until the backend saw the client */
    char buf[8];
    assert_int_equal(slurp(fd, buf, 2, 1000), 2);
    assert_int_equal(write(fd, "a\x03\x04", 3), 3);
    wait_sink(f, 3);
    assert_memory_equal(f->s.got, "a\x03\x04", 3);

    /* A full device: the bytes wait until it calls chr_input_ready. */
    sink_room(f, 0);
    assert_int_equal(write(fd, "xyz", 3), 3);
    usleep(100000);
    assert_int_equal(sink_len(f), 3);
    sink_room(f, SIZE_MAX);
    chr_input_ready(f->c);
    wait_sink(f, 6);
    assert_memory_equal(f->s.got + 3, "xyz", 3);
    close(fd);
}

/* A client that does not read: the backend refuses output (the device
 * keeps it) instead of dropping it, without spinning, and hands everything
 * over once the client reads. */
static void test_backpressure_from_slow_client(void **state)
{
    struct fx *f = *state;
    int fd = open_slave(f);
    chr_write(f->c, "!", 1);
    char one;
    assert_int_equal(slurp(fd, &one, 1, 1000), 1);
    static char chunk[65536];
    memset(chunk, 'q', sizeof(chunk));
    uint64_t taken = 0;
    for (int i = 0; i < 64; i++) {
        taken += (uint64_t)chr_write(f->c, chunk, sizeof(chunk));
        usleep(1000);
    }
    assert_true(taken < 64ull * sizeof(chunk));
    double c0 = cpu_seconds();
    usleep(300000);
    assert_true(cpu_seconds() - c0 < 0.1);
    static char back[4u << 20];
    assert_int_equal(slurp(fd, back, taken, 500), taken);
    close(fd);
}

/* Nobody attached and more than the ring holds: the newest 1 MiB is kept. */
static void test_keeps_newest_while_detached(void **state)
{
    struct fx *f = *state;
    static char data[2u << 20];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)(i / 4096);
    for (size_t off = 0; off < sizeof(data); off += 65536)
        assert_int_equal(chr_write(f->c, data + off, 65536), 65536);
    int fd = open_slave(f);
    static char back[2u << 20];
    size_t n = slurp(fd, back, sizeof(back), 700);
    assert_int_equal(n, 1u << 20);
    assert_memory_equal(back, data + (1u << 20), n);
    close(fd);
}

/* A client leaves and another comes: no spinning in between, and the new
 * one gets what was written meanwhile. */
static void test_reattach(void **state)
{
    struct fx *f = *state;
    int fd = open_slave(f);
    chr_write(f->c, "one", 3);
    char buf[16];
    assert_int_equal(slurp(fd, buf, 3, 1000), 3);
    close(fd);
    usleep(300000);
    double c0 = cpu_seconds();
    usleep(600000);
    assert_true(cpu_seconds() - c0 < 0.1);
    chr_write(f->c, "two", 3);
    fd = open_slave(f);
    assert_int_equal(slurp(fd, buf, 3, 1000), 3);
    assert_memory_equal(buf, "two", 3);
    assert_int_equal(write(fd, "k", 1), 1);
    wait_sink(f, 1);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_name_and_raw_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_waits_for_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_input_reaches_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure_from_slow_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keeps_newest_while_detached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reattach, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
