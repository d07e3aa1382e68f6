/*
 * Cloud Hypervisor JSON <-> struct vm_config (core/api/vmconfig_json.h):
 * the bodies Kata and libvirt send, every error naming its JSON path,
 * round trips through vmconfig_to_cjson(), NetConfig bodies, and hostile
 * input (truncated, NUL, bad UTF-8, tiny error buffers).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <cmocka.h>

#include "api/vmconfig_json.h"
#include "cli.h"
#include "config.h"
#include "log.h"

/* Scratch files: "@K" kernel, "@I" initramfs, "@D0"/"@D1" disks, "@T" dir. */
static char g_dir[64];
static char g_kernel[128], g_initrd[128], g_disk0[128], g_disk1[128], g_log[128];

static void touch(const char *path)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("x", f);
    fclose(f);
}

static int setup_files(void **state)
{
    strcpy(g_dir, "/tmp/nimbus-test-vmjson-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    snprintf(g_kernel, sizeof(g_kernel), "%s/vmlinux", g_dir);
    snprintf(g_initrd, sizeof(g_initrd), "%s/initrd", g_dir);
    snprintf(g_disk0, sizeof(g_disk0), "%s/disk0.img", g_dir);
    snprintf(g_disk1, sizeof(g_disk1), "%s/disk1.img", g_dir);
    snprintf(g_log, sizeof(g_log), "%s/log", g_dir);
    touch(g_kernel);
    touch(g_initrd);
    touch(g_disk0);
    touch(g_disk1);
    /* Warnings go to a file the tests read (log_set_file appends). */
    return log_set_file(g_log) == 0 ? 0 : -1;
}

static int teardown_files(void **state)
{
    unlink(g_kernel);
    unlink(g_initrd);
    unlink(g_disk0);
    unlink(g_disk1);
    unlink(g_log);
    rmdir(g_dir);
    return 0;
}

/* The @ placeholders replaced, and (if quotes) ' turned into " so bodies
 * read easily in C.  Caller frees. */
static char *expand_q(const char *s, int quotes)
{
    static const struct { const char *tag; const char *val; } subst[] = {
        {"@D0", g_disk0}, {"@D1", g_disk1}, {"@K", g_kernel}, {"@I", g_initrd}, {"@T", g_dir},
    };
    size_t cap = strlen(s) * 64 + 1;
    char *out = malloc(cap);
    assert_non_null(out);
    size_t k = 0;
    while (*s) {
        size_t i;
        for (i = 0; i < sizeof(subst) / sizeof(subst[0]); i++) {
            size_t n = strlen(subst[i].tag);
            if (strncmp(s, subst[i].tag, n) == 0) {
                size_t m = strlen(subst[i].val);
                memcpy(out + k, subst[i].val, m);
                k += m;
                s += n;
                break;
            }
        }
        if (i == sizeof(subst) / sizeof(subst[0])) {
            out[k++] = quotes && *s == '\'' ? '"' : *s;
            s++;
        }
    }
    out[k] = '\0';
    return out;
}

static char *expand(const char *s)
{
    return expand_q(s, 1);
}

static char *read_log(void)
{
    FILE *f = fopen(g_log, "r");
    assert_non_null(f);
    static char buf[16384];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void clear_log(void)
{
    assert_int_equal(truncate(g_log, 0), 0);
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

/* Parse a body (placeholders expanded) into cfg; returns the result. */
static int parse(const char *body, struct vm_config *cfg, char *err, size_t errlen)
{
    char *json = expand(body);
    config_init(cfg);
    int r = vmconfig_from_json(json, strlen(json), cfg, err, errlen);
    free(json);
    return r;
}

static void parse_ok(const char *body, struct vm_config *cfg)
{
    char err[512];
    if (parse(body, cfg, err, sizeof(err)) != 0)
        fail_msg("expected success, got: %s\nbody: %s", err, body);
}

static char *print_json(cJSON *j)
{
    assert_non_null(j);
    char *s = cJSON_PrintUnformatted(j);
    assert_non_null(s);
    cJSON_Delete(j);
    return s;
}

/* ---- comparisons for the round trips -------------------------------------- */

static void str_eq(const char *a, const char *b, const char *what)
{
    if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0))
        fail_msg("%s: '%s' != '%s'", what, a ? a : "(null)", b ? b : "(null)");
}

#define FIELD_EQ(a, b, f) \
    do { \
        if ((a)->f != (b)->f) \
            fail_msg("%s: %llu != %llu", #f, (unsigned long long)(a)->f, \
                     (unsigned long long)(b)->f); \
    } while (0)

static void net_eq(const struct net_config *a, const struct net_config *b)
{
    str_eq(a->tap, b->tap, "net.tap");
    str_eq(a->id, b->id, "net.id");
    FIELD_EQ(a, b, ip);
    FIELD_EQ(a, b, mask);
    FIELD_EQ(a, b, ip_given);
    FIELD_EQ(a, b, mask_given);
    FIELD_EQ(a, b, mac_given);
    FIELD_EQ(a, b, host_mac_given);
    assert_memory_equal(a->mac, b->mac, 6);
    assert_memory_equal(a->host_mac, b->host_mac, 6);
    FIELD_EQ(a, b, mtu);
    FIELD_EQ(a, b, num_queues);
    FIELD_EQ(a, b, queue_size);
    FIELD_EQ(a, b, nfds);
    FIELD_EQ(a, b, offload_tso);
    FIELD_EQ(a, b, offload_ufo);
    FIELD_EQ(a, b, offload_csum);
    FIELD_EQ(a, b, user);
    FIELD_EQ(a, b, nhostfwd);
    for (uint32_t i = 0; i < a->nhostfwd; i++)
        str_eq(a->hostfwd[i], b->hostfwd[i], "net.hostfwd");
}

static void config_eq(const struct vm_config *a, const struct vm_config *b)
{
    str_eq(a->kernel, b->kernel, "kernel");
    str_eq(a->initramfs, b->initramfs, "initramfs");
    str_eq(a->cmdline, b->cmdline, "cmdline");
    FIELD_EQ(a, b, cpus.boot);
    FIELD_EQ(a, b, cpus.max);
    FIELD_EQ(a, b, cpus.threads_per_core);
    FIELD_EQ(a, b, cpus.cores_per_die);
    FIELD_EQ(a, b, cpus.dies_per_package);
    FIELD_EQ(a, b, cpus.packages);
    FIELD_EQ(a, b, cpus.topology_set);
    FIELD_EQ(a, b, cpus.max_phys_bits);
    FIELD_EQ(a, b, memory.size);
    FIELD_EQ(a, b, memory.shared);
    FIELD_EQ(a, b, memory.hugepages);
    FIELD_EQ(a, b, memory.prefault);
    FIELD_EQ(a, b, memory.mergeable);
    FIELD_EQ(a, b, memory.thp);
    FIELD_EQ(a, b, memory.hotplug_method);
    FIELD_EQ(a, b, memory.hotplug_size);
    FIELD_EQ(a, b, serial.mode);
    str_eq(a->serial.path, b->serial.path, "serial.path");
    FIELD_EQ(a, b, console.mode);
    str_eq(a->console.path, b->console.path, "console.path");
    /* Not console_given: it only tells config_validate() whether a Tty
     * console was asked for, and vm.info always shows the console. */
    FIELD_EQ(a, b, ndisks);
    for (uint32_t i = 0; i < a->ndisks; i++) {
        const struct disk_config *x = &a->disks[i], *y = &b->disks[i];
        str_eq(x->path, y->path, "disk.path");
        str_eq(x->id, y->id, "disk.id");
        str_eq(x->serial, y->serial, "disk.serial");
        FIELD_EQ(x, y, readonly);
        FIELD_EQ(x, y, direct);
        FIELD_EQ(x, y, num_queues);
        FIELD_EQ(x, y, queue_size);
        FIELD_EQ(x, y, image_type);
        FIELD_EQ(x, y, backing_files);
    }
    FIELD_EQ(a, b, nnets);
    for (uint32_t i = 0; i < a->nnets; i++)
        net_eq(&a->nets[i], &b->nets[i]);
    FIELD_EQ(a, b, rng.enabled);
    str_eq(a->rng.src, b->rng.src, "rng.src");
    FIELD_EQ(a, b, ndevices);
}

/* from_json(to_json(cfg)) == cfg, and the JSON is a fixpoint. */
static void round_trip(const struct vm_config *cfg)
{
    char *s1 = print_json(vmconfig_to_cjson(cfg, NULL, NULL));
    struct vm_config back;
    char err[512];
    config_init(&back);
    if (vmconfig_from_json(s1, strlen(s1), &back, err, sizeof(err)) != 0)
        fail_msg("re-parse failed: %s\njson: %s", err, s1);
    config_eq(cfg, &back);
    char *s2 = print_json(vmconfig_to_cjson(&back, NULL, NULL));
    assert_string_equal(s1, s2);
    config_free(&back);
    free(s1);
    free(s2);
}

/* ---- the bodies real clients send ----------------------------------------- */

/* integrations.md §1.4, as Kata's Go client marshals it (one line each). */
static const char kata_body[] =
    "{\n"
    "'payload': {'kernel': '@K', 'cmdline': 'root=/dev/vda1 rootflags=data=ordered,"
    "errors=remount-ro ro rootfstype=ext4 panic=1 no_timer_check noreplace-smp quiet'},\n"
    "'cpus': {'boot_vcpus': 1, 'max_vcpus': 4, 'kvm_hyperv': false, 'nested': true,\n"
    "         'topology': {'threads_per_core': 1, 'cores_per_die': 4, 'dies_per_package': 1,"
    " 'packages': 1}},\n"
    "'memory': {'size': 2147483648, 'mergeable': false, 'hotplug_method': 'Acpi',"
    " 'shared': true, 'hugepages': false, 'prefault': false, 'thp': true,"
    " 'hotplug_size': 8589934592},\n"
    "'rng': {'src': '/dev/urandom', 'iommu': false},\n"
    "'disks': [{'path': '@D0', 'readonly': true, 'direct': false, 'iommu': false,"
    " 'num_queues': 1, 'queue_size': 128, 'vhost_user': false, 'backing_files': false,"
    " 'sparse': true, 'image_type': 'Raw'}],\n"
    "'serial': {'mode': 'Off', 'iommu': false},\n"
    "'console': {'mode': 'Off', 'iommu': false},\n"
    "'platform': {'num_pci_segments': 2, 'tdx': false, 'sev_snp': false},\n"
    "'fs': [{'tag': 'kataShared', 'socket': '@T/virtiofsd.sock', 'num_queues': 1,"
    " 'queue_size': 1024, 'pci_segment': 1}],\n"
    "'vsock': {'cid': 3, 'socket': '@T/clh.sock', 'iommu': false},\n"
    "'balloon': {'size': 0, 'deflate_on_oom': false, 'free_page_reporting': true},\n"
    "'iommu': false, 'watchdog': false, 'pvpanic': false, 'landlock_enable': false\n"
    "}\n";

/* integrations.md §2.2 (virCHMonitorBuildVMJson). */
static const char libvirt_body[] =
    "{'console': {'mode': 'Pty'}, 'serial': {'mode': 'Pty'},"
    " 'cpus': {'boot_vcpus': 2, 'max_vcpus': 2}, 'memory': {'size': 1073741824},"
    " 'payload': {'kernel': '@K', 'cmdline': 'console=hvc0 root=/dev/vda', 'initramfs': '@I'},"
    " 'disks': [{'path': '@D0', 'readonly': true}, {'path': '@D1'}]}";

/* Everything nimbus keeps, away from every default. */
static const char rich_body[] =
    "{'payload': {'kernel': '@K', 'cmdline': '', 'initramfs': '@I'},"
    " 'cpus': {'boot_vcpus': 4, 'max_vcpus': 8, 'max_phys_bits': 40,"
    "          'topology': {'threads_per_core': 2, 'cores_per_die': 2,"
    "                       'dies_per_package': 1, 'packages': 2}},"
    " 'memory': {'size': 1073741824, 'hugepages': true, 'prefault': true, 'mergeable': true,"
    "            'thp': false, 'shared': true, 'hotplug_method': 'Acpi',"
    "            'hotplug_size': 2147483648},"
    " 'disks': [{'path': '@D0', 'direct': true, 'num_queues': 4, 'queue_size': 1024,"
    "            'id': 'root', 'serial': 'SERIAL0123456789ABCD'},"
    "           {'path': '@D1', 'readonly': true, 'id': 'data', 'image_type': 'Qcow2',"
    "            'backing_files': true}],"
    " 'net': [{'tap': 'tap0', 'ip': '10.1.2.1', 'mask': '255.255.0.0',"
    "          'mac': '52:54:00:12:34:56', 'host_mac': '52:54:00:ab:cd:ef', 'mtu': 9000,"
    "          'num_queues': 4, 'queue_size': 512, 'id': 'n0', 'offload_tso': false,"
    "          'offload_ufo': false, 'offload_csum': false},"
    "         {'ip': '192.168.5.1'},"
    "         {'user': true, 'hostfwd': ['tcp::2222-:22', 'udp:127.0.0.1:5353-10.0.2.15:53'],"
    "          'mac': '52:54:00:00:00:02', 'id': 'u0', 'queue_size': 128}],"
    " 'rng': {'src': '@K'},"
    " 'serial': {'mode': 'File', 'file': '@T/serial.log'},"
    " 'console': {'mode': 'Null'}}";

static void test_kata_body(void **state)
{
    struct vm_config cfg;
    clear_log();
    parse_ok(kata_body, &cfg);
    assert_string_equal(cfg.kernel, g_kernel);
    assert_non_null(strstr(cfg.cmdline, "rootfstype=ext4 panic=1"));
    assert_null(cfg.initramfs);
    assert_int_equal(cfg.cpus.boot, 1);
    assert_int_equal(cfg.cpus.max, 4); /* accepted, unlike --cpus */
    assert_int_equal(cfg.cpus.topology_set, 1);
    assert_int_equal(cfg.cpus.cores_per_die, 4);
    assert_int_equal(cfg.cpus.max_phys_bits, 46);
    assert_int_equal(cfg.memory.size, 2ull << 30);
    assert_int_equal(cfg.memory.shared, 1);
    assert_int_equal(cfg.memory.thp, 1);
    assert_int_equal(cfg.memory.hotplug_method, MEM_HOTPLUG_ACPI);
    assert_int_equal(cfg.memory.hotplug_size, 8ull << 30);
    assert_int_equal(cfg.ndisks, 1);
    assert_string_equal(cfg.disks[0].path, g_disk0);
    assert_int_equal(cfg.disks[0].readonly, 1);
    assert_int_equal(cfg.disks[0].num_queues, 1);
    assert_int_equal(cfg.disks[0].queue_size, 128);
    assert_int_equal(cfg.disks[0].image_type, DISK_IMAGE_RAW);
    assert_int_equal(cfg.disks[0].backing_files, 0);
    assert_int_equal(cfg.nnets, 0);
    assert_int_equal(cfg.rng.enabled, 1);
    assert_string_equal(cfg.rng.src, "/dev/urandom");
    assert_int_equal(cfg.serial.mode, CHR_OFF);
    assert_int_equal(cfg.console.mode, CHR_OFF);
    assert_int_equal(cfg.console_given, 1);

    /* One warning per unsupported section that is in use, none for false. */
    const char *log = read_log();
    assert_int_equal(count(log, "'platform' is not supported yet and is ignored"), 1);
    assert_int_equal(count(log, "'fs' is not supported yet"), 1);
    assert_int_equal(count(log, "'vsock' is not supported yet"), 1);
    assert_int_equal(count(log, "'balloon' is not supported yet"), 1);
    /* CPU and memory hotplug are real now: nothing to warn about. */
    assert_int_equal(count(log, "max_vcpus=4 > boot_vcpus=1"), 0);
    assert_int_equal(count(log, "memory hotplug"), 0);
    assert_null(strstr(log, "'iommu'"));
    assert_null(strstr(log, "'watchdog'"));
    assert_null(strstr(log, "'landlock_enable'"));
    round_trip(&cfg);
    config_free(&cfg);
}

static void test_libvirt_body(void **state)
{
    struct vm_config cfg;
    parse_ok(libvirt_body, &cfg);
    assert_int_equal(cfg.console.mode, CHR_PTY);
    assert_int_equal(cfg.serial.mode, CHR_PTY);
    assert_int_equal(cfg.cpus.boot, 2);
    assert_int_equal(cfg.cpus.max, 2);
    assert_int_equal(cfg.cpus.topology_set, 0);
    assert_int_equal(cfg.cpus.cores_per_die, 2); /* the CLI's default topology */
    assert_int_equal(cfg.memory.size, 1ull << 30);
    assert_int_equal(cfg.memory.thp, 1);
    assert_string_equal(cfg.initramfs, g_initrd);
    assert_string_equal(cfg.cmdline, "console=hvc0 root=/dev/vda");
    assert_int_equal(cfg.ndisks, 2);
    assert_int_equal(cfg.disks[0].readonly, 1);
    assert_int_equal(cfg.disks[1].readonly, 0);
    assert_int_equal(cfg.disks[1].num_queues, 1); /* CH's default, not --disk's */
    assert_int_equal(cfg.disks[1].queue_size, 128);
    assert_int_equal(cfg.rng.enabled, 1); /* CH always has one */
    assert_string_equal(cfg.rng.src, "/dev/urandom");
    round_trip(&cfg);

    /* vm.info reports the pty paths the VM allocated as "file" (libvirt
     * reads config.console.file); parsed back, a Pty's file is dropped. */
    cJSON *j = vmconfig_to_cjson(&cfg, "/dev/pts/7", "/dev/pts/8");
    assert_non_null(j);
    const cJSON *con = cJSON_GetObjectItemCaseSensitive(j, "console");
    const cJSON *ser = cJSON_GetObjectItemCaseSensitive(j, "serial");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(con, "mode")->valuestring, "Pty");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(con, "file")->valuestring,
                        "/dev/pts/8");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(ser, "file")->valuestring,
                        "/dev/pts/7");
    char *s = print_json(j);
    struct vm_config back;
    char err[256];
    config_init(&back);
    assert_int_equal(vmconfig_from_json(s, strlen(s), &back, err, sizeof(err)), 0);
    config_eq(&cfg, &back);
    free(s);
    config_free(&back);
    config_free(&cfg);
}

