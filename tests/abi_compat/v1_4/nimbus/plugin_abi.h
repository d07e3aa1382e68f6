/*
 * nimbus device plugin ABI, major version 1.
 *
 * This header is the whole contract between the nimbus core and a device
 * plugin.  A plugin is a shared object that exports exactly one data symbol,
 * NIMBUS_PLUGIN_SYMBOL, of type `const nimbus_plugin`.  It reaches the host
 * only through the nimbus_host_api table it is handed at create time (the
 * SQLite `sqlite3_api_routines` model), so it has no link-time dependency on
 * the core and loads unchanged into the VMM, a unit test or a fuzz harness.
 *
 * Compatibility rules (frozen for major 1):
 *  - The major number is part of the exported symbol name, so a plugin for
 *    another major fails the symbol lookup before any struct is read.
 *  - The host accepts a plugin when abi_major == NIMBUS_ABI_MAJOR and
 *    abi_minor <= the host's NIMBUS_ABI_MINOR.
 *  - Every table starts with `struct_size`.  Tables only grow by appending
 *    members at the end (minor bump).  A reader treats members beyond the
 *    writer's struct_size as absent (NULL / 0).  Use NIMBUS_HAS_MEMBER() before
 *    calling a host service added after minor 0.
 *  - Only fixed-width integers, pointers and function pointers appear in ABI
 *    structs: no enums, bool, long, bitfields or packed structs.
 *
 * Threading and re-entrancy rules (semantics are ABI too):
 *  - The core serialises every call into one device instance (it holds a
 *    per-instance lock), so a plugin needs no locks of its own.  The one
 *    exception is opt-in (minor 2): I/O groups, below.
 *  - Ops are called from vCPU threads (io_read/io_write) and from the event
 *    loop thread (fd_ready, timer_fired, chr_input).  They must not block:
 *    long work is started and finished through fd_watch/timer_arm.
 *  - I/O groups (minor 2, virtio devices only): a device that reports
 *    num_groups > 0 in nimbus_virtio_info gets one core-owned I/O thread per
 *    group.  virtio_queue_notify for a queue of group g, and fd_ready for an
 *    fd watched with fd_watch_group(g, ...), run on group g's thread, are
 *    serialised with each other, and MAY RUN CONCURRENTLY with the calls of
 *    other groups.  Every other op (create, destroy, reset, io_*, the
 *    virtio_config_* and virtio_activate ops, state_*, flush, timer_fired,
 *    chr_input, fd_ready of fd_watch watches, virtio_queue_notify of queues
 *    in NIMBUS_VQ_GROUP_NONE, counters) is "device-wide": it never runs
 *    concurrently with any other call into the instance.  So state that two
 *    groups touch must be split per group or accessed atomically; state
 *    only device-wide ops change needs nothing.  In a group call a plugin
 *    may use: log, gpa_*, msi_send, clock_ns, wallclock_ns, timer_arm, vq_*
 *    for the group's own queues, fd_watch_group for its own group,
 *    fd_unwatch of fds it watches in its own group, virtio_config_changed
 *    and virtio_needs_reset.  Device-wide ops may use every service on
 *    every queue and group.
 *  - A plugin must not create threads and must not keep host pointers
 *    obtained from gpa_map beyond the op that obtained them (virtqueue
 *    buffers from vq_pop are the exception: see nimbus_vq_buf).
 *  - Host services may only be called from inside an op (including create).
 *  - reset() must return the device to exactly its power-on state: fuzzers
 *    check this by comparing state_save() output after create and after reset.
 *  - Host services never call back into the calling device synchronously
 *    (e.g. chr_input_ready only schedules a later chr_input).
 *  - io_read/io_write are only called with offset + len <= the region's
 *    size; an access that straddles regions or devices never reaches a plugin.
 *  - reset() lowers the device's IRQ lines and cancels its timers; after a
 *    successful state_restore() the device itself re-drives its IRQ lines
 *    and re-arms its timers to match the restored state.
 *  - state_save() with 0 < cap < needed returns -ENOSPC and stores the
 *    needed size in *len.
 *  - destroy() may still call chr_write for pending output; the host drains
 *    it after destroy returns.
 *
 * Guest input is hostile: every value a guest writes through io_write, and
 * everything read from guest memory, must be validated by the plugin.  The
 * host services are bounds-checked and return an error instead of touching
 * memory outside guest RAM.
 */
