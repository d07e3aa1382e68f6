#!/usr/bin/python3
"""Network benchmark: nimbus vs QEMU virtio-net on a tap, same guest.

Both VMMs boot the Debian cloud kernel with the test initramfs plus a second
cpio archive holding a static guest tool (ci/bench/netbench.c) and the
virtio_net module closure, get 2 vCPUs and one virtio-net NIC with 2 queue
pairs (num_queues=4; QEMU: queues=2, mq=on, vectors=6, userspace virtio-net,
vhost=off) on a multi-queue tap, and the guest measures TCP against the same
netbench running as a server on the host side of the tap:

  guest->host and host->guest throughput, 1 and --streams parallel streams;
  request/response: 1-byte ping-pong on one TCP_NODELAY connection
  (transactions/s, median and p99 round trip).

The host side lives in a network namespace the script creates (and
deletes): each boot gets a fresh tap there with 192.168.250.1/24, the guest
is 192.168.250.2, and the VMM runs inside the namespace (`ip netns exec`),
so no traffic leaves it.

Without a hardware-virtualisation /dev/kvm, every boot runs in a nested
test host of its own (ci/vmrun.sh), like the integration tests: under
network load the nested host's TCG emulation of SVM now and then wedges the
guest or kills the L1 kernel itself, for QEMU and nimbus alike (see
tests/integration/README.md), and a fresh host per boot costs ~10 s where a
shared one loses the whole run.  A boot that fails this way is discarded
whole and rerun, at most --max-lost times per VMM, and the count is printed
with the results.

  ci/bench-net.py [--vmms nimbus,qemu] [--seconds 4] [--streams 4] [--runs 1]
                  [--rounds 2] [--rr-size 1] [--markdown]
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
from framework.machine import Machine, Net  # noqa: E402
from framework.console import ConsoleClosed, ConsoleTimeout  # noqa: E402
from framework.vm import Vm  # noqa: E402
import nested_boots  # noqa: E402

BOOT_TIMEOUT = 180
HOST_IP, GUEST_IP, PREFIX = "192.168.250.1", "192.168.250.2", 24
GUEST_MAC = "52:54:00:12:34:56"
PORT = 5201
TAP = "nbtap0"
QUEUE_PAIRS = 2
# In load order: virtio_net needs net_failover, which needs failover.
NET_MODULES = ("kernel/net/core/failover.ko", "kernel/drivers/net/net_failover.ko",
               "kernel/drivers/net/virtio_net.ko")
GUEST_MODDIR = "/lib/modules/netbench"


def build_netbench(outdir: Path):
    """Static netbench (also the host-side server) and a gzip'ed cpio with it
    as /bin/netbench plus the guest kernel's virtio_net modules."""
    tree = outdir / "tree"
    (tree / "bin").mkdir(parents=True, exist_ok=True)
    binary = tree / "bin" / "netbench"
    subprocess.run(["gcc", "-static", "-O2", "-Wall", "-Wextra", "-pthread", "-o",
                    str(binary), str(ROOT / "ci" / "bench" / "netbench.c")], check=True)
    assets = paths.assets()
    moddir = tree / GUEST_MODDIR.lstrip("/")
    moddir.mkdir(parents=True, exist_ok=True)
    kmods = assets.guest_modules / "lib" / "modules" / assets.guest_kernel_release
    for m in NET_MODULES:
        shutil.copyfile(kmods / m, moddir / Path(m).name)
    files = subprocess.run(["find", "bin", "lib"], cwd=tree, check=True,
                           stdout=subprocess.PIPE).stdout
    cpio = subprocess.run(["cpio", "-o", "-H", "newc", "-R", "0:0", "--quiet"], cwd=tree,
                          input=files, check=True, stdout=subprocess.PIPE).stdout
    out = outdir / "netbench.cpio.gz"
    out.write_bytes(subprocess.run(["gzip", "-n", "-6"], input=cpio, check=True,
                                   stdout=subprocess.PIPE).stdout)
    return out, binary


