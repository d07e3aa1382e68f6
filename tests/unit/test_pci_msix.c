/*
 * MSI-X: the capability, table and PBA as the guest sees them through the
 * BAR, and the delivery rules (enable, function mask, vector mask, pending
 * bits, when routes are programmed) against a recording msi ops.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "test_pci_util.h"

#define NVEC 4u
#define TABLE 0x2000u
#define PBA 0x3000u
#define BAR_SIZE (16u << 10)

struct mx {
    struct rig *r;
    struct owner o;
    struct pci_func *f;
    uint64_t bar;
    uint32_t cap;
};

static int mx_setup(void **state)
{
    struct mx *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    m->r = rig_new(1);
    m->f = add_func(m->r, &m->o, 0x1042);
    /* Something before MSI-X in the list, as virtio has. */
    uint8_t vcap[16] = {0x09, 0, 16};
    assert_int_equal(pci_func_add_cap(m->f, vcap, sizeof(vcap), NULL), 0);
    assert_int_equal(pci_func_add_bar(m->f, 0, BAR_SIZE, PCI_BAR_MEM64), 0);
    assert_int_equal(pci_func_add_msix(m->f, NVEC, 0, TABLE, PBA), 0);
    m->bar = pci_func_bar_addr(m->f, 0);
    m->cap = cf8_rd(m->r, 1, 0x34, 1);
    m->cap = cf8_rd(m->r, 1, m->cap + 1, 1); /* second capability */
    cf8_wr(m->r, 1, 0x04, 2, PCI_CMD_MEM | PCI_CMD_MASTER);
    *state = m;
    return 0;
}

static int mx_teardown(void **state)
{
    struct mx *m = *state;
    rig_free(m->r);
    free(m);
    return 0;
}

static unsigned count(const struct msi_rec *r, unsigned from, int kind)
{
    unsigned n = 0;
    for (unsigned i = from; i < r->n; i++)
        n += r->ev[i].kind == kind;
    return n;
}

static uint64_t entry(const struct mx *m, uint32_t v, uint32_t field)
{
    return m->bar + TABLE + 16u * v + field;
}

static void set_ctrl(struct mx *m, uint16_t ctrl)
{
    cf8_wr(m->r, 1, m->cap + 2, 2, ctrl);
}

static void program(struct mx *m, uint32_t v, uint64_t addr, uint32_t data)
{
    mmio_wr(m->r, entry(m, v, 0), 4, (uint32_t)addr);
    mmio_wr(m->r, entry(m, v, 4), 4, (uint32_t)(addr >> 32));
    mmio_wr(m->r, entry(m, v, 8), 4, data);
}

static void test_cap_layout(void **state)
{
    struct mx *m = *state;
    struct rig *r = m->r;
    assert_int_equal(r->msi.live, NVEC);
    assert_int_equal(count(&r->msi, 0, EV_ALLOC), NVEC);
    assert_int_equal(cf8_rd(r, 1, m->cap, 1), 0x11);
    assert_int_equal(cf8_rd(r, 1, m->cap + 1, 1), 0); /* last */
    assert_int_equal(cf8_rd(r, 1, m->cap + 2, 2), NVEC - 1);
    assert_int_equal(cf8_rd(r, 1, m->cap + 4, 4), TABLE | 0);
    assert_int_equal(cf8_rd(r, 1, m->cap + 8, 4), PBA | 0);
    assert_int_equal(pci_msix_nvec(m->f), NVEC);
    assert_false(pci_msix_enabled(m->f));
    /* Only Enable and Function Mask are writable. */
    set_ctrl(m, 0xffff);
    assert_int_equal(cf8_rd(r, 1, m->cap + 2, 2), 0xc000 | (NVEC - 1));
    assert_true(pci_msix_enabled(m->f));
    cf8_wr(r, 1, m->cap + 4, 4, 0);
    cf8_wr(r, 1, m->cap, 1, 0);
    assert_int_equal(cf8_rd(r, 1, m->cap + 4, 4), TABLE);
    assert_int_equal(cf8_rd(r, 1, m->cap, 1), 0x11);
    /* Byte write to the control's high byte (what some drivers do). */
    cf8_wr(r, 1, m->cap + 3, 1, 0x00);
    assert_false(pci_msix_enabled(m->f));
    assert_int_equal(ecam_rd(r, 1, m->cap + 2, 2), NVEC - 1);
}