static void test_minimal_defaults(void **state)
{
    struct vm_config cfg;
    parse_ok("{'payload': {'kernel': '@K'}}", &cfg);
    assert_int_equal(cfg.cpus.boot, 1);
    assert_int_equal(cfg.cpus.max, 1);
    assert_int_equal(cfg.memory.size, 512ull << 20);
    assert_int_equal(cfg.memory.thp, 1);
    assert_int_equal(cfg.serial.mode, CHR_NULL);
    assert_int_equal(cfg.console.mode, CHR_TTY);
    assert_int_equal(cfg.console_given, 0);
    assert_int_equal(cfg.rng.enabled, 1);
    assert_null(cfg.cmdline);
    round_trip(&cfg);
    config_free(&cfg);

    /* null reads as absent (CH's Option fields). */
    parse_ok("{'payload': {'kernel': '@K', 'initramfs': null, 'firmware': null},"
             " 'disks': null, 'memory': {'size': 67108864, 'zones': null}}", &cfg);
    assert_null(cfg.initramfs);
    assert_int_equal(cfg.ndisks, 0);
    config_free(&cfg);

    /* --serial tty alone turns the console off, as on the command line. */
    parse_ok("{'payload': {'kernel': '@K'}, 'serial': {'mode': 'Tty'}}", &cfg);
    assert_int_equal(cfg.serial.mode, CHR_TTY);
    assert_int_equal(cfg.console.mode, CHR_OFF);
    config_free(&cfg);
}

