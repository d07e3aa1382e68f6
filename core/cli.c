/*
 * Cloud Hypervisor-compatible command line: argv -> struct vm_config.
 *
 * Two phases: the loop turns every option into config fields and checks
 * syntax; config_validate() (config_check.c, shared with the REST API)
 * then checks what needs the whole picture (required options, cross-option
 * limits, files on disk), so "--kernel missing
 * --help" still prints help.  Sub-option strings go through cli_opts.c,
 * which the REST API will share.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_opts.h"
#include "layout.h"
#include "net/net_addr.h"
#include "net/net_check.h"

#include "config_limits.h"

struct cli_state {
    struct vm_config *cfg;
    int ch_name; /* run as "cloud-hypervisor" */
    FILE *out;
    char *err;
    size_t errlen;
    int list_plugins; /* --device help was given */
};

enum opt_arg {
    ARG_NONE,     /* --help */
    ARG_ONE,      /* --kernel PATH */
    ARG_OPTIONAL, /* --rng [src=PATH] */
    ARG_MANY,     /* --disk A B C (clap num_args(1..)); may also repeat */
};

/* Returns CLI_OK, CLI_EXIT_OK or CLI_ERROR. */
typedef enum cli_result (*opt_fn)(struct cli_state *st, const char *ctx,
                                  const char *val);

struct opt_def {
    const char *name;  /* "--kernel" */
    char short_name;   /* 'h', or 0 */
    enum opt_arg arg;
    opt_fn fn;
};

