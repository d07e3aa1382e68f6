#!/usr/bin/python3
"""Disk images shaped like real distributions' for the boot-from-disk reader.

  make-images.py --kernel K --initrd I --out DIR [--only NAME]...
      writes DIR/<name>.img (sparse raw, 1 KiB to 64 MiB) and DIR/expect.json:
      {"<name>": {"kernel_sha256", "initrd_sha256" (or null), "cmdline",
                  "source": "grub"|"bls"|"symlink"}}  for images that boot,
      {"<name>": {"error_contains": "..."}}          for images to refuse.
  make-images.py --seeds DIR
      writes seed-* inputs into DIR/fuzz_bootdisk_{part,ext4,fat,grubcfg,bls}/.

The expected cmdline is what the boot loader entry says, split into words and
joined by single spaces, with GRUB variables expanded (unset ones are empty),
without GRUB's "BOOT_IMAGE=" prefix.  README.md describes each layout.

Every image is checked after it is written with tools that do not share the
reader's code (sfdisk, debugfs, mtools): the files expect.json names must be
where the layout put them.  No root and no loop devices: file systems are made
in a scratch file and copied into their partition.
"""
import argparse
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile

SECTOR = 512
MIB = 1 << 20
EPOCH = 1700000000  # fixed timestamps, so that the same input gives the same image
ENV = dict(os.environ, E2FSPROGS_FAKE_TIME=str(EPOCH), E2FSCK_TIME=str(EPOCH),
           SOURCE_DATE_EPOCH=str(EPOCH),
           MTOOLS_SKIP_CHECK="1", LC_ALL="C")

# What the reader's refusal must say.  The integrator words the messages; if
# they differ, change them here (and only here).
ERR_NO_KERNEL = "cannot boot from the disk"

T_BIOS = "21686148-6449-6E6F-744E-656564454649"
T_ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
T_LINUX = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
T_ROOT_X86_64 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"


def die(msg):
    sys.exit("make-images: " + msg)


