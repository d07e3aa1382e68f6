/*
 * ACPI tables: structure and checksums of every table as written to guest
 * memory, MADT contents for several vCPU counts (xAPIC and x2APIC), the
 * FADT's hardware-reduced sleep registers, the DSDT's AML (byte-exact and
 * through `iasl -d`), the AML encoder's corner cases, and failure paths
 * (too many vCPUs, bad device descriptions, short buffers), the PCI
 * description: MCFG, the host bridge and the ECAM reservation in the DSDT,
 * and the Generic Event Device with its power button.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "acpi/acpi.h"
#include "acpi/aml.h"
#include "acpi/sdt.h"
#include "config_limits.h"
#include "layout.h"
#include "log.h"
#include "memory.h"
#include "pci/pci.h"

#define RAM_SIZE (2ull << 20)
#define SLEEP_PORT LAYOUT_PORT_ACPI_SLEEP

static const struct acpi_legacy_dev std_devs[] = {
    {"PNP0501", "COM1", LAYOUT_COM1_PORT, 8, LAYOUT_COM1_IRQ},
    {"PNP0B00", "RTC_", LAYOUT_RTC_PORT, 2, LAYOUT_RTC_IRQ},
};

struct vm_ram {
    uint8_t *ram;
    struct guest_mem gm;
};

static int ram_setup(void **state)
{
    struct vm_ram *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    m->ram = malloc(RAM_SIZE);
    assert_non_null(m->ram);
    memset(m->ram, 0xaa, RAM_SIZE);
    assert_int_equal(gm_wrap(&m->gm, m->ram, RAM_SIZE), 0);
    *state = m;
    return 0;
}

static int ram_teardown(void **state)
{
    struct vm_ram *m = *state;
    free(m->ram);
    free(m);
    return 0;
}

/* ncpus possible vCPUs, the first `present` of them present (0 = all). */
static uint64_t build_cpus(struct vm_ram *m, uint32_t ncpus, uint32_t present,
                           uint16_t sleep_port)
{
    struct acpi_config cfg = {.ncpus = present ? present : ncpus,
                              .max_cpus = ncpus,
                              .sleep_port = sleep_port,
                              .devs = std_devs,
                              .ndevs = sizeof(std_devs) / sizeof(std_devs[0])};
    memset(m->ram, 0xaa, RAM_SIZE);
    return acpi_build(&m->gm, &cfg);
}

static uint64_t build(struct vm_ram *m, uint32_t ncpus, uint16_t sleep_port)
{
    return build_cpus(m, ncpus, 0, sleep_port);
}

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static uint8_t sum(const uint8_t *p, size_t n)
{
    uint8_t s = 0;
    while (n--)
        s = (uint8_t)(s + *p++);
    return s;
}

/*
 * The table at gpa: inside the ACPI window, 16-byte aligned, of signature
 * sig, with a valid checksum and nimbus's OEM fields.  Returns a host
 * pointer and its length.
 */
static const uint8_t *table_at(const struct guest_mem *gm, uint64_t gpa, const char *sig,
                               uint32_t *len_out)
{
    assert_true(gpa >= LAYOUT_ACPI_START);
    assert_true(gpa + SDT_HEADER_LEN <= LAYOUT_ACPI_START + LAYOUT_ACPI_SIZE);
    assert_int_equal(gpa % 16, 0);
    const uint8_t *h = gm_ptr(gm, gpa, SDT_HEADER_LEN);
    assert_non_null(h);
    uint32_t len = le32(h + 4);
    assert_true(len >= SDT_HEADER_LEN);
    assert_true(gpa + len <= LAYOUT_ACPI_START + LAYOUT_ACPI_SIZE);
    const uint8_t *t = gm_ptr(gm, gpa, len);
    assert_non_null(t);
    assert_memory_equal(t, sig, 4);
    assert_int_equal(sum(t, len), 0);
    assert_memory_equal(t + 10, "NIMBUS", 6);
    assert_memory_equal(t + 16, "NIMBUSVM", 8);
    assert_memory_equal(t + 28, "NMBS", 4);
    if (len_out)
        *len_out = len;
    return t;
}

static const uint8_t *rsdp_at(const struct guest_mem *gm, uint64_t rsdp)
{
    assert_int_equal(rsdp, LAYOUT_ACPI_START);
    const uint8_t *r = gm_ptr(gm, rsdp, RSDP_LEN);
    assert_non_null(r);
    assert_memory_equal(r, "RSD PTR ", 8);
    assert_int_equal(sum(r, 20), 0);
    assert_int_equal(sum(r, 36), 0);
    assert_int_equal(r[15], 2);
    assert_int_equal(le32(r + 20), 36);
    assert_memory_equal(r + 9, "NIMBUS", 6);
    return r;
}

/* Find the table with signature sig through RSDP -> XSDT (exactly once). */
static const uint8_t *find_table(const struct guest_mem *gm, uint64_t rsdp, const char *sig,
                                 uint32_t *len_out)
{
    const uint8_t *r = rsdp_at(gm, rsdp);
    uint32_t xlen;
    const uint8_t *x = table_at(gm, le64(r + 24), "XSDT", &xlen);
    const uint8_t *found = NULL;
    for (uint32_t off = SDT_HEADER_LEN; off + 8 <= xlen; off += 8) {
        uint64_t gpa = le64(x + off);
        const uint8_t *h = gm_ptr(gm, gpa, 4);
        assert_non_null(h);
        if (memcmp(h, sig, 4) == 0) {
            assert_null(found);
            found = table_at(gm, gpa, sig, len_out);
        }
    }
    return found;
}

/* ---- RSDP / XSDT ----------------------------------------------------------- */

static void test_rsdp_xsdt(void **state)
{
    struct vm_ram *m = *state;
    uint64_t rsdp = build(m, 2, SLEEP_PORT);
    const uint8_t *r = rsdp_at(&m->gm, rsdp);

    assert_int_equal(le32(r + 16), 0); /* no RSDT */
    uint32_t xlen;
    uint64_t xsdt = le64(r + 24);
    const uint8_t *x = table_at(&m->gm, xsdt, "XSDT", &xlen);
    assert_int_equal(x[8], 1);
    assert_int_equal((xlen - SDT_HEADER_LEN) % 8, 0);

    /* Every listed table is valid, listed once, and no two tables overlap. */
    struct {
        uint64_t gpa;
        uint32_t len;
    } seen[16];
    unsigned n = 0, facp = 0, apic = 0;
    seen[n].gpa = rsdp;
    seen[n++].len = RSDP_LEN;
    seen[n].gpa = xsdt;
    seen[n++].len = xlen;
    for (uint32_t off = SDT_HEADER_LEN; off < xlen; off += 8) {
        uint64_t gpa = le64(x + off);
        const uint8_t *h = gm_ptr(&m->gm, gpa, 4);
        assert_non_null(h);
        char sig[5] = {0};
        memcpy(sig, h, 4);
        uint32_t len;
        table_at(&m->gm, gpa, sig, &len);
        facp += strcmp(sig, "FACP") == 0;
        apic += strcmp(sig, "APIC") == 0;
        assert_true(n < 15);
        seen[n].gpa = gpa;
        seen[n++].len = len;
    }
    assert_int_equal(facp, 1);
    assert_int_equal(apic, 1);
    assert_int_equal(n, 4);

    /* The DSDT hangs off the FADT, not the XSDT. */
    uint32_t flen, dlen;
    const uint8_t *f = find_table(&m->gm, rsdp, "FACP", &flen);
    seen[n].gpa = le64(f + FADT_OFF_X_DSDT);
    table_at(&m->gm, seen[n].gpa, "DSDT", &dlen);
    seen[n++].len = dlen;

    for (unsigned i = 0; i < n; i++)
        for (unsigned j = i + 1; j < n; j++)
            assert_true(seen[i].gpa + seen[i].len <= seen[j].gpa ||
                        seen[j].gpa + seen[j].len <= seen[i].gpa);
}

/* ---- FADT ------------------------------------------------------------------ */

static void check_gas_io8(const uint8_t *g, uint16_t port)
{
    assert_int_equal(g[0], 1); /* SystemIO */
    assert_int_equal(g[1], 8); /* bit width */
    assert_int_equal(g[2], 0); /* bit offset */
    assert_int_equal(g[3], 1); /* byte access */
    assert_int_equal(le64(g + 4), port);
}

static void check_fadt(struct vm_ram *m, uint16_t port)
{
    uint64_t rsdp = build(m, 4, port);
    assert_int_equal(rsdp, LAYOUT_ACPI_START);
    uint32_t len;
    const uint8_t *f = find_table(&m->gm, rsdp, "FACP", &len);
    assert_non_null(f);

    assert_int_equal(len, 276);
    assert_int_equal(f[8], 6);
    assert_int_equal(f[FADT_OFF_MINOR_REVISION], 3);

    uint32_t flags = le32(f + FADT_OFF_FLAGS);
    assert_true(flags & (1u << 20));  /* HW_REDUCED_ACPI */
    assert_false(flags & (1u << 10)); /* no RESET_REG_SUP: reboot via the i8042 */
    assert_int_equal(flags & FADT_FLAG_HW_REDUCED_ACPI, 1u << 20);
    static const uint8_t zero[128];
    assert_memory_equal(f + FADT_OFF_RESET_REG, zero, 12);
    assert_int_equal(f[FADT_OFF_RESET_VALUE], 0);

    uint16_t iapc = le16(f + FADT_OFF_IAPC_BOOT_ARCH);
    assert_false(iapc & (1u << 5)); /* CMOS RTC present */
    assert_false(iapc & (1u << 1)); /* no PS/2 devices to probe */
    assert_int_equal(FADT_IAPC_CMOS_RTC_NOT_PRESENT | FADT_IAPC_8042, (1u << 5) | (1u << 1));

    check_gas_io8(f + FADT_OFF_SLEEP_CONTROL, port);
    check_gas_io8(f + FADT_OFF_SLEEP_STATUS, port);

    /* No FACS, no SCI, no fixed PM hardware. */
    assert_int_equal(le32(f + FADT_OFF_FACS), 0);
    assert_int_equal(le64(f + FADT_OFF_X_FACS), 0);
    assert_int_equal(le16(f + FADT_OFF_SCI_INT), 0);
    assert_memory_equal(f + 48, zero, 96 - 48);       /* SMI_CMD .. GPE1_BASE */
    assert_memory_equal(f + 148, zero, 244 - 148);    /* X_PM1a_EVT_BLK .. X_GPE1_BLK */

    /* X_DSDT only (the 32-bit field must then be 0). */
    assert_int_equal(le32(f + FADT_OFF_DSDT), 0);
    table_at(&m->gm, le64(f + FADT_OFF_X_DSDT), "DSDT", NULL);
    assert_memory_equal(f + FADT_OFF_HYPERVISOR_ID, "NIMBUS", 6);
}

static void test_fadt(void **state)
{
    check_fadt(*state, SLEEP_PORT);
    check_fadt(*state, 0xb004);
}

/* ---- MADT ------------------------------------------------------------------ */

/* Enabled, or (hot-pluggable later) online capable and not enabled. */
static uint32_t want_flags(uint32_t id, uint32_t present)
{
    return id < present ? 1u : 2u;
}

