/*
 * The split-virtqueue library (core/virtio/virtqueue.c) against well-formed
 * and hostile rings.  Guest RAM here is two exact-size heap blocks with the
 * x86 layout's hole between them, so under ASan any access outside them is
 * caught, and ring or buffer addresses in the hole or past RAM must be
 * refused.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "virtio/virtqueue.h"

#define LO_SIZE (256u << 10)           /* RAM [0, 256 KiB) */
#define HI_BASE (4ull << 30)           /* RAM [4 GiB, 4 GiB + 64 KiB) */
#define HI_SIZE (64u << 10)
#define HOLE (3ull << 30)              /* 3 GiB: MMIO hole, not RAM */

#define QS 8u
#define DESC 0x1000u
#define AVAIL 0x2000u
#define USED 0x3000u
#define BUF 0x8000u

#define F_NEXT 1u
#define F_WRITE 2u
#define F_INDIRECT 4u

struct env {
    uint8_t *lo, *hi;
    struct vq_mem mem;
    struct virtqueue q;
    uint16_t avail_idx; /* driver side */
    nimbus_vq_buf bufs[16];
    uint32_t nbufs;
    uint16_t head;
};

static void *env_map(void *opaque, uint64_t gpa, uint64_t len)
{
    struct env *e = opaque;
    if (gpa < LO_SIZE && len <= LO_SIZE - gpa)
        return e->lo + gpa;
    if (gpa >= HI_BASE && gpa - HI_BASE < HI_SIZE && len <= HI_SIZE - (gpa - HI_BASE))
        return e->hi + (gpa - HI_BASE);
    return NULL;
}

/* A map that also claims [8 GiB, 16 GiB) is RAM (never dereferenced by the
 * library): lets a chain add up to more than 4 GiB. */
static uint8_t fake_big[1];
static void *big_map(void *opaque, uint64_t gpa, uint64_t len)
{
    if (gpa >= (8ull << 30) && gpa < (16ull << 30) && len <= (16ull << 30) - gpa)
        return fake_big;
    return env_map(opaque, gpa, len);
}

static struct env *env_new(int event_idx)
{
    struct env *e = calloc(1, sizeof(*e));
    assert_non_null(e);
    e->lo = calloc(1, LO_SIZE);
    e->hi = calloc(1, HI_SIZE);
    assert_non_null(e->lo);
    assert_non_null(e->hi);
    e->mem.map = env_map;
    e->mem.opaque = e;
    vq_init(&e->q, QS);
    e->q.desc_gpa = DESC;
    e->q.avail_gpa = AVAIL;
    e->q.used_gpa = USED;
    assert_int_equal(vq_start(&e->q, &e->mem, event_idx), 0);
    return e;
}

static int env_setup(void **state)
{
    *state = env_new(0);
    return 0;
}

static int env_setup_event(void **state)
{
    *state = env_new(1);
    return 0;
}

static int env_teardown(void **state)
{
    struct env *e = *state;
    vq_reset(&e->q, QS);
    free(e->lo);
    free(e->hi);
    free(e);
    return 0;
}

static void put16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, 2);
}

static uint16_t get16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static void put_desc_at(uint8_t *p, uint64_t addr, uint32_t len, uint16_t flags,
                        uint16_t next)
{
    memcpy(p, &addr, 8);
    memcpy(p + 8, &len, 4);
    memcpy(p + 12, &flags, 2);
    memcpy(p + 14, &next, 2);
}

static void desc(struct env *e, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                 uint16_t next)
{
    put_desc_at(e->lo + DESC + 16u * i, addr, len, flags, next);
}

/* Publish `head` in the avail ring. */
static void avail(struct env *e, uint16_t head)
{
    put16(e->lo + AVAIL + 4 + 2u * (e->avail_idx % QS), head);
    e->avail_idx++;
    put16(e->lo + AVAIL + 2, e->avail_idx);
}

static int pop(struct env *e, uint32_t cap)
{
    return vq_pop(&e->q, &e->mem, e->bufs, cap, &e->nbufs, &e->head);
}

static uint16_t used_idx(const struct env *e)
{
    return get16(e->lo + USED + 2);
}

