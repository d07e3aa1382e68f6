/*
 * Regression (issue 19): the driver resets a virtio-blk device while a
 * request hangs in the disk (as on a hung network file system).  The reset
 * must not block the vCPU that writes status 0, nor (through the device
 * lock) the event loop; device_status reads non-zero until the request has
 * ended, then 0, and the device works again.  The real transport, PCI host,
 * event loop, I/O group threads and virtio_blk plugin, with virtio_rng on
 * the same event loop as "every other device".
 *
 * The hang: this binary exports its symbols (ENABLE_EXPORTS in
 * tests/unit/CMakeLists.txt), so the plugin's io_uring_submit and preadv
 * land here first.  A read of sector HANG_SECTOR is redirected to a pipe
 * nobody writes until the test says so, and io_uring's cancel is turned
 * into one that matches nothing: a read stuck in a hung file system is
 * not cancellable either.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <liburing.h>
#include <sys/syscall.h>

#include "device.h"
#include "eventloop.h"
#include "layout.h"
#include "memory.h"
#include "nimbus/plugin_util.h"
#include "pci/pci.h"
#include "virtio/virtio_pci.h"

#define RAM_SIZE (16u << 20)
#define IMG_BYTES (1u << 20)
#define SECTOR 512u
#define HANG_SECTOR 1024u /* 512 KiB into the image */
#define HANG_OFF ((uint64_t)HANG_SECTOR * SECTOR)
#define DATA_LEN 4096u
#define QSIZE 16u
#define BLOCK_MS 2000u /* a reset write that takes this long blocked */

/* Common configuration fields (virtio 1.2, 4.1.4.3). */
enum { CC_DFSELECT = 0x00, CC_DF = 0x04, CC_GFSELECT = 0x08, CC_GF = 0x0c, CC_STATUS = 0x14,
       CC_QSELECT = 0x16, CC_QSIZE = 0x18, CC_QENABLE = 0x1c, CC_QDESC = 0x20,
       CC_QDRIVER = 0x28, CC_QDEVICE = 0x30 };
enum { S_ACK = 1, S_DRIVER = 2, S_DRIVER_OK = 4, S_FEATURES_OK = 8 };

/* ---- the hanging disk ----------------------------------------------------- */

static int hang_pipe[2] = {-1, -1};
static int hang_armed;   /* redirect the next read of HANG_SECTOR */
static int hang_caught;  /* reads redirected so far (atomic) */
static int cancels_seen; /* io_uring cancels neutralised (atomic) */

static void *real_fn(const char *lib, const char *name)
{
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    if (!h)
        h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    void *fn = h ? dlsym(h, name) : NULL;
    if (!fn)
        fail_msg("cannot find the real %s in %s: %s", name, lib, dlerror());
    return fn;
}

