/*
 * ELF64 x86-64 vmlinux loading for the PVH entry.  Segments go to their
 * physical addresses (p_paddr); every size and offset comes from the file
 * and is checked before anything is written.
 */
#include <elf.h>
#include <inttypes.h>
#include <string.h>

#include "../layout.h"
#include "bytes.h"
#include "elf_read.h"
#include "loader.h"

/* vmlinux has a handful of program headers; this only bounds the work. */
#define ELF_MAX_PHDRS 256u

static int elf_check_header(const struct boot_image *img, struct elf_info *ei, char *err,
                            size_t errlen)
{
    const uint8_t *d = img->data;
    uint64_t table;

    if (img->len < ELF_EHDR_SIZE)
        return boot_fail(err, errlen, img->name, "truncated ELF header (%zu bytes)", img->len);
    if (d[EI_CLASS] != ELFCLASS64)
        return boot_fail(err, errlen, img->name, "not a 64-bit ELF file");
    if (d[EI_DATA] != ELFDATA2LSB)
        return boot_fail(err, errlen, img->name, "not a little-endian ELF file");
    if (d[EI_VERSION] != EV_CURRENT || get_le32(d + ELF_E_VERSION) != EV_CURRENT)
        return boot_fail(err, errlen, img->name, "unknown ELF version");
    if (get_le16(d + ELF_E_MACHINE) != EM_X86_64)
        return boot_fail(err, errlen, img->name, "ELF machine %u is not x86-64",
                         get_le16(d + ELF_E_MACHINE));
    if (get_le16(d + ELF_E_TYPE) != ET_EXEC)
        return boot_fail(err, errlen, img->name, "ELF file is not an executable (ET_EXEC)");

    ei->phoff = get_le64(d + ELF_E_PHOFF);
    ei->phnum = get_le16(d + ELF_E_PHNUM);
    if (get_le16(d + ELF_E_PHENTSIZE) != ELF_PHDR_SIZE)
        return boot_fail(err, errlen, img->name, "bad ELF program header size %u",
                         get_le16(d + ELF_E_PHENTSIZE));
    if (ei->phnum == 0 || ei->phnum > ELF_MAX_PHDRS)
        return boot_fail(err, errlen, img->name, "bad ELF program header count %u", ei->phnum);
    table = (uint64_t)ei->phnum * ELF_PHDR_SIZE;
    if (!elf_range_ok(img->len, ei->phoff, table))
        return boot_fail(err, errlen, img->name,
                         "ELF program headers [0x%" PRIx64 ", +0x%" PRIx64
                         ") lie outside the file (%zu bytes)",
                         ei->phoff, table, img->len);
    return 0;
}

/* Check one PT_LOAD against the file and guest RAM below the hole. */
static int elf_check_load(const struct boot_image *img, const struct elf_phdr *ph,
                          uint64_t low_end, unsigned idx, char *err, size_t errlen)
{
    uint64_t end;

    if (ph->filesz > ph->memsz)
        return boot_fail(err, errlen, img->name,
                         "segment %u: file size 0x%" PRIx64 " exceeds memory size 0x%" PRIx64,
                         idx, ph->filesz, ph->memsz);
    if (!elf_range_ok(img->len, ph->offset, ph->filesz))
        return boot_fail(err, errlen, img->name,
                         "segment %u: data [0x%" PRIx64 ", +0x%" PRIx64
                         ") lies outside the file (%zu bytes)",
                         idx, ph->offset, ph->filesz, img->len);
    if (__builtin_add_overflow(ph->paddr, ph->memsz, &end) || ph->paddr < LAYOUT_HIGH_RAM ||
        end > low_end)
        return boot_fail(err, errlen, img->name,
                         "segment %u: [0x%" PRIx64 ", +0x%" PRIx64
                         ") is outside guest RAM [1 MiB, 0x%" PRIx64 ")",
                         idx, ph->paddr, ph->memsz, low_end);
    return 0;
}

int elf_parse(const struct guest_mem *gm, const struct boot_image *img,
              struct kernel_plan *plan, char *err, size_t errlen)
{
    struct elf_info ei = {0};
    uint64_t low_end = gm_low_ram_end(gm), lo = UINT64_MAX, hi = 0, entry = 0;
    int found, entry_inside = 0;

    if (elf_check_header(img, &ei, err, errlen) != 0)
        return -1;
    for (unsigned i = 0; i < ei.phnum; i++) {
        struct elf_phdr ph;
        elf_read_phdr(img, &ei, i, &ph);
        if (ph.type != PT_LOAD || ph.memsz == 0)
            continue;
        if (elf_check_load(img, &ph, low_end, i, err, errlen) != 0)
            return -1;
        if (ph.paddr < lo)
            lo = ph.paddr;
        if (ph.paddr + ph.memsz > hi)
            hi = ph.paddr + ph.memsz;
    }
    if (hi == 0)
        return boot_fail(err, errlen, img->name, "ELF file has no loadable segment");

    found = elf_find_pvh_entry(img, &entry, err, errlen);
    if (found < 0)
        return -1;
    if (found == 0)
        return boot_fail(err, errlen, img->name,
                         "no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); build the kernel "
                         "with CONFIG_PVH=y or use a bzImage");
    /* The entry must be code we load, or the vCPU starts in zeroes. */
    for (unsigned i = 0; i < ei.phnum && !entry_inside; i++) {
        struct elf_phdr ph;
        elf_read_phdr(img, &ei, i, &ph);
        entry_inside = ph.type == PT_LOAD && entry >= ph.paddr && entry - ph.paddr < ph.memsz;
    }
    if (!entry_inside)
        return boot_fail(err, errlen, img->name,
                         "PVH entry 0x%" PRIx64 " is outside the loaded segments", entry);

    plan->kind = BOOT_ENTRY_PVH;
    plan->entry = entry;
    plan->load_addr = lo;
    plan->kernel_end = hi;
    plan->cmdline_max = LAYOUT_CMDLINE_MAX - 1;
    plan->initrd_limit = low_end;
    return 0;
}

int elf_load(struct guest_mem *gm, const struct boot_image *img, char *err, size_t errlen)
{
    struct elf_info ei = {.phoff = get_le64(img->data + ELF_E_PHOFF),
                          .phnum = get_le16(img->data + ELF_E_PHNUM)};

    for (unsigned i = 0; i < ei.phnum; i++) {
        struct elf_phdr ph;
        uint8_t *dst;

        elf_read_phdr(img, &ei, i, &ph);
        if (ph.type != PT_LOAD || ph.memsz == 0)
            continue;
        /* elf_parse checked the range; gm_ptr re-checks against the mapping. */
        dst = gm_ptr(gm, ph.paddr, ph.memsz);
        if (!dst)
            return boot_fail(err, errlen, img->name,
                             "segment %u does not fit in guest RAM", i);
        memcpy(dst, img->data + ph.offset, (size_t)ph.filesz);
        memset(dst + ph.filesz, 0, (size_t)(ph.memsz - ph.filesz));
    }
    return 0;
}
