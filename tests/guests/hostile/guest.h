/*
 * The hostile guest: a freestanding 32-bit PVH guest (no libc, no paging,
 * interrupts off) that drives nimbus's devices honestly, attacks them with
 * seeded operations, then checks that nimbus wrote nothing it was not
 * allowed to.  Everything random comes from one splitmix64 stream seeded on
 * the command line, so a seed always does the same thing.
 */
#ifndef HOSTILE_GUEST_H
#define HOSTILE_GUEST_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

/*
 * Guest-physical memory plan (identity, paging off).  Devices may write
 * only inside the arena: every ring and every buffer offered writable lies
 * there.  Writable buffers never overlap what the device reads as
 * descriptors (rings at the arena's start, attack tables after them), so
 * data a device writes can never turn into a descriptor that points it at a
 * canary.  Canary regions, including the pages right around the arena and
 * the end of RAM (where "straddling" descriptors point), are never offered
 * writable and must keep their seed-derived pattern.
 */
#define IMAGE_END 0x00400000u
#define ARENA 0x01000000u
#define ARENA_RINGS_PER_DEV 0x40000u /* 256 KiB: 4 queues x 64 KiB */
#define ARENA_TABLES 0x00200000u  /* offset of attack rings and indirect tables (2 MiB) */
#define ZERO_TABLE (ARENA + ARENA_TABLES) /* 64 KiB nobody writes: an empty desc table */
#define ARENA_SCRATCH 0x00400000u /* offset of the buffers attacks offer writable */
#define ARENA_END 0x02000000u
#define CANARY_MID 0x04000000u    /* a canary region away from the arena */
#define CANARY_MAX 0x00400000u    /* largest canary_kib= (each of the four regions) */

#define MAX_DEVS 8
#define MAX_QUEUES 4
#define QSIZE_USED 64u     /* ring size the honest driver programs (capped by the device) */
#define QSLOT_DESCS 8u     /* descriptors per honest chain slot */

/* ---- port and memory access ---------------------------------------------------- */
static inline void outb(u16 p, u8 v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(p)); }
static inline void outw(u16 p, u16 v) { __asm__ volatile("outw %0, %1" ::"a"(v), "Nd"(p)); }
static inline void outl(u16 p, u32 v) { __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(p)); }
static inline u8 inb(u16 p) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(p)); return v; }
static inline u16 inw(u16 p) { u16 v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(p)); return v; }
static inline u32 inl(u16 p) { u32 v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(p)); return v; }

static inline void w8(u32 a, u8 v) { *(volatile u8 *)a = v; }
static inline void w16(u32 a, u16 v) { *(volatile u16 *)a = v; }
static inline void w32(u32 a, u32 v) { *(volatile u32 *)a = v; }
static inline u8 r8(u32 a) { return *(volatile u8 *)a; }
static inline u16 r16(u32 a) { return *(volatile u16 *)a; }
static inline u32 r32(u32 a) { return *(volatile u32 *)a; }
static inline void w64(u32 a, u64 v) { w32(a, (u32)v); w32(a + 4, (u32)(v >> 32)); }
static inline void barrier(void) { __asm__ volatile("lock; addl $0,(%%esp)" ::: "memory"); }

static inline u64 rdtsc(void)
{
    u32 lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((u64)hi << 32) | lo;
}

/* ---- lib.c ------------------------------------------------------------------------ */
void *memset(void *d, int c, u32 n);
void *memcpy(void *d, const void *s, u32 n);
int memcmp(const void *a, const void *b, u32 n);
void uart_init(void);
void print(const char *s);
void putdec(u64 v);
void puthex(u64 v);
void rng_seed(u64 s);
u64 rnd64(void);
u32 rnd(u32 n);         /* uniform-ish in [0, n), n > 0 */
u64 splitmix(u64 *state);
u64 mix64(u64 z);
/* Busy wait for roughly `cycles` TSC ticks. */
void spin(u64 cycles);

/* ---- pci.c ----------------------------------------------------------------------------- */
#define PCI_ECAM 0xe0000000u
#define PCI_MMIO32 0xc0000000u
#define PCI_MMIO32_END 0xe0000000u
#define BAR_SLOT_SIZE 0x10000u /* each device's BAR 0 at PCI_MMIO32 + slot * this */
u32 cfg_read(u32 slot, u32 off, u32 len);
void cfg_write(u32 slot, u32 off, u32 len, u32 val);
u32 ecam_addr(u32 bus, u32 slot, u32 fn, u32 off);
/* As firmware: BAR 0 into the 32-bit window, memory decoding and bus master on. */
void pci_assign(u32 slot);

