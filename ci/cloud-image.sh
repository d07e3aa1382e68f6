#!/usr/bin/env bash
# Build a Debian 12 (bookworm) cloud disk image from Debian packages only,
# laid out like Debian's own genericcloud images, cached per package version;
# and make NoCloud seeds for it.
#
#   ci/cloud-image.sh [--print-dir]
#   ci/cloud-image.sh seed --hostname NAME --user NAME --ssh-key PUBKEYFILE
#                          [--net-tap-ip IP/PREFIX --gateway IP] [--mac MAC] -o SEED.img
#
# Result: ${NIMBUS_CLOUD_IMAGE_DIR:-$HOME/.cache/nimbus/cloud-image}/<key>/
#   debian12.raw    2 GiB sparse GPT disk, Debian's layout: partition 14 BIOS
#                   boot (3 MiB at 1 MiB), 15 EFI system (124 MiB vfat at
#                   4 MiB; EFI/debian/grub.cfg points GRUB at the root), 1 ext4
#                   root (label debian-root, from 128 MiB) holding /boot, with
#                   /boot/grub/grub.cfg made by Debian's grub-mkconfig and the
#                   /vmlinuz and /initrd.img symlinks
#   debian12.qcow2  the same, compressed qcow2
#   manifest.txt    key, package versions, kernel release, root UUID,
#                   partition offsets, sizes, build time
#   grub.cfg        a copy of the image's /boot/grub/grub.cfg
#   vmlinuz, initrd.img  copies of the image's kernel and initrd, for booting
#                   it with --kernel as Cloud Hypervisor's README does
# The root is `debootstrap --variant=minbase bookworm` plus the cloud kernel,
# systemd, cloud-init (NoCloud datasource only), openssh-server, netplan.io +
# systemd-networkd/-resolved (as Debian's bookworm cloud images), sudo and
# GRUB's tools, without recommends. ssh host keys and the machine-id are made
# at first boot. Not installed: a boot loader in the BIOS boot partition or on
# the ESP (the image is for nimbus' boot-from-disk, which reads grub.cfg).
#
# The key changes whenever a candidate version of a listed package (from this
# machine's apt lists) or this recipe changes; a cached key is printed in a
# second. Builds go to a temporary directory renamed into place, so
# concurrent runs are safe. Packages come from the Debian mirrors apt is
# configured with here (apt-get indextargets), with its proxy settings.
# Needs root (debootstrap, chroot), debootstrap, sfdisk (fdisk), mkfs.vfat
# (dosfstools), mtools, mke2fs >= 1.43 (-d), qemu-img; no loop devices. In a
# container: CAP_MKNOD (debootstrap makes device nodes; podman drops it by
# default); CAP_SYS_ADMIN is optional (/proc in the chroot).
# NIMBUS_CLOUD_IMAGE_KEEP_WORK=1 keeps the build's work directory (the tree
# and the logs of debootstrap, apt, grub-mkconfig) for debugging.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

if [[ ${1:-} == seed ]]; then
    shift
    # shellcheck source=ci/lib/cloud-image-seed.sh
    . "$here/lib/cloud-image-seed.sh"
    seed_main "$@"
    exit 0
fi

