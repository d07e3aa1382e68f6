"""A VMM process with its serial console on stdin/stdout (Firecracker's
Microvm in spirit): spawn, wait for output, run commands, wait for the exit,
and always clean up."""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

from . import agent
from .console import Console, ConsoleTimeout

# Live VMs of this test process, killed at exit whatever happened to the
# fixtures (KeyboardInterrupt, a crash in a finalizer, ...).
_LIVE: "set[Vm]" = set()


class Vm:
    """One VMM process.

    stdin/stdout are pipes to the guest serial console (the VMM runs with
    `--serial tty` or QEMU's `-serial stdio`), stderr goes to a file. The
    process gets its own session so that kill() reaches any helper it spawned.
    """

    def __init__(self, name: str, argv: Sequence[str], workdir: Path,
                 env: Optional[dict] = None, pass_fds: Sequence[int] = ()):
        self.name = name
        self.pass_fds = tuple(pass_fds)   # fds the VMM inherits (tap fds for --net fd=)
        self.argv = [str(a) for a in argv]
        self.workdir = Path(workdir)
        self.env = env
        self.proc: Optional[subprocess.Popen] = None
        self.console: Optional[Console] = None
        self.serial_log_path = self.workdir / f"{name}.serial.log"
        self.stderr_path = self.workdir / f"{name}.stderr.log"
        self._cleanups: List[Callable[[], None]] = []
        self._stderr_file = None

    # --- lifecycle -------------------------------------------------------

    def start(self) -> "Vm":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._stderr_file = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._stderr_file, env=self.env, cwd=self.workdir,
            start_new_session=True, close_fds=True, pass_fds=self.pass_fds)
        _LIVE.add(self)
        self.console = Console(self.proc.stdout.fileno(), self.serial_log_path)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def thread_stacks(self) -> str:
        """Where the VMM's threads stand (see thread_stacks()); "" once it exited."""
        return thread_stacks(self.proc.pid) if self.alive() else ""

    @property
    def returncode(self) -> Optional[int]:
        return None if self.proc is None else self.proc.poll()

    def wait_exit(self, timeout: float) -> int:
        """Wait for the VMM to exit on its own; return its exit status.
        Raises TimeoutError (the process is left for kill())."""
        assert self.proc is not None, "VM not started"
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"{self.name} did not exit within {timeout:g} s") from None
        self.console.join()
        return rc

    def add_cleanup(self, fn: Callable[[], None]) -> None:
        """Run `fn` at kill(), after the process is gone (taps, files...)."""
        self._cleanups.append(fn)

    def kill(self) -> None:
        """Stop the process group (TERM, then KILL), run cleanups. Idempotent."""
        if self.proc is not None:
            if self.proc.poll() is None:
                _signal_group(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    pass
            # Helpers may outlive the leader; the group id stays valid for them.
            _signal_group(self.proc.pid, signal.SIGKILL)
            if self.proc.poll() is None:
                self.proc.wait()
            if self.proc.stdin and not self.proc.stdin.closed:
                try:
                    self.proc.stdin.close()
                except OSError:
                    pass
            if self.console:
                self.console.join()
            if self.proc.stdout:
                self.proc.stdout.close()
        if self._stderr_file:
            self._stderr_file.close()
            self._stderr_file = None
        while self._cleanups:
            self._cleanups.pop()()
        _LIVE.discard(self)

    # --- console ---------------------------------------------------------

    def send(self, text: str) -> None:
        """Type `text` on the guest console (add "\\n" to submit a line)."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def wait_for(self, pattern, timeout: float = 60.0, start: Optional[int] = None):
        """Wait for a regex on the console after the cursor (see Console)."""
        return self.console.wait_for(pattern, timeout, start=start, alive=self.alive)

    def wait_ready(self, timeout: float = 180.0, after_reset: bool = False) -> "Vm":
        """Wait for the guest initramfs shell (see framework.agent)."""
        agent.wait_ready(self, timeout, after_reset)
        return self

    # Set once a command's output never came: the nested test host now and
    # then freezes or resets an L2 guest, and every later command of a
    # module-scoped guest would wait out its own timeout for nothing, until
    # the file's timeout kills the run and the rerun has to start the whole
    # file again.  Failing them at once leaves a JUnit file naming them, so
    # only they are rerun.
    _wedged: Optional[str] = None

    def run(self, cmd: str, timeout: float = 60.0) -> Tuple[int, str]:
        """Run a shell command line in the guest: (exit status, output)."""
        if self._wedged:
            raise ConsoleTimeout(f"the guest stopped answering earlier ({self._wedged}); "
                                 "not waiting again")
        try:
            return agent.run(self, cmd, timeout)
        except ConsoleTimeout as e:
            self._wedged = f"{cmd[:60]!r}: {e}"
            raise

    def check_output(self, cmd: str, timeout: float = 60.0) -> str:
        """run(), asserting status 0; returns the output."""
        rc, out = self.run(cmd, timeout)
        if rc != 0:
            raise AssertionError(f"guest command {cmd!r} exited {rc}:\n{out}")
        return out

    # --- logs ------------------------------------------------------------

    @property
    def serial_text(self) -> str:
        return self.console.text if self.console else ""

    @property
    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def describe(self) -> str:
        state = "not started" if self.proc is None else (
            "running" if self.alive() else f"exited {self.returncode}")
        return f"{self.name}: {state}: {' '.join(self.argv)}"


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_all_live() -> None:
    for vm in list(_LIVE):
        vm.kill()


def run_vmm(argv: Sequence[str], timeout: float, cwd: Optional[Path] = None,
            pass_fds: Sequence[int] = ()) -> subprocess.CompletedProcess:
    """Run a VMM that is expected to exit by itself (bad arguments, bad
    kernel): no console, stdin closed, captured output. The process group is
    killed if it outlives `timeout` (then TimeoutExpired is raised).
    pass_fds: descriptors the VMM inherits (e.g. for --net fd=)."""
    proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=cwd, start_new_session=True, text=True,
                            errors="replace", pass_fds=tuple(pass_fds))
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    finally:
        _signal_group(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wait_for(pred: Callable[[], object], timeout: float, what: str, interval: float = 1.0):
    """pred()'s first truthy value, polled every `interval` s; an
    AssertionError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def wait_until(pred: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


def thread_stacks(pid: int) -> str:
    """Where each thread of a VMM that is still running stands: kernel
    stacks and wait channels from /proc (root only), and user-space
    backtraces from gdb where it is installed.  For a guest whose console
    went silent, this tells a VMM thread blocked in nimbus from a guest that
    stopped running."""
    out = []
    for task in sorted(Path(f"/proc/{pid}/task").glob("*")):
        def read(name):
            try:
                return (task / name).read_text(errors="replace").strip()
            except OSError as e:
                return f"({e.strerror})"
        out.append(f"--- thread {task.name} {read('comm')}: wchan {read('wchan')}\n"
                   f"{read('stack')}")
    gdb = shutil.which("gdb")
    if gdb:
        try:
            res = subprocess.run([gdb, "-batch", "-nx", "-p", str(pid),
                                  "-ex", "thread apply all bt"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 timeout=60, check=False)
            out.append(res.stdout.decode(errors="replace"))
        except subprocess.TimeoutExpired:
            out.append("(gdb timed out)")
    # What KVM does with the vCPUs for one second: a vCPU thread that is
    # "running" may be in the guest, looping through exits, or stuck in KVM.
    perf = shutil.which("perf")
    if perf:
        events = ",".join(f"kvm:{e}" for e in ("kvm_entry", "kvm_exit", "kvm_userspace_exit",
                                               "kvm_page_fault", "kvm_inj_virq",
                                               "kvm_apic_accept_irq"))
        try:
            res = subprocess.run([perf, "stat", "-e", events, "--per-thread", "-p", str(pid),
                                  "--", "sleep", "1"], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, timeout=60, check=False)
            out.append(res.stdout.decode(errors="replace"))
        except subprocess.TimeoutExpired:
            out.append("(perf timed out)")
        # And which guest addresses fault, when that is what a vCPU loops on.
        with tempfile.TemporaryDirectory() as td:
            data = os.path.join(td, "perf.data")
            try:
                subprocess.run([perf, "record", "-q", "-e", "kvm:kvm_page_fault,kvm:kvm_exit",
                                "-p", str(pid), "-o", data, "--", "sleep", "0.2"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=60, check=False)
                res = subprocess.run([perf, "script", "-i", data], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, timeout=60, check=False)
                out.append("\n".join(res.stdout.decode(errors="replace").splitlines()[:30]))
            except subprocess.TimeoutExpired:
                out.append("(perf record timed out)")
    return "\n".join(out) + "\n"
