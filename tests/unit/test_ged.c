/*
 * The GED register (acpi/ged.c) and vm_power_button (vm_power.c): a press
 * raises the line once and sets the pending bit, a read returns and
 * clears the bits and lowers the line, writes change nothing, the port is
 * claimed and released, failures of the interrupt line are retried, and
 * under concurrent presses and reads the line is high exactly while an
 * event is pending.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "acpi/acpi.h"
#include "acpi/ged.h"
#include "bus.h"
#include "layout.h"
#include "vm.h"

#define PORT LAYOUT_PORT_ACPI_GED
#define GSI LAYOUT_GED_IRQ

/* A fake interrupt line: counts changes, rejects repeats, can fail on demand. */
struct line {
    pthread_mutex_t lock;
    uint32_t level;
    unsigned raises, lowers;
    unsigned repeats;   /* calls that drove the level it already had */
    unsigned bad_gsi;
    unsigned fail_next; /* fail this many calls with -EIO */
};

static int line_set(void *opaque, uint32_t gsi, uint32_t level)
{
    struct line *l = opaque;
    pthread_mutex_lock(&l->lock);
    int r = 0;
    if (gsi != GSI)
        l->bad_gsi++;
    if (l->fail_next) {
        l->fail_next--;
        r = -EIO;
    } else {
        if (level == l->level)
            l->repeats++;
        else if (level)
            l->raises++;
        else
            l->lowers++;
        l->level = level;
    }
    pthread_mutex_unlock(&l->lock);
    return r;
}

struct fixture {
    struct bus pio;
    struct line line;
    struct ged *g;
};

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof(f));
    pthread_mutex_init(&f.line.lock, NULL);
    bus_init(&f.pio, "pio");
    char err[128] = "";
    f.g = ged_create(&f.pio, PORT, GSI, line_set, &f.line, err, sizeof(err));
    if (!f.g)
        fail_msg("ged_create: %s", err);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    ged_destroy(f->g);
    bus_destroy(&f->pio);
    pthread_mutex_destroy(&f->line.lock);
    return 0;
}

/* What the guest's _EVT sees: one byte read from the port. */
static int read_reg(struct fixture *f, uint8_t *v)
{
    *v = 0xee;
    return bus_access(&f->pio, PORT, v, 1, 0);
}

static uint8_t read_ok(struct fixture *f)
{
    uint8_t v;
    assert_int_equal(read_reg(f, &v), 0);
    return v;
}

static void test_press_and_read(void **state)
{
    struct fixture *f = *state;

    /* Nothing pending: reads 0, the line is never touched. */
    assert_int_equal(read_ok(f), 0);
    assert_int_equal(f->line.raises + f->line.lowers + f->line.repeats, 0);

    ged_power_button(f->g);
    assert_int_equal(f->line.level, 1);
    assert_int_equal(f->line.raises, 1);
    /* A second press before the guest looked: same bit, line already high. */
    ged_power_button(f->g);
    assert_int_equal(f->line.raises, 1);
    assert_int_equal(f->line.repeats, 0);

    assert_int_equal(read_ok(f), ACPI_GED_EVT_POWER_BUTTON);
    assert_int_equal(f->line.level, 0);
    assert_int_equal(f->line.lowers, 1);
    /* Read-to-clear: the next read finds nothing and leaves the line alone. */
    assert_int_equal(read_ok(f), 0);
    assert_int_equal(f->line.lowers, 1);

    /* The next press raises the line again. */
    ged_power_button(f->g);
    assert_int_equal(f->line.raises, 2);
    assert_int_equal(read_ok(f), ACPI_GED_EVT_POWER_BUTTON);
    assert_int_equal(f->line.repeats, 0);
    assert_int_equal(f->line.bad_gsi, 0);
}

static void test_writes_and_widths(void **state)
{
    struct fixture *f = *state;

    /* Writes neither clear nor set events. */
    uint8_t v = 0xff;
    assert_int_equal(bus_access(&f->pio, PORT, &v, 1, 1), 0);
    assert_int_equal(f->line.level, 0);
    assert_int_equal(read_ok(f), 0);
    ged_power_button(f->g);
    v = 0;
    assert_int_equal(bus_access(&f->pio, PORT, &v, 1, 1), 0);
    assert_int_equal(f->line.level, 1);
    assert_int_equal(read_ok(f), ACPI_GED_EVT_POWER_BUTTON);

    /* The register is one byte: wider accesses and neighbours are not ours. */
    uint32_t w = 0;
    assert_int_equal(bus_access(&f->pio, PORT, &w, 2, 0), -ENOENT);
    assert_int_equal(bus_access(&f->pio, PORT + 1, &w, 1, 0), -ENOENT);
    assert_int_equal(bus_access(&f->pio, PORT - 1, &w, 2, 0), -ENOENT);
}

static void test_line_failure_retried(void **state)
{
    struct fixture *f = *state;

    /* Raising fails: the event stays pending and the next press tries again. */
    f->line.fail_next = 1;
    ged_power_button(f->g);
    assert_int_equal(f->line.level, 0);
    ged_power_button(f->g);
    assert_int_equal(f->line.level, 1);
    assert_int_equal(f->line.raises, 1);

    /* Lowering fails: the bits are still consumed; the next read lowers it. */
    f->line.fail_next = 1;
    assert_int_equal(read_ok(f), ACPI_GED_EVT_POWER_BUTTON);
    assert_int_equal(f->line.level, 1);
    assert_int_equal(read_ok(f), 0);
    assert_int_equal(f->line.level, 0);
    assert_int_equal(f->line.repeats, 0);
}

