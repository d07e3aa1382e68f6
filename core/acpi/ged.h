/*
 * The register behind the DSDT's Generic Event Device (\_SB.GED_): one
 * I/O port holding pending-event bits (ACPI_GED_EVT_*, acpi.h) and a
 * level-triggered GSI that is high while any bit is pending.  An event
 * sets its bit and raises the line; the guest's _EVT method reads the
 * port, which returns the pending bits, clears them and lowers the line.
 * Writes are ignored.
 */
#ifndef NIMBUS_ACPI_GED_H
#define NIMBUS_ACPI_GED_H

#include <stddef.h>
#include <stdint.h>

#include "../bus.h"

struct ged;

/*
 * Claim `port` (one byte) on the PIO bus.  irq_line(opaque, gsi, level)
 * drives the interrupt; it is called with the GED's lock held and must not
 * call back into the GED.  NULL with a message in err on failure.
 */
struct ged *ged_create(struct bus *pio, uint16_t port, uint32_t gsi,
                       int (*irq_line)(void *opaque, uint32_t gsi, uint32_t level), void *opaque,
                       char *err, size_t errlen);
/* Signal a power-button press.  Any thread. */
void ged_power_button(struct ged *g);
/* Signal the events `bits` (ACPI_GED_EVT_*).  Any thread. */
void ged_event(struct ged *g, uint8_t bits);
/* Release the port and free g (NULL is fine); no access may be in flight. */
void ged_destroy(struct ged *g);

#endif
