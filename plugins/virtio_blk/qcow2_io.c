/*
 * Guest data: reads from whatever the L2 entry says (normal, zero,
 * compressed, backing, unallocated), writes in place or into a fresh
 * cluster filled copy-on-write, and the entry changes of discard and
 * write-zeroes.  Allocated data contiguous in the file across clusters is
 * gathered into runs (qcow2_run.c); the rest goes one cluster at a time.
 * Called with the image lock held.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "qcow2_internal.h"

#define SLICE_MAX 64

static int is_zero_entry(const struct qcow2 *q, uint64_t e)
{
    return !(e & QCOW2_OFLAG_COMPRESSED) && (e & QCOW2_OFLAG_ZERO) && q->h.version >= 3;
}

/* A normal allocated cluster: its data is at e & QCOW2_OFFSET_MASK. */
static int is_data_entry(const struct qcow2 *q, uint64_t e)
{
    return !(e & QCOW2_OFLAG_COMPRESSED) && !is_zero_entry(q, e) && (e & QCOW2_OFFSET_MASK);
}

/* Data bytes from the file; past its end they read as zeroes. */
static int pread_data(struct qcow2 *q, const struct iovec *iov, int cnt, size_t skip, size_t len,
                      uint64_t off)
{
    struct iovec v[SLICE_MAX];
    int n = qcow2_iov_slice(iov, cnt, skip, len, v, SLICE_MAX);
    if (n >= 0)
        return qcow2_data_preadv(q, v, n, off);
    struct iovec b = {q->cbuf, len};
    int r = qcow2_data_preadv(q, &b, 1, off);
    if (r == 0)
        qcow2_buf_to_iov(iov, cnt, skip, q->cbuf, len);
    return r;
}

/* The decompressed cluster of a compressed entry, in q->dbuf. */
static int load_compressed(struct qcow2 *q, uint64_t e)
{
    if (q->dbuf_entry == e)
        return 0;
    uint64_t off, len;
    int r = qcow2_compressed_range(q, e, &off, &len);
    if (r < 0)
        return r;
    ssize_t got = pread(q->fd, q->zbuf, len, (off_t)off);
    if (got < 0)
        return -errno;
    q->dbuf_entry = 0;
    if (qcow2_decompress(q->h.compression_type, q->zbuf, (size_t)got, q->dbuf, q->cs) < 0)
        return qcow2_fail(q, "compressed cluster does not decompress", e);
    q->dbuf_entry = e;
    return 0;
}

static int entry_of(struct qcow2 *q, uint64_t gc, uint64_t *e)
{
    uint64_t *tab;
    int r = qcow2_l2_get(q, gc, 0, &tab, NULL);
    *e = tab == NULL ? 0 : qcow2_tab_get(tab, gc % q->l2_entries);
    return r;
}

/* Cluster gc (entry e) when it is not normal allocated data. */
static int read_other(struct qcow2 *q, uint64_t gc, uint64_t e, uint32_t in_off, uint32_t n,
                      const struct iovec *iov, int cnt, size_t skip)
{
    uint64_t goff = (gc << q->cbits) + in_off;
    int r;
    if (e & QCOW2_OFLAG_COMPRESSED) {
        r = load_compressed(q, e);
        if (r == 0)
            qcow2_buf_to_iov(iov, cnt, skip, q->dbuf + in_off, n);
        return r;
    }
    if (is_zero_entry(q, e)) {
        qcow2_iov_zero(iov, cnt, skip, n);
        return 0;
    }
    if (e & ~QCOW2_OFLAG_COPIED)
        return qcow2_fail(q, "unallocated L2 entry with flags", e);
    if (q->bk != NULL) {
        struct iovec v[SLICE_MAX];
        int k = qcow2_iov_slice(iov, cnt, skip, n, v, SLICE_MAX);
        if (k >= 0)
            return qcow2_backing_readv(q, v, k, goff, n);
        r = qcow2_backing_read(q, q->cbuf, n, goff);
        if (r == 0)
            qcow2_buf_to_iov(iov, cnt, skip, q->cbuf, n);
        return r;
    }
    qcow2_iov_zero(iov, cnt, skip, n);
    return 0;
}

