/*
 * Kernel loading: pick the format, plan every placement (nothing is written
 * until the whole plan is known to fit), then copy the kernel, command line
 * and initrd and write the boot structures.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../layout.h"
#include "bootproto.h"
#include "bytes.h"
#include "loader.h"

#define PAGE_SIZE 0x1000ull

int boot_fail(char *err, size_t errlen, const char *name, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (!err || errlen == 0)
        return -1;
    n = snprintf(err, errlen, "%s: ", name ? name : "kernel");
    if (n < 0 || (size_t)n >= errlen)
        return -1;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static int is_elf(const struct boot_image *img)
{
    return img->len >= 4 && memcmp(img->data, "\x7f" "ELF", 4) == 0;
}

static int is_bzimage(const struct boot_image *img)
{
    return img->len >= BP_HEADER + 4 && get_le32(img->data + BP_HEADER) == BP_MAGIC;
}

/*
 * The initrd goes as high as the kernel allows, page aligned, so the
 * kernel's own allocations below it stay contiguous.
 */
static int place_initrd(const struct kernel_plan *plan, const struct boot_image *initrd,
                        struct boot_setup *setup, char *err, size_t errlen)
{
    uint64_t lowest = (plan->kernel_end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
    uint64_t limit = plan->initrd_limit, addr;

    if (initrd->len > limit || ((limit - initrd->len) & ~(PAGE_SIZE - 1)) < lowest)
        return boot_fail(err, errlen, initrd->name,
                         "initrd of %zu bytes does not fit in guest RAM between the kernel end "
                         "0x%" PRIx64 " and 0x%" PRIx64,
                         initrd->len, lowest, limit);
    addr = (limit - initrd->len) & ~(PAGE_SIZE - 1);
    setup->initrd_addr = addr;
    setup->initrd_size = initrd->len;
    return 0;
}

static int plan_kernel(const struct guest_mem *gm, const struct boot_image *kernel,
                       struct kernel_plan *plan, char *err, size_t errlen)
{
    if (kernel->len == 0)
        return boot_fail(err, errlen, kernel->name, "file is empty");
    if (is_elf(kernel))
        return elf_parse(gm, kernel, plan, err, errlen);
    if (is_bzimage(kernel))
        return bzimage_parse(gm, kernel, plan, err, errlen);
    return boot_fail(err, errlen, kernel->name, "not a bzImage or ELF vmlinux");
}

static int write_everything(struct guest_mem *gm, const struct boot_image *kernel,
                            const struct boot_image *initrd, const char *cmdline,
                            const struct kernel_plan *plan, struct boot_setup *setup,
                            char *err, size_t errlen)
{
    int linux64 = plan->kind == BOOT_ENTRY_LINUX64;

    if ((linux64 ? bzimage_load(gm, kernel, plan, err, errlen)
                 : elf_load(gm, kernel, err, errlen)) != 0)
        return -1;
    if (gm_write(gm, setup->cmdline_addr, cmdline, setup->cmdline_len + 1) != 0)
        return boot_fail(err, errlen, kernel->name, "cannot write the command line");
    if (setup->initrd_size &&
        gm_write(gm, setup->initrd_addr, initrd->data, setup->initrd_size) != 0)
        return boot_fail(err, errlen, initrd->name, "cannot write the initrd to guest RAM");
    setup->ne820 = e820_build_extra(gm, setup->e820_extra, setup->ne820_extra, setup->e820,
                                    E820_MAX_ENTRIES);
    if (setup->ne820 < 0)
        return boot_fail(err, errlen, kernel->name, "cannot build the E820 map");
    if (linux64) {
        if (bootparams_write(gm, kernel, plan, setup, err, errlen) != 0)
            return -1;
        if (boot_write_page_tables(gm) != 0)
            return boot_fail(err, errlen, kernel->name, "cannot write boot page tables");
    } else if (pvh_write_start_info(gm, setup, kernel->name, err, errlen) != 0) {
        return -1;
    }
    if (boot_write_gdt(gm, plan->kind) != 0)
        return boot_fail(err, errlen, kernel->name, "cannot write the boot GDT");
    return 0;
}

static int load_images(struct guest_mem *gm, const struct boot_image *kernel,
                       const struct boot_image *initrd, const char *cmdline,
                       uint64_t rsdp_addr, const struct e820_entry *extra, int nextra,
                       struct boot_result *res, char *err, size_t errlen)
{
    struct kernel_plan plan;
    struct boot_setup setup;

