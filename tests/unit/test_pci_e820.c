/*
 * e820_build_extra: the PCI ECAM area as a reserved entry next to the
 * built-in map (Linux refuses MMCONFIG unless the firmware reserves it),
 * and every way an extra entry can be wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "boot/e820.h"
#include "layout.h"
#include "memory.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

static struct guest_mem fake_mem(uint64_t size)
{
    struct guest_mem gm;
    memset(&gm, 0, sizeof(gm));
    int n = gm_layout(size, gm.regions, GUEST_MEM_MAX_REGIONS);
    assert_true(n > 0);
    gm.nregions = (unsigned)n;
    gm.ram_size = size;
    gm.memfd = -1;
    return gm;
}

static void check_sorted(const struct e820_entry *e, int n)
{
    for (int i = 0; i < n; i++) {
        assert_true(e[i].size > 0);
        if (i > 0)
            assert_true(e[i - 1].addr + e[i - 1].size <= e[i].addr);
    }
}

/* Field by field: the struct has padding. */
static void assert_same(const struct e820_entry *a, const struct e820_entry *b)
{
    assert_int_equal(a->addr, b->addr);
    assert_int_equal(a->size, b->size);
    assert_int_equal(a->type, b->type);
}

static const struct e820_entry ecam = {LAYOUT_PCI_ECAM, MiB, E820_RESERVED};

static void test_ecam_reserved(void **state)
{
    (void)state;
    const uint64_t sizes[] = {64 * MiB, 2 * GiB, 3 * GiB, 8 * GiB};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        struct guest_mem gm = fake_mem(sizes[s]);
        struct e820_entry base[E820_MAX_ENTRIES], e[E820_MAX_ENTRIES];
        int nb = e820_build(&gm, base, E820_MAX_ENTRIES);
        int n = e820_build_extra(&gm, &ecam, 1, e, E820_MAX_ENTRIES);
        assert_int_equal(n, nb + 1);
        check_sorted(e, n);
        /* The built-in entries are unchanged, the ECAM area sits among them. */
        int found = 0, k = 0;
        for (int i = 0; i < n; i++) {
            if (e[i].addr == ecam.addr) {
                assert_int_equal(e[i].size, MiB);
                assert_int_equal(e[i].type, E820_RESERVED);
                found++;
                continue;
            }
            assert_same(&e[i], &base[k]);
            k++;
        }
        assert_int_equal(found, 1);
        /* With RAM above 4 GiB, the ECAM entry precedes it. */
        if (sizes[s] > 3 * GiB)
            assert_int_equal(e[n - 1].addr, LAYOUT_RAM_ABOVE_4G);
    }
}

static void test_extra_is_optional(void **state)
{
    (void)state;
    struct guest_mem gm = fake_mem(1 * GiB);
    struct e820_entry a[E820_MAX_ENTRIES], b[E820_MAX_ENTRIES];
    int na = e820_build(&gm, a, E820_MAX_ENTRIES);
    int nb = e820_build_extra(&gm, NULL, 0, b, E820_MAX_ENTRIES);
    assert_int_equal(na, nb);
    for (int i = 0; i < na; i++)
        assert_same(&a[i], &b[i]);
}

static void test_bad_extras(void **state)
{
    (void)state;
    struct guest_mem gm = fake_mem(8 * GiB);
    struct e820_entry e[E820_MAX_ENTRIES];
    const struct e820_entry bad[] = {
        {0x200000, 0x1000, E820_RESERVED},                      /* inside low RAM */
        {LAYOUT_MMIO32_START - 0x1000, 0x2000, E820_RESERVED},  /* RAM end overlap */
        {LAYOUT_RAM_ABOVE_4G - 0x1000, 0x2000, E820_RESERVED},  /* into high RAM */
        {LAYOUT_ACPI_START, 0x1000, E820_RESERVED},              /* built-in reserved */
        {LAYOUT_PCI_ECAM, 0, E820_RESERVED},                     /* empty */
        {UINT64_MAX - 0xfff, 0x2000, E820_RESERVED},            /* wraps */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (e820_build_extra(&gm, &bad[i], 1, e, E820_MAX_ENTRIES) != -1)
            fail_msg("bad extra #%zu accepted", i);
    /* Two extras overlapping each other. */
    const struct e820_entry two[] = {ecam, {LAYOUT_PCI_ECAM + MiB - 1, 0x1000, E820_RESERVED}};
    assert_int_equal(e820_build_extra(&gm, two, 2, e, E820_MAX_ENTRIES), -1);
    /* Adjacent ones are fine, in any order. */
    const struct e820_entry adj[] = {{LAYOUT_PCI_ECAM + MiB, 0x1000, E820_RESERVED}, ecam};
    int n = e820_build_extra(&gm, adj, 2, e, E820_MAX_ENTRIES);
    assert_true(n > 0);
    check_sorted(e, n);
    /* The very top of the address space. */
    const struct e820_entry top = {UINT64_MAX - 0xfff, 0x1000, E820_RESERVED};
    n = e820_build_extra(&gm, &top, 1, e, E820_MAX_ENTRIES);
    assert_true(n > 0);
    assert_int_equal(e[n - 1].addr, UINT64_MAX - 0xfff);
    /* Bad arguments and no room. */
    int nb = e820_build(&gm, e, E820_MAX_ENTRIES);
    assert_int_equal(e820_build_extra(&gm, &ecam, 1, e, nb), -1);
    assert_int_equal(e820_build_extra(&gm, &ecam, 1, e, nb + 1), nb + 1);
    assert_int_equal(e820_build_extra(&gm, NULL, 1, e, E820_MAX_ENTRIES), -1);
    assert_int_equal(e820_build_extra(&gm, &ecam, -1, e, E820_MAX_ENTRIES), -1);
    assert_int_equal(e820_build_extra(NULL, &ecam, 1, e, E820_MAX_ENTRIES), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ecam_reserved),
        cmocka_unit_test(test_extra_is_optional),
        cmocka_unit_test(test_bad_extras),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
