/*
 * GED register: see ged.h.  Presses come from the VMM's threads and reads
 * from vCPU threads, so the pending bits and the line level change
 * together under one lock: a press racing a read can never leave the
 * line low with a bit pending (a lost button) or high with none pending
 * (an interrupt storm of empty _EVT runs).
 */
#include "ged.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acpi.h"
#include "../log.h"

struct ged {
    struct bus *pio;
    uint16_t port;
    uint32_t gsi;
    int (*irq_line)(void *opaque, uint32_t gsi, uint32_t level);
    void *opaque;

    pthread_mutex_t lock;
    uint8_t pending; /* ACPI_GED_EVT_* bits not yet read by the guest */
    bool line;       /* level last driven */
};

/* With g->lock held. */
static void set_line(struct ged *g, bool level)
{
    if (g->line == level)
        return;
    int r = g->irq_line(g->opaque, g->gsi, level ? 1 : 0);
    if (r < 0) {
        log_error("GED: cannot %s GSI %u: %s", level ? "raise" : "lower", g->gsi, strerror(-r));
        return;
    }
    g->line = level;
}

static void ged_io(void *opaque, uint32_t region, uint64_t offset, void *data, uint32_t len,
                   int is_write)
{
    struct ged *g = opaque;
    (void)region;
    (void)offset;
    if (is_write)
        return;
    memset(data, 0, len);
    pthread_mutex_lock(&g->lock);
    *(uint8_t *)data = g->pending;
    g->pending = 0;
    set_line(g, false);
    pthread_mutex_unlock(&g->lock);
}

struct ged *ged_create(struct bus *pio, uint16_t port, uint32_t gsi,
                       int (*irq_line)(void *opaque, uint32_t gsi, uint32_t level), void *opaque,
                       char *err, size_t errlen)
{
    if (!pio || !port || !irq_line) {
        snprintf(err, errlen, "GED: needs an I/O port and an interrupt line");
        return NULL;
    }
    struct ged *g = calloc(1, sizeof(*g));
    if (!g) {
        snprintf(err, errlen, "GED: out of memory");
        return NULL;
    }
    *g = (struct ged){.pio = pio, .port = port, .gsi = gsi, .irq_line = irq_line, .opaque = opaque};
    pthread_mutex_init(&g->lock, NULL);
    int r = bus_add(pio, port, 1, ged_io, g, 0);
    if (r < 0) {
        snprintf(err, errlen, "GED: cannot claim I/O port 0x%x: %s", port, strerror(-r));
        pthread_mutex_destroy(&g->lock);
        free(g);
        return NULL;
    }
    return g;
}

void ged_event(struct ged *g, uint8_t bits)
{
    if (!g || !bits)
        return;
    pthread_mutex_lock(&g->lock);
    g->pending |= bits;
    set_line(g, true);
    pthread_mutex_unlock(&g->lock);
}

void ged_power_button(struct ged *g)
{
    ged_event(g, ACPI_GED_EVT_POWER_BUTTON);
}

void ged_destroy(struct ged *g)
{
    if (!g)
        return;
    bus_remove(g->pio, g->port);
    pthread_mutex_destroy(&g->lock);
    free(g);
}
