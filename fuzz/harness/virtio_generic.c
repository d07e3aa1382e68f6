/*
 * The hostile virtio driver behind fuzz_virtio_<name>, fuzz_virtio_generic
 * and out-of-tree plugins' harnesses (nimbus/fuzz_virtio.h; installed as
 * libnimbus-fuzz-virtio.a): any virtio device plugin behind the fake host's
 * virtio transport.  The plugin is the one the harness names, else
 * $NIMBUS_FUZZ_PLUGIN.  Options: $NIMBUS_FUZZ_OPTIONS, else a per-plugin
 * default (virtio_blk gets
 * a 1 MiB temporary image, virtio_rng a FIFO the harness writes into (op
 * 11), so its source can run dry and end; both are created in /dev/shm
 * (else /tmp) and removed at exit;
 * virtio_net gets two queue pairs on socketpairs whose other ends the
 * harness feeds from the input, op 11), else the harness's own.
 *
 * Input: u64 features (masked to what is offered; VERSION_1 is forced), u8
 * queue size (1 << (v % 7), capped at the device maximum), then ops (first
 * byte % 16; byte formats in fuzz/README.md, "virtio op stream").
 *
 * Findings besides sanitizer reports and host-contract violations
 * (pushing a head not in flight, notifying a stopped queue, ...):
 *  - create() reporting regions (the transport owns a virtio device's BARs);
 *  - a used element naming a head that is not a queue entry (unless the
 *    input wrote into ring memory itself);
 *  - after the virtio reset, state_save differs from right after create()
 *    or an IRQ line is not back at its power-on level; the device touching
 *    a queue after reset is caught as a contract violation;
 *  - a counter (ABI minor 3; read with every "used" op, wait and reset)
 *    that goes down, or one the fake host finds malformed.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nimbus/virtio_util.h>

#include "fuzz_target.h"
#include <nimbus/fuzz_virtio.h>
#include "plugin_target.h"


#define VG_RAM (512u << 10)
#define VG_MAX_OPS 1024u
#define VG_MAX_SEGS 8u
#define VG_FILL_MAX 64u   /* input bytes copied into a readable buffer */
#define VG_IMAGE_SIZE (1u << 20)
#define VG_DRAIN_POLL_MS 20

static struct plugin_target t;
static nimbus_virtio_info info;
static char tmp_path[64];
static uint64_t buf_start; /* fake_host_buf space right after activation */
static uint64_t last_buf;
static uint32_t last_buf_len;
/* Ring memory was written by something other than the two ends (input
 * bytes, or a device writing into a buffer that overlaps a ring): used
 * entries may then be garbage without any bug. */
static int rings_tainted;

/* Chains the device keeps without any I/O pending: receive buffers
 * waiting for input, or chains a state_restore dropped.  Waiting for them
 * again would only cost time. */
static uint32_t held;

/* virtio_net: per queue pair, the plugin's end of a socketpair (kept here
 * to empty it between inputs) and the peer the input writes frames into. */
#define VG_NET_PAIRS 2u
#define VG_NET_MAX_DGRAM (64u << 10)
static int net_dev_end[VG_NET_PAIRS] = {-1, -1};
static int net_peer[VG_NET_PAIRS] = {-1, -1};
/* virtio_rng: the harness's end of the FIFO the device reads (O_RDWR, so
 * the device never sees EOF while it is open); -1 once op 12 closed it. */
#define VG_RNG_PREFILL 4096u
static int rng_fifo;
static int rng_writer = -1;
/* Completions come from async I/O (blk's io_uring) unless every backend is
 * a socketpair in this process: then there is nothing to wait for. */
static int poll_ms = VG_DRAIN_POLL_MS;

/* Taint when [gpa, gpa+len) may reach below the buffer space. */
static void touch(uint64_t gpa)
{
    if (gpa < buf_start)
        rings_tainted = 1;
}

static void remove_tmp(void)
{
    if (tmp_path[0])
        unlink(tmp_path);
}

/* A temporary file of `size` bytes with a recognisable pattern.  On tmpfs
 * when there is one: a FLUSH request on a disk-backed file costs an
 * fdatasync of tens of milliseconds, 100 times the rest of an input. */