int qcow2_read_range(struct qcow2 *q, const struct iovec *iov, int cnt, uint64_t offset,
                     size_t len)
{
    struct qcow2_run run;
    qcow2_run_init(&run);
    int r = 0;
    for (size_t done = 0; done < len && r == 0;) {
        uint64_t pos = offset + done, gc = pos >> q->cbits, e;
        uint32_t in = (uint32_t)(pos & (q->cs - 1));
        uint32_t n = q->cs - in;
        if (n > len - done)
            n = (uint32_t)(len - done);
        r = entry_of(q, gc, &e);
        if (r == 0 && is_data_entry(q, e)) {
            r = qcow2_check_data_off(q, e);
            uint64_t host = (e & QCOW2_OFFSET_MASK) + in;
            if (r == 0 && !qcow2_run_add(&run, iov, cnt, done, n, host, NULL)) {
                if (run.len != 0) {
                    /* The lock is dropped while the run is read: this
                     * cluster's entry may change, look it up again. */
                    r = qcow2_run_read(q, &run);
                    continue;
                }
                /* One cluster in more than QCOW2_IOV_MAX pieces. */
                r = pread_data(q, iov, cnt, done, n, host);
            }
        } else if (r == 0) {
            r = read_other(q, gc, e, in, n, iov, cnt, done);
        }
        done += n;
    }
    if (r == 0)
        r = qcow2_run_read(q, &run);
    return r;
}

/* The whole current content of guest cluster gc (entry e) into buf. */
static int cluster_content(struct qcow2 *q, uint64_t gc, uint64_t e, uint8_t *buf)
{
    if (e & QCOW2_OFLAG_COMPRESSED) {
        int r = load_compressed(q, e);
        if (r == 0)
            memcpy(buf, q->dbuf, q->cs);
        return r;
    }
    if (is_zero_entry(q, e)) {
        memset(buf, 0, q->cs);
        return 0;
    }
    uint64_t off = e & QCOW2_OFFSET_MASK;
    if (off == 0) {
        if (q->bk != NULL)
            return qcow2_backing_read(q, buf, q->cs, gc << q->cbits);
        memset(buf, 0, q->cs);
        return 0;
    }
    struct iovec v = {buf, q->cs};
    return pread_data(q, &v, 1, 0, q->cs, off);
}

static int write_buf(struct qcow2 *q, uint8_t *buf, size_t len, uint64_t off)
{
    struct iovec v = {buf, len};
    return qcow2_data_pwritev(q, &v, 1, off);
}

/* Write [skip, skip+n) of the request at host offset off. */
static int write_data(struct qcow2 *q, const struct iovec *iov, int cnt, size_t skip, uint32_t n,
                      uint64_t off)
{
    struct iovec v[SLICE_MAX];
    int k = qcow2_iov_slice(iov, cnt, skip, n, v, SLICE_MAX);
    if (k < 0) {
        qcow2_iov_to_buf(iov, cnt, skip, q->cbuf, n);
        v[0].iov_base = q->cbuf;
        v[0].iov_len = n;
        k = 1;
    }
    return qcow2_data_pwritev(q, v, k, off);
}

/* Whether normal cluster entry e is shared (refcount > 1): written only by copy. */
static int data_shared(struct qcow2 *q, uint64_t e, int *shared)
{
    *shared = 0;
    int r = qcow2_check_data_off(q, e);
    if (r < 0 || (e & QCOW2_OFLAG_COPIED))
        return r;
    uint64_t v;
    r = qcow2_rc_get(q, e & QCOW2_OFFSET_MASK, &v);
    if (r < 0)
        return r;
    if (v == 0)
        return qcow2_fail(q, "L2 entry points at a free cluster", e);
    *shared = v > 1;
    return 0;
}

