/* The VM configuration the CLI (and later the API) produces. */
#ifndef NIMBUS_CONFIG_H
#define NIMBUS_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define CONFIG_MAX_DEVICES 32
#define CONFIG_MAX_LANDLOCK_RULES 64

/* One --landlock-rules path=...,access=r|w|rw. */
#define LANDLOCK_RULE_READ 1
#define LANDLOCK_RULE_WRITE 2
struct landlock_rule {
    char *path;
    int access; /* LANDLOCK_RULE_READ | LANDLOCK_RULE_WRITE */
};
#define CONFIG_MAX_DISKS 16
#define CONFIG_MAX_NETS 16
#define CONFIG_MAX_NET_QUEUES 32 /* virtqueues: 16 rx/tx pairs */
#define CONFIG_MAX_NET_FDS (CONFIG_MAX_NET_QUEUES / 2)
#define CONFIG_MAX_HOSTFWD 16

enum chr_mode { CHR_OFF = 0, CHR_NULL, CHR_TTY, CHR_FILE, CHR_PTY };

struct chr_config {
    enum chr_mode mode;
    char *path; /* CHR_FILE */
    /* The backend's fd (pty master, output file) kept by the VMM across
     * reboots, so the pty path stays and the file is not truncated; owned
     * by the config; valid when has_fd (so a zeroed chr_config has none). */
    int fd;
    int has_fd;
};

struct cpus_config {
    uint32_t boot;        /* vCPUs started at boot (default 1) */
    uint32_t max;         /* possible vCPUs: vm.resize adds up to this many */
    /* topology=threads_per_core:cores_per_die:dies_per_package:packages */
    uint32_t threads_per_core, cores_per_die, dies_per_package, packages;
    int topology_set;
    uint32_t max_phys_bits; /* default 46 */
};

struct memory_config {
    uint64_t size;  /* bytes; default 512 MiB */
    int shared;     /* MAP_SHARED memfd instead of private anonymous */
    int hugepages;  /* MAP_HUGETLB */
    int prefault;   /* MAP_POPULATE */
    int mergeable;  /* MADV_MERGEABLE (KSM) */
    int thp;        /* MADV_HUGEPAGE, default on */
    /* Memory hotplug: an area of hotplug_size above RAM, of which
     * hotplugged_size (vm.resize desired_ram - size) is plugged; only
     * through ACPI memory devices (virtio-mem is refused). */
    enum mem_hotplug_method { MEM_HOTPLUG_ACPI = 0, MEM_HOTPLUG_VIRTIO_MEM } hotplug_method;
    uint64_t hotplug_size;    /* bytes; 0: none */
    uint64_t hotplugged_size; /* bytes */
};

struct device_config {
    char *plugin;   /* path or bare name of the plugin */
    char *options;  /* remaining "key=value,..." given to the plugin */
    char *id;       /* vm.add-device's name for it, or NULL */
};
void device_config_free(struct device_config *dc);

/* image_type=: DISK_IMAGE_PROBE lets virtio_blk read the header (never
 * following a backing file then). */
enum disk_image_type { DISK_IMAGE_PROBE = 0, DISK_IMAGE_RAW, DISK_IMAGE_QCOW2 };

struct disk_config {  /* issue 4; parsed now so the CLI shape is fixed */
    char *path;
    int readonly, direct;
    uint32_t num_queues, queue_size;
    char *id;
    char *serial;
    enum disk_image_type image_type;
    int backing_files; /* qcow2: follow the image's backing file (explicit qcow2 only) */
};

/* --net: a tap (created, attached by name, or given as fds) or user=on. */
struct net_config {
    char *tap;               /* tap=; NULL or "" lets the kernel name it vmtap%d */
    uint32_t ip, mask;       /* host side of the tap, network byte order */
    int ip_given, mask_given;
    uint8_t mac[6];          /* guest MAC; random when !mac_given (filled by the VM) */
    int mac_given;
    uint8_t host_mac[6];     /* the tap's own MAC */
    int host_mac_given;
    uint32_t mtu;            /* 0: leave the tap's MTU, offer none to the guest */
    uint32_t num_queues;     /* virtqueues, 2 per rx/tx pair */
    uint32_t queue_size;
    int fds[CONFIG_MAX_NET_FDS]; /* fd=: one open tap queue per pair */
    uint32_t nfds;
    /* The fds are the config's to close (taps nimbus created, fds received
     * with vm.add-net), not the caller's (fd= on the command line). */
    int fds_owned;
    int tap_ready;           /* created and configured once: a reboot reuses it as is */
    char *id;
    int offload_tso, offload_ufo, offload_csum;
    int user;                /* user=on: libslirp in the plugin */
    char *hostfwd[CONFIG_MAX_HOSTFWD]; /* QEMU syntax, checked */
    uint32_t nhostfwd;
};

struct rng_config {
    int enabled;
    char *src;
};

struct vm_config {
    char *kernel;
    char *firmware;          /* --firmware: a PVH ELF entered like a PVH kernel */
    /* Booting a --disk without --kernel: the boot-loader reader (bootdisk/),
     * started by main() before any thread; owned, stopped by config_free(). */
    struct bootdisk *bootdisk;
    char *initramfs;
    char *cmdline;
    struct cpus_config cpus;
    struct memory_config memory;
    struct chr_config serial;   /* --serial, 16550 on COM1; default null */
    struct chr_config console;  /* --console, virtio-console; default tty */
    int console_given;          /* --console was on the command line */
    struct device_config devices[CONFIG_MAX_DEVICES];
    uint32_t ndevices;
    struct disk_config disks[CONFIG_MAX_DISKS];
    uint32_t ndisks;
    struct net_config nets[CONFIG_MAX_NETS];
    uint32_t nnets;
    struct rng_config rng;
    int verbosity;    /* count of -v: 0 warn, 1 info, 2 debug, 3+ trace */
    char *log_file;
    char *plugin_dir; /* --plugin-dir, overrides the default search */
    /* VMM settings, not part of the VM (a vm.create does not change them). */
    char *api_socket_path;   /* --api-socket path= */
    int api_socket_fd;       /* --api-socket fd=, -1 */
    char *event_monitor_path;
    int event_monitor_fd;    /* -1 */
    /* --seccomp true|false|log|errno (core/seccomp_filter.c); NULL means true. */
    char *seccomp;
    /* --landlock: confine the process to the paths the configuration names
     * (core/landlock.c); --landlock-rules adds paths for later requests. */
    int landlock;
    struct landlock_rule landlock_rules[CONFIG_MAX_LANDLOCK_RULES];
    uint32_t nlandlock_rules;
};

void config_init(struct vm_config *cfg);
void config_free(struct vm_config *cfg);
/* Frees one net_config's strings (and its fds when fds_owned); pointers are
 * left NULL, so calling it twice is harmless. */
void net_config_free(struct net_config *nc);
void disk_config_free(struct disk_config *dc);
/*
 * Whole-config checks (config_check.c): required payload, files that must
 * exist, cross-option limits; fills per-vCPU defaults.  err reads
 * "--option: what".  Returns 0 or -1.
 */
int config_validate(struct vm_config *cfg, char *err, size_t errlen);
/*
 * What the VM boots: --kernel, --firmware, or (neither given) the kernel its
 * boot loader names on the first bootable --disk (core/bootdisk/).
 */
int config_has_payload(const struct vm_config *cfg);
int config_boots_from_disk(const struct vm_config *cfg);

#endif
