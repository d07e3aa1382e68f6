/*
 * Register state of the boot vCPU.
 *
 * LINUX64 (64-bit boot protocol): long mode with the identity page tables,
 * CS = __BOOT_CS 64-bit code, the data segments = __BOOT_DS, RSI pointing at
 * boot_params, interrupts off.
 *
 * PVH: 32-bit protected mode with paging off, flat CS/DS/ES/SS, EBX
 * pointing at hvm_start_info, interrupts off.
 *
 * The IDT is left empty (limit 0): nothing may interrupt the kernel before
 * it installs its own, and an early exception then shuts the guest down
 * visibly instead of running through a real-mode vector table.
 */
#include <string.h>

#include "../layout.h"
#include "loader.h"

#define CR0_PE (1ull << 0)
#define CR0_ET (1ull << 4)
#define CR0_PG (1ull << 31)
#define CR4_PAE (1ull << 5)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)
#define RFLAGS_RESERVED 0x2ull /* bit 1 is always set; IF clear */

#define SEG_TYPE_CODE 0xb /* execute/read, accessed */
#define SEG_TYPE_DATA 0x3 /* read/write, accessed */
#define SEG_TYPE_TSS_BUSY 0xb
#define SEG_TYPE_LDT 0x2

static struct kvm_segment flat_segment(uint16_t selector, uint8_t type, int long_mode)
{
    return (struct kvm_segment){
        .base = 0,
        .limit = 0xffffffff,
        .selector = selector,
        .type = type,
        .present = 1,
        .dpl = 0,
        .db = long_mode ? 0 : 1, /* L=1 requires D=0 */
        .s = 1,
        .l = long_mode ? 1 : 0,
        .g = 1,
    };
}

/* System segments as after reset: VMX entry checks want a usable TR. */
static void system_segments(struct kvm_sregs *sregs)
{
    sregs->tr = (struct kvm_segment){
        .limit = 0xffff, .type = SEG_TYPE_TSS_BUSY, .present = 1};
    sregs->ldt = (struct kvm_segment){.limit = 0xffff, .type = SEG_TYPE_LDT, .present = 1};
}

void boot_cpu_state(const struct boot_result *res, struct kvm_regs *regs,
                    struct kvm_sregs *sregs)
{
    int lm = res->kind == BOOT_ENTRY_LINUX64;
    struct kvm_segment data = flat_segment(BOOT_SEL_DATA, SEG_TYPE_DATA, 0);

    memset(regs, 0, sizeof(*regs));
    regs->rip = res->entry;
    regs->rflags = RFLAGS_RESERVED;
    regs->rsp = LAYOUT_BOOT_STACK;
    if (lm)
        regs->rsi = res->params_addr;
    else
        regs->rbx = res->params_addr;

    sregs->cs = flat_segment(BOOT_SEL_CODE, SEG_TYPE_CODE, lm);
    sregs->ds = sregs->es = sregs->fs = sregs->gs = sregs->ss = data;
    system_segments(sregs);
    sregs->gdt.base = LAYOUT_GDT_ADDR;
    sregs->gdt.limit = BOOT_GDT_ENTRIES * 8 - 1;
    sregs->idt.base = 0;
    sregs->idt.limit = 0;

    sregs->cr2 = 0;
    if (lm) {
        sregs->cr0 = CR0_PE | CR0_ET | CR0_PG;
        sregs->cr3 = LAYOUT_PML4;
        sregs->cr4 = CR4_PAE;
        sregs->efer = EFER_LME | EFER_LMA;
    } else {
        sregs->cr0 = CR0_PE | CR0_ET;
        sregs->cr3 = 0;
        sregs->cr4 = 0;
        sregs->efer = 0;
    }
}