static void test_table_access(void **state)
{
    struct mx *m = *state;
    struct rig *r = m->r;
    /* Power-on: zero messages, every vector masked, nothing pending. */
    for (uint32_t v = 0; v < NVEC; v++) {
        assert_int_equal(mmio_rd(r, entry(m, v, 0), 8), 0);
        assert_int_equal(mmio_rd(r, entry(m, v, 8), 4), 0);
        assert_int_equal(mmio_rd(r, entry(m, v, 12), 4), 1);
    }
    assert_int_equal(mmio_rd(r, m->bar + PBA, 8), 0);

    /* 8-byte and 4-byte writes; address bits 1:0 and reserved control bits read 0. */
    mmio_wr(r, entry(m, 1, 0), 8, 0x00000001fee01003ull);
    mmio_wr(r, entry(m, 1, 8), 8, 0xfffffffe00004041ull);
    assert_int_equal(mmio_rd(r, entry(m, 1, 0), 4), 0xfee01000u);
    assert_int_equal(mmio_rd(r, entry(m, 1, 4), 4), 1);
    assert_int_equal(mmio_rd(r, entry(m, 1, 8), 4), 0x4041);
    assert_int_equal(mmio_rd(r, entry(m, 1, 12), 4), 0); /* unmasked, reserved dropped */
    assert_int_equal(mmio_rd(r, entry(m, 1, 8), 8), 0x0000000000004041ull);
    /* Byte and word accesses work too. */
    mmio_wr(r, entry(m, 2, 9), 1, 0x77);
    mmio_wr(r, entry(m, 2, 10), 2, 0x1234);
    assert_int_equal(mmio_rd(r, entry(m, 2, 8), 4), 0x12347700u);
    assert_int_equal(mmio_rd(r, entry(m, 2, 11), 1), 0x12);
    /* An unaligned qword spanning two entries: ctrl of 2 and address of 3. */
    mmio_wr(r, entry(m, 2, 12), 8, 0xfee00000ull << 32 | 0x0);
    assert_int_equal(mmio_rd(r, entry(m, 2, 12), 4), 0);
    assert_int_equal(mmio_rd(r, entry(m, 3, 0), 4), 0xfee00000u);
    assert_int_equal(mmio_rd(r, entry(m, 2, 12), 8), 0xfee0000000000000ull);

    /* The PBA is read-only; the last table byte and the PBA edge. */
    mmio_wr(r, m->bar + PBA, 8, ~0ull);
    assert_int_equal(mmio_rd(r, m->bar + PBA, 8), 0);
    assert_int_equal(mmio_rd(r, entry(m, NVEC - 1, 15), 1), 0);
    /* Straddling the table's end (into non-table BAR space): zeros, not forwarded. */
    unsigned nio = m->o.nio;
    assert_int_equal(mmio_rd(r, m->bar + TABLE + 16 * NVEC - 4, 8), 0);
    mmio_wr(r, m->bar + TABLE + 16 * NVEC - 4, 8, ~0ull);
    assert_int_equal(mmio_rd(r, entry(m, NVEC - 1, 12), 4), 1); /* untouched */
    assert_int_equal(mmio_rd(r, m->bar + PBA - 4, 8), 0);
    assert_int_equal(m->o.nio, nio);
    /* Right after the table / PBA: the owner's registers again. */
    mmio_rd(r, m->bar + TABLE + 16 * NVEC, 4);
    assert_int_equal(m->o.nio, nio + 1);
    assert_int_equal(m->o.last_off, TABLE + 16 * NVEC);
    mmio_rd(r, m->bar + PBA + 8, 4);
    assert_int_equal(m->o.last_off, PBA + 8);
    mmio_rd(r, m->bar + TABLE - 4, 4);
    assert_int_equal(m->o.last_off, TABLE - 4);
}

