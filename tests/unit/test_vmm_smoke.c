/*
 * End-to-end runs of the nimbus binary with the tiny PVH guest: ELF/PVH
 * loading, a vCPU thread, PIO dispatch to the UART plugin, the ACPI sleep
 * register, the i8042 reset line, signals and exit codes.  Needs a working
 * /dev/kvm (any flavour: the guest is freestanding); skipped otherwise.
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_kvm.h"
#include <nimbus/plugin_abi.h>

struct run {
    int status;       /* exit code, or 128+signal */
    char out[8192];
    char err[8192];
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Run nimbus with argv; send `sig` after `sig_after_ms` if nonzero. */
static void run_nimbus(const char *const *args, struct run *r, int sig, int sig_after_ms)
{
    int po[2], pe[2];
    assert_int_equal(pipe(po), 0);
    assert_int_equal(pipe(pe), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        const char *argv[32];
        int n = 0;
        argv[n++] = NIMBUS_TEST_NIMBUS_BIN;
        for (int i = 0; args[i] && n < 31; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    memset(r->out, 0, sizeof(r->out));
    memset(r->err, 0, sizeof(r->err));
    size_t no = 0, ne = 0;
    uint64_t start = now_ms();
    int sent = 0, open_fds = 2;
    struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    while (open_fds > 0) {
        uint64_t el = now_ms() - start;
        if (sig && !sent && el >= (uint64_t)sig_after_ms) {
            kill(pid, sig);
            sent = 1;
        }
        if (el > 60000) {
            kill(pid, SIGKILL);
            fail_msg("nimbus did not exit within 60 s; stderr: %s", r->err);
        }
        if (poll(fds, 2, 50) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP)))
                continue;
            char *buf = i ? r->err : r->out;
            size_t *len = i ? &ne : &no;
            ssize_t k = read(fds[i].fd, buf + *len, sizeof(r->out) - 1 - *len);
            if (k <= 0) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            } else {
                *len += (size_t)k;
            }
        }
    }
    int st;
    waitpid(pid, &st, 0);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}


static void test_poweroff_prints_cmdline(void **state)
{
    (void)state;
    SKIP_WITHOUT_KVM();
    struct run r;
    const char *args[] = {"--kernel", NIMBUS_TEST_TINY_GUEST, "--cmdline", "p hello-nimbus",
                          "--serial", "tty", "--cpus", "boot=2", "--memory", "size=128M", NULL};
    run_nimbus(args, &r, 0, 0);
    if (r.status != 0)
        fail_msg("exit %d, stderr: %s", r.status, r.err);
    assert_non_null(strstr(r.out, "tiny guest: cmdline=p hello-nimbus"));
}

/* How many times the tiny guest started (it prints its cmdline each boot). */
static int boots(const struct run *r, const char *cmdline)
{
    char needle[64];
    snprintf(needle, sizeof(needle), "tiny guest: cmdline=%s", cmdline);
    int n = 0;
    for (const char *p = r->out; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/*
 * A reset reboots the VM inside the same nimbus (Cloud Hypervisor's
 * behaviour): this guest resets on every boot, so it keeps starting until
 * SIGTERM ends nimbus cleanly.
 */
static void expect_reboots(const char *cmdline)
{
    struct run r;
    const char *args[] = {"--kernel", NIMBUS_TEST_TINY_GUEST, "--cmdline", cmdline,
                          "--serial", "tty", "-v", NULL};
    run_nimbus(args, &r, SIGTERM, 1500);
    /* Some software hypervisors report a triple fault as an internal error. */
    if (r.status == 1 && strstr(r.err, "internal error"))
        return;
    if (r.status != 128 + SIGTERM)
        fail_msg("exit %d, stderr: %s", r.status, r.err);
    if (boots(&r, cmdline) < 2)
        fail_msg("the guest did not start again after its reset: %s", r.out);
    assert_non_null(strstr(r.err, "rebooting"));
}

static void test_i8042_reset_reboots(void **state)
{
    (void)state;
    SKIP_WITHOUT_KVM();
    expect_reboots("reset");
}

/* The firmware-less reboot path Linux takes on hardware-reduced ACPI. */
static void test_reset_vector_stub_reboots(void **state)
{
    (void)state;
    SKIP_WITHOUT_KVM();
    expect_reboots("bios-reset");
}

static void test_triple_fault_reboots(void **state)
{
    (void)state;
    SKIP_WITHOUT_KVM();
    expect_reboots("t");
}

static void test_serial_to_file_is_flushed(void **state)
{
    (void)state;
    SKIP_WITHOUT_KVM();
    char path[] = "/tmp/nimbus-serial-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char opt[64];
    snprintf(opt, sizeof(opt), "file=%s", path);
    struct run r;
    const char *args[] = {"--kernel", NIMBUS_TEST_TINY_GUEST, "--cmdline", "p to-a-file",
                          "--serial", opt, NULL};
    run_nimbus(args, &r, 0, 0);
    assert_int_equal(r.status, 0);
    assert_null(strstr(r.out, "to-a-file"));
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char buf[256] = "";
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    unlink(path);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "cmdline=p to-a-file"));
}

