/* Guest RAM layout, mapping and the overflow-safe accessors. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sys/mman.h>

#include "layout.h"
#include "memory.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

static void test_layout_sizes(void **state)
{
    (void)state;
    struct guest_region r[GUEST_MEM_MAX_REGIONS];

    assert_int_equal(gm_layout(512 * MiB, r, GUEST_MEM_MAX_REGIONS), 1);
    assert_int_equal(r[0].gpa, 0);
    assert_int_equal(r[0].size, 512 * MiB);

    assert_int_equal(gm_layout(3 * GiB, r, GUEST_MEM_MAX_REGIONS), 1);
    assert_int_equal(r[0].size, 3 * GiB);

    assert_int_equal(gm_layout(4 * GiB, r, GUEST_MEM_MAX_REGIONS), 2);
    assert_int_equal(r[0].gpa, 0);
    assert_int_equal(r[0].size, 3 * GiB);
    assert_int_equal(r[1].gpa, 4 * GiB);
    assert_int_equal(r[1].size, 1 * GiB);

    assert_int_equal(gm_layout(8 * GiB, r, GUEST_MEM_MAX_REGIONS), 2);
    assert_int_equal(r[0].size, 3 * GiB);
    assert_int_equal(r[1].gpa, LAYOUT_RAM_ABOVE_4G);
    assert_int_equal(r[1].size, 5 * GiB);
    /* Nothing of the layout ever lands in the hole. */
    assert_true(r[0].gpa + r[0].size <= LAYOUT_MMIO32_START);
    assert_true(r[1].gpa >= LAYOUT_MMIO32_END);
}

static void test_layout_rejects(void **state)
{
    (void)state;
    struct guest_region r[GUEST_MEM_MAX_REGIONS];

    assert_int_equal(gm_layout(0, r, GUEST_MEM_MAX_REGIONS), -1);
    assert_int_equal(gm_layout(UINT64_MAX, r, GUEST_MEM_MAX_REGIONS), -1);
    assert_int_equal(gm_layout(1ull << 52, r, GUEST_MEM_MAX_REGIONS), -1);
    assert_int_equal(gm_layout(4 * GiB, r, 1), -1); /* needs two regions */
    assert_int_equal(gm_layout(4 * GiB, NULL, 2), -1);
    assert_int_equal(gm_layout(1 * GiB, r, 1), 1);
}

static void test_ptr_bounds(void **state)
{
    (void)state;
    const uint64_t size = 64 * 1024;
    uint8_t *buf = calloc(1, size);
    struct guest_mem gm;

    assert_non_null(buf);
    assert_int_equal(gm_wrap(&gm, buf, size), 0);
    assert_int_equal(gm.nregions, 1);
    assert_ptr_equal(gm_ptr(&gm, 0, 0), buf);
    assert_ptr_equal(gm_ptr(&gm, 0, size), buf);
    assert_ptr_equal(gm_ptr(&gm, size - 1, 1), buf + size - 1);
    assert_ptr_equal(gm_ptr(&gm, size, 0), buf + size); /* exactly at the end */
    assert_null(gm_ptr(&gm, size, 1));
    assert_null(gm_ptr(&gm, size - 1, 2));
    assert_null(gm_ptr(&gm, 0, size + 1));
    assert_null(gm_ptr(&gm, size + 1, 0));
    /* gpa + len wrapping around 2^64 must not look like a small range. */
    assert_null(gm_ptr(&gm, 1, UINT64_MAX));
    assert_null(gm_ptr(&gm, UINT64_MAX, 2));
    assert_null(gm_ptr(&gm, UINT64_MAX, 0));
    assert_null(gm_ptr(&gm, 16, UINT64_MAX - 8));
    assert_null(gm_ptr(NULL, 0, 1));
    gm_unmap(&gm); /* must not free the caller's buffer */
    buf[0] = 1;
    free(buf);
}

