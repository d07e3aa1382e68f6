/* What a freestanding guest needs of a libc: memory helpers, COM1 output, a PRNG. */
#include "guest.h"

/*
 * String instructions, not loops: on hosts where KVM emulates a guest
 * without paging instruction by instruction (kvm_pvm), one rep stos is one
 * emulated instruction, a loop thousands.
 */
void *memset(void *d, int c, u32 n)
{
    void *p = d;
    __asm__ volatile("rep stosb" : "+D"(p), "+c"(n) : "a"(c) : "memory");
    return d;
}

void *memcpy(void *d, const void *s, u32 n)
{
    void *p = d;
    __asm__ volatile("rep movsb" : "+D"(p), "+S"(s), "+c"(n) : : "memory");
    return d;
}

int memcmp(const void *a, const void *b, u32 n)
{
    const u8 *p = a, *q = b;
    for (u32 i = 0; i < n; i++)
        if (p[i] != q[i])
            return p[i] < q[i] ? -1 : 1;
    return 0;
}

#define COM1 0x3f8

/*
 * The attack phase writes the UART's registers at random: put back 8N1,
 * DLAB off and loopback off, or our own output would vanish.
 */
void uart_init(void)
{
    outb(COM1 + 3, 0x03); /* LCR */
    outb(COM1 + 1, 0x00); /* IER */
    outb(COM1 + 4, 0x00); /* MCR: loopback off */
    outb(COM1 + 2, 0x00); /* FCR */
}

void print(const char *s)
{
    for (; *s; s++)
        outb(COM1, (u8)*s);
}

void putdec(u64 v)
{
    char b[24];
    int i = 23;
    b[i] = 0;
    do {
        /* No 64-bit division in a freestanding -m32 build: divide by 10 by hand. */
        u64 q = 0, r = 0;
        for (int bit = 63; bit >= 0; bit--) {
            r = (r << 1) | ((v >> bit) & 1);
            if (r >= 10) {
                r -= 10;
                q |= 1ull << bit;
            }
        }
        b[--i] = (char)('0' + r);
        v = q;
    } while (v);
    print(b + i);
}

void puthex(u64 v)
{
    char b[19];
    b[0] = '0';
    b[1] = 'x';
    for (int i = 0; i < 16; i++)
        b[2 + i] = "0123456789abcdef"[(v >> (60 - 4 * i)) & 15];
    b[18] = 0;
    print(b);
}

u64 mix64(u64 z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

u64 splitmix(u64 *state)
{
    *state += 0x9e3779b97f4a7c15ull;
    return mix64(*state);
}

/* xoshiro128** seeded by splitmix64: 32-bit operations only, cheap in a 32-bit guest. */
static u32 xs[4];

void rng_seed(u64 s)
{
    u64 st = s;
    u64 a = splitmix(&st), b = splitmix(&st);
    xs[0] = (u32)a;
    xs[1] = (u32)(a >> 32);
    xs[2] = (u32)b;
    xs[3] = (u32)(b >> 32) | 1; /* never all zero */
}

static u32 rotl(u32 x, int k)
{
    return (x << k) | (x >> (32 - k));
}

static u32 rnd32(void)
{
    u32 r = rotl(xs[1] * 5, 7) * 9, t = xs[1] << 9;
    xs[2] ^= xs[0];
    xs[3] ^= xs[1];
    xs[1] ^= xs[2];
    xs[0] ^= xs[3];
    xs[2] ^= t;
    xs[3] = rotl(xs[3], 11);
    return r;
}

u64 rnd64(void)
{
    u64 hi = rnd32();
    return (hi << 32) | rnd32();
}

u32 rnd(u32 n)
{
    /* Multiply-shift: no 64-bit division needed. */
    return (u32)(((u64)rnd32() * n) >> 32);
}

void spin(u64 cycles)
{
    u64 t = rdtsc();
    while (rdtsc() - t < cycles)
        __asm__ volatile("pause");
}
