#include "fake_host.h"
#include "fake_host_priv.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct fake_host *host_of(void *hctx)
{
    return (struct fake_host *)hctx;
}

/* Count a contract violation; `counter` is the violations member to bump. */
void fake_host_violation(struct fake_host *h, uint64_t *counter, const char *what)
{
    (*counter)++;
    if (h->abort_on_violation) {
        fprintf(stderr, "fakehost: plugin broke the host API contract: %s\n", what);
        abort();
    }
}

/* True when [gpa, gpa+len) lies inside RAM; written to be overflow-safe. */
static int ram_range_ok(const struct fake_host *h, uint64_t gpa, uint64_t len)
{
    return gpa <= h->ram_size && len <= h->ram_size - gpa;
}

static void fh_log(void *hctx, uint32_t level, const char *msg)
{
    struct fake_host *h = host_of(hctx);
    if (level > NIMBUS_LOG_TRACE || msg == NULL) {
        fake_host_violation(h, &h->violations.bad_log, "log() with unknown level or NULL message");
        return;
    }
    h->log_lines++;
    snprintf(h->last_log, sizeof(h->last_log), "%s", msg);
    if (h->log_echo)
        fprintf(stderr, "fakehost: plugin log[%u]: %s\n", level, msg);
}

static int fh_gpa_read(void *hctx, uint64_t gpa, void *dst, uint64_t len)
{
    struct fake_host *h = host_of(hctx);
    if (dst == NULL && len != 0) {
        fake_host_violation(h, &h->violations.null_arg, "NULL buffer with non-zero length");
        return -EINVAL;
    }
    if (!ram_range_ok(h, gpa, len)) {
        h->gpa_faults++;
        return -EFAULT;
    }
    if (len)
        memcpy(dst, h->ram + gpa, len);
    return 0;
}

static int fh_gpa_write(void *hctx, uint64_t gpa, const void *src, uint64_t len)
{
    struct fake_host *h = host_of(hctx);
    if (src == NULL && len != 0) {
        fake_host_violation(h, &h->violations.null_arg, "NULL buffer with non-zero length");
        return -EINVAL;
    }
    if (!ram_range_ok(h, gpa, len)) {
        h->gpa_faults++;
        return -EFAULT;
    }
    if (len) {
        memcpy(h->ram + gpa, src, len);
        fake_host_mark_dirty(h, gpa, len);
    }
    return 0;
}

static void *fh_gpa_map(void *hctx, uint64_t gpa, uint64_t len, uint32_t writable)
{
    struct fake_host *h = host_of(hctx);
    if (h->ram == NULL || !ram_range_ok(h, gpa, len)) {
        h->gpa_faults++;
        return NULL;
    }
    if (writable)
        fake_host_mark_dirty(h, gpa, len);
    return h->ram + gpa;
}

static int fh_irq_set_level(void *hctx, uint32_t gsi, uint32_t level)
{
    struct fake_host *h = host_of(hctx);
    if (gsi >= FAKE_HOST_GSIS) {
        fake_host_violation(h, &h->violations.bad_gsi, "irq_set_level() with gsi >= 24");
        return -EINVAL;
    }
    if (level > 1) {
        fake_host_violation(h, &h->violations.bad_level, "irq_set_level() with level other than 0/1");
        return -EINVAL;
    }
    if (level && !h->irq_level[gsi])
        h->irq_edges[gsi]++;
    h->irq_level[gsi] = level;
    return 0;
}

static int fh_msi_send(void *hctx, uint64_t addr, uint32_t data)
{
    struct fake_host *h = host_of(hctx);
    if (h->msi_count < FAKE_HOST_MSIS) {
        h->msi[h->msi_count].addr = addr;
        h->msi[h->msi_count].data = data;
    }
    h->msi_count++;
    return 0;
}

static int find_fd(const struct fake_host *h, int fd)
{
    for (unsigned i = 0; i < FAKE_HOST_FDS; i++)
        if (h->fds[i].fd == fd)
            return (int)i;
    return -1;
}

