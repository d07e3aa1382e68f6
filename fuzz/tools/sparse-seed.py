#!/usr/bin/python3
"""Raw disk or file system images to the sparse input of the boot-disk fuzz
targets (fuzz/common/bd_sparse.h).

  sparse-seed.py RAW... -o DIR              DIR/<name of RAW> for each RAW
  sparse-seed.py RAW... -o DIR --join NAME  DIR/NAME: all RAWs, one disk each
                                            (fuzz_bootdisk_find's several disks)
  --disk    allow whole disks up to 64 MiB (fuzz_bootdisk_find) instead of
            file systems up to 8 MiB

Format: u32 le image size, then records {u32 le offset, u16 le length, bytes}
of the nonzero 512-byte sectors, neighbours merged into records of at most
65535 bytes; images are separated by a record offset of 0xD15C0002.  The
harness clips the size to [64 KiB, 8 MiB]: a larger image is refused here,
since its tail (a GPT backup, say) would be silently lost.  Prints each
output's size.
"""
import argparse
import os
import struct
import sys

SECTOR = 512
MAX_RECORD = 65535 // SECTOR * SECTOR
MIN_SIZE, MAX_FS, MAX_DISK = 64 << 10, 8 << 20, 64 << 20
NEXT = 0xD15C0002


def sparse(raw, max_size):
    if len(raw) > max_size:
        raise ValueError("%d bytes: more than the harness's %d" % (len(raw), max_size))
    out = [struct.pack("<I", len(raw))]
    zero = bytes(SECTOR)
    start = None  # first byte of the record being built
    for off in range(0, len(raw) + SECTOR, SECTOR):
        data = raw[off:off + SECTOR]
        nonzero = bool(data) and data != zero[:len(data)]
        if nonzero and start is not None and off - start < MAX_RECORD:
            continue
        if start is not None:
            end = min(off, len(raw))
            out.append(struct.pack("<IH", start, end - start) + raw[start:end])
            start = None
        if nonzero:
            start = off
    return b"".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("raw", nargs="+")
    ap.add_argument("-o", dest="out", required=True, metavar="DIR")
    ap.add_argument("--join", metavar="NAME")
    ap.add_argument("--disk", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    parts = []
    for path in a.raw:
        with open(path, "rb") as f:
            raw = f.read()
        try:
            s = sparse(raw, MAX_DISK if a.disk else MAX_FS)
        except ValueError as e:
            sys.exit("sparse-seed: %s: %s" % (path, e))
        if len(raw) < MIN_SIZE:
            print("sparse-seed: %s: %d bytes, the harness pads it to %d" %
                  (path, len(raw), MIN_SIZE), file=sys.stderr)
        if a.join:
            parts.append(s)
            continue
        dest = os.path.join(a.out, os.path.basename(path))
        with open(dest, "wb") as f:
            f.write(s)
        print("%s: %d -> %d bytes" % (dest, len(raw), len(s)))
    if a.join:
        data = struct.pack("<I", NEXT).join(parts)
        dest = os.path.join(a.out, a.join)
        with open(dest, "wb") as f:
            f.write(data)
        print("%s: %d images, %d bytes" % (dest, len(parts), len(data)))


if __name__ == "__main__":
    main()
