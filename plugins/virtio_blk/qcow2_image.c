/*
 * The public calls: open (header, tables, backing chain, dirty-image
 * repair), guest I/O under the image lock (qcow2_io.c), flush in
 * dependency order, close.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qcow2_internal.h"

#define HEADER_READ (2u << 20) /* the largest first cluster */

int qcow2_probe(int fd)
{
    uint8_t m[4];
    ssize_t n = pread(fd, m, sizeof(m), 0);
    if (n < 0)
        return -errno;
    return n == 4 && qcow2_be32(m) == QCOW2_MAGIC;
}

int qcow2_pread_meta(struct qcow2 *q, void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(q->fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return qcow2_fail(q, "metadata beyond the end of the file at", off);
        done += (size_t)n;
    }
    return 0;
}

int qcow2_pwrite_meta(struct qcow2 *q, const void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(q->fd, (const uint8_t *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        done += (size_t)n;
    }
    return 0;
}

int qcow2_sync(struct qcow2 *q)
{
    q->data_dirty = 0;
    return fdatasync(q->fd) < 0 ? -errno : 0;
}

int qcow2_overlaps_meta(const struct qcow2 *q, uint64_t off, uint64_t len)
{
    uint64_t l1 = (uint64_t)q->h.l1_size * 8;
    uint64_t rt = (uint64_t)q->h.refcount_table_clusters * q->cs;
    if (off < q->cs)
        return 1;
    if (l1 && off < q->h.l1_table_offset + l1 && q->h.l1_table_offset < off + len)
        return 1;
    return off < q->h.refcount_table_offset + rt && q->h.refcount_table_offset < off + len;
}

int qcow2_fail(struct qcow2 *q, const char *what, uint64_t v)
{
    /* Once: a corrupt image would otherwise flood the log from the guest's retries. */
    if (!q->broken)
        fprintf(stderr, "qcow2: %s: %s 0x%" PRIx64 "; further writes refused\n", q->path, what,
                v);
    q->broken = 1;
    return -EIO;
}

static int set_incompat(struct qcow2 *q, uint64_t v)
{
    uint8_t b[8];
    qcow2_put_be64(b, v);
    int r = qcow2_pwrite_meta(q, b, 8, QCOW2_OFF_INCOMPAT);
    if (r == 0)
        r = qcow2_sync(q);
    if (r == 0)
        q->h.incompatible = v;
    return r;
}

int qcow2_begin_write(struct qcow2 *q)
{
    if (q->readonly)
        return -EROFS;
    if (q->broken)
        return -EIO;
    if (q->wrote)
        return 0;
    int r = 0;
    if (q->h.version >= 3 && q->h.autoclear != 0) {
        /* Bitmaps and the like we do not update become invalid by spec. */
        uint8_t b[8] = {0};
        r = qcow2_pwrite_meta(q, b, 8, QCOW2_OFF_AUTOCLEAR);
        if (r == 0)
            q->h.autoclear = 0;
    }
    if (r == 0 && q->h.version >= 3 && (q->h.compatible & QCOW2_COMPAT_LAZY) &&
        !(q->h.incompatible & QCOW2_INCOMPAT_DIRTY)) {
        r = set_incompat(q, q->h.incompatible | QCOW2_INCOMPAT_DIRTY);
        q->dirty_bit_set = r == 0;
    } else if (r == 0) {
        r = qcow2_sync(q);
    }
    if (r == 0)
        q->wrote = 1;
    return r;
}

static int load_tables(struct qcow2 *q, char *err, size_t errlen)
{
    uint64_t l1b = (uint64_t)q->h.l1_size * 8;
    uint64_t rtb = (uint64_t)q->h.refcount_table_clusters * q->cs;
    q->l1 = malloc(l1b ? l1b : 8);
    q->rt = malloc(rtb);
    uint8_t *raw = malloc(l1b > rtb ? l1b : rtb);
    int r = q->l1 == NULL || q->rt == NULL || raw == NULL ? -1 : 0;
    if (r == 0 && l1b)
        r = qcow2_pread_meta(q, raw, l1b, q->h.l1_table_offset);
    for (uint32_t i = 0; r == 0 && i < q->h.l1_size; i++) {
        uint64_t e = qcow2_be64(raw + (uint64_t)i * 8), off = e & QCOW2_OFFSET_MASK;
        q->l1[i] = e;
        if ((e & QCOW2_L1_RESERVED) || (off && (off % q->cs || off >= q->end ||
                                                 qcow2_overlaps_meta(q, off, q->cs)))) {
            snprintf(err, errlen, "qcow2: L1 entry %u (0x%" PRIx64 ") invalid: reserved bits, "
                     "unaligned, beyond the file or over the header/tables", i, e);
            r = 1;
        }
    }
    if (r == 0)
        r = qcow2_pread_meta(q, raw, rtb, q->h.refcount_table_offset);
    q->rt_entries = (uint32_t)(rtb / 8);
    for (uint32_t i = 0; r == 0 && i < q->rt_entries; i++) {
        uint64_t e = qcow2_be64(raw + (uint64_t)i * 8);
        q->rt[i] = e;
        if ((e & QCOW2_RT_RESERVED) || e % q->cs || e >= q->end ||
            (e && qcow2_overlaps_meta(q, e, q->cs))) {
            snprintf(err, errlen, "qcow2: refcount table entry %u (0x%" PRIx64 ") invalid: "
                     "unaligned, beyond the file or over the header/tables", i, e);
            r = 1;
        }
    }
    free(raw);
    if (r < 0)
        snprintf(err, errlen, "qcow2: cannot read the L1 or refcount table");
    return r;
}

static int setup(struct qcow2 *q, const struct qcow2_open_opts *o, char *err, size_t errlen)
{
    q->cbits = q->h.cluster_bits;
    q->cs = 1u << q->cbits;
    q->l2_entries = q->cs / 8;
    q->rb_bits = 1u << q->h.refcount_order;
    q->rb_entries = (uint64_t)q->cs * 8 / q->rb_bits;
    q->rb_max = q->rb_bits == 64 ? UINT64_MAX : (1ull << q->rb_bits) - 1;
    uint64_t cache = o->cache_bytes ? o->cache_bytes : 4u << 20;
    uint64_t per = cache / 2 / q->cs;
    /* Two of each at least: one in use while another is written back. */
    unsigned n = per < 2 ? 2 : per > 4096 ? 4096 : (unsigned)per;
    q->cbuf = malloc(q->cs);
    q->dbuf = malloc(q->cs);
    q->zbuf = malloc(2ull * q->cs);
    if (q->cbuf == NULL || q->dbuf == NULL || q->zbuf == NULL ||
        qcow2_cache_init(&q->l2c, n, q->cs) < 0 || qcow2_cache_init(&q->rbc, n, q->cs) < 0) {
        snprintf(err, errlen, "qcow2: out of memory");
        return -1;
    }
    return 0;
}

static void destroy(struct qcow2 *q)
{
    qcow2_backing_close(q);
    qcow2_cache_free(&q->l2c);
    qcow2_cache_free(&q->rbc);
    free(q->l1);
    free(q->rt);
    free(q->pending);
    free(q->cbuf);
    free(q->dbuf);
    free(q->zbuf);
    pthread_rwlock_destroy(&q->data_lock);
    pthread_mutex_destroy(&q->lock);
    free(q);
}

static int check_writable(struct qcow2 *q, char *err, size_t errlen)
{
    if (q->h.incompatible & QCOW2_INCOMPAT_CORRUPT) {
        snprintf(err, errlen, "qcow2: %s is marked corrupt (incompatible_features bit 1): open it "
                 "read-only or repair it with qemu-img check -r all", q->path);
        return -1;
    }
    if (q->h.nb_snapshots > 0) {
        snprintf(err, errlen, "qcow2: %s has %u internal snapshots (nb_snapshots): writing is "
                 "not supported, open it read-only", q->path, q->h.nb_snapshots);
        return -1;
    }
    if (q->h.incompatible & QCOW2_INCOMPAT_DIRTY) {
        /* As QEMU: refcounts of a dirty image cannot be trusted; rebuild them. */
        if (qcow2_rc_rebuild(q, err, errlen) < 0)
            return -1;
        if (set_incompat(q, q->h.incompatible & ~QCOW2_INCOMPAT_DIRTY) < 0) {
            snprintf(err, errlen, "qcow2: %s: cannot clear the dirty bit", q->path);
            return -1;
        }
    }
    return qcow2_rc_check_meta(q, err, errlen);
}

struct qcow2 *qcow2_open_chain(int fd, const char *path, const struct qcow2_open_opts *o,
                               int depth, const dev_t *devs, const ino_t *inos, char *err,
                               size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "qcow2: %s: %s", path ? path : "?", strerror(errno));
        return NULL;
    }
    uint64_t fsize = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
    if (!S_ISREG(st.st_mode)) {
        off_t e = lseek(fd, 0, SEEK_END);
        fsize = e < 0 ? 0 : (uint64_t)e;
    }
    size_t hl = fsize < HEADER_READ ? (size_t)fsize : HEADER_READ;
    uint8_t *hb = malloc(hl ? hl : 1);
    struct qcow2 *q = calloc(1, sizeof(*q));
    if (hb == NULL || q == NULL) {
        free(hb);
        free(q);
        snprintf(err, errlen, "qcow2: out of memory");
        return NULL;
    }
    pthread_mutex_init(&q->lock, NULL);
    pthread_rwlock_init(&q->data_lock, NULL);
    q->fd = fd;
    q->readonly = o->readonly;
    snprintf(q->path, sizeof(q->path), "%s", path ? path : "");
    ssize_t got = hl ? pread(fd, hb, hl, 0) : 0;
    int r = got < 0 ? -1 : qcow2_header_parse(hb, (size_t)got, fsize, &q->h, err, errlen);
    if (got < 0)
        snprintf(err, errlen, "qcow2: %s: %s", q->path, strerror(errno));
    free(hb);
    if (r == 0)
        r = setup(q, o, err, errlen);
    if (r == 0) {
        q->end = (fsize + q->cs - 1) & ~((uint64_t)q->cs - 1);
        q->free_hint = q->cs;
        r = load_tables(q, err, errlen);
    }
    dev_t d0 = st.st_dev;
    ino_t i0 = st.st_ino;
    if (r == 0 && q->h.backing_file_offset != 0 && q->h.backing_file_size != 0)
        r = qcow2_backing_open(q, o, depth, depth == 0 ? &d0 : devs, depth == 0 ? &i0 : inos,
                               err, errlen);
    if (r == 0 && !q->readonly)
        r = check_writable(q, err, errlen);
    if (r != 0) {
        destroy(q);
        return NULL;
    }
    return q;
}

