#!/usr/bin/python3
"""Write the hand-made seed inputs of every fuzz target into fuzz/corpus/.

Seeds are small, readable starting points (one device feature each); the
committed corpus is these plus what campaigns found, minimised with
`ci/fuzz.sh --merge`.  Re-running this script rewrites only the seed-* files.

  fuzz/tools/gen_seeds.py [--build-dir BUILD]

With --build-dir (a normal, non-sanitized build tree), every plugin except
the virtio ones gets generated seeds too, so a new plugin needs no edit here:
  fuzz_options_<name>  from its descriptor's `options` text;
  fuzz_restore_<name>  the final device states of its fuzz_plugin_<name>
                       corpus (NIMBUS_FUZZ_DUMP_STATE), plus damaged copies.
"""
import argparse
import ctypes
import glob
import os
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "corpus")

# ---- generic plugin op stream (fuzz/common/plugin_target.c) ----------------
(OP_READ, OP_WRITE, OP_WRITE_REPEAT, OP_READ_REPEAT, OP_RAM_FILL, OP_CHR_INPUT,
 OP_FD_READY, OP_ADVANCE, OP_FIRE_NEXT, OP_SAVE_RESTORE, OP_RESET, OP_CHR_MODE,
 OP_WALLCLOCK, OP_SAVE_SLOT, OP_RESTORE_SLOT, OP_WRITE_READ) = range(16)
LOG2 = {1: 0, 2: 1, 4: 2, 8: 3}


def acc(region, off, ln):
    return bytes([region | (LOG2[ln] << 3)]) + struct.pack("<H", off)


def rd(region, off, ln=1):
    return bytes([OP_READ]) + acc(region, off, ln)


def wr(region, off, val, ln=1):
    return bytes([OP_WRITE]) + acc(region, off, ln) + val.to_bytes(ln, "little")


def wrep(region, off, n, val, ln=1):
    return bytes([OP_WRITE_REPEAT]) + acc(region, off, ln) + bytes([n - 1]) + val.to_bytes(ln, "little")


def rrep(region, off, n, ln=1):
    return bytes([OP_READ_REPEAT]) + acc(region, off, ln) + bytes([n - 1])


def wrrd(region, off, val, ln=1):
    return bytes([OP_WRITE_READ]) + acc(region, off, ln) + val.to_bytes(ln, "little")


def chr_in(data):
    return bytes([OP_CHR_INPUT, len(data)]) + data


def advance(ns):
    e = max(0, ns.bit_length() - 8)
    m = max(0, min(255, (ns >> e) - 1))
    return bytes([OP_ADVANCE, e, m])


def fire():
    return bytes([OP_FIRE_NEXT])


def save_restore():
    return bytes([OP_SAVE_RESTORE])


def reset():
    return bytes([OP_RESET])


def chr_mode(m):
    return bytes([OP_CHR_MODE, m])


def wallclock(seconds):
    return bytes([OP_WALLCLOCK]) + struct.pack("<i", seconds)


def slot_save():
    return bytes([OP_SAVE_SLOT])


def slot_restore():
    return bytes([OP_RESTORE_SLOT])


def generic_probe(nregions):
    """Device-agnostic: read, write-then-read and poke every small offset."""
    seeds = {}
    seeds["read-all"] = b"".join(rd(r, o) for r in range(nregions) for o in range(16))
    seeds["write-read-ff"] = b"".join(wrrd(r, o, 0xff) for r in range(nregions) for o in range(16))
    seeds["write-read-55"] = b"".join(wrrd(r, o, 0x55) for r in range(nregions) for o in range(16))
    seeds["wide"] = b"".join(rd(r, 0, 2) + rd(r, 0, 4) + wr(r, 0, 0, 4) for r in range(nregions))
    seeds["host-events"] = (chr_in(b"hello\r\n") + advance(10**6) + fire() +
                            save_restore() + slot_save() + reset() + slot_restore() +
                            chr_mode(2) + chr_in(b"x") + chr_mode(0) + wallclock(3600))
    return seeds


# ---- per-device op seeds -----------------------------------------------------
def uart_generic():
    s = {}
    # Linux 8250 probe + setup: divisor, 8N1, FIFOs, OUT2, all interrupts.
    s["linux-setup"] = (wr(0, 3, 0x80) + wr(0, 0, 1) + wr(0, 1, 0) + wr(0, 3, 0x03) +
                        wr(0, 2, 0xc7) + wr(0, 4, 0x0b) + wr(0, 1, 0x0f) +
                        rd(0, 2) + rd(0, 5) + rd(0, 6) + wr(0, 0, 0x41) + rd(0, 2))
    s["rx-fifo"] = (wr(0, 2, 0xc1) + wr(0, 4, 0x08) + wr(0, 1, 0x05) +
                    chr_in(b"0123456789abcdefXYZ") + rd(0, 2) + rd(0, 5) +
                    rrep(0, 0, 8) + advance(5 * 10**6) + fire() + rd(0, 2) + rrep(0, 0, 12) + rd(0, 5))
    s["rx-overrun"] = (chr_in(b"ab") + rd(0, 5) + wr(0, 2, 0x01) + chr_in(b"0123456789abcdefgh") +
                       wr(0, 1, 0x04) + rd(0, 2) + rd(0, 5) + save_restore() + rrep(0, 0, 17))
    s["loopback"] = (wr(0, 4, 0x1f) + rd(0, 6) + wr(0, 2, 0x07) + wrep(0, 0, 20, 0x5a) +
                     rd(0, 5) + rrep(0, 0, 20) + wr(0, 4, 0x00) + rd(0, 6) + chr_in(b"q"))
    s["thr-irq"] = (wr(0, 4, 0x08) + wr(0, 1, 0x02) + rd(0, 2) + wr(0, 0, 0x42) +
                    rd(0, 2) + chr_mode(3) + wr(0, 0, 0x43) + chr_mode(2) + wr(0, 0, 0x44) +
                    wr(0, 1, 0x08) + wr(0, 4, 0x1b) + rd(0, 2) + rd(0, 6) + reset())
    s["timeout-baud"] = (wr(0, 3, 0x83) + wr(0, 0, 0) + wr(0, 1, 0) + wr(0, 3, 0x1f) +
                         wr(0, 2, 0xc1) + wr(0, 1, 0x01) + wr(0, 4, 0x08) + chr_in(b"z") +
                         advance(10**9) + rd(0, 2) + slot_save() + rd(0, 0) + slot_restore())
    return s