root=${NIMBUS_CLOUD_IMAGE_DIR:-$HOME/.cache/nimbus/cloud-image}
print_dir=0
while (($#)); do
    case $1 in
    --print-dir) print_dir=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "cloud-image: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done

t0=$SECONDS
log() { printf 'cloud-image: [%3ds] %s\n' "$((SECONDS - t0))" "$*" >&2; }
die() { printf 'cloud-image: error: %s\n' "$*" >&2; exit 1; }

SUITE=bookworm
# What goes on top of minbase. Debian's bookworm cloud images network with
# netplan.io rendering for systemd-networkd, and systemd-resolved; ifupdown
# is not in them. isc-dhcp-client is a dependency of cloud-init anyway;
# zstd lets initramfs-tools use its default compression (Debian installs it
# as a Recommends of the kernel).
PACKAGES=(
    systemd-sysv linux-image-cloud-amd64 initramfs-tools
    cloud-init openssh-server sudo
    netplan.io systemd-resolved isc-dhcp-client iproute2
    grub-pc-bin grub2-common e2fsprogs ca-certificates
    zstd
)
# Debian's cloud kernel command line (debian-cloud-images, GRUB_CMDLINE_LINUX).
CMDLINE="console=tty0 console=ttyS0,115200 earlyprintk=ttyS0,115200 consoleblank=0"

# The genericcloud partition layout (`sfdisk -l` of Debian's images), in
# 512-byte sectors.
DISK_BYTES=$((2 << 30))
BIOS_START=2048 BIOS_SECTORS=6144 # 3 MiB, ends at 4 MiB
ESP_START=8192 ESP_SECTORS=253952 # 124 MiB, ends at 128 MiB
ROOT_START=262144                 # 128 MiB; to the end of the disk
ROOT_LABEL=debian-root

RECIPE_FILES=("$here/cloud-image.sh" "$here/lib/cloud-image-grub-probe.sh")

# "pkg=version" per listed package (candidates), and the versioned kernel
# package the metapackage depends on; one apt-cache call.
resolve_versions() {
    versions=$(apt-cache show --no-all-versions "${PACKAGES[@]}" 2>/dev/null | awk '
        /^Package: / { pkg = $2 }
        /^Version: / { print pkg "=" $2 }
        /^Depends: / && pkg == "linux-image-cloud-amd64" {
            d = $0; sub(/^Depends: /, "", d); sub(/,.*/, "", d); gsub(/[()=]/, "", d)
            split(d, w, /[ \t]+/); print w[1] "=" w[2]
        }') || return 1
    local p
    for p in "${PACKAGES[@]}"; do
        grep -q "^$p=" <<<"$versions" || return 1
    done
    kernel_pkg=$(grep -o '^linux-image-[0-9][^=]*-cloud-amd64' <<<"$versions") || return 1
}

if ! resolve_versions; then
    if ((EUID == 0)); then
        log "package lists lack the image's packages; running apt-get update"
        apt-get update -qq >&2 || die "apt-get update failed"
        resolve_versions || die "some of ${PACKAGES[*]} are not in apt"
    elif [[ -e $root/current/manifest.txt ]]; then
        log "cannot resolve package versions; using $root/current"
        [[ $print_dir == 1 ]] && readlink -f "$root/current"
        exit 0
    else
        die "cannot resolve the image's packages with apt-cache (run apt-get update as root)"
    fi
fi

recipe_hash=$(cat "${RECIPE_FILES[@]}" | sha256sum | cut -c1-16)
key_src="$(LC_ALL=C sort <<<"$versions" | tr '\n' ' ')recipe=$recipe_hash"
kernel_ver=$(sed -n "s/^$kernel_pkg=//p" <<<"$versions")
key_hash=$(printf '%s' "$key_src" | sha256sum | cut -c1-12)
key="$SUITE-${kernel_ver//[^A-Za-z0-9.+-]/_}-$key_hash"
dest=$root/$key

finish() {
    { ln -sfn "$key" "$root/.current.$$" && mv -Tf "$root/.current.$$" "$root/current"; } || true
    log "image ready: $dest"
    if ((print_dir)); then printf '%s\n' "$dest"; fi
    exit 0
}

if [[ -f $dest/manifest.txt ]]; then
    finish
fi

((EUID == 0)) || die "building the image needs root (debootstrap, chroot); cached images need not"
for tool in debootstrap sfdisk mkfs.vfat mmd mcopy mkfs.ext4 qemu-img chroot; do
    PATH=$PATH:/usr/sbin:/sbin command -v "$tool" >/dev/null ||
        die "$tool is missing (ci/install-deps.sh installs it)"
done
export PATH=$PATH:/usr/sbin:/sbin

log "building $key ($key_src)"
mkdir -p "$root"
work=$(mktemp -d "$root/.build.XXXXXX")
if [[ ${NIMBUS_CLOUD_IMAGE_KEEP_WORK:-0} == 1 ]]; then
    trap 'log "kept $work"' EXIT
else
    trap 'rm -rf "$work"' EXIT
fi
tree=$work/tree

# IDs fixed per build (derived from the key), so a rebuild is the same disk.
uuid_of() {
    local h
    h=$(printf '%s/%s' "$key" "$1" | sha256sum)
    printf '%s-%s-4%s-a%s-%s\n' "${h:0:8}" "${h:8:4}" "${h:13:3}" "${h:17:3}" "${h:20:12}"
}
ROOT_UUID=$(uuid_of root-fs)
ROOT_PARTUUID=$(uuid_of root-part)
DISK_GUID=$(uuid_of disk)
ESP_VOLID=$(printf '%s/esp' "$key" | sha256sum | cut -c1-8)
ESP_UUID="${ESP_VOLID:0:4}-${ESP_VOLID:4:4}"
ESP_UUID=${ESP_UUID^^}

# Each chroot command gets its own mount namespace with /proc and /sys, so
# nothing stays mounted when the build dies. Containers without
# CAP_SYS_ADMIN cannot unshare or mount: commands then run without /proc,
# which the packages here tolerate.
if unshare --mount --propagation private true 2>/dev/null; then
    have_ns=1
else
    have_ns=0
    log "no mount namespaces here (container without CAP_SYS_ADMIN?): the chroot runs without /proc and /sys"
fi
in_ns() {
    if ((have_ns)); then unshare --mount --propagation private "$@"; else "$@"; fi
}
in_chroot() {
    if ((have_ns)); then
        # shellcheck disable=SC2016 # expanded by that inner shell
        unshare --mount --propagation private /bin/sh -c \
            'mount -t proc proc "$0/proc" && mount -t sysfs sys "$0/sys" && exec chroot "$0" "$@"' \
            "$tree" "$@"
    else
        chroot "$tree" "$@"
    fi
}

# The mirrors and settings apt uses on this machine.
# shellcheck disable=SC2016 # apt's own $(FIELD) syntax
sources=$(apt-get indextargets --format '$(SITE) $(RELEASE) $(COMPONENT)' \
    'Identifier: Packages' 'Architecture: amd64' 2>/dev/null |
    awk -v s="$SUITE" '$2 == s || index($2, s "-") == 1' | LC_ALL=C sort -u) || true
mirror=$(awk -v s="$SUITE" '$2 == s { print $1; exit }' <<<"$sources")
[[ -n $mirror ]] || die "apt has no '$SUITE' source configured (apt-get indextargets)"
apt_conf=$(apt-config dump 2>/dev/null |
    grep -E '^Acquire::((http|https|ftp)::Proxy|Check-Valid-Until|Check-Date) ' || true)
proxy=$(apt-config dump 2>/dev/null | sed -n 's/^Acquire::http::Proxy "\(.*\)";$/\1/p' | head -n1)
[[ -n $proxy && $proxy != DIRECT ]] && export http_proxy=${http_proxy:-$proxy}

log "debootstrap --variant=minbase $SUITE from $mirror"
in_ns debootstrap --variant=minbase --arch=amd64 "$SUITE" "$tree" "$mirror" \
    >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    die "debootstrap failed (log above)"
}

# Build-time apt and dpkg settings, all removed again below.
awk '{ print "deb", $1, $2, $3 }' <<<"$sources" >"$tree/etc/apt/sources.list"
printf '%s\n' "$apt_conf" >"$tree/etc/apt/apt.conf.d/99nimbus-build"
printf '#!/bin/sh\nexit 101\n' >"$tree/usr/sbin/policy-rc.d"
chmod 755 "$tree/usr/sbin/policy-rc.d"
cp -L /etc/resolv.conf "$tree/etc/resolv.conf" 2>/dev/null || true

log "installing ${PACKAGES[*]}"
chroot_apt() {
    in_chroot /usr/bin/env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 apt-get -q "$@" \
        >>"$work/apt.log" 2>&1
}
if ! chroot_apt update || ! chroot_apt -y --no-install-recommends install "${PACKAGES[@]}"; then
    tail -n 40 "$work/apt.log" >&2
    die "apt-get in the chroot failed (log above)"
fi

kver=$(find "$tree/lib/modules" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | head -n1)
[[ -n $kver && -f $tree/boot/vmlinuz-$kver ]] || die "no kernel in /boot"
# virtio_console in the initramfs: the cloud kernel has it as a module, and
# systemd's getty generator puts a login prompt on hvc0 only when hvc0
# exists as it runs (before udev would load the module). Cloud Hypervisor's
# default console is hvc0.
echo virtio_console >>"$tree/etc/initramfs-tools/modules"
in_chroot update-initramfs -u -k "$kver" >>"$work/apt.log" 2>&1 || die "update-initramfs failed"
[[ -f $tree/boot/initrd.img-$kver ]] || die "no initrd.img-$kver in /boot (initramfs-tools)"
# linux-base's linux-update-symlinks makes these at kernel installation.
[[ -L $tree/vmlinuz ]] || ln -sfn "boot/vmlinuz-$kver" "$tree/vmlinuz"
[[ -L $tree/initrd.img ]] || ln -sfn "boot/initrd.img-$kver" "$tree/initrd.img"
# shellcheck disable=SC2016 # dpkg-query's ${field} syntax
installed=$(in_chroot dpkg-query -W -f '${Package}=${Version}\n' "${PACKAGES[@]}" "$kernel_pkg")
if [[ $(LC_ALL=C sort <<<"$installed") != "$(LC_ALL=C sort <<<"$versions")" ]]; then
    log "warning: the mirror installed other versions than this machine's apt lists name (apt-get update?): $(
        LC_ALL=C comm -13 <(LC_ALL=C sort <<<"$versions") <(LC_ALL=C sort <<<"$installed") | tr '\n' ' ')"
