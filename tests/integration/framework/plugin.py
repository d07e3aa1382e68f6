"""pytest plugin of the integration tests: markers, fixtures, failure reports.

Loaded by tests/integration/conftest.py; usable alone with
`-p framework.plugin` (the framework's own tests do that).
"""

import atexit
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence, Union

import pytest

from . import paths
from .net import Tap
from .nimbus import DEFAULT_CMDLINE, nimbus_argv
from .qemu import qemu_argv
from .vm import Vm, kill_all_live

MARKERS = {
    "slow": "boots at least one VM (tens of seconds under nested virtualisation)",
    "host": "runs on the CI host itself, never inside ci/vmrun.sh "
            "(tests of the test runner, dev_cli)",
    "nested_only": "meaningful only when guest tests go through the nested test "
                   "host (ci/vmrun.sh); skipped in direct mode",
}

atexit.register(kill_all_live)


def pytest_configure(config):
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")


def pytest_collection_modifyitems(config, items):
    if not any(item.get_closest_marker("nested_only") for item in items):
        return
    mode = paths.host_mode()
    if mode == "direct":
        skip = pytest.mark.skip(
            reason="nested_only: this machine runs guests directly "
                   "(ci/lib/kvm-mode.sh says direct), so the nested test host is not used")
        for item in items:
            if item.get_closest_marker("nested_only"):
                item.add_marker(skip)


def pytest_sessionfinish(session, exitstatus):
    kill_all_live()


@pytest.fixture(autouse=True)
def _guest_side_needs_kvm(request):
    """Tests not marked `host` boot Linux guests, which needs VMX/SVM KVM.
    Fail (not skip) elsewhere, so a misconfigured CI cannot pass vacuously."""
    if request.node.get_closest_marker("host") is None and not paths.hardware_kvm():
        pytest.fail("guest-side test needs a /dev/kvm with VMX/SVM; this machine "
                    "has none: run it through ci/test-integration.sh (which uses "
                    "ci/vmrun.sh) or `ci/vmrun.sh -- /usr/bin/python3 -m pytest ...`",
                    pytrace=False)


# --- VM factory -----------------------------------------------------------

class VmFactory:
    """Creates VMs for one test (or module) and always tears them down:
    processes killed, taps deleted, work directories removed."""

    def __init__(self, owner: str):
        self._owner = re.sub(r"[^A-Za-z0-9_.-]+", "_", owner)[-60:]
        self.vms: List[Vm] = []
        self._taps: List[Tap] = []
        self._dirs: List[Path] = []

    def spawn(self, argv: Sequence[str], name: str = "vm", pass_fds: Sequence[int] = ()) -> Vm:
        """Start argv as a Vm; pass_fds: descriptors it inherits."""
        workdir = Path(tempfile.mkdtemp(prefix=f"nimbus-it-{name}-"))
        self._dirs.append(workdir)
        vm = Vm(name, argv, workdir, pass_fds=pass_fds)
        self.vms.append(vm)
        return vm.start()

    def nimbus(self, kernel: Optional[Path] = None, initramfs: Optional[Path] = None,
               cmdline: str = DEFAULT_CMDLINE, cpus: Union[int, str] = 2,
               memory: str = "1G", extra: Sequence[str] = (), name: str = "nimbus") -> Vm:
        """Start nimbus on the Debian cloud kernel + test initramfs (default)."""
        assets = paths.assets()
        return self.spawn(nimbus_argv(
            require_nimbus(), kernel or assets.guest_kernel,
            initramfs or assets.guest_initramfs, cmdline=cmdline, cpus=cpus,
            memory=memory, extra=extra), name)

    def qemu(self, cmdline: Optional[str] = None, cpus: int = 2, memory_mib: int = 512,
             machine: str = "microvm", extra: Sequence[str] = (), name: str = "qemu") -> Vm:
        """Start QEMU/KVM on the same kernel and initramfs as nimbus uses."""
        assets = paths.assets()
        return self.spawn(qemu_argv(assets.guest_kernel, assets.guest_initramfs,
                                    cmdline=cmdline, cpus=cpus, memory_mib=memory_mib,
                                    machine=machine, extra=extra), name)

    def tap(self) -> Tap:
        tap = Tap()
        self._taps.append(tap)
        return tap

    def scratch_dir(self) -> Path:
        d = Path(tempfile.mkdtemp(prefix="nimbus-it-scratch-"))
        self._dirs.append(d)
        return d

    def close(self) -> None:
        for vm in self.vms:
            vm.kill()
        for tap in self._taps:
            tap.close()
        for d in self._dirs:
            shutil.rmtree(d, ignore_errors=True)


def require_nimbus() -> Path:
    binary = paths.nimbus_bin()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail(f"nimbus binary {binary} is missing: build it "
                    "(ninja -C build) or set NIMBUS_BIN", pytrace=False)
    return binary


def _attach(request, factory: VmFactory) -> None:
    """Remember which fixture made `factory`, on the node that owns it, so
    that failure reports include it only for tests that use that fixture."""
    request.node.__dict__.setdefault("_nimbus_vm_factories", []).append(
        (request.fixturename, factory))


@pytest.fixture
def vm_factory(request):
    """Per-test factory: vm_factory.nimbus(...), .qemu(...), .spawn(argv), .tap()."""
    factory = VmFactory(request.node.nodeid)
    _attach(request, factory)
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def module_vm_factory(request):
    """Like vm_factory, shared by one module (one boot for many checks).
    Failure reports of every test of the module include its VMs."""
    factory = VmFactory(request.node.nodeid)
    _attach(request, factory)
    yield factory
    factory.close()


@pytest.fixture(scope="session")
def guest_assets() -> paths.Assets:
    return paths.assets()


@pytest.fixture(scope="session")
def nimbus_binary() -> Path:
    return require_nimbus()


# --- failure reports --------------------------------------------------------

def _factories_of(item) -> List[VmFactory]:
    used = set(getattr(item, "fixturenames", ()))
    found = []
    node = item
    while node is not None:
        found += [f for name, f in node.__dict__.get("_nimbus_vm_factories", [])
                  if name in used]
        node = node.parent
    return found


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach each VM's serial log and VMM stderr to the report
    (shown by pytest, written to junit XML with junit_logging=all) and, if
    NIMBUS_TEST_LOG_DIR is set, save them there as files."""
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    log_dir = os.environ.get("NIMBUS_TEST_LOG_DIR")
    for factory in _factories_of(item):
        for vm in factory.vms:
            rep.sections.append((f"Captured stdout serial console of {vm.describe()}",
                                 vm.console.tail() if vm.console else "(not started)"))
            rep.sections.append((f"Captured stderr VMM stderr of {vm.name}",
                                 _tail(vm.stderr_text)))
            if log_dir:
                dest = Path(log_dir) / re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid)
                dest.mkdir(parents=True, exist_ok=True)
                stem = f"{rep.when}-{vm.name}-{factory.vms.index(vm)}"
                (dest / f"{stem}.serial.log").write_text(vm.serial_text)
                (dest / f"{stem}.stderr.log").write_text(vm.stderr_text)
                stacks = vm.thread_stacks()
                if stacks:
                    (dest / f"{stem}.threads.txt").write_text(stacks)


def _tail(text: str, max_chars: int = 20000) -> str:
    return text if len(text) <= max_chars else "[...]\n" + text[-max_chars:]