static void test_rich_round_trip(void **state)
{
    struct vm_config cfg;
    clear_log();
    parse_ok(rich_body, &cfg);
    assert_int_equal(cfg.cpus.threads_per_core, 2);
    assert_int_equal(cfg.cpus.packages, 2);
    assert_int_equal(cfg.cpus.max_phys_bits, 40);
    assert_int_equal(cfg.memory.hotplug_method, MEM_HOTPLUG_ACPI);
    assert_int_equal(cfg.memory.hotplug_size, 2ull << 30);
    assert_int_equal(cfg.memory.hugepages, 1);
    assert_int_equal(cfg.memory.thp, 0);
    assert_string_equal(cfg.cmdline, "");
    assert_int_equal(cfg.disks[0].num_queues, 4);
    assert_string_equal(cfg.disks[0].serial, "SERIAL0123456789ABCD");
    assert_int_equal(cfg.disks[0].image_type, DISK_IMAGE_PROBE);
    assert_int_equal(cfg.disks[1].image_type, DISK_IMAGE_QCOW2);
    assert_int_equal(cfg.disks[1].backing_files, 1);
    assert_int_equal(cfg.nnets, 3);
    const struct net_config *n = &cfg.nets[0];
    assert_string_equal(n->tap, "tap0");
    assert_int_equal(n->ip, htonl(0x0a010201));
    assert_int_equal(n->mask, htonl(0xffff0000));
    assert_true(n->ip_given && n->mask_given && n->mac_given && n->host_mac_given);
    assert_int_equal(n->mtu, 9000);
    assert_int_equal(n->num_queues, 4);
    assert_int_equal(n->queue_size, 512);
    assert_false(n->offload_tso || n->offload_ufo || n->offload_csum);
    n = &cfg.nets[1];
    assert_null(n->tap);
    assert_true(n->ip_given);
    assert_false(n->mask_given);
    assert_int_equal(n->mask, htonl(0xffffff00)); /* the CLI's default mask */
    assert_int_equal(n->num_queues, 2);
    assert_int_equal(n->queue_size, 256);
    assert_true(n->offload_tso && n->offload_ufo && n->offload_csum);
    n = &cfg.nets[2];
    assert_int_equal(n->user, 1);
    assert_int_equal(n->nhostfwd, 2);
    assert_string_equal(n->hostfwd[1], "udp:127.0.0.1:5353-10.0.2.15:53");
    assert_int_equal(cfg.serial.mode, CHR_FILE);
    assert_non_null(strstr(cfg.serial.path, "/serial.log"));
    assert_int_equal(cfg.console.mode, CHR_NULL);
    /* Nothing in it warns (max_vcpus > boot_vcpus and the hotplug area are used). */
    const char *log = read_log();
    assert_int_equal(count(log, "warn:"), 0);
    round_trip(&cfg);
    config_free(&cfg);
}

