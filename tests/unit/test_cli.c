/* Command line: every option, the defaults, and every error message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli.h"
#include "cli_opts.h"
#include "config.h"
#include "config_limits.h"

/* Scratch files: "@K" kernel, "@I" initramfs, "@D0"/"@D1" disks, "@T" dir. */
static char g_dir[64];
static char g_kernel[128], g_initrd[128], g_disk0[128], g_disk1[128];

static void touch(const char *path)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("x", f);
    fclose(f);
}

static int setup_files(void **state)
{
    strcpy(g_dir, "/tmp/nimbus-test-cli-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    snprintf(g_kernel, sizeof(g_kernel), "%s/vmlinux", g_dir);
    snprintf(g_initrd, sizeof(g_initrd), "%s/initrd", g_dir);
    snprintf(g_disk0, sizeof(g_disk0), "%s/disk0.img", g_dir);
    snprintf(g_disk1, sizeof(g_disk1), "%s/disk1.img", g_dir);
    touch(g_kernel);
    touch(g_initrd);
    touch(g_disk0);
    touch(g_disk1);
    return 0;
}

static int teardown_files(void **state)
{
    unlink(g_kernel);
    unlink(g_initrd);
    unlink(g_disk0);
    unlink(g_disk1);
    rmdir(g_dir);
    return 0;
}

/* Replace the @ placeholders anywhere in s.  Caller frees. */
static char *expand(const char *s)
{
    static const struct { const char *tag; const char *val; } subst[] = {
        { "@D0", g_disk0 }, { "@D1", g_disk1 }, { "@K", g_kernel },
        { "@I", g_initrd }, { "@T", g_dir },
    };
    size_t cap = strlen(s) * 64 + 1; /* tags are >= 2 chars, values < 128 */
    char *out = malloc(cap);
    assert_non_null(out);
    size_t k = 0;
    while (*s) {
        size_t i;
        for (i = 0; i < sizeof(subst) / sizeof(subst[0]); i++) {
            size_t n = strlen(subst[i].tag);
            if (strncmp(s, subst[i].tag, n) == 0) {
                size_t m = strlen(subst[i].val);
                assert_true(k + m < cap);
                memcpy(out + k, subst[i].val, m);
                k += m;
                s += n;
                break;
            }
        }
        if (i == sizeof(subst) / sizeof(subst[0]))
            out[k++] = *s++;
    }
    out[k] = '\0';
    return out;
}

struct run {
    struct vm_config cfg;
    enum cli_result rc;
    char err[512];
    char out[16384]; /* what went to the FILE */
};

#define MAX_ARGS 80

static void run_argv(struct run *r, int argc, char **argv)
{
    memset(r, 0, sizeof(*r));
    config_init(&r->cfg);
    FILE *f = fmemopen(r->out, sizeof(r->out), "w");
    assert_non_null(f);
    r->rc = cli_parse(argc, argv, &r->cfg, f, r->err, sizeof(r->err));
    fclose(f);
}

/* args is NULL-terminated; argv[0] is "nimbus". */
static void run_args(struct run *r, const char *const *args)
{
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = "nimbus";
    for (; *args; args++) {
        assert_true(argc <= MAX_ARGS);
        argv[argc++] = expand(*args);
    }
    argv[argc] = NULL;
    run_argv(r, argc, argv);
    for (int i = 1; i < argc; i++)
        free(argv[i]);
}

#define RUN(r, ...) run_args((r), (const char *const[]){ __VA_ARGS__, NULL })

static void expect_ok(struct run *r)
{
    if (r->rc != CLI_OK)
        fail_msg("expected CLI_OK, got %d: %s", r->rc, r->err);
}

static void done(struct run *r)
{
    config_free(&r->cfg);
}

/* ---- success paths ------------------------------------------------------- */

static void test_defaults(void **state)
{
    struct run r;
    RUN(&r, "--kernel", "@K");
    expect_ok(&r);
    assert_string_equal(r.cfg.kernel, g_kernel);
    assert_null(r.cfg.initramfs);
    assert_null(r.cfg.cmdline);
    assert_int_equal(r.cfg.cpus.boot, 1);
    assert_int_equal(r.cfg.cpus.max, 1);
    assert_int_equal(r.cfg.cpus.topology_set, 0);
    assert_int_equal(r.cfg.cpus.max_phys_bits, 46);
    assert_int_equal(r.cfg.memory.size, 512ull << 20);
    assert_int_equal(r.cfg.memory.shared, 0);
    assert_int_equal(r.cfg.memory.hugepages, 0);
    assert_int_equal(r.cfg.memory.prefault, 0);
    assert_int_equal(r.cfg.memory.mergeable, 0);
    assert_int_equal(r.cfg.memory.thp, 1);
    assert_int_equal(r.cfg.serial.mode, CHR_NULL);
    assert_int_equal(r.cfg.console.mode, CHR_TTY); /* Cloud Hypervisor's default */
    assert_int_equal(r.cfg.ndisks, 0);
    assert_int_equal(r.cfg.ndevices, 0);
    assert_int_equal(r.cfg.rng.enabled, 0);
    assert_null(r.cfg.rng.src);
    assert_int_equal(r.cfg.verbosity, 0);
    assert_null(r.cfg.log_file);
    assert_null(r.cfg.plugin_dir);
    assert_string_equal(r.err, "");
    assert_string_equal(r.out, "");
    done(&r);
}

static void test_payload_both_forms(void **state)
{
    struct run r;
    RUN(&r, "--kernel=@K", "--initramfs", "@I", "--cmdline", "console=ttyS0 quiet");
    expect_ok(&r);
    assert_string_equal(r.cfg.kernel, g_kernel);
    assert_string_equal(r.cfg.initramfs, g_initrd);
    assert_string_equal(r.cfg.cmdline, "console=ttyS0 quiet");
    done(&r);

    RUN(&r, "--kernel", "@K", "--initramfs=@I", "--cmdline=-s init=/bin/sh");
    expect_ok(&r);
    assert_string_equal(r.cfg.initramfs, g_initrd);
    assert_string_equal(r.cfg.cmdline, "-s init=/bin/sh");
    done(&r);

    /* An empty command line is legitimate. */
    RUN(&r, "--cmdline", "", "--kernel", "@K");
    expect_ok(&r);
    assert_string_equal(r.cfg.cmdline, "");
    done(&r);
}

static void test_cpus(void **state)
{
    struct run r;
    RUN(&r, "--kernel", "@K", "--cpus", "boot=4");
    expect_ok(&r);
    assert_int_equal(r.cfg.cpus.boot, 4);
    assert_int_equal(r.cfg.cpus.max, 4);
    assert_int_equal(r.cfg.cpus.threads_per_core, 1);
    assert_int_equal(r.cfg.cpus.cores_per_die, 4);
    assert_int_equal(r.cfg.cpus.dies_per_package, 1);
    assert_int_equal(r.cfg.cpus.packages, 1);
    assert_int_equal(r.cfg.cpus.topology_set, 0);
    done(&r);

    /* vCPUs above boot come later through vm.resize (CPU hotplug). */
    RUN(&r, "--kernel", "@K", "--cpus", "boot=2,max=4");
    expect_ok(&r);
    assert_int_equal(r.cfg.cpus.boot, 2);
    assert_int_equal(r.cfg.cpus.max, 4);
    assert_int_equal(r.cfg.cpus.cores_per_die, 4);
    done(&r);

    RUN(&r, "--kernel", "@K", "--cpus=boot=8,max=8,topology=2:2:1:2,max_phys_bits=40");
    expect_ok(&r);
    assert_int_equal(r.cfg.cpus.boot, 8);
    assert_int_equal(r.cfg.cpus.max, 8);
    assert_int_equal(r.cfg.cpus.threads_per_core, 2);
    assert_int_equal(r.cfg.cpus.cores_per_die, 2);
    assert_int_equal(r.cfg.cpus.dies_per_package, 1);
    assert_int_equal(r.cfg.cpus.packages, 2);
    assert_int_equal(r.cfg.cpus.topology_set, 1);
    assert_int_equal(r.cfg.cpus.max_phys_bits, 40);
    done(&r);

    /* Blanks around sub-options are tolerated, as in Cloud Hypervisor. */
    RUN(&r, "--kernel", "@K", "--cpus", " boot=1024 , max_phys_bits=52 ");
    expect_ok(&r);
    assert_int_equal(r.cfg.cpus.boot, 1024);
    assert_int_equal(r.cfg.cpus.max_phys_bits, 52);
    done(&r);

    /* An empty value keeps the defaults, like Cloud Hypervisor. */
    RUN(&r, "--kernel", "@K", "--cpus", "");
    expect_ok(&r);
    assert_int_equal(r.cfg.cpus.boot, 1);
    done(&r);
}

static void test_memory(void **state)
{
    struct run r;
    RUN(&r, "--kernel", "@K", "--memory",
        "size=1G,shared=on,hugepages=on,prefault=true,mergeable=ON,thp=off");
    expect_ok(&r);
    assert_int_equal(r.cfg.memory.size, 1ull << 30);
    assert_int_equal(r.cfg.memory.shared, 1);
    assert_int_equal(r.cfg.memory.hugepages, 1);
    assert_int_equal(r.cfg.memory.prefault, 1);
    assert_int_equal(r.cfg.memory.mergeable, 1);
    assert_int_equal(r.cfg.memory.thp, 0);
    done(&r);

    RUN(&r, "--kernel", "@K", "--memory=size=64m,shared=false,thp=on");
    expect_ok(&r);
    assert_int_equal(r.cfg.memory.size, 64ull << 20);
    assert_int_equal(r.cfg.memory.shared, 0);
    assert_int_equal(r.cfg.memory.thp, 1);
    done(&r);

    /* The documented minimum is accepted, in bytes. */
    RUN(&r, "--kernel", "@K", "--memory", "size=33554432");
    expect_ok(&r);
    assert_int_equal(r.cfg.memory.size, 32ull << 20);
    done(&r);

    /* Exactly the largest size 46 physical address bits can hold. */
    RUN(&r, "--kernel", "@K", "--memory", "size=65535G");
    expect_ok(&r);
    assert_int_equal(r.cfg.memory.size, 65535ull << 30);
    done(&r);
}

static void test_serial_console(void **state)
{
    static const struct { const char *arg; enum chr_mode mode; } modes[] = {
        { "off", CHR_OFF }, { "null", CHR_NULL }, { "tty", CHR_TTY }, { "pty", CHR_PTY },
    };
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        struct run r;
        RUN(&r, "--kernel", "@K", "--serial", modes[i].arg);
        expect_ok(&r);
        assert_int_equal(r.cfg.serial.mode, modes[i].mode);
        assert_null(r.cfg.serial.path);
        done(&r);
        RUN(&r, "--kernel", "@K", "--console", modes[i].arg);
        expect_ok(&r);
        assert_int_equal(r.cfg.console.mode, modes[i].mode);
        done(&r);
    }

    struct run r;
    RUN(&r, "--kernel", "@K", "--serial=file=@T/serial.log", "--console", "file=@T/con.log");
    expect_ok(&r);
    assert_int_equal(r.cfg.serial.mode, CHR_FILE);
    assert_int_equal(r.cfg.console.mode, CHR_FILE);
    char want[192];
    snprintf(want, sizeof(want), "%s/serial.log", g_dir);
    assert_string_equal(r.cfg.serial.path, want);
    snprintf(want, sizeof(want), "%s/con.log", g_dir);
    assert_string_equal(r.cfg.console.path, want);
    done(&r);

    /* A bare file name lives in the current directory, which exists. */
    RUN(&r, "--kernel", "@K", "--serial", "file=serial.log");
    expect_ok(&r);
    assert_string_equal(r.cfg.serial.path, "serial.log");
    done(&r);

    RUN(&r, "--kernel", "@K", "--serial", "tty", "--console", "null");
    expect_ok(&r);
    done(&r);

    /* --serial tty alone: the terminal is the serial port, the console goes off. */
    RUN(&r, "--kernel", "@K", "--serial", "tty");
    expect_ok(&r);
    assert_int_equal(r.cfg.console.mode, CHR_OFF);
    done(&r);
    RUN(&r, "--kernel", "@K");
    expect_ok(&r);
    assert_int_equal(r.cfg.console.mode, CHR_TTY);
    done(&r);
}

