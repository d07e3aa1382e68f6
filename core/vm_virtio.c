/*
 * The PCI side of the machine: the host bridge with its windows and KVM
 * MSI routing, and the virtio devices the command line asks for (disks,
 * networks, console, entropy), each a plugin behind the core's virtio-pci
 * transport.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layout.h"
#include "log.h"
#include "net/net_addr.h"
#include "net/net_opts.h"
#include "net/tap.h"
#include "pci/msi_kvm.h"
#include "pci/pci.h"
#include "vm.h"

#define GIB (1ull << 30)
#define MMIO64_SIZE (64ull * GIB)

static int env_ioeventfd(void *opaque, uint64_t addr, uint32_t len, int fd, int assign)
{
    struct vm *vm = opaque;
    return kvm_ioeventfd(&vm->kvm, addr, len, fd, assign);
}

/* Physical address bits the guest's CPUID will report (see cpuid.c). */
static uint32_t guest_phys_bits(const struct vm *vm)
{
    uint32_t bits = 36; /* the architectural minimum when CPUID says nothing */
    const struct kvm_cpuid2 *c = vm->kvm.supported_cpuid;
    for (uint32_t i = 0; c && i < c->nent; i++)
        if (c->entries[i].function == 0x80000008u && (c->entries[i].eax & 0xff))
            bits = c->entries[i].eax & 0xff;
    if (bits > vm->cfg->cpus.max_phys_bits)
        bits = vm->cfg->cpus.max_phys_bits;
    return bits;
}

int vm_pci_init(struct vm *vm, char *err, size_t errlen)
{
    uint64_t ram_end = gm_top(&vm->mem);
    if (ram_end < LAYOUT_RAM_ABOVE_4G)
        ram_end = LAYOUT_RAM_ABOVE_4G;
    /* 64-bit BARs go right above RAM and the memory hotplug area, where
     * every guest can address them. */
    uint64_t base = (ram_end + GIB - 1) & ~(GIB - 1);
    uint64_t top = 1ull << guest_phys_bits(vm);
    uint64_t size = MMIO64_SIZE;
    if (base >= top) {
        size = 0; /* no room: 64-bit BARs fall back to the 32-bit window */
    } else if (top - base < size) {
        size = top - base;
    }
    vm->pci_windows = (struct pci_windows){
        .ecam_base = LAYOUT_PCI_ECAM,
        .ecam_size = 1ull << 20, /* bus 0 only */
        .mmio32_base = LAYOUT_MMIO32_START,
        .mmio32_size = LAYOUT_PCI_ECAM - LAYOUT_MMIO32_START,
        .mmio64_base = size ? base : 0,
        .mmio64_size = size,
    };
    vm->msi = msi_kvm_create(&vm->kvm, err, errlen);
    if (!vm->msi)
        return -1;
    vm->pci = pci_host_create(&vm->pio, &vm->mmio, &vm->pci_windows, &msi_kvm_ops, vm->msi,
                              err, errlen);
    if (!vm->pci)
        return -1;
    vm->env.pci = vm->pci;
    vm->env.ioeventfd = env_ioeventfd;
    return 0;
}

void vm_pci_destroy(struct vm *vm)
{
    pci_host_destroy(vm->pci);
    vm->pci = NULL;
    vm->env.pci = NULL;
    msi_kvm_destroy(vm->msi);
    vm->msi = NULL;
}

/* Plugin options are "key=value,..." so a value must not contain a comma. */
static int opt_value_ok(const char *what, const char *v, char *err, size_t errlen)
{
    if (v && strchr(v, ',')) {
        snprintf(err, errlen, "%s '%s' contains ',', which nimbus cannot pass on", what, v);
        return 0;
    }
    return 1;
}

