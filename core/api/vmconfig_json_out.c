/*
 * struct vm_config -> CH's VmConfig JSON (vm.info's "config"), in CH's
 * spelling and with the constant members CH shows for what nimbus does not
 * have (iommu, vhost_user: false).  Members whose value nimbus does not know
 * or did not get are left out rather than invented: a net's ip when the
 * host side has none, a mask that was not given (CH's default is the same),
 * a topology that was not given.  vmconfig_from_json() of the result gives
 * the same config back.
 */
#include <stdint.h>
#include <stdio.h>

#include "api/vmconfig_json.h"
#include "net/net_addr.h"

/* Adds that remember an allocation failure; after one, the parent may be
 * NULL, which cJSON's add functions take as a no-op. */
struct jw {
    int oom;
};

static cJSON *note(struct jw *w, cJSON *item)
{
    if (!item)
        w->oom = 1;
    return item;
}

static void add_num(struct jw *w, cJSON *o, const char *key, uint64_t v)
{
    note(w, cJSON_AddNumberToObject(o, key, (double)v));
}

static void add_bool(struct jw *w, cJSON *o, const char *key, int v)
{
    note(w, cJSON_AddBoolToObject(o, key, v != 0));
}

static void add_str(struct jw *w, cJSON *o, const char *key, const char *v)
{
    if (v)
        note(w, cJSON_AddStringToObject(o, key, v));
}

static void add_mac(struct jw *w, cJSON *o, const char *key, const uint8_t mac[6])
{
    char s[NET_MAC_STRLEN];
    net_format_mac(mac, s);
    add_str(w, o, key, s);
}

