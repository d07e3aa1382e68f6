#include "bootdisk.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../config.h"
#include "../log.h"
#include "bd_find.h"
#include "qcow2.h"

#if defined(__SANITIZE_ADDRESS__)
#define BD_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BD_SANITIZED 1
#endif
#endif

#define ANSWER_MAGIC 0x5244424eu /* "NBDR" */
#define WHAT_MAX 4096u
#define HELPER_AS_LIMIT (3ull << 30) /* the largest kernel + initrd, twice, and the parsers */

struct answer {
    uint32_t magic;
    int32_t status;
    uint32_t kernel_len, initrd_len, cmdline_len, what_len, cmdline_made, pad;
};

struct bootdisk {
    pid_t pid;
    int sock;
    int dead;
};

/* ---- the helper ------------------------------------------------------------ */

static int write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void answer(int sock, const struct bd_found *f, int ok, const char *msg)
{
    struct answer a = {.magic = ANSWER_MAGIC, .status = ok ? 0 : -1};
    size_t ml = strnlen(msg, WHAT_MAX - 1);
    a.what_len = (uint32_t)ml;
    if (ok) {
        a.kernel_len = (uint32_t)f->kernel_len;
        a.initrd_len = (uint32_t)f->initrd_len;
        a.cmdline_len = (uint32_t)strnlen(f->cmdline, sizeof(f->cmdline));
        a.cmdline_made = (uint32_t)f->cmdline_made;
    }
    if (write_all(sock, &a, sizeof(a)) || write_all(sock, msg, ml) ||
        (ok && (write_all(sock, f->cmdline, a.cmdline_len) ||
                write_all(sock, f->kernel, f->kernel_len) ||
                write_all(sock, f->initrd ? f->initrd : (const uint8_t *)"", f->initrd_len))))
        _exit(1);
}

/* One argument condition (libseccomp's SCMP_Ax macros leave datum_b to
 * the compiler, which clang's -Wmissing-field-initializers refuses). */
static int rule1(scmp_filter_ctx ctx, int sys, unsigned arg, enum scmp_compare op,
                 scmp_datum_t a, scmp_datum_t b)
{
    struct scmp_arg_cmp c = {.arg = arg, .op = op, .datum_a = a, .datum_b = b};
    return seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, sys, 1, &c);
}

/* Only what bd_find() and answering need: reads of the disks (fds
 * 1..ndisks), writes to the socket (fd 0), memory without PROT_EXEC. */
static int sandbox(int ndisks)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
    int rc = 0;
    if (!ctx)
        return -1;
    rc |= rule1(ctx, SCMP_SYS(read), 0, SCMP_CMP_EQ, 0, 0);
    rc |= rule1(ctx, SCMP_SYS(write), 0, SCMP_CMP_EQ, 0, 0);
    for (int i = 1; i <= ndisks; i++) {
        /* qcow2 images also take preadv, fstat and lseek (qcow2_open). */
        rc |= rule1(ctx, SCMP_SYS(pread64), 0, SCMP_CMP_EQ, (scmp_datum_t)i, 0);
        rc |= rule1(ctx, SCMP_SYS(preadv), 0, SCMP_CMP_EQ, (scmp_datum_t)i, 0);
        rc |= rule1(ctx, SCMP_SYS(fstat), 0, SCMP_CMP_EQ, (scmp_datum_t)i, 0);
        rc |= rule1(ctx, SCMP_SYS(newfstatat), 0, SCMP_CMP_EQ, (scmp_datum_t)i, 0);
        rc |= rule1(ctx, SCMP_SYS(lseek), 0, SCMP_CMP_EQ, (scmp_datum_t)i, 0);
    }
    rc |= rule1(ctx, SCMP_SYS(mmap), 2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0);
    static const int plain[] = {SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(brk),
                                SCMP_SYS(madvise), SCMP_SYS(exit), SCMP_SYS(exit_group),
                                SCMP_SYS(rt_sigreturn), SCMP_SYS(clock_gettime),
                                SCMP_SYS(gettimeofday), SCMP_SYS(futex)};
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, plain[i], 0);
#ifdef BD_SANITIZED
    /* ASan reports (a test build's crash in the parsers) need a few more. */
    static const int san[] = {SCMP_SYS(write), SCMP_SYS(getpid), SCMP_SYS(gettid),
                              SCMP_SYS(tgkill), SCMP_SYS(rt_sigaction), SCMP_SYS(sigaltstack),
                              SCMP_SYS(mprotect), SCMP_SYS(prctl), SCMP_SYS(sched_yield)};
    for (size_t i = 0; i < sizeof(san) / sizeof(san[0]); i++)
        rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, san[i], 0);
