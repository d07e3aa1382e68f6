/*
 * The event loop's lifetime rules, which device teardown (and hot-unplug)
 * rely on: el_unwatch never blocks, el_sync waits for a callback already
 * running on the loop thread, and neither deadlocks on the loop thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "eventloop.h"

struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int entered, released, calls, sync_in_callback_done;
    struct event_loop *el;
    int fd;
};

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void drain(int fd)
{
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof(v));
    (void)r;
}

static void kick(int fd)
{
    uint64_t one = 1;
    assert_int_equal(write(fd, &one, sizeof(one)), sizeof(one));
}

/* Holds the loop thread until the test opens the gate. */
static void blocking_cb(void *opaque, int fd, uint32_t revents)
{
    (void)revents;
    struct gate *g = opaque;
    drain(fd);
    pthread_mutex_lock(&g->lock);
    g->calls++;
    g->entered = 1;
    pthread_cond_broadcast(&g->cond);
    while (!g->released)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
}

struct syncer {
    struct event_loop *el;
    volatile int done;
};

static void *sync_thread(void *arg)
{
    struct syncer *s = arg;
    el_sync(s->el);
    __atomic_store_n(&s->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void test_sync_waits_for_running_callback(void **state)
{
    (void)state;
    struct gate g = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    struct event_loop *el = el_create();
    assert_non_null(el);
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(fd >= 0);
    assert_int_equal(el_watch(el, fd, EPOLLIN, blocking_cb, &g), 0);
    assert_int_equal(el_start(el), 0);

    /* Nothing running: el_sync returns at once. */
    el_sync(el);

    kick(fd);
    pthread_mutex_lock(&g.lock);
    while (!g.entered)
        pthread_cond_wait(&g.cond, &g.lock);
    pthread_mutex_unlock(&g.lock);

    /* The callback is running: unwatch must still return (a caller may hold
     * a lock the callback wants), and el_sync must not. */
    assert_int_equal(el_unwatch(el, fd), 0);
    assert_int_equal(el_unwatch(el, fd), -ENOENT);
    struct syncer s = {el, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, sync_thread, &s), 0);
    sleep_ms(100);
    assert_int_equal(__atomic_load_n(&s.done, __ATOMIC_ACQUIRE), 0);

    pthread_mutex_lock(&g.lock);
    g.released = 1;
    pthread_cond_broadcast(&g.cond);
    pthread_mutex_unlock(&g.lock);
    pthread_join(t, NULL);
    assert_int_equal(s.done, 1);

    /* Unwatched: more events never reach the callback. */
    kick(fd);
    sleep_ms(50);
    el_sync(el);
    assert_int_equal(g.calls, 1);

    el_destroy(el);
    close(fd);
}

static void self_sync_cb(void *opaque, int fd, uint32_t revents)
{
    (void)revents;
    struct gate *g = opaque;
    drain(fd);
    /* On the loop thread both return at once instead of waiting on ourselves. */
    el_unwatch(g->el, fd);
    el_sync(g->el);
    pthread_mutex_lock(&g->lock);
    g->sync_in_callback_done = 1;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

static void test_sync_from_the_loop_thread(void **state)
{
    (void)state;
    struct gate g = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    g.el = el_create();
    assert_non_null(g.el);
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(fd >= 0);
    assert_int_equal(el_watch(g.el, fd, EPOLLIN, self_sync_cb, &g), 0);
    assert_int_equal(el_start(g.el), 0);
    kick(fd);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&g.lock);
    int r = 0;
    while (!g.sync_in_callback_done && r != ETIMEDOUT)
        r = pthread_cond_timedwait(&g.cond, &g.lock, &until);
    pthread_mutex_unlock(&g.lock);
    assert_int_equal(g.sync_in_callback_done, 1);
    el_destroy(g.el);
    close(fd);
    /* A stopped loop or none: nothing to wait for. */
    el_sync(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sync_waits_for_running_callback),
        cmocka_unit_test(test_sync_from_the_loop_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
