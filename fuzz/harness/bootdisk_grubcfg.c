/*
 * fuzz_bootdisk_grubcfg: the grub.cfg interpreter (core/bootdisk/bd_grub.c).
 * Input: grub.cfg text, optionally followed by a NUL and a grubenv text
 * (both passed as exact-size copies without a terminator, so reading past
 * either is an ASan report).  The disk is faked: a file exists, or is
 * nonempty, by a hash of its device and path (deterministic, so replays
 * agree), and blscfg finds two fixed entries, one with the
 * "$kernelopts quiet" options Fedora writes.
 * Checks: on success the kernel path is absolute, every string of the spec
 * is NUL-terminated within its array, 0 <= ninitrd <= BD_MAX_INITRD and the
 * initrd paths are absolute too; on failure the message is non-empty.
 */
#include <stdlib.h>
#include <string.h>

#include "bootdisk/bd_grub.h"
#include "fuzz_target.h"

static uint32_t fnv(const char *a, const char *b)
{
    uint32_t h = 2166136261u;
    for (const char *s = a; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    h = (h ^ 0xff) * 16777619u;
    for (const char *s = b; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static int fake_file_test(void *opaque, const char *dev, const char *path, int nonempty)
{
    (void)opaque;
    uint32_t h = fnv(dev, path);
    return nonempty ? (h & 3) == 3 : (h & 1) == 1;
}

static struct bd_bls_entry fixed[2];

static int fake_bls(void *opaque, const char *dev, struct bd_bls_list *out)
{
    (void)opaque;
    (void)dev;
    out->n = 2;
    out->e[0] = fixed[0];
    out->e[1] = fixed[1];
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    static const char a[] = "title Fedora Linux (6.10.12-200.fc40.x86_64)\n"
                            "version 6.10.12-200.fc40.x86_64\n"
                            "linux /vmlinuz-6.10.12-200.fc40.x86_64\n"
                            "initrd /initramfs-6.10.12-200.fc40.x86_64.img\n"
                            "options $kernelopts quiet\n";
    static const char b[] = "title Fedora Linux (0-rescue)\n"
                            "version 0-rescue-0123456789abcdef\n"
                            "linux /vmlinuz-0-rescue-0123456789abcdef\n"
                            "initrd /initramfs-0-rescue-0123456789abcdef.img\n"
                            "options root=UUID=1234 ro\n";
    if (bd_bls_parse(a, sizeof(a) - 1, "abc-6.10.12-200.fc40.x86_64", &fixed[0]) != 0 ||
        bd_bls_parse(b, sizeof(b) - 1, "abc-0-rescue", &fixed[1]) != 0)
        fuzz_fail("grubcfg: the fixed BLS entries do not parse");
    return 0;
}

static struct bd_boot_spec spec;

static void terminated(const char *s, size_t n, const char *what)
{
    if (!memchr(s, '\0', n))
        fuzz_fail("grubcfg: %s not NUL-terminated", what);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t cl = nul ? (size_t)(nul - data) : size;
    size_t el = nul ? size - cl - 1 : 0;
    char *cfg = malloc(cl ? cl : 1), *env = nul ? malloc(el ? el : 1) : NULL;
    if (!cfg || (nul && !env)) {
        free(cfg);
        free(env);
        return 0;
    }
    memcpy(cfg, data, cl);
    if (env)
        memcpy(env, nul + 1, el);

    struct bd_grub_host host = {fake_file_test, fake_bls, NULL};
    char err[256];
    memset(err, 0, sizeof(err));
    int r = bd_grub_boot(cfg, cl, env, el, "hd0,gpt1", "/boot/grub", &host, &spec, err,
                         sizeof(err));
    if (r == 0) {
        terminated(spec.kernel.dev, sizeof(spec.kernel.dev), "kernel dev");
        terminated(spec.kernel.path, sizeof(spec.kernel.path), "kernel path");
        terminated(spec.cmdline, sizeof(spec.cmdline), "cmdline");
        terminated(spec.title, sizeof(spec.title), "title");
        if (spec.kernel.path[0] != '/')
            fuzz_fail("grubcfg: kernel path '%s' is not absolute", spec.kernel.path);
        if (spec.ninitrd < 0 || spec.ninitrd > BD_MAX_INITRD)
            fuzz_fail("grubcfg: %d initrds", spec.ninitrd);
        for (int k = 0; k < spec.ninitrd; k++) {
            terminated(spec.initrd[k].dev, sizeof(spec.initrd[k].dev), "initrd dev");
            terminated(spec.initrd[k].path, sizeof(spec.initrd[k].path), "initrd path");
            if (spec.initrd[k].path[0] != '/')
                fuzz_fail("grubcfg: initrd path '%s' is not absolute", spec.initrd[k].path);
        }
    } else if (r != -1 || err[0] == '\0' || !memchr(err, '\0', sizeof(err))) {
        fuzz_fail("grubcfg: failure %d without a message", r);
    }
    free(cfg);
    free(env);
    return 0;
}
