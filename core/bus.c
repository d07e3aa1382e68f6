#include "bus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void bus_init(struct bus *b, const char *name)
{
    memset(b, 0, sizeof(*b));
    b->name = name;
    pthread_rwlock_init(&b->lock, NULL);
}

void bus_destroy(struct bus *b)
{
    free(b->ranges);
    b->ranges = NULL;
    b->n = b->cap = 0;
    pthread_rwlock_destroy(&b->lock);
}

/* Index of the first range whose base is > addr. */
static size_t upper_bound(const struct bus *b, uint64_t addr)
{
    size_t lo = 0, hi = b->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b->ranges[mid].base <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int bus_add(struct bus *b, uint64_t base, uint64_t size, bus_io_fn fn, void *opaque,
            uint32_t region)
{
    uint64_t last;
    if (size == 0 || __builtin_add_overflow(base, size - 1, &last) || !fn)
        return -EINVAL;
    pthread_rwlock_wrlock(&b->lock);
    size_t pos = upper_bound(b, base);
    int overlap = 0;
    if (pos > 0) {
        const struct bus_range *p = &b->ranges[pos - 1];
        if (base <= p->base + (p->size - 1))
            overlap = 1;
    }
    if (pos < b->n && b->ranges[pos].base <= last)
        overlap = 1;
    if (overlap) {
        pthread_rwlock_unlock(&b->lock);
        return -EEXIST;
    }
    if (b->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 16;
        struct bus_range *nr = realloc(b->ranges, ncap * sizeof(*nr));
        if (!nr) {
            pthread_rwlock_unlock(&b->lock);
            return -ENOMEM;
        }
        b->ranges = nr;
        b->cap = ncap;
    }
    memmove(&b->ranges[pos + 1], &b->ranges[pos], (b->n - pos) * sizeof(*b->ranges));
    b->ranges[pos] = (struct bus_range){base, size, fn, opaque, region};
    b->n++;
    pthread_rwlock_unlock(&b->lock);
    return 0;
}

int bus_remove(struct bus *b, uint64_t base)
{
    pthread_rwlock_wrlock(&b->lock);
    size_t pos = upper_bound(b, base);
    if (pos == 0 || b->ranges[pos - 1].base != base) {
        pthread_rwlock_unlock(&b->lock);
        return -ENOENT;
    }
    pos--;
    memmove(&b->ranges[pos], &b->ranges[pos + 1], (b->n - pos - 1) * sizeof(*b->ranges));
    b->n--;
    pthread_rwlock_unlock(&b->lock);
    return 0;
}

int bus_access(struct bus *b, uint64_t addr, void *data, uint32_t len, int is_write)
{
    if (len == 0 || len > 8)
        return -EINVAL;
    pthread_rwlock_rdlock(&b->lock);
    size_t pos = upper_bound(b, addr);
    if (pos == 0) {
        pthread_rwlock_unlock(&b->lock);
        return -ENOENT;
    }
    struct bus_range r = b->ranges[pos - 1];
    uint64_t off = addr - r.base;
    /* The whole access must fall inside the range: no straddling devices. */
    if (off >= r.size || len > r.size - off) {
        pthread_rwlock_unlock(&b->lock);
        return -ENOENT;
    }
    /*
     * The handler runs after the lock is dropped: a PCI config write (on
     * either bus) can move a BAR, i.e. add and remove ranges of this very
     * bus from inside a handler, which would deadlock on the rwlock.  So a
     * range's opaque must outlive its removal until every vCPU has left the
     * handler: the owner removes ranges of a device it is about to free only
     * with the vCPUs paused or stopped (hotplug pauses them).
     */
    pthread_rwlock_unlock(&b->lock);
    r.fn(r.opaque, r.region, off, data, len, is_write);
    return 0;
}
