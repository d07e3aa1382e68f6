/*
 * Whole-configuration checks that need the complete picture (required
 * options, cross-option limits, files on disk).  The command line and the
 * REST API's vm.create run the same checks, so a config is accepted or
 * refused the same way whichever way it arrives.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_opts.h"
#include "config.h"
#include "config_limits.h"
#include "layout.h"
#include "memory.h"

static int fail(struct cli_err *st, const char *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct cli_err *st, const char *ctx, const char *fmt, ...)
{
    struct cli_err e = {.ctx = ctx, .buf = st->buf, .len = st->len};
    va_list ap;
    va_start(ap, fmt);
    cli_err_vset(&e, fmt, ap);
    va_end(ap);
    return -1;
}

/* The path must exist, not be a directory, and allow `mode` (access()). */
static int check_file(struct cli_err *st, const char *ctx, const char *path, int mode)
{
    struct stat sb;
    if (stat(path, &sb) < 0 || access(path, mode) < 0)
        return fail(st, ctx, "cannot %s '%s': %s",
                    mode & W_OK ? "open read-write" : "read", path, strerror(errno));
    if (S_ISDIR(sb.st_mode))
        return fail(st, ctx, "'%s' is a directory", path);
    return 0;
}

/* Output files are created later; their directory must exist now. */
static int check_parent_dir(struct cli_err *st, const char *ctx, const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return 0; /* the current directory */
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *dir = strndup(path, n);
    if (!dir)
        return fail(st, ctx, "out of memory");
    struct stat sb;
    int r = 0;
    if (stat(dir, &sb) < 0)
        r = fail(st, ctx, "directory of '%s' is not usable: %s", path, strerror(errno));
    else if (!S_ISDIR(sb.st_mode))
        r = fail(st, ctx, "directory of '%s' is not a directory", path);
    free(dir);
    return r;
}

/* The hotplug area: whole slots, and addressable with max_phys_bits. */
static int check_memory_hotplug(struct cli_err *st, const struct memory_config *m,
                                uint32_t bits)
{
    if (!m->hotplug_size && !m->hotplugged_size)
        return 0;
    if (m->hotplug_method == MEM_HOTPLUG_VIRTIO_MEM)
        return fail(st, "--memory", "hotplug_method=virtio-mem is not supported yet; use "
                    "hotplug_method=acpi");
    uint64_t slot = gm_hotplug_slot_size(m->hotplug_size);
    if (!m->hotplug_size || m->hotplug_size % slot)
        return fail(st, "--memory", "hotplug_size of %llu bytes is not a multiple of %llu MiB",
                    (unsigned long long)m->hotplug_size, (unsigned long long)(slot >> 20));
    if (m->hotplugged_size > m->hotplug_size || m->hotplugged_size % slot)
        return fail(st, "--memory", "hotplugged_size of %llu bytes is not a multiple of %llu "
                    "MiB up to hotplug_size", (unsigned long long)m->hotplugged_size,
                    (unsigned long long)(slot >> 20));
    uint64_t base = gm_hotplug_base(m->size);
    if (bits < 64 && (base >= (1ull << bits) || m->hotplug_size > (1ull << bits) - base))
        return fail(st, "--memory", "hotplug_size of %llu bytes ends above what "
                    "max_phys_bits=%u can address", (unsigned long long)m->hotplug_size, bits);
    return 0;
}

static int check_chr(struct cli_err *st, const char *ctx, const struct chr_config *chr)
{
    if (chr->mode != CHR_FILE)
        return 0;
    return check_parent_dir(st, ctx, chr->path);
}

int config_validate(struct vm_config *cfg, char *err, size_t errlen)
{
    struct cli_err e = {.ctx = NULL, .buf = err, .len = errlen};
    struct cli_err *st = &e;
    if (!config_has_payload(cfg))
        return fail(st, NULL, "--kernel is required (or --firmware, or a --disk whose boot "
                              "loader names a kernel; see --help)");
    if (cfg->kernel && cfg->firmware)
        return fail(st, "--firmware", "cannot be used with --kernel");
    if (cfg->firmware && cfg->initramfs)
        return fail(st, "--initramfs", "a firmware loads its own; give --kernel instead");
    if (cfg->kernel && check_file(st, "--kernel", cfg->kernel, R_OK) != 0)
        return -1;
    if (cfg->firmware && check_file(st, "--firmware", cfg->firmware, R_OK) != 0)
        return -1;
    if (cfg->initramfs && check_file(st, "--initramfs", cfg->initramfs, R_OK) != 0)
        return -1;
    for (uint32_t i = 0; i < cfg->ndisks; i++) {
        int mode = cfg->disks[i].readonly ? R_OK : R_OK | W_OK;
        if (cfg->disks[i].num_queues == CLI_DISK_QUEUES_PER_VCPU)
            cfg->disks[i].num_queues =
                cfg->cpus.boot < CLI_MAX_DEFAULT_DISK_QUEUES ? cfg->cpus.boot
                                                             : CLI_MAX_DEFAULT_DISK_QUEUES;
        if (check_file(st, "--disk", cfg->disks[i].path, mode) != 0)
            return -1;
    }
    if (cfg->rng.enabled && check_file(st, "--rng", cfg->rng.src, R_OK) != 0)
        return -1;
    if (check_chr(st, "--serial", &cfg->serial) != 0 ||
        check_chr(st, "--console", &cfg->console) != 0)
        return -1;
    if (cfg->serial.mode == CHR_TTY && cfg->console.mode == CHR_TTY) {
        if (cfg->console_given)
            return fail(st, NULL, "--serial tty and --console tty cannot be used together");
        /* `--serial tty` alone means "the serial port is my terminal". */
        cfg->console.mode = CHR_OFF;
    }
    if (cfg->log_file && check_parent_dir(st, "--log-file", cfg->log_file) != 0)
        return -1;
    if (cfg->plugin_dir) {
        struct stat sb;
        if (stat(cfg->plugin_dir, &sb) < 0)
            return fail(st, "--plugin-dir", "cannot use '%s': %s", cfg->plugin_dir,
                        strerror(errno));
        if (!S_ISDIR(sb.st_mode))
            return fail(st, "--plugin-dir", "'%s' is not a directory", cfg->plugin_dir);
    }
    /* RAM above 3 GiB moves above 4 GiB, so the top of RAM is size + 1 GiB
     * and it must be addressable with max_phys_bits. */
    uint64_t hole = LAYOUT_MMIO32_END - LAYOUT_MMIO32_START;
    uint32_t bits = cfg->cpus.max_phys_bits;
    uint64_t limit = bits >= 64 ? UINT64_MAX
                   : bits <= 32 ? (1ull << 32) - hole : (1ull << bits) - hole;
    if (cfg->memory.size > limit)
        return fail(st, "--memory", "size of %llu bytes is more than max_phys_bits=%u "
                    "can address (%llu bytes)", (unsigned long long)cfg->memory.size,
                    cfg->cpus.max_phys_bits, (unsigned long long)limit);
    return check_memory_hotplug(st, &cfg->memory, bits);
}

int config_has_payload(const struct vm_config *cfg)
{
    return cfg->kernel || cfg->firmware || cfg->ndisks > 0;
}

int config_boots_from_disk(const struct vm_config *cfg)
{
    return !cfg->kernel && !cfg->firmware && cfg->ndisks > 0;
}
