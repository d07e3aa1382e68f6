/*
 * fuzz_bootdisk_ext4 and fuzz_bootdisk_fat: a file system as the boot-disk
 * reader meets it (core/bootdisk/bd_fs.c, bd_ext.c through libext2fs,
 * bd_fat.c).  One source for both targets: bd_fs_open() probes as the
 * reader does, and each target's corpus (ext2/3/4 or FAT images) decides
 * which code runs.  Input: one sparse image (fuzz/common/bd_sparse.h).
 *
 * After a successful open: the files the reader looks for are read (at most
 * 1 MiB each, and once with a tiny limit), a few paths tested, the BLS entry
 * directories and / listed.  Checks: a read that succeeds returns at most
 * max bytes in a buffer of that many (every byte is touched, so ASan sees a
 * short one); a failure fills the message; listed names are
 * NUL-terminated, never "." or "..", and no more than asked for.  Everything
 * is closed again: libext2fs keeps state per open file system, and
 * LeakSanitizer runs at exit (replay) or per input (libFuzzer).
 */
#include <stdlib.h>
#include <string.h>

#include "bootdisk/bd_fs.h"
#include "bd_sparse.h"
#include "fuzz_target.h"

#define READ_MAX (1u << 20)
#define LIST_MAX 64u

/* What the reader reads, and a deep path (the long-name seed has it). */
static const char *const READS[] = {"/boot/grub/grub.cfg", "/grub/grub.cfg", "/vmlinuz",
                                    "/boot/vmlinuz",       "/initrd.img",    "/boot/initrd.img",
                                    "/a/b/c/d/e/f/vmlinuz"};
static const char *const EXISTS[] = {"/",
                                     "/boot",
                                     "/loader/entries",
                                     "/EFI/BOOT",
                                     "/boot/grub/grubenv",
                                     "/boot/../vmlinuz",
                                     "//boot//grub",
                                     "/efi/debian long directory name/GRUB.CFG",
                                     "/upper.cfg"};
static const char *const LISTS[] = {"/", "/loader/entries", "/boot/loader/entries"};

static volatile uint8_t sink;

static void read_one(struct bd_fs *fs, const char *path, size_t max)
{
    uint8_t *buf = NULL;
    size_t len = (size_t)-1;
    char err[256];
    memset(err, 0, sizeof(err));
    int r = bd_fs_read(fs, path, max, &buf, &len, err, sizeof(err));
    if (r == 0) {
        if (len > max)
            fuzz_fail("%s %s: read %zu bytes, max %zu", bd_fs_name(fs), path, len, max);
        if (!buf)
            fuzz_fail("%s %s: success without a buffer", bd_fs_name(fs), path);
        uint8_t x = 0;
        for (size_t i = 0; i < len; i++)
            x ^= buf[i];
        sink = x;
    } else if (r > 0 || err[0] == '\0' || !memchr(err, '\0', sizeof(err))) {
        fuzz_fail("%s %s: failure %d without a message", bd_fs_name(fs), path, r);
    }
    free(buf);
}

struct lister {
    const char *dir;
    unsigned calls;
    unsigned max;
};

static int list_cb(void *opaque, const char *name, int is_dir)
{
    struct lister *l = opaque;
    (void)is_dir;
    if (++l->calls > l->max)
        fuzz_fail("list %s: more than %u names", l->dir, l->max);
    /* A damaged directory may well name an entry "": callers cope. */
    size_t n = strnlen(name, 4096);
    if (n == 4096)
        fuzz_fail("list %s: a name of 4096 bytes or unterminated", l->dir);
    if (!strcmp(name, ".") || !strcmp(name, ".."))
        fuzz_fail("list %s: '%s' listed", l->dir, name);
    sink = (uint8_t)name[0];
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    size_t isize = 0;
    uint8_t *img = bds_image(&in, BDS_MAX, &isize);
    if (!img)
        return 0;
    const uint8_t *ptr = img;
    struct bd_dev dev;
    bd_dev_mem(&dev, &ptr, isize);
    struct bd_fs fs;
    char err[256];
    memset(err, 0, sizeof(err));
    if (bd_fs_open(&dev, &fs, err, sizeof(err)) != 0) {
        if (err[0] == '\0' || !memchr(err, '\0', sizeof(err)))
            fuzz_fail("open: failure without a message");
        free(img);
        return 0;
    }
    if (!memchr(fs.uuid, '\0', sizeof(fs.uuid)) || !memchr(fs.label, '\0', sizeof(fs.label)))
        fuzz_fail("open: uuid or label not NUL-terminated");
    for (size_t k = 0; k < sizeof(READS) / sizeof(READS[0]); k++)
        read_one(&fs, READS[k], READ_MAX);
    read_one(&fs, "/vmlinuz", 16); /* the -EFBIG path */
    for (size_t k = 0; k < sizeof(EXISTS) / sizeof(EXISTS[0]); k++) {
        int e = bd_fs_exists(&fs, EXISTS[k]);
        if (e != 0 && e != 1)
            fuzz_fail("exists %s: %d", EXISTS[k], e);
    }
    for (size_t k = 0; k < sizeof(LISTS) / sizeof(LISTS[0]); k++) {
        struct lister l = {LISTS[k], 0, k ? LIST_MAX : 3};
        (void)bd_fs_list(&fs, LISTS[k], list_cb, &l, l.max);
    }
    bd_fs_close(&fs);
    free(img);
    return 0;
}
