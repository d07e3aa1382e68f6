/*
 * A freestanding PVH guest for VMM smoke tests on any KVM host (including
 * ones that cannot run a Linux kernel).  Entered in 32-bit protected mode
 * with EBX = hvm_start_info: it prints the command line it was given on
 * COM1, then does what the command line's first character asks:
 *   'p' power off through the ACPI S5 sleep register (port 0x600),
 *   'r' reset through the i8042 (0xfe to port 0x64),
 *   'b' jump to the reset vector stub nimbus puts at 0xffff0 (its bytes
 *       mean the same in 32-bit mode), 't' triple fault,
 *   'h' halt forever (timeout tests), 'u' a ud2,
 *   'l' print '.' forever, one every ~2^20 loop turns: a guest whose progress
 *       a test can watch (pause/resume),
 *   'o' write a byte to port 0x510 (a test plugin's register), then power off.
 */
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
    mov     24(%ebx), %esi          /* start_info.cmdline_paddr (low 32 bits) */
    mov     %esi, %edi
    mov     $0x3f8, %dx
    lea     banner, %ecx
1:  movb    (%ecx), %al
    test    %al, %al
    jz      2f
    outb    %al, %dx
    inc     %ecx
    jmp     1b
2:  test    %esi, %esi
    jz      4f
3:  movb    (%esi), %al
    test    %al, %al
    jz      4f
    outb    %al, %dx
    inc     %esi
    jmp     3b
4:  movb    $'\n', %al
    outb    %al, %dx
    test    %edi, %edi
    jz      poweroff
    movb    (%edi), %al
    cmp     $'r', %al
    je      reset
    cmp     $'b', %al
    je      reset_vector
    cmp     $'t', %al
    je      triple
    cmp     $'h', %al
    je      halt
    cmp     $'u', %al
    je      undefined
    cmp     $'l', %al
    je      ticks
    cmp     $'o', %al
    je      probe_port
poweroff:
    mov     $0x600, %dx
    movb    $0x34, %al              /* SLP_TYP=5 (S5) << 2 | SLP_EN */
    outb    %al, %dx
    jmp     halt
reset:
    mov     $0x64, %dx
    movb    $0xfe, %al
    outb    %al, %dx
    jmp     halt
reset_vector:
    mov     $0xffff0, %eax
    jmp     *%eax
triple:
    lidt    null_idt
    int     $3
undefined:
    ud2
probe_port:
    mov     $0x510, %dx
    outb    %al, %dx
    jmp     poweroff
ticks:
    mov     $0x3f8, %dx
5:  movb    $'.', %al
    outb    %al, %dx
    mov     $0x100000, %ecx
6:  dec     %ecx
    jnz     6b
    jmp     5b
halt:
    hlt
    jmp     halt

    .data
banner:
    .asciz  "tiny guest: cmdline="
    .p2align 3
null_idt:
    .word 0
    .long 0
