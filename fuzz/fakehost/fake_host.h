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
};
void fake_host_snapshot_take(const struct fake_host *h,
                             struct fake_host_snapshot *s);
/* Restore the snapshot and zero every counter and output buffer. */
void fake_host_snapshot_restore(struct fake_host *h,
                                const struct fake_host_snapshot *s);

#endif