static int add_disk(struct vm *vm, const struct disk_config *dc, char *err, size_t errlen)
{
    char opts[8192];
    if (!opt_value_ok("--disk: path", dc->path, err, errlen) ||
        !opt_value_ok("--disk: id", dc->id, err, errlen) ||
        !opt_value_ok("--disk: serial", dc->serial, err, errlen))
        return -1;
    int n = snprintf(opts, sizeof(opts), "path=%s,readonly=%s,direct=%s,num_queues=%u,queue_size=%u",
                     dc->path, dc->readonly ? "on" : "off", dc->direct ? "on" : "off",
                     dc->num_queues, dc->queue_size);
    if (dc->id && n > 0 && (size_t)n < sizeof(opts))
        n += snprintf(opts + n, sizeof(opts) - (size_t)n, ",id=%s", dc->id);
    if (dc->serial && n > 0 && (size_t)n < sizeof(opts))
        n += snprintf(opts + n, sizeof(opts) - (size_t)n, ",serial=%s", dc->serial);
    /* Left out, the plugin probes the header (and never follows a backing file). */
    if (dc->image_type != DISK_IMAGE_PROBE && n > 0 && (size_t)n < sizeof(opts))
        n += snprintf(opts + n, sizeof(opts) - (size_t)n, ",image_type=%s",
                      dc->image_type == DISK_IMAGE_QCOW2 ? "qcow2" : "raw");
    if (dc->backing_files && n > 0 && (size_t)n < sizeof(opts))
        n += snprintf(opts + n, sizeof(opts) - (size_t)n, ",backing_files=on");
    if (n < 0 || (size_t)n >= sizeof(opts)) {
        snprintf(err, errlen, "--disk: path '%s' is too long", dc->path);
        return -1;
    }
    char e2[512];
    if (vm_add_device(vm, "virtio_blk", opts, NULL, e2, sizeof(e2)) < 0) {
        snprintf(err, errlen, "--disk: %s", e2);
        return -1;
    }
    return 0;
}

/*
 * --net: open or check the tap queues, hand them to the virtio_net plugin
 * (which dup()s them) and close our copies of the taps opened here; fds the
 * user passed stay theirs.  Every failure is a --net error: exit status 2.
 * A tap created here is non-persistent, so an error after it was made, here
 * or later in vm_create, removes it with the last fd.
 */
static int add_net(struct vm *vm, struct net_config *nc, char *err, size_t errlen)
{
    int fds[CONFIG_MAX_NET_FDS];
    uint32_t nfds = 0, own = 0, npairs = nc->num_queues / 2;
    char e2[512], opts[8192];
    vm->config_error = 1;
    if (!nc->mac_given) {
        char mac[NET_MAC_STRLEN];
        int r = net_random_mac(nc->mac);
        if (r < 0) {
            snprintf(err, errlen, "--net: cannot draw a random MAC: %s", strerror(-r));
            return -1;
        }
        net_format_mac(nc->mac, mac);
        log_info("--net: no mac given, using %s", mac);
        nc->mac_given = 1; /* the same MAC after a reboot, and in vm.info */
    }
    if (!nc->user) {
        char ifname[IFNAMSIZ] = "";
        int created = 0, r;
        if (nc->nfds) {
            nfds = nc->nfds;
            memcpy(fds, nc->fds, nfds * sizeof(fds[0]));
            r = tap_check_fds(fds, nfds, ifname, e2, sizeof(e2));
            if (r == 0 && nc->tap_ready)
                goto configured; /* a reboot: the tap is as the first boot left it */
        } else {
            r = tap_open(nc->tap, npairs, fds, ifname, &created, e2, sizeof(e2));
            if (r == 0)
                own = nfds = npairs;
        }
        if (r == 0) {
            /* A tap handed over as fds is left as it is unless asked. */
            struct tap_link l = {
                .mac = nc->host_mac_given ? nc->host_mac : NULL,
                .mtu = nc->mtu,
                .ip = nc->ip_given ? nc->ip : 0,
                .prefix = net_mask_prefix(nc->mask),
                .up = !nc->nfds || nc->ip_given || nc->mtu || nc->host_mac_given,
            };
            /* A tap handed over with nothing to change is not touched at all:
             * it may live in another network namespace (Kata, libvirt), where
             * nimbus cannot even look it up by name. */
            if (l.up || l.mac || l.mtu || l.ip)
                r = tap_configure(ifname, &l, e2, sizeof(e2));
        }
        if (r < 0) {
            snprintf(err, errlen, "--net: %s", e2);
            tap_close(fds, own);
            return -1;
        }
        log_info("--net: tap %s (%u queue pair%s%s)", ifname, npairs, npairs == 1 ? "" : "s",
                 created ? ", created" : "");
        if (own) {
            /* The config keeps the queues: a reboot gets the same tap, and
             * a tap nimbus made still goes away with nimbus (non-persistent). */
            memcpy(nc->fds, fds, own * sizeof(fds[0]));
            nc->nfds = own;
            nc->fds_owned = 1;
            own = 0;
        }
        nc->tap_ready = 1;
    }
configured:
    if (net_plugin_options(nc, fds, nfds, opts, sizeof(opts)) < 0) {
        snprintf(err, errlen, "--net: id '%.32s...' is too long", nc->id ? nc->id : "");
        tap_close(fds, own);
        return -1;
    }
    int r = vm_add_device(vm, "virtio_net", opts, NULL, e2, sizeof(e2));
    tap_close(fds, own);
    if (r < 0) {
        snprintf(err, errlen, "--net: %s", e2);
        return -1;
    }
    vm->config_error = 0;
    return 0;
}

