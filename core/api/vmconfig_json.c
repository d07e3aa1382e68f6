/*
 * CH VmConfig (the body of vm.create) -> struct vm_config.  One function
 * per section; each checks what --cpus, --memory, --disk, ... check in
 * core/cli.c, with the same limits, and config_validate() ends it all.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/json_read.h"
#include "api/vmconfig_json.h"
#include "api/vmconfig_json_int.h"
#include "config_limits.h"
#include "layout.h"
#include "log.h"

static int read_payload(struct jr *r, const cJSON *root, struct vm_config *cfg)
{
    static const char *const unsupported[] = {"igvm", "host_data"};
    const cJSON *p;
    if (jr_object(r, root, NULL, "payload", &p) < 0)
        return -1;
    if (!p)
        return 0; /* config_validate() says the kernel is missing */
    for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++) {
        const cJSON *v;
        if (jr_member(r, p, "payload", unsupported[i], &v) < 0)
            return -1;
        if (v)
            return jr_fail(r, "payload", unsupported[i], "not supported (nimbus boots a "
                           "kernel directly)");
    }
    const char *cmdline;
    if (jr_strdup(r, p, "payload", "kernel", 0, &cfg->kernel) < 0 ||
        jr_strdup(r, p, "payload", "firmware", 0, &cfg->firmware) < 0 ||
        jr_strdup(r, p, "payload", "initramfs", 0, &cfg->initramfs) < 0 ||
        jr_string(r, p, "payload", "cmdline", 1, &cmdline) < 0)
        return -1;
    if (!cmdline)
        return 0;
    size_t n = strlen(cmdline);
    if (n >= LAYOUT_CMDLINE_MAX)
        return jr_fail(r, "payload", "cmdline", "too long (%zu bytes, at most %llu)", n,
                       (unsigned long long)LAYOUT_CMDLINE_MAX - 1);
    free(cfg->cmdline);
    if (!(cfg->cmdline = strdup(cmdline)))
        return jr_fail(r, "payload", "cmdline", "out of memory");
    return 0;
}

static int read_topology(struct jr *r, const cJSON *c, struct cpus_config *cpus)
{
    static const char *const keys[4] = {"threads_per_core", "cores_per_die",
                                        "dies_per_package", "packages"};
    const cJSON *t;
    if (jr_object(r, c, "cpus", "topology", &t) < 0)
        return -1;
    if (!t) {
        /* Cloud Hypervisor's default, as --cpus without topology=. */
        cpus->threads_per_core = 1;
        cpus->cores_per_die = cpus->max;
        cpus->dies_per_package = 1;
        cpus->packages = 1;
        cpus->topology_set = 0;
        return 0;
    }
    uint32_t v[4];
    uint64_t product = 1;
    for (int i = 0; i < 4; i++) {
        int given = 0;
        if (jr_u32(r, t, "cpus.topology", keys[i], 1, CLI_MAX_VCPUS, &v[i], &given) < 0)
            return -1;
        if (!given)
            return jr_fail(r, "cpus.topology", keys[i], "missing");
        product *= v[i]; /* each <= 1024: no overflow */
    }
    if (product != cpus->max)
        return jr_fail(r, "cpus", "topology", "describes %llu vCPUs but max_vcpus is %u",
                       (unsigned long long)product, cpus->max);
    cpus->threads_per_core = v[0];
    cpus->cores_per_die = v[1];
    cpus->dies_per_package = v[2];
    cpus->packages = v[3];
    cpus->topology_set = 1;
    return 0;
}