static void test_serial_off_still_boots(void **state)
{
    (void)state;
    SKIP_WITHOUT_KVM();
    struct run r;
    const char *args[] = {"--kernel", NIMBUS_TEST_TINY_GUEST, "--cmdline", "p quiet",
                          "--serial", "off", NULL};
    run_nimbus(args, &r, 0, 0);
    assert_int_equal(r.status, 0);
    assert_null(strstr(r.out, "quiet"));
}

static void test_sigterm_ends_a_hung_guest(void **state)
{
    (void)state;
    SKIP_WITHOUT_KVM();
    struct run r;
    const char *args[] = {"--kernel", NIMBUS_TEST_TINY_GUEST, "--cmdline", "halt",
                          "--serial", "tty", "--cpus", "boot=2", NULL};
    run_nimbus(args, &r, SIGTERM, 1500);
    assert_int_equal(r.status, 128 + SIGTERM);
    assert_non_null(strstr(r.out, "cmdline=halt"));
}

static void test_corrupt_kernel_fails_clearly(void **state)
{
    (void)state;
    SKIP_WITHOUT_KVM();
    char path[] = "/tmp/nimbus-badkernel-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "this is not a kernel image at all", 33), 33);
    close(fd);
    struct run r;
    const char *args[] = {"--kernel", path, "--serial", "tty", NULL};
    run_nimbus(args, &r, 0, 0);
    unlink(path);
    assert_int_not_equal(r.status, 0);
    assert_non_null(strstr(r.err, path));
}

static void test_plugin_for_newer_abi_refused(void **state)
{
    (void)state;
    SKIP_WITHOUT_KVM();
    struct run r;
    const char *args[] = {"--kernel", NIMBUS_TEST_TINY_GUEST, "--device",
                          "plugin=" NIMBUS_TEST_ABI_PLUGIN_DIR "/abi_newminor.so", NULL};
    run_nimbus(args, &r, 0, 0);
    assert_int_not_equal(r.status, 0);
    /* The fixture is built for the minor after ours (tests/unit/CMakeLists.txt). */
    char want[32];
    snprintf(want, sizeof(want), "needs ABI %u.%u", NIMBUS_ABI_MAJOR, NIMBUS_ABI_MINOR + 1);
    assert_non_null(strstr(r.err, want));
}

static void test_third_party_plugin_loads(void **state)
{
    (void)state;
    SKIP_WITHOUT_KVM();
    struct run r;
    const char *args[] = {"--kernel", NIMBUS_TEST_TINY_GUEST, "--cmdline", "p plugged",
                          "--serial", "tty", "--device",
                          "plugin=" NIMBUS_TEST_ABI_PLUGIN_DIR "/abi_good.so,anything=1", NULL};
    run_nimbus(args, &r, 0, 0);
    if (r.status != 0)
        fail_msg("exit %d, stderr: %s", r.status, r.err);
    assert_non_null(strstr(r.out, "cmdline=p plugged"));
}

