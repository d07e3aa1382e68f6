/*
 * One request: validate the chain the guest built, then step through the
 * file operations it needs.  The engines (io_uring or synchronous) only run
 * the ops this file hands out, so both behave identically.
 *
 * Everything read from the chain is hostile.  Header fields and discard
 * segments are copied out once, before they are checked, so a guest that
 * rewrites them meanwhile cannot slip an unchecked value through.
 */
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>

#include "blk.h"

#define LOG_LIMIT 8u /* per kind of problem, per device (counters are atomic) */

static void bad_chain(struct blk_dev *d, struct blk_req *r, const char *why)
{
    if (BLK_COUNT(&d->bad_chains) < LOG_LIMIT)
        BLK_LOG(d, NIMBUS_LOG_WARN, "virtio_blk: queue %u head %u: %s",
                r->q->index, r->head, why);
    r->status = VIRTIO_BLK_S_IOERR;
}

void blk_req_io_error(struct blk_dev *d, struct blk_req *r, int64_t res,
                      uint64_t off)
{
    if (BLK_COUNT(&d->io_errors) < LOG_LIMIT)
        BLK_LOG(d, NIMBUS_LOG_WARN,
                "virtio_blk: '%s': request type %u at byte %llu failed: %s",
                d->opts.path, r->type, (unsigned long long)off,
                strerror((int)-res));
    r->status = VIRTIO_BLK_S_IOERR;
}

/* True when sector..sector+count lies inside the disk (overflow-safe). */
static int in_range(const struct blk_dev *d, uint64_t sector, uint64_t count)
{
    return sector <= d->file.sectors && count <= d->file.sectors - sector;
}

/*
 * Describe `len` data bytes of the chain as iovecs straight onto guest
 * memory: the device-writable bytes before the status byte for a read, the
 * device-readable bytes after the header for a write.
 */
static uint32_t build_iov(const nimbus_vq_buf *b, uint32_t n, int is_read,
                          uint64_t len, struct iovec *iov)
{
    uint64_t skip = is_read ? 0 : VIRTIO_BLK_HDR_SIZE;
    uint32_t cnt = 0;
    for (uint32_t i = 0; i < n && len > 0; i++) {
        if (((b[i].flags & NIMBUS_VQ_BUF_WRITE) != 0) != is_read)
            continue;
        uint64_t blen = b[i].len;
        if (skip >= blen) {
            skip -= blen;
            continue;
        }
        uint64_t take = blen - skip;
        if (take > len)
            take = len;
        iov[cnt].iov_base = (uint8_t *)b[i].host + skip;
        iov[cnt].iov_len = (size_t)take;
        cnt++;
        len -= take;
        skip = 0;
    }
    return cnt;
}

/* O_DIRECT takes only block-aligned offsets and segment lengths and
 * suitably aligned memory; anything else goes through the page cache. */
static int dio_ok(const struct blk_dev *d, const struct blk_req *r)
{
    const struct blk_file *f = &d->file;
    if (r->off % f->off_align || r->left % f->off_align)
        return 0;
    for (uint32_t i = 0; i < r->iovcnt; i++)
        if ((uintptr_t)r->iov[i].iov_base % f->mem_align ||
            r->iov[i].iov_len % f->off_align)
            return 0;
    return 1;
}

static int setup_rw(struct blk_dev *d, struct blk_req *r, uint32_t n,
                    uint64_t sector, uint64_t len, int is_read)
{
    if (len % BLK_SECTOR) {
        bad_chain(d, r, "data length is not a multiple of 512");
        return 0;
    }
    if (len > UINT32_MAX - 1u) {
        bad_chain(d, r, "request larger than 4 GiB");
        return 0;
    }
    if (!in_range(d, sector, len >> BLK_SECTOR_SHIFT)) {
        bad_chain(d, r, "sector range beyond the end of the disk");
        return 0;
    }
    r->data_len = (uint32_t)len;
    if (is_read)
        r->written = (uint32_t)len + 1;
    if (len == 0) {
        r->status = VIRTIO_BLK_S_OK;
        return 0;
    }
    r->off = sector << BLK_SECTOR_SHIFT;
    r->left = len;
    r->iov_first = 0;
    r->iovcnt = build_iov(r->q->scratch, n, is_read, len, r->iov);
    r->fd = d->opts.direct && dio_ok(d, r) ? d->file.fd : d->file.fd_buf;
    r->rw_flags = !is_read && d->writethrough ? RWF_DSYNC : 0;
    r->status = VIRTIO_BLK_S_OK;
    return 1;
}

