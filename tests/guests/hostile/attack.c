/*
 * Phase 2: seeded attack operations on the devices, config space, BARs and
 * legacy ports.  The one rule the guest itself keeps, so that the canary
 * check means something: a buffer offered device-WRITABLE (and every used
 * ring) lies entirely inside the arena, or reaches outside RAM, where nimbus
 * must refuse all of it.  Device-readable buffers, descriptor tables, avail
 * rings and indirect tables may point anywhere, canaries included.
 *
 * The other exception is self-preservation, not mercy: MSI-X messages keep
 * delivery mode "fixed" (an NMI, SMI or INIT would kill this guest, not
 * nimbus), port 0x64 never sees the i8042 commands that pulse the reset
 * line, and the ACPI sleep register never sees SLP_EN.
 */
#include "guest.h"

enum {
    A_CHAIN, A_INDIRECT, A_HUGE_IDX, A_RING_BAD, A_RESET_INFLIGHT, A_FEATURES, A_MSIX,
    A_BAR_STORM, A_CFG_STORM, A_PORT_STORM, A_NOTIFY_STORM, A_HOLE_STORM, A_DEVCFG,
    A_TOCTOU, A_REQUEST, A_QUEUE_RECONF, A_BAR_MOVE, A_COUNT
};

static const char *const names[A_COUNT] = {
    "chain", "indirect", "huge-idx", "ring-bad", "reset-inflight", "features", "msix",
    "bar-storm", "cfg-storm", "port-storm", "notify-storm", "hole-storm", "devcfg",
    "toctou", "request", "queue-reconf", "bar-move",
};

/* ---- addresses and lengths ------------------------------------------------------------ */

static u32 rand_len(void)
{
    switch (rnd(8)) {
    case 0: return 0;
    case 1: return 1 + rnd(16);
    case 2: return 16;
    case 3: return 512;
    case 4: return 4096;
    case 5: return rnd(0x10000);
    case 6: return 0xffffffffu;
    default: return (u32)rnd64();
    }
}

/* A buffer the device may write: in the arena's scratch part, sometimes flush against its end. */
static u64 arena_buf(u32 *len)
{
    u32 lo = ARENA + ARENA_SCRATCH, span = ARENA_END - lo;
    if (*len > span)
        *len = rnd(span) + 1;
    if (rnd(8) == 0)
        return ARENA_END - *len;
    return lo + rnd(span - *len + 1);
}

/*
 * Where attack rings and indirect tables go.  Region 0 holds what the
 * device reads as descriptors (desc tables, indirect tables), region 1 avail
 * and used rings: what a device writes into a used ring must never be read
 * back as a descriptor.
 */
static u32 table_at(u32 region)
{
    /* Region 0 starts with ZERO_TABLE, which stays zero. */
    return ARENA + ARENA_TABLES + 0x10000u + region * 0xf0000u + rnd(0xb0) * 0x1000u;
}

/* A buffer not (wholly) in RAM: the device must refuse it, writable or not. */
static u64 bad_buf(u32 *len)
{
    u64 a;
    switch (rnd(9)) {
    case 0: a = PCI_MMIO32 + rnd(0x3fff0000u); break;       /* the 32-bit hole */
    case 1: /* straddles the end of RAM */
        if (*len < 2)
            *len = 2 + rnd(4096);
        a = ram_end - 1 - rnd(*len - 1);
        break;
    case 2: a = ~0ull - rnd(64); break;                     /* wraps past 2^64 */
    case 3: a = 0x100000000ull + ((u64)rnd(0x40000000u) << 4); break; /* above 4 GiB */
    case 4: a = 0xfee00000u; break;                         /* the local APIC */
    case 5: a = 0xfffff000u; break;                         /* top of the hole */
    case 6: a = 1ull << (40 + rnd(24)); break;              /* beyond any phys bits */
    case 7: a = ram_end; break;                             /* just past RAM */
    default: a = rnd64(); break;
    }
    if (*len == 0)
        *len = 1 + rnd(4096);
    /* Whatever was drawn, never a range wholly inside RAM. */
    if (a + *len > a && a + *len <= ram_end)
        a = ram_end - 1;
    return a;
}

/*
 * A device-readable buffer: half the time inside a canary (a device that
 * writes what it should only read is caught there), else anywhere in RAM.
 */
