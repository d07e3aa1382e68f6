/*
 * fuzz_virtqueue: the split-virtqueue library (core/virtio/virtqueue.c) as a
 * hostile driver sees it.  The input programs a queue over 64 KiB of guest
 * RAM (an exact-size heap block, so ASan catches any access outside it) and
 * then plays driver and device at once: it writes descriptors, avail
 * entries and raw bytes, and pops, pushes and asks whether to interrupt.
 *
 * Checked on top of the sanitizers:
 *  - every buffer vq_pop returns lies inside RAM, has host == ram + gpa,
 *    a non-zero length, and device-readable buffers come first;
 *  - nbufs <= cap, head < size, results are only 1 / 0 / -EMSGSIZE / -EIO;
 *  - -EIO leaves the queue broken, and a broken queue stays broken (every
 *    later pop is -EIO) until it is restarted;
 *  - vq_push succeeds exactly for heads this harness holds in flight, and
 *    the in-flight count matches;
 *  - vq_should_notify answers 0 or 1, and 0 when nothing was pushed since
 *    the last call;
 *  - at the end, vq_save records the queue as it is, and vq_reset or
 *    vq_fini (header flag bit 2) frees it and stops it.
 *
 * Input: a 6-byte header, then ops (first byte % OP_COUNT):
 *   header  u8 log2 size (% 9: 1..256), u8 flags (bit 0 EVENT_IDX, bit 1 raw
 *           unaligned ring addresses, bit 2 end with vq_fini rather than
 *           vq_reset), u16 desc, u16 avail, u16 used
 *           (ring addresses in units of their alignment unless raw)
 *   0 pop      u8 cap (% 17)
 *   1 push     u8 sel: bit 7 clear = the sel-th chain in flight, set = raw
 *              head (u16 follows); u32 written
 *   2 notify
 *   3 mem      u16 gpa, u8 len (% 33), bytes: raw write into RAM
 *   4 desc     u16 index (% size), u32 addr, u32 len, u8 flags, u16 next
 *   5 avail    u16 head: append to the avail ring and publish
 *   6 idx      u16: avail->idx as is
 *   7 restart  u8: bit 0 EVENT_IDX (vq_reset + vq_start)
 *   8 suppress u8 which, u16 value: avail->flags (even) or used_event (odd)
 *   9 table    u16 gpa, u8 n (% 9), n x (u32 addr, u16 len, u8 flags, u8 next)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "fuzz_target.h"
#include "virtio/virtqueue.h"

#define RAM_SIZE (64u << 10)
#define MAX_SIZE 256u
#define MAX_OPS 2048u
#define MAX_CAP 16u

static uint8_t *ram;

static void *ram_map(void *opaque, uint64_t gpa, uint64_t len)
{
    (void)opaque;
    return gpa <= RAM_SIZE && len <= RAM_SIZE - gpa ? ram + gpa : NULL;
}

static const struct vq_mem mem = {ram_map, NULL};

struct state {
    struct virtqueue q;
    int event_idx;
    int was_broken;
    uint8_t inflight[MAX_SIZE]; /* heads this harness holds */
    uint32_t ninflight;
    uint16_t avail_idx;         /* driver side */
    int pushed_since_notify;
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ram = malloc(RAM_SIZE);
    if (ram == NULL)
        abort();
    return 0;
}

/* Write `len` bytes into RAM, clipped to it (the driver may point anywhere). */
static void ram_put(uint64_t gpa, const void *src, size_t len)
{
    if (gpa >= RAM_SIZE)
        return;
    if (len > RAM_SIZE - gpa)
        len = RAM_SIZE - gpa;
    memcpy(ram + gpa, src, len);
}

static void put_desc(uint64_t gpa, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    uint8_t d[16];
    memcpy(d, &addr, 8);
    memcpy(d + 8, &len, 4);
    memcpy(d + 12, &flags, 2);
    memcpy(d + 14, &next, 2);
    ram_put(gpa, d, sizeof(d));
}

static void start(struct state *s, int event_idx)
{
    uint16_t size = s->q.size;
    uint64_t d = s->q.desc_gpa, a = s->q.avail_gpa, u = s->q.used_gpa;
    vq_reset(&s->q, MAX_SIZE);
    s->q.size = size;
    s->q.desc_gpa = d;
    s->q.avail_gpa = a;
    s->q.used_gpa = u;
    s->event_idx = event_idx;
    int r = vq_start(&s->q, &mem, event_idx);
    if (r != 0 && r != -EFAULT && r != -EINVAL)
        fuzz_fail("vq_start returned %d", r);
    if ((r == 0) != (s->q.started != 0))
        fuzz_fail("vq_start returned %d but started is %d", r, s->q.started);
    memset(s->inflight, 0, sizeof(s->inflight));
    s->ninflight = 0;
    s->was_broken = 0;
    s->pushed_since_notify = 0;
}

