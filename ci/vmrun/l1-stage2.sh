#!/bin/sh
# Stage 2 of the vmrun L1 VM: PID 1 in the new root, run by busybox sh from
# /run/vmrun (the host root has no busybox we could rely on).
#   - route the job's stdout/stderr to the virtio-serial ports vmrun.stdout and
#     vmrun.stderr (files on the host side, streamed by ci/vmrun.sh),
#   - run /run/vmrun/job/run.sh (exports, cd, exec of the command) with a
#     clean environment under the host's /bin/sh: busybox sh would prefer its
#     own applets (ls, sh, ...) over the host programs the caller expects,
#   - write its exit status to the job share and power off.

BB=/run/vmrun/busybox
JOB=/run/vmrun/job
export PATH=/run/vmrun/bin

mkdir -p /run/vmrun/bin
$BB --install -s /run/vmrun/bin

out=/dev/null
err=/dev/null
for port in /sys/class/virtio-ports/*; do
    [ -r "$port/name" ] || continue
    case $(cat "$port/name") in
    vmrun.stdout) out=/dev/${port##*/} ;;
    vmrun.stderr) err=/dev/${port##*/} ;;
    esac
done
[ "$out" = /dev/null ] && echo "vmrun-l1: no vmrun.stdout port; stdout is lost"
[ "$err" = /dev/null ] && echo "vmrun-l1: no vmrun.stderr port; stderr is lost"

[ -c /dev/kvm ] && [ -e /sys/module/kvm ] ||
    echo "vmrun: warning: no /dev/kvm in the test host (see its console log)" >"$err"

echo "vmrun-l1: [$(cut -d" " -f1 /proc/uptime)] running job"
env -i /bin/sh $JOB/run.sh </dev/null >"$out" 2>"$err"
rc=$?
echo "vmrun-l1: [$(cut -d" " -f1 /proc/uptime)] job exited with status $rc"

echo "$rc" >$JOB/status.tmp && mv $JOB/status.tmp $JOB/status
sync
poweroff -f
