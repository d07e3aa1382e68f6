#!/bin/sh
# /init of the L2 test guest (packed by ci/guest-assets.sh into
# guest/initramfs.cpio.gz; runs under busybox sh as PID 1).
#
# The console shell started here is the in-guest test agent: the host types
#     CMD; echo __RC_<nonce>=$?
# and reads the console until that marker (see tests/integration/README.md).
# Everything the host relies on is printed on /dev/console so it works with
# whatever console= the VMM's command line chose (ttyS0, hvc0, ...).

export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/root
umask 022

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
# Without a /dev/console in the archive the kernel could not give us stdio.
exec 0<>/dev/console 1>&0 2>&0

mkdir -p /dev/pts /dev/shm /tmp /run
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
hostname nimbus-guest
ip link set lo up 2>/dev/null

# A terse, fixed prompt keeps the echoed lines short on a slow serial line.
export PS1='guest# '
# Long commands must not be wrapped/redrawn by line editing at 80 columns.
stty cols 1000 2>/dev/null

echo "NIMBUS-GUEST-READY"

# Respawn so that a test typing "exit" (or a crashing shell) does not kill
# PID 1, which would panic the guest instead of giving a clean result.
while :; do
    setsid cttyhack sh -l
    echo "guest-init: console shell exited, restarting"
    sleep 1
done