static void make_tmp(const char *tag, uint32_t size)
{
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(tmp_path, sizeof(tmp_path), "%s/nimbus-fuzz-%s-XXXXXX", dir, tag);
    int fd = mkstemp(tmp_path);
    if (fd < 0) {
        perror("fuzz: setup: mkstemp");
        exit(1);
    }
    atexit(remove_tmp);
    static uint8_t block[4096];
    for (uint32_t off = 0; off < size; off += sizeof(block)) {
        for (uint32_t i = 0; i < sizeof(block); i++)
            block[i] = (uint8_t)((off >> 9) * 31 + i);
        if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block)) {
            perror("fuzz: setup: write");
            exit(1);
        }
    }
    close(fd);
}

/* The FIFO is named like a temporary file: mkstemp reserves the name. */
static void make_rng_fifo(void)
{
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(tmp_path, sizeof(tmp_path), "%s/nimbus-fuzz-rng-XXXXXX", dir);
    int fd = mkstemp(tmp_path);
    if (fd < 0 || close(fd) < 0 || unlink(tmp_path) < 0 || mkfifo(tmp_path, 0600) < 0) {
        perror("fuzz: setup: rng FIFO");
        exit(1);
    }
    atexit(remove_tmp);
    rng_fifo = 1;
}

/* Each input starts with VG_RNG_PREFILL bytes in the FIFO and a writer. */
static void rng_refill(void)
{
    static uint8_t buf[VG_RNG_PREFILL];
    if (rng_writer < 0)
        rng_writer = open(tmp_path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (rng_writer < 0) {
        perror("fuzz: rng FIFO");
        exit(1);
    }
    while (read(rng_writer, buf, sizeof(buf)) > 0)
        ;
    for (uint32_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 13 + 5);
    if (write(rng_writer, buf, sizeof(buf)) < 0)
        perror("fuzz: rng FIFO write");
}

/* Op 11 for virtio_rng: u8 n, n bytes into the FIFO (dropped when full). */
static void rng_input(struct fuzz_in *in)
{
    const uint8_t *b;
    size_t n = fin_take(in, fin_u8(in), &b);
    if (rng_writer >= 0 && n > 0 && write(rng_writer, b, n) < 0)
        return; /* full, or closed by op 12 */
}

static void make_net_sockets(void)
{
    for (uint32_t i = 0; i < VG_NET_PAIRS; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
            perror("fuzz: setup: socketpair");
            exit(1);
        }
        /* A small send buffer (32 KiB once the kernel doubles it) lets a
         * few transmitted frames fill it: the device's "backend full" path. */
        int sndbuf = 16384;
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
        net_dev_end[i] = sv[0];
        net_peer[i] = sv[1];
    }
}

/* Empty a socket: what the device sent, or left unread, in an earlier input. */
static void net_drain(int fd)
{
    static uint8_t junk[VG_NET_MAX_DGRAM + 64];
    while (fd >= 0 && recv(fd, junk, sizeof(junk), MSG_DONTWAIT) >= 0)
        ;
}

static void net_drain_all(int dev_side)
{
    for (uint32_t i = 0; i < VG_NET_PAIRS; i++) {
        net_drain(net_peer[i]);
        if (dev_side)
            net_drain(net_dev_end[i]);
    }
}

/* Op 11 for virtio_net: u8 sel, u8 n, n bytes.  One datagram into queue
 * pair sel & 1's socket: the n bytes (header first), padded with a pattern
 * to (sel >> 2) * 1024 + n bytes when bit 1 is set (large, merged frames). */
static void net_input(struct fuzz_in *in)
{
    static uint8_t dgram[VG_NET_MAX_DGRAM];
    uint8_t sel = fin_u8(in);
    const uint8_t *b;
    size_t n = fin_take(in, fin_u8(in), &b);
    size_t len = n;
    memcpy(dgram, b, n);
    if (sel & 2) {
        len += (size_t)(sel >> 2) * 1024u;
        for (size_t i = n; i < len; i++)
            dgram[i] = (uint8_t)(i * 7);
    }
    if (send(net_peer[sel & 1], dgram, len, MSG_DONTWAIT) < 0)
        return; /* the socket is full: the frame is lost, as on a wire */
}

