/*
 * --seccomp: a system-call allowlist per kind of thread, built with
 * libseccomp, as Cloud Hypervisor does it (every thread filtered, on by
 * default).
 *
 * Why this shape:
 *  - The programs are compiled once, on the main thread, before any other
 *    thread exists, and kept as raw BPF: a thread only has to hand its
 *    program to the kernel, which cannot fail for lack of memory and costs
 *    nothing at thread start (boot time matters).
 *  - Filters stack, so a thread is bound by the VMM filter it inherits and
 *    by its own kind's.  Only the VMM thread may create threads, open
 *    files, load plugins or map executable memory; the others get what
 *    their loops and the device code they run need.
 *  - Device code is plugin code: the core's filters cover what the ABI lets
 *    a plugin do on each thread (plugin_abi.h: no thread creation, no
 *    blocking outside the event loop), not one plugin's list.  io_uring
 *    submissions are not seen by seccomp: virtio-blk registers opcode
 *    restrictions on its rings (plugins/virtio_blk/blk_uring.c).
 *  - A forbidden call traps (SIGSYS) and the handler names the call and the
 *    thread before ending the process: a silent kill is a bug report nobody
 *    can act on.
 */
#include "seccomp_filter.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"

#if defined(__SANITIZE_ADDRESS__)
#define NIMBUS_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NIMBUS_SANITIZED 1
#endif
#endif

/* ---- the allowlists ------------------------------------------------------ */

/* Every thread: memory, locks, time, signals, I/O on fds it already has,
 * waiting on its loop, and ending.  mmap/mprotect are allowed here only
 * without PROT_EXEC (below): new code comes in through dlopen on the VMM
 * thread and nowhere else. */
static const char *const sys_base[] = {
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev",
    "preadv2", "pwritev2", "close", "lseek", "fstat", "newfstatat", "statx", "fcntl",
    "brk", "munmap", "mremap", "madvise", "futex", "futex_waitv", "set_robust_list",
    "get_robust_list", "rseq", "sched_yield", "sched_getaffinity", "nanosleep",
    "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "time",
    "rt_sigreturn", "rt_sigprocmask", "rt_sigtimedwait", "sigaltstack", "getpid", "gettid",
    "tgkill", "exit", "exit_group", "restart_syscall", "getrandom", "epoll_wait",
    "epoll_pwait", "epoll_pwait2", "epoll_ctl", "poll", "ppoll", "select", "pselect6",
    "timerfd_settime", "timerfd_gettime", "membarrier", "getuid", "geteuid", "getgid",
    "getegid", "dup", "dup3",
};

/* Sockets that exist already: chardev sockets, the API's connections,
 * user-mode networking's host sockets. */
static const char *const sys_sockio[] = {
    "sendto", "sendmsg", "sendmmsg", "recvfrom", "recvmsg", "recvmmsg", "shutdown",
    "getsockopt", "setsockopt", "getsockname", "getpeername",
};

/* Device work: disk I/O (io_uring or plain), flushes, discard. */
static const char *const sys_device[] = {
    "io_uring_enter", "fsync", "fdatasync", "fallocate", "sync_file_range", "ftruncate",
    "fadvise64", "eventfd2", "timerfd_create",
};

/* User-mode networking (libslirp) makes host sockets on the net plugin's
 * loop as guest connections come and go, and reads resolv.conf for DNS. */
static const char *const sys_usernet[] = {
    "connect", "bind", "listen", "accept", "accept4", "uname",
};

static const char *const sys_api[] = {
    "accept", "accept4",
};

/* The VMM thread: creating and tearing down VMs (reboot does both), loading
 * plugins, opening disks and consoles, making taps, starting threads. */
static const char *const sys_vmm[] = {
    "open", "openat", "openat2", "creat", "unlink", "unlinkat", "mkdir", "mkdirat",
    "rename", "renameat", "renameat2", "readlink", "readlinkat", "access", "faccessat",
    "faccessat2", "getdents64", "statfs", "fstatfs", "stat", "lstat", "chmod", "fchmod",
    "fchmodat", "fchown", "umask", "getcwd", "ioctl", "mmap", "mprotect", "mlock",
    "munlock", "socket", "socketpair", "bind", "listen", "connect", "accept4", "pipe",
    "pipe2", "dup2", "signalfd4", "epoll_create1", "memfd_create", "clone", "clone3",
    "set_tid_address", "rt_sigaction", "prlimit64", "setrlimit", "getrlimit", "uname",
    "sysinfo", "io_uring_setup", "io_uring_register", "capget", "capset", "kill", "tkill",
    "getppid", "getpgrp", "getpriority", "setpriority", "sched_setaffinity", "getrusage",
    "times", "copy_file_range", "sendfile", "flock", "utimensat", "fsetxattr", "fgetxattr",
    "ioprio_set", "ioprio_get", "pidfd_open", "wait4", "waitid", "prctl",
};

