/* Guest CPUID: KVM's supported set, filtered, with per-vCPU topology. */
#ifndef NIMBUS_CPUID_H
#define NIMBUS_CPUID_H

#include <stdint.h>

#include <linux/kvm.h>

struct cpu_topology {
    uint32_t threads_per_core;
    uint32_t cores_per_die;
    uint32_t dies_per_package;
    uint32_t packages;
};

/* Bits of the APIC id used by the SMT and core levels. */
uint32_t topo_thread_bits(const struct cpu_topology *t);
uint32_t topo_core_bits(const struct cpu_topology *t);
/* APIC id of vCPU `index` (ids are sparse when counts are not powers of 2). */
uint32_t topo_apic_id(const struct cpu_topology *t, uint32_t index);

/*
 * Build vCPU `index`'s CPUID from KVM_GET_SUPPORTED_CPUID output.  Returns a
 * calloc'ed table (caller frees) or NULL on allocation failure.
 */
struct kvm_cpuid2 *cpuid_for_vcpu(const struct kvm_cpuid2 *supported,
                                  const struct cpu_topology *topo, uint32_t index,
                                  uint32_t max_phys_bits);

/* Find an entry (NULL if absent). */
struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, uint32_t function, uint32_t index);

#endif
