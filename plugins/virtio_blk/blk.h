/*
 * virtio-blk device plugin: shared definitions.
 *
 * The host's virtio-pci transport owns rings and interrupts; this plugin
 * turns popped chains into file I/O on a raw image or block device.  Work
 * is split by job:
 *   blk_opts.c    option string -> struct blk_opts
 *   blk_file.c    open, OFD lock, capacity, O_DIRECT alignment, default id
 *   blk_config.c  feature bits and the virtio_blk_config bytes
 *   blk_req.c     chain validation and the per-request state machine
 *   blk_queue.c   popping chains, completing them, batching notifications
 *   blk_uring.c   the asynchronous engine (io_uring + eventfd)
 *   blk_sync.c    the synchronous fallback engine
 *   blk_qcow2.c   qcow2 images: format choice and the qcow2 engine
 *   blk_plugin.c  ABI entry points
 *
 * Threading (ABI minor 2, I/O groups): queue i is I/O group i, so the
 * notify and completion calls of different queues run concurrently on the
 * core's group threads.  Everything those calls write lives in struct
 * blk_queue (ring, eventfd, slots, scratch, flags); the few device-wide
 * things they share are read-only while the device runs, or atomic
 * (counters, learned filesystem limits, the lazily made zero buffer).
 */
#ifndef NIMBUS_VIRTIO_BLK_H
#define NIMBUS_VIRTIO_BLK_H

#include <limits.h>
#include <stdint.h>
#include <sys/uio.h>

#include <liburing.h>

#include <nimbus/plugin_util.h>
#include <nimbus/virtio_util.h>

/* ---- virtio 1.2, 5.2 ---- */
#define VIRTIO_BLK_F_SIZE_MAX 1u
#define VIRTIO_BLK_F_SEG_MAX 2u
#define VIRTIO_BLK_F_RO 5u
#define VIRTIO_BLK_F_BLK_SIZE 6u
#define VIRTIO_BLK_F_FLUSH 9u
#define VIRTIO_BLK_F_TOPOLOGY 10u
#define VIRTIO_BLK_F_MQ 12u
#define VIRTIO_BLK_F_DISCARD 13u
#define VIRTIO_BLK_F_WRITE_ZEROES 14u

#define VIRTIO_BLK_T_IN 0u
#define VIRTIO_BLK_T_OUT 1u
#define VIRTIO_BLK_T_FLUSH 4u
#define VIRTIO_BLK_T_GET_ID 8u
#define VIRTIO_BLK_T_DISCARD 11u
#define VIRTIO_BLK_T_WRITE_ZEROES 13u

#define VIRTIO_BLK_S_OK 0u
#define VIRTIO_BLK_S_IOERR 1u
#define VIRTIO_BLK_S_UNSUPP 2u

#define VIRTIO_BLK_ID_BYTES 20u
#define VIRTIO_BLK_HDR_SIZE 16u     /* le32 type, le32 reserved, le64 sector */
#define VIRTIO_BLK_DWZ_SEG_SIZE 16u /* le64 sector, le32 num, le32 flags */
#define VIRTIO_BLK_DWZ_F_UNMAP 1u

/* Offsets in struct virtio_blk_config. */
#define BLK_CFG_CAPACITY 0u
#define BLK_CFG_SEG_MAX 12u
#define BLK_CFG_BLK_SIZE 20u
#define BLK_CFG_PHYS_EXP 24u
#define BLK_CFG_MIN_IO 26u
#define BLK_CFG_OPT_IO 28u
#define BLK_CFG_NUM_QUEUES 34u
#define BLK_CFG_MAX_DISCARD_SECTORS 36u
#define BLK_CFG_MAX_DISCARD_SEG 40u
#define BLK_CFG_DISCARD_ALIGN 44u
#define BLK_CFG_MAX_WZ_SECTORS 48u
#define BLK_CFG_MAX_WZ_SEG 52u
#define BLK_CFG_WZ_MAY_UNMAP 56u
/* Everything up to the secure-erase fields, which we do not offer. */
#define BLK_CONFIG_SIZE 60u

/* ---- limits of this implementation ---- */
#define BLK_SECTOR 512u
#define BLK_SECTOR_SHIFT 9u
#define BLK_MAX_QUEUES 16u
#define BLK_MIN_QUEUE_SIZE 4u
#define BLK_MAX_QUEUE_SIZE 1024u
#define BLK_DEFAULT_QUEUE_SIZE 256u
/* Data segments per request (seg_max); never above queue_size - 2, since a
 * driver must not build a chain longer than the queue. */
