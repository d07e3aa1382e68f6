/*
 * Resource descriptors for ResourceTemplate() (ACPI 6.3 section 6.4): the
 * small IO/IRQ items legacy devices need and the large memory/address-space
 * items a PCI host bridge's _CRS needs.
 */
#include "aml.h"

#include "../boot/bytes.h"

/* Resource descriptor tags (ACPI 6.3 section 6.4). */
#define RES_IRQ_NOFLAGS 0x22    /* small, type 4, length 2 */
#define RES_IO 0x47             /* small, type 8, length 7 */
#define RES_MEMORY32_FIXED 0x86 /* large, length 9 */
#define RES_DWORD_ADDR 0x87     /* large, length 23 */
#define RES_WORD_ADDR 0x88      /* large, length 13 */
#define RES_EXT_IRQ 0x89        /* large, length 6 for one interrupt */
#define RES_QWORD_ADDR 0x8a     /* large, length 43 */

void aml_res_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
    uint8_t d[8];
    if (!aml_in_restemplate(a))
        return;
    if (max < min) {
        a->err = true;
        return;
    }
    d[0] = RES_IO;
    d[1] = 0x01; /* Decode16 */
    put_le16(d + 2, min);
    put_le16(d + 4, max);
    d[6] = align;
    d[7] = len;
    aml_bytes(a, d, sizeof(d));
}

void aml_res_irq_noflags(struct aml *a, uint8_t irq)
{
    uint8_t d[3];
    if (!aml_in_restemplate(a))
        return;
    if (irq > 15) {
        a->err = true;
        return;
    }
    d[0] = RES_IRQ_NOFLAGS;
    put_le16(d + 1, (uint16_t)(1u << irq));
    aml_bytes(a, d, sizeof(d));
}

void aml_res_interrupt(struct aml *a, uint32_t gsi, bool level, bool active_low, bool shared)
{
    uint8_t d[9];
    if (!aml_in_restemplate(a))
        return;
    d[0] = RES_EXT_IRQ;
    put_le16(d + 1, 6);
    /* Bit 0 consumer, 1 edge (else level), 2 active low, 3 shared. */
    d[3] = (uint8_t)(0x01u | (level ? 0u : 0x02u) | (active_low ? 0x04u : 0u) |
                     (shared ? 0x08u : 0u));
    d[4] = 1; /* interrupt table length */
    put_le32(d + 5, gsi);
    aml_bytes(a, d, sizeof(d));
}

void aml_res_memory32_fixed(struct aml *a, bool writable, uint32_t base, uint32_t len)
{
    uint8_t d[12];
    if (!aml_in_restemplate(a))
        return;
    d[0] = RES_MEMORY32_FIXED;
    put_le16(d + 1, 9);
    d[3] = writable ? 1 : 0;
    put_le32(d + 4, base);
    put_le32(d + 8, len);
    aml_bytes(a, d, sizeof(d));
}

void aml_res_address(struct aml *a, unsigned width, const struct aml_addr_space *r)
{
    uint8_t d[3 + 3 + 5 * 8];
    uint8_t tag;
    uint64_t limit;

    if (!aml_in_restemplate(a))
        return;
    if (!r || r->type > AML_ADDR_BUS) {
        a->err = true;
        return;
    }
    switch (width) {
    case 2:
        tag = RES_WORD_ADDR;
        limit = 0xffff;
        break;
    case 4:
        tag = RES_DWORD_ADDR;
        limit = 0xffffffffu;
        break;
    case 8:
        tag = RES_QWORD_ADDR;
        limit = UINT64_MAX;
        break;
    default:
        a->err = true;
        return;
    }
    const uint64_t vals[5] = {r->granularity, r->min, r->max, r->translation, r->length};
    for (int i = 0; i < 5; i++)
        if (vals[i] > limit)
            a->err = true;
    if (a->err)
        return;

    size_t body = 3 + 5 * (size_t)width; /* type, general flags, type flags, 5 values */
    d[0] = tag;
    put_le16(d + 1, (uint16_t)body);
    d[3] = r->type;
    /* General flags: bit 0 consumer, 1 subtractive decode (never), 2 MinFixed, 3 MaxFixed. */
    d[4] = (uint8_t)((r->consumer ? 0x01u : 0u) | (r->min_fixed ? 0x04u : 0u) |
                     (r->max_fixed ? 0x08u : 0u));
    d[5] = r->type_flags;
    for (int i = 0; i < 5; i++) {
        uint8_t *p = d + 6 + (size_t)i * width;
        if (width == 2)
            put_le16(p, (uint16_t)vals[i]);
        else if (width == 4)
            put_le32(p, (uint32_t)vals[i]);
        else
            put_le64(p, vals[i]);
    }
    aml_bytes(a, d, 3 + body);
}

/* A bridge window [min, max] that the device decodes and passes on. */
static void window(struct aml *a, unsigned width, uint8_t type, uint8_t tflags, uint64_t min,
                   uint64_t max)
{
    if (max < min || (min == 0 && max == UINT64_MAX)) {
        a->err = true; /* the length would not be representable */
        return;
    }
    struct aml_addr_space r = {.type = type,
                               .min_fixed = true,
                               .max_fixed = true,
                               .type_flags = tflags,
                               .min = min,
                               .max = max,
                               .length = max - min + 1};
    aml_res_address(a, width, &r);
}

void aml_res_word_bus_number(struct aml *a, uint16_t min, uint16_t max)
{
    window(a, 2, AML_ADDR_BUS, 0, min, max);
}

void aml_res_word_io(struct aml *a, uint16_t min, uint16_t max)
{
    window(a, 2, AML_ADDR_IO, 0x03 /* EntireRange */, min, max);
}

/* Memory type flags: bit 0 ReadWrite, bits 1-2 0 NonCacheable / 3 Prefetchable. */
static uint8_t mem_flags(bool prefetchable)
{
    return (uint8_t)(0x01u | (prefetchable ? 0x06u : 0u));
}

void aml_res_dword_memory(struct aml *a, uint32_t min, uint32_t max, bool prefetchable)
{
    window(a, 4, AML_ADDR_MEMORY, mem_flags(prefetchable), min, max);
}

void aml_res_qword_memory(struct aml *a, uint64_t min, uint64_t max, bool prefetchable)
{
    window(a, 8, AML_ADDR_MEMORY, mem_flags(prefetchable), min, max);
}
