#!/usr/bin/python3
"""Boot-to-login of the Debian cloud image: nimbus vs QEMU, same run.

The image (ci/cloud-image.sh) with a NoCloud seed (DHCP on the NIC), 2 vCPUs,
1 GiB, one virtio-net NIC on user-mode networking (libslirp in both: the
image's systemd-networkd-wait-online needs a configured link or waits 2
minutes), console on virtio-console (hvc0, where systemd's getty
generator puts a login prompt), no 16550 (the image's console=ttyS0 then
costs nothing in either VMM):
  nimbus  --disk IMAGE --disk SEED: nimbus reads the kernel, initrd and
          command line from the image's GRUB configuration itself;
  QEMU    -M microvm,pcie=on (ECAM + ACPI, no firmware, as nimbus) with the
          image's own vmlinuz/initrd and the command line nimbus found, the
          same two disks on virtio-blk-pci and a virtconsole.
The time is from starting the VMM process to "login:" on the console.
Rounds alternate the VMMs; each boot gets a fresh copy of the image.

Without a hardware-virtualisation /dev/kvm, the whole benchmark re-runs
itself in one nested test host (ci/vmrun.sh): both VMMs then pay the same
nesting, and only their ratio means anything.

  ci/bench-cloud.py [--rounds 2] [--timeout 900] [--markdown]
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from framework import paths  # noqa: E402


def image_dir() -> Path:
    d = os.environ.get("NIMBUS_CLOUD_IMAGE") or subprocess.run(
        [str(ROOT / "ci" / "cloud-image.sh"), "--print-dir"], check=True,
        stdout=subprocess.PIPE, text=True).stdout.strip()
    return Path(d)


def boot(argv, timeout: float, log: Path) -> float:
    """Seconds from exec to 'login:' on the VMM's stdout; the VMM is killed."""
    t0 = time.monotonic()
    with open(log, "wb") as out:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=out, start_new_session=True)
        buf = b""
        try:
            os.set_blocking(p.stdout.fileno(), False)
            while time.monotonic() - t0 < timeout:
                try:
                    chunk = p.stdout.read(65536)
                except BlockingIOError:
                    chunk = None
                if chunk:
                    buf += chunk
                    if re.search(rb"login: ", buf[-4096:]):
                        return time.monotonic() - t0
                elif p.poll() is not None:
                    raise RuntimeError(f"{argv[0]} exited {p.returncode}: see {log}")
                else:
                    time.sleep(0.05)
            raise RuntimeError(f"{argv[0]}: no login prompt in {timeout} s: see {log}")
        finally:
            out.write(b"\n--- console ---\n" + buf[-8000:])
            try:
                os.killpg(p.pid, 9)
            except ProcessLookupError:
                pass
            p.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nimbus", default=str(paths.nimbus_bin()))
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--logs", default=str(ROOT / "build" / "bench-cloud"))
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()

    img = image_dir()
    if not a.inside and not paths.hardware_kvm():
        env = dict(os.environ, NIMBUS_CLOUD_IMAGE=str(img))
        cmd = [str(ROOT / "ci" / "vmrun.sh"), "--timeout", str(int(a.timeout * a.rounds * 2 + 600)),
               "--mem", "6144", "--", sys.executable, str(Path(__file__).resolve()), "--inside",
               "--nimbus", str(Path(a.nimbus).resolve()), "--rounds", str(a.rounds),
               "--timeout", str(a.timeout), "--logs", a.logs] + (["--markdown"] if a.markdown
                                                                  else [])
        print("bench-cloud: no hardware KVM here: running in the nested test host", flush=True)
        return subprocess.run(cmd, env=env, cwd=ROOT).returncode

    logs = Path(a.logs)
    logs.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-cloud-", dir="/tmp"))
    try:
        key = work / "key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        seed = work / "seed.img"
        subprocess.run([str(ROOT / "ci" / "cloud-image.sh"), "seed", "--hostname", "bench",
                        "--user", "bench", "--ssh-key", str(key) + ".pub", "-o", str(seed)],
                       check=True)
        disk = work / "disk.raw"
        cmdline = None
        times = {"nimbus": [], "qemu": []}
        for r in range(a.rounds):
            for vmm in ("nimbus", "qemu"):
                subprocess.run(["cp", "--sparse=always", str(img / "debian12.raw"), str(disk)],
                               check=True)
                log = logs / f"{vmm}-{r}.log"
                if vmm == "nimbus":
                    argv = [a.nimbus, "-v", "--disk", f"path={disk}",
                            "--disk", f"path={seed},readonly=on", "--cpus", "boot=2",
                            "--memory", "size=1G", "--net", "user=on",
                            "--serial", "off", "--console", "tty"]
                else:
                    argv = [a.qemu, "-nodefaults", "-no-user-config", "-nographic",
                            "-enable-kvm", "-cpu", "host", "-smp", "2", "-m", "1024",
                            "-M", "microvm,pcie=on,acpi=on,rtc=on",
                            "-kernel", str(img / "vmlinuz"), "-initrd", str(img / "initrd.img"),
                            "-append", cmdline,
                            "-drive", f"file={disk},if=none,id=d0,format=raw,cache=writeback",
                            "-device", "virtio-blk-pci,drive=d0",
                            "-drive", f"file={seed},if=none,id=d1,format=raw,readonly=on",
                            "-device", "virtio-blk-pci,drive=d1",
                            "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0",
                            "-device", "virtio-serial-pci", "-chardev", "stdio,id=c0",
                            "-device", "virtconsole,chardev=c0", "-serial", "none",
                            "-monitor", "none"]
                secs = boot(argv, a.timeout, log)
                times[vmm].append(secs)
                print(f"round {r + 1}: {vmm}: login prompt after {secs:.1f} s", flush=True)
                if vmm == "nimbus" and cmdline is None:
                    m = re.search(r"bootdisk: command line: (.*)", log.read_text(errors="replace"))
                    if not m:
                        raise RuntimeError(f"nimbus did not log its command line: {log}")
                    cmdline = m.group(1).strip()
        n, q = statistics.median(times["nimbus"]), statistics.median(times["qemu"])
        print(f"\nboot to login (median of {a.rounds}): nimbus {n:.1f} s, QEMU {q:.1f} s, "
              f"ratio {n / q:.2f}")
        print(f"command line (from the image's grub.cfg): {cmdline}")
        if a.markdown:
            print("\n| boot to login prompt | nimbus (disk only) | QEMU microvm (kernel given) | ratio |")
            print("|---|---:|---:|---:|")
            print(f"| Debian 12 cloud image, median of {a.rounds} | {n:.1f} s | {q:.1f} s | "
                  f"{n / q:.2f} |")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
