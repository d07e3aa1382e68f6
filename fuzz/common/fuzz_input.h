/* A cursor over the fuzzer's bytes.  Reads past the end yield zeros so every
 * input, however short, decodes to some valid op sequence. */
#ifndef NIMBUS_FUZZ_INPUT_H
#define NIMBUS_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

struct fuzz_in {
    const uint8_t *p;
    size_t n;
};

static inline int fin_more(const struct fuzz_in *in)
{
    return in->n > 0;
}

static inline uint8_t fin_u8(struct fuzz_in *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

static inline uint64_t fin_le(struct fuzz_in *in, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v |= (uint64_t)fin_u8(in) << (8 * i);
    return v;
}

/* Up to `want` bytes in place; returns how many are available. */
static inline size_t fin_take(struct fuzz_in *in, size_t want, const uint8_t **out)
{
    size_t k = want < in->n ? want : in->n;
    *out = in->p;
    in->p += k;
    in->n -= k;
    return k;
}

#endif
