/*
 * The probe guest: a freestanding 32-bit PVH payload that reports, on COM1,
 * what firmware would see (start_info's command line and first module, the
 * first virtio disk's identity and partition table), then powers off.  It
 * reuses the hostile guest's libc, PCI and virtio driver (../hostile).
 */
#ifndef PROBE_GUEST_H
#define PROBE_GUEST_H

#include "../hostile/guest.h"

/* ---- crc32.c: zlib's CRC-32 (reflected 0xedb88320) ------------------------------------ */
void crc32_init(void);
u32 crc32(const u8 *p, u32 n);

/* ---- blk.c -------------------------------------------------------------------------------- */
#define BLK_T_IN 0u
#define BLK_T_GET_ID 8u
#define BLK_ID_BYTES 20u
/* One request with one device-writable data buffer: the status byte (0 ok), or
 * -1 when the device never answered, -2 when it answered with another chain. */
int blk_request(struct vdev *d, u32 type, u64 sector, u32 buf, u32 len);

/* ---- part.c ------------------------------------------------------------------------------- */
struct part_info {
    int mbr_sig;     /* 0x55 0xaa at byte 510 */
    int gpt;         /* "EFI PART" at LBA 1, header and entry CRCs hold */
    int has_first;   /* a used partition entry was found */
    u64 first_lba;   /* its start: GPT's first used entry, else the MBR's */
};
/* `disk` holds the first `sectors` sectors (512 bytes each, at most 64). */
void part_parse(const u8 *disk, u32 sectors, struct part_info *pi);

/* ---- main.c --------------------------------------------------------------------------------- */
void put_hex32(u32 v);

#endif
