/*
 * Backing files: raw or qcow2, opened read-only, named relative to the
 * image's directory.  The name comes from an untrusted image, so it is only
 * followed when the caller asked (backing_files), the chain is at most
 * QCOW2_MAX_CHAIN deep, and a file met twice (same dev/ino) is a loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qcow2_internal.h"

struct qcow2_backing {
    int fd;
    struct qcow2 *img; /* NULL: raw */
    uint64_t size;
    char path[4096];
};

static int resolve(const char *image, const char *name, char *out, size_t outlen)
{
    const char *slash = image != NULL ? strrchr(image, '/') : NULL;
    int n;
    if (name[0] == '/' || slash == NULL)
        n = snprintf(out, outlen, "%s", name);
    else
        n = snprintf(out, outlen, "%.*s/%s", (int)(slash - image), image, name);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

int qcow2_backing_open(struct qcow2 *q, const struct qcow2_open_opts *o, int depth,
                       const dev_t *devs, const ino_t *inos, char *err, size_t errlen)
{
    const char *name = q->h.backing_file;
    if (!o->backing_files) {
        snprintf(err, errlen, "qcow2: %s has a backing file '%s' but backing_files is off", q->path,
                 name);
        return -1;
    }
    if (depth + 1 >= QCOW2_MAX_CHAIN) {
        snprintf(err, errlen, "qcow2: backing chain deeper than %d at '%s'", QCOW2_MAX_CHAIN, name);
        return -1;
    }
    struct qcow2_backing *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        snprintf(err, errlen, "qcow2: out of memory");
        return -1;
    }
    b->fd = -1;
    q->bk = b;
    if (resolve(q->path, name, b->path, sizeof(b->path)) < 0) {
        snprintf(err, errlen, "qcow2: backing file path too long");
        return -1;
    }
    b->fd = open(b->path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (b->fd < 0 || fstat(b->fd, &st) < 0) {
        snprintf(err, errlen, "qcow2: backing file '%s': %s", b->path, strerror(errno));
        return -1;
    }
    dev_t cdev[QCOW2_MAX_CHAIN + 1];
    ino_t cino[QCOW2_MAX_CHAIN + 1];
    for (int i = 0; i <= depth; i++) {
        if (devs[i] == st.st_dev && inos[i] == st.st_ino) {
            snprintf(err, errlen, "qcow2: backing file '%s' loops back into the chain", b->path);
            return -1;
        }
        cdev[i] = devs[i];
        cino[i] = inos[i];
    }
    cdev[depth + 1] = st.st_dev;
    cino[depth + 1] = st.st_ino;

    int isq;
    if (strcmp(q->h.backing_fmt, "qcow2") == 0) {
        isq = 1;
    } else if (strcmp(q->h.backing_fmt, "raw") == 0) {
        isq = 0;
    } else if (q->h.backing_fmt[0] != '\0') {
        snprintf(err, errlen, "qcow2: backing format '%s' of '%s' is not supported (raw, qcow2)",
                 q->h.backing_fmt, b->path);
        return -1;
    } else {
        isq = qcow2_probe(b->fd);
        if (isq < 0) {
            snprintf(err, errlen, "qcow2: backing file '%s': %s", b->path, strerror(-isq));
            return -1;
        }
    }
    if (isq) {
        struct qcow2_open_opts bo = {.readonly = 1, .backing_files = 1,
                                     .cache_bytes = o->cache_bytes};
        char e2[512];
        b->img = qcow2_open_chain(b->fd, b->path, &bo, depth + 1, cdev, cino, e2, sizeof(e2));
        if (b->img == NULL) {
            snprintf(err, errlen, "%s (backing file of %s)", e2, q->path);
            return -1;
        }
        b->size = qcow2_virtual_size(b->img);
    } else {
        off_t end = lseek(b->fd, 0, SEEK_END);
        if (end < 0) {
            snprintf(err, errlen, "qcow2: backing file '%s': %s", b->path, strerror(errno));
            return -1;
        }
        b->size = (uint64_t)end;
    }
    return 0;
}

int qcow2_backing_readv(struct qcow2 *q, const struct iovec *iov, int cnt, uint64_t off,
                        size_t len)
{
    struct qcow2_backing *b = q->bk;
    size_t have = off >= b->size ? 0 : (b->size - off < len ? (size_t)(b->size - off) : len);
    if (have < len)
        qcow2_iov_zero(iov, cnt, have, len - have);
    if (have == 0)
        return 0;
    struct iovec v[64];
    int n = qcow2_iov_slice(iov, cnt, 0, have, v, 64);
    if (n < 0)
        return -EINVAL;
    if (b->img != NULL)
        return qcow2_preadv(b->img, v, n, off);
    ssize_t got = preadv(b->fd, v, n, (off_t)off);
    if (got < 0)
        return -errno;
    if ((size_t)got < have)
        qcow2_iov_zero(v, n, (size_t)got, have - (size_t)got);
    return 0;
}

int qcow2_backing_read(struct qcow2 *q, uint8_t *buf, size_t len, uint64_t off)
{
    struct iovec v = {buf, len};
    return qcow2_backing_readv(q, &v, 1, off, len);
}

void qcow2_backing_close(struct qcow2 *q)
{
    struct qcow2_backing *b = q->bk;
    if (b == NULL)
        return;
    qcow2_close(b->img);
    if (b->fd >= 0)
        close(b->fd);
    free(b);
    q->bk = NULL;
}
