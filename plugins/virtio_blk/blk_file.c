/*
 * The backing store: open it, lock it against other VMMs, size it and learn
 * what O_DIRECT wants.  All errors happen here, before the guest starts,
 * and name the path.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blk.h"

static void close_fds(struct blk_file *f)
{
    if (f->fd_buf >= 0 && f->fd_buf != f->fd)
        close(f->fd_buf);
    if (f->fd >= 0)
        close(f->fd);
    f->fd = f->fd_buf = -1;
}

void blk_file_close(struct blk_file *f)
{
    close_fds(f); /* closing the last fd of the description drops the OFD lock */
}

static int is_pow2(uint64_t v)
{
    return v && !(v & (v - 1));
}

/*
 * Open without following a FIFO into a blocking open, then drop O_NONBLOCK:
 * io_uring turns O_NONBLOCK on a regular file into -EAGAIN completions
 * instead of waiting for the page cache.
 */
static int open_checked(const char *path, int flags, struct stat *st)
{
    int fd = open(path, flags | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    if (fstat(fd, st) < 0 || (!S_ISREG(st->st_mode) && !S_ISBLK(st->st_mode))) {
        close(fd);
        return -EINVAL;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

/*
 * Whole-file OFD lock, as QEMU and Cloud Hypervisor take: a second VMM
 * writing the same image would corrupt it.  Read-only users share.
 */
static int take_lock(struct blk_file *f, const struct blk_opts *o,
                     const nimbus_host_api *host, void *hctx, char *err,
                     uint32_t errlen)
{
    struct flock fl;
    memset(&fl, 0, sizeof(fl));
    fl.l_type = o->readonly ? F_RDLCK : F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(f->fd, F_OFD_SETLK, &fl) == 0)
        return 0;
    if (errno == EAGAIN || errno == EACCES) {
        nimbus_errf(err, errlen,
                    "virtio_blk: '%s' is locked by another process (in use by "
                    "another VM?)", o->path);
        return -EBUSY;
    }
    /* Filesystems without lock support (some network mounts): go on. */
    nimbus_logf(host, hctx, NIMBUS_LOG_WARN,
                "virtio_blk: cannot lock '%s' (%s); not protected against use "
                "by another VM", o->path, strerror(errno));
    return 0;
}

static int size_it(struct blk_file *f, const struct blk_opts *o,
                   const struct stat *st, char *err, uint32_t errlen)
{
    uint64_t bytes = (uint64_t)st->st_size;
    if (f->is_bdev && ioctl(f->fd, BLKGETSIZE64, &bytes) < 0) {
        int e = errno;
        nimbus_errf(err, errlen, "virtio_blk: cannot get the size of '%s': %s",
                    o->path, strerror(e));
        return -e;
    }
    /* A raw image's odd tail is reported by blk_image_open, once the
     * format is known (a qcow2 file's size means nothing to the guest). */
    f->bytes = bytes;
    f->sectors = bytes >> BLK_SECTOR_SHIFT;
    return 0;
}

/* O_DIRECT alignment from statx (Linux 6.1+) or the device's sector size. */
static int dio_alignment(struct blk_file *f, const struct blk_opts *o,
                         char *err, uint32_t errlen)
{
    f->mem_align = f->off_align = BLK_SECTOR;
#ifdef STATX_DIOALIGN
    struct statx sx;
    if (statx(f->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
        (sx.stx_mask & STATX_DIOALIGN)) {
        if (sx.stx_dio_mem_align == 0 || sx.stx_dio_offset_align == 0) {
            nimbus_errf(err, errlen,
                        "virtio_blk: '%s' does not support O_DIRECT (direct=on)",
                        o->path);
            return -EINVAL;
        }
        f->mem_align = sx.stx_dio_mem_align;
        f->off_align = sx.stx_dio_offset_align;
        return 0;
    }
#endif
    int ssz = 0;
    if (f->is_bdev && ioctl(f->fd, BLKSSZGET, &ssz) == 0 && ssz > 0 &&
        is_pow2((uint64_t)ssz))
        f->mem_align = f->off_align = (uint32_t)ssz;
    /* Otherwise a guess: a request the kernel refuses with EINVAL is
     * retried through the page cache (blk_req.c). */
    return 0;
}

static void physical_block(struct blk_file *f, const struct stat *st)
{
    uint64_t pb = (uint64_t)st->st_blksize;
    unsigned int bpb = 0;
    if (f->is_bdev && ioctl(f->fd, BLKPBSZGET, &bpb) == 0)
        pb = bpb;
    if (!is_pow2(pb) || pb < BLK_SECTOR || pb > 65536)
        pb = BLK_SECTOR;
    if (pb < f->off_align && is_pow2(f->off_align) && f->off_align <= 65536)
        pb = f->off_align;
    f->phys_block = (uint32_t)pb;
}

/* The page-cache twin of an O_DIRECT fd: same inode, even if the path was
 * renamed meanwhile. */
static int reopen_buffered(struct blk_file *f, const struct blk_opts *o)
{
    char proc[64];
    struct stat st, st2;
    int flags = o->readonly ? O_RDONLY : O_RDWR;
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f->fd);
    int fd = open_checked(proc, flags, &st);
    if (fd < 0)
        fd = open_checked(o->path, flags, &st);
    if (fd < 0)
        return fd;
    if (fstat(f->fd, &st2) < 0 || st.st_dev != st2.st_dev || st.st_ino != st2.st_ino) {
        close(fd);
        return -ESTALE;
    }
    f->fd_buf = fd;
    return 0;
}

int blk_file_open(struct blk_file *f, const struct blk_opts *o,
                  const nimbus_host_api *host, void *hctx, char *err,
                  uint32_t errlen)
{
    struct stat st;
    int r;

    memset(f, 0, sizeof(*f));
    f->fd = f->fd_buf = -1;
    if (stat(o->path, &st) < 0) {
        r = -errno;
        nimbus_errf(err, errlen, "virtio_blk: cannot open '%s': %s", o->path,
                    strerror(errno));
        return r;
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        nimbus_errf(err, errlen,
                    "virtio_blk: '%s' is not a regular file or block device",
                    o->path);
        return -EINVAL;
    }
    int flags = (o->readonly ? O_RDONLY : O_RDWR) | (o->direct ? O_DIRECT : 0);
    r = open_checked(o->path, flags, &st);
    if (r < 0) {
        if (r == -EINVAL && o->direct)
            nimbus_errf(err, errlen,
                        "virtio_blk: '%s' does not support O_DIRECT (direct=on)",
                        o->path);
        else if (!o->readonly && (r == -EACCES || r == -EPERM || r == -EROFS))
            nimbus_errf(err, errlen,
                        "virtio_blk: '%s' is not writable (%s); use readonly=on "
                        "to attach it read-only", o->path, strerror(-r));
        else if (r == -EINVAL)
            nimbus_errf(err, errlen,
                        "virtio_blk: '%s' is not a regular file or block device",
                        o->path);
        else
            nimbus_errf(err, errlen, "virtio_blk: cannot open '%s': %s", o->path,
                        strerror(-r));
        return r;
    }
    f->fd = f->fd_buf = r;
    f->is_bdev = S_ISBLK(st.st_mode);

    r = take_lock(f, o, host, hctx, err, errlen);
    if (r == 0)
        r = size_it(f, o, &st, err, errlen);
    f->mem_align = f->off_align = 1;
    if (r == 0 && o->direct) {
        r = dio_alignment(f, o, err, errlen);
        if (r == 0) {
            r = reopen_buffered(f, o);
            if (r < 0)
                nimbus_errf(err, errlen, "virtio_blk: cannot reopen '%s': %s",
                            o->path, strerror(-r));
        }
    }
    if (r < 0) {
        close_fds(f);
        return r;
    }
    physical_block(f, &st);

    /* Stable across restarts and unique per host: device and inode. */
    char idbuf[64];
    snprintf(idbuf, sizeof(idbuf), "%llx-%llx", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    size_t n = strlen(idbuf);
    if (n > VIRTIO_BLK_ID_BYTES)
        n = VIRTIO_BLK_ID_BYTES;
    memcpy(f->default_id, idbuf, n);
    f->default_id[n] = '\0';
    return 0;
}
