/*
 * User-mode networking: libslirp (QEMU's "-netdev user") inside the plugin,
 * for users without CAP_NET_ADMIN.  The guest gets 10.0.2.15 by DHCP, the
 * gateway 10.0.2.2 (which also reaches the host's loopback) and DNS at
 * 10.0.2.3; its TCP and UDP go out through ordinary host sockets.
 *
 * slirp wants a poll loop.  Its sockets go into a private epoll set whose
 * fd the core watches on queue pair 0's thread; each time it fires we poll
 * the set slirp asked for and let slirp act.  Frames slirp sends to the
 * guest wait in a bounded FIFO; while it is full, slirp's sockets are not
 * read, so TCP backs off instead of frames being dropped.
 */
#include <arpa/inet.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <slirp/libslirp.h>

#include "net.h"

struct user_frame {
    uint32_t len;
    uint8_t data[];
};

struct user_timer {
    int used;
    SlirpTimerId id;
    void *cb_opaque;
};

struct net_user {
    struct net_dev *dev;
    Slirp *slirp;
    int epfd;
    int watching;
    struct pollfd *pfd;
    uint32_t npfd, cap;
    int *reg; /* fds in epfd */
    uint32_t nreg, regcap;
    struct user_frame *fifo[NET_USER_FIFO_FRAMES];
    uint32_t fhead, fcount;
    uint64_t fbytes;
    uint64_t dropped;
    struct user_timer timers[NET_TIMERS];
    uint64_t guest_errors;
};

/* ---- slirp callbacks ---------------------------------------------------- */

static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
    struct net_user *u = opaque;
    /* Queue only: delivering from inside slirp would re-enter it. */
    if (len > NET_MAX_FRAME || u->fcount >= NET_USER_FIFO_FRAMES ||
        u->fbytes + len > NET_USER_FIFO_BYTES) {
        u->dropped++;
        return (ssize_t)len;
    }
    struct user_frame *f = malloc(sizeof(*f) + len);
    if (!f) {
        u->dropped++;
        return (ssize_t)len;
    }
    f->len = (uint32_t)len;
    memcpy(f->data, buf, len);
    u->fifo[(u->fhead + u->fcount) % NET_USER_FIFO_FRAMES] = f;
    u->fcount++;
    u->fbytes += len;
    return (ssize_t)len;
}

static void cb_guest_error(const char *msg, void *opaque)
{
    struct net_user *u = opaque;
    /* A guest can trigger these at will: log the first few only. */
    if (u->guest_errors++ < 8)
        NET_LOG(u->dev, NIMBUS_LOG_WARN, "user network: guest error: %s", msg);
}

static int64_t cb_clock_ns(void *opaque)
{
    struct net_user *u = opaque;
    return (int64_t)u->dev->host->clock_ns(u->dev->hctx);
}

static void *cb_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
    struct net_user *u = opaque;
    for (uint32_t i = 0; i < NET_TIMERS; i++) {
        if (!u->timers[i].used) {
            u->timers[i] = (struct user_timer){1, id, cb_opaque};
            return &u->timers[i];
        }
    }
    NET_LOG(u->dev, NIMBUS_LOG_ERROR, "user network: out of timers");
    return NULL;
}

static uint32_t timer_index(struct net_user *u, void *t)
{
    return (uint32_t)((struct user_timer *)t - u->timers);
}

static void cb_timer_free(void *t, void *opaque)
{
    struct net_user *u = opaque;
    if (!t)
        return;
    uint32_t i = timer_index(u, t);
    u->dev->host->timer_arm(u->dev->hctx, i, 0);
    u->timers[i].used = 0;
}

static void cb_timer_mod(void *t, int64_t expire_ms, void *opaque)
{
    struct net_user *u = opaque;
    if (!t)
        return;
    uint64_t ns = expire_ms > 0 ? (uint64_t)expire_ms * 1000000ull : 1;
    u->dev->host->timer_arm(u->dev->hctx, timer_index(u, t), ns);
}

static void cb_noop_fd(int fd, void *opaque)
{
    (void)fd;
    (void)opaque;
}

static void cb_notify(void *opaque)
{
    (void)opaque; /* we re-poll after every slirp call anyway */
}

static const SlirpCb callbacks = {
    .send_packet = cb_send_packet,
    .guest_error = cb_guest_error,
    .clock_get_ns = cb_clock_ns,
    .timer_free = cb_timer_free,
    .timer_mod = cb_timer_mod,
    .register_poll_fd = cb_noop_fd,
    .unregister_poll_fd = cb_noop_fd,
    .notify = cb_notify,
    .timer_new_opaque = cb_timer_new_opaque,
};

/* ---- the poll set ------------------------------------------------------- */

