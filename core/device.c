#include "device.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "seccomp_filter.h"
#include "virtio/virtio_pci.h"

/* ---- plugin loading ---------------------------------------------------- */

/* Everything up to and including `ops` exists since 1.0. */
#define PLUGIN_MIN_SIZE (offsetof(nimbus_plugin, ops) + sizeof(void *))
#define OPS_MIN_SIZE (offsetof(nimbus_device_ops, io_write) + sizeof(void *))

int plugin_check(const nimbus_plugin *p, const char *where, char *err, size_t errlen)
{
    if (p->abi_major != NIMBUS_ABI_MAJOR) {
        snprintf(err, errlen,
                 "%s: plugin built for ABI %u.%u, this nimbus speaks ABI %u.%u (major differs)",
                 where, p->abi_major, p->abi_minor, NIMBUS_ABI_MAJOR, NIMBUS_ABI_MINOR);
        return -1;
    }
    if (p->abi_minor > NIMBUS_ABI_MINOR) {
        snprintf(err, errlen,
                 "%s: plugin needs ABI %u.%u, this nimbus only provides %u.%u; upgrade nimbus",
                 where, p->abi_major, p->abi_minor, NIMBUS_ABI_MAJOR, NIMBUS_ABI_MINOR);
        return -1;
    }
    if (p->struct_size < PLUGIN_MIN_SIZE || !p->ops || !p->name || !p->name[0]) {
        snprintf(err, errlen, "%s: malformed plugin descriptor", where);
        return -1;
    }
    const nimbus_device_ops *o = p->ops;
    if (o->struct_size < OPS_MIN_SIZE || !o->create || !o->destroy || !o->reset) {
        snprintf(err, errlen, "%s: plugin '%s' lacks required ops (create/destroy/reset)", where,
                 p->name);
        return -1;
    }
    return 0;
}

const nimbus_plugin *plugin_load(const char *name, const char *const *dirs, char *err,
                                 size_t errlen)
{
    char path[PATH_MAX];
    void *h = NULL;
    if (strchr(name, '/')) {
        snprintf(path, sizeof(path), "%s", name);
        h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            snprintf(err, errlen, "cannot load plugin '%s': %s", name, dlerror());
            return NULL;
        }
    } else {
        for (size_t i = 0; dirs && dirs[i]; i++) {
            snprintf(path, sizeof(path), "%s/%s.so", dirs[i], name);
            if (access(path, F_OK) != 0)
                continue;
            h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
            if (!h) {
                snprintf(err, errlen, "cannot load plugin '%s': %s", path, dlerror());
                return NULL;
            }
            break;
        }
        if (!h) {
            char searched[1024] = "";
            for (size_t i = 0; dirs && dirs[i]; i++) {
                size_t l = strlen(searched);
                snprintf(searched + l, sizeof(searched) - l, "%s%s", l ? ", " : "", dirs[i]);
            }
            snprintf(err, errlen, "plugin '%s' not found (searched: %s)", name, searched);
            return NULL;
        }
    }
    const nimbus_plugin *p = dlsym(h, NIMBUS_PLUGIN_SYMBOL);
    if (!p) {
        /* Name another major precisely when the plugin exports one. */
        for (unsigned m = 0; m < 16; m++) {
            char sym[32];
            snprintf(sym, sizeof(sym), "nimbus_plugin_v%u", m);
            if (m != NIMBUS_ABI_MAJOR && dlsym(h, sym)) {
                snprintf(err, errlen,
                         "%s: plugin built for ABI major %u, this nimbus speaks ABI %u.%u",
                         path, m, NIMBUS_ABI_MAJOR, NIMBUS_ABI_MINOR);
                return NULL;
            }
        }
        snprintf(err, errlen, "%s: not a nimbus plugin (no %s symbol)", path,
                 NIMBUS_PLUGIN_SYMBOL);
        return NULL;
    }
    /* Plugins are never dlclose'd: instrumentation and statics stay mapped. */
    if (plugin_check(p, path, err, errlen) < 0)
        return NULL;
    return p;
}

