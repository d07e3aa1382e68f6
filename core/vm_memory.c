/*
 * Memory joining a running VM: ACPI memory hotplug, as Cloud Hypervisor's
 * hotplug_method=acpi.  The hotplug area above RAM is reserved when the VM
 * is created (memory.c), cut into slots of gm_hotplug_slot_size(); a
 * resize maps the next slots into KVM, lets devices reach them (the guest
 * may hand them out as buffers as soon as it has them), marks them present
 * and raises the GED's memory event.  The guest's acpi_memhotplug adds the
 * memory; onlining it is its choice.  Memory is never taken back: ACPI
 * unplug needs the guest to give up whole blocks, which Linux rarely can,
 * and Kata refuses to shrink anyway.
 */
#include <errno.h>
#include <stdio.h>

#include "acpi/acpi.h"
#include "acpi/ged.h"
#include "config.h"
#include "hp_slots.h"
#include "kvm.h"
#include "layout.h"
#include "log.h"
#include "vm.h"

/* Every slot is fixed: a guest's eject changes nothing, so nothing to do. */
static void on_eject(void *opaque)
{
    (void)opaque;
}

/* Map the next `bytes` of the hotplug area into KVM, then let devices at it. */
static int plug_range(struct vm *vm, uint64_t bytes, char *err, size_t errlen)
{
    uint64_t plugged = vm->mem.hp_plugged;
    uint32_t slot = vm->mem.nregions + vm->mem_hp_memslots;
    if (kvm_add_memslot(&vm->kvm, slot, vm->mem.hp.gpa + plugged, bytes,
                        vm->mem.hp.host + plugged, err, errlen) < 0)
        return -1;
    vm->mem_hp_memslots++;
    return gm_hotplug_grow(&vm->mem, bytes, NULL) == 0 ? 0 : -1;
}

int vm_memory_init(struct vm *vm, char *err, size_t errlen)
{
    const struct memory_config *m = &vm->cfg->memory;
    if (!m->hotplug_size)
        return 0;
    if (!vm->ged) {
        snprintf(err, errlen, "--memory: hotplug_size needs the ACPI GED");
        return -1;
    }
    uint64_t slot = gm_hotplug_slot_size(m->hotplug_size);
    uint32_t n = (uint32_t)(m->hotplug_size / slot);
    vm->memhp = hps_create(&vm->pio, LAYOUT_PORT_MEM_HOTPLUG, n,
                           (uint32_t)(m->hotplugged_size / slot), n, on_eject, vm, err, errlen);
    if (!vm->memhp)
        return -1;
    /* Plugged before (a reboot after a resize, or hotplugged_size): there
     * at boot, as present slots the guest adds while it starts. */
    return m->hotplugged_size ? plug_range(vm, m->hotplugged_size, err, errlen) : 0;
}

void vm_memory_destroy(struct vm *vm)
{
    hps_destroy(vm->memhp);
    vm->memhp = NULL;
}

int vm_memory_resize_check(const struct memory_config *m, uint64_t desired, char *err,
                           size_t errlen)
{
    uint64_t cur = m->size + m->hotplugged_size;
    if (desired == cur)
        return 0;
    if (!m->hotplug_size) {
        snprintf(err, errlen, "desired_ram: this VM has no memory hotplug area "
                 "(memory.hotplug_size)");
        return -ENOTSUP;
    }
    if (desired < cur) {
        snprintf(err, errlen, "desired_ram=%llu is below the %llu bytes the VM has: ACPI "
                 "memory hotplug only adds", (unsigned long long)desired,
                 (unsigned long long)cur);
        return -EINVAL;
    }
    uint64_t slot = gm_hotplug_slot_size(m->hotplug_size);
    if (desired - m->size > m->hotplug_size || (desired - cur) % slot) {
        snprintf(err, errlen, "desired_ram=%llu must be size plus a multiple of %llu MiB, at "
                 "most %llu bytes", (unsigned long long)desired,
                 (unsigned long long)(slot >> 20),
                 (unsigned long long)(m->size + m->hotplug_size));
        return -EINVAL;
    }
    return 0;
}

int vm_resize_ram(struct vm *vm, uint64_t desired, char *err, size_t errlen)
{
    const struct memory_config *m = &vm->cfg->memory;
    int r = vm_memory_resize_check(m, desired, err, errlen);
    uint64_t cur = m->size + m->hotplugged_size;
    if (r < 0 || desired == cur)
        return r;
    if (!vm->memhp || vm->mem.hp_plugged != m->hotplugged_size) {
        snprintf(err, errlen, "the hotplug area does not match the configuration");
        return -EIO;
    }
    uint64_t slot = gm_hotplug_slot_size(m->hotplug_size);
    uint32_t first = (uint32_t)(m->hotplugged_size / slot);
    uint32_t count = (uint32_t)((desired - cur) / slot);
    if (plug_range(vm, desired - cur, err, errlen) < 0)
        return -EIO;
    for (uint32_t i = first; i < first + count; i++)
        hps_plugged(vm->memhp, i);
    ged_event(vm->ged, ACPI_GED_EVT_MEM);
    log_info("hotplug: %llu MiB of memory added at 0x%llx",
             (unsigned long long)((desired - cur) >> 20),
             (unsigned long long)(vm->mem.hp.gpa + (uint64_t)first * slot));
    return 0;
}
