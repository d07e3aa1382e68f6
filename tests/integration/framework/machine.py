"""One guest set-up (virtio disks, entropy device, which console carries the
agent) as a nimbus or a QEMU command line, so that the same test body runs
on both: nimbus is what the suite tests, QEMU is the reference used to
check that a test is right before nimbus can pass it (and the benchmark
peer).

    m = Machine(disks=[Disk(img, serial="abc")], rng=True)
    vm = factory.spawn(m.argv("nimbus"), "nimbus").wait_ready(180)

NICs are `Net`s (virtio-net): a tap by name, tap fds the test opened
(`m.pass_fds()` must reach the VMM: spawn(..., pass_fds=m.pass_fds())), or
user-mode networking. QEMU cannot create or address a tap itself: a test
that runs on QEMU makes the tap (framework.net.Tap) and configures its host
side, which nimbus does from ip=/mask=.

The agent console (framework.agent) is always the VMM's stdin/stdout:
`agent="serial"` puts it on the 16550 (console=ttyS0), `agent="hvc0"` on
the virtio console (console=hvc0; the guest init waits for virtio_console
to bind, then runs its shell there).
"""

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence

from . import paths
from .nimbus import nimbus_argv

VMMS = ("nimbus", "qemu")
QEMU = "qemu-system-x86_64"
# virtio-blk VIRTIO_BLK_T_GET_ID answers at most 20 bytes (no NUL when full).
VIRTIO_BLK_ID_BYTES = 20


@dataclass
class Disk:
    """A virtio-blk disk: nimbus' --disk sub-options, mapped onto QEMU's."""

    path: Path
    readonly: bool = False
    direct: bool = False
    serial: Optional[str] = None
    id: Optional[str] = None
    num_queues: Optional[int] = None
    queue_size: Optional[int] = None

    @property
    def guest_id(self) -> str:
        """What the guest must read from /sys/block/vdX/serial: GET_ID
        answers the serial, else the id (nimbus), truncated to 20 bytes."""
        return (self.serial or self.id or "")[:VIRTIO_BLK_ID_BYTES]

    def nimbus_option(self) -> str:
        opts = [f"path={self.path}"]
        if self.readonly:
            opts.append("readonly=on")
        if self.direct:
            opts.append("direct=on")
        if self.num_queues is not None:
            opts.append(f"num_queues={self.num_queues}")
        if self.queue_size is not None:
            opts.append(f"queue_size={self.queue_size}")
        if self.id is not None:
            opts.append(f"id={self.id}")
        if self.serial is not None:
            opts.append(f"serial={self.serial}")
        return ",".join(opts)

    def qemu_options(self, index: int) -> List[str]:
        # cache=none is O_DIRECT (nimbus direct=on), writeback the page cache
        # (direct=off); both flush on guest FLUSH requests. aio=threads works
        # on every file system (io_uring/native need more from the host).
        drive = [f"file={self.path}", "if=none", f"id=drive{index}", "format=raw",
                 "cache=" + ("none" if self.direct else "writeback"), "aio=threads"]
        if self.readonly:
            drive.append("readonly=on")
        else:
            # QEMU drops guest discards unless asked; nimbus punches holes.
            drive.append("discard=unmap")
        dev = ["virtio-blk-pci", f"drive=drive{index}", f"id=blk{index}"]
        # QEMU's GET_ID only answers the serial: give it nimbus' fallback.
        if self.guest_id:
            dev.append(f"serial={self.guest_id}")
        if self.num_queues is not None:
            dev.append(f"num-queues={self.num_queues}")
        if self.queue_size is not None:
            dev.append(f"queue-size={self.queue_size}")
        return ["-drive", ",".join(drive), "-device", ",".join(dev)]