def i8042_generic():
    D, C = 0, 1  # region 0 = data port 0x60, region 1 = status/command 0x64
    s = {}
    s["selftest"] = wr(C, 0, 0xaa) + rd(C, 0) + rd(D, 0) + wr(C, 0, 0xab) + rd(D, 0)
    s["ctr-rw"] = (wr(C, 0, 0x20) + rd(D, 0) + wr(C, 0, 0x60) + wr(D, 0, 0x47) +
                   wr(C, 0, 0x20) + rd(C, 0) + rd(D, 0))
    s["ports"] = (wr(C, 0, 0xad) + wr(C, 0, 0xa7) + wr(C, 0, 0xa9) + rd(D, 0) + wr(C, 0, 0xae) +
                  wr(C, 0, 0xa8) + wr(C, 0, 0xa4) + rd(D, 0) + wr(C, 0, 0xe0) + rd(D, 0))
    s["outport"] = (wr(C, 0, 0xd0) + rd(D, 0) + wr(C, 0, 0xd1) + wr(D, 0, 0xdf) +
                    wr(C, 0, 0xd0) + rd(D, 0) + wr(C, 0, 0xd1) + wr(D, 0, 0xce))
    s["echo-aux"] = (wr(C, 0, 0x60) + wr(D, 0, 0x43) + wr(C, 0, 0xd2) + wr(D, 0, 0x11) +
                     wr(C, 0, 0xd3) + wr(D, 0, 0x22) + wr(C, 0, 0xd4) + wr(D, 0, 0xf4) +
                     rd(C, 0) + rd(D, 0) + rd(C, 0) + rd(D, 0) + save_restore() + rrep(D, 0, 4))
    s["kbd-cmd"] = (wr(D, 0, 0xff) + rd(D, 0) + wrep(D, 0, 10, 0xf4) + rd(C, 0) +
                    wr(C, 0, 0x60) + wr(D, 0, 0x01) + slot_save() + wr(C, 0, 0x21) + slot_restore())
    s["reset-line"] = wr(C, 0, 0xfe) + wr(C, 0, 0xf0) + wr(C, 0, 0xff)
    return s


def cmos_generic():
    def reg_w(r, v):
        return wr(0, 0, r) + wr(0, 1, v)

    def reg_r(r):
        return wr(0, 0, r) + rd(0, 1)
    s = {}
    s["read-clock"] = b"".join(reg_r(r) for r in (0, 2, 4, 6, 7, 8, 9, 0x0a, 0x0b, 0x0c, 0x0d, 0x32))
    s["set-time"] = (reg_w(0x0b, 0x82) + reg_w(0, 0x30) + reg_w(2, 0x59) + reg_w(4, 0x23) +
                     reg_w(7, 0x31) + reg_w(8, 0x12) + reg_w(9, 0x99) + reg_w(0x32, 0x20) +
                     reg_w(0x0b, 0x02) + advance(2 * 10**9) + reg_r(0) + reg_r(4))
    s["binary-12h"] = (reg_w(0x0b, 0x84) + reg_w(4, 0x8c) + reg_w(0x0b, 0x04) + reg_r(4) +
                       reg_w(0x0b, 0x06) + reg_r(4) + wallclock(-86400 * 400) + reg_r(9))
    s["periodic"] = (reg_w(0x0a, 0x26) + reg_w(0x0b, 0x42) + advance(10**6) + fire() +
                     reg_r(0x0c) + fire() + reg_r(0x0c) + save_restore() + reg_w(0x0a, 0x23) + fire())
    s["alarm-update"] = (reg_w(1, 0xff) + reg_w(3, 0xff) + reg_w(5, 0xff) + reg_w(0x0b, 0x32) +
                         advance(3 * 10**9) + fire() + reg_r(0x0c) + reg_r(0x0a) + slot_save() +
                         advance(10**9) + slot_restore() + reg_r(0x0c))
    s["nvram"] = (b"".join(reg_w(r, r ^ 0xa5) for r in range(0x0e, 0x80, 7)) +
                  b"".join(reg_r(r) for r in range(0x0e, 0x80, 7)) + reg_w(0x80 | 0x10, 1) + reg_r(0xff))
    s["divider"] = (reg_w(0x0a, 0x70) + reg_r(0x0a) + advance(10**9) + reg_w(0x0a, 0x20) +
                    advance(500 * 10**6) + reg_r(0x0a) + reg_r(0))
    return s


def testbug_generic():
    # Benign: every feature except the unlock sequence (that one is the bug).
    s = {}
    s["scratch"] = wr(0, 0, 0x11223344, 4) + rd(0, 0, 8) + wr(0, 8, 3) + wr(0, 9, 0x77) + rd(0, 9)
    s["irq-pulse"] = wr(0, 0xe, 0x83) + wr(0, 9, 0x41) + advance(2000) + rd(0, 0xe)
    s["key-a-only"] = wr(0, 0xa, 0x4e) + wr(0, 8, 0x1f) + wr(0, 0xc, 0x41)
    s["host"] = chr_in(b"k") + rd(0, 0xf) + save_restore() + reset()
    return s


# ---- fuzz_uart16550 (fuzz/harness/uart16550.c) -------------------------------
def u_w(reg, v):
    return bytes([reg, v])


def u_r(reg, n=1):
    return bytes([reg | (2 << 3), n - 1])


def u_in(data):
    return bytes([4 << 3, len(data)]) + data


def u_adv(arg, scale):
    return bytes([(5 << 3) | (scale << 6), arg])


def u_ctl(which, arg=0):
    return bytes([which | (6 << 3), arg])


def u_dlab(reg, v):
    return bytes([reg | (7 << 3), v])


def uart_structured():
    s = {}
    s["init"] = (u_dlab(0, 1) + u_dlab(1, 0) + u_w(3, 3) + u_w(2, 0xc7) + u_w(4, 0x0b) +
                 u_w(1, 0x0f) + u_ctl(6) + u_w(0, 0x41) + u_w(7, 0x5a) + u_r(7))
    s["rx"] = (u_w(2, 0xc1) + u_w(4, 0x08) + u_w(1, 0x01) + u_in(b"0123456789abcdefg") +
               u_r(2) + u_r(5) + u_ctl(5, 20) + u_adv(50, 2) + u_r(2))
    s["loop"] = (u_w(4, 0x10) + u_r(6) + u_ctl(4, 20) + u_r(5) + u_ctl(5, 25) + u_w(4, 0) + u_r(6))
    s["state"] = (u_w(1, 0x02) + u_w(4, 0x08) + u_in(b"ab") + u_ctl(0) + u_ctl(3, 1) +
                  u_w(0, 0x31) + u_ctl(1) + u_ctl(2) + u_ctl(7, 3))
    return s


