/*
 * The qcow2 library against qemu-img as the reference: images qemu-img
 * makes read back as their raw source; after random writes, discards and
 * write-zeroes qemu-img check finds no error and qemu-img compare finds the
 * expected content; data flushed before a SIGKILL survives with an image
 * that checks clean (leaks allowed); corrupt images are refused with a
 * message naming the field.  Runs of clusters contiguous in the file are
 * one preadv/pwritev, and reads done outside the image lock never see a
 * cluster freed and reused by a concurrent discard.  Skips (with a message) without qemu-img.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "qcow2.h"
#include "qcow2_internal.h" /* q->stats: data syscalls */

static char dir[256];
static int have_qemu;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *P(const char *name)
{
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof(buf[k]), "%s/%s", dir, name);
    return buf[k];
}

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Random bytes with zero runs and repeats, so compression has work to do. */
static uint8_t *make_content(size_t size)
{
    uint8_t *b = malloc(size);
    assert_non_null(b);
    for (size_t i = 0; i < size; i += 4096) {
        uint64_t kind = rnd() % 4;
        for (size_t j = i; j < i + 4096 && j < size; j++)
            b[j] = kind == 0 ? 0 : kind == 1 ? (uint8_t)(j / 7) : (uint8_t)rnd();
    }
    return b;
}

static void write_file(const char *path, const uint8_t *b, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, b, size, 0), (ssize_t)size);
    close(fd);
}

struct img {
    int fd;
    struct qcow2 *q;
};

static int img_open(struct img *im, const char *path, int rw, int backing, char *err, size_t el)
{
    im->fd = open(path, rw ? O_RDWR : O_RDONLY);
    assert_true(im->fd >= 0);
    struct qcow2_open_opts o = {.readonly = !rw, .backing_files = backing, .cache_bytes = 0};
    im->q = qcow2_open(im->fd, path, &o, err, el);
    if (im->q == NULL) {
        close(im->fd);
        return -1;
    }
    return 0;
}

static void img_open_ok(struct img *im, const char *path, int rw, int backing)
{
    char err[512] = "";
    if (img_open(im, path, rw, backing, err, sizeof(err)) != 0)
        fail_msg("open %s: %s", path, err);
}

static void img_close(struct img *im)
{
    qcow2_close(im->q);
    close(im->fd);
}

static void read_compare(struct qcow2 *q, const uint8_t *want, size_t size)
{
    assert_int_equal(qcow2_virtual_size(q), size);
    uint8_t *got = malloc(size);
    assert_non_null(got);
    /* Odd-sized chunks in two iovecs to cross cluster boundaries. */
    for (size_t off = 0; off < size;) {
        size_t n = 1 + rnd() % 300000;
        if (n > size - off)
            n = size - off;
        size_t a = n / 3;
        struct iovec v[2] = {{got + off, a}, {got + off + a, n - a}};
        assert_int_equal(qcow2_preadv(q, v, 2, off), 0);
        off += n;
    }
    for (size_t i = 0; i < size; i++)
        if (got[i] != want[i])
            fail_msg("byte 0x%zx: got 0x%02x want 0x%02x", i, got[i], want[i]);
    free(got);
}

static int skip_without_qemu(void)
{
    if (!have_qemu) {
        print_message("qemu-img missing: skipped (install qemu-utils)\n");
        return 1;
    }
    return 0;
}

#define SIZE (6u << 20)

static void test_read_formats(void **state)
{
    (void)state;
    if (skip_without_qemu())
        skip();
    uint8_t *src = make_content(SIZE);
    write_file(P("src.raw"), src, SIZE);
    const char *opts[] = {
        "-o compat=0.10,cluster_size=4096",
        "-o compat=0.10,cluster_size=65536",
        "-o compat=1.1,cluster_size=4096",
        "-o compat=1.1,cluster_size=65536",
        "-o compat=1.1,cluster_size=2M",
        "-o compat=1.1,cluster_size=512,refcount_bits=1",
        "-c -o compat=0.10,cluster_size=65536",
        "-c -o compat=1.1,cluster_size=4096",
        "-c -o compat=1.1,cluster_size=2M",
        "-c -o compat=1.1,compression_type=zstd,cluster_size=65536",
        "-c -o compat=1.1,compression_type=zstd,cluster_size=4096",
    };
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        assert_int_equal(sh("qemu-img convert -f raw -O qcow2 %s %s %s", opts[i], P("src.raw"),
                            P("r.qcow2")), 0);
        struct img im;
        img_open_ok(&im, P("r.qcow2"), 0, 0);
        read_compare(im.q, src, SIZE);
        img_close(&im);
    }
    free(src);
}

