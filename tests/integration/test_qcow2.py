"""qcow2 images behind virtio-blk, checked against qemu-img (the reference).

One guest boot carries every guest check (nested boots are the expensive
part); it ends with kill -9 of nimbus:

  qcow2_guest  four qcow2 disks, told apart by size:
    fresh   `qemu-img create -f qcow2` (probed: no image_type given)
    comp    `qemu-img convert -c` of a random raw source (image_type=qcow2)
    over_q  `qemu-img convert -c -B base.qcow2`: compressed, over a qcow2
            backing file (image_type=qcow2,backing_files=on)
    over_r  the same over a raw backing file

The guest reads each whole disk and must see the sha256 of its raw source.
It then writes data whose content the host knows (ranges copied from `comp`,
whose source is random) at offsets that straddle 64 KiB clusters, discards
whole clusters and zeroes ranges; after a flush nimbus is killed with
SIGKILL, and `qemu-img check` (leaks allowed) and `qemu-img compare` against
the expected raw content must agree.

Without a guest (but with /dev/kvm: the plugin opens the image after the VM
is created): backing files without backing_files=on, corrupt headers, and
the option errors the command line refuses before anything runs.
"""

import hashlib
import os
import shutil
import signal
import struct
import subprocess
from pathlib import Path

import pytest

from framework import run_vmm
from framework.disks import MIB, disk_by_size, guest_disks, guest_read_sha256, make_image

BOOT_TIMEOUT = 180
CLUSTER = 64 * 1024
SECTOR = 512

FRESH_SIZE, COMP_SIZE, OVER_Q_SIZE, OVER_R_SIZE = 40 * MIB, 24 * MIB, 32 * MIB, 28 * MIB

# Guest writes: (disk, byte offset, sectors, source offset in comp).  Each
# straddles at least one cluster boundary; none is cluster-aligned.
COPIES = [
    ("fresh", 127 * SECTOR, 300, 3 * MIB + 7 * SECTOR),
    ("fresh", 2 * MIB - 5 * SECTOR, 2061, 5 * MIB),
    ("fresh", 9 * MIB + 1024, 129, 1 * MIB),
    ("over_q", 4 * MIB - 3 * SECTOR, 1500, 8 * MIB + SECTOR),
    ("over_r", 6 * MIB + 33 * SECTOR, 777, 2 * MIB),
]
# Whole clusters discarded on `fresh` (no backing file: they read as zeroes).
DISCARD = ("fresh", 2 * MIB, 4 * CLUSTER)
# Zeroed ranges (write-zeroes when busybox has blkdiscard -z, else zeroes
# written with dd): partial clusters, over data from a backing file too.
ZEROES = [("fresh", 9 * MIB + 8 * SECTOR, 40 * SECTOR), ("over_q", 1 * MIB + SECTOR, 3 * CLUSTER)]


def need_qemu_img():
    if not shutil.which("qemu-img"):
        pytest.fail("qemu-img is missing (apt install qemu-utils; ci/install-deps.sh has it)")


