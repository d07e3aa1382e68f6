#include "net/tap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_arp.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <libmnl/libmnl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TAP_FLAGS (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)

void tap_close(int *fds, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}

static int set_vnet_hdr(int fd)
{
    int len = TAP_VNET_HDR_LEN;
    return ioctl(fd, TUNSETVNETHDRSZ, &len);
}

/* One queue of `name`; the kernel fills ifr_name (a template becomes vmtapN). */
static int open_queue(const char *name, int mq, char ifname[IFNAMSIZ], char *err,
                      size_t errlen)
{
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open /dev/net/tun: %s", strerror(errno));
        return -1;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = TAP_FLAGS | (mq ? IFF_MULTI_QUEUE : 0);
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int e = errno;
        if (e == EPERM || e == EACCES)
            snprintf(err, errlen, "creating tap '%s' needs CAP_NET_ADMIN", name);
        else if (e == EBUSY)
            snprintf(err, errlen, "tap '%s' is busy", name);
        else if (e == EINVAL)
            snprintf(err, errlen, "'%s' exists but is not a %s tap%s", name,
                     mq ? "multi-queue" : "single-queue",
                     mq ? " (needed for more than one queue pair)" : "");
        else
            snprintf(err, errlen, "cannot create tap '%s': %s", name, strerror(e));
        close(fd);
        return -1;
    }
    if (set_vnet_hdr(fd) < 0) {
        snprintf(err, errlen, "tap '%s': cannot set the vnet header size: %s", ifr.ifr_name,
                 strerror(errno));
        close(fd);
        return -1;
    }
    memcpy(ifname, ifr.ifr_name, IFNAMSIZ);
    ifname[IFNAMSIZ - 1] = '\0';
    return fd;
}

int tap_open(const char *name, uint32_t npairs, int *fds, char ifname[IFNAMSIZ], int *created,
             char *err, size_t errlen)
{
    if (!name || !name[0])
        name = TAP_NAME_TEMPLATE;
    if (strlen(name) >= IFNAMSIZ) {
        snprintf(err, errlen, "tap name '%s' is longer than %d characters", name,
                 IFNAMSIZ - 1);
        return -1;
    }
    if (npairs == 0) {
        snprintf(err, errlen, "tap '%s': no queue pairs", name);
        return -1;
    }
    /* Only informative (for the log): another process may race us. */
    *created = strchr(name, '%') || if_nametoindex(name) == 0;
    for (uint32_t i = 0; i < npairs; i++)
        fds[i] = -1;
    for (uint32_t i = 0; i < npairs; i++) {
        /* Later queues join the device the first one made or found. */
        fds[i] = open_queue(i ? ifname : name, npairs > 1, ifname, err, errlen);
        if (fds[i] < 0) {
            tap_close(fds, i);
            return -1;
        }
    }
    return 0;
}

