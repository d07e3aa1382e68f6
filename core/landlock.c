/*
 * --landlock: the process may open only what its configuration names.
 *
 * Applied once, in main(), before any thread exists, so every thread nimbus
 * ever runs (vCPUs, event loops, I/O groups, the API server) inherits the
 * domain.  Landlock ABI 1-3 rights are handled (as Cloud Hypervisor does);
 * ioctl rights (ABI 5) are not, so KVM and tap ioctls on fds stay as they
 * are.  Paths a later API request names (vm.create) or a plugin's own
 * options name must come through --landlock-rules.
 *
 * Shared libraries are the one thing opened late that the configuration
 * does not name: plugins pull theirs in (liburing, libslirp, zlib) when
 * the VM is created.  Every plugin is therefore loaded before the
 * restriction, so later loads find it and its libraries in memory.
 */
#include "landlock.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/landlock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "plugin_list.h"

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif

#define FS_FILE_RIGHTS                                                                     \
    (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |                          \
     LANDLOCK_ACCESS_FS_READ_FILE | (1ull << 14) /* TRUNCATE, ABI 3 */)
#define FS_READ (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)

struct ll {
    int fd;           /* the ruleset */
    uint64_t handled; /* rights this kernel's ABI knows, all of them denied by default */
    char *err;
    size_t errlen;
};

/* Everything but reading: writing, truncating, creating and removing. */
static uint64_t write_rights(const struct ll *l)
{
    return l->handled & ~(FS_READ | LANDLOCK_ACCESS_FS_EXECUTE);
}

/* Allow `access` beneath `path` (a directory) or on it (a file: only the
 * file rights apply).  `what` names the option for messages. */
static int allow(struct ll *l, const char *what, const char *path, uint64_t access)
{
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0) {
        snprintf(l->err, l->errlen, "--landlock: %s '%s': %s", what, path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode))
        access &= FS_FILE_RIGHTS;
    struct landlock_path_beneath_attr pb = {.allowed_access = access & l->handled,
                                            .parent_fd = fd};
    long r = pb.allowed_access ? syscall(SYS_landlock_add_rule, l->fd, LANDLOCK_RULE_PATH_BENEATH,
                                         &pb, 0)
                               : 0;
    int e = errno;
    close(fd);
    if (r < 0) {
        snprintf(l->err, l->errlen, "--landlock: %s '%s': cannot add the rule: %s", what, path,
                 strerror(e));
        return -1;
    }
    log_debug("landlock: %s %s: 0x%llx", what, path, (unsigned long long)pb.allowed_access);
    return 0;
}

static int access_ok_path(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* A device node or system path that may be absent on this host. */
static int allow_if_present(struct ll *l, const char *path, uint64_t access)
{
    if (access_ok_path(path))
        return allow(l, "system path", path, access);
    return 0;
}

/*
 * Output files: created now when missing (as their backends would create
 * them), so the rule can name the file itself rather than the whole
 * directory it lives in.
 */
static int allow_output_file(struct ll *l, const char *what, const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0644);
    if (fd >= 0)
        close(fd);
    return allow(l, what, path, FS_READ | write_rights(l));
}

/* The directory a socket is created (and a stale one removed) in. */
static int allow_socket_dir(struct ll *l, const char *what, const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    return allow(l, what, dir,
                 LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_REMOVE_FILE);
}

static int allow_chr(struct ll *l, const char *what, const struct chr_config *c)
{
    if (c->mode == CHR_FILE && c->path)
        return allow_output_file(l, what, c->path);
    return 0;
}

/* Load every plugin in `dir` now (see the top of the file). */
static void preload_dir(const char *dir)
{
    struct dirent **ents = NULL;
    int n = scandir(dir, &ents, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        if (plugin_is_file(ents[i]->d_name)) {
            char path[PATH_MAX];
            if (snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name) < (int)sizeof(path) &&
                !dlopen(path, RTLD_NOW | RTLD_LOCAL))
                log_debug("landlock: preloading %s: %s", path, dlerror());
        }
        free(ents[i]);
    }
    free(ents);
}

