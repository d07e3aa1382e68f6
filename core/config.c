#include "config.h"

#include <stdlib.h>
#include <string.h>

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
}

void config_free(struct vm_config *cfg)
{
    free(cfg->kernel);
    free(cfg->initramfs);
    free(cfg->cmdline);
    free(cfg->serial.path);
    free(cfg->console.path);
    for (uint32_t i = 0; i < cfg->ndevices; i++) {
        free(cfg->devices[i].plugin);
        free(cfg->devices[i].options);
    }
    for (uint32_t i = 0; i < cfg->ndisks; i++) {
        free(cfg->disks[i].path);
        free(cfg->disks[i].id);
        free(cfg->disks[i].serial);
    }
    for (uint32_t i = 0; i < cfg->nnets; i++) {
        free(cfg->nets[i].tap);
        free(cfg->nets[i].id);
        for (uint32_t j = 0; j < cfg->nets[i].nhostfwd; j++)
            free(cfg->nets[i].hostfwd[j]);
    }
    free(cfg->rng.src);
    free(cfg->log_file);
    free(cfg->plugin_dir);
    memset(cfg, 0, sizeof(*cfg));
}
