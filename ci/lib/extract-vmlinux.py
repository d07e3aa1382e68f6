#!/usr/bin/python3
"""Extract the uncompressed ELF vmlinux from a bzImage.

The boot protocol (>= 2.08) says where the compressed kernel is:
payload_offset/payload_length at 0x248/0x24c, relative to the start of the
protected-mode code.  The compression is recognised by its magic and undone
with Python's codecs or the lz4/zstd tools from Debian.  Used to boot the
same Debian kernel through nimbus' PVH (ELF) path in the integration tests.

usage: extract-vmlinux.py BZIMAGE OUTPUT
"""
import bz2
import gzip
import lzma
import struct
import subprocess
import sys


def decompress(blob: bytes) -> bytes:
    if blob[:2] == b"\x1f\x8b":
        return gzip.decompress(blob)
    if blob[:6] == b"\xfd7zXZ\x00":
        return lzma.decompress(blob)
    if blob[:3] == b"BZh":
        return bz2.decompress(blob)
    if blob[:3] == b"\x5d\x00\x00":
        return lzma.decompress(blob, format=lzma.FORMAT_ALONE)
    tools = {b"\x28\xb5\x2f\xfd": ["zstd", "-dc"], b"\x02\x21\x4c\x18": ["lz4", "-dc"]}
    for magic, cmd in tools.items():
        if blob[:4] == magic:
            # Trailing data after the frame is normal (the size word); tools stop at it.
            r = subprocess.run(cmd, input=blob, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if r.stdout[:4] == b"\x7fELF":
                return r.stdout
            raise SystemExit(f"extract-vmlinux: {cmd[0]} failed: {r.stderr.decode()[:200]}")
    raise SystemExit(f"extract-vmlinux: unknown compression (magic {blob[:6].hex()})")


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    data = open(sys.argv[1], "rb").read()
    if len(data) < 0x250 or data[0x202:0x206] != b"HdrS":
        raise SystemExit(f"extract-vmlinux: {sys.argv[1]}: not a bzImage")
    version = struct.unpack_from("<H", data, 0x206)[0]
    if version < 0x208:
        raise SystemExit(f"extract-vmlinux: boot protocol {version:#x} has no payload fields")
    setup_sects = data[0x1f1] or 4
    off, length = struct.unpack_from("<II", data, 0x248)
    start = (setup_sects + 1) * 512 + off
    if start + length > len(data):
        raise SystemExit("extract-vmlinux: payload runs past the end of the file")
    elf = decompress(data[start:start + length])
    if elf[:4] != b"\x7fELF":
        raise SystemExit("extract-vmlinux: payload is not an ELF image")
    with open(sys.argv[2], "wb") as f:
        f.write(elf)
    return 0


if __name__ == "__main__":
    sys.exit(main())
