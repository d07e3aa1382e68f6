/*
 * A deterministic, in-process stand-in for the nimbus core as seen by a
 * device plugin: it implements every nimbus_host_api service over plain
 * memory, virtual clocks and counters, so unit tests and fuzz harnesses can
 * drive a plugin .so synchronously and then inspect what it did.
 *
 * Every service is as strict as the real host (bounds-checked RAM, GSI and
 * timer-id validation); contract violations are counted in `violations` so a
 * harness can turn them into findings.
 */
#ifndef NIMBUS_FAKE_HOST_H
#define NIMBUS_FAKE_HOST_H

#include <stddef.h>
#include <stdint.h>

#include <nimbus/plugin_abi.h>

#include "virtio/virtqueue.h"

#define FAKE_HOST_GSIS 24u
#define FAKE_HOST_TIMERS 16u
#define FAKE_HOST_FDS 16u
#define FAKE_HOST_MSIS 64u
#define FAKE_HOST_CHR_OUT 65536u

struct fake_host_fd {
    int fd;          /* -1 = free slot */
    uint32_t events; /* 0 = paused */
    uint64_t token;
};

struct fake_host_msi {
    uint64_t addr;
    uint32_t data;
};

/* Counters of calls that break the plugin ABI contract (each is a bug). */
struct fake_host_violations {
    uint64_t bad_gsi;      /* irq_set_level with gsi >= 24 */
    uint64_t bad_level;    /* irq_set_level with level other than 0/1 */
    uint64_t bad_timer;    /* timer_arm with id >= 16 */
    uint64_t bad_fd;       /* fd_watch with fd < 0 */
    uint64_t bad_shutdown; /* request_shutdown with an unknown kind */
    uint64_t null_arg;     /* NULL buffer with a non-zero length */
    uint64_t bad_log;      /* log with an unknown level or NULL message */
    uint64_t timer_storm;  /* FAKE_HOST_STORM firings without time passing */
    /* virtio (minor 1) services: */
    uint64_t bad_queue;    /* vq_* with queue >= num_queues, or from a device
                              fake_host_virtio_attach never accepted */
    uint64_t bad_push;     /* vq_push of a head not in flight (includes any
                              push before activation or after a reset) */
    uint64_t idle_notify;  /* vq_notify on a queue that is not running */
    uint64_t closed_fd;    /* fake_host_poll found a watched fd closed */
    uint64_t bad_group;    /* fd_watch_group with an undeclared group (minor 2) */
    uint64_t bad_counter;  /* counters op (minor 3): a name not 1..31 of
                              [a-z0-9_], a name twice, emit after return */
};

/*
 * Driver-side bookkeeping of one queue (fake_host_vq_*).  Kept apart from
 * the rings in RAM, so a harness scribbling over ring memory cannot make
 * the fake driver lose or double-free descriptors.
 */
struct fake_host_vq_drv {
    uint64_t desc, avail, used; /* ring gpas (fixed layout, see below) */
    uint16_t avail_idx;         /* next avail->idx the driver publishes */
    uint16_t used_seen;         /* used entries fake_host_vq_used consumed */
    uint16_t free_head;         /* free descriptor list through link[] */
    uint16_t nfree;
    uint16_t *link;             /* free list / chain successor, per descriptor */
    uint16_t *chain_len;        /* per head: descriptors used, 0 = not in flight */
    int manual_used_event;      /* set_used_event was called: stop doing it
                                   the Linux way in fake_host_vq_used */
};

/* The fake virtio transport: what the driver negotiated plus counters. */
struct fake_host_virtio {
    int attached;              /* fake_host_virtio_attach accepted the device */
    int active;                /* DRIVER_OK: queues started, virtio_activate ran */
    int device_needs_reset;    /* DEVICE_NEEDS_RESET status bit */
    nimbus_virtio_info info;   /* as the device reported it */
    uint64_t features;         /* negotiated, passed to virtio_activate */
    uint16_t queue_size;       /* of every queue */
    uint64_t buf_next, buf_end; /* fake_host_buf bump allocator */
    struct vq_mem mem;
    struct virtqueue vq[NIMBUS_VIRTIO_MAX_QUEUES];
    struct fake_host_vq_drv drv[NIMBUS_VIRTIO_MAX_QUEUES];

