"""The request sequences of Kata Containers' Go and Rust runtimes and of
libvirt's ch driver (../../shared/reference/integrations.md §1.3, §2.2,
§3.1 in the workspace), replayed against nimbus booting the test guest:
status codes and body shapes as each client parses them, the tap handed
over with vm.add-net really carrying traffic, counters that count, pause
and resume, and in-process reboots (vm.reboot and the guest's own) that
keep the disks, the taps and the pty.
"""

import json
import os
import re
import socket
import threading
import time
from pathlib import Path


from framework import api as capi
from framework.net import NetNs, open_tap, ping
from framework.paths import assets, guest_cmdline
from framework.plugin import require_nimbus

FIXTURES = Path(__file__).parent / "fixtures" / "api"
BOOT_TIMEOUT = 180
MIB = 1 << 20
HOST_IP, GUEST_IP = "192.168.249.1", "192.168.249.2"
MAC = "52:54:00:4b:41:01"


def fill(name: str, **subs) -> dict:
    text = (FIXTURES / name).read_text()
    for k, v in subs.items():
        text = text.replace(f"@{k}@", str(v))
    return json.loads(text)


def payload(scratch: Path) -> dict:
    a = assets()
    disk = scratch / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(64 * MIB)
    return dict(KERNEL=a.guest_kernel, INITRAMFS=a.guest_initramfs, CMDLINE=guest_cmdline(),
                DISK=disk, DIR=scratch)


def spawn_server(vm_factory, scratch, *extra, pass_fds=()):
    sock = scratch / "api.sock"
    events = scratch / "events.json"
    argv = [str(require_nimbus()), "--api-socket", f"path={sock}",
            "--event-monitor", f"path={events}", *extra]
    vm = vm_factory.spawn(argv, name="nimbus-api", pass_fds=pass_fds)
    capi.wait_socket(sock, alive=vm.alive)
    a = capi.Api(sock)
    a.vm, a.events = vm, events
    return a


def tap_in(ns: NetNs, name: str) -> int:
    fd = ns.call(open_tap, name)
    ns.ip("addr", "add", f"{HOST_IP}/24", "dev", name)
    ns.ip("link", "set", name, "up")
    return fd


def guest_net_up(vm, mac: str, addr: str) -> str:
    out = vm.check_output(
        "for d in /sys/class/net/*; do [ -e $d/device ] && echo ${d##*/} $(cat $d/address); "
        "done; true")
    names = {m: n for n, m in (l.split() for l in out.splitlines() if l.strip())}
    assert mac in names, f"no guest NIC with MAC {mac}: {out}"
    vm.check_output(f"ip addr add {addr}/24 dev {names[mac]} && ip link set {names[mac]} up")
    return names[mac]


def names(a) -> list:
    return capi.event_names(capi.read_events(a.events))