int tap_check_fds(const int *fds, uint32_t nfds, char ifname[IFNAMSIZ], char *err,
                  size_t errlen)
{
    for (uint32_t i = 0; i < nfds; i++) {
        int fd = fds[i];
        struct ifreq ifr;
        memset(&ifr, 0, sizeof(ifr));
        if (fcntl(fd, F_GETFD) < 0) {
            snprintf(err, errlen, "fd %d is not open", fd);
            return -1;
        }
        if (ioctl(fd, TUNGETIFF, &ifr) < 0) {
            snprintf(err, errlen, "fd %d is not a tap device", fd);
            return -1;
        }
        ifr.ifr_name[IFNAMSIZ - 1] = '\0';
        unsigned flags = (unsigned short)ifr.ifr_flags;
        if ((flags & (IFF_TUN | IFF_TAP)) != IFF_TAP) {
            snprintf(err, errlen, "fd %d is a tun device ('%s'), not a tap", fd, ifr.ifr_name);
            return -1;
        }
        /* IFF_NO_PI cannot be checked: TUNGETIFF sets IFF_NOFILTER, the same bit,
         * whenever no socket filter is attached. */
        if (!(flags & IFF_VNET_HDR)) {
            snprintf(err, errlen, "fd %d (tap '%s') was opened without IFF_VNET_HDR", fd,
                     ifr.ifr_name);
            return -1;
        }
        if (!(flags & IFF_MULTI_QUEUE) != (nfds == 1)) {
            snprintf(err, errlen, "fd %d (tap '%s') %s IFF_MULTI_QUEUE, but %u fd%s given",
                     fd, ifr.ifr_name, flags & IFF_MULTI_QUEUE ? "has" : "lacks", nfds,
                     nfds == 1 ? " was" : "s were");
            return -1;
        }
        if (i == 0) {
            memcpy(ifname, ifr.ifr_name, IFNAMSIZ);
        } else if (strcmp(ifname, ifr.ifr_name) != 0) {
            snprintf(err, errlen, "fd %d is a queue of tap '%s', fd %d of '%s'", fds[0], ifname,
                     fd, ifr.ifr_name);
            return -1;
        }
        if (set_vnet_hdr(fd) < 0) {
            snprintf(err, errlen, "fd %d (tap '%s'): cannot set the vnet header size: %s", fd,
                     ifr.ifr_name, strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* ---- host-side configuration ------------------------------------------- */

static int config_error(const char *ifname, const char *what, int e, char *err, size_t errlen)
{
    if (e == EPERM || e == EACCES)
        snprintf(err, errlen, "setting the %s of tap '%s' needs CAP_NET_ADMIN", what, ifname);
    else
        snprintf(err, errlen, "cannot set the %s of tap '%s': %s", what, ifname, strerror(e));
    return -1;
}

/* RTM_NEWADDR through rtnetlink; NLM_F_REPLACE makes a repeat harmless. */
static int set_addr(const char *ifname, unsigned ifindex, uint32_t ip, int prefix, char *err,
                    size_t errlen)
{
    /* MNL_SOCKET_BUFFER_SIZE is a sysconf() expression; 8 KiB is its cap. */
    _Alignas(struct nlmsghdr) char buf[8192];
    struct mnl_socket *nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
    if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
        int e = errno;
        if (nl)
            mnl_socket_close(nl);
        snprintf(err, errlen, "cannot open rtnetlink for tap '%s': %s", ifname, strerror(e));
        return -1;
    }
    uint32_t seq = (uint32_t)time(NULL);
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = RTM_NEWADDR;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK;
    nlh->nlmsg_seq = seq;
    struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
    ifa->ifa_family = AF_INET;
    ifa->ifa_prefixlen = (unsigned char)prefix;
    ifa->ifa_scope = RT_SCOPE_UNIVERSE;
    ifa->ifa_index = ifindex;
    mnl_attr_put_u32(nlh, IFA_LOCAL, ip);
    mnl_attr_put_u32(nlh, IFA_ADDRESS, ip);
    if (prefix < 31) /* what "ip addr add A/N brd +" sets */
        mnl_attr_put_u32(nlh, IFA_BROADCAST, ip | htonl(0xffffffffu >> prefix));

    int r = -1, e = 0;
    if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
        e = errno;
    } else {
        ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
        if (n < 0)
            e = errno;
        else if (mnl_cb_run(buf, (size_t)n, seq, mnl_socket_get_portid(nl), NULL, NULL) < 0)
            e = errno;
        else
            r = 0;
    }
    mnl_socket_close(nl);
    return r < 0 ? config_error(ifname, "IPv4 address", e, err, errlen) : 0;
}

int tap_configure(const char *ifname, const struct tap_link *l, char *err, size_t errlen)
{
    unsigned ifindex = if_nametoindex(ifname);
    if (ifindex == 0) {
        snprintf(err, errlen, "tap '%s' vanished: %s", ifname, strerror(errno));
        return -1;
    }
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        snprintf(err, errlen, "tap '%s': cannot open a socket: %s", ifname, strerror(errno));
        return -1;
    }
    int r = -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);

    if (l->mtu) {
        if (ioctl(s, SIOCGIFMTU, &ifr) < 0 || (uint32_t)ifr.ifr_mtu != l->mtu) {
            ifr.ifr_mtu = (int)l->mtu;
            if (ioctl(s, SIOCSIFMTU, &ifr) < 0) {
                if (errno == EINVAL)
                    snprintf(err, errlen, "tap '%s' does not accept mtu %u", ifname, l->mtu);
                else
                    config_error(ifname, "MTU", errno, err, errlen);
                goto out;
            }
        }
    }
    if (l->mac) {
        if (ioctl(s, SIOCGIFHWADDR, &ifr) < 0 || memcmp(ifr.ifr_hwaddr.sa_data, l->mac, 6)) {
            memset(&ifr.ifr_hwaddr, 0, sizeof(ifr.ifr_hwaddr));
            ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
            memcpy(ifr.ifr_hwaddr.sa_data, l->mac, 6);
            if (ioctl(s, SIOCSIFHWADDR, &ifr) < 0) {
                config_error(ifname, "MAC address", errno, err, errlen);
                goto out;
            }
        }
    }
    if (l->ip && set_addr(ifname, ifindex, l->ip, l->prefix, err, errlen) < 0)
        goto out;
    if (l->up) {
        if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
            config_error(ifname, "link state", errno, err, errlen);
            goto out;
        }
        if (!(ifr.ifr_flags & IFF_UP)) {
            ifr.ifr_flags |= IFF_UP;
            if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) {
                config_error(ifname, "link state", errno, err, errlen);
                goto out;
            }
        }
    }
    r = 0;
out:
    close(s);
    return r;
}
