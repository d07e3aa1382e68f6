/*
 * virtio-net device plugin: shared definitions.
 *
 * The host's virtio-pci transport owns rings and interrupts; this plugin
 * moves frames between the guest's queues and a backend.  Work is split by
 * job:
 *   net_opts.c    option string -> struct net_opts
 *   net_config.c  feature bits, the virtio_net_config bytes, tap offloads
 *   net_tap.c     tap (or datagram socket) fds: checks, vnet header, queues
 *   net_rx.c      backend -> guest: chains, merged buffers, held frames
 *   net_tx.c      guest -> backend: header checks, zero-copy writev
 *   net_ctrl.c    the control queue (MQ pairs, guest offloads)
 *   net_user.c    user-mode networking through libslirp
 *   net_plugin.c  ABI entry points
 *
 * Threads: queue pair i (rx 2i, tx 2i+1) is I/O group i and runs on its own
 * core thread; the control queue is device-wide.  So a pair's fields are
 * touched only by its own group or by device-wide ops, and the only state
 * groups share, active_pairs, is atomic.
 */
#ifndef NIMBUS_VIRTIO_NET_H
#define NIMBUS_VIRTIO_NET_H

#include <stdint.h>
#include <sys/uio.h>

#include <nimbus/plugin_util.h>
#include <nimbus/virtio_util.h>

/* ---- virtio 1.2, 5.1 ---- */
#define VIRTIO_NET_F_CSUM 0u
#define VIRTIO_NET_F_GUEST_CSUM 1u
#define VIRTIO_NET_F_CTRL_GUEST_OFFLOADS 2u
#define VIRTIO_NET_F_MTU 3u
#define VIRTIO_NET_F_MAC 5u
#define VIRTIO_NET_F_GUEST_TSO4 7u
#define VIRTIO_NET_F_GUEST_TSO6 8u
#define VIRTIO_NET_F_GUEST_ECN 9u
#define VIRTIO_NET_F_GUEST_UFO 10u
#define VIRTIO_NET_F_HOST_TSO4 11u
#define VIRTIO_NET_F_HOST_TSO6 12u
#define VIRTIO_NET_F_HOST_ECN 13u
#define VIRTIO_NET_F_HOST_UFO 14u
#define VIRTIO_NET_F_MRG_RXBUF 15u
#define VIRTIO_NET_F_STATUS 16u
#define VIRTIO_NET_F_CTRL_VQ 17u
#define VIRTIO_NET_F_MQ 22u

#define VIRTIO_NET_S_LINK_UP 1u

/* struct virtio_net_hdr_v1 */
#define NET_HDR_LEN 12u
#define NET_HDR_F_NEEDS_CSUM 1u
#define NET_HDR_F_DATA_VALID 2u
#define NET_HDR_GSO_NONE 0u
#define NET_HDR_GSO_TCPV4 1u
#define NET_HDR_GSO_UDP 3u
#define NET_HDR_GSO_TCPV6 4u
#define NET_HDR_GSO_ECN 0x80u
#define NET_HDR_OFF_NUM_BUFFERS 10u

/* Control queue (5.1.6.5). */
#define NET_CTRL_OK 0u
#define NET_CTRL_ERR 1u
#define NET_CTRL_MQ 4u
#define NET_CTRL_MQ_VQ_PAIRS_SET 0u
#define NET_CTRL_GUEST_OFFLOADS 5u
#define NET_CTRL_GUEST_OFFLOADS_SET 0u

/* Offsets in struct virtio_net_config. */
#define NET_CFG_MAC 0u
#define NET_CFG_STATUS 6u
#define NET_CFG_MAX_PAIRS 8u
#define NET_CFG_MTU 10u
#define NET_CONFIG_SIZE 12u