static void test_delivery(void **state)
{
    struct mx *m = *state;
    struct msi_rec *rec = &m->r->msi;
    uint32_t h0 = 100; /* the first handle the recorder gave out */

    /* Programmed while masked and disabled: no routes yet. */
    unsigned mark = rec->n;
    program(m, 0, 0xfee00000u, 0x41);
    assert_int_equal(rec->n, mark);

    /* Disabled: a notification only sets the pending bit. */
    assert_int_equal(pci_msix_notify(m->f, 0), 0);
    assert_int_equal(rec->n, mark);
    assert_int_equal(mmio_rd(m->r, m->bar + PBA, 8), 1);

    /* Enabled, but the vector is masked: still pending. */
    set_ctrl(m, PCI_MSIX_CTRL_ENABLE);
    assert_int_equal(rec->n, mark);
    /* Unmask: route programmed, then the pending message delivered. */
    mmio_wr(m->r, entry(m, 0, 12), 4, 0);
    assert_int_equal(rec->n, mark + 2);
    assert_int_equal(rec->ev[mark].kind, EV_ROUTE);
    assert_int_equal(rec->ev[mark].handle, h0);
    assert_int_equal(rec->ev[mark].addr, 0xfee00000u);
    assert_int_equal(rec->ev[mark].data, 0x41);
    assert_int_equal(rec->ev[mark + 1].kind, EV_FIRE);
    assert_int_equal(rec->ev[mark + 1].handle, h0);
    assert_int_equal(mmio_rd(m->r, m->bar + PBA, 8), 0);

    /* Same message again: a fire only, no reprogramming. */
    mark = rec->n;
    assert_int_equal(pci_msix_notify(m->f, 0), 0);
    assert_int_equal(rec->n, mark + 1);
    assert_int_equal(rec->ev[mark].kind, EV_FIRE);

    /* Function mask holds messages back; clearing it delivers them. */
    set_ctrl(m, PCI_MSIX_CTRL_ENABLE | PCI_MSIX_CTRL_MASKALL);
    mark = rec->n;
    pci_msix_notify(m->f, 0);
    pci_msix_notify(m->f, 0); /* one pending bit, one delivery */
    assert_int_equal(rec->n, mark);
    assert_int_equal(mmio_rd(m->r, m->bar + PBA, 1), 1);
    set_ctrl(m, PCI_MSIX_CTRL_ENABLE);
    assert_int_equal(rec->n, mark + 1);
    assert_int_equal(rec->ev[mark].kind, EV_FIRE);
    assert_int_equal(mmio_rd(m->r, m->bar + PBA, 1), 0);

    /* Rewriting an unmasked entry costs nothing per dword; the next delivery reroutes. */
    mark = rec->n;
    program(m, 0, 0xfee01000u, 0x42);
    assert_int_equal(rec->n, mark);
    pci_msix_notify(m->f, 0);
    assert_int_equal(rec->n, mark + 2);
    assert_int_equal(rec->ev[mark].kind, EV_ROUTE);
    assert_int_equal(rec->ev[mark].addr, 0xfee01000u);
    assert_int_equal(rec->ev[mark].data, 0x42);
    assert_int_equal(rec->ev[mark + 1].kind, EV_FIRE);

    /* Unmasking a vector with nothing pending programs its route eagerly. */
    mark = rec->n;
    program(m, 3, 0xfee02000u, 0x43);
    mmio_wr(m->r, entry(m, 3, 12), 4, 0);
    assert_int_equal(rec->n, mark + 1);
    assert_int_equal(rec->ev[mark].kind, EV_ROUTE);
    assert_int_equal(rec->ev[mark].handle, h0 + 3);
    /* Masking and unmasking without a change: no route, no fire. */
    mark = rec->n;
    mmio_wr(m->r, entry(m, 3, 12), 4, 1);
    mmio_wr(m->r, entry(m, 3, 12), 4, 0);
    assert_int_equal(rec->n, mark);

    /* A vector masked while enabled collects a pending bit. */
    mmio_wr(m->r, entry(m, 3, 12), 4, 1);
    pci_msix_notify(m->f, 3);
    assert_int_equal(rec->n, mark);
    assert_int_equal(mmio_rd(m->r, m->bar + PBA, 8), 1u << 3);
    /* Disabling MSI-X keeps it; re-enabling alone (still masked) does not deliver. */
    set_ctrl(m, 0);
    set_ctrl(m, PCI_MSIX_CTRL_ENABLE);
    assert_int_equal(rec->n, mark);
    mmio_wr(m->r, entry(m, 3, 12), 4, 0);
    assert_int_equal(rec->n, mark + 1);
    assert_int_equal(rec->ev[mark].kind, EV_FIRE);
    assert_int_equal(rec->ev[mark].handle, h0 + 3);

    /* Enabling delivers every pending unmasked vector. */
    set_ctrl(m, 0);
    pci_msix_notify(m->f, 0);
    pci_msix_notify(m->f, 3);
    pci_msix_notify(m->f, 2); /* masked: stays pending */
    assert_int_equal(mmio_rd(m->r, m->bar + PBA, 1), 0xd);
    mark = rec->n;
    set_ctrl(m, PCI_MSIX_CTRL_ENABLE);
    assert_int_equal(count(rec, mark, EV_FIRE), 2);
    assert_int_equal(mmio_rd(m->r, m->bar + PBA, 1), 0x4);

    /* Vectors that do not exist. */
    mark = rec->n;
    assert_int_equal(pci_msix_notify(m->f, PCI_MSIX_NO_VECTOR), 0);
    assert_int_equal(pci_msix_notify(m->f, NVEC), -EINVAL);
    assert_int_equal(pci_msix_notify(m->f, UINT32_MAX), -EINVAL);
    assert_int_equal(pci_msix_notify(NULL, 0), -EINVAL);
    assert_int_equal(rec->n, mark);

    /* Reset: disabled, all masked, nothing pending; routes are not redone. */
    pci_func_reset(m->f);
    assert_false(pci_msix_enabled(m->f));
    assert_int_equal(mmio_rd(m->r, m->bar + PBA, 8), 0xffffffffffffffffull); /* MEM is off */
    cf8_wr(m->r, 1, 0x04, 2, PCI_CMD_MEM);
    assert_int_equal(mmio_rd(m->r, m->bar + PBA, 8), 0);
    for (uint32_t v = 0; v < NVEC; v++) {
        assert_int_equal(mmio_rd(m->r, entry(m, v, 12), 4), 1);
        assert_int_equal(mmio_rd(m->r, entry(m, v, 0), 8), 0);
    }
    assert_int_equal(rec->n, mark);
    /* After reset, the same message as before needs no new route. */
    set_ctrl(m, PCI_MSIX_CTRL_ENABLE);
    program(m, 0, 0xfee01000u, 0x42);
    mmio_wr(m->r, entry(m, 0, 12), 4, 0);
    assert_int_equal(rec->n, mark);
    pci_msix_notify(m->f, 0);
    assert_int_equal(rec->n, mark + 1);
    assert_int_equal(rec->ev[mark].kind, EV_FIRE);
}