    /* Counters (zeroed by fake_host_snapshot_restore). */
    uint64_t interrupts[NIMBUS_VIRTIO_MAX_QUEUES]; /* vq_notify calls the ring
                                                      said to deliver */
    uint64_t notify_calls[NIMBUS_VIRTIO_MAX_QUEUES]; /* all vq_notify calls */
    uint64_t pops, pushes;     /* successful vq_pop (1) / vq_push calls */
    uint64_t config_changed;   /* virtio_config_changed calls */
    uint64_t needs_reset;      /* virtio_needs_reset calls */
    uint64_t broken;           /* vq_pop results of -EIO (malformed chains) */
};

/* What one counters op emitted (fake_host_counters), in order. */
#define FAKE_HOST_MAX_COUNTERS 64u
struct fake_host_counters {
    uint32_t n;     /* kept in name/value (the first FAKE_HOST_MAX_COUNTERS) */
    uint32_t total; /* emitted, valid or not */
    char name[FAKE_HOST_MAX_COUNTERS][NIMBUS_COUNTER_NAME_MAX + 1];
    uint64_t value[FAKE_HOST_MAX_COUNTERS];
};

struct fake_host {
    nimbus_host_api api; /* filled table; hctx = this fake_host */

    uint8_t *ram; /* guest RAM, gpa 0..ram_size */
    uint64_t ram_size;
    int ram_dirty; /* set by any write path; fake_host_clear_ram uses it */
    uint64_t dirty_lo, dirty_hi; /* written range [lo, hi) when ram_dirty */

    uint32_t irq_level[FAKE_HOST_GSIS];  /* current level per GSI */
    uint64_t irq_edges[FAKE_HOST_GSIS];  /* 0->1 transitions per GSI */

    uint64_t now_ns; /* returned by clock_ns */
    int64_t wall_ns; /* returned by wallclock_ns */
    uint64_t timer_deadline[FAKE_HOST_TIMERS]; /* 0 = disarmed */
    uint64_t timers_fired;
    uint64_t timer_skips;  /* advances cut short after FAKE_HOST_MAX_FIRINGS */

    /* Bytes the device wrote with chr_write: the first 64 KiB are kept,
     * the rest only counted in chr_out_total. */
    uint8_t chr_out[FAKE_HOST_CHR_OUT];
    uint64_t chr_out_len;
    uint64_t chr_out_total;
    uint64_t chr_write_calls;
    /* Backend behaviour: chr_absent makes chr_write fail with -ENOTCONN as
     * when the host gave the device no backend; chr_accept_max > 0 caps the
     * bytes accepted per call (the ABI allows short writes); chr_stall
     * accepts nothing (a backend whose buffer is full). */
    int chr_absent;
    int chr_stall;
    uint64_t chr_accept_max;
    uint64_t chr_input_ready_calls;

    uint32_t shutdown_kind; /* last request_shutdown kind, 0 = none */
    uint64_t shutdown_calls;

    uint64_t log_lines;
    char last_log[256];
    int log_echo; /* print log lines to stderr (NIMBUS_FAKEHOST_LOG=1) */

    struct fake_host_fd fds[FAKE_HOST_FDS];

    struct fake_host_msi msi[FAKE_HOST_MSIS]; /* the first 64 MSIs sent */
    uint64_t msi_count;

    uint64_t gpa_faults; /* out-of-RAM gpa_* accesses (guest-caused, not bugs) */

    struct fake_host_violations violations;
    /* abort() at the offending call, so the report's stack shows the plugin
     * frame that broke the contract (fuzz harnesses set this). */
    int abort_on_violation;

    /* Virtio transport state (fake_host_virtio_*, vq_* services). */
    struct fake_host_virtio virtio;

    /* Where fake_host_counters collects; NULL outside the op. */
    struct fake_host_counters *counters_out;
};

