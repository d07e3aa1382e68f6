/*
 * The E820 map a PC BIOS would report for our layout.  Listing the EBDA and
 * the BIOS/ACPI area as reserved keeps the kernel's early allocator off the
 * RSDP and tables it has not parsed yet.  Device ranges in the 32-bit hole
 * are left out (the DSDT describes them) unless the caller adds them, as
 * the VM does for the PCI ECAM area.
 */
#include "e820.h"

#include "../layout.h"

#define E820_EBDA_END 0xa0000ull /* start of the legacy VGA window */

struct e820_sink {
    struct e820_entry *out;
    int max, n;
};

static int e820_add(struct e820_sink *s, uint64_t start, uint64_t end, uint32_t type)
{
    if (end <= start)
        return 0;
    if (s->n >= s->max)
        return -1;
    s->out[s->n++] = (struct e820_entry){.addr = start, .size = end - start, .type = type};
    return 0;
}

int e820_build(const struct guest_mem *gm, struct e820_entry *out, int max)
{
    struct e820_sink s = {.out = out, .max = max, .n = 0};
    uint64_t low_end, ebda;
    int rc = 0;

    if (!gm || !out || max <= 0)
        return -1;
    low_end = gm_low_ram_end(gm);
    ebda = low_end < LAYOUT_EBDA_START ? low_end : LAYOUT_EBDA_START;

    rc |= e820_add(&s, 0, ebda, E820_RAM);
    /* Reserved areas are listed only where the machine has the memory. */
    if (low_end >= E820_EBDA_END)
        rc |= e820_add(&s, LAYOUT_EBDA_START, E820_EBDA_END, E820_RESERVED);
    if (low_end >= LAYOUT_HIGH_RAM)
        rc |= e820_add(&s, LAYOUT_ACPI_START, LAYOUT_HIGH_RAM, E820_RESERVED);
    rc |= e820_add(&s, LAYOUT_HIGH_RAM, low_end, E820_RAM);
    for (unsigned i = 0; i < gm->nregions && i < GUEST_MEM_MAX_REGIONS; i++) {
        const struct guest_region *r = &gm->regions[i];
        if (r->gpa >= LAYOUT_MMIO32_END)
            rc |= e820_add(&s, r->gpa, r->gpa + r->size, E820_RAM);
    }
    return rc ? -1 : s.n;
}

/* Insert e into the sorted out[0..n) unless it overlaps; returns the new count or -1. */
static int insert_sorted(struct e820_entry *out, int n, int max, const struct e820_entry *e)
{
    if (e->size == 0 || e->addr + (e->size - 1) < e->addr || n >= max)
        return -1;
    int pos = 0;
    while (pos < n && out[pos].addr < e->addr)
        pos++;
    if (pos > 0 && out[pos - 1].addr + (out[pos - 1].size - 1) >= e->addr)
        return -1;
    if (pos < n && e->addr + (e->size - 1) >= out[pos].addr)
        return -1;
    for (int i = n; i > pos; i--)
        out[i] = out[i - 1];
    out[pos] = *e;
    return n + 1;
}

int e820_build_extra(const struct guest_mem *gm, const struct e820_entry *extra, int nextra,
                     struct e820_entry *out, int max)
{
    if (nextra < 0 || (nextra > 0 && !extra))
        return -1;
    int n = e820_build(gm, out, max);
    for (int i = 0; n >= 0 && i < nextra; i++)
        n = insert_sorted(out, n, max, &extra[i]);
    return n;
}