static int take_hang(uint64_t off)
{
    int one = 1;
    return off == HANG_OFF && __atomic_compare_exchange_n(&hang_armed, &one, 0, 0,
                                                          __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

int io_uring_submit(struct io_uring *ring)
{
    static int (*real)(struct io_uring *);
    if (!real)
        *(void **)&real = real_fn("liburing.so.2", "io_uring_submit");
    unsigned mask = *ring->sq.kring_mask;
    for (unsigned i = ring->sq.sqe_head; i != ring->sq.sqe_tail; i++) {
        struct io_uring_sqe *sqe = &ring->sq.sqes[i & mask];
        if (sqe->opcode == IORING_OP_READV && take_hang(sqe->off)) {
            /* A pipe has no offsets: read from its head. */
            sqe->fd = hang_pipe[0];
            sqe->off = (uint64_t)-1;
            __atomic_add_fetch(&hang_caught, 1, __ATOMIC_SEQ_CST);
        } else if (sqe->opcode == IORING_OP_ASYNC_CANCEL) {
            sqe->cancel_flags = 0;
            sqe->addr = 0x5eed; /* no such request: -ENOENT */
            __atomic_add_fetch(&cancels_seen, 1, __ATOMIC_SEQ_CST);
        }
    }
    return real(ring);
}

/* aio=sync: the group thread itself blocks in the read. */
static ssize_t hang_or_preadv(const char *name, int fd, const struct iovec *iov, int n,
                              off_t off)
{
    if (off >= 0 && take_hang((uint64_t)off)) {
        __atomic_add_fetch(&hang_caught, 1, __ATOMIC_SEQ_CST);
        return read(hang_pipe[0], iov[0].iov_base, iov[0].iov_len);
    }
    ssize_t (*real)(int, const struct iovec *, int, off_t);
    *(void **)&real = real_fn("libc.so.6", name);
    return real(fd, iov, n, off);
}

ssize_t preadv(int fd, const struct iovec *iov, int n, off_t off)
{
    return hang_or_preadv("preadv", fd, iov, n, off);
}

ssize_t preadv64(int fd, const struct iovec *iov, int n, off_t off)
{
    return hang_or_preadv("preadv64", fd, iov, n, off);
}

/* The hung read ends with DATA_LEN bytes of 0xab. */
static void release_hang(void)
{
    static uint8_t data[DATA_LEN];
    memset(data, 0xab, sizeof(data));
    assert_int_equal(write(hang_pipe[1], data, sizeof(data)), (ssize_t)sizeof(data));
}

/* ---- the machine ------------------------------------------------------------ */

static int msi_alloc(void *o, uint32_t *h)
{
    static uint32_t next;
    (void)o;
    *h = next++;
    return 0;
}
static void msi_release(void *o, uint32_t h) { (void)o; (void)h; }
static int msi_route(void *o, uint32_t h, uint64_t a, uint32_t d)
{
    (void)o; (void)h; (void)a; (void)d;
    return 0;
}
static int msi_fire(void *o, uint32_t h) { (void)o; (void)h; return 0; }
static const struct pci_msi_ops msi_ops = {msi_alloc, msi_release, msi_route, msi_fire};

/* One queue of one device, as the driver sees it. */
struct drv {
    struct device *dev;
    uint32_t slot, bar_lo, bar_hi;
    uint64_t bar;
    uint64_t desc, avail, used;
    uint16_t avail_idx;
};

struct rig {
    uint8_t *ram;
    struct guest_mem gm;
    struct bus pio, mmio;
    struct event_loop *el;
    struct pci_host *pci;
    struct device_env env;
    char img[512], src[512];
    struct drv blk, rng;
    uint64_t next_buf;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void wr(struct rig *r, uint64_t addr, uint32_t len, uint64_t v)
{
    uint8_t b[8];
    nimbus_le_store(b, len, v);
    assert_int_equal(bus_access(&r->mmio, addr, b, len, 1), 0);
}

static uint64_t rd(struct rig *r, uint64_t addr, uint32_t len)
{
    uint8_t b[8] = {0};
    assert_int_equal(bus_access(&r->mmio, addr, b, len, 0), 0);
    return nimbus_le_load(b, len);
}

static uint8_t status(struct rig *r, struct drv *q)
{
    return (uint8_t)rd(r, q->bar + VPCI_COMMON_OFF + CC_STATUS, 1);
}

static struct device *make_dev(struct rig *r, const char *plugin, const char *opts)
{
    char err[512] = "", path[512];
    snprintf(path, sizeof(path), "%s/%s", NIMBUS_TEST_PLUGIN_DIR, plugin);
    const nimbus_plugin *p = plugin_load(path, NULL, err, sizeof(err));
    if (!p)
        fail_msg("%s", err);
    struct device *d = device_create(p, opts, &r->env, NULL, err, sizeof(err));
    if (!d)
        fail_msg("%s", err);
    return d;
}

static void attach(struct rig *r, struct drv *q, struct device *d, uint64_t rings)
{
    q->dev = d;
    q->slot = virtio_pci_slot(d->virtio);
    q->bar_lo = pci_config_read(r->pci, 0, q->slot, 0, 0x10, 4);
    q->bar_hi = pci_config_read(r->pci, 0, q->slot, 0, 0x14, 4);
    q->bar = ((uint64_t)q->bar_hi << 32) | (q->bar_lo & ~0xfu);
    pci_config_write(r->pci, 0, q->slot, 0, 0x04, 2, 0x6);
    q->desc = rings;
    q->avail = rings + 0x1000;
    q->used = rings + 0x2000;
}

/* Reset, VERSION_1 only, queue 0 of QSIZE on fresh rings, DRIVER_OK. */
static void driver_up(struct rig *r, struct drv *q)
{
    uint64_t c = q->bar + VPCI_COMMON_OFF;
    wr(r, c + CC_STATUS, 1, 0);
    assert_int_equal(status(r, q), 0);
    memset(r->ram + q->desc, 0, 0x3000);
    q->avail_idx = 0;
    wr(r, c + CC_STATUS, 1, S_ACK | S_DRIVER);
    wr(r, c + CC_GFSELECT, 4, 1);
    wr(r, c + CC_GF, 4, 1); /* VERSION_1 (bit 32) */
    wr(r, c + CC_STATUS, 1, S_ACK | S_DRIVER | S_FEATURES_OK);
    wr(r, c + CC_QSELECT, 2, 0);
    wr(r, c + CC_QSIZE, 2, QSIZE);
    wr(r, c + CC_QDESC, 8, q->desc);
    wr(r, c + CC_QDRIVER, 8, q->avail);
    wr(r, c + CC_QDEVICE, 8, q->used);
    wr(r, c + CC_QENABLE, 2, 1);
    wr(r, c + CC_STATUS, 1, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    assert_int_equal(status(r, q), S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
}

static uint64_t alloc_buf(struct rig *r, uint64_t len)
{
    uint64_t g = r->next_buf;
    r->next_buf += (len + 4095) & ~4095ull;
    assert_true(r->next_buf <= RAM_SIZE);
    return g;
}

static void put_desc(struct rig *r, struct drv *q, uint16_t i, uint64_t addr, uint32_t len,
                     uint16_t flags)
{
    uint8_t *d = r->ram + q->desc + 16u * i;
    nimbus_le_store(d, 8, addr);
    nimbus_le_store(d + 8, 4, len);
    nimbus_le_store(d + 12, 2, flags);
    nimbus_le_store(d + 14, 2, (uint16_t)(i + 1));
}

/* Make chain `head` available and ring the doorbell. */
static void publish(struct rig *r, struct drv *q, uint16_t head)
{
    nimbus_le_store(r->ram + q->avail + 4 + 2u * (q->avail_idx % QSIZE), 2, head);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    q->avail_idx++;
    nimbus_le_store(r->ram + q->avail + 2, 2, q->avail_idx);
    wr(r, q->bar + VPCI_NOTIFY_OFF, 2, 0);
}

static uint16_t used_idx(struct rig *r, struct drv *q)
{
    return (uint16_t)__atomic_load_n((uint16_t *)(r->ram + q->used + 2), __ATOMIC_ACQUIRE);
}

static int wait_used(struct rig *r, struct drv *q, uint16_t want, unsigned ms)
{
    uint64_t end = now_ns() + (uint64_t)ms * 1000000u;
    while (used_idx(r, q) != want && now_ns() < end)
        usleep(200);
    return used_idx(r, q) == want;
}

/* A virtio-blk read of DATA_LEN bytes at `sector` (descriptors 0..2): the
 * data and status buffers' addresses land in *data and *st. */
static void blk_read(struct rig *r, uint64_t sector, uint64_t *data, uint64_t *st)
{
    struct drv *q = &r->blk;
    uint64_t hdr = alloc_buf(r, 16);
    *data = alloc_buf(r, DATA_LEN);
    *st = alloc_buf(r, 1);
    nimbus_le_store(r->ram + hdr, 4, 0); /* VIRTIO_BLK_T_IN */
    nimbus_le_store(r->ram + hdr + 4, 4, 0);
    nimbus_le_store(r->ram + hdr + 8, 8, sector);
    memset(r->ram + *data, 0x11, DATA_LEN);
    r->ram[*st] = 0xee;
    put_desc(r, q, 0, hdr, 16, 1 /* NEXT */);
    put_desc(r, q, 1, *data, DATA_LEN, 1 | 2 /* NEXT, WRITE */);
    put_desc(r, q, 2, *st, 1, 2);
    publish(r, q, 0);
}

/* virtio-rng fills one 64-byte buffer: served on the event loop thread. */
static int rng_works(struct rig *r)
{
    struct drv *q = &r->rng;
    uint64_t b = alloc_buf(r, 64);
    uint16_t before = used_idx(r, q);
    put_desc(r, q, 0, b, 64, 2);
    publish(r, q, 0);
    return wait_used(r, q, (uint16_t)(before + 1), 2000);
}

static void posted(void *opaque)
{
    __atomic_store_n((int *)opaque, 1, __ATOMIC_SEQ_CST);
}

/* The event loop runs deferred work within a second. */
static int loop_alive(struct rig *r)
{
    int ran = 0;
    assert_int_equal(el_post(r->el, posted, &ran), 0);
    for (int i = 0; i < 1000 && !__atomic_load_n(&ran, __ATOMIC_SEQ_CST); i++)
        usleep(1000);
    return __atomic_load_n(&ran, __ATOMIC_SEQ_CST);
}

static struct rig *rig_new(const char *aio)
{
    struct rig *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->ram = aligned_alloc(4096, RAM_SIZE);
    assert_non_null(r->ram);
    memset(r->ram, 0, RAM_SIZE);
    assert_int_equal(gm_wrap(&r->gm, r->ram, RAM_SIZE), 0);
    r->next_buf = 0x100000;
    bus_init(&r->pio, "pio");
    bus_init(&r->mmio, "mmio");
    r->el = el_create();
    assert_non_null(r->el);
    assert_int_equal(el_start(r->el), 0);
    struct pci_windows w = {.ecam_base = LAYOUT_PCI_ECAM, .ecam_size = 1u << 20,
                            .mmio32_base = LAYOUT_MMIO32_START, .mmio32_size = 0x20000000,
                            .mmio64_base = 1ull << 32, .mmio64_size = 1ull << 32};
    char err[256] = "";
    r->pci = pci_host_create(&r->pio, &r->mmio, &w, &msi_ops, NULL, err, sizeof(err));
    assert_non_null(r->pci);
    r->env = (struct device_env){.mem = &r->gm, .el = r->el, .pio = &r->pio, .mmio = &r->mmio,
                                 .pci = r->pci};

    /* The image: sector n holds bytes n & 0xff. */
    snprintf(r->img, sizeof(r->img), "%s/blkresetXXXXXX", NIMBUS_TEST_BINARY_DIR);
    int fd = mkstemp(r->img);
    assert_true(fd >= 0);
    static uint8_t sec[SECTOR];
    for (uint32_t s = 0; s < IMG_BYTES / SECTOR; s++) {
        memset(sec, (int)(s & 0xff), sizeof(sec));
        assert_int_equal(write(fd, sec, sizeof(sec)), (ssize_t)sizeof(sec));
    }
    close(fd);
    snprintf(r->src, sizeof(r->src), "%s/rngsrcXXXXXX", NIMBUS_TEST_BINARY_DIR);
    fd = mkstemp(r->src);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, sec, sizeof(sec)), (ssize_t)sizeof(sec));
    close(fd);

    char opts[1100];
    snprintf(opts, sizeof(opts), "path=%s,aio=%s", r->img, aio);
    attach(r, &r->blk, make_dev(r, "virtio_blk.so", opts), 0x10000);
    snprintf(opts, sizeof(opts), "src=%s", r->src);
    attach(r, &r->rng, make_dev(r, "virtio_rng.so", opts), 0x20000);
    driver_up(r, &r->blk);
    driver_up(r, &r->rng);
    assert_int_equal(pipe(hang_pipe), 0);
    hang_armed = hang_caught = cancels_seen = 0;
    return r;
}

static void rig_free(struct rig *r)
{
    el_stop(r->el);
    device_destroy(r->blk.dev);
    device_destroy(r->rng.dev);
    pci_host_destroy(r->pci);
    el_destroy(r->el);
    bus_destroy(&r->pio);
    bus_destroy(&r->mmio);
    unlink(r->img);
    unlink(r->src);
    close(hang_pipe[0]);
    close(hang_pipe[1]);
    free(r->ram);
    free(r);
}

/* ---- the vCPU writing status 0 ------------------------------------------------ */

struct vcpu {
    struct rig *r;
    int done; /* atomic */
    uint64_t ns;
};

static void *vcpu_reset(void *opaque)
{
    struct vcpu *v = opaque;
    uint64_t t0 = now_ns();
    uint8_t b = 0;
    bus_access(&v->r->mmio, v->r->blk.bar + VPCI_COMMON_OFF + CC_STATUS, &b, 1, 1);
    v->ns = now_ns() - t0;
    __atomic_store_n(&v->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

/* Status 0 from a vCPU thread; fails (rather than hangs) when it blocks. */
static void driver_reset(struct rig *r, const char *aio)
{
    struct vcpu v = {.r = r};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, vcpu_reset, &v), 0);
    uint64_t end = now_ns() + (uint64_t)BLOCK_MS * 1000000u;
    while (!__atomic_load_n(&v.done, __ATOMIC_SEQ_CST) && now_ns() < end)
        usleep(1000);
    if (!__atomic_load_n(&v.done, __ATOMIC_SEQ_CST)) {
        release_hang(); /* so the blocked vCPU and the teardown can end */
        pthread_join(t, NULL);
        fail_msg("aio=%s: writing status 0 blocked the vCPU for %.0f ms, until the hung "
                 "read ended", aio, (double)v.ns / 1e6);
    }
    pthread_join(t, NULL);
    print_message("aio=%s: status 0 written in %.3f ms with a read hung\n", aio,
                  (double)v.ns / 1e6);
    assert_true(v.ns < 100000000ull);
}

static void reset_with_a_hung_read(const char *aio)
{
    struct rig *r = rig_new(aio);
    struct drv *q = &r->blk;
    uint64_t data, st;

    /* The disk works. */
    blk_read(r, 3, &data, &st);
    assert_true(wait_used(r, q, 1, 5000));
    assert_int_equal(r->ram[st], 0);
    assert_int_equal(r->ram[data], 3);

    /* A read that hangs. */
    __atomic_store_n(&hang_armed, 1, __ATOMIC_SEQ_CST);
    blk_read(r, HANG_SECTOR, &data, &st);
    for (int i = 0; i < 5000 && !__atomic_load_n(&hang_caught, __ATOMIC_SEQ_CST); i++)
        usleep(1000);
    assert_int_equal(__atomic_load_n(&hang_caught, __ATOMIC_SEQ_CST), 1);
    usleep(20000); /* let the I/O thread settle into waiting */
    uint16_t used_before = used_idx(r, q);
    assert_int_equal(used_before, 1);

    /* The driver resets the device, on a vCPU of its own. */
    driver_reset(r, aio);

    /* While the read hangs: status stays non-zero, a new status is ignored,
     * every read returns at once, other devices and the event loop work. */
    uint8_t old = S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK;
    for (int i = 0; i < 30; i++) {
        uint64_t t0 = now_ns();
        assert_int_equal(status(r, q), old);
        assert_true(now_ns() - t0 < 100000000ull);
        usleep(10000);
    }
    wr(r, q->bar + VPCI_COMMON_OFF + CC_STATUS, 1, S_ACK);
    assert_int_equal(status(r, q), old);
    assert_true(rng_works(r));
    assert_true(loop_alive(r));
    assert_int_equal(used_idx(r, q), used_before);

    /* The read ends: then, and only then, the reset does. */
    release_hang();
    uint64_t end = now_ns() + 5000000000ull;
    while (status(r, q) != 0 && now_ns() < end)
        usleep(1000);
    assert_int_equal(status(r, q), 0);
    /* The hung chain never went back to the old ring (it is the guest's
     * again); io_uring dropped even its status byte. */
    assert_int_equal(used_idx(r, q), used_before);
    if (strcmp(aio, "io_uring") == 0) {
        assert_int_equal(r->ram[st], 0xee);
        assert_true(__atomic_load_n(&cancels_seen, __ATOMIC_SEQ_CST) >= 1);
    }

    /* Nothing writes guest memory after the reset ended. */
    uint8_t *snap = malloc(RAM_SIZE);
    assert_non_null(snap);
    memcpy(snap, r->ram, RAM_SIZE);
    usleep(200000);
    assert_memory_equal(snap, r->ram, RAM_SIZE);
    free(snap);

    /* The device works again, on the same rings. */
    driver_up(r, q);
    blk_read(r, 7, &data, &st);
    assert_true(wait_used(r, q, 1, 5000));
    assert_int_equal(r->ram[st], 0);
    assert_int_equal(r->ram[data], 7);
    assert_int_equal(r->ram[data + DATA_LEN - 1], 7 + DATA_LEN / SECTOR - 1);
    rig_free(r);
}

/* Containers' default seccomp profiles forbid io_uring: virtio-blk then
 * runs its synchronous engine, which the sync test covers. */
static int io_uring_usable(void)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    int fd = (int)syscall(__NR_io_uring_setup, 2, &p);
    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

#define SKIP_WITHOUT_IO_URING()                                                            \
    do {                                                                                   \
        if (!io_uring_usable()) {                                                          \
            print_message("io_uring unavailable here; skipped\n");                          \
            skip();                                                                        \
        }                                                                                  \
    } while (0)

static void test_reset_with_a_hung_read_io_uring(void **state)
{
    (void)state;
    SKIP_WITHOUT_IO_URING();
    reset_with_a_hung_read("io_uring");
}

/* The synchronous engine blocks its I/O thread in the read itself. */
static void test_reset_with_a_hung_read_sync(void **state)
{
    (void)state;
    reset_with_a_hung_read("sync");
}

/* A machine reset (a VMM thread, no vCPU running) may wait: it ends a
 * driver reset left pending, once the read does. */
struct machine {
    struct device *d;
    int done;
};

static void *machine_reset(void *opaque)
{
    struct machine *m = opaque;
    device_reset(m->d);
    __atomic_store_n(&m->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void test_machine_reset_ends_a_pending_reset(void **state)
{
    (void)state;
    SKIP_WITHOUT_IO_URING();
    struct rig *r = rig_new("io_uring");
    struct drv *q = &r->blk;
    uint64_t data, st;
    __atomic_store_n(&hang_armed, 1, __ATOMIC_SEQ_CST);
    blk_read(r, HANG_SECTOR, &data, &st);
    for (int i = 0; i < 5000 && !__atomic_load_n(&hang_caught, __ATOMIC_SEQ_CST); i++)
        usleep(1000);
    assert_int_equal(__atomic_load_n(&hang_caught, __ATOMIC_SEQ_CST), 1);
    driver_reset(r, "io_uring");
    assert_true(status(r, q) != 0);

    struct machine m = {.d = q->dev};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, machine_reset, &m), 0);
    usleep(100000);
    assert_int_equal(__atomic_load_n(&m.done, __ATOMIC_SEQ_CST), 0); /* waits for the read */
    release_hang();
    pthread_join(t, NULL);
    /* The machine reset the PCI function too: the firmware maps it again. */
    pci_config_write(r->pci, 0, q->slot, 0, 0x10, 4, q->bar_lo);
    pci_config_write(r->pci, 0, q->slot, 0, 0x14, 4, q->bar_hi);
    pci_config_write(r->pci, 0, q->slot, 0, 0x04, 2, 0x6);
    assert_int_equal(status(r, q), 0);
    assert_int_equal(r->ram[st], 0xee);
    driver_up(r, q);
    blk_read(r, 9, &data, &st);
    assert_true(wait_used(r, q, 1, 5000));
    assert_int_equal(r->ram[st], 0);
    assert_int_equal(r->ram[data], 9);
    rig_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reset_with_a_hung_read_io_uring),
        cmocka_unit_test(test_reset_with_a_hung_read_sync),
        cmocka_unit_test(test_machine_reset_ends_a_pending_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