static void test_disks(void **state)
{
    struct run r;
    RUN(&r, "--kernel", "@K", "--disk", "path=@D0",
        "path=@D1,readonly=on,direct=on,num_queues=4,queue_size=64,id=data,serial=ABC123",
        "--disk=path=@D0,id=again", "--serial", "tty");
    expect_ok(&r);
    assert_int_equal(r.cfg.ndisks, 3);

    const struct disk_config *d = &r.cfg.disks[0];
    assert_string_equal(d->path, g_disk0);
    assert_int_equal(d->readonly, 0);
    assert_int_equal(d->direct, 0);
    assert_int_equal(d->num_queues, 1);
    assert_int_equal(d->queue_size, 256);
    assert_null(d->id);
    assert_null(d->serial);

    d = &r.cfg.disks[1];
    assert_string_equal(d->path, g_disk1);
    assert_int_equal(d->readonly, 1);
    assert_int_equal(d->direct, 1);
    assert_int_equal(d->num_queues, 4);
    assert_int_equal(d->queue_size, 64);
    assert_string_equal(d->id, "data");
    assert_string_equal(d->serial, "ABC123");

    d = &r.cfg.disks[2];
    assert_string_equal(d->path, g_disk0);
    assert_string_equal(d->id, "again");
    /* The disk list ended at the next option, which was parsed normally. */
    assert_int_equal(r.cfg.serial.mode, CHR_TTY);
    done(&r);
}

/* image_type / backing_files (Cloud Hypervisor's keys): absent means probe,
 * and a backing file is only followed for an explicit qcow2. */
static void test_disk_image_type(void **state)
{
    (void)state;
    struct run r;
    RUN(&r, "--kernel", "@K", "--disk", "path=@D0", "path=@D1,image_type=raw",
        "path=@D0,image_type=qcow2,id=q", "path=@D1,image_type=qcow2,backing_files=on,id=b",
        "path=@D0,image_type=qcow2,backing_files=off,id=c");
    expect_ok(&r);
    assert_int_equal(r.cfg.ndisks, 5);
    assert_int_equal(r.cfg.disks[0].image_type, DISK_IMAGE_PROBE);
    assert_int_equal(r.cfg.disks[0].backing_files, 0);
    assert_int_equal(r.cfg.disks[1].image_type, DISK_IMAGE_RAW);
    assert_int_equal(r.cfg.disks[2].image_type, DISK_IMAGE_QCOW2);
    assert_int_equal(r.cfg.disks[2].backing_files, 0);
    assert_int_equal(r.cfg.disks[3].image_type, DISK_IMAGE_QCOW2);
    assert_int_equal(r.cfg.disks[3].backing_files, 1);
    assert_int_equal(r.cfg.disks[4].backing_files, 0);
    done(&r);
}

/* num_queues left out: one queue per boot vCPU, whatever the option order,
 * up to the 16 the virtio_blk plugin serves; an explicit value stays. */
static void test_disk_default_queues_follow_cpus(void **state)
{
    (void)state;
    struct run r;
    RUN(&r, "--kernel", "@K", "--disk", "path=@D0", "path=@D1,num_queues=1",
        "--cpus", "boot=4");
    expect_ok(&r);
    assert_int_equal(r.cfg.disks[0].num_queues, 4);
    assert_int_equal(r.cfg.disks[1].num_queues, 1);
    done(&r);

    RUN(&r, "--cpus", "boot=40", "--kernel", "@K", "--disk", "path=@D0");
    expect_ok(&r);
    assert_int_equal(r.cfg.disks[0].num_queues, 16);
    done(&r);
}

static void test_disk_limit(void **state)
{
    char *argv[CONFIG_MAX_DISKS + 6];
    char *path = expand("path=@D0");
    char *kernel = expand("@K");
    int argc = 0;
    argv[argc++] = "nimbus";
    argv[argc++] = "--kernel";
    argv[argc++] = kernel;
    argv[argc++] = "--disk";
    for (int i = 0; i < CONFIG_MAX_DISKS; i++)
        argv[argc++] = path;
    argv[argc] = NULL;

    struct run r;
    run_argv(&r, argc, argv);
    expect_ok(&r);
    assert_int_equal(r.cfg.ndisks, CONFIG_MAX_DISKS);
    done(&r);

    argv[argc++] = path;
    argv[argc] = NULL;
    run_argv(&r, argc, argv);
    assert_int_equal(r.rc, CLI_ERROR);
    assert_non_null(strstr(r.err, "--disk: too many disks (at most 16)"));
    done(&r);
    free(path);
    free(kernel);
}

static uint32_t ip4(const char *s)
{
    struct in_addr a;
    assert_int_equal(inet_pton(AF_INET, s, &a), 1);
    return a.s_addr;
}

static void assert_mac(const uint8_t *mac, uint8_t a, uint8_t b, uint8_t c, uint8_t d,
                       uint8_t e, uint8_t f)
{
    const uint8_t want[6] = { a, b, c, d, e, f };
    assert_memory_equal(mac, want, 6);
}