#endif
    if (rc == 0)
        rc = seccomp_load(ctx);
    seccomp_release(ctx);
    return rc;
}

static void drop_all(void)
{
    /* Nobody, no groups, no capabilities: only when we are root to begin with. */
    if (geteuid() == 0) {
        if (setgroups(0, NULL) || setresgid(65534, 65534, 65534) ||
            setresuid(65534, 65534, 65534))
            _exit(1);
    }
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof(d));
    if (syscall(SYS_capset, &h, d) != 0)
        _exit(1);
}

static void limits(void)
{
    struct rlimit zero = {0, 0};
    setrlimit(RLIMIT_FSIZE, &zero);
    setrlimit(RLIMIT_CORE, &zero);
#ifndef BD_SANITIZED
    /* ASan reserves terabytes of shadow address space: no limit there. */
    struct rlimit as = {HELPER_AS_LIMIT, HELPER_AS_LIMIT};
    setrlimit(RLIMIT_AS, &as);
#endif
}

/*
 * A qcow2 disk (a downloaded cloud image usually is one) is read through
 * the virtio-blk plugin's qcow2 library, inside the sandbox: read-only,
 * never following a backing file (that would mean opening a path).
 */
static int qcow2_read(void *ctx, uint64_t off, void *buf, size_t len)
{
    struct iovec iov = {buf, len};
    return qcow2_preadv(ctx, &iov, 1, off);
}

static int open_disk(int fd, int index, uint64_t size, struct bd_dev *d, char *err,
                     size_t errlen)
{
    static int fdnums[BD_MAX_DISKS];
    fdnums[index] = fd;
    if (qcow2_probe(fd) != 1) {
        bd_dev_fd(d, &fdnums[index], size);
        return 0;
    }
    char name[32], why[256];
    snprintf(name, sizeof(name), "disk %d", index);
    struct qcow2_open_opts o = {.readonly = 1, .backing_files = 0, .cache_bytes = 4u << 20};
    struct qcow2 *q = qcow2_open(fd, name, &o, why, sizeof(why));
    if (!q) {
        snprintf(err, errlen, "disk %d: %s", index, why);
        return -1;
    }
    d->read = qcow2_read;
    d->ctx = q;
    d->base = 0;
    d->size = qcow2_virtual_size(q);
    return 0;
}

static __attribute__((noreturn)) void helper_main(int sock, const int *fds, const uint64_t *sizes,
                                                  int ndisks, pid_t parent)
{
    struct bd_dev disks[BD_MAX_DISKS];
    char open_err[512] = "";

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(0);
    prctl(PR_SET_NAME, "nimbus-bootdisk");
    /* The socket becomes fd 0 and the disks 1..n; nothing else stays open. */
    int high[BD_MAX_DISKS + 1];
    high[0] = fcntl(sock, F_DUPFD_CLOEXEC, 64);
    for (int i = 0; i < ndisks; i++)
        high[i + 1] = fcntl(fds[i], F_DUPFD_CLOEXEC, 64);
    for (int i = 0; i <= ndisks; i++)
        if (high[i] < 0 || dup2(high[i], i) != i)
            _exit(1);
    if (syscall(SYS_close_range, (unsigned)ndisks + 1, ~0u, 0) != 0)
        for (int fd = ndisks + 1; fd < 1024; fd++)
            close(fd);
    limits();
    drop_all();
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || sandbox(ndisks))
        _exit(1);
    /* Image headers are parsed under the filter already. */
    for (int i = 0; i < ndisks && !open_err[0]; i++)
        if (open_disk(i + 1, i, sizes[i], &disks[i], open_err, sizeof(open_err)) < 0)
            break;
    for (;;) {
        char req;
        ssize_t n = read(0, &req, 1);
        if (n <= 0)
            _exit(0);
        struct bd_found f;
        char err[2048] = "";
        if (open_err[0]) {
            answer(0, &f, 0, open_err);
        } else if (bd_find(disks, ndisks, &f, err, sizeof(err)) == 0) {
            answer(0, &f, 1, f.what);
            bd_found_free(&f);
        } else {
            answer(0, &f, 0, err);
        }
    }
}

