/* The E820 map: ordered, non-overlapping, all RAM listed, nothing in the hole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "boot/e820.h"
#include "layout.h"
#include "memory.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)

/* Only the regions matter to e820_build; no host memory is needed. */
static struct guest_mem fake_mem(uint64_t size)
{
    struct guest_mem gm;
    int n;

    memset(&gm, 0, sizeof(gm));
    n = gm_layout(size, gm.regions, GUEST_MEM_MAX_REGIONS);
    assert_true(n > 0);
    gm.nregions = (unsigned)n;
    gm.ram_size = size;
    gm.memfd = -1;
    return gm;
}

static uint64_t ram_total(const struct e820_entry *e, int n)
{
    uint64_t t = 0;
    for (int i = 0; i < n; i++)
        if (e[i].type == E820_RAM)
            t += e[i].size;
    return t;
}

/* Sorted, non-empty, non-overlapping, and no entry touches the 32-bit hole. */
static void check_well_formed(const struct e820_entry *e, int n)
{
    for (int i = 0; i < n; i++) {
        assert_true(e[i].size > 0);
        assert_true(e[i].type == E820_RAM || e[i].type == E820_RESERVED);
        assert_true(e[i].addr + e[i].size <= LAYOUT_MMIO32_START ||
                    e[i].addr >= LAYOUT_MMIO32_END);
        if (i > 0)
            assert_true(e[i - 1].addr + e[i - 1].size <= e[i].addr);
    }
}

static int find(const struct e820_entry *e, int n, uint64_t addr, uint64_t size, uint32_t type)
{
    for (int i = 0; i < n; i++)
        if (e[i].addr == addr && e[i].size == size && e[i].type == type)
            return 1;
    return 0;
}

/* RAM size minus the legacy area [EBDA, 1 MiB) that is not listed as RAM. */
static uint64_t expected_ram(uint64_t size)
{
    return size - (LAYOUT_HIGH_RAM - LAYOUT_EBDA_START);
}

static void test_small_memory(void **state)
{
    (void)state;
    struct guest_mem gm = fake_mem(512 * MiB);
    struct e820_entry e[E820_MAX_ENTRIES];
    int n = e820_build(&gm, e, E820_MAX_ENTRIES);

    assert_int_equal(n, 4);
    check_well_formed(e, n);
    assert_true(find(e, n, 0, LAYOUT_EBDA_START, E820_RAM));
    assert_true(find(e, n, LAYOUT_EBDA_START, 0xa0000 - LAYOUT_EBDA_START, E820_RESERVED));
    /* The ACPI tables' area is reserved so the kernel cannot reuse it. */
    assert_true(find(e, n, LAYOUT_ACPI_START, LAYOUT_HIGH_RAM - LAYOUT_ACPI_START,
                     E820_RESERVED));
    assert_true(find(e, n, LAYOUT_HIGH_RAM, 512 * MiB - LAYOUT_HIGH_RAM, E820_RAM));
    assert_int_equal(ram_total(e, n), expected_ram(512 * MiB));
}

static void test_exactly_3g(void **state)
{
    (void)state;
    struct guest_mem gm = fake_mem(3 * GiB);
    struct e820_entry e[E820_MAX_ENTRIES];
    int n = e820_build(&gm, e, E820_MAX_ENTRIES);

    assert_int_equal(n, 4);
    check_well_formed(e, n);
    assert_int_equal(e[n - 1].addr + e[n - 1].size, 3 * GiB);
    assert_int_equal(ram_total(e, n), expected_ram(3 * GiB));
}

static void test_large_memory(void **state)
{
    (void)state;
    const uint64_t sizes[] = {4 * GiB, 8 * GiB, 3 * GiB + 2 * MiB, 64 * GiB};

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct guest_mem gm = fake_mem(sizes[i]);
        struct e820_entry e[E820_MAX_ENTRIES];
        int n = e820_build(&gm, e, E820_MAX_ENTRIES);

        assert_int_equal(n, 5);
        check_well_formed(e, n);
        assert_true(find(e, n, LAYOUT_HIGH_RAM, 3 * GiB - LAYOUT_HIGH_RAM, E820_RAM));
        assert_true(find(e, n, LAYOUT_RAM_ABOVE_4G, sizes[i] - 3 * GiB, E820_RAM));
        assert_int_equal(ram_total(e, n), expected_ram(sizes[i]));
    }
}

/* Below 1 MiB only what exists is listed (fuzzers use tiny guests). */
static void test_tiny_memory(void **state)
{
    (void)state;
    struct e820_entry e[E820_MAX_ENTRIES];
    struct guest_mem gm = fake_mem(64 * KiB);
    int n = e820_build(&gm, e, E820_MAX_ENTRIES);

    assert_int_equal(n, 1);
    assert_true(find(e, n, 0, 64 * KiB, E820_RAM));

    gm = fake_mem(700 * KiB);
    n = e820_build(&gm, e, E820_MAX_ENTRIES);
    check_well_formed(e, n);
    assert_int_equal(n, 2);
    assert_true(find(e, n, 0, LAYOUT_EBDA_START, E820_RAM));
    assert_int_equal(ram_total(e, n), LAYOUT_EBDA_START);
}

static void test_too_small_table(void **state)
{
    (void)state;
    struct guest_mem gm = fake_mem(8 * GiB);
    struct e820_entry e[E820_MAX_ENTRIES];

    assert_int_equal(e820_build(&gm, e, 4), -1);
    assert_int_equal(e820_build(&gm, e, 0), -1);
    assert_int_equal(e820_build(NULL, e, E820_MAX_ENTRIES), -1);
    assert_int_equal(e820_build(&gm, e, 5), 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_memory),
        cmocka_unit_test(test_exactly_3g),
        cmocka_unit_test(test_large_memory),
        cmocka_unit_test(test_tiny_memory),
        cmocka_unit_test(test_too_small_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