static int read_cpus(struct jr *r, const cJSON *root, struct cpus_config *cpus)
{
    const cJSON *c, *affinity, *features;
    if (jr_object(r, root, NULL, "cpus", &c) < 0)
        return -1;
    if (!c)
        return 0; /* CH's default: one vCPU, as config_init() */
    uint32_t boot = 0, max = 0, bits = cpus->max_phys_bits;
    int boot_given = 0, max_given = 0, hyperv = 0, nested = 1;
    size_t naff;
    if (jr_u32(r, c, "cpus", "boot_vcpus", 1, CLI_MAX_VCPUS, &boot, &boot_given) < 0 ||
        jr_u32(r, c, "cpus", "max_vcpus", 1, CLI_MAX_VCPUS, &max, &max_given) < 0 ||
        jr_u32(r, c, "cpus", "max_phys_bits", CLI_MIN_PHYS_BITS, CLI_MAX_PHYS_BITS, &bits,
               NULL) < 0 ||
        jr_bool(r, c, "cpus", "kvm_hyperv", &hyperv) < 0 ||
        jr_bool(r, c, "cpus", "nested", &nested) < 0 ||
        jr_array(r, c, "cpus", "affinity", CLI_MAX_VCPUS, &affinity, &naff) < 0 ||
        jr_object(r, c, "cpus", "features", &features) < 0)
        return -1;
    if (!boot_given)
        return jr_fail(r, "cpus", "boot_vcpus", "missing");
    if (!max_given)
        return jr_fail(r, "cpus", "max_vcpus", "missing");
    if (hyperv)
        return jr_fail(r, "cpus", "kvm_hyperv", "not supported");
    if (max < boot)
        return jr_fail(r, "cpus", "max_vcpus", "(%u) must not be less than boot_vcpus (%u)",
                       max, boot);
    if (naff)
        log_warn("vm.create: 'cpus.affinity' is not supported yet and is ignored");
    cpus->boot = boot;
    cpus->max = max;
    cpus->max_phys_bits = bits;
    return read_topology(r, c, cpus);
}

static int read_memory(struct jr *r, const cJSON *root, struct memory_config *mem)
{
    static const char *const methods[] = {"Acpi", "VirtioMem"};
    const cJSON *m, *zones, *hugepage_size;
    if (jr_object(r, root, NULL, "memory", &m) < 0)
        return -1;
    if (!m)
        return 0; /* CH's default, 512 MiB, as config_init() */
    uint64_t size = 0;
    int size_given = 0, method = (int)mem->hotplug_method;
    size_t nzones;
    /* Zones first: Kata's template mode sends size 0 with zones. */
    if (jr_array(r, m, "memory", "zones", SIZE_MAX, &zones, &nzones) < 0)
        return -1;
    if (nzones)
        return jr_fail(r, "memory", "zones", "not supported");
    if (jr_u64(r, m, "memory", "size", 0, JR_MAX_INT, &size, &size_given) < 0 ||
        jr_bool(r, m, "memory", "shared", &mem->shared) < 0 ||
        jr_bool(r, m, "memory", "hugepages", &mem->hugepages) < 0 ||
        jr_bool(r, m, "memory", "prefault", &mem->prefault) < 0 ||
        jr_bool(r, m, "memory", "mergeable", &mem->mergeable) < 0 ||
        jr_bool(r, m, "memory", "thp", &mem->thp) < 0 ||
        jr_enum(r, m, "memory", "hotplug_method", methods, 2, &method) < 0 ||
        jr_u64(r, m, "memory", "hotplug_size", 0, JR_MAX_INT, &mem->hotplug_size, NULL) < 0 ||
        jr_u64(r, m, "memory", "hotplugged_size", 0, JR_MAX_INT, &mem->hotplugged_size,
               NULL) < 0 ||
        jr_member(r, m, "memory", "hugepage_size", &hugepage_size) < 0)
        return -1;
    if (!size_given)
        return jr_fail(r, "memory", "size", "missing");
    if (hugepage_size)
        return jr_fail(r, "memory", "hugepage_size", "not supported (the host's default "
                       "huge page size is used)");
    if (size % 4096)
        return jr_fail(r, "memory", "size", "%llu is not a multiple of 4 KiB",
                       (unsigned long long)size);
    if (size < CLI_MIN_MEMORY)
        return jr_fail(r, "memory", "size", "%llu is below the minimum of %llu MiB",
                       (unsigned long long)size, CLI_MIN_MEMORY >> 20);
    /* MAP_HUGETLB with the default huge page size (2 MiB on x86-64). */
    if (mem->hugepages && size % (2ull << 20))
        return jr_fail(r, "memory", "size", "must be a multiple of 2 MiB with hugepages, "
                       "got %llu", (unsigned long long)size);
    mem->size = size;
    mem->hotplug_method = method == 1 ? MEM_HOTPLUG_VIRTIO_MEM : MEM_HOTPLUG_ACPI;
    return 0;
}

