/*
 * Kernel and initrd files are mapped read-only rather than read: an initrd
 * can be hundreds of MiB and is copied into guest RAM exactly once.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loader.h"

int boot_file_open(const char *path, struct boot_file *f, char *err, size_t errlen)
{
    struct stat st;
    int fd, e;

    memset(f, 0, sizeof(*f));
    f->img.name = path;
    f->img.data = (const uint8_t *)"";
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return boot_fail(err, errlen, path, "%s", strerror(errno));
    if (fstat(fd, &st) != 0) {
        e = errno;
        close(fd);
        return boot_fail(err, errlen, path, "%s", strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return boot_fail(err, errlen, path, "not a regular file");
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            e = errno;
            close(fd);
            return boot_fail(err, errlen, path, "%s", strerror(e));
        }
        f->map = p;
        f->maplen = (size_t)st.st_size;
        f->img.data = p;
        f->img.len = (size_t)st.st_size;
    }
    close(fd);
    return 0;
}

void boot_file_close(struct boot_file *f)
{
    if (f->map)
        munmap(f->map, f->maplen);
    memset(f, 0, sizeof(*f));
}
