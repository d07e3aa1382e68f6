#include "bd_dev.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int bd_read(const struct bd_dev *d, uint64_t off, void *buf, size_t len)
{
    if (off > d->size || len > d->size - off)
        return -ERANGE;
    if (len == 0)
        return 0;
    return d->read(d->ctx, d->base + off, buf, len);
}

int bd_sub(const struct bd_dev *d, uint64_t off, uint64_t size, struct bd_dev *out)
{
    if (off > d->size || size > d->size - off)
        return -ERANGE;
    *out = *d;
    out->base = d->base + off;
    out->size = size;
    return 0;
}

static int fd_read(void *ctx, uint64_t off, void *buf, size_t len)
{
    int fd = *(int *)ctx;
    uint8_t *p = buf;
    while (len) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO; /* the file shrank under us */
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

static int mem_read(void *ctx, uint64_t off, void *buf, size_t len)
{
    /* ctx points at the buffer pointer; the range check in bd_read bounds
     * off+len by the size given at creation. */
    const uint8_t *data = *(const uint8_t **)ctx;
    memcpy(buf, data + off, len);
    return 0;
}

void bd_dev_fd(struct bd_dev *d, int *fd, uint64_t size)
{
    d->read = fd_read;
    d->ctx = fd;
    d->base = 0;
    d->size = size;
}

void bd_dev_mem(struct bd_dev *d, const uint8_t **data, uint64_t size)
{
    d->read = mem_read;
    d->ctx = (void *)data;
    d->base = 0;
    d->size = size;
}

int bd_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}