static void check_bufs(const struct state *s, const nimbus_vq_buf *b, uint32_t n, uint32_t cap,
                       uint16_t head)
{
    if (n > cap)
        fuzz_fail("vq_pop returned %u buffers with cap %u", n, cap);
    if (head >= s->q.size)
        fuzz_fail("vq_pop returned head %u of a %u-entry queue", head, s->q.size);
    int seen_write = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (b[i].len == 0 || b[i].gpa >= RAM_SIZE || b[i].len > RAM_SIZE - b[i].gpa)
            fuzz_fail("buffer %u [0x%llx +%u] is not inside RAM", i,
                      (unsigned long long)b[i].gpa, b[i].len);
        if ((const uint8_t *)b[i].host != ram + b[i].gpa)
            fuzz_fail("buffer %u host pointer does not match its gpa", i);
        if (b[i].flags & ~NIMBUS_VQ_BUF_WRITE)
            fuzz_fail("buffer %u has unknown flags 0x%x", i, b[i].flags);
        if (b[i].flags & NIMBUS_VQ_BUF_WRITE)
            seen_write = 1;
        else if (seen_write)
            fuzz_fail("device-readable buffer %u after a writable one", i);
        /* Touch every byte: ASan proves the whole range is real memory. */
        volatile uint8_t sink = 0;
        for (uint32_t k = 0; k < b[i].len; k += 512)
            sink ^= ((const uint8_t *)b[i].host)[k];
        sink ^= ((const uint8_t *)b[i].host)[b[i].len - 1];
        (void)sink;
    }
}

static void op_pop(struct state *s, struct fuzz_in *in)
{
    static nimbus_vq_buf bufs[MAX_CAP];
    uint32_t cap = fin_u8(in) % (MAX_CAP + 1), n = 0;
    uint16_t head = 0;
    uint16_t used_before = s->q.used_idx;
    int r = vq_pop(&s->q, &mem, cap ? bufs : NULL, cap, &n, &head);
    if (s->was_broken && r != -EIO)
        fuzz_fail("a broken queue yielded %d instead of -EIO", r);
    switch (r) {
    case 1:
        check_bufs(s, bufs, n, cap, head);
        if (s->inflight[head])
            fuzz_fail("vq_pop returned head %u, already in flight", head);
        s->inflight[head] = 1;
        s->ninflight++;
        break;
    case 0:
        break;
    case -EMSGSIZE:
        if ((uint16_t)(used_before + 1) != s->q.used_idx)
            fuzz_fail("-EMSGSIZE without handing the chain back");
        s->pushed_since_notify = 1;
        break;
    case -EIO:
        if (!s->q.broken || s->q.why_broken == NULL)
            fuzz_fail("-EIO but the queue is not marked broken");
        s->was_broken = 1;
        break;
    default:
        fuzz_fail("vq_pop returned %d", r);
    }
    if (s->q.started && s->q.inflight != s->ninflight)
        fuzz_fail("queue counts %u chains in flight, the harness %u", s->q.inflight,
                  s->ninflight);
}

static void op_push(struct state *s, struct fuzz_in *in)
{
    uint8_t sel = fin_u8(in);
    uint32_t head = 0;
    if (sel & 0x80) {
        head = (uint32_t)fin_le(in, 2);
    } else if (s->ninflight) {
        uint32_t k = sel % s->ninflight;
        for (head = 0; head < MAX_SIZE; head++)
            if (s->inflight[head] && k-- == 0)
                break;
    }
    uint32_t written = (uint32_t)fin_le(in, 4);
    int expect_ok = s->q.started && head < MAX_SIZE && s->inflight[head];
    int r = vq_push(&s->q, (uint16_t)head, written);
    if (expect_ok ? r != 0 : r != -EINVAL)
        fuzz_fail("vq_push(head %u) returned %d, expected %d", head, r,
                  expect_ok ? 0 : -EINVAL);
    if (expect_ok) {
        s->inflight[head] = 0;
        s->ninflight--;
        s->pushed_since_notify = 1;
    }
}

