/*
 * qcow2 images (versions 2 and 3) for the virtio-blk plugin: the format
 * library.  It knows nothing of virtio: it maps guest byte ranges to the
 * image file, allocating clusters, copying on write from backing files,
 * keeping refcounts exact and metadata bounded in memory.  Every offset,
 * size and count read from the (untrusted) image is checked before use.
 *
 * I/O is synchronous (pread/pwrite) and must run on the plugin's I/O
 * threads, never on a vCPU thread.  Several queues may call at once:
 * metadata changes are serialised by the image's lock; data reads of
 * allocated clusters run under a shared lock that only the flush step
 * which frees clusters takes exclusively.  Runs of clusters contiguous in
 * the file move in one preadv/pwritev.
 */
#ifndef NIMBUS_BLK_QCOW2_H
#define NIMBUS_BLK_QCOW2_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct qcow2;

struct qcow2_open_opts {
    int readonly;          /* no writes; the image is not marked dirty */
    int backing_files;     /* follow the backing file named in the image (off: refuse one) */
    uint64_t cache_bytes;  /* bound on L2 + refcount block caches; 0: a default (4 MiB) */
};

/* 1 if the first bytes of fd carry the qcow2 magic "QFI\xfb", 0 if not, -errno on error. */
int qcow2_probe(int fd);

/*
 * Open the image on fd (borrowed: the caller closes it after qcow2_close).
 * path is for messages and to resolve a relative backing file name.  On a
 * corrupt or unsupported image: NULL, with err naming the field
 * ("qcow2: l1_size 99999999 exceeds ..."), never a crash.
 */
struct qcow2 *qcow2_open(int fd, const char *path, const struct qcow2_open_opts *o, char *err,
                         size_t errlen);
uint64_t qcow2_virtual_size(const struct qcow2 *q);
/* The image's cluster size (bytes), for the guest's optimal I/O size. */
uint32_t qcow2_cluster_size(const struct qcow2 *q);

/* Each returns 0 or -errno (-EIO for corrupt metadata met at run time, -ENOSPC ...). */
int qcow2_preadv(struct qcow2 *q, const struct iovec *iov, int iovcnt, uint64_t offset);
int qcow2_pwritev(struct qcow2 *q, const struct iovec *iov, int iovcnt, uint64_t offset);
/* Free whole clusters in the range (parts of clusters read back as before or as zeroes). */
int qcow2_discard(struct qcow2 *q, uint64_t offset, uint64_t len);
/* The range reads as zeroes afterwards; unmap: whole clusters may be freed. */
int qcow2_write_zeroes(struct qcow2 *q, uint64_t offset, uint64_t len, int unmap);
/* Make every completed write durable: data, then metadata, then fdatasync. */
int qcow2_flush(struct qcow2 *q);
/* Flush, clear the dirty bit, free.  NULL is fine. */
void qcow2_close(struct qcow2 *q);

#endif