/* Apply the same random ops to the image and to the expected content. */
static void random_ops(struct qcow2 *q, uint8_t *want, const uint8_t *backing, uint32_t cs,
                       int v2, int nops)
{
    uint8_t *buf = malloc(3u << 20);
    assert_non_null(buf);
    for (int k = 0; k < nops; k++) {
        uint64_t kind = rnd() % 10;
        uint64_t off = rnd() % SIZE;
        uint64_t len = 1 + rnd() % (kind < 6 ? 200000 : 3 * cs);
        if (rnd() % 3 == 0) { /* sector aligned, like a guest */
            off &= ~511ull;
            len = (len + 511) & ~511ull;
        }
        if (len > SIZE - off)
            len = SIZE - off;
        if (kind < 6) {
            for (uint64_t i = 0; i < len; i++)
                buf[i] = (uint8_t)rnd();
            struct iovec v[3] = {{buf, len / 4}, {buf + len / 4, len / 2},
                                 {buf + len / 4 + len / 2, len - len / 4 - len / 2}};
            assert_int_equal(qcow2_pwritev(q, v, 3, off), 0);
            memcpy(want + off, buf, len);
        } else if (kind < 8) {
            int unmap = (int)(rnd() % 2);
            assert_int_equal(qcow2_write_zeroes(q, off, len, unmap), 0);
            memset(want + off, 0, len);
        } else if (kind < 9) {
            assert_int_equal(qcow2_discard(q, off, len), 0);
            /* Whole clusters read as zeroes, or (v2 over a backing file) as the backing file. */
            uint64_t a = (off + cs - 1) / cs * cs, b = (off + len) / cs * cs;
            for (uint64_t c = a; c < b; c += cs) {
                if (v2 && backing != NULL)
                    memcpy(want + c, backing + c, cs);
                else
                    memset(want + c, 0, cs);
            }
        } else {
            assert_int_equal(qcow2_flush(q), 0);
        }
    }
    free(buf);
}

static void check_and_compare(const char *img, const uint8_t *want)
{
    write_file(P("want.raw"), want, SIZE);
    int rc = sh("qemu-img check -q %s", img);
    if (rc != 0) {
        sh("qemu-img check %s >&2", img);
        fail_msg("qemu-img check %s: exit %d", img, rc);
    }
    assert_int_equal(sh("qemu-img compare -q -f qcow2 -F raw %s %s", img, P("want.raw")), 0);
}

struct wcase {
    const char *create; /* qemu-img convert options for the image, or NULL: qemu-img create */
    const char *backing; /* NULL, "qcow2" or "raw" */
    int v2;
};

static void run_write_case(const struct wcase *c)
{
    uint8_t *src = make_content(SIZE), *base = NULL;
    uint8_t *want;
    char opts[256];
    snprintf(opts, sizeof(opts), "%s", c->create);
    if (c->backing != NULL) {
        base = make_content(SIZE);
        write_file(P("base.raw"), base, SIZE);
        if (strcmp(c->backing, "qcow2") == 0)
            assert_int_equal(sh("qemu-img convert -q -f raw -O qcow2 -o cluster_size=4096 %s %s",
                                P("base.raw"), P("base.qcow2")), 0);
        assert_int_equal(sh("qemu-img create -q -f qcow2 %s -b %s -F %s %s %u", opts,
                            strcmp(c->backing, "qcow2") == 0 ? "base.qcow2" : "base.raw",
                            c->backing, P("w.qcow2"), SIZE), 0);
        want = malloc(SIZE);
        memcpy(want, base, SIZE);
    } else {
        write_file(P("src.raw"), src, SIZE);
        assert_int_equal(sh("qemu-img convert -q -f raw -O qcow2 %s %s %s", opts, P("src.raw"),
                            P("w.qcow2")), 0);
        want = malloc(SIZE);
        memcpy(want, src, SIZE);
    }
    struct img im;
    img_open_ok(&im, P("w.qcow2"), 1, c->backing != NULL);
    read_compare(im.q, want, SIZE);
    uint32_t cs = qcow2_cluster_size(im.q);
    random_ops(im.q, want, base, cs, c->v2, 300);
    read_compare(im.q, want, SIZE);
    img_close(&im);
    check_and_compare(P("w.qcow2"), want);
    /* And once more after a reopen: metadata on disk agrees with the cache. */
    img_open_ok(&im, P("w.qcow2"), 1, c->backing != NULL);
    read_compare(im.q, want, SIZE);
    random_ops(im.q, want, base, cs, c->v2, 100);
    img_close(&im);
    check_and_compare(P("w.qcow2"), want);
    free(src);
    free(base);
    free(want);
}

