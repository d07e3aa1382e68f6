/*
 * PCI devices joining and leaving a running VM: Cloud Hypervisor's ACPI
 * scheme.  A new device is built with the vCPUs paused (its PCI function
 * appears whole, and a failure half-way can take it off the bus safely),
 * then its slot's bit goes to PCIU and the GED interrupts the guest, whose
 * acpiphp scans the slot.  A removal sets the slot's bit in PCID; the guest
 * unbinds its driver and calls _EJ0, whose write to B0EJ wakes the control
 * thread (vm->exit_efd), which pauses the vCPUs and frees the device.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "acpi/acpi.h"
#include "acpi/ged.h"
#include "config.h"
#include "device.h"
#include "layout.h"
#include "log.h"
#include "pci/pci_hotplug.h"
#include "virtio/virtio_pci.h"
#include "vm.h"

/* On the vCPU thread that wrote B0EJ: only wake the control thread. */
static void on_eject(void *opaque)
{
    vm_wake_vmm(opaque);
}

int vm_hotplug_init(struct vm *vm, char *err, size_t errlen)
{
    if (!vm->pci)
        return 0;
    vm->pcihp = pcihp_create(&vm->pio, LAYOUT_PORT_PCI_HOTPLUG, on_eject, vm, err, errlen);
    return vm->pcihp ? 0 : -1;
}

void vm_hotplug_destroy(struct vm *vm)
{
    pcihp_destroy(vm->pcihp);
    vm->pcihp = NULL;
}

/* Build one device with the vCPUs held, then announce its slot. */
static int plug(struct vm *vm, int (*build)(struct vm *vm, void *cfg, char *err, size_t errlen),
                void *cfg, const char *id, uint32_t *slot, char *err, size_t errlen)
{
    if (!vm->pcihp || !vm->ged) {
        snprintf(err, errlen, "this machine has no PCI hotplug");
        return -ENOTSUP;
    }
    int held = vm_hold(vm);
    if (vm_exiting(vm)) {
        vm_unhold(vm, held);
        snprintf(err, errlen, "the VM is stopping");
        return -EBUSY;
    }
    struct device *before = vm->devices;
    int r = build(vm, cfg, err, errlen);
    if (r == 0 && (vm->devices == before || !vm->devices->virtio)) {
        snprintf(err, errlen, "the device did not become a PCI function");
        r = -1;
    }
    if (r == 0)
        *slot = virtio_pci_slot(vm->devices->virtio);
    vm_unhold(vm, held);
    if (r < 0)
        return -EINVAL;
    pcihp_plugged(vm->pcihp, *slot);
    ged_event(vm->ged, ACPI_GED_EVT_PCI);
    log_info("hotplug: %s added in PCI slot %02x", id ? id : "device", *slot);
    return 0;
}

static int build_disk(struct vm *vm, void *cfg, char *err, size_t errlen)
{
    return vm_add_disk(vm, cfg, err, errlen);
}

static int build_net(struct vm *vm, void *cfg, char *err, size_t errlen)
{
    return vm_add_net(vm, cfg, err, errlen);
}

int vm_hotplug_disk(struct vm *vm, struct disk_config *dc, uint32_t *slot, char *err,
                    size_t errlen)
{
    return plug(vm, build_disk, dc, dc->id, slot, err, errlen);
}

int vm_hotplug_net(struct vm *vm, struct net_config *nc, uint32_t *slot, char *err,
                   size_t errlen)
{
    return plug(vm, build_net, nc, nc->id, slot, err, errlen);
}

/* Any plugin with a virtio transport; others have no PCI slot to appear in. */
struct plugin_req {
    const char *plugin, *options, *id;
};

static int build_plugin(struct vm *vm, void *cfg, char *err, size_t errlen)
{
    const struct plugin_req *q = cfg;
    if (vm_add_device(vm, q->plugin, q->options, NULL, err, errlen) < 0)
        return -1;
    struct device *d = vm->devices;
    if (!d->virtio) {
        /* The vCPUs are held: no access to its ports can be in flight. */
        vm->devices = d->next;
        device_destroy(d);
        snprintf(err, errlen, "plugin %s is not a virtio device: only PCI devices can be "
                 "hot-plugged", q->plugin);
        return -1;
    }
    device_set_id(d, q->id);
    return 0;
}

int vm_hotplug_device(struct vm *vm, const char *plugin, const char *options, const char *id,
                      uint32_t *slot, char *err, size_t errlen)
{
    struct plugin_req q = {plugin, options, id};
    return plug(vm, build_plugin, &q, id, slot, err, errlen);
}

int vm_unplug_request(struct vm *vm, const char *id)
{
    for (struct device *d = vm->devices; d; d = d->next) {
        if (!d->id[0] || strcmp(d->id, id) != 0)
            continue;
        if (!d->virtio || !vm->pcihp || !vm->ged)
            return -ENOTSUP;
        uint32_t slot = virtio_pci_slot(d->virtio);
        pcihp_unplug_request(vm->pcihp, slot);
        ged_event(vm->ged, ACPI_GED_EVT_PCI);
        log_info("hotplug: asked the guest to eject %s (PCI slot %02x)", id, slot);
        return 0;
    }
    return -ENOENT;
}

void vm_hotplug_ejected(struct vm *vm, void (*gone)(void *ctx, const char *id), void *ctx)
{
    uint32_t slots = pcihp_take_ejected(vm->pcihp);
    if (!slots)
        return;
    int held = vm_hold(vm);
    for (struct device **pp = &vm->devices; *pp;) {
        struct device *d = *pp;
        if (!d->virtio || !(slots & (1u << virtio_pci_slot(d->virtio)))) {
            pp = &d->next;
            continue;
        }
        log_info("hotplug: the guest ejected %s (PCI slot %02x)", d->id[0] ? d->id : d->name,
                 virtio_pci_slot(d->virtio));
        if (gone)
            gone(ctx, d->id);
        /* Stopping: it leaves the config, and vm_destroy frees it with the
         * rest once every vCPU has been joined. */
        if (vm_exiting(vm)) {
            pp = &d->next;
            continue;
        }
        *pp = d->next;
        device_destroy(d);
    }
    vm_unhold(vm, held);
}
