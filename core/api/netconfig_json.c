/*
 * CH NetConfig -> struct net_config, for vm.create's net[] and the body of
 * vm.add-net.  The same checks as --net (core/cli.c), through the same
 * helpers (net/net_check.h) and limits (config_limits.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/json_read.h"
#include "api/vmconfig_json.h"
#include "api/vmconfig_json_int.h"
#include "config_limits.h"
#include "log.h"
#include "net/net_addr.h"
#include "net/net_check.h"

/* A MAC member, checked as --net checks mac= and host_mac=. */
static int read_mac(struct jr *r, const cJSON *o, const char *path, const char *key,
                    uint8_t mac[6], int *given)
{
    const char *s;
    if (jr_string(r, o, path, key, 1, &s) < 0)
        return -1;
    if (!s)
        return 0;
    const char *why = net_check_mac(s, mac);
    if (why)
        return jr_fail(r, path, key, "'%.64s' %s", s, why);
    *given = 1;
    return 0;
}

/* Members that only "user": true (libslirp) takes, or that it rules out. */
static int read_user(struct jr *r, const cJSON *o, const char *path, struct net_config *nc,
                     int nq_given)
{
    static const char *const tap_only[] = {"tap", "ip", "mask", "host_mac"};
    for (size_t i = 0; i < sizeof(tap_only) / sizeof(tap_only[0]); i++) {
        const cJSON *v;
        if (jr_member(r, o, path, tap_only[i], &v) < 0)
            return -1;
        if (v)
            return jr_fail(r, path, tap_only[i], "cannot be combined with \"user\": true");
    }
    if (nq_given && nc->num_queues != 2)
        return jr_fail(r, path, "num_queues", "user mode serves one queue pair, so it must "
                       "be 2, got %u", nc->num_queues);
    const cJSON *arr;
    size_t n;
    if (jr_array(r, o, path, "hostfwd", CONFIG_MAX_HOSTFWD, &arr, &n) < 0)
        return -1;
    size_t i = 0;
    for (const cJSON *it = arr ? arr->child : NULL; it; it = it->next, i++) {
        char at[48], why[96];
        jr_index(at, sizeof(at), "hostfwd", i);
        if (!cJSON_IsString(it) || !it->valuestring)
            return jr_fail(r, path, at, "expected a string, got %s", jr_type_name(it));
        if (net_hostfwd_check(it->valuestring, why, sizeof(why)) < 0)
            return jr_fail(r, path, at, "bad rule '%.64s': %s", it->valuestring, why);
        if (!(nc->hostfwd[nc->nhostfwd] = strdup(it->valuestring)))
            return jr_fail(r, path, at, "out of memory");
        nc->nhostfwd++;
    }
    return 0;
}

/* The tap side: a tap name (empty: the kernel names it) and its host address. */
static int read_tap(struct jr *r, const cJSON *o, const char *path, struct net_config *nc)
{
    const cJSON *fwd;
    if (jr_member(r, o, path, "hostfwd", &fwd) < 0)
        return -1;
    if (fwd)
        return jr_fail(r, path, "hostfwd", "needs \"user\": true");
    const char *tap, *ip, *mask;
    if (jr_string(r, o, path, "tap", 1, &tap) < 0 || jr_string(r, o, path, "ip", 0, &ip) < 0 ||
        jr_string(r, o, path, "mask", 0, &mask) < 0)
        return -1;
    if (tap && tap[0]) {
        if (!net_tap_name_ok(tap))
            return jr_fail(r, path, "tap", "'%.64s' is not a valid tap name (1-%u characters "
                           "of A-Z a-z 0-9 . _ -)", tap, CLI_NET_IFNAME_MAX);
        if (!(nc->tap = strdup(tap)))
            return jr_fail(r, path, "tap", "out of memory");
    }
    if (mask && !ip)
        return jr_fail(r, path, "mask", "needs ip");
    if (ip) {
        const char *why = net_check_host_ip(ip, &nc->ip);
        if (why)
            return jr_fail(r, path, "ip", "'%.64s' %s", ip, why);
        const char *m = mask ? mask : CLI_NET_DEFAULT_MASK;
        if ((why = net_check_mask(m, &nc->mask)))
            return jr_fail(r, path, "mask", "'%.64s' %s", m, why);
        nc->ip_given = 1;
        nc->mask_given = mask != NULL;
    }
    return read_mac(r, o, path, "host_mac", nc->host_mac, &nc->host_mac_given);
}

