/* nimbus: parse the command line, then hand over to the VMM (vmm/vmm.c). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootdisk/bootdisk.h"
#include "cli.h"
#include "config.h"
#include "device.h"
#include "landlock.h"
#include "plugin_list.h"
#include "seccomp_filter.h"
#include "log.h"
#include "vcpu.h"
#include "vmm/vmm.h"

int main(int argc, char **argv)
{
    struct vm_config cfg;
    config_init(&cfg);
    char err[1024] = "";
    enum cli_result cr = cli_parse(argc, argv, &cfg, stdout, err, sizeof(err));
    if (cr == CLI_EXIT_OK) {
        config_free(&cfg);
        return 0;
    }
    if (cr == CLI_LIST_PLUGINS) {
        char storage[4][4096];
        const char *dirs[5];
        plugin_default_dirs(cfg.plugin_dir, storage, dirs);
        plugin_list(stdout, dirs);
        config_free(&cfg);
        return 0;
    }
    if (cr == CLI_ERROR) {
        fprintf(stderr, "nimbus: error: %s\n", err);
        fprintf(stderr, "Try 'nimbus --help' for more information.\n");
        config_free(&cfg);
        return 2;
    }
    log_set_level(LOG_WARN + cfg.verbosity);
    if (cfg.log_file) {
        int r = log_set_file(cfg.log_file);
        if (r < 0) {
            fprintf(stderr, "nimbus: error: --log-file: cannot open '%s': %s\n", cfg.log_file,
                    strerror(-r));
            config_free(&cfg);
            return 2;
        }
    }

    /* The boot-disk reader is a forked process: before any thread exists
     * (a fork with threads around inherits their locks), before Landlock
     * and seccomp (it gets a stricter filter of its own). */
    if (config_boots_from_disk(&cfg)) {
        cfg.bootdisk = bootdisk_start(&cfg, err, sizeof(err));
        if (!cfg.bootdisk) {
            fprintf(stderr, "nimbus: error: %s\n", err);
            config_free(&cfg);
            return 2;
        }
    }

    /*
     * Every thread inherits this mask: termination signals are read from a
     * signalfd by the VMM loop, and the vCPU kick signal is unblocked only
     * in vCPU threads.  A vanished serial reader must not kill the VMM.
     */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (vcpu_signals_init() < 0) {
        fprintf(stderr, "nimbus: error: cannot install signal handlers: %s\n", strerror(errno));
        config_free(&cfg);
        return 1;
    }

    /* Before any thread exists, so that every thread inherits it. */
    if (cfg.landlock) {
        char storage[4][4096];
        const char *dirs[5];
        plugin_default_dirs(cfg.plugin_dir, storage, dirs);
        if (landlock_apply(&cfg, dirs, err, sizeof(err)) < 0) {
            fprintf(stderr, "nimbus: error: %s\n", err);
            config_free(&cfg);
            return 2;
        }
    }

    /* After Landlock (whose set-up calls the filters do not allow) and
     * before any other thread, which then inherits this one's filter. */
    if (seccomp_setup((enum seccomp_mode)seccomp_parse_mode(cfg.seccomp), err, sizeof(err)) < 0) {
        fprintf(stderr, "nimbus: error: %s\n", err);
        config_free(&cfg);
        return 1;
    }

    /* Everything else happens in the VMM's control loop (vmm/vmm.c). */
    struct vmm vmm;
    int status = vmm_init(&vmm, &cfg);
    if (status == 0)
        status = vmm_run(&vmm);
    vmm_destroy(&vmm);
    config_free(&cfg);
    return status;
}
