/*
 * MBR and GPT.  Every number comes from the image, so each is checked
 * against the disk's size before it is used; a GPT header must pass its
 * CRC and its entry array its own, as the kernel's efi.c requires.  Sector
 * size is 512: the only one cloud images use.
 */
#include "bd_part.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#define SECTOR 512u
#define GPT_MAX_ENTRIES 1024u
#define EBR_MAX 64u /* logical partitions followed before giving up on a chain */

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }

const char *bd_table_name(enum bd_table_kind k)
{
    return k == BD_TABLE_GPT ? "GPT" : k == BD_TABLE_MBR ? "MBR" : "no partition table";
}

static void guid_str(const uint8_t *g, char *out, size_t n)
{
    snprintf(out, n, "%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x", le32(g), le16(g + 4),
             le16(g + 6), g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]);
}

static int add_part(struct bd_table *t, const struct bd_dev *disk, uint32_t number,
                    uint64_t start_lba, uint64_t nsect)
{
    uint64_t nsectors = disk->size / SECTOR;
    if (t->nparts >= BD_MAX_PARTS || nsect == 0 || start_lba >= nsectors ||
        nsect > nsectors - start_lba)
        return 0; /* outside the disk: the kernel would skip or trim it; we skip */
    struct bd_part *p = &t->parts[t->nparts++];
    memset(p, 0, sizeof(*p));
    p->number = number;
    p->start = start_lba * SECTOR;
    p->size = nsect * SECTOR;
    return 1;
}

static const uint8_t ESP_GUID[16] = {0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11,
                                     0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b};
static const uint8_t BIOS_BOOT_GUID[16] = {0x48, 0x61, 0x68, 0x21, 0x49, 0x64, 0x6f, 0x6e,
                                           0x74, 0x4e, 0x65, 0x65, 0x64, 0x45, 0x46, 0x49};

/* One GPT header at lba; 0 when valid (entries read and checked too). */
static int gpt_try(const struct bd_dev *disk, uint64_t lba, struct bd_table *t, char *why,
                   size_t whylen)
{
    uint8_t h[SECTOR];
    uint64_t nsectors = disk->size / SECTOR;
    if (lba >= nsectors || bd_read(disk, lba * SECTOR, h, SECTOR) != 0)
        return snprintf(why, whylen, "header at LBA %llu cannot be read",
                        (unsigned long long)lba), -1;
    if (memcmp(h, "EFI PART", 8) != 0)
        return snprintf(why, whylen, "no GPT signature at LBA %llu", (unsigned long long)lba), -1;
    uint32_t hsize = le32(h + 12);
    if (hsize < 92 || hsize > SECTOR)
        return snprintf(why, whylen, "header size %u", hsize), -1;
    uint32_t crc = le32(h + 16);
    memset(h + 16, 0, 4);
    if ((uint32_t)crc32(0, h, hsize) != crc)
        return snprintf(why, whylen, "header CRC mismatch at LBA %llu", (unsigned long long)lba), -1;
    if (le64(h + 24) != lba)
        return snprintf(why, whylen, "header at LBA %llu says it is at %llu",
                        (unsigned long long)lba, (unsigned long long)le64(h + 24)), -1;
    uint64_t first = le64(h + 40), last = le64(h + 48), elba = le64(h + 72);
    uint32_t n = le32(h + 80), esize = le32(h + 84), ecrc = le32(h + 88);
    if (first > last || last >= nsectors)
        return snprintf(why, whylen, "usable LBAs %llu-%llu beyond the disk's %llu sectors",
                        (unsigned long long)first, (unsigned long long)last,
                        (unsigned long long)nsectors), -1;
    if (n == 0 || n > GPT_MAX_ENTRIES || esize < 128 || esize > 1024 || (esize & (esize - 1)))
        return snprintf(why, whylen, "%u entries of %u bytes", n, esize), -1;
    uint64_t bytes = (uint64_t)n * esize;
    if (elba >= nsectors || bytes > (nsectors - elba) * SECTOR)
        return snprintf(why, whylen, "entry array at LBA %llu runs past the end of the disk",
                        (unsigned long long)elba), -1;
    static uint8_t ents[GPT_MAX_ENTRIES * 1024];
    if (bd_read(disk, elba * SECTOR, ents, (size_t)bytes) != 0)
        return snprintf(why, whylen, "entry array cannot be read"), -1;
    if ((uint32_t)crc32(0, ents, (uInt)bytes) != ecrc)
        return snprintf(why, whylen, "entry array CRC mismatch"), -1;
    t->nparts = 0;
    static const uint8_t zero[16];
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = ents + (size_t)i * esize;
        if (memcmp(e, zero, 16) == 0)
            continue;
        uint64_t s = le64(e + 32), l = le64(e + 40);
        if (l < s || s < first || l > last)
            continue;
        if (!add_part(t, disk, i + 1, s, l - s + 1))
            continue;
        struct bd_part *p = &t->parts[t->nparts - 1];
        guid_str(e + 16, p->partuuid, sizeof(p->partuuid));
        p->is_esp = memcmp(e, ESP_GUID, 16) == 0;
        p->is_bios_boot = memcmp(e, BIOS_BOOT_GUID, 16) == 0;
    }
    t->kind = BD_TABLE_GPT;
    return 0;
}

