/*
 * Kernel loader: synthetic bzImages and ELF vmlinux files are built here,
 * loaded into guest RAM and the boot structures checked byte by byte; every
 * kind of malformed image must fail with a message naming the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "boot/boot.h"
#include "boot/e820.h"
#include "layout.h"
#include "memory.h"

#define MiB (1ull << 20)
#define RAM_SIZE (256 * MiB)
#define RSDP 0xe0000ull

/* ---- little-endian helpers ---- */

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)v);
    put16(p + 2, (uint16_t)(v >> 16));
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
    return get16(p) | (uint32_t)get16(p + 2) << 16;
}

static uint64_t get64(const uint8_t *p)
{
    return get32(p) | (uint64_t)get32(p + 4) << 32;
}

static uint8_t *gpa(struct guest_mem *gm, uint64_t addr, uint64_t len)
{
    uint8_t *p = gm_ptr(gm, addr, len);
    assert_non_null(p);
    return p;
}

/* ---- synthetic bzImage ---- */

struct bz_opts {
    uint16_t version, xlf;
    uint8_t setup_sects, loadflags, relocatable;
    uint32_t payload, syssize_extra, init_size, align, initrd_max, cmdline_size;
    uint64_t pref;
};

static struct bz_opts bz_default(void)
{
    return (struct bz_opts){.version = 0x020f, .xlf = 0x3, .setup_sects = 4, .loadflags = 0x1,
                            .relocatable = 1, .payload = 0x4000, .init_size = 0x800000,
                            .align = 0x200000, .initrd_max = 0x7fffffff,
                            .cmdline_size = 2047, .pref = 0x1000000};
}

static uint8_t payload_byte(size_t i)
{
    return (uint8_t)(i * 7 + 3);
}

static uint8_t *make_bzimage(const struct bz_opts *o, size_t *len)
{
    size_t setup = ((size_t)(o->setup_sects ? o->setup_sects : 4) + 1) * 512;
    uint8_t *img = calloc(1, setup + o->payload);

    assert_non_null(img);
    img[0x1f1] = o->setup_sects;
    put32(img + 0x1f4, o->payload / 16 + o->syssize_extra);
    put16(img + 0x1fa, 0xffff); /* vid_mode: must be carried into boot_params */
    put16(img + 0x1fe, 0xaa55);
    img[0x200] = 0xeb;
    img[0x201] = 0x6a; /* header ends at 0x26c */
    memcpy(img + 0x202, "HdrS", 4);
    put16(img + 0x206, o->version);
    img[0x210] = 0x12;             /* type_of_loader: the loader must overwrite it */
    img[0x211] = (uint8_t)(o->loadflags | 0x20 | 0x40); /* QUIET, KEEP_SEGMENTS */
    put32(img + 0x22c, o->initrd_max);
    put32(img + 0x230, o->align);
    img[0x234] = o->relocatable;
    put16(img + 0x236, o->xlf);
    put32(img + 0x238, o->cmdline_size);
    put64(img + 0x258, o->pref);
    put32(img + 0x260, o->init_size);
    img[0x280] = 0x5a; /* past the header: must not be copied */
    for (size_t i = 0; i < o->payload; i++)
        img[setup + i] = payload_byte(i);
    *len = setup + o->payload;
    return img;
}

/* ---- synthetic ELF vmlinux ---- */

#define ELF_DATA_OFF 0x1000u
#define ELF_FILESZ 0x3000u
#define ELF_MEMSZ 0x5000u
#define ELF_PADDR 0x1000000ull
#define ELF_ENTRY (ELF_PADDR + 0x40)

struct elf_opts {
    int note_in_section; /* note only in a SHT_NOTE section, no PT_NOTE */
    int no_note;
    unsigned desc_size;  /* 4 or 8 */
    uint64_t entry;
};

static size_t elf_note(uint8_t *p, const struct elf_opts *o)
{
    put32(p, 4);
    put32(p + 4, o->desc_size);
    put32(p + 8, o->no_note ? 17 : 18);
    memcpy(p + 12, "Xen", 4);
    if (o->desc_size == 8)
        put64(p + 16, o->entry);
    else
        put32(p + 16, (uint32_t)o->entry);
    return 16 + ((o->desc_size + 3) & ~3u);
}

static uint8_t *make_elf(const struct elf_opts *o, size_t *len)
{
    const size_t note_off = 0x200, sh_off = 0x400;
    size_t total = ELF_DATA_OFF + ELF_FILESZ, note_len;
    uint8_t *img = calloc(1, total), *ph;
    unsigned phnum = o->note_in_section ? 1 : 2;

    assert_non_null(img);
    memcpy(img, "\x7f" "ELF", 4);
    img[4] = 2; /* ELFCLASS64 */
    img[5] = 1; /* little endian */
    img[6] = 1; /* EV_CURRENT */
    put16(img + 16, 2);  /* ET_EXEC */
    put16(img + 18, 62); /* EM_X86_64 */
    put32(img + 20, 1);
    put64(img + 24, 0xffffffff81000000ull);
    put64(img + 32, 64); /* e_phoff */
    put16(img + 52, 64);
    put16(img + 54, 56);
    put16(img + 56, (uint16_t)phnum);

    note_len = elf_note(img + note_off, o);
    ph = img + 64;
    put32(ph, 1); /* PT_LOAD */
    put64(ph + 8, ELF_DATA_OFF);
    put64(ph + 16, 0xffffffff81000000ull);
    put64(ph + 24, ELF_PADDR);
    put64(ph + 32, ELF_FILESZ);
    put64(ph + 40, ELF_MEMSZ);
    if (!o->note_in_section) {
        ph += 56;
        put32(ph, 4); /* PT_NOTE */
        put64(ph + 8, note_off);
        put64(ph + 32, note_len);
    } else {
        uint8_t *sh = img + sh_off + 64; /* section 0 is the null section */
        put64(img + 40, sh_off);
        put16(img + 58, 64);
        put16(img + 60, 2);
        put32(sh + 4, 7); /* SHT_NOTE */
        put64(sh + 24, note_off);
        put64(sh + 32, note_len);
    }
    for (size_t i = 0; i < ELF_FILESZ; i++)
        img[ELF_DATA_OFF + i] = payload_byte(i);
    *len = total;
    return img;
}