def test_kata_go_runtime_sequence(vm_factory):
    """Kata's Go driver (clh.go): ping, create, info, add-net with the tap
    fd on a raw connection, boot, info; then what a sandbox's life brings:
    counters, pause/resume, vm.reboot, vmm.shutdown."""
    scratch = vm_factory.scratch_dir()
    ns = NetNs()
    a = spawn_server(vm_factory, scratch)
    a.vm.add_cleanup(ns.close)
    p = payload(scratch)
    body = fill("kata_go_vm_create.json", **p)
    body["disks"][0]["readonly"] = False  # the test writes to it
    body["console"] = {"mode": "Pty"}  # so vm.reboot's pty can be checked (libvirt's mode)
    assert a.put("vm.create", body).status == 204
    assert a.state() == "Created"
    fd = tap_in(ns, "kgo0")
    try:
        with capi.connect(a.path) as s:
            r = capi.go_request(s, "PUT", "vm.add-net", fill("kata_go_add_net.json", MAC=MAC),
                                fds=[fd])
        assert (r.status, r.body) == (204, b"")
    finally:
        os.close(fd)
    r = a.put("vm.boot")  # Go sends Content-Length: 0
    assert (r.status, r.body) == (204, b""), r.body
    info = a.get("vm.info").json
    assert info["state"] == "Running"
    assert info["config"]["net"][0]["mac"] == MAC
    bdfs = {k: v.get("pci_bdf") for k, v in info["device_tree"].items()}
    # Kata's clhPciInfoToPath accepts only 0000:00:XX.0.
    assert all(re.fullmatch(r"0000:00:[0-9a-f]{2}\.0", b) for b in bdfs.values() if b), bdfs
    assert "_disk0" in bdfs and "_net0" in bdfs, bdfs

    vm = a.vm
    vm.wait_ready(BOOT_TIMEOUT)
    assert vm.check_output("nproc") == "1"
    # libvirt sorts threads by name: vcpu<N>, and "_disk"/"_net" prefixes for I/O threads.
    comms = {Path(f"/proc/{vm.proc.pid}/task/{t}/comm").read_text().strip()
             for t in os.listdir(f"/proc/{vm.proc.pid}/task")}
    assert {"vcpu0", "_disk0_q0", "_net0_q0", "http-server"} <= comms, comms
    guest_net_up(vm, MAC, GUEST_IP)
    out = vm.check_output(f"ping -c 3 -W 5 {HOST_IP}", timeout=60)
    assert " 0% packet loss" in out, out
    assert ping(lambda: ns.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
                GUEST_IP) >= 2

    counters = a.get("vm.counters").json
    assert counters["_net0"]["tx_frames"] >= 3 and counters["_net0"]["rx_frames"] >= 3, counters
    assert counters["_net0"]["tx_bytes"] > 0 and counters["_net0"]["rx_bytes"] > 0
    # Write through the page cache to the disk, then flush: data must survive the reboot.
    dev = vm.check_output("for b in /sys/block/vd*; do echo ${b##*/}; done").split()[0]
    vm.check_output(f"echo nimbus-reboot-marker | dd of=/dev/{dev} bs=512 seek=2048 conv=fsync "
                    "2>/dev/null")
    after = a.get("vm.counters").json["_disk0"]
    assert after["write_ops"] >= 1 and after["write_bytes"] >= 512, after

    # K10/K11: Kata grows the sandbox (its fixture: max_vcpus 2, a 2 GiB
    # hotplug area); the reboot below then starts with both.
    assert a.put("vm.resize", {"desired_vcpus": 2}).status == 204
    r = a.put("vm.resize", {"desired_ram": (1 << 30) + (256 << 20)})
    assert r.status == 204, r.body
    info = a.get("vm.info").json
    assert info["config"]["cpus"]["boot_vcpus"] == 2, info["config"]["cpus"]
    assert info["memory_actual_size"] == (1 << 30) + (256 << 20), info

    assert a.put("vm.pause").status == 204
    assert a.state() == "Paused"
    assert a.put("vm.pause").status == 409
    t0 = time.monotonic()
    assert ping(lambda: ns.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
                GUEST_IP, count=1, timeout=2) == 0, "a paused guest answered"
    assert a.put("vm.resume").status == 204
    assert a.state() == "Running"
    assert vm.check_output("echo alive", timeout=60) == "alive"
    assert time.monotonic() - t0 < 60

    pid = vm.proc.pid
    pty = a.get("vm.info").json["config"]["console"]["file"]
    assert pty.startswith("/dev/pts/"), pty
    assert a.put("vm.reboot").status == 204
    vm.wait_ready(BOOT_TIMEOUT, after_reset=True)
    assert vm.proc.pid == pid
    assert a.get("vm.info").json["config"]["console"]["file"] == pty
    out = vm.check_output(f"dd if=/dev/{dev} bs=512 skip=2048 count=1 2>/dev/null | head -c 20")
    assert out == "nimbus-reboot-marker", out
    assert vm.check_output("nproc") == "2"  # the resize outlived the reboot
    guest_net_up(vm, MAC, GUEST_IP)  # the same tap, kept across the reboot
    out = vm.check_output(f"ping -c 2 -W 5 {HOST_IP}", timeout=60)
    assert " 0% packet loss" in out, out

    assert a.put("vmm.shutdown").status == 204
    assert vm.wait_exit(60) == 0
    ev = names(a)
    for e in ("vmm:starting", "vm:booting", "vm:booted", "vm:pausing", "vm:paused",
              "vm:resuming", "vm:resumed", "vm:rebooting", "vm:rebooted", "vm:shutdown",
              "vmm:shutdown"):
        assert e in ev, (e, ev)
    assert ev.index("vm:rebooting") < ev.index("vm:rebooted") < ev.index("vmm:shutdown")