static void test_writes(void **state)
{
    (void)state;
    if (skip_without_qemu())
        skip();
    const struct wcase cases[] = {
        {"-o compat=1.1,cluster_size=65536", NULL, 0},
        {"-o compat=0.10,cluster_size=65536", NULL, 1},
        {"-o compat=1.1,cluster_size=4096", NULL, 0},
        {"-o compat=1.1,cluster_size=2M", NULL, 0},
        {"-c -o compat=1.1,cluster_size=4096", NULL, 0},
        {"-c -o compat=1.1,compression_type=zstd,cluster_size=65536", NULL, 0},
        {"-c -o compat=0.10,cluster_size=4096", NULL, 1},
        /* Refcount blocks and the refcount table itself must grow. */
        {"-o compat=1.1,cluster_size=512", NULL, 0},
        {"-o compat=1.1,cluster_size=512,refcount_bits=64", NULL, 0},
        {"-o compat=1.1,cluster_size=1024,refcount_bits=1", NULL, 0},
        {"-o compat=1.1,cluster_size=4096,refcount_bits=8", NULL, 0},
        {"-o compat=1.1,cluster_size=65536,lazy_refcounts=on", NULL, 0},
        {"-o compat=1.1,cluster_size=4096", "qcow2", 0},
        {"-o compat=1.1,cluster_size=65536", "raw", 0},
        {"-o compat=0.10,cluster_size=4096", "qcow2", 1},
        {"-o compat=0.10,cluster_size=65536", "raw", 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        print_message("  case %s backing %s\n", cases[i].create,
                      cases[i].backing ? cases[i].backing : "none");
        run_write_case(&cases[i]);
    }
}

static void test_backing_chain(void **state)
{
    (void)state;
    if (skip_without_qemu())
        skip();
    uint8_t *a = make_content(SIZE);
    write_file(P("a.raw"), a, SIZE);
    assert_int_equal(sh("qemu-img convert -q -f raw -O qcow2 -c %s %s", P("a.raw"),
                        P("a.qcow2")), 0);
    assert_int_equal(sh("qemu-img create -q -f qcow2 -b a.qcow2 -F qcow2 %s", P("b.qcow2")), 0);
    assert_int_equal(sh("qemu-io -f qcow2 -c 'write -P 0xab 100k 200k' %s >/dev/null",
                        P("b.qcow2")), 0);
    assert_int_equal(sh("qemu-img create -q -f qcow2 -b b.qcow2 -F qcow2 %s", P("c.qcow2")), 0);
    assert_int_equal(sh("qemu-io -f qcow2 -c 'write -P 0xcd 250k 4k' -c 'write -z 1M 64k' %s "
                        ">/dev/null", P("c.qcow2")), 0);
    memset(a + 100 * 1024, 0xab, 200 * 1024);
    memset(a + 250 * 1024, 0xcd, 4096);
    memset(a + (1 << 20), 0, 65536);
    struct img im;
    img_open_ok(&im, P("c.qcow2"), 0, 1);
    read_compare(im.q, a, SIZE);
    img_close(&im);
    /* Without the backing format extension the format is probed: turn the
     * extension (right after c's 112-byte header) into an unknown one. */
    int fd = open(P("c.qcow2"), O_RDWR);
    uint8_t ext[4];
    assert_int_equal(pread(fd, ext, 4, 112), 4);
    assert_int_equal(ext[0], 0xe2);
    assert_int_equal(pwrite(fd, "\x12\x34\x56\x78", 4, 112), 4);
    close(fd);
    img_open_ok(&im, P("c.qcow2"), 0, 1);
    read_compare(im.q, a, SIZE);
    img_close(&im);

    char err[512] = "";
    assert_int_equal(img_open(&im, P("c.qcow2"), 0, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "backing_files"));

    /* A loop: a -> b -> a. */
    assert_int_equal(sh("qemu-img create -q -f qcow2 %s 1M && qemu-img create -q -f qcow2 -b "
                        "l1.qcow2 -F qcow2 %s && qemu-img rebase -u -b l2.qcow2 -F qcow2 %s",
                        P("l1.qcow2"), P("l2.qcow2"), P("l1.qcow2")), 0);
    assert_int_equal(img_open(&im, P("l1.qcow2"), 0, 1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "loop"));
    free(a);
}

/* Patch bytes of a fresh image, then expect open to fail naming `field`. */
static void expect_refused(const char *create, long off, const void *bytes, size_t n, int rw,
                           const char *field)
{
    assert_int_equal(sh("rm -f %s && qemu-img create -q -f qcow2 %s %s 64M", P("bad.qcow2"),
                        create, P("bad.qcow2")), 0);
    int fd = open(P("bad.qcow2"), O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, bytes, n, off), (ssize_t)n);
    close(fd);
    struct img im;
    char err[512] = "";
    if (img_open(&im, P("bad.qcow2"), rw, 0, err, sizeof(err)) == 0) {
        img_close(&im);
        fail_msg("image with a bad %s was opened", field);
    }
    if (strstr(err, field) == NULL)
        fail_msg("message '%s' does not name %s", err, field);
}

