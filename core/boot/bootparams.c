/* The Linux boot_params "zero page" for the 64-bit boot protocol. */
#include <string.h>

#include "../layout.h"
#include "bootproto.h"
#include "bytes.h"
#include "loader.h"

/*
 * The real-mode setup code never runs, so its heap is never used; the
 * protocol still wants CAN_USE_HEAP with a heap end for protocol >= 2.02.
 * 0xfe00 is the conventional value (heap up to 0xfe00 past the setup start).
 */
#define BP_HEAP_END 0xfe00u

static void bp_put_e820(uint8_t *zp, const struct boot_setup *setup)
{
    int n = setup->ne820 < BP_E820_MAX ? setup->ne820 : BP_E820_MAX;

    for (int i = 0; i < n; i++) {
        uint8_t *e = zp + BP_E820_TABLE + (size_t)i * BP_E820_ENTRY_SIZE;
        put_le64(e, setup->e820[i].addr);
        put_le64(e + 8, setup->e820[i].size);
        put_le32(e + 16, setup->e820[i].type);
    }
    zp[BP_E820_ENTRIES] = (uint8_t)n;
}

int bootparams_write(struct guest_mem *gm, const struct boot_image *img,
                     const struct kernel_plan *plan, const struct boot_setup *setup,
                     char *err, size_t errlen)
{
    uint8_t zp[BP_ZP_SIZE];
    uint8_t flags;

    memset(zp, 0, sizeof(zp));
    /* The kernel's own view of its header; fields we own are set below.
     * header_end <= BP_HDR_LIMIT <= img->len was checked by bzimage_parse. */
    memcpy(zp + BP_HDR_START, img->data + BP_HDR_START, plan->header_end - BP_HDR_START);

    zp[BP_TYPE_OF_LOADER] = BP_LOADER_UNDEFINED;
    zp[BP_EXT_LOADER_VER] = 0;
    zp[BP_EXT_LOADER_TYPE] = 0;
    /* Keep LOADED_HIGH; drop flags only the kernel or the setup code set
     * (KASLR_FLAG, QUIET_FLAG, KEEP_SEGMENTS). */
    flags = (uint8_t)((zp[BP_LOADFLAGS] & BP_LOADED_HIGH) | BP_CAN_USE_HEAP);
    zp[BP_LOADFLAGS] = flags;
    put_le16(zp + BP_HEAP_END_PTR, BP_HEAP_END);
    put_le32(zp + BP_CODE32_START, (uint32_t)plan->load_addr);
    put_le64(zp + BP_SETUP_DATA, 0);

    put_le32(zp + BP_CMD_LINE_PTR, (uint32_t)setup->cmdline_addr);
    put_le32(zp + BP_EXT_CMD_LINE_PTR, (uint32_t)(setup->cmdline_addr >> 32));
    put_le32(zp + BP_RAMDISK_IMAGE, (uint32_t)setup->initrd_addr);
    put_le32(zp + BP_EXT_RAMDISK_IMAGE, (uint32_t)(setup->initrd_addr >> 32));
    put_le32(zp + BP_RAMDISK_SIZE, (uint32_t)setup->initrd_size);
    put_le32(zp + BP_EXT_RAMDISK_SIZE, (uint32_t)(setup->initrd_size >> 32));
    put_le64(zp + BP_ACPI_RSDP_ADDR, setup->rsdp_addr);
    bp_put_e820(zp, setup);

    if (gm_write(gm, LAYOUT_ZERO_PAGE, zp, sizeof(zp)) != 0)
        return boot_fail(err, errlen, img->name, "cannot write boot_params to guest RAM");
    return 0;
}