static void test_output_shape(void **state)
{
    struct vm_config cfg;
    parse_ok(rich_body, &cfg);
    char *s = print_json(vmconfig_to_cjson(&cfg, NULL, NULL));
    /* CH's spellings and the constant members CH always shows. */
    static const char *const want[] = {
        "\"cpus\":{\"boot_vcpus\":4,\"max_vcpus\":8,\"topology\":{\"threads_per_core\":2,"
        "\"cores_per_die\":2,\"dies_per_package\":1,\"packages\":2},\"kvm_hyperv\":false,"
        "\"max_phys_bits\":40}",
        "\"memory\":{\"size\":1073741824,\"mergeable\":true,\"hotplug_method\":\"Acpi\","
        "\"hotplug_size\":2147483648,\"shared\":true,\"hugepages\":true,\"prefault\":true,"
        "\"thp\":false}",
        "\"readonly\":true,\"direct\":false,\"iommu\":false,\"num_queues\":1,"
        "\"queue_size\":128,\"vhost_user\":false,\"id\":\"data\",\"image_type\":\"Qcow2\","
        "\"backing_files\":true",
        /* Probed: no image_type, so the body read back probes again. */
        "\"id\":\"root\",\"serial\":\"SERIAL0123456789ABCD\",\"backing_files\":false,"
        "\"pci_segment\":0",
        "{\"tap\":\"tap0\",\"ip\":\"10.1.2.1\",\"mask\":\"255.255.0.0\","
        "\"mac\":\"52:54:00:12:34:56\",\"host_mac\":\"52:54:00:ab:cd:ef\",\"mtu\":9000,"
        "\"iommu\":false,\"num_queues\":4,\"queue_size\":512,\"vhost_user\":false,"
        "\"vhost_mode\":\"Client\",\"id\":\"n0\",\"pci_segment\":0,\"offload_tso\":false,",
        "{\"ip\":\"192.168.5.1\",\"iommu\":false,",
        "\"user\":true,\"hostfwd\":[\"tcp::2222-:22\",\"udp:127.0.0.1:5353-10.0.2.15:53\"]",
        "\"serial\":{\"mode\":\"File\",\"file\":\"",
        "\"console\":{\"mode\":\"Null\",\"iommu\":false}",
        "\"iommu\":false,\"watchdog\":false,\"pvpanic\":false}",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(s, want[i]))
            fail_msg("missing %s\nin %s", want[i], s);
    free(s);

    /* Each mode's spelling; Off/Null/Tty carry no file. */
    static const struct { enum chr_mode m; const char *json; } modes[] = {
        {CHR_OFF, "{\"mode\":\"Off\",\"iommu\":false}"},
        {CHR_NULL, "{\"mode\":\"Null\",\"iommu\":false}"},
        {CHR_TTY, "{\"mode\":\"Tty\",\"iommu\":false}"},
        {CHR_PTY, "{\"mode\":\"Pty\",\"file\":\"/dev/pts/3\",\"iommu\":false}"},
    };
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        cfg.console.mode = modes[i].m;
        cJSON *j = vmconfig_to_cjson(&cfg, NULL, "/dev/pts/3");
        char *c = print_json(cJSON_DetachItemFromObject(j, "console"));
        assert_string_equal(c, modes[i].json);
        free(c);
        cJSON_Delete(j);
    }
    /* A command line without --rng has no rng to show. */
    cfg.rng.enabled = 0;
    s = print_json(vmconfig_to_cjson(&cfg, NULL, NULL));
    assert_null(strstr(s, "\"rng\""));
    free(s);
    config_free(&cfg);
}

/* A config made by the command line shows as JSON that parses to a config
 * showing the same JSON. */
static void test_cli_config_fixpoint(void **state)
{
    char *kernel = expand("@K"), *disk = expand("path=@D0,id=d0,serial=abc");
    char *argv[] = {"nimbus", "--kernel", kernel, "--cpus", "boot=2,topology=1:2:1:1",
                    "--memory", "size=256M,shared=on", "--disk", disk, "--net",
                    "tap=vm0,ip=10.0.0.1,mac=52:54:00:00:00:09,num_queues=4", "--rng",
                    "--console", "off", "--serial", "tty", NULL};
    struct vm_config cfg, back;
    char err[512];
    config_init(&cfg);
    assert_int_equal(cli_parse(16, argv, &cfg, NULL, err, sizeof(err)), CLI_OK);
    char *s1 = print_json(vmconfig_to_cjson(&cfg, NULL, NULL));
    config_init(&back);
    if (vmconfig_from_json(s1, strlen(s1), &back, err, sizeof(err)) != 0)
        fail_msg("%s\n%s", err, s1);
    config_eq(&cfg, &back);
    char *s2 = print_json(vmconfig_to_cjson(&back, NULL, NULL));
    assert_string_equal(s1, s2);
    free(s1);
    free(s2);
    free(kernel);
    free(disk);
    config_free(&back);
    config_free(&cfg);
}

static void test_unknown_fields_ignored(void **state)
{
    struct vm_config cfg;
    clear_log();
    parse_ok("{'payload': {'kernel': '@K', 'future': {'x': [1, 2]}},"
             " 'cpus': {'boot_vcpus': 2, 'max_vcpus': 2, 'core_scheduling': 'Vm',"
             "          'features': {'amx': true}, 'nested': false, 'zzz': null},"
             " 'memory': {'size': 268435456, 'reserve': true, 'hotplugged_size': 0},"
             " 'disks': [{'path': '@D0', 'lock_granularity': 'Full', 'pci_device_id': 3,"
             "            'queue_affinity': [{'queue_index': 0, 'host_cpus': [1]}]}],"
             " 'Memory': {'size': 'not even a number'}, 'sgx_epc': [], 'gdb': false,"
             " 'something_new': [{'deep': {'deeper': [true]}}]}", &cfg);
    assert_int_equal(cfg.cpus.boot, 2);
    /* Members match case-sensitively, as serde's: "Memory" is unknown. */
    assert_int_equal(cfg.memory.size, 256ull << 20);
    assert_int_equal(cfg.ndisks, 1);
    assert_null(strstr(read_log(), "warn"));
    config_free(&cfg);

    /* Ignored sections warn only when they ask for something. */
    clear_log();
    parse_ok("{'payload': {'kernel': '@K'}, 'fs': [], 'devices': [], 'vsock': {},"
             " 'watchdog': false, 'pvpanic': true, 'iommu': true, 'numa': [{'guest_numa_id': 0}],"
             " 'landlock_enable': true, 'tpm': {'socket': '/x'}}", &cfg);
    const char *log = read_log();
    assert_int_equal(count(log, "warn:"), 5);
    assert_int_equal(count(log, "'pvpanic' is not supported"), 1);
    assert_int_equal(count(log, "'iommu' is not supported"), 1);
    assert_int_equal(count(log, "'numa' is not supported"), 1);
    assert_int_equal(count(log, "'landlock_enable' is not supported"), 1);
    assert_int_equal(count(log, "'tpm' is not supported"), 1);
    config_free(&cfg);
}

/* ---- errors ------------------------------------------------------------------ */

struct bad {
    const char *body;
    const char *err; /* what the message starts with */
};

