/*
 * Internals of the qcow2 library, shared by its qcow2_*.c files only.
 * Layout facts come from QEMU's docs/interop/qcow2.txt.
 */
#ifndef NIMBUS_BLK_QCOW2_INTERNAL_H
#define NIMBUS_BLK_QCOW2_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "qcow2.h"

#define QCOW2_MAGIC 0x514649fbu
#define QCOW2_V2_HDR 72u
#define QCOW2_V3_HDR 104u

#define QCOW2_INCOMPAT_DIRTY (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2 (1ull << 4)
#define QCOW2_COMPAT_LAZY (1ull << 0)

#define QCOW2_EXT_END 0x00000000u
#define QCOW2_EXT_BACKING_FMT 0xe2792acau
#define QCOW2_EXT_FEATURES 0x6803f857u
#define QCOW2_EXT_BITMAPS 0x23852875u
#define QCOW2_EXT_CRYPTO 0x0537be77u
#define QCOW2_EXT_DATA_FILE 0x44415441u

/* Header field offsets, for the few fields written back. */
#define QCOW2_OFF_RT_OFFSET 48u
#define QCOW2_OFF_INCOMPAT 72u
#define QCOW2_OFF_AUTOCLEAR 88u

#define QCOW2_OFLAG_COPIED (1ull << 63)
#define QCOW2_OFLAG_COMPRESSED (1ull << 62)
#define QCOW2_OFLAG_ZERO 1ull
#define QCOW2_OFFSET_MASK 0x00fffffffffffe00ull /* bits 9..55 */
#define QCOW2_L2_RESERVED 0x3f000000000001feull  /* bits 1..8, 56..61 of a standard entry */
#define QCOW2_L1_RESERVED 0x7f000000000001ffull  /* bits 0..8, 56..62 */
#define QCOW2_RT_RESERVED 0x1ffull

#define QCOW2_MAX_L1_BYTES (32u << 20)      /* QEMU's and CH's cap on the L1 table */
#define QCOW2_MAX_RT_BYTES (8u << 20)       /* QEMU's cap on the refcount table */
#define QCOW2_MAX_HOST_OFFSET (1ull << 56)  /* L2 entries cannot point beyond this */
#define QCOW2_MAX_VIRTUAL_SIZE (1ull << 55) /* 32 PiB: keeps every sum below 2^63 */
#define QCOW2_MAX_BACKING_NAME 1023u
#define QCOW2_MAX_CHAIN 10
#define QCOW2_MAX_PENDING_FREE 4096u /* frees queued before a flush is forced */

/* The header as parsed and validated (qcow2_header.c). */
struct qcow2_header {
    uint32_t version;
    uint64_t backing_file_offset;
    uint32_t backing_file_size;
    uint32_t cluster_bits;
    uint64_t size;
    uint32_t crypt_method;
    uint32_t l1_size;
    uint64_t l1_table_offset;
    uint64_t refcount_table_offset;
    uint32_t refcount_table_clusters;
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    uint64_t incompatible;
    uint64_t compatible;
    uint64_t autoclear;
    uint32_t refcount_order;
    uint32_t header_length;
    uint8_t compression_type; /* 0 zlib, 1 zstd */
    char backing_fmt[16];     /* "" when the extension is absent */
    char backing_file[QCOW2_MAX_BACKING_NAME + 1];
};

/*
 * Parse and validate the header and its extensions from buf, which holds the
 * first min(file_size, 2 MiB) bytes of the image.  Pure: no I/O.  0, or -1
 * with err naming the field.
 */
int qcow2_header_parse(const uint8_t *buf, size_t len, uint64_t file_size, struct qcow2_header *h,
                       char *err, size_t errlen);

/* A bounded LRU of cluster-sized metadata tables (L2 tables, refcount blocks). */
struct qcow2_cache_ent {
    uint64_t off; /* host offset; 0 = empty slot */
    uint8_t *data;
    uint64_t lru;
    int dirty;
};
struct qcow2_cache {
    struct qcow2_cache_ent *ent;
    unsigned n;
    uint64_t tick;
};