static uint32_t used_id(const struct env *e, uint16_t n)
{
    return get32(e->lo + USED + 4 + 8u * (n % QS));
}

static uint32_t used_len(const struct env *e, uint16_t n)
{
    return get32(e->lo + USED + 8 + 8u * (n % QS));
}

/* The chain must be refused as malformed and the queue must stay broken. */
static void expect_broken(struct env *e)
{
    assert_int_equal(pop(e, 16), -EIO);
    assert_true(e->q.broken);
    assert_non_null(e->q.why_broken);
    assert_int_equal(pop(e, 16), -EIO);
    assert_int_equal(used_idx(e), 0); /* nothing was handed back */
}

/* ---- well-formed rings ------------------------------------------------------ */

static void test_simple_chain(void **state)
{
    struct env *e = *state;
    assert_int_equal(pop(e, 16), 0); /* empty */
    desc(e, 3, BUF, 64, F_NEXT, 5);
    desc(e, 5, BUF + 0x100, 512, F_WRITE | F_NEXT, 6);
    desc(e, 6, HI_BASE + 16, 100, F_WRITE, 0);
    avail(e, 3);
    assert_int_equal(pop(e, 16), 1);
    assert_int_equal(e->head, 3);
    assert_int_equal(e->nbufs, 3);
    assert_ptr_equal(e->bufs[0].host, e->lo + BUF);
    assert_int_equal(e->bufs[0].gpa, BUF);
    assert_int_equal(e->bufs[0].len, 64);
    assert_int_equal(e->bufs[0].flags, 0);
    assert_ptr_equal(e->bufs[1].host, e->lo + BUF + 0x100);
    assert_int_equal(e->bufs[1].flags, NIMBUS_VQ_BUF_WRITE);
    assert_ptr_equal(e->bufs[2].host, e->hi + 16);
    assert_int_equal(e->bufs[2].flags, NIMBUS_VQ_BUF_WRITE);
    assert_int_equal(e->q.inflight, 1);
    assert_int_equal(pop(e, 16), 0);

    assert_int_equal(vq_push(&e->q, 3, 600), 0);
    assert_int_equal(used_idx(e), 1);
    assert_int_equal(used_id(e, 0), 3);
    assert_int_equal(used_len(e, 0), 600);
    assert_int_equal(e->q.inflight, 0);
    assert_int_equal(vq_should_notify(&e->q), 1);
    assert_int_equal(vq_should_notify(&e->q), 0); /* nothing new */
}

static void test_ring_wraps(void **state)
{
    struct env *e = *state;
    /* 3 * QS chains through the 16-bit indices and ring slots. */
    for (unsigned round = 0; round < 3 * QS; round++) {
        uint16_t h = (uint16_t)(round % QS);
        desc(e, h, BUF + 16u * h, 16, F_WRITE, 0);
        avail(e, h);
        assert_int_equal(pop(e, 16), 1);
        assert_int_equal(e->head, h);
        assert_int_equal(vq_push(&e->q, h, 8), 0);
        assert_int_equal(used_idx(e), (uint16_t)(round + 1));
        assert_int_equal(used_id(e, (uint16_t)round), h);
    }
    /* A full ring at once is fine: idx exactly QS ahead. */
    for (uint16_t h = 0; h < QS; h++) {
        desc(e, h, BUF, 16, 0, 0);
        avail(e, h);
    }
    for (uint16_t h = 0; h < QS; h++)
        assert_int_equal(pop(e, 16), 1);
    assert_int_equal(e->q.inflight, QS);
}

