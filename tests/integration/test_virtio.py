"""virtio over PCI: virtio-blk, virtio-console and virtio-rng in real guests,
and the --disk errors that must stop nimbus before any guest runs.

Two boots carry every guest check (nested boots are the expensive part):

  blk_guest  agent on the 16550; three disks (read-write with a 20-byte
             serial, read-only on a read-only mount, read-write with an id
             and no serial), --rng, --console file=...; ends with kill -9.
  hvc_guest  agent on hvc0 (--console tty, 16550 into a file); one disk with
             direct=on, num_queues=2, queue_size=32; ends with a poweroff.

The bodies are VMM-agnostic (framework.machine): the suite runs them on
nimbus; NIMBUS_IT_VIRTIO_VMMS=qemu (or nimbus,qemu) runs the same checks on
QEMU to prove the tests themselves right.
"""

import fcntl
import hashlib
import os
import re
import secrets
import shutil
import signal
import struct
import subprocess
from pathlib import Path

import pytest

from framework import run_vmm
from framework.disks import (MIB, O_DIRECT, access_mode, describe_flags, disk_by_size,
                             guest_disks, guest_read_sha256, guest_write_random,
                             host_sha256, make_image, o_direct_dir, open_flags)
from framework.machine import Disk, Machine, vmms_under_test
from framework.plugin import require_nimbus
from framework.vm import wait_until

BOOT_TIMEOUT = 180  # nested TCG: the L2 kernel reaches /init in ~5-10 s
EXIT_TIMEOUT = 120

# blk_guest disks; sizes tell them apart in the guest.
RW_SIZE, RO_SIZE, ID_SIZE = 64 * MIB, 24 * MIB, 40 * MIB
RW_SERIAL = "nimbus-rw-serial-20X"            # 20 bytes, the most GET_ID holds
RO_SERIAL = "ro-base"
ID_ONLY = "scratch-id"                         # no serial: GET_ID answers the id
MQ_SIZE, MQ_SERIAL, MQ_QUEUE_SIZE = 32 * MIB, "direct-mq", 32


@pytest.fixture(scope="module", params=vmms_under_test())
def vmm(request):
    return request.param


def start(factory, vmm: str, machine: Machine, wrapper=()):
    binary = require_nimbus() if vmm == "nimbus" else None
    return factory.spawn([*wrapper, *machine.argv(vmm, binary)], vmm)


def readonly_mount_wrapper(directory: Path):
    """argv prefix running a command with `directory` bind-mounted read-only
    onto itself in a private mount namespace: even root cannot write there.
    Without root, a 0444 file stops writes already (and unshare cannot)."""
    if os.geteuid() != 0:
        for f in directory.iterdir():
            f.chmod(0o444)
        return []
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"',
            "readonly-mount", str(directory)]


# --- guest 1: disks on the serial agent, rng, console to a file ------------

class BlkGuest:
    def __init__(self, vm, images, console_file, ro_sha):
        self.vm = vm
        self.images = images          # "rw", "ro", "id" -> Path
        self.console_file = console_file
        self.ro_sha = ro_sha          # sha256 of the whole read-only image
        self._disks = None

    def disks(self):
        if self._disks is None:
            self._disks = guest_disks(self.vm)
        return self._disks

    def dev(self, size):
        return disk_by_size(self.disks(), size).dev


@pytest.fixture(scope="module")
def blk_guest(module_vm_factory, vmm):
    work = module_vm_factory.scratch_dir()
    ro_dir = work / "ro"
    ro_dir.mkdir()
    images = {
        "rw": make_image(work / "rw.img", RW_SIZE),
        "ro": make_image(ro_dir / "ro.img", RO_SIZE, fill=os.urandom(MIB)),
        "id": make_image(work / "id.img", ID_SIZE),
    }
    ro_sha = host_sha256(images["ro"], 0, RO_SIZE)
    console_file = work / "hvc0.out"
    machine = Machine(
        disks=[Disk(images["rw"], serial=RW_SERIAL),
               Disk(images["ro"], readonly=True, serial=RO_SERIAL),
               Disk(images["id"], id=ID_ONLY)],
        rng=True, console_file=console_file, cpus=2, memory_mib=1024)
    vm = start(module_vm_factory, vmm, machine, readonly_mount_wrapper(ro_dir))
    vm.wait_ready(BOOT_TIMEOUT)
    return BlkGuest(vm, images, console_file, ro_sha)