static void check_madt(struct vm_ram *m, uint32_t ncpus, uint32_t present)
{
    uint64_t rsdp = build_cpus(m, ncpus, present, SLEEP_PORT);
    assert_int_equal(rsdp, LAYOUT_ACPI_START);
    uint32_t len;
    const uint8_t *t = find_table(&m->gm, rsdp, "APIC", &len);
    assert_non_null(t);
    assert_int_equal(t[8], 5);
    assert_int_equal(le32(t + 36), LAYOUT_LAPIC);
    assert_int_equal(le32(t + 40), 0); /* no PCAT_COMPAT */

    uint8_t *id_seen = calloc(ncpus, 1), *uid_seen = calloc(ncpus, 1);
    assert_non_null(id_seen);
    assert_non_null(uid_seen);
    uint32_t n_lapic = 0, n_x2apic = 0, n_ioapic = 0, n_nmi = 0, n_x2nmi = 0;
    uint8_t ioapic_id = 0;
    int first = 1;
    uint32_t off = MADT_HEADER_LEN;
    while (off < len) {
        const uint8_t *e = t + off;
        assert_true(off + 2 <= len);
        assert_true(e[1] >= 2 && off + e[1] <= len);
        switch (e[0]) {
        case 0: /* Processor Local APIC */
            assert_int_equal(e[1], 8);
            assert_true(e[3] < ncpus && e[3] != 0xff);
            assert_false(id_seen[e[3]]);
            id_seen[e[3]] = 1;
            assert_true(e[2] < ncpus);
            assert_false(uid_seen[e[2]]);
            uid_seen[e[2]] = 1;
            assert_int_equal(le32(e + 4), want_flags(e[3], present));
            if (first)
                assert_int_equal(e[3], 0); /* the BSP comes first */
            n_lapic++;
            break;
        case 9: /* Processor Local x2APIC */
            assert_int_equal(e[1], 16);
            assert_true(le32(e + 4) >= 255 && le32(e + 4) < ncpus);
            assert_false(id_seen[le32(e + 4)]);
            id_seen[le32(e + 4)] = 1;
            assert_true(le32(e + 12) < ncpus);
            assert_false(uid_seen[le32(e + 12)]);
            uid_seen[le32(e + 12)] = 1;
            assert_int_equal(le32(e + 8), want_flags(le32(e + 4), present));
            n_x2apic++;
            break;
        case 1: /* IOAPIC */
            assert_int_equal(e[1], 12);
            assert_int_equal(le32(e + 4), LAYOUT_IOAPIC);
            assert_int_equal(le32(e + 8), 0);
            ioapic_id = e[2];
            n_ioapic++;
            break;
        case 4: /* Local APIC NMI */
            assert_int_equal(e[1], 6);
            assert_int_equal(e[2], 0xff);
            assert_int_equal(e[5], 1);
            n_nmi++;
            break;
        case 10: /* Local x2APIC NMI */
            assert_int_equal(e[1], 12);
            assert_int_equal(le32(e + 4), 0xffffffffu);
            assert_int_equal(e[8], 1);
            n_x2nmi++;
            break;
        default:
            /* Notably no Interrupt Source Override (type 2): see madt.c. */
            fail_msg("unexpected MADT entry type %u at offset %u", e[0], off);
        }
        first = 0;
        off += e[1];
    }
    assert_int_equal(off, len);
    assert_int_equal(n_lapic + n_x2apic, ncpus);
    assert_int_equal(n_lapic, ncpus < 255 ? ncpus : 255);
    assert_int_equal(n_x2apic, ncpus > 255 ? ncpus - 255 : 0);
    for (uint32_t i = 0; i < ncpus; i++)
        assert_true(id_seen[i]);
    assert_int_equal(n_ioapic, 1);
    assert_int_equal(ioapic_id, acpi_ioapic_id(ncpus));
    if (ncpus < 255)
        assert_true(ioapic_id >= ncpus); /* no clash with any LAPIC ID */
    assert_int_equal(n_nmi, 1);
    assert_int_equal(n_x2nmi, ncpus > 255 ? 1 : 0);
    free(id_seen);
    free(uid_seen);
}

static void test_madt(void **state)
{
    static const uint32_t counts[] = {1, 2, 8, 254, 255, 256, 300, 1024, 4096};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
        check_madt(*state, counts[i], counts[i]);
    /* Hot-pluggable vCPUs: listed, not enabled, on both sides of 255. */
    check_madt(*state, 4, 2);
    check_madt(*state, 8, 1);
    check_madt(*state, 300, 254);
    check_madt(*state, 300, 256);
    /* More present than possible: refused. */
    assert_int_equal(build_cpus(*state, 2, 3, SLEEP_PORT), 0);
}

/* ---- failures ---------------------------------------------------------------- */

static void assert_window_untouched(const struct vm_ram *m)
{
    for (uint64_t i = LAYOUT_ACPI_START; i < LAYOUT_ACPI_START + LAYOUT_ACPI_SIZE; i++)
        if (m->ram[i] != 0xaa)
            fail_msg("guest byte 0x%llx modified by a failed build", (unsigned long long)i);
}

static void test_build_failures(void **state)
{
    struct vm_ram *m = *state;

    /* 9000 x2APIC entries alone need ~137 KiB, more than the 128 KiB window. */
    assert_int_equal(build(m, 9000, SLEEP_PORT), 0);
    assert_window_untouched(m);
    assert_int_equal(build(m, UINT32_MAX, SLEEP_PORT), 0);
    assert_window_untouched(m);
    assert_int_equal(build(m, 0, SLEEP_PORT), 0);
    assert_window_untouched(m);
    assert_int_equal(build(m, 1, 0), 0); /* no sleep port */
    assert_window_untouched(m);

    struct acpi_legacy_dev bad = {"PNP0501", "com1", 0x3f8, 8, 4};
    struct acpi_config cfg = {.ncpus = 1, .sleep_port = SLEEP_PORT, .devs = &bad, .ndevs = 1};
    memset(m->ram, 0xaa, RAM_SIZE);
    assert_int_equal(acpi_build(&m->gm, &cfg), 0);
    assert_window_untouched(m);

    /* RAM that ends below the ACPI window. */
    struct guest_mem small;
    assert_int_equal(gm_wrap(&small, m->ram, 512 << 10), 0);
    cfg.devs = std_devs;
    assert_int_equal(acpi_build(&small, &cfg), 0);
    assert_int_equal(acpi_build(NULL, &cfg), 0);
    assert_int_equal(acpi_build(&m->gm, NULL), 0);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *s = NULL;
    size_t n = 0, cap = 0;
    int c;
    while ((c = fgetc(f)) != EOF) {
        if (n + 2 > cap) {
            cap = cap ? cap * 2 : 4096;
            char *t = realloc(s, cap);
            if (!t) {
                free(s);
                fclose(f);
                return NULL;
            }
            s = t;
        }
        s[n++] = (char)c;
    }
    fclose(f);
    if (!s)
        s = calloc(1, 1);
    else
        s[n] = 0;
    return s;
}

/* ---- DSDT bytes ------------------------------------------------------------- */

/* The DSDT nimbus builds for a machine without PCI: legacy devices and the GED. */
static size_t std_dsdt(uint8_t *buf, size_t cap)
{
    struct acpi_config cfg = {.ncpus = 1,
                              .sleep_port = SLEEP_PORT,
                              .devs = std_devs,
                              .ndevs = sizeof(std_devs) / sizeof(std_devs[0]),
                              .ged_port = LAYOUT_PORT_ACPI_GED,
                              .ged_gsi = LAYOUT_GED_IRQ};
    return acpi_build_dsdt(&cfg, buf, cap);
}

