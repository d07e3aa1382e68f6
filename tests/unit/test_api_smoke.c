/*
 * The REST API end to end with the tiny PVH guest: nimbus started as an API
 * server, a VM created, booted, paused, resumed, rebooted, shut down,
 * booted again and deleted, then vmm.shutdown, with the event stream
 * checked.  Small enough to run in the ASan/UBSan build, so the API thread,
 * the VMM loop and the reboot path run under the sanitizers in CI.  Needs a
 * working /dev/kvm (any flavour: the guest is freestanding); skipped
 * otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_kvm.h"

struct server {
    pid_t pid;
    char dir[64];
    char sock[128], events[128], serial[128];
};

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int connect_to(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* One request on a new connection; returns the status, body into `body`. */
static int call(struct server *s, const char *method, const char *ep, const char *json,
                char *body, size_t bodylen)
{
    int fd = connect_to(s->sock);
    assert_true(fd >= 0);
    char req[4096];
    size_t blen = json ? strlen(json) : 0;
    int n = snprintf(req, sizeof(req),
                     "%s /api/v1/%s HTTP/1.1\r\nHost: localhost\r\nContent-Length: %zu\r\n\r\n%s",
                     method, ep, blen, json ? json : "");
    assert_true(n > 0 && (size_t)n < sizeof(req));
    assert_int_equal(write(fd, req, (size_t)n), n);
    char buf[16384];
    size_t got = 0;
    char *end = NULL;
    long clen = 0;
    for (;;) {
        ssize_t k = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (k <= 0)
            break;
        got += (size_t)k;
        buf[got] = '\0';
        end = strstr(buf, "\r\n\r\n");
        if (!end)
            continue;
        const char *cl = strstr(buf, "Content-Length: ");
        clen = cl && cl < end ? strtol(cl + 16, NULL, 10) : 0;
        if (got >= (size_t)(end + 4 - buf) + (size_t)clen)
            break;
    }
    close(fd);
    assert_non_null(end);
    int status = 0;
    assert_int_equal(sscanf(buf, "HTTP/1.1 %d", &status), 1);
    if (body && bodylen) {
        snprintf(body, bodylen, "%.*s", (int)clen, end + 4);
    }
    return status;
}

static void expect(struct server *s, const char *method, const char *ep, const char *json,
                   int status)
{
    char body[8192];
    int got = call(s, method, ep, json, body, sizeof(body));
    if (got != status)
        fail_msg("%s %s: %d, wanted %d: %s", method, ep, got, status, body);
}

static void expect_state(struct server *s, const char *state)
{
    char body[8192], want[64];
    assert_int_equal(call(s, "GET", "vm.info", NULL, body, sizeof(body)), 200);
    snprintf(want, sizeof(want), "\"state\":\"%s\"", state);
    if (!strstr(body, want))
        fail_msg("vm.info: wanted %s in %s", want, body);
}

static int count_in_file(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    int c = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        c++;
    return c;
}

static void wait_count(const char *path, const char *needle, int n)
{
    for (int i = 0; i < 300 && count_in_file(path, needle) < n; i++)
        sleep_ms(20);
    assert_true(count_in_file(path, needle) >= n);
}

