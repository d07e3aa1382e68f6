/*
 * Guest-side block benchmark for ci/bench-blk.py, built with `gcc -static`
 * and packed into the benchmark guest's initramfs (busybox has no fio).
 *
 *   blkbench DEVICE seqread|seqwrite|randread [-b BYTES] [-j THREADS]
 *            [-t SECONDS] [-s MIB]
 *
 * Every mode uses O_DIRECT, so the guest page cache is out of the way and
 * each request reaches the virtio-blk device. Sequential modes move -b sized
 * blocks (default 1 MiB) over the first -s MiB of the device (default: all
 * of it), wrapping around; randread reads 4 KiB at uniformly random aligned
 * offsets. -j threads (default 1) each keep one request in flight, which is
 * how several requests are queued without libaio/io_uring. Runs for -t
 * seconds (default 5) and prints one machine-readable line:
 *
 *   RESULT mode=randread threads=4 bs=4096 ops=12345 bytes=... secs=5.000 mibps=... iops=...
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_args.h"

#define MAX_THREADS 64
#define ALIGN 4096

enum mode { SEQREAD, SEQWRITE, RANDREAD };

struct job {
    int fd;
    enum mode mode;
    uint64_t bs;
    uint64_t region;   /* bytes of the device used, a multiple of bs */
    uint64_t start;    /* first offset of this thread (sequential modes) */
    double deadline;   /* CLOCK_MONOTONIC seconds */
    uint64_t seed;
    uint64_t ops;
    int err;           /* errno of the first failure, 0 if none */
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift64*: plenty for picking offsets, and no shared state. */
static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static void *worker(void *arg)
{
    struct job *j = arg;
    void *buf;
    if (posix_memalign(&buf, ALIGN, j->bs) != 0) {
        j->err = ENOMEM;
        return NULL;
    }
    /* Non-zero data: a device must not get away with zero detection. */
    memset(buf, 0xa5, j->bs);
    uint64_t off = j->start;
    uint64_t blocks = j->region / j->bs;
    while (now() < j->deadline) {
        /* Check the clock every 16 requests only: it is not free under
         * nested virtualisation. */
        for (int k = 0; k < 16; k++) {
            ssize_t n;
            if (j->mode == RANDREAD)
                off = (next_rand(&j->seed) % blocks) * j->bs;
            if (j->mode == SEQWRITE)
                n = pwrite(j->fd, buf, j->bs, (off_t)off);
            else
                n = pread(j->fd, buf, j->bs, (off_t)off);
            if (n != (ssize_t)j->bs) {
                j->err = n < 0 ? errno : EIO;
                free(buf);
                return NULL;
            }
            j->ops++;
            if (j->mode != RANDREAD) {
                off += j->bs;
                if (off >= j->region)
                    off = 0;
            }
        }
    }
    free(buf);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: blkbench DEVICE seqread|seqwrite|randread "
                    "[-b BYTES] [-j THREADS] [-t SECONDS] [-s MIB]\n");
    exit(2);
}

static uint64_t parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max)
{
    return bench_parse_u64("blkbench", opt, s, min, max);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        usage();
    const char *dev = argv[1];
    enum mode mode;
    if (strcmp(argv[2], "seqread") == 0)
        mode = SEQREAD;
    else if (strcmp(argv[2], "seqwrite") == 0)
        mode = SEQWRITE;
    else if (strcmp(argv[2], "randread") == 0)
        mode = RANDREAD;
    else
        usage();
    uint64_t bs = mode == RANDREAD ? 4096 : 1 << 20;
    uint64_t threads = 1, secs = 5, region_mib = 0;
    for (int i = 3; i < argc; i += 2) {
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "-b") == 0)
            bs = parse_u64("-b", argv[i + 1], 512, 64 << 20);
        else if (strcmp(argv[i], "-j") == 0)
            threads = parse_u64("-j", argv[i + 1], 1, MAX_THREADS);
        else if (strcmp(argv[i], "-t") == 0)
            secs = parse_u64("-t", argv[i + 1], 1, 3600);
        else if (strcmp(argv[i], "-s") == 0)
            region_mib = parse_u64("-s", argv[i + 1], 1, 1 << 24);
        else
            usage();
    }
    if (bs % 512) {
        fprintf(stderr, "blkbench: -b must be a multiple of 512, got %" PRIu64 "\n", bs);
        return 2;
    }

    int fd = open(dev, (mode == SEQWRITE ? O_RDWR : O_RDONLY) | O_DIRECT);
    if (fd < 0) {
        fprintf(stderr, "blkbench: %s: %s\n", dev, strerror(errno));
        return 1;
    }
    uint64_t size = 0;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISBLK(st.st_mode)) {
        if (ioctl(fd, BLKGETSIZE64, &size) != 0) {
            fprintf(stderr, "blkbench: BLKGETSIZE64 %s: %s\n", dev, strerror(errno));
            return 1;
        }
    } else {
        size = (uint64_t)st.st_size;
    }
    uint64_t region = region_mib ? region_mib << 20 : size;
    if (region > size)
        region = size;
    region -= region % bs;
    if (region < bs * threads) {
        fprintf(stderr, "blkbench: %s is too small (%" PRIu64 " bytes) for %" PRIu64
                        " thread(s) of %" PRIu64 "-byte blocks\n", dev, size, threads, bs);
        return 1;
    }

    static struct job jobs[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    double t0 = now();
    for (uint64_t i = 0; i < threads; i++) {
        jobs[i] = (struct job){
            .fd = fd, .mode = mode, .bs = bs, .region = region,
            /* Sequential threads start spread out so that they do not read
             * the same blocks in lockstep. */
            .start = (region / bs / threads) * i * bs,
            .deadline = t0 + (double)secs,
            .seed = 0x9E3779B97F4A7C15ULL * (i + 1),
        };
        if (pthread_create(&tids[i], NULL, worker, &jobs[i]) != 0) {
            fprintf(stderr, "blkbench: cannot start thread %" PRIu64 "\n", i);
            return 1;
        }
    }
    uint64_t ops = 0;
    int err = 0;
    for (uint64_t i = 0; i < threads; i++) {
        pthread_join(tids[i], NULL);
        ops += jobs[i].ops;
        if (jobs[i].err && !err)
            err = jobs[i].err;
    }
    double elapsed = now() - t0;
    if (mode == SEQWRITE && fdatasync(fd) != 0 && !err)
        err = errno;
    close(fd);
    if (err) {
        fprintf(stderr, "blkbench: %s %s: %s\n", argv[2], dev, strerror(err));
        return 1;
    }
    double bytes = (double)ops * (double)bs;
    printf("RESULT mode=%s threads=%" PRIu64 " bs=%" PRIu64 " ops=%" PRIu64
           " bytes=%.0f secs=%.3f mibps=%.2f iops=%.1f\n",
           argv[2], threads, bs, ops, bytes, elapsed, bytes / elapsed / (1 << 20),
           (double)ops / elapsed);
    return 0;
}
