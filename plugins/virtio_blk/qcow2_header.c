/*
 * The qcow2 header and its extensions, parsed from a buffer and checked
 * field by field, so that everything later code trusts (table offsets and
 * sizes, cluster size, feature bits) has been bounded here.  No I/O.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "qcow2_internal.h"

static int bad(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        int n = snprintf(err, errlen, "qcow2: ");
        va_list ap;
        va_start(ap, fmt);
        if (n > 0 && (size_t)n < errlen)
            vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Does [a, a+al) intersect [b, b+bl)?  Lengths are bounded, so no overflow. */
static int overlap(uint64_t a, uint64_t al, uint64_t b, uint64_t bl)
{
    return a < b + bl && b < a + al;
}

static int check_features(struct qcow2_header *h, char *err, size_t errlen)
{
    const uint64_t known = QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT |
                           QCOW2_INCOMPAT_DATA_FILE | QCOW2_INCOMPAT_COMPRESSION |
                           QCOW2_INCOMPAT_EXTL2;
    if (h->incompatible & ~known)
        return bad(err, errlen, "incompatible_features 0x%" PRIx64 " has unknown bits 0x%" PRIx64,
                   h->incompatible, h->incompatible & ~known);
    if (h->incompatible & QCOW2_INCOMPAT_DATA_FILE)
        return bad(err, errlen, "incompatible_features: external data file is not supported");
    if (h->incompatible & QCOW2_INCOMPAT_EXTL2)
        return bad(err, errlen, "incompatible_features: extended L2 entries are not supported");
    if (h->incompatible & QCOW2_INCOMPAT_COMPRESSION) {
        if (h->compression_type == 0)
            return bad(err, errlen, "compression_type is 0 but the compression type bit is set");
    } else if (h->compression_type != 0) {
        return bad(err, errlen, "compression_type %u without the compression type bit",
                   h->compression_type);
    }
    if (h->compression_type > 1)
        return bad(err, errlen, "compression_type %u is unknown (0 zlib, 1 zstd)",
                   h->compression_type);
    return 0;
}

static int parse_extensions(const uint8_t *buf, size_t len, struct qcow2_header *h, char *err,
                            size_t errlen)
{
    uint64_t pos = h->header_length;
    uint64_t end = h->backing_file_offset ? h->backing_file_offset : (uint64_t)1 << h->cluster_bits;
    if (end > len)
        end = len;
    while (pos + 8 <= end) {
        uint32_t type = qcow2_be32(buf + pos);
        uint32_t elen = qcow2_be32(buf + pos + 4);
        if (type == QCOW2_EXT_END)
            return 0;
        pos += 8;
        if (elen > end - pos)
            return bad(err, errlen, "header extension 0x%08x length %u runs past the header area",
                       type, elen);
        if (type == QCOW2_EXT_BACKING_FMT) {
            if (elen >= sizeof(h->backing_fmt))
                return bad(err, errlen, "backing format extension length %u too large", elen);
            memcpy(h->backing_fmt, buf + pos, elen);
            h->backing_fmt[elen] = '\0';
            if (strlen(h->backing_fmt) != elen)
                return bad(err, errlen, "backing format name contains a NUL byte");
        }
        /* Others (feature names, bitmaps, ...) are not needed: bitmaps are
         * invalidated by clearing the autoclear bits on the first write. */
        pos += ((uint64_t)elen + 7) & ~7ull;
    }
    return 0;
}