/* A "Field:\tvalue" line of /proc/PID/status, in `base`; ~0 if missing. */
static uint64_t status_field(pid_t pid, const char *field, int base)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    uint64_t v = ~0ull;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, field, n) == 0)
            v = strtoull(line + n, NULL, base);
    if (f)
        fclose(f);
    return v;
}

/* ---- --seccomp ---- */

#define PROBE "plugin=" NIMBUS_TEST_ABI_PLUGIN_DIR "/syscall_probe.so"

/* A forbidden call ends nimbus with one line naming the call and the
 * thread, on each kind of thread; --seccomp false lets the same call
 * through, and errno makes it fail instead. */
static void test_seccomp_forbidden_call_is_named(void **state)
{
    (void)state;
    SKIP_WITHOUT_KVM();
    static const struct {
        const char *cmdline, *device, *seccomp, *want;
        int ok;
    } cases[] = {
        {"p", PROBE ",call=acct,on=create", NULL,
         "thread 'nimbus' (vmm) made a forbidden system call: acct", 0},
        {"o", PROBE ",call=socket,on=io", NULL,
         "thread 'vcpu0' (vcpu) made a forbidden system call: socket", 0},
        {"h", PROBE ",call=acct,on=timer", "true",
         "thread 'devices' (device) made a forbidden system call: acct", 0},
        {"o", PROBE ",call=socket,on=io", "false", NULL, 1},
        {"p", PROBE ",call=acct,on=create", "errno", NULL, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct run r;
        const char *args[12] = {"--kernel", NIMBUS_TEST_TINY_GUEST, "--cmdline", cases[i].cmdline,
                                "--device", cases[i].device};
        int n = 6;
        if (cases[i].seccomp) {
            args[n++] = "--seccomp";
            args[n++] = cases[i].seccomp;
        }
        args[n] = NULL;
        run_nimbus(args, &r, 0, 0);
        if (cases[i].ok) {
            if (r.status != 0)
                fail_msg("case %zu: exit %d, stderr: %s", i, r.status, r.err);
            continue;
        }
        if (r.status == 0 || !strstr(r.err, cases[i].want))
            fail_msg("case %zu: exit %d, want \"%s\" in stderr: %s", i, r.status, cases[i].want,
                     r.err);
    }
}

/* Every thread of a running nimbus with every kind of device carries a
 * filter, and those past the main thread their own on top of it. */
static void test_seccomp_on_every_thread(void **state)
{
    (void)state;
    SKIP_WITHOUT_KVM();
    char disk[] = "/tmp/nimbus-seccomp-disk-XXXXXX";
    int dfd = mkstemp(disk);
    assert_true(dfd >= 0);
    assert_int_equal(ftruncate(dfd, 1 << 20), 0);
    close(dfd);
    char diskopt[64], sock[64];
    snprintf(diskopt, sizeof(diskopt), "path=%s", disk);
    snprintf(sock, sizeof(sock), "/tmp/nimbus-seccomp-%d.sock", (int)getpid());
    for (int off = 0; off < 2; off++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            int devnull = open("/dev/null", O_RDWR);
            dup2(devnull, 0);
            dup2(devnull, 1);
            dup2(devnull, 2);
            execl(NIMBUS_TEST_NIMBUS_BIN, NIMBUS_TEST_NIMBUS_BIN, "--kernel",
                  NIMBUS_TEST_TINY_GUEST, "--cmdline", "l", "--memory", "size=64M", "--disk",
                  diskopt, "--rng", "--console", "off", "--net", "user=on", "--api-socket", sock,
                  "--seccomp", off ? "false" : "true", (char *)NULL);
            _exit(127);
        }
        /* Threads start as the VM boots: wait for the vCPU's.  Filters are
         * counted beyond ours: a container runs everything under one. */
        int threads = 0, filtered = 0, stacked = 0, vcpu = 0;
        int base = (int)status_field(getpid(), "Seccomp_filters:\t", 10);
        for (int tries = 0; tries < 100 && !vcpu; tries++) {
            usleep(50 * 1000);
            threads = filtered = stacked = 0;
            char dir[64];
            snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
            DIR *d = opendir(dir);
            if (!d)
                break;
            struct dirent *e;
            while ((e = readdir(d))) {
                if (e->d_name[0] == '.')
                    continue;
                char path[400], line[256];
                snprintf(path, sizeof(path), "%s/%s/status", dir, e->d_name);
                FILE *f = fopen(path, "r");
                if (!f)
                    continue;
                int mode = -1, nfilters = -1;
                while (fgets(line, sizeof(line), f)) {
                    if (strcmp(line, "Name:\tvcpu0\n") == 0)
                        vcpu = 1;
                    sscanf(line, "Seccomp: %d", &mode);
                    sscanf(line, "Seccomp_filters: %d", &nfilters);
                }
                fclose(f);
                threads++;
                filtered += mode == 2 && nfilters > base;
                stacked += nfilters >= base + 2;
            }
            closedir(d);
        }
        kill(pid, SIGTERM);
        int st;
        waitpid(pid, &st, 0);
        assert_true(vcpu);
        /* main, devices, vcpu0, http-server, blk_q0, net_q0 at least */
        assert_true(threads >= 6);
        if (off) {
            assert_int_equal(filtered, 0);
        } else {
            if (filtered != threads || stacked < threads - 2)
                fail_msg("%d threads, %d filtered, %d with their own filter", threads, filtered,
                         stacked);
        }
    }
    unlink(disk);
}

