/*
 * I/O groups (plugin ABI 1.2): a virtio device that declares two groups gets
 * each group's queue kicks and fd watches on a thread of its own, the two
 * groups run at the same time, and device-wide calls never overlap them.
 * The device is a plugin written here, behind the real transport, PCI host
 * and event loops, driven the way a guest driver would.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "device.h"
#include "eventloop.h"
#include "layout.h"
#include "memory.h"
#include "nimbus/plugin_util.h"
#include "pci/pci.h"
#include "virtio/virtio_pci.h"

#define RAM_SIZE (1u << 20)
#define NQ 3 /* queue 0: group 0, queue 1: group 1, queue 2: device-wide */

/* ---- the device under test ---------------------------------------------- */

struct gdev {
    const nimbus_host_api *host;
    void *hctx;
    int efd; /* watched in group 1 from activate */
    pthread_t notify_thread[NQ];
    int notified[NQ];
    pthread_t fd_thread;
    int fd_ready;
    int armed; /* set by the test: kicks from now on meet inside the plugin */
    int met;   /* both group calls were inside the plugin at the same time */
    int inside;       /* group calls running now (atomic) */
    int overlap_wide; /* a device-wide call saw a group call running */
};

static struct gdev *the_dev;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int g_create(const nimbus_host_api *host, void *hctx, const char *options, void **dev,
                    nimbus_region *regions, uint32_t *nregions, char *err, uint32_t errlen)
{
    (void)options;
    (void)regions;
    (void)err;
    (void)errlen;
    struct gdev *g = calloc(1, sizeof(*g));
    g->host = host;
    g->hctx = hctx;
    g->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    *nregions = 0;
    *dev = g;
    the_dev = g;
    return 0;
}

static void g_destroy(void *dev)
{
    struct gdev *g = dev;
    close(g->efd);
    free(g);
}

static void g_reset(void *dev)
{
    struct gdev *g = dev;
    if (__atomic_load_n(&g->inside, __ATOMIC_SEQ_CST))
        g->overlap_wide = 1;
}

static int g_info(void *dev, nimbus_virtio_info *info)
{
    (void)dev;
    memset(info, 0, sizeof(*info));
    info->struct_size = sizeof(*info);
    info->device_id = 0x2a; /* not a real device type: nothing else claims it */
    info->num_queues = NQ;
    info->queue_size_max = 8;
    info->config_size = 4;
    info->pci_class = 0xff0000;
    info->num_groups = 2;
    info->queue_group[0] = 0;
    info->queue_group[1] = 1;
    info->queue_group[2] = NIMBUS_VQ_GROUP_NONE;
    return 0;
}

static int g_config_read(void *dev, uint64_t off, void *data, uint32_t len)
{
    struct gdev *g = dev;
    (void)off;
    if (__atomic_load_n(&g->inside, __ATOMIC_SEQ_CST))
        g->overlap_wide = 1;
    memset(data, 0x5a, len);
    return 0;
}

static int g_activate(void *dev, uint64_t features)
{
    struct gdev *g = dev;
    (void)features;
    assert_int_equal(g->host->fd_watch_group(g->hctx, 1, g->efd, NIMBUS_EV_IN, 77), 0);
    /* Groups are checked: there is no group 2. */
    assert_int_equal(g->host->fd_watch_group(g->hctx, 2, g->efd, NIMBUS_EV_IN, 1), -EINVAL);
    return 0;
}

static void g_notify(void *dev, uint32_t q)
{
    struct gdev *g = dev;
    if (q >= NQ)
        return;
    __atomic_add_fetch(&g->inside, 1, __ATOMIC_SEQ_CST);
    g->notify_thread[q] = pthread_self();
    __atomic_store_n(&g->notified[q], 1, __ATOMIC_SEQ_CST);
    /*
     * Only kicks the test sends itself: DRIVER_OK kicks every queue too, and
     * a device-wide call then taking the group locks one by one (the status
     * read right after it) could hold group 0 out while group 1 waits.
     */
    if (q < 2 && __atomic_load_n(&g->armed, __ATOMIC_SEQ_CST)) {
        /* Serialised groups would never be inside together: the wait runs out. */
        uint64_t end = now_ms() + 2000;
        while (__atomic_load_n(&g->inside, __ATOMIC_SEQ_CST) < 2 && now_ms() < end)
            usleep(1000);
        if (__atomic_load_n(&g->inside, __ATOMIC_SEQ_CST) >= 2)
            g->met = 1;
        usleep(20000); /* stay inside while the test pokes device-wide calls */
    }
    __atomic_sub_fetch(&g->inside, 1, __ATOMIC_SEQ_CST);
}

static void g_fd_ready(void *dev, int fd, uint64_t token, uint32_t revents)
{
    struct gdev *g = dev;
    uint64_t v;
    (void)revents;
    if (fd != g->efd || token != 77 || read(fd, &v, sizeof(v)) != sizeof(v))
        return;
    g->fd_thread = pthread_self();
    __atomic_store_n(&g->fd_ready, 1, __ATOMIC_SEQ_CST);
}

