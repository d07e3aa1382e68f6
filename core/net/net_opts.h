/* The option string the core gives the virtio_net plugin for one --net. */
#ifndef NIMBUS_NET_OPTS_H
#define NIMBUS_NET_OPTS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/*
 * "fd=A:B,mac=..,[mtu=N,]num_queues=N,queue_size=N,offload_tso=on,...[,id=X]"
 * for a tap with one fd per queue pair, or "user=on[,hostfwd=R;R],mac=..."
 * when nc->user.  nc->mac must be filled in.  Returns the length, or -1 when
 * buf is too small or a value could not be passed on (',' or ';' in it).
 */
int net_plugin_options(const struct net_config *nc, const int *fds, uint32_t nfds, char *buf,
                       size_t len);

#endif
