/*
 * MSI-X over KVM: the routing table every update carries (pure), and, when
 * /dev/kvm opens, real irqfds and GSI routes: a fired vector's eventfd is
 * consumed by the kernel, slots are reused after release, and a PCI
 * function's MSI-X vector reaches its irqfd end to end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "test_kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kvm.h"
#include "pci/msi_kvm.h"
#include "test_pci_util.h"

static void test_default_routes(void **state)
{
    (void)state;
    struct kvm_irq_routing_entry e[MSI_KVM_DEFAULT_ROUTES + 1];
    memset(e, 0x5a, sizeof(e));
    assert_int_equal(msi_kvm_default_routes(e), MSI_KVM_DEFAULT_ROUTES);
    unsigned ioapic[24] = {0};
    for (unsigned i = 0; i < MSI_KVM_DEFAULT_ROUTES; i++) {
        assert_int_equal(e[i].type, KVM_IRQ_ROUTING_IRQCHIP);
        assert_int_equal(e[i].flags, 0);
        /* IOAPIC only: the uninitialised 8259 must never see a line. */
        assert_int_equal(e[i].u.irqchip.irqchip, KVM_IRQCHIP_IOAPIC);
        uint32_t gsi = e[i].gsi;
        assert_true(gsi < 24);
        assert_int_equal(e[i].u.irqchip.pin, gsi);
        ioapic[gsi]++;
    }
    for (unsigned g = 0; g < 24; g++)
        assert_int_equal(ioapic[g], 1);
    /* Nothing written past the count. */
    assert_int_equal(((uint8_t *)&e[MSI_KVM_DEFAULT_ROUTES])[0], 0x5a);
}

struct kvm_rig {
    struct kvm kvm;
    struct msi_kvm *m;
};

static char kvm_error[256];

static int kvm_setup(void **state)
{
    struct kvm_rig *k = calloc(1, sizeof(*k));
    assert_non_null(k);
    char err[256];
    if (kvm_open(&k->kvm, "/dev/kvm", err, sizeof(err)) < 0) {
        /* Each test then skips, or fails when KVM is required. */
        snprintf(kvm_error, sizeof(kvm_error), "%s", err);
        free(k);
        *state = NULL;
        return 0;
    }
    k->m = msi_kvm_create(&k->kvm, err, sizeof(err));
    if (!k->m)
        fail_msg("msi_kvm_create: %s", err);
    *state = k;
    return 0;
}

static int kvm_teardown(void **state)
{
    struct kvm_rig *k = *state;
    if (!k)
        return 0;
    msi_kvm_destroy(k->m);
    kvm_close(&k->kvm);
    free(k);
    return 0;
}

/* The kernel's irqfd reads the counter as soon as the eventfd is signalled. */
static int consumed(int fd)
{
    uint64_t v;
    return read(fd, &v, sizeof(v)) < 0 && errno == EAGAIN;
}

