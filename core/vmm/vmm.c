#include "vmm.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "event_monitor.h"
#include "privileges.h"
#include "log.h"

enum { TOKEN_REQUEST = 1, TOKEN_EXIT, TOKEN_SIGNAL };

const char *vmm_state_name(enum vmm_vm_state s)
{
    switch (s) {
    case VMM_NO_VM: return "NotCreated";
    case VMM_CREATED: return "Created";
    case VMM_RUNNING: return "Running";
    case VMM_PAUSED: return "Paused";
    case VMM_SHUTDOWN: return "Shutdown";
    }
    return "?";
}

/* ---- requests from the API thread ---------------------------------------- */

static void vmm_submit(void *opaque, struct api_request *req)
{
    struct vmm *v = opaque;
    pthread_mutex_lock(&v->qlock);
    if (!v->accepting) {
        pthread_mutex_unlock(&v->qlock);
        req->status = 503;
        req->resp_body = strdup("[\"The VMM is shutting down\"]");
        api_server_complete(v->api, req);
        return;
    }
    req->next = NULL;
    if (v->qtail)
        v->qtail->next = req;
    else
        v->qhead = req;
    v->qtail = req;
    pthread_mutex_unlock(&v->qlock);
    uint64_t one = 1;
    (void)!write(v->req_efd, &one, sizeof(one));
}

static struct api_request *dequeue(struct vmm *v)
{
    pthread_mutex_lock(&v->qlock);
    struct api_request *r = v->qhead;
    if (r) {
        v->qhead = r->next;
        if (!v->qhead)
            v->qtail = NULL;
    }
    pthread_mutex_unlock(&v->qlock);
    return r;
}

static void drain_efd(int fd)
{
    uint64_t n;
    (void)!read(fd, &n, sizeof(n));
}

/* ---- lifecycle ------------------------------------------------------------- */

/* Backends whose identity must survive a reboot (pty path, file offset). */
static void keep_chardev(struct chr_config *cc, struct chardev *c)
{
    if (cc->has_fd || (cc->mode != CHR_PTY && cc->mode != CHR_FILE))
        return;
    int fd = chr_keep_fd(c);
    if (fd >= 0) {
        cc->fd = fd;
        cc->has_fd = 1;
    }
}

static void free_vm(struct vmm *v)
{
    if (!v->vm)
        return;
    vm_destroy(v->vm);
    free(v->vm);
    v->vm = NULL;
}

/* Build and start a VM from v->cfg.  On failure nothing is left running. */
static int start_vm(struct vmm *v, char *err, size_t errlen, int *config_error)
{
    struct vm *vm = calloc(1, sizeof(*vm));
    if (!vm) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *config_error = 0;
    if (vm_create(vm, v->cfg, err, errlen) < 0) {
        *config_error = vm->config_error;
        vm_destroy(vm);
        free(vm);
        return -1;
    }
    keep_chardev(&v->cfg->serial, vm->serial);
    keep_chardev(&v->cfg->console, vm->console);
    vm->exit_efd = v->exit_efd;
    v->vm = vm;
    if (vm_boot(vm, err, errlen) < 0) {
        free_vm(v);
        return -1;
    }
    return 0;
}

int vmm_boot(struct vmm *v, char *err, size_t errlen)
{
    if (v->state != VMM_CREATED && v->state != VMM_SHUTDOWN) {
        snprintf(err, errlen, "VM is %s", vmm_state_name(v->state));
        return -EBUSY;
    }
    event_emit("vm", "booting", NULL);
    int config_error = 0;
    if (start_vm(v, err, errlen, &config_error) < 0)
        return config_error ? -EINVAL : -EIO;
    v->state = VMM_RUNNING;
    event_emit("vm", "booted", NULL);
    return 0;
}

int vmm_shutdown_vm(struct vmm *v)
{
    if (!v->vm)
        return -EINVAL;
    free_vm(v);
    v->state = VMM_SHUTDOWN;
    event_emit("vm", "shutdown", NULL);
    return 0;
}

/*
 * The same configuration in a new VM, in this process: disks reopened,
 * the same taps, the same pty (the config keeps their fds).
 */