    memset(&plan, 0, sizeof(plan));
    memset(&setup, 0, sizeof(setup));
    if (!gm || !res)
        return boot_fail(err, errlen, kernel->name, "no guest memory to load into");
    if (plan_kernel(gm, kernel, &plan, err, errlen) != 0)
        return -1;

    if (!cmdline)
        cmdline = "";
    setup.cmdline_addr = LAYOUT_CMDLINE;
    setup.cmdline_len = strlen(cmdline);
    if (setup.cmdline_len > plan.cmdline_max)
        return boot_fail(err, errlen, kernel->name,
                         "command line of %" PRIu64 " bytes is too long (at most %" PRIu64 ")",
                         setup.cmdline_len, plan.cmdline_max);
    if (initrd && initrd->len && place_initrd(&plan, initrd, &setup, err, errlen) != 0)
        return -1;
    setup.rsdp_addr = rsdp_addr;
    setup.e820_extra = extra;
    setup.ne820_extra = extra ? nextra : 0;

    if (write_everything(gm, kernel, initrd, cmdline, &plan, &setup, err, errlen) != 0)
        return -1;

    memset(res, 0, sizeof(*res));
    res->kind = plan.kind;
    res->entry = plan.entry;
    res->params_addr = LAYOUT_ZERO_PAGE;
    res->kernel_end = plan.kernel_end;
    res->initrd_addr = setup.initrd_addr;
    res->initrd_size = setup.initrd_size;
    return 0;
}

int boot_load_kernel_buf(struct guest_mem *gm, const uint8_t *img, size_t len,
                         const uint8_t *initrd, size_t initrd_len,
                         const char *cmdline, uint64_t rsdp_addr,
                         struct boot_result *res, char *err, size_t errlen)
{
    struct boot_image k = {.name = "kernel", .data = img, .len = img ? len : 0};
    struct boot_image i = {.name = "initrd", .data = initrd, .len = initrd ? initrd_len : 0};

    return load_images(gm, &k, &i, cmdline, rsdp_addr, NULL, 0, res, err, errlen);
}

int boot_load(struct guest_mem *gm, const struct boot_request *req,
              struct boot_result *res, char *err, size_t errlen)
{
    struct boot_file kernel, initrd;
    int rc;

    memset(&kernel, 0, sizeof(kernel));
    memset(&initrd, 0, sizeof(initrd));
    if (!req || (!req->kernel_path && !req->kernel_buf))
        return boot_fail(err, errlen, "kernel", "no kernel given");
    if (req->kernel_path) {
        if (boot_file_open(req->kernel_path, &kernel, err, errlen) != 0)
            return -1;
    } else {
        kernel.img.name = req->kernel_name ? req->kernel_name : "kernel";
        kernel.img.data = req->kernel_buf;
        kernel.img.len = req->kernel_len;
    }
    /* rust-hypervisor-firmware and the like are PVH ELF; a bzImage there is
     * a mix-up (it would be entered with the wrong boot protocol). */
    if (req->firmware && !is_elf(&kernel.img)) {
        boot_file_close(&kernel);
        return boot_fail(err, errlen, kernel.img.name ? kernel.img.name : "firmware",
                         "not an ELF with a PVH entry note (nimbus enters firmware as PVH)");
    }
    if (req->initramfs_path &&
        boot_file_open(req->initramfs_path, &initrd, err, errlen) != 0) {
        boot_file_close(&kernel);
        return -1;
    }
    /* An empty initramfs on the command line is a mistake, not "no initrd". */
    if (req->initramfs_path && initrd.img.len == 0) {
        boot_file_close(&initrd);
        boot_file_close(&kernel);
        return boot_fail(err, errlen, req->initramfs_path, "file is empty");
    }
    if (!req->initramfs_path && req->initrd_buf && req->initrd_len) {
        initrd.img.name = "initrd";
        initrd.img.data = req->initrd_buf;
        initrd.img.len = req->initrd_len;
    }
    rc = load_images(gm, &kernel.img, initrd.img.len ? &initrd.img : NULL, req->cmdline,
                     req->rsdp_addr, req->e820_extra, req->ne820_extra, res, err, errlen);
    boot_file_close(&initrd);
    boot_file_close(&kernel);
    return rc;
}
