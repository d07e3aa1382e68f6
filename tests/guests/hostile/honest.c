/*
 * Honest requests, one per device, each checked against what the host side
 * must answer: the disks' known pattern (the runner writes it), the
 * template's seeded stream, an ARP reply from the user-mode network's
 * gateway, a console line the runner finds in the console file.
 */
#include "guest.h"

u64 template_seed;
static u64 seed_for_data;

#define BLK_T_IN 0u
#define BLK_T_OUT 1u

/* The runner fills every disk with this: byte at offset o. */
static u8 disk_byte(u64 sector, u32 i)
{
    return (u8)((u32)(sector * 512 + i) * 7u + (u32)sector * 13u + 0x5au);
}

static int report(const char *phase, const struct vdev *d, const char *extra, const char *why)
{
    print(phase);
    print(" ");
    print(kind_name(d->kind));
    print(extra);
    print(why ? " FAIL " : " ok");
    if (why)
        print(why);
    print("\n");
    return why ? 1 : 0;
}

/* One request of `type` on a 512-byte sector; returns the status byte, or -1 on timeout. */
static int blk_rw(struct vdev *d, u32 type, u64 sector, u32 data)
{
    struct vq *q = &d->q[0];
    u32 hdr = q->bufs, status = q->bufs + 0x10;
    w32(hdr, type);
    w32(hdr + 4, 0);
    w64(hdr + 8, sector);
    w8(status, 0xee);
    u64 addr[3] = {hdr, data, status};
    u32 len[3] = {16, 512, 1};
    u16 flags[3] = {0, (u16)(type == BLK_T_IN ? D_WRITE : 0), D_WRITE};
    vq_submit(d, 0, addr, len, flags, 3);
    if (!vq_wait(d, 0, 0, 0, WAIT_LONG))
        return -1;
    return r8(status);
}

static const char *blk_check(struct vdev *d, int final)
{
    u32 buf = d->q[0].bufs + 0x1000;
    if (d->capacity < 2)
        return "capacity < 2 sectors";
    /* Sector 0 of a writable disk is fair game for the attack phase. */
    if (!final || d->ro) {
        memset((void *)buf, 0, 512);
        if (blk_rw(d, BLK_T_IN, 0, buf) != 0)
            return "read of sector 0 failed";
        for (u32 i = 0; i < 512; i++)
            if (r8(buf + i) != disk_byte(0, i))
                return "sector 0 does not hold the disk pattern";
    }
    for (u32 i = 0; i < 512; i++)
        w8(buf + i, (u8)(seed_for_data + i * 3u + (u32)final));
    int st = blk_rw(d, BLK_T_OUT, 1, buf);
    if (d->ro) {
        if (st <= 0)
            return "write to a readonly disk did not fail";
        memset((void *)buf, 0, 512);
        if (blk_rw(d, BLK_T_IN, 1, buf) != 0)
            return "read of sector 1 failed";
        for (u32 i = 0; i < 512; i++)
            if (r8(buf + i) != disk_byte(1, i))
                return "readonly disk's sector 1 changed";
        return 0;
    }
    if (st != 0)
        return "write of sector 1 failed";
    memset((void *)buf, 0, 512);
    if (blk_rw(d, BLK_T_IN, 1, buf) != 0)
        return "read back of sector 1 failed";
    for (u32 i = 0; i < 512; i++)
        if (r8(buf + i) != (u8)(seed_for_data + i * 3u + (u32)final))
            return "sector 1 does not read back what was written";
    return 0;
}

static u8 template_byte(u32 i)
{
    u64 w = mix64(template_seed + (u64)(i / 8 + 1) * 0x9e3779b97f4a7c15ull);
    return (u8)(w >> (8 * (i % 8)));
}

static const char *rng_check(struct vdev *d)
{
    u32 buf = d->q[0].bufs;
    memset((void *)buf, 0, 64);
    u64 addr[1] = {buf};
    u32 len[1] = {64}, written = 0;
    u16 flags[1] = {D_WRITE};
    vq_submit(d, 0, addr, len, flags, 1);
    if (!vq_wait(d, 0, 0, &written, WAIT_LONG))
        return "no answer";
    if (written == 0 || written > 64)
        return "bad length";
    /* The template's stream starts over at every reset: the first bytes are known. */
    u32 match = 1, nonzero = 0;
    for (u32 i = 0; i < written; i++) {
        match &= r8(buf + i) == template_byte(i);
        nonzero |= r8(buf + i);
    }
    d->is_template = match && written >= 8;
    if (!nonzero)
        return "all zero";
    return 0;
}