static void start_server(struct server *s)
{
    snprintf(s->dir, sizeof(s->dir), "/tmp/nimbus-api-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    snprintf(s->sock, sizeof(s->sock), "%s/api.sock", s->dir);
    snprintf(s->events, sizeof(s->events), "%s/events", s->dir);
    snprintf(s->serial, sizeof(s->serial), "%s/serial", s->dir);
    char ev[160];
    snprintf(ev, sizeof(ev), "path=%s", s->events);
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        /* A failed assertion leaves no cleanup behind: the server must not
         * outlive the test (nor hold ctest's output pipe open). */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(devnull, 1);
        execl(NIMBUS_TEST_NIMBUS_BIN, NIMBUS_TEST_NIMBUS_BIN, "--api-socket", s->sock,
              "--event-monitor", ev, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        int fd = connect_to(s->sock);
        if (fd >= 0) {
            close(fd);
            return;
        }
        sleep_ms(10);
    }
    kill(s->pid, SIGKILL);
    fail_msg("the API socket never appeared");
}

static int wait_exit(struct server *s)
{
    int st = 0;
    for (int i = 0; i < 1000; i++) {
        if (waitpid(s->pid, &st, WNOHANG) == s->pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        sleep_ms(10);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &st, 0);
    fail_msg("nimbus did not exit after vmm.shutdown");
    return -1;
}

static void cleanup(struct server *s)
{
    unlink(s->events);
    unlink(s->serial);
    unlink(s->sock);
    rmdir(s->dir);
}

/* vm.create's body: the tiny guest with `cmdline`, 2 vCPUs, serial to s's file. */
static void tiny_vm_config(char *cfg, size_t len, const struct server *s, const char *cmdline)
{
    snprintf(cfg, len,
             "{\"payload\":{\"kernel\":\"%s\",\"cmdline\":\"%s\"},"
             "\"cpus\":{\"boot_vcpus\":2,\"max_vcpus\":2},\"memory\":{\"size\":67108864},"
             "\"serial\":{\"mode\":\"File\",\"file\":\"%s\"},\"console\":{\"mode\":\"Off\"}}",
             NIMBUS_TEST_TINY_GUEST, cmdline, s->serial);
}

static void test_lifecycle_through_the_api(void **state)
{
    (void)state;
    SKIP_WITHOUT_KVM();
    struct server s;
    start_server(&s);
    expect(&s, "GET", "vmm.ping", NULL, 200);
    expect(&s, "GET", "vm.info", NULL, 404);
    char cfg[1024];
    tiny_vm_config(cfg, sizeof(cfg), &s, "halt");
    expect(&s, "PUT", "vm.create", cfg, 204);
    expect_state(&s, "Created");
    expect(&s, "PUT", "vm.create", cfg, 409);
    expect(&s, "PUT", "vm.boot", NULL, 204);
    expect_state(&s, "Running");
    wait_count(s.serial, "tiny guest: cmdline=halt", 1);
    expect(&s, "PUT", "vm.boot", NULL, 409);
    expect(&s, "PUT", "vm.pause", NULL, 204);
    expect_state(&s, "Paused");
    expect(&s, "PUT", "vm.power-button", NULL, 409);
    expect(&s, "PUT", "vm.resume", NULL, 204);
    expect_state(&s, "Running");
    expect(&s, "GET", "vm.counters", NULL, 200);
    expect(&s, "PUT", "vm.power-button", NULL, 204);
    /* Rebooted in place: the same serial file gets the second boot's line. */
    expect(&s, "PUT", "vm.reboot", NULL, 204);
    wait_count(s.serial, "tiny guest: cmdline=halt", 2);
    expect_state(&s, "Running");
    expect(&s, "PUT", "vm.shutdown", NULL, 204);
    expect_state(&s, "Shutdown");
    expect(&s, "PUT", "vm.pause", NULL, 409);
    expect(&s, "PUT", "vm.boot", NULL, 204);
    wait_count(s.serial, "tiny guest: cmdline=halt", 3);
    expect(&s, "PUT", "vm.delete", NULL, 204);
    expect(&s, "GET", "vm.info", NULL, 404);
    expect(&s, "PUT", "vmm.shutdown", NULL, 204);
    assert_int_equal(wait_exit(&s), 0);
    struct stat sb;
    assert_int_not_equal(stat(s.sock, &sb), 0); /* the socket went with it */

    static const char *const events[] = {
        "\"vmm\",\"event\":\"starting\"", "\"vm\",\"event\":\"booting\"",
        "\"vm\",\"event\":\"booted\"",    "\"vm\",\"event\":\"pausing\"",
        "\"vm\",\"event\":\"paused\"",    "\"vm\",\"event\":\"resuming\"",
        "\"vm\",\"event\":\"resumed\"",   "\"vm\",\"event\":\"rebooting\"",
        "\"vm\",\"event\":\"rebooted\"",  "\"vm\",\"event\":\"shutdown\"",
        "\"vm\",\"event\":\"deleted\"",   "\"vmm\",\"event\":\"shutdown\"",
    };
    for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++)
        if (count_in_file(s.events, events[i]) < 1)
            fail_msg("event %s missing", events[i]);
    assert_int_equal(count_in_file(s.events, "\"event\":\"booted\""), 2);
    cleanup(&s);
}

static long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

/*
 * Regression: vm.resume must let the guest run again, every time.  A kick
 * taken between its two stores (kicked, then immediate_exit) once left
 * immediate_exit set for good: every later KVM_RUN failed with EINTR and
 * the guest never ran again (seen as a frozen guest after Kata's
 * pause/resume).  The guest prints dots forever ('l'); after each resume
 * its output must grow again.  The PIO exit per dot keeps the vCPU
 * leaving KVM_RUN, which is where a kick can land between the stores.
 */
static void test_guest_runs_after_every_resume(void **state)
{
    (void)state;
    SKIP_WITHOUT_KVM();
    struct server s;
    start_server(&s);
    char cfg[1024];
    tiny_vm_config(cfg, sizeof(cfg), &s, "l");
    expect(&s, "PUT", "vm.create", cfg, 204);
    expect(&s, "PUT", "vm.boot", NULL, 204);
    wait_count(s.serial, "tiny guest: cmdline=l", 1);
    for (int i = 0; i < 20; i++) {
        expect(&s, "PUT", "vm.pause", NULL, 204);
        expect(&s, "PUT", "vm.resume", NULL, 204);
        long before = file_size(s.serial);
        int waited = 0;
        while (file_size(s.serial) <= before && waited < 10000) {
            sleep_ms(5);
            waited += 5;
        }
        if (file_size(s.serial) <= before)
            fail_msg("resume %d: the guest printed nothing for 10 s", i + 1);
    }
    expect(&s, "PUT", "vmm.shutdown", NULL, 204);
    assert_int_equal(wait_exit(&s), 0);
    cleanup(&s);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifecycle_through_the_api),
        cmocka_unit_test(test_guest_runs_after_every_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
