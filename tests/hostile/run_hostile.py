#!/usr/bin/python3
"""Run the hostile guest against nimbus, one VM per seed, and judge each run.

A seed passes when nimbus exits 0 (the guest powered off) within the
timeout, its stderr holds no sanitizer report and stays within what rate
limiting allows, the guest's final line says canary=ok honest=ok final=ok,
every device answered its honest requests before and after the attack,
the console file got the guest's lines, the readonly disk is byte for byte
unchanged and the writable one did not grow.

  run_hostile.py --nimbus build/nimbus --guest build/tests/guests/hostile.elf \\
                 --seeds 1-4 --ops 400

Exit status: 0 all seeds passed, 1 a seed failed, 2 bad usage, 77 no usable
/dev/kvm (skipped; a failure instead when NIMBUS_TEST_REQUIRE_KVM=1).
"""
import argparse
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from kvm_gate import kvm_gate  # noqa: E402

DISK_SIZE = 1 << 20
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "ERROR: ThreadSanitizer", "WARNING: ThreadSanitizer")
# log_ratelimited lets 20 lines per call site through per 10-second window.
LOG_LINES_PER_WINDOW = 200
LOG_WINDOW_S = 10
EXPECTED_DEVICES = ("blk ro=0", "blk ro=1", "net", "console", "rng template=1",
                    "rng template=0")


