/*
 * The VMM: the one control path for VM state changes.  Its thread (the
 * process's main thread) owns the VM configuration and the VM, and is the
 * only thread that creates, boots, pauses, resumes, reboots or destroys
 * it.  Requests reach it from the API thread (api_server.c), guest exits
 * from vCPU and device threads (an eventfd), signals from a signalfd; it
 * handles them one at a time, so hotplug, snapshot and migration can join
 * as more requests without new races.  Cloud Hypervisor's "VMM control
 * loop" has the same shape.
 */
#ifndef NIMBUS_VMM_H
#define NIMBUS_VMM_H

#include <pthread.h>

#include "api/api_server.h"
#include "config.h"
#include "vm.h"

/* What Cloud Hypervisor's vm.info calls the VM's state, plus "no VM". */
enum vmm_vm_state {
    VMM_NO_VM = 0,   /* nothing created (API server waiting for vm.create) */
    VMM_CREATED,     /* a config, no VM running */
    VMM_RUNNING,
    VMM_PAUSED,
    VMM_SHUTDOWN,    /* it ran and stopped (guest poweroff, vm.shutdown) */
};

struct vmm {
    struct vm_config *cfg;   /* the VM's config (NULL: VMM_NO_VM) */
    struct vm *vm;           /* the running or paused VM */
    enum vmm_vm_state state;
    struct vm_config *vmm_cfg; /* the command line: VMM settings */
    struct api_server *api;
    int epfd, req_efd, exit_efd, signal_fd;
    pthread_mutex_t qlock;
    struct api_request *qhead, *qtail;
    int socket_made;         /* we bound --api-socket path=: remove it at the end */
    int accepting;           /* requests are still taken */
    int quit;
    int exit_status;
};

/*
 * Set up the VMM from the command line: the event monitor, the API socket,
 * and the VM if the command line has a payload (config_has_payload()).
 * Ownership of cmdline_cfg's VM part moves to the VMM.  Returns 0, or the
 * process exit status (1, 2) with the message printed.
 */
int vmm_init(struct vmm *v, struct vm_config *cmdline_cfg);
/* Run until the VMM ends; returns the process exit status. */
int vmm_run(struct vmm *v);
void vmm_destroy(struct vmm *v);

/* Request handling (vmm_api.c), on the VMM thread. */
void vmm_handle_request(struct vmm *v, struct api_request *req);
/* The guest ejected hot-plugged devices: free them, drop them from the config. */
void vmm_hotplug_ejected(struct vmm *v);
/* Lifecycle operations the handlers and the loop share (vmm.c). */
int vmm_boot(struct vmm *v, char *err, size_t errlen);
int vmm_shutdown_vm(struct vmm *v);
int vmm_reboot(struct vmm *v, char *err, size_t errlen);
const char *vmm_state_name(enum vmm_vm_state s); /* "Created", "Running", ... */

#endif
