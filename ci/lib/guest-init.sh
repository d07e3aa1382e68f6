#!/bin/sh
# /init of the L2 test guest (packed by ci/guest-assets.sh into
# guest/initramfs.cpio.gz; runs under busybox sh as PID 1).
#
# The console shell started here is the in-guest test agent: the host types
#     CMD; echo __RC_<nonce>=$?
# and reads the console until that marker (see tests/integration/README.md).
# Everything the host relies on is printed on the console the kernel command
# line chose (console=ttyS0, console=hvc0, ...), so the agent follows it.
#
# The cloud kernel has virtio as modules: they are loaded (list and order
# from /lib/modules/load.order, made at build time) before the console is
# opened, because with console=hvc0 the console only exists once
# virtio_console has bound to its device.

export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/root
umask 022

# With console=hvc0 the kernel found no console to give us, so fds 0-2 may
# be closed until the console is opened below: nothing here prints.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm /tmp /run
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run

# Load the modules in the background and give up waiting after a while: a
# device model that never completes a request (virtio_blk reads the partition
# table while probing) leaves insmod in D state forever. The shell must come
# up anyway, so that the test sees a clear failure instead of a silent guest.
MODLOAD_TIMEOUT=30
notes=""
if [ -s /lib/modules/load.order ]; then
    (
        while read -r mod; do
            echo "$mod" >/run/modload.current
            insmod "/lib/modules/$mod" 2>>/run/modload.errors ||
                echo "$mod" >>/run/modload.failed
        done </lib/modules/load.order
        rm -f /run/modload.current
        : >/run/modload.done
    ) </dev/null >/dev/null 2>&1 &
    i=0
    while [ ! -e /run/modload.done ] && [ $i -lt $((MODLOAD_TIMEOUT * 10)) ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if [ ! -e /run/modload.done ]; then
        notes="$notes module loading stuck after ${MODLOAD_TIMEOUT} s in $(cat /run/modload.current 2>/dev/null);"
    fi
    if [ -s /run/modload.failed ]; then
        notes="$notes insmod failed: $(tr '\n' ' ' </run/modload.failed);"
    fi
fi

# The console device: the one /dev/console stands for (the last console= of
# the command line that exists). /dev/console itself never becomes a
# controlling tty, so the shell gets the real device. A hvc console appears
# only once its virtio device is bound, which the loading above did (or not:
# then whatever console exists, else the first serial port).
want_hvc=0
# shellcheck disable=SC2013 # the command line is words, not lines
for arg in $(cat /proc/cmdline); do
    case $arg in
    console=hvc*) want_hvc=1 ;;
    esac
done
if [ $want_hvc = 1 ]; then
    i=0
    while [ ! -c /dev/hvc0 ] && [ $i -lt 20 ]; do
        sleep 0.1
        i=$((i + 1))
    done
fi
con=""
active=$(cat /sys/class/tty/console/active 2>/dev/null)
for dev in $active; do con=/dev/$dev; done
if [ -z "$con" ] || [ ! -c "$con" ]; then
    con=""
    for dev in /dev/hvc0 /dev/ttyS0; do
        if [ -c $dev ] && { : <>$dev; } 2>/dev/null; then
            con=$dev
            break
        fi
    done
    notes="$notes no active console (active='$active'), using ${con:-nothing};"
fi
[ -n "$con" ] && exec 0<>"$con" 1>&0 2>&0

# The ACPI power button: nimbus' GED notifies \_SB.PWRB, button.ko turns
# that into KEY_POWER on an input device, and busybox acpid (reading every
# /dev/input/event* that exists when it starts, so after the modules)
# runs /etc/acpi/PWRF/00000080. This /init is a shell, not busybox init,
# so plain `poweroff` would only signal a PID 1 that ignores it: the
# handler syncs and powers off itself, after a marker a test can wait for.
mkdir -p /etc/acpi/PWRF
cat >/etc/acpi/PWRF/00000080 <<EOF
#!/bin/sh
echo "NIMBUS-GUEST: power button, powering off" >${con:-/dev/console}
sync
exec poweroff -f
EOF
chmod 755 /etc/acpi/PWRF/00000080
if ! grep -qx "Power Button" /sys/class/input/input*/name 2>/dev/null; then
    notes="$notes no ACPI power button input device;"
elif ! acpid -l /run/acpid.log -p /run/acpid.pid; then
    notes="$notes acpid did not start;"
fi

hostname nimbus-guest
ip link set lo up 2>/dev/null

# A terse, fixed prompt keeps the echoed lines short on a slow serial line.
export PS1='guest# '
# Long commands must not be wrapped/redrawn by line editing at 80 columns.
stty cols 1000 2>/dev/null

[ -n "$notes" ] && echo "guest-init: WARNING:$notes"
echo "NIMBUS-GUEST-READY"

# Respawn so that a test typing "exit" (or a crashing shell) does not kill
# PID 1, which would panic the guest instead of giving a clean result. The
# new session opens the tty itself, so that it becomes its controlling tty
# (job control, ^C) as cttyhack would do for /dev/console.
while :; do
    # shellcheck disable=SC2016 # $0 is for the inner shell
    setsid sh -c 'exec sh -l <>"$0" >&0 2>&0' "${con:-/dev/console}"
    echo "guest-init: console shell exited, restarting"
    sleep 1
done