static void test_kvm_slots(void **state)
{
    struct kvm_rig *k = *state;
    if (!k)
        test_kvm_or_skip(0, kvm_error);
    const struct pci_msi_ops *ops = &msi_kvm_ops;
    uint32_t h[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(ops->alloc(k->m, &h[i]), 0);
    assert_true(h[0] != h[1] && h[1] != h[2] && h[0] != h[2]);
    int fd0 = msi_kvm_eventfd(k->m, h[0]);
    assert_true(fd0 >= 0);
    assert_true(fcntl(fd0, F_GETFL) & O_NONBLOCK);

    /* Routes for two slots, then fire: KVM consumes the eventfd counter. */
    assert_int_equal(ops->route(k->m, h[0], 0xfee00000u, 0x4041), 0);
    assert_int_equal(ops->route(k->m, h[1], 0xfee00000u, 0x4042), 0);
    assert_int_equal(ops->route(k->m, h[1], 0xfee01000u, 0x4043), 0); /* reprogram */
    assert_int_equal(ops->fire(k->m, h[0]), 0);
    assert_true(consumed(fd0));
    assert_int_equal(ops->fire(k->m, h[1]), 0);
    assert_true(consumed(msi_kvm_eventfd(k->m, h[1])));
    /* An unrouted slot's irqfd is attached too. */
    assert_int_equal(ops->fire(k->m, h[2]), 0);
    assert_true(consumed(msi_kvm_eventfd(k->m, h[2])));

    /* The legacy lines still work after KVM_SET_GSI_ROUTING replaced the table. */
    struct kvm_irq_level l = {.irq = 4, .level = 1};
    assert_int_equal(ioctl(k->kvm.vm_fd, KVM_IRQ_LINE, &l), 0);
    l.level = 0;
    assert_int_equal(ioctl(k->kvm.vm_fd, KVM_IRQ_LINE, &l), 0);

    /* Release: the slot's eventfd is gone and the slot is handed out again. */
    ops->release(k->m, h[1]);
    assert_int_equal(msi_kvm_eventfd(k->m, h[1]), -1);
    assert_int_equal(ops->fire(k->m, h[1]), -EINVAL);
    assert_int_equal(ops->route(k->m, h[1], 0xfee00000u, 1), -EINVAL);
    ops->release(k->m, h[1]); /* twice: ignored */
    uint32_t again;
    assert_int_equal(ops->alloc(k->m, &again), 0);
    assert_int_equal(again, h[1]);
    assert_int_equal(ops->fire(k->m, again), 0);
    assert_true(consumed(msi_kvm_eventfd(k->m, again)));

    /* Bogus handles. */
    assert_int_equal(ops->fire(k->m, 1u << 30), -EINVAL);
    assert_int_equal(msi_kvm_eventfd(k->m, UINT32_MAX), -1);
    ops->release(k->m, UINT32_MAX);
    assert_int_equal(msi_kvm_eventfd(NULL, 0), -1);
}

static void test_kvm_many_slots(void **state)
{
    struct kvm_rig *k = *state;
    if (!k)
        test_kvm_or_skip(0, kvm_error);
    /* 300 routed vectors: the table grows past the default entries by far. */
    uint32_t h[300];
    for (unsigned i = 0; i < 300; i++) {
        assert_int_equal(msi_kvm_ops.alloc(k->m, &h[i]), 0);
        assert_int_equal(msi_kvm_ops.route(k->m, h[i], 0xfee00000u, 0x4000 + i), 0);
    }
    for (unsigned i = 0; i < 300; i += 7) {
        assert_int_equal(msi_kvm_ops.fire(k->m, h[i]), 0);
        assert_true(consumed(msi_kvm_eventfd(k->m, h[i])));
    }
    for (unsigned i = 0; i < 300; i += 2)
        msi_kvm_ops.release(k->m, h[i]);
    /* The rest is torn down by msi_kvm_destroy. */
}

static void test_kvm_pci_end_to_end(void **state)
{
    struct kvm_rig *k = *state;
    if (!k)
        test_kvm_or_skip(0, kvm_error);
    struct bus pio, mmio;
    bus_init(&pio, "pio");
    bus_init(&mmio, "mmio");
    char err[256];
    struct pci_host *h = pci_host_create(&pio, &mmio, &t_windows, &msi_kvm_ops, k->m, err,
                                         sizeof(err));
    assert_non_null(h);
    struct pci_func_ids ids = {.vendor = 0x1af4, .device = 0x1042};
    struct pci_func *f = pci_func_add(h, &ids, NULL, NULL, err, sizeof(err));
    assert_non_null(f);
    assert_int_equal(pci_func_add_bar(f, 0, 16 << 10, PCI_BAR_MEM64), 0);
    assert_int_equal(pci_func_add_msix(f, 2, 0, 0x2000, 0x3000), 0);
    uint64_t bar = pci_func_bar_addr(f, 0);
    uint32_t cap = pci_config_read(h, 0, 1, 0, 0x34, 1);
    pci_config_write(h, 0, 1, 0, 0x04, 2, PCI_CMD_MEM);
    pci_config_write(h, 0, 1, 0, cap + 2, 2, PCI_MSIX_CTRL_ENABLE);
    uint8_t b[4];
    t_put(b, 4, 0xfee00000u);
    assert_int_equal(bus_access(&mmio, bar + 0x2010, b, 4, 1), 0);
    t_put(b, 4, 0x4055);
    assert_int_equal(bus_access(&mmio, bar + 0x2018, b, 4, 1), 0);
    t_put(b, 4, 0);
    assert_int_equal(bus_access(&mmio, bar + 0x201c, b, 4, 1), 0); /* unmask vector 1 */
    assert_int_equal(pci_msix_notify(f, 1), 0);
    /* Slot handles are allocated in order: vector 1 has the second one. */
    assert_true(consumed(msi_kvm_eventfd(k->m, 1)));
    pci_host_destroy(h);
    assert_int_equal(msi_kvm_eventfd(k->m, 0), -1);
    assert_int_equal(msi_kvm_eventfd(k->m, 1), -1);
    bus_destroy(&pio);
    bus_destroy(&mmio);
}

static void test_kvm_create_errors(void **state)
{
    (void)state;
    char err[128];
    err[0] = 0;
    assert_null(msi_kvm_create(NULL, err, sizeof(err)));
    assert_true(err[0] != 0);
    struct kvm closed = {.sys_fd = -1, .vm_fd = -1};
    assert_null(msi_kvm_create(&closed, err, sizeof(err)));
    msi_kvm_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_routes),
        cmocka_unit_test(test_kvm_create_errors),
        cmocka_unit_test_setup_teardown(test_kvm_slots, kvm_setup, kvm_teardown),
        cmocka_unit_test_setup_teardown(test_kvm_many_slots, kvm_setup, kvm_teardown),
        cmocka_unit_test_setup_teardown(test_kvm_pci_end_to_end, kvm_setup, kvm_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
