/* Option string -> struct net_opts.  Untrusted text: every token checked. */
#include <arpa/inet.h>
#include <stdlib.h>

#include "net.h"

#define KNOWN "fd, user, hostfwd, mac, mtu, num_queues, queue_size, offload_tso, " \
              "offload_ufo, offload_csum, id"

static int parse_mac(const char *s, uint8_t mac[6])
{
    unsigned v[6];
    char tail;
    if (strlen(s) != 17 ||
        sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
               &tail) != 6)
        return -EINVAL;
    for (int i = 0; i < 6; i++) {
        if (s[3 * i + 2] != ':' && i < 5)
            return -EINVAL;
        mac[i] = (uint8_t)v[i];
    }
    /* A guest NIC needs a unicast address that is not all zeroes. */
    if ((mac[0] & 1) || !(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]))
        return -EINVAL;
    return 0;
}

static int parse_fds(struct net_opts *o, const char *s)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", s);
    o->nfds = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, ":", &save); t; t = strtok_r(NULL, ":", &save)) {
        uint64_t v;
        if (o->nfds >= NET_MAX_PAIRS || nimbus_opt_u64(t, 1u << 20, &v) < 0)
            return -EINVAL;
        o->fds[o->nfds++] = (int)v;
    }
    return o->nfds ? 0 : -EINVAL;
}

static int parse_port(const char *s, size_t n, uint16_t *port)
{
    char b[8];
    uint64_t v;
    if (n == 0 || n >= sizeof(b))
        return -EINVAL;
    memcpy(b, s, n);
    b[n] = '\0';
    if (nimbus_opt_u64(b, 65535, &v) < 0 || v == 0)
        return -EINVAL;
    *port = (uint16_t)v;
    return 0;
}

static int parse_addr(const char *s, size_t n, char out[16])
{
    struct in_addr a;
    if (n == 0) {
        out[0] = '\0';
        return 0;
    }
    if (n >= 16)
        return -EINVAL;
    memcpy(out, s, n);
    out[n] = '\0';
    return inet_pton(AF_INET, out, &a) == 1 ? 0 : -EINVAL;
}

/* QEMU's form: [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport */
int net_parse_hostfwd(struct net_hostfwd *f, const char *rule)
{
    memset(f, 0, sizeof(*f));
    const char *p = rule;
    if (!strncmp(p, "tcp:", 4)) {
        p += 4;
    } else if (!strncmp(p, "udp:", 4)) {
        f->udp = 1;
        p += 4;
    }
    const char *dash = strchr(p, '-');
    if (!dash)
        return -EINVAL;
    const char *c1 = memchr(p, ':', (size_t)(dash - p));
    if (!c1 || parse_addr(p, (size_t)(c1 - p), f->host_addr) < 0 ||
        parse_port(c1 + 1, (size_t)(dash - c1 - 1), &f->host_port) < 0)
        return -EINVAL;
    const char *g = dash + 1;
    const char *c2 = strchr(g, ':');
    if (!c2 || parse_addr(g, (size_t)(c2 - g), f->guest_addr) < 0 ||
        parse_port(c2 + 1, strlen(c2 + 1), &f->guest_port) < 0)
        return -EINVAL;
    return 0;
}

static int parse_hostfwds(struct net_opts *o, const char *s)
{
    char buf[1024];
    if (strlen(s) >= sizeof(buf))
        return -EINVAL;
    snprintf(buf, sizeof(buf), "%s", s);
    char *save = NULL;
    for (char *t = strtok_r(buf, ";", &save); t; t = strtok_r(NULL, ";", &save)) {
        if (o->nfwd >= NET_MAX_HOSTFWD || net_parse_hostfwd(&o->fwd[o->nfwd], t) < 0)
            return -EINVAL;
        o->nfwd++;
    }
    return 0;
}

static int u32_in(const char *v, uint32_t lo, uint32_t hi, uint32_t *out)
{
    uint64_t x;
    if (nimbus_opt_u64(v, hi, &x) < 0 || x < lo)
        return -EINVAL;
    *out = (uint32_t)x;
    return 0;
}

int net_parse_options(struct net_opts *o, const char *opts, char *err, uint32_t errlen)
{
    char key[64], val[1024];
    size_t pos = 0;
    int rc, have_mac = 0;
    memset(o, 0, sizeof(*o));
    o->queue_size = NET_DEFAULT_QUEUE_SIZE;
    o->offload_tso = o->offload_ufo = o->offload_csum = 1;
    while ((rc = nimbus_opt_next(opts, &pos, key, sizeof(key), val, sizeof(val))) != 0) {
        if (rc < 0) {
            nimbus_errf(err, errlen, "virtio_net: malformed option '%s'", key);
            return -EINVAL;
        }
        int bad = 0;
        if (!strcmp(key, "fd"))
            bad = parse_fds(o, val);
        else if (!strcmp(key, "user"))
            bad = nimbus_opt_bool(val, &o->user);
        else if (!strcmp(key, "hostfwd"))
            bad = parse_hostfwds(o, val);
        else if (!strcmp(key, "mac"))
            bad = parse_mac(val, o->mac), have_mac = !bad;
        else if (!strcmp(key, "mtu"))
            bad = u32_in(val, 68, 65535, &o->mtu);
        else if (!strcmp(key, "num_queues"))
            bad = u32_in(val, 2, 2 * NET_MAX_PAIRS, &o->num_queues) || (o->num_queues & 1);
        else if (!strcmp(key, "queue_size"))
            bad = u32_in(val, NET_MIN_QUEUE_SIZE, NET_MAX_QUEUE_SIZE, &o->queue_size) ||
                  (o->queue_size & (o->queue_size - 1));
        else if (!strcmp(key, "offload_tso"))
            bad = nimbus_opt_bool(val, &o->offload_tso);
        else if (!strcmp(key, "offload_ufo"))
            bad = nimbus_opt_bool(val, &o->offload_ufo);
        else if (!strcmp(key, "offload_csum"))
            bad = nimbus_opt_bool(val, &o->offload_csum);
        else if (!strcmp(key, "id"))
            bad = strlen(val) >= sizeof(o->id) ? -EINVAL
                                               : (memcpy(o->id, val, strlen(val) + 1), 0);
        else {
            nimbus_errf(err, errlen, "virtio_net: unknown option '%s' (known: %s)", key, KNOWN);
            return -EINVAL;
        }
        if (bad) {
            nimbus_errf(err, errlen, "virtio_net: invalid %s '%s'", key, val);
            return -EINVAL;
        }
    }
    if (!have_mac) {
        nimbus_errf(err, errlen, "virtio_net: mac= is required");
        return -EINVAL;
    }
    if (o->user == (o->nfds > 0)) {
        nimbus_errf(err, errlen, "virtio_net: give either fd= or user=on");
        return -EINVAL;
    }
    if (o->nfwd && !o->user) {
        nimbus_errf(err, errlen, "virtio_net: hostfwd needs user=on");
        return -EINVAL;
    }
    uint32_t pairs = o->user ? 1 : o->nfds;
    if (o->num_queues == 0)
        o->num_queues = 2 * pairs;
    if (o->num_queues != 2 * pairs) {
        nimbus_errf(err, errlen,
                    "virtio_net: num_queues %u needs %u fds (one per queue pair), got %u%s",
                    o->num_queues, o->num_queues / 2, pairs, o->user ? " (user=on has one)" : "");
        return -EINVAL;
    }
    return 0;
}
