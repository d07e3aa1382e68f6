/* One thread per vCPU running KVM_RUN and dispatching PIO/MMIO exits. */
#ifndef NIMBUS_VCPU_H
#define NIMBUS_VCPU_H

#include <pthread.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "boot/boot.h"

struct vm;

struct vcpu {
    struct vm *vm;
    uint32_t index;
    uint32_t apic_id;
    int fd;
    struct kvm_run *run;
    size_t run_size;
    pthread_t thread;
    int started;
    int kicked; /* a pause request; atomic: set by other threads */
    int unplug; /* the thread must end (hot-unplug); set under vm->lock */
};

/* Create the vCPU fd, map kvm_run, set CPUID, MSRs, FPU and LAPIC. */
int vcpu_create(struct vm *vm, struct vcpu *v, uint32_t index, char *err, size_t errlen);
/* Registers for the boot vCPU (APs wait for INIT/SIPI in the kernel LAPIC). */
int vcpu_set_boot_state(struct vcpu *v, const struct boot_result *res, char *err,
                        size_t errlen);
/* Start (or, after a hot-unplug, restart) the thread; it parks first if
 * the VM is paused. */
int vcpu_start(struct vcpu *v);
/* Make the vCPU leave KVM_RUN promptly (any thread). */
void vcpu_kick(struct vcpu *v);
void vcpu_join(struct vcpu *v);
void vcpu_destroy(struct vcpu *v);

/* Install the kick signal handler; call once before creating threads. */
int vcpu_signals_init(void);

#endif
