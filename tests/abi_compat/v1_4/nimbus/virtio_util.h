/*
 * Header-only helpers for virtio device plugins: spec constants and
 * gather/scatter over the validated buffers vq_pop returns.  Static inline
 * so plugins keep linking with nothing but libc.
 */
#ifndef NIMBUS_VIRTIO_UTIL_H
#define NIMBUS_VIRTIO_UTIL_H

#include <stdint.h>
#include <string.h>

#include "plugin_abi.h"

/* Device ids (virtio 1.2, 5). */
#define NIMBUS_VIRTIO_ID_NET 1u
#define NIMBUS_VIRTIO_ID_BLOCK 2u
#define NIMBUS_VIRTIO_ID_CONSOLE 3u
#define NIMBUS_VIRTIO_ID_RNG 4u

/* Transport feature bits the host negotiates itself (virtio 1.2, 6). */
#define NIMBUS_VIRTIO_F_INDIRECT_DESC 28u
#define NIMBUS_VIRTIO_F_EVENT_IDX 29u
#define NIMBUS_VIRTIO_F_VERSION_1 32u

#define NIMBUS_BIT(n) (1ull << (n))

/* Feature bits 24..49 are reserved for the transport and queue extensions
 * (virtio 1.2, 6): a device plugin never offers them; the host negotiates
 * those it supports and passes them to virtio_activate with the rest.  The
 * one definition the host and every plugin check against. */
#define NIMBUS_VIRTIO_TRANSPORT_FEATURES (((1ull << 50) - 1) & ~((1ull << 24) - 1))

/* Bytes in the device-readable / device-writable part of a chain. */
static inline uint64_t nimbus_vq_len(const nimbus_vq_buf *bufs, uint32_t n,
                                     uint32_t writable)
{
    uint64_t t = 0;
    for (uint32_t i = 0; i < n; i++)
        if (((bufs[i].flags & NIMBUS_VQ_BUF_WRITE) != 0) == (writable != 0))
            t += bufs[i].len;
    return t;
}

/*
 * Copy between `mem` and the device-writable (to_chain) or device-readable
 * part of a chain, starting `off` bytes into that part.  Returns the bytes
 * copied (short when the chain is shorter).
 */
static inline uint64_t nimbus_vq_copy_(const nimbus_vq_buf *bufs, uint32_t n, uint64_t off,
                                       uint8_t *mem, uint64_t len, int to_chain)
{
    uint64_t done = 0;
    for (uint32_t i = 0; i < n && done < len; i++) {
        if (((bufs[i].flags & NIMBUS_VQ_BUF_WRITE) != 0) != (to_chain != 0))
            continue;
        if (off >= bufs[i].len) {
            off -= bufs[i].len;
            continue;
        }
        uint64_t c = bufs[i].len - off;
        if (c > len - done)
            c = len - done;
        uint8_t *b = (uint8_t *)bufs[i].host + off;
        if (to_chain)
            memcpy(b, mem + done, c);
        else
            memcpy(mem + done, b, c);
        done += c;
        off = 0;
    }
    return done;
}

/* Read up to `len` bytes from the device-readable part of a chain. */
static inline uint64_t nimbus_vq_gather(const nimbus_vq_buf *bufs, uint32_t n,
                                        uint64_t off, void *dst, uint64_t len)
{
    return nimbus_vq_copy_(bufs, n, off, (uint8_t *)dst, len, 0);
}

/* Write up to `len` bytes into the device-writable part of a chain. */
static inline uint64_t nimbus_vq_scatter(const nimbus_vq_buf *bufs, uint32_t n,
                                         uint64_t off, const void *src, uint64_t len)
{
    /* Only read through: the cast serves the shared walker. */
    return nimbus_vq_copy_(bufs, n, off, (uint8_t *)(uintptr_t)src, len, 1);
}

#endif /* NIMBUS_VIRTIO_UTIL_H */
