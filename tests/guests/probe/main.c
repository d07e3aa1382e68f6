/*
 * The probe guest's report, one item per line on COM1:
 *   PROBE cmdline=<start_info command line>
 *   PROBE initrd size=<bytes> crc32=<hex> | PROBE initrd none
 *   PROBE disk capacity=<sectors> serial=<GET_ID string>
 *   PROBE disk mbr_sig=55aa|none gpt=yes|no first_part_lba=<n>|none crc32_0_63=<hex>
 *   (or PROBE disk none, PROBE disk error <what>)
 *   PROBE DONE
 * then power off through ACPI S5.  Everything it prints came from the host
 * (start_info, the disk image): control bytes are printed as '?', so a value
 * can never break the one-item-per-line format.
 */
#include "probe.h"

/* struct hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h). */
#define SI_MAGIC 0
#define SI_NR_MODULES 12
#define SI_MODLIST 16
#define SI_CMDLINE 24
#define SI_MEMMAP 40
#define SI_MEMMAP_ENTRIES 48
#define SI_MAGIC_VALUE 0x336ec578u
#define SI_MAX_CMDLINE 0x10000u /* nimbus's limit (64 KiB with the NUL) */

#define DISK_SECTORS 64u
#define DISK_BUF (ARENA + ARENA_SCRATCH)
#define ID_BUF (DISK_BUF + DISK_SECTORS * 512u)
#define DMA_END (ID_BUF + 0x1000u)

void put_hex32(u32 v)
{
    char b[9];
    for (int i = 0; i < 8; i++)
        b[i] = "0123456789abcdef"[(v >> (28 - 4 * i)) & 15];
    b[8] = 0;
    print(b);
}

static void put_safe(const u8 *s, u32 max)
{
    char c[2] = {0, 0};
    for (u32 i = 0; i < max && s[i]; i++) {
        c[0] = s[i] >= 0x20 && s[i] < 0x7f ? (char)s[i] : '?';
        print(c);
    }
}

static void poweroff(void)
{
    outb(0x600, 0x34); /* SLP_TYP=5 (S5) << 2 | SLP_EN */
    for (;;)
        __asm__ volatile("hlt");
}

/* [addr, addr + len) lies inside one E820 RAM entry below 4 GiB. */
static int in_ram(u32 si, u64 addr, u64 len)
{
    u32 map = r32(si + SI_MEMMAP), n = r32(si + SI_MEMMAP_ENTRIES);
    if (addr + len < addr || addr + len > 0x100000000ull)
        return 0;
    for (u32 i = 0; map && i < n && i < 128; i++) {
        u32 e = map + 24 * i;
        u64 a = r32(e) | ((u64)r32(e + 4) << 32), s = r32(e + 8) | ((u64)r32(e + 12) << 32);
        if (r32(e + 16) == 1 && addr >= a && addr + len <= a + s)
            return 1;
    }
    return 0;
}

static void report_cmdline(u32 si)
{
    u32 at = r32(si + SI_CMDLINE);
    print("PROBE cmdline=");
    if (r32(si + SI_CMDLINE + 4) == 0 && at && in_ram(si, at, 1))
        put_safe((const u8 *)at, SI_MAX_CMDLINE);
    print("\n");
}

static void report_initrd(u32 si)
{
    u32 nmods = r32(si + SI_NR_MODULES), list = r32(si + SI_MODLIST);
    if (nmods == 0) {
        print("PROBE initrd none\n");
        return;
    }
    if (r32(si + SI_MODLIST + 4) != 0 || !in_ram(si, list, 32)) {
        print("PROBE initrd error module list outside RAM\n");
        return;
    }
    u64 addr = r32(list) | ((u64)r32(list + 4) << 32);
    u64 size = r32(list + 8) | ((u64)r32(list + 12) << 32);
    if (!in_ram(si, addr, size)) {
        print("PROBE initrd error module outside RAM at ");
        puthex(addr);
        print(" size ");
        putdec(size);
        print("\n");
        return;
    }
    print("PROBE initrd size=");
    putdec(size);
    print(" crc32=");
    put_hex32(crc32((const u8 *)(u32)addr, (u32)size));
    print("\n");
}

static const char *probe_disk(struct vdev *d)
{
    if (!d->devcfg)
        return "no device configuration structure";
    if (virtio_setup(d) != 0)
        return "setup failed";
    if (!(d->offered & (1ull << F_VERSION_1)))
        return "VERSION_1 not offered";
    if (d->nq_used == 0)
        return "no queues";
    memset((void *)ID_BUF, 0, BLK_ID_BYTES + 1);
    int st = blk_request(d, BLK_T_GET_ID, 0, ID_BUF, BLK_ID_BYTES);
    if (st < 0)
        return "GET_ID not answered";
    print("PROBE disk capacity=");
    putdec(d->capacity);
    print(" serial=");
    if (st == 0) /* UNSUPP or IOERR: no serial to show */
        put_safe((const u8 *)ID_BUF, BLK_ID_BYTES);
    print("\n");

    u32 n = d->capacity < DISK_SECTORS ? (u32)d->capacity : DISK_SECTORS;
    memset((void *)DISK_BUF, 0, DISK_SECTORS * 512u);
    if (n) {
        st = blk_request(d, BLK_T_IN, 0, DISK_BUF, n * 512u);
        if (st == -1)
            return "read not answered";
        if (st == -2)
            return "read answered with another chain";
        if (st != 0)
            return st == 1 ? "read status IOERR" : st == 2 ? "read status UNSUPP"
                                                           : "read status not written";
    }
    struct part_info pi;
    part_parse((const u8 *)DISK_BUF, n, &pi);
    print("PROBE disk mbr_sig=");
    print(pi.mbr_sig ? "55aa" : "none");
    print(pi.gpt ? " gpt=yes" : " gpt=no");
    print(" first_part_lba=");
    if (pi.has_first)
        putdec(pi.first_lba);
    else
        print("none");
    print(" crc32_0_63=");
    put_hex32(crc32((const u8 *)DISK_BUF, n * 512u));
    print("\n");
    return 0;
}

static void report_disk(u32 si)
{
    if (!in_ram(si, ARENA, DMA_END - ARENA)) {
        print("PROBE disk error no RAM for the rings and buffers\n");
        return;
    }
    virtio_probe();
    struct vdev *d = 0;
    for (u32 i = 0; i < ndevs && !d; i++)
        if (devs[i].kind == DK_BLK)
            d = &devs[i];
    if (!d) {
        print("PROBE disk none\n");
        return;
    }
    const char *why = probe_disk(d);
    if (why) {
        print("PROBE disk error ");
        print(why);
        print("\n");
    }
}

void probe_main(u32 si)
{
    uart_init();
    crc32_init();
    if (r32(si + SI_MAGIC) != SI_MAGIC_VALUE) {
        print("PROBE error start_info magic\n");
    } else {
        report_cmdline(si);
        report_initrd(si);
        report_disk(si);
    }
    print("PROBE DONE\n");
    poweroff();
}
