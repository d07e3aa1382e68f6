/*
 * The ACPI hotplug slot registers (hp_slots.c) through the PIO bus, as the
 * DSDT's methods use them: select, status, events found by CNXT and
 * acknowledged, ejects recorded once and reported, the boot vCPU and
 * absent vCPUs never ejected, out-of-range selectors and odd accesses
 * harmless, and the ports claimed and released.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "bus.h"
#include "hp_slots.h"
#include "layout.h"

#define PORT LAYOUT_PORT_CPU_HOTPLUG

struct rig {
    struct bus pio;
    struct hp_slots *c;
    unsigned ejects; /* callback calls */
};

static void on_eject(void *opaque)
{
    ((struct rig *)opaque)->ejects++;
}

/* As CPU hotplug uses them: slot 0 (the boot vCPU) is never ejected. */
static struct rig *rig_fixed(uint32_t n, uint32_t present, uint32_t fixed)
{
    struct rig *r = test_calloc(1, sizeof(*r));
    bus_init(&r->pio, "pio");
    char err[256];
    r->c = hps_create(&r->pio, PORT, n, present, fixed, on_eject, r, err, sizeof(err));
    assert_non_null(r->c);
    return r;
}

static struct rig *rig_new(uint32_t n, uint32_t present)
{
    return rig_fixed(n, present, 1);
}

static void rig_free(struct rig *r)
{
    hps_destroy(r->c);
    bus_destroy(&r->pio);
    test_free(r);
}

static void select_cpu(struct rig *r, uint32_t i)
{
    assert_int_equal(bus_access(&r->pio, PORT + HPS_REG_SEL, &i, 4, 1), 0);
}

static uint8_t status(struct rig *r)
{
    uint8_t v = 0xee;
    assert_int_equal(bus_access(&r->pio, PORT + HPS_REG_STATUS, &v, 1, 0), 0);
    return v;
}

static void command(struct rig *r, uint8_t v)
{
    assert_int_equal(bus_access(&r->pio, PORT + HPS_REG_STATUS, &v, 1, 1), 0);
}

static uint32_t next(struct rig *r)
{
    uint32_t v = 0;
    assert_int_equal(bus_access(&r->pio, PORT + HPS_REG_NEXT, &v, 4, 0), 0);
    return v;
}

static void test_boot_state(void **state)
{
    (void)state;
    struct rig *r = rig_new(4, 2);
    for (uint32_t i = 0; i < 4; i++) {
        select_cpu(r, i);
        uint32_t sel = 0;
        assert_int_equal(bus_access(&r->pio, PORT + HPS_REG_SEL, &sel, 4, 0), 0);
        assert_int_equal(sel, i);
        assert_int_equal(status(r), i < 2 ? HPS_ST_PRESENT : 0);
        assert_int_equal(hps_present(r->c, i), i < 2);
    }
    assert_int_equal(next(r), HPS_NONE);
    assert_false(hps_removal_pending(r->c));
    assert_int_equal(hps_take_ejected(r->c), HPS_NONE);
    rig_free(r);
}

/* What CSCN does: walk CNXT, acknowledge, until nothing is left. */
static void test_insert_and_scan(void **state)
{
    (void)state;
    struct rig *r = rig_new(8, 1);
    hps_plugged(r->c, 5);
    hps_plugged(r->c, 2);
    assert_int_equal(next(r), 2);
    select_cpu(r, 2);
    assert_int_equal(status(r), HPS_ST_PRESENT | HPS_ST_INSERT);
    /* Acknowledging a removal that is not there changes nothing. */
    command(r, HPS_ST_REMOVE);
    assert_int_equal(status(r), HPS_ST_PRESENT | HPS_ST_INSERT);
    command(r, HPS_ST_INSERT);
    assert_int_equal(status(r), HPS_ST_PRESENT);
    assert_int_equal(next(r), 5);
    select_cpu(r, 5);
    command(r, HPS_ST_INSERT);
    assert_int_equal(next(r), HPS_NONE);
    assert_true(hps_present(r->c, 5));
    /* Out of range: ignored by the host side too. */
    hps_plugged(r->c, 8);
    hps_unplug_request(r->c, 99);
    assert_int_equal(next(r), HPS_NONE);
    rig_free(r);
}

static void test_remove_and_eject(void **state)
{
    (void)state;
    struct rig *r = rig_new(4, 4);
    hps_unplug_request(r->c, 3);
    assert_true(hps_removal_pending(r->c));
    assert_int_equal(next(r), 3);
    select_cpu(r, 3);
    assert_int_equal(status(r), HPS_ST_PRESENT | HPS_ST_REMOVE);
    command(r, HPS_ST_REMOVE);
    assert_int_equal(next(r), HPS_NONE);
    /* Acknowledged but not ejected: still pending for the host. */
    assert_true(hps_removal_pending(r->c));
    assert_int_equal(r->ejects, 0);
    command(r, HPS_CMD_EJECT);
    assert_int_equal(r->ejects, 1);
    /* _STA right after _EJ0 must see the CPU gone. */
    assert_int_equal(status(r), 0);
    assert_false(hps_present(r->c, 3));
    /* A second eject of the absent CPU is not reported again. */
    command(r, HPS_CMD_EJECT);
    assert_int_equal(r->ejects, 1);
    assert_true(hps_removal_pending(r->c));
    assert_int_equal(hps_take_ejected(r->c), 3);
    assert_int_equal(hps_take_ejected(r->c), HPS_NONE);
    assert_false(hps_removal_pending(r->c));
    /* Plugged again: present with an insert event. */
    hps_plugged(r->c, 3);
    assert_int_equal(status(r), HPS_ST_PRESENT | HPS_ST_INSERT);
    /* A removal request for an absent CPU is no request. */
    hps_unplug_request(r->c, 3);
    command(r, HPS_CMD_EJECT);
    hps_take_ejected(r->c);
    hps_unplug_request(r->c, 3);
    assert_false(hps_removal_pending(r->c));
    rig_free(r);
}

