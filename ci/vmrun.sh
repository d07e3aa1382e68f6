#!/usr/bin/env bash
# Run a command inside a throwaway Linux VM that has a real (SVM) /dev/kvm.
#
#   ci/vmrun.sh [--timeout SECS] [--mem MB] [--cpus N] [--] CMD [ARG]...
#
# For hosts whose /dev/kvm cannot run Linux guests (see ci/lib/kvm-mode.sh):
# QEMU emulates (TCG) an AMD EPYC with SVM+NPT, Debian's generic kernel loads
# kvm-amd, and CMD runs there with the host's own files:
#   - host / is the read-only lower layer of a tmpfs overlay root: writes
#     anywhere succeed but never reach the host;
#   - the current directory is shared read-write at the same path, so results
#     written under it (junit XML, logs, disk images) come back;
#   - the nimbus checkout holding this script is visible read-only at its
#     path even when it lies under /tmp or /run;
#   - /tmp, /run and /dev/shm are fresh tmpfs; /dev/kvm and /dev/net/tun exist;
#   - no network (loopback only), stdin is /dev/null.
# CMD is an argv, run as is (no shell): use `sh -c '...'` for shell syntax.
# Its stdout and stderr arrive on vmrun's stdout and stderr (two virtio-serial
# ports), and its exit status is vmrun's. Exit statuses of vmrun itself:
#   124  the timeout (default 1800 s, includes boot) expired; the VM is killed
#   125  the VM did not run the command (boot failure, bad QEMU/kernel)
#   2    bad usage
# The L1 kernel console goes to a log file whose path is printed when the
# command fails or the VM does not run it.
#
# Environment passed into the VM: PATH HOME USER LOGNAME LANG LANGUAGE LC_*
# TZ TERM CI PYTEST_ADDOPTS PYTHONPATH PYTHONDONTWRITEBYTECODE PYTHONUNBUFFERED,
# every NIMBUS_* except NIMBUS_VMRUN_*, and the names listed (space separated)
# in NIMBUS_VMRUN_PASSENV. Inside, NIMBUS_VMRUN=1 and NIMBUS_GUEST_ASSETS is
# the asset directory.
#
# Settings (environment):
#   NIMBUS_VMRUN_TIMEOUT, NIMBUS_VMRUN_MEM, NIMBUS_VMRUN_CPUS  option defaults
#   NIMBUS_GUEST_ASSETS    asset directory (default: ci/guest-assets.sh --print-dir)
#   NIMBUS_VMRUN_KERNEL, NIMBUS_VMRUN_INITRD  L1 kernel/initramfs instead of the
#                                             ones from the asset directory
#   NIMBUS_VMRUN_QEMU      QEMU binary (default qemu-system-x86_64)
#   NIMBUS_VMRUN_LOG       always save the L1 console log to this file
#   NIMBUS_VMRUN_APPEND    extra L1 kernel command-line parameters; among them
#                          vmrun.kvm_amd=OPT=V[,OPT=V] loads kvm_amd with those
#                          options (e.g. vmrun.kvm_amd=npt=0: shadow paging in
#                          L1, to tell TCG's nested-paging emulation apart from
#                          a nimbus bug when an L2 guest misbehaves)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
timeout=${NIMBUS_VMRUN_TIMEOUT:-1800}
mem=${NIMBUS_VMRUN_MEM:-4096}
cpus=${NIMBUS_VMRUN_CPUS:-2}
qemu=${NIMBUS_VMRUN_QEMU:-qemu-system-x86_64}
msize=512000

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}
bad_usage() {
    echo "vmrun: $*" >&2
    echo "usage: ci/vmrun.sh [--timeout SECS] [--mem MB] [--cpus N] [--] CMD [ARG]..." >&2
    exit 2
}
# need_uint NAME VALUE: positive decimal integer or a usage error.
need_uint() {
    [[ $2 =~ ^[1-9][0-9]{0,6}$ ]] || bad_usage "$1 needs a positive integer, got '$2'"
}

while (($#)); do
    case $1 in
    --timeout | --mem | --cpus)
        (($# >= 2)) || bad_usage "$1 needs a value"
        need_uint "$1" "$2"
        case $1 in
        --timeout) timeout=$2 ;;
        --mem) mem=$2 ;;
        --cpus) cpus=$2 ;;
        esac
        shift 2
        ;;
    --timeout=* | --mem=* | --cpus=*)
        need_uint "${1%%=*}" "${1#*=}"
        case $1 in
        --timeout=*) timeout=${1#*=} ;;
        --mem=*) mem=${1#*=} ;;
        --cpus=*) cpus=${1#*=} ;;
        esac
        shift
        ;;
    -h | --help) usage; exit 0 ;;
    --) shift; break ;;
    -*) bad_usage "unknown option '$1'" ;;
    *) break ;;
    esac
