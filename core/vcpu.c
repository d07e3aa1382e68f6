#include "vcpu.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cpuid.h"
#include "log.h"
#include "seccomp_filter.h"
#include "vm.h"

#define SIG_KICK SIGUSR1

static void kick_handler(int sig) { (void)sig; }

int vcpu_signals_init(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = kick_handler;
    sigemptyset(&sa.sa_mask);
    return sigaction(SIG_KICK, &sa, NULL) < 0 ? -errno : 0;
}

/* MSR state Linux expects from firmware on a freshly reset CPU. */
static int setup_msrs(struct vm *vm, struct vcpu *v, char *err, size_t errlen)
{
    static const struct {
        uint32_t index;
        uint64_t value;
    } want[] = {
        {0x174, 0},                    /* IA32_SYSENTER_CS */
        {0x175, 0},                    /* IA32_SYSENTER_ESP */
        {0x176, 0},                    /* IA32_SYSENTER_EIP */
        {0xc0000081, 0},               /* STAR */
        {0xc0000082, 0},               /* LSTAR */
        {0xc0000083, 0},               /* CSTAR */
        {0xc0000084, 0},               /* SYSCALL_MASK */
        {0xc0000102, 0},               /* KERNEL_GS_BASE */
        {0x10, 0},                     /* IA32_TSC */
        {0x1a0, 1},                    /* IA32_MISC_ENABLE: fast strings */
        {0x2ff, (1u << 11) | 6},       /* MTRRdefType: MTRRs on, default write-back */
    };
    struct kvm_msrs *msrs =
        calloc(1, sizeof(*msrs) + sizeof(want) / sizeof(want[0]) * sizeof(msrs->entries[0]));
    if (!msrs) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    uint32_t n = 0;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        if (!kvm_has_msr(&vm->kvm, want[i].index))
            continue;
        msrs->entries[n].index = want[i].index;
        msrs->entries[n].data = want[i].value;
        n++;
    }
    msrs->nmsrs = n;
    int r = ioctl(v->fd, KVM_SET_MSRS, msrs);
    int e = errno;
    free(msrs);
    if (r < 0 || (uint32_t)r != n) {
        snprintf(err, errlen, "vCPU %u: KVM_SET_MSRS set %d of %u MSRs%s%s", v->index, r, n,
                 r < 0 ? ": " : "", r < 0 ? strerror(e) : "");
        return -1;
    }
    return 0;
}

/* LINT0 as ExtINT and LINT1 as NMI: the virtual-wire setup a BIOS leaves. */
static int setup_lapic(struct vcpu *v, char *err, size_t errlen)
{
    struct kvm_lapic_state lapic;
    if (ioctl(v->fd, KVM_GET_LAPIC, &lapic) < 0) {
        snprintf(err, errlen, "vCPU %u: KVM_GET_LAPIC: %s", v->index, strerror(errno));
        return -1;
    }
    uint32_t lvt0, lvt1;
    memcpy(&lvt0, &lapic.regs[0x350], 4);
    memcpy(&lvt1, &lapic.regs[0x360], 4);
    lvt0 = (lvt0 & ~0x700u) | (7u << 8);
    lvt1 = (lvt1 & ~0x700u) | (4u << 8);
    memcpy(&lapic.regs[0x350], &lvt0, 4);
    memcpy(&lapic.regs[0x360], &lvt1, 4);
    if (ioctl(v->fd, KVM_SET_LAPIC, &lapic) < 0) {
        snprintf(err, errlen, "vCPU %u: KVM_SET_LAPIC: %s", v->index, strerror(errno));
        return -1;
    }
    return 0;
}

