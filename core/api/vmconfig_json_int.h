/* Shared between the VmConfig and NetConfig parsers (core/api/). */
#ifndef NIMBUS_API_VMCONFIG_JSON_INT_H
#define NIMBUS_API_VMCONFIG_JSON_INT_H

#include <cjson/cJSON.h>

#include "api/json_read.h"
#include "config.h"

/* One NetConfig object at `path` ("" for a vm.add-net body, "net[2]" in a
 * VmConfig) into a zeroed nc; sets the --net defaults first.  *fds_in_body
 * is set to 1 when the object has an "fds" array.  Returns 0 or -1. */
int netconfig_from_obj(struct jr *r, const cJSON *o, const char *path, struct net_config *nc,
                       int *fds_in_body);

/* nc's id and tap name against nets[0..n-1] (nc itself skipped).  Returns 0 or -1. */
int netconfig_unique(struct jr *r, const struct net_config *nets, uint32_t n,
                     const struct net_config *nc, const char *path);

#endif
