/* Guest RAM: one host mapping split into KVM memslots around the 32-bit hole. */
#ifndef NIMBUS_MEMORY_H
#define NIMBUS_MEMORY_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define GUEST_MEM_MAX_REGIONS 4

struct guest_region {
    uint64_t gpa;
    uint64_t size;
    uint8_t *host; /* host virtual address of gpa */
};

struct guest_mem {
    struct guest_region regions[GUEST_MEM_MAX_REGIONS];
    unsigned nregions;
    uint8_t *base;       /* the whole host mapping */
    uint64_t mapped;     /* bytes mapped at base */
    uint64_t ram_size;   /* total guest RAM */
    int memfd;           /* -1 unless shared */
};

/*
 * Compute the RAM regions for `size` bytes: [0, min(size, 3 GiB)) and, for
 * the rest, [4 GiB, ...).  Pure; used by gm_map and by unit tests.
 * Returns the number of regions, or -1 if size is 0 or too large.
 */
int gm_layout(uint64_t size, struct guest_region *out, unsigned max);

/* Map guest RAM as configured.  Returns 0 or -errno. */
int gm_map(struct guest_mem *gm, const struct memory_config *cfg);
/*
 * Build a guest_mem over caller-provided buffer (tests, fuzzers), with the
 * same layout as gm_map.  `mapped` stays 0: gm_unmap leaves the buffer alone.
 */
int gm_wrap(struct guest_mem *gm, void *buf, uint64_t size);
void gm_unmap(struct guest_mem *gm);

/*
 * Host pointer for [gpa, gpa+len) if the whole range lies inside one RAM
 * region (overflow-safe), else NULL.  len may be 0 (then gpa must be in RAM
 * or exactly at a region end).
 */
void *gm_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len);
/* Copy in/out across region boundaries; -EFAULT if any byte is not RAM. */
int gm_read(const struct guest_mem *gm, uint64_t gpa, void *dst, uint64_t len);
int gm_write(const struct guest_mem *gm, uint64_t gpa, const void *src, uint64_t len);
/* End of RAM below 4 GiB (for initrd placement). */
uint64_t gm_low_ram_end(const struct guest_mem *gm);

#endif