static void op_notify(struct state *s)
{
    int r = vq_should_notify(&s->q);
    if (r != 0 && r != 1)
        fuzz_fail("vq_should_notify returned %d", r);
    if (r && !s->pushed_since_notify)
        fuzz_fail("vq_should_notify wants an interrupt with nothing new pushed");
    s->pushed_since_notify = 0;
}

static void op_table(struct fuzz_in *in)
{
    uint64_t gpa = fin_le(in, 2);
    unsigned n = fin_u8(in) % 9;
    for (unsigned i = 0; i < n; i++) {
        uint64_t addr = fin_le(in, 4);
        uint32_t len = (uint32_t)fin_le(in, 2);
        uint8_t flags = fin_u8(in), next = fin_u8(in);
        put_desc(gpa + 16u * i, addr, len, flags & 7, next);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct state s;
    struct fuzz_in in = {data, size};
    memset(ram, 0, RAM_SIZE);
    uint8_t lg = fin_u8(&in), flags = fin_u8(&in);
    uint64_t d = fin_le(&in, 2), a = fin_le(&in, 2), u = fin_le(&in, 2);
    vq_init(&s.q, MAX_SIZE);
    s.q.size = (uint16_t)(1u << (lg % 9));
    s.q.desc_gpa = flags & 2 ? d : d * 16 % RAM_SIZE;
    s.q.avail_gpa = flags & 2 ? a : a * 2 % RAM_SIZE;
    s.q.used_gpa = flags & 2 ? u : u * 4 % RAM_SIZE;
    s.avail_idx = 0;
    start(&s, flags & 1);

    for (unsigned nops = 0; fin_more(&in) && nops < MAX_OPS; nops++) {
        switch (fin_u8(&in) % 10) {
        case 0:
            op_pop(&s, &in);
            break;
        case 1:
            op_push(&s, &in);
            break;
        case 2:
            op_notify(&s);
            break;
        case 3: {
            uint64_t gpa = fin_le(&in, 2);
            const uint8_t *b;
            size_t n = fin_take(&in, fin_u8(&in) % 33, &b);
            ram_put(gpa, b, n);
            break;
        }
        case 4: {
            uint16_t idx = (uint16_t)(fin_le(&in, 2) % s.q.size);
            uint64_t addr = fin_le(&in, 4);
            uint32_t len = (uint32_t)fin_le(&in, 4);
            uint8_t fl = fin_u8(&in);
            uint16_t next = (uint16_t)fin_le(&in, 2);
            put_desc(s.q.desc_gpa + 16u * idx, addr, len, fl & 7, next);
            break;
        }
        case 5: {
            uint16_t head = (uint16_t)fin_le(&in, 2);
            ram_put(s.q.avail_gpa + 4 + 2u * (s.avail_idx % s.q.size), &head, 2);
            s.avail_idx++;
            ram_put(s.q.avail_gpa + 2, &s.avail_idx, 2);
            break;
        }
        case 6: {
            uint16_t idx = (uint16_t)fin_le(&in, 2);
            s.avail_idx = idx;
            ram_put(s.q.avail_gpa + 2, &idx, 2);
            break;
        }
        case 7:
            start(&s, fin_u8(&in) & 1);
            break;
        case 8: {
            uint8_t which = fin_u8(&in);
            uint16_t v = (uint16_t)fin_le(&in, 2);
            ram_put(which & 1 ? s.q.avail_gpa + 4 + 2u * s.q.size : s.q.avail_gpa, &v, 2);
            break;
        }
        case 9:
            op_table(&in);
            break;
        }
    }
    struct vq_state st;
    vq_save(&s.q, &st);
    if (st.size != s.q.size || st.last_avail != s.q.last_avail || st.used_idx != s.q.used_idx ||
        st.desc_gpa != s.q.desc_gpa || st.avail_gpa != s.q.avail_gpa ||
        st.used_gpa != s.q.used_gpa || st.started != (s.q.started != 0) ||
        st.event_idx != (s.q.event_idx != 0))
        fuzz_fail("vq_save does not record the queue as it is");
    if (flags & 4)
        vq_fini(&s.q);
    else
        vq_reset(&s.q, MAX_SIZE);
    if (s.q.popped != NULL || s.q.started)
        fuzz_fail("%s left the queue allocated or running", flags & 4 ? "vq_fini" : "vq_reset");
    return 0;
}
