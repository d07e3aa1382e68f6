"""Proof that the test host runs real Linux guests: QEMU/KVM as the inner
VMM boots the same Debian cloud kernel and initramfs that nimbus boots,
through the same fixture machinery (console pipes, agent protocol)."""

import secrets

import pytest

from framework import guest_cmdline

pytestmark = pytest.mark.slow

BOOT_TIMEOUT = 180  # nested TCG: the L2 kernel reaches /init in ~10 s


def test_qemu_boots_cloud_kernel_and_runs_commands(vm_factory, guest_assets):
    nonce = secrets.token_hex(6)
    vm = vm_factory.qemu(cmdline=guest_cmdline(f"nimbus.nonce={nonce}"), cpus=2)
    vm.wait_ready(BOOT_TIMEOUT)

    assert vm.check_output("nproc") == "2"
    assert f"nimbus.nonce={nonce}" in vm.check_output("cat /proc/cmdline").split()
    assert vm.check_output("uname -r") == guest_assets.guest_kernel_release
    # Status and output of a failing command travel back intact.
    assert vm.run("echo partial; sh -c 'exit 3'") == (3, "partial")

    vm.send("poweroff -f\n")
    assert vm.wait_exit(60) == 0
