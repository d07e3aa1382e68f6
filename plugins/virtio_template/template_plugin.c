/*
 * virtio_template plugin: options, lifecycle, state and counters.
 *
 * Which thread calls what (see plugin_abi.h; the core serialises all of
 * them per instance, so no locks are needed here):
 *   create, destroy, reset, virtio_info, state_*, counters: VMM threads;
 *   virtio_activate: the vCPU thread whose guest write set DRIVER_OK;
 *   virtio_queue_notify, timer_fired: the core's event loop (no I/O
 *   groups are declared, so the queue is served there).
 * Queue work happens only on the event loop, never on a vCPU thread.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <nimbus/plugin_util.h>
#include <nimbus/virtio_util.h>

#include "template.h"

/* PCI class 0xff: "unassigned", what guests see for virtio-rng elsewhere. */
#define TPL_PCI_CLASS 0xff0000u

/* ---- options ---------------------------------------------------------------- */

/* Every token is checked; the message names the one that is wrong, since
 * it reaches the user verbatim through the command line or the API. */
static int parse_options(struct vtpl *t, const char *opts, char *err, uint32_t errlen)
{
    char key[64], val[64];
    size_t pos = 0;
    int rc, have_seed = 0;

    while ((rc = nimbus_opt_next(opts, &pos, key, sizeof(key), val, sizeof(val))) != 0) {
        if (rc < 0) {
            nimbus_errf(err, errlen, "virtio_template: malformed option '%s'", key);
            return -EINVAL;
        }
        if (strcmp(key, "seed") != 0) {
            nimbus_errf(err, errlen, "virtio_template: unknown option '%s' (known: seed)",
                        key);
            return -EINVAL;
        }
        /* A repeated key is a typo or a conflict: guessing which one was
         * meant would hide it. */
        if (have_seed) {
            nimbus_errf(err, errlen, "virtio_template: option 'seed' given twice");
            return -EINVAL;
        }
        if (nimbus_opt_u64(val, UINT64_MAX, &t->seed) < 0) {
            nimbus_errf(err, errlen,
                        "virtio_template: bad seed '%s' (expected a decimal or 0x-hex u64)",
                        val);
            return -EINVAL;
        }
        have_seed = 1;
    }
    return 0;
}

/* ---- lifecycle ------------------------------------------------------------------ */

/* True when the host table has member `m` (it may be older than our
 * header) and fills it in. */
#define HOST_HAS(h, m) (NIMBUS_HAS_MEMBER((h), nimbus_host_api, m) && (h)->m != NULL)

/* The services this device calls; checked once so no call site has to. */
static int host_ok(const nimbus_host_api *h)
{
    return HOST_HAS(h, timer_arm) && HOST_HAS(h, clock_ns) && HOST_HAS(h, vq_pop) &&
           HOST_HAS(h, vq_push) && HOST_HAS(h, vq_notify) &&
           HOST_HAS(h, virtio_needs_reset);
}

static int tpl_create(const nimbus_host_api *host, void *hctx, const char *options,
                      void **dev, nimbus_region *regions, uint32_t *nregions, char *err,
                      uint32_t errlen)
{
    (void)regions; /* the host's virtio-pci transport owns the BARs */
    if (!host || !dev || !nregions) {
        nimbus_errf(err, errlen, "virtio_template: invalid create arguments");
        return -EINVAL;
    }
    if (!host_ok(host)) {
        nimbus_errf(err, errlen, "virtio_template: host lacks timer or virtqueue "
                                 "services (needs ABI minor 1)");
        return -ENOTSUP;
    }
    struct vtpl *t = calloc(1, sizeof(*t));
    if (!t) {
        nimbus_errf(err, errlen, "virtio_template: out of memory");
        return -ENOMEM;
    }
    t->host = host;
    t->hctx = hctx;
    int rc = parse_options(t, options ? options : "", err, errlen);
    if (rc < 0) {
        free(t);
        return rc;
    }
    /* calloc left the device state at power-on: pos 0, inactive. */
    *nregions = 0;
    *dev = t;
    return 0;
}

static void tpl_destroy(void *dev)
{
    /* No chain is ever held across ops and the host drops our timer with
     * the instance, so there is nothing to hand back first. */
    free(dev);
}

/* Back to exactly the state create() left: the fuzzers compare state_save
 * output, and a rebooted guest must see the stream from its start. */
static void tpl_reset(void *dev)
{
    struct vtpl *t = dev;
    tpl_unschedule(t);
    t->pos = 0;
    t->active = 0;
}

static void tpl_timer_fired(void *dev, uint32_t timer_id)
{
    if (timer_id == TPL_TIMER)
        tpl_serve(dev);
}

/* ---- virtio ----------------------------------------------------------------------- */

