/*
 * A small LRU of cluster-sized metadata tables.  The owner (qcow2_l2.c,
 * qcow2_refcount.c) decides when a dirty victim may be written, because the
 * order of metadata writes is what keeps a crashed image consistent.
 */
#include <stdlib.h>

#include "qcow2_internal.h"

int qcow2_cache_init(struct qcow2_cache *c, unsigned n, uint32_t cs)
{
    c->n = n;
    c->tick = 0;
    c->ent = calloc(n, sizeof(*c->ent));
    if (c->ent == NULL)
        return -1;
    for (unsigned i = 0; i < n; i++) {
        c->ent[i].data = malloc(cs);
        if (c->ent[i].data == NULL)
            return -1;
    }
    return 0;
}

void qcow2_cache_free(struct qcow2_cache *c)
{
    if (c->ent != NULL)
        for (unsigned i = 0; i < c->n; i++)
            free(c->ent[i].data);
    free(c->ent);
    c->ent = NULL;
    c->n = 0;
}

void qcow2_cache_touch(struct qcow2_cache *c, struct qcow2_cache_ent *e)
{
    e->lru = ++c->tick;
}

struct qcow2_cache_ent *qcow2_cache_find(struct qcow2_cache *c, uint64_t off)
{
    for (unsigned i = 0; i < c->n; i++)
        if (c->ent[i].off == off) {
            qcow2_cache_touch(c, &c->ent[i]);
            return &c->ent[i];
        }
    return NULL;
}

struct qcow2_cache_ent *qcow2_cache_victim(struct qcow2_cache *c)
{
    struct qcow2_cache_ent *v = &c->ent[0];
    for (unsigned i = 0; i < c->n; i++) {
        if (c->ent[i].off == 0)
            return &c->ent[i];
        if (c->ent[i].lru < v->lru)
            v = &c->ent[i];
    }
    return v;
}
