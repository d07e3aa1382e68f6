/*
 * The CPU hotplug registers (cpu_hotplug.c) through the PIO bus, as the
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
#include "cpu_hotplug.h"
#include "layout.h"

#define PORT LAYOUT_PORT_CPU_HOTPLUG

struct rig {
    struct bus pio;
    struct cpuhp *c;
    unsigned ejects; /* callback calls */
};

static void on_eject(void *opaque)
{
    ((struct rig *)opaque)->ejects++;
}

static struct rig *rig_new(uint32_t n, uint32_t present)
{
    struct rig *r = test_calloc(1, sizeof(*r));
    bus_init(&r->pio, "pio");
    char err[256];
    r->c = cpuhp_create(&r->pio, PORT, n, present, on_eject, r, err, sizeof(err));
    assert_non_null(r->c);
    return r;
}

static void rig_free(struct rig *r)
{
    cpuhp_destroy(r->c);
    bus_destroy(&r->pio);
    test_free(r);
}

static void select_cpu(struct rig *r, uint32_t i)
{
    assert_int_equal(bus_access(&r->pio, PORT + CPUHP_REG_SEL, &i, 4, 1), 0);
}

static uint8_t status(struct rig *r)
{
    uint8_t v = 0xee;
    assert_int_equal(bus_access(&r->pio, PORT + CPUHP_REG_STATUS, &v, 1, 0), 0);
    return v;
}

static void command(struct rig *r, uint8_t v)
{
    assert_int_equal(bus_access(&r->pio, PORT + CPUHP_REG_STATUS, &v, 1, 1), 0);
}

static uint32_t next(struct rig *r)
{
    uint32_t v = 0;
    assert_int_equal(bus_access(&r->pio, PORT + CPUHP_REG_NEXT, &v, 4, 0), 0);
    return v;
}

static void test_boot_state(void **state)
{
    (void)state;
    struct rig *r = rig_new(4, 2);
    for (uint32_t i = 0; i < 4; i++) {
        select_cpu(r, i);
        uint32_t sel = 0;
        assert_int_equal(bus_access(&r->pio, PORT + CPUHP_REG_SEL, &sel, 4, 0), 0);
        assert_int_equal(sel, i);
        assert_int_equal(status(r), i < 2 ? CPUHP_ST_PRESENT : 0);
        assert_int_equal(cpuhp_present(r->c, i), i < 2);
    }
    assert_int_equal(next(r), CPUHP_NONE);
    assert_false(cpuhp_removal_pending(r->c));
    assert_int_equal(cpuhp_take_ejected(r->c), CPUHP_NONE);
    rig_free(r);
}

/* What CSCN does: walk CNXT, acknowledge, until nothing is left. */
static void test_insert_and_scan(void **state)
{
    (void)state;
    struct rig *r = rig_new(8, 1);
    cpuhp_plugged(r->c, 5);
    cpuhp_plugged(r->c, 2);
    assert_int_equal(next(r), 2);
    select_cpu(r, 2);
    assert_int_equal(status(r), CPUHP_ST_PRESENT | CPUHP_ST_INSERT);
    /* Acknowledging a removal that is not there changes nothing. */
    command(r, CPUHP_ST_REMOVE);
    assert_int_equal(status(r), CPUHP_ST_PRESENT | CPUHP_ST_INSERT);
    command(r, CPUHP_ST_INSERT);
    assert_int_equal(status(r), CPUHP_ST_PRESENT);
    assert_int_equal(next(r), 5);
    select_cpu(r, 5);
    command(r, CPUHP_ST_INSERT);
    assert_int_equal(next(r), CPUHP_NONE);
    assert_true(cpuhp_present(r->c, 5));
    /* Out of range: ignored by the host side too. */
    cpuhp_plugged(r->c, 8);
    cpuhp_unplug_request(r->c, 99);
    assert_int_equal(next(r), CPUHP_NONE);
    rig_free(r);
}