def run(cmd, data=None):
    r = subprocess.run(cmd, input=data, env=ENV, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    if r.returncode != 0:
        die("%s failed (%d): %s" % (" ".join(cmd), r.returncode,
                                   r.stderr.decode(errors="replace").strip()))
    return r.stdout


def sha(b):
    return hashlib.sha256(b).hexdigest()


def decoy(name):
    """A file that is not the kernel under test: booting it is detectable."""
    return ("decoy %s: a reader that picked this file chose the wrong entry\n" % name).encode()


def grubenv(**kv):
    """GRUB's environment block: exactly 1024 bytes, padded with '#'."""
    text = "# GRUB Environment Block\n" + "".join("%s=%s\n" % i for i in kv.items())
    if len(text) > 1024:
        die("grubenv too long")
    return (text + "#" * (1024 - len(text))).encode()


class Link:
    """A symbolic link in a file tree."""

    def __init__(self, target):
        self.target = target


# ---- file systems ----------------------------------------------------------

def stage(root, tree):
    """tree: {path: bytes | str | Link | None (directory)}."""
    for path, v in sorted(tree.items()):
        p = os.path.join(root, path.strip("/"))
        if v is None:
            os.makedirs(p, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(p), exist_ok=True)
        if isinstance(v, Link):
            os.symlink(v.target, p)
        else:
            with open(p, "wb") as f:
                f.write(v.encode() if isinstance(v, str) else v)
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            os.utime(os.path.join(d, n), (EPOCH, EPOCH), follow_symlinks=False)
    os.utime(root, (EPOCH, EPOCH))


def mkext4(path, size, tree, uuid, label="", opts=(), debugfs_cmds=(), block=None,
           fstype="ext4"):
    with tempfile.TemporaryDirectory() as src:
        stage(src, tree)
        cmd = ["mkfs." + fstype, "-q", "-F", "-U", uuid, "-E",
               "hash_seed=%s,root_owner=0:0" % uuid, "-d", src]
        cmd += ["-b", str(block)] if block else ["-T", "default"]
        if label:
            cmd += ["-L", label]
        run(cmd + list(opts) + [path, "%dk" % (size // 1024)])
        n = 1 + sum(len(d) + len(f) for _, d, f in os.walk(src))
    # mke2fs copies the host's ctime/atime; pin them so the image is reproducible.
    cmds = ["sif <%d> %s @%d" % (i, f, EPOCH)
            for i in [2] + list(range(11, 12 + n)) for f in ("ctime", "atime")]
    cmds += list(debugfs_cmds)
    debugfs(path, cmds)


def debugfs(path, cmds):
    """Runs debugfs commands; its output echoes them, so it is not returned."""
    with tempfile.NamedTemporaryFile("w", suffix=".cmds") as f:
        f.write("\n".join(cmds) + "\n")
        f.flush()
        r = subprocess.run(["debugfs", "-w", "-f", f.name, path],
                           env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err = r.stderr.decode(errors="replace")
    # debugfs exits 0 even when a command fails; its errors name the command.
    bad = [l for l in err.splitlines() if l and not l.startswith("debugfs ")]
    if r.returncode != 0 or bad:
        die("debugfs %s: %s" % (path, "; ".join(bad) or r.returncode))


def mkvfat(path, size, tree, volid, label="", fat=None, opts=()):
    cmd = ["mkfs.vfat", "--invariant", "-i", volid] + list(opts) + ["-C", path, str(size // 1024)]
    if fat:
        cmd[1:1] = ["-F", str(fat)]
    if label:
        cmd[1:1] = ["-n", label]
    run(cmd)
    with tempfile.TemporaryDirectory() as src:
        files = {p: v for p, v in tree.items() if v is not None}
        stage(src, files)
        dirs = set(p.strip("/") for p, v in tree.items() if v is None)
        for p in files:
            parts = p.strip("/").split("/")[:-1]
            dirs.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
        for d in sorted(dirs, key=lambda d: (d.count("/"), d)):
            run(["mmd", "-i", path, "::/" + d])
        for p in sorted(files):
            if isinstance(files[p], Link):
                die("FAT has no symbolic links: " + p)
            run(["mcopy", "-m", "-i", path, os.path.join(src, p.strip("/")), "::/" + p.strip("/")])


# ---- partition tables ------------------------------------------------------

class Part:
    """num: partition number; start/size in MiB (size None: to the end);
    fs: callable(path, size_bytes) that makes the file system, or None."""

    def __init__(self, num, start, size, ptype, uuid=None, name=None, fs=None, boot=False):
        self.num, self.start, self.size, self.ptype = num, start, size, ptype
        self.uuid, self.name, self.fs, self.boot = uuid, name, fs, boot


def write_disk(path, size_mib, label, label_id, parts):
    """Writes a sparse raw disk with the partition table and file systems."""
    if os.path.exists(path):
        os.unlink(path)
    with open(path, "wb") as f:
        f.truncate(size_mib * MIB)
    script = ["label: " + label, "label-id: " + label_id]
    for p in parts:
        line = "%s%d : start=%d" % (os.path.basename(path), p.num, p.start * MIB // SECTOR)
        if p.size:
            line += ", size=%d" % (p.size * MIB // SECTOR)
        line += ", type=" + p.ptype
        if p.uuid:
            line += ", uuid=" + p.uuid
        if p.name:
            line += ', name="%s"' % p.name
        if p.boot:
            line += ", bootable"
        script.append(line)
    run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", path],
        ("\n".join(script) + "\n").encode())
    table = json.loads(run(["sfdisk", "--json", path]))["partitiontable"]
    geo = {int(e["node"][len(path):]): (e["start"], e["size"])
           for e in table["partitions"]}
    for p in parts:
        if p.fs is None:
            continue
        start, nsect = geo[p.num]
        with tempfile.TemporaryDirectory() as tmp:
            fsimg = os.path.join(tmp, "fs.img")
            p.fs(fsimg, nsect * SECTOR)
            copy_sparse(fsimg, path, start * SECTOR, nsect * SECTOR)
    return geo


def copy_sparse(src, dst, offset, limit):
    """Copies src into dst at offset, skipping zero blocks (dst stays sparse)."""
    if os.path.getsize(src) > limit:
        die("%s does not fit its partition" % src)
    with open(src, "rb") as s, open(dst, "r+b") as d:
        pos = 0
        while True:
            b = s.read(65536)
            if not b:
                break
            if b.count(0) != len(b):
                d.seek(offset + pos)
                d.write(b)
            pos += len(b)


def read_part(img, start, nsect, out):
    with open(img, "rb") as s, open(out, "wb") as d:
        s.seek(start * SECTOR)
        left = nsect * SECTOR
        while left:
            b = s.read(min(left, MIB))
            d.write(b)
            left -= len(b)


def mbr_partuuid(label_id, num):
    return "%08x-%02d" % (int(label_id, 16), num)


def corrupt_gpt_header(path, which):
    """Flips the header CRC of the primary (LBA 1) or backup (last LBA) GPT header."""
    with open(path, "r+b") as f:
        lba = 1 if which == "primary" else os.path.getsize(path) // SECTOR - 1
        f.seek(lba * SECTOR)
        hdr = bytearray(f.read(92))
        if hdr[:8] != b"EFI PART":
            die("no GPT header at LBA %d of %s" % (lba, path))
        crc = struct.unpack_from("<I", hdr, 16)[0]
        hdr[16:20] = struct.pack("<I", crc ^ 0x5A5A5A5A)
        f.seek(lba * SECTOR)
        f.write(hdr)


# ---- configuration texts ---------------------------------------------------

DEB_VER, DEB_OLD = "6.1.0-99-cloud-amd64", "6.1.0-98-cloud-amd64"
UBU_NEW, UBU_OLD = "5.15.0-91-generic", "5.15.0-89-generic"
FED_NEW, FED_OLD = "6.10.12-100.fc39.x86_64", "6.9.12-100.fc39.x86_64"
FED_MACHINE = "2d1c5e1f8e0a4b7c9f3a6b2d4e8c0a1f"


def debian_header(root_uuid, default='"0"'):
    return """#
# DO NOT EDIT THIS FILE
#
# It is automatically generated by grub-mkconfig using templates
# from /etc/grub.d and settings from /etc/default/grub
#

### BEGIN /etc/grub.d/00_header ###
if [ -s $prefix/grubenv ]; then
  set have_grubenv=true
  load_env
fi
if [ "${next_entry}" ] ; then
   set default="${next_entry}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default=%(default)s
fi

if [ x"${feature_menuentry_id}" = xy ]; then
  menuentry_id_option="--id"
else
  menuentry_id_option=""
fi

export menuentry_id_option

if [ "${prev_saved_entry}" ]; then
  set saved_entry="${prev_saved_entry}"
  save_env saved_entry
  set prev_saved_entry=
  save_env prev_saved_entry
  set boot_once=true
fi

function savedefault {
  if [ -z "${boot_once}" ]; then
    saved_entry="${chosen}"
    save_env saved_entry
  fi
}
function load_video {
  if [ x$feature_all_video_module = xy ]; then
    insmod all_video
  else
    insmod efi_gop
    insmod efi_uga
    insmod ieee1275_fb
    insmod vbe
    insmod vga
    insmod video_bochs
    insmod video_cirrus
  fi
}

if [ x$feature_default_font_path = xy ] ; then
   font=unicode
else
insmod part_gpt
insmod ext2
search --no-floppy --fs-uuid --set=root %(root)s
    font="/usr/share/grub/unicode.pf2"
fi

if loadfont $font ; then
  set gfxmode=auto
  load_video
  insmod gfxterm
  set locale_dir=$prefix/locale
  set lang=C.UTF-8
  insmod gettext
fi
terminal_input console serial
terminal_output gfxterm serial
serial --speed=115200
if [ "${recordfail}" = 1 ] ; then
  set timeout=30
else
  if [ x$feature_timeout_style = xy ] ; then
    set timeout_style=menu
    set timeout=0
  # Fallback normal timeout code in case the timeout_style feature is
  # unavailable.
  else
    set timeout=0
  fi
fi
### END /etc/grub.d/00_header ###

### BEGIN /etc/grub.d/05_debian_theme ###
insmod part_gpt
insmod ext2
search --no-floppy --fs-uuid --set=root %(root)s
insmod png
if background_image /usr/share/desktop-base/emerald-theme/grub/grub-4x3.png; then
  set color_normal=white/black
  set color_highlight=black/white
else
  set menu_color_normal=cyan/blue
  set menu_color_highlight=white/blue
fi
### END /etc/grub.d/05_debian_theme ###

### BEGIN /etc/grub.d/10_linux ###
function gfxmode {
	set gfxpayload="${1}"
}
set linux_gfx_mode=
export linux_gfx_mode
""" % {"root": root_uuid, "default": default}


def debian_entry(root, ver, title, eid, extra="quiet", indent="", initrd=True):
    e = """menuentry '%(title)s' --class debian --class gnu-linux --class gnu --class os $menuentry_id_option '%(eid)s' {
	load_video
	insmod gzio
	if [ x$grub_platform = xxen ]; then insmod xzio; insmod lzopio; fi
	insmod part_gpt
	insmod ext2
	search --no-floppy --fs-uuid --set=root %(root)s
	echo	'Loading Linux %(ver)s ...'
	linux	/boot/vmlinuz-%(ver)s root=UUID=%(root)s ro %(extra)s
""" % {"title": title, "eid": eid, "root": root, "ver": ver, "extra": extra}
    if initrd:
        e += "\techo\t'Loading initial ramdisk ...'\n\tinitrd\t/boot/initrd.img-%s\n" % ver
    e += "}\n"
    return "".join(indent + l if l.strip() else l for l in e.splitlines(True))


DEBIAN_TRAILER = """### END /etc/grub.d/10_linux ###

### BEGIN /etc/grub.d/30_os-prober ###
### END /etc/grub.d/30_os-prober ###

### BEGIN /etc/grub.d/30_uefi-firmware ###
if [ "$grub_platform" = "efi" ]; then
	fwsetup --is-supported
	if [ "$?" = 0 ]; then
		menuentry 'UEFI Firmware Settings' $menuentry_id_option 'uefi-firmware' {
			fwsetup
		}
	fi
fi
### END /etc/grub.d/30_uefi-firmware ###

### BEGIN /etc/grub.d/40_custom ###
# This file provides an easy way to add custom menu entries.  Simply type the
# menu entries you want to add after this comment.  Be careful not to change
# the 'exec tail' line above.
### END /etc/grub.d/40_custom ###

### BEGIN /etc/grub.d/41_custom ###
if [ -f  ${config_directory}/custom.cfg ]; then
  source ${config_directory}/custom.cfg
elif [ -z "${config_directory}" -a -f  $prefix/custom.cfg ]; then
  source $prefix/custom.cfg
fi
### END /etc/grub.d/41_custom ###
"""


def debian_grub_cfg(root):
    """Debian 12 cloud image's grub.cfg: the first entry is the default; the
    'Advanced options' submenu names an older kernel that is not installed."""
    # "ro  console": grub-mkconfig leaves two spaces when GRUB_CMDLINE_LINUX is empty.
    return (debian_header(root)
            + debian_entry(root, DEB_VER, "Debian GNU/Linux", "gnulinux-simple-" + root,
                           " console=ttyS0 quiet")
            + "submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option "
              "'gnulinux-advanced-%s' {\n" % root
            + debian_entry(root, DEB_OLD, "Debian GNU/Linux, with Linux " + DEB_OLD,
                           "gnulinux-%s-advanced-%s" % (DEB_OLD, root), " console=ttyS0 quiet", "\t")
            + debian_entry(root, DEB_OLD, "Debian GNU/Linux, with Linux %s (recovery mode)" % DEB_OLD,
                           "gnulinux-%s-recovery-%s" % (DEB_OLD, root), "single  console=ttyS0", "\t")
            + "}\n\n" + DEBIAN_TRAILER)


def debian_esp_stub(root):
    return ("search.fs_uuid %s root hd0,gpt1 \nset prefix=($root)'/boot/grub'\n"
            "configfile $prefix/grub.cfg\n" % root)


def ubuntu_entry(root, boot, ver, title, eid, args, indent=""):
    e = """menuentry '%(title)s' --class ubuntu --class gnu-linux --class gnu --class os $menuentry_id_option '%(eid)s' {
	recordfail
	load_video
	gfxmode $linux_gfx_mode
	insmod gzio
	if [ x$grub_platform = xxen ]; then insmod xzio; insmod lzopio; fi
	insmod part_msdos
	insmod ext2
	set root='hd0,msdos1'
	if [ x$feature_platform_search_hint = xy ]; then
	  search --no-floppy --fs-uuid --set=root --hint-bios=hd0,msdos1 --hint-efi=hd0,msdos1 --hint-baremetal=ahci0,msdos1  %(boot)s
	else
	  search --no-floppy --fs-uuid --set=root %(boot)s
	fi
	echo	'Loading Linux %(ver)s ...'
	linux	/vmlinuz-%(ver)s root=UUID=%(root)s ro %(args)s
	echo	'Loading initial ramdisk ...'
	initrd	/initrd.img-%(ver)s
}
""" % {"title": title, "eid": eid, "root": root, "boot": boot, "ver": ver, "args": args}
    return "".join(indent + l if l.strip() else l for l in e.splitlines(True))


def ubuntu_grub_cfg(root, boot):
    """Ubuntu 22.04 with GRUB_DEFAULT=saved and a separate /boot: the default
    comes from grubenv's saved_entry (an id path into the submenu)."""
    head = """#
# DO NOT EDIT THIS FILE
#
# It is automatically generated by grub-mkconfig using templates
# from /etc/grub.d and settings from /etc/default/grub
#

### BEGIN /etc/grub.d/00_header ###
if [ -s $prefix/grubenv ]; then
  set have_grubenv=true
  load_env
fi
if [ "${initrdfail}" = 2 ]; then
   set initrdfail=
elif [ "${initrdfail}" = 1 ]; then
   set next_entry="${prev_entry}"
   set prev_entry=
   save_env prev_entry
   if [ "${next_entry}" ]; then
      set initrdfail=2
   fi
fi
if [ "${next_entry}" ] ; then
   set default="${next_entry}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="${saved_entry}"
fi

if [ x"${feature_menuentry_id}" = xy ]; then
  menuentry_id_option="--id"
else
  menuentry_id_option=""
fi

export menuentry_id_option

if [ "${prev_saved_entry}" ]; then
  set saved_entry="${prev_saved_entry}"
  save_env saved_entry
  set prev_saved_entry=
  save_env prev_saved_entry
  set boot_once=true
fi

function savedefault {
  if [ -z "${boot_once}" ]; then
    saved_entry="${chosen}"
    save_env saved_entry
  fi
}
function initrdfail {
    if [ -n "${have_grubenv}" ]; then if [ -n "${partuuid}" ]; then
      if [ -z "${initrdfail}" ]; then
        set initrdfail=1
        if [ -n "${boot_once}" ]; then
          set prev_entry="${default}"
          save_env prev_entry
        fi
      fi
      save_env initrdfail
    fi; fi
}
function recordfail {
  set recordfail=1
  if [ -n "${have_grubenv}" ]; then if [ -z "${boot_once}" ]; then save_env recordfail; fi; fi
}
function load_video {
  if [ x$feature_all_video_module = xy ]; then
    insmod all_video
  else
    insmod efi_gop
    insmod efi_uga
    insmod ieee1275_fb
    insmod vbe
    insmod vga
    insmod video_bochs
    insmod video_cirrus
  fi
}

terminal_input console serial
terminal_output console serial
if [ "${recordfail}" = 1 ] ; then
  set timeout=30
else
  if [ x$feature_timeout_style = xy ] ; then
    set timeout_style=hidden
    set timeout=0
  # Fallback hidden-timeout code in case the timeout_style feature is
  # unavailable.
  elif sleep --interruptible 0 ; then
    set timeout=0
  fi
fi
### END /etc/grub.d/00_header ###

### BEGIN /etc/grub.d/05_debian_theme ###
set menu_color_normal=white/black
set menu_color_highlight=black/light-gray
### END /etc/grub.d/05_debian_theme ###

### BEGIN /etc/grub.d/10_linux ###
function gfxmode {
	set gfxpayload="${1}"
	if [ "${1}" = "keep" ]; then
		set vt_handoff=vt.handoff=7
	else
		set vt_handoff=
	fi
}
if [ "${recordfail}" != 1 ]; then
  if [ -e ${prefix}/gfxblacklist.txt ]; then
    if [ ${grub_platform} != pc ]; then
      set linux_gfx_mode=keep
    elif hwmatch ${prefix}/gfxblacklist.txt 3; then
      if [ ${match} = 0 ]; then
        set linux_gfx_mode=keep
      else
        set linux_gfx_mode=text
      fi
    else
      set linux_gfx_mode=text
    fi
  else
    set linux_gfx_mode=keep
  fi
else
  set linux_gfx_mode=text
fi
export linux_gfx_mode
"""
    out = head + ubuntu_entry(root, boot, UBU_NEW, "Ubuntu", "gnulinux-simple-" + root,
                              " console=ttyS0 $vt_handoff")
    out += ("submenu 'Advanced options for Ubuntu' $menuentry_id_option "
            "'gnulinux-advanced-%s' {\n" % root)
    for ver in (UBU_NEW, UBU_OLD):
        out += ubuntu_entry(root, boot, ver, "Ubuntu, with Linux " + ver,
                            "gnulinux-%s-advanced-%s" % (ver, root), " console=ttyS0 $vt_handoff", "\t")
        out += ubuntu_entry(root, boot, ver, "Ubuntu, with Linux %s (recovery mode)" % ver,
                            "gnulinux-%s-recovery-%s" % (ver, root),
                            "recovery nomodeset dis_ucode_ldr  console=ttyS0", "\t")
    out += "}\n### END /etc/grub.d/10_linux ###\n\n" + DEBIAN_TRAILER.split("\n", 2)[2]
    return out


def fedora_grub_cfg(root, boot):
    """Fedora 39: grub2-mkconfig's BLS config; the menu is what `blscfg` builds."""
    return """#
# DO NOT EDIT THIS FILE
#
# It is automatically generated by grub2-mkconfig using templates
# from /etc/grub.d and settings from /etc/default/grub
#

### BEGIN /etc/grub.d/00_header ###
set pager=1

if [ -f ${config_directory}/grubenv ]; then
  load_env -f ${config_directory}/grubenv
elif [ -s $prefix/grubenv ]; then
  load_env
fi
if [ "${next_entry}" ] ; then
   set default="${next_entry}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="${saved_entry}"
fi

if [ x"${feature_menuentry_id}" = xy ]; then
  menuentry_id_option="--id"
else
  menuentry_id_option=""
fi

export menuentry_id_option

if [ "${prev_saved_entry}" ]; then
  set saved_entry="${prev_saved_entry}"
  save_env saved_entry
  set prev_saved_entry=
  save_env prev_saved_entry
  set boot_once=true
fi

function savedefault {
  if [ -z "${boot_once}" ]; then
    saved_entry="${chosen}"
    save_env saved_entry
  fi
}

function load_video {
  if [ x$feature_all_video_module = xy ]; then
    insmod all_video
  else
    insmod efi_gop
    insmod efi_uga
    insmod ieee1275_fb
    insmod vbe
    insmod vga
    insmod video_bochs
    insmod video_cirrus
  fi
}

serial --speed=115200
terminal_input serial console
terminal_output serial console
if [ x$feature_timeout_style = xy ] ; then
  set timeout_style=menu
  set timeout=1
# Fallback normal timeout code in case the timeout_style feature is
# unavailable.
else
  set timeout=1
fi
### END /etc/grub.d/00_header ###

### BEGIN /etc/grub.d/01_users ###
if [ -f ${prefix}/user.cfg ]; then
  source ${prefix}/user.cfg
  if [ -n "${GRUB2_PASSWORD}" ]; then
    set superusers="root"
    export superusers
    password_pbkdf2 root ${GRUB2_PASSWORD}
  fi
fi
### END /etc/grub.d/01_users ###

### BEGIN /etc/grub.d/08_fallback_counting ###
insmod increment
# Check if boot_counter exists and boot_success=0 to activate this behaviour.
if [ -n "${boot_counter}" -a "${boot_success}" = "0" ]; then
  # if countdown has ended, choose to boot rollback deployment,
  # i.e. default=1 on OSTree-based systems.
  if  [ "${boot_counter}" = "0" -o "${boot_counter}" = "-1" ]; then
    set default=1
    set boot_counter=-1
  # otherwise decrement boot_counter
  else
    decrement boot_counter
  fi
  save_env boot_counter
fi
### END /etc/grub.d/08_fallback_counting ###

### BEGIN /etc/grub.d/10_linux ###
insmod part_gpt
insmod ext2
search --no-floppy --fs-uuid --set=root %(boot)s
insmod part_gpt
insmod ext2
search --no-floppy --fs-uuid --set=boot %(boot)s

# This section was generated by a script. Do not modify the generated file - all changes
# will be lost the next time file is regenerated. Instead edit the BootLoaderSpec files.
#
# The blscfg command parses the BootLoaderSpec files stored in /boot/loader/entries and
# populates the boot menu. Please refer to the Boot Loader Specification documentation
# for the files format: https://systemd.io/BOOT_LOADER_SPECIFICATION/.

# The kernelopts variable should be defined in the grubenv file. But to ensure that menu
# entries populated from BootLoaderSpec files that use this variable work correctly even
# without a grubenv file, define a fallback kernelopts variable if this has not been set.
#
# The kernelopts variable in the grubenv file can be modified using the grubby tool or by
# executing the grub2-mkconfig tool. For the latter, the values of the GRUB_CMDLINE_LINUX
# and GRUB_CMDLINE_LINUX_DEFAULT options from /etc/default/grub file are used to set both
# the kernelopts variable in the grubenv file and the fallback kernelopts variable.
if [ -z "${kernelopts}" ]; then
  set kernelopts="root=UUID=%(root)s ro "
fi

insmod blscfg
blscfg
### END /etc/grub.d/10_linux ###

### BEGIN /etc/grub.d/10_reset_boot_success ###
# Hiding the menu is ugly
if [ "${boot_success}" = "1" -o "${boot_indeterminate}" = "1" ]; then
  set last_boot_ok=1
else
  set last_boot_ok=0
fi
# Reset boot_indeterminate after a successful boot
if [ "${boot_success}" = "1" ] ; then
  set boot_indeterminate=0
# Avoid boot_indeterminate causing the menu to be hidden more then once
elif [ "${boot_indeterminate}" = "1" ]; then
  set boot_indeterminate=2
fi
# Reset boot_success for current boot
set boot_success=0
save_env boot_success boot_indeterminate
### END /etc/grub.d/10_reset_boot_success ###

### BEGIN /etc/grub.d/30_uefi-firmware ###
if [ "$grub_platform" = "efi" ]; then
	fwsetup --is-supported
	if [ "$?" = 0 ]; then
		menuentry 'UEFI Firmware Settings' $menuentry_id_option 'uefi-firmware' {
			fwsetup
		}
	fi
fi
### END /etc/grub.d/30_uefi-firmware ###
""" % {"root": root, "boot": boot}


def fedora_entry(ver):
    return """title Fedora Linux (%(v)s) 39 (Cloud Edition)
version %(v)s
linux /vmlinuz-%(v)s
initrd /initramfs-%(v)s.img
options $kernelopts quiet $tuned_params
grub_users $grub_users
grub_arg --unrestricted
grub_class fedora
""" % {"v": ver}


def fedora_rescue_entry():
    return """title Fedora Linux (0-rescue-%(m)s) 39 (Cloud Edition)
version 0-rescue-%(m)s
linux /vmlinuz-0-rescue-%(m)s
initrd /initramfs-0-rescue-%(m)s.img
options $kernelopts
grub_users $grub_users
grub_arg --unrestricted
grub_class fedora
""" % {"m": FED_MACHINE}


ARCH_ENTRY = """# systemd-boot entry, as archinstall writes it
title   Arch Linux (linux)
linux   /vmlinuz-linux
initrd  /initramfs-linux.img
options root=LABEL=arch_os rw
options console=ttyS0
"""

ARCH_FALLBACK_ENTRY = """title   Arch Linux (linux-fallback)
linux   /vmlinuz-linux
initrd  /initramfs-linux-fallback.img
options root=LABEL=arch_os rw
"""


def simple_grub_cfg(uuid, kpath, ipath, args, part="part_gpt"):
    """A hand-written grub.cfg, as people write for a custom image."""
    s = ("set default=0\nset timeout=1\ninsmod %s\ninsmod ext2\n"
         "search --no-floppy --fs-uuid --set=root %s\n\n"
         "menuentry 'Linux' {\n\tlinux %s %s\n" % (part, uuid, kpath, args))
    if ipath:
        s += "\tinitrd %s\n" % ipath
    return s + "}\n"


def os_release(name, ver, id_):
    return 'PRETTY_NAME="%s"\nNAME="%s"\nVERSION_ID="%s"\nID=%s\n' % (name, name, ver, id_)


# ---- the layouts -----------------------------------------------------------
# Each returns (size MiB, label, label id, parts, expect, probes).  probes are
# (partition number, path, bytes) that the check step reads back.

def ok(k, i, cmdline, source):
    return {"kernel_sha256": sha(k), "initrd_sha256": sha(i) if i is not None else None,
            "cmdline": cmdline, "source": source}


def refuse(text):
    return {"error_contains": text}


def ext4(tree, uuid, **kw):
    return lambda path, size: mkext4(path, size, tree, uuid, **kw)


def vfat(tree, volid, **kw):
    return lambda path, size: mkvfat(path, size, tree, volid, **kw)


def debian_gpt(k, i):
    root = "3e5ac0a3-3a13-4a7b-9f7d-1c0f2e6f7a01"
    boot = "/boot/"
    tree = {
        "etc/os-release": os_release("Debian GNU/Linux 12 (bookworm)", "12", "debian"),
        "etc/fstab": "PARTUUID=9f8f5c0e-6a55-4d2b-8a4f-2b0b1c7d0e01 / ext4 "
                     "rw,discard,errors=remount-ro,x-systemd.growfs 0 1\n"
                     "PARTUUID=9f8f5c0e-6a55-4d2b-8a4f-2b0b1c7d0e15 /boot/efi vfat defaults 0 0\n",
        "boot/efi": None,
        boot + "vmlinuz-" + DEB_VER: k, boot + "initrd.img-" + DEB_VER: i,
        boot + "config-" + DEB_VER: "CONFIG_X86_64=y\n",
        boot + "System.map-" + DEB_VER: "ffffffff81000000 T _text\n",
        boot + "grub/grub.cfg": debian_grub_cfg(root),
        boot + "grub/grubenv": grubenv(),
        boot + "grub/i386-pc/normal.mod": b"\x7fELF fake module",
        "vmlinuz": Link("boot/vmlinuz-" + DEB_VER), "vmlinuz.old": Link("boot/vmlinuz-" + DEB_VER),
        "initrd.img": Link("boot/initrd.img-" + DEB_VER),
        "initrd.img.old": Link("boot/initrd.img-" + DEB_VER),
        "home": None, "tmp": None,
    }
    esp = {"EFI/debian/grub.cfg": debian_esp_stub(root),
           "EFI/debian/shimx64.efi": b"MZ fake shim", "EFI/debian/grubx64.efi": b"MZ fake grub",
           "EFI/BOOT/BOOTX64.EFI": b"MZ fake shim"}
    parts = [Part(14, 1, 3, T_BIOS, "9f8f5c0e-6a55-4d2b-8a4f-2b0b1c7d0e14"),
             Part(15, 4, 12, T_ESP, "9f8f5c0e-6a55-4d2b-8a4f-2b0b1c7d0e15",
                  fs=vfat(esp, "A1B2C3D4", fat=16)),
             Part(1, 16, None, T_ROOT_X86_64, "9f8f5c0e-6a55-4d2b-8a4f-2b0b1c7d0e01",
                  fs=ext4(tree, root))]
    cmd = "root=UUID=%s ro console=ttyS0 quiet" % root
    return (64, "gpt", "6a3b7f0e-1d2c-4b5a-9e8f-0a1b2c3d4e5f", parts, ok(k, i, cmd, "grub"),
            [(1, "/boot/vmlinuz-" + DEB_VER, k), (1, "/boot/initrd.img-" + DEB_VER, i),
             (15, "/EFI/debian/grub.cfg", debian_esp_stub(root).encode())])


def ubuntu_mbr_bootpart(k, i):
    root, boot = "b7e1f0c2-5d4a-4e3b-8c9d-0e1f2a3b4c5d", "5c4b3a29-1807-4f6e-9d5c-4b3a29180706"
    saved = "gnulinux-advanced-%s>gnulinux-%s-advanced-%s" % (root, UBU_OLD, root)
    btree = {
        "grub/grub.cfg": ubuntu_grub_cfg(root, boot),
        "grub/grubenv": grubenv(saved_entry=saved),
        "grub/i386-pc/normal.mod": b"\x7fELF fake module",
        "vmlinuz-" + UBU_NEW: decoy("vmlinuz-" + UBU_NEW),
        "initrd.img-" + UBU_NEW: decoy("initrd.img-" + UBU_NEW),
        "vmlinuz-" + UBU_OLD: k, "initrd.img-" + UBU_OLD: i,
        "config-" + UBU_OLD: "CONFIG_X86_64=y\n", "config-" + UBU_NEW: "CONFIG_X86_64=y\n",
        # Ubuntu keeps its symlinks in /boot; they name the newest kernel, not the default.
        "vmlinuz": Link("vmlinuz-" + UBU_NEW), "initrd.img": Link("initrd.img-" + UBU_NEW),
        "vmlinuz.old": Link("vmlinuz-" + UBU_OLD), "initrd.img.old": Link("initrd.img-" + UBU_OLD),
    }
    rtree = {"etc/os-release": os_release("Ubuntu 22.04.3 LTS", "22.04", "ubuntu"),
             "etc/fstab": "UUID=%s / ext4 defaults 0 1\nUUID=%s /boot ext4 defaults 0 2\n" % (root, boot),
             "boot": None, "home": None}
    parts = [Part(1, 1, 20, "83", fs=ext4(btree, boot), boot=True),
             Part(2, 21, None, "83", fs=ext4(rtree, root))]
    cmd = "root=UUID=%s ro console=ttyS0" % root
    return (48, "dos", "0x5d1e0b0a", parts, ok(k, i, cmd, "grub"),
            [(1, "/vmlinuz-" + UBU_OLD, k), (1, "/initrd.img-" + UBU_OLD, i),
             (1, "/grub/grubenv", grubenv(saved_entry=saved))])


def fedora_bls(k, i):
    root, boot = "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5", "f1e2d3c4-b5a6-4978-8695-a4b3c2d1e0f9"
    kernelopts = "root=UUID=%s ro console=ttyS0" % root
    ent = "loader/entries/%s-%%s.conf" % FED_MACHINE
    btree = {
        "grub2/grub.cfg": fedora_grub_cfg(root, boot),
        "grub2/grubenv": grubenv(kernelopts=kernelopts, boot_success="0"),
        ent % FED_NEW: fedora_entry(FED_NEW), ent % FED_OLD: fedora_entry(FED_OLD),
        ent % "0-rescue": fedora_rescue_entry(),
        "vmlinuz-" + FED_NEW: k, "initramfs-%s.img" % FED_NEW: i,
        "vmlinuz-" + FED_OLD: decoy("vmlinuz-" + FED_OLD),
        "initramfs-%s.img" % FED_OLD: decoy("initramfs-" + FED_OLD),
        "vmlinuz-0-rescue-" + FED_MACHINE: decoy("rescue"),
        "initramfs-0-rescue-%s.img" % FED_MACHINE: decoy("rescue initramfs"),
        "config-" + FED_NEW: "CONFIG_X86_64=y\n",
        "efi": None,
    }
    stub = ("search --no-floppy --root-dev-only --fs-uuid --set=dev %s\n"
            "set prefix=($dev)/grub2\nexport $prefix\nconfigfile $prefix/grub.cfg\n" % boot)
    esp = {"EFI/fedora/grub.cfg": stub, "EFI/fedora/shimx64.efi": b"MZ fake shim",
           "EFI/fedora/grubx64.efi": b"MZ fake grub", "EFI/BOOT/BOOTX64.EFI": b"MZ fake shim",
           "EFI/BOOT/fbx64.efi": b"MZ fake fallback"}
    rtree = {"etc/os-release": os_release("Fedora Linux 39 (Cloud Edition)", "39", "fedora"),
             "etc/machine-id": FED_MACHINE + "\n", "boot": None}
    parts = [Part(1, 1, 16, T_ESP, "3c0e5a6b-0001-4c2d-9e8f-a0b1c2d3e4f5", "EFI System Partition",
                  vfat(esp, "F39E5F01")),
             Part(2, 17, 20, T_LINUX, "3c0e5a6b-0002-4c2d-9e8f-a0b1c2d3e4f5", fs=ext4(btree, boot)),
             Part(3, 37, None, T_LINUX, "3c0e5a6b-0003-4c2d-9e8f-a0b1c2d3e4f5", fs=ext4(rtree, root))]
    return (56, "gpt", "7d6c5b4a-3928-4716-a5b4-c3d2e1f00918", parts,
            ok(k, i, kernelopts + " quiet", "bls"),
            [(2, "/vmlinuz-" + FED_NEW, k), (2, "/initramfs-%s.img" % FED_NEW, i),
             (1, "/EFI/fedora/grub.cfg", stub.encode())])


def symlink_only(k, i):
    """No boot loader at all: the reader falls back to /vmlinuz and /initrd.img."""
    label_id = "0x8a7b6c5d"
    ver = "6.1.0-99-amd64"
    tree = {"boot/vmlinuz-" + ver: k, "boot/initrd.img-" + ver: i,
            "vmlinuz": Link("/boot/vmlinuz-" + ver), "initrd.img": Link("/boot/initrd.img-" + ver),
            "etc/os-release": os_release("Debian GNU/Linux 12 (bookworm)", "12", "debian")}
    parts = [Part(1, 1, None, "83", fs=ext4(tree, "11d2e3f4-a5b6-4c7d-8e9f-a0b1c2d3e4f6"))]
    cmd = "root=PARTUUID=%s ro console=ttyS0" % mbr_partuuid(label_id, 1)
    return (24, "dos", label_id, parts, ok(k, i, cmd, "symlink"),
            [(1, "/boot/vmlinuz-" + ver, k), (1, "/boot/initrd.img-" + ver, i)])


def symlink_gpt(k, i):
    """GPT, /boot/vmlinuz relative symlink, no initrd: initrd_sha256 is null."""
    pu = "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"
    tree = {"boot/vmlinuz-6.6.0-custom": k, "boot/vmlinuz": Link("vmlinuz-6.6.0-custom"),
            "etc/hostname": "custom\n"}
    parts = [Part(1, 1, None, T_LINUX, pu, "root",
                  ext4(tree, "6f7a8b9c-0d1e-4f2a-b3c4-d5e6f7a8b9c0", fstype="ext2"))]
    cmd = "root=PARTUUID=%s ro console=ttyS0" % pu
    return (16, "gpt", "2b3c4d5e-6f70-4182-93a4-b5c6d7e8f901", parts, ok(k, None, cmd, "symlink"),
            [(1, "/boot/vmlinuz-6.6.0-custom", k)])


def vfat_esp_only(k, i):
    """systemd-boot with the ESP mounted at /boot (Arch): everything on FAT32."""
    esp = {"loader/loader.conf": "default arch.conf\ntimeout 3\nconsole-mode max\neditor no\n",
           "loader/entries/arch.conf": ARCH_ENTRY,
           "vmlinuz-linux": k, "initramfs-linux.img": i,
           "EFI/systemd/systemd-bootx64.efi": b"MZ fake systemd-boot",
           "EFI/BOOT/BOOTX64.EFI": b"MZ fake systemd-boot"}
    parts = [Part(1, 1, None, T_ESP, "8c9d0e1f-2a3b-4c4d-8e5f-6a7b8c9d0e1f", "EFI system partition",
                  vfat(esp, "ABCD0123", fat=32))]
    return (48, "gpt", "4e5f6a7b-8c9d-4e0f-a1b2-c3d4e5f6a7b8", parts,
            ok(k, i, "root=LABEL=arch_os rw console=ttyS0", "bls"),
            [(1, "/vmlinuz-linux", k), (1, "/initramfs-linux.img", i)])


def gpt_simple(k, i, uuid, pu):
    tree = {"boot/vmlinuz-6.1.0-99-amd64": k, "boot/initrd.img-6.1.0-99-amd64": i,
            "boot/grub/grub.cfg": simple_grub_cfg(uuid, "/boot/vmlinuz-6.1.0-99-amd64",
                                                  "/boot/initrd.img-6.1.0-99-amd64",
                                                  "root=UUID=%s ro console=ttyS0" % uuid)}
    return [Part(1, 1, None, T_LINUX, pu, fs=ext4(tree, uuid))]


def gpt_bad_crc_backup(k, i):
    """Primary GPT header damaged, backup intact: read through the backup (UEFI 5.3.2)."""
    uuid = "d0e1f2a3-b4c5-4d6e-8f70-8192a3b4c5d6"
    return (16, "gpt", "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f",
            gpt_simple(k, i, uuid, "e1f2a3b4-c5d6-4e7f-8091-a2b3c4d5e6f7"),
            ok(k, i, "root=UUID=%s ro console=ttyS0" % uuid, "grub"),
            [(1, "/boot/vmlinuz-6.1.0-99-amd64", k)])


def gpt_bad_crc(k, i):
    uuid = "a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d"
    return (16, "gpt", "b1c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e",
            gpt_simple(k, i, uuid, "c2d3e4f5-a6b7-4c8d-9e0f-1a2b3c4d5e6f"), refuse(ERR_NO_KERNEL), [])


def gpt_truncated(k, i):
    # All but the first two sectors are cut off: what the file system holds does not matter.
    uuid = "e4f5a6b7-c8d9-4e0f-a1b2-c3d4e5f6a7b8"
    return (8, "gpt", "f5a6b7c8-d9e0-4f1a-b2c3-d4e5f6a7b8c9",
            gpt_simple(decoy("kernel"), decoy("initrd"), uuid, "a6b7c8d9-e0f1-4a2b-83c4-d5e6f7a8b9c0"), refuse(ERR_NO_KERNEL), [])


LOOP_DEPTH = 100


def ext4_loop(k, i):
    """/boot/grub/up is a hard link to /boot, a directory cycle that e2fsck
    would refuse and a recursive walk would never leave; the grub.cfg path goes
    round it LOOP_DEPTH times and ends in a symlink cycle."""
    uuid = "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d"
    kpath = "/boot/grub" + "/up/grub" * LOOP_DEPTH + "/up/vmlinuz"
    tree = {"boot/grub/grub.cfg": simple_grub_cfg(uuid, kpath, None, "root=UUID=%s ro" % uuid,
                                                  "part_msdos"),
            "boot/vmlinuz": Link("../vmlinuz"),
            "vmlinuz": Link("vmlinuz2"), "vmlinuz2": Link("vmlinuz"),
            "initrd.img": Link("/initrd.img")}
    parts = [Part(1, 1, None, "83", fs=ext4(tree, uuid, debugfs_cmds=["link /boot /boot/grub/up"]))]
    return (16, "dos", "0x10f00f01", parts, refuse(ERR_NO_KERNEL), [])


def grub_missing_file(k, i):
    root = "8b9c0d1e-2f3a-4b4c-9d5e-6f7a8b9c0d1e"
    tree = {"boot/grub/grub.cfg": debian_grub_cfg(root),
            "boot/initrd.img-" + DEB_VER: i, "boot/config-" + DEB_VER: "CONFIG_X86_64=y\n",
            "etc/os-release": os_release("Debian GNU/Linux 12 (bookworm)", "12", "debian")}
    parts = [Part(1, 1, None, T_ROOT_X86_64, "9c0d1e2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f", fs=ext4(tree, root))]
    # The refusal should name the file the default entry wants.
    return (16, "gpt", "0d1e2f3a-4b5c-4d6e-9f70-8a9b0c1d2e3f", parts,
            refuse("vmlinuz-" + DEB_VER), [])


def no_bootloader(k, i):
    tree = {"etc/os-release": os_release("Debian GNU/Linux 12 (bookworm)", "12", "debian"),
            "etc/fstab": "/dev/vda1 / ext4 defaults 0 1\n", "boot": None, "boot/grub": None,
            "home/user/notes.txt": "nothing to boot here\n", "usr/lib/modules": None}
    parts = [Part(1, 1, None, "83", fs=ext4(tree, "1e2f3a4b-5c6d-4e7f-8091-a2b3c4d5e6f8"))]
    return (16, "dos", "0x0badb007", parts, refuse(ERR_NO_KERNEL), [])


LAYOUTS = {
    "debian-gpt": debian_gpt,
    "ubuntu-mbr-bootpart": ubuntu_mbr_bootpart,
    "fedora-bls": fedora_bls,
    "symlink-only": symlink_only,
    "symlink-gpt": symlink_gpt,
    "vfat-esp-only": vfat_esp_only,
    "gpt-bad-crc-backup": gpt_bad_crc_backup,
    # refused
    "random": None,
    "gpt-truncated": gpt_truncated,
    "ext4-loop": ext4_loop,
    "grub-missing-file": grub_missing_file,
    "no-bootloader": no_bootloader,
    "gpt-bad-crc": gpt_bad_crc,
}


def build(name, k, i, out):
    """Writes out/<name>.img; returns its expect.json entry."""
    path = os.path.join(out, name + ".img")
    if name == "random":
        with open(path, "wb") as f:
            f.write(random.Random(12).randbytes(8 * MIB))
        return refuse(ERR_NO_KERNEL)
    size, label, label_id, parts, expect, probes = LAYOUTS[name](k, i)
    geo = write_disk(path, size, label, label_id, parts)
    check(path, geo, probes)
    if name == "gpt-truncated":
        with open(path, "r+b") as f:
            f.truncate(2 * SECTOR)  # protective MBR + header; its entries are gone
    elif name == "gpt-bad-crc":
        corrupt_gpt_header(path, "primary")
        corrupt_gpt_header(path, "backup")
        # libfdisk sees only the protective MBR now
        if sfdisk_label(path) != "dos":
            die("%s: sfdisk still reads a GPT" % path)
    elif name == "gpt-bad-crc-backup":
        corrupt_gpt_header(path, "primary")
        # libfdisk falls back to the backup header, as the reader must
        if sfdisk_label(path) != "gpt":
            die("%s: sfdisk cannot read the backup GPT" % path)
    return expect


def sfdisk_label(path):
    r = subprocess.run(["sfdisk", "--json", path], env=ENV, stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL)
    return json.loads(r.stdout)["partitiontable"]["label"] if r.returncode == 0 else None


def check(img, geo, probes):
    """Reads the expected files back with debugfs or mtools."""
    for num, path, want in probes:
        start, nsect = geo[num]
        with tempfile.TemporaryDirectory() as tmp:
            fs = os.path.join(tmp, "p")
            read_part(img, start, nsect, fs)
            with open(fs, "rb") as f:
                f.seek(1024 + 56)
                is_ext = f.read(2) == b"\x53\xef"
            if is_ext:
                got = run(["debugfs", "-R", "cat " + path, fs])
            else:
                got = run(["mtype", "-i", fs, "::" + path])
        if got != want:
            die("%s: partition %d %s does not hold what expect.json says" % (img, num, path))


# ---- fuzz seeds ------------------------------------------------------------

SEED_KERNEL = b"\x7fELF\x01\x01\x01" + bytes(range(256)) * 12  # 3 KiB, not a real kernel
SEED_INITRD = b"070701" + b"initrd" * 100


def seed_ext4_images(out):
    uuid = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
    cfg = simple_grub_cfg(uuid, "/boot/vmlinuz", "/boot/initrd.img", "root=UUID=%s ro" % uuid)
    base = {"boot/grub/grub.cfg": cfg, "boot/vmlinuz": SEED_KERNEL, "boot/initrd.img": SEED_INITRD}
    small = ["-b", "1024", "-N", "32"]
    long_target = "/boot/" + "d" * 70 + "/vmlinuz"  # longer than 60 bytes: a slow symlink
    specs = {
        "ext4-grub": (dict(base, vmlinuz=Link("boot/vmlinuz")), {}),
        # block maps, and a kernel past the 12 direct blocks (indirect block)
        "ext2-grub": (dict(base, **{"boot/vmlinuz": SEED_KERNEL * 6}), {"fstype": "ext2"}),
        # 2.25 MiB: the smallest journal is 1024 blocks, and mke2fs wants room around it
        "ext3-journal": (base, {"fstype": "ext3", "opts": ["-J", "size=1"], "size": 2304 * 1024}),
        "ext4-bls": ({"loader/entries/a-6.1.conf": fedora_entry("6.1.0-1.fc39.x86_64"),
                      "loader/entries/a-6.10.conf": fedora_entry("6.10.0-1.fc39.x86_64"),
                      "vmlinuz-6.10.0-1.fc39.x86_64": SEED_KERNEL,
                      "initramfs-6.10.0-1.fc39.x86_64.img": SEED_INITRD}, {}),
        "ext4-symlinks": ({"boot/vmlinuz-1": SEED_KERNEL, "vmlinuz": Link("/boot/vmlinuz-1"),
                           "boot/vmlinuz": Link("vmlinuz-1"), "initrd.img": Link(long_target),
                           "boot/" + "d" * 70 + "/vmlinuz": SEED_KERNEL,
                           "loop1": Link("loop2"), "loop2": Link("loop1"),
                           "boot/initrd.img": Link("../../../../initrd.img")}, {}),
        "ext4-loop": ({"boot/grub/grub.cfg": simple_grub_cfg(
                           uuid, "/boot/grub" + "/up/grub" * 8 + "/up/vmlinuz", None, "ro"),
                       "boot/vmlinuz": SEED_KERNEL},
                      {"debugfs_cmds": ["link /boot /boot/grub/up", "link / /boot/grub/root"]}),
        # 256-byte inodes: inline data beyond 60 bytes lives in the system.data xattr
        "ext4-inline": (base, {"opts": ["-O", "inline_data", "-I", "256"]}),
    }
    for name, (tree, kw) in specs.items():
        kw = dict(kw)
        opts = small + kw.pop("opts", [])
        size = kw.pop("size", MIB)
        path = os.path.join(out, "seed-" + name)
        mkext4(path, size, tree, uuid, opts=opts, block=1024, **kw)
        if os.path.getsize(path) != size:
            die("seed %s is not %d bytes" % (path, size))
    # A directory large enough for an htree index (e2fsck -D builds it).
    path = os.path.join(out, "seed-ext4-htree")
    links = []
    for n in range(120):
        if n % 16 == 0:
            links.append("expand_dir /boot/grub")  # debugfs's link does not grow a directory
        links.append("link /boot/vmlinuz /boot/grub/k%03d-%s" % (n, "x" * 40))
    mkext4(path, MIB, base, uuid, opts=small, block=1024, debugfs_cmds=links)
    r = subprocess.run(["e2fsck", "-fyD", path], env=ENV, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    if r.returncode not in (0, 1):
        die("e2fsck -D %s: %d" % (path, r.returncode))


def seed_fat_images(out):
    cfg = simple_grub_cfg("1234-ABCD", "/boot/vmlinuz", "/boot/initrd.img", "ro console=ttyS0")
    grub = {"boot/grub/grub.cfg": cfg, "boot/vmlinuz": SEED_KERNEL, "boot/initrd.img": SEED_INITRD}
    bls = {"loader/entries/arch.conf": ARCH_ENTRY, "vmlinuz-linux": SEED_KERNEL,
           "initramfs-linux.img": SEED_INITRD, "EFI/BOOT/BOOTX64.EFI": b"MZ"}
    lfn = {"EFI/Debian Long Directory Name/grub.cfg": debian_esp_stub("1234-ABCD"),
           "EFI/BOOT/BOOTX64.EFI": b"MZ", "UPPER.CFG": "x\n", "MiXeD.Conf": "y\n",
           "a/b/c/d/e/f/vmlinuz": SEED_KERNEL * 4}
    # FAT16 needs 4085 clusters: with one sector per cluster that is about 2.1 MiB.
    for name, tree, size, fat in (("fat12-grub", grub, MIB, 12), ("fat12-bls", bls, MIB, 12),
                                  ("fat12-lfn", lfn, MIB, 12),
                                  ("fat16-grub", grub, 2176 * 1024, 16)):
        path = os.path.join(out, "seed-" + name)
        if os.path.exists(path):
            os.unlink(path)
        mkvfat(path, size, tree, "1234ABCD", fat=fat, opts=["-s", "1"])
    # a deleted entry (0xE5) in front of the live one
    path = os.path.join(out, "seed-fat12-deleted")
    if os.path.exists(path):
        os.unlink(path)
    mkvfat(path, MIB, dict(grub, **{"boot/old-vmlinuz": SEED_KERNEL}), "1234ABCD", fat=12)
    run(["mdel", "-i", path, "::/boot/old-vmlinuz"])


def write_seeds(out):
    dirs = {t: os.path.join(out, "fuzz_bootdisk_" + t)
            for t in ("part", "ext4", "fat", "grubcfg", "bls")}
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            if f.startswith("seed-"):
                os.unlink(os.path.join(d, f))
    # part: the first 34 sectors (MBR + GPT header + 32 sectors of entries)
    with tempfile.TemporaryDirectory() as tmp:
        for name in LAYOUTS:
            build(name, SEED_KERNEL, SEED_INITRD, tmp)
            with open(os.path.join(tmp, name + ".img"), "rb") as f:
                head = f.read(34 * SECTOR)
            with open(os.path.join(dirs["part"], "seed-" + name), "wb") as f:
                f.write(head)
    # File systems are megabytes of mostly zeros: the targets take them sparse.
    sparse_seed = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fuzz",
                               "tools", "sparse-seed.py")
    for t, make in (("ext4", seed_ext4_images), ("fat", seed_fat_images)):
        with tempfile.TemporaryDirectory() as tmp:
            make(tmp)
            raws = sorted(os.path.join(tmp, f) for f in os.listdir(tmp) if f.startswith("seed-"))
            subprocess.run([sys.executable, sparse_seed, "-o", dirs[t]] + raws, check=True,
                           stdout=subprocess.DEVNULL)
    ru, bu = "b7e1f0c2-5d4a-4e3b-8c9d-0e1f2a3b4c5d", "5c4b3a29-1807-4f6e-9d5c-4b3a29180706"
    texts = {
        "grubcfg": {
            "debian": debian_grub_cfg(ru), "ubuntu": ubuntu_grub_cfg(ru, bu),
            "fedora": fedora_grub_cfg(ru, bu), "debian-esp-stub": debian_esp_stub(ru),
            "simple": simple_grub_cfg(ru, "/boot/vmlinuz", "/boot/initrd.img", "ro quiet"),
            "loop": simple_grub_cfg(ru, "/boot/grub" + "/up/grub" * LOOP_DEPTH + "/up/vmlinuz",
                                    None, "ro"),
        },
        "bls": {
            "fedora": fedora_entry(FED_NEW), "fedora-rescue": fedora_rescue_entry(),
            "arch": ARCH_ENTRY, "arch-fallback": ARCH_FALLBACK_ENTRY,
        },
    }
    for t, seeds in texts.items():
        for name, text in seeds.items():
            with open(os.path.join(dirs[t], "seed-" + name), "w") as f:
                f.write(text)
    for t, d in sorted(dirs.items()):
        n = len(os.listdir(d))
        big = max(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        print("%s: %d seeds, largest %d bytes" % (d, n, big))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kernel")
    ap.add_argument("--initrd")
    ap.add_argument("--out")
    ap.add_argument("--only", action="append", choices=sorted(LAYOUTS))
    ap.add_argument("--seeds", metavar="DIR")
    a = ap.parse_args()
    for tool in ("sfdisk", "mkfs.ext4", "mkfs.vfat", "mcopy", "mmd", "mtype", "debugfs", "e2fsck"):
        if not shutil.which(tool, path=os.environ.get("PATH", "") + ":/sbin:/usr/sbin"):
            die("%s not found (packages fdisk, e2fsprogs, dosfstools, mtools)" % tool)
    ENV["PATH"] = os.environ.get("PATH", "") + ":/sbin:/usr/sbin"
    if a.seeds:
        write_seeds(a.seeds)
        return
    if not (a.kernel and a.initrd and a.out):
        ap.error("--kernel, --initrd and --out are required (or --seeds DIR)")
    with open(a.kernel, "rb") as f:
        k = f.read()
    with open(a.initrd, "rb") as f:
        i = f.read()
    os.makedirs(a.out, exist_ok=True)
    expect = {}
    for name in a.only or LAYOUTS:
        expect[name] = build(name, k, i, a.out)
    with open(os.path.join(a.out, "expect.json"), "w") as f:
        json.dump(expect, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