static const struct bad bad_bodies[] = {
    /* payload */
    {"{'payload': {'kernel': '@K', 'firmware': '@K'}}", "--firmware: cannot be used with --kernel"},
    {"{'payload': {'cmdline': 'x'}}", "payload: kernel or firmware is required"},
    {"{'payload': {'kernel': '@K', 'igvm': '/x'}}", "payload.igvm: not supported"},
    {"{'payload': {'kernel': '@K', 'host_data': 'ab'}}", "payload.host_data: not supported"},
    {"{'payload': {'kernel': 5}}", "payload.kernel: expected a string, got a number"},
    {"{'payload': {'kernel': ''}}", "payload.kernel: must not be empty"},
    {"{'payload': {'kernel': '@K', 'initramfs': ''}}", "payload.initramfs: must not be empty"},
    {"{'payload': {'kernel': '@K', 'cmdline': ['a']}}",
     "payload.cmdline: expected a string, got an array"},
    {"{'payload': 'vmlinux'}", "payload: expected an object, got a string"},
    {"{}", "payload: kernel or firmware is required"},
    {"{'payload': {}}", "payload: kernel or firmware is required"},
    {"{'payload': {'kernel': '@T/none'}}", "--kernel: cannot read '"},
    {"{'payload': {'kernel': '@K', 'initramfs': '@T/none'}}", "--initramfs: cannot read"},
    {"{'payload': {'kernel': '@T'}}", "--kernel: '"},
    /* cpus */
    {"{'cpus': []}", "cpus: expected an object, got an array"},
    {"{'cpus': {'boot_vcpus': 0, 'max_vcpus': 1}}", "cpus.boot_vcpus: must be from 1 to 1024, got 0"},
    {"{'cpus': {'boot_vcpus': 1025, 'max_vcpus': 1}}", "cpus.boot_vcpus: must be from 1 to 1024, got 1025"},
    {"{'cpus': {'boot_vcpus': 1.5, 'max_vcpus': 1}}",
     "cpus.boot_vcpus: expected an integer from 0 to 9007199254740992, got 1.5"},
    {"{'cpus': {'boot_vcpus': -1, 'max_vcpus': 1}}", "cpus.boot_vcpus: expected an integer"},
    {"{'cpus': {'boot_vcpus': 1e300, 'max_vcpus': 1}}", "cpus.boot_vcpus: expected an integer"},
    {"{'cpus': {'boot_vcpus': '2', 'max_vcpus': 1}}",
     "cpus.boot_vcpus: expected an integer, got a string"},
    {"{'cpus': {'boot_vcpus': true, 'max_vcpus': 1}}",
     "cpus.boot_vcpus: expected an integer, got a boolean"},
    {"{'cpus': {'max_vcpus': 1}}", "cpus.boot_vcpus: missing"},
    {"{'cpus': {'boot_vcpus': 1}}", "cpus.max_vcpus: missing"},
    {"{'cpus': {'boot_vcpus': 2, 'max_vcpus': 1}}",
     "cpus.max_vcpus: (1) must not be less than boot_vcpus (2)"},
    {"{'cpus': {'boot_vcpus': 1, 'max_vcpus': 1, 'boot_vcpus': 1}}",
     "cpus.boot_vcpus: given more than once"},
    {"{'cpus': {'boot_vcpus': 1, 'max_vcpus': 1, 'kvm_hyperv': true}}",
     "cpus.kvm_hyperv: not supported"},
    {"{'cpus': {'boot_vcpus': 1, 'max_vcpus': 1, 'kvm_hyperv': 0}}",
     "cpus.kvm_hyperv: expected true or false, got a number"},
    {"{'cpus': {'boot_vcpus': 1, 'max_vcpus': 1, 'max_phys_bits': 60}}",
     "cpus.max_phys_bits: must be from 32 to 52, got 60"},
    {"{'cpus': {'boot_vcpus': 1, 'max_vcpus': 4, 'topology': {'threads_per_core': 1,"
     " 'cores_per_die': 2, 'dies_per_package': 1, 'packages': 1}}}",
     "cpus.topology: describes 2 vCPUs but max_vcpus is 4"},
    {"{'cpus': {'boot_vcpus': 1, 'max_vcpus': 1, 'topology': {'threads_per_core': 1,"
     " 'cores_per_die': 1, 'dies_per_package': 1}}}", "cpus.topology.packages: missing"},
    {"{'cpus': {'boot_vcpus': 1, 'max_vcpus': 1, 'topology': {'threads_per_core': 0,"
     " 'cores_per_die': 1, 'dies_per_package': 1, 'packages': 1}}}",
     "cpus.topology.threads_per_core: must be from 1 to 1024, got 0"},
    {"{'cpus': {'boot_vcpus': 1, 'max_vcpus': 1, 'topology': [1, 1, 1, 1]}}",
     "cpus.topology: expected an object, got an array"},
    /* memory */
    {"{'memory': {'size': '1G'}}", "memory.size: expected an integer, got a string"},
    {"{'memory': {'size': 1073741824.5}}", "memory.size: expected an integer"},
    {"{'memory': {'size': 18446744073709551616}}", "memory.size: expected an integer"},
    {"{'memory': {'shared': true}}", "memory.size: missing"},
    {"{'memory': {'size': 33554433}}", "memory.size: 33554433 is not a multiple of 4 KiB"},
    {"{'memory': {'size': 4096}}", "memory.size: 4096 is below the minimum of 32 MiB"},
    {"{'memory': {'size': 0}}", "memory.size: 0 is below the minimum of 32 MiB"},
    {"{'memory': {'size': 0, 'zones': [{'id': 'mem0', 'size': 1073741824}]}}",
     "memory.zones: not supported"},
    {"{'memory': {'size': 1073741824, 'zones': {}}}",
     "memory.zones: expected an array, got an object"},
    {"{'memory': {'size': 33558528, 'hugepages': true}}",
     "memory.size: must be a multiple of 2 MiB with hugepages, got 33558528"},
    {"{'memory': {'size': 1073741824, 'hugepage_size': 2097152}}",
     "memory.hugepage_size: not supported"},
    {"{'memory': {'size': 1073741824, 'hotplug_method': 'acpi'}}",
     "memory.hotplug_method: \"acpi\" is not one of \"Acpi\", \"VirtioMem\""},
    {"{'memory': {'size': 1073741824, 'shared': 'yes'}}",
     "memory.shared: expected true or false, got a string"},
    {"{'memory': {'size': 1073741824, 'thp': 1}}",
     "memory.thp: expected true or false, got a number"},
    {"{'memory': {'size': 1073741824, 'hotplug_size': -5}}", "memory.hotplug_size: expected an integer"},
    {"{'memory': {'size': 1073741824, 'size': 1073741824}}", "memory.size: given more than once"},
    {"{'payload': {'kernel': '@K'}, 'memory': {'size': 1073741824, 'hotplug_size': 1073741824, "
     "'hotplug_method': 'VirtioMem'}}", "--memory: hotplug_method=virtio-mem is not supported yet"},
    {"{'payload': {'kernel': '@K'}, 'memory': {'size': 1073741824, 'hotplug_size': 100000000}}",
     "--memory: hotplug_size of 100000000 bytes is not a multiple of 128 MiB"},
    {"{'payload': {'kernel': '@K'}, 'memory': {'size': 1073741824, 'hotplug_size': 134217728, "
     "'hotplugged_size': 268435456}}",
     "--memory: hotplugged_size of 268435456 bytes is not a multiple of 128 MiB"},
    {"{'payload': {'kernel': '@K'}, 'memory': {'size': 4503599627370496}}",
     "--memory: size of 4503599627370496 bytes is more than max_phys_bits=46 can address"},
    /* disks */
    {"{'disks': {}}", "disks: expected an array, got an object"},
    {"{'disks': ['@D0']}", "disks[0]: expected an object, got a string"},
    {"{'disks': [{'readonly': true}]}", "disks[0].path: missing"},
    {"{'disks': [{'path': ''}]}", "disks[0].path: must not be empty"},
    {"{'disks': [{'path': '@D0'}, {'path': '@D1', 'vhost_user': true}]}",
     "disks[1].vhost_user: not supported"},
    {"{'disks': [{'path': '@D0', 'iommu': true}]}", "disks[0].iommu: not supported"},
    {"{'disks': [{'path': '@D0', 'image_type': 'Vhdx'}]}",
     "disks[0].image_type: \"Vhdx\" is not supported (\"Raw\" or \"Qcow2\")"},
    {"{'disks': [{'path': '@D0', 'image_type': 'FixedVhd'}]}",
     "disks[0].image_type: \"FixedVhd\" is not supported (\"Raw\" or \"Qcow2\")"},
    {"{'disks': [{'path': '@D0', 'image_type': 'qcow2'}]}",
     "disks[0].image_type: \"qcow2\" is not supported (\"Raw\" or \"Qcow2\")"},
    {"{'disks': [{'path': '@D0', 'backing_files': true}]}",
     "disks[0].backing_files: true needs \"image_type\": \"Qcow2\" (a probed or raw image "
     "never follows a backing file)"},
    {"{'disks': [{'path': '@D0', 'backing_files': true, 'image_type': 'Raw'}]}",
     "disks[0].backing_files: true needs \"image_type\": \"Qcow2\" (a probed or raw image "
     "never follows a backing file)"},
    {"{'disks': [{'path': '@D0', 'backing_files': 1}]}",
     "disks[0].backing_files: expected true or false, got a number"},
    {"{'disks': [{'path': '@D0', 'image_type': 7}]}",
     "disks[0].image_type: expected a string, got a number"},
    {"{'disks': [{'path': '@D0', 'queue_size': 100}]}",
     "disks[0].queue_size: must be a power of two, got 100"},
    {"{'disks': [{'path': '@D0', 'queue_size': 65536}]}",
     "disks[0].queue_size: must be from 2 to 32768, got 65536"},
    {"{'disks': [{'path': '@D0', 'num_queues': 0}]}",
     "disks[0].num_queues: must be from 1 to 64, got 0"},
    {"{'disks': [{'path': '@D0', 'serial': '123456789012345678901'}]}",
     "disks[0].serial: '123456789012345678901' is longer than 20 bytes"},
    {"{'disks': [{'path': '@D0', 'id': 'a'}, {'path': '@D1', 'id': 'a'}]}",
     "disks[1].id: 'a' is used by disks[0]"},
    {"{'disks': [{'path': '@D0', 'pci_segment': 1}]}",
     "disks[0].pci_segment: only segment 0 exists, got 1"},
    {"{'disks': [{'path': '@D0', 'readonly': 'true'}]}",
     "disks[0].readonly: expected true or false, got a string"},
    {"{'payload': {'kernel': '@K'}, 'disks': [{'path': '@T/none'}]}",
     "--disk: cannot open read-write '"},
    /* net */
    {"{'net': [{'mac': 'zz'}]}", "net[0].mac: 'zz' is not a MAC address"},
    {"{'net': [{'mac': '01:00:5e:00:00:01'}]}",
     "net[0].mac: '01:00:5e:00:00:01' is a multicast address"},
    {"{'net': [{'host_mac': '00:00:00:00:00:00'}]}",
     "net[0].host_mac: '00:00:00:00:00:00' is all zeros"},
    {"{'net': [{'ip': '1.2.3'}]}", "net[0].ip: '1.2.3' is not an IPv4 address"},
    {"{'net': [{'ip': '224.0.0.1'}]}", "net[0].ip: '224.0.0.1' cannot be a host address"},
    {"{'net': [{'ip': '10.0.0.1', 'mask': '255.0.255.0'}]}",
     "net[0].mask: '255.0.255.0' is not a netmask"},
    {"{'net': [{'mask': '255.255.255.0'}]}", "net[0].mask: needs ip"},
    {"{'net': [{'num_queues': 3}]}", "net[0].num_queues: must be even"},
    {"{'net': [{'num_queues': 34}]}", "net[0].num_queues: must be from 2 to 32, got 34"},
    {"{'net': [{'queue_size': 100}]}", "net[0].queue_size: must be a power of two, got 100"},
    {"{'net': [{'queue_size': 2048}]}", "net[0].queue_size: must be from 64 to 1024, got 2048"},
    {"{'net': [{'mtu': 67}]}", "net[0].mtu: must be from 68 to 65535, got 67"},
    {"{'net': [{'tap': 'a/b'}]}", "net[0].tap: 'a/b' is not a valid tap name"},
    {"{'net': [{'tap': 'this-is-16-chars'}]}", "net[0].tap: 'this-is-16-chars' is not a valid"},
    {"{'net': [{'id': 'n0'}, {'id': 'n0'}]}", "net[1].id: 'n0' is used by net[0]"},
    {"{'net': [{'tap': 'tap0'}, {'tap': 'tap0'}]}", "net[1].tap: 'tap0' is used by net[0]"},
    {"{'net': [{'id': 'a,b'}]}", "net[0].id: 'a,b' must not contain ',' or ';'"},
    {"{'net': [{'id': ''}]}", "net[0].id: must not be empty"},
    {"{'net': [{'vhost_user': true, 'vhost_socket': '/s'}]}", "net[0].vhost_user: not supported"},
    {"{'net': [{'iommu': true}]}", "net[0].iommu: not supported"},
    {"{'net': [{'vhost_mode': 'Both'}]}", "net[0].vhost_mode: \"Both\" is not one of"},
    {"{'net': [{'pci_segment': 2}]}", "net[0].pci_segment: only segment 0 exists, got 2"},
    {"{'net': [{'fds': 3}]}", "net[0].fds: expected an array, got a number"},
    {"{'net': [{'user': true, 'tap': ''}]}",
     "net[0].tap: cannot be combined with \"user\": true"},
    {"{'net': [{'user': true, 'ip': '10.0.0.1'}]}",
     "net[0].ip: cannot be combined with \"user\": true"},
    {"{'net': [{'hostfwd': ['tcp::1-:2']}]}", "net[0].hostfwd: needs \"user\": true"},
    {"{'net': [{'user': true, 'hostfwd': ['tcp:1.2.3:1-:2']}]}",
     "net[0].hostfwd[0]: bad rule 'tcp:1.2.3:1-:2': host address '1.2.3' is not an IPv4"},
    {"{'net': [{'user': true, 'hostfwd': [5]}]}",
     "net[0].hostfwd[0]: expected a string, got a number"},
    {"{'net': [{'user': true, 'num_queues': 4}]}",
     "net[0].num_queues: user mode serves one queue pair, so it must be 2, got 4"},
    {"{'net': 'tap0'}", "net: expected an array, got a string"},
    {"{'net': [7]}", "net[0]: expected an object, got a number"},
    /* rng, serial, console */
    {"{'rng': {'iommu': false}}", "rng.src: missing"},
    {"{'rng': {'src': '/dev/urandom', 'iommu': true}}", "rng.iommu: not supported"},
    {"{'rng': {'src': ''}}", "rng.src: must not be empty"},
    {"{'payload': {'kernel': '@K'}, 'rng': {'src': '@T/none'}}", "--rng: cannot read"},
    {"{'serial': {'mode': 'Socket', 'socket': '/s'}}", "serial.mode: Socket is not supported"},
    {"{'serial': {'file': '/x'}}", "serial.mode: missing"},
    {"{'serial': {'mode': 'off'}}",
     "serial.mode: \"off\" is not one of \"Off\", \"Null\", \"Tty\", \"File\", \"Pty\", "
     "\"Socket\""},
    {"{'serial': {'mode': 'File'}}", "serial.file: missing (mode File writes to it)"},
    {"{'console': {'mode': 'Tty', 'iommu': true}}", "console.iommu: not supported"},
    {"{'console': 'Tty'}", "console: expected an object, got a string"},
    {"{'payload': {'kernel': '@K'}, 'serial': {'mode': 'Tty'}, 'console': {'mode': 'Tty'}}",
     "--serial tty and --console tty cannot be used together"},
    {"{'payload': {'kernel': '@K'}, 'console': {'mode': 'File', 'file': '@T/none/x'}}",
     "--console: directory of '"},
    /* ignored sections keep their types */
    {"{'vsock': 5}", "vsock: expected an object, got a number"},
    {"{'fs': {}}", "fs: expected an array, got an object"},
    {"{'iommu': 'no'}", "iommu: expected true or false, got a string"},
    {"{'watchdog': null, 'pvpanic': 1}", "pvpanic: expected true or false, got a number"},
    {"{'vsock': {}, 'vsock': {}}", "vsock: given more than once"},
    /* the body itself */
    {"[]", "body: expected an object, got an array"},
    {"\"x\"", "body: expected an object, got a string"},
    {"", "body: empty"},
    {"   ", "body: not valid JSON"},
    {"{", "body: not valid JSON"},
    {"nul", "body: not valid JSON"},
    {"{'payload': {'kernel': '@K'},}", "body: not valid JSON"},
    {"{}x", "body: data after the JSON value at byte 2"},
    {"{} {}", "body: data after the JSON value at byte 3"},
    {"\x01{}", "body: control character 0x01 at byte 0"},
    {"{'payload': {'kernel': 'a\tb'}}", "body: control character 0x09 at byte 25"},
    {"{'payload': {'kernel': 'a\\u0000b'}}", "body: \\u0000 in a string at byte 25"},
    {"{'payload': {'kernel': '\xff'}}", "body: invalid UTF-8 at byte 24"},
    {"{'payload': {'kernel': '\xc0\xaf'}}", "body: invalid UTF-8 at byte 24"},
    {"{'payload': {'kernel': '\xed\xa0\x80'}}", "body: invalid UTF-8 at byte 24"},
    {"{'payload': {'kernel': '\xe2\x82'}}", "body: invalid UTF-8 at byte 24"},
    {"{'payload': {'kernel': '\\ud800'}}", "body: not valid JSON"},
};