int vmm_reboot(struct vmm *v, char *err, size_t errlen)
{
    if (!v->vm) {
        snprintf(err, errlen, "VM is not running");
        return -EINVAL;
    }
    event_emit("vm", "rebooting", NULL);
    free_vm(v);
    int config_error = 0;
    if (start_vm(v, err, errlen, &config_error) < 0) {
        v->state = VMM_SHUTDOWN;
        event_emit("vm", "shutdown", NULL);
        return -EIO;
    }
    v->state = VMM_RUNNING;
    event_emit("vm", "rebooted", NULL);
    return 0;
}

/* ---- the loop ---------------------------------------------------------------- */

static void end_vmm(struct vmm *v, int status)
{
    v->quit = 1;
    v->exit_status = status;
}

/* A vCPU or device asked the VM to end: reboot, or stop it. */
static void on_vm_exit(struct vmm *v)
{
    drain_efd(v->exit_efd);
    if (!v->vm)
        return;
    /* The same eventfd says the guest ejected a device (vm_hotplug.c). */
    vmm_hotplug_ejected(v);
    pthread_mutex_lock(&v->vm->lock);
    enum vm_exit why = v->vm->exit_reason;
    pthread_mutex_unlock(&v->vm->lock);
    char err[1024];
    switch (why) {
    case VM_EXIT_NONE:
        return; /* a late wake-up meant for a VM that is gone */
    case VM_EXIT_RESET:
        log_info("guest reset: rebooting the VM");
        if (vmm_reboot(v, err, sizeof(err)) < 0) {
            log_error("reboot failed: %s", err);
            if (!v->api)
                end_vmm(v, 1);
        }
        return;
    case VM_EXIT_POWEROFF:
        log_info("guest powered off");
        vmm_shutdown_vm(v);
        if (!v->api)
            end_vmm(v, 0);
        return;
    case VM_EXIT_ERROR:
    case VM_EXIT_SIGNAL:
        log_error("the VM stopped on an error");
        vmm_shutdown_vm(v);
        if (!v->api)
            end_vmm(v, 1);
        return;
    }
}

static void on_signal(struct vmm *v)
{
    struct signalfd_siginfo si;
    if (read(v->signal_fd, &si, sizeof(si)) != (ssize_t)sizeof(si))
        return;
    log_warn("received signal %u, shutting down", si.ssi_signo);
    end_vmm(v, 128 + (int)si.ssi_signo);
}

int vmm_run(struct vmm *v)
{
    while (!v->quit) {
        struct epoll_event evs[4];
        int n = epoll_wait(v->epfd, evs, 4, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_error("VMM loop: epoll_wait: %s", strerror(errno));
            end_vmm(v, 1);
            break;
        }
        for (int i = 0; i < n && !v->quit; i++) {
            switch (evs[i].data.u32) {
            case TOKEN_REQUEST: {
                drain_efd(v->req_efd);
                struct api_request *r;
                while (!v->quit && (r = dequeue(v))) {
                    vmm_handle_request(v, r);
                    api_server_complete(v->api, r);
                }
                break;
            }
            case TOKEN_EXIT:
                on_vm_exit(v);
                break;
            case TOKEN_SIGNAL:
                on_signal(v);
                break;
            }
        }
    }
    return v->exit_status;
}

/* ---- set-up and tear-down ------------------------------------------------- */

static int watch(struct vmm *v, int fd, uint32_t token)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = token};
    return epoll_ctl(v->epfd, EPOLL_CTL_ADD, fd, &ev);
}

/*
 * After the privileged set-up: without an API nothing will make a tap any
 * more; with one, a vm.create may still (CAP_NET_ADMIN stays).
 */
static int drop_privileges(int api)
{
    int r = privileges_drop(api);
    if (r < 0) {
        log_error("cannot drop capabilities: %s", strerror(-r));
        return 1;
    }
    return 0;
}

