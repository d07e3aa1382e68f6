/* virtio-rng plugin: options, the source file, ABI entry points. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nimbus/plugin_util.h>
#include <nimbus/virtio_util.h>

#include "rng.h"

#define RNG_DEFAULT_SRC "/dev/urandom"
/* PCI class 0xff: "unassigned", what guests see for virtio-rng elsewhere. */
#define RNG_PCI_CLASS 0xff0000u

static int parse_options(struct vrng *r, const char *opts, char *err, uint32_t errlen)
{
    char key[64], val[RNG_SRC_MAX];
    size_t pos = 0;
    int rc;

    snprintf(r->src, sizeof(r->src), "%s", RNG_DEFAULT_SRC);
    while ((rc = nimbus_opt_next(opts, &pos, key, sizeof(key), val, sizeof(val))) != 0) {
        if (rc < 0) {
            nimbus_errf(err, errlen, "virtio_rng: malformed option '%s'", key);
            return -EINVAL;
        }
        if (strcmp(key, "src") != 0) {
            nimbus_errf(err, errlen, "virtio_rng: unknown option '%s' (known: src)", key);
            return -EINVAL;
        }
        if (val[0] == '\0') {
            nimbus_errf(err, errlen, "virtio_rng: empty src= (expected a path)");
            return -EINVAL;
        }
        snprintf(r->src, sizeof(r->src), "%s", val);
    }
    return 0;
}

static int open_source(struct vrng *r, char *err, uint32_t errlen)
{
    r->fd = open(r->src, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (r->fd < 0) {
        int e = errno;
        nimbus_errf(err, errlen, "virtio_rng: cannot open src '%s': %s", r->src, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(r->fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        nimbus_errf(err, errlen, "virtio_rng: src '%s' is a directory", r->src);
        close(r->fd);
        r->fd = -1;
        return -EISDIR;
    }
    return 0;
}

/* The services this device cannot work without (ABI minor 1). */
static int host_ok(const nimbus_host_api *h)
{
    return NIMBUS_HAS_MEMBER(h, nimbus_host_api, virtio_needs_reset) && h->vq_pop &&
           h->vq_push && h->vq_notify && h->timer_arm && h->clock_ns;
}

static int rng_create(const nimbus_host_api *host, void *hctx, const char *options,
                      void **dev, nimbus_region *regions, uint32_t *nregions, char *err,
                      uint32_t errlen)
{
    (void)regions;
    if (!host || !dev || !nregions) {
        nimbus_errf(err, errlen, "virtio_rng: invalid create arguments");
        return -EINVAL;
    }
    if (!host_ok(host)) {
        nimbus_errf(err, errlen, "virtio_rng: host lacks virtqueue services "
                                 "(needs ABI minor 1)");
        return -ENOTSUP;
    }
    struct vrng *r = calloc(1, sizeof(*r));
    if (!r) {
        nimbus_errf(err, errlen, "virtio_rng: out of memory");
        return -ENOMEM;
    }
    r->host = host;
    r->hctx = hctx;
    r->fd = -1;
    int rc = parse_options(r, options ? options : "", err, errlen);
    if (rc == 0)
        rc = open_source(r, err, errlen);
    if (rc < 0) {
        free(r);
        return rc;
    }
    rng_queue_reset(r);
    *nregions = 0; /* the host's virtio-pci transport owns the BARs */
    *dev = r;
    return 0;
}

static void rng_destroy(void *dev)
{
    struct vrng *r = dev;
    if (!r)
        return;
    if (r->watching && r->host->fd_unwatch)
        r->host->fd_unwatch(r->hctx, r->fd);
    if (r->fd >= 0)
        close(r->fd);
    free(r);
}

static void rng_reset(void *dev)
{
    rng_queue_reset(dev);
}

static void rng_fd_ready(void *dev, int fd, uint64_t token, uint32_t revents)
{
    struct vrng *r = dev;
    (void)token;
    (void)revents; /* HUP and ERR show up as EOF / an error on read */
    if (fd == r->fd)
        rng_source_ready(r);
}

static void rng_timer_fired(void *dev, uint32_t timer_id)
{
    if (timer_id == RNG_TIMER)
        rng_timer(dev);
}

static int rng_virtio_info(void *dev, nimbus_virtio_info *info)
{
    (void)dev;
    if (!info)
        return -EINVAL;
    *info = (nimbus_virtio_info){
        .struct_size = sizeof(*info),
        .device_id = NIMBUS_VIRTIO_ID_RNG,
        .device_features = 0,
        .num_queues = 1,
        .queue_size_max = RNG_QUEUE_SIZE,
        .config_size = 0,
        .pci_class = RNG_PCI_CLASS,
    };
    return 0;
}

/* virtio-rng has no device config space. */
static int rng_config_read(void *dev, uint64_t offset, void *data, uint32_t len)
{
    (void)dev;
    (void)offset;
    (void)data;
    (void)len;
    return -EINVAL;
}

static int rng_config_write(void *dev, uint64_t offset, const void *data, uint32_t len)
{
    (void)dev;
    (void)offset;
    (void)data;
    (void)len;
    return -EINVAL;
}

static int rng_activate(void *dev, uint64_t features)
{
    struct vrng *r = dev;
    (void)features; /* none of its own */
    r->active = 1;
    /* Requests queued before DRIVER_OK are served from the event loop:
     * this runs on the vCPU that set DRIVER_OK, and serving means reading
     * up to a turn's budget (1 MiB) from the source. */
    rng_schedule(r);
    return 0;
}

static void rng_queue_notify(void *dev, uint32_t queue)
{
    if (queue == RNG_QUEUE)
        rng_run(dev);
}

static const nimbus_device_ops rng_ops = {
    .struct_size = sizeof(nimbus_device_ops),
    .create = rng_create,
    .destroy = rng_destroy,
    .reset = rng_reset,
    .fd_ready = rng_fd_ready,
    .timer_fired = rng_timer_fired,
    .virtio_info = rng_virtio_info,
    .virtio_config_read = rng_config_read,
    .virtio_config_write = rng_config_write,
    .virtio_activate = rng_activate,
    .virtio_queue_notify = rng_queue_notify,
};

NIMBUS_PLUGIN_DECLARE("virtio_rng", "1.0", "virtio-rng entropy device fed from a host file",
                      "src=<path>", &rng_ops);