/* Cloud Hypervisor's ids when the user gave none: "_disk0", "_net1". */
static int set_id(char **id, const char *prefix, uint32_t i, char *err, size_t errlen)
{
    if (*id)
        return 0;
    char buf[32];
    snprintf(buf, sizeof(buf), "%s%u", prefix, i);
    *id = strdup(buf);
    if (!*id) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* The device vm_add_device just made is the list's head. */
static void name_device(struct vm *vm, const char *id)
{
    if (vm->devices)
        device_set_id(vm->devices, id);
}

int vm_add_disk(struct vm *vm, const struct disk_config *dc, char *err, size_t errlen)
{
    if (add_disk(vm, dc, err, errlen) < 0)
        return -1;
    name_device(vm, dc->id);
    return 0;
}

int vm_add_net(struct vm *vm, struct net_config *nc, char *err, size_t errlen)
{
    int r = add_net(vm, nc, err, errlen);
    vm->config_error = 0; /* only vm_create's own failure is a configuration error */
    if (r < 0)
        return -1;
    name_device(vm, nc->id);
    return 0;
}

int vm_add_virtio_devices(struct vm *vm, char *err, size_t errlen)
{
    struct vm_config *cfg = vm->cfg;
    char e2[512];
    for (uint32_t i = 0; i < cfg->ndisks; i++) {
        if (set_id(&cfg->disks[i].id, "_disk", i, err, errlen) < 0 ||
            add_disk(vm, &cfg->disks[i], err, errlen) < 0)
            return -1;
        name_device(vm, cfg->disks[i].id);
    }
    for (uint32_t i = 0; i < cfg->nnets; i++) {
        if (set_id(&cfg->nets[i].id, "_net", i, err, errlen) < 0 ||
            add_net(vm, &cfg->nets[i], err, errlen) < 0)
            return -1;
        name_device(vm, cfg->nets[i].id);
    }
    if (cfg->console.mode != CHR_OFF) {
        vm->console = chr_open_named(&cfg->console, "console", vm->el, e2, sizeof(e2));
        if (!vm->console) {
            snprintf(err, errlen, "--console: %s", e2);
            return -1;
        }
        if (vm_add_device(vm, "virtio_console", "", vm->console, e2, sizeof(e2)) < 0) {
            snprintf(err, errlen, "--console: %s", e2);
            return -1;
        }
        name_device(vm, "__console");
    }
    if (cfg->rng.enabled) {
        char opts[4200];
        if (!opt_value_ok("--rng: src", cfg->rng.src, err, errlen))
            return -1;
        snprintf(opts, sizeof(opts), "src=%s", cfg->rng.src);
        if (vm_add_device(vm, "virtio_rng", opts, NULL, e2, sizeof(e2)) < 0) {
            snprintf(err, errlen, "--rng: %s", e2);
            return -1;
        }
        name_device(vm, "__rng");
    }
    return 0;
}
