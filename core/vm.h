/*
 * A virtual machine: KVM VM, guest memory, buses, devices, vCPUs and the
 * device event loop, with an explicit lifecycle state machine that the
 * control plane (API, snapshot, migration) drives later.
 */
#ifndef NIMBUS_VM_H
#define NIMBUS_VM_H

#include <pthread.h>
#include <stdint.h>

#include "bus.h"
#include "config.h"
#include "cpuid.h"
#include "device.h"
#include "eventloop.h"
#include "kvm.h"
#include "memory.h"
#include "pci/pci.h"

/*
 * CREATED --boot--> RUNNING <--pause/resume--> PAUSED
 *    any --stop--> SHUTDOWN (terminal)
 */
enum vm_state { VM_CREATED = 0, VM_RUNNING, VM_PAUSED, VM_SHUTDOWN };

enum vm_exit {
    VM_EXIT_NONE = 0,
    VM_EXIT_POWEROFF, /* ACPI S5: exit 0 */
    VM_EXIT_RESET,    /* i8042 / triple fault: the VMM reboots the VM */
    VM_EXIT_ERROR,    /* vCPU could not continue: exit 1 */
    VM_EXIT_SIGNAL,   /* the VMM was told to stop (signal, API) */
};

struct vcpu;
struct msi_kvm;
struct ged;
struct pcihp;
struct hp_slots;

struct vm {
    struct vm_config *cfg;
    struct kvm kvm;
    struct guest_mem mem;
    struct bus pio, mmio;
    struct event_loop *el;
    struct device_env env;
    struct irq_share irqs;
    struct device *devices;
    struct chardev *serial;
    struct chardev *console;      /* virtio-console backend */
    struct pci_host *pci;
    struct pci_windows pci_windows;
    struct msi_kvm *msi;          /* MSI-X routes (irqfd per vector) */
    struct ged *ged;              /* ACPI Generic Event Device (power button, hotplug) */
    struct pcihp *pcihp;          /* ACPI PCI hotplug registers (vm_hotplug.c) */
    struct hp_slots *cpuhp;       /* ACPI CPU hotplug slots (vm_cpus.c), or NULL */
    struct hp_slots *memhp;       /* ACPI memory hotplug slots (vm_memory.c), or NULL */
    uint32_t mem_hp_memslots;     /* KVM memslots added for it, after the boot ones */
    struct cpu_topology topo;
    struct vcpu *vcpus;           /* cfg->cpus.max entries */
    uint32_t nvcpus;              /* [0, nvcpus) have a KVM vCPU; those with a
                                   * thread (`started`) run, the others were
                                   * unplugged (KVM cannot destroy a vCPU) */

    pthread_mutex_t lock;
    pthread_cond_t cond;
    enum vm_state state;
    enum vm_exit exit_reason;
    int exit_signal;
    int config_error;             /* vm_create failed on bad configuration: exit 2 */
    /* Written (eventfd, vm_wake_vmm) when an exit is first requested or the
     * guest ejected a device, so the VMM's control loop wakes; set between
     * vm_create and vm_boot, -1 for none. */
    int exit_efd;
    uint32_t vcpus_paused;
};

const char *vm_state_name(enum vm_state s);
/* True when the lifecycle allows from -> to. */
int vm_transition_allowed(enum vm_state from, enum vm_state to);

/* Build everything up to (not including) running vCPUs. */
int vm_create(struct vm *vm, struct vm_config *cfg, char *err, size_t errlen);
/* Start the event loop and vCPUs: CREATED -> RUNNING. */
int vm_boot(struct vm *vm, char *err, size_t errlen);
/* RUNNING <-> PAUSED; every vCPU is out of KVM_RUN when pause returns. */
int vm_pause(struct vm *vm);
int vm_resume(struct vm *vm);
/* Pause a running VM for a change of its machine (control thread); 1 when
 * this call paused it, for vm_unhold. */
int vm_hold(struct vm *vm);
void vm_unhold(struct vm *vm, int held);
/* An exit was requested: vm_pause then returns without waiting for every
 * vCPU to park, so one may still be inside a device's handler. */
int vm_exiting(struct vm *vm);
/* Record why the VM ends (first reason wins) and wake vm_wait.  Any thread. */
void vm_request_exit(struct vm *vm, enum vm_exit why, int signo);
/* Wake the VMM's control loop through exit_efd.  Any thread; never blocks. */
void vm_wake_vmm(struct vm *vm);
/* Block until an exit was requested; returns the reason. */
enum vm_exit vm_wait(struct vm *vm);
/*
 * Press the ACPI power button (vm_power.c): the guest is asked to shut
 * down and decides itself.  0, or -EINVAL when the VM is not running.
 * Any thread.
 */