static void test_indirect(void **state)
{
    struct env *e = *state;
    uint8_t *t = e->lo + 0x6000; /* 3-entry table, deliberately unaligned */
    put_desc_at(t + 8, BUF, 16, F_NEXT, 2);
    put_desc_at(t + 8 + 32, BUF + 0x40, 32, F_WRITE, 0);
    put_desc_at(t + 8 + 16, 0, 0, 0, 0); /* unused entry */
    /* The WRITE flag of the indirect descriptor itself is ignored. */
    desc(e, 0, 0x6008, 48, F_INDIRECT | F_WRITE, 0);
    avail(e, 0);
    assert_int_equal(pop(e, 16), 1);
    assert_int_equal(e->nbufs, 2);
    assert_int_equal(e->bufs[0].gpa, BUF);
    assert_int_equal(e->bufs[0].flags, 0);
    assert_int_equal(e->bufs[1].gpa, BUF + 0x40);
    assert_int_equal(e->bufs[1].flags, NIMBUS_VQ_BUF_WRITE);

    /* Direct descriptors may precede the indirect one. */
    desc(e, 1, BUF + 0x100, 8, F_NEXT, 2);
    desc(e, 2, 0x6008, 48, F_INDIRECT, 0);
    avail(e, 1);
    assert_int_equal(pop(e, 16), 1);
    assert_int_equal(e->nbufs, 3);
    assert_int_equal(e->bufs[0].gpa, BUF + 0x100);
}

static void test_zero_length_skipped(void **state)
{
    struct env *e = *state;
    /* Zero-length descriptors count for nothing, wherever they point and
     * whatever their direction. */
    desc(e, 0, BUF, 8, F_NEXT, 1);
    desc(e, 1, HOLE, 0, F_WRITE | F_NEXT, 2);
    desc(e, 2, UINT64_MAX, 0, F_NEXT, 3);
    desc(e, 3, BUF + 8, 8, F_WRITE, 0);
    avail(e, 0);
    assert_int_equal(pop(e, 16), 1);
    assert_int_equal(e->nbufs, 2);
    assert_int_equal(e->bufs[1].gpa, BUF + 8);
}

static void test_too_many_bufs(void **state)
{
    struct env *e = *state;
    desc(e, 0, BUF, 8, F_NEXT, 1);
    desc(e, 1, BUF, 8, F_NEXT, 2);
    desc(e, 2, BUF, 8, F_WRITE, 0);
    avail(e, 0);
    assert_int_equal(pop(e, 2), -EMSGSIZE);
    assert_false(e->q.broken);
    assert_int_equal(used_idx(e), 1);
    assert_int_equal(used_id(e, 0), 0);
    assert_int_equal(used_len(e, 0), 0);
    assert_int_equal(e->q.inflight, 0);
    assert_int_equal(vq_push(&e->q, 0, 0), -EINVAL); /* already handed back */
    avail(e, 0);
    assert_int_equal(pop(e, 3), 1);

    /* A chain malformed beyond `cap` is malformed, not just long. */
    desc(e, 4, BUF, 8, F_NEXT, 5);
    desc(e, 5, BUF, 8, F_NEXT, 6);
    desc(e, 6, HOLE, 8, 0, 0);
    avail(e, 4);
    assert_int_equal(pop(e, 1), -EIO);
}

static void test_written_clamped(void **state)
{
    struct env *e = *state;
    desc(e, 0, BUF, 8, F_NEXT, 1);
    desc(e, 1, BUF + 8, 24, F_WRITE, 0);
    avail(e, 0);
    assert_int_equal(pop(e, 16), 1);
    assert_int_equal(vq_push(&e->q, 0, 1000), 0);
    assert_int_equal(used_len(e, 0), 24);
    assert_int_equal(e->q.clamped, 1);
}

static void test_no_interrupt_flag(void **state)
{
    struct env *e = *state;
    assert_int_equal(vq_should_notify(&e->q), 0); /* nothing pushed yet */
    desc(e, 0, BUF, 8, F_WRITE, 0);
    put16(e->lo + AVAIL, 1); /* VIRTQ_AVAIL_F_NO_INTERRUPT */
    avail(e, 0);
    assert_int_equal(pop(e, 16), 1);
    assert_int_equal(vq_push(&e->q, 0, 1), 0);
    assert_int_equal(vq_should_notify(&e->q), 0);
    put16(e->lo + AVAIL, 0);
    avail(e, 0);
    assert_int_equal(pop(e, 16), 1);
    assert_int_equal(vq_push(&e->q, 0, 1), 0);
    assert_int_equal(vq_should_notify(&e->q), 1);
}

