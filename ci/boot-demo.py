#!/usr/bin/python3
"""Boot the guest with nimbus, run a few commands on its serial shell, print
the transcript and power it off (ci/boot-guest.sh's non-interactive mode)."""
import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from framework import paths  # noqa: E402
from framework.nimbus import nimbus_argv  # noqa: E402
from framework.vm import Vm  # noqa: E402

COMMANDS = ["uname -a", "nproc", "grep MemTotal /proc/meminfo", "date -u", "hwclock -u -r",
            "cat /proc/cmdline"]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--memory", default="1G")
    ap.add_argument("-v", action="count", default=0, help="pass -v to nimbus")
    a = ap.parse_args()
    assets = paths.assets()
    argv = nimbus_argv(ROOT / "build" / "nimbus", assets.guest_kernel, assets.guest_initramfs,
                       cpus=a.cpus, memory=a.memory, extra=["-v"] * a.v)
    print("$ " + " ".join(argv), flush=True)
    with tempfile.TemporaryDirectory() as td:
        vm = Vm("demo", argv, Path(td)).start()
        try:
            vm.wait_ready(timeout=300)
            for cmd in COMMANDS:
                rc, out = vm.run(cmd, timeout=60)
                print(f"guest# {cmd}\n{out.rstrip()}", flush=True)
            vm.send("poweroff -f\n")
            rc = vm.wait_exit(120)
            print(f"nimbus exited with status {rc} after the guest powered off")
            return rc
        except Exception:
            print(vm.serial_text[-4000:], file=sys.stderr)
            print(vm.stderr_text[-4000:], file=sys.stderr)
            print(f"nimbus: {vm.describe()}", file=sys.stderr)
            raise
        finally:
            vm.kill()


if __name__ == "__main__":
    sys.exit(main())
