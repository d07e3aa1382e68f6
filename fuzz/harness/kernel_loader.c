/*
 * fuzz_kernel_loader: boot_load_kernel_buf() over a 64 MiB guest built with
 * gm_wrap().  Input layout (little-endian header, then data):
 *   u32 initrd_len, u16 cmdline_len, u8 flags, u8 reserved,
 *   cmdline bytes, initrd bytes, kernel image = the rest.
 * flags bit0: pass cmdline NULL; bit1: pass initrd NULL.
 * Lengths are clipped to what is present, so mutations of the kernel image
 * (the interesting part) never break the framing.
 * Checks: success results lie inside guest RAM and are self-consistent;
 * failure comes with a NUL-terminated message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boot/boot.h"
#include "layout.h"
#include "memory.h"
#include "fuzz_input.h"
#include "fuzz_target.h"

#define GUEST_RAM (64ull << 20)
#define ERRLEN 256u

static struct guest_mem gm;
static uint8_t *ram;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* Not cleared between inputs: the loader only writes guest memory, and
     * 64 MiB of memset per input would cost more than the parse. */
    ram = calloc(1, GUEST_RAM);
    if (ram == NULL || gm_wrap(&gm, ram, GUEST_RAM) != 0) {
        fprintf(stderr, "fuzz_kernel_loader: cannot set up guest memory\n");
        exit(1);
    }
    return 0;
}

static int in_ram(uint64_t a, uint64_t len)
{
    return gm_ptr(&gm, a, len) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    size_t initrd_len = (size_t)fin_le(&in, 4);
    size_t cmd_len = (size_t)fin_le(&in, 2);
    uint8_t flags = fin_u8(&in);
    (void)fin_u8(&in);

    const uint8_t *p;
    cmd_len = fin_take(&in, cmd_len, &p);
    char *cmdline = malloc(cmd_len + 1);
    if (cmdline == NULL)
        return 0;
    memcpy(cmdline, p, cmd_len);
    cmdline[cmd_len] = '\0';
    initrd_len = fin_take(&in, initrd_len, &p);
    /* Exact-size copies: over-reads are ASan reports, as with a file map. */
    uint8_t *initrd = malloc(initrd_len ? initrd_len : 1);
    if (initrd == NULL) {
        free(cmdline);
        return 0;
    }
    memcpy(initrd, p, initrd_len);
    size_t klen = fin_take(&in, in.n, &p);
    uint8_t *kernel = malloc(klen ? klen : 1);
    if (kernel == NULL) {
        free(cmdline);
        free(initrd);
        return 0;
    }
    memcpy(kernel, p, klen);

    struct boot_result res;
    char err[ERRLEN];
    err[0] = '\0';
    int r = boot_load_kernel_buf(&gm, kernel, klen, (flags & 2) ? NULL : initrd,
                                 initrd_len, (flags & 1) ? NULL : cmdline,
                                 LAYOUT_ACPI_START, &res, err, sizeof(err));
    if (r == 0) {
        if (res.kind != BOOT_ENTRY_LINUX64 && res.kind != BOOT_ENTRY_PVH)
            fuzz_fail("loader: success with entry kind %d", (int)res.kind);
        if (!in_ram(res.entry, 1) || !in_ram(res.params_addr, 1))
            fuzz_fail("loader: entry 0x%llx / params 0x%llx outside RAM",
                      (unsigned long long)res.entry, (unsigned long long)res.params_addr);
        if (res.kernel_end > GUEST_RAM)
            fuzz_fail("loader: kernel_end 0x%llx beyond RAM",
                      (unsigned long long)res.kernel_end);
        uint64_t want_initrd = (flags & 2) ? 0 : initrd_len;
        if (res.initrd_size != want_initrd)
            fuzz_fail("loader: initrd_size %llu for a %llu-byte initrd",
                      (unsigned long long)res.initrd_size, (unsigned long long)want_initrd);
        /* The kernel occupies [1 MiB, kernel_end) while it starts. */
        if (res.initrd_size && (!in_ram(res.initrd_addr, res.initrd_size) ||
                                (res.initrd_addr < res.kernel_end &&
                                 res.initrd_addr + res.initrd_size > LAYOUT_HIGH_RAM)))
            fuzz_fail("loader: initrd [0x%llx,+0x%llx) outside RAM or over the kernel "
                      "(ends 0x%llx)", (unsigned long long)res.initrd_addr,
                      (unsigned long long)res.initrd_size,
                      (unsigned long long)res.kernel_end);
        if (res.initrd_size && memcmp(ram + res.initrd_addr, initrd, res.initrd_size) != 0)
            fuzz_fail("loader: initrd in guest memory differs from the input");
    } else if (r != -1 || memchr(err, '\0', sizeof(err)) == NULL || err[0] == '\0') {
        fuzz_fail("loader: failure %d without a message", r);
    }
    free(kernel);
    free(initrd);
    free(cmdline);
    return 0;
}
