/*
 * The counters op (plugin ABI 1.3) through device_counters: the plugin runs
 * under device-wide exclusion (its own lock and every I/O group lock), names
 * the ABI does not allow never reach the caller, errors come back as they
 * are, and a plugin built before minor 3 has no counters even when the
 * memory after its shorter ops table happens to hold a pointer.
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

#include <cmocka.h>

#include "device.h"
#include "eventloop.h"
#include "layout.h"
#include "memory.h"
#include "pci/pci.h"

/* ---- the plugins under test --------------------------------------------- */

static struct device *current;  /* the device whose op runs */
static int op_calls;
static int op_result;
static int locks_held;          /* every lock of `current` was held in the op */

static int t_create(const nimbus_host_api *h, void *hctx, const char *o, void **dev,
                    nimbus_region *r, uint32_t *n, char *err, uint32_t errlen)
{
    (void)h; (void)hctx; (void)o; (void)r; (void)err; (void)errlen;
    *n = 0;
    *dev = calloc(1, 1);
    return *dev ? 0 : -ENOMEM;
}
static void t_destroy(void *dev) { free(dev); }
static void t_reset(void *dev) { (void)dev; }

/* Busy is what trylock says of a mutex held, by this thread or another.
 * A lock that was free is given back, so a failing test does not hang. */
static int held(pthread_mutex_t *m)
{
    int r = pthread_mutex_trylock(m);
    if (r == 0)
        pthread_mutex_unlock(m);
    return r == EBUSY;
}

static int all_locked(struct device *d)
{
    int ok = held(&d->lock);
    for (uint32_t g = 0; g < d->ngroups; g++)
        ok &= held(&d->groups[g].lock);
    return ok;
}

static const char long31[] = "abcdefghijklmnopqrstuvwxyz_0123";
static const char long32[] = "abcdefghijklmnopqrstuvwxyz_01234";

static int t_counters(void *dev, void (*emit)(void *ctx, const char *name, uint64_t value),
                      void *ctx)
{
    (void)dev;
    op_calls++;
    locks_held = all_locked(current);
    emit(ctx, "read_bytes", 4096);
    emit(ctx, NULL, 1);
    emit(ctx, "", 2);
    emit(ctx, "Read_bytes", 3);
    emit(ctx, "rx bytes", 4);
    emit(ctx, "rx-bytes", 5);
    emit(ctx, "x\"}", 6);
    emit(ctx, "caf\xc3\xa9", 7);
    emit(ctx, long32, 8);
    emit(ctx, long31, UINT64_MAX);
    emit(ctx, "q7_ops", 0);
    return op_result;
}

static const nimbus_device_ops ops_with = {
    .struct_size = sizeof(nimbus_device_ops),
    .create = t_create,
    .destroy = t_destroy,
    .reset = t_reset,
    .counters = t_counters,
};

static const nimbus_device_ops ops_without = {
    .struct_size = sizeof(nimbus_device_ops),
    .create = t_create,
    .destroy = t_destroy,
    .reset = t_reset,
};

/* A 1.2 plugin's table is shorter: what follows it is not the plugin's. */
static const nimbus_device_ops ops_minor2 = {
    .struct_size = offsetof(nimbus_device_ops, counters),
    .create = t_create,
    .destroy = t_destroy,
    .reset = t_reset,
    .counters = t_counters,
};

static const nimbus_plugin p_with = {NIMBUS_ABI_MAJOR, NIMBUS_ABI_MINOR, sizeof(nimbus_plugin),
                                     0, "ctrtest", "0", "counters test", "", &ops_with};
static const nimbus_plugin p_without = {NIMBUS_ABI_MAJOR, NIMBUS_ABI_MINOR,
                                        sizeof(nimbus_plugin), 0, "ctrnone", "0",
                                        "no counters", "", &ops_without};
static const nimbus_plugin p_minor2 = {NIMBUS_ABI_MAJOR, 2, sizeof(nimbus_plugin), 0,
                                       "ctrold", "0", "a 1.2 plugin", "", &ops_minor2};

/* A virtio device with two I/O groups: its counters must exclude both. */
static int v_info(void *dev, nimbus_virtio_info *info)
{
    (void)dev;
    memset(info, 0, sizeof(*info));
    info->struct_size = sizeof(*info);
    info->device_id = 0x2b; /* no real device type: nothing else claims it */
    info->num_queues = 2;
    info->queue_size_max = 8;
    info->pci_class = 0xff0000;
    info->num_groups = 2;
    memset(info->queue_group, NIMBUS_VQ_GROUP_NONE, sizeof(info->queue_group));
    info->queue_group[0] = 0;
    info->queue_group[1] = 1;
    return 0;
}

static const nimbus_device_ops ops_virtio = {
    .struct_size = sizeof(nimbus_device_ops),
    .create = t_create,
    .destroy = t_destroy,
    .reset = t_reset,
    .virtio_info = v_info,
    .counters = t_counters,
};

