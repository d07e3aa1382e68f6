/*
 * TCP benchmark for ci/bench-net.py, built with `gcc -static`: packed into
 * the benchmark guest's initramfs (busybox has no iperf) and also run on the
 * host side, so that both ends speak the same small protocol.
 *
 *   netbench server [-p PORT] [-l MAX_SECONDS]
 *   netbench stream HOST send|recv [-p PORT] [-j STREAMS] [-t SECONDS]
 *   netbench rr HOST [-p PORT] [-t SECONDS] [-s BYTES]
 *
 * The server serves any number of clients, one thread per connection, until
 * killed or -l seconds (default 3600) have passed. The client says what it
 * wants in a 16-byte hello:
 *   send  the client writes for -t seconds, half-closes, and the server
 *         answers with the byte count it received (so bytes still queued in
 *         socket buffers when the clock stops are not counted);
 *   recv  the server writes for -t seconds and closes; the client counts;
 *   rr    ping-pong of -s bytes (default 1) over one TCP_NODELAY connection:
 *         transactions/s and round-trip latency percentiles.
 * The client prints one machine-readable line:
 *
 *   RESULT mode=stream dir=send streams=4 bytes=... secs=5.012 mibps=... gbps=...
 *   RESULT mode=rr size=1 trans=... secs=... tps=... p50us=... p99us=... meanus=...
 *
 * Nothing hangs when the peer disappears: every socket has send/receive
 * timeouts, and an alarm ends either side for good.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_args.h"

#define MAX_STREAMS 64
#define MAX_RR_BYTES 65536
#define CHUNK (128 * 1024)
#define SOCK_TIMEOUT_S 30     /* generous: the nested test host is slow */
#define MAGIC 0x4e426231u     /* "NBb1" */

enum op { OP_SEND = 1, OP_RECV = 2, OP_RR = 3 };

struct hello {
    uint32_t magic, op, secs, size;   /* network byte order */
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "netbench: overall time limit reached, giving up\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    _exit(3);
}

static void set_timeouts(int fd)
{
    struct timeval tv = {.tv_sec = SOCK_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* Whole buffer or -1 (errno set; ETIMEDOUT for a silent peer). */
static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                errno = ETIMEDOUT;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* 1: whole buffer, 0: clean EOF before the first byte, -1: error. */
static int read_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t n = recv(fd, p + got, len - got, 0);
        if (n == 0) {
            if (got == 0)
                return 0;
            errno = EPIPE;
            return -1;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                errno = ETIMEDOUT;
            return -1;
        }
        got += (size_t)n;
    }
    return 1;
}

/* ---- server ------------------------------------------------------------ */

static void *serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    static char zeros[CHUNK];   /* never written: content does not matter */
    char *buf = malloc(CHUNK);
    struct hello h;
    if (!buf || read_all(fd, &h, sizeof h) != 1 || ntohl(h.magic) != MAGIC)
        goto out;
    uint32_t op = ntohl(h.op), secs = ntohl(h.secs), size = ntohl(h.size);
    if (op == OP_SEND) {
        uint64_t total = 0;
        for (;;) {
            ssize_t n = recv(fd, buf, CHUNK, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                goto out;   /* peer gone or silent: no answer */
            if (n == 0)
                break;
            total += (uint64_t)n;
        }
        uint32_t ans[2] = {htonl((uint32_t)(total >> 32)), htonl((uint32_t)total)};
        write_all(fd, ans, sizeof ans);
    } else if (op == OP_RECV && secs >= 1 && secs <= 3600) {
        double end = now() + secs;
        while (now() < end)
            if (write_all(fd, zeros, CHUNK) != 0)
                goto out;
        shutdown(fd, SHUT_WR);
        /* Wait for the client's close so that our FIN is not turned into a
         * reset by unread data; bounded by the socket timeout. */
        while (recv(fd, buf, CHUNK, 0) > 0)
            ;
    } else if (op == OP_RR && size >= 1 && size <= MAX_RR_BYTES) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        while (read_all(fd, buf, size) == 1)
            if (write_all(fd, buf, size) != 0)
                break;
    }
out:
    free(buf);
    close(fd);
    return NULL;
}

static int run_server(uint16_t port)
{
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_ANY)};
    if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, 64) != 0) {
        fprintf(stderr, "netbench: server on port %u: %s\n", port, strerror(errno));
        return 1;
    }
    printf("LISTENING port=%u\n", port);
    fflush(stdout);
    for (;;) {
        int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            fprintf(stderr, "netbench: accept: %s\n", strerror(errno));
            return 1;
        }
        set_timeouts(fd);
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, serve, (void *)(intptr_t)fd) != 0)
            close(fd);
        pthread_attr_destroy(&attr);
    }
}

