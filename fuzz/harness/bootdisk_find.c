/*
 * fuzz_bootdisk_find: the whole boot-disk reader, bd_find()
 * (core/bootdisk/bd_find.c and everything below it), end to end over one or
 * two disks.  Input: sparse images (fuzz/common/bd_sparse.h), the second
 * after the BDS_NEXT marker; further ones are ignored.  The disks are read
 * from the records in place (up to 64 MiB: the real layouts' sizes), and a
 * read past a disk's end is a finding.
 * Checks: on success there is a kernel (kernel_len > 0, every byte
 * touched), an initrd buffer of initrd_len bytes when there is one, the
 * cmdline is NUL-terminated and `what` is non-empty; on failure the message
 * is non-empty and nothing is left allocated.  bd_found_free() must free
 * it all (LeakSanitizer).
 */
#include <stdlib.h>
#include <string.h>

#include "bootdisk/bd_find.h"
#include "bd_sparse.h"
#include "fuzz_target.h"

#define MAX_DISKS 2

static struct bd_found found;
static volatile uint8_t sink;

static void touch(const uint8_t *p, size_t n)
{
    uint8_t x = 0;
    for (size_t i = 0; i < n; i++)
        x ^= p[i];
    sink = x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    struct bds_disk img[MAX_DISKS];
    struct bd_dev disks[MAX_DISKS];
    int n = 0;
    while (n < MAX_DISKS && bds_disk(&in, BDS_DISK_MAX, &img[n]) == 0) {
        disks[n] = (struct bd_dev){bds_disk_read, &img[n], 0, img[n].size};
        n++;
    }
    if (n == 0)
        return 0;
    char err[1024];
    memset(err, 0, sizeof(err));
    int r = bd_find(disks, n, &found, err, sizeof(err));
    if (r == 0) {
        if (found.kernel_len == 0 || !found.kernel)
            fuzz_fail("find: success with a %zu-byte kernel (%s)", found.kernel_len, found.what);
        touch(found.kernel, found.kernel_len);
        if (found.initrd_len && !found.initrd)
            fuzz_fail("find: initrd_len %zu without a buffer", found.initrd_len);
        if (found.initrd)
            touch(found.initrd, found.initrd_len);
        if (!memchr(found.cmdline, '\0', sizeof(found.cmdline)))
            fuzz_fail("find: cmdline not NUL-terminated");
        if (!memchr(found.what, '\0', sizeof(found.what)) || !found.what[0])
            fuzz_fail("find: `what` empty or not NUL-terminated");
    } else {
        if (r != -1 || err[0] == '\0' || !memchr(err, '\0', sizeof(err)))
            fuzz_fail("find: failure %d without a message", r);
        if (found.kernel || found.initrd || found.kernel_len || found.initrd_len)
            fuzz_fail("find: failure left a kernel or initrd behind");
    }
    bd_found_free(&found);
    if (found.kernel || found.initrd)
        fuzz_fail("find: bd_found_free left pointers");
    for (int k = 0; k < n; k++)
        free(img[k].rec);
    return 0;
}
