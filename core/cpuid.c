#include "cpuid.h"

#include <stdlib.h>
#include <string.h>

static uint32_t ceil_log2(uint32_t v)
{
    uint32_t b = 0;
    while ((1u << b) < v && b < 31)
        b++;
    return b;
}

uint32_t topo_thread_bits(const struct cpu_topology *t) { return ceil_log2(t->threads_per_core); }

uint32_t topo_core_bits(const struct cpu_topology *t)
{
    return ceil_log2(t->cores_per_die * t->dies_per_package);
}

uint32_t topo_apic_id(const struct cpu_topology *t, uint32_t index)
{
    uint32_t per_pkg = t->threads_per_core * t->cores_per_die * t->dies_per_package;
    uint32_t pkg = index / per_pkg;
    uint32_t in_pkg = index % per_pkg;
    uint32_t core = in_pkg / t->threads_per_core;
    uint32_t thread = in_pkg % t->threads_per_core;
    uint32_t tb = topo_thread_bits(t), cb = topo_core_bits(t);
    return (pkg << (tb + cb)) | (core << tb) | thread;
}

struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, uint32_t function, uint32_t index)
{
    for (uint32_t i = 0; i < c->nent; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        if (e->function != function)
            continue;
        if ((e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) && e->index != index)
            continue;
        return e;
    }
    return NULL;
}

/* Leaves 0xB and 0x1F describe the same levels; 0x1F adds the die level. */
static void set_ext_topology(struct kvm_cpuid_entry2 *e, const struct cpu_topology *t,
                             uint32_t apic_id, int with_die)
{
    uint32_t tb = topo_thread_bits(t);
    uint32_t core_only_bits = ceil_log2(t->cores_per_die);
    uint32_t cb = topo_core_bits(t);
    uint32_t per_pkg = t->threads_per_core * t->cores_per_die * t->dies_per_package;
    uint32_t sub = e->index;
    uint32_t level_type = 0, shift = 0, count = 0;
    if (sub == 0) {
        level_type = 1; /* SMT */
        shift = tb;
        count = t->threads_per_core;
    } else if (sub == 1) {
        level_type = 2; /* core */
        shift = with_die ? tb + core_only_bits : tb + cb;
        count = with_die ? t->threads_per_core * t->cores_per_die : per_pkg;
    } else if (sub == 2 && with_die) {
        level_type = 5; /* die */
        shift = tb + cb;
        count = per_pkg;
    }
    e->eax = level_type ? shift : 0;
    e->ebx = level_type ? count : 0;
    e->ecx = (level_type << 8) | (sub & 0xff);
    e->edx = apic_id;
}

struct kvm_cpuid2 *cpuid_for_vcpu(const struct kvm_cpuid2 *supported,
                                  const struct cpu_topology *topo, uint32_t index,
                                  uint32_t max_phys_bits)
{
    size_t sz = sizeof(*supported) + supported->nent * sizeof(supported->entries[0]);
    struct kvm_cpuid2 *c = malloc(sz);
    if (!c)
        return NULL;
    memcpy(c, supported, sz);

    uint32_t apic_id = topo_apic_id(topo, index);
    uint32_t per_pkg = topo->threads_per_core * topo->cores_per_die * topo->dies_per_package;
    uint32_t tb = topo_thread_bits(topo), cb = topo_core_bits(topo);

    for (uint32_t i = 0; i < c->nent; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        switch (e->function) {
        case 0x1:
            /* APIC id, logical count per package, HTT when >1, hypervisor bit. */
            e->ebx = (e->ebx & 0x0000ffffu) | (apic_id << 24) |
                     ((per_pkg > 255 ? 255 : per_pkg) << 16);
            if (per_pkg > 1)
                e->edx |= 1u << 28;
            else
                e->edx &= ~(1u << 28);
            e->ecx |= 1u << 31;
            break;
        case 0x4: {
            /* Deterministic cache leaf: cores per package and sharing. */
            uint32_t cache_level = (e->eax >> 5) & 7;
            uint32_t cores = per_pkg / topo->threads_per_core;
            uint32_t sharing = cache_level >= 3 ? per_pkg : topo->threads_per_core;
            e->eax &= 0x3ffu;
            if (e->eax & 0x1f) {
                e->eax |= ((cores - 1) & 0x3f) << 26;
                e->eax |= ((sharing - 1) & 0xfff) << 14;
            }
            break;
        }
        case 0x6:
            /*
             * No thermal/power management exposed to the guest, except
             * ARAT (eax bit 2), which KVM reports: a virtual LAPIC timer
             * never stops in idle.  Without it Linux marks its LAPIC timer
             * C3STOP and wants a broadcast timer this machine does not have.
             */
            e->eax &= 1u << 2;
            e->ebx = e->ecx = e->edx = 0;
            break;
        case 0xa:
            /* No PMU: the guest must not program counters we do not virtualise. */
            e->eax = e->ebx = e->ecx = e->edx = 0;
            break;
        case 0xb:
            set_ext_topology(e, topo, apic_id, 0);
            break;
        case 0x1f:
            set_ext_topology(e, topo, apic_id, 1);
            break;
        case 0x80000008:
            /* Physical address bits capped as configured; core count for AMD. */
            if ((e->eax & 0xff) > max_phys_bits)
                e->eax = (e->eax & ~0xffu) | max_phys_bits;
            e->ecx = (e->ecx & ~0xf0ffu) | ((tb + cb) << 12) | ((per_pkg - 1) & 0xff);
            break;
        case 0x8000001e:
            /* AMD extended APIC id / core / node. */
            e->eax = apic_id;
            e->ebx = ((topo->threads_per_core - 1) << 8) | ((apic_id >> tb) & 0xff);
            e->ecx = 0;
            e->edx = 0;
            break;
        default:
            break;
        }
    }
    return c;
}