static void test_add_msix_errors(void **state)
{
    (void)state;
    struct rig *r = rig_new(1);
    struct owner o = {0};
    struct pci_func *f = add_func(r, &o, 0x1042);
    assert_int_equal(pci_func_add_bar(f, 0, BAR_SIZE, PCI_BAR_MEM32), 0);
    assert_int_equal(pci_func_add_msix(f, 0, 0, TABLE, PBA), -EINVAL);
    assert_int_equal(pci_func_add_msix(f, PCI_MSIX_MAX_VECTORS + 1, 0, TABLE, PBA), -EINVAL);
    assert_int_equal(pci_func_add_msix(f, 4, 1, TABLE, PBA), -EINVAL);   /* no BAR 1 */
    assert_int_equal(pci_func_add_msix(f, 4, 6, TABLE, PBA), -EINVAL);
    assert_int_equal(pci_func_add_msix(f, 4, 0, TABLE + 4, PBA), -EINVAL); /* misaligned */
    assert_int_equal(pci_func_add_msix(f, 4, 0, TABLE, PBA + 1), -EINVAL);
    assert_int_equal(pci_func_add_msix(f, 4, 0, TABLE, TABLE + 32), -EINVAL); /* overlap */
    assert_int_equal(pci_func_add_msix(f, 4, 0, BAR_SIZE - 32, PBA), -EINVAL); /* past end */
    assert_int_equal(pci_func_add_msix(f, 4, 0, TABLE, BAR_SIZE), -EINVAL);
    assert_int_equal(pci_func_add_msix(f, 4, 0, TABLE, 1ull << 40), -EINVAL);
    assert_int_equal(pci_func_add_msix(f, 2048, 0, 0, PBA), -EINVAL); /* 32 KiB table */
    assert_int_equal(pci_func_add_msix(NULL, 4, 0, TABLE, PBA), -EINVAL);
    assert_int_equal(r->msi.n, 0);

    /* alloc fails part way: what was allocated is released, nothing is added. */
    r->msi.fail_alloc_after = 2;
    assert_int_equal(pci_func_add_msix(f, 4, 0, TABLE, PBA), -ENOSPC);
    assert_int_equal(r->msi.live, 0);
    assert_int_equal(count(&r->msi, 0, EV_RELEASE), 2);
    assert_int_equal(pci_msix_nvec(f), 0);
    assert_int_equal(cf8_rd(r, 1, 0x34, 1), 0);

    /* Not while memory decoding is on, and only once. */
    r->msi.fail_alloc_after = -1;
    cf8_wr(r, 1, 0x04, 2, PCI_CMD_MEM);
    assert_int_equal(pci_func_add_msix(f, 4, 0, TABLE, PBA), -EBUSY);
    cf8_wr(r, 1, 0x04, 2, 0);
    assert_int_equal(pci_func_add_msix(f, 1, 0, 0, 16), 0);
    assert_int_equal(pci_func_add_msix(f, 1, 0, TABLE, PBA), -EBUSY);
    assert_int_equal(pci_msix_nvec(f), 1);
    /* The refused second table left the first one's slot alone. */
    assert_int_equal(r->msi.live, 1);
    assert_non_null(f->msix.handle);
    /* Without MSI-X, every vector is out of range. */
    struct pci_func *g = add_func(r, &o, 0x1043);
    assert_int_equal(pci_msix_notify(g, 0), -EINVAL);
    assert_int_equal(pci_msix_nvec(g), 0);
    assert_false(pci_msix_enabled(g));
    assert_int_equal(r->msi.live, 1);
    rig_free(r);
}

