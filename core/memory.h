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
    struct guest_region regions[GUEST_MEM_MAX_REGIONS]; /* boot RAM (the E820) */
    unsigned nregions;
    /*
     * Memory hotplug: the area reserved above RAM (gpa, host, size =
     * hotplug_size; host memory after boot RAM in the same mapping) and how
     * much of it, from its start, is plugged.  `hp_plugged` only grows and
     * is read without a lock (atomic): accesses beyond it fail like any
     * access outside RAM.
     */
    struct guest_region hp;
    uint64_t hp_plugged;
    int prefault;        /* populate hot-plugged memory as it is plugged */
    uint8_t *base;       /* the whole host mapping */
    uint64_t mapped;     /* bytes mapped at base */
    uint64_t ram_size;   /* total guest RAM */
    int memfd;           /* -1 unless shared */
};

/* Memory hotplug blocks: Linux's memory block size on x86-64. */
#define GM_HOTPLUG_ALIGN (128ull << 20)

/*
 * Compute the RAM regions for `size` bytes: [0, min(size, 3 GiB)) and, for
 * the rest, [4 GiB, ...).  Pure; used by gm_map and by unit tests.
 * Returns the number of regions, or -1 if size is 0 or too large.
 */
int gm_layout(uint64_t size, struct guest_region *out, unsigned max);

/* Map guest RAM as configured (with hotplug_size, the hotplug area too,
 * nothing of it plugged).  Returns 0 or -errno. */
int gm_map(struct guest_mem *gm, const struct memory_config *cfg);
/*
 * The hotplug area's slot (one ACPI memory device): 128 MiB, doubled until
 * there are at most GM_HOTPLUG_MAX_SLOTS, which bounds the DSDT.
 */
#define GM_HOTPLUG_MAX_SLOTS 256u
uint64_t gm_hotplug_slot_size(uint64_t hotplug_size);
/* Where the hotplug area of `size` bytes of RAM starts: above RAM and 4 GiB,
 * 1 GiB aligned. */
uint64_t gm_hotplug_base(uint64_t size);
/* Plug `bytes` more of the hotplug area (after the caller mapped them in
 * KVM): -ENOSPC beyond it.  Returns the gpa of the new range via *gpa. */
int gm_hotplug_grow(struct guest_mem *gm, uint64_t bytes, uint64_t *gpa);
/* The end of everything guest RAM may ever occupy (RAM and hotplug area). */
uint64_t gm_top(const struct guest_mem *gm);
/* True when [start, last] meets RAM or the hotplug area (plugged or not). */
int gm_overlaps(const struct guest_mem *gm, uint64_t start, uint64_t last);
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
