/*
 * Cloud Hypervisor's JSON bodies <-> struct vm_config: VmConfig
 * (vm.create, and vm.info's "config") and NetConfig (vm.add-net).
 *
 * Parsing follows CH's serde rules: unknown members are ignored, members CH
 * requires are required (cpus.boot_vcpus/max_vcpus, memory.size, rng.src,
 * serial/console.mode, the four topology fields), the rest default as in
 * CH.  A member given as JSON null reads as absent.  Values are checked as
 * strictly as the command line checks them, with the same limits
 * (config_limits.h), and config_validate() runs last, so a config is
 * accepted or refused the same way whichever way it arrives.  Features CH
 * has and nimbus does not are refused when they would change what the
 * guest gets (kvm_hyperv, vhost_user, iommu, firmware, memory zones) and
 * ignored with one warning when Kata or libvirt send them routinely (vsock,
 * fs, platform, ...).
 *
 * Not in CH: "user": true and "hostfwd": [rules] in a NetConfig stand for
 * --net user=on,hostfwd=[...], so vm.info can show such a net and the
 * result parses back to the same config.
 */
#ifndef NIMBUS_API_VMCONFIG_JSON_H
#define NIMBUS_API_VMCONFIG_JSON_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "config.h"

/* Parse a CH VmConfig body into cfg (config_init'ed by the caller).  Unknown fields are
 * ignored (as CH does).  Type and range errors name the JSON path: "memory.size: ...".
 * Ends with config_validate().  On error returns -1 with err set; cfg may hold partial
 * data, which the caller frees with config_free(). */
int vmconfig_from_json(const char *json, size_t len, struct vm_config *cfg, char *err,
                       size_t errlen);

/* Parse a CH NetConfig body (vm.add-net) into nc (zeroed by the caller; defaults
 * like the CLI's --net: num_queues 2, queue_size 256, offloads on).  A "fds" array in
 * the body is ignored (CH ignores it: fds come as SCM_RIGHTS); that fact is returned
 * through *fds_in_body (may be NULL) so the caller can log it.  Checks that need the
 * rest of the VM (ids and tap names unique, num_queues against the fds received)
 * are the caller's: see netconfig_check_unique().  On error nc may hold strings:
 * net_config_free() releases them. */
int netconfig_from_json(const char *json, size_t len, struct net_config *nc,
                        int *fds_in_body, char *err, size_t errlen);

/* Whether nc may join cfg's nets: its id and its tap name (if any) are not
 * used by another net, as --net and vm.create require.  Returns 0 or -1 with
 * err set. */
int netconfig_check_unique(const struct vm_config *cfg, const struct net_config *nc,
                           char *err, size_t errlen);

/* net_config_free() (config.h) frees the strings of one net_config. */

/* Parse a CH DiskConfig body (vm.add-disk) into d, with vm.create's checks and
 * defaults (num_queues 1, queue_size 128); its id must not be one of cfg's
 * disks'.  On error d may hold strings: disk_config_free() releases them. */
int diskconfig_from_json(const char *json, size_t len, const struct vm_config *cfg,
                         struct disk_config *d, char *err, size_t errlen);

/* CH-shaped JSON of a config (NULL when out of memory).  serial_file/console_file: the
 * pty path the VM allocated, reported as "file" when the mode is Pty (libvirt reads
 * config.console.file); may be NULL.  The caller owns the tree (cJSON_Delete). */
cJSON *vmconfig_to_cjson(const struct vm_config *cfg, const char *serial_file,
                         const char *console_file);
cJSON *netconfig_to_cjson(const struct net_config *nc);
cJSON *diskconfig_to_cjson(const struct disk_config *d);

#endif
