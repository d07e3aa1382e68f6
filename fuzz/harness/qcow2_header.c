/*
 * fuzz_qcow2_header: the qcow2 header and extension parser
 * (plugins/virtio_blk/qcow2_header.c) over the input as the first cluster.
 * The first 8 input bytes give the file size the parser checks offsets
 * against.  Checks: a refusal comes with a NUL-terminated "qcow2: "
 * message; an accepted header has every bound later code relies on.
 */
#include <string.h>

#include "fuzz_target.h"
#include "qcow2_internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    uint64_t fsize = 0;
    for (int i = 0; i < 8; i++)
        fsize |= (uint64_t)data[i] << (8 * i);
    fsize >>= (fsize & 63); /* small sizes as often as huge ones */
    struct qcow2_header h;
    char err[256];
    memset(err, 'x', sizeof(err));
    if (qcow2_header_parse(data + 8, size - 8, fsize, &h, err, sizeof(err)) != 0) {
        if (memchr(err, 0, sizeof(err)) == NULL || strncmp(err, "qcow2: ", 7) != 0)
            fuzz_fail("refusal without a message");
        return 0;
    }
    uint64_t cs = 1ull << h.cluster_bits;
    if (h.cluster_bits < 9 || h.cluster_bits > 21 || h.refcount_order > 6)
        fuzz_fail("cluster_bits %u / refcount_order %u accepted", h.cluster_bits,
                  h.refcount_order);
    if ((uint64_t)h.l1_size * 8 > QCOW2_MAX_L1_BYTES ||
        (h.l1_size && (h.l1_table_offset % cs || h.l1_table_offset + h.l1_size * 8ull > fsize)))
        fuzz_fail("L1 table outside bounds accepted");
    if (h.refcount_table_offset % cs || h.refcount_table_offset == 0 ||
        h.refcount_table_offset + h.refcount_table_clusters * cs > fsize ||
        h.refcount_table_clusters * cs > QCOW2_MAX_RT_BYTES)
        fuzz_fail("refcount table outside bounds accepted");
    if (h.l1_size * 8ull < (h.size + cs * (cs / 8) - 1) / (cs * (cs / 8)))
        fuzz_fail("L1 table too small for size accepted");
    if (strlen(h.backing_file) > QCOW2_MAX_BACKING_NAME || strlen(h.backing_fmt) >= 16)
        fuzz_fail("backing names unbounded");
    if (h.incompatible & (QCOW2_INCOMPAT_DATA_FILE | QCOW2_INCOMPAT_EXTL2 | ~0x1full))
        fuzz_fail("unsupported incompatible feature accepted");
    return 0;
}
