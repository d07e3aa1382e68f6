"""Where things are: repository, nimbus binary, guest assets, test-host mode."""

import fcntl
import functools
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
CI_DIR = REPO_ROOT / "ci"


def nimbus_bin() -> Path:
    """$NIMBUS_BIN, else build/nimbus; relative paths are from the repo root."""
    path = Path(os.environ.get("NIMBUS_BIN", "build/nimbus"))
    return path if path.is_absolute() else REPO_ROOT / path


def nimbus_remote_bin() -> Path:
    """$NIMBUS_REMOTE_BIN, else nimbus-remote next to the nimbus binary."""
    env = os.environ.get("NIMBUS_REMOTE_BIN")
    path = Path(env) if env else nimbus_bin().parent / "nimbus-remote"
    return path if path.is_absolute() else REPO_ROOT / path


@dataclass(frozen=True)
class Assets:
    """Files produced by ci/guest-assets.sh (see its header for the layout)."""

    root: Path

    @property
    def guest_kernel(self) -> Path:
        return self.root / "guest" / "vmlinuz"

    @property
    def guest_vmlinux(self) -> Path:
        """The cloud kernel as an uncompressed ELF (PVH entry note)."""
        return self.root / "guest" / "vmlinux"

    @property
    def guest_initramfs(self) -> Path:
        return self.root / "guest" / "initramfs.cpio.gz"

    @property
    def guest_modules(self) -> Path:
        """Root-relative tree: <this>/lib/modules/<kernel_release>/..."""
        return self.root / "guest" / "modules"

    @property
    def guest_kernel_release(self) -> str:
        return (self.root / "guest" / "kernel-release").read_text().strip()

    @property
    def l1_kernel(self) -> Path:
        return self.root / "l1" / "vmlinuz"

    @property
    def l1_initramfs(self) -> Path:
        return self.root / "l1" / "initramfs.cpio.gz"


@functools.lru_cache(maxsize=None)
def assets() -> Assets:
    """$NIMBUS_GUEST_ASSETS (set by ci/vmrun.sh and ci/test-integration.sh),
    else whatever `ci/guest-assets.sh --print-dir` builds or finds."""
    env = os.environ.get("NIMBUS_GUEST_ASSETS")
    if env:
        root = Path(env)
    else:
        res = subprocess.run(
            [str(CI_DIR / "guest-assets.sh"), "--print-dir"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
        if res.returncode != 0:
            raise RuntimeError(
                f"ci/guest-assets.sh failed ({res.returncode}):\n{res.stderr}")
        root = Path(res.stdout.strip().splitlines()[-1])
    a = Assets(root)
    for f in (a.guest_kernel, a.guest_initramfs):
        if not f.is_file():
            raise RuntimeError(f"guest asset missing: {f}")
    return a


def guest_cmdline(*extra: str) -> str:
    """Kernel command line for test guests on the 16550 console: quiet
    unless NIMBUS_TEST_VERBOSE_GUEST=1 (see framework/nimbus.py)."""
    parts = ["console=ttyS0"]
    if os.environ.get("NIMBUS_TEST_VERBOSE_GUEST") != "1":
        parts.append("quiet")
    # Extra guest kernel parameters for every test guest, for experiments.
    parts += os.environ.get("NIMBUS_TEST_GUEST_APPEND", "").split()
    return " ".join(parts + list(extra))


@functools.lru_cache(maxsize=None)
def host_mode() -> str:
    """'direct' or 'nested' for this whole run; NIMBUS_TEST_HOST forces it.
    Same rule as ci/lib/kvm-mode.sh, in-process: a subprocess costs seconds
    inside the emulated test host."""
    forced = os.environ.get("NIMBUS_TEST_HOST", "")
    if forced:
        if forced not in ("direct", "nested"):
            raise RuntimeError(f"NIMBUS_TEST_HOST must be direct or nested, not {forced!r}")
        return forced
    return "direct" if hardware_kvm() else "nested"


@functools.lru_cache(maxsize=None)
def hardware_kvm() -> bool:
    """Whether Linux guests can run on this very machine: the CPU shows
    VMX/SVM (a paravirtual /dev/kvm hides them and cannot run stock Linux)
    and /dev/kvm creates VMs. Ignores NIMBUS_TEST_HOST."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set()
            for line in f:
                if line.startswith("flags"):
                    flags.update(line.split(":", 1)[1].split())
                    break
        if not flags & {"vmx", "svm"}:
            return False
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
        try:
            if fcntl.ioctl(fd, KVM_GET_API_VERSION) != 12:
                return False
            os.close(fcntl.ioctl(fd, KVM_CREATE_VM, 0))
        finally:
            os.close(fd)
        return True
    except OSError:
        return False


KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
