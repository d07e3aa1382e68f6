"""PCI hotplug into a running guest (issue 15): vm.add-disk, vm.add-net and
vm.remove-device as Kata Containers sends them, through ACPI PCI hotplug.
The guest's own acpiphp must find the disk (right size and serial) and the
NIC (its MAC, carrying traffic), what it writes must be in the image once
the guest has ejected the disk, and removing a disk the guest is reading
must not hurt nimbus.
"""

import hashlib
import os
import re
import socket
import time

import pytest

from framework.api import Api, wait_socket
from framework.vm import wait_for
from framework.disks import guest_disks, guest_read_sha256, guest_write_random, make_image
from framework.net import NetNs, open_tap, ping

BOOT_TIMEOUT = 180  # nested TCG
MIB = 1 << 20
HOST_IP, GUEST_IP = "192.168.247.1", "192.168.247.2"
MAC = "52:54:00:4b:48:01"


def disk_with_serial(vm, serial: str):
    return next((d for d in guest_disks(vm).values() if d.serial == serial), None)


def device_ids(api: Api) -> dict:
    info = api.ok("GET", "vm.info")
    return {k: v.get("pci_bdf") for k, v in (info.get("device_tree") or {}).items()}


@pytest.fixture
def booted(vm_factory):
    work = vm_factory.scratch_dir()
    root = make_image(work / "root.raw", 16 * MIB)
    sock = work / "api.sock"
    vm = vm_factory.nimbus(extra=["--disk", f"path={root},id=root0", "--api-socket",
                                  f"path={sock}", "-v"])
    vm.wait_ready(BOOT_TIMEOUT)
    wait_socket(sock, 30, alive=vm.alive)
    return vm, Api(sock), work


@pytest.mark.slow
def test_disk_added_and_removed_at_run_time(booted):
    vm, api, work = booted
    pattern = os.urandom(MIB)
    img = make_image(work / "hot.raw", 32 * MIB, fill=pattern)

    r = api.put("vm.add-disk", {"path": str(img), "id": "hot0", "serial": "hotserial7"})
    assert r.status == 200, (r.status, r.body)
    assert r.json["id"] == "hot0"
    bdf = r.json["bdf"]
    assert bdf.startswith("0000:00:") and bdf.endswith(".0"), bdf
    assert device_ids(api).get("hot0") == bdf

    disk = wait_for(lambda: disk_with_serial(vm, "hotserial7"), 60, "the hot-plugged disk")
    assert disk.size == 32 * MIB, disk
    assert not disk.ro
    # The guest reads what the image holds, from the device.
    assert guest_read_sha256(vm, disk.dev, 0, 1) == hashlib.sha256(pattern).hexdigest()
    # The guest found it in the slot the API named.
    slot_dir = vm.check_output(f"readlink -f /sys/block/{disk.name}/device/..")
    assert bdf in slot_dir, (bdf, slot_dir)

    sha = guest_write_random(vm, disk.dev, 4, 2)
    r = api.put("vm.remove-device", {"id": "hot0"})
    assert r.status == 204, (r.status, r.body)
    wait_for(lambda: "hot0" not in device_ids(api), 60, "nimbus to free the ejected disk")
    assert disk_with_serial(vm, "hotserial7") is None
    with open(img, "rb") as f:
        f.seek(4 * MIB)
        assert hashlib.sha256(f.read(2 * MIB)).hexdigest() == sha

    # The disk the guest booted with is untouched, and the slot can be used again.
    root = disk_with_serial(vm, "root0")
    assert root is not None, guest_disks(vm)
    sha = guest_write_random(vm, root.dev, 1, 1)
    assert guest_read_sha256(vm, root.dev, 1, 1) == sha
    r = api.put("vm.add-disk", {"path": str(img), "id": "hot1", "serial": "again"})
    assert r.status == 200, (r.status, r.body)
    again = wait_for(lambda: disk_with_serial(vm, "again"), 60, "the disk plugged again")
    assert guest_read_sha256(vm, again.dev, 4, 2) == sha_of_image(img, 4, 2)


def sha_of_image(img, offset_mib: int, mib: int) -> str:
    with open(img, "rb") as f:
        f.seek(offset_mib * MIB)
        return hashlib.sha256(f.read(mib * MIB)).hexdigest()


@pytest.mark.slow
def test_removing_a_disk_under_io_and_bad_requests(booted):
    vm, api, work = booted
    img = make_image(work / "busy.raw", 64 * MIB)
    # Kata's K8 body (integrations.md §5.2): no id, so nimbus names it.
    r = api.put("vm.add-disk", {"path": str(img), "readonly": False, "image_type": "Raw",
                                "vhost_user": False, "num_queues": 1, "queue_size": 1024,
                                "iommu": False})
    assert r.status == 200, (r.status, r.body)
    busy = r.json["id"]
    assert re.fullmatch(r"_disk\d+", busy), busy
    assert re.fullmatch(r"0000:00:[0-9a-f]{2}\.0", r.json["bdf"]), r.json
    disk = wait_for(lambda: disk_with_serial(vm, busy), 60, "the hot-plugged disk")
    # Reads and writes keep going while the guest is asked to eject it.
    # (The loop ends by itself once the device node is gone.)
    vm.check_output(f"sh -c 'while dd if={disk.dev} of=/dev/null bs=64k iflag=direct && "
                    f"dd if=/dev/zero of={disk.dev} bs=64k count=64 oflag=direct; do :; done' "
                    f">/dev/null 2>&1 </dev/null & echo $! >/tmp/busy.pid")
    time.sleep(2)
    r = api.put("vm.remove-device", {"id": busy})
    assert r.status == 204, (r.status, r.body)
    wait_for(lambda: busy not in device_ids(api), 90, "nimbus to free the busy disk")
    vm.check_output("kill $(cat /tmp/busy.pid) 2>/dev/null; true")
    assert vm.alive()
    assert api.state() == "Running"
    assert vm.check_output("echo still-here") == "still-here"

    # Refused requests leave the VM as it was.
    r = api.put("vm.add-disk", {"path": str(work / "missing.raw"), "id": "nope"})
    assert r.status == 500, (r.status, r.body)
    assert "nope" not in device_ids(api)
    r = api.put("vm.add-disk", {"path": str(img), "id": "root0"})
    assert r.status == 400, (r.status, r.body)
    r = api.put("vm.add-disk", {"id": "x"})
    assert r.status == 400, (r.status, r.body)
    r = api.put("vm.remove-device", {"id": "no-such-device"})
    assert r.status == 404, (r.status, r.body)
    r = api.put("vm.remove-device", {"nothing": 1})
    assert r.status == 400, (r.status, r.body)
    assert vm.alive() and api.state() == "Running"


