/*
 * Guest-to-host mapping: the in-memory L1 table and the L2 table cache.
 * A dirty L2 table is only written once the data and refcounts it relies
 * on are durable, so a crash never leaves an entry pointing at a cluster
 * with refcount 0.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2_internal.h"

static void l1_mark(struct qcow2 *q, uint32_t i)
{
    if (q->l1_dirty_hi == 0) {
        q->l1_dirty_lo = i;
        q->l1_dirty_hi = i + 1;
    }
    if (i < q->l1_dirty_lo)
        q->l1_dirty_lo = i;
    if (i + 1 > q->l1_dirty_hi)
        q->l1_dirty_hi = i + 1;
}

/* Write one dirty L2 table, after what it depends on. */
static int l2_write(struct qcow2 *q, struct qcow2_cache_ent *e)
{
    int r = qcow2_sync(q); /* data the table points at */
    if (r == 0)
        r = qcow2_rc_writeback(q); /* refcounts of those clusters, synced */
    if (r == 0)
        r = qcow2_pwrite_meta(q, e->data, q->cs, e->off);
    if (r == 0)
        e->dirty = 0;
    return r;
}

static int l2_slot(struct qcow2 *q, uint64_t off, struct qcow2_cache_ent **slot)
{
    struct qcow2_cache_ent *e = qcow2_cache_victim(&q->l2c);
    if (e->off != 0 && e->dirty) {
        int r = l2_write(q, e);
        if (r < 0)
            return r;
    }
    e->off = off;
    e->dirty = 0;
    qcow2_cache_touch(&q->l2c, e);
    *slot = e;
    return 0;
}

int qcow2_l2_get(struct qcow2 *q, uint64_t gc, int alloc, uint64_t **tab,
                 struct qcow2_cache_ent **slot)
{
    uint64_t l1i = gc / q->l2_entries;
    struct qcow2_cache_ent *e = NULL;
    *tab = NULL;
    if (slot != NULL)
        *slot = NULL;
    if (l1i >= q->h.l1_size)
        return qcow2_fail(q, "guest cluster beyond the L1 table", gc);
    uint64_t ent = q->l1[l1i], off = ent & QCOW2_OFFSET_MASK;
    if (off == 0) {
        if (!alloc)
            return 0;
        uint64_t n;
        int r = qcow2_alloc_cluster(q, &n);
        if (r == 0)
            r = l2_slot(q, n, &e);
        if (r < 0)
            return r;
        memset(e->data, 0, q->cs);
        e->dirty = 1;
        q->l1[l1i] = n | QCOW2_OFLAG_COPIED;
        l1_mark(q, (uint32_t)l1i);
    } else {
        /* Entries were checked at open; the table may have moved since. */
        e = qcow2_cache_find(&q->l2c, off);
        if (e == NULL) {
            int r = l2_slot(q, off, &e);
            if (r < 0)
                return r;
            r = qcow2_pread_meta(q, e->data, q->cs, off);
            if (r < 0) {
                e->off = 0;
                return r;
            }
        }
        if (alloc && !(ent & QCOW2_OFLAG_COPIED)) {
            /* Without internal snapshots a table is never shared: only the
             * flag is missing.  Anything else is refused, not copied. */
            uint64_t v;
            int r = qcow2_rc_get(q, off, &v);
            if (r < 0)
                return r;
            if (v != 1)
                return qcow2_fail(q, "L2 table with refcount != 1 at", off);
            q->l1[l1i] = ent | QCOW2_OFLAG_COPIED;
            l1_mark(q, (uint32_t)l1i);
        }
    }
    *tab = (uint64_t *)(void *)e->data;
    if (slot != NULL)
        *slot = e;
    return 0;
}

int qcow2_l2_writeback(struct qcow2 *q, int *wrote)
{
    *wrote = 0;
    for (unsigned i = 0; i < q->l2c.n; i++) {
        struct qcow2_cache_ent *e = &q->l2c.ent[i];
        if (e->off != 0 && e->dirty) {
            int r = qcow2_pwrite_meta(q, e->data, q->cs, e->off);
            if (r < 0)
                return r;
            e->dirty = 0;
            *wrote = 1;
        }
    }
    return 0;
}

int qcow2_l1_writeback(struct qcow2 *q)
{
    if (q->l1_dirty_hi == 0)
        return 0;
    uint32_t lo = q->l1_dirty_lo, n = q->l1_dirty_hi - lo;
    uint8_t *buf = malloc((size_t)n * 8);
    if (buf == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++)
        qcow2_put_be64(buf + (size_t)i * 8, q->l1[lo + i]);
    int r = qcow2_pwrite_meta(q, buf, (size_t)n * 8, q->h.l1_table_offset + (uint64_t)lo * 8);
    free(buf);
    if (r == 0)
        q->l1_dirty_lo = q->l1_dirty_hi = 0;
    return r;
}

int qcow2_check_data_off(struct qcow2 *q, uint64_t entry)
{
    uint64_t off = entry & QCOW2_OFFSET_MASK;
    if (entry & QCOW2_L2_RESERVED)
        return qcow2_fail(q, "L2 entry has reserved bits set", entry);
    if (off % q->cs != 0)
        return qcow2_fail(q, "L2 entry offset not cluster aligned", entry);
    if (off >= q->end)
        return qcow2_fail(q, "L2 entry points beyond the end of the file", entry);
    if (qcow2_overlaps_meta(q, off, q->cs))
        return qcow2_fail(q, "L2 entry points into the header or a table", entry);
    return 0;
}

int qcow2_compressed_range(struct qcow2 *q, uint64_t entry, uint64_t *off, uint64_t *len)
{
    unsigned x = 62 - (q->cbits - 8);
    uint64_t o = entry & ((1ull << x) - 1);
    uint64_t nsec = (entry >> x) & ((1ull << (62 - x)) - 1);
    uint64_t l = (nsec + 1) * 512 - (o & 511);
    if (o == 0 || o >= q->end || o >= QCOW2_MAX_HOST_OFFSET)
        return qcow2_fail(q, "compressed cluster offset invalid", entry);
    if (o < q->cs || qcow2_overlaps_meta(q, o, 1))
        return qcow2_fail(q, "compressed cluster overlaps metadata", entry);
    /* Decoding stops after one cluster: more than two clusters of input is
     * never needed and would only cost memory. */
    if (l > 2ull * q->cs)
        l = 2ull * q->cs;
    if (o + l > q->end)
        l = q->end - o;
    *off = o;
    *len = l;
    return 0;
}
