/*
 * The boot GDT and identity page tables the first vCPU starts on.
 *
 * GDT: 0x00 and 0x08 null, 0x10 code, 0x18 flat data.  The Linux boot
 * protocol needs __BOOT_CS = 0x10 and __BOOT_DS = 0x18.  The code
 * descriptor at 0x10 is 64-bit (L=1) for the long-mode entry and a flat
 * 32-bit one (D=1) for PVH, so the table always matches the hidden segment
 * state boot_cpu_state loads; the PVH kernel installs its own GDT at once.
 *
 * Page tables (64-bit entry only): one PML4, one PDPT and four page
 * directories of 2 MiB pages identity-map [0, 4 GiB), which covers the
 * kernel, boot_params, the command line and the initrd.
 */
#include "../layout.h"
#include "bytes.h"
#include "loader.h"

#define GDT_CODE64 0x00af9b000000ffffull /* P, DPL0, code exec/read accessed, L, G */
#define GDT_CODE32 0x00cf9b000000ffffull /* same with D=1 instead of L */
#define GDT_DATA 0x00cf93000000ffffull   /* P, DPL0, data read/write accessed, B, G */

#define PT_PRESENT 0x1ull
#define PT_WRITE 0x2ull
#define PT_HUGE 0x80ull
#define PT_PAGE 0x1000ull
#define PT_PDPT (LAYOUT_PML4 + PT_PAGE)
#define PT_PD0 (LAYOUT_PML4 + 2 * PT_PAGE)
#define PT_NPD 4u /* 4 x 1 GiB */
#define PT_ENTRIES 512u

_Static_assert(LAYOUT_PML4 + (2 + PT_NPD) * PT_PAGE <= LAYOUT_CMDLINE,
               "boot page tables overlap the command line");
_Static_assert(LAYOUT_GDT_ADDR + BOOT_GDT_ENTRIES * 8 <= LAYOUT_PVH_MEMMAP,
               "boot GDT overlaps the PVH memory map");

uint64_t boot_gdt_code_descriptor(enum boot_entry_kind kind)
{
    return kind == BOOT_ENTRY_PVH ? GDT_CODE32 : GDT_CODE64;
}

int boot_write_gdt(struct guest_mem *gm, enum boot_entry_kind kind)
{
    uint8_t gdt[BOOT_GDT_ENTRIES * 8] = {0};

    put_le64(gdt + BOOT_SEL_CODE, boot_gdt_code_descriptor(kind));
    put_le64(gdt + BOOT_SEL_DATA, GDT_DATA);
    return gm_write(gm, LAYOUT_GDT_ADDR, gdt, sizeof(gdt)) == 0 ? 0 : -1;
}

int boot_write_page_tables(struct guest_mem *gm)
{
    uint8_t page[PT_PAGE];

    for (unsigned i = 0; i < PT_ENTRIES; i++)
        put_le64(page + i * 8, 0);
    put_le64(page, PT_PDPT | PT_PRESENT | PT_WRITE);
    if (gm_write(gm, LAYOUT_PML4, page, sizeof(page)) != 0)
        return -1;

    for (unsigned i = 0; i < PT_NPD; i++)
        put_le64(page + i * 8, (PT_PD0 + i * PT_PAGE) | PT_PRESENT | PT_WRITE);
    if (gm_write(gm, PT_PDPT, page, sizeof(page)) != 0)
        return -1;

    for (unsigned d = 0; d < PT_NPD; d++) {
        for (unsigned i = 0; i < PT_ENTRIES; i++) {
            uint64_t addr = ((uint64_t)d << 30) | ((uint64_t)i << 21);
            put_le64(page + i * 8, addr | PT_PRESENT | PT_WRITE | PT_HUGE);
        }
        if (gm_write(gm, PT_PD0 + d * PT_PAGE, page, sizeof(page)) != 0)
            return -1;
    }
    return 0;
}
