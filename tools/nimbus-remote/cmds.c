/* ch-remote's subcommands; see cmds.h. */
#include "cmds.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bodies.h"
#include "disk_body.h"

enum arg_kind {
    K_NONE,        /* boot, info, ...: no argument, no body */
    K_CREATE,      /* [path|-]: the file is the body */
    K_NET,         /* NetConfig syntax, through nimbus's --net parser */
    K_DISK,        /* DiskConfig syntax, through nimbus's --disk parser */
    K_RAW,         /* one argument, sent as given (CH's syntax nimbus does not parse) */
    K_DEVICE,      /* plugin=... (nimbus) or path=... (CH's VFIO) */
    K_ID,          /* {"id"} */
    K_URL,         /* {"destination_url"} */
    K_RESTORE,     /* RestoreConfig syntax */
    K_RESIZE,      /* --cpus/--memory/--balloon */
    K_RESIZE_DISK, /* --disk --size */
    K_RESIZE_ZONE, /* --id --size */
};

struct subcmd {
    const char *name, *method, *endpoint;
    enum arg_kind kind;
    const char *args, *about;
};

/* Alphabetical, as ch-remote lists them. */
static const struct subcmd subcmds[] = {
    { "add-device", "PUT", "vm.add-device", K_DEVICE, "<DeviceConfig>",
      "Add a device plugin (plugin=<name>[,id=<id>][,<option>...])" },
    { "add-disk", "PUT", "vm.add-disk", K_DISK, "<DiskConfig>",
      "Add block device (nimbus's --disk syntax)" },
    { "add-fs", "PUT", "vm.add-fs", K_RAW, "<FsConfig>", "Add virtio-fs backed fs device" },
    { "add-generic-vhost-user", "PUT", "vm.add-generic-vhost-user", K_RAW,
      "<GenericVhostUserConfig>", "Add generic vhost-user device" },
    { "add-net", "PUT", "vm.add-net", K_NET, "<NetConfig>",
      "Add network device (nimbus's --net syntax; fd=[...] sends those descriptors)" },
    { "add-pmem", "PUT", "vm.add-pmem", K_RAW, "<PmemConfig>", "Add persistent memory device" },
    { "add-user-device", "PUT", "vm.add-user-device", K_RAW, "<UserDeviceConfig>",
      "Add userspace device" },
    { "add-vdpa", "PUT", "vm.add-vdpa", K_RAW, "<VdpaConfig>", "Add vDPA device" },
    { "add-vsock", "PUT", "vm.add-vsock", K_RAW, "<VsockConfig>", "Add vsock device" },
    { "boot", "PUT", "vm.boot", K_NONE, "", "Boot a created VM" },
    { "coredump", "PUT", "vm.coredump", K_URL, "<file_path>", "Create a coredump from VM" },
    { "counters", "GET", "vm.counters", K_NONE, "", "Counters from the VM" },
    { "create", "PUT", "vm.create", K_CREATE, "[<path>|-]",
      "Create VM from a JSON configuration (default: standard input)" },
    { "delete", "PUT", "vm.delete", K_NONE, "", "Delete a VM" },
    { "info", "GET", "vm.info", K_NONE, "", "Info on the VM" },
    { "nmi", "PUT", "vm.nmi", K_NONE, "", "Trigger NMI" },
    { "pause", "PUT", "vm.pause", K_NONE, "", "Pause the VM" },
    { "ping", "GET", "vmm.ping", K_NONE, "", "Ping the VMM to check for API server availability" },
    { "power-button", "PUT", "vm.power-button", K_NONE, "", "Trigger a power button in the VM" },
    { "reboot", "PUT", "vm.reboot", K_NONE, "", "Reboot the VM" },
    { "receive-migration", "PUT", "vm.receive-migration", K_RAW, "<ReceiveMigrationConfig>",
      "Receive a VM migration" },
    { "remove-device", "PUT", "vm.remove-device", K_ID, "<device_id>",
      "Remove VFIO and PCI device" },
    { "resize", "PUT", "vm.resize", K_RESIZE,
      "[--cpus <n>] [--memory <size>] [--balloon <size>]", "Resize the VM" },
    { "resize-disk", "PUT", "vm.resize-disk", K_RESIZE_DISK, "--disk <id> --size <size>",
      "Resize an attached disk" },
    { "resize-zone", "PUT", "vm.resize-zone", K_RESIZE_ZONE, "--id <zone> --size <size>",
      "Resize a memory zone" },
    { "restore", "PUT", "vm.restore", K_RESTORE,
      "source_url=<url>[,prefault=on|off][,resume=on|off]", "Restore VM from a snapshot" },
    { "resume", "PUT", "vm.resume", K_NONE, "", "Resume the VM" },
    { "send-migration", "PUT", "vm.send-migration", K_RAW, "<SendMigrationConfig>",
      "Initiate a VM migration" },
    { "shutdown", "PUT", "vm.shutdown", K_NONE, "", "Shutdown the VM" },
    { "shutdown-vmm", "PUT", "vmm.shutdown", K_NONE, "", "Shutdown the VMM" },
    { "snapshot", "PUT", "vm.snapshot", K_URL, "<destination_url>",
      "Create a snapshot from VM" },
};
#define NSUBCMDS (sizeof(subcmds) / sizeof(subcmds[0]))