static int cb_add_poll(int fd, int events, void *opaque)
{
    struct net_user *u = opaque;
    if (u->npfd == u->cap) {
        uint32_t nc = u->cap ? 2 * u->cap : 16;
        struct pollfd *n = realloc(u->pfd, nc * sizeof(*n));
        if (!n)
            return -1;
        u->pfd = n;
        u->cap = nc;
    }
    short ev = 0;
    if (events & SLIRP_POLL_IN)
        ev |= POLLIN;
    if (events & SLIRP_POLL_OUT)
        ev |= POLLOUT;
    if (events & SLIRP_POLL_PRI)
        ev |= POLLPRI;
    u->pfd[u->npfd] = (struct pollfd){.fd = fd, .events = ev};
    return (int)u->npfd++;
}

static int cb_get_revents(int idx, void *opaque)
{
    struct net_user *u = opaque;
    if (idx < 0 || (uint32_t)idx >= u->npfd)
        return 0;
    short r = u->pfd[idx].revents;
    int ev = 0;
    if (r & POLLIN)
        ev |= SLIRP_POLL_IN;
    if (r & POLLOUT)
        ev |= SLIRP_POLL_OUT;
    if (r & POLLPRI)
        ev |= SLIRP_POLL_PRI;
    if (r & POLLERR)
        ev |= SLIRP_POLL_ERR;
    if (r & POLLHUP)
        ev |= SLIRP_POLL_HUP;
    return ev;
}

static int fifo_full(const struct net_user *u)
{
    return u->fcount >= NET_USER_FIFO_FRAMES / 2 || u->fbytes >= NET_USER_FIFO_BYTES / 2;
}

/* Ask slirp what to wait for and mirror it into the epoll set. */
static void refill(struct net_user *u)
{
    uint32_t timeout = UINT32_MAX;
    u->npfd = 0;
    slirp_pollfds_fill(u->slirp, &timeout, cb_add_poll, u);
    /* Drop fds slirp no longer wants, then add or update the rest. */
    for (uint32_t i = 0; i < u->nreg;) {
        int keep = 0;
        for (uint32_t j = 0; j < u->npfd && !keep; j++)
            keep = u->pfd[j].fd == u->reg[i];
        if (!keep) {
            epoll_ctl(u->epfd, EPOLL_CTL_DEL, u->reg[i], NULL);
            u->reg[i] = u->reg[--u->nreg];
        } else {
            i++;
        }
    }
    for (uint32_t j = 0; j < u->npfd; j++) {
        struct epoll_event ev = {.events = (uint32_t)u->pfd[j].events, .data.fd = u->pfd[j].fd};
        if (epoll_ctl(u->epfd, EPOLL_CTL_MOD, u->pfd[j].fd, &ev) == 0)
            continue;
        if (epoll_ctl(u->epfd, EPOLL_CTL_ADD, u->pfd[j].fd, &ev) < 0)
            continue;
        if (u->nreg == u->regcap) {
            uint32_t nc = u->regcap ? 2 * u->regcap : 16;
            int *n = realloc(u->reg, nc * sizeof(*n));
            if (!n) {
                epoll_ctl(u->epfd, EPOLL_CTL_DEL, u->pfd[j].fd, NULL);
                continue;
            }
            u->reg = n;
            u->regcap = nc;
        }
        u->reg[u->nreg++] = u->pfd[j].fd;
    }
}

static void watch_update(struct net_dev *d)
{
    struct net_user *u = d->user;
    int want = d->activated && !fifo_full(u);
    if (want == u->watching)
        return;
    if (want)
        u->watching = d->host->fd_watch_group(d->hctx, 0, u->epfd, NIMBUS_EV_IN,
                                              NET_USER_TOKEN) == 0;
    else
        u->watching = d->host->fd_unwatch(d->hctx, u->epfd) == 0 ? 0 : u->watching;
}

/* ---- plugin side -------------------------------------------------------- */

int net_user_fd(const struct net_dev *d)
{
    return d->user ? d->user->epfd : -1;
}

uint64_t net_user_dropped(const struct net_dev *d)
{
    return d->user ? d->user->dropped : 0;
}

void net_user_rx(struct net_pair *p)
{
    struct net_dev *d = p->dev;
    struct net_user *u = d->user;
    int pushed = 0;
    if (d->activated && net_rx_resume(p, &pushed)) {
        while (u->fcount) {
            struct user_frame *f = u->fifo[u->fhead];
            u->fhead = (u->fhead + 1) % NET_USER_FIFO_FRAMES;
            u->fcount--;
            u->fbytes -= f->len;
            memset(p->bounce, 0, NET_HDR_LEN);
            memcpy(p->bounce + NET_HDR_LEN, f->data, f->len);
            uint32_t len = NET_HDR_LEN + f->len;
            free(f);
            if (!net_rx_deliver(p, len, &pushed))
                break; /* held until the guest posts buffers */
        }
    }
    if (pushed)
        d->host->vq_notify(d->hctx, NET_RXQ(0));
    refill(u);
    watch_update(d);
}

