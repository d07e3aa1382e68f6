/*
 * core/net/tap.c against the real kernel: create, attach, configure, check
 * caller-given fds, and removal on close; plus nimbus itself leaving no tap
 * behind when a later --net fails.  Needs root and /dev/net/tun (skipped
 * otherwise) and runs in a network namespace of its own, so nothing it
 * creates is visible to, or sends anything to, the host's network.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/if_tun.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_kvm.h"

#include "net/net_addr.h"
#include "net/tap.h"

static const char *g_skip; /* why every test skips, or NULL */
static char g_out[8192];   /* output of the last sh() */

/* Run a shell command; its stdout+stderr land in g_out.  Returns the exit status. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    strncat(cmd, " 2>&1", sizeof(cmd) - strlen(cmd) - 1);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(g_out, 1, sizeof(g_out) - 1, p);
    g_out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void name(char *buf, char tag)
{
    snprintf(buf, IFNAMSIZ, "nmt%d%c", (int)(getpid() % 100000), tag);
}

/* The kernel removes a non-persistent tap when its last fd closes. */
static int gone(const char *ifname)
{
    for (int i = 0; i < 100; i++) {
        if (if_nametoindex(ifname) == 0)
            return 1;
        nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
    }
    return 0;
}

static int setup(void **state)
{
    (void)state;
    if (geteuid() != 0)
        g_skip = "not root";
    else if (access("/dev/net/tun", R_OK | W_OK) < 0)
        g_skip = "no /dev/net/tun";
    else if (unshare(CLONE_NEWNET) < 0)
        g_skip = "cannot create a network namespace";
    else if (sh("ip -V") != 0)
        g_skip = "no ip(8)";
    return 0;
}

#define SKIP_UNLESS_READY()                                                                  \
    do {                                                                                     \
        if (g_skip) {                                                                        \
            print_message("skipped: %s\n", g_skip);                                          \
            skip();                                                                          \
        }                                                                                    \
    } while (0)

