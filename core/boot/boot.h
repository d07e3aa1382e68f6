/* Kernel loading: ELF vmlinux (PVH entry) and bzImage (64-bit boot protocol). */
#ifndef NIMBUS_BOOT_H
#define NIMBUS_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "../memory.h"
#include "e820.h"

enum boot_entry_kind {
    BOOT_ENTRY_LINUX64 = 1, /* 64-bit long mode, RSI = boot_params */
    BOOT_ENTRY_PVH = 2,     /* 32-bit protected mode, paging off, EBX = start_info */
};

struct boot_request {
    const char *kernel_path;    /* NULL: kernel_buf (read from a disk image) */
    const char *initramfs_path; /* may be NULL; overrides initrd_buf */
    /* A kernel and initrd already in memory (the boot-disk reader's). */
    const uint8_t *kernel_buf, *initrd_buf;
    size_t kernel_len, initrd_len;
    const char *kernel_name;    /* for messages about kernel_buf */
    int firmware;               /* only a PVH ELF will do (--firmware) */
    const char *cmdline;        /* may be NULL */
    uint64_t rsdp_addr;         /* given to the kernel (boot_params / start_info) */
    /* Device areas the E820 map must list as reserved (the PCI ECAM). */
    const struct e820_entry *e820_extra;
    int ne820_extra;
};

struct boot_result {
    enum boot_entry_kind kind;
    uint64_t entry;        /* guest-physical entry point */
    uint64_t params_addr;  /* boot_params or hvm_start_info */
    uint64_t kernel_end;   /* first byte after the loaded kernel */
    uint64_t initrd_addr, initrd_size;
};

/*
 * Load kernel, initramfs and command line into guest memory and write the
 * boot structures (E820 map, boot_params or start_info, GDT, page tables).
 * Any malformed or truncated image, or one that does not fit, fails with a
 * message in err naming the file and the problem; returns -1.
 */
int boot_load(struct guest_mem *gm, const struct boot_request *req,
              struct boot_result *res, char *err, size_t errlen);

/*
 * Same as boot_load's kernel step over a buffer (fuzzing and unit tests).
 * `initrd` may be NULL.
 */
int boot_load_kernel_buf(struct guest_mem *gm, const uint8_t *img, size_t len,
                         const uint8_t *initrd, size_t initrd_len,
                         const char *cmdline, uint64_t rsdp_addr,
                         struct boot_result *res, char *err, size_t errlen);

/*
 * Put a 16-byte stub at the x86 reset vector that pulses the i8042 reset
 * line.  There is no firmware, yet Linux on a hardware-reduced ACPI machine
 * reboots by jumping to the reset vector in real mode (its "BIOS" method,
 * tried before the keyboard controller); the stub turns that into a reset
 * nimbus sees.  Returns 0 or -EFAULT when the page is not RAM.
 */
int boot_install_reset_stub(struct guest_mem *gm);

/*
 * Register state for the boot vCPU at `res`'s entry: fills regs and the
 * segment/control parts of sregs (the caller got sregs from KVM first).
 */
void boot_cpu_state(const struct boot_result *res, struct kvm_regs *regs,
                    struct kvm_sregs *sregs);

#endif
