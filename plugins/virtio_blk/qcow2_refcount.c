/*
 * Refcounts: lookup and update through the block cache, cluster allocation
 * (reuse a free cluster, else append), refcount-block creation and table
 * growth, deferred frees, and the rebuild QEMU does for dirty images.
 *
 * Ordering rule: increments may reach the disk at any time (an early
 * increment is a leak at worst); decrements wait in q->pending until the
 * metadata that dropped the reference is durable (qcow2_flush).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2_internal.h"

static uint64_t rb_get(const struct qcow2 *q, const uint8_t *b, uint64_t i)
{
    unsigned order = q->h.refcount_order;
    if (order >= 3) {
        unsigned w = 1u << (order - 3);
        uint64_t v = 0;
        for (unsigned k = 0; k < w; k++)
            v = (v << 8) | b[i * w + k];
        return v;
    }
    uint64_t bit = i << order;
    return (b[bit / 8] >> (bit % 8)) & ((1u << (1u << order)) - 1);
}

static void rb_set(const struct qcow2 *q, uint8_t *b, uint64_t i, uint64_t v)
{
    unsigned order = q->h.refcount_order;
    if (order >= 3) {
        unsigned w = 1u << (order - 3);
        for (unsigned k = w; k-- > 0; v >>= 8)
            b[i * w + k] = (uint8_t)v;
        return;
    }
    uint64_t bit = i << order;
    unsigned mask = ((1u << (1u << order)) - 1) << (bit % 8);
    b[bit / 8] = (uint8_t)((b[bit / 8] & ~mask) | ((v << (bit % 8)) & mask));
}

static int rb_slot(struct qcow2 *q, uint64_t off, struct qcow2_cache_ent **slot)
{
    struct qcow2_cache_ent *e = qcow2_cache_victim(&q->rbc);
    if (e->off != 0 && e->dirty) {
        int r = qcow2_pwrite_meta(q, e->data, q->cs, e->off);
        if (r < 0)
            return r;
    }
    e->off = off;
    e->dirty = 0;
    qcow2_cache_touch(&q->rbc, e);
    *slot = e;
    return 0;
}

static int take_end(struct qcow2 *q, uint64_t *off)
{
    if (q->end + q->cs > QCOW2_MAX_HOST_OFFSET)
        return -ENOSPC;
    *off = q->end;
    q->end += q->cs;
    return 0;
}

static int grow_table(struct qcow2 *q, uint64_t need_ti);

static void rt_mark(struct qcow2 *q, uint64_t ti)
{
    if (!q->rt_dirty) {
        q->rt_dirty = 1;
        q->rt_lo = q->rt_hi = ti;
    }
    if (ti < q->rt_lo)
        q->rt_lo = ti;
    if (ti + 1 > q->rt_hi)
        q->rt_hi = ti + 1;
}

/* A new refcount block for table index ti, itself refcounted. */
static int create_block(struct qcow2 *q, uint64_t ti)
{
    uint64_t e;
    int r = take_end(q, &e);
    if (r < 0)
        return r;
    uint64_t eci = e >> q->cbits;
    if (eci / q->rb_entries != ti) {
        /* The new block lives in another block's range: count it there. */
        r = qcow2_rc_add(q, e, 1);
        if (r < 0)
            return r;
    }
    struct qcow2_cache_ent *s;
    r = rb_slot(q, e, &s);
    if (r < 0)
        return r;
    memset(s->data, 0, q->cs);
    if (eci / q->rb_entries == ti)
        rb_set(q, s->data, eci % q->rb_entries, 1);
    s->dirty = 1;
    q->rt[ti] = e;
    rt_mark(q, ti);
    return 0;
}

/* The refcount block for cluster index ci; *b NULL if none and !create. */
static int rb_load(struct qcow2 *q, uint64_t ci, int create, struct qcow2_cache_ent **slot)
{
    uint64_t ti = ci / q->rb_entries;
    *slot = NULL;
    if (ti >= q->rt_entries) {
        if (!create)
            return 0;
        int r = grow_table(q, ti);
        if (r < 0)
            return r;
    }
    uint64_t ent = q->rt[ti];
    if (ent == 0) {
        if (!create)
            return 0;
        int r = create_block(q, ti);
        if (r < 0)
            return r;
        ent = q->rt[ti];
    }
    if ((ent & QCOW2_RT_RESERVED) || ent % q->cs != 0 || ent >= q->end ||
        qcow2_overlaps_meta(q, ent, q->cs))
        return qcow2_fail(q, "refcount table entry", ent);
    struct qcow2_cache_ent *e = qcow2_cache_find(&q->rbc, ent);
    if (e == NULL) {
        int r = rb_slot(q, ent, &e);
        if (r < 0)
            return r;
        r = qcow2_pread_meta(q, e->data, q->cs, ent);
        if (r < 0) {
            e->off = 0;
            return r;
        }
    }
    *slot = e;
    return 0;
}