#define assert_contains(hay, hlen, ...)                                                      \
    do {                                                                                     \
        static const uint8_t needle_[] = {__VA_ARGS__};                                      \
        if (!memmem((hay), (hlen), needle_, sizeof(needle_)))                                \
            fail_msg("byte sequence %s not found", #__VA_ARGS__);                            \
    } while (0)

static void test_dsdt_bytes(void **state)
{
    (void)state;
    uint8_t buf[4096];
    size_t len = std_dsdt(buf, sizeof(buf));
    assert_true(len > SDT_HEADER_LEN);
    assert_memory_equal(buf, "DSDT", 4);
    assert_int_equal(le32(buf + 4), len);
    assert_int_equal(buf[8], 2);
    assert_int_equal(sum(buf, len), 0);

    /* Name (\_S5_, Package (4) {5, 0, 0, 0}) */
    assert_contains(buf, len, 0x08, '_', 'S', '5', '_', 0x12, 0x07, 0x04, 0x0a, 0x05, 0x00,
                    0x00, 0x00);
    /* Device (COM1) / Device (RTC_) */
    assert_contains(buf, len, 0x5b, 0x82);
    assert_true(memmem(buf, len, "COM1", 4) != NULL);
    assert_true(memmem(buf, len, "RTC_", 4) != NULL);
    /* Name (_HID, EisaId ("PNP0501")) and EisaId ("PNP0B00") */
    assert_contains(buf, len, 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x05, 0x01);
    assert_contains(buf, len, 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0b, 0x00);
    /* IO (Decode16, 0x3F8, 0x3F8, 1, 8) IRQNoFlags () {4} */
    assert_contains(buf, len, 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08, 0x22, 0x10, 0x00,
                    0x79, 0x00);
    /* IO (Decode16, 0x70, 0x70, 1, 2) IRQNoFlags () {8} */
    assert_contains(buf, len, 0x47, 0x01, 0x70, 0x00, 0x70, 0x00, 0x01, 0x02, 0x22, 0x00, 0x01,
                    0x79, 0x00);
    /* Method (_STA, 0, NotSerialized) { Return (0x0F) } */
    assert_contains(buf, len, 0x14, 0x09, '_', 'S', 'T', 'A', 0x00, 0xa4, 0x0a, 0x0f);

    /* Device (GED_) { Name (_HID, "ACPI0013") Name (_UID, Zero) */
    assert_contains(buf, len, 'G', 'E', 'D', '_', 0x08, '_', 'H', 'I', 'D', 0x0d, 'A', 'C', 'P',
                    'I', '0', '0', '1', '3', 0x00, 0x08, '_', 'U', 'I', 'D', 0x00);
    /* Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive) {5} only, then End Tag */
    assert_contains(buf, len, 0x08, '_', 'C', 'R', 'S', 0x11, 0x0e, 0x0a, 0x0b, 0x89, 0x06, 0x00,
                    0x01, 0x01, LAYOUT_GED_IRQ, 0x00, 0x00, 0x00, 0x79, 0x00);
    /* OperationRegion (GDST, SystemIO, 0x0601, One) */
    assert_contains(buf, len, 0x5b, 0x80, 'G', 'D', 'S', 'T', 0x01, 0x0b,
                    LAYOUT_PORT_ACPI_GED & 0xff, LAYOUT_PORT_ACPI_GED >> 8, 0x01);
    /* Field (GDST, ByteAcc, NoLock, WriteAsZeros) { GDAT, 8 } */
    assert_contains(buf, len, 0x5b, 0x81, 0x0b, 'G', 'D', 'S', 'T', 0x41, 'G', 'D', 'A', 'T', 0x08);
    /* Method (_EVT, 1, Serialized) { Local0 = GDAT
     *   If ((Local0 & One)) { Notify (PWRB, 0x80) } } */
    assert_contains(buf, len, 0x14, 0x19, '_', 'E', 'V', 'T', 0x09, 0x70, 'G', 'D', 'A', 'T', 0x60,
                    0xa0, 0x0c, 0x7b, 0x60, 0x01, 0x00, 0x86, 'P', 'W', 'R', 'B', 0x0a, 0x80);
    /* Device (PWRB) { Name (_HID, EisaId ("PNP0C0C")) Name (_UID, Zero) } */
    assert_contains(buf, len, 0x5b, 0x82, 0x15, 'P', 'W', 'R', 'B', 0x08, '_', 'H', 'I', 'D', 0x0c,
                    0x41, 0xd0, 0x0c, 0x0c, 0x08, '_', 'U', 'I', 'D', 0x00);
}

static size_t ged_dsdt(uint16_t port, uint32_t gsi, const struct acpi_legacy_dev *devs,
                       unsigned ndevs, uint8_t *buf, size_t cap)
{
    struct acpi_config cfg = {.ncpus = 1,
                              .sleep_port = SLEEP_PORT,
                              .devs = devs,
                              .ndevs = ndevs,
                              .ged_port = port,
                              .ged_gsi = gsi};
    return acpi_build_dsdt(&cfg, buf, cap);
}

static void test_dsdt_ged(void **state)
{
    (void)state;
    uint8_t buf[4096];

    /* Port and GSI both 0: no GED and no power button. */
    size_t len = ged_dsdt(0, 0, std_devs, 2, buf, sizeof(buf));
    assert_true(len > 0);
    assert_null(memmem(buf, len, "GED_", 4));
    assert_null(memmem(buf, len, "PWRB", 4));
    assert_null(memmem(buf, len, "_EVT", 4));

    /* One without the other is a mistake, not "none". */
    assert_int_equal(ged_dsdt(0x601, 0, std_devs, 2, buf, sizeof(buf)), 0);
    assert_int_equal(ged_dsdt(0, 5, std_devs, 2, buf, sizeof(buf)), 0);

    /* A legacy device cannot take either name ("GED" pads to GED_). */
    const struct acpi_legacy_dev ged = {"PNP0501", "GED", 0x3f8, 8, 4};
    const struct acpi_legacy_dev pwrb = {"PNP0501", "PWRB", 0x3f8, 8, 4};
    assert_int_equal(ged_dsdt(0x601, 5, &ged, 1, buf, sizeof(buf)), 0);
    assert_int_equal(ged_dsdt(0x601, 5, &pwrb, 1, buf, sizeof(buf)), 0);
    /* ...which are free without a GED. */
    assert_true(ged_dsdt(0, 0, &pwrb, 1, buf, sizeof(buf)) > 0);

    /* A port at the top of the I/O space, a GSI beyond the ISA range. */
    len = ged_dsdt(0xffff, 23, NULL, 0, buf, sizeof(buf));
    assert_true(len > 0);
    assert_contains(buf, len, 0x5b, 0x80, 'G', 'D', 'S', 'T', 0x01, 0x0b, 0xff, 0xff, 0x01);
    assert_contains(buf, len, 0x89, 0x06, 0x00, 0x01, 0x01, 23, 0x00, 0x00, 0x00);

    /* _UIDs stay unique when a legacy device shares the button's _HID. */
    const struct acpi_legacy_dev btn = {"PNP0C0C", "PBT0", 0, 0, 0xff};
    len = ged_dsdt(0x601, 5, &btn, 1, buf, sizeof(buf));
    assert_true(len > 0);
    const uint8_t *p = memmem(buf, len, "PWRB", 4);
    assert_non_null(p);
    assert_non_null(memmem(p, len - (size_t)(p - buf), "_UID\x01", 5));
}

static void test_dsdt_short_buffers(void **state)
{
    (void)state;
    uint8_t ref[4096];
    size_t len = std_dsdt(ref, sizeof(ref));
    assert_true(len > 0);
    /* Every shorter buffer fails cleanly; an exact one succeeds (ASan checks bounds). */
    for (size_t cap = 0; cap <= len; cap++) {
        uint8_t *b = malloc(cap ? cap : 1);
        assert_non_null(b);
        size_t got = std_dsdt(b, cap);
        if (cap < len) {
            assert_int_equal(got, 0);
        } else {
            assert_int_equal(got, len);
            assert_memory_equal(b, ref, len);
        }
        free(b);
    }
    assert_int_equal(std_dsdt(NULL, 4096), 0);
}

static size_t one_dev_dsdt(struct acpi_legacy_dev d, uint8_t *buf, size_t cap)
{
    struct acpi_config cfg = {.ncpus = 1, .sleep_port = SLEEP_PORT, .devs = &d, .ndevs = 1};
    return acpi_build_dsdt(&cfg, buf, cap);
}

static void test_dsdt_devices(void **state)
{
    (void)state;
    uint8_t buf[4096];
    size_t len;

    /* Rejected descriptions; the error names the offending value. */
    char logpath[] = "/tmp/nimbus-acpi-log-XXXXXX";
    int fd = mkstemp(logpath);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(log_set_file(logpath), 0);
    assert_int_equal(one_dev_dsdt((struct acpi_legacy_dev){"PNP0501", "com1", 0x3f8, 8, 4}, buf,
                                  sizeof(buf)),
                     0);
    assert_int_equal(one_dev_dsdt((struct acpi_legacy_dev){"PNPX501", "COM1", 0x3f8, 8, 4}, buf,
                                  sizeof(buf)),
                     0);
    assert_int_equal(log_set_file("/dev/stderr"), 0);
    char *log = read_file(logpath);
    unlink(logpath);
    assert_non_null(log);
    assert_non_null(strstr(log, "\"com1\""));
    assert_non_null(strstr(log, "\"PNPX501\""));
    free(log);
    assert_int_equal(one_dev_dsdt((struct acpi_legacy_dev){"PNP0501", "COM12", 0x3f8, 8, 4}, buf,
                                  sizeof(buf)),
                     0);
    assert_int_equal(one_dev_dsdt((struct acpi_legacy_dev){"PNP0501", "1COM", 0x3f8, 8, 4}, buf,
                                  sizeof(buf)),
                     0);
    assert_int_equal(one_dev_dsdt((struct acpi_legacy_dev){"PNP0501", "A.B", 0x3f8, 8, 4}, buf,
                                  sizeof(buf)),
                     0);
    assert_int_equal(one_dev_dsdt((struct acpi_legacy_dev){"PNP0501", NULL, 0x3f8, 8, 4}, buf,
                                  sizeof(buf)),
                     0);
    assert_int_equal(one_dev_dsdt((struct acpi_legacy_dev){"PNP05", "COM1", 0x3f8, 8, 4}, buf,
                                  sizeof(buf)),
                     0);
    assert_int_equal(one_dev_dsdt((struct acpi_legacy_dev){"pnp0501x", "COM1", 0x3f8, 8, 4}, buf,
                                  sizeof(buf)),
                     0);
    assert_int_equal(one_dev_dsdt((struct acpi_legacy_dev){NULL, "COM1", 0x3f8, 8, 4}, buf,
                                  sizeof(buf)),
                     0);
    assert_int_equal(one_dev_dsdt((struct acpi_legacy_dev){"PNP0501", "COM1", 0x3f8, 256, 4}, buf,
                                  sizeof(buf)),
                     0);
    assert_int_equal(one_dev_dsdt((struct acpi_legacy_dev){"PNP0501", "COM1", 0xfffe, 8, 4}, buf,
                                  sizeof(buf)),
                     0);

    /* Two devices whose names pad to the same segment. */
    struct acpi_legacy_dev dup[2] = {{"PNP0B00", "RTC", 0x70, 2, 8}, {"PNP0B00", "RTC_", 0x72, 2, 8}};
    struct acpi_config cfg = {.ncpus = 1, .sleep_port = SLEEP_PORT, .devs = dup, .ndevs = 2};
    assert_int_equal(acpi_build_dsdt(&cfg, buf, sizeof(buf)), 0);
    cfg.devs = NULL;
    assert_int_equal(acpi_build_dsdt(&cfg, buf, sizeof(buf)), 0);
    assert_int_equal(acpi_build_dsdt(NULL, buf, sizeof(buf)), 0);

    /* No IRQ (0xff) and no ports: _CRS is just the End Tag. */
    len = one_dev_dsdt((struct acpi_legacy_dev){"PNP0C02", "RES0", 0, 0, 0xff}, buf, sizeof(buf));
    assert_true(len > 0);
    assert_contains(buf, len, 0x08, '_', 'C', 'R', 'S', 0x11, 0x05, 0x0a, 0x02, 0x79, 0x00);

    /* An ACPI-style ID is a string _HID; an IRQ above 15 an extended descriptor. */
    len = one_dev_dsdt((struct acpi_legacy_dev){"NMBS0001", "NMB0", 0x510, 4, 20}, buf,
                       sizeof(buf));
    assert_true(len > 0);
    assert_contains(buf, len, 0x08, '_', 'H', 'I', 'D', 0x0d, 'N', 'M', 'B', 'S', '0', '0', '0',
                    '1', 0x00);
    assert_contains(buf, len, 0x89, 0x06, 0x00, 0x03, 0x01, 20, 0x00, 0x00, 0x00);

    /* _UIDs count per _HID: COM1 0, COM2 1, RTC 0. */
    struct acpi_legacy_dev three[3] = {{"PNP0501", "COM1", 0x3f8, 8, 4},
                                       {"PNP0501", "COM2", 0x2f8, 8, 3},
                                       {"PNP0B00", "RTC_", 0x70, 2, 8}};
    cfg.devs = three;
    cfg.ndevs = 3;
    len = acpi_build_dsdt(&cfg, buf, sizeof(buf));
    assert_true(len > 0);
    const uint8_t *com2 = memmem(buf, len, "COM2", 4);
    const uint8_t *rtc = memmem(buf, len, "RTC_", 4);
    assert_non_null(com2);
    assert_non_null(rtc);
    assert_non_null(memmem(com2, (size_t)(rtc - com2), "_UID\x01", 5));
    assert_non_null(memmem(rtc, len - (size_t)(rtc - buf), "_UID\x00", 5));
}

/* ---- AML encoder ------------------------------------------------------------- */

static size_t aml_name_bytes(const char *path, uint8_t *out, size_t cap)
{
    struct aml a;
    aml_init(&a, out, cap);
    aml_namepath(&a, path);
    return aml_finish(&a);
}

static void test_aml_names(void **state)
{
    (void)state;
    uint8_t b[64];

    assert_int_equal(aml_name_bytes("\\_SB_.PCI0", b, sizeof(b)), 10);
    assert_memory_equal(b, "\\\x2e_SB_PCI0", 10);
    assert_int_equal(aml_name_bytes("_SB.PCI0.ISA", b, sizeof(b)), 14);
    assert_memory_equal(b, "\x2f\x03_SB_PCI0ISA_", 14);
    assert_int_equal(aml_name_bytes("^^FOO", b, sizeof(b)), 6);
    assert_memory_equal(b, "^^FOO_", 6);
    assert_int_equal(aml_name_bytes("A", b, sizeof(b)), 4);
    assert_memory_equal(b, "A___", 4);
    assert_int_equal(aml_name_bytes("\\", b, sizeof(b)), 2);
    assert_memory_equal(b, "\\\x00", 2);

    static const char *const bad[] = {"", "^", "1ABC", "ABCDE", "a", "A..B", "A.", ".A", "\\^A",
                                      "A-B", "_SB.PCI0 "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(aml_name_valid(bad[i]));
        assert_int_equal(aml_name_bytes(bad[i], b, sizeof(b)), 0);
    }
    assert_false(aml_name_valid(NULL));
    /* Too small a buffer. */
    assert_int_equal(aml_name_bytes("\\_SB_.PCI0", b, 9), 0);
}

static void test_aml_integers(void **state)
{
    (void)state;
    static const struct {
        uint64_t v;
        size_t n;
        uint8_t bytes[9];
    } cases[] = {
        {0, 1, {0x00}},
        {1, 1, {0x01}},
        {2, 2, {0x0a, 0x02}},
        {0xff, 2, {0x0a, 0xff}},
        {0x100, 3, {0x0b, 0x00, 0x01}},
        {0x12345678, 5, {0x0c, 0x78, 0x56, 0x34, 0x12}},
        {0x100000000ull, 9, {0x0e, 0, 0, 0, 0, 1, 0, 0, 0}},
        {UINT64_MAX, 9, {0x0e, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t b[16];
        struct aml a;
        aml_init(&a, b, sizeof(b));
        aml_integer(&a, cases[i].v);
        assert_int_equal(aml_finish(&a), cases[i].n);
        assert_memory_equal(b, cases[i].bytes, cases[i].n);
    }

    uint32_t v;
    assert_true(aml_eisaid_value("PNP0A03", &v));
    assert_int_equal(v, 0x030ad041u);
    assert_true(aml_eisaid_value("PNP0b00", &v));
    assert_int_equal(v, 0x000bd041u);
    assert_false(aml_eisaid_value("PNP0A0", &v));
    assert_false(aml_eisaid_value("pNP0A03", &v));
    assert_false(aml_eisaid_value("PNP0A0G", &v));
    assert_false(aml_eisaid_value(NULL, &v));
}

/* Decode a PkgLength; returns its size in bytes. */
static size_t pkglen(const uint8_t *p, uint32_t *value)
{
    size_t follow = p[0] >> 6;
    if (!follow) {
        *value = p[0] & 0x3f;
        return 1;
    }
    uint32_t v = p[0] & 0x0f;
    for (size_t i = 0; i < follow; i++)
        v |= (uint32_t)p[1 + i] << (4 + 8 * i);
    *value = v;
    return 1 + follow;
}

static void test_aml_pkglength(void **state)
{
    (void)state;
    static uint8_t b[8192];
    static uint8_t payload[5000];
    struct aml a;
    uint32_t v;

    /* 20 WordConsts: body 1 + 60 bytes, PkgLength 62 fits one byte. */
    aml_init(&a, b, sizeof(b));
    aml_package(&a);
    for (int i = 0; i < 20; i++)
        aml_integer(&a, 0x1234);
    aml_end(&a);
    assert_int_equal(aml_finish(&a), 63);
    assert_int_equal(b[0], 0x12);
    assert_int_equal(b[1], 62);
    assert_int_equal(b[2], 20);

    /* 21: body 64 bytes, the PkgLength grows to two bytes (66 = 0x42). */
    aml_init(&a, b, sizeof(b));
    aml_package(&a);
    for (int i = 0; i < 21; i++)
        aml_integer(&a, 0x1234);
    aml_end(&a);
    assert_int_equal(aml_finish(&a), 67);
    assert_int_equal(b[1], 0x42);
    assert_int_equal(b[2], 0x04);
    assert_int_equal(b[3], 21);

    /* A 5000-byte buffer: three-byte PkgLength, WordConst BufferSize. */
    memset(payload, 0x5a, sizeof(payload));
    aml_init(&a, b, sizeof(b));
    aml_buffer(&a);
    aml_bytes(&a, payload, sizeof(payload));
    aml_end(&a);
    size_t n = aml_finish(&a);
    assert_int_equal(b[0], 0x11);
    size_t pl = pkglen(b + 1, &v);
    assert_int_equal(pl, 3);
    assert_int_equal(v, n - 1);
    assert_int_equal(b[1 + pl], 0x0b);
    assert_int_equal(le16(b + 2 + pl), 5000);
    assert_int_equal(n, 1 + pl + 3 + 5000);
    assert_memory_equal(b + 1 + pl + 3, payload, 5000);

    /* Nested package element counts. */
    aml_init(&a, b, sizeof(b));
    aml_package(&a);
    aml_integer(&a, 1);
    aml_package(&a);
    aml_integer(&a, 2);
    aml_integer(&a, 3);
    aml_end(&a);
    aml_string(&a, "s");
    aml_namepath(&a, "\\_SB_");
    aml_end(&a);
    n = aml_finish(&a);
    static const uint8_t nested[] = {0x12, 0x12, 0x04, 0x01, 0x12, 0x06, 0x02, 0x0a, 0x02,
                                     0x0a, 0x03, 0x0d, 's',  0x00, '\\', '_',  'S',  'B',  '_'};
    assert_int_equal(n, sizeof(nested));
    assert_memory_equal(b, nested, sizeof(nested));
}

static void test_aml_errors(void **state)
{
    (void)state;
    uint8_t b[1024];
    struct aml a;

    aml_init(&a, b, sizeof(b));
    aml_end(&a); /* nothing open */
    assert_int_equal(aml_finish(&a), 0);

    aml_init(&a, b, sizeof(b));
    aml_scope(&a, "\\_SB_"); /* never closed */
    assert_int_equal(aml_finish(&a), 0);

    aml_init(&a, b, sizeof(b));
    aml_res_io(&a, 0x60, 0x60, 1, 1); /* outside a ResourceTemplate */
    assert_int_equal(aml_finish(&a), 0);

    aml_init(&a, b, sizeof(b));
    aml_package(&a);
    for (int i = 0; i < 256; i++)
        aml_integer(&a, 0);
    aml_end(&a);
    assert_int_equal(aml_finish(&a), 0);

    aml_init(&a, b, sizeof(b));
    for (int i = 0; i <= AML_MAX_DEPTH; i++)
        aml_package(&a);
    for (int i = 0; i <= AML_MAX_DEPTH; i++)
        aml_end(&a);
    assert_int_equal(aml_finish(&a), 0);

    aml_init(&a, b, sizeof(b));
    aml_method(&a, "_STA", 8, false); /* at most 7 arguments */
    aml_end(&a);
    assert_int_equal(aml_finish(&a), 0);

    aml_init(&a, b, sizeof(b));
    aml_string(&a, "caf\xc3\xa9"); /* not 7-bit ASCII */
    assert_int_equal(aml_finish(&a), 0);

    aml_init(&a, b, sizeof(b));
    aml_restemplate(&a);
    aml_res_irq_noflags(&a, 16);
    aml_end(&a);
    assert_int_equal(aml_finish(&a), 0);

    aml_init(&a, b, sizeof(b));
    aml_restemplate(&a);
    aml_res_word_io(&a, 0x2000, 0x1000); /* max < min */
    aml_end(&a);
    assert_int_equal(aml_finish(&a), 0);

    aml_init(&a, b, sizeof(b));
    aml_restemplate(&a);
    aml_res_qword_memory(&a, 0, UINT64_MAX, false); /* length overflows */
    aml_end(&a);
    assert_int_equal(aml_finish(&a), 0);

    /* Sticky: a later valid object does not clear the error. */
    aml_init(&a, b, sizeof(b));
    aml_eisaid(&a, "bad");
    aml_integer(&a, 5);
    assert_int_equal(aml_finish(&a), 0);

    /* Running out of room while closing (BufferSize insertion); exact fits work. */
    for (size_t cap = 0; cap < 16; cap++) {
        aml_init(&a, b, cap);
        aml_restemplate(&a);
        aml_end(&a);
        assert_int_equal(aml_finish(&a), cap >= 6 ? 6 : 0);
        if (cap >= 6)
            assert_memory_equal(b, "\x11\x05\x0a\x02\x79\x00", 6);
    }
    /* Operation regions: empty, wrapping, beyond the I/O space, unknown space. */
    static const struct {
        unsigned space;
        uint64_t off, len;
    } regions[] = {{AML_REGION_SYSTEM_IO, 0x600, 0},
                   {AML_REGION_SYSTEM_MEMORY, UINT64_MAX, 2},
                   {AML_REGION_SYSTEM_IO, 0xffff, 2},
                   {AML_REGION_SYSTEM_IO, 0x10000, 1},
                   {2, 0, 1}};
    for (size_t i = 0; i < sizeof(regions) / sizeof(regions[0]); i++) {
        aml_init(&a, b, sizeof(b));
        aml_operation_region(&a, "R", (enum aml_region_space)regions[i].space, regions[i].off,
                             regions[i].len);
        if (aml_finish(&a) != 0)
            fail_msg("operation region #%zu accepted", i);
    }
    aml_init(&a, b, sizeof(b));
    aml_operation_region(&a, "R", AML_REGION_SYSTEM_IO, 0xffff, 1);
    assert_int_equal(aml_finish(&a), 11);
    aml_init(&a, b, sizeof(b));
    aml_operation_region(&a, "1R", AML_REGION_SYSTEM_IO, 0x600, 1);
    assert_int_equal(aml_finish(&a), 0);

    /* Field flags: access type 6+, update rule 3, reserved bit 7. */
    static const uint8_t bad_flags[] = {0x06, 0x0f, 0x60, 0x80};
    for (size_t i = 0; i < sizeof(bad_flags) / sizeof(bad_flags[0]); i++) {
        aml_init(&a, b, sizeof(b));
        aml_field(&a, "R", bad_flags[i]);
        aml_end(&a);
        assert_int_equal(aml_finish(&a), 0);
    }
    /* Field units: only inside a Field, 1..2^28-1 bits, one plain NameSeg. */
    aml_init(&a, b, sizeof(b));
    aml_field_unit(&a, "F", 8);
    assert_int_equal(aml_finish(&a), 0);
    aml_init(&a, b, sizeof(b));
    aml_method(&a, "M", 0, false);
    aml_field_unit(&a, "F", 8);
    aml_end(&a);
    assert_int_equal(aml_finish(&a), 0);
    static const struct {
        const char *name;
        uint32_t bits;
    } units[] = {{"F", 0}, {"F", 1u << 28}, {"ABCDE", 8}, {"\\ABC", 8}, {"^ABC", 8},
                 {"A.B", 8}, {"", 8}, {NULL, 8}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        aml_init(&a, b, sizeof(b));
        aml_field(&a, "R", AML_FIELD_BYTE_ACC);
        aml_field_unit(&a, units[i].name, units[i].bits);
        aml_end(&a);
        if (aml_finish(&a) != 0)
            fail_msg("field unit #%zu accepted", i);
    }
    /* An If left open. */
    aml_init(&a, b, sizeof(b));
    aml_method(&a, "M", 0, false);
    aml_if(&a);
    aml_integer(&a, 1);
    aml_end(&a);
    assert_int_equal(aml_finish(&a), 0);

    aml_init(&a, b, sizeof(b));
    aml_arg(&a, 7);
    assert_int_equal(aml_finish(&a), 0);
    aml_init(&a, b, sizeof(b));
    aml_local(&a, 8);
    assert_int_equal(aml_finish(&a), 0);
    aml_init(&a, NULL, 100);
    aml_integer(&a, 1);
    assert_int_equal(aml_finish(&a), 0);
}

/*
 * Scope (\_SB) { OperationRegion (REG0, SystemMemory, 0x100000000, 0x1000)
 *   Field (REG0, DWordAcc, Lock, Preserve) { A, 32, BIG, 4096 }
 *   Device (DEV0) { Name (_ADR, Zero) }
 *   Method (TEST, 1) { Local1 = A; If ((Local1 & Arg0)) { Notify (DEV0, 0x02) } } }
 */
static size_t ops_aml(uint8_t *b, size_t cap)
{
    struct aml a;
    aml_init(&a, b, cap);
    aml_scope(&a, "\\_SB_");
    aml_operation_region(&a, "REG0", AML_REGION_SYSTEM_MEMORY, 0x100000000ull, 0x1000);
    aml_field(&a, "REG0", AML_FIELD_DWORD_ACC | AML_FIELD_LOCK | AML_FIELD_PRESERVE);
    aml_field_unit(&a, "A", 32);
    aml_field_unit(&a, "BIG", 4096);
    aml_end(&a);
    aml_device(&a, "DEV0");
    aml_name(&a, "_ADR");
    aml_integer(&a, 0);
    aml_end(&a);
    aml_method(&a, "TEST", 1, false);
    aml_store(&a);
    aml_namepath(&a, "A");
    aml_local(&a, 1);
    aml_if(&a);
    aml_and(&a);
    aml_local(&a, 1);
    aml_arg(&a, 0);
    aml_null_target(&a);
    aml_notify(&a);
    aml_namepath(&a, "DEV0");
    aml_integer(&a, 2);
    aml_end(&a);
    aml_end(&a);
    aml_end(&a);
    return aml_finish(&a);
}

/* Mutex/Acquire/Release and a While loop, byte for byte as iasl emits them. */
static void test_aml_loop_ops(void **state)
{
    (void)state;
    uint8_t b[64];
    struct aml a;
    aml_init(&a, b, sizeof(b));
    aml_mutex(&a, "LOCK", 0);
    aml_method(&a, "M", 1, false);
    aml_acquire(&a, "LOCK", 0xffff);
    aml_while(&a);
    aml_lless(&a);
    aml_local(&a, 0);
    aml_integer(&a, 4);
    aml_if(&a);
    aml_lequal(&a);
    aml_arg(&a, 0);
    aml_local(&a, 0);
    aml_end(&a);
    aml_end(&a);
    aml_release(&a, "LOCK");
    aml_end(&a);
    size_t n = aml_finish(&a);
    static const uint8_t want[] = {
        0x5b, 0x01, 'L', 'O', 'C', 'K', 0x00,
        0x14, 0x1f, 'M', '_', '_', '_', 0x01,
        0x5b, 0x23, 'L', 'O', 'C', 'K', 0xff, 0xff,
        0xa2, 0x0a, 0x95, 0x60, 0x0a, 0x04,
        0xa0, 0x04, 0x93, 0x68, 0x60,
        0x5b, 0x27, 'L', 'O', 'C', 'K',
    };
    assert_int_equal(n, sizeof(want));
    assert_memory_equal(b, want, sizeof(want));
    /* A sync level above 15 does not exist. */
    aml_init(&a, b, sizeof(b));
    aml_mutex(&a, "LOCK", 16);
    assert_int_equal(aml_finish(&a), 0);
}

static void test_aml_ops(void **state)
{
    (void)state;
    uint8_t b[256];
    size_t n = ops_aml(b, sizeof(b));
    static const uint8_t want[] = {
        0x10, 0x45, 0x05, '\\', '_', 'S', 'B', '_',
        /* OperationRegion: space 0, QWordConst offset, WordConst length */
        0x5b, 0x80, 'R', 'E', 'G', '0', 0x00, 0x0e, 0, 0, 0, 0, 1, 0, 0, 0, 0x0b, 0x00, 0x10,
        /* Field: flags DWordAcc|Lock; 4096 bits need a three-byte PkgLength */
        0x5b, 0x81, 0x12, 'R', 'E', 'G', '0', 0x13, 'A', '_', '_', '_', 0x20, 'B', 'I', 'G', '_',
        0x80, 0x00, 0x01,
        0x5b, 0x82, 0x0b, 'D', 'E', 'V', '0', 0x08, '_', 'A', 'D', 'R', 0x00,
        0x14, 0x19, 'T', 'E', 'S', 'T', 0x01,
        0x70, 'A', '_', '_', '_', 0x61,
        0xa0, 0x0c, 0x7b, 0x61, 0x68, 0x00, 0x86, 'D', 'E', 'V', '0', 0x0a, 0x02,
    };
    assert_int_equal(n, sizeof(want));
    assert_memory_equal(b, want, sizeof(want));
    /* Exact room works, one byte less fails (the Field's PkgLength is sized on close). */
    for (size_t cap = 0; cap <= n; cap++)
        assert_int_equal(ops_aml(b, cap), cap == n ? n : 0);

    /* Every field unit width encodes as a PkgLength of the bit count. */
    static const struct {
        uint32_t bits;
        size_t n;
        uint8_t enc[4];
    } widths[] = {{1, 1, {0x01}},
                  {0x3f, 1, {0x3f}},
                  {0x40, 2, {0x40, 0x04}},
                  {0xfff, 2, {0x4f, 0xff}},
                  {0xfffff, 3, {0x8f, 0xff, 0xff}},
                  {0xfffffff, 4, {0xcf, 0xff, 0xff, 0xff}}};
    for (size_t i = 0; i < sizeof(widths) / sizeof(widths[0]); i++) {
        struct aml a;
        aml_init(&a, b, sizeof(b));
        aml_field(&a, "R", AML_FIELD_ANY_ACC);
        aml_field_unit(&a, "F", widths[i].bits);
        aml_end(&a);
        n = aml_finish(&a);
        /* FieldOp, PkgLength (1 byte), region, flags, NameSeg, width */
        assert_int_equal(n, 2 + 1 + 4 + 1 + 4 + widths[i].n);
        assert_memory_equal(b + 12, widths[i].enc, widths[i].n);
    }
}

/* ---- iasl ---------------------------------------------------------------------- */

static int have_iasl(void)
{
    return system("command -v iasl >/dev/null 2>&1") == 0;
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

struct tmpdir {
    char path[64];
};

/* The current test's scratch directory (static: teardown removes it even after a failure). */
static struct tmpdir g_dir;
static int g_dir_live;

static struct tmpdir *tmpdir_make(void)
{
    snprintf(g_dir.path, sizeof(g_dir.path), "/tmp/nimbus-acpi-XXXXXX");
    assert_non_null(mkdtemp(g_dir.path));
    g_dir_live = 1;
    return &g_dir;
}

static void tmpdir_remove(struct tmpdir *d)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->path);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", d->path);
    g_dir_live = 0;
}

static int tmpdir_teardown(void **state)
{
    (void)state;
    if (g_dir_live)
        tmpdir_remove(&g_dir);
    return 0;
}

static int ram_tmpdir_teardown(void **state)
{
    tmpdir_teardown(state);
    return ram_teardown(state);
}

/*
 * Run `iasl <args>` inside dir; assert exit status 0 and no "Error" in its
 * output.  Returns the output (caller frees).
 */
static char *run_iasl(const struct tmpdir *d, const char *args)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "cd '%s' && iasl %s >iasl.log 2>&1", d->path, args);
    int st = system(cmd);
    char logpath[128];
    snprintf(logpath, sizeof(logpath), "%s/iasl.log", d->path);
    char *out = read_file(logpath);
    assert_non_null(out);
    /* The compiler's summary says "0 Errors"; any other "Error" is one. */
    const char *err = strstr(out, "Error");
    while (err && err >= out + 2 && memcmp(err - 2, "0 Errors", 8) == 0)
        err = strstr(err + 1, "Error");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || err)
        fail_msg("iasl %s failed (status %d):\n%s", args, st, out);
    return out;
}