/* Copy the discard / write-zeroes segments out and check them all before
 * touching the file: the spec allows partial execution on IOERR, but a
 * request that is wrong should not half-happen. */
static int setup_dwz(struct blk_dev *d, struct blk_req *r, uint32_t n,
                     uint64_t dlen)
{
    uint32_t feature = r->type == VIRTIO_BLK_T_DISCARD ? VIRTIO_BLK_F_DISCARD
                                                       : VIRTIO_BLK_F_WRITE_ZEROES;
    if (!(d->features & NIMBUS_BIT(feature))) {
        r->status = VIRTIO_BLK_S_UNSUPP;
        return 0;
    }
    if (d->opts.readonly) { /* never offered then, but a driver may insist */
        r->status = VIRTIO_BLK_S_IOERR;
        return 0;
    }
    if (dlen == 0 || dlen % VIRTIO_BLK_DWZ_SEG_SIZE ||
        dlen / VIRTIO_BLK_DWZ_SEG_SIZE > BLK_DWZ_SEGS) {
        bad_chain(d, r, "bad discard/write-zeroes segment count");
        return 0;
    }
    uint8_t raw[BLK_DWZ_SEGS * VIRTIO_BLK_DWZ_SEG_SIZE];
    r->nseg = (uint32_t)(dlen / VIRTIO_BLK_DWZ_SEG_SIZE);
    nimbus_vq_gather(r->q->scratch, n, VIRTIO_BLK_HDR_SIZE, raw, dlen);
    for (uint32_t i = 0; i < r->nseg; i++) {
        uint32_t flags = (uint32_t)nimbus_le_load(raw + 16 * i + 12, 4);
        if ((flags & ~VIRTIO_BLK_DWZ_F_UNMAP) ||
            (r->type == VIRTIO_BLK_T_DISCARD && flags)) {
            r->status = VIRTIO_BLK_S_UNSUPP; /* spec: MUST */
            return 0;
        }
    }
    for (uint32_t i = 0; i < r->nseg; i++) {
        uint64_t sector = nimbus_le_load(raw + 16 * i, 8);
        uint32_t count = (uint32_t)nimbus_le_load(raw + 16 * i + 8, 4);
        if (count > BLK_DWZ_MAX_SECTORS || !in_range(d, sector, count)) {
            bad_chain(d, r, "discard/write-zeroes range beyond the disk or limit");
            return 0;
        }
        r->segs[i].off = sector << BLK_SECTOR_SHIFT;
        r->segs[i].len = (uint64_t)count << BLK_SECTOR_SHIFT;
        r->segs[i].unmap = (uint32_t)nimbus_le_load(raw + 16 * i + 12, 4) &
                           VIRTIO_BLK_DWZ_F_UNMAP;
    }
    r->seg = 0;
    r->seg_done = 0;
    r->stage = 0;
    r->status = VIRTIO_BLK_S_OK;
    return 1;
}

int blk_req_parse(struct blk_dev *d, struct blk_req *r, uint32_t n)
{
    const nimbus_vq_buf *b = r->q->scratch;

    r->status_ptr = NULL;
    r->written = 0;
    r->data_len = 0;
    r->status = VIRTIO_BLK_S_IOERR;
    r->retries = 0;
    r->tail_sync = 0;
    r->stage = 0;
    r->nseg = 0;
    r->type = UINT32_MAX;

    /* The status byte is the last device-writable byte, whatever the
     * framing.  Without one nothing can be reported: the chain goes back
     * with 0 bytes written. */
    for (uint32_t i = n; i-- > 0;) {
        if ((b[i].flags & NIMBUS_VQ_BUF_WRITE) && b[i].len > 0) {
            r->status_ptr = (uint8_t *)b[i].host + b[i].len - 1;
            break;
        }
    }
    if (!r->status_ptr) {
        bad_chain(d, r, "no device-writable status byte");
        return 0;
    }
    r->written = 1;

    uint64_t rlen = nimbus_vq_len(b, n, 0);
    uint64_t wlen = nimbus_vq_len(b, n, 1);
    uint8_t hdr[VIRTIO_BLK_HDR_SIZE];
    if (rlen < VIRTIO_BLK_HDR_SIZE) {
        bad_chain(d, r, "request header shorter than 16 bytes");
        return 0;
    }
    nimbus_vq_gather(b, n, 0, hdr, sizeof(hdr));
    r->type = (uint32_t)nimbus_le_load(hdr, 4);
    uint64_t sector = nimbus_le_load(hdr + 8, 8);
    uint64_t din = wlen - 1;                 /* writable bytes before status */
    uint64_t dout = rlen - VIRTIO_BLK_HDR_SIZE; /* readable bytes after header */

    switch (r->type) {
    case VIRTIO_BLK_T_IN:
        return setup_rw(d, r, n, sector, din, 1);
    case VIRTIO_BLK_T_OUT:
        if (d->opts.readonly) {
            r->status = VIRTIO_BLK_S_IOERR; /* spec: MUST, and write nothing */
            return 0;
        }
        return setup_rw(d, r, n, sector, dout, 0);
    case VIRTIO_BLK_T_FLUSH:
        r->status = VIRTIO_BLK_S_OK;
        return d->opts.readonly ? 0 : 1;
    case VIRTIO_BLK_T_GET_ID: {
        uint64_t len = din < VIRTIO_BLK_ID_BYTES ? din : VIRTIO_BLK_ID_BYTES;
        nimbus_vq_scatter(b, n, 0, d->ident, len);
        r->written = (uint32_t)len + 1;
        r->status = VIRTIO_BLK_S_OK;
        return 0;
    }
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        return setup_dwz(d, r, n, dout);
    default:
        r->status = VIRTIO_BLK_S_UNSUPP;
        return 0;
    }
}