def qemu_img(*args, ok=(0,)):
    res = subprocess.run(["qemu-img", *map(str, args)], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode in ok, f"qemu-img {' '.join(map(str, args))}: " \
                                 f"status {res.returncode}\n{res.stdout}{res.stderr}"
    return res


def random_raw(path: Path, size: int, holes: bool = True) -> Path:
    """Random data with some all-zero stretches (so compression and
    unallocated clusters both occur)."""
    with open(path, "wb") as f:
        for off in range(0, size, MIB):
            f.write(bytes(MIB) if holes and (off // MIB) % 5 == 3 else os.urandom(MIB))
    return path


def sha_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(4 * MIB), b""):
            h.update(chunk)
    return h.hexdigest()


def patch(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


class Qcow2Guest:
    def __init__(self, vm, work, images, expect, sources, bases):
        self.vm, self.work = vm, work
        self.bases = bases      # backing file -> sha256 (they must never change)
        self.images = images    # name -> qcow2 image
        self.expect = expect    # name -> raw file with the content the guest must see
        self.sources = sources  # name -> sha256 of the source before any write
        self._disks = None

    def dev(self, name):
        if self._disks is None:
            self._disks = guest_disks(self.vm)
        size = {"fresh": FRESH_SIZE, "comp": COMP_SIZE, "over_q": OVER_Q_SIZE,
                "over_r": OVER_R_SIZE}[name]
        return disk_by_size(self._disks, size).dev


def build_images(work: Path):
    images, expect = {}, {}
    # fresh: empty; what the guest must see is all zeroes.
    images["fresh"] = work / "fresh.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", images["fresh"], FRESH_SIZE)
    expect["fresh"] = make_image(work / "fresh.want", FRESH_SIZE)
    # comp: compressed copy of a random source.
    src = random_raw(work / "comp.raw", COMP_SIZE)
    images["comp"] = work / "comp.qcow2"
    qemu_img("convert", "-q", "-c", "-f", "raw", "-O", "qcow2", src, images["comp"])
    expect["comp"] = src
    # over_q / over_r: the final content is a random source; the image keeps
    # (compressed) only the clusters that differ from its backing file, which
    # is the source with every other MiB replaced.
    for name, size, fmt in (("over_q", OVER_Q_SIZE, "qcow2"), ("over_r", OVER_R_SIZE, "raw")):
        want = random_raw(work / f"{name}.want", size)
        base_raw = work / f"{name}.base.raw"
        shutil.copyfile(want, base_raw)
        for off in range(0, size, 2 * MIB):
            patch(base_raw, off, os.urandom(MIB))
        if fmt == "qcow2":
            base = work / f"{name}.base.qcow2"
            qemu_img("convert", "-q", "-f", "raw", "-O", "qcow2", base_raw, base)
        else:
            base = base_raw
        images[name] = work / f"{name}.qcow2"
        # -B: the image keeps only what differs from the backing file; a
        # relative name, resolved against the image's directory.
        qemu_img("convert", "-q", "-c", "-f", "raw", "-O", "qcow2", "-B", base.name,
                 "-F", fmt, want, images[name])
        expect[name] = want
    return images, expect


@pytest.fixture(scope="module")
def qcow2_guest(module_vm_factory):
    need_qemu_img()
    work = module_vm_factory.scratch_dir()
    images, expect = build_images(work)
    sources = {n: sha_file(p) for n, p in expect.items()}
    bases = {p: sha_file(p) for p in (work / "over_q.base.qcow2", work / "over_r.base.raw")}
    disks = [f"path={images['fresh']}",
             f"path={images['comp']},image_type=qcow2,readonly=on",
             f"path={images['over_q']},image_type=qcow2,backing_files=on",
             f"path={images['over_r']},image_type=qcow2,backing_files=on"]
    vm = module_vm_factory.nimbus(cpus=2, memory="1G", extra=["--disk", *disks])
    vm.wait_ready(BOOT_TIMEOUT)
    return Qcow2Guest(vm, work, images, expect, sources, bases)


@pytest.mark.slow
def test_guest_sees_virtual_sizes(qcow2_guest):
    disks = guest_disks(qcow2_guest.vm)
    assert sorted(d.size for d in disks.values()) == sorted(
        [FRESH_SIZE, COMP_SIZE, OVER_Q_SIZE, OVER_R_SIZE]), disks
    comp = disk_by_size(disks, COMP_SIZE)
    assert comp.ro
    # qcow2: a cluster is the optimal I/O size and the discard granularity.
    name = qcow2_guest.dev("fresh").rsplit("/", 1)[-1]
    vm = qcow2_guest.vm
    assert vm.check_output(f"cat /sys/block/{name}/queue/optimal_io_size") == str(CLUSTER)
    assert vm.check_output(f"cat /sys/block/{name}/queue/discard_granularity") == str(CLUSTER)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fresh", "comp", "over_q", "over_r"])
def test_guest_reads_the_raw_source(qcow2_guest, name):
    """Whole disks, read O_DIRECT in the guest: compressed clusters,
    clusters from a qcow2 or raw backing file and unallocated ones."""
    size = os.path.getsize(qcow2_guest.expect[name])
    sha = guest_read_sha256(qcow2_guest.vm, qcow2_guest.dev(name), 0, size // MIB,
                            timeout=300)
    assert sha == qcow2_guest.sources[name]


def guest_has_blkdiscard_z(vm) -> bool:
    rc, out = vm.run("blkdiscard --help 2>&1 | grep -q -- ' -z'")
    return rc == 0


@pytest.mark.slow
def test_guest_writes_then_kill_9(qcow2_guest):
    """Writes across cluster boundaries (COW from a backing file included),
    discards and zeroed ranges, flushed, then SIGKILL: qemu-img finds no
    corruption (leaks are allowed) and the content the guest wrote.  Ends
    the shared guest."""
    g, vm = qcow2_guest, qcow2_guest.vm
    comp_src = g.expect["comp"].read_bytes()
    for name, off, sectors, src_off in COPIES:
        vm.check_output(
            f"dd if={g.dev('comp')} of={g.dev(name)} bs=512 skip={src_off // SECTOR} "
            f"seek={off // SECTOR} count={sectors} conv=notrunc,fsync 2>/dev/null", timeout=300)
        patch(g.expect[name], off, comp_src[src_off:src_off + sectors * SECTOR])

    name, off, length = DISCARD
    dname = g.dev(name).rsplit("/", 1)[-1]
    assert int(vm.check_output(f"cat /sys/block/{dname}/queue/discard_max_bytes")) > 0
    vm.check_output(f"blkdiscard -o {off} -l {length} {g.dev(name)}")
    patch(g.expect[name], off, bytes(length))

    zero_cmd = ("blkdiscard -z -o {off} -l {len} {dev}" if guest_has_blkdiscard_z(vm) else
                "dd if=/dev/zero of={dev} bs=512 seek={sec} count={cnt} conv=notrunc,fsync "
                "2>/dev/null")
    for name, off, length in ZEROES:
        vm.check_output(zero_cmd.format(off=off, len=length, dev=g.dev(name),
                                        sec=off // SECTOR, cnt=length // SECTOR))
        patch(g.expect[name], off, bytes(length))

    # The guest reads back what the host expects (from the device: O_DIRECT).
    for name in ("fresh", "over_q", "over_r"):
        size = os.path.getsize(g.expect[name])
        assert guest_read_sha256(vm, g.dev(name), 0, size // MIB, timeout=300) == \
            sha_file(g.expect[name]), f"{name}: guest reads differ from what it wrote"

    vm.check_output("sync")
    os.kill(vm.proc.pid, signal.SIGKILL)
    assert vm.wait_exit(30) == -signal.SIGKILL

    for name in ("fresh", "comp", "over_q", "over_r"):
        img = g.images[name]
        # 0: clean; 3: only leaked clusters (allowed after a crash).
        res = qemu_img("check", img, ok=(0, 3))
        assert "ERROR" not in res.stdout, res.stdout
        qemu_img("compare", "-q", "-f", "qcow2", "-F", "raw", img, g.expect[name])
    # The backing files were never written.
    for base, sha in g.bases.items():
        assert sha_file(base) == sha, f"{base} changed"


# --- no guest: what is refused before the guest runs --------------------------

def nimbus_with_disk(nimbus_binary, guest_assets, *disk_args):
    return run_vmm([nimbus_binary, "--kernel", guest_assets.guest_kernel,
                    "--initramfs", guest_assets.guest_initramfs,
                    "--cmdline", "console=ttyS0", "--cpus", "boot=1", "--memory", "size=256M",
                    "--serial", "null", "--console", "off", *disk_args], timeout=60)


@pytest.mark.host
@pytest.mark.parametrize("opt,text", [
    ("backing_files=on", "backing_files=on needs image_type=qcow2"),
    ("image_type=raw,backing_files=on", "backing_files=on needs image_type=qcow2"),
    ("image_type=vhdx", "image_type=vhdx is not supported"),
    ("image_type=vhd", "image_type=vhd is not supported"),
    ("image_type=vmdk", "unknown image_type 'vmdk'"),
])
def test_bad_image_options_are_rejected(nimbus_binary, guest_assets, tmp_path, opt, text):
    img = make_image(tmp_path / "d.img", MIB)
    res = nimbus_with_disk(nimbus_binary, guest_assets, "--disk", f"path={img},{opt}")
    assert res.returncode == 2, res.stderr
    assert "--disk" in res.stderr and text in res.stderr, res.stderr


# Not host tests: the plugin opens the image after nimbus opened /dev/kvm.
@pytest.mark.parametrize("opts,text", [
    ("", "image_type=qcow2,backing_files=on"),          # probed: never followed
    (",image_type=qcow2", "backing"),
    (",image_type=qcow2,backing_files=off", "backing"),
])
def test_backing_file_needs_backing_files_on(nimbus_binary, guest_assets, tmp_path, opts,
                                             text):
    need_qemu_img()
    base = make_image(tmp_path / "base.raw", 4 * MIB, fill=b"secret" * 100)
    img = tmp_path / "over.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-b", base.name, "-F", "raw", img)
    res = nimbus_with_disk(nimbus_binary, guest_assets, "--disk", f"path={img}{opts}")
    assert res.returncode != 0, res.stderr
    assert str(img) in res.stderr and text in res.stderr, res.stderr


def corrupt(img: Path, offset: int, fmt: str, value: int) -> None:
    patch(img, offset, struct.pack(fmt, value))


# (header offset, big-endian format, value, what the message names)
CORRUPTIONS = [
    (20, ">I", 40, "cluster"),                 # cluster_bits
    (36, ">I", 0x7fffffff, "l1"),              # l1_size
    (40, ">Q", 0x123, "l1"),                   # l1_table_offset, unaligned
    (48, ">Q", 0x1001, "refcount"),            # refcount_table_offset, unaligned
    (4, ">I", 7, "version"),
]


@pytest.mark.parametrize("offset,fmt,value,field", CORRUPTIONS,
                         ids=[c[3] + f"@{c[0]}" for c in CORRUPTIONS])
def test_corrupt_image_is_refused(nimbus_binary, guest_assets, tmp_path, offset, fmt, value,
                                  field):
    need_qemu_img()
    img = tmp_path / "bad.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", img, 8 * MIB)
    corrupt(img, offset, fmt, value)
    res = nimbus_with_disk(nimbus_binary, guest_assets, "--disk",
                           f"path={img},image_type=qcow2")
    assert res.returncode != 0, res.stderr
    assert str(img) in res.stderr and field in res.stderr.lower(), res.stderr
    assert "qcow2" in res.stderr, res.stderr