struct qcow2_backing;

/* Data syscalls on the image file, so tests can prove that runs are merged. */
struct qcow2_stats {
    uint64_t data_reads;  /* preadv/pread calls for guest data */
    uint64_t data_writes; /* pwritev calls for guest data */
};

struct qcow2 {
    pthread_mutex_t lock; /* everything below, except what data_lock says */
    /*
     * Reads of allocated data clusters run outside lock, holding data_lock
     * shared (taken while lock is still held, after the lookup).  A cluster
     * an L2 entry pointed at can only be freed, and so reused, in
     * qcow2_apply_pending, which holds data_lock exclusive: a read never
     * sees a cluster handed to other data or metadata meanwhile.
     */
    pthread_rwlock_t data_lock;
    struct qcow2_stats stats; /* updated atomically */
    int fd;
    int readonly;
    int broken; /* corrupt metadata met at run time: no more writes */
    char path[4096];
    struct qcow2_header h;
    uint32_t cs;           /* cluster size */
    uint32_t cbits;
    uint32_t l2_entries;   /* entries per L2 table */
    uint32_t rb_bits;      /* refcount_bits */
    uint64_t rb_entries;   /* refcounts per block */
    uint64_t rb_max;       /* largest refcount value */
    uint64_t *l1;          /* host-endian copy */
    uint32_t l1_dirty_lo, l1_dirty_hi; /* dirty entry range [lo, hi) */
    uint64_t *rt;          /* refcount table, host-endian */
    uint32_t rt_entries;
    int rt_dirty;          /* entries [rt_lo, rt_hi) changed in memory, not yet on disk */
    uint64_t rt_lo, rt_hi;
    uint64_t end;          /* first cluster-aligned offset past everything in use */
    uint64_t free_hint;    /* clusters below this are known to be in use */
    struct qcow2_cache l2c, rbc;
    uint64_t *pending;     /* host clusters to decref once the L2/L1 change is durable */
    unsigned npending, pending_cap;
    int wrote;             /* first-write header updates done */
    int dirty_bit_set;     /* we set the dirty bit (lazy refcounts) */
    int data_dirty;        /* data written since the last fdatasync */
    uint8_t *cbuf;         /* scratch: one cluster */
    uint8_t *zbuf;         /* scratch: compressed input (2 clusters) */
    uint8_t *dbuf;         /* last decompressed cluster */
    uint64_t dbuf_entry;   /* L2 entry dbuf holds, 0 = none */
    struct qcow2_backing *bk;
};

/* qcow2_cache.c */
int qcow2_cache_init(struct qcow2_cache *c, unsigned n, uint32_t cs);
void qcow2_cache_free(struct qcow2_cache *c);
/* Find off in the cache; NULL if absent. */
struct qcow2_cache_ent *qcow2_cache_find(struct qcow2_cache *c, uint64_t off);
/* A slot for off: the LRU victim (the caller writes it back if dirty) */
struct qcow2_cache_ent *qcow2_cache_victim(struct qcow2_cache *c);
void qcow2_cache_touch(struct qcow2_cache *c, struct qcow2_cache_ent *e);

/* qcow2_image.c: metadata I/O helpers */
int qcow2_pread_meta(struct qcow2 *q, void *buf, size_t len, uint64_t off);
int qcow2_pwrite_meta(struct qcow2 *q, const void *buf, size_t len, uint64_t off);
int qcow2_sync(struct qcow2 *q);
/* Refuse host ranges that hit the header, the L1 table or the refcount table. */
int qcow2_overlaps_meta(const struct qcow2 *q, uint64_t off, uint64_t len);
int qcow2_fail(struct qcow2 *q, const char *what, uint64_t v); /* logs, sets broken, -EIO */
int qcow2_begin_write(struct qcow2 *q);

