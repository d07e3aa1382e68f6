/* Field access for ELF64 headers in an untrusted little-endian buffer. */
#ifndef NIMBUS_BOOT_ELF_READ_H
#define NIMBUS_BOOT_ELF_READ_H

#include <stddef.h>
#include <stdint.h>

#include "bytes.h"
#include "loader.h"

/* Elf64_Ehdr field offsets. */
#define ELF_E_TYPE 16
#define ELF_E_MACHINE 18
#define ELF_E_VERSION 20
#define ELF_E_PHOFF 32
#define ELF_E_SHOFF 40
#define ELF_E_PHENTSIZE 54
#define ELF_E_PHNUM 56
#define ELF_E_SHENTSIZE 58
#define ELF_E_SHNUM 60
#define ELF_EHDR_SIZE 64u
#define ELF_PHDR_SIZE 56u
#define ELF_SHDR_SIZE 64u

struct elf_info {
    uint64_t phoff;
    unsigned phnum;
};

struct elf_phdr {
    uint32_t type;
    uint64_t offset, paddr, filesz, memsz;
};

/* [off, off+len) lies inside a file of file_len bytes (overflow-safe). */
static inline int elf_range_ok(size_t file_len, uint64_t off, uint64_t len)
{
    return off <= file_len && len <= file_len - off;
}

/* Caller has checked that the program header table lies inside the file. */
static inline void elf_read_phdr(const struct boot_image *img, const struct elf_info *ei,
                                 unsigned idx, struct elf_phdr *ph)
{
    const uint8_t *p = img->data + ei->phoff + (uint64_t)idx * ELF_PHDR_SIZE;

    ph->type = get_le32(p);
    ph->offset = get_le64(p + 8);
    ph->paddr = get_le64(p + 24);
    ph->filesz = get_le64(p + 32);
    ph->memsz = get_le64(p + 40);
}

#endif
