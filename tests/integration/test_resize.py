"""CPU and memory hotplug into a running guest (issue 15): vm.resize as
Kata Containers sends it (integrations.md K10, K11), through ACPI CPU and
memory hotplug.  The guest's own ACPI processor driver must add the vCPUs
nimbus starts and eject the ones it is asked to give back; nimbus's vCPU
threads must follow; while a removal is pending another resize gets 429
"Too Many Requests".  Memory added at run time must grow MemTotal and hold
data the guest could not fit before.  Onlining hot-added CPUs is the
guest's decision (a udev rule, Kata's agent): here the test plays that
part through sysfs; memory comes online by memhp_default_state=online.
"""

import hashlib
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from framework import paths
from framework.api import Api, wait_socket
from framework.vm import wait_for
from framework.nimbus import DEFAULT_CMDLINE

BOOT_TIMEOUT = 180  # nested TCG


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
    wait_for(lambda: cpu_list(vm, "present") == "0-3", 60, "the guest to add vCPUs 2 and 3")
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
    wait_for(lambda: cpu_list(vm, "present") == "0-1", 60, "the guest to eject vCPUs 2 and 3")
    assert nproc(vm) == 2
    wait_for(lambda: vcpu_threads(vm) == {"vcpu0", "vcpu1"}, 30,
               "nimbus to stop the ejected vCPUs")

    # Up again: the same KVM vCPUs come back and run.
    r = api.put("vm.resize", {"desired_vcpus": 3})
    assert r.status == 204, (r.status, r.body)
    wait_for(lambda: cpu_list(vm, "present") == "0-2", 60, "vCPU 2 to come back")
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
    wait_for(lambda: cpu_list(vm, "present") == "0-3", 60, "the guest to add vCPUs")
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
    wait_for(lambda: cpu_list(vm, "present") == "0-2", 60, "the guest to eject vCPU 3")
    wait_for(lambda: vcpu_threads(vm) == {"vcpu0", "vcpu1", "vcpu2"}, 30,
               "nimbus to stop vCPU 3")
    assert boot_vcpus(api) == 3
    r = api.put("vm.resize", {"desired_vcpus": 2})
    assert r.status == 204, (r.status, r.body)
    wait_for(lambda: cpu_list(vm, "present") == "0-1", 60, "the guest to eject vCPU 2")

    # Bad requests change nothing.
    for body, status in (({"desired_vcpus": 0}, 400), ({"desired_vcpus": 5}, 400),
                         ({"desired_vcpus": "2"}, 400), ({"desired_vcpus": 1.5}, 400),
                         ({"desired_ram": 1}, 400), ({"desired_balloon": 1}, 501),
                         ([], 400)):
        r = api.put("vm.resize", body)
        assert r.status == status, (body, r.status, r.body)
    wait_for(lambda: vcpu_threads(vm) == {"vcpu0", "vcpu1"}, 30, "vCPU 2 to stop")
    assert nproc(vm) == 2
    assert boot_vcpus(api) == 2


def mem_total_kib(vm) -> int:
    return int(re.search(r"MemTotal:\s+(\d+) kB", vm.check_output("cat /proc/meminfo")).group(1))


@pytest.mark.slow
def test_memory_added_at_run_time(vm_factory):
    """Kata's K11: desired_ram grows the guest (ACPI memory devices), which
    then holds more than its boot RAM could; memory_actual_size follows, a
    reboot keeps it, shrinking and odd sizes are refused."""
    work = vm_factory.scratch_dir()
    sock = work / "api.sock"
    vm = vm_factory.nimbus(cmdline=DEFAULT_CMDLINE + " memhp_default_state=online",
                           memory="512M,hotplug_size=1G",
                           extra=["--api-socket", f"path={sock}", "-v"])
    vm.wait_ready(BOOT_TIMEOUT)
    wait_socket(sock, 30, alive=vm.alive)
    api = Api(sock)
    before = mem_total_kib(vm)
    assert before < 512 * 1024
    assert api.ok("GET", "vm.info")["memory_actual_size"] == 512 << 20

    r = api.put("vm.resize", {"desired_ram": 1 << 30})
    assert r.status == 204, (r.status, r.body)
    grown = wait_for(lambda: (mem_total_kib(vm) - before) or None, 60,
                       "MemTotal to grow")
    # Every page of the new 512 MiB, give or take the kernel's bookkeeping.
    wait_for(lambda: mem_total_kib(vm) - before >= 512 * 1024 - 8192, 60,
               "all 512 MiB to come online")
    assert mem_total_kib(vm) - before <= 512 * 1024, grown
    info = api.ok("GET", "vm.info")
    assert info["memory_actual_size"] == 1 << 30
    assert info["config"]["memory"]["hotplugged_size"] == 512 << 20
    # 640 MiB do not fit in the 512 MiB the guest booted with: they land in
    # the new memory, and come back intact.
    vm.check_output("mkdir -p /mnt/big && mount -t tmpfs -o size=800m tmpfs /mnt/big")
    # A 1 MiB pattern doubled in place (dd copies the file's first half
    # behind it), then 128 MiB more: 640 MiB, built without a second copy.
    vm.check_output("(cd /mnt/big && yes nimbus-memory-hotplug | head -c 1048576 > f && "
                    "for n in 1 2 4 8 16 32 64 128 256; do "
                    "dd if=f of=f bs=1M count=$n seek=$n conv=notrunc 2>/dev/null; done && "
                    "dd if=f of=f bs=1M count=128 seek=512 conv=notrunc 2>/dev/null)",
                    timeout=300)
    chunk = (b"nimbus-memory-hotplug\n" * (1048576 // 22 + 1))[:1048576]
    want = hashlib.md5()
    for _ in range(640):
        want.update(chunk)
    got = vm.check_output("md5sum /mnt/big/f", timeout=300).split()[0]
    assert got == want.hexdigest()
    vm.check_output("rm /mnt/big/f && umount /mnt/big")

    for body in ({"desired_ram": 512 << 20}, {"desired_ram": (1 << 30) + (64 << 20)},
                 {"desired_ram": (3 << 29) + (1 << 30)}):
        r = api.put("vm.resize", body)
        assert r.status == 400, (body, r.status, r.body)
    # Another step, then a reboot keeps all of it (present at boot).
    assert api.put("vm.resize", {"desired_ram": (1 << 30) + (256 << 20)}).status == 204
    wait_for(lambda: mem_total_kib(vm) - before >= 768 * 1024 - 8192, 60,
               "the second step to come online")
    assert api.put("vm.reboot").status == 204
    vm.wait_ready(BOOT_TIMEOUT, after_reset=True)
    wait_for(lambda: mem_total_kib(vm) - before >= 768 * 1024 - 8192, 60,
               "the hot-plugged memory after the reboot")
    assert api.ok("GET", "vm.info")["memory_actual_size"] == (1 << 30) + (256 << 20)