/* The shared zero buffer for write-zeroes without fallocate support; aligned
 * so the O_DIRECT fd could take it too.  Two queues may need it at the same
 * time: the first to publish its buffer wins, the other frees its own. */
static const void *zero_buf(struct blk_dev *d)
{
    void *z = __atomic_load_n(&d->zero_buf, __ATOMIC_ACQUIRE);
    if (z)
        return z;
    void *p = NULL;
    if (posix_memalign(&p, 4096, BLK_ZERO_CHUNK) != 0)
        return NULL;
    memset(p, 0, BLK_ZERO_CHUNK);
    if (__atomic_compare_exchange_n(&d->zero_buf, &z, p, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE))
        return p;
    free(p);
    return z;
}

static int next_dwz(struct blk_dev *d, struct blk_req *r, struct blk_op *op)
{
    while (r->seg < r->nseg && r->segs[r->seg].len == 0)
        r->seg++;
    if (r->seg >= r->nseg) {
        /* Write-through: zeroed ranges must be stable at completion like
         * any write (fallocate alone does not make them so). */
        if (r->type != VIRTIO_BLK_T_WRITE_ZEROES || !d->writethrough || r->tail_sync)
            return 0;
        op->kind = BLK_OP_FSYNC;
        op->fd = d->file.fd;
        return 1;
    }
    const struct blk_seg *s = &r->segs[r->seg];
    op->fd = d->file.fd;
    op->off = s->off;
    op->len = s->len;
    if (r->type == VIRTIO_BLK_T_DISCARD) {
        if (BLK_LOAD(&d->no_punch))
            return 0; /* discard is a hint: nothing to do here */
        op->kind = BLK_OP_FALLOC;
        op->mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
        return 1;
    }
    if (r->stage == 0) {
        /* Deallocate only when the driver allowed it. */
        r->zmode = s->unmap && !BLK_LOAD(&d->no_punch) ? BLK_Z_PUNCH : BLK_Z_RANGE;
        r->stage = 1;
    }
    if (r->zmode == BLK_Z_RANGE && BLK_LOAD(&d->no_zero_range))
        r->zmode = BLK_Z_WRITE;
    if (r->zmode == BLK_Z_PUNCH) {
        op->kind = BLK_OP_FALLOC;
        op->mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
        return 1;
    }
    if (r->zmode == BLK_Z_RANGE) {
        op->kind = BLK_OP_FALLOC;
        op->mode = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
        return 1;
    }
    const void *z = zero_buf(d);
    if (!z) {
        blk_req_io_error(d, r, -ENOMEM, s->off);
        return 0;
    }
    uint64_t chunk = s->len - r->seg_done;
    if (chunk > BLK_ZERO_CHUNK)
        chunk = BLK_ZERO_CHUNK;
    /* The slot's iovec array is idle for this request type. */
    r->iov[0].iov_base = (void *)(uintptr_t)z;
    r->iov[0].iov_len = (size_t)chunk;
    op->kind = BLK_OP_WRITEV;
    op->fd = d->file.fd_buf;
    op->off = s->off + r->seg_done;
    op->iov = r->iov;
    op->iovcnt = 1;
    op->rw_flags = d->writethrough ? RWF_DSYNC : 0;
    return 1;
}

