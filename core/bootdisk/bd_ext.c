/*
 * ext2/3/4 through libext2fs, over a bd_dev by way of a small io_manager:
 * the library never opens a file or device itself.  Opened read-only
 * without EXT2_FLAG_IGNORE_CSUM_ERRORS, so a metadata block failing its
 * checksum is an error rather than something to trust.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ext2fs/ext2fs.h>

#include "bd_fs.h"

#define MAX_OPEN 8 /* file systems open at once (a disk's partitions) */
#define PATH_MAX_BD 1024

static struct bd_dev open_devs[MAX_OPEN];
static int open_used[MAX_OPEN];

struct chan_priv {
    int slot;
};

static errcode_t bd_io_open(const char *name, int flags, io_channel *channel);

static errcode_t bd_io_close(io_channel ch)
{
    if (--ch->refcount > 0)
        return 0;
    struct chan_priv *p = ch->private_data;
    if (p && p->slot >= 0 && p->slot < MAX_OPEN)
        open_used[p->slot] = 0;
    free(p);
    free(ch->name);
    free(ch);
    return 0;
}

static errcode_t bd_io_set_blksize(io_channel ch, int blksize)
{
    if (blksize <= 0 || blksize > 65536)
        return EXT2_ET_INVALID_ARGUMENT;
    ch->block_size = blksize;
    return 0;
}

static errcode_t bd_io_read64(io_channel ch, unsigned long long block, int count, void *data)
{
    struct chan_priv *p = ch->private_data;
    /* A negative count means bytes rather than blocks (ext2_io.h). */
    uint64_t bytes = count < 0 ? (uint64_t)(-(int64_t)count) : (uint64_t)count * ch->block_size;
    if (block > UINT64_MAX / (uint64_t)ch->block_size)
        return EXT2_ET_SHORT_READ;
    int r = bd_read(&open_devs[p->slot], block * (uint64_t)ch->block_size, data, bytes);
    if (r == -ERANGE)
        return EXT2_ET_SHORT_READ;
    return r ? EXT2_ET_SHORT_READ : 0;
}

static errcode_t bd_io_read(io_channel ch, unsigned long block, int count, void *data)
{
    return bd_io_read64(ch, block, count, data);
}

static errcode_t bd_io_write(io_channel ch, unsigned long block, int count, const void *data)
{
    (void)ch, (void)block, (void)count, (void)data;
    return EXT2_ET_RO_FILSYS;
}

static errcode_t bd_io_write64(io_channel ch, unsigned long long block, int count,
                               const void *data)
{
    (void)ch, (void)block, (void)count, (void)data;
    return EXT2_ET_RO_FILSYS;
}

static errcode_t bd_io_flush(io_channel ch)
{
    (void)ch;
    return 0;
}

static errcode_t bd_io_set_option(io_channel ch, const char *opt, const char *arg)
{
    (void)ch, (void)opt, (void)arg;
    return EXT2_ET_INVALID_ARGUMENT;
}

static struct struct_io_manager bd_io_manager = {
    .magic = EXT2_ET_MAGIC_IO_MANAGER,
    .name = "nimbus bootdisk",
    .open = bd_io_open,
    .close = bd_io_close,
    .set_blksize = bd_io_set_blksize,
    .read_blk = bd_io_read,
    .write_blk = bd_io_write,
    .flush = bd_io_flush,
    .set_option = bd_io_set_option,
    .read_blk64 = bd_io_read64,
    .write_blk64 = bd_io_write64,
};

/* The "name" libext2fs passes back is "bd:<slot>". */
static errcode_t bd_io_open(const char *name, int flags, io_channel *channel)
{
    int slot;
    if (flags & IO_FLAG_RW)
        return EXT2_ET_RO_FILSYS;
    if (!name || sscanf(name, "bd:%d", &slot) != 1 || slot < 0 || slot >= MAX_OPEN ||
        !open_used[slot])
        return EXT2_ET_BAD_DEVICE_NAME;
    io_channel ch = calloc(1, sizeof(*ch));
    struct chan_priv *p = calloc(1, sizeof(*p));
    char *n = strdup(name);
    if (!ch || !p || !n) {
        free(ch), free(p), free(n);
        return EXT2_ET_NO_MEMORY;
    }
    p->slot = slot;
    ch->magic = EXT2_ET_MAGIC_IO_CHANNEL;
    ch->manager = &bd_io_manager;
    ch->name = n;
    ch->block_size = 1024;
    ch->refcount = 1;
    ch->private_data = p;
    *channel = ch;
    return 0;
}

static void uuid_str(const uint8_t *u, char *out, size_t n)
{
    snprintf(out, n,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
             u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
             u[15]);
}

int bd_ext_open(const struct bd_dev *part, struct bd_fs *fs, char *err, size_t errlen)
{
    int slot = -1;
    for (int i = 0; i < MAX_OPEN; i++)
        if (!open_used[i]) {
            slot = i;
            break;
        }
    if (slot < 0) {
        snprintf(err, errlen, "too many ext file systems open");
        return -EMFILE;
    }
    open_used[slot] = 1;
    open_devs[slot] = *part;
    char name[16];
    snprintf(name, sizeof(name), "bd:%d", slot);
    ext2_filsys efs = NULL;
    errcode_t e = ext2fs_open2(name, NULL, EXT2_FLAG_64BITS, 0, 0, &bd_io_manager, &efs);
    if (e) {
        open_used[slot] = 0; /* the channel, if any, was closed by the library */
        snprintf(err, errlen, "ext2/3/4: %s", error_message(e));
        return -EINVAL;
    }
    fs->kind = BD_FS_EXT;
    fs->ext = efs;
    uuid_str(efs->super->s_uuid, fs->uuid, sizeof(fs->uuid));
    size_t ll = sizeof(efs->super->s_volume_name);
    if (ll >= sizeof(fs->label))
        ll = sizeof(fs->label) - 1;
    memcpy(fs->label, efs->super->s_volume_name, ll);
    fs->label[ll] = 0;
    return 0;
}