static int fh_fd_watch(void *hctx, int fd, uint32_t events, uint64_t token)
{
    struct fake_host *h = host_of(hctx);
    if (fd < 0) {
        fake_host_violation(h, &h->violations.bad_fd, "fd_watch() with a negative fd");
        return -EBADF;
    }
    int slot = find_fd(h, fd);
    if (slot < 0)
        slot = find_fd(h, -1);
    if (slot < 0)
        return -ENOSPC;
    h->fds[slot].fd = fd;
    h->fds[slot].events = events;
    h->fds[slot].token = token;
    return 0;
}

/* Single-threaded stand-in: a group watch is an ordinary watch, once the
 * group is one the device declared (fake_host_poll runs every group). */
static int fh_fd_watch_group(void *hctx, uint32_t group, int fd, uint32_t events,
                             uint64_t token)
{
    struct fake_host *h = host_of(hctx);
    if (!h->virtio.attached || group >= h->virtio.info.num_groups) {
        fake_host_violation(h, &h->violations.bad_group,
                            "fd_watch_group() with a group the device did not declare");
        return -EINVAL;
    }
    return fh_fd_watch(hctx, fd, events, token);
}

static int fh_fd_unwatch(void *hctx, int fd)
{
    struct fake_host *h = host_of(hctx);
    int slot = fd < 0 ? -1 : find_fd(h, fd);
    if (slot < 0)
        return -ENOENT;
    h->fds[slot].fd = -1;
    h->fds[slot].events = 0;
    h->fds[slot].token = 0;
    return 0;
}

static int fh_timer_arm(void *hctx, uint32_t timer_id, uint64_t deadline_ns)
{
    struct fake_host *h = host_of(hctx);
    if (timer_id >= FAKE_HOST_TIMERS) {
        fake_host_violation(h, &h->violations.bad_timer, "timer_arm() with timer_id >= 16");
        return -EINVAL;
    }
    h->timer_deadline[timer_id] = deadline_ns;
    return 0;
}

static uint64_t fh_clock_ns(void *hctx)
{
    return host_of(hctx)->now_ns;
}

static int64_t fh_wallclock_ns(void *hctx)
{
    return host_of(hctx)->wall_ns;
}

static int64_t fh_chr_write(void *hctx, const void *buf, uint64_t len)
{
    struct fake_host *h = host_of(hctx);
    h->chr_write_calls++;
    if (h->chr_absent)
        return -ENOTCONN;
    if (buf == NULL && len != 0) {
        fake_host_violation(h, &h->violations.null_arg, "NULL buffer with non-zero length");
        return -EINVAL;
    }
    uint64_t n = h->chr_stall ? 0 : len;
    if (h->chr_accept_max && n > h->chr_accept_max)
        n = h->chr_accept_max;
    if (n > INT64_MAX)
        n = INT64_MAX;
    uint64_t room = FAKE_HOST_CHR_OUT - h->chr_out_len;
    uint64_t keep = n < room ? n : room;
    if (keep) {
        memcpy(h->chr_out + h->chr_out_len, buf, keep);
        h->chr_out_len += keep;
    }
    h->chr_out_total += n;
    return (int64_t)n;
}

static void fh_chr_input_ready(void *hctx)
{
    host_of(hctx)->chr_input_ready_calls++;
}

static void fh_request_shutdown(void *hctx, uint32_t kind)
{
    struct fake_host *h = host_of(hctx);
    if (kind != NIMBUS_SHUTDOWN_POWEROFF && kind != NIMBUS_SHUTDOWN_RESET)
        fake_host_violation(h, &h->violations.bad_shutdown, "request_shutdown() with unknown kind");
    h->shutdown_kind = kind;
    h->shutdown_calls++;
}