/* Members CH has and nimbus cannot honour, or reads and ignores. */
static int read_unsupported(struct jr *r, const cJSON *o, const char *path,
                            int *fds_in_body)
{
    static const char *const vhost_modes[] = {"Client", "Server"};
    int iommu = 0, vhost_user = 0, mode;
    uint32_t segment = 0;
    const char *socket;
    const cJSON *v;
    size_t n;
    if (jr_bool(r, o, path, "iommu", &iommu) < 0 ||
        jr_bool(r, o, path, "vhost_user", &vhost_user) < 0 ||
        jr_string(r, o, path, "vhost_socket", 1, &socket) < 0 ||
        jr_enum(r, o, path, "vhost_mode", vhost_modes, 2, &mode) < 0 ||
        jr_u32(r, o, path, "pci_segment", 0, UINT16_MAX, &segment, NULL) < 0)
        return -1;
    if (iommu)
        return jr_fail(r, path, "iommu", "not supported");
    if (vhost_user)
        return jr_fail(r, path, "vhost_user", "not supported");
    if (segment)
        return jr_fail(r, path, "pci_segment", "only segment 0 exists, got %u", segment);
    /* CH ignores fds in a body too: they come as SCM_RIGHTS with vm.add-net. */
    if (jr_array(r, o, path, "fds", SIZE_MAX, &v, &n) < 0)
        return -1;
    if (v && fds_in_body)
        *fds_in_body = 1;
    if (jr_object(r, o, path, "rate_limiter_config", &v) < 0)
        return -1;
    if (v)
        log_warn("%s%srate_limiter_config: rate limiting is not supported yet and is ignored",
                 path, *path ? "." : "");
    return 0;
}

int netconfig_from_obj(struct jr *r, const cJSON *o, const char *path, struct net_config *nc,
                       int *fds_in_body)
{
    nc->num_queues = 2;
    nc->queue_size = CLI_NET_DEFAULT_QUEUE_SIZE;
    nc->offload_tso = nc->offload_ufo = nc->offload_csum = 1;
    if (!cJSON_IsObject(o))
        return jr_fail(r, *path ? path : "body", NULL, "expected an object, got %s",
                       jr_type_name(o));
    int nq_given = 0;
    if (jr_bool(r, o, path, "user", &nc->user) < 0 ||
        jr_bool(r, o, path, "offload_tso", &nc->offload_tso) < 0 ||
        jr_bool(r, o, path, "offload_ufo", &nc->offload_ufo) < 0 ||
        jr_bool(r, o, path, "offload_csum", &nc->offload_csum) < 0 ||
        jr_u32(r, o, path, "mtu", CLI_NET_MIN_MTU, CLI_NET_MAX_MTU, &nc->mtu, NULL) < 0 ||
        jr_u32(r, o, path, "num_queues", 2, CONFIG_MAX_NET_QUEUES, &nc->num_queues,
               &nq_given) < 0 ||
        jr_u32(r, o, path, "queue_size", CLI_NET_MIN_QUEUE_SIZE, CLI_NET_MAX_QUEUE_SIZE,
               &nc->queue_size, NULL) < 0 ||
        read_unsupported(r, o, path, fds_in_body) < 0)
        return -1;
    if (nc->num_queues % 2)
        return jr_fail(r, path, "num_queues", "must be even (an rx and a tx queue per pair), "
                       "got %u", nc->num_queues);
    if (nc->queue_size & (nc->queue_size - 1))
        return jr_fail(r, path, "queue_size", "must be a power of two, got %u",
                       nc->queue_size);
    if (read_mac(r, o, path, "mac", nc->mac, &nc->mac_given) < 0)
        return -1;
    const char *id;
    if (jr_string(r, o, path, "id", 0, &id) < 0)
        return -1;
    if (id) {
        /* Plugin options are split on ',' (and hostfwd rules on ';'). */
        if (strpbrk(id, ",;"))
            return jr_fail(r, path, "id", "'%.64s' must not contain ',' or ';'", id);
        if (!(nc->id = strdup(id)))
            return jr_fail(r, path, "id", "out of memory");
    }
    return nc->user ? read_user(r, o, path, nc, nq_given) : read_tap(r, o, path, nc);
}

int netconfig_unique(struct jr *r, const struct net_config *nets, uint32_t n,
                     const struct net_config *nc, const char *path)
{
    for (uint32_t i = 0; i < n; i++) {
        if (&nets[i] == nc)
            continue;
        if (nc->id && nets[i].id && strcmp(nc->id, nets[i].id) == 0)
            return jr_fail(r, path, "id", "'%.64s' is used by net[%u]", nc->id, i);
        if (nc->tap && nets[i].tap && strcmp(nc->tap, nets[i].tap) == 0)
            return jr_fail(r, path, "tap", "'%s' is used by net[%u]", nc->tap, i);
    }
    return 0;
}

int netconfig_check_unique(const struct vm_config *cfg, const struct net_config *nc,
                           char *err, size_t errlen)
{
    struct jr r = {.err = err, .errlen = errlen};
    return netconfig_unique(&r, cfg->nets, cfg->nnets, nc, "");
}

int netconfig_from_json(const char *json, size_t len, struct net_config *nc,
                        int *fds_in_body, char *err, size_t errlen)
{
    struct jr r = {.err = err, .errlen = errlen};
    if (err && errlen)
        err[0] = '\0';
    if (fds_in_body)
        *fds_in_body = 0;
    cJSON *root = jr_parse(&r, json, len);
    if (!root)
        return -1;
    int rc = netconfig_from_obj(&r, root, "", nc, fds_in_body);
    cJSON_Delete(root);
    return rc;
}
