#!/bin/sh
# Install everything nimbus needs to build, test, fuzz and boot guests on
# Debian 12, from Debian's own packages only.  Idempotent; as a normal user it uses sudo.
set -eu

PKGS="
build-essential cmake ninja-build pkg-config git ca-certificates file
clang-14 llvm-14 libclang-rt-14-dev afl++
libcmocka-dev liburing-dev libseccomp-dev libcjson-dev libslirp-dev libmnl-dev
libhttp-parser-dev
acpica-tools
qemu-system-x86 qemu-utils busybox-static cpio kmod e2fsprogs libext2fs-dev fdisk dosfstools mtools cloud-image-utils xz-utils zstd libzstd-dev zlib1g-dev
python3 python3-pytest openssh-client
podman runc catatonit debootstrap mmdebstrap
iproute2 procps strace util-linux ethtool
"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "install-deps: all packages present"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        echo "install-deps: missing packages:$missing; installing with sudo" >&2
        exec sudo "$0" "$@"
    fi
    echo "install-deps: missing packages:$missing" >&2
    echo "install-deps: run this script as root to install them" >&2
    exit 1
fi
echo "install-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
# Another apt run (unattended upgrades, a parallel job) may hold the lock.
APT="apt-get -o DPkg::Lock::Timeout=600 -q"
$APT update
# shellcheck disable=SC2086
$APT install -y --no-install-recommends $missing
