"""nimbus integration-test framework (stdlib only; see ../README.md)."""

from .agent import READY_MARKER, AgentError
from .console import Console, ConsoleClosed, ConsoleTimeout
from .net import Tap
from .nimbus import nimbus_argv
from .paths import REPO_ROOT, Assets, assets, guest_cmdline, hardware_kvm, host_mode, nimbus_bin
from .qemu import qemu_argv
from .vm import Vm, run_vmm

__all__ = [
    "READY_MARKER", "AgentError", "Console", "ConsoleClosed", "ConsoleTimeout",
    "Tap", "nimbus_argv", "REPO_ROOT", "Assets", "assets", "guest_cmdline", "hardware_kvm",
    "host_mode", "nimbus_bin", "qemu_argv", "Vm", "run_vmm",
]
