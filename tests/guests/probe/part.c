/*
 * What firmware reads of a partition table.  The sectors come from the disk
 * image, so every field is checked before it is used: a GPT counts only when
 * its header and entry array CRCs hold and the array lies in what was read.
 */
#include "probe.h"

static u32 le32(const u8 *p)
{
    return p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24;
}

static u64 le64(const u8 *p)
{
    return le32(p) | (u64)le32(p + 4) << 32;
}

#define GPT_MAX_ENTRY 4096u  /* entry size: 128 << n, and no bigger than this */
#define GPT_MAX_ENTRIES 4096u

/* Where the entry array starts in `disk`, or 0 when the GPT does not hold. */
static const u8 *gpt_entries(const u8 *disk, u32 sectors, u32 *num, u32 *esz)
{
    if (sectors < 2)
        return 0;
    const u8 *h = disk + 512;
    if (memcmp(h, "EFI PART", 8) != 0)
        return 0;
    u32 hsize = le32(h + 12);
    if (hsize < 92 || hsize > 512)
        return 0;
    u8 copy[512];
    memcpy(copy, h, hsize);
    memset(copy + 16, 0, 4); /* the CRC is over the header with its own field zeroed */
    if (crc32(copy, hsize) != le32(h + 16) || le64(h + 24) != 1)
        return 0;
    u64 lba = le64(h + 72);
    *num = le32(h + 80);
    *esz = le32(h + 84);
    if (*esz < 128 || *esz > GPT_MAX_ENTRY || (*esz & 7) || *num == 0 || *num > GPT_MAX_ENTRIES)
        return 0;
    /* Bounded above: no overflow in 32 bits. */
    u32 bytes = *num * *esz;
    if (lba < 2 || lba >= sectors || bytes > (sectors - (u32)lba) * 512u)
        return 0;
    const u8 *ent = disk + (u32)lba * 512u;
    return crc32(ent, bytes) == le32(h + 88) ? ent : 0;
}

void part_parse(const u8 *disk, u32 sectors, struct part_info *pi)
{
    memset(pi, 0, sizeof(*pi));
    pi->mbr_sig = sectors >= 1 && disk[510] == 0x55 && disk[511] == 0xaa;
    u32 num = 0, esz = 0;
    const u8 *ent = gpt_entries(disk, sectors, &num, &esz);
    if (ent) {
        pi->gpt = 1;
        for (u32 i = 0; i < num && !pi->has_first; i++) {
            const u8 *e = ent + i * esz;
            u32 used = 0;
            for (u32 b = 0; b < 16; b++)
                used |= e[b]; /* the type GUID: all zero means unused */
            if (used) {
                pi->has_first = 1;
                pi->first_lba = le64(e + 32);
            }
        }
        return;
    }
    if (!pi->mbr_sig)
        return;
    for (u32 i = 0; i < 4 && !pi->has_first; i++) {
        const u8 *e = disk + 446 + 16 * i;
        if (e[4] != 0) { /* partition type 0: unused */
            pi->has_first = 1;
            pi->first_lba = le32(e + 8);
        }
    }
}