static enum remote_cmd_result fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum remote_cmd_result fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return REMOTE_CMD_ERROR;
}

void remote_cmd_print_list(FILE *out)
{
    for (size_t i = 0; i < NSUBCMDS; i++) {
        const struct subcmd *s = &subcmds[i];
        fprintf(out, "  %s%s%s\n          %s\n", s->name, s->args[0] ? " " : "", s->args,
                s->about);
    }
}

static int is_help(const char *a)
{
    return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0;
}

/* An option-like word ("-x", "--x"); "-" alone is a value (standard input). */
static int is_option(const char *a)
{
    return a[0] == '-' && a[1] != '\0';
}

/* Options of resize/resize-disk/resize-zone, "--name VALUE" or "--name=VALUE". */
struct flag {
    const char *name; /* "--cpus" */
    const char *value;
};

static enum remote_cmd_result parse_flags(int argc, char **argv, struct flag *flags,
                                          size_t nflags, char *err, size_t errlen)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!is_option(a))
            return fail(err, errlen, "unexpected argument '%s'", a);
        const char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        struct flag *f = NULL;
        for (size_t k = 0; k < nflags; k++)
            if (strlen(flags[k].name) == n && strncmp(flags[k].name, a, n) == 0)
                f = &flags[k];
        if (!f)
            return fail(err, errlen, "unknown option '%.*s'", n > 64 ? 64 : (int)n, a);
        if (f->value)
            return fail(err, errlen, "%s given more than once", f->name);
        if (eq) {
            f->value = eq + 1;
        } else if (i + 1 < argc && !is_option(argv[i + 1])) {
            f->value = argv[++i];
        } else {
            return fail(err, errlen, "%s needs a value", f->name);
        }
        if (!f->value[0])
            return fail(err, errlen, "%s has an empty value", f->name);
    }
    return REMOTE_CMD_OK;
}

/* Exactly one positional argument (optional when dflt is given). */
static enum remote_cmd_result one_arg(const struct subcmd *s, int argc, char **argv,
                                      const char *dflt, const char **arg, char *err,
                                      size_t errlen)
{
    if (argc > 2)
        return fail(err, errlen, "unexpected argument '%s'", argv[2]);
    if (argc == 2 && is_option(argv[1]))
        return fail(err, errlen, "unknown option '%s'", argv[1]);
    if (argc < 2 && !dflt)
        return fail(err, errlen, "missing argument %s", s->args);
    *arg = argc == 2 ? argv[1] : dflt;
    return REMOTE_CMD_OK;
}