/* ---- client ------------------------------------------------------------ */

static struct sockaddr_in peer;

static int dial(enum op op)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    set_timeouts(fd);   /* SO_SNDTIMEO also bounds connect() */
    if (connect(fd, (struct sockaddr *)&peer, sizeof peer) != 0) {
        int e = errno == EINPROGRESS ? ETIMEDOUT : errno;
        close(fd);
        errno = e;
        return -1;
    }
    if (op == OP_RR) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

static int say_hello(int fd, enum op op, uint32_t secs, uint32_t size)
{
    struct hello h = {htonl(MAGIC), htonl(op), htonl(secs), htonl(size)};
    return write_all(fd, &h, sizeof h);
}

struct stream {
    int fd;
    enum op op;
    uint32_t secs;
    pthread_barrier_t *start;
    double t0, t1;
    uint64_t bytes;
    int err;
};

static void *stream_worker(void *arg)
{
    struct stream *s = arg;
    char *buf = malloc(CHUNK);
    pthread_barrier_wait(s->start);
    s->t0 = now();
    if (!buf) {
        s->err = ENOMEM;
        return NULL;
    }
    memset(buf, 0xa5, CHUNK);
    if (say_hello(s->fd, s->op, s->secs, 0) != 0)
        goto fail;
    if (s->op == OP_SEND) {
        double end = s->t0 + s->secs;
        while (now() < end)
            if (write_all(s->fd, buf, CHUNK) != 0)
                goto fail;
        shutdown(s->fd, SHUT_WR);
        uint32_t ans[2];
        if (read_all(s->fd, ans, sizeof ans) != 1) {
            if (!errno)
                errno = EPIPE;
            goto fail;
        }
        s->bytes = ((uint64_t)ntohl(ans[0]) << 32) | ntohl(ans[1]);
    } else {
        for (;;) {
            ssize_t n = recv(s->fd, buf, CHUNK, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                errno = errno == EAGAIN ? ETIMEDOUT : errno;
                goto fail;
            }
            if (n == 0)
                break;
            s->bytes += (uint64_t)n;
        }
    }
    s->t1 = now();
    free(buf);
    return NULL;
fail:
    s->err = errno ? errno : EIO;
    free(buf);
    return NULL;
}

static int run_stream(enum op op, unsigned streams, uint32_t secs)
{
    static struct stream st[MAX_STREAMS];
    pthread_t tids[MAX_STREAMS];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, streams);
    /* Connect everything first so that the streams start together. */
    for (unsigned i = 0; i < streams; i++) {
        st[i] = (struct stream){.op = op, .secs = secs, .start = &start};
        st[i].fd = dial(op);
        if (st[i].fd < 0) {
            fprintf(stderr, "netbench: connect %s:%u: %s\n", inet_ntoa(peer.sin_addr),
                    ntohs(peer.sin_port), strerror(errno));
            return 1;
        }
    }
    for (unsigned i = 0; i < streams; i++)
        if (pthread_create(&tids[i], NULL, stream_worker, &st[i]) != 0) {
            fprintf(stderr, "netbench: cannot start thread %u\n", i);
            return 1;
        }
    uint64_t bytes = 0;
    double t0 = 0, t1 = 0;
    int err = 0;
    for (unsigned i = 0; i < streams; i++) {
        pthread_join(tids[i], NULL);
        close(st[i].fd);
        if (st[i].err && !err)
            err = st[i].err;
        bytes += st[i].bytes;
        if (i == 0 || st[i].t0 < t0)
            t0 = st[i].t0;
        if (st[i].t1 > t1)
            t1 = st[i].t1;
    }
    if (err) {
        fprintf(stderr, "netbench: stream %s: %s\n", op == OP_SEND ? "send" : "recv",
                strerror(err));
        return 1;
    }
    double secs_taken = t1 - t0;
    printf("RESULT mode=stream dir=%s streams=%u bytes=%" PRIu64 " secs=%.3f mibps=%.2f "
           "gbps=%.4f\n", op == OP_SEND ? "send" : "recv", streams, bytes, secs_taken,
           (double)bytes / secs_taken / (1 << 20), (double)bytes * 8 / secs_taken / 1e9);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int run_rr(uint32_t secs, uint32_t size)
{
    int fd = dial(OP_RR);
    if (fd < 0 || say_hello(fd, OP_RR, secs, size) != 0) {
        fprintf(stderr, "netbench: rr to %s:%u: %s\n", inet_ntoa(peer.sin_addr),
                ntohs(peer.sin_port), strerror(errno));
        return 1;
    }
    char *buf = calloc(1, size);
    size_t cap = 1 << 16, n = 0;
    uint64_t *lat = malloc(cap * sizeof *lat);
    if (!buf || !lat) {
        fprintf(stderr, "netbench: out of memory\n");
        return 1;
    }
    double t0 = now(), end = t0 + secs, t = t0;
    while (t < end) {
        if (write_all(fd, buf, size) != 0 || read_all(fd, buf, size) != 1) {
            fprintf(stderr, "netbench: rr after %zu transactions: %s\n", n,
                    errno ? strerror(errno) : "connection closed");
            return 1;
        }
        double t2 = now();
        if (n == cap) {
            uint64_t *more = realloc(lat, 2 * cap * sizeof *lat);
            if (!more) {
                fprintf(stderr, "netbench: out of memory\n");
                return 1;
            }
            lat = more;
            cap *= 2;
        }
        lat[n++] = (uint64_t)((t2 - t) * 1e9);
        t = t2;
    }
    close(fd);
    double total = t - t0, sum = 0;
    qsort(lat, n, sizeof *lat, cmp_u64);
    for (size_t i = 0; i < n; i++)
        sum += (double)lat[i];
    printf("RESULT mode=rr size=%u trans=%zu secs=%.3f tps=%.1f p50us=%.1f p99us=%.1f "
           "meanus=%.1f\n", size, n, total, (double)n / total, (double)lat[n / 2] / 1e3,
           (double)lat[(size_t)((double)(n - 1) * 0.99)] / 1e3, sum / (double)n / 1e3);
    free(lat);
    free(buf);
    return 0;
}