static void test_remove_and_eject(void **state)
{
    (void)state;
    struct rig *r = rig_new(4, 4);
    cpuhp_unplug_request(r->c, 3);
    assert_true(cpuhp_removal_pending(r->c));
    assert_int_equal(next(r), 3);
    select_cpu(r, 3);
    assert_int_equal(status(r), CPUHP_ST_PRESENT | CPUHP_ST_REMOVE);
    command(r, CPUHP_ST_REMOVE);
    assert_int_equal(next(r), CPUHP_NONE);
    /* Acknowledged but not ejected: still pending for the host. */
    assert_true(cpuhp_removal_pending(r->c));
    assert_int_equal(r->ejects, 0);
    command(r, CPUHP_CMD_EJECT);
    assert_int_equal(r->ejects, 1);
    /* _STA right after _EJ0 must see the CPU gone. */
    assert_int_equal(status(r), 0);
    assert_false(cpuhp_present(r->c, 3));
    /* A second eject of the absent CPU is not reported again. */
    command(r, CPUHP_CMD_EJECT);
    assert_int_equal(r->ejects, 1);
    assert_true(cpuhp_removal_pending(r->c));
    assert_int_equal(cpuhp_take_ejected(r->c), 3);
    assert_int_equal(cpuhp_take_ejected(r->c), CPUHP_NONE);
    assert_false(cpuhp_removal_pending(r->c));
    /* Plugged again: present with an insert event. */
    cpuhp_plugged(r->c, 3);
    assert_int_equal(status(r), CPUHP_ST_PRESENT | CPUHP_ST_INSERT);
    /* A removal request for an absent CPU is no request. */
    cpuhp_unplug_request(r->c, 3);
    command(r, CPUHP_CMD_EJECT);
    cpuhp_take_ejected(r->c);
    cpuhp_unplug_request(r->c, 3);
    assert_false(cpuhp_removal_pending(r->c));
    rig_free(r);
}

/* The guest may eject a CPU nobody asked for (sysfs eject); never CPU 0. */
static void test_guest_ejects(void **state)
{
    (void)state;
    struct rig *r = rig_new(3, 3);
    select_cpu(r, 0);
    command(r, CPUHP_CMD_EJECT | CPUHP_ST_INSERT | CPUHP_ST_REMOVE);
    assert_int_equal(status(r), CPUHP_ST_PRESENT);
    assert_int_equal(r->ejects, 0);
    select_cpu(r, 1);
    command(r, CPUHP_CMD_EJECT);
    assert_int_equal(r->ejects, 1);
    select_cpu(r, 2);
    command(r, CPUHP_CMD_EJECT);
    assert_int_equal(r->ejects, 2);
    assert_int_equal(cpuhp_take_ejected(r->c), 1);
    assert_int_equal(cpuhp_take_ejected(r->c), 2);
    assert_int_equal(cpuhp_take_ejected(r->c), CPUHP_NONE);
    rig_free(r);
}

static void test_hostile_accesses(void **state)
{
    (void)state;
    struct rig *r = rig_new(2, 1);
    cpuhp_plugged(r->c, 1);
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
    assert_int_equal(bus_access(&r->pio, PORT + CPUHP_REG_SEL, &q, 8, 0), 0);
    assert_true(q == ~0ull);
    uint16_t w = 0;
    assert_int_equal(bus_access(&r->pio, PORT + CPUHP_REG_SEL + 1, &w, 2, 0), 0);
    assert_int_equal(w, 0xffff);
    uint32_t d = 1;
    assert_int_equal(bus_access(&r->pio, PORT + CPUHP_REG_STATUS, &d, 1, 0), 0);
    d = 1;
    assert_int_equal(bus_access(&r->pio, PORT + CPUHP_REG_NEXT, &d, 4, 1), 0);
    uint8_t b = CPUHP_CMD_EJECT;
    assert_int_equal(bus_access(&r->pio, PORT + CPUHP_REG_SEL, &b, 1, 1), 0);
    assert_int_equal(next(r), 1);
    select_cpu(r, 1);
    assert_int_equal(status(r), CPUHP_ST_PRESENT | CPUHP_ST_INSERT);
    /* Nothing outside the 9 bytes is claimed. */
    assert_true(bus_access(&r->pio, PORT + CPUHP_PORT_LEN, &b, 1, 0) < 0);
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
    assert_null(cpuhp_create(&pio, PORT, 0, 0, on_eject, &dummy, err, sizeof(err)));
    assert_null(cpuhp_create(&pio, PORT, 2, 3, on_eject, &dummy, err, sizeof(err)));
    assert_null(cpuhp_create(&pio, PORT, 2, 1, NULL, &dummy, err, sizeof(err)));
    struct cpuhp *c = cpuhp_create(&pio, PORT, 2, 1, on_eject, &dummy, err, sizeof(err));
    assert_non_null(c);
    /* The ports are taken. */
    assert_null(cpuhp_create(&pio, PORT + 4, 2, 1, on_eject, &dummy, err, sizeof(err)));
    assert_non_null(strstr(err, "cannot claim"));
    cpuhp_destroy(c);
    /* Released: they can be claimed again. */
    c = cpuhp_create(&pio, PORT, 2, 1, on_eject, &dummy, err, sizeof(err));
    assert_non_null(c);
    cpuhp_destroy(c);
    cpuhp_destroy(NULL);
    bus_destroy(&pio);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_boot_state),
        cmocka_unit_test(test_insert_and_scan),
        cmocka_unit_test(test_remove_and_eject),
        cmocka_unit_test(test_guest_ejects),
        cmocka_unit_test(test_hostile_accesses),
        cmocka_unit_test(test_create_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