static void test_errors_name_their_path(void **state)
{
    for (size_t i = 0; i < sizeof(bad_bodies) / sizeof(bad_bodies[0]); i++) {
        struct vm_config cfg;
        char err[512];
        memset(err, 0, sizeof(err));
        char *want = expand_q(bad_bodies[i].err, 0);
        int r = parse(bad_bodies[i].body, &cfg, err, sizeof(err));
        if (r != -1 || strncmp(err, want, strlen(want)) != 0)
            fail_msg("body %s\n  want '%s...'\n  got  %d '%s'", bad_bodies[i].body, want, r,
                     err);
        free(want);
        config_free(&cfg);
    }
}

static void test_too_many_items(void **state)
{
    /* One more than the limits; the error comes before any item is read. */
    char body[4096] = "{'disks': [";
    for (int i = 0; i < CONFIG_MAX_DISKS + 1; i++)
        strcat(body, i ? ", {'path': '@D0'}" : "{'path': '@D0'}");
    strcat(body, "]}");
    struct vm_config cfg;
    char err[256];
    assert_int_equal(parse(body, &cfg, err, sizeof(err)), -1);
    assert_string_equal(err, "disks: more than 16 items");
    config_free(&cfg);

    strcpy(body, "{'net': [");
    for (int i = 0; i < CONFIG_MAX_NETS + 1; i++)
        strcat(body, i ? ", {}" : "{}");
    strcat(body, "]}");
    assert_int_equal(parse(body, &cfg, err, sizeof(err)), -1);
    assert_string_equal(err, "net: more than 16 items");
    config_free(&cfg);

    /* At the limit it is fine (and every item is freed). */
    strcpy(body, "{'payload': {'kernel': '@K'}, 'net': [");
    for (int i = 0; i < CONFIG_MAX_NETS; i++)
        strcat(body, i ? ", {'user': true}" : "{'user': true}");
    strcat(body, "]}");
    parse_ok(body, &cfg);
    assert_int_equal(cfg.nnets, CONFIG_MAX_NETS);
    config_free(&cfg);

    /* The command line's cmdline limit (64 KiB with its NUL). */
    size_t n = 0x10000;
    char *big = malloc(n + 64);
    assert_non_null(big);
    int k = sprintf(big, "{'payload': {'kernel': '@K', 'cmdline': '");
    memset(big + k, 'a', n);
    strcpy(big + k + n, "'}}");
    assert_int_equal(parse(big, &cfg, err, sizeof(err)), -1);
    assert_string_equal(err, "payload.cmdline: too long (65536 bytes, at most 65535)");
    config_free(&cfg);
    strcpy(big + k + n - 1, "'}}");
    parse_ok(big, &cfg);
    assert_int_equal(strlen(cfg.cmdline), n - 1);
    config_free(&cfg);
    free(big);
}