#ifndef NIMBUS_PLUGIN_ABI_H
#define NIMBUS_PLUGIN_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NIMBUS_ABI_MAJOR 1
#define NIMBUS_ABI_MINOR 4
#define NIMBUS_PLUGIN_SYMBOL "nimbus_plugin_v1"

/* True when a table written with `struct_size` contains `member`. */
#define NIMBUS_HAS_MEMBER(ptr, type, member)                                   \
    ((ptr) != NULL &&                                                          \
     (size_t)(ptr)->struct_size >= offsetof(type, member) + sizeof((ptr)->member))

/* Log levels for nimbus_host_api.log. */
#define NIMBUS_LOG_ERROR 0u
#define NIMBUS_LOG_WARN 1u
#define NIMBUS_LOG_INFO 2u
#define NIMBUS_LOG_DEBUG 3u
#define NIMBUS_LOG_TRACE 4u

/* Region kinds for nimbus_region.kind. */
#define NIMBUS_REGION_PIO 1u
#define NIMBUS_REGION_MMIO 2u

/* Event bits for fd_watch / fd_ready (same values as EPOLLIN etc.). */
#define NIMBUS_EV_IN 0x001u
#define NIMBUS_EV_OUT 0x004u
#define NIMBUS_EV_ERR 0x008u
#define NIMBUS_EV_HUP 0x010u

/* Shutdown kinds for request_shutdown. */
#define NIMBUS_SHUTDOWN_POWEROFF 1u
#define NIMBUS_SHUTDOWN_RESET 2u

/* Error codes returned by ops and host services: 0 or a negative errno. */

/* Virtio (minor 1). */
#define NIMBUS_VIRTIO_MAX_QUEUES 64u
#define NIMBUS_VIRTIO_MAX_CONFIG 256u /* bytes of device-specific config */
#define NIMBUS_VQ_BUF_WRITE 1u        /* nimbus_vq_buf.flags: device writes it */

/* I/O groups (minor 2): see the threading rules above. */
#define NIMBUS_MAX_IO_GROUPS 16u
#define NIMBUS_VQ_GROUP_NONE 0xffu /* queue served device-wide on the core's loop */

/* Counters (minor 3): a name is 1..NIMBUS_COUNTER_NAME_MAX characters of
 * [a-z0-9_]; the host drops any other. */
#define NIMBUS_COUNTER_NAME_MAX 31u

/* ACPI nodes (minor 4): no interrupt in the node's _CRS. */
#define NIMBUS_ACPI_NO_IRQ 0xffffffffu

/* At most this many regions per device instance. */
#define NIMBUS_MAX_REGIONS 8u

/*
 * An address window the device decodes.  `base` is the fixed guest address a
 * legacy device asks for (e.g. 0x3f8 for COM1).  Accesses reach the device as
 * (region index, offset inside the region), never as absolute addresses.
 */
typedef struct nimbus_region {
    uint32_t kind;  /* NIMBUS_REGION_PIO or NIMBUS_REGION_MMIO */
    uint32_t flags; /* reserved, must be 0 */
    uint64_t base;  /* guest port / physical address */
    uint64_t size;  /* bytes, > 0 */
} nimbus_region;

/*
 * One guest buffer of a virtqueue descriptor chain, already validated by the
 * host: [gpa, gpa+len) lies entirely inside guest RAM and `host` points at
 * it.  Unlike gpa_map pointers, `host` stays valid after the op returns,
 * until the chain is handed back with vq_push or the device is reset, so
 * asynchronous I/O (io_uring) can target guest memory directly.
 */
typedef struct nimbus_vq_buf {
    void *host;
    uint64_t gpa;
    uint32_t len;
    uint32_t flags; /* NIMBUS_VQ_BUF_WRITE: device-writable (guest reads it) */
} nimbus_vq_buf;

/*
 * How the guest's firmware tables describe a legacy device (minor 4): the
 * core adds a Device() to the DSDT with this _HID, a _UID numbering devices
 * of the same _HID, and a _CRS holding the device's first port-I/O region
 * (at most 255 ports) and `irq`.  Guests bind drivers to legacy devices by
 * these nodes (Linux: the PNP bus; 8250_pnp for "PNP0501").
 */
typedef struct nimbus_acpi_node {
    uint32_t struct_size; /* sizeof as compiled into the plugin */
    uint32_t irq;         /* ISA IRQ / GSI 0..23, or NIMBUS_ACPI_NO_IRQ */
    const char *hid;      /* an EISA id "PNP0501" or an ACPI id "ABCD0001"; the plugin's
                             string, read before acpi_node's caller returns */
} nimbus_acpi_node;