void bd_ext_close(struct bd_fs *fs)
{
    ext2_filsys efs = fs->ext;
    if (efs)
        ext2fs_close_free(&efs);
    fs->ext = NULL;
}

static int lookup(struct bd_fs *fs, const char *path, ext2_ino_t *ino, struct ext2_inode *in)
{
    ext2_filsys efs = fs->ext;
    if (!path || path[0] != '/' || strlen(path) >= PATH_MAX_BD)
        return -EINVAL;
    /* namei_follow resolves every component and a final symlink, with the
     * library's own limit on nested links (a loop ends in an error). */
    errcode_t e = ext2fs_namei_follow(efs, EXT2_ROOT_INO, EXT2_ROOT_INO, path + 1, ino);
    if (e == EXT2_ET_FILE_NOT_FOUND || e == EXT2_ET_NO_DIRECTORY)
        return -ENOENT;
    if (e == EXT2_ET_SYMLINK_LOOP)
        return -ELOOP;
    if (e)
        return -EIO;
    if (*ino == 0 || *ino > efs->super->s_inodes_count)
        return -EIO;
    if (ext2fs_read_inode(efs, *ino, in))
        return -EIO;
    return 0;
}

int bd_ext_exists(struct bd_fs *fs, const char *path)
{
    ext2_ino_t ino;
    struct ext2_inode in;
    return lookup(fs, path, &ino, &in) == 0;
}

int bd_ext_read(struct bd_fs *fs, const char *path, size_t max, uint8_t **data, size_t *len,
                char *err, size_t errlen)
{
    ext2_filsys efs = fs->ext;
    ext2_ino_t ino;
    struct ext2_inode in;
    int r = lookup(fs, path, &ino, &in);
    if (r == -ELOOP) {
        snprintf(err, errlen, "%s: too many levels of symbolic links", path);
        return r;
    }
    if (r == -ENOENT) {
        snprintf(err, errlen, "%s: no such file", path);
        return r;
    }
    if (r) {
        snprintf(err, errlen, "%s: cannot be looked up (damaged file system?)", path);
        return r;
    }
    if (!LINUX_S_ISREG(in.i_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        return -EINVAL;
    }
    uint64_t size = EXT2_I_SIZE(&in);
    if (size > max) {
        snprintf(err, errlen, "%s: %llu bytes, more than the %zu allowed", path,
                 (unsigned long long)size, max);
        return -EFBIG;
    }
    ext2_file_t f;
    if (ext2fs_file_open(efs, ino, 0, &f)) {
        snprintf(err, errlen, "%s: cannot be opened", path);
        return -EIO;
    }
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) {
        ext2fs_file_close(f);
        snprintf(err, errlen, "%s: out of memory for %llu bytes", path, (unsigned long long)size);
        return -ENOMEM;
    }
    uint64_t got = 0;
    while (got < size) {
        unsigned int chunk = size - got > (1u << 20) ? (1u << 20) : (unsigned int)(size - got);
        unsigned int n = 0;
        errcode_t e = ext2fs_file_read(f, buf + got, chunk, &n);
        if (e || n == 0) {
            free(buf);
            ext2fs_file_close(f);
            snprintf(err, errlen, "%s: read error at byte %llu (%s)", path,
                     (unsigned long long)got, e ? error_message(e) : "short file");
            return -EIO;
        }
        got += n;
    }
    ext2fs_file_close(f);
    *data = buf;
    *len = (size_t)size;
    return 0;
}

struct list_ctx {
    bd_dir_fn fn;
    void *opaque;
    unsigned left;
    int stop;
};

static int list_cb(ext2_ino_t dir, int entry, struct ext2_dir_entry *d, int offset,
                   int blocksize, char *buf, void *priv)
{
    (void)dir, (void)entry, (void)offset, (void)blocksize, (void)buf;
    struct list_ctx *c = priv;
    char name[256];
    int nl = ext2fs_dirent_name_len(d);
    if (nl <= 0 || nl > 255 || d->inode == 0)
        return 0;
    memcpy(name, d->name, (size_t)nl);
    name[nl] = 0;
    if (!strcmp(name, ".") || !strcmp(name, ".."))
        return 0;
    if (c->left == 0) {
        c->stop = 1;
        return DIRENT_ABORT;
    }
    c->left--;
    int is_dir = ext2fs_dirent_file_type(d) == EXT2_FT_DIR;
    if (c->fn(c->opaque, name, is_dir)) {
        c->stop = 1;
        return DIRENT_ABORT;
    }
    return 0;
}

int bd_ext_list(struct bd_fs *fs, const char *dir, bd_dir_fn fn, void *opaque, unsigned max)
{
    ext2_ino_t ino;
    struct ext2_inode in;
    if (lookup(fs, dir, &ino, &in) != 0 || !LINUX_S_ISDIR(in.i_mode))
        return -ENOENT;
    struct list_ctx c = {fn, opaque, max, 0};
    errcode_t e = ext2fs_dir_iterate2(fs->ext, ino, 0, NULL, list_cb, &c);
    return e ? -EIO : 0;
}