static void test_nets(void **state)
{
    (void)state;
    struct run r;
    /* Cloud Hypervisor's test suite form: an empty tap= creates one. */
    RUN(&r, "--kernel", "@K", "--net",
        "tap=,mac=12:34:56:78:9a:bc,ip=192.168.249.1,mask=255.255.255.128",
        "tap=tap0,host_mac=52:54:00:AB:cd:EF,mtu=9000,num_queues=4,queue_size=1024,id=n1,"
        "offload_tso=off,offload_ufo=false,offload_csum=OFF,ip=10.0.0.1",
        "--net=fd=[3,4,5],id=n2,queue_size=64", "--net", "fd=7,user=off,mtu=68",
        "--net", "user=on,hostfwd=[tcp:127.0.0.1:2222-:22,udp::5353-10.0.2.15:53],mac=52:00:00:00:00:01",
        "user=on,num_queues=2,hostfwd=:0.0.0.0:8080-:80,mtu=65535", "", "--serial", "tty");
    expect_ok(&r);
    assert_int_equal(r.cfg.nnets, 7);
    assert_int_equal(r.cfg.serial.mode, CHR_TTY);

    const struct net_config *n = &r.cfg.nets[0];
    assert_null(n->tap);
    assert_true(n->mac_given);
    assert_mac(n->mac, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc);
    assert_true(n->ip_given);
    assert_true(n->mask_given);
    assert_int_equal(n->ip, ip4("192.168.249.1"));
    assert_int_equal(n->mask, ip4("255.255.255.128"));
    assert_false(n->host_mac_given);
    assert_int_equal(n->mtu, 0);
    assert_int_equal(n->num_queues, 2);
    assert_int_equal(n->queue_size, 256);
    assert_int_equal(n->nfds, 0);
    assert_null(n->id);
    assert_true(n->offload_tso && n->offload_ufo && n->offload_csum);
    assert_false(n->user);
    assert_int_equal(n->nhostfwd, 0);

    n = &r.cfg.nets[1];
    assert_string_equal(n->tap, "tap0");
    assert_false(n->mac_given);
    assert_true(n->host_mac_given);
    assert_mac(n->host_mac, 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef);
    assert_int_equal(n->mtu, 9000);
    assert_int_equal(n->num_queues, 4);
    assert_int_equal(n->queue_size, 1024);
    assert_string_equal(n->id, "n1");
    assert_false(n->offload_tso || n->offload_ufo || n->offload_csum);
    /* ip= alone gets Cloud Hypervisor's /24. */
    assert_int_equal(n->ip, ip4("10.0.0.1"));
    assert_int_equal(n->mask, ip4("255.255.255.0"));
    assert_false(n->mask_given);

    n = &r.cfg.nets[2];
    assert_int_equal(n->nfds, 3);
    assert_int_equal(n->fds[0], 3);
    assert_int_equal(n->fds[1], 4);
    assert_int_equal(n->fds[2], 5);
    assert_int_equal(n->num_queues, 6); /* two per fd */
    assert_int_equal(n->queue_size, 64);
    assert_null(n->tap);

    n = &r.cfg.nets[3];
    assert_int_equal(n->nfds, 1);
    assert_int_equal(n->fds[0], 7);
    assert_int_equal(n->num_queues, 2);
    assert_int_equal(n->mtu, 68);
    assert_false(n->user);

    n = &r.cfg.nets[4];
    assert_true(n->user);
    assert_int_equal(n->num_queues, 2);
    assert_int_equal(n->nhostfwd, 2);
    assert_string_equal(n->hostfwd[0], "tcp:127.0.0.1:2222-:22");
    assert_string_equal(n->hostfwd[1], "udp::5353-10.0.2.15:53");
    assert_mac(n->mac, 0x52, 0, 0, 0, 0, 1);

    n = &r.cfg.nets[5];
    assert_true(n->user);
    assert_int_equal(n->nhostfwd, 1);
    assert_string_equal(n->hostfwd[0], ":0.0.0.0:8080-:80");
    assert_int_equal(n->mtu, 65535);

    /* An empty --net is a created tap with every default. */
    n = &r.cfg.nets[6];
    assert_null(n->tap);
    assert_false(n->user || n->mac_given || n->ip_given);
    assert_int_equal(n->num_queues, 2);
    done(&r);

    /* fd= with a matching num_queues, the largest lists, a single hostfwd rule. */
    RUN(&r, "--kernel", "@K", "--net",
        "fd=[10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25],num_queues=32",
        "num_queues=32,tap=a.b_c-D0123456",
        "user=on,hostfwd=[tcp::1-:1,tcp::2-:2,tcp::3-:3,tcp::4-:4,tcp::5-:5,tcp::6-:6,"
        "tcp::7-:7,tcp::8-:8,tcp::9-:9,tcp::10-:10,tcp::11-:11,tcp::12-:12,tcp::13-:13,"
        "tcp::14-:14,tcp::15-:15,udp:255.255.255.255:65535-1.2.3.4:65535]");
    expect_ok(&r);
    assert_int_equal(r.cfg.nets[0].nfds, 16);
    assert_int_equal(r.cfg.nets[0].fds[15], 25);
    assert_int_equal(r.cfg.nets[0].num_queues, 32);
    assert_string_equal(r.cfg.nets[1].tap, "a.b_c-D0123456");
    assert_int_equal(r.cfg.nets[1].num_queues, 32);
    assert_int_equal(r.cfg.nets[2].nhostfwd, 16);
    done(&r);

    /* The tap name may be quoted; an empty one with fd= means "the fds' tap". */
    RUN(&r, "--kernel", "@K", "--net", "tap=\"t1\",mask=255.255.255.252,ip=10.1.1.1",
        "tap=,fd=[30,31]");
    expect_ok(&r);
    assert_string_equal(r.cfg.nets[0].tap, "t1");
    assert_int_equal(r.cfg.nets[0].mask, ip4("255.255.255.252"));
    assert_null(r.cfg.nets[1].tap);
    assert_int_equal(r.cfg.nets[1].num_queues, 4);
    done(&r);
}

static void test_net_limit(void **state)
{
    (void)state;
    char *argv[CONFIG_MAX_NETS + 6];
    char *kernel = expand("@K");
    int argc = 0;
    argv[argc++] = "nimbus";
    argv[argc++] = "--kernel";
    argv[argc++] = kernel;
    argv[argc++] = "--net";
    for (int i = 0; i < CONFIG_MAX_NETS; i++)
        argv[argc++] = "user=on";
    argv[argc] = NULL;
    struct run r;
    run_argv(&r, argc, argv);
    expect_ok(&r);
    assert_int_equal(r.cfg.nnets, CONFIG_MAX_NETS);
    done(&r);
    argv[argc++] = "mac=52:54:00:00:00:17";
    argv[argc] = NULL;
    run_argv(&r, argc, argv);
    assert_int_equal(r.rc, CLI_ERROR);
    assert_non_null(strstr(r.err, "--net: too many networks (at most 16), at "
                                  "'mac=52:54:00:00:00:17'"));
    done(&r);
    free(kernel);
}

static void test_rng(void **state)
{
    struct run r;
    RUN(&r, "--kernel", "@K", "--rng");
    expect_ok(&r);
    assert_int_equal(r.cfg.rng.enabled, 1);
    assert_string_equal(r.cfg.rng.src, "/dev/urandom");
    done(&r);

    /* The optional value is not taken from the next option. */
    RUN(&r, "--rng", "--kernel", "@K");
    expect_ok(&r);
    assert_int_equal(r.cfg.rng.enabled, 1);
    assert_string_equal(r.cfg.rng.src, "/dev/urandom");
    done(&r);

    RUN(&r, "--kernel", "@K", "--rng", "src=@I");
    expect_ok(&r);
    assert_string_equal(r.cfg.rng.src, g_initrd);
    done(&r);

    RUN(&r, "--kernel", "@K", "--rng=src=@K");
    expect_ok(&r);
    assert_string_equal(r.cfg.rng.src, g_kernel);
    done(&r);
}

static void test_devices(void **state)
{
    struct run r;
    RUN(&r, "--kernel", "@K", "--device", "plugin=serial8250,port=0x3f8,irq=4",
        "plugin=/opt/p/x.so", "--device=a=1,plugin=\"quoted\",list=[1,2],s=\"x,y\",flag",
        "--cmdline", "c");
    expect_ok(&r);
    assert_int_equal(r.cfg.ndevices, 3);
    assert_string_equal(r.cfg.devices[0].plugin, "serial8250");
    assert_string_equal(r.cfg.devices[0].options, "port=0x3f8,irq=4");
    assert_string_equal(r.cfg.devices[1].plugin, "/opt/p/x.so");
    assert_string_equal(r.cfg.devices[1].options, "");
    /* plugin= may come anywhere; the rest is passed through as written. */
    assert_string_equal(r.cfg.devices[2].plugin, "quoted");
    assert_string_equal(r.cfg.devices[2].options, "a=1,list=[1,2],s=\"x,y\",flag");
    assert_string_equal(r.cfg.cmdline, "c");
    done(&r);
}

/* --device help lists plugins: no --kernel needed, and a --plugin-dir that
 * comes after it still counts. */
static void test_device_help(void **state)
{
    struct run r;
    RUN(&r, "--device", "help", "--plugin-dir", "/opt/plugins");
    assert_int_equal(r.rc, CLI_LIST_PLUGINS);
    assert_string_equal(r.cfg.plugin_dir, "/opt/plugins");
    assert_int_equal(r.cfg.ndevices, 0);
    done(&r);
    /* Only the whole value "help": a plugin called help-me is a plugin. */
    RUN(&r, "--kernel", "@K", "--device", "plugin=help-me");
    expect_ok(&r);
    done(&r);
    /* A bad token after it is still reported. */
    RUN(&r, "--device", "help", "--cpus", "boot=0");
    assert_int_equal(r.rc, CLI_ERROR);
    done(&r);
}

