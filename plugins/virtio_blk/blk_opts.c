/* virtio_blk option string: path=,readonly=,direct=,num_queues=,... */
#include <stdlib.h>
#include <string.h>

#include "blk.h"

#define KNOWN_KEYS \
    "path, readonly, direct, num_queues, queue_size, id, serial, aio, image_type, " \
    "backing_files"

/* The GET_ID string goes into guest sysfs and udev names: printable ASCII. */
static int ident_ok(const char *s)
{
    if (strlen(s) > VIRTIO_BLK_ID_BYTES)
        return 0;
    for (; *s; s++)
        if (*s < 0x20 || *s > 0x7e)
            return 0;
    return 1;
}

static int parse_bool(const char *key, const char *val, int *out, char *err,
                      uint32_t errlen)
{
    if (nimbus_opt_bool(val, out) == 0)
        return 0;
    nimbus_errf(err, errlen, "virtio_blk: bad %s '%s' (on or off)", key, val);
    return -EINVAL;
}

static int parse_one(struct blk_opts *o, const char *key, const char *val,
                     int *have_path, char *err, uint32_t errlen)
{
    uint64_t v;

    if (!strcmp(key, "path")) {
        if (val[0] == '\0') {
            nimbus_errf(err, errlen, "virtio_blk: empty path");
            return -EINVAL;
        }
        /* The parser's value buffer is sizeof(o->path): it fits. */
        snprintf(o->path, sizeof(o->path), "%s", val);
        *have_path = 1;
        return 0;
    }
    if (!strcmp(key, "readonly"))
        return parse_bool(key, val, &o->readonly, err, errlen);
    if (!strcmp(key, "direct"))
        return parse_bool(key, val, &o->direct, err, errlen);
    if (!strcmp(key, "num_queues")) {
        if (nimbus_opt_u64(val, BLK_MAX_QUEUES, &v) < 0 || v == 0) {
            nimbus_errf(err, errlen, "virtio_blk: bad num_queues '%s' (1..%u)",
                        val, BLK_MAX_QUEUES);
            return -EINVAL;
        }
        o->num_queues = (uint32_t)v;
        return 0;
    }
    if (!strcmp(key, "queue_size")) {
        if (nimbus_opt_u64(val, BLK_MAX_QUEUE_SIZE, &v) < 0 ||
            v < BLK_MIN_QUEUE_SIZE || (v & (v - 1)) != 0) {
            nimbus_errf(err, errlen,
                        "virtio_blk: bad queue_size '%s' (power of two, %u..%u)",
                        val, BLK_MIN_QUEUE_SIZE, BLK_MAX_QUEUE_SIZE);
            return -EINVAL;
        }
        o->queue_size = (uint32_t)v;
        return 0;
    }
    if (!strcmp(key, "serial") || !strcmp(key, "id")) {
        if (!ident_ok(val)) {
            nimbus_errf(err, errlen,
                        "virtio_blk: bad %s '%s' (at most %u printable ASCII "
                        "characters)", key, val, VIRTIO_BLK_ID_BYTES);
            return -EINVAL;
        }
        char *dst = !strcmp(key, "serial") ? o->serial : o->id;
        snprintf(dst, VIRTIO_BLK_ID_BYTES + 1, "%s", val);
        return 0;
    }
    if (!strcmp(key, "aio")) {
        if (!strcmp(val, "io_uring"))
            o->aio_sync = 0;
        else if (!strcmp(val, "sync"))
            o->aio_sync = 1;
        else {
            nimbus_errf(err, errlen, "virtio_blk: bad aio '%s' (io_uring or sync)",
                        val);
            return -EINVAL;
        }
        return 0;
    }
    if (!strcmp(key, "image_type")) {
        if (!strcmp(val, "raw"))
            o->image_type = BLK_IMG_RAW;
        else if (!strcmp(val, "qcow2"))
            o->image_type = BLK_IMG_QCOW2;
        else {
            nimbus_errf(err, errlen, "virtio_blk: bad image_type '%s' (raw or qcow2)", val);
            return -EINVAL;
        }
        return 0;
    }
    if (!strcmp(key, "backing_files"))
        return parse_bool(key, val, &o->backing_files, err, errlen);
    nimbus_errf(err, errlen, "virtio_blk: unknown option '%s' (known: %s)", key,
                KNOWN_KEYS);
    return -EINVAL;
}

int blk_parse_options(struct blk_opts *o, const char *opts, char *err,
                      uint32_t errlen)
{
    char key[64];
    size_t pos = 0;
    int have_path = 0;
    int r = 0;

    memset(o, 0, sizeof(*o));
    /* PATH_MAX is too much for the caller's stack (a vCPU or fuzz thread). */
    char *val = malloc(PATH_MAX);
    if (!val) {
        nimbus_errf(err, errlen, "virtio_blk: out of memory");
        return -ENOMEM;
    }
    o->num_queues = 1;
    o->queue_size = BLK_DEFAULT_QUEUE_SIZE;
    int n;
    while ((n = nimbus_opt_next(opts, &pos, key, sizeof(key), val, PATH_MAX)) != 0) {
        if (n < 0) {
            nimbus_errf(err, errlen, "virtio_blk: malformed option '%s'", key);
            r = -EINVAL;
            break;
        }
        r = parse_one(o, key, val, &have_path, err, errlen);
        if (r < 0)
            break;
    }
    free(val);
    if (r < 0)
        return r;
    if (!have_path) {
        nimbus_errf(err, errlen, "virtio_blk: missing path=FILE");
        return -EINVAL;
    }
    /* A probed header may be guest data (a raw image whose first sector the
     * guest wrote): it must never make us open another host file. */
    if (o->backing_files && o->image_type != BLK_IMG_QCOW2) {
        nimbus_errf(err, errlen, "virtio_blk: backing_files=on needs image_type=qcow2 "
                    "(a probed or raw image never follows a backing file)");
        return -EINVAL;
    }
    return 0;
}
