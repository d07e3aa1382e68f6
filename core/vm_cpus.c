/*
 * vCPUs joining and leaving a running VM: ACPI CPU hotplug as in Cloud
 * Hypervisor.  A new vCPU gets its KVM vCPU and thread with the VM held
 * (paused), then its insert event goes to the registers and the GED
 * interrupts the guest, which adds the CPU; onlining it is the guest's
 * choice (udev, an agent).  A removal sets the vCPU's removal event; the
 * guest offlines the CPU and calls _EJ0, whose eject wakes the control
 * thread, which ends the vCPU's thread.  KVM cannot destroy a vCPU, so an
 * unplugged one keeps its fd and is reused if it comes back.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "acpi/acpi.h"
#include "acpi/ged.h"
#include "config.h"
#include "hp_slots.h"
#include "layout.h"
#include "log.h"
#include "vcpu.h"
#include "vm.h"

/* On the vCPU thread that ejected one: only wake the control thread. */
static void on_eject(void *opaque)
{
    vm_wake_vmm(opaque);
}

int vm_cpus_init(struct vm *vm, char *err, size_t errlen)
{
    /* Nothing to plug with one possible vCPU, and no way to tell the guest without the GED. */
    if (vm->cfg->cpus.max < 2 || !vm->ged)
        return 0;
    /* vCPU 0 runs the boot path and Linux never offlines it: refusing its
     * eject keeps one vCPU whatever the guest does. */
    vm->cpuhp = hps_create(&vm->pio, LAYOUT_PORT_CPU_HOTPLUG, vm->cfg->cpus.max,
                           vm->cfg->cpus.boot, 1, on_eject, vm, err, errlen);
    return vm->cpuhp ? 0 : -1;
}

void vm_cpus_destroy(struct vm *vm)
{
    hps_destroy(vm->cpuhp);
    vm->cpuhp = NULL;
}

uint32_t vm_vcpus_present(struct vm *vm)
{
    if (!vm->cpuhp)
        return vm->nvcpus;
    uint32_t n = 0;
    for (uint32_t i = 0; i < vm->cfg->cpus.max; i++)
        n += (uint32_t)hps_present(vm->cpuhp, i);
    return n;
}

/* vCPU i's thread (and, the first time, its KVM vCPU); the VM is held. */
static int start_vcpu(struct vm *vm, uint32_t i, char *err, size_t errlen)
{
    struct vcpu *v = &vm->vcpus[i];
    /* Created in index order: the lowest absent vCPU is added first, and
     * every vCPU below nvcpus already has its KVM vCPU. */
    if (i > vm->nvcpus) {
        snprintf(err, errlen, "vCPU %u cannot come before vCPU %u", i, vm->nvcpus);
        return -1;
    }
    if (i == vm->nvcpus) {
        v->fd = -1;
        if (vcpu_create(vm, v, i, err, errlen) < 0) {
            vcpu_destroy(v);
            return -1;
        }
        vm->nvcpus++;
    }
    int r = vcpu_start(v);
    if (r < 0) {
        snprintf(err, errlen, "cannot start vCPU %u: %s", i, strerror(-r));
        return -1;
    }
    return 0;
}

static int grow(struct vm *vm, uint32_t have, uint32_t desired, char *err, size_t errlen)
{
    int held = vm_hold(vm);
    int r = 0;
    if (vm_exiting(vm)) {
        snprintf(err, errlen, "the VM is stopping");
        r = -EBUSY;
    }
    uint32_t added = 0;
    for (uint32_t i = 1; r == 0 && i < vm->cfg->cpus.max && have < desired; i++) {
        if (hps_present(vm->cpuhp, i))
            continue;
        if (start_vcpu(vm, i, err, errlen) < 0) {
            r = -EIO;
            break;
        }
        hps_plugged(vm->cpuhp, i);
        have++;
        added++;
        log_info("hotplug: vCPU %u added", i);
    }
    vm_unhold(vm, held);
    /* Those started are announced even if a later one failed. */
    if (added)
        ged_event(vm->ged, ACPI_GED_EVT_CPU);
    return r;
}

int vm_resize_vcpus(struct vm *vm, uint32_t desired, char *err, size_t errlen)
{
    uint32_t max = vm->cfg->cpus.max;
    if (desired == 0 || desired > max) {
        snprintf(err, errlen, "desired_vcpus=%u is outside 1..max_vcpus (%u)", desired, max);
        return -EINVAL;
    }
    /* Any resize waits for a pending removal, even one to the present
     * count: the guest may still eject, and the answer must not depend on
     * when it does. */
    if (hps_removal_pending(vm->cpuhp)) {
        snprintf(err, errlen, "a vCPU removal is still pending");
        return -EBUSY;
    }
    uint32_t have = vm_vcpus_present(vm);
    if (desired == have)
        return 0;
    if (!vm->cpuhp) {
        snprintf(err, errlen, "this VM has no CPU hotplug (max_vcpus is 1)");
        return -ENOTSUP;
    }
    if (desired > have)
        return grow(vm, have, desired, err, errlen);
    /* Highest first, as Linux numbers hot-added CPUs upwards. */
    for (uint32_t i = max - 1; i > 0 && have > desired; i--) {
        if (!hps_present(vm->cpuhp, i))
            continue;
        hps_unplug_request(vm->cpuhp, i);
        have--;
        log_info("hotplug: asked the guest to eject vCPU %u", i);
    }
    ged_event(vm->ged, ACPI_GED_EVT_CPU);
    return 0;
}

uint32_t vm_cpus_ejected(struct vm *vm)
{
    uint32_t n = 0, i;
    while ((i = hps_take_ejected(vm->cpuhp)) != HPS_NONE) {
        if (i >= vm->nvcpus)
            continue;
        struct vcpu *v = &vm->vcpus[i];
        /* Under the lock, so a thread parked by a pause sees it too. */
        pthread_mutex_lock(&vm->lock);
        __atomic_store_n(&v->unplug, 1, __ATOMIC_SEQ_CST);
        pthread_cond_broadcast(&vm->cond);
        pthread_mutex_unlock(&vm->lock);
        vcpu_kick(v);
        vcpu_join(v);
        log_info("hotplug: the guest ejected vCPU %u", i);
        n++;
    }
    return n;
}
