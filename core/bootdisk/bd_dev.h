/*
 * A read-only byte range of a disk image: the whole disk, or one partition
 * of it.  Every parser in this folder reads through one of these, so the
 * same code runs over the image's file descriptor in the helper process and
 * over a buffer in the fuzz harnesses, and no read can leave the range.
 */
#ifndef NIMBUS_BD_DEV_H
#define NIMBUS_BD_DEV_H

#include <stddef.h>
#include <stdint.h>

struct bd_dev {
    /* Read exactly len bytes at absolute offset off: 0, or -errno. */
    int (*read)(void *ctx, uint64_t off, void *buf, size_t len);
    void *ctx;
    uint64_t base; /* absolute offset of byte 0 of this range */
    uint64_t size; /* bytes in the range */
};

/* len bytes at off within the range; -ERANGE when any byte lies outside. */
int bd_read(const struct bd_dev *d, uint64_t off, void *buf, size_t len);
/* The range [off, off+size) of d, or -ERANGE when it does not fit. */
int bd_sub(const struct bd_dev *d, uint64_t off, uint64_t size, struct bd_dev *out);

/* Format a message into err (every parser here reports this way); returns -1. */
int bd_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Backends: a file descriptor (pread) and a buffer. */
void bd_dev_fd(struct bd_dev *d, int *fd, uint64_t size);
void bd_dev_mem(struct bd_dev *d, const uint8_t **data, uint64_t size);

#endif