int vcpu_create(struct vm *vm, struct vcpu *v, uint32_t index, char *err, size_t errlen)
{
    memset(v, 0, sizeof(*v));
    v->vm = vm;
    v->fd = -1;
    v->index = index;
    v->apic_id = topo_apic_id(&vm->topo, index);
    v->fd = ioctl(vm->kvm.vm_fd, KVM_CREATE_VCPU, (unsigned long)v->apic_id);
    if (v->fd < 0) {
        snprintf(err, errlen, "KVM_CREATE_VCPU %u: %s", index, strerror(errno));
        return -1;
    }
    v->run_size = (size_t)vm->kvm.vcpu_mmap_size;
    v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
    if (v->run == MAP_FAILED) {
        v->run = NULL;
        snprintf(err, errlen, "mmap of vCPU %u run area: %s", index, strerror(errno));
        return -1;
    }
    struct kvm_cpuid2 *cpuid = cpuid_for_vcpu(vm->kvm.supported_cpuid, &vm->topo, index,
                                              vm->cfg->cpus.max_phys_bits);
    if (!cpuid) {
        snprintf(err, errlen, "out of memory building CPUID");
        return -1;
    }
    int r = ioctl(v->fd, KVM_SET_CPUID2, cpuid);
    free(cpuid);
    if (r < 0) {
        snprintf(err, errlen, "vCPU %u: KVM_SET_CPUID2: %s", index, strerror(errno));
        return -1;
    }
    if (setup_msrs(vm, v, err, errlen) < 0)
        return -1;
    struct kvm_fpu fpu;
    memset(&fpu, 0, sizeof(fpu));
    fpu.fcw = 0x37f;     /* x87 power-on control word */
    fpu.mxcsr = 0x1f80;  /* SSE: all exceptions masked */
    if (ioctl(v->fd, KVM_SET_FPU, &fpu) < 0) {
        snprintf(err, errlen, "vCPU %u: KVM_SET_FPU: %s", index, strerror(errno));
        return -1;
    }
    return setup_lapic(v, err, errlen);
}

