#include "kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "log.h"

/* Placed in the 32-bit hole just below the BIOS area, as other VMMs do. */
#define KVM_TSS_ADDR 0xfffbd000ull
#define KVM_IDENTITY_MAP_ADDR 0xfffbc000ull

static int check_cap(struct kvm *k, long cap, const char *name, char *err, size_t errlen)
{
    int r = ioctl(k->sys_fd, KVM_CHECK_EXTENSION, cap);
    if (r <= 0) {
        snprintf(err, errlen, "KVM lacks %s, which nimbus needs", name);
        return -1;
    }
    return r;
}

static struct kvm_cpuid2 *get_supported_cpuid(int sys_fd)
{
    for (uint32_t n = 128; n <= 4096; n *= 2) {
        struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(struct kvm_cpuid_entry2));
        if (!c)
            return NULL;
        c->nent = n;
        if (ioctl(sys_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
            return c;
        int e = errno;
        free(c);
        if (e != E2BIG)
            return NULL;
    }
    return NULL;
}

static struct kvm_msr_list *get_msr_list(int sys_fd)
{
    struct kvm_msr_list probe = {.nmsrs = 0};
    /* The first call fails with E2BIG and reports the count. */
    if (ioctl(sys_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
        return NULL;
    struct kvm_msr_list *l = calloc(1, sizeof(*l) + probe.nmsrs * sizeof(uint32_t));
    if (!l)
        return NULL;
    l->nmsrs = probe.nmsrs;
    if (ioctl(sys_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
        free(l);
        return NULL;
    }
    return l;
}

int kvm_open(struct kvm *k, const char *dev_path, char *err, size_t errlen)
{
    memset(k, 0, sizeof(*k));
    k->vm_fd = -1;
    k->sys_fd = open(dev_path, O_RDWR | O_CLOEXEC);
    if (k->sys_fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", dev_path, strerror(errno));
        return -1;
    }
    int ver = ioctl(k->sys_fd, KVM_GET_API_VERSION, 0);
    if (ver != KVM_API_VERSION) {
        snprintf(err, errlen, "%s: KVM API version %d, nimbus needs %d", dev_path, ver,
                 KVM_API_VERSION);
        goto fail;
    }
    static const struct {
        long cap;
        const char *name;
    } caps[] = {
        {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
        {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
        {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
        {KVM_CAP_PIT2, "KVM_CAP_PIT2"},
        {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
        {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
        {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
        {KVM_CAP_SIGNAL_MSI, "KVM_CAP_SIGNAL_MSI"},
        {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
    };
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
        if (check_cap(k, caps[i].cap, caps[i].name, err, errlen) < 0)
            goto fail;

    int maxv = ioctl(k->sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    if (maxv <= 0)
        maxv = ioctl(k->sys_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
    k->max_vcpus = maxv > 0 ? (uint32_t)maxv : 1;

    k->vcpu_mmap_size = ioctl(k->sys_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (k->vcpu_mmap_size < (int)sizeof(struct kvm_run)) {
        snprintf(err, errlen, "KVM_GET_VCPU_MMAP_SIZE failed: %s", strerror(errno));
        goto fail;
    }
    k->supported_cpuid = get_supported_cpuid(k->sys_fd);
    if (!k->supported_cpuid) {
        snprintf(err, errlen, "KVM_GET_SUPPORTED_CPUID failed: %s", strerror(errno));
        goto fail;
    }
    k->msr_list = get_msr_list(k->sys_fd);
    if (!k->msr_list) {
        snprintf(err, errlen, "KVM_GET_MSR_INDEX_LIST failed: %s", strerror(errno));
        goto fail;
    }

    k->vm_fd = ioctl(k->sys_fd, KVM_CREATE_VM, 0);
    if (k->vm_fd < 0) {
        snprintf(err, errlen, "KVM_CREATE_VM failed: %s", strerror(errno));
        goto fail;
    }
    if (ioctl(k->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR) < 0) {
        snprintf(err, errlen, "KVM_SET_TSS_ADDR failed: %s", strerror(errno));
        goto fail;
    }
    /* Only VMX needs the identity map page; AMD and PVM hosts ignore it. */
    uint64_t idmap = KVM_IDENTITY_MAP_ADDR;
    if (ioctl(k->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)
        log_debug("KVM_SET_IDENTITY_MAP_ADDR: %s (ignored)", strerror(errno));
    if (ioctl(k->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
        snprintf(err, errlen, "KVM_CREATE_IRQCHIP failed: %s", strerror(errno));
        goto fail;
    }
    /* The speaker port (0x61) is handled in the kernel too: no exits for it. */
    struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
    if (ioctl(k->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
        snprintf(err, errlen, "KVM_CREATE_PIT2 failed: %s", strerror(errno));
        goto fail;
    }
    return 0;
fail:
    kvm_close(k);
    return -1;
}

void kvm_close(struct kvm *k)
{
    if (k->vm_fd >= 0)
        close(k->vm_fd);
    if (k->sys_fd >= 0)
        close(k->sys_fd);
    free(k->supported_cpuid);
    free(k->msr_list);
    k->vm_fd = k->sys_fd = -1;
    k->supported_cpuid = NULL;
    k->msr_list = NULL;
}

int kvm_add_memslot(struct kvm *k, uint32_t slot, uint64_t gpa, uint64_t size, void *host,
                    char *err, size_t errlen)
{
    struct kvm_userspace_memory_region r = {
        .slot = slot,
        .guest_phys_addr = gpa,
        .memory_size = size,
        .userspace_addr = (uint64_t)(uintptr_t)host,
    };
    if (ioctl(k->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
        snprintf(err, errlen, "KVM_SET_USER_MEMORY_REGION slot %u (gpa 0x%llx size 0x%llx): %s",
                 slot, (unsigned long long)gpa, (unsigned long long)size, strerror(errno));
        return -1;
    }
    return 0;
}

int kvm_map_memory(struct kvm *k, const struct guest_mem *gm, char *err, size_t errlen)
{
    for (unsigned i = 0; i < gm->nregions; i++)
        if (kvm_add_memslot(k, i, gm->regions[i].gpa, gm->regions[i].size,
                            gm->regions[i].host, err, errlen) < 0)
            return -1;
    return 0;
}

int kvm_irq_line(struct kvm *k, uint32_t gsi, uint32_t level)
{
    struct kvm_irq_level l = {.irq = gsi, .level = level ? 1 : 0};
    return ioctl(k->vm_fd, KVM_IRQ_LINE, &l) < 0 ? -errno : 0;
}

int kvm_signal_msi(struct kvm *k, uint64_t addr, uint32_t data)
{
    struct kvm_msi m = {
        .address_lo = (uint32_t)addr, .address_hi = (uint32_t)(addr >> 32), .data = data};
    int r = ioctl(k->vm_fd, KVM_SIGNAL_MSI, &m);
    return r < 0 ? -errno : 0;
}

int kvm_has_msr(const struct kvm *k, uint32_t index)
{
    for (uint32_t i = 0; i < k->msr_list->nmsrs; i++)
        if (k->msr_list->indices[i] == index)
            return 1;
    return 0;
}

int kvm_ioeventfd(struct kvm *k, uint64_t addr, uint32_t len, int fd, int assign)
{
    /* No datamatch: any write of `len` bytes at addr signals fd in the kernel. */
    struct kvm_ioeventfd io = {.addr = addr, .len = len, .fd = fd,
                               .flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN};
    int r = ioctl(k->vm_fd, KVM_IOEVENTFD, &io);
    return r < 0 ? -errno : 0;
}
