/*
 * fuzz_qcow2_ops: a fuzzed qcow2 image in a memfd, opened read-write (no
 * backing files), then an op stream of read / write / discard /
 * write-zeroes / flush at fuzzed offsets, then close and a read-only reopen.
 * Input: 4-byte little-endian image length, the image, then ops of
 * [kind][offset 4][length 3]; bits 0-17 of the length are the length - 1,
 * bits 18-20 split reads and writes into 1, 2, 3, 4, 8, 16, 65 or 128
 * iovecs, as a guest's scatter-gather list arrives from virtio-blk.
 * Checks: no crash or leak (sanitizers); data
 * just written reads back, on images whose refcounts match their tables
 * (qcow2_rc_verify: in a corrupt one two guest clusters may share a host
 * cluster, and a write then shows through elsewhere, as in QEMU); the file
 * never grows past a bound derived from what was written (no runaway
 * allocation, no write far outside).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_input.h"
#include "fuzz_target.h"
#include "qcow2.h"
#include "qcow2_internal.h"

#define MAX_IO (256u << 10) /* 2^18: the length field's bits 0-17 */
#define MAX_OPS 64
#define MAX_IOV 128

static uint8_t wbuf[MAX_IO], rbuf[MAX_IO];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

/* buf[0, len) as n iovecs of near-equal, non-zero lengths. */
static int split(struct iovec *v, uint8_t *buf, uint64_t len, unsigned n)
{
    if (n > len)
        n = (unsigned)len;
    for (unsigned i = 0; i < n; i++) {
        uint64_t a = len * i / n, b = len * (i + 1) / n;
        v[i] = (struct iovec){buf + a, b - a};
    }
    return (int)n;
}

static uint64_t file_size(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    size_t ilen = (size_t)fin_le(&in, 4);
    const uint8_t *img;
    ilen = fin_take(&in, ilen, &img);
    int fd = memfd_create("qcow2", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    if (ilen && write(fd, img, ilen) != (ssize_t)ilen) {
        close(fd);
        return 0;
    }
    struct qcow2_open_opts o = {.readonly = 0, .backing_files = 0, .cache_bytes = 64u << 10};
    char err[256];
    struct qcow2 *q = qcow2_open(fd, "fuzz.qcow2", &o, err, sizeof(err));
    if (q == NULL) {
        if (memchr(err, 0, sizeof(err)) == NULL)
            fuzz_fail("refusal without a message");
        close(fd);
        return 0;
    }
    uint64_t vsize = qcow2_virtual_size(q), cs = qcow2_cluster_size(q);
    int consistent = qcow2_rc_verify(q) == 0;
    /* Allowance: per op a few clusters of metadata plus the data, and room
     * for one refcount table replacement (at most 8 MiB plus its blocks). */
    uint64_t limit = file_size(fd) + (16u << 20) + 2 * cs;
    for (int n = 0; n < MAX_OPS && fin_more(&in) && vsize > 0; n++) {
        uint8_t kind = fin_u8(&in);
        uint64_t off = fin_le(&in, 4);
        uint64_t lraw = fin_le(&in, 3);
        uint64_t len = lraw % MAX_IO + 1;
        static const unsigned iovs[8] = {1, 2, 3, 4, 8, 16, 65, MAX_IOV};
        unsigned niov = iovs[lraw >> 18 & 7];
        if (kind & 0x80)
            off = off * 512 + (kind & 0x40 ? vsize / 2 : 0);
        off %= vsize;
        if (len > vsize - off)
            len = vsize - off;
        struct iovec v = {wbuf, len}, vs[MAX_IOV];
        int r = 0;
        switch (kind % 6) {
        case 0:
        case 1:
            for (uint64_t i = 0; i < len; i++)
                wbuf[i] = (uint8_t)(i * 7 + n);
            r = qcow2_pwritev(q, vs, split(vs, wbuf, len, niov), off);
            if (r == 0 && consistent) {
                struct iovec rv = {rbuf, len};
                if (qcow2_preadv(q, &rv, 1, off) == 0 && memcmp(rbuf, wbuf, len) != 0)
                    fuzz_fail("write at %llu len %llu does not read back",
                              (unsigned long long)off, (unsigned long long)len);
            }
            limit += 3 * (len + 2 * cs);
            break;
        case 2:
            r = qcow2_preadv(q, vs, split(vs, rbuf, len, niov), off);
            break;
        case 3:
            r = qcow2_discard(q, off, len);
            limit += 4 * cs;
            break;
        case 4:
            r = qcow2_write_zeroes(q, off, len, kind & 1);
            if (r == 0 && consistent) {
                v.iov_base = rbuf;
                memset(wbuf, 0, len);
                if (qcow2_preadv(q, &v, 1, off) == 0 && memcmp(rbuf, wbuf, len) != 0)
                    fuzz_fail("write_zeroes at %llu does not read back zeroes",
                              (unsigned long long)off);
            }
            limit += 3 * (len + 2 * cs);
            break;
        default:
            r = qcow2_flush(q);
            break;
        }
        (void)r;
        if (file_size(fd) > limit)
            fuzz_fail("file grew to %llu (limit %llu)", (unsigned long long)file_size(fd),
                      (unsigned long long)limit);
    }
    qcow2_close(q);
    o.readonly = 1;
    q = qcow2_open(fd, "fuzz.qcow2", &o, err, sizeof(err));
    if (q != NULL) {
        struct iovec v = {rbuf, vsize < MAX_IO ? vsize : MAX_IO};
        qcow2_preadv(q, &v, 1, 0);
        qcow2_close(q);
    }
    close(fd);
    return 0;
}