static const nimbus_plugin p_virtio = {NIMBUS_ABI_MAJOR, NIMBUS_ABI_MINOR,
                                       sizeof(nimbus_plugin), 0, "virtio_ctr", "0",
                                       "grouped counters test", "", &ops_virtio};

/* ---- what the caller sees ----------------------------------------------- */

struct seen {
    int n;
    char name[16][64];
    uint64_t value[16];
};

static void collect(void *ctx, const char *name, uint64_t value)
{
    struct seen *s = ctx;
    if (s->n < 16) {
        snprintf(s->name[s->n], sizeof(s->name[s->n]), "%s", name);
        s->value[s->n] = value;
    }
    s->n++;
}

static struct device *make(const nimbus_plugin *p, const struct device_env *env)
{
    char err[256] = "";
    struct device *d = device_create(p, "", env, NULL, err, sizeof(err));
    if (!d)
        fail_msg("%s", err);
    current = d;
    op_calls = 0;
    op_result = 0;
    locks_held = 0;
    return d;
}

static void test_valid_names_in_order_under_the_lock(void **state)
{
    (void)state;
    struct device_env env = {0};
    struct device *d = make(&p_with, &env);
    struct seen s = {0};
    assert_int_equal(device_counters(d, collect, &s), 0);
    assert_int_equal(op_calls, 1);
    assert_true(locks_held);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.name[0], "read_bytes");
    assert_int_equal(s.value[0], 4096);
    assert_string_equal(s.name[1], long31);
    assert_true(s.value[1] == UINT64_MAX);
    assert_string_equal(s.name[2], "q7_ops");
    assert_int_equal(s.value[2], 0);
    /* The lock is free again afterwards. */
    assert_false(held(&d->lock));
    device_destroy(d);
}

static void test_op_error_comes_back(void **state)
{
    (void)state;
    struct device_env env = {0};
    struct device *d = make(&p_with, &env);
    op_result = -EIO;
    struct seen s = {0};
    assert_int_equal(device_counters(d, collect, &s), -EIO);
    assert_int_equal(op_calls, 1);
    device_destroy(d);
}

static void test_absent_op_is_enotsup(void **state)
{
    (void)state;
    struct device_env env = {0};
    struct device *d = make(&p_without, &env);
    struct seen s = {0};
    assert_int_equal(device_counters(d, collect, &s), -ENOTSUP);
    assert_int_equal(s.n, 0);
    device_destroy(d);

    /* The member lies beyond a 1.2 plugin's struct_size: never called. */
    char err[256] = "";
    assert_int_equal(plugin_check(&p_minor2, "test", err, sizeof(err)), 0);
    d = make(&p_minor2, &env);
    assert_null(d->ops.counters);
    assert_int_equal(device_counters(d, collect, &s), -ENOTSUP);
    assert_int_equal(op_calls, 0);
    device_destroy(d);
}

/* ---- a virtio device with I/O groups, behind the real transport ---------- */

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

static void test_groups_are_excluded(void **state)
{
    (void)state;
    static uint8_t ram[1u << 16];
    struct guest_mem gm;
    struct bus pio, mmio;
    assert_int_equal(gm_wrap(&gm, ram, sizeof(ram)), 0);
    bus_init(&pio, "pio");
    bus_init(&mmio, "mmio");
    struct event_loop *el = el_create();
    assert_non_null(el);
    assert_int_equal(el_start(el), 0);
    struct pci_windows w = {.ecam_base = LAYOUT_PCI_ECAM, .ecam_size = 1u << 20,
                            .mmio32_base = LAYOUT_MMIO32_START, .mmio32_size = 0x20000000,
                            .mmio64_base = 1ull << 32, .mmio64_size = 1ull << 32};
    char err[256] = "";
    struct pci_host *pci = pci_host_create(&pio, &mmio, &w, &msi_ops, NULL, err, sizeof(err));
    assert_non_null(pci);
    struct device_env env = {.mem = &gm, .el = el, .pio = &pio, .mmio = &mmio, .pci = pci};

    struct device *d = make(&p_virtio, &env);
    assert_int_equal(d->ngroups, 2);
    struct seen s = {0};
    assert_int_equal(device_counters(d, collect, &s), 0);
    assert_true(locks_held);
    assert_int_equal(s.n, 3);
    for (uint32_t g = 0; g < d->ngroups; g++)
        assert_false(held(&d->groups[g].lock));

    el_stop(el);
    device_destroy(d);
    pci_host_destroy(pci);
    el_destroy(el);
    bus_destroy(&pio);
    bus_destroy(&mmio);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_names_in_order_under_the_lock),
        cmocka_unit_test(test_op_error_comes_back),
        cmocka_unit_test(test_absent_op_is_enotsup),
        cmocka_unit_test(test_groups_are_excluded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
