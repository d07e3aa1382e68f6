/*
 * virtio_net plugin, loaded with dlopen and driven through the fake host's
 * virtio transport.  The backend is one end of an AF_UNIX SOCK_SEQPACKET
 * socketpair per queue pair (frames carry the 12-byte virtio_net_hdr_v1
 * like a vnet-hdr tap), libslirp for user=on, and real taps inside a
 * private network namespace when root and /dev/net/tun allow it.
 *
 * The plugin's counters are read through its own net.h (white box): they
 * are the only trace a dropped frame leaves.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <nimbus/virtio_util.h>

#include "fake_host.h"
#include "test_plugin_load.h"

#include "../../plugins/virtio_net/net.h"

/* virtio 1.2, 5.1 (spelled out here, independent of the plugin). */
enum { B_CSUM = 0, B_GUEST_CSUM = 1, B_CTRL_GUEST_OFFLOADS = 2, B_MTU = 3, B_MAC = 5,
       B_GUEST_TSO4 = 7, B_GUEST_TSO6 = 8, B_GUEST_ECN = 9, B_GUEST_UFO = 10,
       B_HOST_TSO4 = 11, B_HOST_TSO6 = 12, B_HOST_ECN = 13, B_HOST_UFO = 14,
       B_MRG_RXBUF = 15, B_STATUS = 16, B_CTRL_VQ = 17, B_MQ = 22 };
#define BIT(b) (1ull << (b))
#define OFFLOAD_BITS                                                                       \
    (BIT(B_CSUM) | BIT(B_GUEST_CSUM) | BIT(B_CTRL_GUEST_OFFLOADS) | BIT(B_GUEST_TSO4) |     \
     BIT(B_GUEST_TSO6) | BIT(B_GUEST_ECN) | BIT(B_GUEST_UFO) | BIT(B_HOST_TSO4) |           \
     BIT(B_HOST_TSO6) | BIT(B_HOST_ECN) | BIT(B_HOST_UFO))
#define TSO_BITS                                                                           \
    (BIT(B_GUEST_TSO4) | BIT(B_GUEST_TSO6) | BIT(B_GUEST_ECN) | BIT(B_HOST_TSO4) |          \
     BIT(B_HOST_TSO6) | BIT(B_HOST_ECN))
#define UFO_BITS (BIT(B_GUEST_UFO) | BIT(B_HOST_UFO))
#define ALL (~0ull) /* the fake host keeps what is offered */

enum { HF_NEEDS_CSUM = 1, GSO_TCPV4 = 1, GSO_UDP = 3, GSO_TCPV6 = 4, GSO_ECN = 0x80 };
enum { CTRL_MQ = 4, CTRL_MQ_PAIRS_SET = 0, CTRL_OFFLOADS = 5, CTRL_OFFLOADS_SET = 0 };
enum { ACK_OK = 0, ACK_ERR = 1 };

#define HDR 12u
#define MAC "52:54:00:12:34:56"
#define RAM_SIZE (16u << 20)
#define MAX_POLLS 300

static const uint8_t mac_bytes[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

struct fx {
    struct fake_host h;
    const nimbus_plugin *p;
    void *dev;
    nimbus_virtio_info info;
    int peer[NET_MAX_PAIRS]; /* the test's ends of the socketpairs */
    int taps[4];             /* the test's copies of tap fds */
    int oldns;               /* tap tests run in a private netns */
    char err[512];
};

/* ---- fixture ---- */

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(fake_host_init(&f->h, RAM_SIZE), 0);
    f->h.abort_on_violation = 1;
    f->p = test_load_plugin("virtio_net.so");
    for (unsigned i = 0; i < NET_MAX_PAIRS; i++)
        f->peer[i] = -1;
    for (unsigned i = 0; i < 4; i++)
        f->taps[i] = -1;
    f->oldns = -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->dev)
        f->p->ops->destroy(f->dev);
    assert_int_equal(fake_host_violation_count(&f->h), 0);
    assert_int_equal(fake_host_watched(&f->h, 0), -1); /* destroy dropped every watch */
    for (unsigned i = 0; i < NET_MAX_PAIRS; i++)
        if (f->peer[i] >= 0)
            close(f->peer[i]);
    for (unsigned i = 0; i < 4; i++)
        if (f->taps[i] >= 0)
            close(f->taps[i]);
    if (f->oldns >= 0) {
        assert_int_equal(setns(f->oldns, CLONE_NEWNET), 0);
        close(f->oldns);
    }
    fake_host_fini(&f->h);
    free(f);
    return 0;
}

static struct net_dev *nd(struct fx *f)
{
    return f->dev;
}

static int try_create(struct fx *f, const char *opts)
{
    nimbus_region regs[NIMBUS_MAX_REGIONS];
    uint32_t n = NIMBUS_MAX_REGIONS;
    f->err[0] = '\0';
    int r = fake_host_create(&f->h, f->p, opts, &f->dev, regs, &n, f->err, sizeof(f->err));
    if (r == 0)
        assert_int_equal(n, 0);
    else
        f->dev = NULL;
    return r;
}

static void create_ok(struct fx *f, const char *opts)
{
    if (try_create(f, opts) != 0)
        fail_msg("create '%s': %s", opts, f->err);
    assert_int_equal(fake_host_virtio_attach(&f->h, f->p, f->dev, &f->info), 0);
}

/* A socketpair: the test keeps peer[i], the returned end goes to the plugin. */
static int sockpair(struct fx *f, unsigned i)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    f->peer[i] = sv[0];
    return sv[1];
}

/* A device on `pairs` socketpairs; `extra` is appended to the options. */
static void sock_dev(struct fx *f, unsigned pairs, const char *extra)
{
    int fds[NET_MAX_PAIRS];
    char opts[512], *o = opts;
    o += sprintf(o, "fd=");
    for (unsigned i = 0; i < pairs; i++) {
        fds[i] = sockpair(f, i);
        o += sprintf(o, "%s%d", i ? ":" : "", fds[i]);
    }
    snprintf(o, sizeof(opts) - (size_t)(o - opts), ",mac=" MAC "%s%s", extra[0] ? "," : "",
             extra);
    create_ok(f, opts);
    for (unsigned i = 0; i < pairs; i++)
        close(fds[i]); /* the plugin has its own copies */
}

static void activate(struct fx *f, uint64_t features)
{
    assert_int_equal(fake_host_virtio_activate(&f->h, f->p, f->dev, features, 0), 0);
}

static void reset(struct fx *f)
{
    fake_host_virtio_reset(&f->h, f->p, f->dev);
}

/* ---- driver side ---- */

static uint64_t put(struct fx *f, const void *data, uint32_t len)
{
    uint64_t gpa = fake_host_buf(&f->h, len);
    assert_int_not_equal(gpa, 0);
    memcpy(f->h.ram + gpa, data, len);
    return gpa;
}

static void make_hdr(uint8_t h[HDR], uint8_t flags, uint8_t gso, uint16_t hdr_len,
                     uint16_t gso_size, uint16_t cstart, uint16_t coff)
{
    memset(h, 0, HDR);
    h[0] = flags;
    h[1] = gso;
    memcpy(h + 2, &hdr_len, 2);
    memcpy(h + 4, &gso_size, 2);
    memcpy(h + 6, &cstart, 2);
    memcpy(h + 8, &coff, 2);
}

/* An Ethernet frame of `len` bytes: our MAC as source, IPv4, a pattern. */
static void make_frame(uint8_t *b, uint32_t len, uint32_t seed)
{
    for (uint32_t i = 0; i < len; i++)
        b[i] = (uint8_t)(i * 13 + seed * 7 + 1);
    if (len >= 14) {
        memset(b, 0xff, 6);
        memcpy(b + 6, mac_bytes, 6);
        b[12] = 0x08;
        b[13] = 0x00;
    }
}

/* Header + frame in one device-readable buffer on tx queue of `pair`. */
static int tx_one_buf(struct fx *f, unsigned pair, const uint8_t *pkt, uint32_t len)
{
    struct fake_vq_seg s = {put(f, pkt, len), len, 0};
    int head = fake_host_vq_add(&f->h, NET_TXQ(pair), &s, 1);
    assert_true(head >= 0);
    return head;
}

static int post_rx(struct fx *f, unsigned pair, uint32_t len, uint64_t *gpa)
{
    struct fake_vq_seg s = {fake_host_buf(&f->h, len), len, 1};
    assert_int_not_equal(s.gpa, 0);
    memset(f->h.ram + s.gpa, 0xcc, len);
    if (gpa)
        *gpa = s.gpa;
    int head = fake_host_vq_add(&f->h, NET_RXQ(pair), &s, 1);
    assert_true(head >= 0);
    return head;
}

static void kick(struct fx *f, uint32_t q)
{
    assert_int_equal(fake_host_vq_kick(&f->h, f->p, f->dev, q), 0);
}

/* Next used element of q, polling the backend while there is none. */
static int wait_used(struct fx *f, uint32_t q, uint32_t *head, uint32_t *len)
{
    for (int i = 0; i < MAX_POLLS; i++) {
        if (fake_host_vq_used(&f->h, q, head, len))
            return 1;
        fake_host_poll(&f->h, f->p, f->dev, 10);
    }
    return 0;
}

static void expect_used(struct fx *f, uint32_t q, int head, uint32_t len)
{
    uint32_t id = 0, l = 0;
    if (!wait_used(f, q, &id, &l))
        fail_msg("queue %u: head %d never came back", q, head);
    assert_int_equal(id, (uint32_t)head);
    assert_int_equal(l, len);
}

