#!/usr/bin/python3
"""virtio-blk stress loop: the load under which nimbus guests in the nested
test host stop answering now and then (README, Performance).

One guest, one disk on a 256 MiB raw file; `--iterations` times a sequential
O_DIRECT write (1 MiB, one in flight) and then 4 KiB random reads with four
threads, each for `--seconds`.  Prints `RESULT <vmm>: N/M ok`, or the point
where the guest stopped answering with its console tail and the VMM's thread
dump (gdb, /proc stacks, a second of KVM event counts), and exits 1.

  ci/blk-stress.py [--vmm nimbus|qemu] [--iterations 15] [--seconds 3]

Without a hardware-virtualisation /dev/kvm it re-runs itself inside
ci/vmrun.sh, like ci/bench-blk.py.
"""
import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from framework import paths  # noqa: E402
from framework.console import ConsoleClosed, ConsoleTimeout  # noqa: E402
from framework.machine import Disk, Machine  # noqa: E402
from framework.vm import Vm  # noqa: E402

MIB = 1 << 20


def bench_module():
    """ci/bench-blk.py, for its guest-tool build (the name has a dash)."""
    spec = importlib.util.spec_from_file_location("bench_blk", ROOT / "ci" / "bench-blk.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vmm", default="nimbus", choices=["nimbus", "qemu"])
    ap.add_argument("--nimbus", default=str(ROOT / "build" / "nimbus"))
    ap.add_argument("--iterations", type=int, default=15)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--blkbench-cpio", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    bench = bench_module()

    if not paths.hardware_kvm() and os.environ.get("NIMBUS_VMRUN") != "1":
        outdir = ROOT / "build" / "bench-blk"
        outdir.mkdir(parents=True, exist_ok=True)
        cpio = bench.build_blkbench(outdir)
        return subprocess.run([str(ROOT / "ci" / "vmrun.sh"), "--timeout", "1200", "--",
                               "/usr/bin/python3", str(Path(__file__).resolve()),
                               "--blkbench-cpio", str(cpio), *sys.argv[1:]],
                              cwd=ROOT).returncode

    with tempfile.TemporaryDirectory(prefix="blk-stress-") as td:
        td = Path(td)
        cpio = Path(a.blkbench_cpio) if a.blkbench_cpio else bench.build_blkbench(td)
        initramfs = td / "initramfs.cpio.gz"
        initramfs.write_bytes(paths.assets().guest_initramfs.read_bytes() + cpio.read_bytes())
        disk = td / "disk.raw"
        block = os.urandom(MIB)
        with open(disk, "wb") as f:
            for _ in range(256):
                f.write(block)
        machine = Machine(disks=[Disk(disk)], initramfs=initramfs, cpus=2, memory_mib=1024)
        argv = (machine.argv("nimbus", Path(a.nimbus).resolve()) if a.vmm == "nimbus"
                else machine.argv("qemu"))
        vm = Vm(a.vmm, argv, td)
        done = 0
        try:
            vm.start().wait_ready(180)
            for _ in range(a.iterations):
                for cmd in (f"blkbench /dev/vda seqwrite -t {a.seconds} -j 1",
                            f"blkbench /dev/vda randread -t {a.seconds} -j 4"):
                    vm.check_output(cmd, timeout=a.seconds * 10 + 60)
                done += 1
            print(f"RESULT {a.vmm}: {done}/{a.iterations} ok", flush=True)
            return 0
        except (ConsoleTimeout, ConsoleClosed) as e:
            print(f"RESULT {a.vmm}: stopped answering after {done}/{a.iterations}: {e}")
            print(f"--- console (tail) ---\n{vm.console.tail(4000) if vm.console else ''}")
            print(f"--- stderr ---\n{vm.stderr_text[-4000:]}")
            print(f"--- threads ---\n{vm.thread_stacks()}", flush=True)
            return 1
        finally:
            vm.kill()


if __name__ == "__main__":
    sys.exit(main())
