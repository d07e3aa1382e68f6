/* The guest's physical memory map, shared by boot_params and PVH start_info. */
#ifndef NIMBUS_E820_H
#define NIMBUS_E820_H

#include <stdint.h>

#include "../memory.h"

#define E820_RAM 1u
#define E820_RESERVED 2u
#define E820_ACPI 3u
#define E820_MAX_ENTRIES 16

struct e820_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
};

/*
 * Fill `out` with the map for `gm`: low RAM [0, EBDA), the EBDA
 * [EBDA, 0xa0000) reserved, the ACPI/BIOS area [0xe0000, 1 MiB) reserved,
 * RAM from 1 MiB to the hole, the 32-bit hole's device ranges not listed,
 * RAM above 4 GiB; areas past the end of a tiny guest's RAM are left out.
 * Entries are sorted and never overlap.  Returns the entry count, or -1 if
 * gm is NULL or `max` entries are not enough.
 */
int e820_build(const struct guest_mem *gm, struct e820_entry *out, int max);

/*
 * e820_build plus `nextra` caller entries, typically E820_RESERVED device
 * areas in the 32-bit hole that the guest must see as reserved (the PCI
 * ECAM area: Linux uses MMCONFIG only where the firmware reserves it).
 * They are merged in address order; an empty entry, one that wraps or one
 * that overlaps RAM, a built-in reserved area or another extra fails the
 * whole map (-1).  extra may be NULL when nextra is 0.
 */
int e820_build_extra(const struct guest_mem *gm, const struct e820_entry *extra, int nextra,
                     struct e820_entry *out, int max);

#endif