static const char *console_check(struct vdev *d, int final)
{
    static const char msg[] = "hostile-console-line ";
    u32 buf = d->q[1].bufs, n = 0;
    for (const char *s = msg; *s; s++)
        w8(buf + n++, (u8)*s);
    w8(buf + n++, final ? 'F' : 'H');
    w8(buf + n++, '\n');
    /* A receive buffer too, as a real driver posts (nothing arrives from a file). */
    u64 raddr[1] = {d->q[0].bufs};
    u32 rlen[1] = {256};
    u16 rflags[1] = {D_WRITE};
    vq_submit(d, 0, raddr, rlen, rflags, 1);
    u64 addr[1] = {buf};
    u32 len[1] = {n};
    u16 flags[1] = {0};
    vq_submit(d, 1, addr, len, flags, 1);
    if (!vq_wait(d, 1, 0, 0, WAIT_LONG))
        return "transmit not completed";
    return 0;
}

static void put16be(u32 a, u16 v)
{
    w8(a, (u8)(v >> 8));
    w8(a + 1, (u8)v);
}

static const char *net_check(struct vdev *d)
{
    if (d->nq_used < 2)
        return "fewer than 2 queues";
    struct vq *rx = &d->q[0], *tx = &d->q[1];
    for (u32 i = 0; i < 4; i++) {
        u64 a[1] = {rx->bufs + i * 2048u};
        u32 l[1] = {2048};
        u16 f[1] = {D_WRITE};
        vq_submit(d, 0, a, l, f, 1);
    }
    /* 12-byte virtio-net header, then an ARP who-has 10.0.2.2 tell 10.0.2.15. */
    u32 p = tx->bufs, e = p + 12;
    memset((void *)p, 0, 12 + 60);
    for (u32 i = 0; i < 6; i++) {
        w8(e + i, 0xff);
        w8(e + 6 + i, d->mac[i]);
        w8(e + 22 + i, d->mac[i]);
    }
    put16be(e + 12, 0x0806);
    put16be(e + 14, 1);
    put16be(e + 16, 0x0800);
    w8(e + 18, 6);
    w8(e + 19, 4);
    put16be(e + 20, 1);
    static const u8 spa[4] = {10, 0, 2, 15}, tpa[4] = {10, 0, 2, 2};
    for (u32 i = 0; i < 4; i++) {
        w8(e + 28 + i, spa[i]);
        w8(e + 38 + i, tpa[i]);
    }
    u64 a[1] = {p};
    u32 l[1] = {12 + 60};
    u16 f[1] = {0};
    vq_submit(d, 1, a, l, f, 1);
    if (!vq_wait(d, 1, 0, 0, WAIT_LONG))
        return "transmit not completed";
    for (u32 n = 0; n < 4; n++) {
        u32 id, written;
        if (!vq_wait(d, 0, &id, &written, WAIT_LONG))
            return "no ARP reply";
        u32 fr = rx->bufs + (id / QSLOT_DESCS) * 2048u + 12;
        if (id >= rx->size || written < 12 + 42)
            continue;
        if (r8(fr + 12) == 0x08 && r8(fr + 13) == 0x06 && r8(fr + 21) == 2 &&
            r8(fr + 28) == 10 && r8(fr + 29) == 0 && r8(fr + 30) == 2 && r8(fr + 31) == 2)
            return 0;
    }
    return "no ARP reply among the frames received";
}

u32 honest_round(int final)
{
    const char *phase = final ? "FINAL" : "HONEST";
    u32 fails = 0;
    seed_for_data = rnd64();
    for (u32 i = 0; i < ndevs; i++) {
        struct vdev *d = &devs[i];
        pci_assign(d->slot);
        if (virtio_setup(d) < 0) {
            fails += report(phase, d, "", "setup did not reach DRIVER_OK");
            continue;
        }
        const char *why = 0;
        switch (d->kind) {
        case DK_BLK:
            why = blk_check(d, final);
            fails += report(phase, d, d->ro ? " ro=1" : " ro=0", why);
            break;
        case DK_RNG:
            why = rng_check(d);
            fails += report(phase, d, d->is_template ? " template=1" : " template=0", why);
            break;
        case DK_CON:
            fails += report(phase, d, "", console_check(d, final));
            break;
        case DK_NET:
            fails += report(phase, d, "", net_check(d));
            break;
        default:
            break;
        }
        virtio_reset(d);
    }
    return fails;
}