/* Strings the pre-scan must let through. */
static void test_strings_kept(void **state)
{
    struct vm_config cfg;
    /* An escaped backslash before "u0000" is text, not NUL. */
    parse_ok("{'payload': {'kernel': '@K', 'cmdline': 'a\\\\u0000b \\u00e9 \xc3\xa9 \\\"q\\\"'}}",
             &cfg);
    assert_string_equal(cfg.cmdline, "a\\u0000b \xc3\xa9 \xc3\xa9 \"q\"");
    char *s = print_json(vmconfig_to_cjson(&cfg, NULL, NULL));
    struct vm_config back;
    char err[256];
    config_init(&back);
    assert_int_equal(vmconfig_from_json(s, strlen(s), &back, err, sizeof(err)), 0);
    assert_string_equal(back.cmdline, cfg.cmdline);
    free(s);
    config_free(&back);
    config_free(&cfg);

    /* A raw NUL byte inside the given length is refused... */
    static const char nul_body[] = "{\"payload\": {\"kernel\": \"a\0b\"}}";
    config_init(&cfg);
    assert_int_equal(vmconfig_from_json(nul_body, sizeof(nul_body) - 1, &cfg, err,
                                        sizeof(err)), -1);
    assert_string_equal(err, "body: control character 0x00 at byte 25");
    config_free(&cfg);
    /* ...and bytes past len are never read. */
    char *k = expand("{'payload': {'kernel': '@K'}}garbage");
    config_init(&cfg);
    assert_int_equal(vmconfig_from_json(k, strlen(k) - 7, &cfg, err, sizeof(err)), 0);
    config_free(&cfg);
    free(k);
}

/* Every proper prefix of a valid body fails cleanly (ASan/LSan watch). */
static void test_truncated_bodies(void **state)
{
    char *json = expand(kata_body);
    size_t end = strrchr(json, '}') - json; /* the last prefix that is still short */
    for (size_t len = 0; len <= end; len++) {
        struct vm_config cfg;
        char err[256];
        err[0] = '\0';
        config_init(&cfg);
        char *copy = malloc(len ? len : 1); /* exact size: a read past len is caught */
        assert_non_null(copy);
        memcpy(copy, json, len);
        if (vmconfig_from_json(copy, len, &cfg, err, sizeof(err)) != -1)
            fail_msg("prefix of %zu bytes accepted", len);
        assert_true(err[0] != '\0');
        config_free(&cfg);
        free(copy);
    }
    free(json);
}

/* Errors never write past errlen, and a NULL buffer is fine. */
static void test_small_error_buffer(void **state)
{
    char *json = expand("{'memory': {'size': 'big'}}");
    for (size_t errlen = 0; errlen < 40; errlen++) {
        char buf[64];
        memset(buf, 0x5a, sizeof(buf));
        struct vm_config cfg;
        config_init(&cfg);
        assert_int_equal(vmconfig_from_json(json, strlen(json), &cfg, buf, errlen), -1);
        for (size_t i = errlen; i < sizeof(buf); i++)
            assert_int_equal((unsigned char)buf[i], 0x5a);
        if (errlen)
            assert_non_null(memchr(buf, '\0', errlen));
        config_free(&cfg);
    }
    struct vm_config cfg;
    config_init(&cfg);
    assert_int_equal(vmconfig_from_json(json, strlen(json), &cfg, NULL, 0), -1);
    config_free(&cfg);
    free(json);
}