struct qcow2 *qcow2_open(int fd, const char *path, const struct qcow2_open_opts *o, char *err,
                         size_t errlen)
{
    struct qcow2_open_opts def = {0};
    return qcow2_open_chain(fd, path, o ? o : &def, 0, NULL, NULL, err, errlen);
}

uint64_t qcow2_virtual_size(const struct qcow2 *q)
{
    return q->h.size;
}

uint32_t qcow2_cluster_size(const struct qcow2 *q)
{
    return q->cs;
}

static int range_ok(const struct qcow2 *q, uint64_t off, uint64_t len)
{
    return off <= q->h.size && len <= q->h.size - off;
}

int qcow2_flush_locked(struct qcow2 *q)
{
    if (q->readonly)
        return 0;
    int r = qcow2_sync(q); /* data first */
    if (r == 0)
        r = qcow2_rc_writeback(q);
    int wrote = 0;
    if (r == 0)
        r = qcow2_l2_writeback(q, &wrote);
    if (r == 0 && wrote)
        r = qcow2_sync(q);
    if (r == 0 && q->l1_dirty_hi != 0) {
        r = qcow2_l1_writeback(q);
        if (r == 0)
            r = qcow2_sync(q);
    }
    /* Only now are dropped references durable: their clusters may go. */
    if (r == 0 && q->npending) {
        /* Wait out reads of data clusters looked up before: these may be among them. */
        pthread_rwlock_wrlock(&q->data_lock);
        r = qcow2_apply_pending(q);
        pthread_rwlock_unlock(&q->data_lock);
        if (r == 0)
            r = qcow2_rc_writeback(q);
    }
    return r;
}