int blk_req_next_op(struct blk_dev *d, struct blk_req *r, struct blk_op *op)
{
    memset(op, 0, sizeof(*op));
    if (r->status != VIRTIO_BLK_S_OK)
        return 0;
    switch (r->type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT:
        if (r->left == 0)
            return 0;
        op->kind = r->type == VIRTIO_BLK_T_IN ? BLK_OP_READV : BLK_OP_WRITEV;
        op->fd = r->fd;
        op->off = r->off;
        op->iov = r->iov + r->iov_first;
        op->iovcnt = r->iovcnt - r->iov_first;
        op->rw_flags = r->rw_flags;
        return 1;
    case VIRTIO_BLK_T_FLUSH:
        if (r->stage)
            return 0;
        op->kind = BLK_OP_FSYNC;
        op->fd = d->file.fd;
        return 1;
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        return next_dwz(d, r, op);
    default:
        return 0;
    }
}

/* Skip `done` transferred bytes: the next op continues where this one
 * stopped (short reads/writes are legal for both engines). */
static void advance(struct blk_req *r, uint64_t done)
{
    if (done >= r->left) {
        r->left = 0;
        return;
    }
    r->left -= done;
    r->off += done;
    while (done > 0 && r->iov_first < r->iovcnt) {
        struct iovec *v = &r->iov[r->iov_first];
        if (done >= v->iov_len) {
            done -= v->iov_len;
            r->iov_first++;
        } else {
            v->iov_base = (uint8_t *)v->iov_base + done;
            v->iov_len -= done;
            done = 0;
        }
    }
}

static int unsupported(int64_t res)
{
    return res == -EOPNOTSUPP || res == -ENOSYS || res == -ENOTTY ||
           res == -EINVAL || res == -ENODEV;
}

static void dwz_done(struct blk_dev *d, struct blk_req *r, int64_t res)
{
    if (r->seg >= r->nseg) { /* the write-through fsync */
        if (res < 0)
            blk_req_io_error(d, r, res, 0);
        r->tail_sync = 1;
        return;
    }
    struct blk_seg *s = &r->segs[r->seg];
    if (r->type == VIRTIO_BLK_T_DISCARD) {
        if (res < 0 && unsupported(res)) {
            if (!BLK_SET(&d->no_punch))
                BLK_LOG(d, NIMBUS_LOG_INFO,
                        "virtio_blk: '%s' cannot punch holes (%s); discard "
                        "requests are ignored", d->opts.path, strerror((int)-res));
            r->seg = r->nseg;
        } else if (res < 0) {
            blk_req_io_error(d, r, res, s->off);
        } else {
            r->seg++;
        }
        return;
    }
    if (res < 0 && r->zmode == BLK_Z_PUNCH && unsupported(res)) {
        (void)BLK_SET(&d->no_punch); /* try the same segment with ZERO_RANGE */
        r->zmode = BLK_Z_RANGE;
        return;
    }
    if (res < 0 && r->zmode == BLK_Z_RANGE && unsupported(res)) {
        if (!BLK_SET(&d->no_zero_range))
            BLK_LOG(d, NIMBUS_LOG_INFO,
                    "virtio_blk: '%s' has no fallocate ZERO_RANGE (%s); "
                    "write-zeroes writes zeroes", d->opts.path, strerror((int)-res));
        r->zmode = BLK_Z_WRITE;
        return;
    }
    if (res < 0) {
        blk_req_io_error(d, r, res, s->off + r->seg_done);
        return;
    }
    if (r->zmode == BLK_Z_WRITE) {
        if (res == 0) {
            blk_req_io_error(d, r, -EIO, s->off + r->seg_done);
            return;
        }
        r->seg_done += (uint64_t)res;
        if (r->seg_done < s->len)
            return;
    }
    r->seg++;
    r->seg_done = 0;
    r->stage = 0;
}

void blk_req_op_done(struct blk_dev *d, struct blk_req *r, int64_t res)
{
    if ((res == -EAGAIN || res == -EINTR) && r->retries < BLK_MAX_RETRIES) {
        r->retries++;
        return; /* the same op again */
    }
    r->retries = 0;
    switch (r->type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT:
        if (res == -EINVAL && r->fd != d->file.fd_buf) {
            /* O_DIRECT refused what our alignment guess allowed. */
            r->fd = d->file.fd_buf;
            return;
        }
        if (res <= 0) {
            blk_req_io_error(d, r, res < 0 ? res : -EIO, r->off);
            r->left = 0;
            return;
        }
        advance(r, (uint64_t)res);
        return;
    case VIRTIO_BLK_T_FLUSH:
        if (res < 0)
            blk_req_io_error(d, r, res, 0);
        r->stage = 1;
        return;
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        dwz_done(d, r, res);
        return;
    default:
        return;
    }
}