/*
 * What a virtio device is, reported once by ops->virtio_info after create.
 * The host puts the device behind its own virtio 1.x PCI transport: the
 * plugin never sees PCI config space, BARs, MSI-X or ring layouts.
 */
typedef struct nimbus_virtio_info {
    uint32_t struct_size;     /* sizeof as compiled into the plugin */
    uint32_t device_id;       /* virtio device id: 2 block, 3 console, 4 entropy */
    uint64_t device_features; /* device-type feature bits offered (bits 0..23 and
                                 any the spec assigns to the device type); the
                                 host adds VERSION_1, INDIRECT_DESC, EVENT_IDX */
    uint32_t num_queues;      /* 1..NIMBUS_VIRTIO_MAX_QUEUES */
    uint32_t queue_size_max;  /* power of two, 2..32768 */
    uint32_t config_size;     /* bytes of device config, 0..NIMBUS_VIRTIO_MAX_CONFIG */
    uint32_t pci_class;       /* 24-bit PCI class code, e.g. 0x018000 */

    /* ---- minor 2: I/O groups.  The host zeroes the struct before calling
     * virtio_info, so a 1.1 plugin reports num_groups 0: every queue is
     * served device-wide on the core's event loop, as before. */
    uint32_t num_groups;      /* 0..NIMBUS_MAX_IO_GROUPS I/O threads */
    uint32_t reserved0;       /* 0 */
    /* Group of each queue (< num_groups), or NIMBUS_VQ_GROUP_NONE; ignored
     * when num_groups is 0.  Groups exist from virtio_info on: fd_watch_group
     * cannot be used in create. */
    uint8_t queue_group[NIMBUS_VIRTIO_MAX_QUEUES];
} nimbus_virtio_info;

/* Services the host gives a device.  Owned by the host; read-only. */
typedef struct nimbus_host_api {
    uint32_t struct_size; /* sizeof as compiled into the host */
    uint16_t abi_major;
    uint16_t abi_minor;

    /* Log one line (no trailing newline needed).  `msg` is copied. */
    void (*log)(void *hctx, uint32_t level, const char *msg);

    /*
     * Guest-physical memory access.  The whole range must lie in guest RAM;
     * otherwise nothing is copied and -EFAULT is returned.
     */
    int (*gpa_read)(void *hctx, uint64_t gpa, void *dst, uint64_t len);
    int (*gpa_write)(void *hctx, uint64_t gpa, const void *src, uint64_t len);
    /*
     * Zero-copy access: a host pointer to [gpa, gpa+len) when the range lies
     * entirely inside one RAM region, else NULL.  Valid only during the
     * current op.  `writable` marks the range dirty for migration.
     */
    void *(*gpa_map)(void *hctx, uint64_t gpa, uint64_t len, uint32_t writable);

    /*
     * Set this device's contribution to GSI `gsi` (IOAPIC input 0..23) to
     * `level` (0 or 1).  Devices may share a GSI: the line is the OR of all
     * contributions.  -EINVAL for a GSI out of range.
     */
    int (*irq_set_level)(void *hctx, uint32_t gsi, uint32_t level);
    /* Send a message-signalled interrupt. */
    int (*msi_send)(void *hctx, uint64_t addr, uint32_t data);

    /*
     * Ask the event loop to call ops->fd_ready(dev, fd, token, revents) when
     * `fd` has any of `events`.  Calling it again for the same fd replaces
     * the events and token; events == 0 pauses the watch.
     */
    int (*fd_watch)(void *hctx, int fd, uint32_t events, uint64_t token);
    int (*fd_unwatch)(void *hctx, int fd);

    /*
     * Arm timer `timer_id` (0..15) to fire ops->timer_fired once at the
     * absolute clock_ns() value `deadline_ns`; re-arming replaces, 0 cancels,
     * a deadline already past fires as soon as possible.
     */
    int (*timer_arm)(void *hctx, uint32_t timer_id, uint64_t deadline_ns);
    /* Monotonic nanoseconds, always > 0 (virtualised in harnesses). */
    uint64_t (*clock_ns)(void *hctx);
    /* Wall-clock nanoseconds since the Unix epoch (virtualised in harnesses). */
    int64_t (*wallclock_ns)(void *hctx);

    /*
     * Character backend of this device (serial / console), if the host gave
     * it one.  chr_write never blocks; it returns the bytes accepted (the
     * host buffers them) or a negative errno when there is no backend.
     * Input arrives through ops->chr_input; when that op accepted less than
     * offered, the device calls chr_input_ready once it has room again.
     */
    int64_t (*chr_write)(void *hctx, const void *buf, uint64_t len);
    void (*chr_input_ready)(void *hctx);

    /* The guest asked to power off or reset the machine. */
    void (*request_shutdown)(void *hctx, uint32_t kind);

    /* ---- minor 1: virtqueues (only for devices with ops->virtio_info) ----
     *
     * Queues are numbered 0..num_queues-1.  The host owns the ring layout,
     * validates every descriptor (address and length inside guest RAM,
     * direction: device-readable buffers first, chain length, loops,
     * indirect tables) and implements EVENT_IDX / NO_INTERRUPT suppression.
     */

    /*
     * Take the next available chain from `queue`.  Returns 1 and fills
     * bufs[0..*nbufs) and *head; 0 when the queue is empty or not enabled;
     * -EMSGSIZE when the chain has more than `cap` buffers (the host has
     * already returned it to the guest as used with 0 bytes written);
     * -EIO when the guest published a malformed chain: the host has put the
     * device into DEVICE_NEEDS_RESET and the queue yields nothing more until
     * the driver resets the device.
     */
    int (*vq_pop)(void *hctx, uint32_t queue, nimbus_vq_buf *bufs, uint32_t cap,
                  uint32_t *nbufs, uint32_t *head);
    /*
     * Hand chain `head` back to the guest (used ring) with `written` bytes
     * written into its device-writable buffers.  No interrupt yet: batch
     * pushes, then call vq_notify once.
     */
    int (*vq_push)(void *hctx, uint32_t queue, uint32_t head, uint32_t written);
    /* Interrupt the driver about `queue` unless it suppressed interrupts. */
    int (*vq_notify)(void *hctx, uint32_t queue);
    /* The device config changed (e.g. capacity): configuration interrupt. */
    int (*virtio_config_changed)(void *hctx);
    /* An unrecoverable device error: set DEVICE_NEEDS_RESET and tell the driver. */
    void (*virtio_needs_reset)(void *hctx);

    /* ---- minor 2 ---- */
    /*
     * fd_watch, but fd_ready runs on I/O group `group`'s thread, serialised
     * with that group's queue notifications (see the threading rules).
     * Same replace/pause semantics; fd_unwatch drops either kind.  -EINVAL
     * for a group the device did not declare.
     */
    int (*fd_watch_group)(void *hctx, uint32_t group, int fd, uint32_t events,
                          uint64_t token);
    /*
     * Entries of `queue` as the driver set it up (at most queue_size_max),
     * 0 when the queue is not running.  A device that collects several
     * chains for one request (merged receive buffers) must not wait for
     * more than the ring can ever hold.
     */
    uint32_t (*vq_size)(void *hctx, uint32_t queue);

    /* Append new services here (minor bump). */
} nimbus_host_api;

