/* PIO/MMIO dispatch: lookup, boundaries, overlaps, removal. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "bus.h"

struct hit {
    uint32_t region;
    uint64_t offset;
    uint32_t len;
    int is_write;
    int count;
};

static void record(void *opaque, uint32_t region, uint64_t offset, void *data, uint32_t len,
                   int is_write)
{
    struct hit *h = opaque;
    h->region = region;
    h->offset = offset;
    h->len = len;
    h->is_write = is_write;
    h->count++;
    if (!is_write)
        memset(data, 0xab, len);
}

static void test_dispatch_offsets(void **state)
{
    (void)state;
    struct bus b;
    bus_init(&b, "pio");
    struct hit h1 = {0}, h2 = {0};
    assert_int_equal(bus_add(&b, 0x3f8, 8, record, &h1, 3), 0);
    assert_int_equal(bus_add(&b, 0x60, 1, record, &h2, 0), 0);
    uint8_t v = 0x41;
    assert_int_equal(bus_access(&b, 0x3fd, &v, 1, 1), 0);
    assert_int_equal(h1.count, 1);
    assert_int_equal(h1.offset, 5);
    assert_int_equal(h1.region, 3);
    assert_true(h1.is_write);
    uint32_t r = 0;
    assert_int_equal(bus_access(&b, 0x3f8, &r, 4, 0), 0);
    assert_int_equal(r, 0xabababab);
    assert_int_equal(bus_access(&b, 0x60, &v, 1, 0), 0);
    assert_int_equal(h2.count, 1);
    bus_destroy(&b);
}

static void test_unclaimed_and_straddling(void **state)
{
    (void)state;
    struct bus b;
    bus_init(&b, "pio");
    struct hit h = {0};
    assert_int_equal(bus_add(&b, 0x100, 4, record, &h, 0), 0);
    uint32_t v = 0;
    assert_int_equal(bus_access(&b, 0xff, &v, 1, 0), -ENOENT);
    assert_int_equal(bus_access(&b, 0x104, &v, 1, 0), -ENOENT);
    /* Starts inside, ends outside: must not reach the device. */
    assert_int_equal(bus_access(&b, 0x102, &v, 4, 0), -ENOENT);
    assert_int_equal(bus_access(&b, 0x100, &v, 0, 0), -EINVAL);
    assert_int_equal(bus_access(&b, 0x100, &v, 9, 0), -EINVAL);
    assert_int_equal(h.count, 0);
    bus_destroy(&b);
}

static void test_overlap_rejected(void **state)
{
    (void)state;
    struct bus b;
    bus_init(&b, "mmio");
    struct hit h = {0};
    assert_int_equal(bus_add(&b, 0x1000, 0x100, record, &h, 0), 0);
    assert_int_equal(bus_add(&b, 0x10ff, 1, record, &h, 0), -EEXIST);
    assert_int_equal(bus_add(&b, 0xf00, 0x101, record, &h, 0), -EEXIST);
    assert_int_equal(bus_add(&b, 0x0, UINT64_MAX, record, &h, 0), -EEXIST);
    assert_int_equal(bus_add(&b, 0xf00, 0x100, record, &h, 0), 0);
    assert_int_equal(bus_add(&b, 0x1100, 0x100, record, &h, 0), 0);
    assert_int_equal(bus_add(&b, 0x5000, 0, record, &h, 0), -EINVAL);
    assert_int_equal(bus_add(&b, UINT64_MAX, 2, record, &h, 0), -EINVAL);
    bus_destroy(&b);
}

static void test_many_ranges_and_remove(void **state)
{
    (void)state;
    struct bus b;
    bus_init(&b, "mmio");
    static struct hit hits[500];
    memset(hits, 0, sizeof(hits));
    /* Insert in a scrambled order; lookups must find each by bisection. */
    for (uint32_t i = 0; i < 500; i++) {
        uint32_t k = (i * 7919u) % 500u;
        assert_int_equal(bus_add(&b, 0x100000ull + k * 0x1000ull, 0x800, record, &hits[k], k),
                         0);
    }
    for (uint32_t k = 0; k < 500; k++) {
        uint64_t v = 0;
        assert_int_equal(bus_access(&b, 0x100000ull + k * 0x1000ull + 0x7f8, &v, 8, 1), 0);
        assert_int_equal(hits[k].region, k);
        assert_int_equal(hits[k].offset, 0x7f8);
        assert_int_equal(bus_access(&b, 0x100000ull + k * 0x1000ull + 0x800, &v, 1, 1),
                         -ENOENT);
    }
    assert_int_equal(bus_remove(&b, 0x100000ull + 42 * 0x1000ull), 0);
    assert_int_equal(bus_remove(&b, 0x100000ull + 42 * 0x1000ull), -ENOENT);
    uint8_t v = 0;
    assert_int_equal(bus_access(&b, 0x100000ull + 42 * 0x1000ull, &v, 1, 0), -ENOENT);
    assert_int_equal(bus_access(&b, 0x100000ull + 43 * 0x1000ull, &v, 1, 0), 0);
    bus_destroy(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch_offsets),
        cmocka_unit_test(test_unclaimed_and_straddling),
        cmocka_unit_test(test_overlap_rejected),
        cmocka_unit_test(test_many_ranges_and_remove),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