static struct elf_opts elf_default(void)
{
    return (struct elf_opts){.desc_size = 8, .entry = ELF_ENTRY};
}

/* ---- fixtures ---- */

static int setup_mem(void **state)
{
    struct guest_mem *gm = calloc(1, sizeof(*gm));
    struct memory_config cfg = {.size = RAM_SIZE};

    if (!gm || gm_map(gm, &cfg) != 0)
        return -1;
    *state = gm;
    return 0;
}

static int teardown_mem(void **state)
{
    gm_unmap(*state);
    free(*state);
    return 0;
}

/* Load and expect failure with a non-empty message containing `want`. */
static void expect_fail(struct guest_mem *gm, const uint8_t *img, size_t len,
                        const uint8_t *initrd, size_t initrd_len, const char *cmdline,
                        const char *want)
{
    struct boot_result res;
    char err[512] = "";

    assert_int_equal(boot_load_kernel_buf(gm, img, len, initrd, initrd_len, cmdline, RSDP, &res,
                                          err, sizeof(err)),
                     -1);
    if (!strstr(err, want))
        fail_msg("error \"%s\" lacks \"%s\"", err, want);
    assert_true(strlen(err) > strlen("kernel: "));
}

/* ---- bzImage ---- */

static void check_e820_in_zero_page(struct guest_mem *gm, const uint8_t *zp)
{
    struct e820_entry e[E820_MAX_ENTRIES];
    int n = e820_build(gm, e, E820_MAX_ENTRIES);

    assert_true(n > 0);
    assert_int_equal(zp[0x1e8], n);
    for (int i = 0; i < n; i++) {
        const uint8_t *ent = zp + 0x2d0 + 20 * i;
        assert_int_equal(get64(ent), e[i].addr);
        assert_int_equal(get64(ent + 8), e[i].size);
        assert_int_equal(get32(ent + 16), e[i].type);
    }
}

static void test_bzimage_loads(void **state)
{
    struct guest_mem *gm = *state;
    struct bz_opts o = bz_default();
    size_t len, ilen = 3 * 4096 + 100;
    uint8_t *img = make_bzimage(&o, &len), *initrd = malloc(ilen), *zp;
    struct boot_result res;
    char err[256] = "";
    const char *cmd = "console=ttyS0 root=/dev/vda";

    for (size_t i = 0; i < ilen; i++)
        initrd[i] = (uint8_t)(i ^ 0x55);
    assert_int_equal(boot_load_kernel_buf(gm, img, len, initrd, ilen, cmd, RSDP, &res, err,
                                          sizeof(err)),
                     0);
    assert_string_equal(err, "");
    assert_int_equal(res.kind, BOOT_ENTRY_LINUX64);
    assert_int_equal(res.entry, o.pref + 0x200);
    assert_int_equal(res.params_addr, LAYOUT_ZERO_PAGE);
    assert_int_equal(res.kernel_end, o.pref + o.init_size);

    /* The payload (everything after the setup sectors) is at the load address. */
    assert_memory_equal(gpa(gm, o.pref, o.payload), img + 5 * 512, o.payload);

    zp = gpa(gm, LAYOUT_ZERO_PAGE, 4096);
    assert_memory_equal(zp + 0x202, "HdrS", 4);
    assert_int_equal(get16(zp + 0x1fa), 0xffff);
    assert_int_equal(zp[0x280], 0); /* beyond the header, not copied */
    assert_int_equal(zp[0x210], 0xff);
    assert_int_equal(zp[0x211], 0x81); /* LOADED_HIGH | CAN_USE_HEAP */
    assert_int_equal(get16(zp + 0x224), 0xfe00);
    assert_int_equal(get32(zp + 0x228), LAYOUT_CMDLINE);
    assert_string_equal((char *)gpa(gm, LAYOUT_CMDLINE, strlen(cmd) + 1), cmd);
    assert_int_equal(get64(zp + 0x070), RSDP);

    /* initrd: page aligned, as high as possible, above the kernel. */
    assert_int_equal(get32(zp + 0x218), res.initrd_addr);
    assert_int_equal(get32(zp + 0x21c), ilen);
    assert_int_equal(res.initrd_size, ilen);
    assert_int_equal(res.initrd_addr % 4096, 0);
    assert_true(res.initrd_addr >= res.kernel_end);
    assert_true(res.initrd_addr + ilen <= RAM_SIZE);
    assert_true(res.initrd_addr + ilen > RAM_SIZE - 4096);
    assert_memory_equal(gpa(gm, res.initrd_addr, ilen), initrd, ilen);

    check_e820_in_zero_page(gm, zp);

    /* 64-bit GDT and identity page tables. */
    assert_int_equal(get64(gpa(gm, LAYOUT_GDT_ADDR + 0x10, 8)), 0x00af9b000000ffffull);
    assert_int_equal(get64(gpa(gm, LAYOUT_GDT_ADDR + 0x18, 8)), 0x00cf93000000ffffull);
    assert_int_equal(get64(gpa(gm, LAYOUT_PML4, 8)) & ~0xfffull, LAYOUT_PML4 + 0x1000);
    {
        uint64_t pdpt = get64(gpa(gm, LAYOUT_PML4, 8)) & ~0xfffull;
        uint64_t pd3 = get64(gpa(gm, pdpt + 3 * 8, 8)) & ~0xfffull;
        assert_int_equal(get64(gpa(gm, pd3 + 511 * 8, 8)), 0xffe00000ull | 0x83);
        uint64_t pd0 = get64(gpa(gm, pdpt, 8)) & ~0xfffull;
        assert_int_equal(get64(gpa(gm, pd0 + 8, 8)), 0x200000ull | 0x83);
    }
    free(img);
    free(initrd);
}

