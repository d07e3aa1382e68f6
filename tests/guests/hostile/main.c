/*
 * The hostile guest's three phases.  Command line (space-separated):
 *   seed=N     the PRNG seed (decimal or 0x hex)       [1]
 *   ops=M      attack operations                       [1000]
 *   tseed=N    the virtio_template plugin's seed       [0]
 *   canary_kib=K  size of each of the four canary regions     [16]
 *   verbose=1  print every attack operation (to find the one that hurts)
 *   only=K     run only attack kind K-1 (attack.c's enum), to bisect a failure
 * Output on COM1, ending with "HOSTILE DONE seed=N ops=M canary=ok|bad
 * honest=ok|fail final=ok|fail"; then power off through ACPI S5.
 */
#include "guest.h"

u64 ram_end;
int verbose;

/* struct hvm_start_info fields (xen/include/public/arch-x86/hvm/start_info.h). */
#define SI_CMDLINE 24
#define SI_MEMMAP 40
#define SI_MEMMAP_ENTRIES 48

static u64 parse_num(const char *s)
{
    u64 v = 0;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        for (s += 2;; s++) {
            u32 c = (u8)*s;
            u32 dgt = c >= '0' && c <= '9' ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10 : 99;
            if (dgt == 99)
                return v;
            v = (v << 4) | dgt;
        }
    }
    for (; *s >= '0' && *s <= '9'; s++)
        v = v * 10 + (u32)(*s - '0');
    return v;
}

/* Value of key=... in the command line, or 0 when absent. */
static const char *arg(const char *cmdline, const char *key)
{
    u32 kl = 0;
    while (key[kl])
        kl++;
    for (const char *p = cmdline; p && *p;) {
        while (*p == ' ')
            p++;
        u32 i = 0;
        while (i < kl && p[i] == key[i])
            i++;
        if (i == kl && p[kl] == '=')
            return p + kl + 1;
        while (*p && *p != ' ')
            p++;
    }
    return 0;
}

static u64 arg_num(const char *cmdline, const char *key, u64 dflt)
{
    const char *v = arg(cmdline, key);
    return v ? parse_num(v) : dflt;
}

/* Highest end of an E820 RAM entry below the 32-bit hole. */
static u64 find_ram_end(u32 si)
{
    u32 map = r32(si + SI_MEMMAP), n = r32(si + SI_MEMMAP_ENTRIES);
    u64 end = 0;
    for (u32 i = 0; map && i < n && i < 128; i++) {
        u32 e = map + 24 * i;
        u64 a = r32(e) | ((u64)r32(e + 4) << 32), s = r32(e + 8) | ((u64)r32(e + 12) << 32);
        if (r32(e + 16) == 1 && a + s <= PCI_MMIO32 && a + s > end)
            end = a + s;
    }
    return end;
}

static void poweroff(void)
{
    outb(0x600, 0x34); /* SLP_TYP=5 (S5) << 2 | SLP_EN */
    for (;;)
        __asm__ volatile("hlt");
}

void hostile_main(u32 si)
{
    const char *cmdline = (const char *)r32(si + SI_CMDLINE);
    u64 seed = arg_num(cmdline, "seed", 1);
    u32 ops = (u32)arg_num(cmdline, "ops", 1000);
    template_seed = arg_num(cmdline, "tseed", 0);
    verbose = (int)arg_num(cmdline, "verbose", 0);
    only_kind = (u32)arg_num(cmdline, "only", 0);
    uart_init();
    ram_end = find_ram_end(si);
    print("HOSTILE START seed=");
    putdec(seed);
    print(" ops=");
    putdec(ops);
    print(" ram_end=");
    puthex(ram_end);
    print("\n");
    u32 ckib = (u32)arg_num(cmdline, "canary_kib", 16);
    canary_size = ckib ? (ckib < CANARY_MAX / 1024 ? ckib * 1024 : CANARY_MAX) : 4096;
    if (ram_end < CANARY_MID + 2 * CANARY_MAX) {
        print("HOSTILE ERROR: needs at least 128 MiB of RAM\n");
        poweroff();
    }
    rng_seed(seed);

    virtio_probe();
    print("HOSTILE devices=");
    putdec(ndevs);
    print("\n");
    u32 honest_fails = honest_round(0);

    u64 canary_seed = mix64(seed ^ 0xc0ffee);
    canary_fill(canary_seed);
    for (u32 op = 0; op < ops; op++) {
        attack(op);
        if (!verbose && op % 1000 == 999) {
            uart_init();
            print("HOSTILE progress ");
            putdec(op + 1);
            print("\n");
        }
    }
    /* Every BAR back where the driver expects it before talking to devices again. */
    for (u32 i = 0; i < ndevs; i++)
        pci_assign(devs[i].slot);
    uart_init();
    u32 final_fails = honest_round(1);
    int canary_bad = canary_check(canary_seed);

    uart_init();
    print("HOSTILE DONE seed=");
    putdec(seed);
    print(" ops=");
    putdec(ops);
    print(canary_bad ? " canary=bad" : " canary=ok");
    print(honest_fails ? " honest=fail" : " honest=ok");
    print(final_fails ? " final=fail\n" : " final=ok\n");
    poweroff();
}
