/* Common System Description Table header and checksum. */
#include "sdt.h"

#include <string.h>

#include "../boot/bytes.h"

uint8_t acpi_sum(const uint8_t *p, size_t len)
{
    uint8_t s = 0;
    for (size_t i = 0; i < len; i++)
        s = (uint8_t)(s + p[i]);
    return s;
}

void sdt_header(uint8_t *t, const char sig[4], uint32_t len, uint8_t revision)
{
    memset(t, 0, SDT_HEADER_LEN);
    memcpy(t, sig, 4);
    put_le32(t + 4, len);
    t[8] = revision;
    /* t[9] is the checksum, set by sdt_finish(). */
    memcpy(t + 10, ACPI_OEM_ID, 6);
    memcpy(t + 16, ACPI_OEM_TABLE_ID, 8);
    put_le32(t + 24, ACPI_OEM_REVISION);
    memcpy(t + 28, ACPI_CREATOR_ID, 4);
    put_le32(t + 32, ACPI_CREATOR_REVISION);
}

void sdt_finish(uint8_t *t, size_t len)
{
    t[9] = 0;
    t[9] = (uint8_t)(0u - acpi_sum(t, len));
}
