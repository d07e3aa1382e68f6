/*
 * The synchronous engine: for kernels or sandboxes without io_uring.  It
 * blocks the event loop for the duration of each request, which is why it
 * is only a fallback (and aio=sync, for comparisons and tests).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "blk.h"

int64_t blk_sync_op(const struct blk_op *op)
{
    ssize_t n;
    switch (op->kind) {
    case BLK_OP_READV:
        n = preadv(op->fd, op->iov, (int)op->iovcnt, (off_t)op->off);
        break;
    case BLK_OP_WRITEV:
        n = pwritev2(op->fd, op->iov, (int)op->iovcnt, (off_t)op->off, op->rw_flags);
        break;
    case BLK_OP_FSYNC:
        n = fdatasync(op->fd);
        break;
    case BLK_OP_FALLOC:
        n = fallocate(op->fd, op->mode, (off_t)op->off, (off_t)op->len);
        break;
    default:
        return -EINVAL;
    }
    return n < 0 ? -(int64_t)errno : (int64_t)n;
}

void blk_sync_run(struct blk_dev *d, struct blk_req *r)
{
    struct blk_op op;
    while (blk_req_next_op(d, r, &op))
        blk_req_op_done(d, r, blk_sync_op(&op));
    blk_req_finish(d, r);
}