int qcow2_rc_get(struct qcow2 *q, uint64_t cluster, uint64_t *val)
{
    uint64_t ci = cluster >> q->cbits;
    struct qcow2_cache_ent *e;
    int r = rb_load(q, ci, 0, &e);
    if (r < 0)
        return r;
    *val = e == NULL ? 0 : rb_get(q, e->data, ci % q->rb_entries);
    return 0;
}

int qcow2_rc_add(struct qcow2 *q, uint64_t cluster, int64_t delta)
{
    uint64_t ci = cluster >> q->cbits;
    struct qcow2_cache_ent *e;
    int r = rb_load(q, ci, delta > 0, &e);
    if (r < 0)
        return r;
    uint64_t v = e == NULL ? 0 : rb_get(q, e->data, ci % q->rb_entries);
    if ((delta < 0 && v < (uint64_t)-delta) || (delta > 0 && q->rb_max - v < (uint64_t)delta))
        return qcow2_fail(q, delta < 0 ? "refcount underflow at" : "refcount overflow at",
                          cluster);
    if (e == NULL)
        return 0; /* delta 0 on a missing block */
    rb_set(q, e->data, ci % q->rb_entries, v + (uint64_t)delta);
    e->dirty = 1;
    return 0;
}

/*
 * Replace the refcount table by a larger one at the end of the file, with
 * new blocks covering itself, written and synced before the header points
 * at it.  Rare: every cluster a table entry covers is rb_entries clusters.
 */
static int grow_table(struct qcow2 *q, uint64_t need_ti)
{
    uint64_t t0 = q->end, entries = need_ti + 1, nb, ncl;
    if (entries < (uint64_t)q->rt_entries * 2)
        entries = (uint64_t)q->rt_entries * 2;
    for (;;) {
        ncl = (entries * 8 + q->cs - 1) / q->cs;
        nb = 0;
        for (;;) {
            uint64_t first = (t0 >> q->cbits) / q->rb_entries;
            uint64_t last = ((t0 + (ncl + nb) * q->cs - 1) >> q->cbits) / q->rb_entries;
            uint64_t missing = 0;
            for (uint64_t b = first; b <= last; b++)
                missing += b >= q->rt_entries || q->rt[b] == 0;
            if (missing <= nb)
                break;
            nb = missing;
        }
        uint64_t last = ((t0 + (ncl + nb) * q->cs - 1) >> q->cbits) / q->rb_entries;
        if (last < entries)
            break;
        entries = last + 1;
    }
    entries = ncl * q->cs / 8;
    if (entries * 8 > QCOW2_MAX_RT_BYTES || t0 + (ncl + nb) * q->cs > QCOW2_MAX_HOST_OFFSET)
        return -ENOSPC;
    uint64_t *nrt = calloc(entries, 8);
    if (nrt == NULL)
        return -ENOMEM;
    memcpy(nrt, q->rt, (size_t)q->rt_entries * 8);
    uint64_t *ort = q->rt, oents = q->rt_entries;
    uint64_t ooff = q->h.refcount_table_offset, ocl = q->h.refcount_table_clusters;
    q->rt = nrt;
    q->rt_entries = (uint32_t)entries;
    q->end = t0 + (ncl + nb) * q->cs;
    int r = 0;
    /* New blocks right after the table, in index order. */
    uint64_t pos = t0 + ncl * q->cs;
    uint64_t first = (t0 >> q->cbits) / q->rb_entries;
    uint64_t last = ((q->end - 1) >> q->cbits) / q->rb_entries;
    for (uint64_t b = first; b <= last && r == 0; b++) {
        if (nrt[b] != 0)
            continue;
        struct qcow2_cache_ent *s;
        r = rb_slot(q, pos, &s);
        if (r == 0) {
            memset(s->data, 0, q->cs);
            s->dirty = 1;
            nrt[b] = pos;
            pos += q->cs;
        }
    }
    for (uint64_t c = t0; c < q->end && r == 0; c += q->cs)
        r = qcow2_rc_add(q, c, 1);
    uint8_t *disk = NULL;
    if (r == 0)
        disk = malloc(ncl * q->cs);
    if (r == 0 && disk == NULL)
        r = -ENOMEM;
    for (unsigned i = 0; r == 0 && i < q->rbc.n; i++) {
        struct qcow2_cache_ent *s = &q->rbc.ent[i];
        if (s->off != 0 && s->dirty) {
            r = qcow2_pwrite_meta(q, s->data, q->cs, s->off);
            s->dirty = r == 0 ? 0 : 1;
        }
    }
    if (r == 0) {
        for (uint64_t i = 0; i < entries; i++)
            qcow2_put_be64(disk + i * 8, nrt[i]);
        r = qcow2_pwrite_meta(q, disk, ncl * q->cs, t0);
    }
    free(disk);
    if (r == 0)
        r = qcow2_sync(q);
    if (r == 0) {
        uint8_t hdr[12];
        qcow2_put_be64(hdr, t0);
        qcow2_put_be32(hdr + 8, (uint32_t)ncl);
        r = qcow2_pwrite_meta(q, hdr, sizeof(hdr), QCOW2_OFF_RT_OFFSET);
    }
    if (r == 0)
        r = qcow2_sync(q);
    if (r < 0) {
        /* The header still names the old table: go back to it. */
        q->rt = ort;
        q->rt_entries = (uint32_t)oents;
        free(nrt);
        q->broken = 1;
        return r;
    }
    free(ort);
    q->rt_dirty = 0;
    q->h.refcount_table_offset = t0;
    q->h.refcount_table_clusters = (uint32_t)ncl;
    for (uint64_t i = 0; i < ocl && r == 0; i++)
        r = qcow2_free_later(q, ooff + i * q->cs);
    return r;
}