static int tpl_virtio_info(void *dev, nimbus_virtio_info *info)
{
    (void)dev;
    if (!info)
        return -EINVAL;
    *info = (nimbus_virtio_info){
        .struct_size = sizeof(*info),
        .device_id = NIMBUS_VIRTIO_ID_RNG,
        .device_features = 0, /* the host adds the transport bits */
        .num_queues = 1,
        .queue_size_max = TPL_QUEUE_SIZE,
        .config_size = 0, /* so the config ops are never called: left NULL */
        .pci_class = TPL_PCI_CLASS,
        .num_groups = 0, /* one cheap queue: served on the core's loop */
    };
    return 0;
}

/*
 * vCPU thread: the guest is in the middle of a status write, so nothing
 * slow may happen here.  Chains the driver queued before DRIVER_OK had no
 * kick delivered; the timer gets them served from the event loop.
 */
static int tpl_activate(void *dev, uint64_t features)
{
    struct vtpl *t = dev;
    (void)features; /* no device feature bits; the host masks to what we offer */
    int rc = tpl_schedule(t);
    if (rc < 0)
        return rc; /* the host sets DEVICE_NEEDS_RESET */
    t->active = 1;
    return 0;
}

static void tpl_queue_notify(void *dev, uint32_t queue)
{
    if (queue == TPL_QUEUE)
        tpl_serve(dev);
}

/* ---- state --------------------------------------------------------------------------- */

/*
 * Blob v1, little-endian, fixed size: header (plugin_util.h), then
 *   8  u64 seed    configuration, so a restore into another seed is refused
 *   16 u64 pos
 *   24 u32 active  0 or 1
 *   28 u32 reserved, 0
 * A new field means a new version: restore refuses what it cannot check.
 */
#define TPL_STATE_MAGIC 0x4c50544eu /* "NTPL" */
#define TPL_STATE_VERSION 1u
#define TPL_STATE_SIZE 32u

static int tpl_state_save(void *dev, void *buf, uint64_t cap, uint64_t *len)
{
    struct vtpl *t = dev;
    int rc = nimbus_state_begin(buf, cap, len, TPL_STATE_MAGIC, TPL_STATE_VERSION,
                                TPL_STATE_SIZE);
    if (rc <= 0)
        return rc; /* a size query, or -ENOSPC */
    uint8_t *b = buf;
    nimbus_le_store(b + 8, 8, t->seed);
    nimbus_le_store(b + 16, 8, t->pos);
    nimbus_le_store(b + 24, 4, (uint64_t)t->active);
    return 0;
}

/* The blob is untrusted (a snapshot file, a migration stream): check all of
 * it before changing anything, so a refused blob leaves the device as is. */
static int tpl_state_restore(void *dev, const void *buf, uint64_t len)
{
    struct vtpl *t = dev;
    const uint8_t *b = buf;
    if (!nimbus_state_check(buf, len, TPL_STATE_MAGIC, TPL_STATE_VERSION, TPL_STATE_SIZE))
        return -EINVAL;
    uint64_t seed = nimbus_le_load(b + 8, 8);
    uint64_t pos = nimbus_le_load(b + 16, 8);
    uint64_t active = nimbus_le_load(b + 24, 4);
    if (active > 1 || nimbus_le_load(b + 28, 4) != 0)
        return -EINVAL;
    if (seed != t->seed) {
        /* Continuing another seed's position would silently give the guest
         * a different stream: the configurations must match. */
        nimbus_logf(t->host, t->hctx, NIMBUS_LOG_WARN,
                    "virtio_template: state from seed 0x%llx refused (configured 0x%llx)",
                    (unsigned long long)seed, (unsigned long long)t->seed);
        return -EINVAL;
    }
    /* Re-arm to match the restored state (ABI rule): an active device
     * serves whatever the driver queued, since a kick may have been lost. */
    if (active) {
        int rc = tpl_schedule(t);
        if (rc < 0)
            return rc;
    } else {
        tpl_unschedule(t);
    }
    t->pos = pos;
    t->active = (int)active;
    return 0;
}

/* ---- counters (ABI minor 3) ------------------------------------------------------ */

static int tpl_counters(void *dev, void (*emit)(void *ctx, const char *name, uint64_t value),
                        void *ctx)
{
    const struct vtpl *t = dev;
    emit(ctx, "bytes", t->stat_bytes);
    emit(ctx, "requests", t->stat_requests);
    return 0;
}

/* ---- descriptor ------------------------------------------------------------------ */

/* Ops left out are optional and mean "unsupported": no regions (io_*), no
 * fds, no chardev, no config space, nothing to flush. */
static const nimbus_device_ops tpl_ops = {
    .struct_size = sizeof(nimbus_device_ops),
    .create = tpl_create,
    .destroy = tpl_destroy,
    .reset = tpl_reset,
    .timer_fired = tpl_timer_fired,
    .state_save = tpl_state_save,
    .state_restore = tpl_state_restore,
    .virtio_info = tpl_virtio_info,
    .virtio_activate = tpl_activate,
    .virtio_queue_notify = tpl_queue_notify,
    .counters = tpl_counters,
};

NIMBUS_PLUGIN_DECLARE("virtio_template", "1.0",
                      "template virtio device: a deterministic entropy stream, the starting "
                      "point for new plugins",
                      "seed=<u64>", &tpl_ops);