struct bootdisk *bootdisk_start(const struct vm_config *cfg, char *err, size_t errlen)
{
    int fds[BD_MAX_DISKS];
    uint64_t sizes[BD_MAX_DISKS];
    int n = 0, sv[2] = {-1, -1};
    struct bootdisk *bd = calloc(1, sizeof(*bd));
    if (!bd) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (uint32_t i = 0; i < cfg->ndisks && n < BD_MAX_DISKS; i++) {
        struct stat st;
        int fd = open(cfg->disks[i].path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) != 0) {
            snprintf(err, errlen, "--disk: cannot read '%s': %s", cfg->disks[i].path,
                     strerror(errno));
            if (fd >= 0)
                close(fd);
            goto fail;
        }
        if (S_ISBLK(st.st_mode)) {
            off_t end = lseek(fd, 0, SEEK_END);
            st.st_size = end > 0 ? end : 0;
        }
        fds[n] = fd;
        sizes[n++] = (uint64_t)st.st_size;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        snprintf(err, errlen, "cannot make the boot-disk reader's socket: %s", strerror(errno));
        goto fail;
    }
    pid_t parent = getpid();
    bd->pid = fork();
    if (bd->pid < 0) {
        snprintf(err, errlen, "cannot start the boot-disk reader: %s", strerror(errno));
        goto fail;
    }
    if (bd->pid == 0) {
        close(sv[0]);
        helper_main(sv[1], fds, sizes, n, parent);
    }
    close(sv[1]);
    bd->sock = sv[0];
    for (int i = 0; i < n; i++)
        close(fds[i]);
    return bd;
fail:
    for (int i = 0; i < n; i++)
        close(fds[i]);
    if (sv[0] >= 0)
        close(sv[0]), close(sv[1]);
    free(bd);
    return NULL;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void kill_helper(struct bootdisk *bd)
{
    if (bd->dead)
        return;
    kill(bd->pid, SIGKILL);
    waitpid(bd->pid, NULL, 0);
    bd->dead = 1;
}