# ---- fuzz_cli -----------------------------------------------------------------
def cli_seeds():
    def argv(*a):
        return b"\0".join(x.encode() for x in a)
    seeds = {
        "minimal": argv("--kernel", "/dev/null"),
        "full": argv("--kernel", "/dev/null", "--initramfs=/dev/null", "--cmdline",
                     "console=ttyS0 quiet", "--cpus", "boot=2,max=2,topology=1:2:1:1,max_phys_bits=40",
                     "--memory", "size=1G,shared=on,hugepages=off,prefault=off,mergeable=on,thp=off",
                     "--serial", "tty", "--console", "off", "-vv", "--log-file", "/tmp/nimbus-fuzz-never.log"),
        "devices": argv("--kernel", "/dev/null", "--disk", "path=/dev/null,readonly=on,direct=off,"
                        "num_queues=2,queue_size=128,id=d0,serial=ABC",
                        "path=/dev/zero,readonly=on,id=\"d,1\"", "--rng", "src=/dev/urandom",
                        "--device", "plugin=uart16550,iobase=0x2f8,irq=3", "plugin=[a,b],x=\"1,2\"",
                        "--plugin-dir", "/tmp"),
        "help": argv("--help"),
        "version": argv("-V"),
        "errors": argv("--memory", "size=12Q", "--cpus", "boot=0", "--bogus", "--kernel"),
        "sizes": argv("--memory=size=4096K", "512M", "2G", "1T", "0x1000", "18446744073709551615"),
        "serial-file": argv("--kernel", "/dev/null", "--serial", "file=/nonexistent-dir/x", "--rng"),
        # --net is only parsed here: taps are opened while building a VM, never by cli_parse.
        "net-tap": argv("--kernel", "/dev/null", "--net",
                        "tap=,mac=52:54:00:12:34:56,ip=192.168.249.1,mask=255.255.255.0",
                        "tap=vmtap7,host_mac=52:54:00:ab:cd:ef,mtu=9000,num_queues=4,"
                        "queue_size=1024,id=n0,offload_tso=off,offload_ufo=on,offload_csum=off"),
        "net-fd": argv("--kernel", "/dev/null", "--net=fd=[3,4],num_queues=4", "--net", "fd=5",
                       "tap=,fd=[6,7,8]"),
        "net-user": argv("--kernel", "/dev/null", "--net",
                         "user=on,hostfwd=[tcp:127.0.0.1:2222-:22,udp::5353-10.0.2.15:53],"
                         "mac=52:00:00:00:00:01,id=u0,queue_size=64", "user=on,hostfwd=::8080-:80"),
        "net-errors": argv("--kernel", "/dev/null", "--net", "mac=01:00:5e:00:00:01",
                           "ip=10.0.0.1,mask=255.0.255.0", "fd=[3,x],num_queues=3",
                           "user=on,tap=t0,hostfwd=sctp::0-:99999"),
        "landlock": argv("--kernel", "/tmp/k", "--landlock", "--landlock-rules", "path=/a,access=rw",
                         "path=/b,access=r"),
        "device-help": argv("--device", "help", "--plugin-dir", "/tmp"),
        "seccomp-monitor": argv("--kernel", "/dev/null", "--seccomp", "log", "--event-monitor",
                                "path=/tmp/nimbus-fuzz-never.events", "--api-socket", "fd=3"),
        "disk-types": argv("--kernel", "/dev/null", "--disk",
                           "path=/dev/null,image_type=qcow2,backing_files=on", "path=/dev/null,image_type=raw"),
        "hugepages-pty": argv("--kernel", "/dev/null", "--memory", "size=4M,hugepages=on", "--serial", "pty"),
    }
    # cli_parse stops at the first error: one seed per refusal.
    refusals = [("--event-monitor", ""), ("--event-monitor", "path=/a,fd=3"), ("--event-monitor", "fd=x"),
                ("--seccomp", "maybe"), ("--landlock-rules", "access=rw"), ("--landlock-rules", "path=/a,access=q"),
                ("--memory", "size=129M,hugepages=on"), ("--event-monitor", "fd=999"),
                ("--event-monitor", "bogus=1"), ("--landlock-rules", "path=/a"),
                ("--landlock-rules", "path=/a,access=w"), ("--net", "tap=bad/name"), ("--net", 'id="a,b"'),
                ("--net", "ip=1.2.3.999"), ("--net", "fd=[3,x]"), ("--net", "fd=3,hostfwd=tcp::1-:1"),
                ("--net", "tap=a,fd=3"), ("--net", "queue_size=96"), ("--net", "user=on,hostfwd=tcp::1:2"),
                ("--net", "user=on,hostfwd=[%s]" % ",".join("tcp::%d-:1" % i for i in range(1, 18))), ("--console", "socket=/tmp/c.sock"),
                ("--disk", "path=/dev/null,image_type=vhdx"), ("--disk", "path=/dev/null,backing_files=on"),
                ("--net", "mask=255.0.0.0"), ("--net", "ip=10.0.0.1,mask=255.0.255.0"), ("--net", "fd=[3,,4]"),
                ("--net", "fd=[%s]" % ",".join(str(i) for i in range(3, 20))), ("--net", "fd=[3,3]"),
                ("--net", "user=on,hostfwd=[tcp::1-:1,,udp::2-:2]"), ("--net", "user=on,num_queues=4"),
                ("--net", "user=on,tap=t0"), ("--net", "num_queues=3")]
    for i, (opt, val) in enumerate(refusals):
        seeds["refuse-%02d" % i] = argv("--kernel", "/dev/null", opt, val)
    seeds["refuse-no-kernel"] = argv("--memory", "size=64M")
    seeds["refuse-dup-id"] = argv("--kernel", "/dev/null", "--net", "id=n0", "id=n0")
    return seeds


# ---- fuzz_kernel_loader ----------------------------------------------------------
def loader_input(kernel, initrd=b"", cmdline=b"", flags=0):
    return struct.pack("<IHBB", len(initrd), len(cmdline), flags, 0) + cmdline + initrd + kernel


def elf_pvh(entry_size=4, via_sections=False, paddr=0x100000):
    ehdr_size, phdr_size = 64, 56
    note = struct.pack("<III", 4, entry_size, 18) + b"Xen\0" + (
        struct.pack("<I", paddr) if entry_size == 4 else struct.pack("<Q", paddr))
    phnum = 1 if via_sections else 2
    note_off = ehdr_size + phnum * phdr_size
    code_off = note_off + len(note)
    code = b"\xf4" * 16  # hlt
    sh_off = code_off + len(code) if via_sections else 0
    total = code_off + len(code) + (2 * 64 if via_sections else 0)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    ehdr = ident + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, paddr, ehdr_size, sh_off, 0,
                               ehdr_size, phdr_size, phnum, 64, 2 if via_sections else 0, 0)
    load = struct.pack("<IIQQQQQQ", 1, 5, 0, paddr, paddr, total, 0x2000, 0x1000)
    ph = load
    if not via_sections:
        ph += struct.pack("<IIQQQQQQ", 4, 4, note_off, 0, 0, len(note), len(note), 4)
    body = ehdr + ph + note + code
    if via_sections:
        null_sh = bytes(64)
        note_sh = struct.pack("<IIQQQQIIQQ", 0, 7, 0, 0, note_off, len(note), 0, 0, 4, 0)
        body += null_sh + note_sh
    return body


