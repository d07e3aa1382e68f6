/*
 * PIO and MMIO dispatch: a sorted array of non-overlapping ranges searched
 * by bisection under a read lock; handlers run outside the lock so one may
 * add or remove ranges (a guest moving a PCI BAR).  Ranges of a device that
 * is going away are removed with the vCPUs paused or stopped.
 */
#ifndef NIMBUS_BUS_H
#define NIMBUS_BUS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* Called with the offset inside the range; data is len bytes (1..8). */
typedef void (*bus_io_fn)(void *opaque, uint32_t region, uint64_t offset, void *data,
                          uint32_t len, int is_write);

struct bus_range {
    uint64_t base, size;
    bus_io_fn fn;
    void *opaque;
    uint32_t region; /* passed back to fn: the device's region index */
};

struct bus {
    const char *name; /* "pio" or "mmio", for messages */
    struct bus_range *ranges;
    size_t n, cap;
    pthread_rwlock_t lock;
};

void bus_init(struct bus *b, const char *name);
void bus_destroy(struct bus *b);
/* -EEXIST when [base, base+size) overlaps a registered range, -EINVAL on size 0 or wrap. */
int bus_add(struct bus *b, uint64_t base, uint64_t size, bus_io_fn fn, void *opaque,
            uint32_t region);
int bus_remove(struct bus *b, uint64_t base);
/*
 * Dispatch one access.  Returns 0 when a range fully contains it, -ENOENT
 * otherwise (reads then must be answered with all-ones by the caller).
 */
int bus_access(struct bus *b, uint64_t addr, void *data, uint32_t len, int is_write);

#endif