static void test_corrupt(void **state)
{
    (void)state;
    if (skip_without_qemu())
        skip();
    const char *v3 = "-o compat=1.1,cluster_size=65536";
    struct {
        long off;
        uint8_t b[8];
        size_t n;
        int rw;
        const char *field;
    } c[] = {
        {0, {'Q', 'F', 'I', 0}, 4, 0, "magic"},
        {4, {0, 0, 0, 4}, 4, 0, "version"},
        {20, {0, 0, 0, 8}, 4, 0, "cluster_bits"},
        {20, {0, 0, 0, 22}, 4, 0, "cluster_bits"},
        {24, {0x7f, 0, 0, 0, 0, 0, 0, 0}, 8, 0, "size"},
        {24, {0, 0, 1, 0, 0, 0, 0, 0}, 8, 0, "l1_size"}, /* too small for 1 TiB */
        {32, {0, 0, 0, 1}, 4, 0, "crypt_method"},
        {36, {0x10, 0, 0, 0}, 4, 0, "l1_size"}, /* 2 GiB table */
        {40, {0, 0, 0, 0, 0, 3, 0, 1}, 8, 0, "l1_table_offset"},
        {40, {0, 0, 0, 0, 0x10, 0, 0, 0}, 8, 0, "l1_table_offset"},
        {40, {0, 0, 0, 0, 0, 1, 0, 0}, 8, 0, "l1_table_offset"}, /* over the refcount table */
        {48, {0, 0, 0, 0, 0, 1, 0, 8}, 8, 0, "refcount_table_offset"},
        {56, {0, 0, 0, 0}, 4, 0, "refcount_table_clusters"},
        {56, {0, 0, 1, 0}, 4, 0, "refcount_table_clusters"},
        {72, {0, 0, 0, 0, 0, 0, 0, 0x20}, 8, 0, "incompatible_features"},
        {72, {0, 0, 0, 0, 0, 0, 0, 0x04}, 8, 0, "external data file"},
        {72, {0, 0, 0, 0, 0, 0, 0, 0x10}, 8, 0, "extended L2"},
        {72, {0, 0, 0, 0, 0, 0, 0, 0x08}, 8, 0, "compression_type"},
        {72, {0, 0, 0, 0, 0, 0, 0, 0x02}, 8, 1, "corrupt"},
        {96, {0, 0, 0, 7}, 4, 0, "refcount_order"},
        {100, {0, 0, 0, 100}, 4, 0, "header_length"},
        {8, {0, 0, 0, 0, 0, 0, 0, 0x40}, 8, 0, "backing_file_offset"}, /* inside the header */
        {60, {0, 0, 0, 1}, 4, 0, "snapshots_offset"},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
        expect_refused(v3, c[i].off, c[i].b, c[i].n, c[i].rw, c[i].field);
    /* backing_file_size too large: offset 0x200, size 2000. */
    {
        uint8_t b[12] = {0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0x07, 0xd0};
        expect_refused(v3, 8, b, sizeof(b), 0, "backing_file_size");
    }
    /* An L1 entry beyond the end of the file (L1 at 0x30000 for this geometry). */
    {
        uint8_t b[8] = {0x80, 0, 0, 0x10, 0, 0, 0, 0};
        expect_refused(v3, 0x30000, b, sizeof(b), 0, "L1 entry 0");
    }
    /* A refcount table entry that is not aligned. */
    {
        uint8_t b[8] = {0, 0, 0, 0, 0, 1, 0, 0x10};
        expect_refused(v3, 0x10000, b, sizeof(b), 0, "refcount table entry 0");
    }
    /* The header's own refcount zeroed: no writes (allocation could reuse it). */
    {
        uint8_t b[2] = {0, 0};
        expect_refused(v3, 0x20000, b, sizeof(b), 1, "header cluster");
    }
    /* The corrupt bit still allows reading. */
    {
        uint8_t b[8] = {0, 0, 0, 0, 0, 0, 0, 0x02};
        assert_int_equal(sh("rm -f %s && qemu-img create -q -f qcow2 %s %s 64M", P("bad.qcow2"),
                            v3, P("bad.qcow2")), 0);
        int fd = open(P("bad.qcow2"), O_RDWR);
        assert_int_equal(pwrite(fd, b, 8, 72), 8);
        close(fd);
        struct img im;
        img_open_ok(&im, P("bad.qcow2"), 0, 0);
        img_close(&im);
    }
}

/* A hostile L2 entry met at run time: -EIO, never a crash, no write outside. */
static void test_runtime_corruption(void **state)
{
    (void)state;
    if (skip_without_qemu())
        skip();
    assert_int_equal(sh("rm -f %s && qemu-img create -q -f qcow2 -o cluster_size=65536 %s 64M && "
                        "qemu-io -c 'write -P 1 0 64k' %s >/dev/null", P("rt.qcow2"),
                        P("rt.qcow2"), P("rt.qcow2")), 0);
    /* L2 table at 0x40000 (after header, refcount table, block, L1): point
     * entry 0 at the L1 table (0x30000). */
    int fd = open(P("rt.qcow2"), O_RDWR);
    uint8_t b[8] = {0x80, 0, 0, 0, 0, 3, 0, 0};
    assert_int_equal(pwrite(fd, b, 8, 0x40000), 8);
    close(fd);
    struct img im;
    img_open_ok(&im, P("rt.qcow2"), 1, 0);
    uint8_t buf[512];
    struct iovec v = {buf, sizeof(buf)};
    assert_int_equal(qcow2_preadv(im.q, &v, 1, 0), -EIO);
    assert_int_equal(qcow2_pwritev(im.q, &v, 1, 0), -EIO);
    assert_int_equal(qcow2_preadv(im.q, &v, 1, 0x100000), 0);
    assert_int_equal(qcow2_preadv(im.q, &v, 1, 64u << 20), -EINVAL);
    img_close(&im);
}

static uint64_t data_reads(struct qcow2 *q)
{
    return __atomic_load_n(&q->stats.data_reads, __ATOMIC_RELAXED);
}

static uint64_t data_writes(struct qcow2 *q)
{
    return __atomic_load_n(&q->stats.data_writes, __ATOMIC_RELAXED);
}

/* Read [off, off+len) in pieces of piece bytes; the number of data preadv calls. */
static uint64_t counted_read(struct qcow2 *q, uint8_t *buf, uint64_t off, size_t len,
                             size_t piece)
{
    int n = (int)((len + piece - 1) / piece);
    struct iovec *v = calloc((size_t)n, sizeof(*v));
    assert_non_null(v);
    for (int i = 0; i < n; i++) {
        v[i].iov_base = buf + (size_t)i * piece;
        v[i].iov_len = len - (size_t)i * piece < piece ? len - (size_t)i * piece : piece;
    }
    uint64_t before = data_reads(q);
    assert_int_equal(qcow2_preadv(q, v, n, off), 0);
    free(v);
    return data_reads(q) - before;
}

static uint64_t counted_write(struct qcow2 *q, uint8_t *want, uint64_t off, size_t len,
                              size_t piece)
{
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)rnd();
    int n = (int)((len + piece - 1) / piece);
    struct iovec *v = calloc((size_t)n, sizeof(*v));
    assert_non_null(v);
    for (int i = 0; i < n; i++) {
        v[i].iov_base = buf + (size_t)i * piece;
        v[i].iov_len = len - (size_t)i * piece < piece ? len - (size_t)i * piece : piece;
    }
    uint64_t before = data_writes(q);
    assert_int_equal(qcow2_pwritev(q, v, n, off), 0);
    memcpy(want + off, buf, len);
    free(v);
    free(buf);
    return data_writes(q) - before;
}