static enum cli_result fail(struct cli_state *st, const char *ctx,
                            const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static enum cli_result fail(struct cli_state *st, const char *ctx,
                            const char *fmt, ...)
{
    struct cli_err e = { .ctx = ctx, .buf = st->err, .len = st->errlen };
    va_list ap;
    va_start(ap, fmt);
    cli_err_vset(&e, fmt, ap);
    va_end(ap);
    return CLI_ERROR;
}

static struct cli_err errsink(struct cli_state *st, const char *ctx)
{
    return (struct cli_err){ .ctx = ctx, .buf = st->err, .len = st->errlen };
}

static enum cli_result set_string(struct cli_state *st, const char *ctx,
                                  char **dst, const char *val, int allow_empty)
{
    if (!allow_empty && val[0] == '\0')
        return fail(st, ctx, "empty value");
    free(*dst);
    *dst = strdup(val);
    if (!*dst)
        return fail(st, ctx, "out of memory");
    return CLI_OK;
}

/* ---- one function per option ------------------------------------------ */

static enum cli_result opt_kernel(struct cli_state *st, const char *ctx, const char *val)
{
    return set_string(st, ctx, &st->cfg->kernel, val, 0);
}

static enum cli_result opt_firmware(struct cli_state *st, const char *ctx, const char *val)
{
    return set_string(st, ctx, &st->cfg->firmware, val, 0);
}

static enum cli_result opt_initramfs(struct cli_state *st, const char *ctx, const char *val)
{
    return set_string(st, ctx, &st->cfg->initramfs, val, 0);
}

static enum cli_result opt_cmdline(struct cli_state *st, const char *ctx, const char *val)
{
    size_t n = strlen(val);
    if (n >= LAYOUT_CMDLINE_MAX)
        return fail(st, ctx, "too long (%zu bytes, at most %llu)", n,
                    (unsigned long long)LAYOUT_CMDLINE_MAX - 1);
    return set_string(st, ctx, &st->cfg->cmdline, val, 1);
}

static enum cli_result opt_log_file(struct cli_state *st, const char *ctx, const char *val)
{
    return set_string(st, ctx, &st->cfg->log_file, val, 0);
}

/*
 * --api-socket and --event-monitor: path=PATH, fd=N, or a bare path (CH).
 * An inherited fd must be open now; what it is gets checked when used.
 */
static enum cli_result opt_path_or_fd(struct cli_state *st, const char *ctx, const char *val,
                                      char **path, int *fd)
{
    if (val[0] == '\0')
        return fail(st, ctx, "empty value");
    if (!strchr(val, '='))
        return set_string(st, ctx, path, val, 0);
    static const struct cli_opt_spec spec[] = {
        { "path", CLI_OPT_VALUE },
        { "fd", CLI_OPT_VALUE },
        { NULL, CLI_OPT_VALUE },
    };
    struct cli_err e = errsink(st, ctx);
    struct cli_opts o;
    if (cli_opts_parse(&o, val, spec, &e) < 0)
        return CLI_ERROR;
    enum cli_result r = CLI_ERROR;
    const struct cli_opt *p = cli_opts_find(&o, "path");
    uint32_t n = UINT32_MAX;
    if (cli_opts_get_u32(&o, "fd", 0, INT32_MAX, &n, &e) < 0)
        goto out;
    if (p && n != UINT32_MAX) {
        fail(st, ctx, "give path= or fd=, not both: '%s'", val);
        goto out;
    }
    if (p) {
        r = set_string(st, ctx, path, p->value, 0);
    } else if (n != UINT32_MAX) {
        if (fcntl((int)n, F_GETFD) < 0) {
            fail(st, ctx, "fd=%u is not an open file descriptor", n);
            goto out;
        }
        *fd = (int)n;
        r = CLI_OK;
    } else {
        fail(st, ctx, "expected path=<path> or fd=<fd>, got '%s'", val);
    }
out:
    cli_opts_free(&o);
    return r;
}

static enum cli_result opt_api_socket(struct cli_state *st, const char *ctx, const char *val)
{
    return opt_path_or_fd(st, ctx, val, &st->cfg->api_socket_path, &st->cfg->api_socket_fd);
}

static enum cli_result opt_event_monitor(struct cli_state *st, const char *ctx, const char *val)
{
    return opt_path_or_fd(st, ctx, val, &st->cfg->event_monitor_path,
                          &st->cfg->event_monitor_fd);
}

static enum cli_result opt_seccomp(struct cli_state *st, const char *ctx, const char *val)
{
    static const char *const ok[] = {"true", "false", "log", "errno"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (strcmp(val, ok[i]) == 0)
            return set_string(st, ctx, &st->cfg->seccomp, val, 0);
    return fail(st, ctx, "expected true, false, log or errno, got '%s'", val);
}

static enum cli_result opt_landlock(struct cli_state *st, const char *ctx, const char *val)
{
    st->cfg->landlock = 1;
    return CLI_OK;
}

static enum cli_result opt_landlock_rules(struct cli_state *st, const char *ctx,
                                          const char *val)
{
    static const struct cli_opt_spec spec[] = {
        { "path", CLI_OPT_VALUE },
        { "access", CLI_OPT_VALUE },
        { NULL, CLI_OPT_VALUE },
    };
    struct vm_config *cfg = st->cfg;
    if (cfg->nlandlock_rules >= CONFIG_MAX_LANDLOCK_RULES)
        return fail(st, ctx, "too many rules (at most %d), at '%s'", CONFIG_MAX_LANDLOCK_RULES,
                    val);
    struct cli_err e = errsink(st, ctx);
    struct cli_opts o;
    if (cli_opts_parse(&o, val, spec, &e) < 0)
        return CLI_ERROR;
    enum cli_result r = CLI_ERROR;
    const struct cli_opt *path = cli_opts_find(&o, "path");
    const struct cli_opt *access = cli_opts_find(&o, "access");
    int acc = 0;
    if (!path || !path->value || !path->value[0]) {
        fail(st, ctx, "missing path= in '%s'", val);
        goto out;
    }
    if (!access || !access->value) {
        fail(st, ctx, "missing access= in '%s' (r, w or rw)", val);
        goto out;
    }
    if (strcmp(access->value, "r") == 0)
        acc = LANDLOCK_RULE_READ;
    else if (strcmp(access->value, "w") == 0)
        acc = LANDLOCK_RULE_WRITE;
    else if (strcmp(access->value, "rw") == 0)
        acc = LANDLOCK_RULE_READ | LANDLOCK_RULE_WRITE;
    else {
        fail(st, ctx, "access must be r, w or rw, got '%s'", access->value);
        goto out;
    }
    struct landlock_rule *lr = &cfg->landlock_rules[cfg->nlandlock_rules];
    lr->path = strdup(path->value);
    if (!lr->path) {
        fail(st, ctx, "out of memory");
        goto out;
    }
    lr->access = acc;
    cfg->nlandlock_rules++;
    r = CLI_OK;
out:
    cli_opts_free(&o);
    return r;
}

static enum cli_result opt_plugin_dir(struct cli_state *st, const char *ctx, const char *val)
{
    return set_string(st, ctx, &st->cfg->plugin_dir, val, 0);
}

/* "T:C:D:P", each 1..CLI_MAX_VCPUS. */
static int parse_topology(const char *s, uint32_t out[4])
{
    const char *p = s;
    for (int i = 0; i < 4; i++) {
        const char *sep = strchr(p, ':');
        size_t n = sep ? (size_t)(sep - p) : strlen(p);
        if ((i < 3) != (sep != NULL) || n == 0 || n > 10)
            return -1;
        char num[11];
        memcpy(num, p, n);
        num[n] = '\0';
        if (cli_parse_u32(num, &out[i]) < 0 || out[i] < 1 || out[i] > CLI_MAX_VCPUS)
            return -1;
        p = sep ? sep + 1 : p + n;
    }
    return 0;
}

static enum cli_result opt_cpus(struct cli_state *st, const char *ctx, const char *val)
{
    static const struct cli_opt_spec spec[] = {
        { "boot", CLI_OPT_VALUE },
        { "max", CLI_OPT_VALUE },
        { "topology", CLI_OPT_VALUE },
        { "max_phys_bits", CLI_OPT_VALUE },
        { NULL, CLI_OPT_VALUE },
    };
    struct cli_err e = errsink(st, ctx);
    struct cli_opts o;
    if (cli_opts_parse(&o, val, spec, &e) < 0)
        return CLI_ERROR;

    struct cpus_config *c = &st->cfg->cpus;
    enum cli_result r = CLI_ERROR;
    uint32_t boot = 1, max = 0, bits = c->max_phys_bits;
    if (cli_opts_get_u32(&o, "boot", 1, CLI_MAX_VCPUS, &boot, &e) < 0 ||
        cli_opts_get_u32(&o, "max", 1, CLI_MAX_VCPUS, &max, &e) < 0 ||
        cli_opts_get_u32(&o, "max_phys_bits", CLI_MIN_PHYS_BITS, CLI_MAX_PHYS_BITS,
                         &bits, &e) < 0)
        goto out;
    if (max == 0)
        max = boot;
    if (max < boot) {
        fail(st, ctx, "max (%u) must not be less than boot (%u) in '%s'", max, boot, val);
        goto out;
    }
    const struct cli_opt *topo = cli_opts_find(&o, "topology");
    if (topo) {
        uint32_t t[4];
        if (parse_topology(topo->value, t) < 0) {
            fail(st, ctx, "bad topology '%s' (expected <threads_per_core>:"
                 "<cores_per_die>:<dies_per_package>:<packages>, each 1-%u)",
                 topo->value, CLI_MAX_VCPUS);
            goto out;
        }
        /* Each factor is <= 1024, so the product fits in 64 bits. */
        uint64_t product = (uint64_t)t[0] * t[1] * t[2] * t[3];
        if (product != max) {
            fail(st, ctx, "topology '%s' describes %llu vCPUs but max is %u",
                 topo->value, (unsigned long long)product, max);
            goto out;
        }
        c->threads_per_core = t[0];
        c->cores_per_die = t[1];
        c->dies_per_package = t[2];
        c->packages = t[3];
        c->topology_set = 1;
    } else {
        /* Cloud Hypervisor's default: one socket, one core per vCPU. */
        c->threads_per_core = 1;
        c->cores_per_die = max;
        c->dies_per_package = 1;
        c->packages = 1;
        c->topology_set = 0;
    }
    c->boot = boot;
    c->max = max;
    c->max_phys_bits = bits;
    r = CLI_OK;
out:
    cli_opts_free(&o);
    return r;
}

static enum cli_result opt_memory(struct cli_state *st, const char *ctx, const char *val)
{
    static const struct cli_opt_spec spec[] = {
        { "size", CLI_OPT_VALUE },
        { "shared", CLI_OPT_VALUE },
        { "hugepages", CLI_OPT_VALUE },
        { "prefault", CLI_OPT_VALUE },
        { "mergeable", CLI_OPT_VALUE },
        { "thp", CLI_OPT_VALUE },
        { "hotplug_method", CLI_OPT_VALUE },
        { "hotplug_size", CLI_OPT_VALUE },
        { "hotplugged_size", CLI_OPT_VALUE },
        { NULL, CLI_OPT_VALUE },
    };
    struct cli_err e = errsink(st, ctx);
    struct cli_opts o;
    if (cli_opts_parse(&o, val, spec, &e) < 0)
        return CLI_ERROR;

    struct memory_config *m = &st->cfg->memory;
    enum cli_result r = CLI_ERROR;
    const struct cli_opt *method = cli_opts_find(&o, "hotplug_method");
    if (method) {
        if (strcmp(method->value, "acpi") == 0) {
            m->hotplug_method = MEM_HOTPLUG_ACPI;
        } else if (strcmp(method->value, "virtio-mem") == 0) {
            m->hotplug_method = MEM_HOTPLUG_VIRTIO_MEM;
        } else {
            fail(st, ctx, "hotplug_method must be acpi or virtio-mem, got '%s'", method->value);
            goto out;
        }
    }
    static const char *const hp_keys[2] = {"hotplug_size", "hotplugged_size"};
    uint64_t *hp_vals[2] = {&m->hotplug_size, &m->hotplugged_size};
    for (int i = 0; i < 2; i++) {
        const struct cli_opt *opt = cli_opts_find(&o, hp_keys[i]);
        if (opt && cli_parse_size(opt->value, hp_vals[i]) < 0) {
            fail(st, ctx, "bad %s '%s' (expected a number with an optional K/M/G/T suffix)",
                 hp_keys[i], opt->value);
            goto out;
        }
    }
    if (cli_opts_get_bool(&o, "shared", &m->shared, &e) < 0 ||
        cli_opts_get_bool(&o, "hugepages", &m->hugepages, &e) < 0 ||
        cli_opts_get_bool(&o, "prefault", &m->prefault, &e) < 0 ||
        cli_opts_get_bool(&o, "mergeable", &m->mergeable, &e) < 0 ||
        cli_opts_get_bool(&o, "thp", &m->thp, &e) < 0)
        goto out;
    const struct cli_opt *size = cli_opts_find(&o, "size");
    if (size) {
        uint64_t bytes;
        if (cli_parse_size(size->value, &bytes) < 0) {
            fail(st, ctx, "bad size '%s' (expected a number > 0 with an optional "
                 "K/M/G/T suffix)", size->value);
            goto out;
        }
        if (bytes % 4096) {
            fail(st, ctx, "size '%s' is not a multiple of 4 KiB", size->value);
            goto out;
        }
        if (bytes < CLI_MIN_MEMORY) {
            fail(st, ctx, "size '%s' is below the minimum of %llu MiB", size->value,
                 CLI_MIN_MEMORY >> 20);
            goto out;
        }
        m->size = bytes;
    }
    /* MAP_HUGETLB with the default huge page size (2 MiB on x86-64). */
    if (m->hugepages && m->size % (2ull << 20)) {
        fail(st, ctx, "size must be a multiple of 2 MiB with hugepages=on, got %llu "
             "bytes", (unsigned long long)m->size);
        goto out;
    }
    r = CLI_OK;
out:
    cli_opts_free(&o);
    return r;
}

/* --serial / --console: exactly one of off|null|tty|pty|file=PATH. */
static enum cli_result opt_chr(struct cli_state *st, const char *ctx, const char *val,
                               struct chr_config *chr)
{
    static const struct cli_opt_spec spec[] = {
        { "off", CLI_OPT_FLAG },
        { "null", CLI_OPT_FLAG },
        { "tty", CLI_OPT_FLAG },
        { "file", CLI_OPT_VALUE },
        /* Cloud Hypervisor has these; we recognise them to say so. */
        { "pty", CLI_OPT_FLAG },
        { "socket", CLI_OPT_VALUE },
        { NULL, CLI_OPT_VALUE },
    };
    struct cli_err e = errsink(st, ctx);
    struct cli_opts o;
    if (cli_opts_parse(&o, val, spec, &e) < 0)
        return CLI_ERROR;

    enum cli_result r = CLI_ERROR;
    if (o.n != 1) {
        fail(st, ctx, "expected one of off|null|tty|pty|file=<path>, got '%s'", val);
        goto out;
    }
    const struct cli_opt *it = &o.items[0];
    if (strcmp(it->key, "socket") == 0) {
        fail(st, ctx, "'%s' is not supported yet", it->raw);
        goto out;
    }
    free(chr->path);
    chr->path = NULL;
    if (strcmp(it->key, "off") == 0) {
        chr->mode = CHR_OFF;
    } else if (strcmp(it->key, "null") == 0) {
        chr->mode = CHR_NULL;
    } else if (strcmp(it->key, "tty") == 0) {
        chr->mode = CHR_TTY;
    } else if (strcmp(it->key, "pty") == 0) {
        chr->mode = CHR_PTY;
    } else {
        chr->mode = CHR_FILE;
        chr->path = strdup(it->value);
        if (!chr->path) {
            chr->mode = CHR_OFF;
            fail(st, ctx, "out of memory");
            goto out;
        }
    }
    r = CLI_OK;
out:
    cli_opts_free(&o);
    return r;
}

static enum cli_result opt_serial(struct cli_state *st, const char *ctx, const char *val)
{
    return opt_chr(st, ctx, val, &st->cfg->serial);
}

static enum cli_result opt_console(struct cli_state *st, const char *ctx, const char *val)
{
    st->cfg->console_given = 1;
    return opt_chr(st, ctx, val, &st->cfg->console);
}

static enum cli_result disk_strdup(struct cli_state *st, const char *ctx, char **dst,
                                   const struct cli_opt *it)
{
    if (!it)
        return CLI_OK;
    *dst = strdup(it->value);
    return *dst ? CLI_OK : fail(st, ctx, "out of memory");
}

static enum cli_result opt_disk(struct cli_state *st, const char *ctx, const char *val)
{
    static const struct cli_opt_spec spec[] = {
        { "path", CLI_OPT_VALUE },
        { "readonly", CLI_OPT_VALUE },
        { "direct", CLI_OPT_VALUE },
        { "num_queues", CLI_OPT_VALUE },
        { "queue_size", CLI_OPT_VALUE },
        { "id", CLI_OPT_VALUE },
        { "serial", CLI_OPT_VALUE },
        { "image_type", CLI_OPT_VALUE },
        { "backing_files", CLI_OPT_VALUE },
        { NULL, CLI_OPT_VALUE },
    };
    struct vm_config *cfg = st->cfg;
    if (cfg->ndisks >= CONFIG_MAX_DISKS)
        return fail(st, ctx, "too many disks (at most %d), at '%s'", CONFIG_MAX_DISKS, val);

    struct cli_err e = errsink(st, ctx);
    struct cli_opts o;
    if (cli_opts_parse(&o, val, spec, &e) < 0)
        return CLI_ERROR;

    enum cli_result r = CLI_ERROR;
    const struct cli_opt *path = cli_opts_find(&o, "path");
    const struct cli_opt *id = cli_opts_find(&o, "id");
    const struct cli_opt *serial = cli_opts_find(&o, "serial");
    if (!path) {
        fail(st, ctx, "missing path= in '%s'", val);
        goto out;
    }
    if (serial && strlen(serial->value) > CLI_MAX_DISK_SERIAL) {
        fail(st, ctx, "serial '%s' is longer than %u bytes", serial->value,
             CLI_MAX_DISK_SERIAL);
        goto out;
    }
    for (uint32_t i = 0; id && i < cfg->ndisks; i++) {
        if (cfg->disks[i].id && strcmp(cfg->disks[i].id, id->value) == 0) {
            fail(st, ctx, "duplicate id '%s'", id->value);
            goto out;
        }
    }

    /* Count the disk first so config_free releases whatever gets filled. */
    struct disk_config *d = &cfg->disks[cfg->ndisks++];
    memset(d, 0, sizeof(*d));
    d->num_queues = CLI_DISK_QUEUES_PER_VCPU;
    d->queue_size = CLI_DEFAULT_DISK_QUEUE_SIZE;
    if (disk_strdup(st, ctx, &d->path, path) != CLI_OK ||
        disk_strdup(st, ctx, &d->id, id) != CLI_OK ||
        disk_strdup(st, ctx, &d->serial, serial) != CLI_OK)
        goto out;
    if (cli_opts_get_bool(&o, "readonly", &d->readonly, &e) < 0 ||
        cli_opts_get_bool(&o, "direct", &d->direct, &e) < 0 ||
        cli_opts_get_u32(&o, "num_queues", 1, CLI_MAX_DISK_QUEUES, &d->num_queues, &e) < 0 ||
        cli_opts_get_u32(&o, "queue_size", 2, CLI_MAX_QUEUE_SIZE, &d->queue_size, &e) < 0)
        goto out;
    if (d->queue_size & (d->queue_size - 1)) {
        fail(st, ctx, "queue_size must be a power of two, got '%s'",
             cli_opts_find(&o, "queue_size")->value);
        goto out;
    }
    const struct cli_opt *type = cli_opts_find(&o, "image_type");
    if (type && strcmp(type->value, "raw") == 0) {
        d->image_type = DISK_IMAGE_RAW;
    } else if (type && strcmp(type->value, "qcow2") == 0) {
        d->image_type = DISK_IMAGE_QCOW2;
    } else if (type && (strcmp(type->value, "vhd") == 0 || strcmp(type->value, "vhdx") == 0)) {
        fail(st, ctx, "image_type=%s is not supported (raw or qcow2)", type->value);
        goto out;
    } else if (type) {
        fail(st, ctx, "unknown image_type '%s' (raw or qcow2)", type->value);
        goto out;
    }
    if (cli_opts_get_bool(&o, "backing_files", &d->backing_files, &e) < 0)
        goto out;
    /* A probed header is guest-writable data in a raw image: it must never
     * make the host open another file. */
    if (d->backing_files && d->image_type != DISK_IMAGE_QCOW2) {
        fail(st, ctx, "backing_files=on needs image_type=qcow2 (a probed or raw image "
             "never follows a backing file)");
        goto out;
    }
    r = CLI_OK;
out:
    cli_opts_free(&o);
    return r;
}

/* ---- --net ----------------------------------------------------------------- */

/*
 * The items of a list value, "[a,b,c]" or a lone "a", split in place.
 * Returns their number, -1 for an empty item, -2 for more than max.
 */
static int list_items(char *v, char **items, int max)
{
    size_t n = strlen(v);
    if (n >= 2 && v[0] == '[' && v[n - 1] == ']') {
        v[n - 1] = '\0';
        v++;
    }
    int k = 0;
    for (;;) {
        char *comma = strchr(v, ',');
        if (comma)
            *comma = '\0';
        if (*v == '\0')
            return -1;
        if (k == max)
            return -2;
        items[k++] = v;
        if (!comma)
            return k;
        v = comma + 1;
    }
}

static enum cli_result net_mac(struct cli_state *st, const char *ctx,
                               const struct cli_opts *o, const char *key, uint8_t mac[6],
                               int *given)
{
    const struct cli_opt *it = cli_opts_find(o, key);
    if (!it)
        return CLI_OK;
    const char *why = net_check_mac(it->value, mac);
    if (why)
        return fail(st, ctx, "%s '%s' %s", key, it->value, why);
    *given = 1;
    return CLI_OK;
}

static enum cli_result net_addrs(struct cli_state *st, const char *ctx,
                                 const struct cli_opts *o, const char *val,
                                 struct net_config *n)
{
    const struct cli_opt *ip = cli_opts_find(o, "ip");
    const struct cli_opt *mask = cli_opts_find(o, "mask");
    if (mask && !ip)
        return fail(st, ctx, "mask= needs ip= in '%s'", val);
    if (!ip)
        return CLI_OK;
    const char *why = net_check_host_ip(ip->value, &n->ip);
    if (why)
        return fail(st, ctx, "ip '%s' %s", ip->value, why);
    const char *m = mask ? mask->value : CLI_NET_DEFAULT_MASK;
    if ((why = net_check_mask(m, &n->mask)))
        return fail(st, ctx, "mask '%s' %s", m, why);
    n->ip_given = 1;
    n->mask_given = mask != NULL;
    return CLI_OK;
}

static int fd_in_use(const struct vm_config *cfg, int fd)
{
    for (uint32_t i = 0; i < cfg->nnets; i++)
        for (uint32_t j = 0; j < cfg->nets[i].nfds; j++)
            if (cfg->nets[i].fds[j] == fd)
                return 1;
    return 0;
}

static enum cli_result net_fds(struct cli_state *st, const char *ctx, const char *list,
                               struct net_config *n)
{
    char *copy = strdup(list);
    char *items[CONFIG_MAX_NET_FDS];
    if (!copy)
        return fail(st, ctx, "out of memory");
    enum cli_result r = CLI_OK;
    int k = list_items(copy, items, CONFIG_MAX_NET_FDS);
    if (k == -1)
        r = fail(st, ctx, "empty item in fd list '%s'", list);
    else if (k == -2)
        r = fail(st, ctx, "fd list '%s' has more than %d fds", list, CONFIG_MAX_NET_FDS);
    for (int i = 0; r == CLI_OK && i < k; i++) {
        uint32_t fd;
        if (cli_parse_u32(items[i], &fd) < 0 || fd > INT32_MAX) {
            r = fail(st, ctx, "fd '%s' in '%s' is not a non-negative integer", items[i], list);
        } else if (fd_in_use(st->cfg, (int)fd)) {
            r = fail(st, ctx, "fd %u is given twice", fd);
        } else {
            n->fds[n->nfds++] = (int)fd;
        }
    }
    free(copy);
    return r;
}

static enum cli_result net_hostfwd(struct cli_state *st, const char *ctx, const char *list,
                                   struct net_config *n)
{
    char *copy = strdup(list);
    char *items[CONFIG_MAX_HOSTFWD];
    if (!copy)
        return fail(st, ctx, "out of memory");
    enum cli_result r = CLI_OK;
    int k = list_items(copy, items, CONFIG_MAX_HOSTFWD);
    if (k == -1)
        r = fail(st, ctx, "empty rule in hostfwd '%s'", list);
    else if (k == -2)
        r = fail(st, ctx, "hostfwd '%s' has more than %d rules", list, CONFIG_MAX_HOSTFWD);
    for (int i = 0; r == CLI_OK && i < k; i++) {
        char why[96];
        if (net_hostfwd_check(items[i], why, sizeof(why)) < 0) {
            r = fail(st, ctx, "bad hostfwd rule '%s': %s", items[i], why);
        } else if (!(n->hostfwd[n->nhostfwd] = strdup(items[i]))) {
            r = fail(st, ctx, "out of memory");
        } else {
            n->nhostfwd++;
        }
    }
    free(copy);
    return r;
}

/* Whatever user=on rules out, then the tap side. */
static enum cli_result net_backend(struct cli_state *st, const char *ctx,
                                   const struct cli_opts *o, const char *val,
                                   struct net_config *n)
{
    static const char *const tap_only[] = { "tap", "fd", "ip", "mask", "host_mac" };
    const struct cli_opt *tap = cli_opts_find(o, "tap");
    const struct cli_opt *fd = cli_opts_find(o, "fd");
    const struct cli_opt *fwd = cli_opts_find(o, "hostfwd");
    if (n->user) {
        for (size_t i = 0; i < sizeof(tap_only) / sizeof(tap_only[0]); i++) {
            const struct cli_opt *it = cli_opts_find(o, tap_only[i]);
            if (it)
                return fail(st, ctx, "user=on cannot be combined with '%s'", it->raw);
        }
        const struct cli_opt *nq = cli_opts_find(o, "num_queues");
        if (nq && n->num_queues != 2)
            return fail(st, ctx, "user=on serves one queue pair, so num_queues must be 2, "
                        "got '%s'", nq->value);
        n->num_queues = 2;
        return fwd ? net_hostfwd(st, ctx, fwd->value, n) : CLI_OK;
    }
    if (fwd)
        return fail(st, ctx, "hostfwd= needs user=on, in '%s'", val);
    if (tap && tap->value[0]) {
        if (fd)
            return fail(st, ctx, "tap= and fd= cannot be used together in '%s'", val);
        if (!net_tap_name_ok(tap->value))
            return fail(st, ctx, "tap name '%s' is not valid (1-%u characters of A-Z a-z "
                        "0-9 . _ -)", tap->value, CLI_NET_IFNAME_MAX);
        for (uint32_t i = 0; i + 1 < st->cfg->nnets; i++)
            if (st->cfg->nets[i].tap && strcmp(st->cfg->nets[i].tap, tap->value) == 0)
                return fail(st, ctx, "tap '%s' is used by another --net", tap->value);
        if (!(n->tap = strdup(tap->value)))
            return fail(st, ctx, "out of memory");
    }
    if (net_addrs(st, ctx, o, val, n) != CLI_OK ||
        net_mac(st, ctx, o, "host_mac", n->host_mac, &n->host_mac_given) != CLI_OK)
        return CLI_ERROR;
    if (!fd) {
        if (!n->num_queues)
            n->num_queues = 2;
        return CLI_OK;
    }
    if (net_fds(st, ctx, fd->value, n) != CLI_OK)
        return CLI_ERROR;
    if (n->num_queues && n->num_queues != 2 * n->nfds)
        return fail(st, ctx, "fd '%s' gives %u fd%s but num_queues=%u needs %u (one per "
                    "queue pair)", fd->value, n->nfds, n->nfds == 1 ? "" : "s",
                    n->num_queues, n->num_queues / 2);
    n->num_queues = 2 * n->nfds;
    return CLI_OK;
}

static enum cli_result net_fill(struct cli_state *st, const char *ctx,
                                const struct cli_opts *o, const char *val,
                                struct net_config *n)
{
    struct cli_err e = errsink(st, ctx);
    if (cli_opts_get_bool(o, "user", &n->user, &e) < 0 ||
        cli_opts_get_bool(o, "offload_tso", &n->offload_tso, &e) < 0 ||
        cli_opts_get_bool(o, "offload_ufo", &n->offload_ufo, &e) < 0 ||
        cli_opts_get_bool(o, "offload_csum", &n->offload_csum, &e) < 0 ||
        cli_opts_get_u32(o, "mtu", CLI_NET_MIN_MTU, CLI_NET_MAX_MTU, &n->mtu, &e) < 0 ||
        cli_opts_get_u32(o, "num_queues", 2, CONFIG_MAX_NET_QUEUES, &n->num_queues, &e) < 0 ||
        cli_opts_get_u32(o, "queue_size", CLI_NET_MIN_QUEUE_SIZE, CLI_NET_MAX_QUEUE_SIZE,
                         &n->queue_size, &e) < 0)
        return CLI_ERROR;
    if (n->num_queues % 2)
        return fail(st, ctx, "num_queues must be even (an rx and a tx queue per pair), "
                    "got '%s'", cli_opts_find(o, "num_queues")->value);
    if (n->queue_size & (n->queue_size - 1))
        return fail(st, ctx, "queue_size must be a power of two, got '%s'",
                    cli_opts_find(o, "queue_size")->value);
    if (net_mac(st, ctx, o, "mac", n->mac, &n->mac_given) != CLI_OK)
        return CLI_ERROR;

    const struct cli_opt *id = cli_opts_find(o, "id");
    if (id) {
        /* Plugin options are split on ',' (and hostfwd rules on ';'). */
        if (strpbrk(id->value, ",;"))
            return fail(st, ctx, "id '%s' must not contain ',' or ';'", id->value);
        for (uint32_t i = 0; i + 1 < st->cfg->nnets; i++)
            if (st->cfg->nets[i].id && strcmp(st->cfg->nets[i].id, id->value) == 0)
                return fail(st, ctx, "duplicate id '%s'", id->value);
        if (!(n->id = strdup(id->value)))
            return fail(st, ctx, "out of memory");
    }
    return net_backend(st, ctx, o, val, n);
}

static enum cli_result opt_net(struct cli_state *st, const char *ctx, const char *val)
{
    static const struct cli_opt_spec spec[] = {
        { "tap", CLI_OPT_EMPTY_OK },
        { "ip", CLI_OPT_VALUE },
        { "mask", CLI_OPT_VALUE },
        { "mac", CLI_OPT_VALUE },
        { "host_mac", CLI_OPT_VALUE },
        { "mtu", CLI_OPT_VALUE },
        { "num_queues", CLI_OPT_VALUE },
        { "queue_size", CLI_OPT_VALUE },
        { "fd", CLI_OPT_VALUE },
        { "id", CLI_OPT_VALUE },
        { "offload_tso", CLI_OPT_VALUE },
        { "offload_ufo", CLI_OPT_VALUE },
        { "offload_csum", CLI_OPT_VALUE },
        { "user", CLI_OPT_VALUE },
        { "hostfwd", CLI_OPT_VALUE },
        { NULL, CLI_OPT_VALUE },
    };
    struct vm_config *cfg = st->cfg;
    if (cfg->nnets >= CONFIG_MAX_NETS)
        return fail(st, ctx, "too many networks (at most %d), at '%s'", CONFIG_MAX_NETS, val);

    struct cli_err e = errsink(st, ctx);
    struct cli_opts o;
    if (cli_opts_parse(&o, val, spec, &e) < 0)
        return CLI_ERROR;
    /* Count it first so config_free releases whatever gets filled. */
    struct net_config *n = &cfg->nets[cfg->nnets++];
    memset(n, 0, sizeof(*n));
    n->queue_size = CLI_NET_DEFAULT_QUEUE_SIZE;
    n->offload_tso = n->offload_ufo = n->offload_csum = 1;
    enum cli_result r = net_fill(st, ctx, &o, val, n);
    cli_opts_free(&o);
    return r;
}

int cli_parse_disk(const char *val, struct vm_config *cfg, char *err, size_t errlen)
{
    struct cli_state st = { .cfg = cfg, .err = err, .errlen = errlen };
    if (err && errlen)
        err[0] = '\0';
    return opt_disk(&st, NULL, val) == CLI_OK ? 0 : -1;
}

int cli_parse_net(const char *val, struct vm_config *cfg, char *err, size_t errlen)
{
    struct cli_state st = { .cfg = cfg, .err = err, .errlen = errlen };
    if (err && errlen)
        err[0] = '\0';
    return opt_net(&st, NULL, val) == CLI_OK ? 0 : -1;
}

static enum cli_result opt_rng(struct cli_state *st, const char *ctx, const char *val)
{
    static const struct cli_opt_spec spec[] = {
        { "src", CLI_OPT_VALUE },
        { NULL, CLI_OPT_VALUE },
    };
    struct cli_err e = errsink(st, ctx);
    struct cli_opts o;
    if (cli_opts_parse(&o, val, spec, &e) < 0)
        return CLI_ERROR;
    const struct cli_opt *src = cli_opts_find(&o, "src");
    enum cli_result r = set_string(st, ctx, &st->cfg->rng.src,
                                   src ? src->value : CLI_DEFAULT_RNG, 0);
    if (r == CLI_OK)
        st->cfg->rng.enabled = 1;
    cli_opts_free(&o);
    return r;
}

/* Join every token except plugin= with ',' exactly as the user wrote it. */
static char *device_options(const struct cli_opts *o, const struct cli_opt *skip)
{
    size_t len = 1;
    for (size_t i = 0; i < o->n; i++)
        if (&o->items[i] != skip)
            len += strlen(o->items[i].raw) + 1;
    char *s = malloc(len);
    if (!s)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < o->n; i++) {
        if (&o->items[i] == skip)
            continue;
        size_t n = strlen(o->items[i].raw);
        if (k)
            s[k++] = ',';
        memcpy(s + k, o->items[i].raw, n);
        k += n;
    }
    s[k] = '\0';
    return s;
}

static enum cli_result opt_device(struct cli_state *st, const char *ctx, const char *val)
{
    struct vm_config *cfg = st->cfg;
    if (cfg->ndevices >= CONFIG_MAX_DEVICES)
        return fail(st, ctx, "too many devices (at most %d), at '%s'", CONFIG_MAX_DEVICES,
                    val);

    if (strcmp(val, "help") == 0) {
        st->list_plugins = 1; /* after the loop: --plugin-dir may come later */
        return CLI_OK;
    }
    /* No spec: every key but plugin= belongs to the plugin. */
    struct cli_err e = errsink(st, ctx);
    struct cli_opts o;
    if (cli_opts_parse(&o, val, NULL, &e) < 0)
        return CLI_ERROR;

    enum cli_result r = CLI_ERROR;
    const struct cli_opt *plugin = NULL;
    for (size_t i = 0; i < o.n; i++) {
        if (strcmp(o.items[i].key, "plugin") != 0)
            continue;
        if (plugin) {
            fail(st, ctx, "duplicate key 'plugin' in '%s'", val);
            goto out;
        }
        plugin = &o.items[i];
    }
    if (!plugin) {
        fail(st, ctx, "missing plugin= in '%s'", val);
        goto out;
    }
    if (!plugin->value || plugin->value[0] == '\0') {
        fail(st, ctx, "empty plugin= in '%s'", val);
        goto out;
    }

    struct device_config *d = &cfg->devices[cfg->ndevices++];
    d->plugin = strdup(plugin->value);
    d->options = device_options(&o, plugin);
    if (!d->plugin || !d->options) {
        fail(st, ctx, "out of memory");
        goto out;
    }
    r = CLI_OK;
out:
    cli_opts_free(&o);
    return r;
}

static void print_help(FILE *out);

static enum cli_result opt_help(struct cli_state *st, const char *ctx, const char *val)
{
    if (st->out)
        print_help(st->out);
    return CLI_EXIT_OK;
}

static enum cli_result opt_version(struct cli_state *st, const char *ctx, const char *val)
{
    /* libvirt runs `cloud-hypervisor --version` and wants "cloud-hypervisor
     * v<major>.<minor>.<micro>"; its feature checks key off that version. */
    if (st->out && st->ch_name)
        fprintf(st->out, "cloud-hypervisor v%s\n", CLI_CH_API_VERSION);
    else if (st->out)
        fprintf(st->out, "nimbus %s (Cloud Hypervisor API v%s)\n", NIMBUS_VERSION,
                CLI_CH_API_VERSION);
    return CLI_EXIT_OK;
}

static const struct opt_def options[] = {
    { "--kernel", 0, ARG_ONE, opt_kernel },
    { "--firmware", 0, ARG_ONE, opt_firmware },
    { "--initramfs", 0, ARG_ONE, opt_initramfs },
    { "--cmdline", 0, ARG_ONE, opt_cmdline },
    { "--cpus", 0, ARG_ONE, opt_cpus },
    { "--memory", 0, ARG_ONE, opt_memory },
    { "--serial", 0, ARG_ONE, opt_serial },
    { "--console", 0, ARG_ONE, opt_console },
    { "--disk", 0, ARG_MANY, opt_disk },
    { "--net", 0, ARG_MANY, opt_net },
    { "--rng", 0, ARG_OPTIONAL, opt_rng },
    { "--device", 0, ARG_MANY, opt_device },
    { "--log-file", 0, ARG_ONE, opt_log_file },
    { "--plugin-dir", 0, ARG_ONE, opt_plugin_dir },
    { "--api-socket", 0, ARG_ONE, opt_api_socket },
    { "--event-monitor", 0, ARG_ONE, opt_event_monitor },
    { "--seccomp", 0, ARG_ONE, opt_seccomp },
    { "--landlock", 0, ARG_NONE, opt_landlock },
    { "--landlock-rules", 0, ARG_MANY, opt_landlock_rules },
    { "--help", 'h', ARG_NONE, opt_help },
    { "--version", 'V', ARG_NONE, opt_version },
};
#define NOPTIONS (sizeof(options) / sizeof(options[0]))

static void print_help(FILE *out)
{
    fprintf(out,
"nimbus %s\n"
"A KVM virtual machine monitor with Cloud Hypervisor's command line.\n"
"\n"
"Usage: nimbus --kernel <PATH> [OPTIONS]\n"
"       nimbus --disk path=<IMAGE> [OPTIONS]     (boot what the image's boot loader names)\n"
"       nimbus --firmware <PATH> --disk path=<IMAGE> [OPTIONS]\n"
"       nimbus --api-socket <PATH> [--event-monitor <PATH>]   (wait for vm.create)\n"
"\n"
"Options (values may be given as '--opt VALUE' or '--opt=VALUE'; a value that\n"
"starts with '-' needs the second form; options marked [multiple] take several\n"
"space-separated values and may also be repeated):\n"
"      --kernel <PATH>\n"
"          Kernel to boot: a PVH ELF (vmlinux) or a bzImage. Without --kernel\n"
"          and --firmware, nimbus boots the first --disk whose boot loader names a\n"
"          kernel (GRUB's default entry, Boot Loader Specification entries, or\n"
"          /vmlinuz), read in a sandboxed helper; --initramfs and --cmdline then\n"
"          override what the image says.\n"
"      --firmware <PATH>\n"
"          Firmware to enter instead of a kernel: a PVH ELF (such as\n"
"          rust-hypervisor-firmware), loaded and entered like a PVH kernel.\n"
"      --initramfs <PATH>\n"
"          Initial ramdisk.\n"
"      --cmdline <STRING>\n"
"          Kernel command line (at most %llu bytes).\n"
"      --cpus boot=<boot_vcpus>,max=<max_vcpus>,topology=<threads_per_core>:"
"<cores_per_die>:<dies_per_package>:<packages>,max_phys_bits=<bits>\n"
"          vCPUs: boot 1-%u; max (default: boot) is how many vm.resize may\n"
"          bring through ACPI CPU hotplug; the topology product must equal max;\n"
"          max_phys_bits %u-%u. [default: boot=1,max_phys_bits=46]\n"
"      --memory size=<guest_memory_size>,shared=on|off,hugepages=on|off,"
"prefault=on|off,mergeable=on|off,thp=on|off,hotplug_method=acpi,hotplug_size=<size>,"
"hotplugged_size=<size>\n"
"          Guest RAM. Sizes are bytes with an optional K/M/G/T suffix (powers of\n"
"          1024); size is a multiple of 4 KiB and at least %llu MiB (2 MiB\n"
"          multiple with hugepages=on). hotplug_size reserves an area above RAM\n"
"          that vm.resize desired_ram fills through ACPI memory hotplug, in\n"
"          128 MiB blocks (larger above 32 GiB); hotplugged_size of it is\n"
"          there at boot. [default: size=512M,shared=off,hugepages=off,\n"
"          prefault=off,mergeable=off,thp=on]\n"
"      --serial off|null|tty|pty|file=<path>\n"
"          16550 UART on COM1. [default: null]\n"
"      --console off|null|tty|pty|file=<path>\n"
"          virtio console (guest: console=hvc0). Only one of --serial and\n"
"          --console may be tty; --serial tty alone turns the console off;\n"
"          pty prints its /dev/pts path on stderr.\n"
"          [default: tty]\n"
"      --disk path=<disk_image_path>,readonly=on|off,direct=on|off,"
"num_queues=<n>,queue_size=<size>,id=<device_id>,serial=<serial_number>,"
"image_type=raw|qcow2,backing_files=on|off [multiple]\n"
"          virtio-blk disk, at most %d. num_queues 1-%u, queue_size a power of\n"
"          two up to %u, serial at most %u bytes, ids unique. Without image_type the\n"
"          header decides (raw or qcow2; a probed image never follows a backing file);\n"
"          backing_files=on needs image_type=qcow2.\n"
"          [default: readonly=off,direct=off,num_queues=<boot_vcpus>,queue_size=%u]\n"
"      --net tap=<if_name>,ip=<ip_addr>,mask=<net_mask>,mac=<mac_addr>,"
"host_mac=<mac_addr>,mtu=<mtu>,num_queues=<n>,queue_size=<size>,"
"fd=[<fd1>,<fd2>...],id=<device_id>,offload_tso=on|off,offload_ufo=on|off,"
"offload_csum=on|off [multiple]\n"
"      --net user=on,hostfwd=[<rule>,...],mac=<mac_addr>,id=<device_id>,"
"queue_size=<size> [multiple]\n"
"          virtio-net, at most %d. A tap: tap= empty or absent creates one the\n"
"          kernel names vmtapN (CAP_NET_ADMIN; it disappears when nimbus ends),\n"
"          a name attaches to that tap or creates it, fd= hands over open tap\n"
"          queues (IFF_VNET_HDR, one per pair). ip/mask (default mask %s)\n"
"          and host_mac configure the host side, which is brought up. mtu %u-%u;\n"
"          num_queues even, 2-%d (two per queue pair; with fd= two per fd);\n"
"          queue_size a power of two, %u-%u; mac defaults to a random\n"
"          52:xx:xx:xx:xx:xx. user=on: user-mode networking (no privileges;\n"
"          guest 10.0.2.15, gateway and host loopback 10.0.2.2, DNS 10.0.2.3),\n"
"          one queue pair, hostfwd rules [tcp|udp]:[hostaddr]:hostport-\n"
"          [guestaddr]:guestport (at most %d).\n"
"          [default: num_queues=2,queue_size=%u,offload_tso=on,offload_ufo=on,\n"
"          offload_csum=on]\n"
"      --rng [src=<entropy_source_path>]\n"
"          Enable virtio-rng. [default: src=%s]\n"
"      --device plugin=<path_or_name>[,<key>=<value>...] [multiple]\n"
"          Load a device plugin (at most %d); every sub-option except plugin=\n"
"          is passed to the plugin verbatim. '--device help' lists the plugins\n"
"          found (name, version, ABI, options) and exits.\n"
"  -v...\n"
"          More log output: -v info, -vv debug, -vvv trace. [default: warnings]\n"
"      --log-file <PATH>\n"
"          Write the log to PATH instead of stderr.\n"
"      --plugin-dir <DIR>\n"
"          Directory with device plugins.\n"
"      --api-socket <path=<PATH>|fd=<FD>|PATH>\n"
"          Serve Cloud Hypervisor's REST API (/api/v1/...) on a unix socket (created\n"
"          mode 0600; fd= takes a socket the caller made). Without --kernel nimbus waits\n"
"          for vm.create; with it, a guest poweroff leaves nimbus serving until\n"
"          vmm.shutdown. Use nimbus-remote (Cloud Hypervisor's ch-remote) to drive it.\n"
"      --event-monitor <path=<PATH>|fd=<FD>|PATH>\n"
"          Write Cloud Hypervisor's JSON lifecycle events (vm:booted, vm:shutdown, ...).\n"
"      --seccomp true|false|log|errno\n"
"          System-call filters, one per kind of thread (VMM, vCPU, device I/O, API).\n"
"          true (default): a forbidden call stops nimbus with a message naming the\n"
"          call and the thread; log: allowed and logged by the kernel (audit);\n"
"          errno: the call fails with EPERM; false: no filters.\n"
"      --landlock\n"
"          Confine nimbus with Landlock to the files its configuration names\n"
"          (kernel, initramfs, disks, consoles, sockets, plugins), read or write\n"
"          as each needs; anything else fails with 'Permission denied'.\n"
"      --landlock-rules path=<file or dir>,access=r|w|rw [multiple]\n"
"          More paths for --landlock: qcow2 backing files, and files that later\n"
"          API requests (vm.create) name.\n"
"  -h, --help\n"
"          Print this help and exit.\n"
"  -V, --version\n"
"          Print the version and exit.\n"
"\n"
"Booleans accept on|off|true|false. Commas inside [...] or \"...\" do not split\n"
"sub-options.\n"
"\n"
"Plugins named without a '/' are searched for in: --plugin-dir, then $NIMBUS_PLUGIN_DIR,\n"
"then <binary dir>/plugins, then <binary dir>/../lib/nimbus/plugins.\n"
"\n"
"A guest reboot restarts the VM in this process with the same disks, taps and ptys.\n"
"Run as 'cloud-hypervisor' (a link), --version prints Cloud Hypervisor's format.\n"
"\n"
"Exit status: 0 when the guest powers off (or after vmm.shutdown with --api-socket)\n"
"and after --help/--version; 1 on a VM or device error; 2 on a bad command line;\n"
"128+N when ended by signal N (SIGINT, SIGTERM, SIGHUP shut down cleanly).\n",
            NIMBUS_VERSION, (unsigned long long)LAYOUT_CMDLINE_MAX - 1, CLI_MAX_VCPUS,
            CLI_MIN_PHYS_BITS, CLI_MAX_PHYS_BITS, CLI_MIN_MEMORY >> 20, CONFIG_MAX_DISKS,
            CLI_MAX_DISK_QUEUES, CLI_MAX_QUEUE_SIZE, CLI_MAX_DISK_SERIAL,
            CLI_DEFAULT_DISK_QUEUE_SIZE, CONFIG_MAX_NETS, CLI_NET_DEFAULT_MASK,
            CLI_NET_MIN_MTU, CLI_NET_MAX_MTU, CONFIG_MAX_NET_QUEUES, CLI_NET_MIN_QUEUE_SIZE,
            CLI_NET_MAX_QUEUE_SIZE, CONFIG_MAX_HOSTFWD, CLI_NET_DEFAULT_QUEUE_SIZE,
            CLI_DEFAULT_RNG, CONFIG_MAX_DEVICES);
}

/* ---- argv walking --------------------------------------------------------- */

static const struct opt_def *find_long(const char *arg, size_t namelen)
{
    for (size_t i = 0; i < NOPTIONS; i++)
        if (strlen(options[i].name) == namelen &&
            strncmp(options[i].name, arg, namelen) == 0)
            return &options[i];
    return NULL;
}

static const struct opt_def *find_short(char c)
{
    for (size_t i = 0; i < NOPTIONS; i++)
        if (options[i].short_name == c)
            return &options[i];
    return NULL;
}

/* "-v", "-vv", "-vvv"...: */
static int is_verbose_flag(const char *a)
{
    if (a[0] != '-' || a[1] != 'v')
        return 0;
    for (a += 1; *a; a++)
        if (*a != 'v')
            return 0;
    return 1;
}

/* A separate argv entry is a value unless it looks like an option. */
static int is_value(int argc, char **argv, int i)
{
    return i < argc && argv[i] && argv[i][0] != '-';
}

enum cli_result cli_parse(int argc, char **argv, struct vm_config *cfg,
                          FILE *out, char *err, size_t errlen)
{
    struct cli_state st = { .cfg = cfg, .out = out, .err = err, .errlen = errlen };
    if (argc > 0 && argv && argv[0]) {
        const char *base = strrchr(argv[0], '/');
        st.ch_name = strcmp(base ? base + 1 : argv[0], "cloud-hypervisor") == 0;
    }
    if (err && errlen)
        err[0] = '\0';
    int seen[NOPTIONS] = { 0 };

    for (int i = 1; argv && i < argc; i++) {
        const char *a = argv[i];
        if (!a)
            return fail(&st, NULL, "argument %d is NULL", i);
        if (is_verbose_flag(a)) {
            cfg->verbosity += (int)strlen(a) - 1;
            if (cfg->verbosity > CLI_MAX_VERBOSITY)
                cfg->verbosity = CLI_MAX_VERBOSITY;
            continue;
        }
        if (a[0] != '-')
            return fail(&st, NULL, "unexpected argument '%s'", a);

        const struct opt_def *opt;
        const char *attached = NULL;
        if (a[1] == '-' && a[2] != '\0') {
            const char *eq = strchr(a, '=');
            size_t namelen = eq ? (size_t)(eq - a) : strlen(a);
            opt = find_long(a, namelen);
            if (!opt)
                return fail(&st, NULL, "unknown option '%.*s'",
                            namelen > 256 ? 256 : (int)namelen, a);
            attached = eq ? eq + 1 : NULL;
        } else {
            opt = a[1] && !a[2] ? find_short(a[1]) : NULL;
            if (!opt)
                return fail(&st, NULL, "unknown option '%s'", a);
        }

        size_t idx = (size_t)(opt - options);
        if (opt->arg != ARG_MANY && seen[idx]++)
            return fail(&st, opt->name, "given more than once");

        enum cli_result r = CLI_ERROR;
        switch (opt->arg) {
        case ARG_NONE:
            if (attached)
                return fail(&st, opt->name, "takes no value, got '%s'", attached);
            r = opt->fn(&st, opt->name, NULL);
            break;
        case ARG_ONE:
            if (!attached) {
                if (!is_value(argc, argv, i + 1))
                    return fail(&st, opt->name, "missing value");
                attached = argv[++i];
            }
            r = opt->fn(&st, opt->name, attached);
            break;
        case ARG_OPTIONAL:
            if (!attached && is_value(argc, argv, i + 1))
                attached = argv[++i];
            r = opt->fn(&st, opt->name, attached ? attached : "");
            break;
        case ARG_MANY:
            if (!attached && !is_value(argc, argv, i + 1))
                return fail(&st, opt->name, "missing value");
            r = CLI_OK;
            if (attached)
                r = opt->fn(&st, opt->name, attached);
            while (r == CLI_OK && is_value(argc, argv, i + 1))
                r = opt->fn(&st, opt->name, argv[++i]);
            break;
        }
        if (r != CLI_OK)
            return r;
    }
    if (st.list_plugins)
        return CLI_LIST_PLUGINS;
    if (!config_has_payload(cfg) && (cfg->api_socket_path || cfg->api_socket_fd >= 0)) {
        /* An API server waiting for vm.create; VM options need a payload (CH). */
        if (cfg->initramfs || cfg->cmdline || cfg->nnets || cfg->ndevices || cfg->rng.enabled)
            return fail(&st, NULL, "VM options need --kernel, --firmware or a --disk to boot "
                                   "from (or leave them all to vm.create)");
        return CLI_OK;
    }
    if (config_validate(cfg, err, errlen) < 0)
        return CLI_ERROR;
    return CLI_OK;
}