int qcow2_write_cluster(struct qcow2 *q, uint64_t gc, uint32_t in_off, uint32_t n,
                        const struct iovec *iov, int cnt, size_t skip)
{
    uint64_t *tab;
    struct qcow2_cache_ent *slot;
    int r = qcow2_l2_get(q, gc, 1, &tab, &slot);
    if (r < 0)
        return r;
    uint64_t i = gc % q->l2_entries, e = qcow2_tab_get(tab, i);
    uint64_t off = e & QCOW2_OFFSET_MASK;
    int shared = 0;
    if (!(e & QCOW2_OFLAG_COMPRESSED) && off != 0) {
        r = data_shared(q, e, &shared);
        if (r < 0)
            return r;
        if (!shared) {
            uint64_t ne = (e & ~QCOW2_OFLAG_ZERO) | QCOW2_OFLAG_COPIED;
            if (is_zero_entry(q, e)) {
                /* A preallocated zero cluster: zeroes around the new data. */
                memset(q->cbuf, 0, q->cs);
                qcow2_iov_to_buf(iov, cnt, skip, q->cbuf + in_off, n);
                r = write_buf(q, q->cbuf, q->cs, off);
            } else {
                r = write_data(q, iov, cnt, skip, n, off + in_off);
            }
            if (r == 0 && ne != e) {
                qcow2_tab_set(tab, i, ne);
                slot->dirty = 1;
            }
            return r;
        }
    }
    /* A fresh cluster: the untouched parts come from the old content. */
    uint64_t nc;
    r = qcow2_alloc_cluster(q, &nc);
    if (r < 0)
        return r;
    if (n == q->cs) {
        r = write_data(q, iov, cnt, skip, n, nc);
    } else {
        r = cluster_content(q, gc, e, q->cbuf);
        if (r == 0) {
            qcow2_iov_to_buf(iov, cnt, skip, q->cbuf + in_off, n);
            r = write_buf(q, q->cbuf, q->cs, nc);
        }
    }
    if (r < 0) {
        /* Nothing points at nc yet: hand it back (its increment is undone). */
        qcow2_rc_add(q, nc, -1);
        return r;
    }
    /* The cache slot may have been reused while reading a backing file or
     * allocating: look the table up again. */
    r = qcow2_l2_get(q, gc, 1, &tab, &slot);
    if (r < 0)
        return r;
    qcow2_tab_set(tab, i, nc | QCOW2_OFLAG_COPIED);
    slot->dirty = 1;
    if (e & QCOW2_OFLAG_COMPRESSED)
        return qcow2_free_compressed_later(q, e);
    if (off != 0)
        return qcow2_free_later(q, off);
    return 0;
}

/*
 * Where a write of [in_off, in_off+n) of guest cluster gc can go without
 * reading old data: in place, or into a fresh cluster it fills whole.  1
 * with *host and *u set; 0 when it needs copy-on-write or zeroes around it
 * (qcow2_write_cluster); or -errno.
 */
static int plan_write(struct qcow2 *q, uint64_t gc, uint32_t in_off, uint32_t n, uint64_t *host,
                      struct qcow2_run_upd *u)
{
    uint64_t *tab;
    int r = qcow2_l2_get(q, gc, 1, &tab, NULL);
    if (r < 0)
        return r;
    uint64_t e = qcow2_tab_get(tab, gc % q->l2_entries), off = e & QCOW2_OFFSET_MASK;
    u->gc = gc;
    u->old = e;
    u->fresh = 0;
    if (!(e & QCOW2_OFLAG_COMPRESSED) && off != 0) {
        int shared;
        r = data_shared(q, e, &shared);
        if (r < 0)
            return r;
        if (!shared) {
            if (is_zero_entry(q, e) && n != q->cs)
                return 0;
            u->entry = (e & ~QCOW2_OFLAG_ZERO) | QCOW2_OFLAG_COPIED;
            *host = off + in_off;
            return 1;
        }
    }
    if (n != q->cs)
        return 0;
    uint64_t nc;
    r = qcow2_alloc_cluster(q, &nc);
    if (r < 0)
        return r;
    u->entry = nc | QCOW2_OFLAG_COPIED;
    u->fresh = 1;
    *host = nc;
    return 1;
}

/* Add a planned cluster to the run (u NULL: no entry changes), writing the run first if
 * it does not fit. */