static void test_bzimage_cpu_state(void **state)
{
    struct guest_mem *gm = *state;
    struct bz_opts o = bz_default();
    size_t len;
    uint8_t *img = make_bzimage(&o, &len);
    struct boot_result res;
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    char err[256];

    assert_int_equal(boot_load_kernel_buf(gm, img, len, NULL, 0, NULL, 0, &res, err, sizeof(err)),
                     0);
    memset(&sregs, 0xa5, sizeof(sregs));
    boot_cpu_state(&res, &regs, &sregs);
    assert_int_equal(regs.rip, o.pref + 0x200);
    assert_int_equal(regs.rsi, LAYOUT_ZERO_PAGE);
    assert_int_equal(regs.rsp, LAYOUT_BOOT_STACK);
    assert_int_equal(regs.rflags, 2);
    assert_int_equal(sregs.cr3, LAYOUT_PML4);
    assert_true(sregs.cr0 & 1);           /* PE */
    assert_true(sregs.cr0 & (1u << 31));  /* PG */
    assert_true(sregs.cr4 & (1u << 5));   /* PAE */
    assert_int_equal(sregs.efer & 0x500, 0x500); /* LME | LMA */
    assert_int_equal(sregs.cs.selector, 0x10);
    assert_int_equal(sregs.cs.l, 1);
    assert_int_equal(sregs.cs.db, 0);
    assert_int_equal(sregs.cs.type, 0xb);
    assert_int_equal(sregs.ds.selector, 0x18);
    assert_int_equal(sregs.ss.selector, 0x18);
    assert_int_equal(sregs.ds.type, 0x3);
    assert_int_equal(sregs.gdt.base, LAYOUT_GDT_ADDR);
    assert_int_equal(sregs.gdt.limit, 31);
    assert_int_equal(sregs.tr.present, 1);
    assert_int_equal(*(char *)gpa(gm, LAYOUT_CMDLINE, 1), '\0'); /* NULL cmdline = "" */
    free(img);
}

/* initrd_addr_max caps the placement; pref_address below 1 MiB loads at 1 MiB. */
static void test_bzimage_placement_variants(void **state)
{
    struct guest_mem *gm = *state;
    struct bz_opts o = bz_default();
    size_t len, ilen = 8192;
    uint8_t *img, initrd[8192] = {1};
    struct boot_result res;
    char err[256];

    o.initrd_max = 64 * MiB - 1;
    img = make_bzimage(&o, &len);
    assert_int_equal(boot_load_kernel_buf(gm, img, len, initrd, ilen, "", 0, &res, err,
                                          sizeof(err)),
                     0);
    assert_int_equal(res.initrd_addr, 64 * MiB - 8192);
    free(img);

    o = bz_default();
    o.pref = 0;
    img = make_bzimage(&o, &len);
    assert_int_equal(boot_load_kernel_buf(gm, img, len, NULL, 0, "", 0, &res, err, sizeof(err)),
                     0);
    assert_int_equal(res.entry, 0x100200);
    /* Runs at 1 MiB rounded up to kernel_alignment (2 MiB). */
    assert_int_equal(res.kernel_end, 2 * MiB + o.init_size);
    free(img);
}

static void test_bzimage_rejects(void **state)
{
    struct guest_mem *gm = *state;
    struct bz_opts o;
    size_t len;
    uint8_t *img;

    o = bz_default();
    img = make_bzimage(&o, &len);
    img[0x205] = 'X';
    expect_fail(gm, img, len, NULL, 0, NULL, "not a bzImage or ELF vmlinux");
    free(img);

    o = bz_default();
    img = make_bzimage(&o, &len);
    expect_fail(gm, img, 0x240, NULL, 0, NULL, "truncated bzImage setup header");
    expect_fail(gm, img, 5 * 512 - 1, NULL, 0, NULL, "truncated setup code");
    expect_fail(gm, img, len - 16, NULL, 0, NULL, "truncated kernel payload");
    free(img);

    o = bz_default();
    o.syssize_extra = 1; /* header claims 16 bytes more than the file has */
    img = make_bzimage(&o, &len);
    expect_fail(gm, img, len, NULL, 0, NULL, "truncated kernel payload");
    free(img);

    o = bz_default();
    o.version = 0x020b;
    img = make_bzimage(&o, &len);
    expect_fail(gm, img, len, NULL, 0, NULL, "boot protocol 2.11 is too old");
    free(img);

    o = bz_default();
    o.xlf = 0x2;
    img = make_bzimage(&o, &len);
    expect_fail(gm, img, len, NULL, 0, NULL, "XLF_KERNEL_64");
    free(img);

    o = bz_default();
    o.loadflags = 0;
    img = make_bzimage(&o, &len);
    expect_fail(gm, img, len, NULL, 0, NULL, "zImage");
    free(img);

    o = bz_default();
    o.init_size = 0xf0000000u;
    img = make_bzimage(&o, &len);
    expect_fail(gm, img, len, NULL, 0, NULL, "kernel needs RAM up to");
    free(img);

    o = bz_default();
    o.pref = 0;
    o.relocatable = 0;
    img = make_bzimage(&o, &len);
    expect_fail(gm, img, len, NULL, 0, NULL, "non-relocatable");
    free(img);

    o = bz_default();
    o.pref = 0;
    o.align = 3;
    img = make_bzimage(&o, &len);
    expect_fail(gm, img, len, NULL, 0, NULL, "kernel_alignment");
    free(img);
}