#define BLK_SEG_MAX 254u
/* Buffers accepted per chain beyond header, data and status, for drivers
 * that split the header or the status across descriptors. */
#define BLK_CHAIN_SLACK 4u
/* Segments per discard / write-zeroes request, and sectors per segment. */
#define BLK_DWZ_SEGS 8u
#define BLK_DWZ_MAX_SECTORS (1u << 22) /* 2 GiB */
/* Write-zeroes without fallocate support writes this many bytes per step. */
#define BLK_ZERO_CHUNK (256u * 1024u)
/* A transient -EAGAIN/-EINTR is retried this often before IOERR. */
#define BLK_MAX_RETRIES 8u
/* Host timer id BLK_RETRY_TIMER + q: retry queue q's failed io_uring_submit.
 * One id per queue keeps the queues' retries independent of each other. */
#define BLK_RETRY_TIMER 0u
#define BLK_RETRY_NS 1000000ull
_Static_assert(BLK_RETRY_TIMER + BLK_MAX_QUEUES <= 16, "one host timer per queue");
_Static_assert(BLK_MAX_QUEUES <= NIMBUS_MAX_IO_GROUPS, "one I/O group per queue");

/* image_type= */
#define BLK_IMG_PROBE 0 /* qcow2 if the header says so, else raw; no backing file */
#define BLK_IMG_RAW 1
#define BLK_IMG_QCOW2 2

struct blk_opts {
    char path[PATH_MAX];
    int image_type;    /* BLK_IMG_* */
    int backing_files; /* only with image_type=qcow2 */
    int readonly;
    int direct;
    int aio_sync; /* aio=sync: never use io_uring */
    uint32_t num_queues;
    uint32_t queue_size;
    char serial[VIRTIO_BLK_ID_BYTES + 1];
    char id[VIRTIO_BLK_ID_BYTES + 1];
};

/* The opened backing store (blk_file.c). */
struct blk_file {
    int fd;     /* the main fd; O_DIRECT when direct=on; holds the OFD lock */
    int fd_buf; /* page-cache fd for requests O_DIRECT cannot take (== fd
                   without direct=on) */
    int is_bdev;
    uint64_t bytes;       /* file or device size */
    uint64_t sectors;     /* capacity in 512-byte sectors (qcow2: virtual size) */
    uint32_t mem_align;   /* O_DIRECT buffer alignment (1 without direct) */
    uint32_t off_align;   /* O_DIRECT offset/length alignment (1 without) */
    uint32_t phys_block;  /* preferred I/O size, power of two >= 512 */
    char default_id[VIRTIO_BLK_ID_BYTES + 1];
};

/* One discard / write-zeroes range, validated and copied out of the chain. */
struct blk_seg {
    uint64_t off; /* bytes */
    uint64_t len; /* bytes */
    uint32_t unmap;
};

/* One file operation for an engine to run. */
#define BLK_OP_READV 1
#define BLK_OP_WRITEV 2
#define BLK_OP_FSYNC 3
#define BLK_OP_FALLOC 4
struct blk_op {
    int kind;
    int fd;
    uint64_t off;
    uint64_t len;               /* FALLOC */
    int mode;                   /* FALLOC */
    int rw_flags;               /* WRITEV: RWF_DSYNC for write-through */
    const struct iovec *iov;    /* READV / WRITEV */
    uint32_t iovcnt;
};

/* Ways of zeroing a write-zeroes segment, tried in this order. */
#define BLK_Z_PUNCH 0 /* only when the driver allowed unmap */
#define BLK_Z_RANGE 1
#define BLK_Z_WRITE 2

struct blk_queue;

/* A request slot: one per descriptor the queue can hold. */
struct blk_req {
    struct blk_queue *q;
    uint32_t head;
    uint32_t type;
    uint8_t *status_ptr; /* last device-writable byte of the chain */
    uint32_t written;    /* used length to report on success, status included */
    uint32_t data_len;   /* IN/OUT: bytes the request moves (for the counters) */
    uint8_t status;
    uint8_t retries;
    uint8_t tail_sync; /* WRITE_ZEROES, write-through: fsync issued */
    uint8_t zmode; /* BLK_Z_* for the current write-zeroes segment */
    int fd;
    int rw_flags;
    /* IN/OUT: the guest buffers not transferred yet. */
    uint64_t off;
    uint64_t left;
    struct iovec *iov; /* BLK slot's own array (iov_cap entries) */
    uint32_t iov_first;
    uint32_t iovcnt;
    /* FLUSH: 1 once the fsync is done.  WRITE_ZEROES: 1 once zmode is
     * chosen for the current segment. */
    uint32_t stage;
    uint32_t nseg;
    uint32_t seg;
    uint64_t seg_done; /* bytes of segs[seg] zeroed by BLK_Z_WRITE */
    struct blk_seg segs[BLK_DWZ_SEGS];
};