int vm_power_button(struct vm *vm);
/* Stop vCPUs and the loop, flush and destroy devices, free memory. */
void vm_destroy(struct vm *vm);

/* Machine building blocks (vm.c, vm_virtio.c). */
int vm_add_device(struct vm *vm, const char *plugin, const char *options, struct chardev *chr,
                  char *err, size_t errlen);
int vm_pci_init(struct vm *vm, char *err, size_t errlen);
int vm_add_virtio_devices(struct vm *vm, char *err, size_t errlen);
/* One --disk's virtio_blk device, named dc->id; it is the list's head after. */
struct disk_config;
int vm_add_disk(struct vm *vm, const struct disk_config *dc, char *err, size_t errlen);
/* One --net's virtio_net device (its taps opened or checked), named nc->id. */
struct net_config;
int vm_add_net(struct vm *vm, struct net_config *nc, char *err, size_t errlen);

/*
 * vm_hotplug.c: PCI devices joining and leaving a running VM through ACPI
 * PCI hotplug (pci/pci_hotplug.h, the GED).  All of it runs on the VMM's
 * control thread, which alone changes vm->devices; the vCPUs are paused
 * while a device is built or torn down, so no access is in flight.
 */
int vm_hotplug_init(struct vm *vm, char *err, size_t errlen);
void vm_hotplug_destroy(struct vm *vm);
/* Build dc's disk / nc's NIC (RUNNING or PAUSED) and tell the guest; *slot is
 * its device number. */
int vm_hotplug_disk(struct vm *vm, struct disk_config *dc, uint32_t *slot, char *err,
                    size_t errlen);
int vm_hotplug_net(struct vm *vm, struct net_config *nc, uint32_t *slot, char *err,
                   size_t errlen);
/* Any virtio plugin, named `id`; plugin is a bare name, looked up in the
 * plugin folders only (callers from the API check that). */
int vm_hotplug_device(struct vm *vm, const char *plugin, const char *options, const char *id,
                      uint32_t *slot, char *err, size_t errlen);
/* Ask the guest to eject device `id`: -ENOENT (no such device), -ENOTSUP (not on PCI). */
int vm_unplug_request(struct vm *vm, const char *id);
/* Free the devices the guest ejected; gone(ctx, id) for each, before it is
 * freed (while the VM is stopping, vm_destroy frees them later). */
void vm_hotplug_ejected(struct vm *vm, void (*gone)(void *ctx, const char *id), void *ctx);
/*
 * vm_cpus.c: vCPUs joining and leaving a running VM through ACPI CPU
 * hotplug (hp_slots.h, the GED).  Control thread only.
 */
int vm_cpus_init(struct vm *vm, char *err, size_t errlen);
void vm_cpus_destroy(struct vm *vm);
/* vCPUs present as the guest sees them. */
uint32_t vm_vcpus_present(struct vm *vm);
/*
 * Bring the present vCPUs to `desired`: new ones are started and
 * announced; for fewer, the guest is asked to eject the highest ones and
 * they stop when it has.  -EINVAL (out of range), -EBUSY (a removal is
 * still pending, or the VM is stopping), -ENOTSUP (no CPU hotplug).
 */
int vm_resize_vcpus(struct vm *vm, uint32_t desired, char *err, size_t errlen);
/* Stop the vCPUs the guest ejected; returns how many. */
uint32_t vm_cpus_ejected(struct vm *vm);
/*
 * vm_memory.c: ACPI memory hotplug into the area --memory hotplug_size
 * reserves.  Control thread only.
 */
int vm_memory_init(struct vm *vm, char *err, size_t errlen);
void vm_memory_destroy(struct vm *vm);
/* 0 when `desired` bytes of RAM are reachable from m (equal, or more in
 * whole slots within the area); -ENOTSUP (no area) or -EINVAL with err. */
int vm_memory_resize_check(const struct memory_config *m, uint64_t desired, char *err,
                           size_t errlen);
/* Grow the running VM's RAM to `desired` bytes (see vm_memory_resize_check);
 * the caller then sets cfg->memory.hotplugged_size. */
int vm_resize_ram(struct vm *vm, uint64_t desired, char *err, size_t errlen);
/* vm_bootdisk.c: fill breq from the boot-disk reader (no --kernel/--firmware). */
struct bootdisk_payload;
struct boot_request;
int vm_payload_from_disk(const struct vm_config *cfg, struct bootdisk_payload *p, char *cmdline,
                         size_t cmdline_len, struct boot_request *breq, char *err, size_t errlen);
void vm_pci_destroy(struct vm *vm);

/* For vCPU threads. */
int vm_should_stop(struct vm *vm);
/* Called by a vCPU thread when it sees a pause request; blocks until
 * resumed, stopped or unplugged. */
void vm_vcpu_park(struct vm *vm, struct vcpu *v);

#endif
