"""Disk helpers shared by the virtio-blk tests and the block benchmark:
disk images on the host, what the guest sees, data written in the guest and
checked on the host. Guest commands are busybox sh, kept short: every
console byte is slow under nested virtualisation."""

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from . import paths

MIB = 1 << 20
SECTOR = 512
O_DIRECT = getattr(os, "O_DIRECT", 0o40000)


def make_image(path: Path, size: int, fill: Optional[bytes] = None) -> Path:
    """A raw image of `size` bytes: sparse, or `fill` repeated over the start."""
    with open(path, "wb") as f:
        if fill:
            f.write(fill)
        f.truncate(size)
    return path


def host_sha256(path: Path, offset: int, length: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(offset)
        left = length
        while left:
            chunk = f.read(min(left, 4 * MIB))
            if not chunk:
                raise AssertionError(f"{path} ends before {offset + length}")
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def supports_o_direct(directory: Path) -> bool:
    probe = Path(directory) / f".odirect-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"\0" * 4096)
        os.close(os.open(probe, os.O_RDONLY | O_DIRECT))
        return True
    except OSError:
        return False
    finally:
        try:
            probe.unlink()
        except OSError:
            pass


def o_direct_dir(candidates: List[Path]) -> Optional[Path]:
    """A fresh directory where O_DIRECT opens work. In the nested test host
    /tmp is tmpfs (no O_DIRECT); the checkout is shared from the real host
    over 9p, which has it, so build/ is the fallback."""
    for base in candidates + [paths.REPO_ROOT / "build"]:
        try:
            base.mkdir(parents=True, exist_ok=True)
            d = Path(tempfile.mkdtemp(prefix="nimbus-it-disk-", dir=base))
        except OSError:
            continue
        if supports_o_direct(d):
            return d
        os.rmdir(d)
    return None


@dataclass(frozen=True)
class GuestDisk:
    name: str        # vda, vdb, ...
    sectors: int     # /sys/block/<name>/size, 512-byte units
    ro: bool         # /sys/block/<name>/ro
    serial: str      # /sys/block/<name>/serial (virtio-blk GET_ID)

    @property
    def size(self) -> int:
        return self.sectors * SECTOR

    @property
    def dev(self) -> str:
        return f"/dev/{self.name}"


def guest_disks(vm) -> Dict[str, GuestDisk]:
    """The virtio disks the guest sees, by name. The serial attribute has no
    trailing newline (and is exactly 20 bytes when the id is), so each field
    is printed on its own line."""
    out = vm.check_output(
        "for d in /sys/block/vd*; do [ -e $d ] || continue; "
        "echo \"=${d##*/} $(cat $d/size) $(cat $d/ro)\"; cat $d/serial; echo; done")
    disks = {}
    for m in re.finditer(r"^=(vd[a-z]+) (\d+) ([01])\n(.*)$", out, re.M):
        disks[m.group(1)] = GuestDisk(m.group(1), int(m.group(2)), m.group(3) == "1",
                                      m.group(4))
    return disks


def disk_by_size(disks: Dict[str, GuestDisk], size: int) -> GuestDisk:
    """Disks are told apart by size (tests give each its own): the order in
    which the guest names them is the PCI probe order, not the CLI order."""
    found = [d for d in disks.values() if d.size == size]
    assert len(found) == 1, f"expected one guest disk of {size} bytes, guest has {disks}"
    return found[0]


# How written data is pushed to the device before the host looks at it.
SYNC_METHODS = {
    "fsync": "conv=notrunc,fsync",           # fsync(2) on the block device
    "direct": "conv=notrunc,fsync oflag=direct",
    "sync": "conv=notrunc && sync",          # sync(2): write back + flush
    "flushbufs": "conv=notrunc && blockdev --flushbufs {dev}",  # BLKFLSBUF
}


def guest_write_random(vm, dev: str, offset_mib: int, mib: int, how: str = "fsync",
                       timeout: float = 120) -> str:
    """Write `mib` MiB of fresh random data at `offset_mib` MiB of `dev`,
    pushed out as SYNC_METHODS[how] says; return the data's sha256 as the
    guest computed it."""
    tmp = f"/tmp/rnd.{offset_mib}"
    tail = SYNC_METHODS[how].format(dev=dev)
    out = vm.check_output(
        f"dd if=/dev/urandom of={tmp} bs=1M count={mib} iflag=fullblock 2>/dev/null && "
        f"sha256sum <{tmp} && "
        f"dd if={tmp} of={dev} bs=1M seek={offset_mib} 2>/dev/null {tail} && rm {tmp}",
        timeout)
    return _sha_of(out)


def guest_read_sha256(vm, dev: str, offset_mib: int, mib: int, timeout: float = 120) -> str:
    """sha256 of a range read with O_DIRECT: from the device, not the guest
    page cache."""
    out = vm.check_output(
        f"dd if={dev} bs=1M skip={offset_mib} count={mib} iflag=direct 2>/dev/null | sha256sum",
        timeout)
    return _sha_of(out)


def _sha_of(out: str) -> str:
    m = re.search(r"^([0-9a-f]{64})\s+-$", out, re.M)
    assert m, f"no sha256sum output in {out!r}"
    return m.group(1)


def open_flags(pid: int, path: Path) -> List[int]:
    """Open flags (fdinfo) of every descriptor of process `pid` on `path`."""
    target = os.path.realpath(path)
    flags = []
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in os.listdir(fd_dir):
        try:
            if os.readlink(fd_dir / fd) != target:
                continue
            info = (Path(f"/proc/{pid}/fdinfo") / fd).read_text()
        except OSError:
            continue  # closed meanwhile
        m = re.search(r"^flags:\s+([0-7]+)", info, re.M)
        if m:
            flags.append(int(m.group(1), 8))
    return flags


def access_mode(flags: int) -> int:
    return flags & os.O_ACCMODE


def describe_flags(flags: List[int]) -> List[Tuple[str, bool]]:
    names = {os.O_RDONLY: "O_RDONLY", os.O_WRONLY: "O_WRONLY", os.O_RDWR: "O_RDWR"}
    return [(names.get(access_mode(f), "?"), bool(f & O_DIRECT)) for f in flags]