static char *read_in(const struct tmpdir *d, const char *name)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", d->path, name);
    char *s = read_file(path);
    if (!s)
        fail_msg("%s was not produced", path);
    return s;
}

static void assert_has(const char *text, const char *what, const char *file)
{
    if (!strstr(text, what))
        fail_msg("%s does not contain \"%s\":\n%s", file, what, text);
}

static void test_iasl_dsdt(void **state)
{
    (void)state;
    if (!have_iasl()) {
        print_message("iasl not installed (apt-get install acpica-tools): skipping\n");
        skip();
    }
    uint8_t dsdt[4096];
    size_t len = std_dsdt(dsdt, sizeof(dsdt));
    assert_true(len > 0);

    struct tmpdir *d = tmpdir_make();
    char path[128];
    snprintf(path, sizeof(path), "%s/dsdt.dat", d->path);
    write_file(path, dsdt, len);
    free(run_iasl(d, "-d dsdt.dat"));

    char *dsl = read_in(d, "dsdt.dsl");
    assert_has(dsl, "Name (_S5, Package (0x04)", "dsdt.dsl");
    assert_has(dsl, "_S5_", "dsdt.dsl");
    assert_has(dsl, "Package (0x04)", "dsdt.dsl");
    assert_has(dsl, "PNP0501", "dsdt.dsl");
    assert_has(dsl, "PNP0B00", "dsdt.dsl");
    assert_has(dsl, "Device (COM1)", "dsdt.dsl");
    assert_has(dsl, "Device (RTC)", "dsdt.dsl");
    assert_has(dsl, "IO (Decode16,", "dsdt.dsl");
    assert_has(dsl, "IRQNoFlags ()", "dsdt.dsl");
    assert_has(dsl, "{4}", "dsdt.dsl");
    assert_has(dsl, "{8}", "dsdt.dsl");
    assert_has(dsl, "Scope (_SB)", "dsdt.dsl");
    static const char *const ged[] = {
        "Device (GED)",
        "Name (_HID, \"ACPI0013\"",
        ("Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive, ,, )\n                {\n"
         "                    0x00000005,"),
        "OperationRegion (GDST, SystemIO, 0x0601, One)",
        "Field (GDST, ByteAcc, NoLock, WriteAsZeros)",
        "GDAT,   8",
        "Method (_EVT, 1, Serialized)",
        "Local0 = GDAT /* \\_SB_.GED_.GDAT */",
        "If ((Local0 & One))",
        "Notify (PWRB, 0x80)",
        "Device (PWRB)",
        "Name (_HID, EisaId (\"PNP0C0C\")",
    };
    for (size_t i = 0; i < sizeof(ged) / sizeof(ged[0]); i++)
        assert_has(dsl, ged[i], "dsdt.dsl");
    free(dsl);

    /*
     * Recompile the disassembly: iasl emits shortest encodings too, so the
     * AML must come back byte for byte (only the header's creator differs).
     */
    char *out = run_iasl(d, "-p again dsdt.dsl");
    assert_has(out, "0 Errors, 0 Warnings", "iasl output");
    free(out);
    char again_path[128];
    snprintf(again_path, sizeof(again_path), "%s/again.aml", d->path);
    FILE *f = fopen(again_path, "rb");
    assert_non_null(f);
    uint8_t again[4096];
    size_t alen = fread(again, 1, sizeof(again), f);
    fclose(f);
    assert_int_equal(alen, len);
    assert_memory_equal(again + SDT_HEADER_LEN, dsdt + SDT_HEADER_LEN, len - SDT_HEADER_LEN);
    tmpdir_remove(d);
}