/*
 * A guest request over clusters that lie one after another in the file is
 * one preadv/pwritev (the engine used to issue one per cluster), split only
 * at IOV_MAX pieces.
 */
static void test_merged_io(void **state)
{
    (void)state;
    if (skip_without_qemu())
        skip();
    uint8_t *src = make_content(SIZE), *got = malloc(SIZE);
    assert_non_null(got);
    write_file(P("src.raw"), src, SIZE);
    assert_int_equal(sh("qemu-img convert -q -f raw -O qcow2 -o compat=1.1,cluster_size=65536 "
                        "%s %s", P("src.raw"), P("m.qcow2")), 0);
    struct img im;
    img_open_ok(&im, P("m.qcow2"), 0, 0);
    /* 16 clusters, aligned, one iovec. */
    assert_int_equal(counted_read(im.q, got, 1u << 20, 1u << 20, 1u << 20), 1);
    assert_memory_equal(got, src + (1u << 20), 1u << 20);
    /* Unaligned, 11 clusters, odd pieces. */
    assert_int_equal(counted_read(im.q, got, (1u << 20) + 1000, 700000, 100003), 1);
    assert_memory_equal(got, src + (1u << 20) + 1000, 700000);
    /* 2048 pieces: two calls of at most IOV_MAX (1024). */
    assert_int_equal(counted_read(im.q, got, 2u << 20, 1u << 20, 512), 2);
    assert_memory_equal(got, src + (2u << 20), 1u << 20);
    img_close(&im);

    uint8_t *want = calloc(1, SIZE);
    assert_non_null(want);
    assert_int_equal(sh("rm -f %s && qemu-img create -q -f qcow2 -o cluster_size=65536 %s %u",
                        P("m.qcow2"), P("m.qcow2"), SIZE), 0);
    img_open_ok(&im, P("m.qcow2"), 1, 0);
    /* Fresh clusters, allocated one after another: one call. */
    assert_int_equal(counted_write(im.q, want, 0, 1u << 20, 1u << 20), 1);
    /* In place over them, in pieces. */
    assert_int_equal(counted_write(im.q, want, 0, 1u << 20, 70000), 1);
    /* Fresh again, following the last cluster in the file. */
    assert_int_equal(counted_write(im.q, want, 1u << 20, (1u << 20) + 65536, 1u << 20), 1);
    assert_int_equal(counted_write(im.q, want, 0, 1u << 20, 512), 2);
    /* A partial cluster at each end (copy-on-write of zeroes) around one merged run. */
    assert_int_equal(counted_write(im.q, want, (3u << 20) + 100, 300000, 4096), 3);
    assert_int_equal(counted_read(im.q, got, 0, (2u << 20) + 65536, 1u << 20), 1);
    assert_memory_equal(got, want, (2u << 20) + 65536);
    read_compare(im.q, want, SIZE);
    img_close(&im);
    check_and_compare(P("m.qcow2"), want);
    free(src);
    free(got);
    free(want);
}

