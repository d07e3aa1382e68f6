#!/bin/sh
# /init of the vmrun L1 VM (packed by ci/guest-assets.sh into
# l1/initramfs.cpio.gz; busybox sh as PID 1). Stage 1 of 2:
#   - load the modules listed in /lib/modules/load.order (kvm-amd & co.),
#   - build the new root: host / (9p, read-only) under a tmpfs overlay, fresh
#     proc/sys/dev, tmpfs /tmp and /run, and the caller's cwd as a read-write
#     9p share at the same path,
#   - switch_root into it and run /run/vmrun/stage2.sh (the job runner).
# Any failure powers off; ci/vmrun.sh then sees no status file and reports a
# boot failure with the console log (this console) path.

export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec 0<>/dev/console 1>&0 2>&0

log() { echo "vmrun-l1: [$(cut -d" " -f1 /proc/uptime)] $*"; }
die() {
    log "FATAL: $*"
    sync
    poweroff -f
}

# kvm_amd parameters from the kernel command line (vmrun.kvm_amd=a=1,b=2):
# insmod, unlike modprobe, does not read kvm_amd.* from it.
KVM_AMD_OPTS=
for arg in $(cat /proc/cmdline); do
    case $arg in
    vmrun.kvm_amd=*) KVM_AMD_OPTS=$(echo "${arg#vmrun.kvm_amd=}" | tr , ' ') ;;
    esac
done

log "loading modules"
while read -r mod; do
    # Only one KVM vendor module can work; skip the other once one is in.
    case $mod in
    kvm_intel.ko) [ -d /sys/module/kvm_amd ] && continue ;;
    kvm_amd.ko) [ -d /sys/module/kvm_intel ] && continue ;;
    esac
    # A vendor module fails on the other vendor's CPU; that is expected, so
    # failures are only logged.
    opts=
    [ "$mod" = kvm_amd.ko ] && opts=$KVM_AMD_OPTS
    # shellcheck disable=SC2086 # opts are separate words
    insmod "/lib/modules/$mod" $opts 2>/dev/null || log "insmod $mod failed (ignored)"
done </lib/modules/load.order

# Option values are given by ci/vmrun.sh on the kernel command line.
MSIZE=524288
for arg in $(cat /proc/cmdline); do
    case $arg in
    vmrun.msize=*) MSIZE=${arg#vmrun.msize=} ;;
    esac
done
P9="trans=virtio,version=9p2000.L,msize=$MSIZE"

R=/newroot
mkdir -p /lower /rw $R
# Host root: read-only and never changed during a run, so cache it freely.
mount -t 9p -o "$P9,ro,cache=loose" vmrun_root /lower || die "cannot mount host root (9p tag vmrun_root)"
mount -t tmpfs -o mode=0755 tmpfs /rw || die "tmpfs"
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay $R ||
    die "cannot mount the overlay root"

mount -t proc proc $R/proc || die "proc"
mount -t sysfs sysfs $R/sys || die "sysfs"
mount -t devtmpfs devtmpfs $R/dev || die "devtmpfs"
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
mount -t tmpfs -o mode=1777 tmpfs $R/tmp || die "tmpfs /tmp"
mount -t tmpfs -o mode=0755 tmpfs $R/run || die "tmpfs /run"
[ -d /sys/fs/cgroup ] && mount -t cgroup2 cgroup2 $R/sys/fs/cgroup 2>/dev/null

# Job directory (written by ci/vmrun.sh: env.sh, cwd; we write status).
mkdir -p $R/run/vmrun/job
mount -t 9p -o "$P9" vmrun_job $R/run/vmrun/job || die "cannot mount the job share"
cwd=$(cat $R/run/vmrun/job/cwd) || die "no cwd in the job share"
# The checkout (read-only), when the cwd share does not contain it; mounted
# before the cwd so that a cwd inside the checkout stays writable.
if [ -f $R/run/vmrun/job/repo ]; then
    repo=$(cat $R/run/vmrun/job/repo)
    mkdir -p "$R$repo"
    mount -t 9p -o "$P9,ro,cache=loose" vmrun_repo "$R$repo" ||
        die "cannot mount the checkout share at $repo"
fi
# Last, so that a cwd under /tmp or /run lands on top of those tmpfs mounts.
# cache=mmap: coherent with the host, yet allows shared writable mmap.
mkdir -p "$R$cwd"
mount -t 9p -o "$P9,cache=mmap" vmrun_cwd "$R$cwd" || die "cannot mount the cwd share at $cwd"

# Device nodes the tests need; devtmpfs normally has them once the
# modules are in, mknod covers built-in-less corner cases.
[ -c $R/dev/kvm ] || mknod -m 666 $R/dev/kvm c 10 232
mkdir -p $R/dev/net
[ -c $R/dev/net/tun ] || mknod -m 666 $R/dev/net/tun c 10 200
chmod 666 $R/dev/kvm $R/dev/net/tun

cp /bin/busybox /stage2.sh $R/run/vmrun/ || die "cannot populate /run/vmrun"
hostname vmrun
ip link set lo up

log "switching root"
exec switch_root $R /run/vmrun/busybox sh /run/vmrun/stage2.sh
