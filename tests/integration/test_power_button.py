"""The ACPI power button: Cloud Hypervisor's PUT /api/v1/vm.power-button.

nimbus raises its Generic Event Device (\\_SB.GED_, ACPI0013), whose _EVT
method notifies \\_SB.PWRB (PNP0C0C); the guest's button driver reports
KEY_POWER and busybox acpid in the test initramfs (ci/lib/guest-init.sh)
prints a marker and powers off. As with Cloud Hypervisor, a VMM with an API
socket keeps serving after the guest powered off: vm.info then says
Shutdown, and vmm.shutdown ends it with status 0.
"""

import re

import pytest

from framework.api import Api, wait_socket
from framework.vm import wait_until

BOOT_TIMEOUT = 180  # nested TCG
POWEROFF_TIMEOUT = 120
MARKER = "NIMBUS-GUEST: power button, powering off"


@pytest.mark.slow
def test_power_button_powers_the_guest_off(vm_factory):
    sock = vm_factory.scratch_dir() / "api.sock"
    vm = vm_factory.nimbus(extra=["--api-socket", f"path={sock}"]).wait_ready(BOOT_TIMEOUT)
    wait_socket(sock, 30, alive=vm.alive)
    api = Api(sock)
    assert api.state() == "Running"

    # The guest side is in place: the GED bound to its interrupt, the
    # button's input device exists and acpid listens. (Checked first so a
    # failure below is about the button, not about the guest's setup.)
    assert "ACPI:Ged" in vm.check_output("cat /proc/interrupts")
    assert vm.check_output("cat /sys/class/input/input*/name").count("Power Button") == 1
    assert vm.run("pidof acpid")[0] == 0, "acpid is not running in the guest"

    reply = api.put("vm.power-button")
    assert reply.status == 204, f"{reply.status} {reply.body!r}"
    # Not anchored: the handler writes while the shell's prompt ends the line.
    vm.wait_for(re.escape(MARKER), POWEROFF_TIMEOUT)

    # The guest powered itself off; nimbus keeps serving.
    assert wait_until(lambda: api.state() == "Shutdown", POWEROFF_TIMEOUT), \
        f"vm.info still says {api.state()!r}"
    assert vm.alive(), "nimbus exited although it has an API socket"
    # No VM runs any more: a second press is refused.
    reply = api.put("vm.power-button")
    assert reply.status >= 400, f"power button on a shut-down VM: {reply.status}"

    reply = api.put("vmm.shutdown")
    assert reply.status in (200, 204), f"{reply.status} {reply.body!r}"
    assert vm.wait_exit(60) == 0