/* Allocate zeroed RAM (ram_size may be 0) and fill the table.  0 or -errno. */
int fake_host_init(struct fake_host *h, uint64_t ram_size);
void fake_host_fini(struct fake_host *h);

/*
 * dlopen `path` (RTLD_NOW|RTLD_LOCAL), look up NIMBUS_PLUGIN_SYMBOL and apply
 * the host's acceptance rules: same ABI major, minor <= ours, a descriptor
 * and ops table large enough for what minor 0 defines, required ops present.
 * The library is never closed.  NULL with a message in err on failure.
 */
const nimbus_plugin *fake_host_load_plugin(const char *path, char *err,
                                           size_t errlen);

/* An optional op of `p`, or NULL when absent or beyond its struct_size. */
#define FAKE_HOST_OP(p, member)                                                \
    (NIMBUS_HAS_MEMBER((p)->ops, nimbus_device_ops, member) ? (p)->ops->member \
                                                             : NULL)

/* p->ops->create with this host; errlen is clamped to UINT32_MAX. */
int fake_host_create(struct fake_host *h, const nimbus_plugin *p,
                     const char *options, void **dev, nimbus_region *regions,
                     uint32_t *nregions, char *err, size_t errlen);

/*
 * ops->counters (ABI minor 3) into *out, checking each emit as the real host
 * does: a name must be 1..NIMBUS_COUNTER_NAME_MAX characters of [a-z0-9_],
 * must not repeat, and emit must not be called once the op has returned
 * (each is a bad_counter violation, and such a counter is not kept).
 * Returns the op's result, or -ENOTSUP when the plugin has no counters.
 */
int fake_host_counters(struct fake_host *h, const nimbus_plugin *p, void *dev,
                       struct fake_host_counters *out);
/* The value of counter `name` in c: 1 and *value, or 0 when absent. */
int fake_host_counter(const struct fake_host_counters *c, const char *name,
                      uint64_t *value);

/*
 * Move both clocks forward by `ns`, firing due timers in deadline order (ties
 * by id) with the clock set to each deadline.  Timers already overdue fire
 * even when ns == 0.  Returns the number of firings.
 *
 * Two limits keep a harness fast and finite:
 *  - FAKE_HOST_STORM firings in a row without the clock moving mean the
 *    device keeps re-arming at or before "now", which would spin the real
 *    event loop forever: counted in violations.timer_storm, advance stops.
 *  - After FAKE_HOST_MAX_FIRINGS firings (a fast periodic timer over a long
 *    advance) the rest of the interval is skipped (timer_skips); overdue
 *    timers then fire once on the next advance.
 */
#define FAKE_HOST_STORM 1000u
#define FAKE_HOST_MAX_FIRINGS 4096u
uint64_t fake_host_advance(struct fake_host *h, const nimbus_plugin *p,
                           void *dev, uint64_t ns);

/* Jump to the earliest armed deadline and fire it; 0 if none is armed. */
int fake_host_fire_next(struct fake_host *h, const nimbus_plugin *p, void *dev);

/* Index of the watched fd slot `n` (counting only used slots) or -1. */
int fake_host_watched(const struct fake_host *h, uint32_t n);

/* Total contract violations recorded so far. */
uint64_t fake_host_violation_count(const struct fake_host *h);

/* Zero the RAM written since the last call (cheap when nothing was). */
void fake_host_clear_ram(struct fake_host *h);
/* Record a write to [gpa, gpa+len) made behind the host's back (harnesses
 * filling RAM directly); the range must lie inside RAM. */
void fake_host_mark_dirty(struct fake_host *h, uint64_t gpa, uint64_t len);

/*
 * Everything except RAM: clocks, timers, IRQ levels, fd watches, counters.
 * Harnesses snapshot this after create() and restore it before each input so
 * runs do not depend on each other.
 */