/* The guest may eject a CPU nobody asked for (sysfs eject); never CPU 0. */
static void test_guest_ejects(void **state)
{
    (void)state;
    struct rig *r = rig_new(3, 3);
    select_cpu(r, 0);
    command(r, HPS_CMD_EJECT | HPS_ST_INSERT | HPS_ST_REMOVE);
    assert_int_equal(status(r), HPS_ST_PRESENT);
    assert_int_equal(r->ejects, 0);
    select_cpu(r, 1);
    command(r, HPS_CMD_EJECT);
    assert_int_equal(r->ejects, 1);
    select_cpu(r, 2);
    command(r, HPS_CMD_EJECT);
    assert_int_equal(r->ejects, 2);
    assert_int_equal(hps_take_ejected(r->c), 1);
    assert_int_equal(hps_take_ejected(r->c), 2);
    assert_int_equal(hps_take_ejected(r->c), HPS_NONE);
    rig_free(r);
}

/* Memory hotplug: no slot can be ejected, whatever the guest writes. */
static void test_all_fixed(void **state)
{
    (void)state;
    struct rig *r = rig_fixed(4, 2, 4);
    for (uint32_t i = 0; i < 4; i++) {
        select_cpu(r, i);
        command(r, HPS_CMD_EJECT);
    }
    assert_int_equal(r->ejects, 0);
    assert_true(hps_present(r->c, 0) && hps_present(r->c, 1));
    assert_int_equal(hps_take_ejected(r->c), HPS_NONE);
    rig_free(r);
}

static void test_hostile_accesses(void **state)
{
    (void)state;
    struct rig *r = rig_new(2, 1);
    hps_plugged(r->c, 1);
    /* Selectors past the vCPUs: status 0, commands ignored. */
    select_cpu(r, 2);
    assert_int_equal(status(r), 0);
    command(r, 0xff);
    select_cpu(r, 0xffffffffu);
    assert_int_equal(status(r), 0);
    command(r, 0xff);
    assert_int_equal(r->ejects, 0);
    /* Wrong widths and offsets read as ones and write nothing. */
    uint64_t q = 0;
    assert_int_equal(bus_access(&r->pio, PORT + HPS_REG_SEL, &q, 8, 0), 0);
    assert_true(q == ~0ull);
    uint16_t w = 0;
    assert_int_equal(bus_access(&r->pio, PORT + HPS_REG_SEL + 1, &w, 2, 0), 0);
    assert_int_equal(w, 0xffff);
    uint32_t d = 1;
    assert_int_equal(bus_access(&r->pio, PORT + HPS_REG_STATUS, &d, 1, 0), 0);
    d = 1;
    assert_int_equal(bus_access(&r->pio, PORT + HPS_REG_NEXT, &d, 4, 1), 0);
    uint8_t b = HPS_CMD_EJECT;
    assert_int_equal(bus_access(&r->pio, PORT + HPS_REG_SEL, &b, 1, 1), 0);
    assert_int_equal(next(r), 1);
    select_cpu(r, 1);
    assert_int_equal(status(r), HPS_ST_PRESENT | HPS_ST_INSERT);
    /* Nothing outside the 9 bytes is claimed. */
    assert_true(bus_access(&r->pio, PORT + HPS_PORT_LEN, &b, 1, 0) < 0);
    assert_true(bus_access(&r->pio, PORT - 1, &b, 1, 0) < 0);
    rig_free(r);
}

static void test_create_failures(void **state)
{
    (void)state;
    struct bus pio;
    bus_init(&pio, "pio");
    char err[256];
    struct rig dummy = {0};
    assert_null(hps_create(&pio, PORT, 0, 0, 0, on_eject, &dummy, err, sizeof(err)));
    assert_null(hps_create(&pio, PORT, 2, 3, 0, on_eject, &dummy, err, sizeof(err)));
    assert_null(hps_create(&pio, PORT, 2, 1, 0, NULL, &dummy, err, sizeof(err)));
    struct hp_slots *c = hps_create(&pio, PORT, 2, 1, 0, on_eject, &dummy, err, sizeof(err));
    assert_non_null(c);
    /* The ports are taken. */
    assert_null(hps_create(&pio, PORT + 4, 2, 1, 0, on_eject, &dummy, err, sizeof(err)));
    assert_non_null(strstr(err, "cannot claim"));
    hps_destroy(c);
    /* Released: they can be claimed again. */
    c = hps_create(&pio, PORT, 2, 1, 0, on_eject, &dummy, err, sizeof(err));
    assert_non_null(c);
    hps_destroy(c);
    hps_destroy(NULL);
    bus_destroy(&pio);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_boot_state),
        cmocka_unit_test(test_insert_and_scan),
        cmocka_unit_test(test_remove_and_eject),
        cmocka_unit_test(test_guest_ejects),
        cmocka_unit_test(test_all_fixed),
        cmocka_unit_test(test_hostile_accesses),
        cmocka_unit_test(test_create_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