void net_user_fd_ready(struct net_dev *d)
{
    struct net_user *u = d->user;
    uint64_t drain;
    (void)drain;
    int r = poll(u->pfd, u->npfd, 0);
    slirp_pollfds_poll(u->slirp, r < 0, cb_get_revents, u);
    net_user_rx(&d->pair[0]);
}

void net_user_input(struct net_dev *d, const uint8_t *frame, uint32_t len)
{
    slirp_input(d->user->slirp, frame, (int)len);
}

void net_user_timer(struct net_dev *d, uint32_t id)
{
    struct net_user *u = d->user;
    if (!u || id >= NET_TIMERS || !u->timers[id].used)
        return;
    slirp_handle_timer(u->slirp, u->timers[id].id, u->timers[id].cb_opaque);
    net_user_rx(&d->pair[0]);
}

void net_user_activate(struct net_dev *d)
{
    net_user_rx(&d->pair[0]);
}

static void fifo_clear(struct net_user *u)
{
    while (u->fcount) {
        free(u->fifo[u->fhead]);
        u->fhead = (u->fhead + 1) % NET_USER_FIFO_FRAMES;
        u->fcount--;
    }
    u->fbytes = 0;
}

void net_user_reset(struct net_dev *d)
{
    struct net_user *u = d->user;
    if (!u)
        return;
    fifo_clear(u);
    if (u->watching)
        d->host->fd_unwatch(d->hctx, u->epfd);
    u->watching = 0;
}

int net_user_create(struct net_dev *d, char *err, uint32_t errlen)
{
    struct net_user *u = calloc(1, sizeof(*u));
    if (!u) {
        nimbus_errf(err, errlen, "virtio_net: out of memory");
        return -ENOMEM;
    }
    u->dev = d;
    u->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (u->epfd < 0) {
        nimbus_errf(err, errlen, "virtio_net: epoll_create1: %s", strerror(errno));
        free(u);
        return -errno;
    }
    SlirpConfig cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.version = 4;
    cfg.in_enabled = true;
    inet_pton(AF_INET, "10.0.2.0", &cfg.vnetwork);
    inet_pton(AF_INET, "255.255.255.0", &cfg.vnetmask);
    inet_pton(AF_INET, "10.0.2.2", &cfg.vhost);
    inet_pton(AF_INET, "10.0.2.15", &cfg.vdhcp_start);
    inet_pton(AF_INET, "10.0.2.3", &cfg.vnameserver);
    cfg.vhostname = "nimbus";
    cfg.if_mtu = d->opts.mtu ? d->opts.mtu : 1500;
    cfg.if_mru = cfg.if_mtu;
    d->user = u;
    u->slirp = slirp_new(&cfg, &callbacks, u);
    if (!u->slirp) {
        nimbus_errf(err, errlen, "virtio_net: cannot start user-mode networking");
        net_user_destroy(d);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < d->opts.nfwd; i++) {
        const struct net_hostfwd *f = &d->opts.fwd[i];
        struct in_addr ha = {.s_addr = htonl(INADDR_ANY)}, ga = cfg.vdhcp_start;
        if (f->host_addr[0])
            inet_pton(AF_INET, f->host_addr, &ha);
        if (f->guest_addr[0])
            inet_pton(AF_INET, f->guest_addr, &ga);
        if (slirp_add_hostfwd(u->slirp, f->udp, ha, f->host_port, ga, f->guest_port) < 0) {
            nimbus_errf(err, errlen,
                        "virtio_net: hostfwd %s:%s:%u: cannot listen there (port in use?)",
                        f->udp ? "udp" : "tcp", f->host_addr[0] ? f->host_addr : "*",
                        f->host_port);
            net_user_destroy(d);
            return -EADDRINUSE;
        }
    }
    return 0;
}

void net_user_destroy(struct net_dev *d)
{
    struct net_user *u = d->user;
    if (!u)
        return;
    net_user_reset(d);
    if (u->slirp)
        slirp_cleanup(u->slirp);
    for (uint32_t i = 0; i < NET_TIMERS; i++)
        if (u->timers[i].used)
            d->host->timer_arm(d->hctx, i, 0);
    if (u->epfd >= 0)
        close(u->epfd);
    free(u->pfd);
    free(u->reg);
    free(u);
    d->user = NULL;
}