/* Operations a device gives the host.  NULL optional ops mean "unsupported". */
typedef struct nimbus_device_ops {
    uint32_t struct_size; /* sizeof as compiled into the plugin */
    uint32_t reserved0;

    /*
     * Required.  Parse `options` (untrusted "key=value,key=value" text; may
     * be ""), allocate the instance into *dev and describe its regions:
     * `*nregions` is the capacity of `regions` on entry and the number used
     * on return.  On failure return a negative errno and put a one-line
     * message naming the bad token into `err` (NUL-terminated, errlen bytes).
     */
    int (*create)(const nimbus_host_api *host, void *hctx, const char *options,
                  void **dev, nimbus_region *regions, uint32_t *nregions,
                  char *err, uint32_t errlen);
    /* Required.  Release everything; pending output is flushed first. */
    void (*destroy)(void *dev);
    /* Required.  Back to power-on state (configuration from create is kept). */
    void (*reset)(void *dev);

    /* Guest access to region `region` at `offset`; len is 1, 2, 4 or 8.
     * Reads fill `data` completely.  Return 0, or a negative errno for an
     * access the device rejects (the host then logs it; reads see all-ones). */
    int (*io_read)(void *dev, uint32_t region, uint64_t offset, void *data,
                   uint32_t len);
    int (*io_write)(void *dev, uint32_t region, uint64_t offset,
                    const void *data, uint32_t len);

    /* Event loop callbacks (optional). */
    void (*fd_ready)(void *dev, int fd, uint64_t token, uint32_t revents);
    void (*timer_fired)(void *dev, uint32_t timer_id);
    /* Input from the character backend; returns bytes accepted (0..len). */
    uint64_t (*chr_input)(void *dev, const void *buf, uint64_t len);

    /*
     * Device state for snapshot/restore and migration (optional).
     * state_save with cap == 0 stores the needed size in *len.  The blob is
     * versioned by the plugin.  state_restore's input is untrusted.
     */
    int (*state_save)(void *dev, void *buf, uint64_t cap, uint64_t *len);
    int (*state_restore)(void *dev, const void *buf, uint64_t len);

    /* Make every completed guest write durable (fdatasync etc.). Optional. */
    int (*flush)(void *dev);

    /* ---- minor 1: virtio devices ----
     *
     * A plugin with virtio_info is a virtio device: create() reports no
     * regions (the host's transport owns the BARs), reset() is the virtio
     * device reset (the driver wrote status 0, or the machine reset) and must
     * also drop every chain in flight: a plugin with asynchronous I/O waits
     * for it to finish there, since the rings are gone afterwards.
     */
    /* Required for virtio devices: describe the device (called after create). */
    int (*virtio_info)(void *dev, nimbus_virtio_info *info);
    /* Device-specific config space; offset + len <= config_size, len 1/2/4/8. */
    int (*virtio_config_read)(void *dev, uint64_t offset, void *data, uint32_t len);
    int (*virtio_config_write)(void *dev, uint64_t offset, const void *data,
                               uint32_t len);
    /*
     * The driver set DRIVER_OK with `features` negotiated (a subset of what
     * was offered, transport bits included).  A negative return puts the
     * device into DEVICE_NEEDS_RESET.
     */
    int (*virtio_activate)(void *dev, uint64_t features);
    /* The driver made buffers available in `queue` (event loop thread). */
    void (*virtio_queue_notify)(void *dev, uint32_t queue);

    /* ---- minor 3 ---- */
    /*
     * Statistics for the VMM's API (Cloud Hypervisor's vm.counters), e.g.
     * "read_bytes" or "rx_frames".  Optional.  Call emit(ctx, name, value)
     * once per counter, synchronously, then return 0 (or a negative errno).
     * Device-wide and called from a VMM thread, so plain reads of state that
     * group calls update are consistent here; must not block.  `name` need
     * only live until emit returns.  Values count up from create and are
     * not cleared by reset(): they are the host's view of the device, not
     * device state (state_save leaves them out).
     */
    int (*counters)(void *dev, void (*emit)(void *ctx, const char *name, uint64_t value),
                    void *ctx);

    /* ---- minor 4 ---- */
    /*
     * A legacy device's ACPI node (optional; see nimbus_acpi_node).  Called
     * once after create, on the VMM thread, for devices loaded with --device
     * (the core describes the platform devices it places itself).  The host
     * zeroes *node and sets struct_size; fill hid and irq and return 0, or
     * -ENOENT for no node.  Anything else, or a node the host cannot
     * describe, fails the VM's creation with a message naming the plugin.
     */
    int (*acpi_node)(void *dev, nimbus_acpi_node *node);

    /* Append new ops here (minor bump). */
} nimbus_device_ops;