/* ---- capabilities ---- */

/* Once the VM is built nimbus keeps only the DAC capabilities (a reboot
 * reopens files by path), plus CAP_NET_ADMIN while an API client may
 * still create a VM with a new tap. */
static void test_capabilities_dropped_after_boot(void **state)
{
    (void)state;
    SKIP_WITHOUT_KVM();
    if (geteuid() != 0)
        skip();
    char sock[64];
    snprintf(sock, sizeof(sock), "/tmp/nimbus-caps-%d.sock", (int)getpid());
    const uint64_t dac = (1ull << 1) | (1ull << 2), net_admin = 1ull << 12;
    for (int api = 0; api < 2; api++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            int devnull = open("/dev/null", O_RDWR);
            dup2(devnull, 0);
            dup2(devnull, 1);
            dup2(devnull, 2);
            if (api)
                execl(NIMBUS_TEST_NIMBUS_BIN, NIMBUS_TEST_NIMBUS_BIN, "--kernel",
                      NIMBUS_TEST_TINY_GUEST, "--cmdline", "l", "--api-socket", sock, (char *)NULL);
            else
                execl(NIMBUS_TEST_NIMBUS_BIN, NIMBUS_TEST_NIMBUS_BIN, "--kernel",
                      NIMBUS_TEST_TINY_GUEST, "--cmdline", "l", (char *)NULL);
            _exit(127);
        }
        /* The guest prints dots as soon as it runs; by then the set-up is over. */
        uint64_t eff = ~0ull, prm = ~0ull;
        for (int tries = 0; tries < 100; tries++) {
            usleep(50 * 1000);
            eff = status_field(pid, "CapEff:\t", 16);
            prm = status_field(pid, "CapPrm:\t", 16);
            if ((prm & ~(dac | net_admin)) == 0)
                break;
        }
        kill(pid, SIGTERM);
        int st;
        waitpid(pid, &st, 0);
        /* Of what we have: a container's bounding set may lack some. */
        uint64_t want = (api ? dac | net_admin : dac) & status_field(getpid(), "CapPrm:\t", 16);
        if (eff != want || prm != want)
            fail_msg("%s API: CapEff %llx CapPrm %llx, want %llx", api ? "with" : "without",
                     (unsigned long long)eff, (unsigned long long)prm,
                     (unsigned long long)want);
    }
}

/* ---- --landlock ---- */