/* Nothing is used on q even after the backend was polled. */
static void expect_idle(struct fx *f, uint32_t q)
{
    fake_host_poll(&f->h, f->p, f->dev, 0);
    assert_int_equal(fake_host_vq_used(&f->h, q, NULL, NULL), 0);
}

static ssize_t peer_recv(struct fx *f, unsigned i, uint8_t *buf, size_t cap, int timeout_ms)
{
    struct pollfd pfd = {f->peer[i], POLLIN, 0};
    if (poll(&pfd, 1, timeout_ms) <= 0)
        return -1;
    return recv(f->peer[i], buf, cap, MSG_DONTWAIT);
}

static void peer_send(struct fx *f, unsigned i, const uint8_t *buf, size_t len)
{
    assert_int_equal(send(f->peer[i], buf, len, MSG_DONTWAIT), (ssize_t)len);
}

static unsigned peer_drain(struct fx *f, unsigned i)
{
    static uint8_t junk[NET_MAX_BUF];
    unsigned n = 0;
    while (recv(f->peer[i], junk, sizeof(junk), MSG_DONTWAIT) >= 0)
        n++;
    return n;
}

/* A control command: class, command, data (readable), ack (writable). */
static uint8_t ctrl(struct fx *f, uint8_t cls, uint8_t cmd, const void *data, uint32_t dlen)
{
    uint8_t b[64];
    b[0] = cls;
    b[1] = cmd;
    if (dlen)
        memcpy(b + 2, data, dlen);
    uint64_t ack = fake_host_buf(&f->h, 1);
    f->h.ram[ack] = 0xee;
    struct fake_vq_seg s[2] = {{put(f, b, 2 + dlen), 2 + dlen, 0}, {ack, 1, 1}};
    uint32_t q = f->info.num_queues - 1;
    int head = fake_host_vq_add(&f->h, q, s, 2);
    assert_true(head >= 0);
    kick(f, q);
    expect_used(f, q, head, 1);
    return f->h.ram[ack];
}

static uint8_t set_pairs(struct fx *f, uint16_t n)
{
    return ctrl(f, CTRL_MQ, CTRL_MQ_PAIRS_SET, &n, 2);
}

static uint8_t set_offloads(struct fx *f, uint64_t bits)
{
    return ctrl(f, CTRL_OFFLOADS, CTRL_OFFLOADS_SET, &bits, 8);
}

/* ---- options ---- */

static unsigned open_fds(void)
{
    unsigned n = 0;
    for (int fd = 0; fd < 1024; fd++)
        n += fcntl(fd, F_GETFD) >= 0;
    return n;
}

static void expect_error(struct fx *f, const char *opts, const char *token)
{
    int r = try_create(f, opts);
    if (r >= 0)
        fail_msg("'%s' was accepted", opts);
    if (!strstr(f->err, token))
        fail_msg("'%s': error '%s' does not name '%s'", opts, f->err, token);
    assert_int_equal(strncmp(f->err, "virtio_net: ", 12), 0);
    assert_null(strchr(f->err, '\n'));
}

static void test_option_errors(void **state)
{
    struct fx *f = *state;
    int s = sockpair(f, 0);
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    char file[] = "/tmp/nimbus-net-XXXXXX";
    int reg = mkstemp(file);
    assert_true(reg >= 0);
    unlink(file);
    unsigned fds_before = open_fds();
    char o[256], t[64];
#define ERR(tok, ...)                                                                          \
    do {                                                                                       \
        snprintf(o, sizeof(o), __VA_ARGS__);                                                   \
        expect_error(f, o, tok);                                                               \
    } while (0)
    ERR("52:54:00:12:34:zz", "fd=%d,mac=52:54:00:12:34:zz", s);
    ERR("'52:54:00:12:34'", "fd=%d,mac=52:54:00:12:34", s);
    ERR("01:00:5e:00:00:01", "fd=%d,mac=01:00:5e:00:00:01", s); /* multicast */
    ERR("00:00:00:00:00:00", "fd=%d,mac=00:00:00:00:00:00", s);
    ERR("'67'", "fd=%d,mac=" MAC ",mtu=67", s);
    ERR("'65536'", "fd=%d,mac=" MAC ",mtu=65536", s);
    ERR("'3'", "fd=%d,mac=" MAC ",num_queues=3", s);
    ERR("'34'", "fd=%d,mac=" MAC ",num_queues=34", s);
    ERR("num_queues 4", "fd=%d,mac=" MAC ",num_queues=4", s);
    ERR("num_queues 2", "fd=%d:%d,mac=" MAC ",num_queues=2", s, s);
    ERR("'100'", "fd=%d,mac=" MAC ",queue_size=100", s);
    ERR("'2048'", "fd=%d,mac=" MAC ",queue_size=2048", s);
    ERR("'maybe'", "fd=%d,mac=" MAC ",offload_tso=maybe", s);
    ERR("'abc'", "fd=abc,mac=" MAC);
    snprintf(t, sizeof(t), "fd %d", pfd[0]);
    ERR(t, "fd=%d,mac=" MAC, pfd[0]); /* a pipe */
    snprintf(t, sizeof(t), "fd %d", reg);
    ERR(t, "fd=%d,mac=" MAC, reg); /* a regular file */
    ERR("fd 999", "fd=999,mac=" MAC);  /* not open */
    ERR("user=on", "user=on,fd=%d,mac=" MAC, s);
    ERR("fd=", "mac=" MAC);
    ERR("num_queues 4", "user=on,mac=" MAC ",num_queues=4");
    ERR("'tcp::abc-:22'", "user=on,mac=" MAC ",hostfwd=tcp::abc-:22");
    ERR("'tcp:127.0.0.1:2222:22'", "user=on,mac=" MAC ",hostfwd=tcp:127.0.0.1:2222:22");
    ERR("'tcp::0-:22'", "user=on,mac=" MAC ",hostfwd=tcp::0-:22");
    ERR("'tcp:1.2.3:2222-:22'", "user=on,mac=" MAC ",hostfwd=tcp:1.2.3:2222-:22");
    ERR("'udp::53-:70000'", "user=on,mac=" MAC ",hostfwd=udp::53-:70000");
    ERR("sctp::1-:2", "user=on,mac=" MAC ",hostfwd=tcp::1-:2;sctp::1-:2");
    ERR("hostfwd", "fd=%d,mac=" MAC ",hostfwd=tcp::2222-:22", s);
    ERR("'bogus'", "fd=%d,mac=" MAC ",bogus=1", s);
    ERR("mac=", "fd=%d", s);
#undef ERR
    /* Every failed create closed what it had opened. */
    assert_int_equal(open_fds(), fds_before);
    close(s);
    close(pfd[0]);
    close(pfd[1]);
    close(reg);
}

/* ---- features and config space ---- */

static uint64_t offered(struct fx *f, unsigned pairs, const char *extra)
{
    sock_dev(f, pairs, extra);
    uint64_t feat = f->info.device_features;
    f->p->ops->destroy(f->dev);
    f->dev = NULL;
    for (unsigned i = 0; i < pairs; i++) {
        close(f->peer[i]);
        f->peer[i] = -1;
    }
    return feat;
}

static void test_features(void **state)
{
    struct fx *f = *state;
    const uint64_t base = BIT(B_MAC) | BIT(B_MRG_RXBUF) | BIT(B_STATUS) | BIT(B_CTRL_VQ);
    assert_int_equal(offered(f, 1, ""), base | OFFLOAD_BITS);
    assert_int_equal(offered(f, 1, "offload_tso=off"), base | (OFFLOAD_BITS & ~TSO_BITS));
    assert_int_equal(offered(f, 1, "offload_ufo=off"), base | (OFFLOAD_BITS & ~UFO_BITS));
    assert_int_equal(offered(f, 1, "offload_csum=off"), base);
    assert_int_equal(offered(f, 1, "mtu=9000"), base | OFFLOAD_BITS | BIT(B_MTU));
    assert_int_equal(offered(f, 2, ""), base | OFFLOAD_BITS | BIT(B_MQ));
    assert_int_equal(offered(f, 3, "offload_csum=off,num_queues=6"), base | BIT(B_MQ));

    /* user=on: slirp takes whole frames, so no checksum or segmentation offload */
    create_ok(f, "user=on,mac=" MAC);
    assert_int_equal(f->info.device_features, base);
}