/* A queue's asynchronous engine; touched only by that queue's group calls
 * and by device-wide ops. */
struct blk_uring {
    struct io_uring ring;
    int efd; /* completion eventfd, watched with fd_watch_group(queue) */
    int up;  /* ring initialised */
    int watched; /* efd is watched (between activation and reset) */
    int has_falloc; /* IORING_OP_FALLOCATE (5.6+); else fallocate runs inline */
    int restricted; /* IORING_REGISTER_RESTRICTIONS took: only our opcodes run */
    int draining;   /* reset/destroy/restore: completions are only counted */
    int resetting;  /* a driver reset waits for this queue's last completion */
    uint32_t inflight; /* SQEs prepared and not reaped yet */
    int retry_armed;   /* timer BLK_RETRY_TIMER + queue set after a failed submit */
    int warned_submit;
};

struct blk_dev;

/* Cache-line aligned: neighbouring queues are written by different threads. */
struct blk_queue {
    _Alignas(64) struct blk_dev *dev;
    uint32_t index;
    struct blk_req *reqs;    /* queue_size slots */
    struct iovec *iov_pool;  /* queue_size * iov_cap */
    uint32_t *free;          /* stack of free slot indices */
    uint32_t nfree;
    int stalled;     /* stopped popping for lack of slots */
    int need_notify; /* chains pushed since the last vq_notify */
    nimbus_vq_buf *scratch; /* iov_cap entries for vq_pop */
    struct blk_uring uring;
    /* Requests completed OK (blk_req_finish): written by this queue's calls
     * only, read by the device-wide counters op.  Never reset. */
    uint64_t read_ops, read_bytes, write_ops, write_bytes;
    uint64_t flush_ops, discard_ops, write_zeroes_ops;
};

struct qcow2;

struct blk_dev {
    const nimbus_host_api *host;
    void *hctx;
    struct blk_opts opts;
    struct blk_file file;
    /* A qcow2 image on file.fd: requests go to the qcow2 engine instead of
     * io_uring / blk_sync.  NULL for raw images. */
    struct qcow2 *qcow2;
    uint32_t cluster_size; /* qcow2 only */

    uint64_t features_offered;
    uint64_t features; /* negotiated; 0 until activate */
    int activated;
    int writethrough; /* FLUSH not negotiated: every write must be stable */
    /* Queues a pending driver reset still waits for (virtio_reset_begin);
     * the queue that takes it to 0 calls virtio_reset_done.  Atomic. */
    uint32_t resetting_queues;
    int groups;       /* host has fd_watch_group: one I/O group per queue */
    uint32_t seg_max;
    uint32_t iov_cap; /* buffers per chain we accept */
    uint8_t config[BLK_CONFIG_SIZE];
    char ident[VIRTIO_BLK_ID_BYTES]; /* GET_ID answer, NUL padded */

    struct blk_queue queues[BLK_MAX_QUEUES];

    /* Shared by all groups: only through __atomic builtins. */
    int no_punch;      /* fallocate PUNCH_HOLE unsupported here */
    int no_zero_range; /* fallocate ZERO_RANGE unsupported here */
    void *zero_buf;    /* BLK_ZERO_CHUNK zeroes, allocated on first need */
    uint64_t io_errors;  /* requests completed with IOERR after an I/O error */
    uint64_t bad_chains; /* malformed requests from the guest */
};

/* Shared flags and counters (see "Threading" above). */
#define BLK_LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define BLK_SET(p) __atomic_exchange_n((p), 1, __ATOMIC_RELAXED) /* old value */
#define BLK_COUNT(p) __atomic_fetch_add((p), 1, __ATOMIC_RELAXED) /* old value */

/* blk_opts.c */
int blk_parse_options(struct blk_opts *o, const char *opts, char *err,
                      uint32_t errlen);

/* blk_file.c: 0, or -errno with a message naming the path in err. */
int blk_file_open(struct blk_file *f, const struct blk_opts *o,
                  const nimbus_host_api *host, void *hctx, char *err,
                  uint32_t errlen);