static u64 any_ram_buf(u32 *len)
{
    if (rnd(2))
        return canary_pick(len);
    if (*len > 0x100000u)
        *len = 0x100000u;
    return rnd((u32)ram_end - *len);
}

/* One descriptor's buffer, following the rule at the top. */
static void rand_buf(u64 *addr, u32 *len, u16 *flags)
{
    *len = rand_len();
    *flags = rnd(2) ? D_WRITE : 0;
    switch (rnd(4)) {
    case 0: *addr = bad_buf(len); break;
    case 1:
        if (!(*flags & D_WRITE)) {
            *addr = any_ram_buf(len);
            break;
        }
        /* fall through */
    default: *addr = arena_buf(len); break;
    }
}

/* ---- ring helpers --------------------------------------------------------------------------- */

static void put_desc(const struct vq *q, u32 i, u64 addr, u32 len, u16 flags, u16 next)
{
    u32 e = q->desc + 16u * (i & (q->size - 1u));
    w64(e, addr);
    w32(e + 8, len);
    w16(e + 12, flags);
    w16(e + 14, next);
}

static void publish(struct vdev *d, u32 qi, u16 head)
{
    struct vq *q = &d->q[qi];
    w16(q->avail + 4 + 2u * (q->avail_idx & (q->size - 1u)), head);
    barrier();
    q->avail_idx++;
    w16(q->avail + 2, q->avail_idx);
    barrier();
    virtio_kick(d, qi);
}

/* A random index: usually in the ring, sometimes far outside it. */
static u16 rand_index(const struct vq *q)
{
    return (u16)(rnd(8) ? rnd(q->size) : rnd64());
}

/* An indirect table somewhere (aligned, misaligned, in a canary, outside RAM) of random shape. */
static void indirect_desc(u64 *addr, u32 *len)
{
    u32 n = rnd(4) ? 1 + rnd(16) : 1 + rnd(8192);
    *len = n * 16;
    switch (rnd(6)) {
    case 0: *len = 0; break;
    case 1: *len = n * 16 + 1 + rnd(15); break;     /* not a multiple of 16 */
    case 2: *len = 0xfffffff0u; break;              /* huge */
    default: break;
    }
    u32 tlen = *len;
    if (rnd(6) == 0) {
        *addr = bad_buf(&tlen);
        *len = tlen;
        return;
    }
    u32 room = tlen < 0x40000u ? tlen : 0x40000u;
    u64 t = table_at(0);
    if (rnd(4) == 0)
        t |= 1 + rnd(15); /* misaligned */
    *addr = t;
    /* Fill what fits of the table: loops, nesting, bad next indices, bad buffers. */
    u32 fill = room / 16;
    for (u32 i = 0; i < fill && i < 64; i++) {
        u64 ba;
        u32 bl;
        u16 bf;
        rand_buf(&ba, &bl, &bf);
        u32 r = rnd(8);
        if (r == 0)
            bf |= D_INDIRECT; /* nested */
        if (r < 5 && i + 1 < fill)
            bf |= D_NEXT;
        u16 next = (u16)(r == 6 ? rnd64() : r == 7 ? rnd(fill) : i + 1);
        u32 e = (u32)t + 16 * i;
        w64(e, ba);
        w32(e + 8, bl);
        w16(e + 12, bf);
        w16(e + 14, next);
    }
}

static void chain_attack(struct vdev *d, u32 qi, int want_indirect)
{
    struct vq *q = &d->q[qi];
    u32 n = 1 + rnd(6);
    u16 head = rand_index(q), i = head;
    for (u32 k = 0; k < n; k++) {
        u64 a;
        u32 l;
        u16 f;
        rand_buf(&a, &l, &f);
        if ((want_indirect && k + 1 == n) || rnd(10) == 0) {
            indirect_desc(&a, &l);
            f = (u16)(D_INDIRECT | (rnd(3) == 0 ? D_NEXT | D_WRITE : 0));
        }
        u16 next;
        switch (rnd(10)) {
        case 0: next = head; break;             /* a loop */
        case 1: next = (u16)rnd64(); break;     /* out of range */
        default: next = (u16)((i + 1 + rnd(3)) & (q->size - 1u)); break;
        }
        if (k + 1 < n)
            f |= D_NEXT;
        else if (rnd(4))
            f &= (u16)~D_NEXT;
        put_desc(q, i, a, l, f, next);
        i = next;
    }
    publish(d, qi, head);
}