static void test_event_idx(void **state)
{
    struct env *e = *state;
    uint8_t *used_event = e->lo + AVAIL + 4 + 2 * QS;
    uint8_t *avail_event = e->lo + USED + 4 + 8 * QS;

    /* Device side: an empty pop asks for a kick at the next entry. */
    put16(avail_event, 0x5555);
    assert_int_equal(pop(e, 16), 0);
    assert_int_equal(get16(avail_event), 0);
    for (uint16_t h = 0; h < 4; h++) {
        desc(e, h, BUF, 8, F_WRITE, 0);
        avail(e, h);
    }
    assert_int_equal(pop(e, 16), 1);
    assert_int_equal(get16(avail_event), 1); /* follows every pop */
    assert_int_equal(pop(e, 16), 1);
    assert_int_equal(pop(e, 16), 1);
    assert_int_equal(pop(e, 16), 1);
    assert_int_equal(pop(e, 16), 0);
    assert_int_equal(get16(avail_event), 4);

    /* Driver side: used_event 0 wants an interrupt for the first entry only. */
    put16(used_event, 0);
    assert_int_equal(vq_push(&e->q, 0, 1), 0);
    assert_int_equal(vq_should_notify(&e->q), 1);
    assert_int_equal(vq_push(&e->q, 1, 1), 0);
    assert_int_equal(vq_should_notify(&e->q), 0); /* suppressed */
    /* Ask for entry 3 (used idx reaching 4): two pushes batched cross it. */
    put16(used_event, 3);
    assert_int_equal(vq_push(&e->q, 2, 1), 0);
    assert_int_equal(vq_should_notify(&e->q), 0); /* idx 3: not yet */
    assert_int_equal(vq_push(&e->q, 3, 1), 0);
    assert_int_equal(vq_should_notify(&e->q), 1); /* idx 4 passed entry 3 */
    assert_int_equal(vq_should_notify(&e->q), 0);

    /* The NO_INTERRUPT flag is ignored with EVENT_IDX (used_event rules). */
    put16(e->lo + AVAIL, 1);
    put16(used_event, 4);
    avail(e, 0);
    assert_int_equal(pop(e, 16), 1);
    assert_int_equal(vq_push(&e->q, 0, 1), 0);
    assert_int_equal(vq_should_notify(&e->q), 1);
}

/* ---- hostile rings -------------------------------------------------------------- */

static void test_loop(void **state)
{
    struct env *e = *state;
    desc(e, 0, BUF, 8, F_NEXT, 1);
    desc(e, 1, BUF, 8, F_NEXT, 0);
    avail(e, 0);
    expect_broken(e);
    /* Fixing the ring does not un-break the queue: only a reset does. */
    desc(e, 1, BUF, 8, 0, 0);
    assert_int_equal(pop(e, 16), -EIO);
    vq_reset(&e->q, QS);
    assert_false(e->q.broken);
    assert_false(e->q.started);
    assert_int_equal(pop(e, 16), 0);
}

static void test_self_loop(void **state)
{
    struct env *e = *state;
    desc(e, 2, BUF, 8, F_NEXT, 2);
    avail(e, 2);
    expect_broken(e);
}

static void test_longest_direct_chain(void **state)
{
    struct env *e = *state;
    for (uint16_t i = 0; i < QS; i++)
        desc(e, i, BUF, 8, i + 1u < QS ? F_NEXT : 0, (uint16_t)(i + 1));
    avail(e, 0);
    assert_int_equal(pop(e, 16), 1);
    assert_int_equal(e->nbufs, QS);
}

static void test_buffer_outside_ram(void **state)
{
    static const struct {
        uint64_t addr;
        uint32_t len;
    } bad[] = {
        {LO_SIZE, 1},                     /* just past the low block */
        {LO_SIZE - 8, 16},                /* straddles its end */
        {HOLE, 16},                       /* in the 3-4 GiB hole */
        {HI_BASE - 4, 8},                 /* straddles into high RAM */
        {HI_BASE + HI_SIZE - 1, 2},       /* past the end of RAM */
        {UINT64_MAX - 7, 16},             /* address + length wraps */
        {1ull << 52, 4096},
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        struct env *e = env_new(0);
        desc(e, 0, BUF, 8, F_NEXT, 1);
        desc(e, 1, bad[k].addr, bad[k].len, F_WRITE, 0);
        avail(e, 0);
        expect_broken(e);
        env_teardown((void **)&e);
    }
    (void)state;
}

