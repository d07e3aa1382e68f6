#!/usr/bin/python3
"""Boot the probe guest (tests/guests/probe) and check every line it prints.

The guest reports what firmware sees: start_info's command line and first
module, the first virtio disk's capacity, GET_ID serial, MBR signature, GPT
(header and entry CRCs), first partition and the CRC-32 of sectors 0-63.
Each value is computed here on the host from the same bytes (sfdisk makes
the partition tables, zlib.crc32 the checksums), and the guest's PROBE
lines must match the expected ones exactly, in order.

  test_probe.py --nimbus build/nimbus --guest build/tests/guests/probe.elf firmware
  test_probe.py --nimbus build/nimbus --guest build/tests/guests/probe.elf kernel

firmware: disks (GPT, GPT with a damaged entry array, MBR, a tiny blank disk,
none) booted with --firmware; kernel: --kernel with --initramfs and --cmdline.
Exit status: 0 passed, 1 a case failed, 2 bad usage, 77 no usable /dev/kvm
(skipped; a failure instead when NIMBUS_TEST_REQUIRE_KVM=1).
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from kvm_gate import kvm_gate  # noqa: E402

SECTOR = 512
PROBE_SECTORS = 64
SERIAL = "probe0"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def known_bytes(n, seed):
    return random.Random(seed).randbytes(n)


def sfdisk(path, script):
    subprocess.run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", path],
                   input=script.encode(), check=True, stdout=subprocess.DEVNULL)
    table = json.loads(subprocess.run(["sfdisk", "-J", path], check=True,
                                      capture_output=True).stdout)["partitiontable"]
    return table


def write_at(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def crc(data):
    return "%08x" % zlib.crc32(data)


def disk_lines(path, gpt, first_lba):
    """The two lines the guest must print for this disk image."""
    data = open(path, "rb").read()
    head = data[:PROBE_SECTORS * SECTOR]
    return ["PROBE disk capacity=%d serial=%s" % (len(data) // SECTOR, SERIAL),
            "PROBE disk mbr_sig=%s gpt=%s first_part_lba=%s crc32_0_63=%s" % (
                "55aa" if head[510:512] == b"\x55\xaa" else "none",
                "yes" if gpt else "no", first_lba, crc(head))]


def make_gpt(work):
    """A 4 MiB disk with a real GPT (two Linux partitions) and known bytes."""
    path = os.path.join(work, "gpt.img")
    with open(path, "wb") as f:
        f.truncate(4 << 20)
    table = sfdisk(path, "label: gpt\nstart=2048, size=2048, type=L\nstart=4096, type=L\n")
    # Between the entry array and the first partition, inside sectors 0-63.
    write_at(path, 40 * SECTOR, known_bytes(20 * SECTOR + 17, 1))
    write_at(path, 2048 * SECTOR, known_bytes(4096, 2))
    return path, disk_lines(path, True, table["partitions"][0]["start"])


def make_gpt_damaged(work):
    """The GPT disk with one byte of partition 2's name changed: the entry
    array's CRC no longer holds, so only the protective MBR counts."""
    path, _ = make_gpt(work)
    os.rename(path, path + ".bad")
    path += ".bad"
    entries = 2 * SECTOR + 128  # LBA 2, entry 2
    byte = open(path, "rb").read()[entries + 56 + 2]
    write_at(path, entries + 56 + 2, bytes([byte ^ 0x20]))
    mbr = open(path, "rb").read(SECTOR)
    assert mbr[446 + 4] == 0xEE, "sfdisk wrote no protective MBR"
    return path, disk_lines(path, False, int.from_bytes(mbr[446 + 8:446 + 12], "little"))


def make_mbr(work):
    path = os.path.join(work, "mbr.img")
    with open(path, "wb") as f:
        f.truncate(2 << 20)
    table = sfdisk(path, "label: dos\nstart=100, size=1000, type=83\nstart=1200, type=83\n")
    write_at(path, 1 * SECTOR, known_bytes(60 * SECTOR, 3))
    return path, disk_lines(path, False, table["partitions"][0]["start"])


