/*
 * What nimbus-remote prints for a response: a 200 body on stdout as
 * received, or for any status but 200/204 one line on stderr,
 * "nimbus-remote: <endpoint>: HTTP <code>: <messages>", where the messages
 * are the JSON array of strings Cloud Hypervisor's server sends (outermost
 * first), joined with ": ".
 */
#ifndef NIMBUS_REMOTE_REPLY_H
#define NIMBUS_REMOTE_REPLY_H

#include <stdio.h>

#include "http_client.h"

/* Returns the exit status: 0 for 200/204, 1 otherwise (or if out fails). */
int reply_report(const char *endpoint, const struct remote_reply *rp, FILE *out,
                 FILE *errout);

#endif