static void test_bzimage_cmdline_limits(void **state)
{
    struct guest_mem *gm = *state;
    struct bz_opts o = bz_default();
    size_t len;
    uint8_t *img = make_bzimage(&o, &len);
    char *cmd = malloc(o.cmdline_size + 2);
    struct boot_result res;
    char err[256];

    memset(cmd, 'a', o.cmdline_size);
    cmd[o.cmdline_size] = '\0';
    assert_int_equal(boot_load_kernel_buf(gm, img, len, NULL, 0, cmd, 0, &res, err, sizeof(err)),
                     0);
    cmd[o.cmdline_size] = 'a';
    cmd[o.cmdline_size + 1] = '\0';
    expect_fail(gm, img, len, NULL, 0, cmd, "command line of 2048 bytes is too long");
    free(cmd);
    free(img);
}

/* An initrd that does not fit fails before anything is written. */
static void test_initrd_too_large(void **state)
{
    struct guest_mem *gm = *state;
    struct bz_opts o = bz_default();
    size_t len, ilen = RAM_SIZE - 20 * MiB;
    uint8_t *img = make_bzimage(&o, &len);
    /* Lazily zero pages: the loader must refuse before reading them. */
    uint8_t *initrd = mmap(NULL, ilen, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                           -1, 0);

    assert_true(initrd != MAP_FAILED);
    memset(gpa(gm, o.pref, o.payload), 0, o.payload);
    expect_fail(gm, img, len, initrd, ilen, NULL, "initrd: initrd of");
    expect_fail(gm, img, len, initrd, ilen, NULL, "does not fit");
    assert_int_equal(*gpa(gm, o.pref + 1, 1), 0); /* kernel not written */

    /* initrd_addr_max below the kernel end leaves no room at all. */
    o.initrd_max = 16 * MiB;
    free(img);
    img = make_bzimage(&o, &len);
    expect_fail(gm, img, len, initrd, 4096, NULL, "does not fit");
    munmap(initrd, ilen);
    free(img);
}

/* ---- ELF / PVH ---- */

static void check_pvh(struct guest_mem *gm, const struct boot_result *res, const char *cmd,
                      uint64_t ilen)
{
    const uint8_t *si = gpa(gm, LAYOUT_ZERO_PAGE, 56);
    struct e820_entry e[E820_MAX_ENTRIES];
    int n = e820_build(gm, e, E820_MAX_ENTRIES);

    assert_int_equal(get32(si), 0x336ec578u);
    assert_int_equal(get32(si + 4), 1);
    assert_int_equal(get64(si + 24), LAYOUT_CMDLINE);
    assert_string_equal((char *)gpa(gm, LAYOUT_CMDLINE, strlen(cmd) + 1), cmd);
    assert_int_equal(get64(si + 32), RSDP);
    assert_int_equal(get64(si + 40), LAYOUT_PVH_MEMMAP);
    assert_int_equal(get32(si + 48), n);
    for (int i = 0; i < n; i++) {
        const uint8_t *m = gpa(gm, LAYOUT_PVH_MEMMAP + 24 * (uint64_t)i, 24);
        assert_int_equal(get64(m), e[i].addr);
        assert_int_equal(get64(m + 8), e[i].size);
        assert_int_equal(get32(m + 16), e[i].type);
    }
    assert_int_equal(get32(si + 12), ilen ? 1 : 0);
    if (ilen) {
        const uint8_t *mod = gpa(gm, get64(si + 16), 32);
        assert_int_equal(get64(mod), res->initrd_addr);
        assert_int_equal(get64(mod + 8), ilen);
        assert_true(res->initrd_addr >= res->kernel_end);
        assert_int_equal(res->initrd_addr % 4096, 0);
    }
}

