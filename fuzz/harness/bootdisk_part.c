/*
 * fuzz_bootdisk_part: bd_part_read() (core/bootdisk/bd_part.c) over the
 * first bytes of a disk.  The input is read twice:
 *   1. as the whole disk (bd_dev_mem over an exact-size copy);
 *   2. as the start of a larger disk whose other bytes are zero: the first
 *      two input bytes (MBR boot code, which the parser ignores) choose its
 *      size, len * (1 + u16 le), so a GPT's backup header and partitions
 *      "beyond the disk" are looked for where the input does not reach.
 * Checks: every partition lies inside the disk and is not empty, partition
 * numbers are unique, partuuid and note are NUL-terminated, nparts is within
 * BD_MAX_PARTS, "no table" is exactly one partition 0 spanning the disk, and
 * a failure comes with a message.
 */
#include <stdlib.h>
#include <string.h>

#include "bootdisk/bd_part.h"
#include "fuzz_input.h"
#include "fuzz_target.h"

struct zext {
    const uint8_t *data;
    size_t len;
};

/* Bytes of the input where it has them, zeros beyond. */
static int zext_read(void *ctx, uint64_t off, void *buf, size_t len)
{
    const struct zext *z = ctx;
    size_t have = off < z->len ? z->len - (size_t)off : 0;
    if (have > len)
        have = len;
    if (have)
        memcpy(buf, z->data + off, have);
    memset((uint8_t *)buf + have, 0, len - have);
    return 0;
}

static struct bd_table table; /* 128 partitions: too big for the stack */

static void check(const struct bd_dev *disk, const char *how)
{
    char err[160];
    memset(err, 0, sizeof(err));
    int r = bd_part_read(disk, &table, err, sizeof(err));
    if (r != 0) {
        if (r != -1 || err[0] == '\0' || !memchr(err, '\0', sizeof(err)))
            fuzz_fail("part(%s): failure %d without a message", how, r);
        return;
    }
    const struct bd_table *t = &table;
    if (t->nparts > BD_MAX_PARTS)
        fuzz_fail("part(%s): %u partitions", how, t->nparts);
    if (!memchr(t->note, '\0', sizeof(t->note)))
        fuzz_fail("part(%s): note not NUL-terminated", how);
    if (t->kind == BD_TABLE_NONE &&
        (t->nparts != 1 || t->parts[0].number != 0 || t->parts[0].start != 0 ||
         t->parts[0].size != disk->size))
        fuzz_fail("part(%s): no table, but %u partitions (first %u at %llu+%llu)", how,
                  t->nparts, t->parts[0].number, (unsigned long long)t->parts[0].start,
                  (unsigned long long)t->parts[0].size);
    for (uint32_t i = 0; i < t->nparts; i++) {
        const struct bd_part *p = &t->parts[i];
        if (p->size == 0 || p->start > disk->size || p->size > disk->size - p->start)
            fuzz_fail("part(%s): partition %u [%llu,+%llu) outside the %llu-byte disk", how,
                      p->number, (unsigned long long)p->start, (unsigned long long)p->size,
                      (unsigned long long)disk->size);
        if (!memchr(p->partuuid, '\0', sizeof(p->partuuid)))
            fuzz_fail("part(%s): partition %u: partuuid not NUL-terminated", how, p->number);
        if (t->kind != BD_TABLE_NONE && p->number == 0)
            fuzz_fail("part(%s): %s partition numbered 0", how, bd_table_name(t->kind));
        for (uint32_t j = 0; j < i; j++)
            if (t->parts[j].number == p->number)
                fuzz_fail("part(%s): %s: two partitions numbered %u (entries %u and %u)", how,
                          bd_table_name(t->kind), p->number, j, i);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Exact-size copy: a read past the input is an ASan report. */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    const uint8_t *ptr = copy;
    struct bd_dev disk;
    bd_dev_mem(&disk, &ptr, size);
    check(&disk, "exact");

    struct fuzz_in in = {data, size};
    uint64_t mult = 1 + fin_le(&in, 2);
    struct zext z = {copy, size};
    struct bd_dev big = {zext_read, &z, 0, (uint64_t)size * mult};
    if (size && mult > 1)
        check(&big, "extended");
    free(copy);
    return 0;
}