#ifdef NIMBUS_SANITIZED
/* ASan/LSan at exit: LeakSanitizer stops the world with a ptrace()ing
 * clone and reads /proc; error reports may run the symbolizer.  Test
 * builds only: a release build never takes these. */
static const char *const sys_sanitizer[] = {
    "clone", "clone3", "ptrace", "wait4", "waitid", "getdents", "getdents64", "open", "openat",
    "readlink", "readlinkat", "rt_sigaction", "kill", "pipe", "pipe2", "execve", "vfork",
    "fork", "dup2", "getrlimit", "setrlimit", "prlimit64", "getppid", "statfs", "mmap",
    "mprotect", "process_vm_readv", "sched_getaffinity", "uname",
};
#endif

#define LIST(a) a, sizeof(a) / sizeof(a[0])

/* ---- per-thread identity for the report ------------------------------------ */

static const char *const kind_names[SECCOMP_NKINDS] = {"vmm", "vcpu", "device", "api"};
static __thread char t_name[16];
static __thread int t_kind = -1;

const char *seccomp_kind_name(enum seccomp_kind kind)
{
    return (unsigned)kind < SECCOMP_NKINDS ? kind_names[kind] : "?";
}

/* ---- building ---------------------------------------------------------------- */

static enum seccomp_mode g_mode = SECCOMP_OFF;
static struct sock_fprog g_prog[SECCOMP_NKINDS];

#define SYSCALL_NAMES 512
/* Resolved before any filter exists: the SIGSYS handler may not allocate
 * (the trapped call may have been inside malloc). */
static char *g_names[SYSCALL_NAMES];

static int add_list(scmp_filter_ctx ctx, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int nr = seccomp_syscall_resolve_name(names[i]);
        if (nr == __NR_SCMP_ERROR)
            continue; /* not a call on this architecture (e.g. a newer one) */
        int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
        if (r < 0 && r != -EEXIST)
            return r;
    }
    return 0;
}

/* ioctls outside the VMM thread: KVM's (type 0xAE: KVM_RUN, interrupts,
 * irqfds) and type 'T' (tun offloads and queues, termios, FIONBIO,
 * FIONREAD).  Socket and block-device ioctls stay with the VMM thread. */
static int add_ioctls(scmp_filter_ctx ctx)
{
    static const uint64_t types[] = {0xAE00, 0x5400};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                                 SCMP_A1(SCMP_CMP_MASKED_EQ, 0xff00, types[i]));
        if (r < 0)
            return r;
    }
    return 0;
}

static int add_no_exec_maps(scmp_filter_ctx ctx)
{
    int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
                             SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    if (r == 0)
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
                             SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    return r;
}

/* Allow call `nr` when its first argument is one of `vals`. */
static int add_arg0_in(scmp_filter_ctx ctx, int nr, const uint64_t *vals, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, SCMP_A0(SCMP_CMP_EQ, vals[i], 0));
        if (r < 0)
            return r;
    }
    return 0;
}

/* prctl outside the VMM thread: a thread naming itself, nothing else
 * (no capability, dumpable or no_new_privs games). */
static const uint64_t prctl_names[] = {PR_SET_NAME, PR_GET_NAME};
/* User-mode networking's host sockets: IP only. */
static const uint64_t ip_domains[] = {AF_INET, AF_INET6};

/* Read-only opens (user-mode networking's resolv.conf): Landlock, when on,
 * still decides which paths. */
static int add_readonly_open(scmp_filter_ctx ctx)
{
    const uint64_t mask = O_ACCMODE | O_CREAT | O_TRUNC;
    int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
                             SCMP_A2(SCMP_CMP_MASKED_EQ, mask, O_RDONLY));
    if (r == 0)
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(open), 1,
                             SCMP_A1(SCMP_CMP_MASKED_EQ, mask, O_RDONLY));
    return r;
}