/*
 * Reads of data clusters run outside the image lock.  While readers run,
 * a writer discards clusters, flushes (so the discarded clusters become
 * free) and fills other, unallocated guest clusters, which reuses them.
 * Guest cluster c only ever holds the word c+1 or zeroes: any other word a
 * reader sees is data of another cluster, read from a cluster freed and
 * reused under it.  The image is on tmpfs when there is one: a flush
 * there takes microseconds, so a whole discard-flush-fill round fits in
 * the time a reader spends in one 1 MiB preadv.
 */
#define RACE_CLUSTERS 64u
#define RACE_CS 65536u

struct race {
    struct qcow2 *q;
    int stop;
    int bad;
    uint64_t reads;
};

static void *race_reader(void *arg)
{
    struct race *r = arg;
    uint64_t *buf = malloc(16 * RACE_CS);
    assert_non_null(buf);
    uint64_t seed = (uint64_t)(uintptr_t)buf | 1;
    while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        uint64_t c0 = seed % (RACE_CLUSTERS - 16), n = 1 + (seed >> 20) % 16;
        struct iovec v = {buf, n * RACE_CS};
        int rc = qcow2_preadv(r->q, &v, 1, c0 * RACE_CS);
        if (rc != 0) {
            print_message("  read of clusters %llu+%llu: %d\n", (unsigned long long)c0,
                          (unsigned long long)n, rc);
            __atomic_store_n(&r->bad, 1, __ATOMIC_RELAXED);
            break;
        }
        for (uint64_t i = 0; i < n * RACE_CS / 8; i++) {
            uint64_t c = c0 + i / (RACE_CS / 8);
            if (buf[i] != 0 && buf[i] != c + 1) {
                print_message("  cluster %llu holds the word 0x%llx\n", (unsigned long long)c,
                              (unsigned long long)buf[i]);
                __atomic_store_n(&r->bad, 1, __ATOMIC_RELAXED);
                break;
            }
        }
        __atomic_fetch_add(&r->reads, 1, __ATOMIC_RELAXED);
    }
    free(buf);
    return NULL;
}