static void test_info_and_config(void **state)
{
    struct fx *f = *state;
    sock_dev(f, 2, "mtu=9000,queue_size=512");
    assert_int_equal(f->info.device_id, 1);
    assert_int_equal(f->info.num_queues, 5);
    assert_int_equal(f->info.queue_size_max, 512);
    assert_int_equal(f->info.config_size, 12);
    assert_int_equal(f->info.pci_class, 0x020000);
    assert_int_equal(f->info.num_groups, 2);
    assert_int_equal(f->info.queue_group[0], 0);
    assert_int_equal(f->info.queue_group[1], 0);
    assert_int_equal(f->info.queue_group[2], 1);
    assert_int_equal(f->info.queue_group[3], 1);
    assert_int_equal(f->info.queue_group[4], NIMBUS_VQ_GROUP_NONE);

    uint8_t b[8];
    for (unsigned i = 0; i < 6; i++) {
        assert_int_equal(fake_host_virtio_config_read(&f->h, f->p, f->dev, i, b, 1), 0);
        assert_int_equal(b[0], mac_bytes[i]);
    }
    uint16_t v;
    assert_int_equal(fake_host_virtio_config_read(&f->h, f->p, f->dev, 6, &v, 2), 0);
    assert_int_equal(v, 1); /* LINK_UP */
    assert_int_equal(fake_host_virtio_config_read(&f->h, f->p, f->dev, 8, &v, 2), 0);
    assert_int_equal(v, 2); /* max_virtqueue_pairs */
    assert_int_equal(fake_host_virtio_config_read(&f->h, f->p, f->dev, 10, &v, 2), 0);
    assert_int_equal(v, 9000);
    assert_int_equal(fake_host_virtio_config_read(&f->h, f->p, f->dev, 4, b, 8), 0);
    assert_int_equal(b[0], 0x34); /* mac[4] */
    assert_int_equal(b[2], 1);    /* status */
    assert_int_equal(b[4], 2);    /* pairs */
    assert_int_equal(b[7], 0x23); /* mtu, high byte */
    /* The MAC belongs to the device: writes are refused and change nothing. */
    uint32_t w = 0x11111111;
    assert_true(fake_host_virtio_config_write(&f->h, f->p, f->dev, 0, &w, 4) < 0);
    assert_int_equal(fake_host_virtio_config_read(&f->h, f->p, f->dev, 0, b, 1), 0);
    assert_int_equal(b[0], 0x52);
}

/* ---- transmit ---- */

static void test_tx_byte_exact(void **state)
{
    struct fx *f = *state;
    sock_dev(f, 1, "");
    activate(f, ALL);
    uint8_t pkt[HDR + 100], got[2048];
    make_hdr(pkt, 0, 0, 0, 0, 0, 0);
    make_frame(pkt + HDR, 100, 1);
    int head = tx_one_buf(f, 0, pkt, sizeof(pkt));
    kick(f, NET_TXQ(0));
    expect_used(f, NET_TXQ(0), head, 0);
    assert_int_equal(peer_recv(f, 0, got, sizeof(got), 1000), sizeof(pkt));
    assert_memory_equal(got, pkt, sizeof(pkt));
    assert_true(f->h.virtio.interrupts[NET_TXQ(0)] >= 1);

    /* A partial checksum the device offered goes through with its header. */
    make_hdr(pkt, HF_NEEDS_CSUM, 0, 0, 0, 34, 6);
    head = tx_one_buf(f, 0, pkt, sizeof(pkt));
    kick(f, NET_TXQ(0));
    expect_used(f, NET_TXQ(0), head, 0);
    assert_int_equal(peer_recv(f, 0, got, sizeof(got), 1000), sizeof(pkt));
    assert_memory_equal(got, pkt, sizeof(pkt));
    assert_int_equal(nd(f)->pair[0].tx_frames, 2);
    assert_int_equal(nd(f)->pair[0].tx_bytes, 200);
    assert_int_equal(nd(f)->pair[0].tx_dropped, 0);
}

/* More frames than one call's budget, with a single kick: the device must
 * come back for the rest by itself (the driver will not kick again while
 * the queue was never found empty), after letting the loop serve others. */
static void test_tx_budget_reschedules(void **state)
{
    struct fx *f = *state;
    sock_dev(f, 1, "queue_size=512");
    assert_int_equal(fake_host_virtio_activate(&f->h, f->p, f->dev, ALL, 512), 0);
    enum { N = 400 };
    static int head[N];
    uint8_t pkt[HDR + 64], got[256];
    for (unsigned i = 0; i < N; i++) {
        make_hdr(pkt, 0, 0, 0, 0, 0, 0);
        make_frame(pkt + HDR, 64, i);
        head[i] = tx_one_buf(f, 0, pkt, sizeof(pkt));
    }
    kick(f, NET_TXQ(0));
    unsigned seen = 0;
    for (int polls = 0; polls < MAX_POLLS && seen < N; polls++) {
        while (peer_recv(f, 0, got, sizeof(got), 0) == (ssize_t)sizeof(pkt))
            seen++;
        if (seen < N)
            fake_host_poll(&f->h, f->p, f->dev, 10);
    }
    assert_int_equal(seen, N);
    for (unsigned i = 0; i < N; i++)
        expect_used(f, NET_TXQ(0), head[i], 0);
    assert_int_equal(nd(f)->pair[0].tx_frames, N);
}

static void test_tx_split_chain(void **state)
{
    struct fx *f = *state;
    sock_dev(f, 1, "");
    activate(f, ALL);
    uint8_t pkt[HDR + 300], got[2048];
    make_hdr(pkt, 0, 0, 0, 0, 0, 0);
    make_frame(pkt + HDR, 300, 2);
    /* The header itself is split, as is the frame. */
    struct fake_vq_seg s[4] = {{put(f, pkt, 5), 5, 0},
                               {put(f, pkt + 5, 27), 27, 0},
                               {put(f, pkt + 32, 1), 1, 0},
                               {put(f, pkt + 33, sizeof(pkt) - 33), sizeof(pkt) - 33, 0}};
    int head = fake_host_vq_add(&f->h, NET_TXQ(0), s, 4);
    kick(f, NET_TXQ(0));
    expect_used(f, NET_TXQ(0), head, 0);
    assert_int_equal(peer_recv(f, 0, got, sizeof(got), 1000), sizeof(pkt));
    assert_memory_equal(got, pkt, sizeof(pkt));

    head = fake_host_vq_add_indirect(&f->h, NET_TXQ(0), s, 4);
    kick(f, NET_TXQ(0));
    expect_used(f, NET_TXQ(0), head, 0);
    assert_int_equal(peer_recv(f, 0, got, sizeof(got), 1000), sizeof(pkt));
    assert_memory_equal(got, pkt, sizeof(pkt));
}

/* A hostile chain comes back used, nothing reaches the backend, the drop is
 * counted, and the queue keeps working. */
static void tx_rejected(struct fx *f, const uint8_t *pkt, uint32_t len, const char *what)
{
    struct net_pair *p = &nd(f)->pair[0];
    uint64_t before = p->tx_dropped + p->bad_chains;
    uint8_t got[2048];
    int head = tx_one_buf(f, 0, pkt, len);
    kick(f, NET_TXQ(0));
    expect_used(f, NET_TXQ(0), head, 0);
    if (peer_recv(f, 0, got, sizeof(got), 0) >= 0)
        fail_msg("%s: reached the backend", what);
    if (p->tx_dropped + p->bad_chains != before + 1)
        fail_msg("%s: not counted as dropped", what);
}

static void test_tx_hostile_headers(void **state)
{
    struct fx *f = *state;
    sock_dev(f, 1, "");
    activate(f, ALL & ~BIT(B_HOST_TSO4)); /* TSO6 and UFO stay */
    uint8_t pkt[HDR + 200], got[2048];
    make_frame(pkt + HDR, 200, 3);

    make_hdr(pkt, HF_NEEDS_CSUM, GSO_TCPV4, 54, 1448, 34, 16);
    tx_rejected(f, pkt, sizeof(pkt), "GSO TCPv4 without HOST_TSO4");
    make_hdr(pkt, HF_NEEDS_CSUM, GSO_TCPV6, 14, 1440, 14, 6);
    tx_rejected(f, pkt, HDR + 30, "GSO on a 30-byte frame");
    make_hdr(pkt, HF_NEEDS_CSUM, GSO_TCPV6, 74, 0, 54, 16);
    tx_rejected(f, pkt, sizeof(pkt), "GSO with gso_size 0");
    make_hdr(pkt, 0, GSO_TCPV6, 74, 1440, 54, 16);
    tx_rejected(f, pkt, sizeof(pkt), "GSO without NEEDS_CSUM");
    make_hdr(pkt, 0, GSO_ECN, 0, 0, 0, 0);
    tx_rejected(f, pkt, sizeof(pkt), "ECN bit without a GSO type");
    make_hdr(pkt, 0, 2, 0, 0, 0, 0);
    tx_rejected(f, pkt, sizeof(pkt), "unknown GSO type");
    make_hdr(pkt, HF_NEEDS_CSUM, 0, 0, 0, 190, 16);
    tx_rejected(f, pkt, sizeof(pkt), "csum_start + csum_offset past the end");
    make_hdr(pkt, HF_NEEDS_CSUM, 0, 0, 0, 0xffff, 0xffff);
    tx_rejected(f, pkt, sizeof(pkt), "csum_start + csum_offset overflowing 16 bits");
    make_hdr(pkt, 0x80, 0, 0, 0, 0, 0);
    tx_rejected(f, pkt, sizeof(pkt), "unknown flags");
    make_hdr(pkt, 0, 0, 0, 0, 0, 0);
    tx_rejected(f, pkt, 8, "a chain shorter than the header");
    tx_rejected(f, pkt, HDR + 10, "a frame shorter than an Ethernet header");

    /* A device-writable buffer in a transmit chain. */
    uint64_t before = nd(f)->pair[0].bad_chains;
    struct fake_vq_seg s[2] = {{put(f, pkt, sizeof(pkt)), sizeof(pkt), 0},
                               {fake_host_buf(&f->h, 64), 64, 1}};
    int head = fake_host_vq_add(&f->h, NET_TXQ(0), s, 2);
    kick(f, NET_TXQ(0));
    expect_used(f, NET_TXQ(0), head, 0);
    assert_int_equal(peer_recv(f, 0, got, sizeof(got), 0), -1);
    assert_int_equal(nd(f)->pair[0].bad_chains, before + 1);

    /* The negotiated GSO type with sane fields goes through. */
    make_hdr(pkt, HF_NEEDS_CSUM, GSO_TCPV6, 74, 1440, 54, 16);
    head = tx_one_buf(f, 0, pkt, sizeof(pkt));
    kick(f, NET_TXQ(0));
    expect_used(f, NET_TXQ(0), head, 0);
    assert_int_equal(peer_recv(f, 0, got, sizeof(got), 1000), sizeof(pkt));
    assert_memory_equal(got, pkt, sizeof(pkt));
    assert_int_equal(nd(f)->pair[0].tx_frames, 1);

    /* ECN needs HOST_ECN. */
    reset(f);
    activate(f, ALL & ~BIT(B_HOST_ECN));
    make_hdr(pkt, HF_NEEDS_CSUM, GSO_TCPV6 | GSO_ECN, 74, 1440, 54, 16);
    tx_rejected(f, pkt, sizeof(pkt), "GSO ECN without HOST_ECN");
}