int qcow2_flush(struct qcow2 *q)
{
    pthread_mutex_lock(&q->lock);
    int r = qcow2_flush_locked(q);
    pthread_mutex_unlock(&q->lock);
    return r;
}

/* Bounded memory for deferred frees: a flush makes them applicable. */
static int maybe_flush(struct qcow2 *q)
{
    return q->npending >= QCOW2_MAX_PENDING_FREE ? qcow2_flush_locked(q) : 0;
}

int qcow2_preadv(struct qcow2 *q, const struct iovec *iov, int iovcnt, uint64_t offset)
{
    size_t len = qcow2_iov_len(iov, iovcnt);
    if (!range_ok(q, offset, len))
        return -EINVAL;
    pthread_mutex_lock(&q->lock);
    int r = qcow2_read_range(q, iov, iovcnt, offset, len);
    pthread_mutex_unlock(&q->lock);
    return r;
}

int qcow2_pwritev(struct qcow2 *q, const struct iovec *iov, int iovcnt, uint64_t offset)
{
    size_t len = qcow2_iov_len(iov, iovcnt);
    if (!range_ok(q, offset, len))
        return -EINVAL;
    pthread_mutex_lock(&q->lock);
    int r = qcow2_begin_write(q);
    if (r == 0)
        r = qcow2_write_range(q, iov, iovcnt, offset, len);
    pthread_mutex_unlock(&q->lock);
    return r;
}

