"""CPU hotplug into a running guest (issue 15): vm.resize desired_vcpus as
Kata Containers sends it (integrations.md K10), through ACPI CPU hotplug.
The guest's own ACPI processor driver must add the vCPUs nimbus starts and
eject the ones it is asked to give back; nimbus's vCPU threads must follow;
while a removal is pending another resize gets 429 "Too Many Requests".
Onlining a hot-added CPU is the guest's decision (a udev rule, Kata's
agent); here the test plays that part through sysfs.
"""

import os
import subprocess
import time
from pathlib import Path

import pytest

from framework import paths
from framework.api import Api, wait_socket

BOOT_TIMEOUT = 180  # nested TCG


def wait_until(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(1)


@pytest.fixture
def booted(vm_factory):
    work = vm_factory.scratch_dir()
    sock = work / "api.sock"
    vm = vm_factory.nimbus(cpus="boot=2,max=4", extra=["--api-socket", f"path={sock}", "-v"])
    vm.wait_ready(BOOT_TIMEOUT)
    wait_socket(sock, 30, alive=vm.alive)
    return vm, Api(sock), sock


def cpu_list(vm, what: str) -> str:
    return vm.check_output(f"cat /sys/devices/system/cpu/{what}").strip()


def nproc(vm) -> int:
    return int(vm.check_output("nproc").strip())


def vcpu_threads(vm) -> set:
    task = Path(f"/proc/{vm.proc.pid}/task")
    names = set()
    for t in os.listdir(task):
        try:
            names.add((task / t / "comm").read_text().strip())
        except OSError:
            pass  # the thread ended while we looked
    return {n for n in names if n.startswith("vcpu")}


def boot_vcpus(api: Api) -> int:
    return api.ok("GET", "vm.info")["config"]["cpus"]["boot_vcpus"]


def online(vm, cpus):
    for c in cpus:
        vm.check_output(f"echo 1 > /sys/devices/system/cpu/cpu{c}/online")


def acpi_cpu_dir(vm, uid: int) -> str:
    """The guest's ACPI device of the processor object with _UID uid."""
    out = vm.check_output("for d in /sys/bus/acpi/devices/ACPI0007:*; do "
                          "echo \"$d $(cat $d/uid 2>/dev/null)\"; done")
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] == str(uid):
            return parts[0]
    raise AssertionError(f"no ACPI0007 device with _UID {uid}:\n{out}")


@pytest.mark.slow
def test_vcpus_resized_up_and_down(booted):
    vm, api, sock = booted
    # The MADT offers 4, the guest starts with 2.
    assert cpu_list(vm, "possible") == "0-3"
    assert cpu_list(vm, "present") == "0-1"
    assert nproc(vm) == 2
    assert vcpu_threads(vm) == {"vcpu0", "vcpu1"}
    info = api.ok("GET", "vm.info")["config"]["cpus"]
    assert (info["boot_vcpus"], info["max_vcpus"]) == (2, 4), info

    # As a user would: ch-remote's command line.
    out = subprocess.run([str(paths.nimbus_remote_bin()), "--api-socket", str(sock),
                          "resize", "--cpus", "4"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert vcpu_threads(vm) == {"vcpu0", "vcpu1", "vcpu2", "vcpu3"}
    assert boot_vcpus(api) == 4
    wait_until(lambda: cpu_list(vm, "present") == "0-3", 60, "the guest to add vCPUs 2 and 3")
    online(vm, (2, 3))
    assert nproc(vm) == 4
    assert cpu_list(vm, "online") == "0-3"
    # Work really runs on a hot-added vCPU: field 39 of stat is the CPU last run on.
    code, out = vm.run("taskset -c 3 cat /proc/self/stat")
    if code == 0:
        assert out.split()[38] == "3", out

    r = api.put("vm.resize", {"desired_vcpus": 2})
    assert r.status == 204, (r.status, r.body)
    assert boot_vcpus(api) == 2
    wait_until(lambda: cpu_list(vm, "present") == "0-1", 60, "the guest to eject vCPUs 2 and 3")
    assert nproc(vm) == 2
    wait_until(lambda: vcpu_threads(vm) == {"vcpu0", "vcpu1"}, 30,
               "nimbus to stop the ejected vCPUs")

    # Up again: the same KVM vCPUs come back and run.
    r = api.put("vm.resize", {"desired_vcpus": 3})
    assert r.status == 204, (r.status, r.body)
    wait_until(lambda: cpu_list(vm, "present") == "0-2", 60, "vCPU 2 to come back")
    online(vm, (2,))
    assert nproc(vm) == 3

    # A reboot keeps the count the VM was resized to.
    assert api.put("vm.reboot").status == 204
    vm.wait_ready(BOOT_TIMEOUT, after_reset=True)
    assert (cpu_list(vm, "possible"), cpu_list(vm, "present")) == ("0-3", "0-2")
    assert nproc(vm) == 3


@pytest.mark.slow
def test_resize_while_a_removal_is_pending(booted):
    """Kata's K10: 429 while the guest has not ejected; the guest may also
    eject a vCPU on its own (sysfs), and nimbus follows."""
    vm, api, _ = booted
    r = api.put("vm.resize", {"desired_vcpus": 4})
    assert r.status == 204, (r.status, r.body)
    wait_until(lambda: cpu_list(vm, "present") == "0-3", 60, "the guest to add vCPUs")
    online(vm, (2, 3))

    # The guest refuses eject requests for now, so the removal stays pending.
    vm.check_output("echo 0 > /sys/firmware/acpi/hotplug/processor/enabled")
    r = api.put("vm.resize", {"desired_vcpus": 3})
    assert r.status == 204, (r.status, r.body)
    time.sleep(2)
    for want in (2, 3, 4):
        r = api.put("vm.resize", {"desired_vcpus": want})
        assert r.status == 429, (want, r.status, r.body)
        assert "Too Many Requests" in r.json[0], r.json
    assert cpu_list(vm, "present") == "0-3"
    assert vcpu_threads(vm) == {"vcpu0", "vcpu1", "vcpu2", "vcpu3"}

    # The guest ejects vCPU 3 itself: the removal ends, nimbus stops its thread.
    vm.check_output("echo 1 > /sys/firmware/acpi/hotplug/processor/enabled")
    vm.check_output(f"echo 1 > {acpi_cpu_dir(vm, 3)}/eject")
    wait_until(lambda: cpu_list(vm, "present") == "0-2", 60, "the guest to eject vCPU 3")
    wait_until(lambda: vcpu_threads(vm) == {"vcpu0", "vcpu1", "vcpu2"}, 30,
               "nimbus to stop vCPU 3")
    assert boot_vcpus(api) == 3
    r = api.put("vm.resize", {"desired_vcpus": 2})
    assert r.status == 204, (r.status, r.body)
    wait_until(lambda: cpu_list(vm, "present") == "0-1", 60, "the guest to eject vCPU 2")

    # Bad requests change nothing.
    for body, status in (({"desired_vcpus": 0}, 400), ({"desired_vcpus": 5}, 400),
                         ({"desired_vcpus": "2"}, 400), ({"desired_vcpus": 1.5}, 400),
                         ({"desired_ram": 1}, 501), ([], 400)):
        r = api.put("vm.resize", body)
        assert r.status == status, (body, r.status, r.body)
    wait_until(lambda: vcpu_threads(vm) == {"vcpu0", "vcpu1"}, 30, "vCPU 2 to stop")
    assert nproc(vm) == 2
    assert boot_vcpus(api) == 2