def ip(*args: str) -> None:
    res = subprocess.run(["ip", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {res.stdout.strip()}")


def make_tap(ns: str, pairs: int) -> None:
    """A fresh (multi-queue) tap with the host address; only one exists at a
    time, so both VMMs see the same set-up."""
    mq = ["multi_queue"] if pairs > 1 else []
    ip("-n", ns, "tuntap", "add", "dev", TAP, "mode", "tap", *mq, "vnet_hdr")
    ip("-n", ns, "addr", "add", f"{HOST_IP}/{PREFIX}", "dev", TAP)
    ip("-n", ns, "link", "set", TAP, "up")


def drop_tap(ns: str) -> None:
    subprocess.run(["ip", "-n", ns, "link", "del", TAP], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)


def vmm_argv(name: str, a, initramfs: Path, ns: str):
    """The framework's command line (QEMU: vhost=off, queues=2, mq=on,
    vectors=6), run inside the namespace."""
    net = Net(tap=TAP, mac=GUEST_MAC, num_queues=2 * a.queue_pairs)
    m = Machine(nets=[net], initramfs=initramfs, cpus=a.cpus, memory_mib=a.memory_mib)
    argv = m.argv("nimbus", Path(a.nimbus)) if name == "nimbus" else m.argv("qemu", a.qemu)
    return ["ip", "netns", "exec", ns, *map(str, argv)]


def tests(a):
    """(key, guest command, RESULT field(s)) of one boot, in order."""
    out = []
    for d in ("send", "recv"):
        for j in sorted({1, a.streams}):
            # secs only for the log: far above --seconds means a stall.
            out.append(((d, j), f"netbench stream {HOST_IP} {d} -p {PORT} -j {j} -t {a.seconds}",
                        ("mibps", "secs")))
    out.append((("rr",), f"netbench rr {HOST_IP} -p {PORT} -t {a.seconds} -s {a.rr_size}",
                ("tps", "p50us", "p99us")))
    return out


GUEST_SETUP = (
    # (one may already be in: insmod says "File exists" then)
    f"for m in failover net_failover virtio_net; do [ -d /sys/module/$m ] ||"
    f" insmod {GUEST_MODDIR}/$m.ko || exit 1; done"
    # The NIC is the only interface besides lo; its name is the kernel's.
    "; i=0; while [ -z \"$(ls /sys/class/net | grep -v '^lo$')\" ] && [ $i -lt 100 ]; do"
    " sleep 0.1; i=$((i+1)); done"
    "; dev=$(ls /sys/class/net | grep -v '^lo$' | head -n1)"
    f"; ip link set $dev up && ip addr add {GUEST_IP}/{PREFIX} dev $dev"
    "; echo DEV=$dev PAIRS=$(ls -d /sys/class/net/$dev/queues/rx-* | wc -l)")


def run_boot(name, argv, ns, a, samples, info):
    work = Path(tempfile.mkdtemp(prefix=f"bench-net-{name}-"))
    make_tap(ns, a.queue_pairs)
    vm = Vm(name, argv, work)
    vm.add_cleanup(lambda: drop_tap(ns))
    try:
        t0 = time.monotonic()
        vm.start().wait_ready(BOOT_TIMEOUT)
        log(f"{name} guest ready in {time.monotonic() - t0:.1f} s")
        # The guest shell is `sh -c` of the init: run the set-up in a
        # subshell so that its `exit 1` does not end the console shell.
        out = vm.check_output(f"( {GUEST_SETUP} )", timeout=120)
        got = dict(kv.split("=", 1) for kv in out.split() if "=" in kv)
        info[name] = f"guest {got.get('DEV', '?')}: {got.get('PAIRS', '?')} queue pairs active"
        log(f"{name} {info[name]}")
        # Warm-up: ARP, slow start and the first-touch costs of both sides.
        vm.check_output(f"netbench rr {HOST_IP} -p {PORT} -t 1", timeout=120)
        for key, cmd, fields in tests(a):
            for _ in range(a.runs):
                res = parse_result(vm.check_output(cmd, timeout=a.seconds * 10 + 150))
                for f in fields:
                    samples.setdefault((name, *key, f), []).append(res[f])
            log(f"{name} {' '.join(map(str, key))}: " + ", ".join(
                f"{f} {[round(x, 1) for x in samples[(name, *key, f)][-a.runs:]]}"
                for f in fields))
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


def run_vmm(name, argv, ns, a, samples, info):
    """One boot; its figures join samples only when all of them were taken."""
    mine = {}
    run_boot(name, argv, ns, a, mine, info)
    for k, v in mine.items():
        samples.setdefault(k, []).extend(v)


def log(msg: str) -> None:
    print(f"bench-net: {msg}", file=sys.stderr, flush=True)


def parse_result(out: str) -> dict:
    for line in out.splitlines():
        if line.startswith("RESULT "):
            fields = dict(kv.split("=", 1) for kv in line.split()[1:])
            return {k: float(v) for k, v in fields.items()
                    if k in ("mibps", "gbps", "secs", "tps", "p50us", "p99us", "meanus")}
    raise RuntimeError(f"netbench printed no RESULT line:\n{out}")


def start_server(ns: str, binary: Path) -> subprocess.Popen:
    """netbench server in the namespace, for the whole run; it ends itself
    after an hour should this script die without killing it."""
    srv = subprocess.Popen(["ip", "netns", "exec", ns, str(binary), "server", "-p", str(PORT),
                            "-l", "3600"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           text=True, start_new_session=True)
    line = srv.stdout.readline()
    if not line.startswith("LISTENING"):
        srv.kill()
        raise RuntimeError(f"netbench server did not start (said {line!r})")
    return srv


def report(a, vmms, results, lost, info, nested) -> None:
    host = ("nested (QEMU-TCG L1 with SVM, a fresh one per boot; compare ratios, not "
            "absolute figures)" if nested else "direct")
    print(f"\nvirtio-net over a multi-queue tap in a network namespace; {a.cpus} vCPUs, "
          f"{a.queue_pairs} queue pairs (num_queues={2 * a.queue_pairs}); TCP, {a.seconds} s per "
          f"figure, median of {a.rounds} boots x {a.runs} runs; host: {host}")
    print(f"QEMU: microvm,pcie=on virtio-net-pci mq=on vectors={2 * a.queue_pairs + 2}, "
          f"tap queues={a.queue_pairs} vhost=off")
    print("; ".join(f"{n}: {info.get(n, '?')}" for n in vmms))
    print("boots rerun after the guest stopped answering: " +
          ", ".join(f"{name} {n}" for name, n in lost.items()))
    rows = []
    for d, title in (("send", "guest->host"), ("recv", "host->guest")):
        for j in sorted({1, a.streams}):
            rows.append(((d, j, "mibps"), f"{title} {j} stream{'s' if j > 1 else ''} MiB/s",
                         ">= 1.20"))
    rows += [(("rr", "tps"), f"TCP rr {a.rr_size} B transactions/s", ">= 1.00"),
             (("rr", "p50us"), "TCP rr round trip p50 us", "<= 1.00"),
             (("rr", "p99us"), "TCP rr round trip p99 us", "<= 1.00")]
    both = set(vmms) == {"nimbus", "qemu"}
    w = max(len(t) for _, t, _ in rows) + 2
    print(f"{'metric':<{w}}" + "".join(f"{v:>12}" for v in vmms) +
          (f"{'ratio':>10}{'target':>10}{'met':>5}" if both else ""))
    for key, title, target in rows:
        vals = [results[(v, *key)] for v in vmms]
        line = f"{title:<{w}}" + "".join(f"{x:>12.1f}" for x in vals)
        if both:
            ratio = results[("nimbus", *key)] / results[("qemu", *key)]
            line += f"{ratio:>10.2f}{target:>10}{'yes' if met(ratio, target) else 'no':>5}"
        print(line)
    if both:
        print("ratio = nimbus / QEMU")
        if a.markdown:
            print("\n| metric | nimbus | QEMU | ratio | target |\n|---|---|---|---|---|")
            for key, title, target in rows:
                n, q = results[("nimbus", *key)], results[("qemu", *key)]
                print(f"| virtio-net {title} | {n:.1f} | {q:.1f} | {n / q:.2f} | {target} |")


def met(ratio: float, target: str) -> bool:
    op, bound = target.split()
    return ratio >= float(bound) if op == ">=" else ratio <= float(bound)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nimbus", default=str(ROOT / "build" / "nimbus"),
                    help="nimbus binary; the guest tool is built next to it, in bench-net/")
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--vmms", default="nimbus,qemu", help="comma-separated: nimbus,qemu")
    ap.add_argument("--seconds", type=int, default=4, help="per measurement")
    ap.add_argument("--streams", type=int, default=4, help="parallel streams of the multi-stream "
                                                           "figures (1..64)")
    ap.add_argument("--rr-size", type=int, default=1, help="ping-pong message bytes")
    ap.add_argument("--runs", type=int, default=1, help="measurements per boot and figure")
    ap.add_argument("--rounds", type=int, default=2,
                    help="boots per VMM, alternating nimbus/QEMU so that drifting host "
                         "load hits both; figures are medians over rounds x runs")
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--queue-pairs", type=int, default=QUEUE_PAIRS,
                    help="virtio-net queue pairs of both VMMs (nimbus: one I/O thread each)")
    ap.add_argument("--memory-mib", type=int, default=1024)
    ap.add_argument("--markdown", action="store_true", help="also print README table rows")
    ap.add_argument("--max-lost", type=int, default=2,
                    help="nested host only: boots per VMM rerun after the guest stopped "
                         "answering before the benchmark fails")
    ap.add_argument("--netbench-cpio", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--one-boot-out", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    # The VMMs run in their own work directories.
    a.nimbus = str(Path(a.nimbus).resolve())
    vmms = [v.strip() for v in a.vmms.split(",") if v.strip()]
    for v in vmms:
        if v not in ("nimbus", "qemu"):
            ap.error(f"--vmms: unknown VMM '{v}'")
    if not vmms:
        ap.error("--vmms: no VMM given")
    for opt, val, lo, hi in (("--seconds", a.seconds, 1, 3600), ("--streams", a.streams, 1, 64),
                             ("--rr-size", a.rr_size, 1, 65536), ("--runs", a.runs, 1, 100),
                             ("--rounds", a.rounds, 1, 100), ("--cpus", a.cpus, 1, 64),
                             ("--queue-pairs", a.queue_pairs, 1, 16)):
        if not lo <= val <= hi:
            ap.error(f"{opt} needs an integer in {lo}..{hi}, got {val}")
    if "nimbus" in vmms and not Path(a.nimbus).is_file():
        ap.error(f"--nimbus: no such file '{a.nimbus}'")
    if os.geteuid() != 0:
        ap.error("needs root: it creates a network namespace and taps")

    outdir = Path(a.nimbus).parent / "bench-net"
    if not paths.hardware_kvm() and os.environ.get("NIMBUS_VMRUN") != "1":
        cpio, _ = build_netbench(outdir)
        samples, info, lost = nested_boots.run("bench-net", Path(__file__).resolve(),
                                               ["--netbench-cpio", str(cpio)], vmms, a.rounds,
                                               a.max_lost, outdir)
        results = {k: statistics.median(v) for k, v in samples.items()}
        report(a, vmms, results, lost, info, nested=True)
        return 0

    ns = f"nbench{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="bench-net-") as td:
        td = Path(td)
        if a.netbench_cpio:
            cpio = Path(a.netbench_cpio)
            binary = cpio.parent / "tree" / "bin" / "netbench"
        else:
            cpio, binary = build_netbench(td)
        initramfs = td / "initramfs-netbench.cpio.gz"
        # The kernel unpacks concatenated archives one after the other.
        initramfs.write_bytes(paths.assets().guest_initramfs.read_bytes() + cpio.read_bytes())

        ip("netns", "add", ns)
        srv = None
        try:
            ip("-n", ns, "link", "set", "lo", "up")
            srv = start_server(ns, binary)
            argvs = {name: vmm_argv(name, a, initramfs, ns) for name in vmms}
            for name in vmms:
                log(" ".join(argvs[name]))
            samples, info = {}, {}
            lost = {name: 0 for name in vmms}
            for r in range(a.rounds):
                for name in (vmms if r % 2 == 0 else vmms[::-1]):
                    while True:
                        try:
                            run_vmm(name, argvs[name], ns, a, samples, info)
                            break
                        except (ConsoleTimeout, ConsoleClosed) as e:
                            # The nested host wedges L2 guests now and then
                            # (tests/integration/README.md); a boot that
                            # stops answering is rerun, counted and
                            # reported, never silently dropped.  A single
                            # boot for the outer script is rerun there.
                            lost[name] += 1
                            if a.one_boot_out or lost[name] > a.max_lost:
                                raise
                            log(f"WARNING: {name} guest stopped answering ({e}); "
                                f"rerunning this boot ({lost[name]} of at most {a.max_lost})")
        finally:
            if srv is not None:
                srv.kill()
                srv.wait()
            subprocess.run(["ip", "netns", "del", ns], check=False)
    if a.one_boot_out:
        nested_boots.write_one_boot(a.one_boot_out, samples, info)
        return 0
    results = {k: statistics.median(v) for k, v in samples.items()}
    report(a, vmms, results, lost, info, nested=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