/* Without CSUM negotiated, a partial checksum is refused too. */
static void test_tx_no_csum(void **state)
{
    struct fx *f = *state;
    sock_dev(f, 1, "");
    activate(f, ALL & ~(BIT(B_CSUM) | TSO_BITS | UFO_BITS));
    uint8_t pkt[HDR + 100];
    make_frame(pkt + HDR, 100, 4);
    make_hdr(pkt, HF_NEEDS_CSUM, 0, 0, 0, 34, 6);
    tx_rejected(f, pkt, sizeof(pkt), "NEEDS_CSUM without CSUM");
}

/* A full backend keeps the chain (not dropped, not returned) and sends it
 * once the fd is writable again; order is kept. */
static void test_tx_backend_full(void **state)
{
    struct fx *f = *state;
    int fds[1] = {sockpair(f, 0)};
    int small = 4096;
    assert_int_equal(setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    char opts[64];
    snprintf(opts, sizeof(opts), "fd=%d,mac=" MAC, fds[0]);
    create_ok(f, opts);
    close(fds[0]);
    activate(f, ALL);
    enum { N = 24, LEN = 1400 };
    static uint8_t pkt[N][HDR + LEN];
    int heads[N];
    for (unsigned i = 0; i < N; i++) {
        make_hdr(pkt[i], 0, 0, 0, 0, 0, 0);
        make_frame(pkt[i] + HDR, LEN, i);
        heads[i] = tx_one_buf(f, 0, pkt[i], sizeof(pkt[i]));
    }
    kick(f, NET_TXQ(0));
    unsigned done = 0;
    uint32_t id, len;
    while (fake_host_vq_used(&f->h, NET_TXQ(0), &id, &len))
        assert_int_equal(id, (uint32_t)heads[done++]);
    assert_true(done > 0 && done < N); /* the socket buffer filled up */
    assert_true(nd(f)->pair[0].tx_blocked);
    assert_int_equal(nd(f)->pair[0].tx_dropped, 0);
    /* Kicks while blocked change nothing. */
    kick(f, NET_TXQ(0));
    assert_int_equal(fake_host_vq_used(&f->h, NET_TXQ(0), NULL, NULL), 0);

    unsigned recvd = 0;
    uint8_t got[HDR + LEN + 16];
    for (int polls = 0; recvd < N && polls < MAX_POLLS; polls++) {
        ssize_t n;
        while ((n = peer_recv(f, 0, got, sizeof(got), 0)) >= 0) {
            assert_int_equal(n, HDR + LEN);
            assert_memory_equal(got, pkt[recvd], HDR + LEN);
            recvd++;
        }
        fake_host_poll(&f->h, f->p, f->dev, 10);
        while (fake_host_vq_used(&f->h, NET_TXQ(0), &id, &len))
            assert_int_equal(id, (uint32_t)heads[done++]);
    }
    assert_int_equal(recvd, N);
    assert_int_equal(done, N);
    assert_false(nd(f)->pair[0].tx_blocked);
}

/* ---- receive ---- */

static void test_rx_basic(void **state)
{
    struct fx *f = *state;
    sock_dev(f, 1, "");
    activate(f, ALL);
    uint64_t gpa;
    int head = post_rx(f, 0, 2048, &gpa);
    kick(f, NET_RXQ(0));

    /* A runt datagram is dropped and the buffer kept for the next frame. */
    uint8_t runt[HDR + 5] = {0};
    peer_send(f, 0, runt, sizeof(runt));
    expect_idle(f, NET_RXQ(0));
    /* An empty datagram is a runt too, not the peer going away. */
    peer_send(f, 0, runt, 0);
    expect_idle(f, NET_RXQ(0));

    uint8_t pkt[HDR + 60];
    make_hdr(pkt, 2 /* DATA_VALID */, 0, 0, 0, 0, 0);
    make_frame(pkt + HDR, 60, 5);
    peer_send(f, 0, pkt, sizeof(pkt));
    expect_used(f, NET_RXQ(0), head, sizeof(pkt));
    const uint8_t *b = f->h.ram + gpa;
    assert_memory_equal(b, pkt, 10);
    assert_int_equal(b[10], 1); /* num_buffers */
    assert_int_equal(b[11], 0);
    assert_memory_equal(b + HDR, pkt + HDR, 60);
    assert_int_equal(b[sizeof(pkt)], 0xcc); /* nothing written past the frame */
    assert_true(f->h.virtio.interrupts[NET_RXQ(0)] >= 1);
    assert_int_equal(nd(f)->pair[0].rx_frames, 1);
    assert_int_equal(nd(f)->pair[0].rx_dropped, 2);

    /* A buffer split in two descriptors (header apart), as some drivers post. */
    uint64_t g1 = fake_host_buf(&f->h, HDR), g2 = fake_host_buf(&f->h, 1514);
    struct fake_vq_seg s[2] = {{g1, HDR, 1}, {g2, 1514, 1}};
    head = fake_host_vq_add(&f->h, NET_RXQ(0), s, 2);
    kick(f, NET_RXQ(0));
    make_frame(pkt + HDR, 60, 6);
    pkt[0] = 0;
    peer_send(f, 0, pkt, sizeof(pkt));
    expect_used(f, NET_RXQ(0), head, sizeof(pkt));
    assert_int_equal(f->h.ram[g1 + 10], 1);
    assert_memory_equal(f->h.ram + g2, pkt + HDR, 60);
}

/* With MRG_RXBUF a 60000-byte frame spreads over small buffers; buffers
 * posted late (after the frame arrived) are filled once the guest kicks. */
static void test_rx_mergeable(void **state)
{
    struct fx *f = *state;
    sock_dev(f, 1, "");
    activate(f, ALL);
    enum { BUF = 1526, FRAME = 60000, EARLY = 10, TOTAL = 48 };
    const unsigned need = (HDR + FRAME + BUF - 1) / BUF;
    uint64_t gpa[TOTAL];
    int head[TOTAL];
    for (unsigned i = 0; i < EARLY; i++)
        head[i] = post_rx(f, 0, BUF, &gpa[i]);
    kick(f, NET_RXQ(0));
    static uint8_t pkt[HDR + FRAME], back[HDR + FRAME];
    make_hdr(pkt, 0, 0, 0, 0, 0, 0);
    make_frame(pkt + HDR, FRAME, 7);
    peer_send(f, 0, pkt, sizeof(pkt));
    fake_host_poll(&f->h, f->p, f->dev, 100);
    /* Not enough buffers: nothing is handed back half-done, and the device
     * stops reading until it gets more. */
    assert_int_equal(fake_host_vq_used(&f->h, NET_RXQ(0), NULL, NULL), 0);
    assert_int_equal(fake_host_watched(&f->h, 0), -1);
    for (unsigned i = EARLY; i < TOTAL; i++)
        head[i] = post_rx(f, 0, BUF, &gpa[i]);
    kick(f, NET_RXQ(0));

    uint32_t off = 0, id, len;
    for (unsigned i = 0; i < need; i++) {
        if (!wait_used(f, NET_RXQ(0), &id, &len))
            fail_msg("buffer %u of %u never came back", i, need);
        assert_int_equal(id, (uint32_t)head[i]);
        assert_int_equal(len, i + 1 < need ? BUF : (HDR + FRAME) - (need - 1) * BUF);
        memcpy(back + off, f->h.ram + gpa[i], len);
        off += len;
    }
    assert_int_equal(off, sizeof(pkt));
    assert_int_equal(back[10] | back[11] << 8, need); /* num_buffers */
    back[10] = back[11] = 0;
    assert_memory_equal(back, pkt, sizeof(pkt));
    assert_int_equal(fake_host_vq_used(&f->h, NET_RXQ(0), NULL, NULL), 0);
    assert_int_equal(nd(f)->pair[0].rx_frames, 1);
    assert_int_equal(nd(f)->pair[0].rx_bytes, FRAME);

    /* The next small frame takes the next buffer alone. */
    make_frame(pkt + HDR, 100, 8);
    peer_send(f, 0, pkt, HDR + 100);
    expect_used(f, NET_RXQ(0), head[need], HDR + 100);
    assert_int_equal(f->h.ram[gpa[need] + 10], 1);
}

/* A ring too small for a merged frame: the device holds every entry, no
 * more can come, so it drops the frame (zero-length buffers) instead of
 * waiting for ever, and the next frame gets through. */
static void test_rx_small_ring_drops_instead_of_stalling(void **state)
{
    struct fx *f = *state;
    sock_dev(f, 1, "");
    assert_int_equal(fake_host_virtio_activate(&f->h, f->p, f->dev, ALL, 16), 0);
    enum { BUF = 1526, FRAME = 60000, RING = 16 };
    int head[RING];
    uint64_t gpa[RING];
    for (unsigned i = 0; i < RING; i++)
        head[i] = post_rx(f, 0, BUF, &gpa[i]);
    kick(f, NET_RXQ(0));
    static uint8_t pkt[HDR + FRAME];
    make_hdr(pkt, 0, 0, 0, 0, 0, 0);
    make_frame(pkt + HDR, FRAME, 3);
    peer_send(f, 0, pkt, sizeof(pkt));
    for (unsigned i = 0; i < RING; i++)
        expect_used(f, NET_RXQ(0), head[i], 0);
    assert_int_equal(nd(f)->pair[0].rx_dropped, 1);
    assert_int_equal(nd(f)->pair[0].rx_frames, 0);
    /* The ring is free again and the device reads the next frame. */
    int h2 = post_rx(f, 0, BUF, NULL);
    kick(f, NET_RXQ(0));
    make_frame(pkt + HDR, 200, 4);
    peer_send(f, 0, pkt, HDR + 200);
    expect_used(f, NET_RXQ(0), h2, HDR + 200);
    assert_int_equal(nd(f)->pair[0].rx_frames, 1);
}

/* Without MRG_RXBUF a frame larger than the buffer is dropped and the
 * buffer reused for the next frame. */
static void test_rx_too_big_without_mrg(void **state)
{
    struct fx *f = *state;
    sock_dev(f, 1, "");
    activate(f, ALL & ~BIT(B_MRG_RXBUF));
    uint64_t gpa;
    int head = post_rx(f, 0, 1526, &gpa);
    kick(f, NET_RXQ(0));
    static uint8_t pkt[HDR + 2000];
    make_hdr(pkt, 0, 0, 0, 0, 0, 0);
    make_frame(pkt + HDR, 2000, 9);
    peer_send(f, 0, pkt, sizeof(pkt));
    expect_idle(f, NET_RXQ(0));
    assert_int_equal(nd(f)->pair[0].rx_dropped, 1);
    make_frame(pkt + HDR, 1514, 10);
    peer_send(f, 0, pkt, HDR + 1514);
    expect_used(f, NET_RXQ(0), head, HDR + 1514);
    assert_int_equal(f->h.ram[gpa + 10], 1);
    assert_memory_equal(f->h.ram + gpa + HDR, pkt + HDR, 1514);
}

/* No buffers: the datagram stays in the socket (nothing is read, nothing
 * spins) until a buffer is posted and the rx queue kicked. */
static void test_rx_waits_for_buffers(void **state)
{
    struct fx *f = *state;
    sock_dev(f, 1, "");
    activate(f, ALL);
    uint8_t pkt[HDR + 80], peek[256];
    make_hdr(pkt, 0, 0, 0, 0, 0, 0);
    make_frame(pkt + HDR, 80, 11);
    peer_send(f, 0, pkt, sizeof(pkt));
    fake_host_poll(&f->h, f->p, f->dev, 100);
    assert_int_equal(fake_host_watched(&f->h, 0), -1); /* stopped watching */
    assert_int_equal(fake_host_poll(&f->h, f->p, f->dev, 0), 0);
    int fd = nd(f)->pair[0].fd;
    assert_int_equal(recv(fd, peek, sizeof(peek), MSG_PEEK | MSG_DONTWAIT), sizeof(pkt));
    assert_int_equal(nd(f)->pair[0].rx_dropped, 0);

    uint64_t gpa;
    int head = post_rx(f, 0, 2048, &gpa);
    kick(f, NET_RXQ(0));
    uint32_t id, len;
    assert_int_equal(fake_host_vq_used(&f->h, NET_RXQ(0), &id, &len), 1); /* at the kick */
    assert_int_equal(id, (uint32_t)head);
    assert_int_equal(len, sizeof(pkt));
    assert_memory_equal(f->h.ram + gpa + HDR, pkt + HDR, 80);
}

/* A peer that goes away: the device stops watching instead of spinning. */
static void test_rx_peer_closed(void **state)
{
    struct fx *f = *state;
    sock_dev(f, 1, "");
    activate(f, ALL);
    post_rx(f, 0, 2048, NULL);
    kick(f, NET_RXQ(0));
    close(f->peer[0]);
    f->peer[0] = -1;
    fake_host_poll(&f->h, f->p, f->dev, 100);
    fake_host_poll(&f->h, f->p, f->dev, 0);
    assert_int_equal(fake_host_poll(&f->h, f->p, f->dev, 0), 0);
    assert_int_equal(fake_host_vq_used(&f->h, NET_RXQ(0), NULL, NULL), 0);
}

/* ---- control queue ---- */

static void test_ctrl_pairs(void **state)
{
    struct fx *f = *state;
    sock_dev(f, 2, "");
    activate(f, ALL);
    /* Only pair 0 runs until the driver asks for more. */
    uint64_t gpa;
    int head = post_rx(f, 1, 2048, &gpa);
    kick(f, NET_RXQ(1));
    uint8_t pkt[HDR + 64];
    make_hdr(pkt, 0, 0, 0, 0, 0, 0);
    make_frame(pkt + HDR, 64, 12);
    peer_send(f, 1, pkt, sizeof(pkt));
    expect_idle(f, NET_RXQ(1));

    assert_int_equal(set_pairs(f, 2), ACK_OK);
    expect_used(f, NET_RXQ(1), head, sizeof(pkt));
    assert_memory_equal(f->h.ram + gpa + HDR, pkt + HDR, 64);

    assert_int_equal(set_pairs(f, 3), ACK_ERR);
    assert_int_equal(set_pairs(f, 0), ACK_ERR);
    uint8_t one = 1;
    assert_int_equal(ctrl(f, CTRL_MQ, CTRL_MQ_PAIRS_SET, &one, 1), ACK_ERR); /* short */
    assert_int_equal(set_pairs(f, 1), ACK_OK);
    head = post_rx(f, 1, 2048, NULL);
    kick(f, NET_RXQ(1));
    peer_send(f, 1, pkt, sizeof(pkt));
    expect_idle(f, NET_RXQ(1));

    /* Without MQ negotiated the command is refused. */
    reset(f);
    activate(f, ALL & ~BIT(B_MQ));
    assert_int_equal(set_pairs(f, 1), ACK_ERR);
    assert_int_equal(set_pairs(f, 2), ACK_ERR);
}

static void test_ctrl_offloads(void **state)
{
    struct fx *f = *state;
    sock_dev(f, 1, "");
    activate(f, ALL & ~BIT(B_GUEST_UFO));
    assert_int_equal(set_offloads(f, BIT(B_GUEST_CSUM) | BIT(B_GUEST_TSO4)), ACK_OK);
    assert_int_equal(set_offloads(f, 0), ACK_OK);
    assert_int_equal(set_offloads(f, BIT(B_GUEST_UFO)), ACK_ERR); /* not negotiated */
    assert_int_equal(set_offloads(f, BIT(B_MRG_RXBUF)), ACK_ERR); /* not an offload */
    assert_int_equal(set_offloads(f, BIT(63)), ACK_ERR);
    uint8_t four[4] = {0};
    assert_int_equal(ctrl(f, CTRL_OFFLOADS, CTRL_OFFLOADS_SET, four, 4), ACK_ERR);
    reset(f);
    activate(f, ALL & ~BIT(B_CTRL_GUEST_OFFLOADS));
    assert_int_equal(set_offloads(f, 0), ACK_ERR);
}

static void test_ctrl_garbage(void **state)
{
    struct fx *f = *state;
    sock_dev(f, 2, "");
    activate(f, ALL);
    const uint32_t q = f->info.num_queues - 1;
    assert_int_equal(ctrl(f, 0x77, 0, NULL, 0), ACK_ERR);
    assert_int_equal(ctrl(f, CTRL_MQ, 9, NULL, 0), ACK_ERR);
    assert_int_equal(ctrl(f, 1 /* RX class, not offered */, 0, "\1", 1), ACK_ERR);

    uint8_t cmd[4] = {CTRL_MQ, CTRL_MQ_PAIRS_SET, 2, 0};
    uint64_t ack = fake_host_buf(&f->h, 1);
    /* one readable byte only */
    struct fake_vq_seg s1[2] = {{put(f, cmd, 1), 1, 0}, {ack, 1, 1}};
    int head = fake_host_vq_add(&f->h, q, s1, 2);
    kick(f, q);
    expect_used(f, q, head, 1);
    assert_int_equal(f->h.ram[ack], ACK_ERR);
    /* no room for the ack */
    struct fake_vq_seg s2 = {put(f, cmd, 4), 4, 0};
    head = fake_host_vq_add(&f->h, q, &s2, 1);
    kick(f, q);
    expect_used(f, q, head, 0);
    /* nothing but the ack */
    struct fake_vq_seg s3 = {ack, 1, 1};
    f->h.ram[ack] = 0xee;
    head = fake_host_vq_add(&f->h, q, &s3, 1);
    kick(f, q);
    expect_used(f, q, head, 1);
    assert_int_equal(f->h.ram[ack], ACK_ERR);
    /* split over descriptors, and a long tail of junk: still understood */
    static uint8_t junk[4096];
    memset(junk, 0x5a, sizeof(junk));
    struct fake_vq_seg s4[5] = {{put(f, cmd, 1), 1, 0},     {put(f, cmd + 1, 1), 1, 0},
                                {put(f, cmd + 2, 2), 2, 0}, {put(f, junk, 4096), 4096, 0},
                                {ack, 1, 1}};
    f->h.ram[ack] = 0xee;
    head = fake_host_vq_add(&f->h, q, s4, 5);
    kick(f, q);
    expect_used(f, q, head, 1);
    assert_int_equal(f->h.ram[ack], ACK_OK);
    assert_int_equal(nd(f)->active_pairs, 2);
}

/* ---- counters (ABI minor 3) ---- */

static const char *const net_counter_names[] = {
    "rx_bytes", "rx_frames", "tx_bytes", "tx_frames",
    "rx_dropped", "tx_dropped", "bad_chains", "ctrl_errors"};
enum { C_RXB, C_RXF, C_TXB, C_TXF, C_RXD, C_TXD, C_BAD, C_CTRL, C_N };

/* Every counter through the op, in its order (Cloud Hypervisor's four
 * first), against `want` and against the pairs' own fields. */
static void counters_are(struct fx *f, const uint64_t want[C_N])
{
    struct fake_host_counters c;
    assert_int_equal(fake_host_counters(&f->h, f->p, f->dev, &c), 0);
    assert_int_equal(c.total, C_N);
    assert_int_equal(c.n, C_N);
    for (unsigned i = 0; i < C_N; i++) {
        assert_string_equal(c.name[i], net_counter_names[i]);
        if (c.value[i] != want[i])
            fail_msg("%s is %llu, expected %llu", c.name[i], (unsigned long long)c.value[i],
                     (unsigned long long)want[i]);
    }
    uint64_t rxb = 0, txf = 0;
    for (unsigned i = 0; i < nd(f)->pairs; i++) {
        rxb += nd(f)->pair[i].rx_bytes;
        txf += nd(f)->pair[i].tx_frames;
    }
    assert_int_equal(rxb, want[C_RXB]);
    assert_int_equal(txf, want[C_TXF]);
}

/*
 * Frames both ways on both pairs, a merged one among them, and one of each
 * kind of failure: the exact counts come back, bytes as the guest sees
 * them (no virtio-net header), and a virtio reset keeps them.
 */
static void test_counters(void **state)
{
    struct fx *f = *state;
    sock_dev(f, 2, "");
    activate(f, ALL);
    uint64_t want[C_N] = {0};
    counters_are(f, want);
    assert_int_equal(set_pairs(f, 2), ACK_OK);

    static uint8_t pkt[HDR + 4000], got[HDR + 4000 + 16];
    for (unsigned i = 0; i < 5; i++) {
        unsigned pair = i % 2;
        uint32_t len = 60 + 100 * i;
        make_hdr(pkt, 0, 0, 0, 0, 0, 0);
        make_frame(pkt + HDR, len, i);
        int head = tx_one_buf(f, pair, pkt, HDR + len);
        kick(f, NET_TXQ(pair));
        expect_used(f, NET_TXQ(pair), head, 0);
        assert_int_equal(peer_recv(f, pair, got, sizeof(got), 1000), HDR + len);
        want[C_TXB] += len;
        want[C_TXF]++;
    }
    for (unsigned i = 0; i < 4; i++) {
        unsigned pair = i % 2;
        uint32_t len = 1514 - 200 * i;
        int head = post_rx(f, pair, 2048, NULL);
        kick(f, NET_RXQ(pair));
        make_hdr(pkt, 0, 0, 0, 0, 0, 0);
        make_frame(pkt + HDR, len, 20 + i);
        peer_send(f, pair, pkt, HDR + len);
        expect_used(f, NET_RXQ(pair), head, HDR + len);
        want[C_RXB] += len;
        want[C_RXF]++;
    }
    /* One frame over three merged buffers counts once, header excluded. */
    int heads[3];
    for (unsigned i = 0; i < 3; i++)
        heads[i] = post_rx(f, 1, 1526, NULL);
    kick(f, NET_RXQ(1));
    make_frame(pkt + HDR, 4000, 30);
    peer_send(f, 1, pkt, HDR + 4000);
    expect_used(f, NET_RXQ(1), heads[0], 1526);
    expect_used(f, NET_RXQ(1), heads[1], 1526);
    expect_used(f, NET_RXQ(1), heads[2], HDR + 4000 - 2 * 1526);
    want[C_RXB] += 4000;
    want[C_RXF]++;
    counters_are(f, want);

    /* A runt from the backend, a header the device refuses, a transmit
     * chain with a device-writable buffer, a control command it rejects. */
    post_rx(f, 0, 2048, NULL);
    kick(f, NET_RXQ(0));
    peer_send(f, 0, pkt, HDR + 5);
    expect_idle(f, NET_RXQ(0));
    want[C_RXD]++;
    make_hdr(pkt, 0x80, 0, 0, 0, 0, 0);
    make_frame(pkt + HDR, 100, 40);
    int head = tx_one_buf(f, 1, pkt, HDR + 100);
    kick(f, NET_TXQ(1));
    expect_used(f, NET_TXQ(1), head, 0);
    want[C_TXD]++;
    struct fake_vq_seg s[2] = {{put(f, pkt, HDR + 100), HDR + 100, 0},
                               {fake_host_buf(&f->h, 64), 64, 1}};
    head = fake_host_vq_add(&f->h, NET_TXQ(0), s, 2);
    kick(f, NET_TXQ(0));
    expect_used(f, NET_TXQ(0), head, 0);
    want[C_BAD]++;
    assert_int_equal(ctrl(f, 0x77, 0, NULL, 0), ACK_ERR);
    want[C_CTRL]++;
    assert_int_equal(peer_recv(f, 0, got, sizeof(got), 0), -1);
    assert_int_equal(peer_recv(f, 1, got, sizeof(got), 0), -1);
    counters_are(f, want);

    reset(f);
    counters_are(f, want);
}

/* ---- reset ---- */

static void test_reset_forgets_in_flight(void **state)
{
    struct fx *f = *state;
    int fd = sockpair(f, 0);
    int small = 4096;
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    char opts[64];
    snprintf(opts, sizeof(opts), "fd=%d,mac=" MAC, fd);
    create_ok(f, opts);
    close(fd);
    activate(f, ALL);

    /* A frame held half-delivered over too few merged buffers ... */
    for (unsigned i = 0; i < 5; i++)
        post_rx(f, 0, 1526, NULL);
    kick(f, NET_RXQ(0));
    static uint8_t big[HDR + 60000];
    make_hdr(big, 0, 0, 0, 0, 0, 0);
    make_frame(big + HDR, 60000, 13);
    peer_send(f, 0, big, sizeof(big));
    fake_host_poll(&f->h, f->p, f->dev, 100);
    assert_true(nd(f)->pair[0].held.active);
    /* ... and transmit chains waiting for a full socket. */
    static uint8_t pkt[HDR + 1400];
    make_hdr(pkt, 0, 0, 0, 0, 0, 0);
    make_frame(pkt + HDR, 1400, 14);
    for (unsigned i = 0; i < 16; i++)
        tx_one_buf(f, 0, pkt, sizeof(pkt));
    kick(f, NET_TXQ(0));
    assert_true(nd(f)->pair[0].tx_blocked);
    assert_true(f->h.virtio.vq[NET_TXQ(0)].inflight > 0);
    int slot = fake_host_watched(&f->h, 0);
    assert_true(slot >= 0);
    uint64_t token = f->h.fds[slot].token;
    int devfd = f->h.fds[slot].fd;

    reset(f); /* a push after this aborts (abort_on_violation) */
    assert_int_equal(fake_host_watched(&f->h, 0), -1);
    peer_drain(f, 0);
    /* A wake-up that was already on its way must not touch the old rings. */
    f->p->ops->fd_ready(f->dev, devfd, token, NIMBUS_EV_IN | NIMBUS_EV_OUT);
    f->p->ops->virtio_queue_notify(f->dev, NET_RXQ(0));
    f->p->ops->virtio_queue_notify(f->dev, NET_TXQ(0));

    activate(f, ALL);
    assert_int_equal(fake_host_watched(&f->h, 0) >= 0, 1);
    uint64_t gpa;
    int head = post_rx(f, 0, 1526, &gpa);
    kick(f, NET_RXQ(0));
    expect_idle(f, NET_RXQ(0)); /* the rest of the old frame is gone */
    make_frame(pkt + HDR, 100, 15);
    peer_send(f, 0, pkt, HDR + 100);
    expect_used(f, NET_RXQ(0), head, HDR + 100);
    assert_int_equal(f->h.ram[gpa + 10], 1);
    assert_memory_equal(f->h.ram + gpa + HDR, pkt + HDR, 100);
    /* Transmit works again, and only the new frame goes out. */
    head = tx_one_buf(f, 0, pkt, HDR + 100);
    kick(f, NET_TXQ(0));
    expect_used(f, NET_TXQ(0), head, 0);
    uint8_t got[2048];
    assert_int_equal(peer_recv(f, 0, got, sizeof(got), 1000), HDR + 100);
    assert_memory_equal(got, pkt, HDR + 100);
    assert_int_equal(peer_recv(f, 0, got, sizeof(got), 0), -1);
}

/* ---- user-mode networking ---- */

static uint16_t ip_csum(const uint8_t *b, unsigned len)
{
    uint32_t s = 0;
    for (unsigned i = 0; i + 1 < len; i += 2)
        s += (uint32_t)(b[i] << 8 | b[i + 1]);
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)~s;
}

