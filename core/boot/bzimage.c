/*
 * bzImage parsing and loading for the 64-bit Linux boot protocol: no
 * real-mode setup code runs; the protected-mode payload is copied to its
 * load address and entered at +0x200 in long mode.
 */
#include <inttypes.h>

#include "../layout.h"
#include "bootproto.h"
#include "bytes.h"
#include "loader.h"

#define MAX_KERNEL_ALIGNMENT (1ull << 30)

/*
 * Where the payload goes.  A relocatable kernel's decompressor never runs
 * below its pref_address (LOAD_PHYSICAL_ADDR) anyway, so loading it right
 * there spares it a self-move and makes its footprint exactly
 * [pref_address, pref_address + init_size).  Only an image whose
 * pref_address is below 1 MiB (none in practice) is loaded at 1 MiB.
 */
static int bz_place(const struct boot_image *img, uint64_t low_end, struct kernel_plan *plan,
                    char *err, size_t errlen)
{
    const uint8_t *d = img->data;
    uint64_t pref = get_le64(d + BP_PREF_ADDRESS);
    uint64_t align = get_le32(d + BP_KERNEL_ALIGNMENT);
    uint64_t init_size = get_le32(d + BP_INIT_SIZE);
    int relocatable = d[BP_RELOCATABLE] != 0;
    uint64_t load, run, end_payload, end_run;

    if (pref >= LAYOUT_HIGH_RAM) {
        load = pref;
    } else if (relocatable) {
        load = LAYOUT_HIGH_RAM;
    } else {
        return boot_fail(err, errlen, img->name,
                         "non-relocatable kernel wants load address 0x%" PRIx64
                         " below 1 MiB", pref);
    }
    /* The decompressor runs at the load address rounded up to
     * kernel_alignment, never below pref_address. */
    run = load;
    if (relocatable) {
        if (align == 0 || (align & (align - 1)) || align > MAX_KERNEL_ALIGNMENT)
            return boot_fail(err, errlen, img->name, "bad kernel_alignment 0x%" PRIx64,
                             align);
        run = (load + align - 1) & ~(align - 1);
        if (run < pref)
            run = pref;
    }
    if (__builtin_add_overflow(load, plan->payload_len, &end_payload) ||
        __builtin_add_overflow(run, init_size, &end_run))
        return boot_fail(err, errlen, img->name, "kernel does not fit in 64-bit addresses");
    plan->load_addr = load;
    plan->kernel_end = end_payload > end_run ? end_payload : end_run;
    if (plan->kernel_end > low_end)
        return boot_fail(err, errlen, img->name,
                         "kernel needs RAM up to 0x%" PRIx64 " (load address 0x%" PRIx64
                         ", init_size 0x%" PRIx64 ") but RAM below 4 GiB ends at 0x%" PRIx64,
                         plan->kernel_end, load, init_size, low_end);
    return 0;
}

int bzimage_parse(const struct guest_mem *gm, const struct boot_image *img,
                  struct kernel_plan *plan, char *err, size_t errlen)
{
    const uint8_t *d = img->data;
    uint64_t setup_sects, avail, initrd_max, cmdline_size, low_end = gm_low_ram_end(gm);
    unsigned version;

    if (img->len < BP_HDR_LIMIT)
        return boot_fail(err, errlen, img->name,
                         "truncated bzImage setup header (%zu bytes, need %u)", img->len,
                         BP_HDR_LIMIT);
    if (get_le32(d + BP_HEADER) != BP_MAGIC)
        return boot_fail(err, errlen, img->name, "no \"HdrS\" bzImage header");
    version = get_le16(d + BP_VERSION);
    if (version < BP_MIN_VERSION)
        return boot_fail(err, errlen, img->name,
                         "boot protocol %u.%02u is too old (need 2.12 or later)",
                         version >> 8, version & 0xff);
    if (!(d[BP_LOADFLAGS] & BP_LOADED_HIGH))
        return boot_fail(err, errlen, img->name,
                         "zImage (loaded below 1 MiB) is not supported, need a bzImage");
    if (!(get_le16(d + BP_XLOADFLAGS) & BP_XLF_KERNEL_64))
        return boot_fail(err, errlen, img->name,
                         "kernel has no 64-bit entry point (XLF_KERNEL_64 not set)");

    setup_sects = d[BP_SETUP_SECTS] ? d[BP_SETUP_SECTS] : 4;
    plan->setup_size = (setup_sects + 1) * 512;
    if (img->len < plan->setup_size)
        return boot_fail(err, errlen, img->name,
                         "truncated setup code (%zu bytes, header says %" PRIu64 ")",
                         img->len, plan->setup_size);
    plan->payload_len = (uint64_t)get_le32(d + BP_SYSSIZE) * 16;
    avail = img->len - plan->setup_size;
    if (plan->payload_len == 0)
        return boot_fail(err, errlen, img->name, "empty kernel payload (syssize is 0)");
    if (avail < plan->payload_len)
        return boot_fail(err, errlen, img->name,
                         "truncated kernel payload (%" PRIu64 " bytes, header says %" PRIu64 ")",
                         avail, plan->payload_len);
    /* The jump at 0x200 skips exactly the header; never copy past the
     * header area of boot_params, which holds our own fields. */
    plan->header_end = BP_JUMP + 2 + (uint64_t)d[BP_JUMP + 1];
    if (plan->header_end > BP_HDR_LIMIT)
        plan->header_end = BP_HDR_LIMIT;

    if (low_end < LAYOUT_HIGH_RAM)
        return boot_fail(err, errlen, img->name, "guest RAM below 4 GiB is smaller than 1 MiB");
    if (bz_place(img, low_end, plan, err, errlen) != 0)
        return -1;

    plan->kind = BOOT_ENTRY_LINUX64;
    plan->entry = plan->load_addr + BP_ENTRY64_OFFSET;
    cmdline_size = get_le32(d + BP_CMDLINE_SIZE);
    plan->cmdline_max = cmdline_size < LAYOUT_CMDLINE_MAX - 1 ? cmdline_size
                                                              : LAYOUT_CMDLINE_MAX - 1;
    /* initrd_addr_max is the highest address the initrd's last byte may use. */
    initrd_max = (uint64_t)get_le32(d + BP_INITRD_ADDR_MAX) + 1;
    plan->initrd_limit = initrd_max < low_end ? initrd_max : low_end;
    return 0;
}

int bzimage_load(struct guest_mem *gm, const struct boot_image *img,
                 const struct kernel_plan *plan, char *err, size_t errlen)
{
    if (gm_write(gm, plan->load_addr, img->data + plan->setup_size, plan->payload_len) != 0)
        return boot_fail(err, errlen, img->name,
                         "cannot write the kernel payload to guest RAM at 0x%" PRIx64,
                         plan->load_addr);
    return 0;
}
