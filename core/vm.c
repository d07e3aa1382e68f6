#include "vm.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "acpi/acpi.h"
#include "acpi/ged.h"
#include "boot/boot.h"
#include "bootdisk/bootdisk.h"
#include "device_acpi.h"
#include "layout.h"
#include "log.h"
#include "seccomp_filter.h"
#include "vcpu.h"

const char *vm_state_name(enum vm_state s)
{
    switch (s) {
    case VM_CREATED: return "created";
    case VM_RUNNING: return "running";
    case VM_PAUSED: return "paused";
    case VM_SHUTDOWN: return "shutdown";
    }
    return "?";
}

int vm_transition_allowed(enum vm_state from, enum vm_state to)
{
    switch (to) {
    case VM_RUNNING: return from == VM_CREATED || from == VM_PAUSED;
    case VM_PAUSED: return from == VM_RUNNING;
    case VM_SHUTDOWN: return from != VM_SHUTDOWN;
    case VM_CREATED: return 0;
    }
    return 0;
}

static int set_state(struct vm *vm, enum vm_state to)
{
    if (!vm_transition_allowed(vm->state, to)) {
        log_error("VM cannot go from %s to %s", vm_state_name(vm->state), vm_state_name(to));
        return -EINVAL;
    }
    log_debug("VM state %s -> %s", vm_state_name(vm->state), vm_state_name(to));
    vm->state = to;
    pthread_cond_broadcast(&vm->cond);
    return 0;
}

/* ---- machine services for devices ------------------------------------ */

static int env_irq(void *opaque, uint32_t gsi, uint32_t level)
{
    struct vm *vm = opaque;
    return kvm_irq_line(&vm->kvm, gsi, level);
}

static int env_msi(void *opaque, uint64_t addr, uint32_t data)
{
    struct vm *vm = opaque;
    return kvm_signal_msi(&vm->kvm, addr, data);
}

static void env_shutdown(void *opaque, uint32_t kind)
{
    struct vm *vm = opaque;
    vm_request_exit(vm, kind == NIMBUS_SHUTDOWN_RESET ? VM_EXIT_RESET : VM_EXIT_POWEROFF, 0);
}

/*
 * The hardware-reduced ACPI sleep control register (FADT).  Writing
 * SLP_TYP=S5 with SLP_EN is how Linux powers off.  Reads return 0 (no
 * wake status), so nothing polls forever.
 */
static void sleep_reg_io(void *opaque, uint32_t region, uint64_t offset, void *data,
                         uint32_t len, int is_write)
{
    struct vm *vm = opaque;
    (void)region;
    (void)offset;
    if (!is_write) {
        memset(data, 0, len);
        return;
    }
    uint8_t v = *(uint8_t *)data;
    if ((v & ACPI_SLP_EN) && ((v >> 2) & 7) == ACPI_SLP_TYP_S5) {
        log_info("guest entered ACPI S5 (power off)");
        vm_request_exit(vm, VM_EXIT_POWEROFF, 0);
    }
}

/* ---- construction --------------------------------------------------------- */

int vm_add_device(struct vm *vm, const char *plugin, const char *options, struct chardev *chr,
                  char *err, size_t errlen)
{
    char storage[4][4096];
    const char *dirs[5];
    plugin_default_dirs(vm->cfg->plugin_dir, storage, dirs);
    const nimbus_plugin *p = plugin_load(plugin, dirs, err, errlen);
    if (!p)
        return -1;
    struct device *d = device_create(p, options, &vm->env, chr, err, errlen);
    if (!d)
        return -1;
    d->next = vm->devices;
    vm->devices = d;
    log_debug("device %s created (%s)", d->name, options ? options : "");
    return 0;
}

