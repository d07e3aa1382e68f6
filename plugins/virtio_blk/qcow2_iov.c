/* iovec windows: copy, zero and slice a byte range of a guest request. */
#include <string.h>

#include "qcow2_internal.h"

size_t qcow2_iov_len(const struct iovec *iov, int cnt)
{
    size_t n = 0;
    for (int i = 0; i < cnt; i++)
        n += iov[i].iov_len;
    return n;
}

/* Walk [skip, skip+len); op 0: iov->buf, 1: buf->iov, 2: zero iov. */
static void walk(const struct iovec *iov, int cnt, size_t skip, uint8_t *buf, size_t len, int op)
{
    for (int i = 0; i < cnt && len > 0; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        size_t k = iov[i].iov_len - skip;
        if (k > len)
            k = len;
        uint8_t *p = (uint8_t *)iov[i].iov_base + skip;
        if (op == 0)
            memcpy(buf, p, k);
        else if (op == 1)
            memcpy(p, buf, k);
        else
            memset(p, 0, k);
        if (buf != NULL)
            buf += k;
        len -= k;
        skip = 0;
    }
}

void qcow2_iov_to_buf(const struct iovec *iov, int cnt, size_t skip, void *buf, size_t len)
{
    walk(iov, cnt, skip, buf, len, 0);
}

void qcow2_buf_to_iov(const struct iovec *iov, int cnt, size_t skip, const void *buf, size_t len)
{
    walk(iov, cnt, skip, (uint8_t *)(uintptr_t)buf, len, 1);
}

void qcow2_iov_zero(const struct iovec *iov, int cnt, size_t skip, size_t len)
{
    walk(iov, cnt, skip, NULL, len, 2);
}

int qcow2_iov_slice(const struct iovec *iov, int cnt, size_t skip, size_t len, struct iovec *out,
                    int max)
{
    int n = 0;
    for (int i = 0; i < cnt && len > 0; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        size_t k = iov[i].iov_len - skip;
        if (k > len)
            k = len;
        if (n == max)
            return -1;
        out[n].iov_base = (uint8_t *)iov[i].iov_base + skip;
        out[n].iov_len = k;
        n++;
        len -= k;
        skip = 0;
    }
    return n;
}