/* The one exported symbol. */
typedef struct nimbus_plugin {
    uint32_t abi_major;
    uint32_t abi_minor;
    uint32_t struct_size; /* sizeof(nimbus_plugin) as compiled into the plugin */
    uint32_t flags;       /* reserved, 0 */
    const char *name;     /* short device name, e.g. "uart16550" */
    const char *version;  /* plugin's own version string */
    const char *summary;  /* one line for --help listings */
    const char *options;  /* option keys with syntax, e.g. "iobase=<port>,irq=<gsi>" */
    const nimbus_device_ops *ops;
} nimbus_plugin;

/* Declare the descriptor with this macro in exactly one file of a plugin. */
#if defined(__GNUC__)
#define NIMBUS_EXPORT __attribute__((visibility("default")))
#else
#define NIMBUS_EXPORT
#endif

/* The extern declaration gives the symbol external linkage in C++ too. */
#define NIMBUS_PLUGIN_DECLARE(name_, version_, summary_, options_, ops_)      \
    NIMBUS_EXPORT extern const nimbus_plugin nimbus_plugin_v1;                 \
    NIMBUS_EXPORT const nimbus_plugin nimbus_plugin_v1 = {                     \
        NIMBUS_ABI_MAJOR, NIMBUS_ABI_MINOR, (uint32_t)sizeof(nimbus_plugin), 0, \
        (name_), (version_), (summary_), (options_), (ops_)}

#ifdef __cplusplus
}
#endif

#endif /* NIMBUS_PLUGIN_ABI_H */