static const nimbus_device_ops gops = {
    .struct_size = sizeof(nimbus_device_ops),
    .create = g_create,
    .destroy = g_destroy,
    .reset = g_reset,
    .fd_ready = g_fd_ready,
    .virtio_info = g_info,
    .virtio_config_read = g_config_read,
    .virtio_activate = g_activate,
    .virtio_queue_notify = g_notify,
};

static const nimbus_plugin gplugin = {NIMBUS_ABI_MAJOR, NIMBUS_ABI_MINOR, sizeof(nimbus_plugin),
                                      0, "virtio_groups", "1", "I/O group test device", "",
                                      &gops};

/* ---- the machine around it --------------------------------------------- */

static int msi_alloc(void *o, uint32_t *h)
{
    static uint32_t next;
    (void)o;
    *h = next++;
    return 0;
}
static void msi_release(void *o, uint32_t h) { (void)o; (void)h; }
static int msi_route(void *o, uint32_t h, uint64_t a, uint32_t d)
{
    (void)o; (void)h; (void)a; (void)d;
    return 0;
}
static int msi_fire(void *o, uint32_t h) { (void)o; (void)h; return 0; }
static const struct pci_msi_ops msi_ops = {msi_alloc, msi_release, msi_route, msi_fire};

struct rig {
    uint8_t *ram;
    struct guest_mem gm;
    struct bus pio, mmio;
    struct event_loop *el;
    struct pci_host *pci;
    struct device_env env;
    struct device *dev;
    uint64_t bar;
};

static void wr(struct rig *r, uint64_t addr, uint32_t len, uint64_t v)
{
    uint8_t b[8];
    nimbus_le_store(b, len, v);
    assert_int_equal(bus_access(&r->mmio, addr, b, len, 1), 0);
}

static uint64_t rd(struct rig *r, uint64_t addr, uint32_t len)
{
    uint8_t b[8] = {0};
    assert_int_equal(bus_access(&r->mmio, addr, b, len, 0), 0);
    return nimbus_le_load(b, len);
}

static int setup(void **state)
{
    struct rig *r = calloc(1, sizeof(*r));
    r->ram = aligned_alloc(4096, RAM_SIZE);
    memset(r->ram, 0, RAM_SIZE);
    assert_int_equal(gm_wrap(&r->gm, r->ram, RAM_SIZE), 0);
    bus_init(&r->pio, "pio");
    bus_init(&r->mmio, "mmio");
    r->el = el_create();
    assert_non_null(r->el);
    assert_int_equal(el_start(r->el), 0);
    struct pci_windows w = {.ecam_base = LAYOUT_PCI_ECAM, .ecam_size = 1u << 20,
                            .mmio32_base = LAYOUT_MMIO32_START, .mmio32_size = 0x20000000,
                            .mmio64_base = 1ull << 32, .mmio64_size = 1ull << 32};
    char err[256] = "";
    r->pci = pci_host_create(&r->pio, &r->mmio, &w, &msi_ops, NULL, err, sizeof(err));
    assert_non_null(r->pci);
    r->env = (struct device_env){.mem = &r->gm, .el = r->el, .pio = &r->pio, .mmio = &r->mmio,
                                 .pci = r->pci};
    r->dev = device_create(&gplugin, "", &r->env, NULL, err, sizeof(err));
    if (!r->dev)
        fail_msg("%s", err);
    uint32_t slot = virtio_pci_slot(r->dev->virtio);
    uint32_t lo = pci_config_read(r->pci, 0, slot, 0, 0x10, 4);
    uint32_t hi = pci_config_read(r->pci, 0, slot, 0, 0x14, 4);
    r->bar = ((uint64_t)hi << 32) | (lo & ~0xfu);
    pci_config_write(r->pci, 0, slot, 0, 0x04, 2, 0x6);
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    struct rig *r = *state;
    el_stop(r->el);
    device_destroy(r->dev);
    pci_host_destroy(r->pci);
    el_destroy(r->el);
    bus_destroy(&r->pio);
    bus_destroy(&r->mmio);
    free(r->ram);
    free(r);
    return 0;
}

/* Negotiate VERSION_1, give every queue rings and set DRIVER_OK. */
static void driver_up(struct rig *r)
{
    uint64_t c = r->bar + VPCI_COMMON_OFF;
    wr(r, c + 0x14, 1, 0);
    wr(r, c + 0x14, 1, 1 | 2);
    wr(r, c + 0x08, 4, 1);
    wr(r, c + 0x0c, 4, 1);
    wr(r, c + 0x14, 1, 1 | 2 | 8);
    for (uint32_t q = 0; q < NQ; q++) {
        uint64_t base = 0x10000u + q * 0x1000u;
        wr(r, c + 0x16, 2, q);
        wr(r, c + 0x18, 2, 8);
        wr(r, c + 0x20, 8, base);
        wr(r, c + 0x28, 8, base + 0x200);
        wr(r, c + 0x30, 8, base + 0x400);
        wr(r, c + 0x1c, 2, 1);
    }
    wr(r, c + 0x14, 1, 1 | 2 | 8 | 4);
    assert_int_equal(rd(r, c + 0x14, 1), 1 | 2 | 8 | 4);
}