@pytest.mark.slow
def test_disks_have_size_serial_and_flags(blk_guest):
    disks = blk_guest.disks()
    assert len(disks) == 3, disks
    rw, ro, idd = (disk_by_size(disks, s) for s in (RW_SIZE, RO_SIZE, ID_SIZE))
    assert (rw.serial, rw.ro) == (RW_SERIAL, False)
    assert (ro.serial, ro.ro) == (RO_SERIAL, True)
    assert (idd.serial, idd.ro) == (ID_ONLY, False)


def guest_reads_completed(vm, dev: str) -> int:
    """Read requests the guest's block layer completed on dev (the first
    field of /sys/block/<dev>/stat)."""
    return int(vm.check_output(f"cat /sys/block/{dev.rsplit('/', 1)[-1]}/stat").split()[0])


@pytest.mark.slow
def test_default_queue_takes_1mib_requests_whole(blk_guest):
    """One request queue per vCPU by default. The default queue_size (256)
    gives seg_max 254, so a 1 MiB O_DIRECT read, 256 pages of which only
    some are contiguous, reaches the device as one request or two; at
    queue_size 128 (seg_max 126) it is three."""
    dev = blk_guest.dev(RW_SIZE)
    name = dev.rsplit("/", 1)[-1]
    assert blk_guest.vm.check_output(f"cat /sys/block/{name}/queue/max_segments").strip() == "254"
    # num_queues left out: one request queue per vCPU (blk_guest has 2).
    assert blk_guest.vm.check_output(f"ls /sys/block/{name}/mq").split() == ["0", "1"]
    before = guest_reads_completed(blk_guest.vm, dev)
    blk_guest.vm.check_output(f"dd if={dev} of=/dev/null bs=1M count=16 iflag=direct")
    reads = guest_reads_completed(blk_guest.vm, dev) - before
    assert 16 <= reads <= 32, f"16 reads of 1 MiB took {reads} requests"


@pytest.mark.slow
def test_random_data_round_trip(blk_guest):
    """Random data written in the guest is in the image, byte for byte, and
    reads back (O_DIRECT, so from the device) with the same hash."""
    dev, img = blk_guest.dev(RW_SIZE), blk_guest.images["rw"]
    sha = guest_write_random(blk_guest.vm, dev, offset_mib=4, mib=8)
    assert host_sha256(img, 4 * MIB, 8 * MIB) == sha
    assert guest_read_sha256(blk_guest.vm, dev, 4, 8) == sha
    # Data the host put there reads back in the guest as well.
    pattern = os.urandom(2 * MIB)
    with open(img, "r+b") as f:
        f.seek(60 * MIB)
        f.write(pattern)
    assert guest_read_sha256(blk_guest.vm, dev, 60, 2) == hashlib.sha256(pattern).hexdigest()


@pytest.mark.slow
def test_two_disks_written_at_once(blk_guest):
    vm = blk_guest.vm
    a, b = blk_guest.dev(RW_SIZE), blk_guest.dev(ID_SIZE)
    out = vm.check_output(
        "dd if=/dev/urandom of=/tmp/a bs=1M count=6 iflag=fullblock 2>/dev/null && "
        "dd if=/dev/urandom of=/tmp/b bs=1M count=6 iflag=fullblock 2>/dev/null && "
        "sha256sum /tmp/a /tmp/b && "
        f"{{ dd if=/tmp/a of={a} bs=64k seek=832 conv=notrunc,fsync 2>/dev/null & "
        f"dd if=/tmp/b of={b} bs=64k seek=128 conv=notrunc,fsync 2>/dev/null & wait; }} && "
        "rm /tmp/a /tmp/b", timeout=120)
    shas = {name: sha for sha, name in re.findall(r"^([0-9a-f]{64})\s+/tmp/([ab])$", out, re.M)}
    assert set(shas) == {"a", "b"}, out
    assert host_sha256(blk_guest.images["rw"], 52 * MIB, 6 * MIB) == shas["a"]
    assert host_sha256(blk_guest.images["id"], 8 * MIB, 6 * MIB) == shas["b"]