static int add_write(struct qcow2 *q, struct qcow2_run *run, const struct iovec *iov, int cnt,
                     size_t skip, uint32_t n, uint64_t host, const struct qcow2_run_upd *u)
{
    if (qcow2_run_add(run, iov, cnt, skip, n, host, u))
        return 0;
    int r = qcow2_run_write(q, run, 1);
    if (r == 0 && qcow2_run_add(run, iov, cnt, skip, n, host, u))
        return 0;
    if (r == 0) {
        /* One cluster in more than QCOW2_IOV_MAX pieces: through the bounce buffer, now. */
        qcow2_iov_to_buf(iov, cnt, skip, q->cbuf, n);
        struct iovec b = {q->cbuf, n};
        qcow2_run_add(run, &b, 1, 0, n, host, u);
        return qcow2_run_write(q, run, 1);
    }
    if (u != NULL && u->fresh)
        qcow2_rc_add(q, host, -1);
    return r;
}

int qcow2_write_range(struct qcow2 *q, const struct iovec *iov, int cnt, uint64_t offset,
                      size_t len)
{
    struct qcow2_run run;
    qcow2_run_init(&run);
    int r = 0;
    for (size_t done = 0; done < len && r == 0;) {
        uint64_t pos = offset + done, gc = pos >> q->cbits, host = 0;
        uint32_t in = (uint32_t)(pos & (q->cs - 1));
        uint32_t n = q->cs - in;
        if (n > len - done)
            n = (uint32_t)(len - done);
        if (q->npending >= QCOW2_MAX_PENDING_FREE) {
            /* Bounded memory for deferred frees: a flush makes them applicable. */
            r = qcow2_run_write(q, &run, 1);
            if (r == 0)
                r = qcow2_flush_locked(q);
        }
        struct qcow2_run_upd u;
        if (r == 0)
            r = plan_write(q, gc, in, n, &host, &u);
        if (r == 1) {
            /* An in-place write that changes no entry needs no update slot. */
            int same = !u.fresh && u.entry == u.old;
            r = add_write(q, &run, iov, cnt, done, n, host, same ? NULL : &u);
        } else if (r == 0) {
            r = qcow2_run_write(q, &run, 1);
            if (r == 0)
                r = qcow2_write_cluster(q, gc, in, n, iov, cnt, done);
        }
        done += n;
    }
    /* After an error the run's fresh clusters are given back, not written. */
    int w = qcow2_run_write(q, &run, r == 0);
    return r < 0 ? r : w;
}

int qcow2_unmap_cluster(struct qcow2 *q, uint64_t gc, enum qcow2_unmap mode)
{
    int zero_flag = mode != QCOW2_DISCARD || (q->bk != NULL && q->h.version >= 3);
    if (q->h.version < 3)
        zero_flag = 0; /* v2: an unallocated entry; callers ensure that reads as wanted */
    uint64_t *tab;
    struct qcow2_cache_ent *slot;
    int r = qcow2_l2_get(q, gc, zero_flag, &tab, &slot);
    if (r < 0 || tab == NULL)
        return r;
    uint64_t i = gc % q->l2_entries, e = qcow2_tab_get(tab, i);
    uint64_t off = e & QCOW2_OFFSET_MASK;
    uint64_t ne = zero_flag ? QCOW2_OFLAG_ZERO : 0;
    int keep = 0;
    if (!(e & QCOW2_OFLAG_COMPRESSED) && off != 0) {
        r = qcow2_check_data_off(q, e);
        if (r < 0)
            return r;
        if (mode == QCOW2_ZERO_KEEP && q->h.version >= 3 && (e & QCOW2_OFLAG_COPIED)) {
            ne = e | QCOW2_OFLAG_ZERO;
            keep = 1;
        }
    }
    if (ne == e)
        return 0;
    qcow2_tab_set(tab, i, ne);
    slot->dirty = 1;
    if (e & QCOW2_OFLAG_COMPRESSED)
        return qcow2_free_compressed_later(q, e);
    if (off != 0 && !keep)
        return qcow2_free_later(q, off);
    return 0;
}