/* ---- command line ------------------------------------------------------ */

static void usage(void)
{
    fprintf(stderr, "usage: netbench server [-p PORT] [-l MAX_SECONDS]\n"
                    "       netbench stream HOST send|recv [-p PORT] [-j STREAMS] [-t SECONDS]\n"
                    "       netbench rr HOST [-p PORT] [-t SECONDS] [-s BYTES]\n");
    exit(2);
}

static uint64_t parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max)
{
    return bench_parse_u64("netbench", opt, s, min, max);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    const char *mode = argv[1];
    int first_opt;
    enum op op = OP_RR;
    if (strcmp(mode, "server") == 0) {
        first_opt = 2;
    } else if (strcmp(mode, "stream") == 0) {
        if (argc < 4)
            usage();
        if (strcmp(argv[3], "send") == 0)
            op = OP_SEND;
        else if (strcmp(argv[3], "recv") == 0)
            op = OP_RECV;
        else {
            fprintf(stderr, "netbench: direction must be send or recv, got '%s'\n", argv[3]);
            return 2;
        }
        first_opt = 4;
    } else if (strcmp(mode, "rr") == 0) {
        if (argc < 3)
            usage();
        first_opt = 3;
    } else {
        usage();
    }
    uint64_t port = 5201, streams = 1, secs = 5, size = 1, limit = 3600;
    for (int i = first_opt; i < argc; i += 2) {
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "-p") == 0)
            port = parse_u64("-p", argv[i + 1], 1, 65535);
        else if (strcmp(argv[i], "-j") == 0)
            streams = parse_u64("-j", argv[i + 1], 1, MAX_STREAMS);
        else if (strcmp(argv[i], "-t") == 0)
            secs = parse_u64("-t", argv[i + 1], 1, 3600);
        else if (strcmp(argv[i], "-s") == 0)
            size = parse_u64("-s", argv[i + 1], 1, MAX_RR_BYTES);
        else if (strcmp(argv[i], "-l") == 0)
            limit = parse_u64("-l", argv[i + 1], 1, 7 * 86400);
        else
            usage();
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_alarm);
    if (strcmp(mode, "server") == 0) {
        alarm((unsigned)limit);
        return run_server((uint16_t)port);
    }
    peer = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, argv[2], &peer.sin_addr) != 1) {
        fprintf(stderr, "netbench: HOST must be an IPv4 address, got '%s'\n", argv[2]);
        return 2;
    }
    /* Run time, plus connect and the final answer, each bounded by the
     * socket timeout: past that something is wedged. */
    alarm((unsigned)secs + 3 * SOCK_TIMEOUT_S);
    if (strcmp(mode, "stream") == 0)
        return run_stream(op, (unsigned)streams, (uint32_t)secs);
    return run_rr((uint32_t)secs, (uint32_t)size);
}