int vm_create(struct vm *vm, struct vm_config *cfg, char *err, size_t errlen)
{
    memset(vm, 0, sizeof(*vm));
    vm->cfg = cfg;
    vm->exit_efd = -1;
    vm->kvm.sys_fd = vm->kvm.vm_fd = -1;
    vm->mem.memfd = -1;
    pthread_mutex_init(&vm->lock, NULL);
    pthread_cond_init(&vm->cond, NULL);
    pthread_mutex_init(&vm->irqs.lock, NULL);
    bus_init(&vm->pio, "I/O ports");
    bus_init(&vm->mmio, "MMIO");
    vm->topo = (struct cpu_topology){cfg->cpus.threads_per_core, cfg->cpus.cores_per_die,
                                     cfg->cpus.dies_per_package, cfg->cpus.packages};
    if (!cfg->cpus.topology_set) {
        vm->topo = (struct cpu_topology){1, cfg->cpus.max, 1, 1};
    }

    /*
     * The MADT numbers CPUs 0..n-1 as their APIC ids, so the topology must
     * give contiguous ids (power-of-two threads, and core counts that fill
     * their id field when there is more than one package).
     */
    for (uint32_t i = 0; i < cfg->cpus.max; i++) {
        if (topo_apic_id(&vm->topo, i) != i) {
            snprintf(err, errlen,
                     "--cpus: topology=%u:%u:%u:%u gives non-contiguous APIC ids, which "
                     "nimbus does not support; use power-of-two threads_per_core and "
                     "cores_per_die*dies_per_package",
                     vm->topo.threads_per_core, vm->topo.cores_per_die,
                     vm->topo.dies_per_package, vm->topo.packages);
            return -1;
        }
    }
    if (kvm_open(&vm->kvm, "/dev/kvm", err, errlen) < 0)
        return -1;
    if (cfg->cpus.max > vm->kvm.max_vcpus) {
        snprintf(err, errlen, "--cpus: max=%u exceeds what KVM allows here (%u)",
                 cfg->cpus.max, vm->kvm.max_vcpus);
        return -1;
    }
    int r = gm_map(&vm->mem, &cfg->memory);
    if (r < 0) {
        snprintf(err, errlen, "--memory: cannot allocate %llu MiB of guest RAM: %s",
                 (unsigned long long)(cfg->memory.size >> 20), strerror(-r));
        return -1;
    }
    if (kvm_map_memory(&vm->kvm, &vm->mem, err, errlen) < 0)
        return -1;

    vm->el = el_create();
    if (!vm->el) {
        snprintf(err, errlen, "cannot create the event loop: %s", strerror(errno));
        return -1;
    }
    vm->env = (struct device_env){.mem = &vm->mem,
                                  .el = vm->el,
                                  .pio = &vm->pio,
                                  .mmio = &vm->mmio,
                                  .irq_line = env_irq,
                                  .msi = env_msi,
                                  .shutdown = env_shutdown,
                                  .opaque = vm,
                                  .irqs = &vm->irqs};

    if (vm_pci_init(vm, err, errlen) < 0)
        return -1;

    /* Legacy platform devices, each a plugin. */
    char opts[128];
    struct acpi_legacy_dev adevs[2 + CONFIG_MAX_DEVICES];
    struct device_acpi dacpi[CONFIG_MAX_DEVICES];
    unsigned nadevs = 0;
    if (cfg->serial.mode != CHR_OFF) {
        vm->serial = chr_open_named(&cfg->serial, "serial port", vm->el, err, errlen);
        if (!vm->serial)
            return -1;
        snprintf(opts, sizeof(opts), "iobase=0x%x,irq=%u", LAYOUT_COM1_PORT, LAYOUT_COM1_IRQ);
        if (vm_add_device(vm, "uart16550", opts, vm->serial, err, errlen) < 0)
            return -1;
        adevs[nadevs++] = (struct acpi_legacy_dev){"PNP0501", "COM1", LAYOUT_COM1_PORT, 8,
                                                   LAYOUT_COM1_IRQ};
    }
    snprintf(opts, sizeof(opts), "iobase=0x%x", LAYOUT_I8042_PORT);
    if (vm_add_device(vm, "i8042", opts, NULL, err, errlen) < 0)
        return -1;
    snprintf(opts, sizeof(opts), "iobase=0x%x,irq=%u", LAYOUT_RTC_PORT, LAYOUT_RTC_IRQ);
    if (vm_add_device(vm, "cmos", opts, NULL, err, errlen) < 0)
        return -1;
    adevs[nadevs++] =
        (struct acpi_legacy_dev){"PNP0B00", "RTC_", LAYOUT_RTC_PORT, 2, LAYOUT_RTC_IRQ};
    for (uint32_t i = 0; i < cfg->ndevices; i++) {
        if (vm_add_device(vm, cfg->devices[i].plugin, cfg->devices[i].options, NULL, err,
                          errlen) < 0)
            return -1;
        if (cfg->devices[i].id)
            device_set_id(vm->devices, cfg->devices[i].id);
        /* A legacy device from a plugin describes itself (ABI minor 4). */
        struct device_acpi *da = &dacpi[i];
        int has_node = device_acpi_node(vm->devices, da, err, errlen);
        if (has_node < 0)
            return -1;
        if (has_node > 0) {
            snprintf(da->name, sizeof(da->name), "DV%02X", i & 0xffu);
            adevs[nadevs++] =
                (struct acpi_legacy_dev){da->hid, da->name, da->port, da->port_len, da->irq};
        }
    }
    if (vm_add_virtio_devices(vm, err, errlen) < 0)
        return -1;
    if (bus_add(&vm->pio, LAYOUT_PORT_ACPI_SLEEP, 1, sleep_reg_io, vm, 0) < 0) {
        snprintf(err, errlen, "cannot claim the ACPI sleep port 0x%x", LAYOUT_PORT_ACPI_SLEEP);
        return -1;
    }
    vm->ged = ged_create(&vm->pio, LAYOUT_PORT_ACPI_GED, LAYOUT_GED_IRQ, env_irq, vm, err, errlen);
    if (!vm->ged)
        return -1;
    if (vm_hotplug_init(vm, err, errlen) < 0 || vm_cpus_init(vm, err, errlen) < 0 ||
        vm_memory_init(vm, err, errlen) < 0)
        return -1;

    uint64_t mem_slot = gm_hotplug_slot_size(cfg->memory.hotplug_size);
    struct acpi_config acfg = {.ncpus = cfg->cpus.boot,
                               .max_cpus = cfg->cpus.max,
                               .cpuhp_port = vm->cpuhp ? LAYOUT_PORT_CPU_HOTPLUG : 0,
                               .memhp_port = vm->memhp ? LAYOUT_PORT_MEM_HOTPLUG : 0,
                               .memhp_slots = (uint32_t)(cfg->memory.hotplug_size / mem_slot),
                               .memhp_base = vm->mem.hp.gpa,
                               .memhp_slot_size = mem_slot,
                               .sleep_port = LAYOUT_PORT_ACPI_SLEEP,
                               .ged_port = LAYOUT_PORT_ACPI_GED,
                               .ged_gsi = LAYOUT_GED_IRQ,
                               .pcihp_port = vm->pcihp ? LAYOUT_PORT_PCI_HOTPLUG : 0,
                               .devs = adevs,
                               .ndevs = nadevs,
                               .pci = &vm->pci_windows};
    uint64_t rsdp = acpi_build(&vm->mem, &acfg);
    if (!rsdp) {
        snprintf(err, errlen, "cannot build ACPI tables for %u vCPUs", cfg->cpus.boot);
        return -1;
    }

    if (boot_install_reset_stub(&vm->mem) < 0) {
        snprintf(err, errlen, "cannot place the reset stub at 0x%llx",
                 (unsigned long long)LAYOUT_RESET_VECTOR);
        return -1;
    }

    /* Linux uses MMCONFIG only where the firmware map reserves it. */
    struct e820_entry ecam = {vm->pci_windows.ecam_base, vm->pci_windows.ecam_size,
                              E820_RESERVED};
    struct boot_request breq = {.kernel_path = cfg->firmware ? cfg->firmware : cfg->kernel,
                                .firmware = cfg->firmware != NULL,
                                .initramfs_path = cfg->initramfs,
                                .cmdline = cfg->cmdline,
                                .rsdp_addr = rsdp,
                                .e820_extra = &ecam,
                                .ne820_extra = 1};
    struct bootdisk_payload disk_payload = {0};
    char disk_cmdline[LAYOUT_CMDLINE_MAX];
    if (config_boots_from_disk(cfg) &&
        vm_payload_from_disk(cfg, &disk_payload, disk_cmdline, sizeof(disk_cmdline), &breq, err,
                             errlen) < 0)
        return -1;
    struct boot_result bres;
    int loaded = boot_load(&vm->mem, &breq, &bres, err, errlen);
    bootdisk_payload_free(&disk_payload);
    if (loaded < 0)
        return -1;
    log_info("kernel loaded: %s entry at 0x%llx",
             bres.kind == BOOT_ENTRY_PVH ? "PVH" : "64-bit", (unsigned long long)bres.entry);

    /* Room for every possible vCPU: hot-plugged ones are created later. */
    vm->vcpus = calloc(cfg->cpus.max, sizeof(*vm->vcpus));
    if (!vm->vcpus) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (uint32_t i = 0; i < cfg->cpus.boot; i++) {
        vm->vcpus[i].fd = -1;
        vm->nvcpus = i + 1;
        if (vcpu_create(vm, &vm->vcpus[i], i, err, errlen) < 0)
            return -1;
    }
    if (vcpu_set_boot_state(&vm->vcpus[0], &bres, err, errlen) < 0)
        return -1;
    return 0;
}