static void test_landlock(void **state)
{
    struct run r;
    RUN(&r, "--kernel", "@K", "--landlock", "--landlock-rules", "path=/a,access=r",
        "path=/b,access=rw", "--landlock-rules=access=w,path=/c");
    expect_ok(&r);
    assert_int_equal(r.cfg.landlock, 1);
    assert_int_equal(r.cfg.nlandlock_rules, 3);
    assert_string_equal(r.cfg.landlock_rules[0].path, "/a");
    assert_int_equal(r.cfg.landlock_rules[0].access, LANDLOCK_RULE_READ);
    assert_int_equal(r.cfg.landlock_rules[1].access, LANDLOCK_RULE_READ | LANDLOCK_RULE_WRITE);
    assert_string_equal(r.cfg.landlock_rules[2].path, "/c");
    assert_int_equal(r.cfg.landlock_rules[2].access, LANDLOCK_RULE_WRITE);
    done(&r);
    /* Each bad token named. */
    static const char *const bad[][2] = {
        {"path=/a,access=x", "'x'"},
        {"path=/a", "missing access="},
        {"access=r", "missing path="},
        {"path=/a,access=r,mode=1", "mode"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        RUN(&r, "--kernel", "@K", "--landlock-rules", bad[i][0]);
        assert_int_equal(r.rc, CLI_ERROR);
        if (!strstr(r.err, bad[i][1]) || !strstr(r.err, "--landlock-rules"))
            fail_msg("'%s': %s", bad[i][0], r.err);
        done(&r);
    }
    RUN(&r, "--kernel", "@K", "--landlock=yes");
    assert_int_equal(r.rc, CLI_ERROR);
    done(&r);
}

static void test_device_limit(void **state)
{
    char *argv[CONFIG_MAX_DEVICES + 6];
    char *kernel = expand("@K");
    int argc = 0;
    argv[argc++] = "nimbus";
    argv[argc++] = "--kernel";
    argv[argc++] = kernel;
    for (int i = 0; i <= CONFIG_MAX_DEVICES; i++)
        argv[argc++] = i == 0 ? "--device" : "plugin=p";
    argv[argc] = NULL;

    struct run r;
    run_argv(&r, argc, argv);
    expect_ok(&r);
    assert_int_equal(r.cfg.ndevices, CONFIG_MAX_DEVICES);
    done(&r);

    argv[argc++] = "plugin=one-too-many";
    argv[argc] = NULL;
    run_argv(&r, argc, argv);
    assert_int_equal(r.rc, CLI_ERROR);
    assert_non_null(strstr(r.err, "--device: too many devices (at most 32), at "
                                  "'plugin=one-too-many'"));
    done(&r);
    free(kernel);
}

static void test_verbosity_logging(void **state)
{
    struct run r;
    RUN(&r, "-v", "--kernel", "@K", "-vv", "--log-file", "@T/nimbus.log",
        "--plugin-dir=@T");
    expect_ok(&r);
    assert_int_equal(r.cfg.verbosity, 3);
    char want[192];
    snprintf(want, sizeof(want), "%s/nimbus.log", g_dir);
    assert_string_equal(r.cfg.log_file, want);
    assert_string_equal(r.cfg.plugin_dir, g_dir);
    done(&r);

    RUN(&r, "--kernel", "@K", "-vvv");
    expect_ok(&r);
    assert_int_equal(r.cfg.verbosity, 3);
    done(&r);

    RUN(&r, "--kernel", "@K", "-v");
    expect_ok(&r);
    assert_int_equal(r.cfg.verbosity, 1);
    done(&r);
}

/* ---- help and version ----------------------------------------------------- */

static void test_help(void **state)
{
    static const char *const forms[] = { "--help", "-h" };
    static const char *const must_mention[] = {
        "--kernel <PATH>", "--initramfs <PATH>", "--cmdline <STRING>",
        "--cpus boot=<boot_vcpus>,max=<max_vcpus>,topology=",
        "max_phys_bits=<bits>", "default: boot=1,max_phys_bits=46",
        "--memory size=<guest_memory_size>,shared=on|off,hugepages=on|off,"
        "prefault=on|off,mergeable=on|off,thp=on|off",
        "size=512M", "at least 32 MiB",
        "--serial off|null|tty|pty|file=<path>", "--console off|null|tty|pty|file=<path>",
        "--disk path=<disk_image_path>,readonly=on|off,direct=on|off,"
        "num_queues=<n>,queue_size=<size>,id=<device_id>,serial=<serial_number>",
        "num_queues=<boot_vcpus>,queue_size=256",
        "--net tap=<if_name>,ip=<ip_addr>,mask=<net_mask>,mac=<mac_addr>,"
        "host_mac=<mac_addr>,mtu=<mtu>,num_queues=<n>,queue_size=<size>,"
        "fd=[<fd1>,<fd2>...],id=<device_id>,offload_tso=on|off,offload_ufo=on|off,"
        "offload_csum=on|off [multiple]",
        "--net user=on,hostfwd=[<rule>,...]", "vmtapN", "CAP_NET_ADMIN", "mtu 68-65535",
        "num_queues even, 2-32", "64-1024", "10.0.2.15",
        "[tcp|udp]:[hostaddr]:hostport-\n          [guestaddr]:guestport",
        "default: num_queues=2,queue_size=256,offload_tso=on",
        "--rng [src=<entropy_source_path>]", "src=/dev/urandom",
        "--device plugin=<path_or_name>", "-v", "--log-file <PATH>",
        "--plugin-dir <DIR>", "-h, --help", "-V, --version",
        "--plugin-dir, then $NIMBUS_PLUGIN_DIR,\nthen <binary dir>/plugins, then "
        "<binary dir>/../lib/nimbus/plugins",
        "128+N when ended by signal N",
        "Exit status: 0", "2 on a bad command line",
    };
    for (size_t f = 0; f < 2; f++) {
        struct run r;
        RUN(&r, forms[f]);
        assert_int_equal(r.rc, CLI_EXIT_OK);
        assert_string_equal(r.err, "");
        for (size_t i = 0; i < sizeof(must_mention) / sizeof(must_mention[0]); i++)
            if (!strstr(r.out, must_mention[i]))
                fail_msg("help does not mention '%s'", must_mention[i]);
        done(&r);
    }

    /* Help wins over problems that are only found after parsing. */
    struct run r;
    RUN(&r, "--kernel", "@T/missing", "--help", "--bogus");
    assert_int_equal(r.rc, CLI_EXIT_OK);
    assert_non_null(strstr(r.out, "Usage: nimbus"));
    done(&r);

    /* A NULL stream is allowed. */
    char *argv[] = { "nimbus", "--help", NULL };
    struct vm_config cfg;
    config_init(&cfg);
    assert_int_equal(cli_parse(2, argv, &cfg, NULL, NULL, 0), CLI_EXIT_OK);
    config_free(&cfg);
}

/* Kata starts Cloud Hypervisor as `--api-socket PATH [-v] [--seccomp false]`. */
static void test_kata_launch_line(void **state)
{
    (void)state;
    struct run r;
    RUN(&r, "--api-socket", "/tmp/nimbus-test-kata.sock", "-v", "--seccomp", "false");
    expect_ok(&r);
    assert_null(r.cfg.kernel);
    assert_string_equal(r.cfg.api_socket_path, "/tmp/nimbus-test-kata.sock");
    assert_string_equal(r.cfg.seccomp, "false");
    done(&r);
}

static void test_version(void **state)
{
    static const char *const forms[] = { "--version", "-V" };
    for (size_t f = 0; f < 2; f++) {
        struct run r;
        RUN(&r, forms[f]);
        assert_int_equal(r.rc, CLI_EXIT_OK);
        assert_string_equal(r.out, "nimbus " NIMBUS_VERSION " (Cloud Hypervisor API v"
                                   CLI_CH_API_VERSION ")\n");
        done(&r);
    }
}

/* ---- errors ----------------------------------------------------------------- */

struct err_case {
    const char *args[8];
    const char *want; /* substring of the message, placeholders expanded */
};

static const struct err_case err_cases[] = {
    /* argv shape */
    { { "--kernel", "@K", "--foo" }, "unknown option '--foo'" },
    { { "--kernel", "@K", "--foo=bar" }, "unknown option '--foo'" },
    { { "--kernel", "@K", "--kern", "@K" }, "unknown option '--kern'" },
    { { "-x" }, "unknown option '-x'" },
    { { "--kernel", "@K", "--seccomp", "maybe" }, "--seccomp: expected true, false, log or errno, got 'maybe'" },
    { { "-vx" }, "unknown option '-vx'" },
    { { "-" }, "unknown option '-'" },
    { { "--" }, "unknown option '--'" },
    { { "-hV" }, "unknown option '-hV'" },
    { { "stray" }, "unexpected argument 'stray'" },
    { { "" }, "unexpected argument ''" },
    { { "--kernel" }, "--kernel: missing value" },
    { { "--kernel", "--cpus", "boot=1" }, "--kernel: missing value" },
    { { "--kernel=" }, "--kernel: empty value" },
    { { "--kernel", "@K", "--kernel", "@K" }, "--kernel: given more than once" },
    { { "--kernel", "@K", "--cmdline", "a", "--cmdline=b" }, "--cmdline: given more than once" },
    { { "--kernel", "@K", "--cpus", "boot=1", "--cpus", "boot=1" },
      "--cpus: given more than once" },
    { { "--kernel", "@K", "--rng", "--rng" }, "--rng: given more than once" },
    { { "--kernel", "@K", "--serial", "tty", "--serial", "tty" },
      "--serial: given more than once" },
    { { "--help=yes" }, "--help: takes no value, got 'yes'" },
    { { "--cpus", "boot=1" }, "--kernel is required" },
    { { 0 }, "--kernel is required" },
    /* payload files */
    { { "--kernel", "@T/nope" }, "--kernel: cannot read '@T/nope': No such file or directory" },
    { { "--kernel", "@T" }, "--kernel: '@T' is a directory" },
    { { "--kernel", "@K", "--initramfs", "@T/nope" }, "--initramfs: cannot read '@T/nope'" },
    { { "--kernel", "@K", "--initramfs", "" }, "--initramfs: empty value" },
    /* --cpus */
    { { "--kernel", "@K", "--cpus", "boot=2,bogus=1" },
      "--cpus: unknown key 'bogus' in 'boot=2,bogus=1'" },
    { { "--kernel", "@K", "--cpus", "boot=0" }, "--cpus: boot must be between 1 and 1024, got '0'" },
    { { "--kernel", "@K", "--cpus", "boot=1025" }, "boot must be between 1 and 1024, got '1025'" },
    { { "--kernel", "@K", "--cpus", "boot=two" }, "boot must be between 1 and 1024, got 'two'" },
    { { "--kernel", "@K", "--cpus", "boot=-1" }, "got '-1'" },
    { { "--kernel", "@K", "--cpus", "boot=0x2" }, "got '0x2'" },
    { { "--kernel", "@K", "--cpus", "boot=99999999999999999999" }, "got '99999999999999999999'" },
    { { "--kernel", "@K", "--cpus", "boot=2,max=1" },
      "--cpus: max (1) must not be less than boot (2)" },
    { { "--kernel", "@K", "--cpus", "boot=4,topology=2:2:2:1" },
      "--cpus: topology '2:2:2:1' describes 8 vCPUs but max is 4" },
    { { "--kernel", "@K", "--cpus", "topology=1:1:1" }, "--cpus: bad topology '1:1:1'" },
    { { "--kernel", "@K", "--cpus", "topology=1:1:1:1:1" }, "bad topology '1:1:1:1:1'" },
    { { "--kernel", "@K", "--cpus", "topology=0:1:1:1" }, "bad topology '0:1:1:1'" },
    { { "--kernel", "@K", "--cpus", "topology=1::1:1" }, "bad topology '1::1:1'" },
    { { "--kernel", "@K", "--cpus", "topology=1:1:1:" }, "bad topology '1:1:1:'" },
    { { "--kernel", "@K", "--cpus", "topology=1:1:1:99999999999" }, "bad topology '1:1:1:99999999999'" },
    { { "--kernel", "@K", "--cpus", "topology=a:b:c:d" }, "bad topology 'a:b:c:d'" },
    { { "--kernel", "@K", "--cpus", "max_phys_bits=60" },
      "--cpus: max_phys_bits must be between 32 and 52, got '60'" },
    { { "--kernel", "@K", "--cpus", "boot" }, "--cpus: 'boot' needs a value (boot=...) in 'boot'" },
    { { "--kernel", "@K", "--cpus", "boot=" }, "--cpus: empty value for 'boot' in 'boot='" },
    { { "--kernel", "@K", "--cpus", "boot=1,boot=1" }, "--cpus: duplicate key 'boot'" },
    { { "--kernel", "@K", "--cpus", "boot=1,,max=1" }, "--cpus: empty sub-option in 'boot=1,,max=1'" },
    { { "--kernel", "@K", "--cpus", "boot=1," }, "--cpus: empty sub-option in 'boot=1,'" },
    { { "--kernel", "@K", "--cpus", "=1" }, "--cpus: missing key before '=' in '=1'" },
    { { "--kernel", "@K", "--cpus", "topology=[1" }, "--cpus: unbalanced '[' in 'topology=[1'" },
    { { "--kernel", "@K", "--cpus", "topology=1]" }, "--cpus: unbalanced ']' in 'topology=1]'" },
    { { "--kernel", "@K", "--cpus", "boot=\"1" }, "--cpus: unbalanced quotes in 'boot=\"1'" },
    /* --memory */
    { { "--kernel", "@K", "--memory", "size=lots" }, "--memory: bad size 'lots'" },
    { { "--kernel", "@K", "--memory", "size=0" }, "--memory: bad size '0'" },
    { { "--kernel", "@K", "--memory", "size=-1G" }, "--memory: bad size '-1G'" },
    { { "--kernel", "@K", "--memory", "size=1.5G" }, "--memory: bad size '1.5G'" },
    { { "--kernel", "@K", "--memory", "size=99999999999999999999" }, "bad size '99999999999999999999'" },
    { { "--kernel", "@K", "--memory", "size=16777216T" }, "bad size '16777216T'" },
    { { "--kernel", "@K", "--memory", "size=16M" },
      "--memory: size '16M' is below the minimum of 32 MiB" },
    { { "--kernel", "@K", "--memory", "size=33554433" },
      "--memory: size '33554433' is not a multiple of 4 KiB" },
    { { "--kernel", "@K", "--memory", "size=33M,hugepages=on" },
      "--memory: size must be a multiple of 2 MiB with hugepages=on" },
    { { "--kernel", "@K", "--memory", "shared=yes" },
      "--memory: shared must be on|off|true|false, got 'yes'" },
    { { "--kernel", "@K", "--memory", "thp=1" }, "--memory: thp must be on|off|true|false, got '1'" },
    { { "--kernel", "@K", "--memory", "size=1G,hotplug_size=100M" },
      "--memory: hotplug_size of 104857600 bytes is not a multiple of 128 MiB" },
    { { "--kernel", "@K", "--memory", "size=1G,hotplug_size=1G,hotplug_method=virtio-mem" },
      "--memory: hotplug_method=virtio-mem is not supported yet" },
    { { "--kernel", "@K", "--memory", "size=1G,hotplug_method=dimm" },
      "--memory: hotplug_method must be acpi or virtio-mem, got 'dimm'" },
    { { "--kernel", "@K", "--memory", "size=1G,hotplug_size=1G,hotplugged_size=2G" },
      "--memory: hotplugged_size of 2147483648 bytes is not a multiple of 128 MiB up to" },
    { { "--kernel", "@K", "--memory", "size=1G,hotplug_size=lots" },
      "--memory: bad hotplug_size 'lots'" },
    { { "--kernel", "@K", "--cpus", "max_phys_bits=32", "--memory", "size=1G,hotplug_size=1G" },
      "hotplug_size of 1073741824 bytes ends above what max_phys_bits=32 can address" },
    { { "--kernel", "@K", "--memory", "size=64T" },
      "--memory: size of 70368744177664 bytes is more than max_phys_bits=46 can address" },
    { { "--kernel", "@K", "--memory", "size=4G", "--cpus", "max_phys_bits=32" },
      "more than max_phys_bits=32 can address (3221225472 bytes)" },
    /* --serial / --console */
    { { "--kernel", "@K", "--serial", "socket=/tmp/s" },
      "--serial: 'socket=/tmp/s' is not supported yet" },
    { { "--kernel", "@K", "--console", "socket=/tmp/s" }, "--console: 'socket=/tmp/s' is not supported" },
    { { "--kernel", "@K", "--serial", "bogus" }, "--serial: unknown key 'bogus' in 'bogus'" },
    { { "--kernel", "@K", "--console", "iommu=on" }, "--console: unknown key 'iommu'" },
    { { "--kernel", "@K", "--serial", "tty,null" },
      "--serial: expected one of off|null|tty|pty|file=<path>, got 'tty,null'" },
    { { "--kernel", "@K", "--serial", "" }, "--serial: expected one of off|null|tty|pty|file=<path>, got ''" },
    { { "--kernel", "@K", "--serial", "tty=1" }, "--serial: 'tty' takes no value, got 'tty=1'" },
    { { "--kernel", "@K", "--serial", "file" }, "--serial: 'file' needs a value" },
    { { "--kernel", "@K", "--serial", "file=@T/nodir/out" },
      "--serial: directory of '@T/nodir/out' is not usable: No such file or directory" },
    { { "--kernel", "@K", "--console", "file=@K/out" },
      "--console: directory of '@K/out' is not a directory" },
    { { "--kernel", "@K", "--serial", "tty", "--console", "tty" },
      "--serial tty and --console tty cannot be used together" },
    /* --disk */
    { { "--kernel", "@K", "--disk" }, "--disk: missing value" },
    { { "--kernel", "@K", "--disk", "--rng" }, "--disk: missing value" },
    { { "--kernel", "@K", "--disk", "readonly=on" }, "--disk: missing path= in 'readonly=on'" },
    { { "--kernel", "@K", "--disk", "" }, "--disk: missing path= in ''" },
    { { "--kernel", "@K", "--disk=" }, "--disk: missing path= in ''" },
    { { "--kernel", "@K", "--disk", "path=@D0", "path=" }, "--disk: empty value for 'path'" },
    { { "--kernel", "@K", "--disk", "path=@T/nope" },
      "--disk: cannot open read-write '@T/nope': No such file or directory" },
    { { "--kernel", "@K", "--disk", "path=@T/nope,readonly=on" }, "--disk: cannot read '@T/nope'" },
    { { "--kernel", "@K", "--disk", "path=@T" }, "--disk: '@T' is a directory" },
    { { "--kernel", "@K", "--disk", "path=@D0,num_queues=0" },
      "--disk: num_queues must be between 1 and 64, got '0'" },
    { { "--kernel", "@K", "--disk", "path=@D0,queue_size=100" },
      "--disk: queue_size must be a power of two, got '100'" },
    { { "--kernel", "@K", "--disk", "path=@D0,queue_size=65536" },
      "--disk: queue_size must be between 2 and 32768, got '65536'" },
    { { "--kernel", "@K", "--disk", "path=@D0,serial=123456789012345678901" },
      "--disk: serial '123456789012345678901' is longer than 20 bytes" },
    { { "--kernel", "@K", "--disk", "path=@D0,id=a", "--disk", "path=@D1,id=a" },
      "--disk: duplicate id 'a'" },
    { { "--kernel", "@K", "--disk", "path=@D0,readonly=maybe" },
      "--disk: readonly must be on|off|true|false, got 'maybe'" },
    { { "--kernel", "@K", "--disk", "path=@D0,vhost_user=on" }, "--disk: unknown key 'vhost_user'" },
    { { "--kernel", "@K", "--disk", "path=@D0,image_type=vhdx" },
      "--disk: image_type=vhdx is not supported (raw or qcow2)" },
    { { "--kernel", "@K", "--disk", "path=@D0,image_type=vhd" },
      "--disk: image_type=vhd is not supported (raw or qcow2)" },
    { { "--kernel", "@K", "--disk", "path=@D0,image_type=QCOW2" },
      "--disk: unknown image_type 'QCOW2' (raw or qcow2)" },
    { { "--kernel", "@K", "--disk", "path=@D0,backing_files=yes" },
      "--disk: backing_files must be on|off|true|false, got 'yes'" },
    { { "--kernel", "@K", "--disk", "path=@D0,backing_files=on" },
      "--disk: backing_files=on needs image_type=qcow2 (a probed or raw image never "
      "follows a backing file)" },
    { { "--kernel", "@K", "--disk", "path=@D0,image_type=raw,backing_files=on" },
      "--disk: backing_files=on needs image_type=qcow2 (a probed or raw image never "
      "follows a backing file)" },
    { { "--kernel", "@K", "--disk", "path=@D0", "stray=1" }, "--disk: unknown key 'stray' in 'stray=1'" },
    /* --net */
    { { "--kernel", "@K", "--net" }, "--net: missing value" },
    { { "--kernel", "@K", "--net", "bogus=1" }, "--net: unknown key 'bogus' in 'bogus=1'" },
    { { "--kernel", "@K", "--net", "vhost_user=on" }, "--net: unknown key 'vhost_user'" },
    { { "--kernel", "@K", "--net", "tap" }, "--net: 'tap' needs a value (tap=...) in 'tap'" },
    { { "--kernel", "@K", "--net", "mac=" }, "--net: empty value for 'mac' in 'mac='" },
    { { "--kernel", "@K", "--net", "tap=a,tap=b" }, "--net: duplicate key 'tap'" },
    { { "--kernel", "@K", "--net", "mac=52:54:00:12:34" },
      "--net: mac '52:54:00:12:34' is not a MAC address (expected six hex pairs such as "
      "52:54:00:12:34:56)" },
    { { "--kernel", "@K", "--net", "mac=52:54:00:12:34:5g" }, "mac '52:54:00:12:34:5g' is not a MAC" },
    { { "--kernel", "@K", "--net", "mac=52-54-00-12-34-56" }, "mac '52-54-00-12-34-56' is not a MAC" },
    { { "--kernel", "@K", "--net", "mac=52:54:00:12:34:567" }, "mac '52:54:00:12:34:567' is not" },
    { { "--kernel", "@K", "--net", "mac=2:54:00:12:34:56" }, "mac '2:54:00:12:34:56' is not a MAC" },
    { { "--kernel", "@K", "--net", "mac=52:54:00:12:34:56:" }, "mac '52:54:00:12:34:56:' is not" },
    { { "--kernel", "@K", "--net", "mac=01:00:5e:00:00:01" },
      "--net: mac '01:00:5e:00:00:01' is a multicast address (the lowest bit of the first "
      "byte must be 0)" },
    { { "--kernel", "@K", "--net", "mac=ff:ff:ff:ff:ff:ff" }, "mac 'ff:ff:ff:ff:ff:ff' is a multicast" },
    { { "--kernel", "@K", "--net", "mac=00:00:00:00:00:00" }, "--net: mac '00:00:00:00:00:00' is all zeros" },
    { { "--kernel", "@K", "--net", "host_mac=03:00:00:00:00:01" },
      "--net: host_mac '03:00:00:00:00:01' is a multicast address" },
    { { "--kernel", "@K", "--net", "host_mac=xyz" }, "--net: host_mac 'xyz' is not a MAC address" },
    { { "--kernel", "@K", "--net", "ip=192.168.1" },
      "--net: ip '192.168.1' is not an IPv4 address (expected a dotted quad such as "
      "192.168.249.1)" },
    { { "--kernel", "@K", "--net", "ip=192.168.1.256" }, "ip '192.168.1.256' is not an IPv4" },
    { { "--kernel", "@K", "--net", "ip=192.168.01.1" }, "ip '192.168.01.1' is not an IPv4" },
    { { "--kernel", "@K", "--net", "ip=1.2.3.4.5" }, "ip '1.2.3.4.5' is not an IPv4" },
    { { "--kernel", "@K", "--net", "ip=1.2.3.-4" }, "ip '1.2.3.-4' is not an IPv4" },
    { { "--kernel", "@K", "--net", "ip=1.2.3.4x" }, "ip '1.2.3.4x' is not an IPv4" },
    { { "--kernel", "@K", "--net", "ip=1..3.4" }, "ip '1..3.4' is not an IPv4" },
    { { "--kernel", "@K", "--net", "ip=::1" }, "ip '::1' is not an IPv4" },
    { { "--kernel", "@K", "--net", "ip=0.0.0.0" }, "--net: ip '0.0.0.0' cannot be a host address" },
    { { "--kernel", "@K", "--net", "ip=224.0.0.1" }, "ip '224.0.0.1' cannot be a host address" },
    { { "--kernel", "@K", "--net", "ip=255.255.255.255" }, "ip '255.255.255.255' cannot be a host" },
    { { "--kernel", "@K", "--net", "ip=10.0.0.1,mask=255.0.255.0" },
      "--net: mask '255.0.255.0' is not a netmask (contiguous ones from the left, at least one)" },
    { { "--kernel", "@K", "--net", "ip=10.0.0.1,mask=0.0.0.0" }, "mask '0.0.0.0' is not a netmask" },
    { { "--kernel", "@K", "--net", "ip=10.0.0.1,mask=0.255.255.255" }, "mask '0.255.255.255' is not a netmask" },
    { { "--kernel", "@K", "--net", "ip=10.0.0.1,mask=24" },
      "--net: mask '24' is not a dotted quad such as 255.255.255.0" },
    { { "--kernel", "@K", "--net", "mask=255.255.255.0" },
      "--net: mask= needs ip= in 'mask=255.255.255.0'" },
    { { "--kernel", "@K", "--net", "mtu=67" }, "--net: mtu must be between 68 and 65535, got '67'" },
    { { "--kernel", "@K", "--net", "mtu=65536" }, "mtu must be between 68 and 65535, got '65536'" },
    { { "--kernel", "@K", "--net", "mtu=1500b" }, "mtu must be between 68 and 65535, got '1500b'" },
    { { "--kernel", "@K", "--net", "num_queues=3" },
      "--net: num_queues must be even (an rx and a tx queue per pair), got '3'" },
    { { "--kernel", "@K", "--net", "num_queues=0" }, "--net: num_queues must be between 2 and 32, got '0'" },
    { { "--kernel", "@K", "--net", "num_queues=34" }, "num_queues must be between 2 and 32, got '34'" },
    { { "--kernel", "@K", "--net", "queue_size=32" },
      "--net: queue_size must be between 64 and 1024, got '32'" },
    { { "--kernel", "@K", "--net", "queue_size=2048" }, "queue_size must be between 64 and 1024" },
    { { "--kernel", "@K", "--net", "queue_size=100" }, "--net: queue_size must be a power of two, got '100'" },
    { { "--kernel", "@K", "--net", "fd=[3,x]" }, "--net: fd 'x' in '[3,x]' is not a non-negative integer" },
    { { "--kernel", "@K", "--net", "fd=-1" }, "--net: fd '-1' in '-1' is not a non-negative integer" },
    { { "--kernel", "@K", "--net", "fd=2147483648" }, "fd '2147483648' in '2147483648' is not" },
    { { "--kernel", "@K", "--net", "fd=[3,,4]" }, "--net: empty item in fd list '[3,,4]'" },
    { { "--kernel", "@K", "--net", "fd=[]" }, "--net: empty item in fd list '[]'" },
    { { "--kernel", "@K", "--net", "fd=[3,3]" }, "--net: fd 3 is given twice" },
    { { "--kernel", "@K", "--net", "fd=3", "fd=[4,3]" }, "--net: fd 3 is given twice" },
    { { "--kernel", "@K", "--net", "fd=[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]" },
      "--net: fd list '[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]' has more than 16 fds" },
    { { "--kernel", "@K", "--net", "fd=[3,4],num_queues=2" },
      "--net: fd '[3,4]' gives 2 fds but num_queues=2 needs 1 (one per queue pair)" },
    { { "--kernel", "@K", "--net", "num_queues=4,fd=3" },
      "--net: fd '3' gives 1 fd but num_queues=4 needs 2 (one per queue pair)" },
    { { "--kernel", "@K", "--net", "tap=tap0,fd=3" },
      "--net: tap= and fd= cannot be used together in 'tap=tap0,fd=3'" },
    { { "--kernel", "@K", "--net", "tap=this-is-16-chars" },
      "--net: tap name 'this-is-16-chars' is not valid (1-15 characters of A-Z a-z 0-9 . _ -)" },
    { { "--kernel", "@K", "--net", "tap=a/b" }, "--net: tap name 'a/b' is not valid" },
    { { "--kernel", "@K", "--net", "tap=.." }, "--net: tap name '..' is not valid" },
    { { "--kernel", "@K", "--net", "tap=vm%d" }, "--net: tap name 'vm%d' is not valid" },
    { { "--kernel", "@K", "--net", "tap=\"a b\"" }, "--net: tap name 'a b' is not valid" },
    { { "--kernel", "@K", "--net", "tap=t0", "tap=t0" }, "--net: tap 't0' is used by another --net" },
    { { "--kernel", "@K", "--net", "id=a", "--net", "user=on,id=a" }, "--net: duplicate id 'a'" },
    { { "--kernel", "@K", "--net", "id=\"a,b\"" }, "--net: id 'a,b' must not contain ',' or ';'" },
    { { "--kernel", "@K", "--net", "id=a;b" }, "--net: id 'a;b' must not contain ',' or ';'" },
    { { "--kernel", "@K", "--net", "offload_tso=maybe" },
      "--net: offload_tso must be on|off|true|false, got 'maybe'" },
    { { "--kernel", "@K", "--net", "offload_csum=1" }, "offload_csum must be on|off|true|false" },
    { { "--kernel", "@K", "--net", "user=yes" }, "--net: user must be on|off|true|false, got 'yes'" },
    { { "--kernel", "@K", "--net", "user=on,tap=t0" },
      "--net: user=on cannot be combined with 'tap=t0'" },
    { { "--kernel", "@K", "--net", "tap=,user=on" }, "--net: user=on cannot be combined with 'tap='" },
    { { "--kernel", "@K", "--net", "user=on,fd=[3]" }, "user=on cannot be combined with 'fd=[3]'" },
    { { "--kernel", "@K", "--net", "user=on,ip=10.0.0.1" }, "user=on cannot be combined with 'ip=10.0.0.1'" },
    { { "--kernel", "@K", "--net", "user=on,mask=255.0.0.0" },
      "user=on cannot be combined with 'mask=255.0.0.0'" },
    { { "--kernel", "@K", "--net", "user=on,host_mac=52:54:00:00:00:01" },
      "user=on cannot be combined with 'host_mac=52:54:00:00:00:01'" },
    { { "--kernel", "@K", "--net", "user=on,num_queues=4" },
      "--net: user=on serves one queue pair, so num_queues must be 2, got '4'" },
    { { "--kernel", "@K", "--net", "hostfwd=tcp::2222-:22" },
      "--net: hostfwd= needs user=on, in 'hostfwd=tcp::2222-:22'" },
    { { "--kernel", "@K", "--net", "user=off,hostfwd=tcp::2222-:22" }, "--net: hostfwd= needs user=on" },
    { { "--kernel", "@K", "--net", "user=on,hostfwd=tcp::2222" },
      "--net: bad hostfwd rule 'tcp::2222': expected [tcp|udp]:[hostaddr]:hostport-"
      "[guestaddr]:guestport" },
    { { "--kernel", "@K", "--net", "user=on,hostfwd=2222-:22" }, "bad hostfwd rule '2222-:22': expected" },
    { { "--kernel", "@K", "--net", "user=on,hostfwd=sctp::1-:2" },
      "--net: bad hostfwd rule 'sctp::1-:2': protocol 'sctp' is not tcp or udp" },
    { { "--kernel", "@K", "--net", "user=on,hostfwd=tcp:1.2.3:1-:2" },
      "bad hostfwd rule 'tcp:1.2.3:1-:2': host address '1.2.3' is not an IPv4 address" },
    { { "--kernel", "@K", "--net", "user=on,hostfwd=tcp::0-:22" },
      "bad hostfwd rule 'tcp::0-:22': host port '0' is not 1-65535" },
    { { "--kernel", "@K", "--net", "user=on,hostfwd=tcp::65536-:22" }, "host port '65536' is not 1-65535" },
    { { "--kernel", "@K", "--net", "user=on,hostfwd=tcp::022-:22" }, "host port '022' is not 1-65535" },
    { { "--kernel", "@K", "--net", "user=on,hostfwd=tcp::22-10.0.2.x:22" },
      "guest address '10.0.2.x' is not an IPv4 address" },
    { { "--kernel", "@K", "--net", "user=on,hostfwd=tcp::22-:0" }, "guest port '0' is not 1-65535" },
    { { "--kernel", "@K", "--net", "user=on,hostfwd=tcp::22-:" }, "guest port '' is not 1-65535" },
    { { "--kernel", "@K", "--net", "user=on,hostfwd=tcp::22-:22;udp::1-:2" },
      "guest port '22;udp::1-:2' is not 1-65535" },
    { { "--kernel", "@K", "--net", "user=on,hostfwd=[tcp::22-:22,]" },
      "--net: empty rule in hostfwd '[tcp::22-:22,]'" },
    { { "--kernel", "@K", "--net", "user=on,hostfwd=[]" }, "--net: empty rule in hostfwd '[]'" },
    { { "--kernel", "@K", "--net", "user=on,hostfwd=[tcp::1-:1,tcp::2-:2,tcp::3-:3,tcp::4-:4,"
        "tcp::5-:5,tcp::6-:6,tcp::7-:7,tcp::8-:8,tcp::9-:9,tcp::10-:10,tcp::11-:11,tcp::12-:12,"
        "tcp::13-:13,tcp::14-:14,tcp::15-:15,tcp::16-:16,tcp::17-:17]" },
      "has more than 16 rules" },
    /* --rng */
    { { "--kernel", "@K", "--rng", "src=@T/nope" }, "--rng: cannot read '@T/nope'" },
    { { "--kernel", "@K", "--rng", "foo=1" }, "--rng: unknown key 'foo' in 'foo=1'" },
    { { "--kernel", "@K", "--rng", "src=" }, "--rng: empty value for 'src'" },
    /* --device */
    { { "--kernel", "@K", "--device", "a=1" }, "--device: missing plugin= in 'a=1'" },
    { { "--kernel", "@K", "--device" }, "--device: missing value" },
    { { "--kernel", "@K", "--device", "plugin=a,plugin=b" },
      "--device: duplicate key 'plugin' in 'plugin=a,plugin=b'" },
    { { "--kernel", "@K", "--device", "plugin=" }, "--device: empty plugin= in 'plugin='" },
    { { "--kernel", "@K", "--device", "plugin" }, "--device: empty plugin= in 'plugin'" },
    { { "--kernel", "@K", "--device", "plugin=a,=x" }, "--device: missing key before '=' in 'plugin=a,=x'" },
    { { "--kernel", "@K", "--device", "plugin=a,x=[" }, "--device: unbalanced '[' in 'plugin=a,x=['" },
    /* logging / plugins */
    { { "--kernel", "@K", "--log-file", "@T/nodir/log" }, "--log-file: directory of '@T/nodir/log'" },
    { { "--kernel", "@K", "--log-file", "" }, "--log-file: empty value" },
    { { "--kernel", "@K", "--plugin-dir", "@T/nope" },
      "--plugin-dir: cannot use '@T/nope': No such file or directory" },
    { { "--kernel", "@K", "--plugin-dir", "@K" }, "--plugin-dir: '@K' is not a directory" },
};

static void test_errors(void **state)
{
    for (size_t i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++) {
        const struct err_case *c = &err_cases[i];
        const char *args[9];
        size_t n = 0;
        for (; n < 8 && c->args[n]; n++)
            args[n] = c->args[n];
        args[n] = NULL;
        struct run r;
        run_args(&r, args);
        char *want = expand(c->want);
        if (r.rc != CLI_ERROR)
            fail_msg("case %zu (%s ... %s): expected CLI_ERROR, got %d", i,
                     c->args[0] ? c->args[0] : "", n ? c->args[n - 1] : "", r.rc);
        if (!strstr(r.err, want))
            fail_msg("case %zu: message\n  '%s'\ndoes not contain\n  '%s'", i, r.err, want);
        free(want);
        done(&r);
    }
}

static void test_cmdline_too_long(void **state)
{
    size_t n = 70000;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'a', n);
    big[n] = '\0';
    char *kernel = expand("@K");
    char *argv[] = { "nimbus", "--kernel", kernel, "--cmdline", big, NULL };
    struct run r;
    run_argv(&r, 5, argv);
    assert_int_equal(r.rc, CLI_ERROR);
    assert_non_null(strstr(r.err, "--cmdline: too long (70000 bytes, at most 65535)"));
    done(&r);

    /* The longest accepted command line. */
    big[65535] = '\0';
    run_argv(&r, 5, argv);
    expect_ok(&r);
    assert_int_equal(strlen(r.cfg.cmdline), 65535);
    done(&r);
    free(big);
    free(kernel);
}