static void test_elf_pvh_loads(void **state)
{
    struct guest_mem *gm = *state;
    struct elf_opts o = elf_default();
    size_t len, ilen = 5000;
    uint8_t *img = make_elf(&o, &len), initrd[5000];
    struct boot_result res;
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    char err[256] = "";

    memset(initrd, 0x77, sizeof(initrd));
    /* Dirty the bss range so zeroing is observable. */
    memset(gpa(gm, ELF_PADDR, ELF_MEMSZ), 0xcc, ELF_MEMSZ);
    assert_int_equal(boot_load_kernel_buf(gm, img, len, initrd, ilen, "console=hvc0", RSDP,
                                          &res, err, sizeof(err)),
                     0);
    assert_string_equal(err, "");
    assert_int_equal(res.kind, BOOT_ENTRY_PVH);
    assert_int_equal(res.entry, ELF_ENTRY);
    assert_int_equal(res.params_addr, LAYOUT_ZERO_PAGE);
    assert_int_equal(res.kernel_end, ELF_PADDR + ELF_MEMSZ);
    assert_memory_equal(gpa(gm, ELF_PADDR, ELF_FILESZ), img + ELF_DATA_OFF, ELF_FILESZ);
    for (uint64_t i = ELF_FILESZ; i < ELF_MEMSZ; i++)
        assert_int_equal(*gpa(gm, ELF_PADDR + i, 1), 0);
    assert_memory_equal(gpa(gm, res.initrd_addr, ilen), initrd, ilen);
    check_pvh(gm, &res, "console=hvc0", ilen);
    /* 32-bit flat code descriptor for PVH. */
    assert_int_equal(get64(gpa(gm, LAYOUT_GDT_ADDR + 0x10, 8)), 0x00cf9b000000ffffull);

    memset(&sregs, 0, sizeof(sregs));
    boot_cpu_state(&res, &regs, &sregs);
    assert_int_equal(regs.rip, ELF_ENTRY);
    assert_int_equal(regs.rbx, LAYOUT_ZERO_PAGE);
    assert_int_equal(regs.rflags, 2);
    assert_int_equal(sregs.cr0, 0x11); /* PE | ET, no paging */
    assert_int_equal(sregs.cr4, 0);
    assert_int_equal(sregs.efer, 0);
    assert_int_equal(sregs.cs.db, 1);
    assert_int_equal(sregs.cs.l, 0);
    assert_int_equal(sregs.cs.limit, 0xffffffffu);
    assert_int_equal(sregs.ds.db, 1);
    assert_int_equal(sregs.es.selector, 0x18);
    free(img);
}

static void test_elf_note_variants(void **state)
{
    struct guest_mem *gm = *state;
    struct elf_opts o = elf_default();
    size_t len;
    uint8_t *img;
    struct boot_result res;
    char err[256];

    o.desc_size = 4;
    img = make_elf(&o, &len);
    assert_int_equal(boot_load_kernel_buf(gm, img, len, NULL, 0, NULL, RSDP, &res, err,
                                          sizeof(err)),
                     0);
    assert_int_equal(res.entry, ELF_ENTRY);
    check_pvh(gm, &res, "", 0);
    free(img);

    o = elf_default();
    o.note_in_section = 1;
    img = make_elf(&o, &len);
    assert_int_equal(boot_load_kernel_buf(gm, img, len, NULL, 0, NULL, 0, &res, err, sizeof(err)),
                     0);
    assert_int_equal(res.entry, ELF_ENTRY);
    free(img);
}

static void test_elf_rejects(void **state)
{
    struct guest_mem *gm = *state;
    struct elf_opts o = elf_default();
    size_t len;
    uint8_t *img = make_elf(&o, &len), *bad = malloc(len);

#define MUTATE(stmt, want)                                  \
    do {                                                    \
        memcpy(bad, img, len);                              \
        stmt;                                               \
        expect_fail(gm, bad, len, NULL, 0, NULL, want);     \
    } while (0)

    MUTATE(put64(bad + 32, len - 10), "program headers");
    MUTATE(put64(bad + 32, UINT64_MAX - 8), "program headers");
    MUTATE(put16(bad + 56, 0), "program header count");
    MUTATE(put16(bad + 54, 32), "program header size");
    MUTATE(bad[4] = 1, "not a 64-bit ELF");
    MUTATE(bad[5] = 2, "little-endian");
    MUTATE(put16(bad + 18, 3), "not x86-64");
    MUTATE(put16(bad + 16, 3), "ET_EXEC");
    /* Segment data overflowing p_offset + p_filesz. */
    MUTATE(put64(bad + 64 + 8, UINT64_MAX - 0x10), "lies outside the file");
    MUTATE(put64(bad + 64 + 32, len), "lies outside the file");
    MUTATE((put64(bad + 64 + 32, 0x10), put64(bad + 64 + 40, 0x8)), "exceeds memory size");
    /* Segment outside RAM: past its end, below 1 MiB, wrapping around. */
    MUTATE(put64(bad + 64 + 24, RAM_SIZE - 0x1000), "outside guest RAM");
    MUTATE(put64(bad + 64 + 24, 0x80000), "outside guest RAM");
    MUTATE(put64(bad + 64 + 24, UINT64_MAX - 0x100), "outside guest RAM");
    MUTATE(put64(bad + 64 + 40, UINT64_MAX), "outside guest RAM");
    MUTATE(put32(bad + 64, 6), "no loadable segment");
    /* Notes: truncated, bad value size, entry outside the kernel. */
    MUTATE(put32(bad + 0x200 + 4, 0x1000), "truncated ELF note");
    MUTATE(put32(bad + 0x200, 0xffffffffu), "truncated ELF note");
    MUTATE(put64(bad + 64 + 56 + 8, len - 4), "lies outside the file");
    MUTATE((put32(bad + 0x200 + 4, 2), put64(bad + 64 + 56 + 32, 20)), "2-byte value");
    MUTATE(put64(bad + 0x200 + 16, 0x5000), "outside the loaded segments");
#undef MUTATE
    free(bad);
    free(img);

    o.no_note = 1;
    img = make_elf(&o, &len);
    expect_fail(gm, img, len, NULL, 0, NULL, "no PVH entry note");
    free(img);

    o = elf_default();
    o.note_in_section = 1;
    img = make_elf(&o, &len);
    put64(img + 40, len - 8); /* section table out of the file */
    expect_fail(gm, img, len, NULL, 0, NULL, "bad ELF section header table");
    free(img);

    o = elf_default();
    img = make_elf(&o, &len);
    expect_fail(gm, img, 40, NULL, 0, NULL, "truncated ELF header");
    {
        char *cmd = malloc(LAYOUT_CMDLINE_MAX + 1);
        memset(cmd, 'x', LAYOUT_CMDLINE_MAX);
        cmd[LAYOUT_CMDLINE_MAX] = '\0';
        expect_fail(gm, img, len, NULL, 0, cmd, "too long");
        free(cmd);
    }
    free(img);
}

