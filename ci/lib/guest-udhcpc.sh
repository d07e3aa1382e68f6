#!/bin/sh
# udhcpc event script of the L2 test guest (packed by ci/guest-assets.sh as
# /etc/udhcpc/default.script): applies a lease to the interface, the default
# route and /etc/resolv.conf, so that a test only runs `udhcpc -i eth0 -q -n`.
# udhcpc passes the event as $1 and the lease in the environment
# ($interface $ip $mask/$subnet $router $dns).

case $1 in
deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
bound | renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    ip link set "$interface" up
    if [ -n "$router" ]; then
        ip route del default 2>/dev/null
        # Several routers: the first one is enough for a test guest.
        for r in $router; do
            ip route add default via "$r" dev "$interface"
            break
        done
    fi
    : >/etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
    ;;
esac
exit 0