static int disk_refuse(struct jr *r, const cJSON *o, const char *path)
{
    int iommu = 0, vhost_user = 0, sparse = 1;
    uint32_t segment = 0;
    const char *s;
    const cJSON *v;
    if (jr_bool(r, o, path, "iommu", &iommu) < 0 ||
        jr_bool(r, o, path, "vhost_user", &vhost_user) < 0 ||
        jr_bool(r, o, path, "sparse", &sparse) < 0 ||
        jr_string(r, o, path, "vhost_socket", 1, &s) < 0 ||
        jr_u32(r, o, path, "pci_segment", 0, UINT16_MAX, &segment, NULL) < 0)
        return -1;
    if (iommu)
        return jr_fail(r, path, "iommu", "not supported");
    if (vhost_user)
        return jr_fail(r, path, "vhost_user", "not supported");
    if (segment)
        return jr_fail(r, path, "pci_segment", "only segment 0 exists, got %u", segment);
    if (jr_object(r, o, path, "rate_limiter_config", &v) < 0 ||
        jr_string(r, o, path, "rate_limit_group", 1, &s) < 0)
        return -1;
    if (v || s)
        log_warn("vm.create: %s: rate limiting is not supported yet and is ignored", path);
    return 0;
}

/* CH's ImageType spellings; absent: the plugin probes the header. */
static int disk_image(struct jr *r, const cJSON *o, const char *path, struct disk_config *d)
{
    const char *s;
    if (jr_string(r, o, path, "image_type", 1, &s) < 0 ||
        jr_bool(r, o, path, "backing_files", &d->backing_files) < 0)
        return -1;
    if (s && strcmp(s, "Raw") == 0)
        d->image_type = DISK_IMAGE_RAW;
    else if (s && strcmp(s, "Qcow2") == 0)
        d->image_type = DISK_IMAGE_QCOW2;
    else if (s)
        return jr_fail(r, path, "image_type", "\"%.32s\" is not supported (\"Raw\" or \"Qcow2\")",
                       s);
    /* A probed header is guest-writable data in a raw image. */
    if (d->backing_files && d->image_type != DISK_IMAGE_QCOW2)
        return jr_fail(r, path, "backing_files", "true needs \"image_type\": \"Qcow2\" (a "
                       "probed or raw image never follows a backing file)");
    return 0;
}

static int read_disk(struct jr *r, const cJSON *o, const char *path, const struct vm_config *cfg,
                     struct disk_config *d)
{
    d->num_queues = 1;   /* CH's defaults, not --disk's */
    d->queue_size = 128;
    if (!cJSON_IsObject(o))
        return jr_fail(r, path, NULL, "expected an object, got %s", jr_type_name(o));
    if (disk_refuse(r, o, path) < 0 || disk_image(r, o, path, d) < 0 ||
        jr_strdup(r, o, path, "path", 0, &d->path) < 0 ||
        jr_bool(r, o, path, "readonly", &d->readonly) < 0 ||
        jr_bool(r, o, path, "direct", &d->direct) < 0 ||
        jr_u32(r, o, path, "num_queues", 1, CLI_MAX_DISK_QUEUES, &d->num_queues, NULL) < 0 ||
        jr_u32(r, o, path, "queue_size", 2, CLI_MAX_QUEUE_SIZE, &d->queue_size, NULL) < 0 ||
        jr_strdup(r, o, path, "id", 0, &d->id) < 0 ||
        jr_strdup(r, o, path, "serial", 0, &d->serial) < 0)
        return -1;
    if (!d->path)
        return jr_fail(r, path, "path", "missing");
    if (d->queue_size & (d->queue_size - 1))
        return jr_fail(r, path, "queue_size", "must be a power of two, got %u", d->queue_size);
    if (d->serial && strlen(d->serial) > CLI_MAX_DISK_SERIAL)
        return jr_fail(r, path, "serial", "'%.64s' is longer than %u bytes", d->serial,
                       CLI_MAX_DISK_SERIAL);
    /* d is cfg's last disk (vm.create) or not in cfg yet (vm.add-disk). */
    for (uint32_t i = 0; d->id && i < cfg->ndisks && &cfg->disks[i] != d; i++)
        if (cfg->disks[i].id && strcmp(cfg->disks[i].id, d->id) == 0)
            return jr_fail(r, path, "id", "'%.64s' is used by disks[%u]", d->id, i);
    return 0;
}

