/* Which file system a partition holds, and the calls that dispatch on it. */
#include "bd_fs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bd_fs_open(const struct bd_dev *part, struct bd_fs *fs, char *err, size_t errlen)
{
    uint8_t sb[2];
    memset(fs, 0, sizeof(*fs));
    fs->dev = *part;
    /* ext's magic 0xef53 at byte 1080 decides before libext2fs is asked. */
    if (bd_read(part, 1024 + 56, sb, 2) == 0 && sb[0] == 0x53 && sb[1] == 0xef)
        return bd_ext_open(part, fs, err, errlen) < 0 ? -1 : 0;
    char ferr[160];
    if (bd_fat_open(part, &fs->fat, ferr, sizeof(ferr)) == 0) {
        fs->kind = BD_FS_FAT;
        snprintf(fs->uuid, sizeof(fs->uuid), "%04X-%04X", fs->fat.serial >> 16,
                 fs->fat.serial & 0xffff);
        snprintf(fs->label, sizeof(fs->label), "%s", fs->fat.label);
        return 0;
    }
    uint8_t magic[8];
    if (bd_read(part, 0x10000 + 64, magic, 8) == 0 && memcmp(magic, "_BHRfS_M", 8) == 0)
        snprintf(err, errlen, "btrfs (not readable here)");
    else if (bd_read(part, 0, magic, 4) == 0 && memcmp(magic, "XFSB", 4) == 0)
        snprintf(err, errlen, "XFS (not readable here)");
    else if (bd_read(part, 0xff6, magic, 8) == 0 && memcmp(magic, "SWAPSPAC", 8) == 0)
        snprintf(err, errlen, "swap space");
    else if (bd_read(part, 512, magic, 8) == 0 && memcmp(magic, "LABELONE", 8) == 0)
        snprintf(err, errlen, "an LVM physical volume (not readable here)");
    else if (bd_read(part, 0, magic, 6) == 0 && memcmp(magic, "LUKS\xba\xbe", 6) == 0)
        snprintf(err, errlen, "LUKS encryption (not readable here)");
    else
        snprintf(err, errlen, "no file system nimbus can read (ext2/3/4, FAT)");
    return -1;
}

void bd_fs_close(struct bd_fs *fs)
{
    if (fs->kind == BD_FS_EXT)
        bd_ext_close(fs);
    fs->kind = BD_FS_NONE;
}

const char *bd_fs_name(const struct bd_fs *fs)
{
    return fs->kind == BD_FS_EXT ? "ext4" : fs->kind == BD_FS_FAT ? "vfat" : "none";
}

int bd_fs_exists(struct bd_fs *fs, const char *path)
{
    struct bd_fat_ent e;
    if (fs->kind == BD_FS_EXT)
        return bd_ext_exists(fs, path);
    return fs->kind == BD_FS_FAT && bd_fat_lookup(&fs->fat, path, &e) == 0;
}

int bd_fs_read(struct bd_fs *fs, const char *path, size_t max, uint8_t **data, size_t *len,
               char *err, size_t errlen)
{
    if (fs->kind == BD_FS_EXT)
        return bd_ext_read(fs, path, max, data, len, err, errlen);
    struct bd_fat_ent e;
    int r = bd_fat_lookup(&fs->fat, path, &e);
    if (r == -ENOENT) {
        snprintf(err, errlen, "%s: no such file", path);
        return r;
    }
    if (r) {
        snprintf(err, errlen, "%s: cannot be looked up (damaged file system?)", path);
        return -EIO;
    }
    if (e.is_dir) {
        snprintf(err, errlen, "%s: not a regular file", path);
        return -EINVAL;
    }
    if (e.size > max) {
        snprintf(err, errlen, "%s: %u bytes, more than the %zu allowed", path, e.size, max);
        return -EFBIG;
    }
    uint8_t *buf = malloc(e.size ? e.size : 1);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    if (bd_fat_read(&fs->fat, &e, buf) != 0) {
        free(buf);
        snprintf(err, errlen, "%s: its cluster chain is broken", path);
        return -EIO;
    }
    *data = buf;
    *len = e.size;
    return 0;
}

struct fat_list {
    bd_dir_fn fn;
    void *opaque;
};

static int fat_list_cb(void *opaque, const char *name, int is_dir, const struct bd_fat_ent *e)
{
    (void)e;
    struct fat_list *l = opaque;
    return l->fn(l->opaque, name, is_dir);
}

int bd_fs_list(struct bd_fs *fs, const char *dir, bd_dir_fn fn, void *opaque, unsigned max)
{
    if (fs->kind == BD_FS_EXT)
        return bd_ext_list(fs, dir, fn, opaque, max);
    struct bd_fat_ent e;
    if (fs->kind != BD_FS_FAT || bd_fat_lookup(&fs->fat, dir, &e) != 0 || !e.is_dir)
        return -ENOENT;
    struct fat_list l = {fn, opaque};
    return bd_fat_list(&fs->fat, e.cluster ? &e : NULL, fat_list_cb, &l, max);
}
