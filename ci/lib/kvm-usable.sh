#!/usr/bin/env bash
# Exit 0 when /dev/kvm opens, speaks KVM API 12 and creates a VM; any
# flavour will do (kvm_pvm runs the freestanding unit-test guests, not Linux:
# ci/lib/kvm-mode.sh decides that from the CPU flags).
exec /usr/bin/python3 - <<'PY' 2>/dev/null
import fcntl, os
fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
assert fcntl.ioctl(fd, 0xAE00) == 12
os.close(fcntl.ioctl(fd, 0xAE01, 0))
PY
