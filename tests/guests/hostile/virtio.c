/* A minimal, honest virtio 1.x modern PCI driver: probe, negotiate, split rings, polling. */
#include "guest.h"

struct vdev devs[MAX_DEVS];
u32 ndevs;

const char *kind_name(u32 kind)
{
    switch (kind) {
    case DK_NET: return "net";
    case DK_BLK: return "blk";
    case DK_CON: return "console";
    case DK_RNG: return "rng";
    default: return "?";
    }
}

/* Read the vendor capabilities (virtio 1.2, 4.1.4); 0 when all four are there. */
static int read_caps(struct vdev *d)
{
    u32 found = 0;
    u32 ptr = cfg_read(d->slot, 0x34, 1) & 0xfc;
    for (u32 guard = 0; ptr >= 0x40 && guard < 48; guard++) {
        u32 id = cfg_read(d->slot, ptr, 1), next = cfg_read(d->slot, ptr + 1, 1) & 0xfc;
        if (id == 0x11) {
            d->msix_cap = ptr;
        } else if (id == 0x09 && cfg_read(d->slot, ptr + 4, 1) == 0) {
            u32 type = cfg_read(d->slot, ptr + 3, 1), off = cfg_read(d->slot, ptr + 8, 4);
            u32 at = d->bar + off;
            if (type == 1)
                d->common = at;
            else if (type == 2) {
                d->notify = at;
                d->notify_mult = cfg_read(d->slot, ptr + 16, 4);
            } else if (type == 3)
                d->isr = at;
            else if (type == 4)
                d->devcfg = at;
            if (type >= 1 && type <= 4)
                found |= 1u << type;
        }
        ptr = next;
    }
    /* The device-specific structure is optional (a device with no config). */
    return (found & 0xe) == 0xe ? 0 : -1;
}

void virtio_probe(void)
{
    for (u32 slot = 1; slot < 32 && ndevs < MAX_DEVS; slot++) {
        if (cfg_read(slot, 0, 2) != 0x1af4)
            continue;
        u32 id = cfg_read(slot, 2, 2);
        if (id < 0x1041 || id > 0x1044)
            continue;
        struct vdev *d = &devs[ndevs];
        memset(d, 0, sizeof(*d));
        d->slot = slot;
        d->kind = id - 0x1040;
        pci_assign(slot);
        d->bar = PCI_MMIO32 + slot * BAR_SLOT_SIZE;
        d->rings = ARENA + ndevs * ARENA_RINGS_PER_DEV;
        if (read_caps(d) < 0) {
            print("PROBE slot ");
            putdec(slot);
            print(" missing virtio capabilities\n");
            continue;
        }
        ndevs++;
    }
}

u8 virtio_status(const struct vdev *d)
{
    return r8(d->common + CC_STATUS);
}

void virtio_reset(struct vdev *d)
{
    w8(d->common + CC_STATUS, 0);
    /* The driver polls until the reset is done (virtio 1.2, 4.1.4.3.2). */
    /* 0xff: nothing decodes there (a storm turned the BAR off); do not spin on it. */
    for (u32 i = 0; i < 1000; i++) {
        u8 st = virtio_status(d);
        if (st == 0 || st == 0xff)
            break;
        __asm__ volatile("pause");
    }
    for (u32 i = 0; i < MAX_QUEUES; i++)
        d->q[i].avail_idx = d->q[i].used_seen = 0;
}

void virtio_kick(const struct vdev *d, u32 qi)
{
    w16(d->notify + (u32)d->q[qi].notify_off * d->notify_mult, (u16)qi);
}

static u64 read_features(const struct vdev *d)
{
    w32(d->common + CC_DFSELECT, 0);
    u64 f = r32(d->common + CC_DF);
    w32(d->common + CC_DFSELECT, 1);
    return f | ((u64)r32(d->common + CC_DF) << 32);
}