/* ---- limits of this implementation ---- */
#define NET_MAX_PAIRS 16u          /* = NIMBUS_MAX_IO_GROUPS: a thread per pair */
#define NET_MIN_QUEUE_SIZE 64u
#define NET_MAX_QUEUE_SIZE 1024u
#define NET_DEFAULT_QUEUE_SIZE 256u
#define NET_ETH_HLEN 14u
#define NET_MAX_FRAME 65550u       /* largest GSO frame: 64 KiB IP + Ethernet */
#define NET_MAX_BUF (NET_HDR_LEN + NET_MAX_FRAME)
#define NET_CHAIN_MAX 64u          /* buffers per chain we accept */
#define NET_BUDGET 256u            /* frames per call before yielding */
#define NET_PCI_CLASS 0x020000u    /* network controller, Ethernet */
#define NET_USER_FIFO_FRAMES 512u  /* user-mode frames waiting for the guest */
#define NET_USER_FIFO_BYTES (4u << 20)
#define NET_MAX_HOSTFWD 16u
#define NET_TIMERS 8u              /* host timer ids slirp may use */
#define NET_USER_TOKEN 0x1000u     /* fd_ready token of the slirp poll set */
#define NET_RESCHED_TOKEN 0x2000u  /* | pair index: a pair's resched eventfd */

struct net_hostfwd {
    int udp;
    char host_addr[16]; /* dotted quad, "" = any */
    uint16_t host_port;
    char guest_addr[16];
    uint16_t guest_port;
};

struct net_opts {
    int fds[NET_MAX_PAIRS];
    uint32_t nfds;
    int user;
    struct net_hostfwd fwd[NET_MAX_HOSTFWD];
    uint32_t nfwd;
    uint8_t mac[6];
    uint32_t mtu; /* 0 = not offered */
    uint32_t num_queues;
    uint32_t queue_size;
    int offload_tso, offload_ufo, offload_csum;
    char id[64];
};

/* One chain popped from a queue, with its device-writable iovec. */
struct net_chain {
    uint32_t head;
    uint32_t nbufs;
    uint32_t cap; /* device-writable bytes */
    nimbus_vq_buf bufs[NET_CHAIN_MAX];
};

/* A received frame that did not fit in one chain: the rest waits for more. */
struct net_held {
    int active;
    uint32_t off, left;     /* bytes of bounce still to deliver */
    uint32_t nheads;
    struct net_chain first; /* carries the header, num_buffers goes there */
    uint32_t *heads, *lens; /* queue_size entries each */
};

struct net_dev;

struct net_pair {
    struct net_dev *dev;
    uint32_t index; /* rx queue 2i, tx queue 2i+1, I/O group i */
    int fd;         /* tap or socket; -1 in user mode */
    uint32_t events; /* what the fd watch asks for now */
    int is_tap;

    /* receive */
    struct net_chain cur;  /* popped and not filled yet (cur_valid) */
    int cur_valid;
    struct net_held held;
    uint8_t *bounce;       /* NET_MAX_BUF */
    int rx_wait;           /* out of guest buffers: waiting for a kick */
    int eof;               /* a socket backend's peer is gone */

    /* transmit */
    struct net_chain tx;   /* popped, the backend had no room (tx_held) */
    int tx_held;
    int tx_blocked;        /* waiting for the fd to become writable */
    int resched_fd;        /* eventfd: "go on transmitting" after a full budget */
    int resched_watched;
    uint8_t *linear;       /* user mode: a frame made contiguous for slirp */

    /* counters: bytes exclude the virtio-net header; never reset */
    uint64_t rx_frames, rx_bytes, rx_dropped;
    uint64_t tx_frames, tx_bytes, tx_dropped, bad_chains;
    int warned_io;
};

struct net_user;

struct net_dev {
    const nimbus_host_api *host;
    void *hctx;
    struct net_opts opts;
    uint32_t pairs; /* queue pairs the device has */
    uint32_t ctrl_q;

    uint64_t features_offered;
    uint64_t features; /* negotiated; 0 until activate */
    int activated;
    uint32_t active_pairs; /* atomic: group threads read it */
    uint64_t guest_offloads; /* GUEST_* bits the tap delivers */
    uint8_t config[NET_CONFIG_SIZE];