int qcow2_alloc_cluster(struct qcow2 *q, uint64_t *off)
{
    uint64_t c = q->free_hint < q->cs ? q->cs : q->free_hint;
    int found = 0;
    for (; c < q->end; c += q->cs) {
        uint64_t v;
        if (qcow2_overlaps_meta(q, c, q->cs))
            continue;
        int r = qcow2_rc_get(q, c, &v);
        if (r < 0)
            return r;
        if (v == 0) {
            found = 1;
            break;
        }
    }
    if (!found) {
        int r = take_end(q, &c);
        if (r < 0)
            return r;
    }
    q->free_hint = c + q->cs;
    int r = qcow2_rc_add(q, c, 1);
    if (r < 0)
        return r;
    *off = c;
    return 0;
}

int qcow2_free_later(struct qcow2 *q, uint64_t off)
{
    if (q->npending == q->pending_cap) {
        unsigned cap = q->pending_cap ? q->pending_cap * 2 : 64;
        uint64_t *p = realloc(q->pending, cap * sizeof(*p));
        if (p == NULL)
            return -ENOMEM;
        q->pending = p;
        q->pending_cap = cap;
    }
    q->pending[q->npending++] = off & ~((uint64_t)q->cs - 1);
    return 0;
}

int qcow2_free_compressed_later(struct qcow2 *q, uint64_t entry)
{
    uint64_t off, len;
    int r = qcow2_compressed_range(q, entry, &off, &len);
    if (r < 0)
        return r;
    uint64_t last = (off + len - 1) & ~((uint64_t)q->cs - 1);
    for (uint64_t c = off & ~((uint64_t)q->cs - 1); c <= last && r == 0; c += q->cs)
        r = qcow2_free_later(q, c);
    return r;
}

int qcow2_apply_pending(struct qcow2 *q)
{
    int r = 0;
    for (unsigned i = 0; i < q->npending && r == 0; i++) {
        r = qcow2_rc_add(q, q->pending[i], -1);
        uint64_t v;
        if (r == 0 && qcow2_rc_get(q, q->pending[i], &v) == 0 && v == 0 &&
            q->pending[i] < q->free_hint)
            q->free_hint = q->pending[i];
    }
    q->npending = 0;
    return r;
}