static int read_disks(struct jr *r, const cJSON *root, struct vm_config *cfg)
{
    const cJSON *arr;
    size_t n;
    if (jr_array(r, root, NULL, "disks", CONFIG_MAX_DISKS, &arr, &n) < 0)
        return -1;
    size_t i = 0;
    for (const cJSON *it = arr ? arr->child : NULL; it; it = it->next, i++) {
        char path[32];
        jr_index(path, sizeof(path), "disks", i);
        /* Counted first so config_free() releases whatever gets filled. */
        struct disk_config *d = &cfg->disks[cfg->ndisks++];
        memset(d, 0, sizeof(*d));
        if (read_disk(r, it, path, cfg, d) < 0)
            return -1;
    }
    return 0;
}

static int read_nets(struct jr *r, const cJSON *root, struct vm_config *cfg)
{
    const cJSON *arr;
    size_t n;
    if (jr_array(r, root, NULL, "net", CONFIG_MAX_NETS, &arr, &n) < 0)
        return -1;
    size_t i = 0;
    for (const cJSON *it = arr ? arr->child : NULL; it; it = it->next, i++) {
        char path[32];
        int fds = 0;
        jr_index(path, sizeof(path), "net", i);
        struct net_config *nc = &cfg->nets[cfg->nnets++];
        memset(nc, 0, sizeof(*nc));
        if (netconfig_from_obj(r, it, path, nc, &fds) < 0 ||
            netconfig_unique(r, cfg->nets, cfg->nnets, nc, path) < 0)
            return -1;
        if (fds)
            log_warn("vm.create: %s.fds is ignored: tap fds can only come with vm.add-net, "
                     "as SCM_RIGHTS", path);
    }
    return 0;
}

static int read_rng(struct jr *r, const cJSON *root, struct rng_config *rng)
{
    const cJSON *o;
    int iommu = 0;
    if (jr_object(r, root, NULL, "rng", &o) < 0)
        return -1;
    rng->enabled = 1; /* CH always has one */
    if (!o) {
        free(rng->src);
        if (!(rng->src = strdup(CLI_DEFAULT_RNG)))
            return jr_fail(r, "rng", NULL, "out of memory");
        return 0;
    }
    if (jr_strdup(r, o, "rng", "src", 0, &rng->src) < 0 ||
        jr_bool(r, o, "rng", "iommu", &iommu) < 0)
        return -1;
    if (!rng->src)
        return jr_fail(r, "rng", "src", "missing");
    if (iommu)
        return jr_fail(r, "rng", "iommu", "not supported");
    return 0;
}

/* serial / console: ConsoleConfig. */
static int read_chr(struct jr *r, const cJSON *root, const char *key, struct chr_config *chr,
                    int *given)
{
    /* CH's ConsoleOutputMode spellings, in chr_mode order where they map. */
    static const char *const modes[] = {"Off", "Null", "Tty", "File", "Pty", "Socket"};
    static const enum chr_mode to_mode[] = {CHR_OFF, CHR_NULL, CHR_TTY, CHR_FILE, CHR_PTY};
    const cJSON *o;
    const char *file, *socket;
    int mode = -1, iommu = 0;
    if (jr_object(r, root, NULL, key, &o) < 0)
        return -1;
    if (!o)
        return 0; /* serial Null, console Tty: config_init() */
    if (jr_enum(r, o, key, "mode", modes, 6, &mode) < 0 ||
        jr_string(r, o, key, "file", 0, &file) < 0 ||
        jr_string(r, o, key, "socket", 1, &socket) < 0 ||
        jr_bool(r, o, key, "iommu", &iommu) < 0)
        return -1;
    if (mode < 0)
        return jr_fail(r, key, "mode", "missing");
    if (mode == 5)
        return jr_fail(r, key, "mode", "Socket is not supported");
    if (iommu)
        return jr_fail(r, key, "iommu", "not supported");
    if (to_mode[mode] == CHR_FILE && !file)
        return jr_fail(r, key, "file", "missing (mode File writes to it)");
    free(chr->path);
    chr->path = NULL;
    chr->mode = to_mode[mode];
    /* A Pty's "file" is where vm.info reported the pty: the VM opens a new one. */
    if (chr->mode == CHR_FILE && !(chr->path = strdup(file)))
        return jr_fail(r, key, "file", "out of memory");
    *given = 1;
    return 0;
}