static int sh_quiet(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The guest runs confined (payload, serial file, plugins, /dev/kvm all
 * named), and a file the configuration does not name cannot be opened:
 * a qcow2 overlay's backing file, until --landlock-rules names it. */
static void test_landlock_confines_to_the_configuration(void **state)
{
    (void)state;
    SKIP_WITHOUT_KVM();
    char dir[] = "/tmp/nimbus-landlock-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char base[128], over[128], ser[128], cmd[512], disk[256], rule[256];
    snprintf(base, sizeof(base), "%s/base.raw", dir);
    snprintf(over, sizeof(over), "%s/over.qcow2", dir);
    snprintf(ser, sizeof(ser), "%s/serial.out", dir);
    snprintf(cmd, sizeof(cmd),
             "qemu-img create -q -f raw %s 1M && qemu-img create -q -f qcow2 -b %s -F raw %s",
             base, base, over);
    if (sh_quiet(cmd) != 0)
        fail_msg("qemu-img failed (ci/install-deps.sh installs qemu-utils)");
    snprintf(disk, sizeof(disk), "path=%s,image_type=qcow2,backing_files=on", over);
    snprintf(rule, sizeof(rule), "path=%s,access=r", base);
    char serial[160];
    snprintf(serial, sizeof(serial), "file=%s", ser);

    struct run r;
    const char *plain[] = {"--landlock", "--kernel", NIMBUS_TEST_TINY_GUEST, "--cmdline",
                           "p confined", "--serial", serial, "--console", "off", NULL};
    run_nimbus(plain, &r, 0, 0);
    if (r.status != 0)
        fail_msg("exit %d, stderr: %s", r.status, r.err);
    FILE *fp = fopen(ser, "r");
    assert_non_null(fp);
    char line[128] = "";
    assert_non_null(fgets(line, sizeof(line), fp));
    fclose(fp);
    assert_non_null(strstr(line, "tiny guest: cmdline=p confined"));

    const char *denied[] = {"--landlock", "--kernel", NIMBUS_TEST_TINY_GUEST, "--cmdline", "p",
                            "--serial", "off", "--console", "off", "--disk", disk, NULL};
    run_nimbus(denied, &r, 0, 0);
    assert_int_equal(r.status, 1);
    if (!strstr(r.err, base) || !strstr(r.err, "Permission denied"))
        fail_msg("stderr: %s", r.err);

    const char *granted[] = {"--landlock", "--landlock-rules", rule, "--kernel",
                             NIMBUS_TEST_TINY_GUEST, "--cmdline", "p", "--serial", "off",
                             "--console", "off", "--disk", disk, NULL};
    run_nimbus(granted, &r, 0, 0);
    if (r.status != 0)
        fail_msg("with the rule: exit %d, stderr: %s", r.status, r.err);

    /* Without --landlock the same disk opens: the refusal was Landlock's. */
    const char *free_run[] = {"--kernel", NIMBUS_TEST_TINY_GUEST, "--cmdline", "p", "--serial",
                              "off", "--console", "off", "--disk", disk, NULL};
    run_nimbus(free_run, &r, 0, 0);
    assert_int_equal(r.status, 0);

    /* A rule naming a path that does not exist: one line naming it, exit 2. */
    const char *bad[] = {"--landlock", "--landlock-rules", "path=/nonexistent/x,access=rw",
                         "--kernel", NIMBUS_TEST_TINY_GUEST, NULL};
    run_nimbus(bad, &r, 0, 0);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "--landlock-rules '/nonexistent/x'"));

    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(sh_quiet(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_poweroff_prints_cmdline),
        cmocka_unit_test(test_i8042_reset_reboots),
        cmocka_unit_test(test_reset_vector_stub_reboots),
        cmocka_unit_test(test_triple_fault_reboots),
        cmocka_unit_test(test_serial_to_file_is_flushed),
        cmocka_unit_test(test_serial_off_still_boots),
        cmocka_unit_test(test_sigterm_ends_a_hung_guest),
        cmocka_unit_test(test_corrupt_kernel_fails_clearly),
        cmocka_unit_test(test_plugin_for_newer_abi_refused),
        cmocka_unit_test(test_third_party_plugin_loads),
        cmocka_unit_test(test_landlock_confines_to_the_configuration),
        cmocka_unit_test(test_seccomp_forbidden_call_is_named),
        cmocka_unit_test(test_seccomp_on_every_thread),
        cmocka_unit_test(test_capabilities_dropped_after_boot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