struct fake_host_snapshot {
    uint32_t irq_level[FAKE_HOST_GSIS];
    uint64_t now_ns;
    int64_t wall_ns;
    uint64_t timer_deadline[FAKE_HOST_TIMERS];
    struct fake_host_fd fds[FAKE_HOST_FDS];
    /* Virtio: restore puts the transport back to this point with empty
     * rings (fresh driver indices, nothing in flight, no NEEDS_RESET). */
    int virtio_attached, virtio_active;
    nimbus_virtio_info virtio_info;
    uint64_t virtio_features;
    uint16_t virtio_queue_size;
};
void fake_host_snapshot_take(const struct fake_host *h,
                             struct fake_host_snapshot *s);
/* Restore the snapshot and zero every counter and output buffer. */
void fake_host_snapshot_restore(struct fake_host *h,
                                const struct fake_host_snapshot *s);

/* ---- virtio (ABI minor 1) ------------------------------------------------
 *
 * The fake host plays both the virtio-pci transport and a minimal guest
 * driver, so a test can hand a virtio plugin descriptor chains and read back
 * what it completed:
 *
 *   fake_host_virtio_attach(h, p, dev, &info);
 *   fake_host_virtio_activate(h, p, dev, NIMBUS_BIT(NIMBUS_VIRTIO_F_VERSION_1), 0);
 *   uint64_t b = fake_host_buf(h, 512);
 *   struct fake_vq_seg s = {b, 512, 1};
 *   int head = fake_host_vq_add(h, 0, &s, 1);
 *   fake_host_vq_kick(h, p, dev, 0);
 *   while (!fake_host_vq_used(h, 0, &id, &len)) fake_host_poll(h, p, dev, 1000);
 *
 * Ring layout (fixed, so harnesses can scribble over rings on purpose):
 * queue q's rings start at FAKE_HOST_VQ_BASE + q * stride, where stride is
 * the three rings of `queue_size` entries, each rounded up to 4 KiB:
 * desc (16 * size), then avail (6 + 2 * size), then used (6 + 8 * size).
 * fake_host_vq_layout() returns the addresses.  Test buffers
 * (fake_host_buf) come from the 4 KiB-aligned space after the last queue's
 * rings up to the end of RAM.
 *
 * The vq_* host services run core/virtio/virtqueue.c over the fake RAM, the
 * same code the real transport runs.  Contract checks (violations above):
 * a queue number >= num_queues, a push of a head not in flight, a vq_notify
 * on a queue that is not running.  vq_pop on a queue that is not running
 * returns 0 as the ABI documents, without a violation.  A malformed chain
 * (vq_pop -EIO), virtio_needs_reset and a failing virtio_activate set
 * virtio.device_needs_reset.
 */
#define FAKE_HOST_VQ_BASE 0x1000u

struct fake_vq_seg {
    uint64_t gpa;
    uint32_t len;
    uint32_t write; /* non-zero: device-writable (VIRTQ_DESC_F_WRITE) */
};

/*
 * Call ops->virtio_info and validate the answer as the real transport does
 * (device_id != 0, 1..64 queues, queue_size_max a power of two 2..32768,
 * config_size <= 256).  On success the device is attached with no queue
 * running, and *info (may be NULL) gets a copy.  -ENOTSUP when the plugin
 * has no virtio_info, -EINVAL for a bad answer, or the op's own error.
 */
int fake_host_virtio_attach(struct fake_host *h, const nimbus_plugin *p, void *dev,
                            nimbus_virtio_info *info);

/*
 * The driver's FEATURES_OK + queue setup + DRIVER_OK: `features` is masked
 * to what is offered (device features plus INDIRECT_DESC, EVENT_IDX,
 * VERSION_1) and VERSION_1 is always set, as a modern-only transport never
 * reaches DRIVER_OK without it.  Every queue gets `queue_size` entries (0 =
 * queue_size_max; else a power of two <= queue_size_max) laid out as
 * described above in zeroed ring memory, and is started (EVENT_IDX when
 * negotiated).  The buffer allocator restarts.  Then ops->virtio_activate
 * runs and its result is returned (negative: device_needs_reset is set).
 * Host-side errors: -ENODEV not attached, -EBUSY already active (reset
 * first), -EINVAL bad queue_size, -ENOMEM rings do not fit in RAM.
 */