static void test_length_overflow(void **state)
{
    struct env *e = *state;
    e->mem.map = big_map;
    /* Four 1 GiB buffers and one more byte: past UINT32_MAX in total. */
    for (uint16_t i = 0; i < 4; i++)
        desc(e, i, (8ull << 30) + ((uint64_t)i << 30), 1u << 30, F_NEXT, (uint16_t)(i + 1));
    desc(e, 4, BUF, 1, 0, 0);
    avail(e, 0);
    expect_broken(e);
}

static void test_length_at_limit(void **state)
{
    struct env *e = *state;
    e->mem.map = big_map;
    /* Exactly UINT32_MAX bytes is still a valid chain. */
    for (uint16_t i = 0; i < 3; i++)
        desc(e, i, (8ull << 30) + ((uint64_t)i << 30), 1u << 30, F_NEXT, (uint16_t)(i + 1));
    desc(e, 3, 12ull << 30, (1u << 30) - 1, 0, 0);
    avail(e, 0);
    assert_int_equal(pop(e, 16), 1);
    assert_int_equal(e->nbufs, 4);
}

static void test_read_after_write(void **state)
{
    struct env *e = *state;
    desc(e, 0, BUF, 8, F_WRITE | F_NEXT, 1);
    desc(e, 1, BUF + 8, 8, 0, 0);
    avail(e, 0);
    expect_broken(e);
}

static void test_read_after_write_indirect(void **state)
{
    struct env *e = *state;
    /* The direction rule spans the direct and the indirect part. */
    put_desc_at(e->lo + 0x6000, BUF, 8, 0, 0);
    desc(e, 0, BUF, 8, F_WRITE | F_NEXT, 1);
    desc(e, 1, 0x6000, 16, F_INDIRECT, 0);
    avail(e, 0);
    expect_broken(e);
}

static void test_nested_indirect(void **state)
{
    struct env *e = *state;
    put_desc_at(e->lo + 0x6000, BUF, 8, F_NEXT, 1);
    put_desc_at(e->lo + 0x6010, 0x6000, 32, F_INDIRECT, 0);
    desc(e, 0, 0x6000, 32, F_INDIRECT, 0);
    avail(e, 0);
    expect_broken(e);
}

static void test_indirect_with_next(void **state)
{
    struct env *e = *state;
    put_desc_at(e->lo + 0x6000, BUF, 8, 0, 0);
    desc(e, 0, 0x6000, 16, F_INDIRECT | F_NEXT, 1);
    desc(e, 1, BUF, 8, 0, 0);
    avail(e, 0);
    expect_broken(e);
}

static void test_bad_indirect_table(void **state)
{
    static const struct {
        uint64_t addr;
        uint32_t len;
    } bad[] = {
        {0x6000, 0},                 /* empty */
        {0x6000, 17},                /* not whole descriptors */
        {0x6000, 8},
        {HOLE, 16},                  /* in the hole */
        {LO_SIZE - 16, 32},          /* straddles the end of RAM */
        {UINT64_MAX - 15, 32},       /* wraps */
        {0x6000, 16u * (VQ_MAX_CHAIN + 1)},
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        struct env *e = env_new(0);
        desc(e, 0, bad[k].addr, bad[k].len, F_INDIRECT, 0);
        avail(e, 0);
        expect_broken(e);
        env_teardown((void **)&e);
    }
    (void)state;
}

static void test_indirect_loop_and_range(void **state)
{
    struct env *e = *state;
    put_desc_at(e->lo + 0x6000, BUF, 8, F_NEXT, 1);
    put_desc_at(e->lo + 0x6010, BUF, 8, F_NEXT, 0);
    desc(e, 0, 0x6000, 32, F_INDIRECT, 0);
    avail(e, 0);
    expect_broken(e);

    struct env *f = env_new(0);
    put_desc_at(f->lo + 0x6000, BUF, 8, F_NEXT, 2); /* entry 2 of a 2-entry table */
    desc(f, 0, 0x6000, 32, F_INDIRECT, 0);
    avail(f, 0);
    expect_broken(f);
    env_teardown((void **)&f);
}

