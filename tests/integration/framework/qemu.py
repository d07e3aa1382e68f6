"""QEMU command lines: QEMU as the reference VMM on the test host."""

from pathlib import Path
from typing import List, Optional, Sequence

from .paths import guest_cmdline

QEMU = "qemu-system-x86_64"


def qemu_argv(kernel: Path, initramfs: Optional[Path] = None,
              cmdline: Optional[str] = None, cpus: int = 2, memory_mib: int = 512,
              machine: str = "microvm", extra: Sequence[str] = ()) -> List[str]:
    """argv for a KVM guest whose serial console is QEMU's stdio.

    -no-reboot makes a guest reboot end QEMU, as it ends nimbus."""
    argv = [QEMU, "-enable-kvm", "-cpu", "host", "-M", machine,
            "-smp", str(cpus), "-m", str(memory_mib),
            "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
            "-serial", "stdio", "-monitor", "none",
            "-kernel", str(kernel), "-append", cmdline or guest_cmdline()]
    if initramfs is not None:
        argv += ["-initrd", str(initramfs)]
    return argv + list(extra)