static void test_user_hostfwd(void **state)
{
    struct fx *f = *state;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &al), 0);
    unsigned port = ntohs(a.sin_port);
    char opts[160], tok[16];
    snprintf(opts, sizeof(opts),
             "user=on,mac=" MAC ",hostfwd=udp:127.0.0.1:%u-:53;tcp:127.0.0.1:%u-:22", port, port);
    snprintf(tok, sizeof(tok), "%u", port);
    assert_true(try_create(f, opts) < 0);
    if (!strstr(f->err, tok) || !strstr(f->err, "tcp"))
        fail_msg("error '%s' does not name tcp port %s", f->err, tok);
    close(l);
    /* Now free: the same rule works (the plugin listens there itself). */
    create_ok(f, opts);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
    close(c);
}

/* The driver's DHCP DISCOVER, built by hand, gets slirp's OFFER. */
static uint32_t dhcp_discover(uint8_t *b)
{
    const uint32_t blen = 240 + 4, ulen = 8 + blen, iplen = 20 + ulen;
    memset(b, 0, 14 + iplen);
    memset(b, 0xff, 6);
    memcpy(b + 6, mac_bytes, 6);
    b[12] = 0x08;
    uint8_t *ip = b + 14, *udp = ip + 20, *bp = udp + 8;
    ip[0] = 0x45;
    ip[2] = (uint8_t)(iplen >> 8);
    ip[3] = (uint8_t)iplen;
    ip[8] = 64;
    ip[9] = 17;
    memset(ip + 16, 0xff, 4); /* 0.0.0.0 -> 255.255.255.255 */
    uint16_t c = ip_csum(ip, 20);
    ip[10] = (uint8_t)(c >> 8);
    ip[11] = (uint8_t)c;
    udp[1] = 68;
    udp[3] = 67;
    udp[4] = (uint8_t)(ulen >> 8);
    udp[5] = (uint8_t)ulen; /* checksum 0: none */
    bp[0] = 1; /* BOOTREQUEST */
    bp[1] = 1;
    bp[2] = 6;
    memcpy(bp + 4, "\x12\x34\x56\x78", 4); /* xid */
    memcpy(bp + 28, mac_bytes, 6);
    memcpy(bp + 236, "\x63\x82\x53\x63", 4);
    memcpy(bp + 240, "\x35\x01\x01\xff", 4); /* DHCPDISCOVER, end */
    return 14 + iplen;
}