/* Whatever gm_ptr returns lies inside the mapping, for many odd inputs. */
static void test_ptr_never_outside(void **state)
{
    (void)state;
    const uint64_t size = 8192;
    uint8_t *buf = calloc(1, size);
    struct guest_mem gm;
    const uint64_t vals[] = {0, 1, 2, 4095, 4096, 8191, 8192, 8193, 1ull << 32,
                             1ull << 63, UINT64_MAX - 1, UINT64_MAX, UINT64_MAX - 8191};

    assert_int_equal(gm_wrap(&gm, buf, size), 0);
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        for (size_t j = 0; j < sizeof(vals) / sizeof(vals[0]); j++) {
            uint8_t *p = gm_ptr(&gm, vals[i], vals[j]);
            if (!p)
                continue;
            assert_true(p >= buf);
            assert_true((uint64_t)(p - buf) + vals[j] <= size);
        }
    }
    free(buf);
}

static void test_read_write(void **state)
{
    (void)state;
    const uint64_t size = 4096;
    uint8_t *buf = calloc(1, size), out[8], in[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    struct guest_mem gm;

    assert_int_equal(gm_wrap(&gm, buf, size), 0);
    assert_int_equal(gm_write(&gm, size - 8, in, 8), 0);
    assert_memory_equal(buf + size - 8, in, 8);
    assert_int_equal(gm_read(&gm, size - 8, out, 8), 0);
    assert_memory_equal(out, in, 8);

    /* A write crossing the end fails and leaves memory untouched. */
    memset(buf, 0, size);
    assert_int_equal(gm_write(&gm, size - 4, in, 8), -EFAULT);
    for (uint64_t i = 0; i < size; i++)
        assert_int_equal(buf[i], 0);
    assert_int_equal(gm_read(&gm, size - 4, out, 8), -EFAULT);
    assert_int_equal(gm_write(&gm, UINT64_MAX - 2, in, 8), -EFAULT);
    assert_int_equal(gm_read(&gm, 8, out, UINT64_MAX), -EFAULT);
    assert_int_equal(gm_write(&gm, 0, in, 0), 0);
    assert_int_equal(gm_low_ram_end(&gm), size);
    free(buf);
}

/* 4 GiB + 64 MiB: the high region sits right after the low one in the host. */
static void test_map_high_and_hole(void **state)
{
    (void)state;
    const uint64_t size = 3 * GiB + 64 * MiB;
    struct memory_config cfg = {.size = size, .thp = 1};
    struct guest_mem gm;
    uint32_t v = 0xdeadbeef, r = 0;
    uint8_t two[8] = {0};

    assert_int_equal(gm_map(&gm, &cfg), 0);
    /* 2 MiB-aligned so that KVM and THP can use huge pages for the guest. */
    assert_int_equal((uintptr_t)gm.base % (2 * MiB), 0);
    assert_int_equal(gm.nregions, 2);
    assert_int_equal(gm.mapped, size);
    assert_int_equal(gm.ram_size, size);
    assert_int_equal(gm.memfd, -1);
    assert_ptr_equal(gm.regions[0].host, gm.base);
    assert_ptr_equal(gm.regions[1].host, gm.base + 3 * GiB);
    assert_int_equal(gm_low_ram_end(&gm), 3 * GiB);

    /* The hole is not RAM, in any way of asking. */
    assert_null(gm_ptr(&gm, 3 * GiB, 1));
    assert_null(gm_ptr(&gm, 4 * GiB - 1, 1));
    assert_null(gm_ptr(&gm, 3 * GiB - 4, 8));
    assert_int_equal(gm_write(&gm, 3 * GiB - 4, two, 8), -EFAULT);
    assert_int_equal(gm_read(&gm, LAYOUT_IOAPIC, two, 4), -EFAULT);
    assert_null(gm_ptr(&gm, 4 * GiB + 64 * MiB, 1));
    assert_int_equal(gm_write(&gm, 4 * GiB + 64 * MiB - 4, two, 8), -EFAULT);

    assert_ptr_equal(gm_ptr(&gm, 4 * GiB, 4), gm.base + 3 * GiB);
    assert_int_equal(gm_write(&gm, 4 * GiB, &v, 4), 0);
    assert_memory_equal(gm.base + 3 * GiB, &v, 4);
    assert_int_equal(gm_read(&gm, 4 * GiB, &r, 4), 0);
    assert_int_equal(r, v);
    gm_unmap(&gm);
    assert_null(gm.base);
    gm_unmap(&gm); /* twice is harmless */
}

static void test_map_shared_memfd(void **state)
{
    (void)state;
    struct memory_config cfg = {.size = 16 * MiB, .shared = 1, .prefault = 1, .mergeable = 1};
    struct guest_mem gm;
    uint64_t v = 0x1122334455667788ull, r = 0;

    assert_int_equal(gm_map(&gm, &cfg), 0);
    assert_int_equal((uintptr_t)gm.base % (2 * MiB), 0);
    assert_true(gm.memfd >= 0);
    assert_int_equal(gm.nregions, 1);
    assert_int_equal(gm_write(&gm, 16 * MiB - 8, &v, 8), 0);
    /* The memfd really backs the mapping (vhost-user style sharing). */
    assert_int_equal(pread(gm.memfd, &r, 8, 16 * MiB - 8), 8);
    assert_int_equal(r, v);
    gm_unmap(&gm);
    assert_int_equal(gm.memfd, -1);
}

/* The hotplug area: reserved above RAM, RAM only as far as it is plugged. */
static void test_map_hotplug_area(void **state)
{
    (void)state;
    struct memory_config cfg = {.size = 64 * MiB, .shared = 1, .hotplug_size = 256 * MiB};
    struct guest_mem gm;
    uint64_t v = 0x0123456789abcdefull, r = 0, gpa = 0;

    assert_int_equal(gm_hotplug_base(64 * MiB), 4 * GiB);
    assert_int_equal(gm_hotplug_base(3 * GiB + 1), 5 * GiB);
    assert_int_equal(gm_hotplug_base(5 * GiB), 6 * GiB);
    assert_int_equal(gm_map(&gm, &cfg), 0);
    assert_int_equal(gm.hp.gpa, 4 * GiB);
    assert_int_equal(gm.hp.size, 256 * MiB);
    assert_ptr_equal(gm.hp.host, gm.base + 64 * MiB);
    assert_int_equal(gm.mapped, 320 * MiB);
    assert_int_equal(gm_top(&gm), 4 * GiB + 256 * MiB);
    assert_true(gm_overlaps(&gm, 4 * GiB + 200 * MiB, 4 * GiB + 200 * MiB));
    assert_true(gm_overlaps(&gm, 60 * MiB, 70 * MiB));
    assert_false(gm_overlaps(&gm, 64 * MiB, 4 * GiB - 1));
    assert_false(gm_overlaps(&gm, 4 * GiB + 256 * MiB, 5 * GiB));

    /* Nothing plugged: not RAM. */
    assert_null(gm_ptr(&gm, 4 * GiB, 1));
    assert_int_equal(gm_write(&gm, 4 * GiB, &v, 8), -EFAULT);
    assert_int_equal(gm_hotplug_grow(&gm, 128 * MiB, &gpa), 0);
    assert_int_equal(gpa, 4 * GiB);
    assert_ptr_equal(gm_ptr(&gm, 4 * GiB, 8), gm.hp.host);
    assert_int_equal(gm_write(&gm, 4 * GiB + 128 * MiB - 8, &v, 8), 0);
    /* The memfd backs it too, after boot RAM. */
    assert_int_equal(pread(gm.memfd, &r, 8, 64 * MiB + 128 * MiB - 8), 8);
    assert_int_equal(r, v);
    /* Past what is plugged: still not RAM, and no access straddles into it. */
    assert_null(gm_ptr(&gm, 4 * GiB + 128 * MiB, 1));
    assert_null(gm_ptr(&gm, 4 * GiB + 128 * MiB - 4, 8));
    assert_int_equal(gm_read(&gm, 4 * GiB + 128 * MiB - 4, &r, 8), -EFAULT);
    assert_int_equal(gm_hotplug_grow(&gm, 256 * MiB, &gpa), -ENOSPC);
    assert_int_equal(gm_hotplug_grow(&gm, 128 * MiB, &gpa), 0);
    assert_int_equal(gpa, 4 * GiB + 128 * MiB);
    assert_int_equal(gm_read(&gm, 4 * GiB + 128 * MiB - 8, &r, 8), 0);
    assert_int_equal(r, v);
    assert_null(gm_ptr(&gm, 4 * GiB + 256 * MiB, 1));
    assert_int_equal(gm_hotplug_grow(&gm, 1, &gpa), -ENOSPC);
    gm_unmap(&gm);

    /* The area comes in whole memory blocks. */
    cfg.hotplug_size = 64 * MiB;
    assert_int_equal(gm_map(&gm, &cfg), -EINVAL);
}

static int resident(const void *p)
{
    unsigned char v = 0;
    assert_int_equal(mincore((void *)((uintptr_t)p & ~(uintptr_t)4095), 4096, &v), 0);
    return v & 1;
}

/* prefault=on populates boot RAM at once and hotplug memory as it is plugged. */
static void test_map_hotplug_prefault(void **state)
{
    (void)state;
    struct memory_config cfg = {.size = 64 * MiB, .prefault = 1, .hotplug_size = 256 * MiB};
    struct guest_mem gm;
    assert_int_equal(gm_map(&gm, &cfg), 0);
    assert_true(resident(gm.base + 64 * MiB - 4096));
    assert_false(resident(gm.hp.host));
    assert_false(resident(gm.hp.host + 200 * MiB));
    assert_int_equal(gm_hotplug_grow(&gm, 128 * MiB, NULL), 0);
    assert_true(resident(gm.hp.host));
    assert_true(resident(gm.hp.host + 128 * MiB - 4096));
    assert_false(resident(gm.hp.host + 200 * MiB));
    gm_unmap(&gm);
}

static void test_map_rejects(void **state)
{
    (void)state;
    struct memory_config cfg = {.size = 0};
    struct guest_mem gm;

    assert_int_equal(gm_map(&gm, &cfg), -EINVAL);
    cfg.size = 16 * MiB + 100; /* not page granular */
    assert_int_equal(gm_map(&gm, &cfg), -EINVAL);
    cfg.size = 16 * MiB + 4096;
    cfg.hugepages = 1; /* not 2 MiB granular */
    assert_int_equal(gm_map(&gm, &cfg), -EINVAL);
    cfg.size = UINT64_MAX & ~4095ull;
    cfg.hugepages = 0;
    assert_int_equal(gm_map(&gm, &cfg), -EINVAL);
    assert_int_equal(gm_wrap(&gm, NULL, 4096), -EINVAL);
}

/* Hugepages may or may not be configured on the host: either works or fails cleanly. */
static void test_map_hugepages_clean(void **state)
{
    (void)state;
    struct memory_config cfg = {.size = 4 * MiB, .hugepages = 1};
    struct guest_mem gm;
    int rc = gm_map(&gm, &cfg);

    if (rc == 0) {
        assert_non_null(gm_ptr(&gm, 0, 4 * MiB));
        gm_unmap(&gm);
    } else {
        assert_true(rc < 0);
        assert_null(gm.base);
        assert_int_equal(gm.memfd, -1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_sizes),
        cmocka_unit_test(test_map_hotplug_area),
        cmocka_unit_test(test_map_hotplug_prefault),
        cmocka_unit_test(test_layout_rejects),
        cmocka_unit_test(test_ptr_bounds),
        cmocka_unit_test(test_ptr_never_outside),
        cmocka_unit_test(test_read_write),
        cmocka_unit_test(test_map_high_and_hole),
        cmocka_unit_test(test_map_shared_memfd),
        cmocka_unit_test(test_map_rejects),
        cmocka_unit_test(test_map_hugepages_clean),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