static void test_unknown_and_empty(void **state)
{
    struct guest_mem *gm = *state;
    uint8_t junk[4096];

    memset(junk, 0x90, sizeof(junk));
    expect_fail(gm, junk, sizeof(junk), NULL, 0, NULL, "kernel: not a bzImage or ELF vmlinux");
    expect_fail(gm, junk, 3, NULL, 0, NULL, "not a bzImage or ELF vmlinux");
    expect_fail(gm, junk, 0, NULL, 0, NULL, "kernel: file is empty");
    expect_fail(gm, NULL, 100, NULL, 0, NULL, "file is empty");
}

/* Every truncation and many byte flips of valid images: fail cleanly or load. */
static void test_mutations_never_crash(void **state)
{
    struct guest_mem *gm = *state;
    struct bz_opts bo = bz_default();
    struct elf_opts eo = elf_default();
    size_t blen, elen;
    uint8_t *bz = make_bzimage(&bo, &blen), *elf = make_elf(&eo, &elen);
    uint8_t *work = malloc(blen > elen ? blen : elen);
    uint32_t seed = 12345;
    struct boot_result res;
    char err[256];

    for (size_t cut = 0; cut < elen; cut += 7) {
        err[0] = '\0';
        if (boot_load_kernel_buf(gm, elf, cut, NULL, 0, NULL, 0, &res, err, sizeof(err)) != 0)
            assert_true(err[0] != '\0');
    }
    for (size_t cut = 0; cut < blen; cut += 13) {
        err[0] = '\0';
        if (boot_load_kernel_buf(gm, bz, cut, NULL, 0, NULL, 0, &res, err, sizeof(err)) != 0)
            assert_true(err[0] != '\0');
    }
    for (int iter = 0; iter < 3000; iter++) {
        const uint8_t *src = (iter & 1) ? bz : elf;
        size_t len = (iter & 1) ? blen : elen;
        /* Flip bytes in the headers, where all the parsing happens. */
        size_t span = (iter & 1) ? 0x290 : 0x300;
        memcpy(work, src, len);
        for (int k = 0; k < 4; k++) {
            seed = seed * 1103515245u + 12345u;
            work[0x4 + (seed >> 8) % (span - 4)] = (uint8_t)(seed >> 24);
        }
        err[0] = '\0';
        if (boot_load_kernel_buf(gm, work, len, NULL, 0, NULL, 0, &res, err, sizeof(err)) != 0) {
            assert_true(err[0] != '\0');
        } else {
            assert_true(res.entry < RAM_SIZE);
            assert_true(res.kernel_end <= RAM_SIZE);
        }
    }
    free(work);
    free(bz);
    free(elf);
}

/* ---- on real KVM: the boot state runs (skipped without /dev/kvm) ---- */

struct kvm_box {
    int kvm, vm, vcpu;
    struct kvm_run *run;
    size_t run_size;
};

static int kvm_box_open(struct kvm_box *b, struct guest_mem *gm)
{
    struct kvm_cpuid2 *cpuid;
    const int nent = 256;

    b->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (b->kvm < 0)
        return -1;
    b->vm = ioctl(b->kvm, KVM_CREATE_VM, 0);
    if (b->vm < 0)
        return -1;
    /* Intel needs a TSS area for real-mode emulation; harmless elsewhere. */
    ioctl(b->vm, KVM_SET_TSS_ADDR, 0xfffbd000ul);
    for (unsigned i = 0; i < gm->nregions; i++) {
        struct kvm_userspace_memory_region r = {
            .slot = i, .guest_phys_addr = gm->regions[i].gpa,
            .memory_size = gm->regions[i].size,
            .userspace_addr = (uint64_t)(uintptr_t)gm->regions[i].host};
        if (ioctl(b->vm, KVM_SET_USER_MEMORY_REGION, &r) < 0)
            return -1;
    }
    b->vcpu = ioctl(b->vm, KVM_CREATE_VCPU, 0);
    if (b->vcpu < 0)
        return -1;
    /* Long mode is only valid if the guest CPUID advertises it. */
    cpuid = calloc(1, sizeof(*cpuid) + nent * sizeof(cpuid->entries[0]));
    cpuid->nent = nent;
    if (ioctl(b->kvm, KVM_GET_SUPPORTED_CPUID, cpuid) < 0 ||
        ioctl(b->vcpu, KVM_SET_CPUID2, cpuid) < 0) {
        free(cpuid);
        return -1;
    }
    free(cpuid);
    b->run_size = (size_t)ioctl(b->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    b->run = mmap(NULL, b->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, b->vcpu, 0);
    return b->run == MAP_FAILED ? -1 : 0;
}

static void kvm_box_close(struct kvm_box *b)
{
    if (b->run && b->run != MAP_FAILED)
        munmap(b->run, b->run_size);
    if (b->vcpu >= 0)
        close(b->vcpu);
    if (b->vm >= 0)
        close(b->vm);
    if (b->kvm >= 0)
        close(b->kvm);
}

/* Run until HLT, collecting 32-bit OUTs to port 0x80.  Returns the count. */
static int kvm_box_run(struct kvm_box *b, const struct boot_result *res, uint32_t *out, int max)
{
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    int n = 0;

    assert_int_equal(ioctl(b->vcpu, KVM_GET_SREGS, &sregs), 0);
    boot_cpu_state(res, &regs, &sregs);
    assert_int_equal(ioctl(b->vcpu, KVM_SET_SREGS, &sregs), 0);
    assert_int_equal(ioctl(b->vcpu, KVM_SET_REGS, &regs), 0);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(ioctl(b->vcpu, KVM_RUN, 0), 0);
        if (b->run->exit_reason == KVM_EXIT_HLT)
            return n;
        if (b->run->exit_reason != KVM_EXIT_IO || b->run->io.port != 0x80 ||
            b->run->io.size != 4 || n >= max)
            fail_msg("unexpected exit %u", b->run->exit_reason);
        memcpy(&out[n++], (uint8_t *)b->run + b->run->io.data_offset, 4);
    }
    fail_msg("guest did not halt");
    return -1;
}