int vm_boot(struct vm *vm, char *err, size_t errlen)
{
    el_set_seccomp(vm->el, SECCOMP_DEVICE);
    int r = el_start_named(vm->el, "devices");
    if (r < 0) {
        snprintf(err, errlen, "cannot start the event loop: %s", strerror(-r));
        return -1;
    }
    pthread_mutex_lock(&vm->lock);
    set_state(vm, VM_RUNNING);
    pthread_mutex_unlock(&vm->lock);
    for (uint32_t i = 0; i < vm->nvcpus; i++) {
        r = vcpu_start(&vm->vcpus[i]);
        if (r < 0) {
            snprintf(err, errlen, "cannot start vCPU %u: %s", i, strerror(-r));
            vm_request_exit(vm, VM_EXIT_ERROR, 0);
            return -1;
        }
    }
    return 0;
}

int vm_should_stop(struct vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    int stop = vm->exit_reason != VM_EXIT_NONE || vm->state == VM_SHUTDOWN;
    pthread_mutex_unlock(&vm->lock);
    return stop;
}

void vm_vcpu_park(struct vm *vm, struct vcpu *v)
{
    pthread_mutex_lock(&vm->lock);
    if (vm->state == VM_PAUSED) {
        vm->vcpus_paused++;
        pthread_cond_broadcast(&vm->cond);
        while (vm->state == VM_PAUSED && vm->exit_reason == VM_EXIT_NONE && !v->unplug)
            pthread_cond_wait(&vm->cond, &vm->lock);
        vm->vcpus_paused--;
    }
    pthread_mutex_unlock(&vm->lock);
}