def disk_pattern():
    """The bytes the guest expects: byte at offset o (see honest.c disk_byte)."""
    out = bytearray(DISK_SIZE)
    for sector in range(DISK_SIZE // 512):
        base = sector * 512
        out[base:base + 512] = bytes(((base + i) * 7 + sector * 13 + 0x5A) & 0xFF
                                     for i in range(512))
    return bytes(out)


def parse_seeds(text):
    m = re.fullmatch(r"(\d+)(?:-(\d+))?", text)
    if not m:
        raise argparse.ArgumentTypeError("seeds: N or A-B")
    a = int(m.group(1))
    b = int(m.group(2)) if m.group(2) else a
    if b < a:
        raise argparse.ArgumentTypeError("seeds: A-B with A <= B")
    return range(a, b + 1)


def template_seed(seed):
    return (seed * 0x9E3779B97F4A7C15 + 0x1234) & ((1 << 64) - 1)


def command(args, seed, work):
    cmdline = "seed=%d ops=%d tseed=0x%x canary_kib=%d%s" % (
        seed, args.ops, template_seed(seed), args.canary_kib, " verbose=1" if args.verbose else "")
    cmd = [args.nimbus, "--kernel", args.guest, "--cmdline", cmdline,
           "--cpus", "boot=%d" % args.cpus, "--memory", "size=%s" % args.memory,
           "--serial", "file=" + os.path.join(work, "serial.txt"),
           "--console", "file=" + os.path.join(work, "console.txt"),
           "--disk", "path=" + os.path.join(work, "rw.img"),
           "path=%s,readonly=on" % os.path.join(work, "ro.img"),
           "--rng", "--net", "user=on",
           "--device", "plugin=virtio_template,seed=0x%x" % template_seed(seed)]
    if args.plugin_dir:
        cmd += ["--plugin-dir", args.plugin_dir]
    return cmd


def judge(args, seed, work, rc, timed_out, seconds, pristine):
    """A list of what went wrong (empty: the seed passed)."""
    bad = []
    with open(os.path.join(work, "stderr.txt"), "rb") as f:
        err = f.read().decode("utf-8", "replace")
    serial = open(os.path.join(work, "serial.txt"), "rb").read().decode("latin-1") \
        if os.path.exists(os.path.join(work, "serial.txt")) else ""
    console = open(os.path.join(work, "console.txt"), "rb").read().decode("latin-1") \
        if os.path.exists(os.path.join(work, "console.txt")) else ""
    if timed_out:
        bad.append("hang (timeout %ds)" % args.timeout)
    elif rc != 0:
        bad.append("exit status %d" % rc)
    for mark in SANITIZER_MARKS:
        if mark in err:
            bad.append("sanitizer: " + mark)
    lines = err.count("\n")
    allowed = LOG_LINES_PER_WINDOW * (1 + int(seconds) // LOG_WINDOW_S)
    if lines > allowed:
        bad.append("log unbounded: %d lines in %.0fs (allowed %d)" % (lines, seconds, allowed))
    done = re.search(r"HOSTILE DONE seed=(\d+) ops=(\d+) canary=(\w+) honest=(\w+) final=(\w+)",
                     serial)
    if not done:
        bad.append("no HOSTILE DONE line")
    else:
        if int(done.group(1)) != seed or int(done.group(2)) != args.ops:
            bad.append("DONE line for another seed/ops: " + done.group(0))
        for name, idx in (("canary", 3), ("honest", 4), ("final", 5)):
            if done.group(idx) != "ok":
                bad.append("%s=%s" % (name, done.group(idx)))
        for phase in ("HONEST", "FINAL"):
            for dev in EXPECTED_DEVICES:
                if "%s %s ok" % (phase, dev) not in serial:
                    bad.append("%s %s not ok" % (phase, dev))
        for tag in ("H", "F"):
            if "hostile-console-line %s\n" % tag not in console:
                bad.append("console line %s missing" % tag)
    ro = open(os.path.join(work, "ro.img"), "rb").read()
    if hashlib.sha256(ro).digest() != pristine:
        bad.append("readonly disk changed")
    if os.path.getsize(os.path.join(work, "rw.img")) != DISK_SIZE:
        bad.append("writable disk size changed to %d" % os.path.getsize(
            os.path.join(work, "rw.img")))
    return bad, err


def run_seed(args, seed, pattern, pristine):
    work = tempfile.mkdtemp(prefix="hostile-%d-" % seed, dir=args.workdir)
    for name in ("rw.img", "ro.img"):
        with open(os.path.join(work, name), "wb") as f:
            f.write(pattern)
    cmd = command(args, seed, work)
    t0 = time.monotonic()
    timed_out = False
    with open(os.path.join(work, "stderr.txt"), "wb") as errf:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=errf, stderr=errf)
        try:
            rc = proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.kill()
            rc = proc.wait()
    seconds = time.monotonic() - t0
    bad, err = judge(args, seed, work, rc, timed_out, seconds, pristine)
    outcome = "ok" if not bad else "FAIL: " + "; ".join(bad)
    print("seed=%d ops=%d %s %.1fs" % (seed, args.ops, outcome, seconds), flush=True)
    if bad:
        print("  reproduce: " + " ".join(shlex.quote(c) for c in cmd))
        print("  kept: %s (serial.txt, console.txt, stderr.txt, disks)" % work)
        tail = err.strip().splitlines()[-40:]
        for line in tail:
            print("  | " + line)
    elif not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return not bad, seconds


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nimbus", default=os.environ.get("NIMBUS"),
                   help="the nimbus binary (or $NIMBUS)")
    p.add_argument("--guest", default=os.environ.get("HOSTILE_GUEST"),
                   help="hostile.elf (or $HOSTILE_GUEST)")
    p.add_argument("--plugin-dir", default=None)
    p.add_argument("--seeds", type=parse_seeds, default=parse_seeds("1-4"))
    p.add_argument("--ops", type=int, default=400, help="attack operations per seed")
    p.add_argument("--timeout", type=int, default=120, help="seconds per seed")
    p.add_argument("--cpus", type=int, default=1)
    p.add_argument("--memory", default="256M")
    p.add_argument("--canary-kib", type=int, default=16, help="size of each canary region")
    p.add_argument("--workdir", default=None, help="where per-seed directories go")
    p.add_argument("--keep", action="store_true", help="keep passing seeds' directories too")
    p.add_argument("--verbose", action="store_true", help="the guest prints every operation")
    args = p.parse_args()
    if not args.nimbus or not args.guest:
        p.error("--nimbus and --guest are required (or $NIMBUS and $HOSTILE_GUEST)")
    for path in (args.nimbus, args.guest):
        if not os.path.exists(path):
            p.error("%s does not exist" % path)
    gate = kvm_gate("run_hostile")
    if gate is not None:
        return gate
    pattern = disk_pattern()
    pristine = hashlib.sha256(pattern).digest()
    failed = []
    total = 0.0
    start = time.monotonic()
    for seed in args.seeds:
        ok, seconds = run_seed(args, seed, pattern, pristine)
        total += seconds
        if not ok:
            failed.append(seed)
    n = len(args.seeds)
    print("summary: %d seed(s) x %d ops: %d passed, %d failed%s; %.1fs (%.1fs per seed)" % (
        n, args.ops, n - len(failed), len(failed),
        " (" + ",".join(str(s) for s in failed) + ")" if failed else "",
        time.monotonic() - start, total / n if n else 0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
