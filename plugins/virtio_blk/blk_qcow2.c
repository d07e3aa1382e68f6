/*
 * qcow2 images: choosing the format at open, and the qcow2 engine.
 *
 * The format library (qcow2.h) is synchronous and serialises calls on one
 * image with its own lock.  Requests run it inside the queue's notify call,
 * i.e. on the queue's I/O group thread (the core's event loop on a host
 * without groups), never on a vCPU thread: a guest kick only writes the
 * queue's eventfd.  Queues on different threads contend on the image lock
 * (data reads of allocated clusters run outside it).
 *
 * Format probing: a raw image's first sector is guest data.  A guest that
 * writes a qcow2 header there must not, at the next probing open, make the
 * host read another file through a backing-file name it chose.  So a
 * probed image never follows a backing file (the option parser already
 * refuses backing_files=on without image_type=qcow2), and the probe is
 * logged so the operator can pin image_type.
 */
#include <errno.h>
#include <string.h>

#include "blk.h"
#include "qcow2.h"

static void raw_tail_warning(struct blk_dev *d)
{
    uint64_t tail = d->file.bytes & (BLK_SECTOR - 1);
    if (tail)
        BLK_LOG(d, NIMBUS_LOG_WARN,
                "virtio_blk: size of '%s' (%llu bytes) is not a multiple of 512; "
                "the last %llu bytes are not visible to the guest", d->opts.path,
                (unsigned long long)d->file.bytes, (unsigned long long)tail);
}

/* 1 qcow2, 0 raw, or -errno with err set. */
static int pick_format(struct blk_dev *d, char *err, uint32_t errlen)
{
    if (d->opts.image_type == BLK_IMG_RAW)
        return 0;
    int r = qcow2_probe(d->file.fd_buf);
    if (r < 0) {
        nimbus_errf(err, errlen, "virtio_blk: cannot read the header of '%s': %s",
                    d->opts.path, strerror(-r));
        return r;
    }
    if (d->opts.image_type == BLK_IMG_QCOW2) {
        if (r == 0) {
            nimbus_errf(err, errlen,
                        "virtio_blk: '%s' is not a qcow2 image (no QFI\\xfb magic); "
                        "image_type=qcow2 was given", d->opts.path);
            return -EINVAL;
        }
        return 1;
    }
    if (r == 1)
        BLK_LOG(d, NIMBUS_LOG_WARN,
                "virtio_blk: '%s' probed as qcow2; its backing file, if any, is not "
                "followed (pass image_type=qcow2, or image_type=raw if it is a raw "
                "image whose first bytes look like qcow2)", d->opts.path);
    return r;
}

int blk_image_open(struct blk_dev *d, char *err, uint32_t errlen)
{
    int r = pick_format(d, err, errlen);
    if (r <= 0) {
        if (r == 0)
            raw_tail_warning(d);
        return r;
    }
    if (d->opts.direct) {
        /* The library reads its metadata with unaligned buffers. */
        nimbus_errf(err, errlen, "virtio_blk: '%s': direct=on is not supported with "
                    "qcow2 images", d->opts.path);
        return -EINVAL;
    }
    struct qcow2_open_opts qo = {
        .readonly = d->opts.readonly,
        .backing_files = d->opts.image_type == BLK_IMG_QCOW2 && d->opts.backing_files,
        .cache_bytes = 0,
    };
    char qerr[256] = "";
    d->qcow2 = qcow2_open(d->file.fd, d->opts.path, &qo, qerr, sizeof(qerr));
    if (!d->qcow2) {
        /* The hint first: err is one line of bounded length. */
        const char *hint = "";
        /* Only when following was not allowed: with it on, the backing
         * file itself failed (missing, unreadable, --landlock). */
        if (strstr(qerr, "backing") && !qo.backing_files)
            hint = d->opts.image_type == BLK_IMG_QCOW2
                       ? "backing file needs backing_files=on: "
                       : "a probed image never follows a backing file (pass "
                         "image_type=qcow2,backing_files=on if it is trusted): ";
        if (!qerr[0])
            snprintf(qerr, sizeof(qerr), "not a usable qcow2 image");
        if (strstr(qerr, d->opts.path)) /* the library named it already */
            nimbus_errf(err, errlen, "virtio_blk: %s%s", hint, qerr);
        else
            nimbus_errf(err, errlen, "virtio_blk: %s'%s': %s", hint, d->opts.path, qerr);
        return -EINVAL;
    }
    uint64_t vsize = qcow2_virtual_size(d->qcow2);
    if (vsize & (BLK_SECTOR - 1))
        BLK_LOG(d, NIMBUS_LOG_WARN,
                "virtio_blk: virtual size of '%s' (%llu bytes) is not a multiple of "
                "512; the last %llu bytes are not visible to the guest", d->opts.path,
                (unsigned long long)vsize, (unsigned long long)(vsize & (BLK_SECTOR - 1)));
    d->file.sectors = vsize >> BLK_SECTOR_SHIFT;
    d->cluster_size = qcow2_cluster_size(d->qcow2);
    return 0;
}

void blk_image_close(struct blk_dev *d)
{
    qcow2_close(d->qcow2);
    d->qcow2 = NULL;
}

/* Discard / write-zeroes segments, all checked by blk_req_parse. */
static int run_segs(struct blk_dev *d, struct blk_req *r, uint64_t *at)
{
    for (uint32_t i = 0; i < r->nseg; i++) {
        const struct blk_seg *s = &r->segs[i];
        if (s->len == 0)
            continue;
        *at = s->off;
        int rc = r->type == VIRTIO_BLK_T_DISCARD
                     ? qcow2_discard(d->qcow2, s->off, s->len)
                     : qcow2_write_zeroes(d->qcow2, s->off, s->len, (int)s->unmap);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void blk_qcow2_run(struct blk_dev *d, struct blk_req *r)
{
    struct qcow2 *q = d->qcow2;
    uint64_t at = r->off;
    int rc = 0;

    switch (r->type) {
    case VIRTIO_BLK_T_IN:
        rc = qcow2_preadv(q, r->iov, (int)r->iovcnt, r->off);
        break;
    case VIRTIO_BLK_T_OUT:
        rc = qcow2_pwritev(q, r->iov, (int)r->iovcnt, r->off);
        /* FLUSH not negotiated: a completed write must be stable. */
        if (rc == 0 && d->writethrough)
            rc = qcow2_flush(q);
        break;
    case VIRTIO_BLK_T_FLUSH:
        at = 0;
        rc = qcow2_flush(q);
        break;
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        rc = run_segs(d, r, &at);
        if (rc == 0 && r->type == VIRTIO_BLK_T_WRITE_ZEROES && d->writethrough)
            rc = qcow2_flush(q);
        break;
    default:
        break;
    }
    if (rc < 0)
        blk_req_io_error(d, r, rc, at);
    blk_req_finish(d, r);
}
