"""nimbus boots the Debian cloud kernel (issue: boot + CLI).

Command line as Cloud Hypervisor's:
  nimbus --kernel K --initramfs I --cmdline "console=ttyS0" --cpus boot=2
         --memory size=1G --serial tty --console off
"""

import calendar
import re
import time

import pytest

from framework import run_vmm

BOOT_TIMEOUT = 180  # nested TCG: the L2 kernel reaches /init in ~10 s
GIB = 1 << 30
CLOCK_SLACK = 5  # seconds


@pytest.fixture(scope="module")
def guest(module_vm_factory):
    """One nimbus guest (2 vCPUs, 1 GiB) shared by the read-only checks."""
    return module_vm_factory.nimbus(cpus=2, memory="1G").wait_ready(BOOT_TIMEOUT)


@pytest.mark.slow
def test_boots_to_interactive_shell(guest):
    assert guest.run("echo hello from $(uname -s)") == (0, "hello from Linux")
    assert guest.run("false")[0] == 1


@pytest.mark.slow
def test_two_vcpus(guest):
    assert guest.check_output("nproc") == "2"
    assert guest.check_output("grep -c ^processor /proc/cpuinfo") == "2"


@pytest.mark.slow
def test_memory_size(guest):
    meminfo = guest.check_output("cat /proc/meminfo")
    total_kib = int(re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.M).group(1))
    assert 0.90 * GIB <= total_kib * 1024 <= GIB, f"MemTotal {total_kib} kB"

    # "Memory: 987654K/1048052K available (...)": the second number is what
    # the e820 map gave the kernel.
    dmesg = guest.check_output("dmesg | grep 'Memory:'")
    m = re.search(r"Memory: \d+K/(\d+)K available", dmesg)
    assert m, "no 'Memory: .../...K available' line in dmesg"
    e820_bytes = int(m.group(1)) * 1024
    assert abs(e820_bytes - GIB) <= 0.01 * GIB, f"e820 total {m.group(1)}K"


@pytest.mark.slow
def test_guest_ram_is_2mib_aligned_in_the_vmm(guest):
    """Guest RAM sits on a 2 MiB boundary in nimbus' address space, so KVM
    can map it with huge pages; kernels before 6.7 (the nested test host's
    6.1) do not align large anonymous mappings by themselves."""
    maps = open(f"/proc/{guest.proc.pid}/maps").read()
    ram = []
    for line in maps.splitlines():
        start, end = (int(x, 16) for x in line.split()[0].split("-"))
        if end - start == GIB and line.split()[1].startswith("rw"):
            ram.append(start)
    assert len(ram) == 1, f"no single 1 GiB rw mapping in nimbus:\n{maps}"
    assert ram[0] % (2 << 20) == 0, f"guest RAM at {ram[0]:#x}"


@pytest.mark.slow
def test_system_time_matches_host(guest):
    guest_now = int(guest.check_output("date +%s"))
    assert abs(guest_now - time.time()) <= CLOCK_SLACK


@pytest.mark.slow
def test_cmos_rtc_matches_host(guest):
    # busybox: "Tue Nov 25 03:12:46 2026  0.000000 seconds"
    out = guest.check_output("hwclock -u -r -f /dev/rtc0")
    m = re.search(r"\w{3} (\w{3}) +(\d+) (\d\d):(\d\d):(\d\d) (\d{4})", out)
    assert m, f"cannot parse hwclock output {out!r}"
    rtc = calendar.timegm(time.strptime(" ".join(m.groups()), "%b %d %H %M %S %Y"))
    assert abs(rtc - time.time()) <= CLOCK_SLACK, out


@pytest.mark.slow
def test_guest_reboot_restarts_in_process_then_poweroff_ends(vm_factory):
    """A guest reset restarts the VM inside the same nimbus (Cloud
    Hypervisor's behaviour); a poweroff ends nimbus with status 0."""
    vm = vm_factory.nimbus(cpus=2, memory="1G").wait_ready(BOOT_TIMEOUT)
    pid = vm.proc.pid
    boot_id = vm.check_output("cat /proc/sys/kernel/random/boot_id")
    vm.console.mark()
    vm.send("reboot -f\n")
    vm.wait_ready(BOOT_TIMEOUT, after_reset=True)  # the marker printed after the reset
    assert vm.alive() and vm.proc.pid == pid
    assert vm.check_output("cat /proc/sys/kernel/random/boot_id") != boot_id
    assert vm.check_output("nproc") == "2"
    vm.send("poweroff -f\n")
    assert vm.wait_exit(120) == 0


@pytest.mark.slow
def test_pvh_vmlinux_boots(vm_factory, guest_assets):
    """The same kernel as an ELF vmlinux, entered through its PVH note.

    RAM above 4 GiB is covered by test_memory/test_e820 and was checked by
    hand (5 GiB guest: MemTotal 5048220 kB); a 5 GiB guest inside the 4 GiB
    nested test host soft-locks the nested host's own KVM under TCG.
    """
    vm = vm_factory.nimbus(kernel=guest_assets.guest_vmlinux, cpus=2, memory="1G",
                           extra=["-v"]).wait_ready(BOOT_TIMEOUT)
    assert "PVH entry" in vm.stderr_text
    assert vm.check_output("nproc") == "2"
    meminfo = vm.check_output("cat /proc/meminfo")
    total_kib = int(re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.M).group(1))
    assert 0.90 * GIB <= total_kib * 1024 <= GIB, f"MemTotal {total_kib} kB"
    vm.send("poweroff -f\n")
    assert vm.wait_exit(120) == 0


def corrupt_kernel_cases(tmp_path, real_kernel):
    garbage = tmp_path / "garbage-kernel"
    garbage.write_bytes(bytes(range(256)) * 4096)  # 1 MiB, no valid header
    truncated = tmp_path / "truncated-bzImage"
    data = real_kernel.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    return [garbage, truncated]


def test_corrupt_kernel_is_rejected(nimbus_binary, guest_assets, tmp_path):
    for bad in corrupt_kernel_cases(tmp_path, guest_assets.guest_kernel):
        res = run_vmm([nimbus_binary, "--kernel", bad, "--initramfs", guest_assets.guest_initramfs,
                       "--cmdline", "console=ttyS0", "--cpus", "boot=2", "--memory", "size=1G",
                       "--serial", "tty", "--console", "off"], timeout=60)
        assert res.returncode != 0, f"{bad.name} accepted"
        assert str(bad) in res.stderr, f"{bad.name}: stderr does not name the file:\n{res.stderr}"


@pytest.mark.parametrize("args,patterns", [
    # The option, the key and the bad value, in whatever words.
    (["--cpus", "boot=0"], [r"--cpus", r"\bboot\b", r"\b0\b"]),
    (["--bogus-option"], [r"--bogus-option"]),
])
def test_bad_option_is_rejected(nimbus_binary, guest_assets, args, patterns):
    # cli.h: a parse error names the bad token and exits 2.
    res = run_vmm([nimbus_binary, "--kernel", guest_assets.guest_kernel,
                   "--serial", "tty", "--console", "off", *args], timeout=30)
    assert res.returncode == 2, res.stderr
    for pattern in patterns:
        assert re.search(pattern, res.stderr), f"{pattern!r} not in stderr:\n{res.stderr}"
