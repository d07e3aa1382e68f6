/*
 * Offsets in the Linux x86 boot protocol (Documentation/arch/x86/boot.rst):
 * the setup header inside a bzImage and the boot_params "zero page".  The
 * setup header sits at the same offsets in both.
 */
#ifndef NIMBUS_BOOT_BOOTPROTO_H
#define NIMBUS_BOOT_BOOTPROTO_H

/* Setup header fields (image and boot_params share these offsets). */
#define BP_HDR_START 0x1f1          /* first byte of the setup header */
#define BP_SETUP_SECTS 0x1f1        /* u8: 512-byte setup sectors, 0 means 4 */
#define BP_SYSSIZE 0x1f4            /* u32: payload size in 16-byte units */
#define BP_BOOT_FLAG 0x1fe          /* u16: 0xaa55 */
#define BP_JUMP 0x200               /* u16: short jmp; its 2nd byte bounds the header */
#define BP_HEADER 0x202             /* u32: "HdrS" */
#define BP_VERSION 0x206            /* u16: boot protocol version */
#define BP_TYPE_OF_LOADER 0x210     /* u8 */
#define BP_LOADFLAGS 0x211          /* u8 */
#define BP_CODE32_START 0x214       /* u32 */
#define BP_RAMDISK_IMAGE 0x218      /* u32 */
#define BP_RAMDISK_SIZE 0x21c       /* u32 */
#define BP_HEAP_END_PTR 0x224       /* u16 */
#define BP_EXT_LOADER_VER 0x226     /* u8 */
#define BP_EXT_LOADER_TYPE 0x227    /* u8 */
#define BP_CMD_LINE_PTR 0x228       /* u32 */
#define BP_INITRD_ADDR_MAX 0x22c    /* u32: highest address an initrd byte may use */
#define BP_KERNEL_ALIGNMENT 0x230   /* u32 */
#define BP_RELOCATABLE 0x234        /* u8 */
#define BP_XLOADFLAGS 0x236         /* u16 */
#define BP_CMDLINE_SIZE 0x238       /* u32: max command line length without NUL */
#define BP_SETUP_DATA 0x250         /* u64 */
#define BP_PREF_ADDRESS 0x258       /* u64 */
#define BP_INIT_SIZE 0x260          /* u32 */
#define BP_HDR_LIMIT 0x290          /* end of the header area in boot_params */

#define BP_MAGIC 0x53726448u        /* "HdrS" little-endian */
#define BP_MIN_VERSION 0x020c       /* 2.12: xloadflags, 64-bit entry info */

#define BP_LOADED_HIGH 0x01u        /* loadflags: protected-mode code at 1 MiB+ */
#define BP_CAN_USE_HEAP 0x80u       /* loadflags: heap_end_ptr is valid */
#define BP_XLF_KERNEL_64 0x0001u    /* xloadflags: has the 64-bit entry */
#define BP_LOADER_UNDEFINED 0xffu   /* type_of_loader for unregistered loaders */
#define BP_ENTRY64_OFFSET 0x200u    /* 64-bit entry relative to the load address */

/* boot_params fields outside the setup header. */
#define BP_ZP_SIZE 0x1000
#define BP_ACPI_RSDP_ADDR 0x070     /* u64 */
#define BP_EXT_RAMDISK_IMAGE 0x0c0  /* u32: high half of ramdisk_image */
#define BP_EXT_RAMDISK_SIZE 0x0c4   /* u32 */
#define BP_EXT_CMD_LINE_PTR 0x0c8   /* u32 */
#define BP_E820_ENTRIES 0x1e8       /* u8 */
#define BP_SENTINEL 0x1ef           /* u8: must stay 0 (see boot.rst) */
#define BP_E820_TABLE 0x2d0         /* 128 packed {u64 addr, u64 size, u32 type} */
#define BP_E820_MAX 128
#define BP_E820_ENTRY_SIZE 20

#endif