def bzimage(syssize_units=2, relocatable=1, pref=0x1000000, init_size=0x200000):
    img = bytearray(1024 + syssize_units * 16)
    img[0x1f1] = 1  # setup_sects: 1 sector of setup code + boot sector
    struct.pack_into("<I", img, 0x1f4, syssize_units)
    struct.pack_into("<H", img, 0x1fe, 0xaa55)
    img[0x200:0x202] = b"\xeb\x66"
    img[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", img, 0x206, 0x020f)
    img[0x211] = 0x01  # LOADED_HIGH
    struct.pack_into("<I", img, 0x22c, 0x37ffffff)
    struct.pack_into("<I", img, 0x230, 0x200000)
    img[0x234] = relocatable
    struct.pack_into("<H", img, 0x236, 0x0001)  # XLF_KERNEL_64
    struct.pack_into("<I", img, 0x238, 2047)
    struct.pack_into("<Q", img, 0x258, pref)
    struct.pack_into("<I", img, 0x260, init_size)
    img[1024:] = b"\x90" * (syssize_units * 16)
    return bytes(img)


def loader_seeds():
    return {
        "elf-pvh": loader_input(elf_pvh(), cmdline=b"console=ttyS0"),
        "elf-pvh-initrd": loader_input(elf_pvh(8), initrd=b"070701" + bytes(122), cmdline=b"root=/dev/ram0"),
        "elf-sections": loader_input(elf_pvh(via_sections=True), flags=1),
        "bzimage": loader_input(bzimage(), cmdline=b"console=ttyS0 earlyprintk"),
        "bzimage-initrd": loader_input(bzimage(relocatable=0), initrd=bytes(range(256)) * 4),
        "bzimage-low-pref": loader_input(bzimage(pref=0x10000), flags=2),
        "garbage": loader_input(b"MZ" + bytes(100)),
    }


# ---- fuzz_virtqueue (fuzz/harness/virtqueue.c) -----------------------------------
VQ_POP, VQ_PUSH, VQ_NOTIFY, VQ_MEM, VQ_DESC, VQ_AVAIL, VQ_IDX, VQ_RESTART, VQ_SUPPRESS, VQ_TABLE = range(10)
D_NEXT, D_WRITE, D_INDIRECT = 1, 2, 4


def vq_header(log2_size, event_idx=0, desc=0x1000, avail=0x2000, used=0x3000):
    return struct.pack("<BBHHH", log2_size, event_idx, desc // 16, avail // 2, used // 4)


def vq_desc(i, addr, ln, flags=0, nxt=0):
    return struct.pack("<BHIIBH", VQ_DESC, i, addr, ln, flags, nxt)


def vq_avail(head):
    return struct.pack("<BH", VQ_AVAIL, head)


def vq_pop(cap=16):
    return bytes([VQ_POP, cap])


def vq_push(sel=0, written=0):
    return struct.pack("<BBI", VQ_PUSH, sel, written)


def vq_push_raw(head, written=0):
    return struct.pack("<BBHI", VQ_PUSH, 0x80, head, written)


def vq_notify():
    return bytes([VQ_NOTIFY])


def vq_table(gpa, entries):
    out = struct.pack("<BHB", VQ_TABLE, gpa, len(entries))
    for addr, ln, flags, nxt in entries:
        out += struct.pack("<IHBB", addr, ln, flags, nxt)
    return out


def vq_used_event(v):
    return struct.pack("<BBH", VQ_SUPPRESS, 1, v)


def vq_avail_flags(v):
    return struct.pack("<BBH", VQ_SUPPRESS, 0, v)


def virtqueue_seeds():
    s = {}
    s["simple"] = (vq_header(3) + vq_desc(0, 0x8000, 64, D_NEXT, 1) + vq_desc(1, 0x9000, 128, D_WRITE) +
                   vq_avail(0) + vq_pop() + vq_push(0, 100) + vq_notify() + vq_pop())
    s["batch-wrap"] = vq_header(2) + b"".join(
        vq_desc(i % 4, 0x8000 + 64 * i, 64, D_WRITE) + vq_avail(i % 4) + vq_pop() + vq_push(0, 8) +
        (vq_notify() if i % 3 == 0 else b"") for i in range(12))
    s["event-idx"] = (vq_header(3, 1) + vq_pop() + b"".join(vq_desc(i, 0x8000, 16, D_WRITE) + vq_avail(i)
                      for i in range(4)) + vq_pop() * 4 + vq_used_event(0) + vq_push(0) + vq_notify() +
                      vq_push(0) + vq_notify() + vq_used_event(3) + vq_push(0) + vq_push(0) + vq_notify())
    s["no-interrupt"] = (vq_header(1) + vq_avail_flags(1) + vq_desc(0, 0x8000, 8) + vq_avail(0) + vq_pop() +
                         vq_push() + vq_notify() + vq_avail_flags(0) + vq_avail(0) + vq_pop() + vq_push() + vq_notify())
    s["indirect"] = (vq_header(3) + vq_table(0x6000, [(0x8000, 16, D_NEXT, 1), (0x8100, 32, D_NEXT | D_WRITE, 2),
                                                      (0x8200, 32, D_WRITE, 0)]) +
                     vq_desc(0, 0x6000, 48, D_INDIRECT) + vq_avail(0) + vq_pop() + vq_push(0, 64) + vq_notify())
    s["too-long"] = (vq_header(3) + b"".join(vq_desc(i, 0x8000, 8, D_NEXT, i + 1) for i in range(3)) +
                     vq_desc(3, 0x8000, 8) + vq_avail(0) + vq_pop(2) + vq_avail(0) + vq_pop(4))
    s["zero-len"] = (vq_header(2) + vq_desc(0, 0xffffff00, 0, D_NEXT, 1) + vq_desc(1, 0x8000, 8, D_WRITE) +
                     vq_avail(0) + vq_pop())
    s["loop"] = vq_header(3) + vq_desc(0, 0x8000, 8, D_NEXT, 1) + vq_desc(1, 0x8000, 8, D_NEXT, 0) + vq_avail(0) + vq_pop() + vq_pop()
    s["outside-ram"] = vq_header(3) + vq_desc(0, 0xfff0, 0x20) + vq_avail(0) + vq_pop()
    s["write-then-read"] = vq_header(3) + vq_desc(0, 0x8000, 8, D_WRITE | D_NEXT, 1) + vq_desc(1, 0x8000, 8) + vq_avail(0) + vq_pop()
    s["nested-indirect"] = (vq_header(3) + vq_table(0x6000, [(0x6000, 16, D_INDIRECT, 0)]) +
                            vq_desc(0, 0x6000, 16, D_INDIRECT) + vq_avail(0) + vq_pop())
    s["indirect-next"] = (vq_header(3) + vq_table(0x6000, [(0x8000, 16, 0, 0)]) +
                          vq_desc(0, 0x6000, 16, D_INDIRECT | D_NEXT, 1) + vq_avail(0) + vq_pop())
    s["indirect-bad-len"] = vq_header(3) + vq_desc(0, 0x6000, 24, D_INDIRECT) + vq_avail(0) + vq_pop()
    s["head-range"] = vq_header(3) + vq_avail(8) + vq_pop()
    s["idx-race"] = vq_header(3) + bytes([VQ_IDX]) + struct.pack("<H", 9) + vq_pop()
    s["push-unknown"] = vq_header(3) + vq_push_raw(3) + vq_push_raw(0xffff) + vq_desc(0, 0x8000, 8) + vq_avail(0) + vq_pop() + vq_push() + vq_push_raw(0)
    s["restart"] = (vq_header(3) + vq_desc(0, 0x8000, 8, D_NEXT, 0) + vq_avail(0) + vq_pop() +
                    bytes([VQ_RESTART, 1]) + vq_desc(0, 0x8000, 8) + vq_avail(0) + vq_pop())
    s["misaligned"] = vq_header(3, 2, 0x1008, 0x2001, 0x3002) + vq_pop()
    s["rings-past-ram"] = vq_header(8, 0, 0xff00, 0x2000, 0x3000) + vq_pop()
    # flags bit 2: the input ends with vq_fini (after vq_save) instead of vq_reset
    s["fini-in-flight"] = (vq_header(3, 4) + vq_desc(0, 0x8000, 8, D_WRITE) + vq_avail(0) + vq_pop())
    return s


# ---- fuzz_virtio_<plugin> (fuzz/harness/virtio_generic.c) ------------------------
(V_CFG_READ, V_CFG_WRITE, V_ADD, V_KICK, V_USED, V_RAW_RING, V_POLL, V_ADVANCE, V_FIRE, V_RESET,
 V_SAVE_RESTORE, V_CHR_INPUT, V_CHR_MODE, V_WAIT, V_REQUEST, V_RAM_WRITE) = range(16)
F_VERSION_1, F_EVENT_IDX, F_INDIRECT = 1 << 32, 1 << 29, 1 << 28
V_NO_KICK, V_INDIRECT = 0x10, 0x08


def v_header(features, qsel=4):
    return struct.pack("<QB", features, qsel)


def v_seg_fresh(ln, write=False, fill=b""):
    out = struct.pack("<BH", 4 if write else 0, ln)
    if not write:
        out += fill.ljust(min(ln, 64), b"\0")[:min(ln, 64)]
    return out


def v_seg_raw(gpa, ln, write=False):
    return struct.pack("<BHI", 1 | (4 if write else 0), ln, gpa)


def v_seg_ring(queue, which, off, ln):
    return struct.pack("<BHB", 2 | (queue << 3) | {"desc": 0, "avail": 0x40, "used": 0x80}[which], ln, off)


def v_add(queue, segs, shape=0):
    return struct.pack("<BBB", V_ADD, queue, (len(segs) - 1) | shape) + b"".join(segs)


def v_kick(queue):
    return bytes([V_KICK, queue])


def v_cfg_read(off, ln):
    return bytes([V_CFG_READ, off, LOG2[ln]])


def v_cfg_write(off, val, ln):
    return bytes([V_CFG_WRITE, off, LOG2[ln]]) + val.to_bytes(ln, "little")


def v_request(queue, hdr, sectors=1, write_data=True):
    return struct.pack("<BBB", V_REQUEST, queue, (sectors - 1) | (8 if write_data else 0)) + hdr.ljust(16, b"\0")


def v_reset(flip=0xff, qsel=4):
    return bytes([V_RESET, flip, qsel])


def v_raw_ring(queue, which, off, data):
    return struct.pack("<BBBHB", V_RAW_RING, queue, which, off, len(data)) + data


def v_advance(ns):
    e = max(0, ns.bit_length() - 8)
    m = max(0, min(255, (ns >> e) - 1))
    return bytes([V_ADVANCE, e, m])


def v_chr_in(data):
    return bytes([V_CHR_INPUT, len(data)]) + data


V_WAIT_USED = bytes([V_WAIT, V_USED])


def virtio_common(config_size):
    s = {}
    feats = F_VERSION_1 | F_EVENT_IDX | F_INDIRECT | 0xffffff
    s["config"] = v_header(feats) + b"".join(v_cfg_read(o, 1) for o in range(0, min(config_size, 64))) + \
        b"".join(v_cfg_read(o, 4) for o in range(0, min(config_size, 64), 4)) + v_cfg_read(0, 8)
    s["hostile-chains"] = (v_header(feats) + v_add(0, [v_seg_raw(0xfffff000, 4096)]) + V_WAIT_USED + v_reset() +
                           v_add(0, [v_seg_fresh(16, True), v_seg_fresh(16)]) + V_WAIT_USED + v_reset() +
                           v_add(0, [v_seg_ring(0, "used", 0, 64, ), v_seg_ring(0, "desc", 0, 32)]) + V_WAIT_USED)
    s["ring-scribble"] = (v_header(F_VERSION_1) + v_add(0, [v_seg_fresh(64, True)], V_NO_KICK) +
                          v_raw_ring(0, 1, 2, b"\x40\x00") + v_kick(0) + V_WAIT_USED + v_reset(29) +
                          v_raw_ring(0, 0, 12, b"\x01\x00\x05\x00") + v_add(0, [v_seg_fresh(8, True)]) + V_WAIT_USED)
    s["reset-cycle"] = (v_header(feats, 1) + v_add(0, [v_seg_fresh(512, True)]) + v_reset(29, 6) +
                        v_add(0, [v_seg_fresh(512, True)], V_INDIRECT) + bytes([V_SAVE_RESTORE]) + V_WAIT_USED +
                        v_reset(28, 3) + v_advance(10**9) + bytes([V_FIRE, V_POLL, 1]))
    return s


def blk_seeds():
    def hdr(t, sector=0):
        return struct.pack("<IIQ", t, 0, sector)
    feats = F_VERSION_1 | F_EVENT_IDX | F_INDIRECT | 0xffffff
    s = {}
    s["read"] = v_header(feats) + v_request(0, hdr(0, 0)) + v_request(1, hdr(0, 2040), 8) + V_WAIT_USED
    s["write-read"] = (v_header(feats) + v_request(0, hdr(1, 8), 2, False) + V_WAIT_USED +
                       v_request(0, hdr(0, 8), 2) + V_WAIT_USED)
    s["flush-id"] = (v_header(feats) + v_request(0, hdr(4)) +
                     v_add(0, [v_seg_fresh(16, fill=hdr(8)), v_seg_fresh(20, True), v_seg_fresh(1, True)]) +
                     V_WAIT_USED)
    dwz = struct.pack("<QII", 16, 8, 1)
    s["discard-wz"] = (v_header(feats) +
                       v_add(0, [v_seg_fresh(16, fill=hdr(11)), v_seg_fresh(16, fill=dwz), v_seg_fresh(1, True)]) +
                       v_add(0, [v_seg_fresh(16, fill=hdr(13)), v_seg_fresh(16, fill=dwz), v_seg_fresh(1, True)]) +
                       V_WAIT_USED)
    s["bad-requests"] = (v_header(feats) + v_request(0, hdr(0, 1 << 40)) + v_request(0, hdr(99)) +
                         v_add(0, [v_seg_fresh(8, fill=b"\0" * 8)]) +
                         v_add(0, [v_seg_fresh(16, fill=hdr(1, 2047)), v_seg_fresh(1024), v_seg_fresh(1, True)]) +
                         v_add(0, [v_seg_fresh(16, fill=hdr(0)), v_seg_fresh(100, True), v_seg_fresh(1, True)]) +
                         V_WAIT_USED)
    s["indirect-batch"] = (v_header(feats, 3) + b"".join(
        v_add(i % 2, [v_seg_fresh(16, fill=hdr(0, i)), v_seg_fresh(512, True), v_seg_fresh(1, True)],
              V_INDIRECT | V_NO_KICK) for i in range(6)) + v_kick(0) + v_kick(1) + bytes([V_POLL, 1]) +
        V_WAIT_USED + v_cfg_read(0, 8))
    s["sync-and-reset-midflight"] = (v_header(feats) + v_request(0, hdr(0, 0), 8) + v_request(0, hdr(1, 64), 8, False) +
                                     v_reset() + v_request(0, hdr(0, 0)) + V_WAIT_USED)
    return s


def console_seeds():
    feats = F_VERSION_1 | F_EVENT_IDX | F_INDIRECT | 0xffffff
    s = {}
    s["rx"] = (v_header(feats) + v_add(0, [v_seg_fresh(64, True)]) + v_add(0, [v_seg_fresh(4, True)]) +
               v_chr_in(b"hello world\n") + bytes([V_USED]) + v_chr_in(b"more") + v_add(0, [v_seg_fresh(64, True)]) +
               V_WAIT_USED)
    s["tx"] = (v_header(feats) + v_add(1, [v_seg_fresh(12, fill=b"Linux boot\r\n")]) +
               v_add(1, [v_seg_fresh(5, fill=b"abcde"), v_seg_fresh(3, fill=b"fgh")]) + V_WAIT_USED)
    s["tx-stall"] = (v_header(F_VERSION_1) + bytes([V_CHR_MODE, 2]) + v_add(1, [v_seg_fresh(40, fill=b"x" * 40)]) +
                     bytes([V_CHR_MODE, 1]) + v_kick(1) + bytes([V_CHR_MODE, 0]) + v_advance(10**6) +
                     bytes([V_FIRE]) + V_WAIT_USED + bytes([V_CHR_MODE, 3]) + v_add(1, [v_seg_fresh(3, fill=b"abc")]))
    s["rx-no-buffers"] = v_header(feats) + v_chr_in(b"x" * 200) + v_add(0, [v_seg_fresh(16, True)]) + V_WAIT_USED
    s["config"] = v_header(feats) + v_cfg_read(0, 2) + v_cfg_read(2, 2) + v_cfg_read(4, 4) + v_cfg_write(8, 0x41, 4)
    return s


def rng_seeds():
    feats = F_VERSION_1 | F_EVENT_IDX | F_INDIRECT
    s = {}
    s["fill"] = (v_header(feats) + v_add(0, [v_seg_fresh(64, True)]) + v_add(0, [v_seg_fresh(4096, True)]) +
                 bytes([V_POLL, 1]) + v_advance(10**8) + V_WAIT_USED)
    s["many"] = (v_header(feats, 2) + b"".join(v_add(0, [v_seg_fresh(16 * (i + 1), True)], V_NO_KICK)
                                              for i in range(4)) + v_kick(0) + V_WAIT_USED + bytes([V_FIRE]) + V_WAIT_USED)
    s["readable-only"] = v_header(feats) + v_add(0, [v_seg_fresh(16)]) + v_add(0, [v_seg_fresh(16), v_seg_fresh(16, True)]) + V_WAIT_USED
    # The source is a FIFO holding 4 KiB at the start of each input: drain it
    # (a request with nothing left waits on the fd), feed it (op 11) and
    # poll; end it (op 12 mode 3) and read again.
    drain = v_add(0, [v_seg_fresh(4096, True)]) + v_add(0, [v_seg_fresh(64, True)])
    s["dry-feed"] = (v_header(feats) + drain + bytes([V_POLL, 0]) + v_chr_in(b"\x5a" * 32) +
                     bytes([V_POLL, 0]) + v_add(0, [v_seg_fresh(512, True)]) + v_chr_in(b"\xa5" * 255) +
                     bytes([V_POLL, 1]) + V_WAIT_USED)
    s["dry-reset"] = (v_header(feats) + drain + bytes([V_POLL, 0]) + v_reset() + drain +
                      v_advance(2 * 10**7) + bytes([V_FIRE]) + V_WAIT_USED)
    s["eof"] = (v_header(feats) + bytes([V_CHR_MODE, 3]) + drain + bytes([V_POLL, 0]) +
                v_add(0, [v_seg_fresh(64, True)]) + V_WAIT_USED)
    return s


def net_seeds():
    """Queues rx0 0, tx0 1, rx1 2, tx1 3, ctrl 4; op 11 writes a datagram into a pair's socket."""
    feats = F_VERSION_1 | F_EVENT_IDX | F_INDIRECT | 0xffffff
    s = {}

    def hdr(flags=0, gso=0, hdr_len=0, gso_size=0, cstart=0, coff=0):
        return struct.pack("<BBHHHHH", flags, gso, hdr_len, gso_size, cstart, coff, 0)

    def frame(n, seed=0):
        return b"\xff" * 6 + b"\x52\x54\x00\x12\x34\x56\x08\x00" + bytes((i * 13 + seed) & 0xff for i in range(n - 14))

    def net_in(pair, data, pad_kib=0):
        sel = pair | (2 | (pad_kib << 2) if pad_kib else 0)
        return bytes([V_CHR_INPUT, sel, len(data)]) + data

    def tx(pair, pkt):
        return v_add(2 * pair + 1, [v_seg_fresh(len(pkt), fill=pkt)])

    def rxbuf(pair, ln=1526, shape=0):
        return v_add(2 * pair, [v_seg_fresh(ln, True)], shape)

    def ctrl(cmd):
        return v_add(4, [v_seg_fresh(len(cmd), fill=cmd), v_seg_fresh(1, True)])

    pkt = hdr() + frame(50)
    s["tx"] = (v_header(feats) + tx(0, pkt) + tx(0, hdr(1, 0, 0, 0, 34, 6) + frame(50, 1)) +
               v_add(1, [v_seg_fresh(5, fill=pkt[:5]), v_seg_fresh(59, fill=pkt[5:])]) +
               v_add(1, [v_seg_fresh(20, fill=pkt[:20]), v_seg_fresh(44, fill=pkt[20:])], V_INDIRECT) +
               V_WAIT_USED)
    s["tx-gso"] = (v_header(feats) + tx(0, hdr(1, 1, 42, 1448, 34, 6) + frame(50)) +
                   tx(0, hdr(1, 3, 42, 1448, 34, 6) + frame(50)) + tx(0, hdr(1, 0x84, 42, 1448, 34, 6) + frame(50)) +
                   V_WAIT_USED)
    s["tx-hostile"] = (v_header(feats) + tx(0, hdr(1, 5, 42, 1448, 34, 6) + frame(50)) +
                       tx(0, hdr(1, 4, 42, 0, 34, 6) + frame(50)) + tx(0, hdr(0, 4, 42, 1448) + frame(50)) +
                       tx(0, hdr(0x80) + frame(50)) + tx(0, hdr(1, 4, 42, 1448, 34, 6) + frame(30)) +
                       tx(0, hdr(1, 0, 0, 0, 60, 10) + frame(50)) + tx(0, hdr(0, 0x80) + frame(50)) +
                       tx(0, pkt[:8]) + v_add(1, [v_seg_fresh(64, fill=pkt), v_seg_fresh(64, True)]) +
                       V_WAIT_USED + v_reset(11) + tx(0, hdr(1, 1, 42, 1448, 34, 6) + frame(50)) +
                       v_reset(13) + tx(0, hdr(1, 0x84, 42, 1448, 34, 6) + frame(50)) + v_reset(0) +
                       tx(0, hdr(1, 0, 0, 0, 34, 6) + frame(50)) + V_WAIT_USED)
    big = v_add(1, [v_seg_fresh(1000, fill=pkt), v_seg_fresh(4000)], V_NO_KICK)
    s["tx-full"] = (v_header(feats, 6) + big * 20 + v_kick(1) + bytes([V_POLL, 1]) + v_kick(1) + V_WAIT_USED +
                    v_add(1, [v_seg_fresh(4096)] * 8) + V_WAIT_USED)
    s["rx"] = (v_header(feats) + rxbuf(0) + rxbuf(0, 64) + net_in(0, pkt) + net_in(0, hdr() + b"x") +
               net_in(0, b"") + bytes([V_POLL, 1]) + net_in(0, pkt) + V_WAIT_USED)
    s["rx-mergeable"] = (v_header(feats, 6) + b"".join(rxbuf(0, 1526, V_NO_KICK) for _ in range(6)) +
                         v_kick(0) + net_in(0, pkt, 16) + bytes([V_POLL, 1]) +
                         b"".join(rxbuf(0, 1526) for _ in range(8)) + V_WAIT_USED)
    s["rx-no-mrg"] = (v_header(feats & ~(1 << 15)) + rxbuf(0) + net_in(0, pkt, 2) + bytes([V_POLL, 1]) +
                      net_in(0, pkt) + V_WAIT_USED)
    s["rx-no-buffers"] = (v_header(feats) + net_in(0, pkt) + bytes([V_POLL, 1]) + rxbuf(0) + V_WAIT_USED)
    s["ctrl-pairs"] = (v_header(feats) + rxbuf(1) + net_in(1, pkt) + ctrl(b"\x04\x00\x02\x00") +
                       bytes([V_POLL, 1]) + tx(1, pkt) + ctrl(b"\x04\x00\x03\x00") + ctrl(b"\x04\x00\x01\x00") +
                       V_WAIT_USED + v_reset(22) + ctrl(b"\x04\x00\x02\x00") + V_WAIT_USED)
    s["ctrl-offloads"] = (v_header(feats) + ctrl(b"\x05\x00" + struct.pack("<Q", 0x182)) +
                          ctrl(b"\x05\x00" + struct.pack("<Q", 1 << 40)) + ctrl(b"\x05\x00\x00") +
                          ctrl(b"\x77") + v_cfg_write(0, 0x02, 1) + v_add(4, [v_seg_fresh(1, True)]) + v_add(4, [v_seg_fresh(2, fill=b"\x04\x00")]) +
                          V_WAIT_USED)
    s["reset-held"] = (v_header(feats) + rxbuf(0) + rxbuf(0) + net_in(0, pkt, 32) + bytes([V_POLL, 1]) +
                       b"".join(tx(0, pkt) for _ in range(12)) + v_reset() + rxbuf(0) + net_in(0, pkt) +
                       V_WAIT_USED)
    return s


# ---- option strings from plugin descriptors -------------------------------------
class NimbusPlugin(ctypes.Structure):
    _fields_ = [("abi_major", ctypes.c_uint32), ("abi_minor", ctypes.c_uint32),
                ("struct_size", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("name", ctypes.c_char_p), ("version", ctypes.c_char_p),
                ("summary", ctypes.c_char_p), ("options", ctypes.c_char_p),
                ("ops", ctypes.c_void_p)]


# ---- fuzz_hp_slots (fuzz/harness/hp_slots.c) ------------------------
HPS_PORT_LO_OFF = 8  # the harness's PORT_LO is the registers' port - 8


def hps_head(n, present, fixed=1):
    return struct.pack("<HBB", n - 1, present - 1, fixed)


def hps_io(off, ln, write=False, val=0):
    fl = {1: 0, 2: 1, 4: 2, 8: 3}[ln] | (0x80 if write else 0)
    op = bytes([0, HPS_PORT_LO_OFF + off, fl])
    return op + (struct.pack("<Q", val) if write else b"")


def hps_seeds():
    scan, take, sta = b"\x01", b"\x04", b"\x06"
    plug = lambda i: b"\x02" + struct.pack("<H", i)
    unplug = lambda i: b"\x03" + struct.pack("<H", i)
    eject = lambda i: b"\x05" + struct.pack("<H", i)
    return {
        "grow": hps_head(4, 2) + plug(2) + plug(3) + scan + sta + take,
        "shrink": hps_head(4, 4) + unplug(3) + unplug(2) + scan + eject(3) + sta + take
                  + eject(2) + take + take,
        "guest-eject": hps_head(3, 3) + eject(1) + eject(0) + eject(7) + take + take,
        "memory": hps_head(16, 1, 16) + plug(3) + plug(4) + scan + eject(3) + take + sta,
        "x2apic": hps_head(300, 1) + plug(299) + scan + unplug(299) + scan + eject(299)
                  + take,
        "raw": hps_head(2, 1) + plug(1) + hps_io(0, 4, True, 1) + hps_io(8, 1)
               + hps_io(4, 4) + hps_io(8, 1, True, 0x0e) + hps_io(8, 1)
               + hps_io(0, 4, True, 0xffffffff) + hps_io(8, 1, True, 0xff)
               + hps_io(1, 2) + hps_io(6, 4) + hps_io(9, 1) + hps_io(-1, 1),
    }


def option_seeds(spec):
    """Valid and invalid strings for an options spec like 'iobase=<port>,irq=<gsi>'."""
    keys = [tok.split("=")[0] for tok in spec.split(",") if tok]
    samples = {"port": ["0x2f8", "0", "65528", "0x10000"], "gsi": ["3", "23", "24"],
               "bool": ["on", "off", "maybe"]}
    s = {"empty": b"", "unknown": b"nosuchkey=1", "no-value": b"%s" % keys[0].encode() if keys else b"x",
         "commas": b",,,", "long": b"k" * 40 + b"=" + b"v" * 100}
    all_valid = []
    for tok in spec.split(","):
        if "=" not in tok:
            continue
        k, v = tok.split("=", 1)
        kind = v.strip("<>")
        vals = next((samples[x] for x in samples if x in kind), ["1", "0x10", "-1", ""])
        for i, val in enumerate(vals):
            s["%s-%d" % (k, i)] = ("%s=%s" % (k, val)).encode()
        all_valid.append("%s=%s" % (k, vals[0]))
    if all_valid:
        s["all"] = ",".join(all_valid).encode()
        s["dup"] = (",".join(all_valid * 2)).encode()
    return s


def write_option_dict(name, spec):
    """Keys of the options spec plus syntax tokens, as a libFuzzer/AFL dict."""
    toks = ['","', '"="', '"0x"', '"on"', '"off"', '"true"', '"false"']
    for tok in spec.split(","):
        if "=" in tok:
            toks.append('"%s="' % tok.split("=")[0])
    path = os.path.join(ROOT, "dict", "fuzz_options_%s.dict" % name)
    with open(path, "w") as f:
        f.write("# Generated by fuzz/tools/gen_seeds.py from %s's options: %s\n" % (name, spec))
        f.write("\n".join(toks) + "\n")


def write_set(target, seeds):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    for old in glob.glob(os.path.join(d, "seed-*")):  # seeds this run no longer makes
        os.unlink(old)
    for name, data in seeds.items():
        with open(os.path.join(d, "seed-" + name), "wb") as f:
            f.write(data)
    print("%-28s %2d seeds" % (target, len(seeds)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", help="normal build tree, for per-plugin generated seeds")
    args = ap.parse_args()

    per_device = {"uart16550": (1, uart_generic), "i8042": (2, i8042_generic),
                  "cmos": (1, cmos_generic)}
    for name, (nreg, fn) in per_device.items():
        seeds = generic_probe(nreg)
        seeds.update(fn())
        write_set("fuzz_plugin_" + name, seeds)
    tb = generic_probe(1)
    tb.update(testbug_generic())
    write_set("testbug", tb)
    write_set("fuzz_uart16550", uart_structured())
    write_set("fuzz_cli", cli_seeds())
    write_set("fuzz_kernel_loader", loader_seeds())
    write_set("fuzz_virtqueue", virtqueue_seeds())
    write_set("fuzz_hp_slots", hps_seeds())
    virtio = {"virtio_blk": (60, blk_seeds), "virtio_console": (12, console_seeds),
              "virtio_net": (12, net_seeds), "virtio_rng": (0, rng_seeds)}
    for name, (cfg, fn) in virtio.items():
        seeds = virtio_common(cfg)
        seeds.update(fn())
        write_set("fuzz_virtio_" + name, seeds)

    if args.build_dir:
        plugin_dir = os.path.join(args.build_dir, "plugins")
        for so in sorted(glob.glob(os.path.join(plugin_dir, "*.so"))):
            lib = ctypes.CDLL(so)
            p = NimbusPlugin.in_dll(lib, "nimbus_plugin_v1")
            name = p.name.decode()
            if name.startswith("virtio_"):
                continue  # fuzz_virtio_<name> instead (no regions, options needed)
            spec = (p.options or b"").decode()
            write_set("fuzz_options_" + name, option_seeds(spec))
            write_option_dict(name, spec)
            write_set("fuzz_restore_" + name, restore_seeds(args.build_dir, name))
    return 0


def restore_seeds(build_dir, name):
    """Final states of the op corpus, plus truncated/flipped variants."""
    exe = os.path.join(build_dir, "fuzz", "fuzz_plugin_" + name)
    corpus = os.path.join(CORPUS, "fuzz_plugin_" + name)
    seeds = {}
    if not (os.path.exists(exe) and os.path.isdir(corpus)):
        return seeds
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, NIMBUS_FUZZ_DUMP_STATE=tmp)
        subprocess.run([exe, corpus], env=env, check=True, stderr=subprocess.DEVNULL)
        # A dozen distinct states is plenty; campaigns find the rest.
        for i, path in enumerate(sorted(glob.glob(os.path.join(tmp, "state-*")))[:12]):
            with open(path, "rb") as f:
                blob = f.read()
            seeds["state-%02d" % i] = blob
            if i == 0 and blob:
                seeds["truncated"] = blob[:-1]
                seeds["extended"] = blob + b"\0"
                flipped = bytearray(blob)
                flipped[len(blob) // 2] ^= 0xff
                seeds["flipped"] = bytes(flipped)
    seeds["empty"] = b""
    return seeds


if __name__ == "__main__":
    sys.exit(main())
