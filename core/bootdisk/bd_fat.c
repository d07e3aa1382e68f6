/*
 * FAT as the EFI specification and Microsoft's FAT32 document define it.
 * Every cluster number is checked against the cluster count and every
 * chain walk is bounded by it, so a FAT whose chains loop or point outside
 * the volume ends in an error, never a hang or a read past the partition.
 */
#include "bd_fat.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int pow2(uint32_t v) { return v && !(v & (v - 1)); }

int bd_fat_open(const struct bd_dev *part, struct bd_fat *f, char *err, size_t errlen)
{
    uint8_t b[512];
    memset(f, 0, sizeof(*f));
    if (bd_read(part, 0, b, sizeof(b)) != 0) {
        snprintf(err, errlen, "FAT: cannot read the boot sector");
        return -EIO;
    }
    uint32_t bps = le16(b + 11), spc = b[13], reserved = le16(b + 14), nfats = b[16];
    uint32_t root_entries = le16(b + 17), total = le16(b + 19), fatsz = le16(b + 22);
    if (total == 0)
        total = le32(b + 32);
    if (fatsz == 0)
        fatsz = le32(b + 36);
    if (b[510] != 0x55 || b[511] != 0xaa || !pow2(bps) || bps < 512 || bps > 4096 ||
        !pow2(spc) || spc > 128 || reserved == 0 || nfats == 0 || nfats > 4 || fatsz == 0 ||
        total == 0) {
        snprintf(err, errlen, "not a FAT file system");
        return -EINVAL;
    }
    uint64_t root_sectors = ((uint64_t)root_entries * 32 + bps - 1) / bps;
    uint64_t meta = reserved + (uint64_t)nfats * fatsz + root_sectors;
    if (meta >= total || (uint64_t)total * bps > part->size) {
        snprintf(err, errlen, "FAT: the volume (%u sectors of %u bytes) does not fit its "
                 "partition", total, bps);
        return -EINVAL;
    }
    uint64_t clusters = (total - meta) / spc;
    f->dev = *part;
    f->sector_size = bps;
    f->cluster_size = bps * spc;
    f->fat_off = (uint64_t)reserved * bps;
    f->root_off = f->fat_off + (uint64_t)nfats * fatsz * bps;
    f->data_off = f->root_off + root_sectors * bps;
    f->root_entries = root_entries;
    f->type = clusters < 4085 ? 12 : clusters < 65525 ? 16 : 32;
    if (clusters > 0x0ffffff5) {
        snprintf(err, errlen, "FAT: %llu clusters is too many", (unsigned long long)clusters);
        return -EINVAL;
    }
    f->nclusters = (uint32_t)clusters;
    /* The FAT must hold an entry for every cluster. */
    uint64_t need = f->type == 12 ? (clusters + 2) * 3 / 2 + 1 : (clusters + 2) * (f->type / 8);
    if (need > (uint64_t)fatsz * bps) {
        snprintf(err, errlen, "FAT: its table is too small for %llu clusters",
                 (unsigned long long)clusters);
        return -EINVAL;
    }
    const uint8_t *ext = f->type == 32 ? b + 64 : b + 36; /* extended BPB */
    if (f->type == 32) {
        f->root_cluster = le32(b + 44);
        if (f->root_cluster < 2 || f->root_cluster >= f->nclusters + 2) {
            snprintf(err, errlen, "FAT32: root cluster %u is outside the volume", f->root_cluster);
            return -EINVAL;
        }
    } else if (root_entries == 0) {
        snprintf(err, errlen, "FAT%d: no root directory", f->type);
        return -EINVAL;
    }
    if (ext[2] == 0x29) {
        f->serial = le32(ext + 3);
        memcpy(f->label, ext + 7, 11);
        f->label[11] = 0;
        for (int i = 10; i >= 0 && f->label[i] == ' '; i--)
            f->label[i] = 0;
    }
    return 0;
}

/* The next cluster, or 0 at the chain's end; -1 for a broken chain. */
static int64_t next_cluster(struct bd_fat *f, uint32_t c)
{
    uint8_t b[4] = {0};
    uint32_t v;
    if (c < 2 || c >= f->nclusters + 2)
        return -1;
    if (f->type == 12) {
        uint64_t off = f->fat_off + c + c / 2;
        if (bd_read(&f->dev, off, b, 2))
            return -1;
        v = le16(b);
        v = (c & 1) ? v >> 4 : v & 0xfff;
        if (v >= 0xff8)
            return 0;
    } else if (f->type == 16) {
        if (bd_read(&f->dev, f->fat_off + (uint64_t)c * 2, b, 2))
            return -1;
        v = le16(b);
        if (v >= 0xfff8)
            return 0;
    } else {
        if (bd_read(&f->dev, f->fat_off + (uint64_t)c * 4, b, 4))
            return -1;
        v = le32(b) & 0x0fffffff;
        if (v >= 0x0ffffff8)
            return 0;
    }
    if (v < 2 || v >= f->nclusters + 2)
        return -1;
    return v;
}

static uint64_t cluster_off(struct bd_fat *f, uint32_t c)
{
    return f->data_off + (uint64_t)(c - 2) * f->cluster_size;
}

int bd_fat_read(struct bd_fat *f, const struct bd_fat_ent *ent, uint8_t *buf)
{
    uint32_t left = ent->size, c = ent->cluster;
    uint64_t hops = 0;
    while (left) {
        if (c < 2 || c >= f->nclusters + 2 || ++hops > f->nclusters)
            return -EIO;
        uint32_t n = left < f->cluster_size ? left : f->cluster_size;
        if (bd_read(&f->dev, cluster_off(f, c), buf, n))
            return -EIO;
        buf += n;
        left -= n;
        if (!left)
            break;
        int64_t nx = next_cluster(f, c);
        if (nx <= 0)
            return -EIO; /* the chain ends before the file does */
        c = (uint32_t)nx;
    }
    return 0;
}