    struct net_pair pair[NET_MAX_PAIRS];
    struct net_user *user;
    uint64_t ctrl_bad;
};

#define NET_LOG(d, lvl, ...) nimbus_logf((d)->host, (d)->hctx, (lvl), __VA_ARGS__)
#define NET_RXQ(i) (2u * (i))
#define NET_TXQ(i) (2u * (i) + 1u)

static inline int net_has(const struct net_dev *d, uint32_t bit)
{
    return (d->features & NIMBUS_BIT(bit)) != 0;
}

static inline uint32_t net_active_pairs(const struct net_dev *d)
{
    return __atomic_load_n(&d->active_pairs, __ATOMIC_ACQUIRE);
}

/* net_opts.c */
int net_parse_options(struct net_opts *o, const char *opts, char *err, uint32_t errlen);
int net_parse_hostfwd(struct net_hostfwd *f, const char *rule);

/* net_config.c */
uint64_t net_features(const struct net_dev *d);
void net_config_build(struct net_dev *d);

/* net_tap.c */
int net_fd_setup(struct net_dev *d, struct net_pair *p, int fd, char *err, uint32_t errlen);
/* Offloads the guest accepts, as TUN_F_* (0 for sockets / user mode). */
int net_tap_set_offload(struct net_dev *d, struct net_pair *p, uint64_t guest_features);
int net_tap_attach(struct net_dev *d, struct net_pair *p, int attach);
/* Make the fd watch of pair p ask for `events` (NIMBUS_EV_*), 0 = none. */
void net_pair_watch(struct net_pair *p, uint32_t events);
/* Watch for what the pair waits on now: frames to receive, room to send. */
void net_pair_update(struct net_pair *p);

/* net_chain helpers (net_rx.c) */
/* Pop a chain from `queue` into c: 1, 0 when empty, <0 when the queue is dead. */
int net_pop(struct net_dev *d, uint32_t queue, struct net_chain *c, int writable,
            uint64_t *bad);

/* net_rx.c */
int net_rx_alloc(struct net_dev *d, struct net_pair *p);
void net_rx_free(struct net_pair *p);
void net_rx_reset(struct net_pair *p);
/* Move frames from the backend to the guest until one side runs dry. */
void net_rx_run(struct net_pair *p);
/* Deliver `len` bytes (header included) from p->bounce as one frame: 1 done
 * (or dropped), 0 held until the guest posts buffers.  *pushed set when
 * chains went back to the guest (notify after the batch). */
int net_rx_deliver(struct net_pair *p, uint32_t len, int *pushed);
/* Go on with a held frame: 1 when none is held any more. */
int net_rx_resume(struct net_pair *p, int *pushed);

/* net_tx.c */
void net_tx_run(struct net_pair *p);
/* 0 when the header `h` of a frame of `len` bytes (header excluded) is
 * acceptable under the negotiated features, else -EINVAL. */
int net_tx_hdr_ok(const struct net_dev *d, const uint8_t h[NET_HDR_LEN], uint64_t len);

/* net_ctrl.c */
void net_ctrl_run(struct net_dev *d);
/* Make `n` pairs active (1..pairs): attach/detach taps, start/stop watches. */
int net_set_active_pairs(struct net_dev *d, uint32_t n);

/* net_user.c */
int net_user_create(struct net_dev *d, char *err, uint32_t errlen);
void net_user_destroy(struct net_dev *d);
void net_user_reset(struct net_dev *d);
void net_user_activate(struct net_dev *d);
/* Guest frame (no header) into slirp. */
void net_user_input(struct net_dev *d, const uint8_t *frame, uint32_t len);
/* Frames slirp queued for the guest: deliver what the guest has room for. */
void net_user_rx(struct net_pair *p);
void net_user_fd_ready(struct net_dev *d);
void net_user_timer(struct net_dev *d, uint32_t id);
int net_user_fd(const struct net_dev *d);
/* Frames for the guest slirp produced that found the FIFO full. */
uint64_t net_user_dropped(const struct net_dev *d);

#endif /* NIMBUS_VIRTIO_NET_H */
