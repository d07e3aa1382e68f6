/*
 * Header-only helpers for plugin authors.  Everything here is static inline
 * so a plugin keeps its "no link-time dependency on the core" property.
 */
#ifndef NIMBUS_PLUGIN_UTIL_H
#define NIMBUS_PLUGIN_UTIL_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "plugin_abi.h"

/*
 * Iterate "key=value,key=value" options.  Call with *pos = 0 first.  Returns
 * 1 with key/value copied (NUL-terminated) into the buffers, 0 at the end, or
 * -EINVAL when a token is malformed or too long; `key` then holds the token.
 */
static inline int nimbus_opt_next(const char *opts, size_t *pos, char *key,
                                  size_t keylen, char *val, size_t vallen)
{
    if (keylen == 0 || vallen == 0)
        return -EINVAL;
    const char *p = opts + *pos;
    while (*p == ',')
        p++;
    if (*p == '\0')
        return 0;
    const char *end = strchr(p, ',');
    size_t toklen = end ? (size_t)(end - p) : strlen(p);
    *pos = (size_t)(p - opts) + toklen;
    const char *eq = memchr(p, '=', toklen);
    size_t klen = eq ? (size_t)(eq - p) : toklen;
    size_t vlen = eq ? toklen - klen - 1 : 0;
    if (klen == 0 || klen >= keylen || vlen >= vallen) {
        size_t n = toklen < keylen - 1 ? toklen : keylen - 1;
        memcpy(key, p, n);
        key[n] = '\0';
        return -EINVAL;
    }
    memcpy(key, p, klen);
    key[klen] = '\0';
    if (eq)
        memcpy(val, eq + 1, vlen);
    val[vlen] = '\0';
    return eq ? 1 : -EINVAL;
}

/* Parse an unsigned integer (decimal or 0x hex) no larger than `max`. */
static inline int nimbus_opt_u64(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    int base = 10;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    if (*s == '\0')
        return -EINVAL;
    for (; *s; s++) {
        unsigned d;
        if (*s >= '0' && *s <= '9')
            d = (unsigned)(*s - '0');
        else if (base == 16 && *s >= 'a' && *s <= 'f')
            d = (unsigned)(*s - 'a' + 10);
        else if (base == 16 && *s >= 'A' && *s <= 'F')
            d = (unsigned)(*s - 'A' + 10);
        else
            return -EINVAL;
        if (v > (UINT64_MAX - d) / (uint64_t)base)
            return -ERANGE;
        v = v * (uint64_t)base + d;
    }
    if (v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

/* Parse on|off|true|false. */
static inline int nimbus_opt_bool(const char *s, int *out)
{
    if (!strcmp(s, "on") || !strcmp(s, "true")) {
        *out = 1;
        return 0;
    }
    if (!strcmp(s, "off") || !strcmp(s, "false")) {
        *out = 0;
        return 0;
    }
    return -EINVAL;
}

#if defined(__GNUC__)
#define NIMBUS_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define NIMBUS_PRINTF(f, a)
#endif

/* snprintf into a create() error buffer. */
static inline void nimbus_errf(char *err, uint32_t errlen, const char *fmt, ...)
    NIMBUS_PRINTF(3, 4);
static inline void nimbus_errf(char *err, uint32_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Format and log through the host table. */
static inline void nimbus_logf(const nimbus_host_api *h, void *hctx,
                               uint32_t level, const char *fmt, ...)
    NIMBUS_PRINTF(4, 5);
static inline void nimbus_logf(const nimbus_host_api *h, void *hctx,
                               uint32_t level, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (h && h->log)
        h->log(hctx, level, buf);
}

/* Little-endian load/store of 1..8 bytes, for register files. */
static inline uint64_t nimbus_le_load(const void *p, uint32_t len)
{
    const uint8_t *b = (const uint8_t *)p;
    uint64_t v = 0;
    for (uint32_t i = 0; i < len && i < 8; i++)
        v |= (uint64_t)b[i] << (8 * i);
    return v;
}

static inline void nimbus_le_store(void *p, uint32_t len, uint64_t v)
{
    uint8_t *b = (uint8_t *)p;
    for (uint32_t i = 0; i < len && i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}

/*
 * Versioned state blobs (state_save/state_restore): an 8-byte header of
 * magic (4 bytes), version (2) and total size (2), little-endian, then the
 * plugin's fields.  A fixed-size blob keeps restore validation simple.
 */
#define NIMBUS_STATE_HEADER 8u

/*
 * Start a save: reports the size in *len and, when there is room, zeroes
 * buf and writes the header.  Returns 1 when the caller should fill in its
 * fields, 0 for a size query (cap == 0), or a negative errno (-ENOSPC when
 * 0 < cap < size, as the ABI requires).
 */
static inline int nimbus_state_begin(void *buf, uint64_t cap, uint64_t *len, uint32_t magic,
                                     uint16_t version, uint16_t size)
{
    if (!len)
        return -EINVAL;
    *len = size;
    if (cap == 0)
        return 0;
    if (!buf)
        return -EINVAL;
    if (cap < size)
        return -ENOSPC;
    memset(buf, 0, size);
    nimbus_le_store(buf, 4, magic);
    nimbus_le_store((uint8_t *)buf + 4, 2, version);
    nimbus_le_store((uint8_t *)buf + 6, 2, size);
    return 1;
}

/* True when an untrusted blob has exactly this header and size. */
static inline int nimbus_state_check(const void *buf, uint64_t len, uint32_t magic,
                                     uint16_t version, uint16_t size)
{
    const uint8_t *b = (const uint8_t *)buf;
    return b && len == size && nimbus_le_load(b, 4) == magic &&
           nimbus_le_load(b + 4, 2) == version && nimbus_le_load(b + 6, 2) == size;
}

#endif /* NIMBUS_PLUGIN_UTIL_H */