/* qcow2_refcount.c */
int qcow2_rc_get(struct qcow2 *q, uint64_t cluster, uint64_t *val);
int qcow2_rc_add(struct qcow2 *q, uint64_t cluster, int64_t delta);
/* A fresh cluster with refcount 1 (free one reused, else appended). */
int qcow2_alloc_cluster(struct qcow2 *q, uint64_t *off);
/* Queue a decrement to apply once the metadata that dropped the reference is durable. */
int qcow2_free_later(struct qcow2 *q, uint64_t off);
/* Queue the host clusters a compressed L2 entry covers. */
int qcow2_free_compressed_later(struct qcow2 *q, uint64_t entry);
int qcow2_rc_writeback(struct qcow2 *q); /* dirty blocks, then new table entries, synced */
int qcow2_apply_pending(struct qcow2 *q);
int qcow2_rc_rebuild(struct qcow2 *q, char *err, size_t errlen);
int qcow2_rc_check_meta(struct qcow2 *q, char *err, size_t errlen);
/* 0 consistent (refcounts = references, COPIED entries referenced once),
 * 1 not, -1 tables not walkable (qcow2_refcount.c). */
int qcow2_rc_verify(struct qcow2 *q);

/* qcow2_l2.c */
/*
 * The L2 table for guest cluster gc: *tab points into the cache (valid until
 * the next L2 cache call).  alloc=0: *tab NULL when there is none.  alloc=1:
 * a writable (copied) table, created if needed; *slot gets its cache entry.
 */
int qcow2_l2_get(struct qcow2 *q, uint64_t gc, int alloc, uint64_t **tab,
                 struct qcow2_cache_ent **slot);
int qcow2_l2_writeback(struct qcow2 *q, int *wrote);
int qcow2_l1_writeback(struct qcow2 *q);
/* Validate an L2 entry's standard host offset; 0 or -EIO. */
int qcow2_check_data_off(struct qcow2 *q, uint64_t entry);
/* Split a compressed entry into host offset and byte count. */
int qcow2_compressed_range(struct qcow2 *q, uint64_t entry, uint64_t *off, uint64_t *len);

/* qcow2_compress.c: 0, or -EIO when the data does not inflate to exactly out_len. */
int qcow2_decompress(int type, const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len);

/* qcow2_backing.c */
int qcow2_backing_open(struct qcow2 *q, const struct qcow2_open_opts *o, int depth,
                       const dev_t *devs, const ino_t *inos, char *err, size_t errlen);
/* Read [off, off+len) of the backing file into buf, zeroes past its end. */
int qcow2_backing_read(struct qcow2 *q, uint8_t *buf, size_t len, uint64_t off);
int qcow2_backing_readv(struct qcow2 *q, const struct iovec *iov, int cnt, uint64_t off,
                        size_t len);
void qcow2_backing_close(struct qcow2 *q);

/* qcow2_image.c: open with a chain position (for backing files) */
struct qcow2 *qcow2_open_chain(int fd, const char *path, const struct qcow2_open_opts *o,
                               int depth, const dev_t *devs, const ino_t *inos, char *err,
                               size_t errlen);

/* qcow2_image.c: flush with q->lock held */
int qcow2_flush_locked(struct qcow2 *q);

/* qcow2_io.c: guest requests [offset, offset+len), with q->lock held */
int qcow2_read_range(struct qcow2 *q, const struct iovec *iov, int cnt, uint64_t offset,
                     size_t len);
int qcow2_write_range(struct qcow2 *q, const struct iovec *iov, int cnt, uint64_t offset,
                      size_t len);
/* One guest cluster gc, bytes [in_off, in_off+n) <- request bytes from skip */
int qcow2_write_cluster(struct qcow2 *q, uint64_t gc, uint32_t in_off, uint32_t n,
                        const struct iovec *iov, int cnt, size_t skip);
enum qcow2_unmap { QCOW2_DISCARD, QCOW2_ZERO_UNMAP, QCOW2_ZERO_KEEP };
int qcow2_unmap_cluster(struct qcow2 *q, uint64_t gc, enum qcow2_unmap mode);