/* The option string a plugin needs to be created at all; NULL when the
 * user's $NIMBUS_FUZZ_OPTIONS or "" will do. */
static const char *default_options(const char *name)
{
    static char opts[128];
    if (getenv("NIMBUS_FUZZ_OPTIONS") || name == NULL)
        return NULL;
    if (strcmp(name, "virtio_blk") == 0) {
        make_tmp("blk", VG_IMAGE_SIZE);
        snprintf(opts, sizeof(opts), "path=%s,num_queues=2", tmp_path);
    } else if (strcmp(name, "virtio_rng") == 0) {
        make_rng_fifo();
        snprintf(opts, sizeof(opts), "src=%s", tmp_path);
        poll_ms = 0; /* reads are synchronous: nothing completes later */
    } else if (strcmp(name, "virtio_net") == 0) {
        make_net_sockets();
        snprintf(opts, sizeof(opts), "fd=%d:%d,mac=52:54:00:12:34:56", net_dev_end[0],
                 net_dev_end[1]);
        poll_ms = 0;
    } else {
        return NULL;
    }
    return opts;
}

int nimbus_fuzz_virtio_init(int *argc, char ***argv, const char *plugin, const char *options)
{
    (void)argc;
    (void)argv;
    const char *opts = default_options(pt_plugin_name(plugin));
    if (!opts && options && !getenv("NIMBUS_FUZZ_OPTIONS")) {
        static char given[512];
        snprintf(given, sizeof(given), "%s", options);
        opts = given;
    }
    /* pt_init takes its options from the environment; the variable must not
     * outlive it, or the child processes of libFuzzer's -fork/-merge would
     * all open (and find locked) this process's temporary image. */
    if (opts)
        setenv("NIMBUS_FUZZ_OPTIONS", opts, 1);
    pt_init(&t, plugin, VG_RAM);
    if (opts) {
        t.options = opts;
        unsetenv("NIMBUS_FUZZ_OPTIONS");
    }
    if (t.nregions != 0)
        fuzz_fail("%s: a virtio device's create() reported %u regions", t.p->name,
                  t.nregions);
    int r = fake_host_virtio_attach(&t.host, t.p, t.dev, &info);
    if (r < 0) {
        fprintf(stderr, "fuzz: setup: %s is not a usable virtio device (%d)\n", t.p->name, r);
        exit(1);
    }
    /* Inputs start from "attached, driver not loaded yet". */
    fake_host_snapshot_take(&t.host, &t.snap);
    fprintf(stderr, "fuzz: virtio device id %u, %u queue(s) of up to %u, config %u bytes\n",
            info.device_id, info.num_queues, info.queue_size_max, info.config_size);
    return 0;
}

static void activate(uint64_t features, uint8_t qsel)
{
    uint32_t qs = 1u << (qsel % 7); /* 1..64: small rings keep inputs fast */
    while (qs > info.queue_size_max)
        qs >>= 1;
    /* A device may refuse a feature set (negative return): then it is in
     * NEEDS_RESET and the ops below mostly hit a dead device, as in a VM. */
    fake_host_virtio_activate(&t.host, t.p, t.dev, features, (uint16_t)qs);
    buf_start = t.host.virtio.buf_next;
    rings_tainted = 0;
    held = 0;
    last_buf = 0;
    last_buf_len = 0;
}

static uint64_t alloc_buf(uint32_t len)
{
    struct fake_host_virtio *v = &t.host.virtio;
    if (len == 0)
        len = 1;
    uint64_t b = fake_host_buf(&t.host, len);
    if (b == 0 && v->active) {
        /* Full: start over (chains in flight may now overlap, fine). */
        v->buf_next = buf_start;
        b = fake_host_buf(&t.host, len);
    }
    return b;
}

/* The last value of each counter (ABI minor 3) seen in this process: a
 * counter only counts up, across resets, restores and inputs alike. */
static struct fake_host_counters last_counters;

static void check_counters(void)
{
    struct fake_host_counters c;
    /* The fake host checks names, repeats and late emits itself. */
    if (fake_host_counters(&t.host, t.p, t.dev, &c) < 0)
        return;
    for (uint32_t i = 0; i < c.n; i++) {
        uint64_t before;
        if (fake_host_counter(&last_counters, c.name[i], &before) && c.value[i] < before)
            fuzz_fail("%s: counter %s went down from %llu to %llu", t.p->name, c.name[i],
                      (unsigned long long)before, (unsigned long long)c.value[i]);
    }
    last_counters = c;
}

