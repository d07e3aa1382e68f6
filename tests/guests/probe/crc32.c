/*
 * zlib's CRC-32, sliced by eight: under kvm_pvm every guest instruction is
 * emulated (about 3 us each), and eight table lookups per eight bytes cost a
 * third of the bytewise loop's instructions.
 */
#include "probe.h"

typedef u32 __attribute__((may_alias)) u32_alias;

static u32 tab[8][256];

void crc32_init(void)
{
    for (u32 i = 0; i < 256; i++) {
        u32 c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
        tab[0][i] = c;
    }
    for (u32 i = 0; i < 256; i++)
        for (int k = 1; k < 8; k++)
            tab[k][i] = (tab[k - 1][i] >> 8) ^ tab[0][tab[k - 1][i] & 0xff];
}

u32 crc32(const u8 *p, u32 n)
{
    u32 c = 0xffffffffu;
    for (; n && ((u32)p & 3); n--)
        c = tab[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    for (; n >= 8; n -= 8, p += 8) {
        u32 a = *(const u32_alias *)p ^ c, b = *(const u32_alias *)(p + 4);
        c = tab[7][a & 0xff] ^ tab[6][(a >> 8) & 0xff] ^ tab[5][(a >> 16) & 0xff] ^
            tab[4][a >> 24] ^ tab[3][b & 0xff] ^ tab[2][(b >> 8) & 0xff] ^
            tab[1][(b >> 16) & 0xff] ^ tab[0][b >> 24];
    }
    for (; n; n--)
        c = tab[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return ~c;
}