void plugin_default_dirs(const char *cli_dir, char storage[4][4096], const char *dirs[5])
{
    int n = 0;
    /* The command line beats the environment, which beats the defaults. */
    if (cli_dir && *cli_dir) {
        snprintf(storage[n], 4096, "%s", cli_dir);
        dirs[n] = storage[n];
        n++;
    }
    const char *env = getenv("NIMBUS_PLUGIN_DIR");
    if (env && *env) {
        snprintf(storage[n], 4096, "%s", env);
        dirs[n] = storage[n];
        n++;
    }
    char exe[4096];
    ssize_t l = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (l > 0) {
        exe[l] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        snprintf(storage[n], 4096, "%.4000s/plugins", exe);
        dirs[n] = storage[n];
        n++;
        snprintf(storage[n], 4096, "%.4000s/../lib/nimbus/plugins", exe);
        dirs[n] = storage[n];
        n++;
    }
    dirs[n] = NULL;
}

/* ---- host services ----------------------------------------------------- */

static void h_log(void *hctx, uint32_t level, const char *msg)
{
    struct device *d = hctx;
    /* Plugins log what guests make them log: limited per device, so one
     * plugin that forgot its own "warned once" cannot flood the log. */
    int lvl = level > LOG_TRACE ? LOG_TRACE : (int)level;
    if (lvl >= LOG_DEBUG) /* asked for with -vv: a debugging session */
        log_msg(lvl, "%s: %s", d->name, msg ? msg : "");
    else
        log_limited(&d->log_limit, lvl, "%s: %s", d->name, msg ? msg : "");
}

static int h_gpa_read(void *hctx, uint64_t gpa, void *dst, uint64_t len)
{
    struct device *d = hctx;
    return gm_read(d->env->mem, gpa, dst, len);
}

static int h_gpa_write(void *hctx, uint64_t gpa, const void *src, uint64_t len)
{
    struct device *d = hctx;
    return gm_write(d->env->mem, gpa, src, len);
}

static void *h_gpa_map(void *hctx, uint64_t gpa, uint64_t len, uint32_t writable)
{
    struct device *d = hctx;
    (void)writable; /* dirty tracking comes with migration */
    return gm_ptr(d->env->mem, gpa, len);
}

static int drive_gsi(struct device *d, uint32_t gsi, uint8_t level)
{
    const struct device_env *env = d->env;
    if (!env->irq_line)
        return -ENOSYS;
    if (d->irq_level[gsi] == level)
        return 0;
    d->irq_level[gsi] = level;
    if (!env->irqs)
        return env->irq_line(env->opaque, gsi, level);
    /* The lock spans the ioctl so two devices' edges cannot be reordered. */
    int r = 0;
    pthread_mutex_lock(&env->irqs->lock);
    uint16_t *c = &env->irqs->count[gsi];
    if (level) {
        if ((*c)++ == 0)
            r = env->irq_line(env->opaque, gsi, 1);
    } else if (*c > 0 && --(*c) == 0) {
        r = env->irq_line(env->opaque, gsi, 0);
    }
    pthread_mutex_unlock(&env->irqs->lock);
    return r;
}

static int h_irq_set_level(void *hctx, uint32_t gsi, uint32_t level)
{
    struct device *d = hctx;
    if (gsi >= 24)
        return -EINVAL;
    return drive_gsi(d, gsi, level ? 1 : 0);
}

static int h_msi_send(void *hctx, uint64_t addr, uint32_t data)
{
    struct device *d = hctx;
    return d->env->msi ? d->env->msi(d->env->opaque, addr, data) : -ENOSYS;
}

/* ---- locking ------------------------------------------------------------- */