@dataclass
class Net:
    """A virtio-net NIC: nimbus' --net sub-options, mapped onto QEMU's."""

    tap: str = ""                 # host tap name; nimbus tap=, QEMU ifname=
    mac: str = ""                 # guest MAC
    num_queues: Optional[int] = None   # virtqueues (2 per pair)
    fds: Sequence[int] = ()       # nimbus fd=[..] (tap fds the test opened; passed to the child: pass_fds)
    ip: str = ""; mask: str = ""  # nimbus ip=/mask= (host side of a tap nimbus creates)
    user: bool = False            # user-mode networking
    hostfwd: Sequence[str] = ()   # "tcp:127.0.0.1:2222-:22"
    extra: str = ""               # more nimbus sub-options, appended verbatim

    @property
    def queue_pairs(self) -> int:
        if self.num_queues is not None:
            return max(1, self.num_queues // 2)
        return max(1, len(self.fds))

    def nimbus_option(self) -> str:
        opts = []
        if self.user:
            opts.append("user=on")
            if self.hostfwd:
                opts.append(f"hostfwd=[{','.join(self.hostfwd)}]")
        if self.tap:
            opts.append(f"tap={self.tap}")
        if self.fds:
            opts.append(f"fd=[{','.join(str(fd) for fd in self.fds)}]")
        for key in ("ip", "mask", "mac"):
            if getattr(self, key):
                opts.append(f"{key}={getattr(self, key)}")
        if self.num_queues is not None:
            opts.append(f"num_queues={self.num_queues}")
        if self.extra:
            opts.append(self.extra)
        return ",".join(opts)

    def qemu_options(self, index: int) -> List[str]:
        nid = f"net{index}"
        if self.user:
            netdev = ["user", f"id={nid}"] + [f"hostfwd={r}" for r in self.hostfwd]
        else:
            # vhost=off: the data path stays in QEMU's process, as in nimbus.
            netdev = ["tap", f"id={nid}", "vhost=off"]
            if self.fds:
                netdev.append(f"fds={':'.join(str(fd) for fd in self.fds)}"
                              if len(self.fds) > 1 else f"fd={self.fds[0]}")
            else:
                if not self.tap:
                    raise ValueError("QEMU needs a tap name or fds (it creates no tap by itself)")
                netdev += [f"ifname={self.tap}", "script=no", "downscript=no"]
                if self.queue_pairs > 1:
                    netdev.append(f"queues={self.queue_pairs}")
        dev = ["virtio-net-pci", f"netdev={nid}", f"id=nic{index}"]
        if self.mac:
            dev.append(f"mac={self.mac}")
        if self.queue_pairs > 1:
            # One MSI-X vector per virtqueue, plus config and control.
            dev += ["mq=on", f"vectors={2 * self.queue_pairs + 2}"]
        return ["-netdev", ",".join(netdev), "-device", ",".join(dev)]


@dataclass
class Machine:
    """What the guest gets; argv(vmm) turns it into a command line."""

    disks: Sequence[Disk] = ()
    nets: Sequence[Net] = ()
    rng: bool = False
    rng_src: str = "/dev/urandom"
    agent: str = "serial"                 # "serial" (ttyS0) or "hvc0"
    serial_file: Optional[Path] = None    # agent=hvc0: the 16550 into this file (None: off)
    console_file: Optional[Path] = None   # agent=serial: hvc0 into this file (None: off)
    cpus: int = 2
    memory_mib: int = 1024
    cmdline_extra: Sequence[str] = ()
    kernel: Optional[Path] = None         # default: the guest assets
    initramfs: Optional[Path] = None
    extra_args: Sequence[str] = field(default_factory=list)  # VMM-specific, appended

    def __post_init__(self):
        if self.agent not in ("serial", "hvc0"):
            raise ValueError(f"agent must be serial or hvc0, not {self.agent!r}")
        if self.agent == "serial" and self.serial_file is not None:
            raise ValueError("agent=serial: the 16550 is the agent console, not a file")
        if self.agent == "hvc0" and self.console_file is not None:
            raise ValueError("agent=hvc0: the virtio console is the agent console, not a file")

    def cmdline(self) -> str:
        # The last console= is /dev/console, where the guest init puts its
        # shell; ttyS0 stays a kernel console when it goes to a file.
        extra = list(self.cmdline_extra)
        if self.agent == "hvc0":
            extra.append("console=hvc0")
        return paths.guest_cmdline(*extra)

    def pass_fds(self) -> List[int]:
        """File descriptors the VMM child must inherit (Net.fds)."""
        return [fd for n in self.nets for fd in n.fds]

    def argv(self, vmm: str, binary: Optional[Path] = None) -> List[str]:
        assets = paths.assets()
        kernel = self.kernel or assets.guest_kernel
        initramfs = self.initramfs or assets.guest_initramfs
        if vmm == "nimbus":
            return self._nimbus_argv(binary or paths.nimbus_bin(), kernel, initramfs)
        if vmm == "qemu":
            return self._qemu_argv(binary or QEMU, kernel, initramfs)
        raise ValueError(f"unknown VMM {vmm!r} (one of {', '.join(VMMS)})")

    def _nimbus_argv(self, binary, kernel, initramfs) -> List[str]:
        if self.agent == "serial":
            serial = "tty"
            console = f"file={self.console_file}" if self.console_file else "off"
        else:
            serial = f"file={self.serial_file}" if self.serial_file else "off"
            console = "tty"
        extra: List[str] = []
        for d in self.disks:
            extra += ["--disk", d.nimbus_option()]
        for n in self.nets:
            extra += ["--net", n.nimbus_option()]
        if self.rng:
            extra += ["--rng", f"src={self.rng_src}"]
        return nimbus_argv(binary, kernel, initramfs, cmdline=self.cmdline(),
                           cpus=self.cpus, memory=f"{self.memory_mib}M",
                           serial=serial, console=console,
                           extra=extra + list(self.extra_args))

    def _qemu_argv(self, binary, kernel, initramfs) -> List[str]:
        # microvm with PCIe (ECAM + ACPI) rather than q35: no firmware, no
        # legacy devices, like nimbus; -no-reboot ends QEMU on a guest reboot
        # as a reboot ends nimbus.
        argv = [str(binary), "-enable-kvm", "-cpu", "host",
                "-M", "microvm,pcie=on,acpi=on,rtc=on",
                "-smp", str(self.cpus), "-m", str(self.memory_mib),
                "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
                "-monitor", "none",
                "-kernel", str(kernel), "-initrd", str(initramfs),
                "-append", self.cmdline()]
        if self.agent == "serial":
            argv += ["-serial", "stdio"]
            con_dev = f"file,id=con0,path={self.console_file}" if self.console_file else None
        else:
            argv += ["-serial", f"file:{self.serial_file}" if self.serial_file else "none"]
            con_dev = "stdio,id=con0,signal=off"
        if con_dev:
            argv += ["-device", "virtio-serial-pci,id=vser0,max_ports=1",
                     "-chardev", con_dev, "-device", "virtconsole,chardev=con0,bus=vser0.0"]
        for i, d in enumerate(self.disks):
            argv += d.qemu_options(i)
        for i, n in enumerate(self.nets):
            argv += n.qemu_options(i)
        if self.rng:
            argv += ["-object", f"rng-random,id=rng0,filename={self.rng_src}",
                     "-device", "virtio-rng-pci,rng=rng0"]
        return argv + list(self.extra_args)


def vmms_under_test() -> List[str]:
    """The VMMs the virtio tests run on: nimbus, unless
    NIMBUS_IT_VIRTIO_VMMS (comma-separated: nimbus,qemu) says otherwise.
    QEMU there only checks the tests themselves against a reference VMM."""
    names = [n.strip() for n in os.environ.get("NIMBUS_IT_VIRTIO_VMMS", "nimbus").split(",")
             if n.strip()]
    for n in names:
        if n not in VMMS:
            raise RuntimeError(f"NIMBUS_IT_VIRTIO_VMMS: unknown VMM {n!r} "
                               f"(one of {', '.join(VMMS)})")
    return names or ["nimbus"]