/* Whole clusters of [offset, offset+len) get mode; partial ones, zero data if zero. */
static int unmap_range(struct qcow2 *q, uint64_t offset, uint64_t len, enum qcow2_unmap mode,
                       int zero)
{
    int r = 0;
    /* v2 has no zero flag: an unallocated cluster reads zeroes only without a backing file. */
    int data_zero = zero && q->h.version < 3 && q->bk != NULL;
    uint8_t *zeros = NULL;
    for (uint64_t done = 0; done < len && r == 0;) {
        uint64_t pos = offset + done;
        uint32_t in = (uint32_t)(pos & (q->cs - 1));
        uint64_t n = q->cs - in;
        if (n > len - done)
            n = len - done;
        r = maybe_flush(q);
        if (r == 0 && n == q->cs && !data_zero) {
            r = qcow2_unmap_cluster(q, pos >> q->cbits, mode);
        } else if (r == 0 && zero) {
            if (zeros == NULL)
                zeros = calloc(1, q->cs);
            if (zeros == NULL)
                r = -ENOMEM;
            struct iovec v = {zeros, (size_t)n};
            if (r == 0)
                r = qcow2_write_cluster(q, pos >> q->cbits, in, (uint32_t)n, &v, 1, 0);
        }
        done += n;
    }
    free(zeros);
    return r;
}

int qcow2_discard(struct qcow2 *q, uint64_t offset, uint64_t len)
{
    if (!range_ok(q, offset, len))
        return -EINVAL;
    pthread_mutex_lock(&q->lock);
    int r = qcow2_begin_write(q);
    if (r == 0)
        r = unmap_range(q, offset, len, QCOW2_DISCARD, 0);
    pthread_mutex_unlock(&q->lock);
    return r;
}

int qcow2_write_zeroes(struct qcow2 *q, uint64_t offset, uint64_t len, int unmap)
{
    if (!range_ok(q, offset, len))
        return -EINVAL;
    pthread_mutex_lock(&q->lock);
    int r = qcow2_begin_write(q);
    if (r == 0)
        r = unmap_range(q, offset, len, unmap ? QCOW2_ZERO_UNMAP : QCOW2_ZERO_KEEP, 1);
    pthread_mutex_unlock(&q->lock);
    return r;
}

void qcow2_close(struct qcow2 *q)
{
    if (q == NULL)
        return;
    if (!q->readonly && !q->broken && qcow2_flush_locked(q) == 0 && q->dirty_bit_set)
        set_incompat(q, q->h.incompatible & ~QCOW2_INCOMPAT_DIRTY);
    destroy(q);
}
