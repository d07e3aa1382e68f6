"""Tests of the test framework itself, with /bin/sh standing in for a VMM
(its stdin/stdout play the serial console): fast, no VM, run on the host."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from framework import ConsoleClosed, ConsoleTimeout, REPO_ROOT
from framework.plugin import VmFactory
from framework.vm import wait_until

pytestmark = pytest.mark.host

# Prints the READY marker like the guest init, then reads commands on stdin.
FAKE_VMM = ["/bin/sh", "-c", "echo boot noise; echo NIMBUS-GUEST-READY; exec /bin/sh"]


@pytest.fixture
def factory():
    f = VmFactory("test_framework")
    yield f
    f.close()


def test_run_returns_status_and_output(factory):
    vm = factory.spawn(FAKE_VMM, "fake").wait_ready(10)
    assert vm.run("echo one; echo two") == (0, "one\ntwo")
    assert vm.run("printf no-newline; exit_code() { return 5; }; exit_code") == (5, "no-newline")
    assert vm.run("true") == (0, "")
    # Output that merely looks like a marker does not end the command early.
    assert vm.run("echo __RC_deadbeef=9; echo after") == (0, "__RC_deadbeef=9\nafter")
    assert vm.check_output("echo ok") == "ok"
    with pytest.raises(AssertionError, match="exited 1"):
        vm.check_output("false")


def test_wait_exit_returns_vmm_status(factory):
    vm = factory.spawn(FAKE_VMM, "fake").wait_ready(10)
    vm.send("exit 3\n")
    assert vm.wait_exit(10) == 3


def test_wait_for_cursor_timeout_and_closed(factory):
    vm = factory.spawn(["/bin/sh", "-c", "echo a1; echo a2; sleep 0.5; echo end"], "fake")
    assert vm.wait_for(r"a(\d)", 10).group(1) == "1"
    assert vm.wait_for(r"a(\d)", 10).group(1) == "2"  # the cursor moved on
    with pytest.raises(ConsoleClosed):
        vm.wait_for("never printed", 10)
    assert "end" in vm.serial_text
    assert vm.serial_log_path.read_text() == "a1\na2\nend\n"

    quiet = factory.spawn(["/bin/sh", "-c", "exec sleep 30"], "quiet")
    t0 = time.monotonic()
    with pytest.raises(ConsoleTimeout):
        quiet.wait_for("x", 1)
    assert time.monotonic() - t0 < 5


def test_teardown_kills_process_group_and_removes_files():
    factory = VmFactory("teardown")
    vm = factory.spawn(["/bin/sh", "-c", "sleep 1000 & echo child=$!; wait"], "fake")
    child = int(vm.wait_for(r"child=(\d+)", 10).group(1))
    workdir = vm.workdir
    assert workdir.is_dir()
    factory.close()
    assert not vm.alive()
    assert wait_until(lambda: not _running(child), 5), "child of the VMM survived teardown"
    assert not workdir.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a tap needs root")
def test_taps_are_removed_on_teardown():
    factory = VmFactory("tap")
    tap = factory.tap()
    assert tap.exists()
    factory.close()
    assert not tap.exists()


def test_failure_report_carries_serial_and_stderr(tmp_path):
    """A failing test's junit XML contains its VM's console and stderr."""
    (tmp_path / "test_inner.py").write_text(textwrap.dedent("""
        import pytest

        @pytest.mark.host
        def test_fails(vm_factory):
            vm = vm_factory.spawn(["/bin/sh", "-c",
                "echo serial-secret-4711; echo stderr-secret-0815 >&2; exec sleep 4711"], "inner")
            vm.wait_for("serial-secret", 10)
            assert False, "on purpose"
        """))
    junit = tmp_path / "junit.xml"
    logs = tmp_path / "logs"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "tests" / "integration"),
               NIMBUS_TEST_LOG_DIR=str(logs))
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "framework.plugin", "-p", "no:cacheprovider",
         "-o", "junit_logging=all", "-m", "", f"--junitxml={junit}",
         "--rootdir", str(tmp_path), str(tmp_path / "test_inner.py")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=60, check=False)
    assert res.returncode == 1, res.stdout
    xml = junit.read_text()
    assert "serial-secret-4711" in xml
    assert "stderr-secret-0815" in xml
    saved = sorted(p.name for p in logs.rglob("*.log"))
    assert any(n.endswith("inner-0.serial.log") for n in saved), saved
    # The inner test's VM died with its teardown.
    assert "sleep 4711" not in _all_cmdlines()


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def _all_cmdlines() -> str:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            out.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            pass
    return "\n".join(out)