static void test_chain_limit(void **state)
{
    struct env *e = *state;
    /* QS - 1 direct descriptors and a full-size indirect table: over
     * VQ_MAX_CHAIN in total although each part alone is fine. */
    uint64_t table = 0x10000;
    for (uint32_t i = 0; i < VQ_MAX_CHAIN; i++)
        put_desc_at(e->lo + table + 16u * i, BUF, 1, i + 1 < VQ_MAX_CHAIN ? F_NEXT : 0,
                    (uint16_t)(i + 1));
    for (uint16_t i = 0; i + 1u < QS; i++)
        desc(e, i, BUF, 1, F_NEXT, (uint16_t)(i + 1));
    desc(e, QS - 1, table, 16u * VQ_MAX_CHAIN, F_INDIRECT, 0);
    avail(e, 0);
    expect_broken(e);

    /* The indirect descriptor plus VQ_MAX_CHAIN - 1 table entries is the
     * longest chain accepted (and too long for a small cap). */
    struct env *f = env_new(0);
    uint32_t n = VQ_MAX_CHAIN - 1;
    for (uint32_t i = 0; i < n; i++)
        put_desc_at(f->lo + table + 16u * i, BUF, 1, i + 1 < n ? F_NEXT : 0,
                    (uint16_t)(i + 1));
    desc(f, 0, table, 16u * n, F_INDIRECT, 0);
    avail(f, 0);
    assert_int_equal(pop(f, 16), -EMSGSIZE);
    assert_false(f->q.broken);
    env_teardown((void **)&f);
}

static void test_head_out_of_range(void **state)
{
    struct env *e = *state;
    avail(e, QS);
    expect_broken(e);
}

static void test_next_out_of_range(void **state)
{
    struct env *e = *state;
    desc(e, 0, BUF, 8, F_NEXT, QS);
    avail(e, 0);
    expect_broken(e);
}

static void test_avail_idx_races_ahead(void **state)
{
    struct env *e = *state;
    for (uint16_t h = 0; h < QS; h++)
        desc(e, h, BUF, 8, 0, 0);
    put16(e->lo + AVAIL + 2, QS + 1);
    expect_broken(e);

    /* Also after the queue has moved on, and backwards. */
    struct env *f = env_new(0);
    desc(f, 0, BUF, 8, 0, 0);
    avail(f, 0);
    assert_int_equal(pop(f, 16), 1);
    put16(f->lo + AVAIL + 2, 0); /* idx went back: 0xffff chains "pending" */
    expect_broken(f);
    env_teardown((void **)&f);
}

static void test_head_in_flight_twice(void **state)
{
    struct env *e = *state;
    desc(e, 0, BUF, 8, 0, 0);
    avail(e, 0);
    assert_int_equal(pop(e, 16), 1);
    avail(e, 0);
    assert_int_equal(pop(e, 16), -EIO);
    assert_true(e->q.broken);
}

static void test_push_unknown_head(void **state)
{
    struct env *e = *state;
    assert_int_equal(vq_push(&e->q, 0, 0), -EINVAL);
    assert_int_equal(vq_push(&e->q, QS, 0), -EINVAL);
    assert_int_equal(vq_push(&e->q, UINT16_MAX, 0), -EINVAL);
    desc(e, 1, BUF, 8, 0, 0);
    avail(e, 1);
    assert_int_equal(pop(e, 16), 1);
    assert_int_equal(vq_push(&e->q, 0, 0), -EINVAL);
    assert_int_equal(vq_push(&e->q, 1, 0), 0);
    assert_int_equal(vq_push(&e->q, 1, 0), -EINVAL); /* twice */
    assert_int_equal(used_idx(e), 1);
    /* After a reset nothing is in flight any more. */
    avail(e, 1);
    assert_int_equal(pop(e, 16), 1);
    vq_reset(&e->q, QS);
    assert_int_equal(vq_push(&e->q, 1, 0), -EINVAL);
}