/* A PCI host bridge as issue 4 will need it, to prove the encoder covers it. */
static size_t pci_like_dsdt(uint8_t *buf, size_t cap)
{
    struct aml a;
    aml_init(&a, buf + SDT_HEADER_LEN, cap - SDT_HEADER_LEN);
    aml_scope(&a, "_SB_");
    aml_device(&a, "PCI0");
    aml_name(&a, "_HID");
    aml_eisaid(&a, "PNP0A08");
    aml_name(&a, "_CID");
    aml_eisaid(&a, "PNP0A03");
    aml_name(&a, "_SEG");
    aml_integer(&a, 0);
    aml_name(&a, "_UID");
    aml_integer(&a, 0);
    aml_name(&a, "DESC");
    aml_string(&a, "nimbus PCIe host");
    aml_name(&a, "_CRS");
    aml_restemplate(&a);
    aml_res_word_bus_number(&a, 0, 0xff);
    aml_res_word_io(&a, 0x1000, 0xffff);
    aml_res_dword_memory(&a, 0xc0000000u, 0xdfffffffu, false);
    aml_res_qword_memory(&a, 0x8000000000ull, 0xffffffffffull, true);
    aml_res_memory32_fixed(&a, true, 0xe0000000u, 0x10000000u);
    aml_res_interrupt(&a, 16, true, true, true);
    aml_end(&a);
    aml_method(&a, "_OSC", 4, true);
    aml_return(&a);
    aml_arg(&a, 3);
    aml_end(&a);
    aml_name(&a, "PRTN");
    aml_package(&a);
    aml_package(&a);
    aml_integer(&a, 0xffff);
    aml_integer(&a, 0);
    aml_integer(&a, 0);
    aml_integer(&a, 16);
    aml_end(&a);
    aml_end(&a);
    aml_end(&a);
    aml_end(&a);
    size_t body = aml_finish(&a);
    if (!body)
        return 0;
    sdt_header(buf, "SSDT", (uint32_t)(SDT_HEADER_LEN + body), 2);
    sdt_finish(buf, SDT_HEADER_LEN + body);
    return SDT_HEADER_LEN + body;
}

