/* Internal glue between fake_host.c and fake_virtio.c (not for harnesses). */
#ifndef NIMBUS_FAKE_HOST_PRIV_H
#define NIMBUS_FAKE_HOST_PRIV_H

#include <stdint.h>

#include "fake_host.h"

/* Count a contract violation in *counter (abort() when asked to). */
void fake_host_violation(struct fake_host *h, uint64_t *counter, const char *what);

/* Fill the minor-1 services into h->api; h is otherwise initialised. */
void fake_virtio_init(struct fake_host *h);
void fake_virtio_fini(struct fake_host *h);
void fake_virtio_snapshot_take(const struct fake_host *h, struct fake_host_snapshot *s);
void fake_virtio_snapshot_restore(struct fake_host *h, const struct fake_host_snapshot *s);

#endif