static int add_rules(scmp_filter_ctx ctx, enum seccomp_kind kind)
{
    int r = add_list(ctx, LIST(sys_base));
#ifdef NIMBUS_SANITIZED
    if (r == 0)
        r = add_list(ctx, LIST(sys_sanitizer));
#endif
    switch (kind) {
    case SECCOMP_VMM:
        /* The VMM thread creates every other thread, so its filter is part
         * of theirs: it must allow all they allow. */
        if (r == 0)
            r = add_list(ctx, LIST(sys_sockio));
        if (r == 0)
            r = add_list(ctx, LIST(sys_device));
        if (r == 0)
            r = add_list(ctx, LIST(sys_usernet));
        if (r == 0)
            r = add_list(ctx, LIST(sys_vmm));
        return r;
    case SECCOMP_VCPU:
        /* An exit runs device code: MMIO/PIO handlers, a virtio reset
         * (which may cancel disk requests), chardev output. */
        if (r == 0)
            r = add_list(ctx, LIST(sys_sockio));
        if (r == 0)
            r = add_list(ctx, LIST(sys_device));
        break;
    case SECCOMP_DEVICE:
        if (r == 0)
            r = add_list(ctx, LIST(sys_sockio));
        if (r == 0)
            r = add_list(ctx, LIST(sys_device));
        if (r == 0)
            r = add_list(ctx, LIST(sys_usernet));
        if (r == 0)
            r = add_arg0_in(ctx, SCMP_SYS(socket), LIST(ip_domains));
        if (r == 0)
            r = add_readonly_open(ctx);
        break;
    case SECCOMP_API:
        if (r == 0)
            r = add_list(ctx, LIST(sys_sockio));
        if (r == 0)
            r = add_list(ctx, LIST(sys_api));
        break;
    default:
        return -EINVAL;
    }
    if (r == 0)
        r = add_ioctls(ctx);
    if (r == 0)
        r = add_arg0_in(ctx, SCMP_SYS(prctl), LIST(prctl_names));
#ifndef NIMBUS_SANITIZED
    if (r == 0)
        r = add_no_exec_maps(ctx);
#else
    (void)add_no_exec_maps;
#endif
    return r;
}

static uint32_t default_action(enum seccomp_mode mode)
{
    switch (mode) {
    case SECCOMP_LOG:
        return SCMP_ACT_LOG;
    case SECCOMP_ERRNO:
        return SCMP_ACT_ERRNO(EPERM);
    default:
        return SCMP_ACT_TRAP;
    }
}

/* libseccomp 2.5 exports BPF only to a file descriptor. */
static int compile(enum seccomp_kind kind, enum seccomp_mode mode, struct sock_fprog *out)
{
    scmp_filter_ctx ctx = seccomp_init(default_action(mode));
    if (!ctx)
        return -ENOMEM;
    int r = add_rules(ctx, kind);
    int fd = -1;
    if (r == 0) {
        fd = (int)syscall(SYS_memfd_create, "nimbus-seccomp", MFD_CLOEXEC);
        if (fd < 0)
            r = -errno;
    }
    if (r == 0)
        r = seccomp_export_bpf(ctx, fd);
    struct stat st;
    if (r == 0 && fstat(fd, &st) < 0)
        r = -errno;
    if (r == 0 && (st.st_size <= 0 || st.st_size % (off_t)sizeof(struct sock_filter) != 0 ||
                   st.st_size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS))
        r = -E2BIG;
    struct sock_filter *insns = NULL;
    if (r == 0) {
        insns = malloc((size_t)st.st_size);
        if (!insns)
            r = -ENOMEM;
    }
    if (r == 0 && pread(fd, insns, (size_t)st.st_size, 0) != st.st_size)
        r = -EIO;
    if (fd >= 0)
        close(fd);
    seccomp_release(ctx);
    if (r < 0) {
        free(insns);
        return r;
    }
    out->len = (unsigned short)(st.st_size / (off_t)sizeof(struct sock_filter));
    out->filter = insns;
    return 0;
}

/* ---- the report ------------------------------------------------------------------ */

static size_t put(char *buf, size_t n, size_t cap, const char *s)
{
    while (*s && n + 1 < cap)
        buf[n++] = *s++;
    return n;
}