int qcow2_rc_writeback(struct qcow2 *q)
{
    int any = 0, r;
    for (unsigned i = 0; i < q->rbc.n; i++) {
        struct qcow2_cache_ent *s = &q->rbc.ent[i];
        if (s->off != 0 && s->dirty) {
            r = qcow2_pwrite_meta(q, s->data, q->cs, s->off);
            if (r < 0)
                return r;
            s->dirty = 0;
            any = 1;
        }
    }
    if (q->rt_dirty) {
        /* Blocks first, durable, then the entries that point at them. */
        r = qcow2_sync(q);
        if (r < 0)
            return r;
        uint64_t n = q->rt_hi - q->rt_lo;
        uint8_t *buf = malloc(n * 8);
        if (buf == NULL)
            return -ENOMEM;
        for (uint64_t i = 0; i < n; i++)
            qcow2_put_be64(buf + i * 8, q->rt[q->rt_lo + i]);
        r = qcow2_pwrite_meta(q, buf, n * 8, q->h.refcount_table_offset + q->rt_lo * 8);
        free(buf);
        if (r < 0)
            return r;
        q->rt_dirty = 0;
        any = 1;
    }
    return any ? qcow2_sync(q) : 0;
}

/* Metadata the image cannot live without must be counted, or an
 * allocation could hand it out as data. */
int qcow2_rc_check_meta(struct qcow2 *q, char *err, size_t errlen)
{
    struct {
        const char *what;
        uint64_t off, len;
    } m[3] = {
        {"header", 0, q->cs},
        {"L1 table", q->h.l1_table_offset, (uint64_t)q->h.l1_size * 8},
        {"refcount table", q->h.refcount_table_offset,
         (uint64_t)q->h.refcount_table_clusters * q->cs},
    };
    for (int i = 0; i < 3; i++)
        for (uint64_t c = m[i].off & ~((uint64_t)q->cs - 1); c < m[i].off + m[i].len;
             c += q->cs) {
            uint64_t v;
            if (qcow2_rc_get(q, c, &v) < 0 || v == 0) {
                snprintf(err, errlen,
                         "qcow2: %s cluster 0x%" PRIx64 " has refcount 0 (repair the image "
                         "with qemu-img check -r all)", m[i].what, c);
                return -1;
            }
        }
    for (uint64_t ti = 0; ti < q->rt_entries; ti++) {
        uint64_t v;
        if (q->rt[ti] != 0 && (qcow2_rc_get(q, q->rt[ti], &v) < 0 || v == 0)) {
            snprintf(err, errlen, "qcow2: refcount block 0x%" PRIx64 " has refcount 0 (repair "
                     "the image with qemu-img check -r all)", q->rt[ti]);
            return -1;
        }
    }
    return 0;
}

/* Count one reference to every cluster of [off, off+len). */
static int count(struct qcow2 *q, uint32_t *cnt, uint64_t n, uint64_t off, uint64_t len)
{
    for (uint64_t c = off >> q->cbits; c <= (off + len - 1) >> q->cbits; c++) {
        if (c >= n)
            return -1;
        if (cnt[c] != UINT32_MAX)
            cnt[c]++;
    }
    return 0;
}

/*
 * References per cluster, counted from the tables: header, L1, refcount
 * table and blocks, L2 tables, data (compressed data counts once per
 * entry).  *cnt_out (n_out entries) is the caller's to free.  0 or -1 (a
 * table points outside the file, or the image is too large to walk).
 */
static int recount(struct qcow2 *q, uint32_t **cnt_out, uint64_t *n_out)
{
    uint64_t n = q->end >> q->cbits;
    *cnt_out = NULL;
    *n_out = n;
    if (n > (1ull << 26))
        return -1;
    uint32_t *cnt = calloc(n ? n : 1, sizeof(*cnt));
    uint8_t *l2 = malloc(q->cs);
    int r = cnt == NULL || l2 == NULL ? -1 : 0;
    if (r == 0)
        r = count(q, cnt, n, 0, q->cs);
    if (r == 0 && q->h.l1_size)
        r = count(q, cnt, n, q->h.l1_table_offset, (uint64_t)q->h.l1_size * 8);
    if (r == 0)
        r = count(q, cnt, n, q->h.refcount_table_offset,
                  (uint64_t)q->h.refcount_table_clusters * q->cs);
    for (uint64_t ti = 0; r == 0 && ti < q->rt_entries; ti++)
        if (q->rt[ti])
            r = count(q, cnt, n, q->rt[ti], q->cs);
    for (uint32_t i = 0; r == 0 && i < q->h.l1_size; i++) {
        uint64_t l2off = q->l1[i] & QCOW2_OFFSET_MASK;
        if (l2off == 0)
            continue;
        r = count(q, cnt, n, l2off, q->cs);
        if (r == 0)
            r = qcow2_pread_meta(q, l2, q->cs, l2off) < 0 ? -1 : 0;
        for (uint32_t j = 0; r == 0 && j < q->l2_entries; j++) {
            uint64_t e = qcow2_be64(l2 + (uint64_t)j * 8), off, len;
            if (e & QCOW2_OFLAG_COMPRESSED) {
                r = qcow2_compressed_range(q, e, &off, &len) < 0 ? -1 : 0;
                if (r == 0)
                    r = count(q, cnt, n, off, len);
            } else if ((e & QCOW2_OFFSET_MASK) != 0) {
                r = count(q, cnt, n, e & QCOW2_OFFSET_MASK, q->cs);
            }
        }
    }
    free(l2);
    if (r != 0) {
        free(cnt);
        return -1;
    }
    *cnt_out = cnt;
    return 0;
}