int fake_host_init(struct fake_host *h, uint64_t ram_size)
{
    memset(h, 0, sizeof(*h));
    if (ram_size) {
        /* Exactly ram_size bytes so ASan flags a plugin that strays past a
         * pointer from gpa_map. */
        h->ram = calloc(1, ram_size);
        if (h->ram == NULL)
            return -ENOMEM;
    }
    h->ram_size = ram_size;
    for (unsigned i = 0; i < FAKE_HOST_FDS; i++)
        h->fds[i].fd = -1;
    const char *echo = getenv("NIMBUS_FAKEHOST_LOG");
    h->log_echo = echo != NULL && strcmp(echo, "1") == 0;
    /* A fixed, recognisable non-zero wall clock: 2024-01-01T00:00:00Z. */
    h->wall_ns = 1704067200ll * 1000000000ll;

    nimbus_host_api *a = &h->api;
    a->struct_size = (uint32_t)sizeof(*a);
    a->abi_major = NIMBUS_ABI_MAJOR;
    a->abi_minor = NIMBUS_ABI_MINOR;
    a->log = fh_log;
    a->gpa_read = fh_gpa_read;
    a->gpa_write = fh_gpa_write;
    a->gpa_map = fh_gpa_map;
    a->irq_set_level = fh_irq_set_level;
    a->msi_send = fh_msi_send;
    a->fd_watch = fh_fd_watch;
    a->fd_unwatch = fh_fd_unwatch;
    a->timer_arm = fh_timer_arm;
    a->clock_ns = fh_clock_ns;
    a->wallclock_ns = fh_wallclock_ns;
    a->chr_write = fh_chr_write;
    a->chr_input_ready = fh_chr_input_ready;
    a->request_shutdown = fh_request_shutdown;
    a->fd_watch_group = fh_fd_watch_group;
    fake_virtio_init(h);
    return 0;
}

void fake_host_fini(struct fake_host *h)
{
    fake_virtio_fini(h);
    free(h->ram);
    h->ram = NULL;
    h->ram_size = 0;
}

const nimbus_plugin *fake_host_load_plugin(const char *path, char *err,
                                           size_t errlen)
{
    char dummy[1];
    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        const char *why = dlerror();
        snprintf(err, errlen, "%s: dlopen failed: %s", path, why ? why : "?");
        return NULL;
    }
    const nimbus_plugin *p = (const nimbus_plugin *)dlsym(lib, NIMBUS_PLUGIN_SYMBOL);
    if (p == NULL) {
        snprintf(err, errlen, "%s: no %s symbol (not a nimbus ABI %d plugin)",
                 path, NIMBUS_PLUGIN_SYMBOL, NIMBUS_ABI_MAJOR);
        return NULL;
    }
    if (p->abi_major != NIMBUS_ABI_MAJOR || p->abi_minor > NIMBUS_ABI_MINOR) {
        snprintf(err, errlen, "%s: plugin ABI %u.%u, host supports %d.0..%d.%d",
                 path, p->abi_major, p->abi_minor, NIMBUS_ABI_MAJOR,
                 NIMBUS_ABI_MAJOR, NIMBUS_ABI_MINOR);
        return NULL;
    }
    if (p->struct_size < offsetof(nimbus_plugin, ops) + sizeof(p->ops) ||
        p->ops == NULL || p->name == NULL) {
        snprintf(err, errlen, "%s: truncated plugin descriptor (struct_size %u)",
                 path, p->struct_size);
        return NULL;
    }
    if (!NIMBUS_HAS_MEMBER(p->ops, nimbus_device_ops, reset) ||
        p->ops->create == NULL || p->ops->destroy == NULL || p->ops->reset == NULL) {
        snprintf(err, errlen, "%s: ops table lacks create/destroy/reset", path);
        return NULL;
    }
    return p;
}