/* Huge and odd argv entries must give errors, not crashes or truncated reads. */
static void test_hostile_input(void **state)
{
    size_t n = 1 << 20;
    char *big = malloc(n + 16);
    assert_non_null(big);
    char *kernel = expand("@K");
    struct run r;

    static const struct { const char *opt; char fill; const char *prefix; const char *want; } cases[] = {
        { "--cpus", ',', "", "--cpus: more than 64 sub-options" },
        { "--cpus", '[', "", "--cpus: unbalanced '['" },
        { "--memory", '9', "size=", "--memory: bad size '99999" },
        { "--initramfs", 'k', "", "--initramfs: cannot read 'kkkk" },
        { "--device", 'x', "plugin=", "" }, /* accepted: plugins judge values */
        { "--serial", '/', "file=", "--serial: directory of '////" },
        { "--net", 'x', "tap=", "--net: tap name 'xxxx" },
        { "--net", '1', "user=on,hostfwd=tcp::1-:", "--net: bad hostfwd rule 'tcp::1-:1111" },
        { "--net", '[', "fd=", "--net: unbalanced '['" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t p = strlen(cases[i].prefix);
        memcpy(big, cases[i].prefix, p);
        memset(big + p, cases[i].fill, n - p);
        big[n] = '\0';
        char *argv[] = { "nimbus", "--kernel", kernel, (char *)cases[i].opt, big, NULL };
        run_argv(&r, 5, argv);
        if (cases[i].want[0]) {
            assert_int_equal(r.rc, CLI_ERROR);
            if (!strstr(r.err, cases[i].want))
                fail_msg("case %zu: '%s' lacks '%s'", i, r.err, cases[i].want);
            /* Long tokens are cut to the buffer, always terminated. */
            assert_true(strlen(r.err) < sizeof(r.err));
        } else {
            expect_ok(&r);
            assert_int_equal(strlen(r.cfg.devices[0].plugin), n - p);
        }
        done(&r);
    }

    /* A tiny or absent error buffer is never overrun. */
    char tiny[8];
    memset(tiny, 'Z', sizeof(tiny));
    char *bad[] = { "nimbus", "--cpus", "boot=0", NULL };
    struct vm_config cfg;
    config_init(&cfg);
    assert_int_equal(cli_parse(3, bad, &cfg, NULL, tiny, 6), CLI_ERROR);
    assert_string_equal(tiny, "--cpu");
    assert_int_equal(tiny[6], 'Z');
    config_free(&cfg);
    config_init(&cfg);
    assert_int_equal(cli_parse(3, bad, &cfg, NULL, NULL, 0), CLI_ERROR);
    config_free(&cfg);

    /* NULL inside argc, and no argv at all. */
    char *holes[] = { "nimbus", "--kernel", kernel, NULL, "x", NULL };
    run_argv(&r, 5, holes);
    assert_int_equal(r.rc, CLI_ERROR);
    assert_non_null(strstr(r.err, "argument 3 is NULL"));
    done(&r);
    run_argv(&r, 0, NULL);
    assert_int_equal(r.rc, CLI_ERROR);
    assert_non_null(strstr(r.err, "--kernel is required"));
    done(&r);

    free(big);
    free(kernel);
}

/* Errors after a disk or device was recorded leave cfg consistent for
 * config_free (ASan's leak check makes this test meaningful). */
static void test_partial_fill_is_freeable(void **state)
{
    struct run r;
    RUN(&r, "--kernel", "@K", "--disk", "path=@D0,id=x", "path=@D1,num_queues=0");
    assert_int_equal(r.rc, CLI_ERROR);
    assert_true(r.cfg.ndisks >= 1);
    done(&r);

    RUN(&r, "--kernel", "@K", "--device", "plugin=a,k=v", "--serial", "file=@T/s",
        "--console", "bogus");
    assert_int_equal(r.rc, CLI_ERROR);
    assert_int_equal(r.cfg.ndevices, 1);
    done(&r);

    /* A --net that fails after its tap name, id and first hostfwd rule were kept. */
    RUN(&r, "--kernel", "@K", "--net", "tap=t0,id=a", "user=on,id=b,hostfwd=[tcp::1-:2,bad]");
    assert_int_equal(r.rc, CLI_ERROR);
    assert_int_equal(r.cfg.nnets, 2);
    assert_int_equal(r.cfg.nets[1].nhostfwd, 1);
    done(&r);
}

/* ---- value parsers ---------------------------------------------------------- */

static void test_parse_size(void **state)
{
    static const struct { const char *s; uint64_t v; } good[] = {
        { "1", 1 },
        { "4096", 4096 },
        { "4K", 4096 },
        { "4k", 4096 },
        { "0001K", 1024 },
        { "512M", 512ull << 20 },
        { "512m", 512ull << 20 },
        { "2G", 2ull << 30 },
        { "2g", 2ull << 30 },
        { "1T", 1ull << 40 },
        { "3t", 3ull << 40 },
        { "18446744073709551615", UINT64_MAX },
        { "16777215T", 16777215ull << 40 },
        { "17179869183G", 17179869183ull << 30 },
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        uint64_t v = 0;
        if (cli_parse_size(good[i].s, &v) != 0)
            fail_msg("'%s' rejected", good[i].s);
        assert_int_equal(v, good[i].v);
    }

    static const char *const bad[] = {
        "", "0", "0K", "00", "K", "M", "-1", "-1G", "+1", " 1", "1 ", "1KB", "1KiB",
        "1.5G", "0x10", "1e6", "1P", "1b", "1KK", "18446744073709551616",
        "99999999999999999999999", "16777216T", "17179869184G", "17592186044416M",
        "18014398509481984K", "lots",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t v = 12345;
        if (cli_parse_size(bad[i], &v) != -1)
            fail_msg("'%s' accepted", bad[i]);
        assert_int_equal(v, 12345); /* untouched on failure */
    }
    uint64_t v;
    assert_int_equal(cli_parse_size(NULL, &v), -1);
}

static void test_parse_scalars(void **state)
{
    int b = -1;
    assert_int_equal(cli_parse_bool("on", &b), 0);
    assert_int_equal(b, 1);
    assert_int_equal(cli_parse_bool("False", &b), 0);
    assert_int_equal(b, 0);
    assert_int_equal(cli_parse_bool("TRUE", &b), 0);
    assert_int_equal(b, 1);
    assert_int_equal(cli_parse_bool("OFF", &b), 0);
    assert_int_equal(b, 0);
    assert_int_equal(cli_parse_bool("yes", &b), -1);
    assert_int_equal(cli_parse_bool("", &b), -1);
    assert_int_equal(cli_parse_bool("1", &b), -1);

    uint32_t u = 0;
    assert_int_equal(cli_parse_u32("4294967295", &u), 0);
    assert_int_equal(u, UINT32_MAX);
    assert_int_equal(cli_parse_u32("0", &u), 0);
    assert_int_equal(u, 0);
    assert_int_equal(cli_parse_u32("4294967296", &u), -1);
    assert_int_equal(cli_parse_u32("", &u), -1);
    assert_int_equal(cli_parse_u32("-1", &u), -1);
    assert_int_equal(cli_parse_u32("1a", &u), -1);
}

static void test_opts_syntax(void **state)
{
    char err[256] = "";
    struct cli_err e = { .ctx = "--x", .buf = err, .len = sizeof(err) };
    struct cli_opts o;

    /* Quotes protect commas and are removed from values but kept in raw. */
    assert_int_equal(cli_opts_parse(&o, "cmdline=\"console=ttyS0,9600n8\",list=[[1,2],[3]],"
                                    "bare, spaced = v ", NULL, &e), 0);
    assert_int_equal(o.n, 4);
    assert_string_equal(o.items[0].key, "cmdline");
    assert_string_equal(o.items[0].value, "console=ttyS0,9600n8");
    assert_string_equal(o.items[0].raw, "cmdline=\"console=ttyS0,9600n8\"");
    assert_string_equal(o.items[1].value, "[[1,2],[3]]");
    assert_string_equal(o.items[2].key, "bare");
    assert_null(o.items[2].value);
    assert_string_equal(o.items[3].key, "spaced");
    assert_string_equal(o.items[3].value, "v");
    assert_ptr_equal(cli_opts_find(&o, "bare"), &o.items[2]);
    assert_null(cli_opts_find(&o, "nothere"));
    cli_opts_free(&o);
    assert_int_equal(o.n, 0);

    /* A quoted '=' belongs to the key; the value may hold more '='. */
    assert_int_equal(cli_opts_parse(&o, "\"a=b\"=c=d", NULL, &e), 0);
    assert_string_equal(o.items[0].key, "a=b");
    assert_string_equal(o.items[0].value, "c=d");
    cli_opts_free(&o);

    assert_int_equal(cli_opts_parse(&o, "   ", NULL, &e), 0);
    assert_int_equal(o.n, 0);
    assert_int_equal(cli_opts_parse(&o, NULL, NULL, &e), 0);
    assert_int_equal(o.n, 0);

    /* Exactly CLI_OPTS_MAX items are fine, one more is not. */
    char many[CLI_OPTS_MAX * 2 + 2];
    size_t k = 0;
    for (int i = 0; i < CLI_OPTS_MAX; i++) {
        many[k++] = 'a';
        many[k++] = ',';
    }
    many[k - 1] = '\0';
    assert_int_equal(cli_opts_parse(&o, many, NULL, &e), 0);
    assert_int_equal(o.n, CLI_OPTS_MAX);
    cli_opts_free(&o);
    many[k - 1] = ',';
    many[k] = 'a';
    many[k + 1] = '\0';
    assert_int_equal(cli_opts_parse(&o, many, NULL, &e), -1);
    assert_non_null(strstr(err, "--x: more than 64 sub-options"));

    /* Typed lookups leave *dst alone when the key is absent. */
    static const struct cli_opt_spec spec[] = {
        { "n", CLI_OPT_VALUE }, { "b", CLI_OPT_VALUE }, { "f", CLI_OPT_FLAG }, { NULL, 0 },
    };
    assert_int_equal(cli_opts_parse(&o, "n=7,f", spec, &e), 0);
    uint32_t n = 0;
    int b = 42;
    assert_int_equal(cli_opts_get_u32(&o, "n", 1, 10, &n, &e), 0);
    assert_int_equal(n, 7);
    assert_int_equal(cli_opts_get_bool(&o, "b", &b, &e), 0);
    assert_int_equal(b, 42);
    assert_int_equal(cli_opts_get_u32(&o, "n", 8, 10, &n, &e), -1);
    assert_non_null(strstr(err, "--x: n must be between 8 and 10, got '7'"));
    cli_opts_free(&o);

    assert_int_equal(cli_opts_parse(&o, "f=1", spec, &e), -1);
    assert_non_null(strstr(err, "'f' takes no value"));
    assert_int_equal(o.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_payload_both_forms),
        cmocka_unit_test(test_cpus),
        cmocka_unit_test(test_memory),
        cmocka_unit_test(test_serial_console),
        cmocka_unit_test(test_disks),
        cmocka_unit_test(test_disk_image_type),
        cmocka_unit_test(test_disk_default_queues_follow_cpus),
        cmocka_unit_test(test_disk_limit),
        cmocka_unit_test(test_nets),
        cmocka_unit_test(test_net_limit),
        cmocka_unit_test(test_rng),
        cmocka_unit_test(test_devices),
        cmocka_unit_test(test_device_help),
        cmocka_unit_test(test_landlock),
        cmocka_unit_test(test_device_limit),
        cmocka_unit_test(test_verbosity_logging),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_kata_launch_line),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_cmdline_too_long),
        cmocka_unit_test(test_hostile_input),
        cmocka_unit_test(test_partial_fill_is_freeable),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_scalars),
        cmocka_unit_test(test_opts_syntax),
    };
    return cmocka_run_group_tests(tests, setup_files, teardown_files);
}
