/*
 * Runs: guest clusters whose data is contiguous in the image file, moved
 * with one preadv/pwritev instead of one call per cluster.  A sequential
 * 1 MiB guest request on a qemu-img image of 64 KiB clusters is one call,
 * not sixteen.  Reads drop the image lock for the I/O itself (see
 * data_lock in qcow2_internal.h); writes keep it, because the entries they
 * change must follow their data.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "qcow2_internal.h"

void qcow2_run_init(struct qcow2_run *run)
{
    run->host = 0;
    run->len = 0;
    run->n = 0;
    run->nupd = 0;
}

int qcow2_run_add(struct qcow2_run *run, const struct iovec *iov, int cnt, size_t skip,
                  size_t n, uint64_t host, const struct qcow2_run_upd *u)
{
    if (run->len != 0 && run->host + run->len != host)
        return 0;
    if (u != NULL && run->nupd == QCOW2_RUN_CLUSTERS)
        return 0;
    int k = qcow2_iov_slice(iov, cnt, skip, n, run->v + run->n, QCOW2_IOV_MAX - run->n);
    if (k < 0)
        return 0;
    if (run->len == 0)
        run->host = host;
    run->len += n;
    run->n += k;
    if (u != NULL)
        run->upd[run->nupd++] = *u;
    return 1;
}

/* Drop the first k bytes of v[*first, n). */
static void advance(struct iovec *v, int n, int *first, size_t k)
{
    while (*first < n && k >= v[*first].iov_len) {
        k -= v[*first].iov_len;
        (*first)++;
    }
    if (*first < n) {
        v[*first].iov_base = (uint8_t *)v[*first].iov_base + k;
        v[*first].iov_len -= k;
    }
}

int qcow2_data_preadv(struct qcow2 *q, struct iovec *v, int n, uint64_t off)
{
    int first = 0;
    while (first < n) {
        if (v[first].iov_len == 0) {
            first++;
            continue;
        }
        __atomic_fetch_add(&q->stats.data_reads, 1, __ATOMIC_RELAXED);
        ssize_t got = preadv(q->fd, v + first, n - first, (off_t)off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return -errno;
        if (got == 0) {
            /* The end of the file: a cluster allocated past it reads as zeroes. */
            for (; first < n; first++)
                memset(v[first].iov_base, 0, v[first].iov_len);
            return 0;
        }
        off += (uint64_t)got;
        advance(v, n, &first, (size_t)got);
    }
    return 0;
}

int qcow2_data_pwritev(struct qcow2 *q, struct iovec *v, int n, uint64_t off)
{
    int first = 0;
    q->data_dirty = 1;
    while (first < n) {
        if (v[first].iov_len == 0) {
            first++;
            continue;
        }
        __atomic_fetch_add(&q->stats.data_writes, 1, __ATOMIC_RELAXED);
        ssize_t w = pwritev(q->fd, v + first, n - first, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        off += (uint64_t)w;
        advance(v, n, &first, (size_t)w);
    }
    return 0;
}

int qcow2_run_read(struct qcow2 *q, struct qcow2_run *run)
{
    if (run->len == 0)
        return 0;
    /* Shared before the lock goes: no free can slip in after the lookup. */
    pthread_rwlock_rdlock(&q->data_lock);
    pthread_mutex_unlock(&q->lock);
    int r = qcow2_data_preadv(q, run->v, run->n, run->host);
    pthread_rwlock_unlock(&q->data_lock);
    pthread_mutex_lock(&q->lock);
    qcow2_run_init(run);
    return r;
}

/* Point guest cluster u->gc at its new entry; the old cluster goes once that is durable. */
static int commit_one(struct qcow2 *q, const struct qcow2_run_upd *u)
{
    uint64_t *tab;
    struct qcow2_cache_ent *slot;
    int r = qcow2_l2_get(q, u->gc, 1, &tab, &slot);
    if (r < 0)
        return r;
    uint64_t i = u->gc % q->l2_entries;
    /* Only this call, under the lock, changed entries since the plan. */
    if (qcow2_tab_get(tab, i) != u->old)
        return qcow2_fail(q, "L2 entry changed during a write", u->old);
    if (u->entry == u->old)
        return 0;
    qcow2_tab_set(tab, i, u->entry);
    slot->dirty = 1;
    if (!u->fresh)
        return 0;
    if (u->old & QCOW2_OFLAG_COMPRESSED)
        return qcow2_free_compressed_later(q, u->old);
    if (u->old & QCOW2_OFFSET_MASK)
        return qcow2_free_later(q, u->old & QCOW2_OFFSET_MASK);
    return 0;
}

int qcow2_run_write(struct qcow2 *q, struct qcow2_run *run, int commit)
{
    int r = commit ? 0 : -ECANCELED;
    if (r == 0 && run->len != 0)
        r = qcow2_data_pwritev(q, run->v, run->n, run->host);
    for (unsigned k = 0; k < run->nupd; k++) {
        const struct qcow2_run_upd *u = &run->upd[k];
        if (r == 0)
            r = commit_one(q, u);
        else if (u->fresh)
            /* Nothing points at it: hand it back (its increment is undone). */
            qcow2_rc_add(q, u->entry & QCOW2_OFFSET_MASK, -1);
    }
    qcow2_run_init(run);
    return commit ? r : 0;
}
