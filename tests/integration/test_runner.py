"""Tests of ci/vmrun.sh, the nested test host (run on the CI host itself).

Each test boots the L1 VM under QEMU TCG (~10 s), so the checks are grouped
per boot where they do not obscure each other."""

import os
import secrets
import signal
import struct
import subprocess
import time
from pathlib import Path

import pytest

from framework import REPO_ROOT
from framework.vm import wait_until

pytestmark = [pytest.mark.host, pytest.mark.nested_only, pytest.mark.slow]

VMRUN = REPO_ROOT / "ci" / "vmrun.sh"


@pytest.fixture
def run_env(tmp_path, guest_assets):
    """Environment for vmrun: known assets (no apt look-up) and a private
    TMPDIR, whose path then appears in QEMU's argv, so that leftover QEMU
    processes of this very test can be found."""
    tmpdir = tmp_path / "vmrun-tmp"
    tmpdir.mkdir()
    env = dict(os.environ, NIMBUS_GUEST_ASSETS=str(guest_assets.root), TMPDIR=str(tmpdir))
    return env


def vmrun(args, cwd, env, timeout=120):
    return subprocess.run([str(VMRUN), *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout, check=False)


def processes_mentioning(text: str):
    """pids whose command line contains `text`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if text.encode() in cmdline and int(pid) != os.getpid():
            found.append((int(pid), cmdline.decode(errors="replace")))
    return found


def assert_no_qemu_left(env):
    leftovers = [p for p in processes_mentioning(env["TMPDIR"]) if "qemu" in p[1]]
    assert not leftovers, f"QEMU still running after vmrun returned: {leftovers}"


def test_status_stdout_stderr_cwd_and_env(tmp_path, run_env):
    probe = secrets.token_hex(4)
    run_env["NIMBUS_PROBE"] = probe
    res = vmrun(["--", "sh", "-c", 'echo out; echo err >&2; pwd; echo "probe=$NIMBUS_PROBE"; exit 7'],
                tmp_path, run_env)
    assert res.returncode == 7, res.stderr
    assert res.stdout.splitlines() == ["out", str(tmp_path.resolve()), f"probe={probe}"]
    assert "err" in res.stderr.splitlines()
    assert "out" not in res.stderr.splitlines()
    # A failing command gets the console log path, for diagnosis.
    assert "vmrun: L1 console log: " in res.stderr
    assert_no_qemu_left(run_env)


def test_guest_has_hardware_kvm(tmp_path, run_env):
    run_env.pop("NIMBUS_TEST_HOST", None)  # ask the VM, do not force
    res = vmrun(["--", str(REPO_ROOT / "ci" / "lib" / "kvm-mode.sh"), "--why"], tmp_path, run_env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "direct", res.stderr
    res2 = vmrun(["--", "sh", "-c", "test -c /dev/kvm && test -c /dev/net/tun && echo devs-ok"],
                 tmp_path, run_env)
    assert res2.stdout.strip() == "devs-ok", res2.stderr


def test_files_under_cwd_come_back(tmp_path, run_env):
    blob = secrets.token_hex(16)
    res = vmrun(["--", "sh", "-c", f"mkdir -p out/deep && echo {blob} > out/deep/result.txt"
                 " && dd if=/dev/zero of=out/disk.img bs=1M count=4 2>/dev/null"],
                tmp_path, run_env)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out" / "deep" / "result.txt").read_text() == blob + "\n"
    assert (tmp_path / "out" / "disk.img").stat().st_size == 4 << 20


def test_writes_outside_cwd_stay_in_the_vm(tmp_path, run_env):
    outside = Path("/var/tmp") / f"nimbus-vmrun-leak-{secrets.token_hex(6)}"
    try:
        # The file must really be written and readable inside...
        res = vmrun(["--", "sh", "-c", f"echo leak > {outside} && cat {outside}"],
                    tmp_path, run_env)
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == "leak"
        # ...and never reach the host.
        assert not outside.exists()
    finally:
        if outside.exists():
            outside.unlink()


def test_command_past_timeout_is_killed(tmp_path, run_env):
    t0 = time.monotonic()
    res = vmrun(["--timeout", "20", "--", "sleep", "600"], tmp_path, run_env)
    elapsed = time.monotonic() - t0
    assert res.returncode == 124, res.stderr
    assert "vmrun: timeout after 20 s" in res.stderr
    # The watchdog counts whole seconds, so it may fire up to 1 s early.
    assert 19 <= elapsed < 60, elapsed
    assert_no_qemu_left(run_env)


def spinning_multiboot_kernel(path: Path) -> Path:
    """A valid multiboot image whose entry point is `jmp .`: QEMU loads it,
    the guest never boots and never exits."""
    magic, flags = 0x1BADB002, 0x00010000  # flags: load addresses given
    load = 0x100000
    code = b"\xeb\xfe"
    hdr_len = 32
    end = load + hdr_len + len(code)
    hdr = struct.pack("<III", magic, flags, (-(magic + flags)) & 0xFFFFFFFF)
    hdr += struct.pack("<IIIII", load, load, end, end, load + hdr_len)
    path.write_bytes(hdr + code)
    return path


def test_guest_that_never_boots_is_killed(tmp_path, run_env):
    run_env["NIMBUS_VMRUN_KERNEL"] = str(spinning_multiboot_kernel(tmp_path / "spin.img"))
    t0 = time.monotonic()
    res = vmrun(["--timeout", "10", "--", "true"], tmp_path, run_env)
    elapsed = time.monotonic() - t0
    assert res.returncode == 124, res.stderr
    assert "vmrun: timeout after 10 s" in res.stderr
    assert elapsed < 40, elapsed
    assert_no_qemu_left(run_env)


def test_garbage_kernel_fails_fast(tmp_path, run_env):
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(os.urandom(256 << 10))
    run_env["NIMBUS_VMRUN_KERNEL"] = str(garbage)
    res = vmrun(["--timeout", "60", "--", "true"], tmp_path, run_env)
    assert res.returncode == 125, res.stderr
    assert "without running the command" in res.stderr
    assert_no_qemu_left(run_env)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["TERM", "KILL"])
def test_killing_vmrun_stops_the_vm(tmp_path, run_env, sig):
    """SIGTERM runs vmrun's cleanup; SIGKILL leaves it to the watchdog."""
    started = tmp_path / "started"
    proc = subprocess.Popen([str(VMRUN), "--", "sh", "-c", "touch started; exec sleep 600"],
                            cwd=tmp_path, env=run_env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # Interrupt it mid-run, once the command inside has started.
        assert wait_until(started.exists, timeout=90), "the command never started in the VM"
        assert any("qemu" in p[1] for p in processes_mentioning(run_env["TMPDIR"]))
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == (143 if sig == signal.SIGTERM else -signal.SIGKILL), err
        assert wait_until(lambda: not [p for p in processes_mentioning(run_env["TMPDIR"])
                                       if "qemu" in p[1]],
                          timeout=15), "QEMU survived its vmrun"
        # Its work directory (FIFOs, console log, job share) is gone too.
        assert wait_until(lambda: not list(Path(run_env["TMPDIR"]).glob("vmrun.*")), timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("args,token", [
    (["--timeout", "abc", "--", "true"], "abc"),
    (["--mem"], "--mem"),
    (["--frobnicate", "true"], "--frobnicate"),
    ([], "no command"),
])
def test_bad_usage(tmp_path, run_env, args, token):
    res = vmrun(args, tmp_path, run_env, timeout=30)
    assert res.returncode == 2
    assert token in res.stderr