fi

log "configuring (kernel $kver)"
printf 'debian\n' >"$tree/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n' \
    >"$tree/etc/hosts"
cat >"$tree/etc/fstab" <<EOF
# /etc/fstab: static file system information.
UUID=$ROOT_UUID / ext4 rw,discard,errors=remount-ro,x-systemd.growfs 0 1
UUID=$ESP_UUID /boot/efi vfat defaults 0 0
EOF
mkdir -p "$tree/boot/efi"
cat >"$tree/etc/cloud/cloud.cfg.d/01_nimbus.cfg" <<'EOF'
# Only the NoCloud seed (a vfat or iso9660 file system labelled cidata) or
# nothing: no waiting on network metadata services that nimbus does not have.
datasource_list: [ NoCloud, None ]
# cloud-init's default en_US.UTF-8 is not generated in this minimal root
# (its locale module then fails, and "cloud-init status" says error);
# C.UTF-8 is built into glibc.
locale: C.UTF-8
EOF
# The final sources, as Debian's images have them.
rm -f "$tree/etc/apt/sources.list"
cat >"$tree/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: http://deb.debian.org/debian
Suites: $SUITE $SUITE-updates $SUITE-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF

log "grub-mkconfig (Debian's /etc/grub.d) for root UUID $ROOT_UUID"
# grub-pc's postinst writes /etc/default/grub from this template; grub-pc
# itself (which would run grub-install on a real disk) is not installed.
[[ -f $tree/etc/default/grub ]] || cp "$tree/usr/share/grub/default/grub" "$tree/etc/default/grub"
mkdir -p "$tree/etc/default/grub.d"
cat >"$tree/etc/default/grub.d/10_cloud.cfg" <<EOF
GRUB_CMDLINE_LINUX="$CMDLINE"
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_TIMEOUT=0
GRUB_TERMINAL="console serial"
GRUB_SERIAL_COMMAND="serial --speed=115200"
EOF
cat >"$tree/etc/nimbus-grub-probe.conf" <<EOF
ROOT_UUID=$ROOT_UUID
ROOT_PARTUUID=$ROOT_PARTUUID
ROOT_LABEL=$ROOT_LABEL
DEVICE=/dev/vda1
DISK=/dev/vda
EOF
for prog in grub-probe grub-mkrelpath; do
    d=/usr/sbin
    [[ $prog == grub-mkrelpath ]] && d=/usr/bin
    in_chroot dpkg-divert --quiet --local --rename --add "$d/$prog"
