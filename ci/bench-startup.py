#!/usr/bin/python3
"""Startup benchmark: time from process start to the first KVM_RUN, and the
VMM's resident memory beyond guest RAM, for nimbus and QEMU (-M microvm)
measured in the same run on the same guest.

Both VMMs boot the same freestanding PVH guest (tests/guests/tiny), which
halts, so the figures are the VMM's own cost and not a guest's.  The clock
starts just before exec (same for both); the first KVM_RUN is stamped by an
LD_PRELOAD shim (ci/bench/first_kvm_run.c).  RSS beyond guest memory is
smaps Rss of every mapping except guest RAM, sampled once the guest runs.

Prints a table and, with --markdown, the README table rows.
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_shim(outdir):
    so = os.path.join(outdir, "first_kvm_run.so")
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", so,
                    os.path.join(ROOT, "ci", "bench", "first_kvm_run.c"), "-ldl"],
                   check=True)
    return so


def rss_beyond_guest(pid, guest_bytes):
    """Sum smaps Rss (KiB) over all mappings except the guest RAM one(s)."""
    total = guest = 0
    size = rss = 0
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            if "-" in parts[0] and len(parts) >= 5 and ":" not in parts[0]:
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                size = hi - lo
            elif parts[0] == "Rss:":
                rss = int(parts[1])
                total += rss
                # Guest RAM is the one anonymous mapping at least as big as the guest.
                if size >= guest_bytes:
                    guest += rss
    return total - guest


def run_once(cmd, shim, guest_bytes, settle):
    with tempfile.TemporaryDirectory() as td:
        stamp = os.path.join(td, "first")
        env = dict(os.environ, LD_PRELOAD=shim, FIRST_KVM_RUN_FILE=stamp)
        t0 = time.time()
        p = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 20
        while not os.path.exists(stamp) and time.time() < deadline and p.poll() is None:
            time.sleep(0.001)
        time.sleep(settle)
        rss = None
        if p.poll() is None:
            rss = rss_beyond_guest(p.pid, guest_bytes)
            p.send_signal(signal.SIGTERM)
        try:
            _, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        if not os.path.exists(stamp):
            raise RuntimeError(f"{cmd[0]} never reached KVM_RUN: {err.decode()[-400:]}")
        with open(stamp) as f:
            first = float(f.read())
        return (first - t0) * 1000.0, rss


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nimbus", default=os.path.join(ROOT, "build", "nimbus"))
    ap.add_argument("--guest", default=os.path.join(ROOT, "build", "tests", "guests", "tiny.elf"))
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--memory-mib", type=int, default=512)
    ap.add_argument("--settle", type=float, default=0.5,
                    help="seconds to let the guest run before sampling RSS")
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    guest_bytes = a.memory_mib << 20
    with tempfile.TemporaryDirectory() as td:
        shim = build_shim(td)
        vmms = {
            "nimbus": [a.nimbus, "--kernel", a.guest, "--cmdline", "h",
                       "--memory", f"size={a.memory_mib}M", "--cpus", "boot=1",
                       "--serial", "null", "--console", "off"],
            "qemu-microvm": [a.qemu, "-M", "microvm,x-option-roms=off,rtc=off",
                             "-enable-kvm", "-cpu", "qemu64,-cx16", "-m", f"{a.memory_mib}M",
                             "-smp", "1", "-nodefaults", "-no-user-config", "-nographic",
                             "-display", "none", "-kernel", a.guest, "-append", "h",
                             "-serial", "null"],
        }
        results = {}
        for name, cmd in vmms.items():
            run_once(cmd, shim, guest_bytes, 0.05)  # warm the page cache
            times, rss = [], []
            for _ in range(a.runs):
                t, r = run_once(cmd, shim, guest_bytes, a.settle)
                times.append(t)
                if r is not None:
                    rss.append(r)
            results[name] = (statistics.median(times), min(times),
                             statistics.median(rss) / 1024.0 if rss else float("nan"))
    n_t, _, n_r = results["nimbus"]
    q_t, _, q_r = results["qemu-microvm"]
    print(f"{'VMM':<14} {'first KVM_RUN ms (median)':>26} {'min':>8} {'RSS beyond guest MiB':>22}")
    for name, (t, tmin, r) in results.items():
        print(f"{name:<14} {t:>26.2f} {tmin:>8.2f} {r:>22.2f}")
    print(f"ratio nimbus/qemu: startup {n_t / q_t:.3f}, memory {n_r / q_r:.3f}")
    if a.markdown:
        print(f"| startup to first KVM_RUN (median of {a.runs}) | {n_t:.2f} ms | {q_t:.2f} ms | "
              f"{n_t / q_t:.2f} |")
        print(f"| RSS beyond guest RAM | {n_r:.2f} MiB | {q_r:.2f} MiB | {n_r / q_r:.2f} |")
    ok = n_t < 5.0 and n_r < 4.0
    print("targets (<5 ms, <4 MiB):", "met" if ok else "NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
