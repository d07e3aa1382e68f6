#!/usr/bin/env bash
# Build the guest assets of the integration tests from Debian packages only,
# cached per package version (see tests/integration/README.md).
#
#   ci/guest-assets.sh [--print-dir]
#
# Result: ${NIMBUS_ASSETS_DIR:-$HOME/.cache/nimbus/assets}/<version-key>/
#   l1/vmlinuz, l1/initramfs.cpio.gz   nested test host for ci/vmrun.sh: Debian's
#                                      generic kernel (linux-image-amd64) + a
#                                      busybox initramfs with kvm-amd, 9p, ...
#   guest/vmlinuz                      Debian's cloud kernel (linux-image-cloud-amd64),
#                                      the L2 guest that nimbus boots
#   guest/vmlinux                      the same kernel uncompressed (ELF with the
#                                      PVH note), for nimbus' PVH boot path
#   guest/initramfs.cpio.gz            busybox initramfs: loads the virtio modules,
#                                      prints NIMBUS-GUEST-READY, then a respawning
#                                      shell on the console (ttyS0 or hvc0)
#   guest/modules.list                 the modules in that initramfs, load order
#   guest/modules/lib/modules/<kver>/  the cloud kernel's module tree (with
#                                      modules.dep), ready to merge into a guest root
#   guest/kernel-release               <kver>
#   cloud-image/                       empty slot for a Debian cloud disk image
#   manifest.txt                       package versions and recipe hash
#
# The key changes whenever a package version or this recipe (this script and
# the init scripts it packs) changes, so stale assets are never reused.
# Builds go to a temporary directory renamed into place, so concurrent runs
# are safe: the loser discards its copy. Kernels are never installed on the
# host: packages are fetched with `apt-get download` and unpacked with dpkg-deb.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=ci/lib/kmod.sh
. "$here/lib/kmod.sh"

root=${NIMBUS_ASSETS_DIR:-$HOME/.cache/nimbus/assets}
print_dir=0

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