void device_lock(struct device *d)
{
    pthread_mutex_lock(&d->lock);
    device_groups_lock(d);
}

void device_groups_lock(struct device *d)
{
    for (uint32_t g = 0; g < d->ngroups; g++)
        pthread_mutex_lock(&d->groups[g].lock);
}

int device_groups_trylock(struct device *d)
{
    for (uint32_t g = 0; g < d->ngroups; g++) {
        if (pthread_mutex_trylock(&d->groups[g].lock) != 0) {
            while (g-- > 0)
                pthread_mutex_unlock(&d->groups[g].lock);
            return -EBUSY;
        }
    }
    return 0;
}

void device_unlock(struct device *d)
{
    for (uint32_t g = d->ngroups; g-- > 0;)
        pthread_mutex_unlock(&d->groups[g].lock);
    pthread_mutex_unlock(&d->lock);
}

void device_group_lock(struct device *d, uint32_t group)
{
    if (group < d->ngroups)
        pthread_mutex_lock(&d->groups[group].lock);
    else
        device_lock(d);
}

void device_group_unlock(struct device *d, uint32_t group)
{
    if (group < d->ngroups)
        pthread_mutex_unlock(&d->groups[group].lock);
    else
        device_unlock(d);
}

struct event_loop *device_group_loop(const struct device *d, uint32_t group)
{
    return group < d->ngroups ? d->groups[group].el : d->env->el;
}

/* ---- fd watches ------------------------------------------------------------ */

static void watch_ready(void *opaque, int fd, uint32_t revents)
{
    struct device_watch *w = opaque;
    struct device *d = w->dev;
    /* A slot only changes group while unwatched, so this read is stable. */
    uint32_t g = w->group < 0 ? NIMBUS_VQ_GROUP_NONE : (uint32_t)w->group;
    device_group_lock(d, g);
    pthread_mutex_lock(&d->svc_lock);
    /* The plugin may have dropped or moved the watch after epoll reported it. */
    int live = w->fd == fd && (w->group < 0 ? NIMBUS_VQ_GROUP_NONE : (uint32_t)w->group) == g;
    uint64_t token = w->token;
    pthread_mutex_unlock(&d->svc_lock);
    if (live && d->state && d->ops.fd_ready)
        d->ops.fd_ready(d->state, fd, token, revents);
    device_group_unlock(d, g);
}

static int watch_add(struct device *d, int group, int fd, uint32_t events, uint64_t token)
{
    if (fd < 0 || !d->env->el)
        return -EINVAL;
    pthread_mutex_lock(&d->svc_lock);
    struct device_watch *w = NULL, *free_slot = NULL;
    for (int i = 0; i < DEVICE_MAX_WATCHES; i++) {
        if (d->watches[i].fd == fd)
            w = &d->watches[i];
        else if (d->watches[i].fd < 0 && !free_slot)
            free_slot = &d->watches[i];
    }
    struct event_loop *el =
        device_group_loop(d, group < 0 ? NIMBUS_VQ_GROUP_NONE : (uint32_t)group);
    if (w && w->group != group) {
        /* Moving to another thread: the old loop must forget the fd first. */
        el_unwatch(device_group_loop(d, w->group < 0 ? NIMBUS_VQ_GROUP_NONE
                                                     : (uint32_t)w->group),
                   fd);
        w->fd = -1;
        free_slot = w;
        w = NULL;
    }
    if (!w)
        w = free_slot;
    int r = -ENOSPC;
    if (w) {
        uint32_t ev = events & (EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP);
        w->dev = d;
        w->fd = fd;
        w->group = group;
        w->token = token;
        r = el_watch(el, fd, ev, watch_ready, w);
        if (r < 0)
            w->fd = -1;
    }
    pthread_mutex_unlock(&d->svc_lock);
    return r;
}

static int h_fd_watch(void *hctx, int fd, uint32_t events, uint64_t token)
{
    return watch_add(hctx, -1, fd, events, token);
}