done
install -m 755 "$here/lib/cloud-image-grub-probe.sh" "$tree/usr/sbin/grub-probe"
# / is the file system's root, so every path is already relative to it.
# shellcheck disable=SC2016 # the stand-in's own "$1"
printf '#!/bin/sh\nexec readlink -f "$1"\n' >"$tree/usr/bin/grub-mkrelpath"
chmod 755 "$tree/usr/bin/grub-mkrelpath"
# grub-install would have made /boot/grub.
mkdir -p "$tree/boot/grub"
# 10_linux passes root=UUID= only when udev would have made this link.
# (test -e follows it, so its target must exist: an empty file will do.)
mkdir -p "$tree/dev/disk/by-uuid"
: >"$tree/dev/vda1"
ln -sfn ../../vda1 "$tree/dev/disk/by-uuid/$ROOT_UUID"
in_chroot /usr/sbin/grub-mkconfig -o /boot/grub/grub.cfg >"$work/grub-mkconfig.log" 2>&1 || {
    cat "$work/grub-mkconfig.log" >&2
    die "grub-mkconfig failed"
}
rm -rf "$tree/dev/disk" "$tree/dev/vda1" "$tree/etc/nimbus-grub-probe.conf" "$tree/usr/sbin/grub-probe" \
    "$tree/usr/bin/grub-mkrelpath"