static void test_user_dhcp_and_arp(void **state)
{
    struct fx *f = *state;
    create_ok(f, "user=on,mac=" MAC);
    activate(f, ALL);
    uint64_t gpa[4];
    int head[4];
    for (unsigned i = 0; i < 4; i++)
        head[i] = post_rx(f, 0, 2048, &gpa[i]);
    kick(f, NET_RXQ(0));

    uint8_t pkt[HDR + 600];
    memset(pkt, 0, HDR);
    uint32_t flen = dhcp_discover(pkt + HDR);
    int th = tx_one_buf(f, 0, pkt, HDR + flen);
    kick(f, NET_TXQ(0));
    expect_used(f, NET_TXQ(0), th, 0);
    uint32_t id, len;
    if (!wait_used(f, NET_RXQ(0), &id, &len))
        fail_msg("no DHCP answer");
    assert_int_equal(id, (uint32_t)head[0]);
    const uint8_t *r = f->h.ram + gpa[0];
    assert_int_equal(r[10], 1); /* num_buffers */
    assert_int_equal(r[0], 0);  /* no offload flags from slirp */
    const uint8_t *e = r + HDR, *ip = e + 14, *udp = ip + 20, *bp = udp + 8;
    assert_true(len >= HDR + 14 + 20 + 8 + 240);
    assert_int_equal(e[12] << 8 | e[13], 0x0800);
    assert_int_equal(ip[9], 17);
    assert_int_equal(udp[0] << 8 | udp[1], 67);
    assert_int_equal(udp[2] << 8 | udp[3], 68);
    assert_int_equal(bp[0], 2); /* BOOTREPLY */
    assert_memory_equal(bp + 4, "\x12\x34\x56\x78", 4);
    assert_memory_equal(bp + 16, "\x0a\x00\x02\x0f", 4); /* yiaddr 10.0.2.15 */
    /* options: message type OFFER, server 10.0.2.2 */
    int offer = 0, server = 0;
    for (uint32_t o = 240; o + 2 < len - HDR - 42 && bp[o] != 0xff;) {
        if (bp[o] == 0) {
            o++;
            continue;
        }
        if (bp[o] == 53 && bp[o + 2] == 2)
            offer = 1;
        if (bp[o] == 54 && !memcmp(bp + o + 2, "\x0a\x00\x02\x02", 4))
            server = 1;
        o += 2u + bp[o + 1];
    }
    assert_true(offer);
    assert_true(server);

    /* ARP: who has 10.0.2.2? */
    uint8_t *a = pkt + HDR;
    memset(a, 0, 42);
    memset(a, 0xff, 6);
    memcpy(a + 6, mac_bytes, 6);
    a[12] = 0x08;
    a[13] = 0x06;
    memcpy(a + 14, "\x00\x01\x08\x00\x06\x04\x00\x01", 8);
    memcpy(a + 22, mac_bytes, 6);
    memcpy(a + 28, "\x0a\x00\x02\x0f", 4);
    memcpy(a + 38, "\x0a\x00\x02\x02", 4);
    th = tx_one_buf(f, 0, pkt, HDR + 42);
    kick(f, NET_TXQ(0));
    expect_used(f, NET_TXQ(0), th, 0);
    if (!wait_used(f, NET_RXQ(0), &id, &len))
        fail_msg("no ARP reply");
    assert_int_equal(id, (uint32_t)head[1]);
    e = f->h.ram + gpa[1] + HDR;
    assert_int_equal(e[12] << 8 | e[13], 0x0806);
    assert_int_equal(e[21], 2); /* reply */
    assert_memory_equal(e + 28, "\x0a\x00\x02\x02", 4);
    assert_memory_equal(e + 32, mac_bytes, 6);

    /* A partial checksum is not something slirp can take. */
    make_hdr(pkt, HF_NEEDS_CSUM, 0, 0, 0, 34, 6);
    tx_rejected(f, pkt, HDR + 42, "NEEDS_CSUM in user mode");
}