/* ---- virtio.c ---------------------------------------------------------------------------- */
enum dev_kind { DK_NET = 1, DK_BLK = 2, DK_CON = 3, DK_RNG = 4 };

struct vq {
    u16 size, notify_off;
    u32 desc, avail, used, bufs; /* guest addresses in the arena */
    u16 avail_idx, used_seen;
};

struct vdev {
    u32 slot, kind, bar;
    u32 common, isr, devcfg, notify, notify_mult; /* absolute addresses */
    u32 msix_cap; /* config offset of the MSI-X capability, 0 if none */
    u16 nq, nq_used;
    u64 offered;
    u32 rings; /* this device's ring area in the arena */
    struct vq q[MAX_QUEUES];
    int ro;            /* blk: VIRTIO_BLK_F_RO offered */
    u64 capacity;      /* blk: sectors */
    int is_template;   /* rng: the virtio_template plugin's seeded stream */
    u8 mac[6];
};

extern struct vdev devs[MAX_DEVS];
extern u32 ndevs;

/* Common configuration fields (virtio 1.2, 4.1.4.3). */
#define CC_DFSELECT 0x00
#define CC_DF 0x04
#define CC_GFSELECT 0x08
#define CC_GF 0x0c
#define CC_MSIX 0x10
#define CC_NUMQ 0x12
#define CC_STATUS 0x14
#define CC_QSELECT 0x16
#define CC_QSIZE 0x18
#define CC_QMSIX 0x1a
#define CC_QENABLE 0x1c
#define CC_QNOTIFY_OFF 0x1e
#define CC_QDESC 0x20
#define CC_QDRIVER 0x28
#define CC_QDEVICE 0x30
#define CC_SIZE 0x3c

#define ST_ACK 1u
#define ST_DRIVER 2u
#define ST_DRIVER_OK 4u
#define ST_FEATURES_OK 8u
#define ST_NEEDS_RESET 0x40u
#define F_VERSION_1 32u

#define D_NEXT 1u
#define D_WRITE 2u
#define D_INDIRECT 4u

/* Find every virtio function, give it a BAR and read its capabilities. */
void virtio_probe(void);
/* Reset and bring up to DRIVER_OK with all queues enabled; 0 on success. */
int virtio_setup(struct vdev *d);
void virtio_reset(struct vdev *d);
u8 virtio_status(const struct vdev *d);
void virtio_kick(const struct vdev *d, u32 qi);
/* Publish a chain of n buffers (addr, len, flags) on queue qi and kick; returns the head. */
u16 vq_submit(struct vdev *d, u32 qi, const u64 *addr, const u32 *len, const u16 *flags,
              u32 n);
/* Wait (bounded) for the next used element: 1 with *id and *written filled, 0 on timeout. */
int vq_wait(struct vdev *d, u32 qi, u32 *id, u32 *written, u64 timeout_cycles);
#define WAIT_LONG 6000000000ull /* TSC ticks: seconds on any host, even under ASan */
const char *kind_name(u32 kind);

/* ---- honest.c ----------------------------------------------------------------------- */
extern u64 template_seed;
/* Phase 1 (and the final round): one real request per device; returns failures. */
u32 honest_round(int final);

/* ---- attack.c --------------------------------------------------------------------------- */
extern u64 ram_end; /* end of the RAM below 4 GiB */
extern int verbose;
extern u32 only_kind; /* 1 + an attack kind to run only that one (only=), 0: all */
void attack(u32 op);

/* ---- storm.c --------------------------------------------------------------------------- */
/* MMIO write at an absolute address, defused where it would hit an MSI-X entry or ring field. */
void bar_write(u32 addr, u32 len, u32 val);
void bar_read(u32 addr, u32 len);
u32 rand_width(void); /* 1, 2 or 4 */
void bar_storm(struct vdev *d, u32 range);
void devcfg_storm(struct vdev *d);
void notify_storm(struct vdev *d);
void cfg_storm(void);
void port_storm(void);
void hole_storm(void);

/* ---- canary.c ------------------------------------------------------------------------------- */
extern u32 canary_size; /* bytes per region: canary_kib= on the command line */
void canary_fill(u64 seed);
/* 0 when intact; otherwise prints the first damaged address and returns 1. */
int canary_check(u64 seed);
u32 canary_pick(u32 *len);

#endif