static void add_ipv4(struct jw *w, cJSON *o, const char *key, uint32_t be)
{
    const uint8_t *b = (const uint8_t *)&be; /* network byte order */
    char s[16];
    snprintf(s, sizeof(s), "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
    add_str(w, o, key, s);
}

static void net_fill(struct jw *w, cJSON *o, const struct net_config *nc)
{
    if (nc->tap && nc->tap[0])
        add_str(w, o, "tap", nc->tap);
    if (nc->ip_given)
        add_ipv4(w, o, "ip", nc->ip);
    if (nc->ip_given && nc->mask_given)
        add_ipv4(w, o, "mask", nc->mask);
    /* Without mac_given the VM draws one when it starts: show it from then on. */
    if (nc->mac_given || !net_mac_is_zero(nc->mac))
        add_mac(w, o, "mac", nc->mac);
    if (nc->host_mac_given)
        add_mac(w, o, "host_mac", nc->host_mac);
    if (nc->mtu)
        add_num(w, o, "mtu", nc->mtu);
    add_bool(w, o, "iommu", 0);
    add_num(w, o, "num_queues", nc->num_queues);
    add_num(w, o, "queue_size", nc->queue_size);
    add_bool(w, o, "vhost_user", 0);
    add_str(w, o, "vhost_mode", "Client");
    add_str(w, o, "id", nc->id);
    add_num(w, o, "pci_segment", 0);
    add_bool(w, o, "offload_tso", nc->offload_tso);
    add_bool(w, o, "offload_ufo", nc->offload_ufo);
    add_bool(w, o, "offload_csum", nc->offload_csum);
    if (!nc->user)
        return;
    add_bool(w, o, "user", 1); /* nimbus's own: --net user=on */
    if (!nc->nhostfwd)
        return;
    cJSON *fwd = note(w, cJSON_AddArrayToObject(o, "hostfwd"));
    for (uint32_t i = 0; fwd && i < nc->nhostfwd && i < CONFIG_MAX_HOSTFWD; i++) {
        cJSON *s = note(w, cJSON_CreateString(nc->hostfwd[i]));
        if (s && !cJSON_AddItemToArray(fwd, s)) {
            cJSON_Delete(s);
            w->oom = 1;
        }
    }
}

static void add_cpus(struct jw *w, cJSON *root, const struct cpus_config *c)
{
    cJSON *o = note(w, cJSON_AddObjectToObject(root, "cpus"));
    add_num(w, o, "boot_vcpus", c->boot);
    add_num(w, o, "max_vcpus", c->max);
    if (c->topology_set) {
        cJSON *t = note(w, cJSON_AddObjectToObject(o, "topology"));
        add_num(w, t, "threads_per_core", c->threads_per_core);
        add_num(w, t, "cores_per_die", c->cores_per_die);
        add_num(w, t, "dies_per_package", c->dies_per_package);
        add_num(w, t, "packages", c->packages);
    }
    add_bool(w, o, "kvm_hyperv", 0);
    add_num(w, o, "max_phys_bits", c->max_phys_bits);
}

static void add_memory(struct jw *w, cJSON *root, const struct memory_config *m)
{
    cJSON *o = note(w, cJSON_AddObjectToObject(root, "memory"));
    add_num(w, o, "size", m->size);
    add_bool(w, o, "mergeable", m->mergeable);
    add_str(w, o, "hotplug_method",
            m->hotplug_method == MEM_HOTPLUG_VIRTIO_MEM ? "VirtioMem" : "Acpi");
    if (m->hotplug_size)
        add_num(w, o, "hotplug_size", m->hotplug_size);
    if (m->hotplugged_size)
        add_num(w, o, "hotplugged_size", m->hotplugged_size);
    add_bool(w, o, "shared", m->shared);
    add_bool(w, o, "hugepages", m->hugepages);
    add_bool(w, o, "prefault", m->prefault);
    add_bool(w, o, "thp", m->thp);
}

static void add_payload(struct jw *w, cJSON *root, const struct vm_config *cfg)
{
    cJSON *o = note(w, cJSON_AddObjectToObject(root, "payload"));
    add_str(w, o, "kernel", cfg->kernel);
    add_str(w, o, "firmware", cfg->firmware);
    add_str(w, o, "cmdline", cfg->cmdline);
    add_str(w, o, "initramfs", cfg->initramfs);
}

static void disk_fill(struct jw *w, cJSON *o, const struct disk_config *d)
{
    add_str(w, o, "path", d->path);
    add_bool(w, o, "readonly", d->readonly);
    add_bool(w, o, "direct", d->direct);
    add_bool(w, o, "iommu", 0);
    add_num(w, o, "num_queues", d->num_queues);
    add_num(w, o, "queue_size", d->queue_size);
    add_bool(w, o, "vhost_user", 0);
    add_str(w, o, "id", d->id);
    add_str(w, o, "serial", d->serial);
    /* Left out when probed, so the body read back probes again. */
    if (d->image_type != DISK_IMAGE_PROBE)
        add_str(w, o, "image_type", d->image_type == DISK_IMAGE_QCOW2 ? "Qcow2" : "Raw");
    add_bool(w, o, "backing_files", d->backing_files);
    add_num(w, o, "pci_segment", 0);
}

static void add_disks(struct jw *w, cJSON *root, const struct vm_config *cfg)
{
    if (!cfg->ndisks)
        return;
    cJSON *arr = note(w, cJSON_AddArrayToObject(root, "disks"));
    for (uint32_t i = 0; arr && i < cfg->ndisks && i < CONFIG_MAX_DISKS; i++) {
        cJSON *o = note(w, cJSON_CreateObject());
        if (o && !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            w->oom = 1;
            return;
        }
        disk_fill(w, o, &cfg->disks[i]);
    }
}

static void add_nets(struct jw *w, cJSON *root, const struct vm_config *cfg)
{
    if (!cfg->nnets)
        return;
    cJSON *arr = note(w, cJSON_AddArrayToObject(root, "net"));
    for (uint32_t i = 0; arr && i < cfg->nnets && i < CONFIG_MAX_NETS; i++) {
        cJSON *o = note(w, cJSON_CreateObject());
        if (o && !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            w->oom = 1;
            return;
        }
        net_fill(w, o, &cfg->nets[i]);
    }
}

static void add_chr(struct jw *w, cJSON *root, const char *key, const struct chr_config *c,
                    const char *pty_file)
{
    static const char *const names[] = {
        [CHR_OFF] = "Off", [CHR_NULL] = "Null", [CHR_TTY] = "Tty",
        [CHR_FILE] = "File", [CHR_PTY] = "Pty",
    };
    cJSON *o = note(w, cJSON_AddObjectToObject(root, key));
    unsigned mode = (unsigned)c->mode;
    add_str(w, o, "mode", mode < sizeof(names) / sizeof(names[0]) ? names[mode] : "Off");
    if (c->mode == CHR_FILE)
        add_str(w, o, "file", c->path);
    else if (c->mode == CHR_PTY)
        add_str(w, o, "file", pty_file);
    add_bool(w, o, "iommu", 0);
}

cJSON *vmconfig_to_cjson(const struct vm_config *cfg, const char *serial_file,
                         const char *console_file)
{
    struct jw w = {0};
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return NULL;
    add_cpus(&w, root, &cfg->cpus);
    add_memory(&w, root, &cfg->memory);
    add_payload(&w, root, cfg);
    add_disks(&w, root, cfg);
    add_nets(&w, root, cfg);
    /* CH always has an rng; a command line without --rng has none. */
    if (cfg->rng.enabled) {
        cJSON *rng = note(&w, cJSON_AddObjectToObject(root, "rng"));
        add_str(&w, rng, "src", cfg->rng.src);
        add_bool(&w, rng, "iommu", 0);
    }
    add_chr(&w, root, "serial", &cfg->serial, serial_file);
    add_chr(&w, root, "console", &cfg->console, console_file);
    add_bool(&w, root, "iommu", 0);
    add_bool(&w, root, "watchdog", 0);
    add_bool(&w, root, "pvpanic", 0);
    if (w.oom) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

cJSON *diskconfig_to_cjson(const struct disk_config *d)
{
    struct jw w = {0};
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    disk_fill(&w, o, d);
    if (w.oom) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

cJSON *netconfig_to_cjson(const struct net_config *nc)
{
    struct jw w = {0};
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    net_fill(&w, o, nc);
    if (w.oom) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}