/* ---- honest-shaped requests (reset in flight, toctou, random fields) ---------------------- */

/* A request of the device's own protocol with randomised fields; returns its head. */
static u16 request(struct vdev *d, u32 qi)
{
    u64 a[4];
    u32 l[4];
    u16 f[4];
    u32 n = 0, scratch = ARENA + ARENA_SCRATCH + rnd(0x100) * 0x1000u;
    if (d->kind == DK_BLK) {
        static const u32 types[] = {0, 1, 4, 8, 11, 13, 0x7fffffffu};
        u32 type = rnd(8) ? types[rnd(7)] : (u32)rnd64();
        u64 sector = rnd(4) ? rnd((u32)d->capacity + 4) : rnd64() >> rnd(64);
        w32(scratch, type);
        w32(scratch + 4, 0);
        w64(scratch + 8, sector);
        /* discard / write-zeroes segment: sector, num_sectors, flags */
        w64(scratch + 0x100, sector);
        w32(scratch + 0x108, rnd(4) ? rnd(64) : (u32)rnd64());
        w32(scratch + 0x10c, rnd(4) ? 0 : (u32)rnd64());
        a[n] = scratch, l[n] = rnd(8) ? 16 : rnd(32), f[n++] = 0;
        u32 dl = rnd(4) ? 512u * (1 + rnd(128)) : rnd(0x20000);
        int rd = type == 0 || type == 8;
        if (type == 11 || type == 13)
            a[n] = scratch + 0x100, l[n] = 16 * (1 + rnd(2)), f[n++] = 0;
        else if (dl) /* what the device only reads may be a canary */
            a[n] = rd ? arena_buf(&dl) : any_ram_buf(&dl), l[n] = dl,
            f[n++] = (u16)(rd ? D_WRITE : 0);
        a[n] = scratch + 0x800, l[n] = rnd(8) ? 1 : rnd(4), f[n++] = D_WRITE;
    } else if (d->kind == DK_NET && qi == 2) {
        /* control queue: class, command, data, ack */
        w8(scratch, (u8)rnd(6));
        w8(scratch + 1, (u8)rnd(6));
        for (u32 i = 0; i < 64; i++)
            w8(scratch + 2 + i, (u8)rnd64());
        a[n] = scratch, l[n] = 2 + rnd(64), f[n++] = 0;
        a[n] = scratch + 0x800, l[n] = 1, f[n++] = D_WRITE;
    } else if (d->kind == DK_NET && qi == 1) {
        /* transmit: a header with random offload fields and a frame nobody routes */
        for (u32 i = 0; i < 12; i++)
            w8(scratch + i, (u8)(rnd(4) ? 0 : rnd64()));
        for (u32 i = 0; i < 14; i++)
            w8(scratch + 12 + i, 0xff);
        w8(scratch + 24, 0x88); /* local experimental ethertype 0x88b5 */
        w8(scratch + 25, 0xb5);
        a[n] = scratch, l[n] = rnd(8) ? 12 + 14 + rnd(1500) : rnd(70000), f[n++] = 0;
    } else {
        /* receive-type queues (rng, console rx, net rx) and console tx */
        u32 len = rnd(4) ? 1 + rnd(0x1000) : 1 + rnd(0x100000);
        u16 fl = (d->kind == DK_CON && qi == 1) ? 0 : D_WRITE;
        if (fl && rnd(3) == 0) {
            /* A readable buffer first (a valid shape): the device must not write it. */
            u32 l0 = 1 + rnd(512);
            a[n] = canary_pick(&l0), l[n] = l0, f[n++] = 0;
        }
        a[n] = arena_buf(&len), l[n] = len, f[n++] = fl;
        if (rnd(3) == 0 && n < 3) {
            u32 l2 = rand_len();
            a[n] = fl ? arena_buf(&l2) : any_ram_buf(&l2), l[n] = l2, f[n++] = fl;
        }
    }
    return vq_submit(d, qi, a, l, f, n);
}

/* ---- status and features ---------------------------------------------------------------- */

/*
 * After a reset every queue's rings are at address 0 (low RAM this guest
 * does not control): point them at an empty desc table and region-1 rings,
 * so whatever queue a hostile sequence manages to enable, its descriptors
 * are ours: ZERO_TABLE holds 4096 empty descriptors.
 */
static u32 empty_desc_table(void)
{
    return ZERO_TABLE;
}