/* Why the helper is gone, for the message. */
static void helper_gone(struct bootdisk *bd, char *err, size_t errlen)
{
    int status = 0;
    pid_t r = waitpid(bd->pid, &status, 0);
    bd->dead = 1;
    if (r == bd->pid && WIFSIGNALED(status))
        snprintf(err, errlen, "the boot-disk reader died (signal %d%s): the image is damaged or "
                 "hostile; boot it with --kernel", WTERMSIG(status),
                 WTERMSIG(status) == SIGSYS ? ", a forbidden system call" : "");
    else
        snprintf(err, errlen, "the boot-disk reader ended unexpectedly (status %d)",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

static int read_all(struct bootdisk *bd, void *buf, size_t len, int64_t deadline, char *err,
                    size_t errlen)
{
    uint8_t *p = buf;
    while (len) {
        int64_t left = deadline - now_ms();
        struct pollfd pfd = {bd->sock, POLLIN, 0};
        int r = left > 0 ? poll(&pfd, 1, (int)(left > 1000 ? 1000 : left)) : 0;
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0 && now_ms() < deadline)
            continue;
        if (r == 0) {
            kill_helper(bd);
            snprintf(err, errlen, "the boot-disk reader took longer than its deadline: "
                     "stopped (the image is damaged or hostile; boot it with --kernel)");
            return -1;
        }
        ssize_t n = read(bd->sock, p, len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0) {
            helper_gone(bd, err, errlen);
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static char *read_str(struct bootdisk *bd, uint32_t len, int64_t deadline, char *err,
                      size_t errlen)
{
    char *s = malloc((size_t)len + 1);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (read_all(bd, s, len, deadline, err, errlen)) {
        free(s);
        return NULL;
    }
    s[len] = 0;
    /* Shown in the log: nothing that could steer a terminal. */
    for (uint32_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            s[i] = '?';
    return s;
}

int bootdisk_resolve(struct bootdisk *bd, struct bootdisk_payload *p, char *err, size_t errlen)
{
    struct answer a;
    memset(p, 0, sizeof(*p));
    if (!bd || bd->dead) {
        snprintf(err, errlen, "the boot-disk reader is not running (it was stopped earlier)");
        return -1;
    }
    long timeout = BOOTDISK_TIMEOUT_S;
    const char *t = getenv("NIMBUS_BOOTDISK_TIMEOUT");
    if (t && atol(t) > 0)
        timeout = atol(t);
    int64_t deadline = now_ms() + timeout * 1000;
    char req = 'R';
    if (write(bd->sock, &req, 1) != 1) {
        helper_gone(bd, err, errlen);
        return -1;
    }
    if (read_all(bd, &a, sizeof(a), deadline, err, errlen))
        return -1;
    /* The helper runs the image's parsers: its answer is checked like input. */
    if (a.magic != ANSWER_MAGIC || a.what_len >= WHAT_MAX || a.cmdline_len >= BD_CMDLINE ||
        a.kernel_len > BD_KERNEL_MAX || a.initrd_len > BD_INITRD_MAX ||
        (a.status == 0 && a.kernel_len == 0)) {
        kill_helper(bd);
        snprintf(err, errlen, "the boot-disk reader gave a malformed answer: stopped");
        return -1;
    }
    char *what = read_str(bd, a.what_len, deadline, err, errlen);
    if (!what)
        return -1;
    if (a.status != 0) {
        snprintf(err, errlen, "%s", what);
        free(what);
        return -1;
    }
    p->what = what;
    p->cmdline_made = a.cmdline_made != 0;
    if (!(p->cmdline = read_str(bd, a.cmdline_len, deadline, err, errlen)))
        goto fail;
    p->kernel = malloc(a.kernel_len);
    p->initrd = a.initrd_len ? malloc(a.initrd_len) : NULL;
    if (!p->kernel || (a.initrd_len && !p->initrd)) {
        snprintf(err, errlen, "out of memory for a %u-byte kernel and %u-byte initrd",
                 a.kernel_len, a.initrd_len);
        kill_helper(bd); /* its answer cannot be drained now */
        goto fail;
    }
    if (read_all(bd, p->kernel, a.kernel_len, deadline, err, errlen) ||
        read_all(bd, p->initrd, a.initrd_len, deadline, err, errlen))
        goto fail;
    p->kernel_len = a.kernel_len;
    p->initrd_len = a.initrd_len;
    return 0;
fail:
    bootdisk_payload_free(p);
    return -1;
}

void bootdisk_payload_free(struct bootdisk_payload *p)
{
    free(p->kernel);
    free(p->initrd);
    free(p->cmdline);
    free(p->what);
    memset(p, 0, sizeof(*p));
}

void bootdisk_stop(struct bootdisk *bd)
{
    if (!bd)
        return;
    close(bd->sock);
    if (!bd->dead) {
        /* EOF ends it; a helper stuck in a parser gets killed. */
        for (int i = 0; i < 50; i++) {
            if (waitpid(bd->pid, NULL, WNOHANG) == bd->pid) {
                bd->dead = 1;
                break;
            }
            usleep(2000);
        }
        kill_helper(bd);
    }
    free(bd);
}
