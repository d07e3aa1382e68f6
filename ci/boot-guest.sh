#!/bin/bash
# Build nimbus and boot Debian's cloud kernel with a busybox initramfs to a
# shell on the serial console: the README's "does it work here" command.
#
#   ci/boot-guest.sh [--cpus N] [--memory SIZE] [--demo]
#
# On a machine with VMX/SVM the shell is yours (interactive, on this
# terminal; `poweroff -f` in the guest ends nimbus).  Where /dev/kvm cannot
# run Linux (see ci/lib/kvm-mode.sh), the guest runs inside the nested test
# host (ci/vmrun.sh), which has no terminal to give you, so it runs a few
# commands in the guest and shows the transcript instead (also --demo).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
cpus=2
memory=1G
demo=0
while (($#)); do
    case $1 in
    --cpus) cpus=${2:?--cpus needs a value}; shift 2 ;;
    --memory) memory=${2:?--memory needs a value}; shift 2 ;;
    --demo) demo=1; shift ;;
    -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "boot-guest: unknown argument '$1'" >&2; exit 2 ;;
    esac
done

echo "boot-guest: building nimbus (build/)" >&2
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build >/dev/null
echo "boot-guest: preparing guest assets from Debian packages" >&2
assets=$(ci/guest-assets.sh --print-dir)
mode=$(ci/lib/kvm-mode.sh)

if [ "$mode" = direct ] && [ "$demo" = 0 ]; then
    echo "boot-guest: booting; type 'poweroff -f' in the guest to end nimbus" >&2
    exec build/nimbus --kernel "$assets/guest/vmlinuz" \
        --initramfs "$assets/guest/initramfs.cpio.gz" --cmdline "console=ttyS0" \
        --cpus "boot=$cpus" --memory "size=$memory" --serial tty --console off
fi

demo_cmd=(/usr/bin/python3 ci/boot-demo.py --cpus "$cpus" --memory "$memory")
if [ "$mode" = direct ]; then
    exec "${demo_cmd[@]}"
fi
echo "boot-guest: this host's /dev/kvm cannot run Linux; using the nested test host" \
    "(QEMU TCG with SVM, about a minute)" >&2
exec ci/vmrun.sh --timeout 600 -- "${demo_cmd[@]}"