static int gpt_read(const struct bd_dev *disk, struct bd_table *t, char *err, size_t errlen)
{
    char why1[96], why2[96];
    if (gpt_try(disk, 1, t, why1, sizeof(why1)) == 0)
        return 0;
    uint64_t nsectors = disk->size / SECTOR;
    if (nsectors > 2 && gpt_try(disk, nsectors - 1, t, why2, sizeof(why2)) == 0) {
        snprintf(t->note, sizeof(t->note), "primary GPT unusable (%s): backup used", why1);
        return 0;
    }
    return bd_errf(err, errlen, "GPT: primary: %s; backup: %s", why1,
                   nsectors > 2 ? why2 : "the disk is too small");
}

static void mbr_partuuid(struct bd_part *p, uint32_t disk_id)
{
    snprintf(p->partuuid, sizeof(p->partuuid), "%08x-%02x", disk_id, p->number);
}

static int is_extended(uint8_t type) { return type == 0x05 || type == 0x0f || type == 0x85; }

/* Logical partitions: a chain of EBRs, each relative to the extended one.
 * Numbers go on from *next across extended partitions, as Linux counts. */
static void mbr_logical(const struct bd_dev *disk, struct bd_table *t, uint64_t ext_lba,
                        uint64_t ext_len, uint32_t disk_id, uint32_t *next)
{
    uint64_t ebr = ext_lba;
    uint32_t number = *next;
    uint8_t s[SECTOR];
    for (uint32_t hops = 0; hops < EBR_MAX; hops++) {
        if (bd_read(disk, ebr * SECTOR, s, SECTOR) != 0 || s[510] != 0x55 || s[511] != 0xaa)
            return;
        const uint8_t *e = s + 446;
        if (e[4] != 0 && le32(e + 12) != 0 &&
            add_part(t, disk, number, ebr + le32(e + 8), le32(e + 12))) {
            struct bd_part *p = &t->parts[t->nparts - 1];
            p->is_esp = e[4] == 0xef;
            mbr_partuuid(p, disk_id);
        }
        *next = ++number;
        const uint8_t *link = s + 446 + 16;
        if (!is_extended(link[4]) || le32(link + 8) == 0 || le32(link + 8) >= ext_len)
            return;
        ebr = ext_lba + le32(link + 8);
    }
}

int bd_part_read(const struct bd_dev *disk, struct bd_table *t, char *err, size_t errlen)
{
    uint8_t s[SECTOR];
    memset(t, 0, sizeof(*t));
    if (disk->size < SECTOR)
        return bd_errf(err, errlen, "the disk is %llu bytes: too small to boot from",
                       (unsigned long long)disk->size);
    if (bd_read(disk, 0, s, SECTOR) != 0)
        return bd_errf(err, errlen, "cannot read sector 0");
    /* A GPT without a valid protective MBR still counts (some tools skip it). */
    uint8_t h[8];
    int gpt_sig = disk->size >= 2 * SECTOR && bd_read(disk, SECTOR, h, 8) == 0 &&
                  memcmp(h, "EFI PART", 8) == 0;
    int mbr_sig = s[510] == 0x55 && s[511] == 0xaa;
    int protective = 0;
    for (int i = 0; mbr_sig && i < 4; i++)
        protective |= s[446 + i * 16 + 4] == 0xee;
    if (gpt_sig || protective)
        return gpt_read(disk, t, err, errlen);
    /* An MBR's four entries, unless this sector is a file system's boot
     * sector (a FAT volume carries 0x55aa too): its entries would be code. */
    int fat_vbr = memcmp(s + 54, "FAT", 3) == 0 || memcmp(s + 82, "FAT32", 5) == 0;
    if (mbr_sig && !fat_vbr) {
        uint32_t disk_id = le32(s + 440);
        int valid = 1;
        for (int i = 0; i < 4; i++) {
            uint8_t boot = s[446 + i * 16];
            valid &= boot == 0 || boot == 0x80;
        }
        if (valid) {
            t->kind = BD_TABLE_MBR;
            uint32_t next_logical = 5;
            for (uint32_t i = 0; i < 4; i++) {
                const uint8_t *e = s + 446 + i * 16;
                uint8_t type = e[4];
                uint64_t lba = le32(e + 8), len = le32(e + 12);
                if (type == 0 || len == 0)
                    continue;
                if (is_extended(type)) {
                    mbr_logical(disk, t, lba, len, disk_id, &next_logical);
                    continue;
                }
                if (add_part(t, disk, i + 1, lba, len)) {
                    struct bd_part *p = &t->parts[t->nparts - 1];
                    p->is_esp = type == 0xef;
                    mbr_partuuid(p, disk_id);
                }
            }
            if (t->nparts)
                return 0;
            memset(t, 0, sizeof(*t));
        }
    }
    /* No table: perhaps a bare file system (mkfs on the whole disk). */
    t->kind = BD_TABLE_NONE;
    t->nparts = 1;
    t->parts[0].number = 0;
    t->parts[0].start = 0;
    t->parts[0].size = disk->size;
    return 0;
}