void blk_file_close(struct blk_file *f);

/* blk_config.c */
uint64_t blk_features(const struct blk_dev *d);
void blk_config_build(struct blk_dev *d);

/* blk_req.c */
/*
 * Validate the chain in r->q->scratch and prepare `r`.  Returns 1 when the
 * request needs file I/O (run it with blk_req_next_op), 0 when it is
 * already finished (status set, or no status byte to set).
 */
int blk_req_parse(struct blk_dev *d, struct blk_req *r, uint32_t nbufs);
/* Fill `op` with the next file operation: 1, or 0 when the request is done. */
int blk_req_next_op(struct blk_dev *d, struct blk_req *r, struct blk_op *op);
/* Account the result (bytes or -errno) of the op blk_req_next_op gave. */
void blk_req_op_done(struct blk_dev *d, struct blk_req *r, int64_t res);
/* Fail `r` with IOERR for I/O error `res` (-errno) at byte `off` (logged, counted). */
void blk_req_io_error(struct blk_dev *d, struct blk_req *r, int64_t res, uint64_t off);

/* blk_queue.c */
int blk_queues_alloc(struct blk_dev *d);
void blk_queues_free(struct blk_dev *d);
void blk_queues_reset(struct blk_dev *d);
/* One queue's slots back to power-on (nothing of it in flight). */
void blk_queue_reset(struct blk_queue *q);
/* Write the status byte, vq_push, free the slot, note the notification. */
void blk_req_finish(struct blk_dev *d, struct blk_req *r);
/* Release a slot without touching the guest (reset/destroy drain). */
void blk_req_drop(struct blk_dev *d, struct blk_req *r);
/* Queues the driver may use (1 unless MQ was negotiated). */
uint32_t blk_active_queues(const struct blk_dev *d);
/* Pop (when `kicked`, or stalled with free slots) and start chains of `q`,
 * reap, notify.  Runs on q's group thread or in a device-wide op. */
void blk_run_queue(struct blk_dev *d, struct blk_queue *q, int kicked);

/* blk_uring.c: one ring per queue; all but init/fini/watch/unwatch/drain
 * run in the queue's group calls. */
int blk_uring_init(struct blk_queue *q);
void blk_uring_fini(struct blk_queue *q);
/* Watch the eventfd on the queue's group (device-wide ops only: activation
 * and restore; the core declares the groups after create). */
int blk_uring_watch(struct blk_queue *q);
void blk_uring_unwatch(struct blk_queue *q);
/* Queue the next op of `r`, or finish it when there is none. */
void blk_uring_start(struct blk_queue *q, struct blk_req *r);
/* Hand prepared SQEs to the kernel; arms the queue's retry timer on failure. */
void blk_uring_submit(struct blk_queue *q);
/* Complete whatever the kernel has finished.  Returns CQEs handled. */
uint32_t blk_uring_reap(struct blk_queue *q);
/* Wait for every op in flight to end, without touching the guest. */
void blk_uring_drain(struct blk_queue *q);
/* Without waiting: from now on completions touch nothing, and the kernel is
 * asked to cancel what it has (IORING_ASYNC_CANCEL_ANY, 5.19+).  Device-wide. */
void blk_uring_cancel_all(struct blk_queue *q);
void blk_uring_eventfd_clear(struct blk_queue *q);
/* Stop (1) or resume (0) eventfd signals while we reap the ring ourselves. */
void blk_uring_mute(struct blk_queue *q, int mute);

/* blk_sync.c: run `r` to completion on this thread, then finish it. */
void blk_sync_run(struct blk_dev *d, struct blk_req *r);
/* Run one op synchronously: bytes or -errno. */
int64_t blk_sync_op(const struct blk_op *op);

/* blk_qcow2.c */
/*
 * After blk_file_open: decide the format (image_type, or the probed
 * header), open a qcow2 image into d->qcow2 and set the capacity.  0, or
 * -errno with one line naming the path in err.
 */
int blk_image_open(struct blk_dev *d, char *err, uint32_t errlen);
/* Close the qcow2 image, if any (flushes it); before blk_file_close. */
void blk_image_close(struct blk_dev *d);
/* Run `r` on the qcow2 image on this (the queue's I/O) thread, then finish it. */
void blk_qcow2_run(struct blk_dev *d, struct blk_req *r);

#define BLK_LOG(d, lvl, ...) nimbus_logf((d)->host, (d)->hctx, (lvl), __VA_ARGS__)

#endif /* NIMBUS_VIRTIO_BLK_H */