def host_read(path: Path, offset: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


@pytest.mark.slow
def test_discard_punches_a_hole_in_the_image(blk_guest):
    """blkdiscard in the guest reaches the image as a punched hole: those
    blocks are no longer allocated and read as zeros, the data around them
    is untouched."""
    vm, img = blk_guest.vm, blk_guest.images["id"]
    dev = blk_guest.dev(ID_SIZE)
    name = dev.rsplit("/", 1)[-1]
    assert int(vm.check_output(f"cat /sys/block/{name}/queue/discard_max_bytes")) > 0
    sha = guest_write_random(vm, dev, offset_mib=24, mib=6, how="direct")
    assert host_sha256(img, 24 * MIB, 6 * MIB) == sha
    before = host_read(img, 24 * MIB, 6 * MIB)
    vm.check_output(f"blkdiscard -o {25 * MIB} -l {4 * MIB} {dev}")
    after = host_read(img, 24 * MIB, 6 * MIB)
    assert after[:MIB] == before[:MIB], "data before the discarded range changed"
    assert after[5 * MIB:] == before[5 * MIB:], "data after the discarded range changed"
    assert after[MIB:5 * MIB] == bytes(4 * MIB), "discarded range does not read as zeros"
    with open(img, "rb") as f:
        hole = os.lseek(f.fileno(), 24 * MIB, os.SEEK_HOLE)
        data = os.lseek(f.fileno(), 25 * MIB, os.SEEK_DATA)
    assert hole == 25 * MIB and data == 29 * MIB, \
        f"expected a hole at 25..29 MiB, SEEK_HOLE {hole}, SEEK_DATA {data}"
    # The guest reads zeros there too (from the device: O_DIRECT).
    assert guest_read_sha256(vm, dev, 25, 4) == hashlib.sha256(bytes(4 * MIB)).hexdigest()


@pytest.mark.slow
def test_readonly_disk_refuses_writes(blk_guest):
    vm, img = blk_guest.vm, blk_guest.images["ro"]
    dev = blk_guest.dev(RO_SIZE)
    assert vm.check_output(f"blockdev --getro {dev}") == "1"
    # The guest reads what is there...
    assert guest_read_sha256(vm, dev, 0, 1) == host_sha256(img, 0, MIB)
    # ...but cannot write, buffered or direct, and the image stays as it was.
    rc, out = vm.run(f"dd if=/dev/zero of={dev} bs=4k count=1 conv=notrunc,fsync")
    assert rc != 0, f"write to the read-only disk succeeded: {out}"
    rc, out = vm.run(f"dd if=/dev/zero of={dev} bs=4k count=1 oflag=direct conv=notrunc")
    assert rc != 0, f"direct write to the read-only disk succeeded: {out}"
    assert host_sha256(img, 0, RO_SIZE) == blk_guest.ro_sha
    # The VMM itself holds the image without write access.
    flags = open_flags(blk_guest.vm.proc.pid, img)
    assert flags, f"the VMM has no descriptor on {img}"
    assert all(access_mode(f) == os.O_RDONLY for f in flags), describe_flags(flags)


@pytest.mark.slow
def test_disk_in_use_by_running_vmm_is_refused(blk_guest, vmm):
    """A second VMM on the same writable image must fail at start, naming
    the image (both would write it otherwise)."""
    img = blk_guest.images["rw"]
    second = Machine(disks=[Disk(img)], cpus=1, memory_mib=256)
    binary = require_nimbus() if vmm == "nimbus" else None
    try:
        res = run_vmm(second.argv(vmm, binary), timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"a second {vmm} on {img}, in use by a running {vmm}, did not fail")
    assert res.returncode != 0
    assert str(img) in res.stderr + res.stdout, res.stderr
    assert blk_guest.vm.alive()


@pytest.mark.slow
def test_hwrng_returns_random_bytes(blk_guest):
    vm = blk_guest.vm
    current = vm.check_output("cat /sys/class/misc/hw_random/rng_current")
    assert current.startswith("virtio_rng"), current
    out = vm.check_output(
        "dd if=/dev/hwrng of=/tmp/r bs=1024 count=1 iflag=fullblock 2>/dev/null && "
        "wc -c </tmp/r && od -An -v -tx1 /tmp/r | tr -s ' ' '\\n' | grep . | sort -u | wc -l && "
        "dd if=/dev/hwrng bs=1024 count=1 iflag=fullblock 2>/dev/null | cmp -s - /tmp/r; echo $?",
        timeout=60)
    size, distinct, same = (int(x) for x in out.split())
    assert size == 1024
    # 1024 random bytes show ~251 of the 256 values; a constant or a short
    # cycle shows few.
    assert distinct >= 200, f"only {distinct} distinct byte values"
    assert same == 1, "two reads of /dev/hwrng returned the same bytes"


@pytest.mark.slow
def test_console_to_file_gets_hvc0_output(blk_guest):
    marker = f"hvc0-says-{secrets.token_hex(6)}"
    blk_guest.vm.check_output(f"echo {marker} >/dev/hvc0")
    path = blk_guest.console_file
    assert wait_until(lambda: path.exists() and marker in path.read_text(errors="replace"), 15), \
        f"{marker} not in {path}"


@pytest.mark.slow
def test_flushed_data_survives_kill_9(blk_guest):
    """Whatever the guest flushed (fsync, sync, BLKFLSBUF, O_DIRECT+fsync)
    is in the image after the VMM dies by SIGKILL. Ends the shared guest."""
    vm, img = blk_guest.vm, blk_guest.images["rw"]
    dev = blk_guest.dev(RW_SIZE)
    written = {}
    for offset, how in ((20, "fsync"), (28, "sync"), (36, "flushbufs"), (44, "direct")):
        written[(offset, how)] = guest_write_random(vm, dev, offset_mib=offset, mib=4, how=how)
    os.kill(vm.proc.pid, signal.SIGKILL)
    assert vm.wait_exit(30) == -signal.SIGKILL
    for (offset, how), sha in written.items():
        assert host_sha256(img, offset * MIB, 4 * MIB) == sha, f"data flushed by {how} lost"


# --- guest 2: the agent on hvc0; a direct, multi-queue disk ------------------

class HvcGuest:
    def __init__(self, vm, image, serial_file):
        self.vm, self.image, self.serial_file = vm, image, serial_file


@pytest.fixture(scope="module")
def hvc_guest(module_vm_factory, vmm):
    work = module_vm_factory.scratch_dir()
    disk_dir = o_direct_dir([work])
    assert disk_dir, "no directory here supports O_DIRECT (tried /tmp and build/)"
    img = make_image(disk_dir / "mq.img", MQ_SIZE)
    serial_file = work / "ttyS0.out"
    machine = Machine(
        agent="hvc0", serial_file=serial_file,
        disks=[Disk(img, direct=True, num_queues=2, queue_size=MQ_QUEUE_SIZE,
                    serial=MQ_SERIAL)],
        cpus=2, memory_mib=1024)
    vm = start(module_vm_factory, vmm, machine)
    vm.add_cleanup(lambda: shutil.rmtree(disk_dir, ignore_errors=True))
    vm.wait_ready(BOOT_TIMEOUT)
    return HvcGuest(vm, img, serial_file)


@pytest.mark.slow
def test_hvc0_shell(hvc_guest):
    vm = hvc_guest.vm
    assert vm.check_output("cat /sys/class/tty/console/active").split()[-1] == "hvc0"
    assert vm.check_output("readlink /proc/$$/fd/0") == "/dev/hvc0"
    # Many writes in order, then one write larger than the 4 KiB hvc buffer.
    # (Each tty line is its own virtqueue kick, slow when nested: keep it short.)
    assert vm.check_output("seq 1 200") == "\n".join(str(i) for i in range(1, 201))
    assert vm.check_output("head -c 6000 /dev/zero | tr '\\0' x; echo") == "x" * 6000
    # A long typed line arrives intact.
    line = secrets.token_hex(450)
    expected = hashlib.sha256((line + "\n").encode()).hexdigest()
    assert vm.check_output(f"echo {line} | sha256sum") == f"{expected}  -"
    # The 16550 works beside it and carries none of the agent's traffic.
    marker = f"ttyS0-says-{secrets.token_hex(6)}"
    vm.check_output(f"echo {marker} >/dev/ttyS0")
    serial = hvc_guest.serial_file
    assert wait_until(lambda: serial.exists() and marker in serial.read_text(errors="replace"),
                      15), f"{marker} not in {serial}"
    assert "__RC_" not in serial.read_text(errors="replace")


@pytest.mark.slow
def test_direct_multiqueue_disk_survives_clean_exit(hvc_guest):
    """direct=on opens the image O_DIRECT; num_queues=2 gives the guest two
    request queues, both served; data is in the image after a poweroff.
    Ends the shared guest."""
    vm, img = hvc_guest.vm, hvc_guest.image
    disk = disk_by_size(guest_disks(vm), MQ_SIZE)
    assert disk.serial == MQ_SERIAL
    queues = vm.check_output(f"ls /sys/block/{disk.name}/mq").split()
    assert sorted(queues) == ["0", "1"], queues
    # The guest's queue depth is the virtqueue size (halved without
    # VIRTIO_RING_F_INDIRECT_DESC).
    depth = int(vm.check_output(f"cat /sys/block/{disk.name}/mq/0/nr_tags"))
    assert depth in (MQ_QUEUE_SIZE, MQ_QUEUE_SIZE // 2), depth
    # seg_max follows the queue size: a chain is at most queue_size long.
    segs = vm.check_output(f"cat /sys/block/{disk.name}/queue/max_segments").strip()
    assert segs == str(MQ_QUEUE_SIZE - 2), segs
    flags = open_flags(vm.proc.pid, img)
    assert flags and any(f & O_DIRECT for f in flags), describe_flags(flags)

    # One writer pinned to each vCPU: blk-mq maps CPU n to queue n.
    out = vm.check_output(
        "dd if=/dev/urandom of=/tmp/q0 bs=1M count=4 iflag=fullblock 2>/dev/null && "
        "dd if=/dev/urandom of=/tmp/q1 bs=1M count=4 iflag=fullblock 2>/dev/null && "
        "sha256sum /tmp/q0 /tmp/q1 && "
        f"{{ taskset 1 dd if=/tmp/q0 of={disk.dev} bs=64k seek=16 oflag=direct conv=notrunc,fsync 2>/dev/null & "
        f"taskset 2 dd if=/tmp/q1 of={disk.dev} bs=64k seek=160 oflag=direct conv=notrunc,fsync 2>/dev/null & "
        "wait; }", timeout=120)
    shas = {name: sha for sha, name in re.findall(r"^([0-9a-f]{64})\s+/tmp/(q[01])$", out, re.M)}
    assert set(shas) == {"q0", "q1"}, out
    assert guest_read_sha256(vm, disk.dev, 1, 4) == shas["q0"]
    assert guest_read_sha256(vm, disk.dev, 10, 4) == shas["q1"]

    vm.send("poweroff -f\n")
    assert vm.wait_exit(EXIT_TIMEOUT) == 0
    assert host_sha256(img, 1 * MIB, 4 * MIB) == shas["q0"]
    assert host_sha256(img, 10 * MIB, 4 * MIB) == shas["q1"]


# --- no guest: --disk errors stop nimbus before anything runs ----------------

def nimbus_with_disk(nimbus_binary, guest_assets, *disk_args, prefix=()):
    return run_vmm([*prefix, nimbus_binary, "--kernel", guest_assets.guest_kernel,
                    "--initramfs", guest_assets.guest_initramfs,
                    "--cmdline", "console=ttyS0", "--cpus", "boot=1", "--memory", "size=256M",
                    "--serial", "null", "--console", "off", *disk_args], timeout=60)


def assert_refused(res, path):
    assert res.returncode != 0, f"nimbus accepted {path}:\n{res.stderr}"
    assert str(path) in res.stderr, f"stderr does not name {path}:\n{res.stderr}"


@pytest.mark.host
def test_missing_disk_file_is_refused(nimbus_binary, guest_assets, tmp_path):
    missing = tmp_path / "no-such-disk.img"
    assert_refused(nimbus_with_disk(nimbus_binary, guest_assets, "--disk", f"path={missing}"),
                   missing)


@pytest.mark.host
def test_disk_directory_is_refused(nimbus_binary, guest_assets, tmp_path):
    assert_refused(nimbus_with_disk(nimbus_binary, guest_assets, "--disk", f"path={tmp_path}"),
                   tmp_path)


def lock_whole_file(fd: int, exclusive: bool) -> None:
    """Lock the file the way any VMM could check: flock() and an OFD
    record lock over all bytes (QEMU and Cloud Hypervisor use OFD locks,
    which also conflict with classic POSIX fcntl/lockf locks)."""
    fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    # struct flock: l_type, l_whence (short); l_start, l_len (off_t); l_pid (int)
    lk = struct.pack("hhqqi4x", fcntl.F_WRLCK if exclusive else fcntl.F_RDLCK,
                     os.SEEK_SET, 0, 0, 0)
    fcntl.fcntl(fd, fcntl.F_OFD_SETLK, lk)


# Not a host test: the lock is found when the disk is attached, after
# nimbus opened /dev/kvm, which some CI machines lack; the test host has one.
@pytest.mark.parametrize("readonly", [False, True], ids=["rw", "readonly"])
def test_disk_locked_by_another_process_is_refused(nimbus_binary, guest_assets, tmp_path,
                                                   readonly):
    """An image another process writes (exclusive lock) is refused, even
    read-only: its content is changing under the guest."""
    img = make_image(tmp_path / "locked.img", 8 * MIB)
    fd = os.open(img, os.O_RDWR | os.O_CLOEXEC)
    try:
        lock_whole_file(fd, exclusive=True)
        opt = f"path={img}" + (",readonly=on" if readonly else "")
        assert_refused(nimbus_with_disk(nimbus_binary, guest_assets, "--disk", opt), img)
    finally:
        os.close(fd)


@pytest.mark.host
def test_unwritable_disk_needs_readonly(nimbus_binary, guest_assets, tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    img = make_image(d / "base.img", 8 * MIB)
    res = nimbus_with_disk(nimbus_binary, guest_assets, "--disk", f"path={img}",
                           prefix=readonly_mount_wrapper(d))
    assert_refused(res, img)


@pytest.mark.host
@pytest.mark.parametrize("opt,token", [
    ("readonly=maybe", "maybe"),
    ("queue_size=3", "3"),
    ("num_queues=0", "0"),
    ("serial=" + "s" * 21, "serial"),
    ("bogus=1", "bogus"),
])
def test_bad_disk_option_is_rejected(nimbus_binary, guest_assets, tmp_path, opt, token):
    img = make_image(tmp_path / "d.img", MIB)
    res = nimbus_with_disk(nimbus_binary, guest_assets, "--disk", f"path={img},{opt}")
    assert res.returncode == 2, res.stderr
    assert "--disk" in res.stderr and token in res.stderr, res.stderr


@pytest.mark.host
def test_missing_rng_source_is_refused(nimbus_binary, guest_assets, tmp_path):
    missing = tmp_path / "no-entropy"
    res = nimbus_with_disk(nimbus_binary, guest_assets, "--rng", f"src={missing}")
    assert_refused(res, missing)
