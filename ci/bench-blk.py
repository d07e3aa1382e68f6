#!/usr/bin/python3
"""Block benchmark: nimbus vs QEMU virtio-blk-pci, same raw image, same guest.

Both VMMs boot the Debian cloud kernel with the test initramfs plus a static
guest tool (ci/bench/blkbench.c, packed as a second cpio archive), get one
virtio-blk disk backed by the same raw file, and the guest measures with
O_DIRECT: sequential read and write (1 MiB requests, one in flight) and
4 KiB random reads with --jobs requests in flight (one thread each).

The backing file lives in --dir (default: /tmp of the test host, a tmpfs in
the nested host, i.e. RAM), so the figures are the VMMs' virtio paths and
not a disk. tmpfs has no O_DIRECT, hence host page cache for both: nimbus
direct=off, QEMU cache=writeback. --direct (nimbus direct=on, QEMU
cache=none) needs a --dir that supports O_DIRECT.

QEMU: -M microvm,pcie=on (ECAM+ACPI, no firmware, like nimbus) with
virtio-blk-pci; --qemu-aio picks its I/O back end (default io_uring: QEMU's
fastest on a file in the page cache; threads is its portable pool).

Without a hardware-virtualisation /dev/kvm, every boot runs in a nested test
host of its own (ci/vmrun.sh, through ci/lib/nested_boots.py), like the
integration tests. There a guest now and then stops answering, or the nested
host dies (see tests/integration/README.md); such a boot is discarded whole
and rerun, at most --max-lost times per VMM, and the count is printed with
the results.

--format qcow2 converts the random raw file into a qcow2 image (qemu-img
convert: every cluster allocated, 64 KiB clusters, no compression) and gives
that same image to both VMMs: nimbus image_type=qcow2, QEMU -drive
format=qcow2.  Each boot makes its own image the same way (nested boots do
not share /tmp).

nimbus-1q in --vmms adds nimbus with num_queues=1 (one I/O thread), to show
what the per-queue I/O threads buy: the random-read line then also prints
nimbus' IOPS over nimbus-1q's.

  ci/bench-blk.py [--vmms nimbus,qemu[,nimbus-1q]] [--seconds 5] [--jobs 4] [--runs 3] [--rounds 2]
                  [--qemu-aio io_uring|threads|native] [--dir DIR [--direct]]
                  [--format raw|qcow2] [--markdown]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "ci" / "lib"))

from framework import paths  # noqa: E402
from framework.machine import Disk, Machine  # noqa: E402
from framework.console import ConsoleClosed, ConsoleTimeout  # noqa: E402
from framework.vm import Vm  # noqa: E402
import nested_boots  # noqa: E402

MODES = ("seqread", "seqwrite", "randread")
BOOT_TIMEOUT = 180
MIB = 1 << 20


def build_blkbench(outdir: Path) -> Path:
    """Static blkbench and a gzip'ed cpio with it as /bin/blkbench."""
    tree = outdir / "tree"
    (tree / "bin").mkdir(parents=True, exist_ok=True)
    subprocess.run(["gcc", "-static", "-O2", "-Wall", "-Wextra", "-pthread", "-o",
                    str(tree / "bin" / "blkbench"), str(ROOT / "ci" / "bench" / "blkbench.c")],
                   check=True)
    files = subprocess.run(["find", "bin"], cwd=tree, check=True, stdout=subprocess.PIPE).stdout
    cpio = subprocess.run(["cpio", "-o", "-H", "newc", "-R", "0:0", "--quiet"], cwd=tree,
                          input=files, check=True, stdout=subprocess.PIPE).stdout
    out = outdir / "blkbench.cpio.gz"
    out.write_bytes(subprocess.run(["gzip", "-n", "-6"], input=cpio, check=True,
                                   stdout=subprocess.PIPE).stdout)
    return out


def qemu_drive_args(qemu_aio: str):
    """Replace the framework's aio=threads with the chosen back end."""
    def fix(argv):
        return [a.replace("aio=threads", f"aio={qemu_aio}") if a.startswith("file=") else a
                for a in argv]
    return fix


def image_format_args(fmt: str, vmm: str):
    """The framework's Disk is raw: point both VMMs at a qcow2 image."""
    def fix(argv):
        if fmt == "raw":
            return argv
        out = []
        for arg in map(str, argv):
            if vmm == "qemu" and arg.startswith("file="):
                arg = arg.replace("format=raw", f"format={fmt}")
            elif vmm != "qemu" and arg.startswith("path="):
                arg += f",image_type={fmt}"
            out.append(arg)
        return out
    return fix


def make_qcow2(raw: Path) -> Path:
    """qemu-img convert: allocated clusters only, so the benchmark measures
    the mapping, not cluster allocation; the raw file is dropped (tmpfs)."""
    img = raw.with_suffix(".qcow2")
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw),
                    str(img)], check=True)
    raw.unlink()
    return img


