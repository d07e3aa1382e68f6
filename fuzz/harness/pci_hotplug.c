/*
 * fuzz_pci_hotplug: the guest's side of ACPI hotplug (the GED's event
 * register and the PCI hotplug registers PCIU/PCID/B0EJ), reached through
 * the real PIO bus dispatch at any port, width and direction around them,
 * interleaved with the host's side (a device plugged, an eject requested,
 * ejects taken, GED events raised).  A model of both runs alongside.
 *
 * Checks after every op:
 *  - PCIU/PCID reads return what the model says was announced, then clear;
 *    slot 0 (the host bridge) never appears in any mask;
 *  - a B0EJ write records exactly the slots it names (slot 0 dropped) and
 *    wakes the owner only when a slot is newly ejected; pcihp_take_ejected
 *    returns and clears the record;
 *  - misaligned or non-dword accesses read all-ones and change nothing;
 *  - the GED line is high exactly while events are pending; a read of its
 *    register returns them and lowers the line.
 *
 * Op = [kind][fields...], kind = byte % 7 (see the switch).
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "acpi/acpi.h"
#include "acpi/ged.h"
#include "bus.h"
#include "fuzz_input.h"
#include "fuzz_target.h"
#include "layout.h"
#include "pci/pci_hotplug.h"

#define PORT_LO 0x5f8u
#define PORT_SPAN 0x20u
#define GSI 5u

static struct {
    struct bus pio;
    struct ged *ged;
    struct pcihp *hp;
    bool line;
    unsigned wakes;
    /* The model. */
    uint32_t up, down, ejected;
    uint8_t pending;
    unsigned want_wakes;
} S;

static int irq_line(void *opaque, uint32_t gsi, uint32_t level)
{
    (void)opaque;
    if (gsi != GSI)
        fuzz_fail("GED drove GSI %u", gsi);
    S.line = level != 0;
    return 0;
}

static void on_eject(void *opaque)
{
    (void)opaque;
    S.wakes++;
}

static void setup(void)
{
    memset(&S, 0, sizeof(S));
    bus_init(&S.pio, "pio");
    char err[256];
    S.ged = ged_create(&S.pio, LAYOUT_PORT_ACPI_GED, GSI, irq_line, NULL, err, sizeof(err));
    S.hp = pcihp_create(&S.pio, LAYOUT_PORT_PCI_HOTPLUG, on_eject, NULL, err, sizeof(err));
    if (!S.ged || !S.hp)
        fuzz_fail("setup: %s", err);
}

static void teardown(void)
{
    pcihp_destroy(S.hp);
    ged_destroy(S.ged);
    bus_destroy(&S.pio);
}

static void check(void)
{
    if ((S.up | S.down | S.ejected) & ~PCIHP_SLOTS_MASK)
        fuzz_fail("model has slot 0");
    if (S.line != (S.pending != 0))
        fuzz_fail("GED line %d with pending 0x%x", S.line, S.pending);
    if (S.wakes != S.want_wakes)
        fuzz_fail("owner woken %u times, expected %u", S.wakes, S.want_wakes);
}

static void access(uint32_t port, uint32_t len, bool write, uint64_t val)
{
    uint8_t buf[8];
    memset(buf, 0xa5, sizeof(buf));
    if (write)
        memcpy(buf, &val, len);
    int r = bus_access(&S.pio, port, buf, len, write);
    uint32_t hp = LAYOUT_PORT_PCI_HOTPLUG;
    bool in_ged = port == LAYOUT_PORT_ACPI_GED && len == 1;
    bool in_hp = port >= hp && port + len <= hp + PCIHP_PORT_LEN;
    if (r < 0) {
        if (in_ged || in_hp)
            fuzz_fail("access at 0x%x len %u not dispatched", port, len);
        return;
    }
    if (in_ged) {
        if (!write) {
            if (buf[0] != S.pending)
                fuzz_fail("GED read 0x%x, pending 0x%x", buf[0], S.pending);
            S.pending = 0;
        }
        return;
    }
    if (!in_hp)
        fuzz_fail("access at 0x%x len %u dispatched outside the registers", port, len);
    uint32_t off = port - hp;
    uint32_t v32;
    memcpy(&v32, buf, 4);
    if (len != 4 || (off & 3u)) {
        if (!write)
            for (uint32_t i = 0; i < len; i++)
                if (buf[i] != 0xff)
                    fuzz_fail("odd read at +%u len %u gave 0x%02x", off, len, buf[i]);
        return;
    }
    if (!write) {
        uint32_t want = off == PCIHP_REG_UP ? S.up : off == PCIHP_REG_DOWN ? S.down : 0;
        if (v32 != want)
            fuzz_fail("read +%u = 0x%08x, model 0x%08x", off, v32, want);
        if (off == PCIHP_REG_UP)
            S.up = 0;
        else if (off == PCIHP_REG_DOWN)
            S.down = 0;
    } else if (off == PCIHP_REG_EJECT) {
        uint32_t v = (uint32_t)val & PCIHP_SLOTS_MASK;
        if (v & ~S.ejected)
            S.want_wakes++;
        S.ejected |= v;
    }
}

static void run_op(struct fuzz_in *in)
{
    switch (fin_u8(in) % 7u) {
    case 0: { /* a guest access anywhere near the registers */
        uint32_t port = PORT_LO + fin_u8(in) % PORT_SPAN;
        uint8_t fl = fin_u8(in);
        static const uint32_t lens[4] = {1, 2, 4, 8};
        uint32_t len = lens[fl & 3u];
        bool write = fl >> 7;
        access(port, len, write, write ? fin_le(in, 8) : 0);
        break;
    }
    case 1: { /* the driver's own sequence: read both, then eject what was asked */
        access(LAYOUT_PORT_PCI_HOTPLUG + PCIHP_REG_UP, 4, false, 0);
        uint32_t down = S.down;
        access(LAYOUT_PORT_PCI_HOTPLUG + PCIHP_REG_DOWN, 4, false, 0);
        if (down)
            access(LAYOUT_PORT_PCI_HOTPLUG + PCIHP_REG_EJECT, 4, true, down);
        break;
    }
    case 2: { /* the host plugs a device */
        uint32_t slot = fin_u8(in) % 40u;
        pcihp_plugged(S.hp, slot);
        if (slot < 32 && slot) {
            S.up |= 1u << slot;
            S.down &= ~(1u << slot);
            S.ejected &= ~(1u << slot);
        }
        break;
    }
    case 3: { /* the host asks for an eject */
        uint32_t slot = fin_u8(in) % 40u;
        pcihp_unplug_request(S.hp, slot);
        if (slot < 32 && slot) {
            S.down |= 1u << slot;
            S.up &= ~(1u << slot);
        }
        break;
    }
    case 4: { /* the control thread takes the ejects */
        uint32_t got = pcihp_take_ejected(S.hp);
        if (got != S.ejected)
            fuzz_fail("took 0x%08x, model 0x%08x", got, S.ejected);
        S.ejected = 0;
        break;
    }
    case 5: { /* a GED event */
        uint8_t bits = fin_u8(in);
        ged_event(S.ged, bits);
        S.pending |= bits;
        break;
    }
    case 6: /* the power button */
        ged_power_button(S.ged);
        S.pending |= ACPI_GED_EVT_POWER_BUTTON;
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    setup();
    check();
    for (unsigned ops = 0; fin_more(&in) && ops < 4096; ops++) {
        run_op(&in);
        check();
    }
    teardown();
    return 0;
}