/* Check and drop every used element of every queue, then the counters. */
static void drain_used(void)
{
    uint32_t head, len;
    for (uint32_t q = 0; q < info.num_queues; q++)
        while (fake_host_vq_used(&t.host, q, &head, &len) == 1)
            if (!rings_tainted && head >= t.host.virtio.queue_size)
                fuzz_fail("%s: used element for head %u in a %u-entry queue", t.p->name,
                          head, t.host.virtio.queue_size);
    check_counters();
}

static uint32_t chains_in_flight(void)
{
    uint32_t n = 0;
    if (!t.host.virtio.active)
        return 0;
    for (uint32_t q = 0; q < info.num_queues; q++)
        n += t.host.virtio.vq[q].inflight;
    return n;
}

/* Let asynchronous I/O finish: poll until no more than `held` chains are in
 * flight or the device stays quiet twice (then what is left is held). */
static void wait_io(void)
{
    int quiet = 0;
    net_drain_all(0); /* a peer that reads: blocked transmits go on */
    while (chains_in_flight() > held && quiet < 2) {
        int n = fake_host_poll(&t.host, t.p, t.dev, poll_ms);
        quiet = n > 0 ? 0 : quiet + 1;
    }
    if (quiet == 2)
        held = chains_in_flight();
    drain_used();
}

/* Virtio reset (driver writes status 0) and the power-on check. */
static void reset_and_check(const char *when)
{
    fake_host_virtio_reset(&t.host, t.p, t.dev);
    if (t.can_save) {
        uint64_t len = pt_save(&t, when);
        if (len != t.baseline_len || memcmp(t.buf, t.baseline, len) != 0) {
            uint64_t i = 0;
            while (i < len && i < t.baseline_len && t.buf[i] == t.baseline[i])
                i++;
            fuzz_fail("%s: virtio reset did not restore the power-on state "
                      "(state_save differs at byte %llu) %s",
                      t.p->name, (unsigned long long)i, when);
        }
    }
    for (uint32_t g = 0; g < FAKE_HOST_GSIS; g++)
        if (t.host.irq_level[g] != t.snap.irq_level[g])
            fuzz_fail("%s: virtio reset left GSI %u at level %u %s", t.p->name, g,
                      t.host.irq_level[g], when);
    /* Late completions or timers must not touch the (gone) queues: the
     * fake host aborts on such a vq_push / vq_notify. */
    fake_host_poll(&t.host, t.p, t.dev, 0);
    fake_host_advance(&t.host, t.p, t.dev, 1000000ull);
    check_counters(); /* reset must not have cleared them */
}

/* One segment of a chain: where it points is chosen by the input. */
static void decode_seg(struct fuzz_in *in, struct fake_vq_seg *s)
{
    uint8_t kind = fin_u8(in);
    uint32_t len = (uint32_t)fin_le(in, 2);
    s->write = (kind >> 2) & 1;
    switch (kind & 3) {
    case 0: /* a fresh buffer; readable ones get bytes from the input */
        len %= 4097;
        s->gpa = alloc_buf(len);
        s->len = len;
        if (!s->write && s->gpa) {
            const uint8_t *b;
            size_t n = fin_take(in, len < VG_FILL_MAX ? len : VG_FILL_MAX, &b);
            memcpy(t.host.ram + s->gpa, b, n);
            fake_host_mark_dirty(&t.host, s->gpa, n ? n : 1);
        }
        last_buf = s->gpa;
        last_buf_len = len;
        break;
    case 1: /* anywhere, mostly outside RAM */
        s->gpa = fin_le(in, 4) << (kind >> 5);
        s->len = len;
        touch(s->gpa);
        break;
    case 2: { /* into ring memory: the device must not be able to hurt it */
        uint64_t d = 0, a = 0, u = 0;
        uint32_t q = info.num_queues ? (kind >> 3) % info.num_queues : 0;
        fake_host_vq_layout(&t.host, q, &d, &a, &u);
        uint64_t base = (kind & 0x80) ? u : (kind & 0x40) ? a : d;
        s->gpa = base + fin_u8(in);
        s->len = len % 256;
        touch(s->gpa);
        break;
    }
    default: /* the previous buffer again (overlapping chains) */
        s->gpa = last_buf;
        s->len = last_buf_len ? len % (last_buf_len + 1) : 0;
        break;
    }
}

