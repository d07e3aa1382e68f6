"""nimbus command lines (Cloud Hypervisor's CLI shape)."""

from pathlib import Path
from typing import List, Optional, Sequence, Union

from .paths import guest_cmdline

# "quiet": under nested virtualisation every byte the guest writes to the
# 16550 costs an exit through two hypervisors (~3 ms): a full boot log makes
# boots ~3x slower. NIMBUS_TEST_VERBOSE_GUEST=1 brings the log back.
DEFAULT_CMDLINE = guest_cmdline()


def nimbus_argv(binary: Path, kernel: Path, initramfs: Optional[Path] = None,
                cmdline: str = DEFAULT_CMDLINE, cpus: Union[int, str] = 2,
                memory: str = "1G", serial: str = "tty", console: str = "off",
                extra: Sequence[str] = ()) -> List[str]:
    """argv for booting `kernel` with the guest console on nimbus' stdio.
    `cpus` is a boot count or a whole --cpus value ("boot=2,max=4")."""
    argv = [str(binary), "--kernel", str(kernel)]
    if initramfs is not None:
        argv += ["--initramfs", str(initramfs)]
    argv += ["--cmdline", cmdline,
             "--cpus", cpus if isinstance(cpus, str) else f"boot={cpus}",
             "--memory", f"size={memory}",
             "--serial", serial,
             "--console", console]
    return argv + list(extra)