/*
 * Sections CH has and nimbus does not (yet).  Kata sends vsock, fs,
 * platform, ... with every VM, so they cannot be errors; the guest simply
 * does not get them.  Their type is still checked, as CH would.
 */
static int read_ignored(struct jr *r, const cJSON *root)
{
    static const struct { const char *key; int type; } ignored[] = {
        {"fs", cJSON_Array}, {"pmem", cJSON_Array}, {"devices", cJSON_Array},
        {"user_devices", cJSON_Array}, {"vdpa", cJSON_Array}, {"numa", cJSON_Array},
        {"rate_limit_groups", cJSON_Array}, {"generic_vhost_user", cJSON_Array},
        {"pci_segments", cJSON_Array}, {"landlock_rules", cJSON_Array},
        {"vsock", cJSON_Object}, {"balloon", cJSON_Object}, {"platform", cJSON_Object},
        {"tpm", cJSON_Object}, {"rtc", cJSON_Object}, {"debug_console", cJSON_Object},
        {"iommu", cJSON_True}, {"watchdog", cJSON_True}, {"pvpanic", cJSON_True},
        {"landlock_enable", cJSON_True},
    };
    for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++) {
        const cJSON *v;
        if (jr_member(r, root, NULL, ignored[i].key, &v) < 0)
            return -1;
        if (!v)
            continue;
        int type = ignored[i].type, used;
        if (type == cJSON_True) {
            if (!cJSON_IsBool(v))
                return jr_fail(r, NULL, ignored[i].key, "expected true or false, got %s",
                               jr_type_name(v));
            used = cJSON_IsTrue(v);
        } else {
            if ((v->type & 0xff) != type)
                return jr_fail(r, NULL, ignored[i].key, "expected %s, got %s",
                               type == cJSON_Array ? "an array" : "an object",
                               jr_type_name(v));
            used = v->child != NULL;
        }
        if (used)
            log_warn("vm.create: '%s' is not supported yet and is ignored", ignored[i].key);
    }
    return 0;
}

int diskconfig_from_json(const char *json, size_t len, const struct vm_config *cfg,
                         struct disk_config *d, char *err, size_t errlen)
{
    struct jr r = {.err = err, .errlen = errlen};
    if (err && errlen)
        err[0] = '\0';
    memset(d, 0, sizeof(*d));
    cJSON *root = jr_parse(&r, json, len);
    if (!root)
        return -1;
    int rc = read_disk(&r, root, "", cfg, d);
    cJSON_Delete(root);
    return rc;
}

int vmconfig_from_json(const char *json, size_t len, struct vm_config *cfg, char *err,
                       size_t errlen)
{
    struct jr r = {.err = err, .errlen = errlen};
    if (err && errlen)
        err[0] = '\0';
    cJSON *root = jr_parse(&r, json, len);
    if (!root)
        return -1;
    int rc = -1;
    if (!cJSON_IsObject(root)) {
        jr_fail(&r, "body", NULL, "expected an object, got %s", jr_type_name(root));
        goto out;
    }
    if (read_payload(&r, root, cfg) < 0 || read_cpus(&r, root, &cfg->cpus) < 0 ||
        read_memory(&r, root, &cfg->memory) < 0 || read_disks(&r, root, cfg) < 0 ||
        read_nets(&r, root, cfg) < 0 || read_rng(&r, root, &cfg->rng) < 0 ||
        read_chr(&r, root, "serial", &cfg->serial, &(int){0}) < 0 ||
        read_chr(&r, root, "console", &cfg->console, &cfg->console_given) < 0 ||
        read_ignored(&r, root) < 0)
        goto out;
    /* The disk's own kernel needs its reader forked before any thread:
     * only a command line can ask for that. */
    if (!cfg->kernel && !cfg->firmware) {
        jr_fail(&r, "payload", NULL, "kernel or firmware is required (booting a disk's own "
                "kernel works from the command line only)");
        goto out;
    }
    rc = config_validate(cfg, err, errlen);
out:
    cJSON_Delete(root);
    return rc;
}