static void test_create_destroy(void **state)
{
    struct fixture *f = *state;
    char err[128];
    struct line l2 = {0};
    pthread_mutex_init(&l2.lock, NULL);

    /* The port is taken by the fixture's GED. */
    err[0] = 0;
    assert_null(ged_create(&f->pio, PORT, GSI, line_set, &l2, err, sizeof(err)));
    assert_non_null(strstr(err, "0x601"));
    err[0] = 0;
    assert_null(ged_create(NULL, PORT, GSI, line_set, &l2, err, sizeof(err)));
    assert_true(err[0] != 0);
    err[0] = 0;
    assert_null(ged_create(&f->pio, 0, GSI, line_set, &l2, err, sizeof(err)));
    assert_true(err[0] != 0);
    err[0] = 0;
    assert_null(ged_create(&f->pio, 0x700, GSI, NULL, &l2, err, sizeof(err)));
    assert_true(err[0] != 0);

    /* Destroy gives the port back; a new GED can take it. */
    ged_destroy(f->g);
    f->g = NULL;
    uint8_t v;
    assert_int_equal(read_reg(f, &v), -ENOENT);
    ged_destroy(NULL);
    f->g = ged_create(&f->pio, PORT, GSI, line_set, &f->line, err, sizeof(err));
    assert_non_null(f->g);
    assert_int_equal(read_ok(f), 0);
    pthread_mutex_destroy(&l2.lock);
}

/* ---- concurrency ------------------------------------------------------------ */

#define PRESSERS 4
#define PRESSES 20000

struct race {
    struct fixture *f;
    unsigned seen; /* reads that returned the power-button bit */
    unsigned bad;  /* reads that returned anything else but 0 */
    int stop;
    pthread_mutex_t lock;
};

static void *presser(void *arg)
{
    struct race *r = arg;
    for (int i = 0; i < PRESSES; i++)
        ged_power_button(r->f->g);
    return NULL;
}

static void *reader(void *arg)
{
    struct race *r = arg;
    for (;;) {
        pthread_mutex_lock(&r->lock);
        int stop = r->stop;
        pthread_mutex_unlock(&r->lock);
        if (stop)
            return NULL;
        uint8_t v;
        if (read_reg(r->f, &v) != 0 || (v != 0 && v != ACPI_GED_EVT_POWER_BUTTON))
            r->bad++;
        else if (v)
            r->seen++;
    }
}

static void test_concurrent(void **state)
{
    struct fixture *f = *state;
    struct race r = {.f = f};
    pthread_mutex_init(&r.lock, NULL);
    pthread_t p[PRESSERS], rd;

    assert_int_equal(pthread_create(&rd, NULL, reader, &r), 0);
    for (int i = 0; i < PRESSERS; i++)
        assert_int_equal(pthread_create(&p[i], NULL, presser, &r), 0);
    for (int i = 0; i < PRESSERS; i++)
        pthread_join(p[i], NULL);
    pthread_mutex_lock(&r.lock);
    r.stop = 1;
    pthread_mutex_unlock(&r.lock);
    pthread_join(rd, NULL);

    assert_int_equal(r.bad, 0);
    /* The line only ever alternated, and it is high exactly if a press is unread. */
    assert_int_equal(f->line.repeats, 0);
    assert_int_equal(f->line.raises, f->line.lowers + f->line.level);
    uint32_t level = f->line.level;
    assert_int_equal(read_ok(f), level ? ACPI_GED_EVT_POWER_BUTTON : 0);
    assert_int_equal(f->line.level, 0);
    /* Every raise was consumed by exactly one read that saw the bit. */
    assert_int_equal(r.seen + level, f->line.raises);
    pthread_mutex_destroy(&r.lock);
}

/* ---- vm_power_button ---------------------------------------------------------- */

static void test_vm_power_button(void **state)
{
    struct fixture *f = *state;
    struct vm vm;
    memset(&vm, 0, sizeof(vm));
    pthread_mutex_init(&vm.lock, NULL);

    /* No GED, or a VM that is not running: refused, nothing pressed. */
    vm.state = VM_RUNNING;
    assert_int_equal(vm_power_button(&vm), -EINVAL);
    vm.ged = f->g;
    static const enum vm_state not_running[] = {VM_CREATED, VM_PAUSED, VM_SHUTDOWN};
    for (size_t i = 0; i < sizeof(not_running) / sizeof(not_running[0]); i++) {
        vm.state = not_running[i];
        assert_int_equal(vm_power_button(&vm), -EINVAL);
    }
    /* Running, but already on its way out (the guest powered off). */
    vm.state = VM_RUNNING;
    vm.exit_reason = VM_EXIT_POWEROFF;
    assert_int_equal(vm_power_button(&vm), -EINVAL);
    assert_int_equal(f->line.raises, 0);

    vm.exit_reason = VM_EXIT_NONE;
    assert_int_equal(vm_power_button(&vm), 0);
    assert_int_equal(f->line.level, 1);
    assert_int_equal(read_ok(f), ACPI_GED_EVT_POWER_BUTTON);
    pthread_mutex_destroy(&vm.lock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_press_and_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writes_and_widths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_failure_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_destroy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vm_power_button, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