typedef int (*fat_fn)(void *opaque, const char *name, int is_dir, const struct bd_fat_ent *e);

/* Walk a directory's 32-byte entries, assembling long names. */
static int walk_dir(struct bd_fat *f, const struct bd_fat_ent *dir, fat_fn fn, void *opaque,
                    unsigned max)
{
    uint8_t e[32];
    char lfn[256];
    int lfn_ok = 0;
    uint64_t off = 0, limit;
    uint32_t c = 0;
    int fixed_root = dir == NULL && f->type != 32;
    unsigned seen = 0;
    uint64_t hops = 0;

    if (fixed_root) {
        limit = (uint64_t)f->root_entries * 32;
    } else {
        c = dir ? dir->cluster : f->root_cluster;
        if (c < 2 || c >= f->nclusters + 2)
            return -EIO;
        limit = f->cluster_size;
    }
    memset(lfn, 0, sizeof(lfn));
    for (;;) {
        if (off >= limit) {
            if (fixed_root)
                return 0;
            int64_t nx = next_cluster(f, c);
            if (nx == 0)
                return 0;
            if (nx < 0 || ++hops > f->nclusters)
                return -EIO;
            c = (uint32_t)nx;
            off = 0;
        }
        uint64_t at = fixed_root ? f->root_off + off : cluster_off(f, c) + off;
        off += 32;
        if (bd_read(&f->dev, at, e, 32))
            return -EIO;
        if (e[0] == 0)
            return 0;
        if (e[0] == 0xe5) {
            lfn_ok = 0;
            continue;
        }
        if (e[11] == 0x0f) { /* a long-name piece: 13 UCS-2 characters */
            unsigned seq = e[0] & 0x1f;
            if (seq == 0 || seq > 20) {
                lfn_ok = 0;
                continue;
            }
            if (e[0] & 0x40) {
                memset(lfn, 0, sizeof(lfn));
                lfn_ok = 1;
            }
            static const int pos[13] = {1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30};
            for (int i = 0; i < 13; i++) {
                unsigned ch = le16(e + pos[i]);
                unsigned idx = (seq - 1) * 13 + (unsigned)i;
                if (idx >= sizeof(lfn) - 1)
                    break;
                if (ch == 0 || ch == 0xffff) {
                    if (ch == 0)
                        lfn[idx] = 0;
                    continue;
                }
                lfn[idx] = ch < 0x80 ? (char)ch : '?';
            }
            continue;
        }
        if (e[11] & 0x08) { /* volume label */
            lfn_ok = 0;
            continue;
        }
        char name[256];
        if (lfn_ok && lfn[0]) {
            snprintf(name, sizeof(name), "%s", lfn);
        } else {
            int n = 0;
            for (int i = 0; i < 8 && e[i] != ' '; i++)
                name[n++] = (char)e[i];
            if (e[8] != ' ') {
                name[n++] = '.';
                for (int i = 8; i < 11 && e[i] != ' '; i++)
                    name[n++] = (char)e[i];
            }
            name[n] = 0;
        }
        lfn_ok = 0;
        if (!strcmp(name, ".") || !strcmp(name, ".."))
            continue;
        if (++seen > max)
            return 0;
        struct bd_fat_ent ent = {
            .is_dir = !!(e[11] & 0x10),
            .cluster = le16(e + 26) | (f->type == 32 ? (uint32_t)le16(e + 20) << 16 : 0),
            .size = le32(e + 28),
        };
        int r = fn(opaque, name, ent.is_dir, &ent);
        if (r)
            return r > 0 ? 0 : r;
    }
}

int bd_fat_list(struct bd_fat *f, const struct bd_fat_ent *dir, fat_fn fn, void *opaque,
                unsigned max)
{
    return walk_dir(f, dir, fn, opaque, max);
}

struct find {
    const char *want;
    size_t len;
    struct bd_fat_ent ent;
    int found;
};

static int find_cb(void *opaque, const char *name, int is_dir, const struct bd_fat_ent *e)
{
    (void)is_dir;
    struct find *fd = opaque;
    if (strlen(name) == fd->len && strncasecmp(name, fd->want, fd->len) == 0) {
        fd->ent = *e;
        fd->found = 1;
        return 1;
    }
    return 0;
}

int bd_fat_lookup(struct bd_fat *f, const char *path, struct bd_fat_ent *out)
{
    struct bd_fat_ent cur = {.is_dir = 1, .cluster = 0, .size = 0};
    int at_root = 1;
    if (!path || path[0] != '/')
        return -EINVAL;
    const char *p = path;
    unsigned depth = 0;
    for (;;) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (!cur.is_dir || ++depth > 32 || len > 255)
            return -ENOENT;
        struct find fd = {.want = p, .len = len};
        int r = walk_dir(f, at_root ? NULL : &cur, find_cb, &fd, 65536);
        if (r < 0)
            return -EIO;
        if (!fd.found)
            return -ENOENT;
        cur = fd.ent;
        at_root = 0;
        /* ".." entries are skipped, so a cluster 0 here means a broken entry. */
        if (cur.is_dir && cur.cluster == 0)
            return -EIO;
        p += len;
    }
    if (at_root) {
        out->is_dir = 1;
        out->cluster = 0;
        out->size = 0;
        return 0;
    }
    *out = cur;
    return 0;
}