int landlock_apply(const struct vm_config *cfg, const char *const *plugin_dirs, char *err,
                   size_t errlen)
{
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    if (abi < 0) {
        snprintf(err, errlen, "--landlock: this kernel offers no Landlock (%s)", strerror(errno));
        return -1;
    }
    struct ll l = {.fd = -1, .err = err, .errlen = errlen};
    l.handled = (1ull << 13) - 1; /* ABI 1: EXECUTE .. MAKE_SYM */
    if (abi >= 2)
        l.handled |= 1ull << 13; /* REFER */
    if (abi >= 3)
        l.handled |= 1ull << 14; /* TRUNCATE */
    struct landlock_ruleset_attr attr = {.handled_access_fs = l.handled};
    l.fd = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
    if (l.fd < 0) {
        snprintf(err, errlen, "--landlock: cannot create a ruleset: %s", strerror(errno));
        return -1;
    }

    int rc = 0;
    uint64_t rw = FS_READ | write_rights(&l);
    /* The payload, read again at every reboot. */
    if (cfg->kernel)
        rc |= allow(&l, "--kernel", cfg->kernel, FS_READ);
    if (cfg->firmware)
        rc |= allow(&l, "--firmware", cfg->firmware, FS_READ);
    if (cfg->initramfs)
        rc |= allow(&l, "--initramfs", cfg->initramfs, FS_READ);
    /* Disks are reopened at every reboot, with their own access. */
    for (uint32_t i = 0; i < cfg->ndisks && !rc; i++)
        rc |= allow(&l, "--disk", cfg->disks[i].path, cfg->disks[i].readonly ? FS_READ : rw);
    if (cfg->rng.enabled && cfg->rng.src)
        rc |= allow(&l, "--rng", cfg->rng.src, FS_READ);
    if (!rc)
        rc |= allow_chr(&l, "--serial", &cfg->serial);
    if (!rc)
        rc |= allow_chr(&l, "--console", &cfg->console);
    if (!rc && cfg->log_file)
        rc |= allow_output_file(&l, "--log-file", cfg->log_file);
    if (!rc && cfg->event_monitor_path)
        rc |= allow_output_file(&l, "--event-monitor", cfg->event_monitor_path);
    if (!rc && cfg->api_socket_path)
        rc |= allow_socket_dir(&l, "--api-socket", cfg->api_socket_path);
    for (uint32_t i = 0; i < cfg->nlandlock_rules && !rc; i++) {
        const struct landlock_rule *r = &cfg->landlock_rules[i];
        uint64_t a = 0;
        if (r->access & LANDLOCK_RULE_READ)
            a |= FS_READ;
        if (r->access & LANDLOCK_RULE_WRITE)
            a |= write_rights(&l);
        rc |= allow(&l, "--landlock-rules", r->path, a);
    }
    for (size_t i = 0; plugin_dirs && plugin_dirs[i] && !rc; i++)
        if (access_ok_path(plugin_dirs[i]))
            rc |= allow(&l, "plugin folder", plugin_dirs[i], FS_READ);
    for (uint32_t i = 0; i < cfg->ndevices && !rc; i++)
        if (strchr(cfg->devices[i].plugin, '/'))
            rc |= allow(&l, "--device plugin", cfg->devices[i].plugin, FS_READ);
    /* What the core itself opens: KVM, taps, ptys; /proc/self for thread
     * names and for reopening a disk through its fd. */
    if (!rc)
        rc |= allow(&l, "system path", "/dev/kvm", rw);
    if (!rc)
        rc |= allow_if_present(&l, "/dev/net/tun", rw);
    if (!rc)
        rc |= allow_if_present(&l, "/dev/ptmx", rw);
    if (!rc)
        rc |= allow_if_present(&l, "/dev/pts", rw);
    if (!rc)
        rc |= allow_if_present(&l, "/proc/self", rw);
    if (rc) {
        close(l.fd);
        return -1;
    }

    for (size_t i = 0; plugin_dirs && plugin_dirs[i]; i++)
        preload_dir(plugin_dirs[i]);
    for (uint32_t i = 0; i < cfg->ndevices; i++)
        if (strchr(cfg->devices[i].plugin, '/') && !dlopen(cfg->devices[i].plugin, RTLD_NOW | RTLD_LOCAL))
            log_debug("landlock: preloading %s: %s", cfg->devices[i].plugin, dlerror());

    /* Required without CAP_SYS_ADMIN, and nimbus never executes anything. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
        syscall(SYS_landlock_restrict_self, l.fd, 0) < 0) {
        snprintf(err, errlen, "--landlock: cannot restrict the process: %s", strerror(errno));
        close(l.fd);
        return -1;
    }
    close(l.fd);
    log_info("landlock: ABI %ld, the process is confined to its configuration's paths", abi);
    return 0;
}
