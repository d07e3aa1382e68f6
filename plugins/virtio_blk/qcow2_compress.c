/*
 * Compressed clusters: raw deflate (zlib, window 4 KiB as QEMU writes it)
 * or zstd.  The stored length is rounded up to 512-byte sectors, so input
 * may carry trailing bytes: decoding stops once a whole cluster is out.
 */
#include <errno.h>
#include <zlib.h>
#include <zstd.h>

#include "qcow2_internal.h"

static int inflate_raw(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len)
{
    z_stream s = {0};
    if (inflateInit2(&s, -12) != Z_OK)
        return -ENOMEM;
    s.next_in = (Bytef *)(uintptr_t)in;
    s.avail_in = (uInt)in_len;
    s.next_out = out;
    s.avail_out = (uInt)out_len;
    int r = inflate(&s, Z_FINISH);
    int ok = (r == Z_STREAM_END || r == Z_BUF_ERROR) && s.avail_out == 0;
    inflateEnd(&s);
    return ok ? 0 : -EIO;
}

static int unzstd(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len)
{
    ZSTD_DCtx *z = ZSTD_createDCtx();
    if (z == NULL)
        return -ENOMEM;
    ZSTD_inBuffer ib = {in, in_len, 0};
    ZSTD_outBuffer ob = {out, out_len, 0};
    int rc = -EIO;
    while (ob.pos < ob.size) {
        size_t before_in = ib.pos, before_out = ob.pos;
        size_t r = ZSTD_decompressStream(z, &ob, &ib);
        if (ZSTD_isError(r))
            break;
        if (ob.pos == ob.size) {
            rc = 0;
            break;
        }
        /* A frame that ended short of a cluster, or no progress: corrupt. */
        if (r == 0 || (ib.pos == before_in && ob.pos == before_out))
            break;
    }
    ZSTD_freeDCtx(z);
    return rc;
}

int qcow2_decompress(int type, const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len)
{
    return type == 1 ? unzstd(in, in_len, out, out_len) : inflate_raw(in, in_len, out, out_len);
}