static void test_kvm_runs_linux64_entry(void **state)
{
    struct guest_mem *gm = *state;
    struct bz_opts o = bz_default();
    struct kvm_box b = {.kvm = -1, .vm = -1, .vcpu = -1};
    /* At the 64-bit entry: out boot_params' "HdrS", then the top half of a
     * 64-bit immediate (garbage unless really in long mode), then halt. */
    static const uint8_t code[] = {
        0x8b, 0x86, 0x02, 0x02, 0x00, 0x00,                         /* mov eax,[rsi+0x202] */
        0x66, 0xba, 0x80, 0x00,                                     /* mov dx,0x80 */
        0xef,                                                       /* out dx,eax */
        0x48, 0xb8, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, /* mov rax,imm64 */
        0x48, 0xc1, 0xe8, 0x20,                                     /* shr rax,32 */
        0xef,                                                       /* out dx,eax */
        0xf4,                                                       /* hlt */
    };
    size_t len;
    uint8_t *img = make_bzimage(&o, &len);
    struct boot_result res;
    uint32_t out[4];
    char err[256];

    if (kvm_box_open(&b, gm) != 0) {
        kvm_box_close(&b);
        free(img);
        skip();
    }
    memcpy(img + 5 * 512 + 0x200, code, sizeof(code));
    assert_int_equal(boot_load_kernel_buf(gm, img, len, NULL, 0, NULL, 0, &res, err, sizeof(err)),
                     0);
    assert_int_equal(kvm_box_run(&b, &res, out, 4), 2);
    assert_int_equal(out[0], 0x53726448u); /* "HdrS" */
    assert_int_equal(out[1], 0x11223344u);
    kvm_box_close(&b);
    free(img);
}

static void test_kvm_runs_pvh_entry(void **state)
{
    struct guest_mem *gm = *state;
    struct elf_opts o = elf_default();
    struct kvm_box b = {.kvm = -1, .vm = -1, .vcpu = -1};
    /* 32-bit: out start_info's magic via EBX, then the code selector, halt. */
    static const uint8_t code[] = {
        0x8b, 0x03,             /* mov eax,[ebx] */
        0x66, 0xba, 0x80, 0x00, /* mov dx,0x80 */
        0xef,                   /* out dx,eax */
        0x8c, 0xc8,             /* mov eax,cs */
        0xef,                   /* out dx,eax */
        0xf4,                   /* hlt */
    };
    size_t len;
    uint8_t *img = make_elf(&o, &len);
    struct boot_result res;
    uint32_t out[4];
    char err[256];

    if (kvm_box_open(&b, gm) != 0) {
        kvm_box_close(&b);
        free(img);
        skip();
    }
    memcpy(img + ELF_DATA_OFF + (ELF_ENTRY - ELF_PADDR), code, sizeof(code));
    assert_int_equal(boot_load_kernel_buf(gm, img, len, NULL, 0, NULL, 0, &res, err, sizeof(err)),
                     0);
    assert_int_equal(kvm_box_run(&b, &res, out, 4), 2);
    assert_int_equal(out[0], 0x336ec578u);
    assert_int_equal(out[1] & 0xffff, 0x10);
    kvm_box_close(&b);
    free(img);
}

/* ---- files ---- */

static char *write_temp(const uint8_t *data, size_t len)
{
    char *path = strdup("/tmp/nimbus-test-loader-XXXXXX");
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
    return path;
}

