/* The loader accepts plugins of our ABI major with minor <= ours and refuses the rest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "device.h"

static const nimbus_plugin *load(const char *variant, char *err, size_t errlen)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/abi_%s.so", NIMBUS_TEST_ABI_PLUGIN_DIR, variant);
    err[0] = '\0';
    return plugin_load(path, NULL, err, errlen);
}

static void test_accepts_same_major_minor(void **state)
{
    (void)state;
    char err[512];
    const nimbus_plugin *p = load("good", err, sizeof(err));
    assert_non_null(p);
    assert_string_equal(p->name, "abitest");
    assert_string_equal(err, "");
}

static void test_refuses_newer_minor(void **state)
{
    (void)state;
    char err[512];
    assert_null(load("newminor", err, sizeof(err)));
    /* The fixture is built for the minor after ours (tests/unit/CMakeLists.txt). */
    char want[32];
    snprintf(want, sizeof(want), "needs ABI %u.%u", NIMBUS_ABI_MAJOR, NIMBUS_ABI_MINOR + 1);
    assert_non_null(strstr(err, want));
    assert_non_null(strstr(err, "abi_newminor.so"));
}

static void test_refuses_other_major_symbol(void **state)
{
    (void)state;
    char err[512];
    assert_null(load("major2", err, sizeof(err)));
    assert_non_null(strstr(err, "ABI major 2"));
}

static void test_refuses_major_mismatch_in_descriptor(void **state)
{
    (void)state;
    char err[512];
    assert_null(load("major2in1", err, sizeof(err)));
    assert_non_null(strstr(err, "major differs"));
}

static void test_refuses_missing_required_op(void **state)
{
    (void)state;
    char err[512];
    assert_null(load("noreset", err, sizeof(err)));
    assert_non_null(strstr(err, "lacks required ops"));
}

static void test_refuses_non_plugin(void **state)
{
    (void)state;
    char err[512];
    assert_null(load("nosymbol", err, sizeof(err)));
    assert_non_null(strstr(err, "not a nimbus plugin"));
}

static void test_missing_plugin_names_search_path(void **state)
{
    (void)state;
    char err[512] = "";
    const char *dirs[] = {"/nonexistent-a", "/nonexistent-b", NULL};
    assert_null(plugin_load("nosuchdevice", dirs, err, sizeof(err)));
    assert_non_null(strstr(err, "'nosuchdevice' not found"));
    assert_non_null(strstr(err, "/nonexistent-b"));
}

static void test_finds_plugin_by_name_in_dir(void **state)
{
    (void)state;
    char err[512] = "";
    const char *dirs[] = {"/nonexistent-a", NIMBUS_TEST_ABI_PLUGIN_DIR, NULL};
    assert_non_null(plugin_load("abi_good", dirs, err, sizeof(err)));
}

/* The frozen v1 layout: these offsets must never change within major 1. */
static void test_frozen_layout(void **state)
{
    (void)state;
    assert_int_equal(offsetof(nimbus_plugin, abi_major), 0);
    assert_int_equal(offsetof(nimbus_plugin, abi_minor), 4);
    assert_int_equal(offsetof(nimbus_plugin, struct_size), 8);
    assert_int_equal(offsetof(nimbus_plugin, name), 16);
    assert_int_equal(offsetof(nimbus_plugin, ops), 48);
    assert_int_equal(offsetof(nimbus_device_ops, create), 8);
    assert_int_equal(offsetof(nimbus_device_ops, destroy), 16);
    assert_int_equal(offsetof(nimbus_device_ops, reset), 24);
    assert_int_equal(offsetof(nimbus_device_ops, io_read), 32);
    assert_int_equal(offsetof(nimbus_device_ops, io_write), 40);
    assert_int_equal(offsetof(nimbus_device_ops, flush), 88);
    assert_int_equal(offsetof(nimbus_device_ops, virtio_info), 96);     /* minor 1 */
    assert_int_equal(offsetof(nimbus_device_ops, virtio_queue_notify), 128);
    assert_int_equal(offsetof(nimbus_device_ops, counters), 136);       /* minor 3 */
    assert_int_equal(offsetof(nimbus_device_ops, acpi_node), 144);      /* minor 4 */
    assert_int_equal(offsetof(nimbus_acpi_node, hid), 8);
    assert_int_equal(sizeof(nimbus_acpi_node), 16);
    assert_int_equal(offsetof(nimbus_host_api, log), 8);
    assert_int_equal(offsetof(nimbus_host_api, gpa_read), 16);
    assert_int_equal(offsetof(nimbus_host_api, irq_set_level), 40);
    assert_int_equal(offsetof(nimbus_host_api, request_shutdown), 112);
    assert_int_equal(sizeof(nimbus_region), 24);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_same_major_minor),
        cmocka_unit_test(test_refuses_newer_minor),
        cmocka_unit_test(test_refuses_other_major_symbol),
        cmocka_unit_test(test_refuses_major_mismatch_in_descriptor),
        cmocka_unit_test(test_refuses_missing_required_op),
        cmocka_unit_test(test_refuses_non_plugin),
        cmocka_unit_test(test_missing_plugin_names_search_path),
        cmocka_unit_test(test_finds_plugin_by_name_in_dir),
        cmocka_unit_test(test_frozen_layout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
