/*
 * The file systems /boot lives on, read-only: ext2/3/4 through e2fsprogs'
 * libext2fs (bd_ext.c) and FAT12/16/32 (bd_fat.c, the EFI system partition
 * where systemd-boot keeps its entries).  One interface so the boot-loader
 * readers do not care which.
 */
#ifndef NIMBUS_BD_FS_H
#define NIMBUS_BD_FS_H

#include <stddef.h>
#include <stdint.h>

#include "bd_dev.h"
#include "bd_fat.h"

enum bd_fs_kind { BD_FS_NONE = 0, BD_FS_EXT, BD_FS_FAT };

struct bd_fs {
    enum bd_fs_kind kind;
    char uuid[40];  /* as GRUB's search --fs-uuid and the kernel's UUID= spell it */
    char label[40];
    void *ext;      /* ext2_filsys */
    struct bd_fat fat;
    struct bd_dev dev;
};

/* Probe and open; -1 with a message naming what was found otherwise. */
int bd_fs_open(const struct bd_dev *part, struct bd_fs *fs, char *err, size_t errlen);
void bd_fs_close(struct bd_fs *fs);
const char *bd_fs_name(const struct bd_fs *fs);

/*
 * Read the regular file at path (absolute within this file system,
 * symbolic links followed, at most a few levels) into a malloc()ed buffer.
 * Returns 0; -ENOENT when it does not exist; -EFBIG when it is larger than
 * max; another -errno with a message otherwise.
 */
int bd_fs_read(struct bd_fs *fs, const char *path, size_t max, uint8_t **data, size_t *len,
               char *err, size_t errlen);
/* 1 when path names something (file or directory), 0 otherwise. */
int bd_fs_exists(struct bd_fs *fs, const char *path);

/* Call fn for each name in the directory (not "." or ".."), at most max. */
typedef int (*bd_dir_fn)(void *opaque, const char *name, int is_dir);
int bd_fs_list(struct bd_fs *fs, const char *dir, bd_dir_fn fn, void *opaque, unsigned max);

/* ext backend (bd_ext.c) */
int bd_ext_open(const struct bd_dev *part, struct bd_fs *fs, char *err, size_t errlen);
void bd_ext_close(struct bd_fs *fs);
int bd_ext_read(struct bd_fs *fs, const char *path, size_t max, uint8_t **data, size_t *len,
                char *err, size_t errlen);
int bd_ext_exists(struct bd_fs *fs, const char *path);
int bd_ext_list(struct bd_fs *fs, const char *dir, bd_dir_fn fn, void *opaque, unsigned max);

#endif