/* Reset and destroy with slirp's frames queued and timers armed. */
static void test_user_reset(void **state)
{
    struct fx *f = *state;
    create_ok(f, "user=on,mac=" MAC);
    activate(f, ALL);
    uint8_t pkt[HDR + 600];
    memset(pkt, 0, HDR);
    uint32_t flen = dhcp_discover(pkt + HDR);
    /* No rx buffer: one OFFER is held, the others wait in the queue. */
    for (unsigned i = 0; i < 3; i++)
        tx_one_buf(f, 0, pkt, HDR + flen);
    kick(f, NET_TXQ(0));
    fake_host_advance(&f->h, f->p, f->dev, 5000000000ull);
    reset(f);
    fake_host_advance(&f->h, f->p, f->dev, 5000000000ull);
    activate(f, ALL);
    uint64_t gpa;
    int head = post_rx(f, 0, 2048, &gpa);
    kick(f, NET_RXQ(0));
    expect_idle(f, NET_RXQ(0)); /* the old OFFERs went with the reset */
    int th = tx_one_buf(f, 0, pkt, HDR + flen);
    kick(f, NET_TXQ(0));
    expect_used(f, NET_TXQ(0), th, 0);
    uint32_t id;
    assert_true(wait_used(f, NET_RXQ(0), &id, NULL));
    assert_int_equal(id, (uint32_t)head);
}

/* ---- real taps (root, /dev/net/tun), inside a private netns ---- */

static int enter_netns(struct fx *f)
{
    if (access("/dev/net/tun", R_OK | W_OK) != 0)
        return -1;
    f->oldns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (f->oldns < 0)
        return -1;
    if (unshare(CLONE_NEWNET) != 0) {
        close(f->oldns);
        f->oldns = -1;
        return -1;
    }
    return 0;
}

static int open_tap(char name[IFNAMSIZ], int flags)
{
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = (short)flags;
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        close(fd);
        return -1;
    }
    snprintf(name, IFNAMSIZ, "%s", ifr.ifr_name);
    return fd;
}

/* A legacy ethtool flag (ETHTOOL_GTXCSUM, ETHTOOL_GTSO) of interface `name`. */
static int ethtool_get(const char *name, uint32_t cmd)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(s >= 0);
    struct ethtool_value ev = {.cmd = cmd};
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
    ifr.ifr_data = (void *)&ev;
    int r = ioctl(s, SIOCETHTOOL, &ifr);
    close(s);
    assert_int_equal(r, 0);
    return (int)ev.data;
}

