#include "net/net_opts.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "net/net_addr.h"

struct sbuf {
    char *p;
    size_t len, n;
    int bad;
};

static void add(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add(struct sbuf *b, const char *fmt, ...)
{
    if (b->bad)
        return;
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(b->p + b->n, b->len - b->n, fmt, ap);
    va_end(ap);
    if (r < 0 || (size_t)r >= b->len - b->n)
        b->bad = 1;
    else
        b->n += (size_t)r;
}

/* Plugin options split on ',' and hostfwd rules on ';'. */
static int passable(const char *s)
{
    return !s || !strpbrk(s, ",;");
}

int net_plugin_options(const struct net_config *nc, const int *fds, uint32_t nfds, char *buf,
                       size_t len)
{
    struct sbuf b = { .p = buf, .len = len };
    if (!buf || len == 0 || !passable(nc->id))
        return -1;
    buf[0] = '\0';
    if (nc->user) {
        add(&b, "user=on");
        for (uint32_t i = 0; i < nc->nhostfwd; i++) {
            if (!passable(nc->hostfwd[i]))
                return -1;
            add(&b, "%s%s", i ? ";" : ",hostfwd=", nc->hostfwd[i]);
        }
    } else {
        if (nfds == 0 || nfds * 2 != nc->num_queues)
            return -1;
        for (uint32_t i = 0; i < nfds; i++)
            add(&b, "%s%d", i ? ":" : "fd=", fds[i]);
    }
    char mac[NET_MAC_STRLEN];
    net_format_mac(nc->mac, mac);
    add(&b, ",mac=%s", mac);
    if (nc->mtu)
        add(&b, ",mtu=%u", nc->mtu);
    add(&b, ",num_queues=%u,queue_size=%u,offload_tso=%s,offload_ufo=%s,offload_csum=%s",
        nc->num_queues, nc->queue_size, nc->offload_tso ? "on" : "off",
        nc->offload_ufo ? "on" : "off", nc->offload_csum ? "on" : "off");
    if (nc->id)
        add(&b, ",id=%s", nc->id);
    return b.bad ? -1 : (int)b.n;
}