static void test_create_configure_remove(void **state)
{
    (void)state;
    SKIP_UNLESS_READY();
    char want[IFNAMSIZ], ifname[IFNAMSIZ], err[256] = "";
    int fd = -1, created = 0;
    name(want, 'a');
    assert_int_equal(tap_open(want, 1, &fd, ifname, &created, err, sizeof(err)), 0);
    assert_true(fd >= 0);
    assert_string_equal(ifname, want);
    assert_true(created);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);

    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    assert_int_equal(ioctl(fd, TUNGETIFF, &ifr), 0);
    assert_int_equal(ifr.ifr_flags & (IFF_TAP | IFF_TUN | IFF_NO_PI | IFF_VNET_HDR |
                                      IFF_MULTI_QUEUE | IFF_PERSIST),
                     IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);
    int hdr = 0;
    assert_int_equal(ioctl(fd, TUNGETVNETHDRSZ, &hdr), 0);
    assert_int_equal(hdr, 12);

    uint8_t mac[6];
    uint32_t ip;
    assert_int_equal(net_parse_mac("52:54:00:aa:bb:cc", mac), 0);
    assert_int_equal(net_parse_ipv4("10.213.7.1", &ip), 0);
    struct tap_link l = { .mac = mac, .mtu = 1400, .ip = ip, .prefix = 24, .up = 1 };
    if (tap_configure(ifname, &l, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(sh("ip -o link show dev %s", ifname), 0);
    if (!strstr(g_out, "mtu 1400") || !strstr(g_out, "link/ether 52:54:00:aa:bb:cc") ||
        !strstr(g_out, ",UP"))
        fail_msg("link: %s", g_out);
    assert_int_equal(sh("ip -o -4 addr show dev %s", ifname), 0);
    if (!strstr(g_out, "inet 10.213.7.1/24 brd 10.213.7.255"))
        fail_msg("addr: %s", g_out);

    /* Again with the same settings: nothing changes, nothing fails. */
    if (tap_configure(ifname, &l, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(sh("ip -o -4 addr show dev %s | wc -l", ifname), 0);
    assert_string_equal(g_out, "1\n");

    /* A second single-queue open of the same tap is refused. */
    int fd2 = -1;
    assert_int_equal(tap_open(want, 1, &fd2, ifname, &created, err, sizeof(err)), -1);
    assert_int_equal(fd2, -1);
    char msg[64];
    snprintf(msg, sizeof(msg), "tap '%s' is busy", want);
    assert_string_equal(err, msg);

    /* The tap's limit (65535 - the Ethernet header) is reported as such. */
    l = (struct tap_link){ .mtu = 65535 };
    assert_int_equal(tap_configure(ifname, &l, err, sizeof(err)), -1);
    snprintf(msg, sizeof(msg), "tap '%s' does not accept mtu 65535", want);
    assert_string_equal(err, msg);

    tap_close(&fd, 1);
    assert_int_equal(fd, -1);
    assert_true(gone(want));
    l = (struct tap_link){ .up = 1 };
    assert_int_equal(tap_configure(want, &l, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "vanished"));
}

static void test_template_multiqueue(void **state)
{
    (void)state;
    SKIP_UNLESS_READY();
    char ifname[IFNAMSIZ], other[IFNAMSIZ], err[256] = "";
    int fds[3] = { -1, -1, -1 }, created = 0;
    assert_int_equal(tap_open(NULL, 3, fds, ifname, &created, err, sizeof(err)), 0);
    assert_true(created);
    assert_int_equal(strncmp(ifname, "vmtap", 5), 0);
    for (int i = 0; i < 3; i++) {
        struct ifreq ifr;
        memset(&ifr, 0, sizeof(ifr));
        assert_true(fds[i] >= 0);
        assert_int_equal(ioctl(fds[i], TUNGETIFF, &ifr), 0);
        assert_string_equal(ifr.ifr_name, ifname); /* one device, three queues */
        assert_true(ifr.ifr_flags & IFF_MULTI_QUEUE);
    }
    /* Our own queues pass the fd check as a set, not one alone. */
    assert_int_equal(tap_check_fds(fds, 3, other, err, sizeof(err)), 0);
    assert_string_equal(other, ifname);
    assert_int_equal(tap_check_fds(fds, 1, other, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "has IFF_MULTI_QUEUE, but 1 fd was given"));

    /* "" is the template too: a second device. */
    int fd = -1;
    assert_int_equal(tap_open("", 1, &fd, other, &created, err, sizeof(err)), 0);
    assert_string_not_equal(other, ifname);
    int mixed[2] = { fds[0], fd };
    assert_int_equal(tap_check_fds(mixed, 2, other, err, sizeof(err)), -1);
    assert_true(strstr(err, "lacks IFF_MULTI_QUEUE") || strstr(err, "is a queue of tap"));
    tap_close(&fd, 1);

    tap_close(fds, 3);
    assert_true(gone(ifname));
}

static void test_attach_existing(void **state)
{
    (void)state;
    SKIP_UNLESS_READY();
    char n1[IFNAMSIZ], ifname[IFNAMSIZ], err[256] = "";
    int fds[2] = { -1, -1 }, created = 1;
    name(n1, 'p');
    assert_int_equal(sh("ip tuntap add dev %s mode tap", n1), 0);
    assert_int_equal(tap_open(n1, 1, fds, ifname, &created, err, sizeof(err)), 0);
    assert_false(created);
    struct tap_link l = { .up = 1 };
    assert_int_equal(tap_configure(ifname, &l, err, sizeof(err)), 0);
    tap_close(fds, 1);
    /* Persistent taps belong to whoever made them: still there. */
    assert_int_not_equal(if_nametoindex(n1), 0);

    /* A single-queue tap cannot take two queues. */
    assert_int_equal(tap_open(n1, 2, fds, ifname, &created, err, sizeof(err)), -1);
    assert_int_equal(fds[0], -1);
    char msg[160];
    snprintf(msg, sizeof(msg), "'%s' exists but is not a multi-queue tap (needed for more "
             "than one queue pair)", n1);
    assert_string_equal(err, msg);
    assert_int_equal(sh("ip tuntap del dev %s mode tap", n1), 0);

    /* A multi-queue tap cannot be used with one queue, nor a non-tap at all. */
    assert_int_equal(sh("ip tuntap add dev %s mode tap multi_queue", n1), 0);
    assert_int_equal(tap_open(n1, 1, fds, ifname, &created, err, sizeof(err)), -1);
    snprintf(msg, sizeof(msg), "'%s' exists but is not a single-queue tap", n1);
    assert_string_equal(err, msg);
    assert_int_equal(tap_open(n1, 2, fds, ifname, &created, err, sizeof(err)), 0);
    assert_false(created);
    tap_close(fds, 2);
    assert_int_equal(sh("ip tuntap del dev %s mode tap multi_queue", n1), 0);
    assert_int_equal(tap_open("lo", 1, fds, ifname, &created, err, sizeof(err)), -1);
    assert_string_equal(err, "'lo' exists but is not a single-queue tap");

    /* Names the kernel cannot take. */
    assert_int_equal(tap_open("0123456789abcdef", 1, fds, ifname, &created, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "longer than 15 characters"));
}

/* Open /dev/net/tun by hand with any flags, for the fd checks. */
static int raw_tun(const char *ifname, short flags)
{
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = flags;
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
    assert_int_equal(ioctl(fd, TUNSETIFF, &ifr), 0);
    return fd;
}

static void test_check_fds(void **state)
{
    (void)state;
    SKIP_UNLESS_READY();
    char ifname[IFNAMSIZ] = "", n[IFNAMSIZ], err[256] = "", msg[160];
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(tap_check_fds(&p[0], 1, ifname, err, sizeof(err)), -1);
    snprintf(msg, sizeof(msg), "fd %d is not a tap device", p[0]);
    assert_string_equal(err, msg);
    close(p[0]);
    close(p[1]);
    assert_int_equal(tap_check_fds(&p[0], 1, ifname, err, sizeof(err)), -1);
    snprintf(msg, sizeof(msg), "fd %d is not open", p[0]);
    assert_string_equal(err, msg);

    name(n, 'v');
    int fd = raw_tun(n, IFF_TAP | IFF_NO_PI);
    assert_int_equal(tap_check_fds(&fd, 1, ifname, err, sizeof(err)), -1);
    snprintf(msg, sizeof(msg), "fd %d (tap '%s') was opened without IFF_VNET_HDR", fd, n);
    assert_string_equal(err, msg);
    close(fd);
    assert_true(gone(n));

    fd = raw_tun(n, IFF_TUN | IFF_NO_PI | IFF_VNET_HDR);
    assert_int_equal(tap_check_fds(&fd, 1, ifname, err, sizeof(err)), -1);
    snprintf(msg, sizeof(msg), "fd %d is a tun device ('%s'), not a tap", fd, n);
    assert_string_equal(err, msg);
    close(fd);
    assert_true(gone(n));

    /* A good one: the name comes back and the header is set to 12 bytes. */
    fd = raw_tun(n, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);
    assert_int_equal(tap_check_fds(&fd, 1, ifname, err, sizeof(err)), 0);
    assert_string_equal(ifname, n);
    int hdr = 0;
    assert_int_equal(ioctl(fd, TUNGETVNETHDRSZ, &hdr), 0);
    assert_int_equal(hdr, 12);
    /* Two single-queue taps are not one device's queues. */
    char n2[IFNAMSIZ];
    name(n2, 'w');
    int fds[2] = { fd, raw_tun(n2, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR) };
    assert_int_equal(tap_check_fds(fds, 2, ifname, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "lacks IFF_MULTI_QUEUE, but 2 fds were given"));
    tap_close(fds, 2);
}

/* Without CAP_NET_ADMIN creating a tap fails with a message that says so. */
static void test_needs_cap_net_admin(void **state)
{
    (void)state;
    SKIP_UNLESS_READY();
    char n[IFNAMSIZ];
    name(n, 'c');
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
        struct __user_cap_data_struct d[2];
        if (syscall(SYS_capget, &h, d) < 0)
            _exit(3);
        d[0].effective &= ~(1u << CAP_NET_ADMIN);
        if (syscall(SYS_capset, &h, d) < 0)
            _exit(3);
        char ifname[IFNAMSIZ], err[256], want[96];
        int fd = -1, created;
        snprintf(want, sizeof(want), "creating tap '%s' needs CAP_NET_ADMIN", n);
        if (tap_open(n, 1, &fd, ifname, &created, err, sizeof(err)) == 0) {
            fprintf(stderr, "tap_open succeeded without CAP_NET_ADMIN\n");
            _exit(1);
        }
        if (strcmp(err, want) != 0) {
            fprintf(stderr, "got '%s'\n", err);
            _exit(1);
        }
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    if (WEXITSTATUS(st) == 3)
        skip();
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(if_nametoindex(n), 0);
}

/* nimbus: a --net error exits 2 with one line, and the tap an earlier --net
 * created does not survive it. */
static void test_nimbus_exit_2_removes_tap(void **state)
{
    (void)state;
    SKIP_UNLESS_READY();
    SKIP_WITHOUT_KVM();
    char n[IFNAMSIZ];
    name(n, 'n');
    int rc = sh("%s --kernel %s --console off --serial off -v --net tap=%s fd=[0] </dev/null",
                NIMBUS_TEST_NIMBUS_BIN, NIMBUS_TEST_TINY_GUEST, n);
    char want[128];
    snprintf(want, sizeof(want), "info: --net: tap %s (1 queue pair, created)", n);
    /* The second --net fails on fd 0, or the first one already on a missing
     * virtio_net plugin: either way after the tap was made. */
    const char *e1 = strstr(g_out, "\nnimbus: error: --net: fd 0 is not a tap device\n");
    const char *e2 = strstr(g_out, "\nnimbus: error: --net: plugin 'virtio_net' not found");
    const char *first = strstr(g_out, "error:");
    if (rc != 2 || !strstr(g_out, want) || !(e1 || e2) || strstr(first + 1, "error:"))
        fail_msg("exit %d, output:\n%s", rc, g_out);
    assert_int_equal(if_nametoindex(n), 0);

    /* A bad MAC is found by the command line, before anything exists. */
    rc = sh("%s --kernel %s --net mac=01:02:03:04:05:06,tap=%s", NIMBUS_TEST_NIMBUS_BIN,
            NIMBUS_TEST_TINY_GUEST, n);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(g_out, "nimbus: error: --net: mac '01:02:03:04:05:06' is a "
                                  "multicast address"));
    assert_int_equal(if_nametoindex(n), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_configure_remove),
        cmocka_unit_test(test_template_multiqueue),
        cmocka_unit_test(test_attach_existing),
        cmocka_unit_test(test_check_fds),
        cmocka_unit_test(test_needs_cap_net_admin),
        cmocka_unit_test(test_nimbus_exit_2_removes_tap),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
