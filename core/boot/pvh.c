/*
 * PVH boot information (xen/include/public/arch-x86/hvm/start_info.h):
 * hvm_start_info at LAYOUT_ZERO_PAGE, the memory map and the module list in
 * the page at LAYOUT_PVH_MEMMAP.
 */
#include <string.h>

#include "../layout.h"
#include "bytes.h"
#include "loader.h"

#define PVH_MAGIC 0x336ec578u
#define PVH_VERSION 1u /* version 1 adds the memory map */

/* struct hvm_start_info */
#define SI_MAGIC 0
#define SI_VERSION 4
#define SI_FLAGS 8
#define SI_NR_MODULES 12
#define SI_MODLIST_PADDR 16
#define SI_CMDLINE_PADDR 24
#define SI_RSDP_PADDR 32
#define SI_MEMMAP_PADDR 40
#define SI_MEMMAP_ENTRIES 48
#define SI_SIZE 56

#define MEMMAP_ENTRY_SIZE 24 /* {u64 addr, u64 size, u32 type, u32 reserved} */
#define MODLIST_ENTRY_SIZE 32 /* {u64 paddr, u64 size, u64 cmdline_paddr, u64 reserved} */

_Static_assert(LAYOUT_PVH_MEMMAP + E820_MAX_ENTRIES * MEMMAP_ENTRY_SIZE <= BOOT_PVH_MODLIST,
               "PVH memory map overlaps the module list");
_Static_assert(BOOT_PVH_MODLIST + MODLIST_ENTRY_SIZE <= LAYOUT_PVH_MEMMAP + 0x1000,
               "PVH module list leaves its page");

int pvh_write_start_info(struct guest_mem *gm, const struct boot_setup *setup,
                         const char *name, char *err, size_t errlen)
{
    uint8_t si[SI_SIZE], map[E820_MAX_ENTRIES * MEMMAP_ENTRY_SIZE], mod[MODLIST_ENTRY_SIZE];
    int n = setup->ne820 < E820_MAX_ENTRIES ? setup->ne820 : E820_MAX_ENTRIES;
    uint32_t nmods = setup->initrd_size ? 1 : 0;

    memset(map, 0, sizeof(map));
    for (int i = 0; i < n; i++) {
        uint8_t *e = map + (size_t)i * MEMMAP_ENTRY_SIZE;
        put_le64(e, setup->e820[i].addr);
        put_le64(e + 8, setup->e820[i].size);
        put_le32(e + 16, setup->e820[i].type);
    }
    memset(mod, 0, sizeof(mod));
    put_le64(mod, setup->initrd_addr);
    put_le64(mod + 8, setup->initrd_size);

    memset(si, 0, sizeof(si));
    put_le32(si + SI_MAGIC, PVH_MAGIC);
    put_le32(si + SI_VERSION, PVH_VERSION);
    put_le32(si + SI_NR_MODULES, nmods);
    put_le64(si + SI_MODLIST_PADDR, nmods ? BOOT_PVH_MODLIST : 0);
    put_le64(si + SI_CMDLINE_PADDR, setup->cmdline_addr);
    put_le64(si + SI_RSDP_PADDR, setup->rsdp_addr);
    put_le64(si + SI_MEMMAP_PADDR, LAYOUT_PVH_MEMMAP);
    put_le32(si + SI_MEMMAP_ENTRIES, (uint32_t)n);

    if (gm_write(gm, LAYOUT_PVH_MEMMAP, map, sizeof(map)) != 0 ||
        gm_write(gm, BOOT_PVH_MODLIST, mod, sizeof(mod)) != 0 ||
        gm_write(gm, LAYOUT_ZERO_PAGE, si, sizeof(si)) != 0)
        return boot_fail(err, errlen, name, "cannot write PVH start_info to guest RAM");
    return 0;
}
