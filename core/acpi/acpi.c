/*
 * Lay out RSDP, DSDT, FADT, MADT, MCFG (machines with PCI) and XSDT in
 * the guest's ACPI window.
 *
 * Everything is assembled in a host buffer the size of the window and
 * copied into guest RAM in one gm_write(), so a failure (too many vCPUs,
 * bad device description, window not in RAM) leaves guest memory untouched.
 *
 * The RSDP sits at the window's base (16-byte aligned, inside the
 * 0xE0000-0xFFFFF area that legacy OSes scan); the boot protocol also
 * hands its address to the kernel directly.  Every table is 16-byte
 * aligned.  Adding a table means one more builder call in build_all()
 * committed with in_xsdt = true.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "acpi.h"
#include "sdt.h"
#include "../boot/bytes.h"
#include "../layout.h"
#include "../log.h"

#define TABLE_ALIGN 16u
#define MAX_XSDT_ENTRIES 8u

struct blob {
    uint8_t *buf;
    size_t cap;
    size_t len;
    uint64_t xsdt[MAX_XSDT_ENTRIES]; /* offsets of tables listed in the XSDT */
    unsigned nxsdt;
};

/* The next 16-byte aligned free slot: its offset and size (0 if full). */
static size_t next_slot(const struct blob *b, size_t *off)
{
    size_t o = (b->len + TABLE_ALIGN - 1) & ~(size_t)(TABLE_ALIGN - 1);
    *off = o;
    return o < b->cap ? b->cap - o : 0;
}

/*
 * Claim len bytes at off for a table a builder just wrote there (len 0 =
 * the builder failed).  Returns the table's offset in the window, or
 * SIZE_MAX.
 */
static size_t commit(struct blob *b, size_t off, size_t len, bool in_xsdt)
{
    if (len == 0)
        return SIZE_MAX;
    if (in_xsdt) {
        if (b->nxsdt == MAX_XSDT_ENTRIES)
            return SIZE_MAX;
        b->xsdt[b->nxsdt++] = off;
    }
    b->len = off + len;
    return off;
}

static size_t place_xsdt(struct blob *b)
{
    size_t off, len = SDT_HEADER_LEN + 8u * b->nxsdt;
    if (next_slot(b, &off) < len)
        return SIZE_MAX;
    uint8_t *t = b->buf + off;
    sdt_header(t, "XSDT", (uint32_t)len, XSDT_REVISION);
    for (unsigned i = 0; i < b->nxsdt; i++)
        put_le64(t + SDT_HEADER_LEN + 8u * i, LAYOUT_ACPI_START + b->xsdt[i]);
    sdt_finish(t, len);
    return commit(b, off, len, false);
}

static void write_rsdp(uint8_t *r, uint64_t xsdt_addr)
{
    memset(r, 0, RSDP_LEN);
    memcpy(r, "RSD PTR ", 8);
    memcpy(r + RSDP_OFF_OEM_ID, ACPI_OEM_ID, 6);
    r[RSDP_OFF_REVISION] = RSDP_REVISION;
    /* No RSDT: ACPI 2.0+ guests use the XSDT; RsdtAddress stays 0. */
    put_le32(r + RSDP_OFF_LENGTH, RSDP_LEN);
    put_le64(r + RSDP_OFF_XSDT, xsdt_addr);
    /* The v1 checksum covers the first 20 bytes, the extended one all 36. */
    r[RSDP_OFF_CHECKSUM] = (uint8_t)(0u - acpi_sum(r, RSDP_V1_LEN));
    r[RSDP_OFF_EXT_CHECKSUM] = (uint8_t)(0u - acpi_sum(r, RSDP_LEN));
}

static int build_all(struct blob *b, const struct acpi_config *cfg)
{
    size_t off, avail, len;

    /* The RSDP takes offset 0; it is filled in last. */
    b->len = RSDP_LEN;

    avail = next_slot(b, &off);
    len = avail ? acpi_build_dsdt(cfg, b->buf + off, avail) : 0;
    size_t dsdt = commit(b, off, len, false);
    if (dsdt == SIZE_MAX) {
        log_error("acpi: cannot build the DSDT");
        return -1;
    }

    avail = next_slot(b, &off);
    len = avail ? acpi_build_fadt(LAYOUT_ACPI_START + dsdt, cfg->sleep_port, b->buf + off, avail)
                : 0;
    if (commit(b, off, len, true) == SIZE_MAX) {
        log_error("acpi: cannot build the FADT (sleep port 0x%x)", cfg->sleep_port);
        return -1;
    }

    avail = next_slot(b, &off);
    len = avail ? acpi_build_madt(acpi_possible_cpus(cfg), cfg->ncpus, b->buf + off, avail) : 0;
    if (commit(b, off, len, true) == SIZE_MAX) {
        log_error("acpi: the MADT for %u vCPUs does not fit in the %llu KiB ACPI window",
                  acpi_possible_cpus(cfg), (unsigned long long)(LAYOUT_ACPI_SIZE >> 10));
        return -1;
    }

    if (cfg->pci) {
        avail = next_slot(b, &off);
        len = avail ? acpi_build_mcfg(cfg->pci, b->buf + off, avail) : 0;
        if (commit(b, off, len, true) == SIZE_MAX) {
            log_error("acpi: cannot build the MCFG (invalid ECAM area?)");
            return -1;
        }
    }

    size_t xsdt = place_xsdt(b);
    if (xsdt == SIZE_MAX) {
        log_error("acpi: the XSDT does not fit in the ACPI window");
        return -1;
    }
    write_rsdp(b->buf, LAYOUT_ACPI_START + xsdt);
    return 0;
}

uint64_t acpi_build(struct guest_mem *gm, const struct acpi_config *cfg)
{
    struct blob b = {0};
    uint64_t rsdp = 0;

    if (!gm || !cfg)
        return 0;
    if (cfg->ncpus == 0 || (cfg->max_cpus && cfg->max_cpus < cfg->ncpus)) {
        log_error("acpi: at least one vCPU is required, and no more than max_cpus");
        return 0;
    }
    b.cap = LAYOUT_ACPI_SIZE;
    b.buf = calloc(1, b.cap);
    if (!b.buf) {
        log_error("acpi: out of memory");
        return 0;
    }
    if (build_all(&b, cfg) == 0) {
        if (gm_write(gm, LAYOUT_ACPI_START, b.buf, b.len) == 0)
            rsdp = LAYOUT_ACPI_START;
        else
            log_error("acpi: guest RAM does not cover the ACPI window 0x%llx+0x%zx",
                      (unsigned long long)LAYOUT_ACPI_START, b.len);
    }
    free(b.buf);
    return rsdp;
}
