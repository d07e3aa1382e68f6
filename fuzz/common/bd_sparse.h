/*
 * The sparse disk-image input of the boot-disk targets.  A file system is
 * megabytes of mostly zeros: as raw bytes it is slow to run and mutations
 * land in the zeros.  So an image is
 *
 *   u32 le image size (clipped to [BDS_MIN, max]; max is BDS_MAX for a file
 *   system, BDS_DISK_MAX for a whole disk),
 *   then records {u32 le offset, u16 le length, length bytes}
 *
 * patched onto a zeroed image.  A record is clipped at the image's end and
 * at the input's; one starting beyond the image is skipped.  A record whose
 * offset is BDS_NEXT ends the image: a further image follows (size first),
 * so fuzz_bootdisk_find gets several disks from one input.  Offsets are
 * below BDS_DISK_MAX otherwise, so the marker cannot be a real record.
 * fuzz/tools/sparse-seed.py writes this format from raw images.
 */
#ifndef NIMBUS_FUZZ_BD_SPARSE_H
#define NIMBUS_FUZZ_BD_SPARSE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "fuzz_target.h"

#define BDS_MIN (64u << 10)
#define BDS_MAX (8u << 20)
/* Real layouts (tests/bootdisk/make-images.py) are 16-64 MiB disks.  calloc
 * maps that lazily: an input costs the pages its records touch. */
#define BDS_DISK_MAX (64u << 20)
#define BDS_NEXT 0xD15C0002u

static inline uint64_t bds_size(struct fuzz_in *in, uint32_t max)
{
    uint64_t sz = fin_le(in, 4);
    return sz < BDS_MIN ? BDS_MIN : sz > max ? max : sz;
}

/* The next record of this image, clipped to it: 1; 0 at the image's end. */
static inline int bds_record(struct fuzz_in *in, uint64_t sz, uint32_t *off, size_t *len,
                             const uint8_t **p)
{
    while (fin_more(in)) {
        *off = (uint32_t)fin_le(in, 4);
        if (*off == BDS_NEXT)
            return 0;
        *len = fin_take(in, (size_t)fin_le(in, 2), p);
        if (*off >= sz)
            continue;
        if (*len > sz - *off)
            *len = (size_t)(sz - *off);
        return 1;
    }
    return 0;
}

/*
 * The next image of the input, calloc()ed (exactly *size bytes, so ASan
 * catches a read past its end); NULL when the input is used up or memory is
 * short.
 */
static inline uint8_t *bds_image(struct fuzz_in *in, uint32_t max, size_t *size)
{
    if (!fin_more(in))
        return NULL;
    uint64_t sz = bds_size(in, max);
    uint8_t *img = calloc(1, (size_t)sz);
    if (!img)
        return NULL;
    uint32_t off;
    size_t len;
    const uint8_t *p;
    while (bds_record(in, sz, &off, &len, &p))
        memcpy(img + off, p, len);
    *size = (size_t)sz;
    return img;
}

/*
 * The same image served from its records without building it: a 64 MiB
 * disk made and freed per input costs ~6 ms in page faults and ASan shadow,
 * most of an end-to-end run.  Later records win, as when patched.  The
 * records point into the input, which must outlive the disk.
 */
struct bds_rec {
    uint32_t off;
    size_t len;
    const uint8_t *p;
};

struct bds_disk {
    uint64_t size;
    struct bds_rec *rec;
    size_t n;
};

static inline int bds_disk_read(void *ctx, uint64_t off, void *buf, size_t len)
{
    const struct bds_disk *d = ctx;
    if (off > d->size || len > d->size - off)
        fuzz_fail("bd_dev read [%llu,+%zu) past the %llu-byte disk", (unsigned long long)off,
                  len, (unsigned long long)d->size);
    memset(buf, 0, len);
    for (size_t k = 0; k < d->n; k++) {
        const struct bds_rec *r = &d->rec[k];
        uint64_t lo = off > r->off ? off : r->off;
        uint64_t hi = off + len < r->off + r->len ? off + len : r->off + r->len;
        if (lo < hi)
            memcpy((uint8_t *)buf + (lo - off), r->p + (lo - r->off), (size_t)(hi - lo));
    }
    return 0;
}

/* 0 and d filled (free d->rec), or -1 when the input is used up. */
static inline int bds_disk(struct fuzz_in *in, uint32_t max, struct bds_disk *d)
{
    if (!fin_more(in))
        return -1;
    d->size = bds_size(in, max);
    d->n = 0;
    d->rec = malloc((in->n / 6 + 1) * sizeof(*d->rec)); /* a record is >= 6 bytes */
    if (!d->rec)
        return -1;
    struct bds_rec r;
    while (bds_record(in, d->size, &r.off, &r.len, &r.p))
        d->rec[d->n++] = r;
    return 0;
}

#endif