static void test_tap_offloads(void **state)
{
    struct fx *f = *state;
    if (enter_netns(f) < 0)
        skip();
    char name[IFNAMSIZ] = "nbt%d";
    int t = open_tap(name, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);
    if (t < 0)
        skip();
    f->taps[0] = t;

    /* Taps the device cannot use are refused, naming the fd. */
    char plain[IFNAMSIZ] = "nbp%d", opts[128], tok[32];
    f->taps[1] = open_tap(plain, IFF_TAP | IFF_NO_PI);
    assert_true(f->taps[1] >= 0);
    snprintf(opts, sizeof(opts), "fd=%d,mac=" MAC, f->taps[1]);
    snprintf(tok, sizeof(tok), "fd %d", f->taps[1]);
    expect_error(f, opts, tok);
    assert_non_null(strstr(f->err, "IFF_VNET_HDR"));
    snprintf(opts, sizeof(opts), "fd=%d:%d,mac=" MAC, t, t);
    expect_error(f, opts, "IFF_MULTI_QUEUE");

    snprintf(opts, sizeof(opts), "fd=%d,mac=" MAC, t);
    create_ok(f, opts);
    assert_int_equal(f->info.device_features & OFFLOAD_BITS, OFFLOAD_BITS);
    int hdr = 0;
    assert_int_equal(ioctl(t, TUNGETVNETHDRSZ, &hdr), 0);
    assert_int_equal(hdr, HDR);

    activate(f, ALL);
    assert_int_equal(ethtool_get(name, ETHTOOL_GTXCSUM), 1);
    assert_int_equal(ethtool_get(name, ETHTOOL_GTSO), 1);
    assert_int_equal(set_offloads(f, BIT(B_GUEST_CSUM)), ACK_OK);
    assert_int_equal(ethtool_get(name, ETHTOOL_GTXCSUM), 1);
    assert_int_equal(ethtool_get(name, ETHTOOL_GTSO), 0);
    assert_int_equal(set_offloads(f, 0), ACK_OK);
    assert_int_equal(ethtool_get(name, ETHTOOL_GTXCSUM), 0);

    /* A driver without GUEST_CSUM gets no partial checksums at all. */
    reset(f);
    activate(f, ALL & ~(BIT(B_GUEST_CSUM) | BIT(B_GUEST_TSO4) | BIT(B_GUEST_TSO6) |
                        BIT(B_GUEST_ECN) | BIT(B_GUEST_UFO)));
    assert_int_equal(ethtool_get(name, ETHTOOL_GTXCSUM), 0);
    assert_int_equal(ethtool_get(name, ETHTOOL_GTSO), 0);
}

/* Whether a multiqueue tap fd is attached.  The kernel only says so by
 * refusing to attach it again (EINVAL), so a detached one is attached by
 * the probe and detached again. */
static int queue_attached(int fd)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_ATTACH_QUEUE;
    if (ioctl(fd, TUNSETQUEUE, &ifr) < 0) {
        assert_int_equal(errno, EINVAL);
        return 1;
    }
    ifr.ifr_flags = IFF_DETACH_QUEUE;
    assert_int_equal(ioctl(fd, TUNSETQUEUE, &ifr), 0);
    return 0;
}

static void test_tap_multiqueue(void **state)
{
    struct fx *f = *state;
    if (enter_netns(f) < 0)
        skip();
    char name[IFNAMSIZ] = "nbm%d";
    f->taps[0] = open_tap(name, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE);
    if (f->taps[0] < 0)
        skip();
    f->taps[1] = open_tap(name, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE);
    assert_true(f->taps[1] >= 0);
    char opts[128];
    snprintf(opts, sizeof(opts), "fd=%d:%d,mac=" MAC ",num_queues=4", f->taps[0], f->taps[1]);
    create_ok(f, opts);
    assert_true(f->info.device_features & BIT(B_MQ));
    activate(f, ALL);
    /* One pair until the driver asks: the second tap queue is detached. */
    assert_true(queue_attached(f->taps[0]));
    assert_false(queue_attached(f->taps[1]));
    assert_int_equal(set_pairs(f, 2), ACK_OK);
    assert_true(queue_attached(f->taps[1]));
    assert_int_equal(set_pairs(f, 1), ACK_OK);
    assert_false(queue_attached(f->taps[1]));
    /* A detached queue polls as an error forever: nothing may watch it. */
    post_rx(f, 1, 2048, NULL);
    kick(f, NET_RXQ(1));
    assert_int_equal(fake_host_poll(&f->h, f->p, f->dev, 0), 0);
    assert_int_equal(fake_host_watched(&f->h, 1), -1);
    assert_int_equal(set_pairs(f, 2), ACK_OK);
    reset(f);
    activate(f, ALL);
    assert_true(queue_attached(f->taps[0]));
    assert_false(queue_attached(f->taps[1]));
}

/* Frames through a real tap that is up in the private netns: the kernel's
 * ARP request for a neighbour reaches the guest, the guest's reply is taken. */
static void test_tap_traffic(void **state)
{
    struct fx *f = *state;
    if (enter_netns(f) < 0)
        skip();
    char name[IFNAMSIZ] = "nbx%d";
    int t = open_tap(name, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);
    if (t < 0)
        skip();
    f->taps[0] = t;
    char opts[128];
    snprintf(opts, sizeof(opts), "fd=%d,mac=" MAC, t);
    create_ok(f, opts);
    activate(f, ALL);

    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
    struct sockaddr_in *sa = (struct sockaddr_in *)&ifr.ifr_addr;
    sa->sin_family = AF_INET;
    inet_pton(AF_INET, "10.211.0.1", &sa->sin_addr);
    assert_int_equal(ioctl(s, SIOCSIFADDR, &ifr), 0);
    inet_pton(AF_INET, "255.255.255.0", &sa->sin_addr);
    assert_int_equal(ioctl(s, SIOCSIFNETMASK, &ifr), 0);
    assert_int_equal(ioctl(s, SIOCGIFFLAGS, &ifr), 0);
    ifr.ifr_flags |= IFF_UP;
    assert_int_equal(ioctl(s, SIOCSIFFLAGS, &ifr), 0);

    uint64_t gpa[8];
    int head[8];
    for (unsigned i = 0; i < 8; i++)
        head[i] = post_rx(f, 0, 2048, &gpa[i]);
    kick(f, NET_RXQ(0));
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(9)};
    inet_pton(AF_INET, "10.211.0.2", &to.sin_addr);
    assert_int_equal(sendto(s, "x", 1, 0, (struct sockaddr *)&to, sizeof(to)), 1);
    /* The interface may say other things first (IPv6 solicitations). */
    const uint8_t *arp = NULL;
    for (unsigned i = 0; i < 8 && !arp; i++) {
        uint32_t id, len;
        if (!wait_used(f, NET_RXQ(0), &id, &len))
            break;
        assert_int_equal(id, (uint32_t)head[i]);
        const uint8_t *e = f->h.ram + gpa[i];
        assert_int_equal(e[10], 1);
        if (e[HDR + 12] == 0x08 && e[HDR + 13] == 0x06)
            arp = e + HDR;
    }
    if (!arp)
        fail_msg("no ARP request from the tap");
    assert_memory_equal(arp + 38, "\x0a\xd3\x00\x02", 4);
    assert_int_equal(nd(f)->pair[0].rx_frames >= 1, 1);

    /* The guest answers; the kernel takes it and sends the datagram on. */
    uint8_t pkt[HDR + 42];
    memset(pkt, 0, HDR);
    uint8_t *a = pkt + HDR;
    memcpy(a, arp + 6, 6);
    memcpy(a + 6, mac_bytes, 6);
    a[12] = 0x08;
    a[13] = 0x06;
    memcpy(a + 14, "\x00\x01\x08\x00\x06\x04\x00\x02", 8);
    memcpy(a + 22, mac_bytes, 6);
    memcpy(a + 28, "\x0a\xd3\x00\x02", 4);
    memcpy(a + 32, arp + 6, 6);
    memcpy(a + 38, "\x0a\xd3\x00\x01", 4);
    int th = tx_one_buf(f, 0, pkt, sizeof(pkt));
    kick(f, NET_TXQ(0));
    expect_used(f, NET_TXQ(0), th, 0);
    assert_int_equal(nd(f)->pair[0].tx_frames, 1);
    assert_int_equal(nd(f)->pair[0].tx_dropped, 0);
    int udp = 0;
    for (unsigned i = 0; i < 8 && !udp; i++) {
        uint32_t id, len;
        if (!wait_used(f, NET_RXQ(0), &id, &len))
            break;
        unsigned k = 0;
        while (k < 7 && head[k] != (int)id)
            k++;
        const uint8_t *e = f->h.ram + gpa[k] + HDR;
        udp = e[12] == 0x08 && e[13] == 0x00 && e[14 + 9] == 17 && !memcmp(e, mac_bytes, 6);
    }
    assert_true(udp);
    close(s);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_option_errors),
        T(test_features),
        T(test_info_and_config),
        T(test_tx_byte_exact),
        T(test_tx_split_chain),
        T(test_tx_budget_reschedules),
        T(test_tx_hostile_headers),
        T(test_tx_no_csum),
        T(test_tx_backend_full),
        T(test_rx_basic),
        T(test_rx_mergeable),
        T(test_rx_small_ring_drops_instead_of_stalling),
        T(test_rx_too_big_without_mrg),
        T(test_rx_waits_for_buffers),
        T(test_rx_peer_closed),
        T(test_ctrl_pairs),
        T(test_ctrl_offloads),
        T(test_ctrl_garbage),
        T(test_counters),
        T(test_reset_forgets_in_flight),
        T(test_user_hostfwd),
        T(test_user_dhcp_and_arp),
        T(test_user_reset),
        T(test_tap_offloads),
        T(test_tap_multiqueue),
        T(test_tap_traffic),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