def test_kata_rust_runtime_sequence(vm_factory):
    """runtime-rs: every call on ONE connection, each request in four writes
    (fds on the first), then vmm.shutdown."""
    scratch = vm_factory.scratch_dir()
    ns = NetNs()
    a = spawn_server(vm_factory, scratch)
    a.vm.add_cleanup(ns.close)
    fd = tap_in(ns, "krs0")
    with capi.connect(a.path, timeout=60) as s:
        assert capi.rust_request(s, "GET", "vmm.ping").json["features"] == []
        assert capi.rust_request(s, "PUT", "vm.create",
                                 fill("kata_go_vm_create.json", **payload(scratch))).status == 204
        assert capi.rust_request(s, "PUT", "vm.add-net", fill("kata_go_add_net.json", MAC=MAC),
                                 fds=[fd]).status == 204
        os.close(fd)
        assert capi.rust_request(s, "PUT", "vm.boot").status == 204
        r = capi.rust_request(s, "GET", "vm.info")
        assert r.status == 200 and r.json["state"] == "Running"
        a.vm.wait_ready(BOOT_TIMEOUT)
        guest_net_up(a.vm, MAC, GUEST_IP)
        out = a.vm.check_output(f"ping -c 2 -W 5 {HOST_IP}", timeout=60)
        assert " 0% packet loss" in out, out
        assert capi.rust_request(s, "PUT", "vmm.shutdown").status == 204
    assert a.vm.wait_exit(60) == 0


