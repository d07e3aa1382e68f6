#include "config.h"

#include "bootdisk/bootdisk.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void config_init(struct vm_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->cpus.boot = 1;
    cfg->cpus.max = 1;
    cfg->cpus.threads_per_core = 1;
    cfg->cpus.cores_per_die = 1;
    cfg->cpus.dies_per_package = 1;
    cfg->cpus.packages = 1;
    cfg->cpus.max_phys_bits = 46;
    cfg->memory.size = 512ull << 20;
    cfg->memory.thp = 1;
    cfg->serial.mode = CHR_NULL;
    cfg->console.mode = CHR_TTY; /* Cloud Hypervisor's default */
    cfg->api_socket_fd = cfg->event_monitor_fd = -1;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

void net_config_free(struct net_config *nc)
{
    free(nc->tap);
    nc->tap = NULL;
    free(nc->id);
    nc->id = NULL;
    for (uint32_t j = 0; j < nc->nhostfwd && j < CONFIG_MAX_HOSTFWD; j++) {
        free(nc->hostfwd[j]);
        nc->hostfwd[j] = NULL;
    }
    nc->nhostfwd = 0;
    if (nc->fds_owned)
        for (uint32_t j = 0; j < nc->nfds && j < CONFIG_MAX_NET_FDS; j++)
            close_fd(&nc->fds[j]);
}

void disk_config_free(struct disk_config *dc)
{
    free(dc->path);
    free(dc->id);
    free(dc->serial);
    dc->path = dc->id = dc->serial = NULL;
}

void device_config_free(struct device_config *dc)
{
    free(dc->plugin);
    free(dc->options);
    free(dc->id);
    memset(dc, 0, sizeof(*dc));
}

void config_free(struct vm_config *cfg)
{
    bootdisk_stop(cfg->bootdisk);
    cfg->bootdisk = NULL;
    free(cfg->kernel);
    free(cfg->firmware);
    free(cfg->initramfs);
    free(cfg->cmdline);
    free(cfg->serial.path);
    free(cfg->console.path);
    for (uint32_t i = 0; i < cfg->ndevices; i++)
        device_config_free(&cfg->devices[i]);
    for (uint32_t i = 0; i < cfg->ndisks; i++)
        disk_config_free(&cfg->disks[i]);
    for (uint32_t i = 0; i < cfg->nnets; i++)
        net_config_free(&cfg->nets[i]);
    if (cfg->serial.has_fd)
        close_fd(&cfg->serial.fd);
    if (cfg->console.has_fd)
        close_fd(&cfg->console.fd);
    free(cfg->rng.src);
    free(cfg->log_file);
    free(cfg->plugin_dir);
    free(cfg->api_socket_path);
    free(cfg->event_monitor_path);
    free(cfg->seccomp);
    for (uint32_t i = 0; i < cfg->nlandlock_rules; i++)
        free(cfg->landlock_rules[i].path);
    memset(cfg, 0, sizeof(*cfg));
}