int fake_host_virtio_activate(struct fake_host *h, const nimbus_plugin *p, void *dev,
                              uint64_t features, uint16_t queue_size);

/* The driver writes status 0: ops->reset, then every queue is stopped and
 * forgotten (driver side too) and NEEDS_RESET cleared.  Stays attached. */
void fake_host_virtio_reset(struct fake_host *h, const nimbus_plugin *p, void *dev);

/* Guest-physical addresses of queue q's rings; -EINVAL if q is out of range
 * or the transport is not active. */
int fake_host_vq_layout(const struct fake_host *h, uint32_t q, uint64_t *desc,
                        uint64_t *avail, uint64_t *used);

/*
 * Driver side: write a chain of n segments (in order; put device-readable
 * ones first for a well-formed chain, though nothing is checked so tests
 * can build malformed ones) and publish it in the avail ring.  Returns the
 * head, -EINVAL for q out of range or n == 0, -ENODEV when not active,
 * -ENOSPC when fewer than n descriptors are free.  Descriptors come back
 * when fake_host_vq_used returns the chain.
 */
int fake_host_vq_add(struct fake_host *h, uint32_t q, const struct fake_vq_seg *segs,
                     uint32_t n);
/* The same as one VIRTQ_DESC_F_INDIRECT descriptor whose table (n * 16
 * bytes) comes from fake_host_buf; -ENOMEM when that is full. */
int fake_host_vq_add_indirect(struct fake_host *h, uint32_t q,
                              const struct fake_vq_seg *segs, uint32_t n);

/* Driver notify: ops->virtio_queue_notify(dev, q).  -EINVAL q out of range,
 * -ENODEV not active, -ENOTSUP no such op. */
int fake_host_vq_kick(struct fake_host *h, const nimbus_plugin *p, void *dev, uint32_t q);

/* Next used element of queue q: 1 with *head and *len (either may be NULL),
 * 0 when none (or q out of range / not active).  Frees the chain's
 * descriptors and, with EVENT_IDX, sets used_event to the next entry as the
 * Linux driver does (until fake_host_vq_set_used_event takes over). */
int fake_host_vq_used(struct fake_host *h, uint32_t q, uint32_t *head, uint32_t *len);

/* Driver-side interrupt suppression: avail->flags (1 = VIRTQ_AVAIL_F_NO_INTERRUPT)
 * and, with EVENT_IDX, avail->used_event.  0, or -EINVAL / -ENODEV as above. */
int fake_host_vq_set_avail_flags(struct fake_host *h, uint32_t q, uint16_t flags);
int fake_host_vq_set_used_event(struct fake_host *h, uint32_t q, uint16_t used_event);

/* Bump-allocate len bytes (16-byte aligned) of test buffer space in fake RAM
 * above the rings; 0 when full or len == 0.  The space is zero; it is
 * recycled only by fake_host_virtio_activate. */
uint64_t fake_host_buf(struct fake_host *h, uint64_t len);

/*
 * Really poll() every watched fd with events != 0 once (waiting up to
 * timeout_ms, -1 = forever, 0 = not at all) and call ops->fd_ready for each
 * ready one with its token and revents (masked to the watched events plus
 * ERR/HUP).  A watched fd that poll reports closed (POLLNVAL) is counted in
 * violations.closed_fd.  Returns the number of fd_ready calls, or -errno.
 */
int fake_host_poll(struct fake_host *h, const nimbus_plugin *p, void *dev, int timeout_ms);

/* Config space through the transport's checks (offset + len <= config_size,
 * len 1/2/4/8): the op's result, -EINVAL when the transport would not
 * forward the access, -ENOTSUP without the op. */
int fake_host_virtio_config_read(struct fake_host *h, const nimbus_plugin *p, void *dev,
                                 uint64_t offset, void *data, uint32_t len);
int fake_host_virtio_config_write(struct fake_host *h, const nimbus_plugin *p, void *dev,
                                  uint64_t offset, const void *data, uint32_t len);

#endif
