/*
 * Finds the PVH entry point: the ELF note named "Xen" of type
 * XEN_ELFNOTE_PHYS32_ENTRY (18), whose value is the 32-bit physical entry.
 * Notes are looked up in PT_NOTE segments first, then in SHT_NOTE sections
 * (for files whose program headers do not cover .notes).
 */
#include <elf.h>
#include <inttypes.h>
#include <string.h>

#include "elf_read.h"

#define XEN_ELFNOTE_PHYS32_ENTRY 18u
#define NOTE_HDR_SIZE 12u
#define ELF_MAX_SHDRS 4096u

static uint64_t align4(uint64_t v)
{
    return (v + 3) & ~3ull;
}

/* Scan the notes in [off, off+size) of the file (range already checked). */
static int note_scan(const struct boot_image *img, uint64_t off, uint64_t size,
                     uint64_t *entry, char *err, size_t errlen)
{
    uint64_t pos = 0;

    /* Sizes are 32-bit, so none of the sums below can overflow 64 bits. */
    while (size - pos >= NOTE_HDR_SIZE) {
        const uint8_t *p = img->data + off + pos;
        uint32_t namesz = get_le32(p), descsz = get_le32(p + 4), type = get_le32(p + 8);
        uint64_t desc = pos + NOTE_HDR_SIZE + align4(namesz);
        uint64_t next = desc + align4(descsz);

        if (desc + descsz > size)
            return boot_fail(err, errlen, img->name,
                             "truncated ELF note at file offset 0x%" PRIx64, off + pos);
        if (namesz == 4 && memcmp(p + NOTE_HDR_SIZE, "Xen", 4) == 0 &&
            type == XEN_ELFNOTE_PHYS32_ENTRY) {
            const uint8_t *v = img->data + off + desc;
            if (descsz == 4)
                *entry = get_le32(v);
            else if (descsz == 8)
                *entry = get_le64(v);
            else
                return boot_fail(err, errlen, img->name,
                                 "PVH entry note has a %" PRIu32 "-byte value (need 4 or 8)",
                                 descsz);
            return 1;
        }
        if (next >= size)
            break;
        pos = next;
    }
    return 0;
}

static int scan_segments(const struct boot_image *img, uint64_t *entry, char *err,
                         size_t errlen)
{
    /* elf_parse validated the program header table before calling us. */
    struct elf_info ei = {.phoff = get_le64(img->data + ELF_E_PHOFF),
                          .phnum = get_le16(img->data + ELF_E_PHNUM)};

    for (unsigned i = 0; i < ei.phnum; i++) {
        struct elf_phdr ph;
        int rc;

        elf_read_phdr(img, &ei, i, &ph);
        if (ph.type != PT_NOTE)
            continue;
        if (!elf_range_ok(img->len, ph.offset, ph.filesz))
            return boot_fail(err, errlen, img->name,
                             "note segment %u [0x%" PRIx64 ", +0x%" PRIx64
                             ") lies outside the file",
                             i, ph.offset, ph.filesz);
        rc = note_scan(img, ph.offset, ph.filesz, entry, err, errlen);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int scan_sections(const struct boot_image *img, uint64_t *entry, char *err,
                         size_t errlen)
{
    const uint8_t *d = img->data;
    uint64_t shoff = get_le64(d + ELF_E_SHOFF);
    unsigned shnum = get_le16(d + ELF_E_SHNUM);

    if (shoff == 0 || shnum == 0)
        return 0;
    if (get_le16(d + ELF_E_SHENTSIZE) != ELF_SHDR_SIZE || shnum > ELF_MAX_SHDRS ||
        !elf_range_ok(img->len, shoff, (uint64_t)shnum * ELF_SHDR_SIZE))
        return boot_fail(err, errlen, img->name, "bad ELF section header table");
    for (unsigned i = 0; i < shnum; i++) {
        const uint8_t *sh = d + shoff + (uint64_t)i * ELF_SHDR_SIZE;
        uint64_t off = get_le64(sh + 24), size = get_le64(sh + 32);
        int rc;

        if (get_le32(sh + 4) != SHT_NOTE)
            continue;
        if (!elf_range_ok(img->len, off, size))
            return boot_fail(err, errlen, img->name,
                             "note section %u [0x%" PRIx64 ", +0x%" PRIx64
                             ") lies outside the file",
                             i, off, size);
        rc = note_scan(img, off, size, entry, err, errlen);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int elf_find_pvh_entry(const struct boot_image *img, uint64_t *entry, char *err,
                       size_t errlen)
{
    int rc = scan_segments(img, entry, err, errlen);

    if (rc != 0)
        return rc;
    return scan_sections(img, entry, err, errlen);
}
