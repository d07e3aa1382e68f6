"""--landlock (Cloud Hypervisor's option): nimbus confined to the paths its
configuration names still runs a real guest with every kind of device: a
read-write disk whose data round-trips, the entropy device, user-mode
networking, the REST API socket, and an in-process reboot (which reopens
the kernel, the initramfs and the disks). That a path outside the
configuration cannot be opened is checked in tests/unit/test_vmm_smoke.c.
"""

import pytest

from framework.api import Api, wait_socket
from framework.disks import guest_disks, guest_read_sha256, guest_write_random, make_image

BOOT_TIMEOUT = 180  # nested TCG
MIB = 1 << 20


@pytest.mark.slow
def test_confined_guest_works_and_reboots(vm_factory):
    work = vm_factory.scratch_dir()
    img = make_image(work / "disk.raw", 16 * MIB)
    sock = work / "api.sock"
    vm = vm_factory.nimbus(extra=[
        "--landlock", "--disk", f"path={img}", "--rng", "--net", "user=on",
        "--api-socket", f"path={sock}", "-v"])
    vm.wait_ready(BOOT_TIMEOUT)
    wait_socket(sock, 30, alive=vm.alive)
    assert Api(sock).state() == "Running"

    dev = next(iter(guest_disks(vm).values())).dev
    sha = guest_write_random(vm, dev, 2, 4)
    assert guest_read_sha256(vm, dev, 2, 4) == sha
    out = vm.check_output("dd if=/dev/hwrng bs=32 count=1 iflag=fullblock 2>/dev/null | wc -c")
    assert out == "32", out
    assert "eth0" in vm.check_output("ls /sys/class/net").split()

    pid = vm.proc.pid
    vm.console.mark()
    vm.send("reboot -f\n")
    vm.wait_ready(BOOT_TIMEOUT, after_reset=True)
    assert vm.proc.pid == pid
    dev = next(iter(guest_disks(vm).values())).dev
    assert guest_read_sha256(vm, dev, 2, 4) == sha, "the disk lost its data over the reboot"
    assert "landlock: ABI" in vm.stderr_text, "nimbus did not report the confinement"
    assert Api(sock).put("vmm.shutdown").status == 204
    assert vm.wait_exit(60) == 0
