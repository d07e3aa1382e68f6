/*
 * Entry of the hostile guest: a PVH ELF note (XEN_ELFNOTE_PHYS32_ENTRY), so
 * nimbus enters _start in 32-bit protected mode, paging off, with EBX =
 * hvm_start_info.  Zero .bss, take our own stack, call hostile_main().
 * The probe guest (../probe) shares this entry with -DGUEST_MAIN=probe_main.
 */
#ifndef GUEST_MAIN
#define GUEST_MAIN hostile_main
#endif
    .section .note.Xen, "a"
    .p2align 2
    .long 4                 /* namesz */
    .long 4                 /* descsz */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .long _start

    .text
    .code32
    .globl _start
_start:
    cli
    cld
    mov     %ebx, %esi
    mov     $__bss_start, %edi
    mov     $__bss_end, %ecx
    sub     %edi, %ecx
    xor     %eax, %eax
    rep stosb
    mov     $stack_top, %esp
    push    %esi
    call    GUEST_MAIN
1:  hlt
    jmp     1b

    .bss
    .p2align 4
stack:
    .skip   65536
stack_top:

    .section .note.GNU-stack, "", @progbits
