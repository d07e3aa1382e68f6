/* FAT12/16/32, read-only, with long file names: EFI system partitions. */
#ifndef NIMBUS_BD_FAT_H
#define NIMBUS_BD_FAT_H

#include <stddef.h>
#include <stdint.h>

#include "bd_dev.h"

struct bd_fat {
    struct bd_dev dev;
    int type;                 /* 12, 16 or 32 */
    uint32_t sector_size, cluster_size;
    uint64_t fat_off, root_off, data_off; /* bytes */
    uint32_t root_entries;    /* FAT12/16 fixed root directory */
    uint32_t root_cluster;    /* FAT32 */
    uint32_t nclusters;       /* data clusters: valid numbers are 2 .. nclusters+1 */
    uint32_t serial;
    char label[12];
};

struct bd_fat_ent {
    int is_dir;
    uint32_t cluster;
    uint32_t size;
};

int bd_fat_open(const struct bd_dev *part, struct bd_fat *f, char *err, size_t errlen);
/* Look a path up (case-insensitive, as FAT is): 0, -ENOENT, or -EIO. */
int bd_fat_lookup(struct bd_fat *f, const char *path, struct bd_fat_ent *out);
/* Read a file's bytes (at most its size) into buf of ent->size bytes. */
int bd_fat_read(struct bd_fat *f, const struct bd_fat_ent *ent, uint8_t *buf);
/* Each entry of a directory: fn(opaque, name, is_dir); nonzero stops. */
int bd_fat_list(struct bd_fat *f, const struct bd_fat_ent *dir,
                int (*fn)(void *opaque, const char *name, int is_dir, const struct bd_fat_ent *e),
                void *opaque, unsigned max);

#endif
