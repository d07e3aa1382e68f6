/* Thin, checked wrappers over the /dev/kvm and VM file descriptor ioctls. */
#ifndef NIMBUS_KVM_H
#define NIMBUS_KVM_H

#include <stddef.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "memory.h"

struct kvm {
    int sys_fd;            /* /dev/kvm */
    int vm_fd;
    int vcpu_mmap_size;    /* size of struct kvm_run mapping */
    uint32_t max_vcpus;
    struct kvm_cpuid2 *supported_cpuid;
    struct kvm_msr_list *msr_list;
};

/*
 * Open /dev/kvm, check the API version and the capabilities nimbus needs,
 * create the VM with in-kernel irqchip and PIT.  On failure err names what
 * is missing (e.g. "KVM_CAP_IRQFD not supported").
 */
int kvm_open(struct kvm *k, const char *dev_path, char *err, size_t errlen);
void kvm_close(struct kvm *k);

/* Register every boot RAM region of gm as a KVM memslot (slots 0..n-1). */
int kvm_map_memory(struct kvm *k, const struct guest_mem *gm, char *err, size_t errlen);
/* One more memslot (memory hotplug); any thread, vCPUs may run. */
int kvm_add_memslot(struct kvm *k, uint32_t slot, uint64_t gpa, uint64_t size, void *host,
                    char *err, size_t errlen);

/* Drive a GSI; thread-safe (one ioctl). */
int kvm_irq_line(struct kvm *k, uint32_t gsi, uint32_t level);
/* Inject an MSI. */
int kvm_signal_msi(struct kvm *k, uint64_t addr, uint32_t data);
/*
 * Let KVM complete guest MMIO writes of `len` bytes at `addr` by signalling
 * eventfd `fd` instead of exiting to userspace (assign = 0 removes it).
 */
int kvm_ioeventfd(struct kvm *k, uint64_t addr, uint32_t len, int fd, int assign);
/* True when the MSR index is in KVM_GET_MSR_INDEX_LIST. */
int kvm_has_msr(const struct kvm *k, uint32_t index);

#endif
