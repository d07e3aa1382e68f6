#!/usr/bin/python3
"""Boot every disk layout of make-images.py with nothing but --disk.

The "kernel" inside each image is the probe guest (tests/guests/probe): it
prints the command line and the CRC-32 of the initrd it was given, so a
reader that picks the wrong entry, file or grubenv value shows up as a
wrong line (the images hold decoy files that are not bootable at all).
Images that must be refused are refused with the message expect.json
names, quickly (never a hang). Then: --kernel/--initramfs/--cmdline
override the image; and the reader process is sandboxed (no
capabilities, seccomp, nobody, only its socket and the disks open) and
gone when nimbus is.

  test_layouts.py --nimbus build/nimbus --probe build/tests/guests/probe.elf \
                  --tiny build/tests/guests/tiny.elf
Exit status 0 passed, 1 failed, 77 skipped (no usable /dev/kvm, unless
NIMBUS_TEST_REQUIRE_KVM=1).
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from kvm_gate import kvm_gate  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def nimbus(args, img, extra=(), timeout=60):
    cmd = [args.nimbus, "-v", "--disk", "path=%s,readonly=on" % img, "--serial", "tty",
           "--console", "off", "--memory", "size=128M", *extra]
    env = dict(os.environ, NIMBUS_BOOTDISK_TIMEOUT="20")
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout,
                       env=env)
    return p, time.monotonic() - t0


def probe_lines(out):
    return [l for l in out.splitlines() if l.startswith("PROBE ")]


def initrd_line(data):
    if data is None:
        return "PROBE initrd none"
    return "PROBE initrd size=%d crc32=%08x" % (len(data), zlib.crc32(data))


def layouts(args, tmp, initrd):
    out = os.path.join(tmp, "img")
    subprocess.run([sys.executable, os.path.join(HERE, "make-images.py"), "--kernel",
                    args.probe, "--initrd", initrd, "--out", out], check=True)
    with open(initrd, "rb") as f:
        idata = f.read()
    expect = json.load(open(os.path.join(out, "expect.json")))
    for name, e in sorted(expect.items()):
        img = os.path.join(out, name + ".img")
        p, dt = nimbus(args, img)
        if "error_contains" in e:
            lines = [l for l in p.stderr.splitlines() if " error: " in l]
            check(p.returncode != 0 and not probe_lines(p.stdout) and len(lines) == 1 and
                  e["error_contains"] in lines[0] and dt < 30,
                  "%s: refused in %.1f s: %s" % (name, dt, lines[-1][:220] if lines else
                                                 p.stderr[-300:]))
            continue
        got = probe_lines(p.stdout)
        want_initrd = initrd_line(idata if e["initrd_sha256"] else None)
        ok = (p.returncode == 0 and "PROBE cmdline=" + e["cmdline"] in got and
              want_initrd in got)
        check(ok, "%s (%s): boots with cmdline '%s'%s" % (
            name, e["source"], e["cmdline"], "" if ok else
            "\n  got %s\n  stderr %s" % (got, p.stderr[-600:])))
    return out


def overrides(args, imgdir, tmp):
    other = os.path.join(tmp, "other-initrd")
    with open(other, "wb") as f:
        f.write(os.urandom(3333))
    img = os.path.join(imgdir, "debian-gpt.img")
    p, _ = nimbus(args, img, ["--cmdline", "mine=1 two"])
    check("PROBE cmdline=mine=1 two" in probe_lines(p.stdout), "--cmdline overrides grub.cfg")
    p, _ = nimbus(args, img, ["--initramfs", other])
    with open(other, "rb") as f:
        check(initrd_line(f.read()) in probe_lines(p.stdout), "--initramfs overrides the initrd")
    p, _ = nimbus(args, img, ["--kernel", args.probe, "--cmdline", "direct"])
    check("PROBE cmdline=direct" in probe_lines(p.stdout) and
          "PROBE initrd none" in probe_lines(p.stdout) and "bootdisk:" not in p.stderr,
          "--kernel boots without reading the image")


def qcow2(args, imgdir, tmp, idata):
    """A compressed qcow2 copy boots as the raw image does (read through the
    qcow2 library inside the reader); one with a backing file is refused."""
    src = os.path.join(imgdir, "debian-gpt.img")
    q = os.path.join(tmp, "debian.qcow2")
    subprocess.run(["qemu-img", "convert", "-c", "-O", "qcow2", src, q], check=True)
    p, _ = nimbus(args, q)
    got = probe_lines(p.stdout)
    check(p.returncode == 0 and initrd_line(idata) in got and
          any(l.startswith("PROBE cmdline=root=UUID=") for l in got),
          "a compressed qcow2 image boots (%s)" % got)
    over = os.path.join(tmp, "over.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", q, "-F", "qcow2", over],
                   check=True)
    p2 = subprocess.run([args.nimbus, "--disk", "path=%s,readonly=on,image_type=qcow2,"
                         "backing_files=on" % over, "--serial", "tty", "--console", "off",
                         "--memory", "size=128M"], capture_output=True, text=True, timeout=60)
    check(p2.returncode != 0 and "has a backing file" in p2.stderr and
          "Give --kernel" in p2.stderr, "a qcow2 with a backing file is refused: %s" %
          p2.stderr.strip()[-200:])


def status_fields(pid):
    f = {}
    with open("/proc/%d/status" % pid) as s:
        for line in s:
            k, _, v = line.partition(":")
            f[k] = v.strip()
    return f


def sandbox(args, tmp):
    """A guest that halts: look at the reader while the VM runs."""
    out = os.path.join(tmp, "tinyimg")
    subprocess.run([sys.executable, os.path.join(HERE, "make-images.py"), "--kernel", args.tiny,
                    "--initrd", args.tiny, "--out", out, "--only", "symlink-gpt"], check=True)
    img = os.path.join(out, "symlink-gpt.img")
    p = subprocess.Popen([args.nimbus, "--disk", "path=%s,readonly=on" % img, "--disk",
                          "path=%s,readonly=on" % img, "--cmdline", "h", "--serial", "tty",
                          "--console", "off", "--memory", "size=64M"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    helper = None
    for _ in range(100):
        time.sleep(0.1)
        try:
            kids = open("/proc/%d/task/%d/children" % (p.pid, p.pid)).read().split()
        except OSError:
            break
        if kids:
            helper = int(kids[0])
            break
    check(helper is not None, "the boot-disk reader is a child process of nimbus")
    if helper:
        st = status_fields(helper)
        fds = sorted(int(x) for x in os.listdir("/proc/%d/fd" % helper))
        check(st.get("Name") == "nimbus-bootdisk", "reader named nimbus-bootdisk (%s)" %
              st.get("Name"))
        check(st.get("Seccomp") == "2", "reader under a seccomp filter (%s)" % st.get("Seccomp"))
        check(st.get("NoNewPrivs") == "1", "reader has no_new_privs")
        check(st.get("CapEff") == "0" * 16 and st.get("CapPrm") == "0" * 16,
              "reader holds no capabilities (%s)" % st.get("CapEff"))
        if os.geteuid() == 0:
            check(st.get("Uid", "").split()[:1] == ["65534"], "reader runs as nobody (%s)" %
                  st.get("Uid"))
        check(fds == [0, 1, 2], "reader holds only its socket and the two disks: fds %s" % fds)
        try:
            targets = [os.readlink("/proc/%d/fd/%d" % (helper, n)) for n in fds]
        except PermissionError:
            # Another uid's fd links need CAP_SYS_PTRACE, which containers drop.
            print("skip fd 0 is the socket, 1-2 the disk image: the links are not readable here")
        else:
            check(targets[0].startswith("socket:") and
                  all(os.path.samefile(t, img) for t in targets[1:]),
                  "fd 0 is the socket, 1-2 the disk image (%s)" % targets)
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
    if helper:
        for _ in range(50):
            if not os.path.exists("/proc/%d" % helper):
                break
            time.sleep(0.1)
        check(not os.path.exists("/proc/%d" % helper), "the reader is gone after nimbus ends")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nimbus", required=True)
    ap.add_argument("--probe", required=True)
    ap.add_argument("--tiny", required=True)
    args = ap.parse_args()
    gate = kvm_gate("test_layouts")
    if gate is not None:
        return gate
    with tempfile.TemporaryDirectory(prefix="nimbus-bootdisk-") as tmp:
        initrd = os.path.join(tmp, "initrd")
        with open(initrd, "wb") as f:
            f.write(os.urandom(70001))
        imgdir = layouts(args, tmp, initrd)
        overrides(args, os.path.join(imgdir), tmp)
        with open(initrd, "rb") as f:
            qcow2(args, imgdir, tmp, f.read())
        sandbox(args, tmp)
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