@pytest.mark.slow
def test_nic_added_at_run_time_carries_traffic(booted):
    """Kata hands the tap over with vm.add-net after boot (its tap lives in
    the sandbox's network namespace; nimbus only gets the descriptor)."""
    vm, api, work = booted
    ns = NetNs()
    vm.add_cleanup(ns.close)
    fd = ns.call(open_tap, "hpt0")
    ns.ip("addr", "add", f"{HOST_IP}/24", "dev", "hpt0")
    ns.ip("link", "set", "hpt0", "up")
    try:
        r = api.put("vm.add-net", {"mac": MAC, "id": "hotnet0"}, fds=[fd])
    finally:
        os.close(fd)
    assert r.status == 200, (r.status, r.body)
    assert r.json["id"] == "hotnet0"
    assert device_ids(api).get("hotnet0") == r.json["bdf"]

    def nic():
        out = vm.check_output("for d in /sys/class/net/*; do [ -e $d/device ] && "
                              "echo ${d##*/} $(cat $d/address); done; true")
        return next((l.split()[0] for l in out.splitlines() if l.endswith(MAC)), None)

    name = wait_for(nic, 60, "the hot-plugged NIC")
    vm.check_output(f"ip addr add {GUEST_IP}/24 dev {name} && ip link set {name} up")
    out = vm.check_output(f"ping -c 3 -W 5 {HOST_IP}", timeout=60)
    assert " 0% packet loss" in out or "3 packets received" in out, out
    answered = ping(lambda: ns.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
                    GUEST_IP, count=3)
    assert answered >= 2, f"the guest answered {answered} of 3 echo requests"

    r = api.put("vm.remove-device", {"id": "hotnet0"})
    assert r.status == 204, (r.status, r.body)
    wait_for(lambda: "hotnet0" not in device_ids(api), 60, "nimbus to free the ejected NIC")
    assert nic() is None
    # The test closed its copy after the request, so the (non-persistent)
    # tap lives exactly as long as nimbus holds it: it goes with the NIC.
    wait_for(lambda: "hpt0" not in ns.links(), 10, "nimbus to let go of the tap")


def guest_pci(vm, bdf: str) -> str:
    """The guest's PCI device id of bdf, or "" when it has none there."""
    return vm.check_output(f"cat /sys/bus/pci/devices/{bdf}/device 2>/dev/null; true").strip()


@pytest.mark.slow
def test_plugin_added_and_removed_at_run_time(booted):
    """vm.add-device with any virtio plugin, named by its bare name only."""
    vm, api, _ = booted
    r = api.put("vm.add-device", {"plugin": "virtio_rng", "id": "rng9",
                                  "options": "src=/dev/urandom"})
    assert r.status == 200, (r.status, r.body)
    assert r.json["id"] == "rng9"
    bdf = r.json["bdf"]
    assert device_ids(api).get("rng9") == bdf
    # A modern virtio entropy device (0x1040 + 4) where the answer says, driven by virtio_rng.
    wait_for(lambda: guest_pci(vm, bdf) == "0x1044", 60, "the guest to find the rng")
    wait_for(lambda: "virtio_rng" in vm.check_output(
        "cat /sys/class/misc/hw_random/rng_available"), 30, "virtio_rng to bind")
    data = vm.check_output("dd if=/dev/hwrng bs=32 count=1 2>/dev/null | od -An -tx1 | tr -d ' \\n'")
    assert len(data) == 64 and data != "0" * 64, data

    # A client names plugins, never code: paths and odd names are refused,
    # and so is a plugin that is not a PCI device (its ports freed again).
    for body, status in (({"plugin": "../plugins/virtio_rng"}, 400),
                         ({"plugin": "/tmp/evil.so"}, 400), ({"plugin": ""}, 400),
                         ({"plugin": "no_such_plugin"}, 500), ({"options": "x=1"}, 400),
                         ({"plugin": "virtio_rng", "id": "rng9"}, 400),
                         ({"plugin": "uart16550", "options": "iobase=0x2f8,irq=3"}, 500),
                         ({"plugin": "uart16550", "options": "iobase=0x2f8,irq=3"}, 500),
                         ({"path": "/sys/bus/pci/devices/0000:01:00.0"}, 501)):
        r = api.put("vm.add-device", body)
        assert r.status == status, (body, r.status, r.body)
        if body.get("plugin") == "uart16550":
            assert "not a virtio device" in r.json[0], r.json

    r = api.put("vm.remove-device", {"id": "rng9"})
    assert r.status == 204, (r.status, r.body)
    wait_for(lambda: "rng9" not in device_ids(api), 60, "nimbus to free the ejected rng")
    assert guest_pci(vm, bdf) == ""
    assert vm.check_output("echo alive") == "alive"
