/*
 * MCFG: where the ECAM area is, so the guest reaches config space through
 * memory (and the 4 KiB extended space) instead of ports 0xCF8/0xCFC.
 */
#include "sdt.h"

#include "../boot/bytes.h"
#include "../pci/pci.h"

#define ECAM_BUS_SIZE (1ull << 20)

size_t acpi_build_mcfg(const struct pci_windows *w, uint8_t *buf, size_t cap)
{
    if (!w || !buf || cap < MCFG_LEN)
        return 0;
    uint64_t nbuses = w->ecam_size / ECAM_BUS_SIZE;
    if (nbuses == 0 || nbuses > 256 || w->ecam_size % ECAM_BUS_SIZE ||
        w->ecam_base % ECAM_BUS_SIZE)
        return 0;
    sdt_header(buf, "MCFG", MCFG_LEN, MCFG_REVISION);
    for (unsigned i = SDT_HEADER_LEN; i < MCFG_LEN; i++)
        buf[i] = 0; /* the 8 reserved bytes, then the allocation */
    uint8_t *a = buf + MCFG_OFF_ALLOC;
    put_le64(a, w->ecam_base);
    put_le16(a + 8, 0);                   /* PCI segment group */
    a[10] = 0;                            /* start bus */
    a[11] = (uint8_t)(nbuses - 1);        /* end bus */
    sdt_finish(buf, MCFG_LEN);
    return MCFG_LEN;
}