for prog in /usr/sbin/grub-probe /usr/bin/grub-mkrelpath; do
    in_chroot dpkg-divert --quiet --local --rename --remove "$prog"
done
grep -q "linux[[:space:]]*/boot/vmlinuz-$kver root=UUID=$ROOT_UUID ro $CMDLINE" "$tree/boot/grub/grub.cfg" ||
    die "grub.cfg lacks 'linux /boot/vmlinuz-$kver root=UUID=$ROOT_UUID ro $CMDLINE'; it has: $(
        grep -E '^[[:space:]]*(linux|search)' "$tree/boot/grub/grub.cfg" | head -n 4)"

log "cleaning up"
in_chroot apt-get clean
rm -rf "$tree"/var/lib/apt/lists/* "$tree/etc/apt/apt.conf.d/99nimbus-build" \
    "$tree/usr/sbin/policy-rc.d" "$tree"/etc/ssh/ssh_host_*_key* \
    "$tree"/var/cache/debconf/*-old "$tree"/var/lib/dpkg/*-old \
    "$tree"/var/lib/cloud/* "$tree"/tmp/* "$tree"/var/tmp/* "$tree/root/.bash_history"
find "$tree/var/log" -type f -exec truncate -s 0 {} +
# Empty, not missing: systemd then makes a new one at first boot.
: >"$tree/etc/machine-id"
rm -f "$tree/var/lib/dbus/machine-id"
# systemd-resolved's postinst points resolv.conf at its stub; keep that,
# drop the host's copy otherwise.
[[ -L $tree/etc/resolv.conf ]] || rm -f "$tree/etc/resolv.conf"
# devtmpfs provides /dev at boot; debootstrap's nodes are of no use there.
mountpoint -q "$tree/dev" && die "$tree/dev is still mounted"
find "$tree/dev" -mindepth 1 -delete
tree_kib=$(du -sk "$tree" | cut -f1)

log "disk image ($((DISK_BYTES >> 20)) MiB, GPT)"
raw=$work/out/debian12.raw
mkdir -p "$work/out"
truncate -s "$DISK_BYTES" "$raw"
# Named lines ("<disk>N : ...") give the partitions Debian's numbers.
cat >"$work/sfdisk.in" <<EOF
label: gpt
label-id: $DISK_GUID
unit: sectors
sector-size: 512

${raw}1 : start=$ROOT_START, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=$ROOT_PARTUUID
${raw}14 : start=$BIOS_START, size=$BIOS_SECTORS, type=21686148-6449-6E6F-744E-656564454649, uuid=$(uuid_of bios-part)
${raw}15 : start=$ESP_START, size=$ESP_SECTORS, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=$(uuid_of esp-part)
EOF
if ! sfdisk --no-reread --no-tell-kernel "$raw" <"$work/sfdisk.in" >"$work/sfdisk.log" 2>&1; then
    cat "$work/sfdisk.log" >&2
    die "sfdisk failed"
fi
sfdisk --dump "$raw" >"$work/table"
part_field() { # NUMBER FIELD: from the "<disk>N : start=..., size=..." dump lines
    sed -n "s|^${raw}$1 :.*[ ,]$2= *\([0-9]*\).*|\1|p" "$work/table"
}
[[ $(part_field 1 start) == "$ROOT_START" && $(part_field 14 start) == "$BIOS_START" &&
    $(part_field 15 start) == "$ESP_START" && $(part_field 14 size) == "$BIOS_SECTORS" &&
    $(part_field 15 size) == "$ESP_SECTORS" ]] || die "partition table is not as planned: $(cat "$work/table")"
root_sectors=$(part_field 1 size)
root_bytes=$((root_sectors * 512 / 4096 * 4096))

esp=$work/esp.img
mkfs.vfat -C -F 32 -i "$ESP_VOLID" "$esp" $((ESP_SECTORS / 2)) >/dev/null
cat >"$work/esp-grub.cfg" <<EOF
search.fs_uuid $ROOT_UUID root
set prefix=(\$root)'/boot/grub'
configfile \$prefix/grub.cfg
EOF
MTOOLS_SKIP_CHECK=1 mmd -i "$esp" ::/EFI ::/EFI/debian
MTOOLS_SKIP_CHECK=1 mcopy -i "$esp" "$work/esp-grub.cfg" ::/EFI/debian/grub.cfg
dd if="$esp" of="$raw" bs=512 seek="$ESP_START" conv=notrunc,sparse status=none

log "ext4 root ($((root_bytes >> 20)) MiB) from the tree"
rootfs=$work/root.img
truncate -s "$root_bytes" "$rootfs"
mkfs.ext4 -q -F -L "$ROOT_LABEL" -U "$ROOT_UUID" -E root_owner=0:0 -d "$tree" "$rootfs" ||
    die "mkfs.ext4 -d failed"
dd if="$rootfs" of="$raw" bs=1M seek=$((ROOT_START / 2048)) conv=notrunc,sparse status=none
fs_blocks=$(dumpe2fs -h "$rootfs" 2>/dev/null | awk -F': *' '/^Block count/ { print $2 }')
fs_free=$(dumpe2fs -h "$rootfs" 2>/dev/null | awk -F': *' '/^Free blocks/ { print $2 }')
used_mib=$(((fs_blocks - fs_free) * 4 / 1024))
rm -f "$rootfs" "$esp"

log "qcow2"
qemu-img convert -c -f raw -O qcow2 "$raw" "$work/out/debian12.qcow2"

{
    printf 'key=%s\n' "$key"
    printf 'suite=%s\n' "$SUITE"
    printf 'recipe=%s\n' "$recipe_hash"
    printf 'kernel_release=%s\n' "$kver"
    printf 'cmdline=root=UUID=%s ro %s\n' "$ROOT_UUID" "$CMDLINE"
    printf 'root_uuid=%s\n' "$ROOT_UUID"
    printf 'root_label=%s\n' "$ROOT_LABEL"
    printf 'root_partuuid=%s\n' "$ROOT_PARTUUID"
    printf 'esp_uuid=%s\n' "$ESP_UUID"
    printf 'disk_guid=%s\n' "$DISK_GUID"
    printf 'disk_bytes=%s\n' "$DISK_BYTES"
    printf 'partition_1=root ext4 offset=%s bytes=%s\n' $((ROOT_START * 512)) $((root_sectors * 512))
    printf 'partition_14=bios-boot offset=%s bytes=%s\n' $((BIOS_START * 512)) $((BIOS_SECTORS * 512))
    printf 'partition_15=esp vfat offset=%s bytes=%s\n' $((ESP_START * 512)) $((ESP_SECTORS * 512))
    printf 'root_used_mib=%s\n' "$used_mib"
    printf 'tree_kib=%s\n' "$tree_kib"
    printf 'qcow2_bytes=%s\n' "$(stat -c %s "$work/out/debian12.qcow2")"
    while IFS= read -r p; do printf 'package=%s\n' "$p"; done <<<"$installed"
    printf 'built=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    printf 'build_seconds=%s\n' "$((SECONDS - t0))"
} >"$work/out/manifest.txt"
install -m 644 "$tree/boot/grub/grub.cfg" "$work/out/grub.cfg"
# The kernel and initrd beside the image, as Cloud Hypervisor's README has a
# user download them for "--kernel ... --disk" (and for QEMU in benchmarks).
install -m 644 "$tree/boot/vmlinuz-$kver" "$work/out/vmlinuz"
install -m 644 "$tree/boot/initrd.img-$kver" "$work/out/initrd.img"

# prune: keep the two newest images; forget builds of runs that died.
prune() {
    local d keep=2
    while IFS= read -r d; do
        if ((keep > 0)); then keep=$((keep - 1)); continue; fi
        [[ $d == "$dest" ]] || { log "removing old image ${d##*/}"; rm -rf "$d"; }
    done < <(find "$root" -mindepth 2 -maxdepth 2 -name manifest.txt -printf '%T@ %h\n' |
        sort -rn | cut -d' ' -f2-)
    find "$root" -mindepth 1 -maxdepth 1 -name '.build.*' -mmin +120 -exec rm -rf {} + 2>/dev/null || true
}

chmod 755 "$work/out"
if mv -T "$work/out" "$dest" 2>/dev/null; then
    log "built in $((SECONDS - t0)) s (root file system uses $used_mib MiB)"
    prune
elif [[ -f $dest/manifest.txt ]]; then
    log "another run published $key first; using it"
else
    die "cannot publish $dest"
fi
finish