int fake_host_create(struct fake_host *h, const nimbus_plugin *p,
                     const char *options, void **dev, nimbus_region *regions,
                     uint32_t *nregions, char *err, size_t errlen)
{
    uint32_t elen = errlen > UINT32_MAX ? UINT32_MAX : (uint32_t)errlen;
    return p->ops->create(&h->api, h, options, dev, regions, nregions, err, elen);
}

static int counter_name_ok(const char *name)
{
    size_t n = 0;
    if (name == NULL)
        return 0;
    for (; name[n]; n++) {
        char c = name[n];
        if (n >= NIMBUS_COUNTER_NAME_MAX ||
            !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return n > 0;
}

/* The emit callback; ctx is the host, which outlives any stray late call. */
static void fh_counter_emit(void *ctx, const char *name, uint64_t value)
{
    struct fake_host *h = ctx;
    struct fake_host_counters *c = h->counters_out;
    if (c == NULL) {
        fake_host_violation(h, &h->violations.bad_counter,
                            "counters emit called after the op returned");
        return;
    }
    c->total++;
    if (!counter_name_ok(name)) {
        fake_host_violation(h, &h->violations.bad_counter,
                            "counter name is not 1..31 characters of [a-z0-9_]");
        return;
    }
    if (fake_host_counter(c, name, NULL)) {
        fake_host_violation(h, &h->violations.bad_counter, "counter emitted twice");
        return;
    }
    if (c->n >= FAKE_HOST_MAX_COUNTERS)
        return;
    snprintf(c->name[c->n], sizeof(c->name[c->n]), "%s", name);
    c->value[c->n] = value;
    c->n++;
}

int fake_host_counters(struct fake_host *h, const nimbus_plugin *p, void *dev,
                       struct fake_host_counters *out)
{
    memset(out, 0, sizeof(*out));
    int (*op)(void *, void (*)(void *, const char *, uint64_t), void *) =
        FAKE_HOST_OP(p, counters);
    if (op == NULL)
        return -ENOTSUP;
    h->counters_out = out;
    int r = op(dev, fh_counter_emit, h);
    h->counters_out = NULL;
    return r;
}

int fake_host_counter(const struct fake_host_counters *c, const char *name,
                      uint64_t *value)
{
    for (uint32_t i = 0; i < c->n; i++) {
        if (strcmp(c->name[i], name) == 0) {
            if (value)
                *value = c->value[i];
            return 1;
        }
    }
    return 0;
}

/* Earliest armed timer with deadline <= limit (ties: lowest id), or -1. */
static int next_due(const struct fake_host *h, uint64_t limit)
{
    int best = -1;
    for (unsigned i = 0; i < FAKE_HOST_TIMERS; i++) {
        uint64_t d = h->timer_deadline[i];
        if (d == 0 || d > limit)
            continue;
        if (best < 0 || d < h->timer_deadline[best])
            best = (int)i;
    }
    return best;
}

static void move_clocks_to(struct fake_host *h, uint64_t t)
{
    if (t <= h->now_ns)
        return;
    h->wall_ns += (int64_t)(t - h->now_ns);
    h->now_ns = t;
}

uint64_t fake_host_advance(struct fake_host *h, const nimbus_plugin *p,
                           void *dev, uint64_t ns)
{
    /* Clamp so neither clock can overflow, however large ns is. */
    uint64_t room = UINT64_MAX - h->now_ns;
    uint64_t wall_room = h->wall_ns < 0 ? (uint64_t)INT64_MAX
                                         : (uint64_t)(INT64_MAX - h->wall_ns);
    if (room > wall_room)
        room = wall_room;
    uint64_t target = h->now_ns + (ns < room ? ns : room);
    void (*fired)(void *, uint32_t) = FAKE_HOST_OP(p, timer_fired);
    uint64_t n = 0;
    unsigned still = 0; /* consecutive firings that did not move the clock */
    int id;
    while ((id = next_due(h, target)) >= 0) {
        if (n == FAKE_HOST_MAX_FIRINGS) {
            h->timer_skips++;
            break;
        }
        if (h->timer_deadline[id] > h->now_ns) {
            still = 0;
        } else if (++still >= FAKE_HOST_STORM) {
            fake_host_violation(h, &h->violations.timer_storm,
                      "timer re-armed at or before now 1000 times in a row (event-loop livelock)");
            break;
        }
        move_clocks_to(h, h->timer_deadline[id]);
        h->timer_deadline[id] = 0; /* one-shot: the device re-arms if periodic */
        h->timers_fired++;
        n++;
        if (fired)
            fired(dev, (uint32_t)id);
    }
    move_clocks_to(h, target);
    return n;
}

int fake_host_fire_next(struct fake_host *h, const nimbus_plugin *p, void *dev)
{
    int id = next_due(h, UINT64_MAX);
    if (id < 0)
        return 0;
    uint64_t d = h->timer_deadline[id];
    fake_host_advance(h, p, dev, d > h->now_ns ? d - h->now_ns : 0);
    return 1;
}

int fake_host_watched(const struct fake_host *h, uint32_t n)
{
    for (unsigned i = 0; i < FAKE_HOST_FDS; i++) {
        if (h->fds[i].fd < 0)
            continue;
        if (n-- == 0)
            return (int)i;
    }
    return -1;
}

uint64_t fake_host_violation_count(const struct fake_host *h)
{
    const struct fake_host_violations *v = &h->violations;
    return v->bad_gsi + v->bad_level + v->bad_timer + v->bad_fd +
           v->bad_shutdown + v->null_arg + v->bad_log + v->timer_storm +
           v->bad_queue + v->bad_push + v->idle_notify + v->closed_fd + v->bad_group +
           v->bad_counter;
}

void fake_host_mark_dirty(struct fake_host *h, uint64_t gpa, uint64_t len)
{
    if (len == 0)
        return;
    if (!h->ram_dirty || gpa < h->dirty_lo)
        h->dirty_lo = gpa;
    if (!h->ram_dirty || gpa + len > h->dirty_hi)
        h->dirty_hi = gpa + len;
    h->ram_dirty = 1;
}

void fake_host_clear_ram(struct fake_host *h)
{
    if (h->ram_dirty && h->ram)
        memset(h->ram + h->dirty_lo, 0, h->dirty_hi - h->dirty_lo);
    h->ram_dirty = 0;
}

void fake_host_snapshot_take(const struct fake_host *h,
                             struct fake_host_snapshot *s)
{
    memcpy(s->irq_level, h->irq_level, sizeof(s->irq_level));
    s->now_ns = h->now_ns;
    s->wall_ns = h->wall_ns;
    memcpy(s->timer_deadline, h->timer_deadline, sizeof(s->timer_deadline));
    memcpy(s->fds, h->fds, sizeof(s->fds));
    fake_virtio_snapshot_take(h, s);
}

void fake_host_snapshot_restore(struct fake_host *h,
                                const struct fake_host_snapshot *s)
{
    memcpy(h->irq_level, s->irq_level, sizeof(h->irq_level));
    h->now_ns = s->now_ns;
    h->wall_ns = s->wall_ns;
    memcpy(h->timer_deadline, s->timer_deadline, sizeof(h->timer_deadline));
    memcpy(h->fds, s->fds, sizeof(h->fds));
    memset(h->irq_edges, 0, sizeof(h->irq_edges));
    h->timers_fired = 0;
    h->timer_skips = 0;
    memset(h->chr_out, 0, h->chr_out_len);
    h->chr_out_len = 0;
    h->chr_out_total = 0;
    h->chr_write_calls = 0;
    h->chr_input_ready_calls = 0;
    h->shutdown_kind = 0;
    h->shutdown_calls = 0;
    h->log_lines = 0;
    h->last_log[0] = '\0';
    h->msi_count = 0;
    h->gpa_faults = 0;
    memset(&h->violations, 0, sizeof(h->violations));
    fake_virtio_snapshot_restore(h, s);
}