static void op_add(struct fuzz_in *in)
{
    uint8_t q = fin_u8(in), shape = fin_u8(in);
    uint32_t n = (shape & 7) + 1;
    struct fake_vq_seg segs[VG_MAX_SEGS];
    for (uint32_t i = 0; i < n; i++)
        decode_seg(in, &segs[i]);
    uint32_t qn = info.num_queues ? q % info.num_queues : 0;
    int r = (shape & 8) ? fake_host_vq_add_indirect(&t.host, qn, segs, n)
                        : fake_host_vq_add(&t.host, qn, segs, n);
    if (r >= 0 && !(shape & 0x10))
        fake_host_vq_kick(&t.host, t.p, t.dev, qn);
}

/* A chain shaped like a real request: header, data, 1-byte status. */
static void op_request(struct fuzz_in *in)
{
    uint8_t q = fin_u8(in), shape = fin_u8(in);
    uint32_t qn = info.num_queues ? q % info.num_queues : 0;
    struct fake_vq_seg segs[3];
    const uint8_t *hdr;
    segs[0].gpa = alloc_buf(16);
    segs[0].len = 16;
    segs[0].write = 0;
    size_t n = fin_take(in, 16, &hdr);
    if (segs[0].gpa) {
        memset(t.host.ram + segs[0].gpa, 0, 16);
        memcpy(t.host.ram + segs[0].gpa, hdr, n);
    }
    uint32_t dlen = 512u * ((shape & 7) + 1);
    segs[1].gpa = alloc_buf(dlen);
    segs[1].len = dlen;
    segs[1].write = (shape >> 3) & 1;
    segs[2].gpa = alloc_buf(1);
    segs[2].len = 1;
    segs[2].write = 1;
    if (fake_host_vq_add(&t.host, qn, segs, 3) >= 0)
        fake_host_vq_kick(&t.host, t.p, t.dev, qn);
}

static void op_raw_ring(struct fuzz_in *in)
{
    uint8_t q = fin_u8(in), which = fin_u8(in);
    uint64_t off = fin_le(in, 2);
    const uint8_t *b;
    size_t n = fin_take(in, fin_u8(in) % 9, &b);
    uint64_t d, a, u;
    uint32_t qn = info.num_queues ? q % info.num_queues : 0;
    if (fake_host_vq_layout(&t.host, qn, &d, &a, &u) < 0 || n == 0)
        return;
    uint16_t qs = t.host.virtio.queue_size;
    uint64_t base = which % 3 == 0 ? d : which % 3 == 1 ? a : u;
    uint64_t size = which % 3 == 0 ? 16ull * qs : which % 3 == 1 ? 6ull + 2 * qs : 6ull + 8 * qs;
    off %= size;
    if (n > size - off)
        n = size - off;
    memcpy(t.host.ram + base + off, b, n);
    fake_host_mark_dirty(&t.host, base + off, n);
    rings_tainted = 1;
}

static void op_ram_write(struct fuzz_in *in)
{
    uint64_t gpa = fin_le(in, 4) % VG_RAM;
    const uint8_t *b;
    size_t n = fin_take(in, fin_u8(in) % 33, &b);
    if (n > VG_RAM - gpa)
        n = VG_RAM - gpa;
    memcpy(t.host.ram + gpa, b, n);
    fake_host_mark_dirty(&t.host, gpa, n);
    touch(gpa);
}

static void op_config(struct fuzz_in *in, int write)
{
    uint8_t off = fin_u8(in);
    uint32_t len = 1u << (fin_u8(in) & 3);
    uint64_t v = write ? fin_le(in, len) : 0;
    uint8_t data[8];
    if (info.config_size == 0)
        return;
    /* The transport forwards only accesses inside config space. */
    uint32_t o = off % info.config_size;
    while (len > info.config_size - o)
        len >>= 1;
    if (len == 0)
        return;
    memcpy(data, &v, sizeof(data));
    if (write)
        fake_host_virtio_config_write(&t.host, t.p, t.dev, o, data, len);
    else
        fake_host_virtio_config_read(&t.host, t.p, t.dev, o, data, len);
}