static void test_iasl_pci_encoder(void **state)
{
    (void)state;
    if (!have_iasl()) {
        print_message("iasl not installed (apt-get install acpica-tools): skipping\n");
        skip();
    }
    uint8_t t[4096];
    size_t len = pci_like_dsdt(t, sizeof(t));
    assert_true(len > 0);

    struct tmpdir *d = tmpdir_make();
    char path[128];
    snprintf(path, sizeof(path), "%s/ssdt.dat", d->path);
    write_file(path, t, len);
    free(run_iasl(d, "-d ssdt.dat"));
    char *dsl = read_in(d, "ssdt.dsl");
    static const char *const want[] = {
        "Device (PCI0)", "EisaId (\"PNP0A08\")", "EisaId (\"PNP0A03\")", "nimbus PCIe host",
        "WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,",
        "WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,",
        "DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,",
        "QWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, Prefetchable, ReadWrite,",
        "Memory32Fixed (ReadWrite,", "Interrupt (ResourceConsumer, Level, ActiveLow, Shared, ,, )",
        "0x00000010,", "0x0000008000000000,", "0x000000FFFFFFFFFF,", "0x0000008000000000,",
        "Method (_OSC, 4, Serialized)", "Return (Arg3)", "Name (PRTN, Package (0x01)",
        "0xFFFF,"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        assert_has(dsl, want[i], "ssdt.dsl");
    free(dsl);
    free(run_iasl(d, "-p again ssdt.dsl"));
    char *again = read_in(d, "again.aml");
    assert_memory_equal(again + SDT_HEADER_LEN, t + SDT_HEADER_LEN, len - SDT_HEADER_LEN);
    free(again);
    tmpdir_remove(d);
}

/* The method-body operators and Field/OperationRegion through iasl and back. */
static void test_iasl_aml_ops(void **state)
{
    (void)state;
    if (!have_iasl()) {
        print_message("iasl not installed (apt-get install acpica-tools): skipping\n");
        skip();
    }
    uint8_t t[512];
    size_t body = ops_aml(t + SDT_HEADER_LEN, sizeof(t) - SDT_HEADER_LEN);
    assert_true(body > 0);
    size_t len = SDT_HEADER_LEN + body;
    sdt_header(t, "SSDT", (uint32_t)len, 2);
    sdt_finish(t, len);

    struct tmpdir *d = tmpdir_make();
    char path[128];
    snprintf(path, sizeof(path), "%s/ssdt.dat", d->path);
    write_file(path, t, len);
    free(run_iasl(d, "-d ssdt.dat"));
    char *dsl = read_in(d, "ssdt.dsl");
    static const char *const want[] = {
        "OperationRegion (REG0, SystemMemory, 0x0000000100000000, 0x1000)",
        "Field (REG0, DWordAcc, Lock, Preserve)",
        "A,      32,",
        "BIG,    4096",
        "Method (TEST, 1, NotSerialized)",
        "Local1 = A /* \\_SB_.A___ */",
        "If ((Local1 & Arg0))",
        "Notify (DEV0, 0x02)",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        assert_has(dsl, want[i], "ssdt.dsl");
    free(dsl);
    char *out = run_iasl(d, "-p again ssdt.dsl");
    assert_has(out, "0 Errors, 0 Warnings", "iasl output");
    free(out);
    char *again = read_in(d, "again.aml");
    assert_memory_equal(again + SDT_HEADER_LEN, t + SDT_HEADER_LEN, body);
    free(again);
    tmpdir_remove(d);
}

/* Every data table as iasl's table disassembler sees it. */
static void iasl_tables(struct vm_ram *m, uint32_t ncpus)
{
    uint64_t rsdp = build(m, ncpus, SLEEP_PORT);
    assert_int_equal(rsdp, LAYOUT_ACPI_START);

    struct tmpdir *d = tmpdir_make();
    char path[128];
    uint32_t len;

    /* (iasl 20200925 cannot read a bare RSDP from a file; the checks above cover it.) */
    const uint8_t *x = table_at(&m->gm, le64(rsdp_at(&m->gm, rsdp) + 24), "XSDT", &len);
    snprintf(path, sizeof(path), "%s/xsdt.dat", d->path);
    write_file(path, x, len);
    const uint8_t *f = find_table(&m->gm, rsdp, "FACP", &len);
    snprintf(path, sizeof(path), "%s/facp.dat", d->path);
    write_file(path, f, len);
    const uint8_t *t = find_table(&m->gm, rsdp, "APIC", &len);
    snprintf(path, sizeof(path), "%s/apic.dat", d->path);
    write_file(path, t, len);

    free(run_iasl(d, "-d xsdt.dat"));
    char *dsl = read_in(d, "xsdt.dsl");
    assert_has(dsl, "ACPI Table Address   0 :", "xsdt.dsl");
    assert_has(dsl, "ACPI Table Address   1 :", "xsdt.dsl");
    free(dsl);

    free(run_iasl(d, "-d facp.dat"));
    dsl = read_in(d, "facp.dsl");
    assert_has(dsl, "Hardware Reduced (V5) : 1", "facp.dsl");
    assert_has(dsl, "Reset Register Supported (V2) : 0", "facp.dsl");
    assert_has(dsl, "CMOS RTC Not Present (V5) : 0", "facp.dsl");
    assert_has(dsl, "Sleep Control Register : [Generic Address Structure]", "facp.dsl");
    assert_has(dsl, "Sleep Status Register : [Generic Address Structure]", "facp.dsl");
    assert_has(dsl, "Space ID : 01 [SystemIO]", "facp.dsl");
    assert_has(dsl, "FADT Minor Revision : 03", "facp.dsl");
    assert_has(dsl, "Address : 0000000000000600", "facp.dsl");
    free(dsl);

    free(run_iasl(d, "-d apic.dat"));
    dsl = read_in(d, "apic.dsl");
    assert_has(dsl, "[Processor Local APIC]", "apic.dsl");
    assert_has(dsl, "[I/O APIC]", "apic.dsl");
    assert_has(dsl, "[Local APIC NMI]", "apic.dsl");
    if (ncpus > 255) {
        assert_has(dsl, "[Processor Local x2APIC]", "apic.dsl");
        assert_has(dsl, "[Local x2APIC NMI]", "apic.dsl");
    }
    free(dsl);
    tmpdir_remove(d);
}

static void test_iasl_tables(void **state)
{
    if (!have_iasl()) {
        print_message("iasl not installed (apt-get install acpica-tools): skipping\n");
        skip();
    }
    iasl_tables(*state, 2);
    iasl_tables(*state, 300);
}

/* ---- PCI: MCFG, \_SB.PCI0, \_SB.PRES -------------------------------------------- */

static const struct pci_windows pci_win = {
    .ecam_base = LAYOUT_PCI_ECAM,
    .ecam_size = 1ull << 20,
    .mmio32_base = LAYOUT_MMIO32_START,
    .mmio32_size = LAYOUT_PCI_ECAM - LAYOUT_MMIO32_START,
    .mmio64_base = 0x4000000000ull,
    .mmio64_size = 64ull << 30,
};

static uint64_t build_pci(struct vm_ram *m, const struct pci_windows *w,
                          const struct acpi_legacy_dev *devs, unsigned ndevs)
{
    struct acpi_config cfg = {
        .ncpus = 2, .sleep_port = SLEEP_PORT, .devs = devs, .ndevs = ndevs, .pci = w};
    memset(m->ram, 0xaa, RAM_SIZE);
    return acpi_build(&m->gm, &cfg);
}

static size_t pci_dsdt(const struct pci_windows *w, uint8_t *buf, size_t cap)
{
    struct acpi_config cfg = {.ncpus = 1,
                              .sleep_port = SLEEP_PORT,
                              .devs = std_devs,
                              .ndevs = sizeof(std_devs) / sizeof(std_devs[0]),
                              .pci = w,
                              .ged_port = LAYOUT_PORT_ACPI_GED,
                              .ged_gsi = LAYOUT_GED_IRQ};
    return acpi_build_dsdt(&cfg, buf, cap);
}

static void check_mcfg(const uint8_t *t, uint32_t len, uint64_t base, uint8_t end_bus)
{
    assert_int_equal(len, 60);
    assert_int_equal(t[8], 1);
    static const uint8_t zero[8];
    assert_memory_equal(t + 36, zero, 8);
    assert_int_equal(le64(t + 44), base);
    assert_int_equal(le16(t + 52), 0); /* segment */
    assert_int_equal(t[54], 0);        /* start bus */
    assert_int_equal(t[55], end_bus);
    assert_int_equal(le32(t + 56), 0);
}

static void test_pci_tables(void **state)
{
    struct vm_ram *m = *state;
    uint64_t rsdp = build_pci(m, &pci_win, std_devs, 2);
    assert_int_equal(rsdp, LAYOUT_ACPI_START);
    uint32_t len;
    const uint8_t *t = find_table(&m->gm, rsdp, "MCFG", &len);
    assert_non_null(t);
    check_mcfg(t, len, LAYOUT_PCI_ECAM, 0);
    /* FADT, MADT and MCFG in the XSDT. */
    const uint8_t *x = table_at(&m->gm, le64(rsdp_at(&m->gm, rsdp) + 24), "XSDT", &len);
    assert_non_null(x);
    assert_int_equal(len, SDT_HEADER_LEN + 3 * 8);

    /* The DSDT the FADT points at carries both PCI devices. */
    const uint8_t *f = find_table(&m->gm, rsdp, "FACP", NULL);
    uint32_t dlen;
    const uint8_t *d = table_at(&m->gm, le64(f + FADT_OFF_X_DSDT), "DSDT", &dlen);
    assert_non_null(memmem(d, dlen, "PCI0", 4));
    assert_non_null(memmem(d, dlen, "PRES", 4));

    /* Without PCI: no MCFG at all. */
    rsdp = build(m, 2, SLEEP_PORT);
    assert_null(find_table(&m->gm, rsdp, "MCFG", NULL));

    /* 256 buses: the MCFG's end bus follows the ECAM size. */
    struct pci_windows w = pci_win;
    w.ecam_size = 256ull << 20;
    w.mmio32_size = 0x10000000; /* keep the 32-bit window below the larger ECAM */
    w.ecam_base = 0xd0000000ull;
    rsdp = build_pci(m, &w, std_devs, 2);
    t = find_table(&m->gm, rsdp, "MCFG", &len);
    assert_non_null(t);
    check_mcfg(t, len, 0xd0000000ull, 0xff);
}

static void test_pci_dsdt_bytes(void **state)
{
    (void)state;
    uint8_t buf[4096];
    size_t len = pci_dsdt(&pci_win, buf, sizeof(buf));
    assert_true(len > 0);
    assert_int_equal(sum(buf, len), 0);
    /* _HID EisaId ("PNP0A08"), _CID EisaId ("PNP0A03"), PNP0C02 */
    assert_contains(buf, len, 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x08);
    assert_contains(buf, len, 0x08, '_', 'C', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x03);
    assert_contains(buf, len, 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0c, 0x02);
    /* WordBusNumber 0-0 */
    assert_contains(buf, len, 0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                    0x00, 0x00, 0x00, 0x01, 0x00);
    /* IO (Decode16, 0xCF8, 0xCF8, 1, 8) */
    assert_contains(buf, len, 0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08);
    /* DWordMemory 0xC0000000-0xDFFFFFFF, length 0x20000000 */
    assert_contains(buf, len, 0x00, 0x00, 0x00, 0xc0, 0xff, 0xff, 0xff, 0xdf, 0x00, 0x00, 0x00,
                    0x00, 0x00, 0x00, 0x00, 0x20);
    /* Memory32Fixed (ReadWrite, 0xE0000000, 0x100000) */
    assert_contains(buf, len, 0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xe0, 0x00, 0x00, 0x10,
                    0x00);

    /* No 64-bit window: no QWordMemory. */
    struct pci_windows w = pci_win;
    w.mmio64_size = 0;
    len = pci_dsdt(&w, buf, sizeof(buf));
    assert_true(len > 0);
    assert_null(memchr(buf + SDT_HEADER_LEN, 0x8a, len - SDT_HEADER_LEN));

    /* ECAM above 4 GiB: reserved with a QWord consumer descriptor instead. */
    w = pci_win;
    w.ecam_base = 0x8000000000ull;
    len = pci_dsdt(&w, buf, sizeof(buf));
    assert_true(len > 0);
    assert_contains(buf, len, 0x8a, 0x2b, 0x00, 0x00, 0x0d, 0x01);
}

static void test_pci_failures(void **state)
{
    struct vm_ram *m = *state;
    uint8_t buf[4096];

    /* Legacy devices cannot take the PCI names. */
    const struct acpi_legacy_dev pci0 = {"PNP0501", "PCI0", 0x3f8, 8, 4};
    const struct acpi_legacy_dev pres = {"PNP0501", "PRES", 0x3f8, 8, 4};
    assert_int_equal(build_pci(m, &pci_win, &pci0, 1), 0);
    assert_window_untouched(m);
    assert_int_equal(build_pci(m, &pci_win, &pres, 1), 0);
    assert_window_untouched(m);
    /* ...which are free again without PCI. */
    struct acpi_config cfg = {.ncpus = 1, .sleep_port = SLEEP_PORT, .devs = &pci0, .ndevs = 1};
    assert_true(acpi_build_dsdt(&cfg, buf, sizeof(buf)) > 0);

    static const struct pci_windows bad[] = {
        {.ecam_base = LAYOUT_PCI_ECAM, .ecam_size = 0, .mmio32_base = LAYOUT_MMIO32_START,
         .mmio32_size = 0x1000},
        {.ecam_base = LAYOUT_PCI_ECAM, .ecam_size = 3u << 19, .mmio32_base = LAYOUT_MMIO32_START,
         .mmio32_size = 0x1000},
        {.ecam_base = LAYOUT_PCI_ECAM, .ecam_size = 512ull << 20,
         .mmio32_base = LAYOUT_MMIO32_START, .mmio32_size = 0x1000},
        {.ecam_base = LAYOUT_PCI_ECAM + 0x1000, .ecam_size = 1u << 20,
         .mmio32_base = LAYOUT_MMIO32_START, .mmio32_size = 0x1000},
        {.ecam_base = LAYOUT_PCI_ECAM, .ecam_size = 1u << 20, .mmio32_base = LAYOUT_MMIO32_START,
         .mmio32_size = 0},
        {.ecam_base = LAYOUT_PCI_ECAM, .ecam_size = 1u << 20, .mmio32_base = 0xfffff000ull,
         .mmio32_size = 0x2000},
        {.ecam_base = LAYOUT_PCI_ECAM, .ecam_size = 1u << 20, .mmio32_base = LAYOUT_MMIO32_START,
         .mmio32_size = 0x1000, .mmio64_base = UINT64_MAX - 0xfff, .mmio64_size = 0x2000},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (build_pci(m, &bad[i], std_devs, 2) != 0)
            fail_msg("bad PCI windows #%zu accepted", i);
        assert_window_untouched(m);
    }
    assert_int_equal(acpi_build_mcfg(NULL, buf, sizeof(buf)), 0);
    assert_int_equal(acpi_build_mcfg(&pci_win, buf, 59), 0);
    assert_int_equal(acpi_build_mcfg(&pci_win, buf, 60), 60);

    /* Every shorter buffer fails cleanly. */
    uint8_t ref[4096];
    size_t len = pci_dsdt(&pci_win, ref, sizeof(ref));
    assert_true(len > 0);
    for (size_t cap = 0; cap < len; cap++)
        assert_int_equal(pci_dsdt(&pci_win, buf, cap), 0);
}

/* `aml` written to d/dsdt.dat and disassembled by iasl: the .dsl text (freed by the caller). */
static char *iasl_dsl(struct tmpdir *d, const uint8_t *aml, size_t len)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/dsdt.dat", d->path);
    write_file(path, aml, len);
    free(run_iasl(d, "-d dsdt.dat"));
    return read_in(d, "dsdt.dsl");
}

/* That disassembly recompiles without even a warning to the same AML (only
 * the header's creator fields differ). */
static void iasl_rebuilds(struct tmpdir *d, const uint8_t *aml, size_t len)
{
    char *out = run_iasl(d, "-p again dsdt.dsl");
    assert_has(out, "0 Errors, 0 Warnings", "iasl output");
    free(out);
    char *again = read_in(d, "again.aml");
    assert_memory_equal(again + SDT_HEADER_LEN, aml + SDT_HEADER_LEN, len - SDT_HEADER_LEN);
    free(again);
}

/* ACPI PCI hotplug: the slot objects Linux's acpiphp wants, PCNT, and the
 * GED calling it; iasl reads it without a warning and rebuilds it exactly. */
/*
 * The hotplug parts of the DSDT: cfg builds into buf, and without the GED
 * (which alone calls their scan methods) it is refused.  Returns the length.
 */
static size_t build_needing_ged(const struct acpi_config *cfg, uint8_t *buf, size_t cap)
{
    size_t len = acpi_build_dsdt(cfg, buf, cap / 2);
    assert_true(len > 0);
    struct acpi_config no_ged = *cfg;
    no_ged.ged_port = 0;
    no_ged.ged_gsi = 0;
    assert_int_equal(acpi_build_dsdt(&no_ged, buf + cap / 2, cap / 2), 0);
    return len;
}

static void assert_has_all(const char *dsl, const char *const *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_has(dsl, want[i], "dsdt.dsl");
}

static void test_iasl_pci_hotplug(void **state)
{
    (void)state;
    if (!have_iasl()) {
        print_message("iasl not installed (apt-get install acpica-tools): skipping\n");
        skip();
    }
    struct acpi_config cfg = {.ncpus = 1,
                              .sleep_port = SLEEP_PORT,
                              .devs = std_devs,
                              .ndevs = sizeof(std_devs) / sizeof(std_devs[0]),
                              .pci = &pci_win,
                              .ged_port = LAYOUT_PORT_ACPI_GED,
                              .ged_gsi = LAYOUT_GED_IRQ,
                              .pcihp_port = LAYOUT_PORT_PCI_HOTPLUG};
    static uint8_t dsdt[16384];
    size_t len = build_needing_ged(&cfg, dsdt, sizeof(dsdt));

    struct tmpdir *d = tmpdir_make();
    char *dsl = iasl_dsl(d, dsdt, len);
    static const char *const want[] = {
        "OperationRegion (PCST, SystemIO, 0x0604, 0x0C)",
        "Field (PCST, DWordAcc, NoLock, WriteAsZeros)",
        "PCIU,   32",
        "PCID,   32",
        "B0EJ,   32",
        "Method (PCNT, 0, Serialized)",
        "Local0 = PCIU /* \\_SB_.PCI0.PCIU */",
        "Local1 = PCID /* \\_SB_.PCI0.PCID */",
        "If ((Local0 & 0x02))",
        "Notify (SL01, One)",
        "If ((Local1 & 0x80000000))",
        "Notify (SL1F, 0x03)",
        "Device (SL01)",
        "Name (_ADR, 0x00010000)",
        "Name (_SUN, One)",
        "Method (_EJ0, 1, NotSerialized)",
        "B0EJ = 0x02",
        "Device (SL1F)",
        "Name (_ADR, 0x001F0000)",
        "B0EJ = 0x80000000",
        "If ((Local0 & 0x02))\n                {\n                    ^^PCI0.PCNT ()",
    };
    assert_has_all(dsl, want, sizeof(want) / sizeof(want[0]));
    assert_null(strstr(dsl, "Device (SL00)"));
    assert_null(strstr(dsl, "Device (SL20)"));
    free(dsl);
    iasl_rebuilds(d, dsdt, len);
}

static struct acpi_config cpuhp_config(uint32_t present, uint32_t max)
{
    return (struct acpi_config){.ncpus = present,
                                .max_cpus = max,
                                .sleep_port = SLEEP_PORT,
                                .devs = std_devs,
                                .ndevs = sizeof(std_devs) / sizeof(std_devs[0]),
                                .ged_port = LAYOUT_PORT_ACPI_GED,
                                .ged_gsi = LAYOUT_GED_IRQ,
                                .cpuhp_port = LAYOUT_PORT_CPU_HOTPLUG};
}

/* The CPU hotplug objects through iasl and back, and what they say. */
static void test_iasl_cpu_hotplug(void **state)
{
    (void)state;
    if (!have_iasl()) {
        print_message("iasl not installed (apt-get install acpica-tools): skipping\n");
        skip();
    }
    struct acpi_config cfg = cpuhp_config(2, 4);
    static uint8_t dsdt[16384];
    size_t len = build_needing_ged(&cfg, dsdt, sizeof(dsdt));

    struct tmpdir *d = tmpdir_make();
    char *dsl = iasl_dsl(d, dsdt, len);
    static const char *const want[] = {
        "Device (CPUS)",
        "Name (_HID, \"ACPI0010\"",
        "Name (_CID, EisaId (\"PNP0A05\")",
        "OperationRegion (PRSD, SystemIO, 0x0610, 0x08)",
        "Field (PRSD, DWordAcc, NoLock, WriteAsZeros)",
        "CSEL,   32",
        "CNXT,   32",
        "OperationRegion (PRSB, SystemIO, 0x0618, One)",
        "Field (PRSB, ByteAcc, NoLock, WriteAsZeros)",
        "CPEN,   1",
        "CINS,   1",
        "CRMV,   1",
        "CEJ0,   1",
        "Mutex (CPLK, 0x00)",
        "Method (CSTA, 1, NotSerialized)",
        "Acquire (CPLK, 0xFFFF)",
        "CSEL = Arg0",
        "If (CPEN)",
        "Local0 = 0x0F",
        "Release (CPLK)",
        "Method (CEJT, 1, NotSerialized)",
        "CEJ0 = One",
        "Method (CTFY, 2, NotSerialized)",
        "If ((Arg0 == 0x03))",
        "Notify (C003, Arg1)",
        "Method (CSCN, 0, NotSerialized)",
        "Local0 = CNXT",
        "While ((Local0 < 0x04))",
        "CSEL = Local0",
        "CTFY (Local0, One)",
        "CINS = One",
        "CTFY (Local0, 0x03)",
        "CRMV = One",
        "Device (C000)",
        "Name (_HID, \"ACPI0007\"",
        "Return (CSTA (Zero))",
        "Name (_MAT, Buffer (0x08)",
        "0x00, 0x08, 0x03, 0x03, 0x01, 0x00, 0x00, 0x00",
        "Device (C003)",
        "Method (_EJ0, 1, NotSerialized)",
        "CEJT (0x03)",
        "^^CPUS.CSCN ()",
    };
    assert_has_all(dsl, want, sizeof(want) / sizeof(want[0]));
    assert_null(strstr(dsl, "Device (C004)"));
    assert_null(strstr(dsl, "CEJT (Zero)")); /* the boot vCPU has no _EJ0 */
    free(dsl);
    iasl_rebuilds(d, dsdt, len);
}

/* The memory hotplug objects through iasl and back, and what they say. */
static void test_iasl_memory_hotplug(void **state)
{
    (void)state;
    if (!have_iasl()) {
        print_message("iasl not installed (apt-get install acpica-tools): skipping\n");
        skip();
    }
    struct acpi_config cfg = cpuhp_config(1, 1);
    cfg.cpuhp_port = 0;
    cfg.memhp_port = 0x620;
    cfg.memhp_slots = 3;
    cfg.memhp_base = 5ull << 30;
    cfg.memhp_slot_size = 256ull << 20;
    static uint8_t dsdt[16384];
    size_t len = build_needing_ged(&cfg, dsdt, sizeof(dsdt));
    struct acpi_config bad = cfg;
    bad.memhp_slots = 0;
    assert_int_equal(acpi_build_dsdt(&bad, dsdt + 8192, 8192), 0);
    bad = cfg;
    bad.memhp_base = UINT64_MAX - (256ull << 20);
    assert_int_equal(acpi_build_dsdt(&bad, dsdt + 8192, 8192), 0);

    struct tmpdir *d = tmpdir_make();
    char *dsl = iasl_dsl(d, dsdt, len);
    static const char *const want[] = {
        "Device (MHPC)",
        "Name (_HID, EisaId (\"PNP0A06\")",
        "OperationRegion (PRSD, SystemIO, 0x0620, 0x08)",
        "OperationRegion (PRSB, SystemIO, 0x0628, One)",
        "Method (CSCN, 0, NotSerialized)",
        "While ((Local0 < 0x03))",
        "Notify (M002, Arg1)",
        "Device (M000)",
        "Name (_HID, EisaId (\"PNP0C80\")",
        "Return (CSTA (0x02))",
        "0x0000000140000000, // Range Minimum",
        "0x000000014FFFFFFF, // Range Maximum",
        "0x0000000160000000, // Range Minimum",
        "0x000000016FFFFFFF, // Range Maximum",
        "0x0000000010000000, // Length",
        "^^MHPC.CSCN ()",
    };
    assert_has_all(dsl, want, sizeof(want) / sizeof(want[0]));
    /* Memory is not taken back: no eject anywhere. */
    assert_null(strstr(dsl, "_EJ0"));
    assert_null(strstr(dsl, "CEJT"));
    assert_null(strstr(dsl, "Device (M003)"));
    free(dsl);
    iasl_rebuilds(d, dsdt, len);
}

/* The largest --cpus max still fits in the ACPI window; beyond the names, refused. */
static void test_cpu_hotplug_sizes(void **state)
{
    struct vm_ram *m = *state;
    struct acpi_config cfg = cpuhp_config(1, CLI_MAX_VCPUS);
    memset(m->ram, 0xaa, RAM_SIZE);
    assert_int_equal(acpi_build(&m->gm, &cfg), LAYOUT_ACPI_START);
    static uint8_t big[1 << 20];
    print_message("DSDT for %u possible vCPUs: %zu bytes\n", CLI_MAX_VCPUS,
                  acpi_build_dsdt(&cfg, big, sizeof(big)));
    cfg = cpuhp_config(1, 0x1001);
    assert_int_equal(acpi_build_dsdt(&cfg, big, sizeof(big)), 0);
    cfg = cpuhp_config(1, 0x1000);
    assert_true(acpi_build_dsdt(&cfg, big, sizeof(big)) > 0);
}

static void test_iasl_pci(void **state)
{
    struct vm_ram *m = *state;
    if (!have_iasl()) {
        print_message("iasl not installed (apt-get install acpica-tools): skipping\n");
        skip();
    }
    uint8_t dsdt[4096];
    size_t len = pci_dsdt(&pci_win, dsdt, sizeof(dsdt));
    assert_true(len > 0);

    struct tmpdir *d = tmpdir_make();
    char path[128];
    char *dsl = iasl_dsl(d, dsdt, len);
    static const char *const want[] = {
        "Device (PCI0)",
        "Name (_HID, EisaId (\"PNP0A08\")",
        "Name (_CID, EisaId (\"PNP0A03\")",
        "Name (_SEG, Zero)",
        "Name (_BBN, Zero)",
        "WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,",
        "IO (Decode16,\n                    0x0CF8,",
        "0x0CF7,",
        "0x0D00,",
        "DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,",
        "0xC0000000,",
        "0xDFFFFFFF,",
        "QWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,",
        "0x0000004000000000,",
        "0x0000004FFFFFFFFF,",
        "Device (PRES)",
        "Name (_HID, EisaId (\"PNP0C02\")",
        "Memory32Fixed (ReadWrite,\n                    0xE0000000,",
        "0x00100000,",
        "Device (COM1)",
        "Device (GED)",
        "Method (_EVT, 1, Serialized)",
        "Device (PWRB)",
    };
    assert_has_all(dsl, want, sizeof(want) / sizeof(want[0]));
    assert_null(strstr(dsl, "_ADR"));
    free(dsl);
    /* Not even a warning (e.g. a device with both _HID and _ADR). */
    iasl_rebuilds(d, dsdt, len);

    /* The MCFG as iasl's table disassembler reads it. */
    uint64_t rsdp = build_pci(m, &pci_win, std_devs, 2);
    uint32_t mlen;
    const uint8_t *t = find_table(&m->gm, rsdp, "MCFG", &mlen);
    assert_non_null(t);
    snprintf(path, sizeof(path), "%s/mcfg.dat", d->path);
    write_file(path, t, mlen);
    free(run_iasl(d, "-d mcfg.dat"));
    dsl = read_in(d, "mcfg.dsl");
    assert_has(dsl, "Signature : \"MCFG\"", "mcfg.dsl");
    assert_has(dsl, "Base Address : 00000000E0000000", "mcfg.dsl");
    assert_has(dsl, "Segment Group Number : 0000", "mcfg.dsl");
    assert_has(dsl, "Start Bus Number : 00", "mcfg.dsl");
    assert_has(dsl, "End Bus Number : 00", "mcfg.dsl");
    free(dsl);
    tmpdir_remove(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rsdp_xsdt, ram_setup, ram_teardown),
        cmocka_unit_test_setup_teardown(test_fadt, ram_setup, ram_teardown),
        cmocka_unit_test_setup_teardown(test_madt, ram_setup, ram_teardown),
        cmocka_unit_test_setup_teardown(test_build_failures, ram_setup, ram_teardown),
        cmocka_unit_test(test_dsdt_bytes),
        cmocka_unit_test(test_dsdt_short_buffers),
        cmocka_unit_test(test_dsdt_devices),
        cmocka_unit_test(test_dsdt_ged),
        cmocka_unit_test(test_aml_names),
        cmocka_unit_test(test_aml_integers),
        cmocka_unit_test(test_aml_pkglength),
        cmocka_unit_test(test_aml_errors),
        cmocka_unit_test(test_aml_ops),
        cmocka_unit_test(test_aml_loop_ops),
        cmocka_unit_test_teardown(test_iasl_dsdt, tmpdir_teardown),
        cmocka_unit_test_teardown(test_iasl_pci_encoder, tmpdir_teardown),
        cmocka_unit_test_teardown(test_iasl_aml_ops, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_iasl_tables, ram_setup, ram_tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_pci_tables, ram_setup, ram_teardown),
        cmocka_unit_test(test_pci_dsdt_bytes),
        cmocka_unit_test_setup_teardown(test_pci_failures, ram_setup, ram_teardown),
        cmocka_unit_test_setup_teardown(test_iasl_pci, ram_setup, ram_tmpdir_teardown),
        cmocka_unit_test_teardown(test_iasl_pci_hotplug, tmpdir_teardown),
        cmocka_unit_test_teardown(test_iasl_cpu_hotplug, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_cpu_hotplug_sizes, ram_setup, ram_teardown),
        cmocka_unit_test_teardown(test_iasl_memory_hotplug, tmpdir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
