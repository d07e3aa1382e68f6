#include "pci_hotplug.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pcihp {
    struct bus *pio;
    uint16_t port;
    void (*ejected_cb)(void *opaque);
    void *opaque;
    pthread_mutex_t lock;
    uint32_t up, down, ejected;
};

static void pcihp_io(void *opaque, uint32_t region, uint64_t offset, void *data, uint32_t len,
                     int is_write)
{
    struct pcihp *p = opaque;
    (void)region;
    /* Only aligned dwords: that is what the DSDT's DWordAcc field makes. */
    if (len != 4 || (offset & 3u)) {
        if (!is_write)
            memset(data, 0xff, len);
        return;
    }
    uint32_t v = 0;
    int notify = 0;
    pthread_mutex_lock(&p->lock);
    if (!is_write) {
        if (offset == PCIHP_REG_UP) {
            v = p->up;
            p->up = 0;
        } else if (offset == PCIHP_REG_DOWN) {
            v = p->down;
            p->down = 0;
        }
        memcpy(data, &v, 4);
    } else if (offset == PCIHP_REG_EJECT) {
        memcpy(&v, data, 4);
        v &= PCIHP_SLOTS_MASK;
        notify = v && (v & ~p->ejected);
        p->ejected |= v;
    }
    pthread_mutex_unlock(&p->lock);
    if (notify)
        p->ejected_cb(p->opaque);
}

struct pcihp *pcihp_create(struct bus *pio, uint16_t port, void (*ejected)(void *opaque),
                           void *opaque, char *err, size_t errlen)
{
    if (!pio || !port || !ejected) {
        snprintf(err, errlen, "PCI hotplug: needs I/O ports and an eject callback");
        return NULL;
    }
    struct pcihp *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "PCI hotplug: out of memory");
        return NULL;
    }
    p->pio = pio;
    p->port = port;
    p->ejected_cb = ejected;
    p->opaque = opaque;
    pthread_mutex_init(&p->lock, NULL);
    int r = bus_add(pio, port, PCIHP_PORT_LEN, pcihp_io, p, 0);
    if (r < 0) {
        snprintf(err, errlen, "PCI hotplug: cannot claim I/O ports 0x%x-0x%x: %s", port,
                 port + PCIHP_PORT_LEN - 1, strerror(-r));
        pthread_mutex_destroy(&p->lock);
        free(p);
        return NULL;
    }
    return p;
}

void pcihp_plugged(struct pcihp *p, uint32_t slot)
{
    if (!p || slot >= 32)
        return;
    pthread_mutex_lock(&p->lock);
    p->up |= (1u << slot) & PCIHP_SLOTS_MASK;
    p->down &= ~(1u << slot);
    p->ejected &= ~(1u << slot);
    pthread_mutex_unlock(&p->lock);
}

void pcihp_unplug_request(struct pcihp *p, uint32_t slot)
{
    if (!p || slot >= 32)
        return;
    pthread_mutex_lock(&p->lock);
    p->down |= (1u << slot) & PCIHP_SLOTS_MASK;
    p->up &= ~(1u << slot);
    pthread_mutex_unlock(&p->lock);
}

uint32_t pcihp_take_ejected(struct pcihp *p)
{
    if (!p)
        return 0;
    pthread_mutex_lock(&p->lock);
    uint32_t v = p->ejected;
    p->ejected = 0;
    pthread_mutex_unlock(&p->lock);
    return v;
}

void pcihp_destroy(struct pcihp *p)
{
    if (!p)
        return;
    bus_remove(p->pio, p->port);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