int vmm_init(struct vmm *v, struct vm_config *cmdline)
{
    memset(v, 0, sizeof(*v));
    v->epfd = v->req_efd = v->exit_efd = v->signal_fd = -1;
    pthread_mutex_init(&v->qlock, NULL);
    v->vmm_cfg = cmdline;
    char err[1024] = "";

    if (cmdline->event_monitor_path || cmdline->event_monitor_fd >= 0) {
        if (event_monitor_open(cmdline->event_monitor_path, cmdline->event_monitor_fd, err,
                               sizeof(err)) < 0) {
            fprintf(stderr, "nimbus: error: %s\n", err);
            return 1;
        }
    }
    event_emit("vmm", "starting", NULL);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    v->epfd = epoll_create1(EPOLL_CLOEXEC);
    v->req_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    v->exit_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    v->signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (v->epfd < 0 || v->req_efd < 0 || v->exit_efd < 0 || v->signal_fd < 0 ||
        watch(v, v->req_efd, TOKEN_REQUEST) < 0 || watch(v, v->exit_efd, TOKEN_EXIT) < 0 ||
        watch(v, v->signal_fd, TOKEN_SIGNAL) < 0) {
        log_error("cannot set up the VMM loop: %s", strerror(errno));
        return 1;
    }

    if (cmdline->api_socket_path || cmdline->api_socket_fd >= 0) {
        int fd = cmdline->api_socket_path
                     ? api_socket_open(cmdline->api_socket_path, err, sizeof(err))
                     : api_socket_adopt(cmdline->api_socket_fd, err, sizeof(err));
        if (fd < 0) {
            fprintf(stderr, "nimbus: error: %s\n", err);
            return 2;
        }
        v->socket_made = cmdline->api_socket_path != NULL;
        v->accepting = 1;
        v->api = api_server_start(fd, vmm_submit, v, err, sizeof(err));
        if (!v->api) {
            fprintf(stderr, "nimbus: error: %s\n", err);
            return 1;
        }
    }

    int api = v->api != NULL;
    if (!config_has_payload(cmdline))
        return drop_privileges(api); /* an API server waiting for vm.create */
    /* The command line's VM: the VMM owns it from here (same struct, moved). */
    v->cfg = malloc(sizeof(*v->cfg));
    if (!v->cfg) {
        log_error("out of memory");
        return 1;
    }
    *v->cfg = *cmdline;
    config_init(cmdline);
    /* VMM settings stay readable in the command line's struct. */
    cmdline->api_socket_path = v->cfg->api_socket_path ? strdup(v->cfg->api_socket_path) : NULL;
    cmdline->plugin_dir = v->cfg->plugin_dir ? strdup(v->cfg->plugin_dir) : NULL;
    cmdline->verbosity = v->cfg->verbosity;
    v->state = VMM_CREATED;
    int r = vmm_boot(v, err, sizeof(err));
    if (r < 0) {
        /* Some settings (--net taps) can only be judged while building the VM. */
        if (r == -EINVAL)
            fprintf(stderr, "nimbus: error: %s\n", err);
        else
            log_error("%s", err);
        return r == -EINVAL ? 2 : 1;
    }
    /* The taps exist now, and a reboot keeps them. */
    return drop_privileges(api);
}

void vmm_destroy(struct vmm *v)
{
    /* No new requests; those queued get an answer before the server goes. */
    pthread_mutex_lock(&v->qlock);
    v->accepting = 0;
    pthread_mutex_unlock(&v->qlock);
    struct api_request *r;
    while ((r = dequeue(v))) {
        r->status = 503;
        r->resp_body = strdup("[\"The VMM is shutting down\"]");
        api_server_complete(v->api, r);
    }
    if (v->vm) {
        free_vm(v);
        event_emit("vm", "shutdown", NULL);
    }
    api_server_stop(v->api);
    v->api = NULL;
    if (v->socket_made && v->vmm_cfg->api_socket_path)
        unlink(v->vmm_cfg->api_socket_path);
    if (v->cfg) {
        config_free(v->cfg);
        free(v->cfg);
        v->cfg = NULL;
    }
    event_emit("vmm", "shutdown", NULL);
    event_monitor_close();
    if (v->epfd >= 0)
        close(v->epfd);
    if (v->req_efd >= 0)
        close(v->req_efd);
    if (v->exit_efd >= 0)
        close(v->exit_efd);
    if (v->signal_fd >= 0)
        close(v->signal_fd);
    pthread_mutex_destroy(&v->qlock);
}