def run_vmm(name, argv, a, samples):
    """Boot one VMM, append `--runs` figures per mode to samples[(name, mode)]
    (all of them, or none when the boot fails)."""
    mine = {}
    run_boot(name, argv, a, mine)
    for k, v in mine.items():
        samples.setdefault(k, []).extend(v)


def run_boot(name, argv, a, samples):
    work = Path(tempfile.mkdtemp(prefix=f"bench-blk-{name}-"))
    vm = Vm(name, argv, work)
    try:
        t0 = time.monotonic()
        vm.start().wait_ready(BOOT_TIMEOUT)
        log(f"{name} guest ready in {time.monotonic() - t0:.1f} s")
        vm.check_output("test -b /dev/vda && test -x /bin/blkbench")
        for mode in MODES:
            jobs = a.jobs if mode == "randread" else 1
            key = "iops" if mode == "randread" else "mibps"
            got = []
            for _ in range(a.runs):
                out = vm.check_output(f"blkbench /dev/vda {mode} -t {a.seconds} -j {jobs}",
                                      timeout=a.seconds * 10 + 120)
                got.append(parse_result(out)[key])
            samples.setdefault((name, mode), []).extend(got)
            log(f"{name} {mode}: {[round(x, 1) for x in got]}")
        vm.send("poweroff -f\n")
        vm.wait_exit(120)
    except Exception:
        sys.stderr.write(f"--- {name} console (tail) ---\n"
                         f"{vm.console.tail(4000) if vm.console else ''}\n"
                         f"--- {name} stderr ---\n{vm.stderr_text[-4000:]}\n"
                         f"--- {name} threads ---\n{vm.thread_stacks()}\n")
        raise
    finally:
        vm.kill()
        shutil.rmtree(work, ignore_errors=True)


def log(msg: str) -> None:
    print(f"bench-blk: {msg}", file=sys.stderr, flush=True)