/* The body of every kind; sets cmd->body or fills err (without the subcommand). */
static int build_body(const struct subcmd *s, int argc, char **argv, struct remote_cmd *cmd,
                      char *err, size_t errlen)
{
    const char *arg = NULL;
    switch (s->kind) {
    case K_NONE:
        if (argc > 1)
            return fail(err, errlen, "unexpected argument '%s'", argv[1]);
        return 0;
    case K_CREATE:
        if (one_arg(s, argc, argv, "-", &arg, err, errlen) != REMOTE_CMD_OK)
            return -1;
        cmd->body = body_read_file(arg, &cmd->body_len, err, errlen);
        break;
    case K_NET:
        if (one_arg(s, argc, argv, NULL, &arg, err, errlen) != REMOTE_CMD_OK)
            return -1;
        cmd->body = net_body_build(arg, cmd->fds, &cmd->nfds, err, errlen);
        break;
    case K_DISK:
        if (one_arg(s, argc, argv, NULL, &arg, err, errlen) != REMOTE_CMD_OK)
            return -1;
        cmd->body = disk_body_build(arg, err, errlen);
        break;
    case K_DEVICE:
        if (one_arg(s, argc, argv, NULL, &arg, err, errlen) != REMOTE_CMD_OK)
            return -1;
        cmd->body = body_device(arg, err, errlen);
        break;
    case K_RAW:
        if (one_arg(s, argc, argv, NULL, &arg, err, errlen) != REMOTE_CMD_OK)
            return -1;
        cmd->body = strdup(arg);
        if (!cmd->body)
            return fail(err, errlen, "out of memory");
        break;
    case K_ID:
    case K_URL:
        if (one_arg(s, argc, argv, NULL, &arg, err, errlen) != REMOTE_CMD_OK)
            return -1;
        cmd->body = body_string(s->kind == K_ID ? "id" : "destination_url", arg, err, errlen);
        break;
    case K_RESTORE:
        if (one_arg(s, argc, argv, NULL, &arg, err, errlen) != REMOTE_CMD_OK)
            return -1;
        cmd->body = body_restore(arg, err, errlen);
        break;
    case K_RESIZE: {
        struct flag f[] = { { "--cpus", NULL }, { "--memory", NULL }, { "--balloon", NULL } };
        if (parse_flags(argc, argv, f, 3, err, errlen) != REMOTE_CMD_OK)
            return -1;
        if (!f[0].value && !f[1].value && !f[2].value)
            return fail(err, errlen, "needs --cpus, --memory or --balloon");
        cmd->body = body_resize(f[0].value, f[1].value, f[2].value, err, errlen);
        break;
    }
    case K_RESIZE_DISK:
    case K_RESIZE_ZONE: {
        int disk = s->kind == K_RESIZE_DISK;
        struct flag f[] = { { disk ? "--disk" : "--id", NULL }, { "--size", NULL } };
        if (parse_flags(argc, argv, f, 2, err, errlen) != REMOTE_CMD_OK)
            return -1;
        for (int i = 0; i < 2; i++)
            if (!f[i].value)
                return fail(err, errlen, "%s is required", f[i].name);
        cmd->body = body_resize_id(f[0].value, disk ? "desired_size" : "desired_ram",
                                   f[1].value, err, errlen);
        break;
    }
    }
    if (!cmd->body)
        return -1;
    if (s->kind != K_CREATE)
        cmd->body_len = strlen(cmd->body);
    return 0;
}

enum remote_cmd_result remote_cmd_build(int argc, char **argv, struct remote_cmd *cmd,
                                        FILE *out, char *err, size_t errlen)
{
    memset(cmd, 0, sizeof(*cmd));
    err[0] = '\0';
    const struct subcmd *s = NULL;
    for (size_t i = 0; i < NSUBCMDS; i++)
        if (strcmp(subcmds[i].name, argv[0]) == 0)
            s = &subcmds[i];
    if (!s)
        return fail(err, errlen, "unknown subcommand '%s' (see --help)", argv[0]);
    for (int i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            fprintf(out, "Usage: nimbus-remote --api-socket <path> %s%s%s\n%s\n", s->name,
                    s->args[0] ? " " : "", s->args, s->about);
            return REMOTE_CMD_HELP;
        }
    }
    cmd->name = s->name;
    cmd->method = s->method;
    cmd->endpoint = s->endpoint;
    char why[512];
    why[0] = '\0';
    if (build_body(s, argc, argv, cmd, why, sizeof(why)) < 0) {
        remote_cmd_free(cmd);
        return fail(err, errlen, "%s: %s", s->name, why);
    }
    return REMOTE_CMD_OK;
}

void remote_cmd_free(struct remote_cmd *cmd)
{
    free(cmd->body);
    cmd->body = NULL;
    cmd->body_len = 0;
}