done
(($#)) || bad_usage "no command given"
need_uint timeout "$timeout"
need_uint mem "$mem"
need_uint cpus "$cpus"

cwd=$(pwd -P)
[[ $cwd != / ]] || bad_usage "refusing to share / read-write: run from a project directory"

command -v "$qemu" >/dev/null || { echo "vmrun: $qemu not found (apt-get install qemu-system-x86)" >&2; exit 125; }

# A caller that already resolved the assets (ci/test-integration.sh) saves
# us the apt-cache look-up of ci/guest-assets.sh.
assets=${NIMBUS_GUEST_ASSETS:-}
if [[ -n $assets && ! -f $assets/manifest.txt ]]; then
    echo "vmrun: NIMBUS_GUEST_ASSETS=$assets is no asset directory" >&2
    exit 125
fi
if [[ -z $assets && ( -z ${NIMBUS_VMRUN_KERNEL:-} || -z ${NIMBUS_VMRUN_INITRD:-} ) ]]; then
    assets=$("$here/guest-assets.sh" --print-dir) || { echo "vmrun: ci/guest-assets.sh failed" >&2; exit 125; }
fi
kernel=${NIMBUS_VMRUN_KERNEL:-$assets/l1/vmlinuz}
initrd=${NIMBUS_VMRUN_INITRD:-$assets/l1/initramfs.cpio.gz}
for f in "$kernel" "$initrd"; do
    [[ -r $f ]] || { echo "vmrun: cannot read $f" >&2; exit 125; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/vmrun.XXXXXX")
qpid='' wdpid='' outpid='' errpid=''
keep_log=0

# Kill the QEMU process group: politely first, it flushes its chardevs.
# shellcheck disable=SC2317 # called from cleanup (EXIT trap)
kill_qemu() {
    [[ -n $qpid ]] || return 0
    kill -TERM -- "-$qpid" 2>/dev/null || return 0
    local i
    for ((i = 0; i < 50; i++)); do
        kill -0 -- "-$qpid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL -- "-$qpid" 2>/dev/null || true
}

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -n $wdpid ]] && kill "$wdpid" 2>/dev/null
    kill_qemu
    # Our read-write ends keep the readers from seeing EOF; drop them so the
    # readers drain what QEMU wrote and finish.
    exec 3>&- 4>&-
    [[ -n $outpid ]] && wait "$outpid" 2>/dev/null
    [[ -n $errpid ]] && wait "$errpid" 2>/dev/null
    if [[ -n ${NIMBUS_VMRUN_LOG:-} && -f $work/console.log ]]; then
        cp "$work/console.log" "$NIMBUS_VMRUN_LOG" 2>/dev/null || true
    fi
    if ((keep_log)) && [[ -f $work/console.log ]]; then
        local saved=${NIMBUS_VMRUN_LOG:-${TMPDIR:-/tmp}/vmrun-$(date +%Y%m%d-%H%M%S)-$$.console.log}
        [[ $saved == "${NIMBUS_VMRUN_LOG:-}" ]] || cp "$work/console.log" "$saved"
        echo "vmrun: L1 console log: $saved" >&2
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the job: environment, directory and argv, as a script for busybox sh
sq() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }
passenv() {
    local name
    for name in PATH HOME USER LOGNAME LANG LANGUAGE TZ TERM CI PYTEST_ADDOPTS PYTHONPATH \
        PYTHONDONTWRITEBYTECODE PYTHONUNBUFFERED ${NIMBUS_VMRUN_PASSENV:-}; do
        printf '%s\n' "$name"
    done
    compgen -e | grep -E '^(LC_|NIMBUS_)' | grep -v '^NIMBUS_VMRUN' || true
}
mkdir "$work/job"
printf '%s\n' "$cwd" >"$work/job/cwd"
# The checkout this script belongs to must be visible inside even when it
# lives under /tmp or /run (fresh tmpfs there) and the caller runs elsewhere:
# share it read-only unless the cwd share already contains it.
repo=$(cd "$here/.." && pwd -P)
case "$repo/" in
"$cwd"/*) ;;
*) printf '%s\n' "$repo" >"$work/job/repo" ;;
esac
{
    echo "# generated by ci/vmrun.sh"
    while IFS= read -r name; do
        [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ && -n ${!name+x} ]] || continue
        printf 'export %s=%s\n' "$name" "$(sq "${!name}")"
    done < <(passenv | sort -u)
    echo "export NIMBUS_VMRUN=1"
    [[ -n $assets ]] && printf 'export NIMBUS_GUEST_ASSETS=%s\n' "$(sq "$assets")"
    printf 'cd %s || exit 125\n' "$(sq "$cwd")"
    printf 'exec'
    for a in "$@"; do printf ' %s' "$(sq "$a")"; done
    printf '\n'
} >"$work/job/run.sh"

# --- output streams: QEMU writes FIFOs, cat copies them to our stdout/stderr
mkfifo "$work/stdout" "$work/stderr"
exec 3<>"$work/stdout" 4<>"$work/stderr"
cat "$work/stdout" 3>&- 4>&- &
outpid=$!
cat "$work/stderr" >&2 3>&- 4>&- &
errpid=$!

# passthrough keeps real ownership when we are root; unprivileged QEMU cannot
# chown, and "none" makes it ignore that instead of failing.
if ((EUID == 0)); then sm=passthrough; else sm=none; fi
repo_share=()
if [[ -f $work/job/repo ]]; then
    repo_share=(-fsdev "local,id=fsrepo,path=$repo,security_model=$sm,readonly=on,multidevs=remap"
        -device virtio-9p-pci,fsdev=fsrepo,mount_tag=vmrun_repo)
fi

# shellcheck disable=SC2054 # commas belong to QEMU option values
args=(
    -name vmrun -nodefaults -no-user-config -nographic -no-reboot
    -accel tcg,thread=multi -smp "$cpus" -m "$mem"
    # EPYC + SVM/NPT; the features TCG cannot emulate are dropped explicitly
    # (QEMU would drop them anyway, with a warning per feature and vCPU).
    -cpu EPYC,+svm,+npt,-rdseed,-sha-ni,-fxsr-opt,-misalignsse,-3dnowprefetch,-osvw,-topoext,-nrip-save,-xsavec
    -kernel "$kernel" -initrd "$initrd"
    -append "console=ttyS0 panic=-1 mitigations=off vmrun.msize=$msize ${NIMBUS_VMRUN_APPEND:-}"
    -chardev "file,id=con,path=$work/console.log" -serial chardev:con
    -device virtio-serial-pci,id=vser
    -chardev "file,id=out,path=$work/stdout"
    -device virtserialport,bus=vser.0,chardev=out,name=vmrun.stdout
    -chardev "file,id=err,path=$work/stderr"
    -device virtserialport,bus=vser.0,chardev=err,name=vmrun.stderr
    -fsdev "local,id=fsroot,path=/,security_model=$sm,readonly=on,multidevs=remap"
    -device virtio-9p-pci,fsdev=fsroot,mount_tag=vmrun_root
    -fsdev "local,id=fscwd,path=$cwd,security_model=$sm,multidevs=remap"
    -device virtio-9p-pci,fsdev=fscwd,mount_tag=vmrun_cwd
    -fsdev "local,id=fsjob,path=$work/job,security_model=$sm"
    -device virtio-9p-pci,fsdev=fsjob,mount_tag=vmrun_job
    "${repo_share[@]}"
)

# Own session and process group (setsid does not fork: a background child of
# a non-interactive shell is no group leader), so one kill reaches it all.
setsid "$qemu" "${args[@]}" </dev/null >"$work/qemu.log" 2>&1 3>&- 4>&- &
qpid=$!

# Watchdog: kills QEMU at the deadline, or as soon as vmrun itself is gone
# (even by SIGKILL, when no trap runs), so no VM outlives its caller. It has
# its own session too, so a SIGKILL to vmrun's process group spares it.
# shellcheck disable=SC2016 # the script is for the inner bash
setsid bash -c '
    qpid=$1 parent=$2 timeout=$3 work=$4
    # Microseconds; $SECONDS would count a partial first second as whole.
    now() { echo "${EPOCHREALTIME//[!0-9]/}"; }
    deadline=$(($(now) + timeout * 1000000))
    stop() {
        kill -TERM -- "-$qpid" 2>/dev/null || return 0
        for ((i = 0; i < 50; i++)); do
            kill -0 -- "-$qpid" 2>/dev/null || return 0
            sleep 0.1
        done
        kill -KILL -- "-$qpid" 2>/dev/null
    }
    # A killed vmrun stays a zombie until its parent reaps it, and a parent
    # may first wait for the end of its output, which QEMU holds: zombie
    # counts as gone.
    gone() {
        local s
        s=$(cat "/proc/$parent/stat" 2>/dev/null) || return 0
        s=${s##*) }
        [[ ${s%% *} == Z ]]
    }
    while kill -0 "$qpid" 2>/dev/null; do
        if gone; then
            # Nobody is left to clean up after vmrun: do it here.
            stop
            rm -rf "$work"
            exit 0
        fi
        if (($(now) >= deadline)); then
            : >"$work/timed-out"
            stop
            exit 0
        fi
        sleep 1
    done
' vmrun-watchdog "$qpid" "$$" "$timeout" "$work" </dev/null >/dev/null 2>&1 3>&- 4>&- &
wdpid=$!

qrc=0
wait "$qpid" || qrc=$?
qpid_done=$qpid
qpid=
kill -- "-$qpid_done" 2>/dev/null || true

if [[ -e $work/timed-out ]]; then
    keep_log=1
    echo "vmrun: timeout after $timeout s" >&2
    exit 124
fi
if [[ ! -f $work/job/status ]]; then
    keep_log=1
    echo "vmrun: the VM exited (QEMU status $qrc) without running the command" >&2
    if [[ -s $work/qemu.log ]]; then
        sed 's/^/vmrun: qemu: /' "$work/qemu.log" | tail -n 20 >&2
    fi
    exit 125
fi
rc=$(<"$work/job/status")
[[ $rc =~ ^[0-9]+$ ]] || { keep_log=1; echo "vmrun: bad status '$rc' from the VM" >&2; exit 125; }
if ((rc != 0)); then
    keep_log=1
    echo "vmrun: command exited with status $rc" >&2
fi
exit "$rc"