static void test_boot_load_files(void **state)
{
    struct guest_mem *gm = *state;
    struct bz_opts o = bz_default();
    size_t len;
    uint8_t *img = make_bzimage(&o, &len), initrd[4096];
    char *kpath = write_temp(img, len), *ipath, *epath = write_temp(img, 0), err[512] = "";
    struct boot_request req = {.kernel_path = kpath, .cmdline = "quiet", .rsdp_addr = RSDP};
    struct boot_result res;

    memset(initrd, 0x42, sizeof(initrd));
    ipath = write_temp(initrd, sizeof(initrd));
    req.initramfs_path = ipath;
    assert_int_equal(boot_load(gm, &req, &res, err, sizeof(err)), 0);
    assert_int_equal(res.kind, BOOT_ENTRY_LINUX64);
    assert_int_equal(res.initrd_size, sizeof(initrd));
    assert_memory_equal(gpa(gm, res.initrd_addr, sizeof(initrd)), initrd, sizeof(initrd));

    req.initramfs_path = epath;
    assert_int_equal(boot_load(gm, &req, &res, err, sizeof(err)), -1);
    assert_non_null(strstr(err, epath));
    assert_non_null(strstr(err, "file is empty"));

    req.initramfs_path = NULL;
    req.kernel_path = "/nonexistent/vmlinuz";
    assert_int_equal(boot_load(gm, &req, &res, err, sizeof(err)), -1);
    assert_string_equal(err, "/nonexistent/vmlinuz: No such file or directory");

    req.kernel_path = "/tmp";
    assert_int_equal(boot_load(gm, &req, &res, err, sizeof(err)), -1);
    assert_string_equal(err, "/tmp: not a regular file");

    req.kernel_path = epath;
    assert_int_equal(boot_load(gm, &req, &res, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "file is empty"));

    /* Problems inside the image name the path too. */
    img[0x206] = 0x01;
    img[0x207] = 0x02;
    unlink(kpath);
    free(kpath);
    kpath = write_temp(img, len);
    req.kernel_path = kpath;
    assert_int_equal(boot_load(gm, &req, &res, err, sizeof(err)), -1);
    assert_non_null(strstr(err, kpath));
    assert_non_null(strstr(err, "too old"));

    unlink(kpath);
    unlink(ipath);
    unlink(epath);
    free(kpath);
    free(ipath);
    free(epath);
    free(img);
}

/* Load a real kernel file into 1 GiB and check the basics of its boot data. */
static void load_real_kernel(const char *path, enum boot_entry_kind want)
{
    struct memory_config cfg = {.size = 1024 * MiB};
    struct guest_mem gm;
    struct boot_request req = {.kernel_path = path, .cmdline = "console=ttyS0",
                               .rsdp_addr = RSDP};
    struct boot_result res;
    char err[512] = "";

    assert_int_equal(gm_map(&gm, &cfg), 0);
    if (boot_load(&gm, &req, &res, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(res.kind, want);
    assert_true(res.entry >= LAYOUT_HIGH_RAM && res.entry < res.kernel_end);
    assert_true(res.kernel_end <= 1024 * MiB);
    if (want == BOOT_ENTRY_LINUX64) {
        const uint8_t *zp = gpa(&gm, LAYOUT_ZERO_PAGE, 4096);
        assert_memory_equal(zp + 0x202, "HdrS", 4);
        assert_int_equal(get32(zp + 0x228), LAYOUT_CMDLINE);
        assert_true(zp[0x1e8] > 0);
    } else {
        assert_int_equal(get32(gpa(&gm, LAYOUT_ZERO_PAGE, 4)), 0x336ec578u);
    }
    gm_unmap(&gm);
}

/* A real bzImage: NIMBUS_TEST_BZIMAGE, else /boot/vmlinuz-* (skipped if none). */
static void test_real_bzimage(void **state)
{
    (void)state;
    const char *path = getenv("NIMBUS_TEST_BZIMAGE");
    glob_t g = {0};

    if ((!path || !*path) && glob("/boot/vmlinuz-*", 0, NULL, &g) == 0 && g.gl_pathc > 0)
        path = g.gl_pathv[0];
    if (!path || !*path || access(path, R_OK) != 0) {
        globfree(&g);
        skip();
    }
    load_real_kernel(path, BOOT_ENTRY_LINUX64);
    globfree(&g);
}

/* A real ELF vmlinux built with CONFIG_PVH: NIMBUS_TEST_VMLINUX (skipped if unset). */
static void test_real_vmlinux(void **state)
{
    (void)state;
    const char *path = getenv("NIMBUS_TEST_VMLINUX");

    if (!path || !*path || access(path, R_OK) != 0)
        skip();
    load_real_kernel(path, BOOT_ENTRY_PVH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bzimage_loads, setup_mem, teardown_mem),
        cmocka_unit_test_setup_teardown(test_bzimage_cpu_state, setup_mem, teardown_mem),
        cmocka_unit_test_setup_teardown(test_bzimage_placement_variants, setup_mem, teardown_mem),
        cmocka_unit_test_setup_teardown(test_bzimage_rejects, setup_mem, teardown_mem),
        cmocka_unit_test_setup_teardown(test_bzimage_cmdline_limits, setup_mem, teardown_mem),
        cmocka_unit_test_setup_teardown(test_initrd_too_large, setup_mem, teardown_mem),
        cmocka_unit_test_setup_teardown(test_elf_pvh_loads, setup_mem, teardown_mem),
        cmocka_unit_test_setup_teardown(test_elf_note_variants, setup_mem, teardown_mem),
        cmocka_unit_test_setup_teardown(test_elf_rejects, setup_mem, teardown_mem),
        cmocka_unit_test_setup_teardown(test_unknown_and_empty, setup_mem, teardown_mem),
        cmocka_unit_test_setup_teardown(test_mutations_never_crash, setup_mem, teardown_mem),
        cmocka_unit_test_setup_teardown(test_boot_load_files, setup_mem, teardown_mem),
        cmocka_unit_test_setup_teardown(test_kvm_runs_linux64_entry, setup_mem, teardown_mem),
        cmocka_unit_test_setup_teardown(test_kvm_runs_pvh_entry, setup_mem, teardown_mem),
        cmocka_unit_test(test_real_bzimage),
        cmocka_unit_test(test_real_vmlinux),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
