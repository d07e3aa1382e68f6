#include "hp_slots.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Per-slot state: the guest-visible bits plus the host's bookkeeping. */
#define F_WANT_OUT 0x10u /* the host asked for a removal, no eject yet */
#define F_EJECTED 0x20u  /* ejected, not yet taken by the owner */

struct hp_slots {
    struct bus *pio;
    uint16_t port;
    uint32_t n, fixed;
    void (*ejected_cb)(void *opaque);
    void *opaque;
    pthread_mutex_t lock;
    uint32_t sel;
    uint8_t *flags;
};

static uint32_t next_event(const struct hp_slots *c)
{
    for (uint32_t i = 0; i < c->n; i++)
        if (c->flags[i] & (HPS_ST_INSERT | HPS_ST_REMOVE))
            return i;
    return HPS_NONE;
}

/* The status byte's command half; returns 1 when an eject happened. */
static int command(struct hp_slots *c, uint8_t cmd)
{
    if (c->sel >= c->n)
        return 0;
    uint8_t *f = &c->flags[c->sel];
    *f &= (uint8_t)~(cmd & (HPS_ST_INSERT | HPS_ST_REMOVE));
    if (!(cmd & HPS_CMD_EJECT) || c->sel < c->fixed || !(*f & HPS_ST_PRESENT))
        return 0;
    *f = F_EJECTED;
    return 1;
}

static void hps_io(void *opaque, uint32_t region, uint64_t offset, void *data, uint32_t len,
                     int is_write)
{
    struct hp_slots *c = opaque;
    (void)region;
    /* The DSDT makes aligned dword accesses to the first two registers and
     * byte accesses to the status byte; anything else reads as ones. */
    int dword = len == 4 && (offset == HPS_REG_SEL || offset == HPS_REG_NEXT);
    int byte = len == 1 && offset == HPS_REG_STATUS;
    if (!dword && !byte) {
        if (!is_write)
            memset(data, 0xff, len);
        return;
    }
    int ejected = 0;
    pthread_mutex_lock(&c->lock);
    if (is_write && offset == HPS_REG_SEL) {
        memcpy(&c->sel, data, 4);
    } else if (is_write && byte) {
        ejected = command(c, *(const uint8_t *)data);
    } else if (!is_write) {
        uint32_t v = offset == HPS_REG_SEL ? c->sel : next_event(c);
        if (byte)
            *(uint8_t *)data = c->sel < c->n ? (uint8_t)(c->flags[c->sel] & 0x07u) : 0;
        else
            memcpy(data, &v, 4);
    }
    pthread_mutex_unlock(&c->lock);
    if (ejected)
        c->ejected_cb(c->opaque);
}

struct hp_slots *hps_create(struct bus *pio, uint16_t port, uint32_t n, uint32_t present,
                            uint32_t fixed, void (*ejected)(void *opaque), void *opaque,
                            char *err, size_t errlen)
{
    if (!pio || !port || !ejected || n == 0 || present > n) {
        snprintf(err, errlen, "hotplug slots: needs I/O ports, an eject callback and slots");
        return NULL;
    }
    struct hp_slots *c = calloc(1, sizeof(*c));
    uint8_t *flags = calloc(n, 1);
    if (!c || !flags) {
        free(c);
        free(flags);
        snprintf(err, errlen, "hotplug slots: out of memory");
        return NULL;
    }
    for (uint32_t i = 0; i < present; i++)
        flags[i] = HPS_ST_PRESENT;
    *c = (struct hp_slots){.pio = pio, .port = port, .n = n, .fixed = fixed,
                           .ejected_cb = ejected, .opaque = opaque, .flags = flags};
    pthread_mutex_init(&c->lock, NULL);
    int r = bus_add(pio, port, HPS_PORT_LEN, hps_io, c, 0);
    if (r < 0) {
        snprintf(err, errlen, "hotplug slots: cannot claim I/O ports 0x%x-0x%x: %s", port,
                 port + HPS_PORT_LEN - 1, strerror(-r));
        pthread_mutex_destroy(&c->lock);
        free(flags);
        free(c);
        return NULL;
    }
    return c;
}

void hps_plugged(struct hp_slots *c, uint32_t i)
{
    if (!c || i >= c->n)
        return;
    pthread_mutex_lock(&c->lock);
    c->flags[i] = HPS_ST_PRESENT | HPS_ST_INSERT;
    pthread_mutex_unlock(&c->lock);
}

void hps_unplug_request(struct hp_slots *c, uint32_t i)
{
    if (!c || i >= c->n)
        return;
    pthread_mutex_lock(&c->lock);
    if (c->flags[i] & HPS_ST_PRESENT)
        c->flags[i] = HPS_ST_PRESENT | HPS_ST_REMOVE | F_WANT_OUT;
    pthread_mutex_unlock(&c->lock);
}

int hps_present(struct hp_slots *c, uint32_t i)
{
    if (!c || i >= c->n)
        return 0;
    pthread_mutex_lock(&c->lock);
    int r = (c->flags[i] & HPS_ST_PRESENT) != 0;
    pthread_mutex_unlock(&c->lock);
    return r;
}

int hps_removal_pending(struct hp_slots *c)
{
    if (!c)
        return 0;
    int r = 0;
    pthread_mutex_lock(&c->lock);
    for (uint32_t i = 0; i < c->n && !r; i++)
        r = (c->flags[i] & (F_WANT_OUT | F_EJECTED)) != 0;
    pthread_mutex_unlock(&c->lock);
    return r;
}

uint32_t hps_take_ejected(struct hp_slots *c)
{
    if (!c)
        return HPS_NONE;
    uint32_t r = HPS_NONE;
    pthread_mutex_lock(&c->lock);
    for (uint32_t i = 0; i < c->n; i++)
        if (c->flags[i] & F_EJECTED) {
            c->flags[i] &= (uint8_t)~F_EJECTED;
            r = i;
            break;
        }
    pthread_mutex_unlock(&c->lock);
    return r;
}

void hps_destroy(struct hp_slots *c)
{
    if (!c)
        return;
    bus_remove(c->pio, c->port);
    pthread_mutex_destroy(&c->lock);
    free(c->flags);
    free(c);
}