static void test_max_vectors_and_no_msi(void **state)
{
    (void)state;
    /* No msi ops: vectors never fire, but the state machine still works. */
    struct rig *r = rig_new(0);
    struct owner o = {0};
    struct pci_func *f = add_func(r, &o, 0x1042);
    assert_int_equal(pci_func_add_bar(f, 0, 64 << 10, PCI_BAR_MEM32), 0);
    assert_int_equal(pci_func_add_msix(f, PCI_MSIX_MAX_VECTORS, 0, 0, 0x8000), 0);
    uint64_t bar = pci_func_bar_addr(f, 0);
    uint32_t cap = cf8_rd(r, 1, 0x34, 1);
    assert_int_equal(cf8_rd(r, 1, cap + 2, 2), PCI_MSIX_MAX_VECTORS - 1);
    cf8_wr(r, 1, 0x04, 2, PCI_CMD_MEM);
    pci_msix_notify(f, PCI_MSIX_MAX_VECTORS - 1);
    /* The last PBA qword holds bit 2047 in its top bit. */
    assert_int_equal(mmio_rd(r, bar + 0x8000 + 248, 8), 1ull << 63);
    cf8_wr(r, 1, cap + 2, 2, PCI_MSIX_CTRL_ENABLE);
    mmio_wr(r, bar + 16ull * (PCI_MSIX_MAX_VECTORS - 1) + 12, 4, 0);
    assert_int_equal(mmio_rd(r, bar + 0x8000 + 248, 8), 0);
    assert_int_equal(pci_msix_notify(f, 5), 0);
    assert_int_equal(o.nio, 0);
    rig_free(r);
}

/* A full host teardown gives every slot back. */
static void test_destroy_releases(void **state)
{
    (void)state;
    struct msi_rec rec = {.fail_alloc_after = -1};
    struct bus pio, mmio;
    bus_init(&pio, "pio");
    bus_init(&mmio, "mmio");
    char err[128];
    struct pci_host *h = pci_host_create(&pio, &mmio, &t_windows, &rec_msi_ops, &rec, err,
                                         sizeof(err));
    assert_non_null(h);
    struct pci_func_ids ids = {.vendor = 0x1af4, .device = 0x1042};
    for (int i = 0; i < 3; i++) {
        struct pci_func *f = pci_func_add(h, &ids, NULL, NULL, err, sizeof(err));
        assert_non_null(f);
        assert_int_equal(pci_func_add_bar(f, 0, BAR_SIZE, PCI_BAR_MEM64), 0);
        assert_int_equal(pci_func_add_msix(f, 3, 0, TABLE, PBA), 0);
    }
    assert_int_equal(rec.live, 9);
    pci_host_destroy(h);
    assert_int_equal(rec.live, 0);
    assert_int_equal(count(&rec, 0, EV_RELEASE), 9);
    bus_destroy(&pio);
    bus_destroy(&mmio);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cap_layout, mx_setup, mx_teardown),
        cmocka_unit_test_setup_teardown(test_table_access, mx_setup, mx_teardown),
        cmocka_unit_test_setup_teardown(test_delivery, mx_setup, mx_teardown),
        cmocka_unit_test(test_add_msix_errors),
        cmocka_unit_test(test_max_vectors_and_no_msi),
        cmocka_unit_test(test_destroy_releases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