/*
 * qcow2_run.c: a run of guest clusters whose data is contiguous in the
 * image file, read or written with one preadv/pwritev.  A write run's L2
 * entries change only after its data is written (upd), so no table in the
 * cache, and none written back meanwhile, points at data not yet there.
 */
#define QCOW2_IOV_MAX 1024 /* Linux's IOV_MAX (UIO_MAXIOV): preadv refuses more */
#define QCOW2_RUN_CLUSTERS 256u
struct qcow2_run_upd {
    uint64_t gc;
    uint64_t old;   /* the entry when planned */
    uint64_t entry; /* the entry to set */
    int fresh;      /* entry's cluster was allocated for this write */
};
struct qcow2_run {
    uint64_t host; /* image offset of the first byte */
    size_t len;
    int n;         /* pieces of v in use */
    unsigned nupd;
    struct iovec v[QCOW2_IOV_MAX];
    struct qcow2_run_upd upd[QCOW2_RUN_CLUSTERS];
};
void qcow2_run_init(struct qcow2_run *run);
/*
 * Append request bytes [skip, skip+n) going to/from image offset host (and
 * for a write, the entry change u, or NULL).  0 if they do not fit: not
 * contiguous, QCOW2_IOV_MAX pieces or QCOW2_RUN_CLUSTERS changes reached.
 */
int qcow2_run_add(struct qcow2_run *run, const struct iovec *iov, int cnt, size_t skip,
                  size_t n, uint64_t host, const struct qcow2_run_upd *u);
/* Read the run (with q->lock held on entry and return; dropped during the I/O), empty it. */
int qcow2_run_read(struct qcow2 *q, struct qcow2_run *run);
/* Write the run and then set its entries; commit 0 (or a failed write): only
 * give back its fresh clusters.  Empties it. */
int qcow2_run_write(struct qcow2 *q, struct qcow2_run *run, int commit);
/* Data syscalls, counted in q->stats; v is consumed.  Reads past the end of
 * the file give zeroes; short transfers are continued. */
int qcow2_data_preadv(struct qcow2 *q, struct iovec *v, int n, uint64_t off);
int qcow2_data_pwritev(struct qcow2 *q, struct iovec *v, int n, uint64_t off);

/* qcow2_iov.c: iovec helpers over a byte window [skip, skip+len) */
void qcow2_iov_to_buf(const struct iovec *iov, int cnt, size_t skip, void *buf, size_t len);
void qcow2_buf_to_iov(const struct iovec *iov, int cnt, size_t skip, const void *buf,
                      size_t len);
void qcow2_iov_zero(const struct iovec *iov, int cnt, size_t skip, size_t len);
/* A sub-vector; returns its count, or -1 if it needs more than max entries. */
int qcow2_iov_slice(const struct iovec *iov, int cnt, size_t skip, size_t len,
                    struct iovec *out, int max);
size_t qcow2_iov_len(const struct iovec *iov, int cnt);

static inline uint64_t qcow2_be64(const uint8_t *p)
{
    return ((uint64_t)p[0] << 56) | ((uint64_t)p[1] << 48) | ((uint64_t)p[2] << 40) |
           ((uint64_t)p[3] << 32) | ((uint64_t)p[4] << 24) | ((uint64_t)p[5] << 16) |
           ((uint64_t)p[6] << 8) | p[7];
}
static inline uint32_t qcow2_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void qcow2_put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}
static inline void qcow2_put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}
/* Table entries in a cache slot are kept big-endian, as on disk. */
static inline uint64_t qcow2_tab_get(const uint64_t *t, uint64_t i)
{
    return qcow2_be64((const uint8_t *)&t[i]);
}
static inline void qcow2_tab_set(uint64_t *t, uint64_t i, uint64_t v)
{
    qcow2_put_be64((uint8_t *)&t[i], v);
}

#endif