static void test_bad_rings(void **state)
{
    static const struct {
        uint64_t desc, avail, used;
        uint16_t size;
        int err;
    } bad[] = {
        {HOLE, AVAIL, USED, QS, -EFAULT},                  /* desc in the hole */
        {DESC, HOLE + 0x800000, USED, QS, -EFAULT},        /* avail in the hole */
        {DESC, AVAIL, HI_BASE + HI_SIZE, QS, -EFAULT},     /* used past RAM */
        {DESC, AVAIL, HI_BASE + HI_SIZE - 64, QS, -EFAULT}, /* used runs off RAM */
        {LO_SIZE - 64, AVAIL, USED, QS, -EFAULT},          /* desc straddles */
        {DESC + 8, AVAIL, USED, QS, -EFAULT},              /* misaligned */
        {DESC, AVAIL + 1, USED, QS, -EFAULT},
        {DESC, AVAIL, USED + 2, QS, -EFAULT},
        {UINT64_MAX - 15, AVAIL, USED, QS, -EFAULT},
        {DESC, AVAIL, USED, 6, -EINVAL},                   /* not a power of two */
        {DESC, AVAIL, USED, 0, -EINVAL},
        {DESC, AVAIL, USED, 16, -EINVAL},                  /* above the max size */
    };
    struct env *e = *state;
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        vq_reset(&e->q, QS);
        e->q.desc_gpa = bad[k].desc;
        e->q.avail_gpa = bad[k].avail;
        e->q.used_gpa = bad[k].used;
        e->q.size = bad[k].size;
        assert_int_equal(vq_start(&e->q, &e->mem, 1), bad[k].err);
        assert_false(e->q.started);
        assert_int_equal(pop(e, 16), 0); /* a stopped queue yields nothing */
        assert_int_equal(vq_should_notify(&e->q), 0);
    }
    /* Rings in high RAM are fine. */
    vq_reset(&e->q, QS);
    e->q.desc_gpa = HI_BASE;
    e->q.avail_gpa = HI_BASE + 0x1000;
    e->q.used_gpa = HI_BASE + 0x2000;
    assert_int_equal(vq_start(&e->q, &e->mem, 0), 0);
}

static void test_save(void **state)
{
    struct env *e = *state;
    desc(e, 0, BUF, 8, 0, 0);
    avail(e, 0);
    assert_int_equal(pop(e, 16), 1);
    assert_int_equal(vq_push(&e->q, 0, 0), 0);
    struct vq_state s;
    vq_save(&e->q, &s);
    assert_int_equal(s.size, QS);
    assert_int_equal(s.last_avail, 1);
    assert_int_equal(s.used_idx, 1);
    assert_int_equal(s.desc_gpa, DESC);
    assert_int_equal(s.avail_gpa, AVAIL);
    assert_int_equal(s.used_gpa, USED);
    assert_int_equal(s.started, 1);
    assert_int_equal(s.event_idx, 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)
#define TE(f) cmocka_unit_test_setup_teardown(f, env_setup_event, env_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_simple_chain),
        T(test_ring_wraps),
        T(test_indirect),
        T(test_zero_length_skipped),
        T(test_too_many_bufs),
        T(test_written_clamped),
        T(test_no_interrupt_flag),
        TE(test_event_idx),
        T(test_loop),
        T(test_self_loop),
        T(test_longest_direct_chain),
        T(test_buffer_outside_ram),
        T(test_length_overflow),
        T(test_length_at_limit),
        T(test_read_after_write),
        T(test_read_after_write_indirect),
        T(test_nested_indirect),
        T(test_indirect_with_next),
        T(test_bad_indirect_table),
        T(test_indirect_loop_and_range),
        T(test_chain_limit),
        T(test_head_out_of_range),
        T(test_next_out_of_range),
        T(test_avail_idx_races_ahead),
        T(test_head_in_flight_twice),
        T(test_push_unknown_head),
        TE(test_bad_rings),
        T(test_save),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
