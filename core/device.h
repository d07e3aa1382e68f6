/*
 * Device instances: a loaded plugin, its state pointer, its lock, and the
 * host services the core implements for it (nimbus_host_api).
 */
#ifndef NIMBUS_DEVICE_H
#define NIMBUS_DEVICE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "chardev.h"
#include "eventloop.h"
#include "log.h"
#include "memory.h"
#include "nimbus/plugin_abi.h"

#define DEVICE_MAX_WATCHES 32
#define DEVICE_MAX_TIMERS 16

/* Devices may share a GSI: the line is high while any of them drives it. */
struct irq_share {
    pthread_mutex_t lock;
    uint16_t count[24];
};

/* What the machine gives every device; the VM fills it, tests may fake it. */
struct device_env {
    struct guest_mem *mem;
    struct event_loop *el;
    struct bus *pio, *mmio;
    int (*irq_line)(void *opaque, uint32_t gsi, uint32_t level);
    int (*msi)(void *opaque, uint64_t addr, uint32_t data);
    void (*shutdown)(void *opaque, uint32_t kind);
    void *opaque;
    struct irq_share *irqs; /* NULL: levels go straight to irq_line */
    struct pci_host *pci;   /* where virtio devices go; NULL: none allowed */
    /* Register (assign=1) or drop a KVM ioeventfd; NULL: kicks always exit. */
    int (*ioeventfd)(void *opaque, uint64_t addr, uint32_t len, int fd, int assign);
};

struct pci_host;
struct virtio_pci;

struct device_watch {
    struct device *dev;
    int fd;     /* -1 when the slot is free */
    int group;  /* I/O group whose thread runs it; -1: device-wide, main loop */
    uint64_t token;
};

/*
 * An I/O group (ABI minor 2): a thread of its own running the group's queue
 * kicks and fd watches.  Its lock serialises the group's calls; device-wide
 * calls take d->lock and then every group lock, in index order.
 */
struct io_group {
    struct event_loop *el;
    pthread_mutex_t lock;
};

struct device {
    char name[64];
    /* The VM's name for it, as Cloud Hypervisor's API shows it ("_disk0",
     * "_net1", "__rng"); empty for platform devices. */
    char id[64];
    const nimbus_plugin *plugin;
    nimbus_device_ops ops; /* host-sized copy: absent ops are NULL */
    void *state;           /* the plugin's instance */
    pthread_mutex_t lock;  /* with every group lock: serialises device-wide calls */
    /* The watch and timer tables: group calls of two threads may change them
     * at once.  Innermost lock; never held across a plugin call. */
    pthread_mutex_t svc_lock;
    uint32_t ngroups;
    struct io_group groups[NIMBUS_MAX_IO_GROUPS];
    nimbus_region regions[NIMBUS_MAX_REGIONS];
    uint32_t nregions;
    uint32_t nmapped;      /* regions registered on a bus */
    const struct device_env *env;
    struct chardev *chr;   /* optional character backend */
    struct device_watch watches[DEVICE_MAX_WATCHES];
    int timer_fd;
    uint64_t timer_deadline[DEVICE_MAX_TIMERS];
    uint64_t bad_accesses;
    struct log_limit log_limit; /* the plugin's own messages (h_log) */
    uint8_t irq_level[24]; /* this device's contribution per GSI */
    struct virtio_pci *virtio; /* transport, for plugins with virtio_info */
    struct device *next;
};

/* Device-wide exclusion: d->lock, then every group lock. */
void device_lock(struct device *d);
void device_unlock(struct device *d);
/* With d->lock held: every group lock, in index order (device_lock's second
 * half), or without waiting: 0, or -EBUSY holding none of them (a group
 * thread is inside the plugin, maybe for long: a synchronous disk read). */
void device_groups_lock(struct device *d);
int device_groups_trylock(struct device *d);
/* The lock a call for `group` takes: the group's, or device-wide for
 * NIMBUS_VQ_GROUP_NONE (and any group the device does not have). */
void device_group_lock(struct device *d, uint32_t group);
void device_group_unlock(struct device *d, uint32_t group);
/* The loop that serves `group` (the main loop for NIMBUS_VQ_GROUP_NONE). */
struct event_loop *device_group_loop(const struct device *d, uint32_t group);

/* The host services table every device gets. */
extern const nimbus_host_api device_host_api;

/*
 * Find and validate a plugin.  `name` is a path (contains '/') or a bare
 * name looked up as NAME.so in `dirs` (NULL-terminated).  ABI checks: major
 * equal, minor <= ours, table sizes large enough, required ops present.
 */
const nimbus_plugin *plugin_load(const char *name, const char *const *dirs, char *err,
                                 size_t errlen);
/* Validate an already-resolved descriptor (unit tests use this directly). */
int plugin_check(const nimbus_plugin *p, const char *where, char *err, size_t errlen);

/* The default plugin search path (env, --plugin-dir, next to the binary). */
void plugin_default_dirs(const char *cli_dir, char storage[4][4096], const char *dirs[5]);

/*
 * Create a device from a plugin with an options string, map its regions on
 * the env's buses and attach chr (may be NULL; ownership stays with caller).
 */
struct device *device_create(const nimbus_plugin *p, const char *options,
                             const struct device_env *env, struct chardev *chr, char *err,
                             size_t errlen);
void device_reset(struct device *d);
/*
 * Give the device its VM id ("_disk0") and name its I/O threads after it
 * ("_disk0_q1"): libvirt tells I/O threads from the emulator thread by the
 * "_disk"/"_net"/"_rng" prefixes of Cloud Hypervisor's thread names.
 */
void device_set_id(struct device *d, const char *id);
/*
 * The plugin's counters (ABI minor 3), under device-wide exclusion: emit
 * runs once per counter, on this thread, with every lock of the device held
 * (so it must not call into the device).  Names the ABI does not allow are
 * dropped, so emit only sees 1..NIMBUS_COUNTER_NAME_MAX characters of
 * [a-z0-9_].  0, -ENOTSUP when the plugin has no counters, or the op's error.
 */
int device_counters(struct device *d, void (*emit)(void *ctx, const char *name, uint64_t value),
                    void *ctx);
/* Flush (if the plugin can), unmap, destroy.  The event loop must be stopped. */
void device_destroy(struct device *d);

#endif