static size_t put_num(char *buf, size_t n, size_t cap, long v)
{
    char tmp[24];
    size_t k = 0;
    unsigned long u = v < 0 ? (unsigned long)-v : (unsigned long)v;
    do {
        tmp[k++] = (char)('0' + u % 10);
        u /= 10;
    } while (u && k < sizeof(tmp));
    if (v < 0 && n + 1 < cap)
        buf[n++] = '-';
    while (k && n + 1 < cap)
        buf[n++] = tmp[--k];
    return n;
}

/* Async-signal-safe: fixed buffers, write(2), _exit(2). */
static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    char buf[320];
    size_t n = 0;
    int nr = si->si_syscall;
    n = put(buf, n, sizeof(buf), "nimbus: error: seccomp: thread '");
    n = put(buf, n, sizeof(buf), t_name[0] ? t_name : "?");
    n = put(buf, n, sizeof(buf), "' (");
    n = put(buf, n, sizeof(buf), t_kind >= 0 ? kind_names[t_kind] : "unconfined kind");
    n = put(buf, n, sizeof(buf), ") made a forbidden system call: ");
    n = put(buf, n, sizeof(buf),
            nr >= 0 && nr < SYSCALL_NAMES && g_names[nr] ? g_names[nr] : "unknown");
    n = put(buf, n, sizeof(buf), " (");
    n = put_num(buf, n, sizeof(buf), nr);
    n = put(buf, n, sizeof(buf), "); stopping (--seccomp log would let it through)\n");
    ssize_t w = write(STDERR_FILENO, buf, n);
    int lfd = log_file_fd();
    if (lfd >= 0 && lfd != STDERR_FILENO)
        w = write(lfd, buf, n);
    (void)w;
    _exit(1);
}

/* ---- installing -------------------------------------------------------------------- */

static int install(enum seccomp_kind kind, const char *name)
{
    snprintf(t_name, sizeof(t_name), "%s", name ? name : kind_names[kind]);
    t_kind = (int)kind;
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &g_prog[kind]) < 0)
        return -errno;
    return 0;
}

int seccomp_parse_mode(const char *s)
{
    if (!s || strcmp(s, "true") == 0)
        return SECCOMP_TRAP;
    if (strcmp(s, "false") == 0)
        return SECCOMP_OFF;
    if (strcmp(s, "log") == 0)
        return SECCOMP_LOG;
    if (strcmp(s, "errno") == 0)
        return SECCOMP_ERRNO;
    return -1;
}

int seccomp_setup(enum seccomp_mode mode, char *err, size_t errlen)
{
    if (mode == SECCOMP_OFF)
        return 0;
    for (int i = 0; i < SYSCALL_NAMES; i++)
        g_names[i] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, i);
    for (int k = 0; k < SECCOMP_NKINDS; k++) {
        int r = compile((enum seccomp_kind)k, mode, &g_prog[k]);
        if (r < 0) {
            snprintf(err, errlen, "seccomp: cannot build the %s thread filter: %s",
                     kind_names[k], strerror(-r));
            return -1;
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSYS, &sa, NULL) < 0) {
        snprintf(err, errlen, "seccomp: cannot install the SIGSYS handler: %s", strerror(errno));
        return -1;
    }
    /* Unprivileged filters need no_new_privs; it also keeps a setuid helper
     * from gaining what nimbus gave up. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        snprintf(err, errlen, "seccomp: cannot set no_new_privs: %s", strerror(errno));
        return -1;
    }
    g_mode = mode;
    int r = install(SECCOMP_VMM, "nimbus");
    if (r < 0) {
        g_mode = SECCOMP_OFF;
        snprintf(err, errlen, "seccomp: the kernel refused the VMM thread filter: %s",
                 strerror(-r));
        return -1;
    }
    log_info("seccomp: filters on (%s mode), %u/%u/%u/%u instructions (vmm/vcpu/device/api)",
             mode == SECCOMP_TRAP ? "trap" : mode == SECCOMP_LOG ? "log" : "errno",
             g_prog[SECCOMP_VMM].len, g_prog[SECCOMP_VCPU].len, g_prog[SECCOMP_DEVICE].len,
             g_prog[SECCOMP_API].len);
    return 0;
}

void seccomp_enter(enum seccomp_kind kind, const char *name)
{
    if (g_mode == SECCOMP_OFF || (unsigned)kind >= SECCOMP_NKINDS)
        return;
    int r = install(kind, name);
    if (r < 0) {
        log_error("seccomp: the kernel refused the %s filter of thread '%s': %s; stopping",
                  kind_names[kind], name ? name : "?", strerror(-r));
        _exit(1);
    }
}
