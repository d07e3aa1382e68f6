/*
 * Canary memory: regions no device is ever offered as writable (the pages
 * right around the arena, a block further up, the end of RAM that
 * "straddling" descriptors point at), filled with a seed-derived pattern
 * before the attack and checked after it.
 */
#include "guest.h"

u32 canary_size = 0x4000;

struct region {
    u32 start, size;
};

/* Right below and above the arena, one further up, and the very end of RAM. */
static u32 regions(struct region *r)
{
    r[0] = (struct region){ARENA - canary_size, canary_size};
    r[1] = (struct region){ARENA_END, canary_size};
    r[2] = (struct region){CANARY_MID, canary_size};
    r[3] = (struct region){(u32)ram_end - canary_size, canary_size};
    return 4;
}

/* Cheap on purpose (see memset in lib.c): a seed-keyed multiplicative hash of the address. */
static u32 pattern(u64 seed, u32 addr)
{
    u32 x = (addr ^ (u32)seed) * 0x9e3779b1u;
    return x ^ (x >> 15) ^ (u32)(seed >> 32);
}

void canary_fill(u64 seed)
{
    struct region r[4];
    u32 n = regions(r);
    for (u32 i = 0; i < n; i++)
        for (u32 a = r[i].start; a < r[i].start + r[i].size; a += 4)
            *(volatile u32 *)a = pattern(seed, a);
}

int canary_check(u64 seed)
{
    struct region r[4];
    u32 n = regions(r);
    for (u32 i = 0; i < n; i++)
        for (u32 a = r[i].start; a < r[i].start + r[i].size; a += 4)
            if (*(volatile u32 *)a != pattern(seed, a)) {
                print("CANARY damaged at ");
                puthex(a);
                print("\n");
                return 1;
            }
    return 0;
}

/* A range inside a canary region, for buffers offered device-READABLE only. */
u32 canary_pick(u32 *len)
{
    struct region r[4];
    regions(r);
    const struct region *g = &r[rnd(4)];
    if (*len == 0 || *len > g->size)
        *len = 1 + rnd(g->size);
    return g->start + rnd(g->size - *len + 1);
}