/*
 * 0 when the image is consistent the way in-place writes rely on: every
 * referenced cluster's refcount equals its references, and every L1/L2
 * entry flagged COPIED (written in place) points at a cluster referenced
 * once.  1 when not (two guest clusters may then share a host cluster, so
 * a write can show through elsewhere: what such an image does, not a bug
 * of the library), -1 when the tables cannot be walked.
 */
int qcow2_rc_verify(struct qcow2 *q)
{
    uint32_t *cnt;
    uint64_t n;
    if (recount(q, &cnt, &n) < 0)
        return -1;
    int bad = 0;
    for (uint64_t c = 0; !bad && c < n; c++) {
        uint64_t v;
        if (cnt[c] && (qcow2_rc_get(q, c << q->cbits, &v) < 0 || v != cnt[c]))
            bad = 1;
    }
    uint8_t *l2 = bad ? NULL : malloc(q->cs);
    if (!bad && !l2)
        bad = -1;
    for (uint32_t i = 0; bad == 0 && i < q->h.l1_size; i++) {
        uint64_t l2off = q->l1[i] & QCOW2_OFFSET_MASK;
        if (l2off == 0)
            continue;
        if ((q->l1[i] & QCOW2_OFLAG_COPIED) && cnt[l2off >> q->cbits] != 1)
            bad = 1;
        else if (qcow2_pread_meta(q, l2, q->cs, l2off) < 0)
            bad = -1;
        for (uint32_t j = 0; bad == 0 && j < q->l2_entries; j++) {
            uint64_t e = qcow2_be64(l2 + (uint64_t)j * 8);
            uint64_t off = e & QCOW2_OFFSET_MASK;
            if (!(e & QCOW2_OFLAG_COMPRESSED) && (e & QCOW2_OFLAG_COPIED) && off &&
                (off >> q->cbits >= n || cnt[off >> q->cbits] != 1))
                bad = 1;
        }
    }
    free(l2);
    free(cnt);
    return bad;
}

/*
 * A dirty image (lazy refcounts, not closed cleanly) may have refcounts
 * below the true reference counts: recount from the tables and raise or
 * lower every referenced cluster to its count.  Unreferenced clusters are
 * left as they are (leaks, harmless).
 */
int qcow2_rc_rebuild(struct qcow2 *q, char *err, size_t errlen)
{
    uint32_t *cnt;
    uint64_t n;
    if (q->end >> q->cbits > (1ull << 26)) {
        snprintf(err, errlen, "qcow2: dirty image too large to rebuild refcounts (%" PRIu64
                 " clusters); run qemu-img check -r all", q->end >> q->cbits);
        return -1;
    }
    int r = recount(q, &cnt, &n);
    for (uint64_t c = 0; r == 0 && c < n; c++) {
        uint64_t v;
        if (cnt[c] == 0)
            continue;
        r = qcow2_rc_get(q, c << q->cbits, &v);
        if (r == 0 && v != cnt[c])
            r = qcow2_rc_add(q, c << q->cbits, (int64_t)cnt[c] - (int64_t)v);
    }
    if (r == 0)
        r = qcow2_rc_writeback(q);
    free(cnt);
    if (r != 0) {
        snprintf(err, errlen, "qcow2: dirty image: refcount rebuild failed (a table points "
                 "outside the file); run qemu-img check -r all");
        return -1;
    }
    return 0;
}