def make_blank(work):
    """Smaller than the 64 sectors the guest reads, no partition table."""
    path = os.path.join(work, "blank.img")
    with open(path, "wb") as f:
        f.write(bytes(SECTOR) + known_bytes(39 * SECTOR, 4))
    return path, disk_lines(path, False, "none")


def run(args, argv, expected, name):
    cmd = [args.nimbus] + argv + ["--serial", "tty", "--console", "off", "--memory", "size=128M"]
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=args.timeout)
        out, err, rc = p.stdout.decode("latin-1"), p.stderr.decode("utf-8", "replace"), p.returncode
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode("latin-1")
        err, rc = (e.stderr or b"").decode("utf-8", "replace"), "timeout"
    got = [line.rstrip("\r") for line in out.splitlines() if line.startswith("PROBE")]
    bad = []
    if rc != 0:
        bad.append("exit status %s" % rc)
    bad += ["sanitizer: " + m for m in SANITIZER_MARKS if m in err]
    if got != expected:
        bad.append("PROBE lines differ")
    print("%s: %s" % (name, "ok" if not bad else "FAIL: " + "; ".join(bad)), flush=True)
    if bad:
        print("  command: " + " ".join(cmd))
        print("  expected:\n    " + "\n    ".join(expected))
        print("  got:\n    " + "\n    ".join(got))
        print("  stderr:\n    " + "\n    ".join(err.strip().splitlines()[-20:]))
    return not bad


def firmware_cases(args, work):
    ok = True
    no_boot_info = ["PROBE cmdline=", "PROBE initrd none"]
    for make in (make_gpt, make_gpt_damaged, make_mbr, make_blank):
        path, lines = make(work)
        ok &= run(args, ["--firmware", args.guest, "--disk", "path=%s,serial=%s" % (path, SERIAL)],
                  no_boot_info + lines + ["PROBE DONE"], "firmware " + make.__name__[5:])
    ok &= run(args, ["--firmware", args.guest],
              no_boot_info + ["PROBE disk none", "PROBE DONE"], "firmware no disk")
    return ok


def kernel_cases(args, work):
    initrd = os.path.join(work, "initrd.bin")
    data = known_bytes(100003, 5)  # odd size: the CRC's unaligned tail counts too
    with open(initrd, "wb") as f:
        f.write(data)
    cmdline = "a b=c"
    path, lines = make_gpt(work)
    ok = run(args, ["--kernel", args.guest, "--initramfs", initrd, "--cmdline", cmdline],
             ["PROBE cmdline=" + cmdline,
              "PROBE initrd size=%d crc32=%s" % (len(data), crc(data)),
              "PROBE disk none", "PROBE DONE"], "kernel initrd+cmdline")
    ok &= run(args, ["--kernel", args.guest, "--initramfs", initrd, "--cmdline", cmdline,
                     "--disk", "path=%s,serial=%s" % (path, SERIAL)],
              ["PROBE cmdline=" + cmdline,
               "PROBE initrd size=%d crc32=%s" % (len(data), crc(data))] + lines + ["PROBE DONE"],
              "kernel initrd+cmdline+disk")
    return ok


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nimbus", required=True)
    p.add_argument("--guest", required=True, help="probe.elf")
    p.add_argument("--timeout", type=int, default=60, help="seconds per VM")
    p.add_argument("--keep", action="store_true", help="keep the disk images")
    p.add_argument("suite", choices=("firmware", "kernel"))
    args = p.parse_args()
    for path in (args.nimbus, args.guest):
        if not os.path.exists(path):
            p.error("%s does not exist" % path)
    gate = kvm_gate("test_probe")
    if gate is not None:
        return gate
    if not shutil.which("sfdisk"):
        print("test_probe: sfdisk not found (Debian package fdisk, ci/install-deps.sh)")
        return 1
    work = tempfile.mkdtemp(prefix="probe-")
    try:
        ok = (firmware_cases if args.suite == "firmware" else kernel_cases)(args, work)
    finally:
        if args.keep:
            print("kept: " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