static int wait_flag(int *flag)
{
    uint64_t end = now_ms() + 5000;
    while (!__atomic_load_n(flag, __ATOMIC_SEQ_CST) && now_ms() < end)
        usleep(1000);
    return __atomic_load_n(flag, __ATOMIC_SEQ_CST);
}

static void test_groups_run_in_parallel_on_their_threads(void **state)
{
    struct rig *r = *state;
    driver_up(r);
    struct gdev *g = the_dev;
    usleep(20000); /* let the kicks DRIVER_OK sent drain */
    __atomic_store_n(&g->armed, 1, __ATOMIC_SEQ_CST);
    /* Kick queues 0 and 1 (no ioeventfd here: the notify write goes
     * through the BAR, and the transport signals the queue's kick fd). */
    wr(r, r->bar + VPCI_NOTIFY_OFF + 0 * VPCI_NOTIFY_MULT, 2, 0);
    wr(r, r->bar + VPCI_NOTIFY_OFF + 1 * VPCI_NOTIFY_MULT, 2, 1);
    /*
     * Device-wide calls while the group calls sit inside the plugin.  Only
     * once both are in: a device-wide call takes the group locks one by one,
     * so holding group 0's it would keep group 0 out while group 1 waits
     * for it, and the rendezvous above would time out on a loaded machine.
     */
    uint64_t end = now_ms() + 5000;
    while (__atomic_load_n(&g->inside, __ATOMIC_SEQ_CST) < 2 && now_ms() < end)
        usleep(500);
    for (int i = 0; i < 20; i++)
        rd(r, r->bar + VPCI_DEVCFG_OFF, 4);
    wr(r, r->bar + VPCI_NOTIFY_OFF + 2 * VPCI_NOTIFY_MULT, 2, 2);
    assert_true(wait_flag(&g->notified[0]));
    assert_true(wait_flag(&g->notified[1]));
    assert_true(wait_flag(&g->notified[2]));
    assert_true(g->met); /* group 0 and group 1 were inside at the same time */
    assert_false(g->overlap_wide);
    assert_false(pthread_equal(g->notify_thread[0], g->notify_thread[1]));
    assert_false(pthread_equal(g->notify_thread[0], pthread_self()));
    /* The device-wide queue runs on the main loop, not on a group thread. */
    assert_false(pthread_equal(g->notify_thread[2], g->notify_thread[0]));
    assert_false(pthread_equal(g->notify_thread[2], g->notify_thread[1]));

    /* A group-1 watch fires on group 1's thread. */
    uint64_t one = 1;
    assert_int_equal(write(g->efd, &one, sizeof(one)), (ssize_t)sizeof(one));
    assert_true(wait_flag(&g->fd_ready));
    assert_true(pthread_equal(g->fd_thread, g->notify_thread[1]));

    /* The threads carry the device's name, for ps, top and seccomp logs. */
    char name[16] = "";
    assert_int_equal(pthread_getname_np(g->notify_thread[1], name, sizeof(name)), 0);
    assert_string_equal(name, "groups_q1");
}

static void test_reset_excludes_group_calls(void **state)
{
    struct rig *r = *state;
    driver_up(r);
    struct gdev *g = the_dev;
    usleep(20000);
    __atomic_store_n(&g->armed, 1, __ATOMIC_SEQ_CST);
    wr(r, r->bar + VPCI_NOTIFY_OFF, 2, 0);
    wr(r, r->bar + VPCI_NOTIFY_OFF + VPCI_NOTIFY_MULT, 2, 1);
    uint64_t end = now_ms() + 5000;
    while (__atomic_load_n(&g->inside, __ATOMIC_SEQ_CST) < 2 && now_ms() < end)
        usleep(500);
    /* The driver resets the device while both groups are busy.  The write
     * does not wait for them (issue 19): the driver polls the status until
     * the reset, which waits for no group call to run, has ended. */
    wr(r, r->bar + VPCI_COMMON_OFF + 0x14, 1, 0);
    end = now_ms() + 5000;
    while (rd(r, r->bar + VPCI_COMMON_OFF + 0x14, 1) != 0 && now_ms() < end)
        usleep(500);
    assert_int_equal(rd(r, r->bar + VPCI_COMMON_OFF + 0x14, 1), 0);
    assert_false(g->overlap_wide);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_groups_run_in_parallel_on_their_threads, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reset_excludes_group_calls, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
