#!/bin/sh
# Stand-in for grub-probe while ci/cloud-image.sh runs grub-mkconfig in the
# image's chroot: the root file system lives in a plain directory that only
# later becomes partition 1 of the disk image, so the real grub-probe has no
# device to look at. Every path answers as that future partition (/ and /boot
# are one ext4 file system, like Debian's cloud images). The values come from
# /etc/nimbus-grub-probe.conf, written by the build and removed afterwards:
#   ROOT_UUID, ROOT_PARTUUID, DEVICE (/dev/vda1), DISK (/dev/vda)
# Probes this does not know fail loudly, so a new grub.d script cannot get a
# silently wrong answer.
set -eu
# shellcheck source=/dev/null # written by ci/cloud-image.sh into the chroot
. /etc/nimbus-grub-probe.conf

target=""
while [ $# -gt 0 ]; do
    case $1 in
    --target=*) target=${1#--target=} ;;
    -t | --target) target=$2; shift ;;
    -d | --device) ;; # the operand is a device instead of a path: same answers
    --device=*) ;;
    -*) ;;
    *) ;;
    esac
    shift
done

case $target in
device) echo "$DEVICE" ;;
disk) echo "$DISK" ;;
fs) echo ext2 ;;
fs_uuid) echo "$ROOT_UUID" ;;
fs_label) echo "$ROOT_LABEL" ;;
partuuid) echo "$ROOT_PARTUUID" ;;
partmap) echo gpt ;;
abstraction | cryptodisk_uuid) ;;
drive) echo "(hd0,gpt1)" ;;
compatibility_hint) echo "hd0,gpt1" ;;
bios_hints) echo "--hint-bios=hd0,gpt1" ;;
hints_string) echo "--hint-bios=hd0,gpt1 --hint-efi=hd0,gpt1 --hint-baremetal=ahci0,gpt1" ;;
gpt_parttype) echo "0fc63daf-8483-4772-8e79-3d69d8477de4" ;;
*)
    echo "grub-probe (nimbus cloud-image stand-in): unsupported target '$target'" >&2
    exit 1
    ;;
esac