static void safe_rings(struct vdev *d)
{
    u32 c = d->common;
    for (u32 qi = 0; qi < d->nq && qi < 8; qi++) {
        w16(c + CC_QSELECT, (u16)qi);
        w64(c + CC_QDESC, empty_desc_table());
        w64(c + CC_QDRIVER, table_at(1));
        w64(c + CC_QDEVICE, table_at(1));
    }
}

static void features_attack(struct vdev *d)
{
    u32 c = d->common;
    virtio_reset(d);
    d->nq_used = 0;
    safe_rings(d);
    w8(c + CC_STATUS, ST_ACK | ST_DRIVER);
    u64 f;
    switch (rnd(6)) {
    case 0: f = rnd64(); break;                              /* unoffered bits */
    case 1: f = d->offered & ~(1ull << F_VERSION_1); break;  /* drop VERSION_1 */
    case 2: f = ~0ull; break;
    default: f = d->offered; break;
    }
    w32(c + CC_GFSELECT, rnd(4) ? 0 : (u32)rnd64());
    w32(c + CC_GF, (u32)f);
    w32(c + CC_GFSELECT, 1);
    w32(c + CC_GF, (u32)(f >> 32));
    w32(c + CC_DFSELECT, rnd(3) ? 1 : (u32)rnd64());
    (void)r32(c + CC_DF);
    u32 steps = 1 + rnd(6);
    for (u32 s = 0; s < steps; s++) {
        switch (rnd(7)) {
        case 0: w8(c + CC_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK); break; /* twice */
        case 1: w8(c + CC_STATUS, ST_ACK | ST_DRIVER | ST_DRIVER_OK); break;    /* no FEATURES_OK */
        case 2: w8(c + CC_STATUS, (u8)rnd64()); break;
        case 3: /* renegotiate after FEATURES_OK */
            w32(c + CC_GFSELECT, rnd(2));
            w32(c + CC_GF, (u32)rnd64());
            break;
        case 4: /* a queue enabled early, or with garbage */
            w16(c + CC_QSELECT, (u16)rnd(d->nq + 2));
            w16(c + CC_QENABLE, (u16)(rnd(4) ? 1 : rnd64()));
            break;
        case 5: w8(c + CC_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK); break;
        default: (void)virtio_status(d); break;
        }
    }
}