int qcow2_header_parse(const uint8_t *buf, size_t len, uint64_t file_size, struct qcow2_header *h,
                       char *err, size_t errlen)
{
    memset(h, 0, sizeof(*h));
    if (len < QCOW2_V2_HDR)
        return bad(err, errlen, "file too small for a header (%zu bytes)", len);
    if (qcow2_be32(buf) != QCOW2_MAGIC)
        return bad(err, errlen, "bad magic 0x%08x", qcow2_be32(buf));
    h->version = qcow2_be32(buf + 4);
    h->backing_file_offset = qcow2_be64(buf + 8);
    h->backing_file_size = qcow2_be32(buf + 16);
    h->cluster_bits = qcow2_be32(buf + 20);
    h->size = qcow2_be64(buf + 24);
    h->crypt_method = qcow2_be32(buf + 32);
    h->l1_size = qcow2_be32(buf + 36);
    h->l1_table_offset = qcow2_be64(buf + 40);
    h->refcount_table_offset = qcow2_be64(buf + 48);
    h->refcount_table_clusters = qcow2_be32(buf + 56);
    h->nb_snapshots = qcow2_be32(buf + 60);
    h->snapshots_offset = qcow2_be64(buf + 64);
    h->refcount_order = 4;
    h->header_length = QCOW2_V2_HDR;

    if (h->version != 2 && h->version != 3)
        return bad(err, errlen, "version %u is not supported (2 or 3)", h->version);
    if (h->cluster_bits < 9 || h->cluster_bits > 21)
        return bad(err, errlen, "cluster_bits %u out of range 9..21", h->cluster_bits);
    uint64_t cs = (uint64_t)1 << h->cluster_bits;
    if (h->version == 3) {
        if (len < QCOW2_V3_HDR)
            return bad(err, errlen, "file too small for a version 3 header");
        h->incompatible = qcow2_be64(buf + 72);
        h->compatible = qcow2_be64(buf + 80);
        h->autoclear = qcow2_be64(buf + 88);
        h->refcount_order = qcow2_be32(buf + 96);
        h->header_length = qcow2_be32(buf + 100);
        if (h->header_length < QCOW2_V3_HDR || h->header_length % 8 != 0 ||
            h->header_length > cs || h->header_length > len)
            return bad(err, errlen, "header_length %u invalid (>= 104, multiple of 8, in cluster 0)",
                       h->header_length);
        if (h->header_length > 104)
            h->compression_type = buf[104];
    }
    if (h->refcount_order > 6)
        return bad(err, errlen, "refcount_order %u out of range 0..6", h->refcount_order);
    if (check_features(h, err, errlen) != 0)
        return -1;
    if (h->crypt_method != 0)
        return bad(err, errlen, "crypt_method %u: encrypted images are not supported",
                   h->crypt_method);
    if (h->size > QCOW2_MAX_VIRTUAL_SIZE)
        return bad(err, errlen, "size %" PRIu64 " exceeds the limit of %" PRIu64, h->size,
                   (uint64_t)QCOW2_MAX_VIRTUAL_SIZE);

    /* L1 table: big enough for the virtual size, capped in memory, inside the file. */
    uint64_t l2_cover = cs * (cs / 8);
    uint64_t need_l1 = (h->size + l2_cover - 1) / l2_cover;
    if ((uint64_t)h->l1_size * 8 > QCOW2_MAX_L1_BYTES)
        return bad(err, errlen, "l1_size %u exceeds the %u-byte L1 table limit", h->l1_size,
                   QCOW2_MAX_L1_BYTES);
    if (h->l1_size < need_l1)
        return bad(err, errlen, "l1_size %u too small for size %" PRIu64 " (needs %" PRIu64 ")",
                   h->l1_size, h->size, need_l1);
    uint64_t l1_bytes = (uint64_t)h->l1_size * 8;
    if (h->l1_size > 0) {
        if (h->l1_table_offset % cs != 0 || h->l1_table_offset == 0)
            return bad(err, errlen, "l1_table_offset 0x%" PRIx64 " not cluster aligned or zero",
                       h->l1_table_offset);
        if (h->l1_table_offset >= QCOW2_MAX_HOST_OFFSET ||
            h->l1_table_offset + l1_bytes > file_size)
            return bad(err, errlen, "l1_table_offset 0x%" PRIx64 " + %" PRIu64
                       " bytes lies beyond the end of the file", h->l1_table_offset, l1_bytes);
    }

    /* Refcount table. */
    uint64_t rt_bytes = (uint64_t)h->refcount_table_clusters * cs;
    if (h->refcount_table_clusters == 0)
        return bad(err, errlen, "refcount_table_clusters is 0");
    if (rt_bytes > QCOW2_MAX_RT_BYTES)
        return bad(err, errlen, "refcount_table_clusters %u exceeds the %u-byte limit",
                   h->refcount_table_clusters, QCOW2_MAX_RT_BYTES);
    if (h->refcount_table_offset % cs != 0 || h->refcount_table_offset == 0)
        return bad(err, errlen, "refcount_table_offset 0x%" PRIx64 " not cluster aligned or zero",
                   h->refcount_table_offset);
    if (h->refcount_table_offset >= QCOW2_MAX_HOST_OFFSET ||
        h->refcount_table_offset + rt_bytes > file_size)
        return bad(err, errlen, "refcount_table_offset 0x%" PRIx64 " + %" PRIu64
                   " bytes lies beyond the end of the file", h->refcount_table_offset, rt_bytes);
    if (h->l1_size > 0 &&
        overlap(h->l1_table_offset, l1_bytes, h->refcount_table_offset, rt_bytes))
        return bad(err, errlen, "l1_table_offset 0x%" PRIx64 " overlaps the refcount table at 0x%"
                   PRIx64, h->l1_table_offset, h->refcount_table_offset);
    if (h->nb_snapshots > 0 && (h->snapshots_offset % cs != 0 || h->snapshots_offset == 0 ||
                                h->snapshots_offset >= file_size))
        return bad(err, errlen, "snapshots_offset 0x%" PRIx64 " invalid", h->snapshots_offset);

    /* Backing file name: inside the first cluster, after the header. */
    if (h->backing_file_offset != 0) {
        if (h->backing_file_size > QCOW2_MAX_BACKING_NAME)
            return bad(err, errlen, "backing_file_size %u exceeds %u", h->backing_file_size,
                       QCOW2_MAX_BACKING_NAME);
        if (h->backing_file_offset < h->header_length || h->backing_file_offset > cs ||
            h->backing_file_offset + h->backing_file_size > cs ||
            h->backing_file_offset + h->backing_file_size > len)
            return bad(err, errlen, "backing_file_offset 0x%" PRIx64 " (size %u) outside the "
                       "header cluster", h->backing_file_offset, h->backing_file_size);
        memcpy(h->backing_file, buf + h->backing_file_offset, h->backing_file_size);
        h->backing_file[h->backing_file_size] = '\0';
        if (strlen(h->backing_file) != h->backing_file_size)
            return bad(err, errlen, "backing file name contains a NUL byte");
    }
    return parse_extensions(buf, len, h, err, errlen);
}