enum {
    OP_CFG_READ,
    OP_CFG_WRITE,
    OP_ADD,
    OP_KICK,
    OP_USED,
    OP_RAW_RING,
    OP_POLL,
    OP_ADVANCE,
    OP_FIRE_NEXT,
    OP_RESET,
    OP_SAVE_RESTORE,
    OP_CHR_INPUT,
    OP_CHR_MODE,
    OP_WAIT,
    OP_REQUEST,
    OP_RAM_WRITE,
    OP_COUNT
};

static void run_ops(struct fuzz_in *in, uint64_t features)
{
    struct fake_host *h = &t.host;
    for (unsigned nops = 0; fin_more(in) && nops < VG_MAX_OPS; nops++) {
        switch (fin_u8(in) % OP_COUNT) {
        case OP_CFG_READ:
            op_config(in, 0);
            break;
        case OP_CFG_WRITE:
            op_config(in, 1);
            break;
        case OP_ADD:
            op_add(in);
            break;
        case OP_KICK: {
            uint8_t q = fin_u8(in);
            fake_host_vq_kick(h, t.p, t.dev, info.num_queues ? q % info.num_queues : 0);
            break;
        }
        case OP_USED:
            drain_used();
            break;
        case OP_RAW_RING:
            op_raw_ring(in);
            break;
        case OP_POLL: {
            /* Waiting only makes sense with I/O outstanding; otherwise it
             * would just cost the fuzzer 20 ms. */
            int wait = (fin_u8(in) & 1) && chains_in_flight() > held;
            fake_host_poll(h, t.p, t.dev, wait ? poll_ms : 0);
            break;
        }
        case OP_ADVANCE: {
            uint8_t e = fin_u8(in), m = fin_u8(in);
            fake_host_advance(h, t.p, t.dev, ((uint64_t)m + 1) << (e % 41));
            break;
        }
        case OP_FIRE_NEXT:
            fake_host_fire_next(h, t.p, t.dev);
            break;
        case OP_RESET: {
            uint8_t flip = fin_u8(in), qsel = fin_u8(in);
            reset_and_check("(reset op)");
            features ^= flip < 64 ? NIMBUS_BIT(flip) : 0;
            activate(features, qsel);
            break;
        }
        case OP_SAVE_RESTORE:
            /* A VMM drains I/O before it saves a device. */
            wait_io();
            pt_roundtrip(&t, "(save/restore op)");
            break;
        case OP_CHR_INPUT: {
            if (net_peer[0] >= 0) {
                net_input(in);
                break;
            }
            if (rng_fifo) {
                rng_input(in);
                break;
            }
            const uint8_t *b;
            size_t n = fin_take(in, fin_u8(in), &b);
            pt_chr_input(&t, b, n);
            break;
        }
        case OP_CHR_MODE: {
            uint8_t m = fin_u8(in) % 4;
            h->chr_absent = m == 3;
            h->chr_stall = m == 2;
            h->chr_accept_max = m == 1 ? 1 : 0;
            /* virtio_rng: mode 3 ends its source (EOF once the FIFO is read empty). */
            if (m == 3 && rng_writer >= 0) {
                close(rng_writer);
                rng_writer = -1;
            }
            break;
        }
        case OP_WAIT:
            wait_io();
            break;
        case OP_REQUEST:
            op_request(in);
            break;
        case OP_RAM_WRITE:
            op_ram_write(in);
            break;
        }
    }
}

int nimbus_fuzz_virtio_one(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    pt_begin(&t); /* host back to "attached", RAM cleared, device reset */
    net_drain_all(1);
    if (rng_fifo)
        rng_refill();
    uint64_t features = fin_le(&in, 8);
    activate(features, fin_u8(&in));
    run_ops(&in, features);
    wait_io();
    fake_host_advance(&t.host, t.p, t.dev, 1000000000ull);
    reset_and_check("(end of input)");
    if (fake_host_violation_count(&t.host))
        fuzz_fail("%s: host API contract violations", t.p->name);
    return 0;
}