static int h_fd_watch_group(void *hctx, uint32_t group, int fd, uint32_t events,
                            uint64_t token)
{
    struct device *d = hctx;
    if (group >= d->ngroups)
        return -EINVAL;
    return watch_add(d, (int)group, fd, events, token);
}

static int h_fd_unwatch(void *hctx, int fd)
{
    struct device *d = hctx;
    int r = -ENOENT;
    pthread_mutex_lock(&d->svc_lock);
    for (int i = 0; i < DEVICE_MAX_WATCHES; i++) {
        struct device_watch *w = &d->watches[i];
        if (w->fd == fd && fd >= 0) {
            w->fd = -1;
            r = el_unwatch(
                device_group_loop(d, w->group < 0 ? NIMBUS_VQ_GROUP_NONE : (uint32_t)w->group),
                fd);
            break;
        }
    }
    pthread_mutex_unlock(&d->svc_lock);
    return r;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void timers_rearm(struct device *d)
{
    uint64_t next = 0;
    for (int i = 0; i < DEVICE_MAX_TIMERS; i++)
        if (d->timer_deadline[i] && (!next || d->timer_deadline[i] < next))
            next = d->timer_deadline[i];
    struct itimerspec its = {0};
    if (next) {
        its.it_value.tv_sec = (time_t)(next / 1000000000ull);
        its.it_value.tv_nsec = (long)(next % 1000000000ull);
        if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
            its.it_value.tv_nsec = 1;
    }
    timerfd_settime(d->timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void timer_ready(void *opaque, int fd, uint32_t revents)
{
    struct device *d = opaque;
    uint64_t expirations;
    ssize_t r = read(fd, &expirations, sizeof(expirations));
    (void)r;
    (void)revents;
    device_lock(d);
    /* Collect the due timers first: callbacks may re-arm, which takes svc_lock. */
    uint32_t due = 0;
    pthread_mutex_lock(&d->svc_lock);
    uint64_t now = mono_ns();
    for (uint32_t i = 0; i < DEVICE_MAX_TIMERS; i++) {
        if (d->timer_deadline[i] && d->timer_deadline[i] <= now) {
            d->timer_deadline[i] = 0;
            due |= 1u << i;
        }
    }
    pthread_mutex_unlock(&d->svc_lock);
    for (uint32_t i = 0; i < DEVICE_MAX_TIMERS; i++)
        if ((due & (1u << i)) && d->state && d->ops.timer_fired)
            d->ops.timer_fired(d->state, i);
    pthread_mutex_lock(&d->svc_lock);
    timers_rearm(d);
    pthread_mutex_unlock(&d->svc_lock);
    device_unlock(d);
}

static int h_timer_arm(void *hctx, uint32_t timer_id, uint64_t deadline_ns)
{
    struct device *d = hctx;
    if (timer_id >= DEVICE_MAX_TIMERS)
        return -EINVAL;
    int r = 0;
    pthread_mutex_lock(&d->svc_lock);
    if (d->timer_fd < 0) {
        if (!d->env->el) {
            r = -ENOSYS;
            goto out;
        }
        d->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (d->timer_fd < 0) {
            r = -errno;
            goto out;
        }
        r = el_watch(d->env->el, d->timer_fd, EPOLLIN, timer_ready, d);
        if (r < 0) {
            close(d->timer_fd);
            d->timer_fd = -1;
            goto out;
        }
    }
    d->timer_deadline[timer_id] = deadline_ns;
    timers_rearm(d);
out:
    pthread_mutex_unlock(&d->svc_lock);
    return r;
}

static uint64_t h_clock_ns(void *hctx)
{
    (void)hctx;
    return mono_ns();
}

static int64_t h_wallclock_ns(void *hctx)
{
    (void)hctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static int64_t h_chr_write(void *hctx, const void *buf, uint64_t len)
{
    struct device *d = hctx;
    if (!d->chr)
        return -ENODEV;
    return chr_write(d->chr, buf, len);
}

static void h_chr_input_ready(void *hctx)
{
    struct device *d = hctx;
    if (d->chr)
        chr_input_ready(d->chr);
}

static void h_request_shutdown(void *hctx, uint32_t kind)
{
    struct device *d = hctx;
    log_ratelimited(LOG_INFO, "%s: guest requested %s", d->name,
                    kind == NIMBUS_SHUTDOWN_RESET ? "reset" : "power off");
    if (d->env->shutdown)
        d->env->shutdown(d->env->opaque, kind);
}

/* Virtqueue services exist only for devices behind the virtio transport. */
static int h_vq_pop(void *hctx, uint32_t queue, nimbus_vq_buf *bufs, uint32_t cap,
                    uint32_t *nbufs, uint32_t *head)
{
    struct device *d = hctx;
    return d->virtio ? virtio_pci_vq_pop(d->virtio, queue, bufs, cap, nbufs, head) : -ENODEV;
}

static int h_vq_push(void *hctx, uint32_t queue, uint32_t head, uint32_t written)
{
    struct device *d = hctx;
    return d->virtio ? virtio_pci_vq_push(d->virtio, queue, head, written) : -ENODEV;
}

static int h_vq_notify(void *hctx, uint32_t queue)
{
    struct device *d = hctx;
    return d->virtio ? virtio_pci_vq_notify(d->virtio, queue) : -ENODEV;
}

static uint32_t h_vq_size(void *hctx, uint32_t queue)
{
    struct device *d = hctx;
    return d->virtio ? virtio_pci_vq_size(d->virtio, queue) : 0;
}

static int h_virtio_config_changed(void *hctx)
{
    struct device *d = hctx;
    return d->virtio ? virtio_pci_config_changed(d->virtio) : -ENODEV;
}

static void h_virtio_needs_reset(void *hctx)
{
    struct device *d = hctx;
    if (d->virtio)
        virtio_pci_needs_reset(d->virtio, "reported by the device");
}

static void h_virtio_reset_done(void *hctx)
{
    struct device *d = hctx;
    if (d->virtio)
        virtio_pci_reset_done(d->virtio);
}

const nimbus_host_api device_host_api = {
    .struct_size = sizeof(nimbus_host_api),
    .abi_major = NIMBUS_ABI_MAJOR,
    .abi_minor = NIMBUS_ABI_MINOR,
    .log = h_log,
    .gpa_read = h_gpa_read,
    .gpa_write = h_gpa_write,
    .gpa_map = h_gpa_map,
    .irq_set_level = h_irq_set_level,
    .msi_send = h_msi_send,
    .fd_watch = h_fd_watch,
    .fd_unwatch = h_fd_unwatch,
    .timer_arm = h_timer_arm,
    .clock_ns = h_clock_ns,
    .wallclock_ns = h_wallclock_ns,
    .chr_write = h_chr_write,
    .chr_input_ready = h_chr_input_ready,
    .request_shutdown = h_request_shutdown,
    .vq_pop = h_vq_pop,
    .vq_push = h_vq_push,
    .vq_notify = h_vq_notify,
    .virtio_config_changed = h_virtio_config_changed,
    .virtio_needs_reset = h_virtio_needs_reset,
    .fd_watch_group = h_fd_watch_group,
    .vq_size = h_vq_size,
    .virtio_reset_done = h_virtio_reset_done,
};

/* ---- instances ----------------------------------------------------------- */

/* One loop thread per declared I/O group, named after the device and group. */
static int groups_start(struct device *d, const nimbus_virtio_info *info, char *err,
                        size_t errlen)
{
    if (info->num_groups > NIMBUS_MAX_IO_GROUPS) {
        snprintf(err, errlen, "%s: plugin declared %u I/O groups (max %u)", d->name,
                 info->num_groups, NIMBUS_MAX_IO_GROUPS);
        return -1;
    }
    const char *shortname = strncmp(d->name, "virtio_", 7) == 0 ? d->name + 7 : d->name;
    for (uint32_t g = 0; g < info->num_groups; g++) {
        struct io_group *grp = &d->groups[g];
        grp->el = el_create();
        if (!grp->el) {
            snprintf(err, errlen, "%s: cannot create I/O thread %u", d->name, g);
            return -1;
        }
        pthread_mutex_init(&grp->lock, NULL);
        d->ngroups = g + 1;
        char name[24];
        snprintf(name, sizeof(name), "%.8s_q%u", shortname, g);
        el_set_seccomp(grp->el, SECCOMP_DEVICE);
        int r = el_start_named(grp->el, name);
        if (r < 0) {
            snprintf(err, errlen, "%s: cannot start I/O thread %u: %s", d->name, g,
                     strerror(-r));
            return -1;
        }
    }
    return 0;
}

void device_set_id(struct device *d, const char *id)
{
    snprintf(d->id, sizeof(d->id), "%s", id);
    for (uint32_t g = 0; g < d->ngroups; g++) {
        char name[96];
        snprintf(name, sizeof(name), "%s_q%u", id, g);
        el_rename(d->groups[g].el, name);
    }
}

static void device_io(void *opaque, uint32_t region, uint64_t offset, void *data, uint32_t len,
                      int is_write)
{
    struct device *d = opaque;
    int r;
    device_lock(d);
    if (is_write)
        r = d->ops.io_write ? d->ops.io_write(d->state, region, offset, data, len) : -ENOSYS;
    else
        r = d->ops.io_read ? d->ops.io_read(d->state, region, offset, data, len) : -ENOSYS;
    if (r < 0)
        d->bad_accesses++;
    device_unlock(d);
    if (r < 0) {
        if (!is_write)
            memset(data, 0xff, len);
        log_debug("%s: rejected %u-byte %s at region %u offset 0x%llx: %s", d->name, len,
                  is_write ? "write" : "read", region, (unsigned long long)offset,
                  strerror(-r));
    }
}

static uint64_t device_chr_sink(void *opaque, const void *buf, uint64_t len)
{
    struct device *d = opaque;
    uint64_t n = 0;
    device_lock(d);
    if (d->state && d->ops.chr_input)
        n = d->ops.chr_input(d->state, buf, len);
    device_unlock(d);
    return n;
}

static int region_ok(const struct device *d, const nimbus_region *r, char *err, size_t errlen)
{
    uint64_t last;
    if (r->size == 0 || __builtin_add_overflow(r->base, r->size - 1, &last)) {
        snprintf(err, errlen, "%s: region at 0x%llx has an invalid size", d->name,
                 (unsigned long long)r->base);
        return -1;
    }
    if (r->kind == NIMBUS_REGION_PIO) {
        if (last > 0xffff) {
            snprintf(err, errlen, "%s: I/O ports 0x%llx-0x%llx are beyond 0xffff", d->name,
                     (unsigned long long)r->base, (unsigned long long)last);
            return -1;
        }
        return 0;
    }
    if (r->kind == NIMBUS_REGION_MMIO) {
        const struct guest_mem *gm = d->env->mem;
        /* The memory hotplug area counts as RAM before it is plugged. */
        if (gm && gm_overlaps(gm, r->base, last)) {
            snprintf(err, errlen, "%s: MMIO 0x%llx-0x%llx overlaps guest RAM", d->name,
                     (unsigned long long)r->base, (unsigned long long)last);
            return -1;
        }
        return 0;
    }
    snprintf(err, errlen, "%s: unknown region kind %u", d->name, r->kind);
    return -1;
}

struct device *device_create(const nimbus_plugin *p, const char *options,
                             const struct device_env *env, struct chardev *chr, char *err,
                             size_t errlen)
{
    struct device *d = calloc(1, sizeof(*d));
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(d->name, sizeof(d->name), "%s", p->name);
    d->plugin = p;
    /* Copy what the plugin has; members it does not know stay NULL. */
    size_t n = p->ops->struct_size < sizeof(d->ops) ? p->ops->struct_size : sizeof(d->ops);
    memcpy(&d->ops, p->ops, n);
    d->ops.struct_size = sizeof(d->ops);
    d->env = env;
    d->chr = chr;
    d->timer_fd = -1;
    for (int i = 0; i < DEVICE_MAX_WATCHES; i++)
        d->watches[i].fd = -1;
    pthread_mutex_init(&d->lock, NULL);
    pthread_mutex_init(&d->svc_lock, NULL);

    char perr[256] = "";
    uint32_t nreg = NIMBUS_MAX_REGIONS;
    device_lock(d);
    int r = d->ops.create(&device_host_api, d, options ? options : "", &d->state, d->regions,
                          &nreg, perr, sizeof(perr));
    device_unlock(d);
    if (r < 0) {
        /* Plugins name themselves in their messages: do not say it twice. */
        const char *msg = perr[0] ? perr : strerror(-r);
        size_t nl = strlen(p->name);
        if (strncmp(msg, p->name, nl) == 0 && msg[nl] == ':' && msg[nl + 1] == ' ')
            msg += nl + 2;
        snprintf(err, errlen, "%s: %s", p->name, msg);
        pthread_mutex_destroy(&d->lock);
        pthread_mutex_destroy(&d->svc_lock);
        free(d);
        return NULL;
    }
    if (nreg > NIMBUS_MAX_REGIONS) {
        snprintf(err, errlen, "%s: plugin reported %u regions (max %u)", p->name, nreg,
                 NIMBUS_MAX_REGIONS);
        goto fail;
    }
    d->nregions = nreg;
    for (uint32_t i = 0; i < nreg; i++) {
        const nimbus_region *rg = &d->regions[i];
        if (region_ok(d, rg, err, errlen) < 0)
            goto fail;
        struct bus *b = rg->kind == NIMBUS_REGION_PIO ? env->pio : env->mmio;
        if (!b)
            continue;
        r = bus_add(b, rg->base, rg->size, device_io, d, i);
        if (r < 0) {
            snprintf(err, errlen, "%s: %s 0x%llx-0x%llx %s", p->name, b->name,
                     (unsigned long long)rg->base,
                     (unsigned long long)(rg->base + rg->size - 1),
                     r == -EEXIST ? "is already used by another device" : strerror(-r));
            goto fail;
        }
        d->nmapped = i + 1;
    }
    if (d->ops.virtio_info) {
        /* The transport owns a virtio device's address space. */
        if (nreg != 0) {
            snprintf(err, errlen, "%s: a virtio plugin must not report regions", p->name);
            goto fail;
        }
        nimbus_virtio_info info = {.struct_size = sizeof(info)};
        device_lock(d);
        r = d->ops.virtio_info(d->state, &info);
        device_unlock(d);
        if (r < 0) {
            snprintf(err, errlen, "%s: cannot describe its virtio device: %s", p->name,
                     strerror(-r));
            goto fail;
        }
        /* A plugin built for 1.1 wrote no group fields: all device-wide. */
        if (info.struct_size < offsetof(nimbus_virtio_info, queue_group) + sizeof(info.queue_group)) {
            info.num_groups = 0;
            memset(info.queue_group, NIMBUS_VQ_GROUP_NONE, sizeof(info.queue_group));
        }
        if (groups_start(d, &info, err, errlen) < 0)
            goto fail;
        d->virtio = virtio_pci_create(d, &info, err, errlen);
        if (!d->virtio)
            goto fail;
    }
    if (chr && chr_attach(chr, device_chr_sink, d) < 0) {
        snprintf(err, errlen, "%s: cannot attach its character backend", p->name);
        goto fail;
    }
    return d;
fail:
    device_destroy(d);
    return NULL;
}

void device_reset(struct device *d)
{
    if (d->virtio) {
        virtio_pci_reset(d->virtio);
        return;
    }
    device_lock(d);
    d->ops.reset(d->state);
    device_unlock(d);
}

/* What device_counters passes to the plugin: the caller's emit behind a
 * name check, since names end up as JSON keys in the API. */
struct counters_filter {
    void (*emit)(void *ctx, const char *name, uint64_t value);
    void *ctx;
    uint32_t dropped;
};

static int counter_name_ok(const char *name)
{
    size_t n = 0;
    if (!name)
        return 0;
    for (; name[n]; n++) {
        char c = name[n];
        if (n >= NIMBUS_COUNTER_NAME_MAX ||
            !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return n > 0;
}

static void counters_emit(void *opaque, const char *name, uint64_t value)
{
    struct counters_filter *f = opaque;
    if (counter_name_ok(name))
        f->emit(f->ctx, name, value);
    else
        f->dropped++;
}

int device_counters(struct device *d, void (*emit)(void *ctx, const char *name, uint64_t value),
                    void *ctx)
{
    if (!d->ops.counters)
        return -ENOTSUP;
    struct counters_filter f = {emit, ctx, 0};
    device_lock(d);
    int r = d->state ? d->ops.counters(d->state, counters_emit, &f) : -ENODEV;
    device_unlock(d);
    if (f.dropped)
        log_debug("%s: dropped %u counters with invalid names", d->name, f.dropped);
    return r;
}

void device_destroy(struct device *d)
{
    if (!d)
        return;
    if (d->chr)
        chr_detach(d->chr);
    for (uint32_t i = 0; i < d->nmapped; i++) {
        struct bus *b = d->regions[i].kind == NIMBUS_REGION_PIO ? d->env->pio : d->env->mmio;
        if (b)
            bus_remove(b, d->regions[i].base);
    }
    /* I/O threads first: after this no group call can start or be running. */
    for (uint32_t g = 0; g < d->ngroups; g++)
        el_stop(d->groups[g].el);
    device_lock(d);
    if (d->ops.flush && d->state) {
        int r = d->ops.flush(d->state);
        if (r < 0)
            log_error("%s: flush failed: %s", d->name, strerror(-r));
    }
    if (d->state)
        d->ops.destroy(d->state);
    d->state = NULL;
    /* A removed device must not keep a shared line asserted. */
    for (uint32_t g = 0; g < 24; g++)
        if (d->irq_level[g])
            drive_gsi(d, g, 0);
    device_unlock(d);
    for (int i = 0; i < DEVICE_MAX_WATCHES; i++) {
        struct device_watch *w = &d->watches[i];
        if (w->fd >= 0 && d->env->el)
            el_unwatch(device_group_loop(d, w->group < 0 ? NIMBUS_VQ_GROUP_NONE
                                                         : (uint32_t)w->group),
                       w->fd);
    }
    if (d->timer_fd >= 0 && d->env->el)
        el_unwatch(d->env->el, d->timer_fd);
    /* A callback the loop started before the unwatches (a watch, the timer,
     * the character backend's sink) may still be running on `d`. */
    el_sync(d->env->el);
    if (d->timer_fd >= 0)
        close(d->timer_fd);
    /* After the plugin: nothing can pop, push or kick any more. */
    virtio_pci_destroy(d->virtio);
    d->virtio = NULL;
    for (uint32_t g = 0; g < d->ngroups; g++) {
        el_destroy(d->groups[g].el);
        pthread_mutex_destroy(&d->groups[g].lock);
    }
    d->ngroups = 0;
    pthread_mutex_destroy(&d->svc_lock);
    pthread_mutex_destroy(&d->lock);
    free(d);
}