def test_libvirt_sequence_and_guest_reboot(vm_factory):
    """libvirt's ch driver: listening socket passed as fd, events on a FIFO,
    create, two NICs on one connection (one recv <= 1023 B each), boot with
    Content-Length: 0, the pty path from vm.info; the guest reboots itself
    (vm:rebooted, same pty path), vm.shutdown then vmm.shutdown."""
    scratch = vm_factory.scratch_dir()
    ns = NetNs()
    lv = capi.LibvirtLaunch(vm_factory.spawn, require_nimbus(), scratch)
    vm, path, a = lv.vm, lv.path, lv.api
    vm.add_cleanup(ns.close)

    body = fill("libvirt_vm_create.json", **payload(scratch))
    with capi.connect(path) as s:
        assert capi.libvirt_request(s, "PUT", "vm.create", body) in (200, 204)
    macs = ["52:54:00:1b:00:01", "52:54:00:1b:00:02"]
    fds = [tap_in(ns, "lv0"), ns.call(open_tap, "lv1")]
    try:
        with capi.connect(path) as s:
            for i, tfd in enumerate(fds):
                net = fill("libvirt_add_net.json", ID=f"net_{i}", MAC=macs[i])
                assert capi.libvirt_request(s, "PUT", "vm.add-net", net, fds=[tfd]) == 204
    finally:
        for tfd in fds:
            os.close(tfd)
    with capi.connect(path) as s:
        s.sendall(b"PUT /api/v1/vm.boot HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 0\r\n\r\n")
        assert capi.read_reply(s, 60).status == 204
    info = a.get("vm.info").json
    pty = info["config"]["console"]["file"]
    assert info["state"] == "Running" and pty.startswith("/dev/pts/"), info["config"]["console"]
    assert os.path.exists(pty)
    assert [n["id"] for n in info["config"]["net"]] == ["net_0", "net_1"]

    vm.wait_ready(BOOT_TIMEOUT)
    assert vm.check_output("nproc") == "1"
    guest_net_up(vm, macs[0], GUEST_IP)
    assert " 0% packet loss" in vm.check_output(f"ping -c 2 -W 5 {HOST_IP}", timeout=60)
    # The pty carries the virtio console: the guest writes, the host reads it.
    pfd = os.open(pty, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        vm.check_output("echo via-hvc0 > /dev/hvc0")
        deadline, got = time.monotonic() + 30, b""
        while b"via-hvc0" not in got and time.monotonic() < deadline:
            try:
                got += os.read(pfd, 4096)
            except BlockingIOError:
                time.sleep(0.2)
        assert b"via-hvc0" in got, got
    finally:
        os.close(pfd)

    # The guest's own reboot keeps the disk's data and the pty (vm.reboot: the Kata test).
    dev = vm.check_output("for b in /sys/block/vd*; do echo ${b##*/}; done").split()[0]
    marker = "marker-before-guest-reboot"
    vm.check_output(f"echo {marker} | dd of=/dev/{dev} bs=512 seek=4096 conv=fsync 2>/dev/null")
    vm.send("reboot -f\n")
    vm.wait_ready(BOOT_TIMEOUT, after_reset=True)
    info = a.get("vm.info").json
    assert info["state"] == "Running"
    assert info["config"]["console"]["file"] == pty, "the pty changed across the reboot"
    got = vm.check_output(f"dd if=/dev/{dev} bs=512 skip=4096 count=1 2>/dev/null | "
                          f"head -c {len(marker)}")
    assert got == marker, got

    assert a.put("vm.shutdown").status == 204
    assert a.state() == "Shutdown"
    assert a.put("vm.pause").status == 409       # after vm.shutdown
    assert a.get("vm.counters").status == 409
    assert a.put("vmm.shutdown").status == 204
    assert vm.wait_exit(60) == 0
    events = lv.events()
    ev = capi.event_names(events)
    assert ev[0] == "vmm:starting" and ev[-1] == "vmm:shutdown", ev
    assert ev.index("vm:booted") < ev.index("vm:rebooting") < ev.index("vm:rebooted") \
        < ev.index("vm:shutdown"), ev


def test_guest_poweroff_keeps_the_api_serving(vm_factory):
    """With an API socket, a guest poweroff ends the VM, not nimbus (CH)."""
    scratch = vm_factory.scratch_dir()
    p = payload(scratch)
    a = spawn_server(vm_factory, scratch, "--kernel", str(p["KERNEL"]), "--initramfs",
                     str(p["INITRAMFS"]), "--cmdline", p["CMDLINE"], "--serial", "tty",
                     "--console", "off", "--memory", "size=512M")
    a.vm.wait_ready(BOOT_TIMEOUT)
    assert a.state() == "Running"
    a.vm.send("poweroff -f\n")
    deadline = time.monotonic() + 120
    while a.state() != "Shutdown" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert a.state() == "Shutdown"
    assert a.vm.alive()
    assert "vm:shutdown" in names(a)
    assert a.put("vmm.shutdown").status == 204
    assert a.vm.wait_exit(30) == 0


def test_hostile_clients_while_the_vm_runs(vm_factory):
    """The error cases of the host tests, now with a guest running: every
    client gets its status, and the guest and the API keep answering."""
    scratch = vm_factory.scratch_dir()
    a = spawn_server(vm_factory, scratch)
    assert a.put("vm.create", fill("kata_go_vm_create.json", **payload(scratch))).status == 204
    assert a.put("vm.boot").status == 204
    a.vm.wait_ready(BOOT_TIMEOUT)

    stalled = capi.connect(a.path)
    stalled.sendall(b"PUT /api/v1/vm.pause HTTP/1.1\r\nHost: localhost\r\nContent-Le")
    silent = capi.connect(a.path)  # connected, never sends a byte
    cases = [
        (b"GET /api/v1/nope HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"POST /api/v1/vm.boot HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 400),
        (b"PUT /api/v1/vm.boot HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 409),
        (b"PUT /api/v1/vm.create HTTP/1.1\r\nContent-Length: 9\r\n\r\n{\"cpus\": ", 409),
        (b"PUT /api/v1/vm.create HTTP/1.1\r\nContent-Length: 4611686018427387904\r\n\r\n", 413),
        (b"GET /api/v1/" + b"v" * 2000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET /api/v1/vmm.ping HTTP/1.1\r\nX: " + b"p" * 9000 + b"\r\n\r\n", 431),
        (b"\x00\x01\x02garbage\r\n\r\n", 400),
    ]
    for raw, status in cases:
        with capi.connect(a.path) as s:
            s.sendall(raw)
            r = capi.read_reply(s, 10)
            assert r.status == status, (raw[:60], r.status, r.body)
    statuses, errors = [], []

    def client():
        try:
            with capi.connect(a.path, timeout=60) as s:
                statuses.append(capi.go_request(s, "GET", "vm.info").status)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=client) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and statuses == [200] * 100, (errors[:3], statuses.count(200))
    # The guest ran throughout and still answers; so does the API.
    assert a.vm.check_output("echo alive", timeout=60) == "alive"
    assert a.state() == "Running"
    stalled.close()
    silent.close()
    assert a.put("vmm.shutdown").status == 204
    assert a.vm.wait_exit(60) == 0
