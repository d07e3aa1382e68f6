/*
 * add-net: NetConfig syntax ("tap=vmtap0,mac=...,fd=[3,4]") parsed by
 * nimbus's own --net parser, so the syntax and every error message are the
 * command line's, then sent as the Cloud Hypervisor NetConfig JSON body the
 * server reads (netconfig_to_cjson(), the shape vm.info shows; user=on and
 * hostfwd travel as nimbus's own "user"/"hostfwd" members).
 * fd=[...] is not in the body: those descriptors of this process go with the
 * request as SCM_RIGHTS, as ch-remote does (the server's view of the
 * numbers would differ anyway).
 */
#ifndef NIMBUS_REMOTE_NET_BODY_H
#define NIMBUS_REMOTE_NET_BODY_H

#include <stddef.h>

#include "config.h"

#define NET_BODY_MAX_FDS CONFIG_MAX_NET_FDS

/*
 * Returns the malloc'ed JSON body and fills fds/nfds (checked to be open
 * here), or NULL with a one-line reason in err ("mac 'x' is not ...").
 */
char *net_body_build(const char *syntax, int fds[NET_BODY_MAX_FDS], size_t *nfds,
                     char *err, size_t errlen);

#endif