/* Rings in bad places or of bad sizes; desc and avail may sit in canaries (device-read). */
static void ring_attack(struct vdev *d)
{
    u32 c = d->common;
    virtio_reset(d);
    w8(c + CC_STATUS, ST_ACK | ST_DRIVER);
    w32(c + CC_GFSELECT, 1);
    w32(c + CC_GF, 1); /* VERSION_1 */
    w8(c + CC_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK);
    u32 qi = rnd(d->nq ? d->nq : 1);
    d->nq_used = 0; /* the driver's view is gone: the next live operation sets up again */
    safe_rings(d);
    w16(c + CC_QSELECT, (u16)qi);
    static const u16 sizes[] = {0, 1, 3, 6, 100, 0xffff, 0x8000, 2, 256, 1024};
    u16 size = sizes[rnd(10)];
    w16(c + CC_QSIZE, size);
    u16 real = r16(c + CC_QSIZE);
    u64 ring[3];
    for (u32 i = 0; i < 3; i++) {
        u32 len = 16u * (real ? real : 1) + 6;
        switch (rnd(6)) {
        case 0: ring[i] = bad_buf(&len); break;
        case 1: ring[i] = table_at(i != 0) + 1 + rnd(15); break; /* misaligned */
        case 2:
            /* The device only reads the avail ring (a desc table there would be canary bytes). */
            if (i == 1) {
                ring[i] = CANARY_MID + rnd(0x100) * 0x1000u;
                break;
            }
            /* fall through */
        case 3:
            if (i == 0) { /* empty descriptors, at any alignment */
                ring[i] = ZERO_TABLE + rnd(16);
                break;
            }
            /* fall through */
        default: ring[i] = table_at(i != 0); break;
        }
    }
    if (rnd(4) == 0)
        ring[1] = ring[2] = table_at(1); /* avail and used overlap */
    w64(c + CC_QDESC, ring[0]);
    w64(c + CC_QDRIVER, ring[1]);
    w64(c + CC_QDEVICE, ring[2]);
    w16(c + CC_QENABLE, 1);
    w8(c + CC_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
    virtio_kick(d, qi);
    /* Device-visible avail index jump on whatever the avail ring is, if it is ours. */
    if (ring[1] >= ARENA && ring[1] + 4 <= ARENA_END)
        w16((u32)ring[1] + 2, (u16)rnd64());
    virtio_kick(d, qi);
}

/* ---- MSI-X ------------------------------------------------------------------------------------ */

static void msix_attack(struct vdev *d)
{
    if (d->msix_cap) {
        u16 ctl = (u16)(rnd(2) ? 0x8000 : rnd64()); /* enable, sometimes mask-all or garbage */
        cfg_write(d->slot, d->msix_cap + 2, 2, ctl);
    }
    u32 n = 1 + rnd(16);
    for (u32 i = 0; i < n; i++) {
        u32 entry = d->bar + 0x4000 + 16 * rnd(8);
        switch (rnd(5)) {
        case 0: bar_write(entry, 4, rnd(2) ? 0xfee00000u | (rnd(4) << 12) : (u32)rnd64()); break;
        case 1: bar_write(entry + 4, 4, (u32)rnd64()); break;
        case 2: bar_write(entry + 8, 4, (u32)rnd64()); break;
        case 3: bar_write(entry + 12, 4, (u32)rnd(2)); break;
        default: bar_write(d->bar + 0x6000 + 4 * rnd(4), 4, (u32)rnd64()); break; /* the PBA */
        }
    }
    w16(d->common + CC_MSIX, (u16)(rnd(2) ? rnd(8) : rnd64()));
    for (u32 qi = 0; qi < d->nq_used; qi++) {
        w16(d->common + CC_QSELECT, (u16)qi);
        w16(d->common + CC_QMSIX, (u16)(rnd(2) ? rnd(8) : rnd64()));
    }
    /* Make the device signal. */
    if (d->nq_used)
        request(d, rnd(d->nq_used));
}

/* ---- the rest ------------------------------------------------------------------------------------ */

static void queue_reconf(struct vdev *d)
{
    u32 c = d->common, n = 1 + rnd(8);
    for (u32 i = 0; i < n; i++) {
        w16(c + CC_QSELECT, (u16)(rnd(4) ? rnd(d->nq + 1) : rnd64()));
        switch (rnd(6)) {
        case 0: w16(c + CC_QSIZE, (u16)rnd64()); break;
        case 1: { /* ignored while enabled; else a table that is ours, or none at all */
            u32 l = 16;
            w64(c + CC_QDESC, rnd(2) ? bad_buf(&l) : empty_desc_table());
            break;
        }
        case 2: {
            u32 l = 16;
            w64(c + CC_QDEVICE, rnd(2) ? bad_buf(&l) : table_at(1));
            break;
        }
        case 3: w16(c + CC_QENABLE, (u16)rnd(3)); break;
        case 4: (void)r32(c + CC_QDESC + 4 * rnd(6)); break;
        default: w16(c + CC_QNOTIFY_OFF, (u16)rnd64()); break;
        }
    }
    if (d->nq_used)
        request(d, rnd(d->nq_used));
}

/* Move BAR 0 while requests run: elsewhere in the window, over another BAR, out of it. */
static void bar_move(struct vdev *d)
{
    if (d->nq_used)
        request(d, rnd(d->nq_used));
    u32 to;
    switch (rnd(4)) {
    case 0: to = devs[rnd(ndevs)].bar; break; /* overlap */
    case 1: to = (u32)rnd64() & ~0x7fffu; break;
    default: to = PCI_MMIO32 + 0x01000000u + rnd(0x100) * 0x10000u; break;
    }
    if (rnd(2))
        cfg_write(d->slot, 0x04, 2, 0);
    cfg_write(d->slot, 0x10, 4, to);
    if (rnd(4) == 0)
        cfg_write(d->slot, 0x14, 4, (u32)rnd64());
    cfg_write(d->slot, 0x04, 2, 0x0006);
    /* Kick through the new address if it decodes there (our own BAR range only). */
    if (to >= PCI_MMIO32 + 0x01000000u && to < PCI_MMIO32_END - 0x8000u)
        w16(to + (d->notify - d->bar), 0);
    pci_assign(d->slot);
    if (d->nq_used)
        virtio_kick(d, 0);
}

static void toctou(struct vdev *d, u32 qi)
{
    struct vq *q = &d->q[qi];
    u16 head = request(d, qi);
    u32 n = 1 + rnd(32);
    for (u32 i = 0; i < n; i++) {
        u64 a;
        u32 l;
        u16 f;
        rand_buf(&a, &l, &f);
        /* Only whole descriptors from rand_buf, never a new length or flags on an old one. */
        switch (rnd(4)) {
        case 0: put_desc(q, head + rnd(4), a, l, (u16)(f | (rnd(2) ? D_NEXT : 0)), rand_index(q)); break;
        case 1: w16(q->avail + 4 + 2 * rnd(q->size), rand_index(q)); break;
        case 2: w16(q->avail + 2, (u16)(q->avail_idx + rnd(3) - 1)); break;
        default: w16(q->desc + 16u * ((head + rnd(4)) & (q->size - 1u)) + 14, rand_index(q)); break;
        }
    }
}

static void reset_inflight(struct vdev *d)
{
    u32 n = 1 + rnd(8);
    for (u32 i = 0; i < n && d->nq_used; i++)
        request(d, rnd(d->nq_used));
    if (rnd(2))
        spin(rnd(200000));
    if (rnd(2)) {
        virtio_reset(d);
    } else {
        /* Reset without waiting for it to finish, then straight back into setup. */
        w8(d->common + CC_STATUS, 0);
        virtio_setup(d);
        for (u32 i = 0; i < n && d->nq_used; i++)
            request(d, rnd(d->nq_used));
    }
}

static int needs_live_device(u32 kind)
{
    return kind == A_CHAIN || kind == A_INDIRECT || kind == A_HUGE_IDX ||
           kind == A_RESET_INFLIGHT || kind == A_MSIX || kind == A_TOCTOU ||
           kind == A_REQUEST || kind == A_QUEUE_RECONF || kind == A_BAR_MOVE ||
           kind == A_NOTIFY_STORM;
}

u32 only_kind;

void attack(u32 op)
{
    if (!ndevs)
        return;
    struct vdev *d = &devs[rnd(ndevs)];
    u32 kind = rnd(A_COUNT);
    if (only_kind)
        kind = (only_kind - 1) % A_COUNT;
    if (verbose) {
        uart_init();
        print("OP ");
        putdec(op);
        print(" ");
        print(names[kind]);
        print(" slot=");
        putdec(d->slot);
        print(" tsc=");
        puthex(rdtsc());
        print("\n");
    }
    if (needs_live_device(kind)) {
        u8 st = virtio_status(d);
        if (rnd(4) == 0 || !(st & ST_DRIVER_OK) || (st & ST_NEEDS_RESET) || !d->nq_used)
            if (virtio_setup(d) < 0)
                return;
    }
    u32 qi = d->nq_used ? rnd(d->nq_used) : 0;
    switch (kind) {
    case A_CHAIN: chain_attack(d, qi, 0); break;
    case A_INDIRECT: chain_attack(d, qi, 1); break;
    case A_HUGE_IDX: {
        static const u16 jumps[] = {0x8000, 0xffff, 2, 0x1000};
        struct vq *q = &d->q[qi];
        u16 j = rnd(2) ? jumps[rnd(4)] : (u16)(q->size + 1 + rnd(q->size));
        q->avail_idx = (u16)(q->avail_idx + j);
        w16(q->avail + 2, q->avail_idx);
        virtio_kick(d, qi);
        break;
    }
    case A_RING_BAD: ring_attack(d); break;
    case A_RESET_INFLIGHT: reset_inflight(d); break;
    case A_FEATURES: features_attack(d); break;
    case A_MSIX: msix_attack(d); break;
    case A_BAR_STORM: bar_storm(d, rnd(2) ? 0x8000 : BAR_SLOT_SIZE); break;
    case A_CFG_STORM: cfg_storm(); break;
    case A_PORT_STORM: port_storm(); break;
    case A_NOTIFY_STORM: notify_storm(d); break;
    case A_HOLE_STORM: hole_storm(); break;
    case A_DEVCFG: devcfg_storm(d); break;
    case A_TOCTOU: toctou(d, qi); break;
    case A_REQUEST: {
        u32 n = 1 + rnd(8);
        for (u32 i = 0; i < n; i++)
            request(d, rnd(d->nq_used));
        break;
    }
    case A_QUEUE_RECONF: queue_reconf(d); break;
    case A_BAR_MOVE: bar_move(d); break;
    default: break;
    }
}
