/*
 * FADT for a hardware-reduced ACPI machine (ACPI 6.3, section 5.2.9).
 *
 * HW_REDUCED_ACPI tells the guest there is no PM1/GPE/PM-timer/SCI fixed
 * hardware and no FACS; Linux then uses only SLEEP_CONTROL_REG and
 * SLEEP_STATUS_REG to enter S5, skips the 8259 PIC and the PIT timer
 * interrupt, and takes all devices from the DSDT.
 *
 * No RESET_REG: with RESET_REG_SUP clear, Linux's reboot=acpi step is a
 * no-op and it falls through to pulsing the i8042 reset line (0xfe to
 * port 0x64), which the i8042 plugin turns into a VM reset.
 */
#include <string.h>

#include "sdt.h"
#include "../boot/bytes.h"

static void put_gas_io8(uint8_t *p, uint16_t port)
{
    p[0] = GAS_SPACE_SYSTEM_IO;
    p[1] = 8; /* register bit width */
    p[2] = 0; /* bit offset */
    p[3] = GAS_ACCESS_BYTE;
    put_le64(p + 4, port);
}

size_t acpi_build_fadt(uint64_t dsdt_addr, uint16_t sleep_port, uint8_t *buf, size_t cap)
{
    if (!buf || cap < FADT_LEN || dsdt_addr == 0 || sleep_port == 0)
        return 0;
    memset(buf, 0, FADT_LEN);
    sdt_header(buf, "FACP", FADT_LEN, FADT_REVISION);

    /*
     * FIRMWARE_CTRL/X_FIRMWARE_CTRL stay 0 (no FACS in reduced hardware),
     * as do SCI_INT, SMI_CMD and every PM1/PM2/GPE/PM_TMR block.  The
     * 32-bit DSDT field must be 0 when X_DSDT is used (ACPI 6.3 5.2.9).
     */
    put_le64(buf + FADT_OFF_X_DSDT, dsdt_addr);

    /*
     * IAPC_BOOT_ARCH: COM1 and the RTC are ISA-style devices (LEGACY_DEVICES),
     * there is no VGA.  8042 stays clear so Linux does not probe for a PS/2
     * keyboard and mouse (the i8042 model has none attached; it is there for
     * its reset line, and the reboot path does not check this flag).  "CMOS RTC not present" stays clear:
     * the RTC is real and Linux must keep using it for wall-clock time.
     */
    put_le16(buf + FADT_OFF_IAPC_BOOT_ARCH, FADT_IAPC_LEGACY_DEVICES | FADT_IAPC_VGA_NOT_PRESENT);

    /*
     * Buttons and RTC wake are "not fixed hardware" (there is none);
     * RESET_REG_SUP is deliberately absent (see above).
     */
    put_le32(buf + FADT_OFF_FLAGS, FADT_FLAG_WBINVD | FADT_FLAG_PWR_BUTTON |
                                       FADT_FLAG_SLP_BUTTON | FADT_FLAG_FIX_RTC |
                                       FADT_FLAG_HW_REDUCED_ACPI);
    buf[FADT_OFF_MINOR_REVISION] = FADT_MINOR_REVISION;

    /*
     * One byte-wide register serves as both: the guest writes
     * SLP_TYP << 2 | SLP_EN to enter a state, and writes WAK_STS (bit 7)
     * to the status register first, which the VMM must ignore.
     */
    put_gas_io8(buf + FADT_OFF_SLEEP_CONTROL, sleep_port);
    put_gas_io8(buf + FADT_OFF_SLEEP_STATUS, sleep_port);

    memcpy(buf + FADT_OFF_HYPERVISOR_ID, "NIMBUS  ", 8);

    sdt_finish(buf, FADT_LEN);
    return FADT_LEN;
}