/* ---- NetConfig (vm.add-net) -------------------------------------------------- */

static int net_parse(const char *body, struct net_config *nc, int *fds, char *err,
                     size_t errlen)
{
    char *json = expand(body);
    memset(nc, 0, sizeof(*nc));
    int r = netconfig_from_json(json, strlen(json), nc, fds, err, errlen);
    free(json);
    return r;
}

static void net_round_trip(const struct net_config *nc)
{
    char *s = print_json(netconfig_to_cjson(nc));
    struct net_config back;
    char err[256];
    int fds = -1;
    memset(&back, 0, sizeof(back));
    if (netconfig_from_json(s, strlen(s), &back, &fds, err, sizeof(err)) != 0)
        fail_msg("%s\n%s", err, s);
    assert_int_equal(fds, 0);
    net_eq(nc, &back);
    net_config_free(&back);
    free(s);
}

static void test_netconfig_kata(void **state)
{
    /* integrations.md §1.6: the Go defaults Kata sends with its tap fd. */
    struct net_config nc;
    char err[256];
    int fds = -1;
    clear_log();
    int r = net_parse("{'ip': '192.168.249.1', 'mask': '255.255.255.0',"
                      " 'mac': '52:54:00:aa:bb:cc', 'iommu': false, 'num_queues': 2,"
                      " 'queue_size': 256, 'vhost_user': false, 'vhost_mode': 'Client',"
                      " 'offload_tso': true, 'offload_ufo': true, 'offload_csum': true,"
                      " 'rate_limiter_config': {'bandwidth': {'size': 1000, 'refill_time': 100},"
                      "                         'ops': {'size': 10, 'refill_time': 100}}}",
                      &nc, &fds, err, sizeof(err));
    if (r != 0)
        fail_msg("%s", err);
    assert_int_equal(fds, 0);
    assert_true(nc.ip_given && nc.mask_given && nc.mac_given);
    assert_int_equal(nc.ip, htonl(0xc0a8f901));
    static const uint8_t mac[6] = {0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc};
    assert_memory_equal(nc.mac, mac, 6);
    assert_int_equal(nc.num_queues, 2);
    assert_int_equal(nc.queue_size, 256);
    assert_null(nc.tap);
    assert_int_equal(nc.nfds, 0);
    assert_int_equal(count(read_log(), "rate_limiter_config: rate limiting is not supported"), 1);
    net_round_trip(&nc);
    net_config_free(&nc);
    net_config_free(&nc); /* harmless twice */

    /* fds in the body are reported and ignored. */
    r = net_parse("{'mac': '52:54:00:aa:bb:cc', 'fds': [3, 4]}", &nc, &fds, err, sizeof(err));
    assert_int_equal(r, 0);
    assert_int_equal(fds, 1);
    assert_int_equal(nc.nfds, 0);
    net_config_free(&nc);
    r = net_parse("{'fds': []}", &nc, NULL, err, sizeof(err));
    assert_int_equal(r, 0);
    net_config_free(&nc);
}

static void test_netconfig_libvirt(void **state)
{
    /* integrations.md §2.2 (virCHMonitorBuildNetJson). */
    struct net_config nc;
    char err[256];
    int fds = -1;
    assert_int_equal(net_parse("{'id': 'net_0', 'ip': '10.0.0.1', 'mask': '255.255.255.0',"
                               " 'mac': '52:54:00:11:22:33', 'num_queues': 4,"
                               " 'queue_size': 1024, 'mtu': 1500}",
                               &nc, &fds, err, sizeof(err)), 0);
    assert_string_equal(nc.id, "net_0");
    assert_int_equal(nc.num_queues, 4);
    assert_int_equal(nc.queue_size, 1024);
    assert_int_equal(nc.mtu, 1500);
    assert_true(nc.offload_tso && nc.offload_ufo && nc.offload_csum);
    net_round_trip(&nc);
    net_config_free(&nc);

    /* The defaults of an empty body: --net's. */
    assert_int_equal(net_parse("{}", &nc, &fds, err, sizeof(err)), 0);
    assert_int_equal(nc.num_queues, 2);
    assert_int_equal(nc.queue_size, 256);
    assert_true(nc.offload_tso && nc.offload_ufo && nc.offload_csum);
    assert_false(nc.ip_given || nc.mask_given || nc.mac_given);
    net_round_trip(&nc);
    net_config_free(&nc);

    /* Errors name the member; the body is the root. */
    static const struct bad bad[] = {
        {"{'iommu': true}", "iommu: not supported"},
        {"{'mac': 'x'}", "mac: 'x' is not a MAC address"},
        {"{'num_queues': '2'}", "num_queues: expected an integer, got a string"},
        {"{'user': true, 'hostfwd': ['tcp::0-:1']}", "hostfwd[0]: bad rule 'tcp::0-:1'"},
        {"[]", "body: expected an object, got an array"},
        {"{\"mac\": \"52:54:00:11:22:33\"", "body: not valid JSON"},
        {"", "body: empty"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (net_parse(bad[i].body, &nc, &fds, err, sizeof(err)) != -1 ||
            strncmp(err, bad[i].err, strlen(bad[i].err)) != 0)
            fail_msg("body %s: want '%s', got '%s'", bad[i].body, bad[i].err, err);
        net_config_free(&nc);
    }
}

static void test_netconfig_unique(void **state)
{
    struct vm_config cfg;
    parse_ok("{'payload': {'kernel': '@K'}, 'net': [{'id': 'n0', 'tap': 'tap0'}, {}]}", &cfg);
    struct net_config nc;
    char err[256];
    assert_int_equal(net_parse("{'id': 'n0'}", &nc, NULL, err, sizeof(err)), 0);
    assert_int_equal(netconfig_check_unique(&cfg, &nc, err, sizeof(err)), -1);
    assert_string_equal(err, "id: 'n0' is used by net[0]");
    net_config_free(&nc);
    assert_int_equal(net_parse("{'tap': 'tap0', 'id': 'n1'}", &nc, NULL, err, sizeof(err)), 0);
    assert_int_equal(netconfig_check_unique(&cfg, &nc, err, sizeof(err)), -1);
    assert_string_equal(err, "tap: 'tap0' is used by net[0]");
    net_config_free(&nc);
    assert_int_equal(net_parse("{'tap': 'tap1', 'id': 'n1'}", &nc, NULL, err, sizeof(err)), 0);
    assert_int_equal(netconfig_check_unique(&cfg, &nc, err, sizeof(err)), 0);
    /* A net already in the config is not a duplicate of itself. */
    assert_int_equal(netconfig_check_unique(&cfg, &cfg.nets[0], err, sizeof(err)), 0);
    net_config_free(&nc);
    config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kata_body),
        cmocka_unit_test(test_libvirt_body),
        cmocka_unit_test(test_minimal_defaults),
        cmocka_unit_test(test_rich_round_trip),
        cmocka_unit_test(test_output_shape),
        cmocka_unit_test(test_cli_config_fixpoint),
        cmocka_unit_test(test_unknown_fields_ignored),
        cmocka_unit_test(test_errors_name_their_path),
        cmocka_unit_test(test_too_many_items),
        cmocka_unit_test(test_strings_kept),
        cmocka_unit_test(test_truncated_bodies),
        cmocka_unit_test(test_small_error_buffer),
        cmocka_unit_test(test_netconfig_kata),
        cmocka_unit_test(test_netconfig_libvirt),
        cmocka_unit_test(test_netconfig_unique),
    };
    return cmocka_run_group_tests(tests, setup_files, teardown_files);
}