int virtio_setup(struct vdev *d)
{
    u32 c = d->common;
    virtio_reset(d);
    w8(c + CC_STATUS, ST_ACK);
    w8(c + CC_STATUS, ST_ACK | ST_DRIVER);
    d->offered = read_features(d);
    u64 want = 1ull << F_VERSION_1;
    if (d->kind == DK_NET)
        want |= 1ull << 5; /* VIRTIO_NET_F_MAC */
    u64 accept = d->offered & want;
    w32(c + CC_GFSELECT, 0);
    w32(c + CC_GF, (u32)accept);
    w32(c + CC_GFSELECT, 1);
    w32(c + CC_GF, (u32)(accept >> 32));
    w8(c + CC_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK);
    if (!(virtio_status(d) & ST_FEATURES_OK))
        return -1;
    if (d->kind == DK_BLK) {
        d->ro = (d->offered >> 5) & 1; /* VIRTIO_BLK_F_RO */
        d->capacity = r32(d->devcfg) | ((u64)r32(d->devcfg + 4) << 32);
    }
    if (d->kind == DK_NET)
        for (u32 i = 0; i < 6; i++)
            d->mac[i] = r8(d->devcfg + i);
    d->nq = r16(c + CC_NUMQ);
    d->nq_used = d->nq < MAX_QUEUES ? d->nq : MAX_QUEUES;
    for (u32 i = 0; i < d->nq_used; i++) {
        struct vq *q = &d->q[i];
        w16(c + CC_QSELECT, (u16)i);
        u16 max = r16(c + CC_QSIZE);
        if (max == 0)
            return -1;
        q->size = max < QSIZE_USED ? max : QSIZE_USED;
        q->desc = d->rings + i * 0x10000u;
        q->avail = q->desc + 0x1000;
        q->used = q->desc + 0x2000;
        q->bufs = q->desc + 0x4000;
        q->avail_idx = q->used_seen = 0;
        memset((void *)q->desc, 0, 0x4000);
        w16(c + CC_QSIZE, q->size);
        w16(c + CC_QMSIX, 0xffff);
        q->notify_off = r16(c + CC_QNOTIFY_OFF);
        w64(c + CC_QDESC, q->desc);
        w64(c + CC_QDRIVER, q->avail);
        w64(c + CC_QDEVICE, q->used);
        w16(c + CC_QENABLE, 1);
        if (r16(c + CC_QENABLE) != 1)
            return -1;
    }
    w8(c + CC_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
    return (virtio_status(d) & ST_NEEDS_RESET) ? -1 : 0;
}

u16 vq_submit(struct vdev *d, u32 qi, const u64 *addr, const u32 *len, const u16 *flags,
              u32 n)
{
    struct vq *q = &d->q[qi];
    u32 slots = q->size / QSLOT_DESCS ? q->size / QSLOT_DESCS : 1;
    u16 head = (u16)((q->avail_idx % slots) * QSLOT_DESCS);
    for (u32 i = 0; i < n; i++) {
        u32 e = q->desc + 16u * ((head + i) & (q->size - 1u));
        w64(e, addr[i]);
        w32(e + 8, len[i]);
        u16 f = flags[i];
        if (i + 1 < n)
            f |= D_NEXT;
        w16(e + 12, f);
        w16(e + 14, (u16)((head + i + 1) & (q->size - 1u)));
    }
    w16(q->avail + 4 + 2u * (q->avail_idx & (q->size - 1u)), head);
    barrier();
    q->avail_idx++;
    w16(q->avail + 2, q->avail_idx);
    barrier();
    virtio_kick(d, qi);
    return head;
}

int vq_wait(struct vdev *d, u32 qi, u32 *id, u32 *written, u64 timeout_cycles)
{
    struct vq *q = &d->q[qi];
    u64 t0 = rdtsc();
    while (r16(q->used + 2) == q->used_seen) {
        if (rdtsc() - t0 > timeout_cycles)
            return 0;
        __asm__ volatile("pause");
    }
    barrier();
    u32 e = q->used + 4 + 8u * (q->used_seen & (q->size - 1u));
    if (id)
        *id = r32(e);
    if (written)
        *written = r32(e + 4);
    q->used_seen++;
    return 1;
}
