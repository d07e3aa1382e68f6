/* Internal interfaces of the kernel loader, shared by the files in core/boot. */
#ifndef NIMBUS_BOOT_LOADER_H
#define NIMBUS_BOOT_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "boot.h"
#include "e820.h"

/* Guest-physical placement of the boot GDT's descriptors. */
#define BOOT_GDT_ENTRIES 4
#define BOOT_SEL_CODE 0x10 /* Linux's __BOOT_CS */
#define BOOT_SEL_DATA 0x18 /* Linux's __BOOT_DS */

/* PVH module list: after the memory map, in the same page. */
#define BOOT_PVH_MODLIST (LAYOUT_PVH_MEMMAP + 0x800)

/* An untrusted input file already in host memory. */
struct boot_image {
    const char *name; /* for messages: the path, or "kernel"/"initrd" */
    const uint8_t *data;
    size_t len;
};

/*
 * What a format parser decided about a kernel, before anything is written
 * to guest memory.  [load_addr, kernel_end) is all the memory the kernel
 * may touch while it starts, so the initrd must stay out of it.
 */
struct kernel_plan {
    enum boot_entry_kind kind;
    uint64_t entry;
    uint64_t load_addr;
    uint64_t kernel_end;
    uint64_t cmdline_max;  /* longest command line accepted, without the NUL */
    uint64_t initrd_limit; /* the initrd must end at or below this address */
    /* bzImage only */
    uint64_t setup_size;   /* bytes of real-mode setup before the payload */
    uint64_t payload_len;  /* bytes copied to load_addr */
    uint64_t header_end;   /* end of the setup header inside the image */
};

/* Everything besides the kernel that the boot structures point at. */
struct boot_setup {
    uint64_t cmdline_addr, cmdline_len; /* len without the NUL */
    uint64_t initrd_addr, initrd_size;  /* size 0: no initrd */
    uint64_t rsdp_addr;
    const struct e820_entry *e820_extra; /* reserved device areas, may be NULL */
    int ne820_extra;
    struct e820_entry e820[E820_MAX_ENTRIES];
    int ne820;
};

/* boot_file.c: a read-only view of a whole file (empty files allowed). */
struct boot_file {
    struct boot_image img;
    void *map;
    size_t maplen;
};
int boot_file_open(const char *path, struct boot_file *f, char *err, size_t errlen);
void boot_file_close(struct boot_file *f);

/* Format "<name>: <message>" into err; always returns -1. */
int boot_fail(char *err, size_t errlen, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* bzimage.c: validate the image and plan its placement (writes nothing). */
int bzimage_parse(const struct guest_mem *gm, const struct boot_image *img,
                  struct kernel_plan *plan, char *err, size_t errlen);
/* Copy the protected-mode payload to plan->load_addr. */
int bzimage_load(struct guest_mem *gm, const struct boot_image *img,
                 const struct kernel_plan *plan, char *err, size_t errlen);
/* bootparams.c: write the zero page at LAYOUT_ZERO_PAGE. */
int bootparams_write(struct guest_mem *gm, const struct boot_image *img,
                     const struct kernel_plan *plan, const struct boot_setup *setup,
                     char *err, size_t errlen);

/* elf.c: validate an ELF vmlinux, find its PVH entry (writes nothing). */
int elf_parse(const struct guest_mem *gm, const struct boot_image *img,
              struct kernel_plan *plan, char *err, size_t errlen);
/* Copy every PT_LOAD segment and zero its bss part. */
int elf_load(struct guest_mem *gm, const struct boot_image *img, char *err, size_t errlen);
/* elf_note.c: value of the Xen PHYS32_ENTRY note; 1 found, 0 absent, -1 bad. */
int elf_find_pvh_entry(const struct boot_image *img, uint64_t *entry, char *err,
                       size_t errlen);

/* pvh.c: write hvm_start_info, memory map and module list. */
int pvh_write_start_info(struct guest_mem *gm, const struct boot_setup *setup,
                         const char *name, char *err, size_t errlen);

/* cpu_tables.c: boot GDT (code descriptor per entry kind) and page tables. */
int boot_write_gdt(struct guest_mem *gm, enum boot_entry_kind kind);
int boot_write_page_tables(struct guest_mem *gm);
uint64_t boot_gdt_code_descriptor(enum boot_entry_kind kind);

#endif