int vm_pause(struct vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    int r = set_state(vm, VM_PAUSED);
    pthread_mutex_unlock(&vm->lock);
    if (r < 0)
        return r;
    /* Only vCPUs with a thread: hot-unplugged ones have none. */
    uint32_t active = 0;
    for (uint32_t i = 0; i < vm->nvcpus; i++) {
        active += vm->vcpus[i].started != 0;
        vcpu_kick(&vm->vcpus[i]);
    }
    pthread_mutex_lock(&vm->lock);
    while (vm->vcpus_paused < active && vm->exit_reason == VM_EXIT_NONE)
        pthread_cond_wait(&vm->cond, &vm->lock);
    pthread_mutex_unlock(&vm->lock);
    return 0;
}

int vm_hold(struct vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    int running = vm->state == VM_RUNNING;
    pthread_mutex_unlock(&vm->lock);
    return running && vm_pause(vm) == 0;
}

int vm_exiting(struct vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    int r = vm->exit_reason != VM_EXIT_NONE;
    pthread_mutex_unlock(&vm->lock);
    return r;
}

void vm_unhold(struct vm *vm, int held)
{
    if (held)
        vm_resume(vm);
}

int vm_resume(struct vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    int r = vm->state == VM_PAUSED ? set_state(vm, VM_RUNNING) : -EINVAL;
    pthread_mutex_unlock(&vm->lock);
    return r;
}

void vm_wake_vmm(struct vm *vm)
{
    if (vm->exit_efd >= 0) {
        uint64_t one = 1;
        (void)!write(vm->exit_efd, &one, sizeof(one));
    }
}

void vm_request_exit(struct vm *vm, enum vm_exit why, int signo)
{
    pthread_mutex_lock(&vm->lock);
    int first = vm->exit_reason == VM_EXIT_NONE;
    if (first) {
        vm->exit_reason = why;
        vm->exit_signal = signo;
    }
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
    if (first)
        vm_wake_vmm(vm);
}

enum vm_exit vm_wait(struct vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    while (vm->exit_reason == VM_EXIT_NONE)
        pthread_cond_wait(&vm->cond, &vm->lock);
    enum vm_exit why = vm->exit_reason;
    pthread_mutex_unlock(&vm->lock);
    return why;
}

void vm_destroy(struct vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    if (vm->state != VM_SHUTDOWN)
        set_state(vm, VM_SHUTDOWN);
    pthread_mutex_unlock(&vm->lock);
    for (uint32_t i = 0; i < vm->nvcpus; i++)
        vcpu_kick(&vm->vcpus[i]);
    for (uint32_t i = 0; i < vm->nvcpus; i++)
        vcpu_join(&vm->vcpus[i]);
    if (vm->el)
        el_stop(vm->el);
    /* Devices flush their backends (disks: fdatasync) before anything is freed. */
    while (vm->devices) {
        struct device *d = vm->devices;
        vm->devices = d->next;
        device_destroy(d);
    }
    chr_close(vm->serial);
    vm->serial = NULL;
    chr_close(vm->console);
    vm->console = NULL;
    /* After the devices: their transports are gone, so no callback can come. */
    vm_pci_destroy(vm);
    /* vCPUs are joined and the state is SHUTDOWN: no read or press can come. */
    ged_destroy(vm->ged);
    vm->ged = NULL;
    vm_hotplug_destroy(vm);
    vm_cpus_destroy(vm);
    vm_memory_destroy(vm);
    for (uint32_t i = 0; i < vm->nvcpus; i++)
        vcpu_destroy(&vm->vcpus[i]);
    free(vm->vcpus);
    vm->vcpus = NULL;
    el_destroy(vm->el);
    vm->el = NULL;
    gm_unmap(&vm->mem);
    kvm_close(&vm->kvm);
    bus_destroy(&vm->pio);
    bus_destroy(&vm->mmio);
}