static void test_read_vs_reuse(void **state)
{
    (void)state;
    if (skip_without_qemu())
        skip();
    char path[300];
    struct stat st;
    if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0)
        snprintf(path, sizeof(path), "/dev/shm/nimbus-race-%d.qcow2", (int)getpid());
    else
        snprintf(path, sizeof(path), "%s", P("race.qcow2"));
    assert_int_equal(sh("rm -f %s && qemu-img create -q -f qcow2 -o cluster_size=%u %s %u", path,
                        RACE_CS, path, RACE_CLUSTERS * RACE_CS), 0);
    struct img im;
    img_open_ok(&im, path, 1, 0);
    static uint64_t words[RACE_CS / 8];
    int alloc[RACE_CLUSTERS];
    for (unsigned c = 0; c < RACE_CLUSTERS; c++) {
        for (unsigned i = 0; i < RACE_CS / 8; i++)
            words[i] = c + 1;
        struct iovec v = {words, RACE_CS};
        assert_int_equal(qcow2_pwritev(im.q, &v, 1, (uint64_t)c * RACE_CS), 0);
        alloc[c] = 1;
    }
    assert_int_equal(qcow2_flush(im.q), 0);
    struct race r = {.q = im.q};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, race_reader, &r), 0);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned ops = 0;
    do {
        unsigned a = (unsigned)(rnd() % RACE_CLUSTERS), b = (unsigned)(rnd() % RACE_CLUSTERS);
        if (alloc[a]) {
            assert_int_equal(qcow2_discard(im.q, (uint64_t)a * RACE_CS, RACE_CS), 0);
            alloc[a] = 0;
            assert_int_equal(qcow2_flush(im.q), 0);
        }
        if (!alloc[b]) {
            for (unsigned i = 0; i < RACE_CS / 8; i++)
                words[i] = b + 1;
            struct iovec v = {words, RACE_CS};
            assert_int_equal(qcow2_pwritev(im.q, &v, 1, (uint64_t)b * RACE_CS), 0);
            alloc[b] = 1;
        }
        ops++;
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (!__atomic_load_n(&r.bad, __ATOMIC_RELAXED) &&
             (now.tv_sec - t0.tv_sec) * 1000000000L + (now.tv_nsec - t0.tv_nsec) < 1500000000L);
    __atomic_store_n(&r.stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    print_message("  %u discard/flush/fill rounds, %llu reads\n", ops,
                  (unsigned long long)r.reads);
    img_close(&im);
    int rc = sh("qemu-img check -q %s", path);
    unlink(path);
    assert_int_equal(r.bad, 0);
    assert_true(r.reads > 0);
    assert_int_equal(rc, 0);
}

#define CRASH_SIZE (64u << 20)
#define REGION 20000u /* bytes per iteration, unaligned: crosses clusters */

static uint8_t pat(unsigned k, unsigned i)
{
    return (uint8_t)(k * 31 + i / 512 + 1);
}

static void crash_child(const char *path, int wfd)
{
    struct img im;
    img_open_ok(&im, path, 1, 0);
    static uint8_t buf[REGION];
    for (unsigned k = 0;; k++) {
        uint64_t off = (uint64_t)k * REGION * 3 % (CRASH_SIZE - REGION);
        for (unsigned i = 0; i < REGION; i++)
            buf[i] = pat(k, i);
        struct iovec v = {buf, REGION};
        if (qcow2_pwritev(im.q, &v, 1, off) != 0)
            _exit(2);
        if (k % 5 == 4 && qcow2_discard(im.q, off + REGION, REGION) != 0)
            _exit(2);
        if (qcow2_flush(im.q) != 0)
            _exit(3);
        if (write(wfd, &k, sizeof(k)) != sizeof(k))
            _exit(4);
    }
}

static void crash_round(const char *create, int lazy)
{
    assert_int_equal(sh("rm -f %s && qemu-img create -q -f qcow2 %s %s %u", P("c.qcow2"), create,
                        P("c.qcow2"), CRASH_SIZE), 0);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        crash_child(P("c.qcow2"), p[1]);
    }
    close(p[1]);
    struct timespec ts = {0, (long)(20000000 + rnd() % 300000000)};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    unsigned k, last = 0;
    int any = 0;
    while (read(p[0], &k, sizeof(k)) == sizeof(k)) {
        last = k;
        any = 1;
    }
    close(p[0]);
    if (lazy) {
        /* The dirty bit is set: our open rebuilds the refcounts. */
        struct img im;
        img_open_ok(&im, P("c.qcow2"), 1, 0);
        img_close(&im);
    }
    int rc = sh("qemu-img check -q %s >/dev/null", P("c.qcow2"));
    if (rc != 0 && rc != 3) { /* 3: leaked clusters only */
        sh("qemu-img check %s >&2", P("c.qcow2"));
        fail_msg("qemu-img check after kill: exit %d", rc);
    }
    if (!any)
        return;
    struct img im;
    img_open_ok(&im, P("c.qcow2"), 0, 0);
    static uint8_t buf[REGION];
    /* Later iterations may overlap earlier regions (the offsets wrap): check
     * each region against the last acknowledged write that covers it. */
    for (unsigned j = last + 1; j-- > 0 && last - j < 500;) {
        uint64_t off = (uint64_t)j * REGION * 3 % (CRASH_SIZE - REGION);
        struct iovec v = {buf, REGION};
        assert_int_equal(qcow2_preadv(im.q, &v, 1, off), 0);
        int overwritten = 0;
        for (unsigned m = j + 1; m <= last + 1; m++) {
            uint64_t o2 = (uint64_t)m * REGION * 3 % (CRASH_SIZE - REGION);
            if (o2 < off + 2 * REGION && off < o2 + 2 * REGION)
                overwritten = 1;
        }
        if (overwritten)
            continue;
        for (unsigned i = 0; i < REGION; i++)
            if (buf[i] != pat(j, i))
                fail_msg("iteration %u (last flushed %u): byte %u lost", j, last, i);
    }
    img_close(&im);
}

static void test_crash(void **state)
{
    (void)state;
    if (skip_without_qemu())
        skip();
    for (int i = 0; i < 4; i++) {
        crash_round("-o compat=1.1,cluster_size=4096", 0);
        crash_round("-o compat=0.10,cluster_size=65536", 0);
        crash_round("-o compat=1.1,cluster_size=512", 0);
        crash_round("-o compat=1.1,cluster_size=65536,lazy_refcounts=on", 1);
    }
}

static int setup(void **state)
{
    (void)state;
    have_qemu = sh("qemu-img --version >/dev/null 2>&1") == 0;
    snprintf(dir, sizeof(dir), "/tmp/nimbus-qcow2-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sh("rm -rf %s", dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_formats),   cmocka_unit_test(test_writes),
        cmocka_unit_test(test_backing_chain),  cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_runtime_corruption), cmocka_unit_test(test_crash),
        cmocka_unit_test(test_merged_io),      cmocka_unit_test(test_read_vs_reuse),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