int vcpu_set_boot_state(struct vcpu *v, const struct boot_result *res, char *err,
                        size_t errlen)
{
    struct kvm_sregs sregs;
    struct kvm_regs regs;
    if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0) {
        snprintf(err, errlen, "KVM_GET_SREGS: %s", strerror(errno));
        return -1;
    }
    memset(&regs, 0, sizeof(regs));
    boot_cpu_state(res, &regs, &sregs);
    if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0) {
        snprintf(err, errlen, "KVM_SET_SREGS: %s", strerror(errno));
        return -1;
    }
    if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0) {
        snprintf(err, errlen, "KVM_SET_REGS: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static void handle_pio(struct vcpu *v)
{
    struct kvm_run *run = v->run;
    uint32_t size = run->io.size, count = run->io.count;
    uint64_t off = run->io.data_offset;
    /* KVM fills these, but a bad value must not make us write past the mapping. */
    if (size == 0 || size > 8 || count == 0 || off >= v->run_size ||
        (uint64_t)size * count > v->run_size - off) {
        log_error("vCPU %u: malformed PIO exit (size %u count %u offset %llu)", v->index, size,
                  count, (unsigned long long)off);
        return;
    }
    uint8_t *data = (uint8_t *)run + off;
    int is_write = run->io.direction == KVM_EXIT_IO_OUT;
    for (uint32_t i = 0; i < count; i++, data += size) {
        if (bus_access(&v->vm->pio, run->io.port, data, size, is_write) < 0) {
            if (!is_write)
                memset(data, 0xff, size);
            log_trace("vCPU %u: unclaimed port %s 0x%x/%u", v->index, is_write ? "out" : "in",
                      run->io.port, size);
        }
    }
}

static void handle_mmio(struct vcpu *v)
{
    struct kvm_run *run = v->run;
    uint32_t len = run->mmio.len;
    if (len == 0 || len > 8) {
        log_error("vCPU %u: malformed MMIO exit (len %u)", v->index, len);
        return;
    }
    if (bus_access(&v->vm->mmio, run->mmio.phys_addr, run->mmio.data, len,
                   run->mmio.is_write) < 0) {
        if (!run->mmio.is_write)
            memset(run->mmio.data, 0xff, len);
        log_debug("vCPU %u: unclaimed MMIO %s 0x%llx/%u", v->index,
                  run->mmio.is_write ? "write" : "read",
                  (unsigned long long)run->mmio.phys_addr, len);
    }
}

static void report_internal_error(struct vcpu *v)
{
    struct kvm_run *run = v->run;
    struct kvm_regs regs;
    unsigned long long rip = 0;
    if (ioctl(v->fd, KVM_GET_REGS, &regs) == 0)
        rip = regs.rip;
    log_error("vCPU %u: KVM internal error (suberror %u) at RIP 0x%llx; the host KVM cannot "
              "run this guest",
              v->index, run->internal.suberror, rip);
}

static void *vcpu_thread(void *arg)
{
    struct vcpu *v = arg;
    struct vm *vm = v->vm;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIG_KICK);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    char tname[16];
    snprintf(tname, sizeof(tname), "vcpu%u", v->index);
    pthread_setname_np(pthread_self(), tname);
    seccomp_enter(SECCOMP_VCPU, tname);

    int first = 1;
    while (!vm_should_stop(vm)) {
        if (__atomic_load_n(&v->unplug, __ATOMIC_SEQ_CST))
            break;
        if (__atomic_exchange_n(&v->kicked, 0, __ATOMIC_SEQ_CST)) {
            vm_vcpu_park(vm, v);
            continue;
        }
        if (first && v->index == 0) {
            log_info("vCPU 0: first KVM_RUN");
            first = 0;
        }
        int r = ioctl(v->fd, KVM_RUN, 0);
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                /*
                 * Cleared after every interrupted run, never when taking a
                 * kick: a kicker stores `kicked` and then immediate_exit, so
                 * clearing both when seeing `kicked` could drop the second
                 * store's effect the wrong way round and leave
                 * immediate_exit set for good, every later KVM_RUN failing
                 * with EINTR: a guest that never runs again after vm.resume.
                 * A stale flag now costs one extra EINTR; the kick itself is
                 * never lost, because `kicked` is read after this.
                 */
                __atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
                continue;
            }
            log_error("vCPU %u: KVM_RUN: %s", v->index, strerror(errno));
            vm_request_exit(vm, VM_EXIT_ERROR, 0);
            break;
        }
        switch (v->run->exit_reason) {
        case KVM_EXIT_IO:
            handle_pio(v);
            break;
        case KVM_EXIT_MMIO:
            handle_mmio(v);
            break;
        case KVM_EXIT_INTR:
        case KVM_EXIT_HLT:
            break;
        case KVM_EXIT_SHUTDOWN:
            /*
             * Triple fault: Linux's last-resort reset, but also what a
             * crashing guest does, so say it even without -v.
             */
            log_ratelimited(LOG_WARN, "vCPU %u: triple fault; treating it as a guest reset",
                            v->index);
            vm_request_exit(vm, VM_EXIT_RESET, 0);
            break;
        case KVM_EXIT_SYSTEM_EVENT:
            switch (v->run->system_event.type) {
            case KVM_SYSTEM_EVENT_SHUTDOWN:
                vm_request_exit(vm, VM_EXIT_POWEROFF, 0);
                break;
            case KVM_SYSTEM_EVENT_RESET:
                vm_request_exit(vm, VM_EXIT_RESET, 0);
                break;
            default:
                log_error("vCPU %u: system event %u", v->index, v->run->system_event.type);
                vm_request_exit(vm, VM_EXIT_ERROR, 0);
            }
            break;
        case KVM_EXIT_INTERNAL_ERROR:
            report_internal_error(v);
            vm_request_exit(vm, VM_EXIT_ERROR, 0);
            break;
        case KVM_EXIT_FAIL_ENTRY:
            log_error("vCPU %u: VM entry failed (hardware reason 0x%llx)", v->index,
                      (unsigned long long)v->run->fail_entry.hardware_entry_failure_reason);
            vm_request_exit(vm, VM_EXIT_ERROR, 0);
            break;
        default:
            log_error("vCPU %u: unhandled KVM exit %u", v->index, v->run->exit_reason);
            vm_request_exit(vm, VM_EXIT_ERROR, 0);
            break;
        }
    }
    return NULL;
}

int vcpu_start(struct vcpu *v)
{
    v->unplug = 0;
    v->kicked = 1;
    v->run->immediate_exit = 0;
    int r = pthread_create(&v->thread, NULL, vcpu_thread, v);
    if (r)
        return -r;
    v->started = 1;
    return 0;
}

void vcpu_kick(struct vcpu *v)
{
    if (!v->started)
        return;
    __atomic_store_n(&v->kicked, 1, __ATOMIC_SEQ_CST);
    __atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
    pthread_kill(v->thread, SIG_KICK);
}

void vcpu_join(struct vcpu *v)
{
    if (v->started) {
        pthread_join(v->thread, NULL);
        v->started = 0;
    }
}

void vcpu_destroy(struct vcpu *v)
{
    if (v->run)
        munmap(v->run, v->run_size);
    if (v->fd >= 0)
        close(v->fd);
    v->run = NULL;
    v->fd = -1;
}