while (($#)); do
    case $1 in
    --print-dir) print_dir=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "guest-assets: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done

t0=$SECONDS
log() { printf 'guest-assets: [%3ds] %s\n' "$((SECONDS - t0))" "$*" >&2; }
die() { printf 'guest-assets: error: %s\n' "$*" >&2; exit 1; }

# Modules the L1 test host loads, in addition to their dependencies.
# kvm_intel is harmless where it does not apply (it fails to load on AMD).
L1_MODULES=(
    virtio_pci virtio_console
    9pnet 9pnet_virtio 9p overlay
    irqbypass kvm ccp kvm_amd kvm_intel
    tun
)

# Modules the L2 guest initramfs loads at boot (the cloud kernel has virtio
# as modules), with their dependencies: virtio-pci transport, block,
# console (hvc0), entropy and network devices (virtio_net pulls in
# net_failover and failover); the ACPI power button (nimbus' GED notifies
# \_SB.PWRB; the GED driver itself is built in) and evdev, whose
# /dev/input/event* busybox acpid reads.
GUEST_MODULES=(
    virtio_pci virtio_blk virtio_console virtio_rng virtio_net
    button evdev
)

# Host programs copied into the guest initramfs with their shared
# libraries: ethtool shows virtio-net channels, offloads and per-queue
# counters (`ethtool -l/-k/-S`), which busybox cannot; util-linux's
# blkdiscard sends real write-zeroes requests (`blkdiscard -z`), which
# busybox's applet cannot (it replaces the applet's link).
GUEST_HOST_PROGRAMS=(/usr/sbin/ethtool /usr/sbin/blkdiscard)

# Files whose content defines what gets built (part of the cache key).
RECIPE_FILES=(
    "$here/guest-assets.sh" "$here/lib/kmod.sh" "$here/lib/guest-init.sh"
    "$here/lib/guest-udhcpc.sh"
    "$here/vmrun/l1-init.sh" "$here/vmrun/l1-stage2.sh" "$here/lib/extract-vmlinux.py"
)

# One apt-cache call (it costs ~0.7 s) gives everything: each metapackage
# names the versioned kernel package and its exact version in its first
# Depends entry, e.g. "linux-image-6.1.0-56-amd64 (= 6.1.192-2)".
resolve_all() {
    local info
    info=$(apt-cache show --no-all-versions linux-image-amd64 linux-image-cloud-amd64 \
        busybox-static 2>/dev/null | awk '
        /^Package: / { pkg = $2 }
        /^Version: / { ver[pkg] = $2 }
        /^Depends: / { d = $0; sub(/^Depends: /, "", d); sub(/,.*/, "", d); dep[pkg] = d }
        END {
            print dep["linux-image-amd64"]
            print dep["linux-image-cloud-amd64"]
            print "busybox-static (= " ver["busybox-static"] ")"
        }') || return 1
    # "name (= version)" -> name version
    read -r gen_pkg _ gen_ver < <(sed -n 1p <<<"$info" | tr -d '()')
    read -r cloud_pkg _ cloud_ver < <(sed -n 2p <<<"$info" | tr -d '()')
    read -r _ _ bb_ver < <(sed -n 3p <<<"$info" | tr -d '()')
    [[ $gen_pkg == linux-image-* && $cloud_pkg == linux-image-* &&
        -n ${gen_ver:-} && -n ${cloud_ver:-} && -n ${bb_ver:-} ]]
}

if ! resolve_all; then
    # Package lists are missing or stale on a fresh machine.
    if ((EUID == 0)); then
        log "package lists lack the kernels; running apt-get update"
        apt-get update -qq >&2 || die "apt-get update failed"
        resolve_all || die "linux-image-amd64 / linux-image-cloud-amd64 / busybox-static not found in apt"
    elif [[ -e $root/current/manifest.txt ]]; then
        # Offline and unprivileged: the last good build is better than nothing.
        log "cannot resolve package versions; using $root/current"
        [[ $print_dir == 1 ]] && readlink -f "$root/current"
        exit 0
    else
        die "cannot resolve kernel packages with apt-cache (run apt-get update as root)"
    fi
fi

for prog in "${GUEST_HOST_PROGRAMS[@]}"; do
    [[ -x $prog ]] || die "$prog is missing (ci/install-deps.sh installs it)"
done
# The copied programs are part of what gets built: their bytes join the key.
recipe_hash=$(cat "${RECIPE_FILES[@]}" "${GUEST_HOST_PROGRAMS[@]}" | sha256sum | cut -c1-16)
key_src="$gen_pkg=$gen_ver $cloud_pkg=$cloud_ver busybox-static=$bb_ver recipe=$recipe_hash"
key="${cloud_ver//[^A-Za-z0-9.+-]/_}-$(printf '%s' "$key_src" | sha256sum | cut -c1-12)"
dest=$root/$key

finish() {
    # "current" is only a hint for offline runs; replace it atomically.
    { ln -sfn "$key" "$root/.current.$$" && mv -Tf "$root/.current.$$" "$root/current"; } || true
    log "assets ready: $dest"
    if ((print_dir)); then printf '%s\n' "$dest"; fi
    exit 0
}

if [[ -f $dest/manifest.txt ]]; then
    finish
fi

log "building $key ($key_src)"
mkdir -p "$root/debs"
work=$(mktemp -d "$root/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# fetch PKG VERSION: path of the .deb, downloaded once into $root/debs.
fetch() {
    local pkg=$1 ver=$2 file fver=$2
    # apt names files <pkg>_<epoch>%3a<version>_<arch>.deb
    [[ $ver == *:* ]] && fver="${ver%%:*}%3a${ver#*:}"
    file=$(find "$root/debs" -maxdepth 1 -name "${pkg}_${fver}_*.deb" -print -quit)
    if [[ -z $file ]]; then
        log "downloading $pkg $ver"
        mkdir -p "$work/dl"
        (cd "$work/dl" && apt-get download -qq -o APT::Sandbox::User=root "$pkg=$ver" >&2) ||
            die "apt-get download $pkg=$ver failed"
        local f
        for f in "$work/dl"/*.deb; do
            mv -f "$f" "$root/debs/"
            file=$root/debs/${f##*/}
        done
    fi
    [[ -f $file ]] || die "no .deb for $pkg $ver"
    printf '%s\n' "$file"
}

gen_deb=$(fetch "$gen_pkg" "$gen_ver")
cloud_deb=$(fetch "$cloud_pkg" "$cloud_ver")
bb_deb=$(fetch busybox-static "$bb_ver")

log "unpacking packages"
dpkg-deb -x "$bb_deb" "$work/bb"
busybox=$work/bb/bin/busybox
[[ -x $busybox ]] || die "busybox-static has no bin/busybox"
dpkg-deb -x "$gen_deb" "$work/gen"
dpkg-deb -x "$cloud_deb" "$work/cloud"

# kernel_of DIR: the single lib/modules/<kver> directory of an unpacked kernel.
kernel_release() {
    local d
    d=$(find "$1/lib/modules" -mindepth 1 -maxdepth 1 -type d -print -quit)
    [[ -n $d ]] || die "no lib/modules in $1"
    printf '%s\n' "${d##*/}"
}
gen_kver=$(kernel_release "$work/gen")
cloud_kver=$(kernel_release "$work/cloud")

# new_initramfs_tree DIR: busybox with every applet linked in /bin and the
# usual directories; /sbin and /usr/* point at /bin so any PATH works.
new_initramfs_tree() {
    local t=$1 applet
    mkdir -p "$t"/{bin,dev,proc,sys,tmp,run,root,etc,mnt,lib/modules,usr}
    cp "$busybox" "$t/bin/busybox"
    for applet in $("$busybox" --list); do
        [[ $applet == busybox ]] || ln -s busybox "$t/bin/$applet"
    done
    ln -s bin "$t/sbin"
    ln -s ../bin "$t/usr/bin"
    ln -s ../bin "$t/usr/sbin"
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$t/etc/passwd"
    printf 'root:x:0:\ntty:x:5:\n' >"$t/etc/group"
    # The kernel opens /dev/console for init before devtmpfs is mounted.
    if ((EUID == 0)); then mknod -m 600 "$t/dev/console" c 5 1; fi
}

# add_host_program TREE PROG: PROG and the shared libraries ldd lists, at
# their host paths (the dynamic loader finds them there in the guest too).
add_host_program() {
    local t=$1 prog=$2 lib
    install -D -m 755 "$prog" "$t$prog"
    while IFS= read -r lib; do
        [[ -e $t$lib ]] || install -D -m 755 "$(readlink -f "$lib")" "$t$lib"
    done < <(ldd "$prog" | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p')
}

# pack_cpio DIR OUT: gzip'ed newc archive, owned by root, reproducible.
pack_cpio() {
    (cd "$1" && find . -print0 | LC_ALL=C sort -z |
        cpio --null -o -H newc -R 0:0 --reproducible --quiet) | gzip -n -6 >"$2"
}

out=$work/out
mkdir -p "$out/l1" "$out/guest" "$out/cloud-image"

log "L1 test host: kernel $gen_kver"
cp "$work/gen/boot/vmlinuz-$gen_kver" "$out/l1/vmlinuz"
cp "$work/gen/boot/config-$gen_kver" "$out/l1/config"
t=$work/l1-tree
new_initramfs_tree "$t"
kmod_closure "$work/gen/lib/modules/$gen_kver" "$t/lib/modules" "${L1_MODULES[@]}" ||
    die "module closure failed for $gen_kver"
log "L1 modules: $(tr '\n' ' ' <"$t/lib/modules/load.order")"
install -m 755 "$here/vmrun/l1-init.sh" "$t/init"
install -m 755 "$here/vmrun/l1-stage2.sh" "$t/stage2.sh"
pack_cpio "$t" "$out/l1/initramfs.cpio.gz"
cp "$t/lib/modules/load.order" "$out/l1/modules.list"

log "L2 guest: kernel $cloud_kver"
cp "$work/cloud/boot/vmlinuz-$cloud_kver" "$out/guest/vmlinuz"
# The same kernel as an ELF vmlinux, for nimbus' PVH boot path.
/usr/bin/python3 "$here/lib/extract-vmlinux.py" "$out/guest/vmlinuz" "$out/guest/vmlinux"
cp "$work/cloud/boot/config-$cloud_kver" "$out/guest/config"
printf '%s\n' "$cloud_kver" >"$out/guest/kernel-release"
t=$work/guest-tree
new_initramfs_tree "$t"
install -m 755 "$here/lib/guest-init.sh" "$t/init"
install -D -m 755 "$here/lib/guest-udhcpc.sh" "$t/etc/udhcpc/default.script"
for prog in "${GUEST_HOST_PROGRAMS[@]}"; do
    add_host_program "$t" "$prog"
done
kmod_closure "$work/cloud/lib/modules/$cloud_kver" "$t/lib/modules" "${GUEST_MODULES[@]}" ||
    die "module closure failed for $cloud_kver"
log "L2 modules: $(tr '\n' ' ' <"$t/lib/modules/load.order")"
cp "$t/lib/modules/load.order" "$out/guest/modules.list"
pack_cpio "$t" "$out/guest/initramfs.cpio.gz"
mkdir -p "$out/guest/modules/lib/modules"
mv "$work/cloud/lib/modules/$cloud_kver" "$out/guest/modules/lib/modules/"
"$busybox" depmod -b "$out/guest/modules" "$cloud_kver" ||
    die "depmod failed for the guest module tree"

cat >"$out/cloud-image/README" <<'EOF'
Reserved for a Debian cloud disk image (e.g. a generic-amd64 .raw built from
packages) once the block/network issues need a full distribution guest.
Nothing lives here yet; tests must not assume any file in this directory.
EOF

cat >"$out/manifest.txt" <<EOF
key=$key
generic_kernel=$gen_pkg $gen_ver ($gen_kver)
cloud_kernel=$cloud_pkg $cloud_ver ($cloud_kver)
busybox=busybox-static $bb_ver
recipe=$recipe_hash
built=$(date -u +%Y-%m-%dT%H:%M:%SZ)
EOF

# prune: keep the two newest builds (the previous one may still be in use by
# a run that started before this build) and only the .debs just used;
# forget build directories of runs that died (older than an hour).
prune() {
    local d keep=2
    while IFS= read -r d; do
        if ((keep > 0)); then keep=$((keep - 1)); continue; fi
        [[ $d == "$dest" ]] || { log "removing old assets ${d##*/}"; rm -rf "$d"; }
    done < <(find "$root" -mindepth 2 -maxdepth 2 -name manifest.txt -printf '%T@ %h\n' |
        sort -rn | cut -d' ' -f2-)
    for d in "$root"/debs/*.deb; do
        [[ $d == "$gen_deb" || $d == "$cloud_deb" || $d == "$bb_deb" ]] || rm -f "$d"
    done
    find "$root" -mindepth 1 -maxdepth 1 -name '.build.*' -mmin +60 -exec rm -rf {} + 2>/dev/null || true
}

# Publish atomically; a concurrent build may have won the race.
chmod 755 "$out"
if mv -T "$out" "$dest" 2>/dev/null; then
    log "built in $((SECONDS - t0)) s"
    prune
elif [[ -f $dest/manifest.txt ]]; then
    log "another run published $key first; using it"
else
    die "cannot publish $dest"
fi
finish
