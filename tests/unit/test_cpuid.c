/* Per-vCPU CPUID: APIC ids and topology leaves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cpuid.h"

static struct kvm_cpuid2 *fake_supported(void)
{
    struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 8 * sizeof(struct kvm_cpuid_entry2));
    c->nent = 0;
    struct kvm_cpuid_entry2 *e = c->entries;
    e[c->nent++] = (struct kvm_cpuid_entry2){.function = 0x1, .ebx = 0x00000800, .edx = 0};
    e[c->nent++] = (struct kvm_cpuid_entry2){
        .function = 0xb, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX};
    e[c->nent++] = (struct kvm_cpuid_entry2){
        .function = 0xb, .index = 1, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX};
    e[c->nent++] = (struct kvm_cpuid_entry2){
        .function = 0xb, .index = 2, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX};
    e[c->nent++] = (struct kvm_cpuid_entry2){.function = 0xa, .eax = 0x07300403};
    /* What KVM reports for leaf 6 (ARAT) plus bits a host might leak. */
    e[c->nent++] = (struct kvm_cpuid_entry2){.function = 0x6, .eax = 0x77, .ecx = 0x9};
    e[c->nent++] = (struct kvm_cpuid_entry2){.function = 0x80000008, .eax = 0x3030};
    return c;
}

static void test_apic_ids(void **state)
{
    (void)state;
    struct cpu_topology flat = {1, 4, 1, 1};
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(topo_apic_id(&flat, i), i);
    struct cpu_topology smt = {2, 3, 1, 2}; /* 2 packages x 3 cores x 2 threads */
    assert_int_equal(topo_thread_bits(&smt), 1);
    assert_int_equal(topo_core_bits(&smt), 2);
    assert_int_equal(topo_apic_id(&smt, 5), 5);          /* pkg0 core2 thread1 */
    assert_int_equal(topo_apic_id(&smt, 6), 1u << 3);    /* pkg1 starts at bit 3 */
    assert_int_equal(topo_apic_id(&smt, 11), (1u << 3) | 5);
}

static void test_leaf1_and_0xb(void **state)
{
    (void)state;
    struct kvm_cpuid2 *sup = fake_supported();
    struct cpu_topology t = {2, 2, 1, 1};
    struct kvm_cpuid2 *c = cpuid_for_vcpu(sup, &t, 3, 46);
    assert_non_null(c);
    struct kvm_cpuid_entry2 *l1 = cpuid_find(c, 1, 0);
    assert_int_equal(l1->ebx >> 24, 3);
    assert_int_equal((l1->ebx >> 16) & 0xff, 4);
    assert_int_equal(l1->ebx & 0xffff, 0x0800); /* CLFLUSH size preserved */
    assert_true(l1->ecx & (1u << 31));          /* hypervisor */
    assert_true(l1->edx & (1u << 28));          /* HTT */
    struct kvm_cpuid_entry2 *smt = cpuid_find(c, 0xb, 0);
    assert_int_equal(smt->eax, 1);
    assert_int_equal(smt->ebx, 2);
    assert_int_equal((smt->ecx >> 8) & 0xff, 1);
    assert_int_equal(smt->edx, 3);
    struct kvm_cpuid_entry2 *core = cpuid_find(c, 0xb, 1);
    assert_int_equal(core->eax, 2);
    assert_int_equal(core->ebx, 4);
    assert_int_equal((core->ecx >> 8) & 0xff, 2);
    struct kvm_cpuid_entry2 *end = cpuid_find(c, 0xb, 2);
    assert_int_equal(end->ebx, 0);
    assert_int_equal((end->ecx >> 8) & 0xff, 0);
    assert_int_equal(cpuid_find(c, 0xa, 0)->eax, 0); /* no PMU */
    struct kvm_cpuid_entry2 *ext = cpuid_find(c, 0x80000008, 0);
    assert_int_equal(ext->eax & 0xff, 46);           /* 48 > 46: capped */
    free(c);
    c = cpuid_for_vcpu(sup, &t, 0, 40);
    assert_int_equal(cpuid_find(c, 0x80000008, 0)->eax & 0xff, 40);
    assert_int_equal(cpuid_find(c, 0x80000008, 0)->ecx & 0xff, 3);
    free(c);
    free(sup);
}

static void test_single_cpu_no_htt(void **state)
{
    (void)state;
    struct kvm_cpuid2 *sup = fake_supported();
    sup->entries[0].edx = 1u << 28;
    struct cpu_topology t = {1, 1, 1, 1};
    struct kvm_cpuid2 *c = cpuid_for_vcpu(sup, &t, 0, 46);
    assert_false(cpuid_find(c, 1, 0)->edx & (1u << 28));
    free(c);
    free(sup);
}

/* The virtual LAPIC timer never stops: ARAT stays, power management goes. */
static void test_leaf6_keeps_only_arat(void **state)
{
    (void)state;
    struct kvm_cpuid2 *sup = fake_supported();
    struct cpu_topology t = {1, 2, 1, 1};
    struct kvm_cpuid2 *c = cpuid_for_vcpu(sup, &t, 0, 46);
    assert_non_null(c);
    struct kvm_cpuid_entry2 *l6 = cpuid_find(c, 6, 0);
    assert_non_null(l6);
    assert_int_equal(l6->eax, 1u << 2);
    assert_int_equal(l6->ecx, 0);
    free(c);
    free(sup);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apic_ids),
        cmocka_unit_test(test_leaf1_and_0xb),
        cmocka_unit_test(test_single_cpu_no_htt),
        cmocka_unit_test(test_leaf6_keeps_only_arat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