def parse_result(out: str) -> dict:
    for line in out.splitlines():
        if line.startswith("RESULT "):
            fields = dict(kv.split("=", 1) for kv in line.split()[1:])
            return {k: float(v) for k, v in fields.items() if k in ("mibps", "iops", "secs")}
    raise RuntimeError(f"blkbench printed no RESULT line:\n{out}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nimbus", default=str(ROOT / "build" / "nimbus"))
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--vmms", default="nimbus,qemu",
                    help="comma-separated: nimbus,qemu,nimbus-1q (nimbus with one queue)")
    ap.add_argument("--size-mib", type=int, default=256, help="backing file size")
    ap.add_argument("--seconds", type=int, default=5, help="per measurement")
    ap.add_argument("--jobs", type=int, default=4, help="random-read requests in flight")
    ap.add_argument("--runs", type=int, default=3, help="measurements per boot and figure")
    ap.add_argument("--rounds", type=int, default=2,
                    help="boots per VMM, alternating nimbus/QEMU so that drifting host "
                         "load hits both; figures are medians over rounds x runs")
    ap.add_argument("--dir", default=None, help="directory of the backing file (default /tmp)")
    ap.add_argument("--direct", action="store_true",
                    help="host O_DIRECT: nimbus direct=on, QEMU cache=none")
    ap.add_argument("--qemu-aio", default="io_uring", choices=["io_uring", "threads", "native"])
    ap.add_argument("--format", default="raw", choices=["raw", "qcow2"],
                    help="image format given to both VMMs (qcow2: made by qemu-img convert)")
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--memory-mib", type=int, default=1024)
    ap.add_argument("--markdown", action="store_true", help="also print README table rows")
    ap.add_argument("--max-lost", type=int, default=2,
                    help="nested host only: boots per VMM rerun after the guest stopped "
                         "answering before the benchmark fails")
    ap.add_argument("--blkbench-cpio", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--one-boot-out", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    # The VMMs run in their own work directories.
    a.nimbus = str(Path(a.nimbus).resolve())
    vmms = [v.strip() for v in a.vmms.split(",") if v.strip()]
    for v in vmms:
        if v not in ("nimbus", "qemu", "nimbus-1q"):
            ap.error(f"--vmms: unknown VMM '{v}'")
    if a.format == "qcow2" and a.direct:
        ap.error("--format qcow2 with --direct: nimbus refuses direct=on on qcow2 images")
    if a.qemu_aio == "native" and not a.direct:
        ap.error("--qemu-aio native needs --direct (QEMU requires cache.direct=on)")

    nested = not paths.hardware_kvm()
    if nested and os.environ.get("NIMBUS_VMRUN") != "1":
        outdir = ROOT / "build" / "bench-blk"
        outdir.mkdir(parents=True, exist_ok=True)
        cpio = build_blkbench(outdir)
        samples, _, lost = nested_boots.run("bench-blk", Path(__file__).resolve(),
                                            ["--blkbench-cpio", str(cpio)], vmms, a.rounds,
                                            a.max_lost, outdir, timeout=600)
        report(a, vmms, {k: statistics.median(v) for k, v in samples.items()}, lost, nested)
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-blk-") as td:
        td = Path(td)
        cpio = Path(a.blkbench_cpio) if a.blkbench_cpio else build_blkbench(td)
        assets = paths.assets()
        initramfs = td / "initramfs-blkbench.cpio.gz"
        # The kernel unpacks concatenated archives one after the other.
        initramfs.write_bytes(assets.guest_initramfs.read_bytes() + cpio.read_bytes())

        backing_dir = Path(tempfile.mkdtemp(prefix="bench-blk-disk-", dir=a.dir or td))
        backing = backing_dir / "disk.raw"
        # Real data everywhere: holes would read as zeros without any I/O.
        block = os.urandom(MIB)
        with open(backing, "wb") as f:
            for _ in range(a.size_mib):
                f.write(block)
        if a.format == "qcow2":
            backing = make_qcow2(backing)

        argvs = {}
        for name in vmms:
            queues = 1 if name == "nimbus-1q" else None
            machine = Machine(disks=[Disk(backing, direct=a.direct, num_queues=queues)],
                              initramfs=initramfs, cpus=a.cpus, memory_mib=a.memory_mib)
            if name.startswith("nimbus"):
                argvs[name] = image_format_args(a.format, "nimbus")(
                    machine.argv("nimbus", Path(a.nimbus)))
            else:
                argvs[name] = image_format_args(a.format, "qemu")(
                    qemu_drive_args(a.qemu_aio)(machine.argv("qemu", a.qemu)))
            log(" ".join(map(str, argvs[name])))
        samples = {}
        lost = {name: 0 for name in vmms}
        for r in range(a.rounds):
            for name in (vmms if r % 2 == 0 else vmms[::-1]):
                while True:
                    try:
                        run_vmm(name, argvs[name], a, samples)
                        break
                    except (ConsoleTimeout, ConsoleClosed) as e:
                        # The nested host wedges L2 guests now and then
                        # (tests/integration/README.md); a boot that stops
                        # answering is rerun, counted and reported, never
                        # silently dropped (a single boot: by the caller).
                        lost[name] += 1
                        if not nested or a.one_boot_out or lost[name] > a.max_lost:
                            raise
                        log(f"WARNING: {name} guest stopped answering ({e}); "
                            f"rerunning this boot ({lost[name]} of at most {a.max_lost})")
        shutil.rmtree(backing_dir, ignore_errors=True)
    if a.one_boot_out:
        nested_boots.write_one_boot(a.one_boot_out, samples)
        return 0
    report(a, vmms, {k: statistics.median(v) for k, v in samples.items()}, lost, nested)
    return 0


def report(a, vmms, results, lost, nested) -> None:
    host = ("nested (QEMU-TCG L1 with SVM, a fresh one per boot; compare ratios, not "
            "absolute figures)" if nested else "direct")
    cache = "O_DIRECT" if a.direct else "host page cache"
    print(f"\nvirtio-blk, {a.size_mib} MiB {a.format} file in {a.dir or '/tmp'}, {cache}; "
          f"guest O_DIRECT, {a.seconds} s, median of {a.rounds} boots x {a.runs} runs; host: {host}")
    print(f"QEMU: microvm,pcie=on virtio-blk-pci aio={a.qemu_aio} "
          f"cache={'none' if a.direct else 'writeback'} format={a.format}")
    print("boots rerun after the guest stopped answering: " +
          ", ".join(f"{name} {n}" for name, n in lost.items()))
    cols = [("seqread", "seq read MiB/s"), ("seqwrite", "seq write MiB/s"),
            ("randread", f"4K randread IOPS (QD{a.jobs})")]
    print(f"{'VMM':<10}" + "".join(f"{title:>26}" for _, title in cols))
    for name in vmms:
        print(f"{name:<10}" + "".join(f"{results[(name, m)]:>26.1f}" for m, _ in cols))
    if {"nimbus", "nimbus-1q"} <= set(vmms):
        n, one = results[("nimbus", "randread")], results[("nimbus-1q", "randread")]
        print(f"queue scaling: nimbus {a.cpus} queues / 1 queue, 4K randread QD{a.jobs}: "
              f"{n:.1f} / {one:.1f} = {n / one:.2f}")
        if a.markdown:
            print(f"| virtio-blk 4K randread IOPS (QD{a.jobs}), nimbus {a.cpus} queues vs 1 "
                  f"| {n:.1f} | {one:.1f} (nimbus, 1 queue) | {n / one:.2f} |")
    if {"nimbus", "qemu"} <= set(vmms):
        print(f"{'ratio':<10}" + "".join(
            f"{results[('nimbus', m)] / results[('qemu', m)]:>26.2f}" for m, _ in cols))
        if a.markdown:
            for m, title in cols:
                n, q = results[("nimbus", m)], results[("qemu", m)]
                fmt = "" if a.format == "raw" else f" ({a.format})"
                print(f"| virtio-blk{fmt} {title} | {n:.1f} | {q:.1f} | {n / q:.2f} |")


if __name__ == "__main__":
    sys.exit(main())
