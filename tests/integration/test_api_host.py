"""The REST API without a guest: nimbus started as an API server (Kata's
and virtink's way: no VM options), driven the way Kata's Go and Rust
runtimes and libvirt drive Cloud Hypervisor, and attacked with broken,
oversized, stalled and numerous clients. Nothing here boots a VM, so these
are host tests: they run wherever nimbus builds (vm.boot is in
test_api_guest.py).
"""

import json
import os
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from framework import api as capi
from framework.net import NetNs, open_tap
from framework.plugin import require_nimbus

pytestmark = pytest.mark.host

FIXTURES = Path(__file__).parent / "fixtures" / "api"


def fill(name: str, **subs) -> dict:
    text = (FIXTURES / name).read_text()
    for k, v in subs.items():
        text = text.replace(f"@{k}@", str(v))
    return json.loads(text)


@pytest.fixture
def scratch(vm_factory):
    return vm_factory.scratch_dir()


@pytest.fixture
def payload(scratch):
    """Files a vm.create may name: they must exist, nothing boots them here."""
    for n in ("vmlinux", "initrd", "disk.img"):
        (scratch / n).write_bytes(b"\0" * 4096)
    return dict(KERNEL=scratch / "vmlinux", INITRAMFS=scratch / "initrd",
                CMDLINE="console=ttyS0 quiet", DISK=scratch / "disk.img", DIR=scratch)


def start_server(vm_factory, scratch, *extra, name="nimbus-api", pass_fds=()):
    sock = scratch / "api.sock"
    argv = [str(require_nimbus()), "--api-socket", str(sock), *extra]
    vm = vm_factory.spawn(argv, name=name, pass_fds=pass_fds)
    capi.wait_socket(sock, alive=vm.alive)
    return vm, capi.Api(sock)


@pytest.fixture
def server(vm_factory, scratch):
    events = scratch / "events.json"
    vm, a = start_server(vm_factory, scratch, "--event-monitor", f"path={events}")
    a.vm, a.events = vm, events
    return a


def test_ping_answers_like_cloud_hypervisor(server):
    r = server.get("vmm.ping")
    assert r.status == 200
    assert r.headers["server"] == "Cloud Hypervisor API"
    assert r.headers["content-type"] == "application/json"
    body = r.json
    assert body["pid"] == server.vm.proc.pid
    assert body["version"] and body["build_version"]
    assert body["features"] == []


def test_socket_is_private_and_not_stolen(server, vm_factory, scratch):
    mode = stat.S_IMODE(os.stat(server.path).st_mode)
    assert mode == 0o600, oct(mode)
    res = subprocess.run([str(require_nimbus()), "--api-socket", str(server.path)],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2
    assert "in use" in res.stderr and str(server.path) in res.stderr, res.stderr
    assert server.get("vmm.ping").status == 200  # the first server is unharmed


def test_stale_socket_is_replaced(vm_factory, scratch):
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(scratch / "api.sock"))
    stale.close()  # a socket file nobody listens on, as a crash leaves it
    vm, a = start_server(vm_factory, scratch)
    assert a.get("vmm.ping").status == 200


def test_kata_go_create_add_net_info(server, payload, vm_factory):
    """Kata's Go runtime up to vm.boot: create, check Created, add-net with the tap fd."""
    body = fill("kata_go_vm_create.json", **payload)
    r = server.put("vm.create", body)
    assert (r.status, r.body) == (204, b"")
    info = server.get("vm.info")
    assert info.status == 200
    cfg = info.json["config"]
    assert info.json["state"] == "Created"
    assert cfg["cpus"]["boot_vcpus"] == 1 and cfg["cpus"]["max_vcpus"] == 2
    assert cfg["memory"]["size"] == 1 << 30
    assert cfg["payload"]["kernel"] == str(payload["KERNEL"])
    assert cfg["disks"][0]["path"] == str(payload["DISK"]) and cfg["disks"][0]["readonly"]
    assert info.json["memory_actual_size"] == 1 << 30

    ns = NetNs()
    vm_factory.vms[0].add_cleanup(ns.close)
    fd = ns.call(open_tap, "ktap0")
    try:
        net = fill("kata_go_add_net.json", MAC="52:54:00:ab:cd:01")
        with capi.connect(server.path) as s:  # a new raw connection, as Kata
            r = capi.go_request(s, "PUT", "vm.add-net", net, fds=[fd])
        assert (r.status, r.body) == (204, b"")
    finally:
        os.close(fd)  # Kata closes its copy: nimbus must hold its own
    nets = server.get("vm.info").json["config"]["net"]
    assert [n["mac"] for n in nets] == ["52:54:00:ab:cd:01"]
    # The tap lives on in nimbus (a non-persistent tap vanishes with its last fd).
    assert ns.ip("link", "show", "ktap0")


def test_add_disk_and_remove_device_before_boot(server, payload):
    """Before boot vm.add-disk and vm.remove-device edit the config: a disk
    without an id is named at boot like the others (not now, where it could
    take the name of one created without an id), and ids must be unique."""
    body = fill("kata_go_vm_create.json", **payload)
    assert server.put("vm.create", body).status == 204
    extra = payload["DIR"] / "extra.img"
    extra.write_bytes(b"\0" * 4096)
    assert server.put("vm.add-disk", {"path": str(extra)}).status == 204
    assert server.put("vm.add-disk", {"path": str(extra), "id": "named1",
                                      "readonly": True}).status == 204
    r = server.put("vm.add-disk", {"path": str(extra), "id": "named1"})
    assert r.status == 400 and b"named1" in r.body, r.body
    assert server.put("vm.add-disk", {"readonly": True}).status == 400
    disks = server.get("vm.info").json["config"]["disks"]
    assert [d.get("id") for d in disks] == [None, None, "named1"], disks
    assert server.put("vm.remove-device", {"id": "named1"}).status == 204
    assert server.put("vm.remove-device", {"id": "named1"}).status == 404
    assert len(server.get("vm.info").json["config"]["disks"]) == 2


def test_resize_before_boot(server, payload):
    """Before boot vm.resize sets boot_vcpus (Kata sizes a VM it has not
    booted yet); out of range, malformed or a memory size: refused, config
    unchanged."""
    body = fill("kata_go_vm_create.json", **payload)
    body["cpus"].update(boot_vcpus=1, max_vcpus=4)
    body["cpus"]["topology"]["cores_per_die"] = 4
    assert server.put("vm.create", body).status == 204
    assert server.put("vm.resize", {"desired_vcpus": 3}).status == 204
    cpus = server.get("vm.info").json["config"]["cpus"]
    assert (cpus["boot_vcpus"], cpus["max_vcpus"]) == (3, 4), cpus
    for bad, status in (({"desired_vcpus": 5}, 400), ({"desired_vcpus": 0}, 400),
                        ({"desired_vcpus": -1}, 400), ({"desired_vcpus": "2"}, 400),
                        ({"desired_ram": 1 << 40}, 400), ({"desired_balloon": 1}, 501),
                        # the fixture's 1 GiB + 2 GiB hotplug area, in 128 MiB blocks
                        ({"desired_ram": (1 << 30) - (128 << 20)}, 400),
                        ({"desired_ram": (1 << 30) + (100 << 20)}, 400),
                        ({"desired_ram": (4 << 30)}, 400)):
        r = server.put("vm.resize", bad)
        assert r.status == status, (bad, r.status, r.body)
    # nimbus-remote's body: the sizes it was not given are null.
    assert server.put("vm.resize", {"desired_vcpus": 2, "desired_ram": None,
                                    "desired_balloon": None}).status == 204
    assert server.get("vm.info").json["config"]["cpus"]["boot_vcpus"] == 2
    # Memory before boot: the part of the hotplug area the guest starts with.
    assert server.put("vm.resize", {"desired_ram": (1 << 30) + (512 << 20)}).status == 204
    info = server.get("vm.info").json
    assert info["memory_actual_size"] == (1 << 30) + (512 << 20), info
    assert info["config"]["memory"]["hotplugged_size"] == 512 << 20, info["config"]["memory"]


def test_add_device_before_boot(server, payload):
    """vm.add-device before boot edits the config; plugins are bare names."""
    assert server.put("vm.create", fill("kata_go_vm_create.json", **payload)).status == 204
    assert server.put("vm.add-device", {"plugin": "virtio_rng", "id": "r1",
                                        "options": "src=/dev/urandom"}).status == 204
    for bad, status in (({"plugin": "virtio_rng", "id": "r1"}, 400),
                        ({"plugin": "../virtio_rng"}, 400), ({"plugin": "a/b"}, 400),
                        ({"plugin": "x" * 64}, 400), ({"plugin": 7}, 400),
                        ({"plugin": "virtio_rng", "id": "a,b"}, 400),
                        ({"path": "/sys/bus/pci/devices/0000:01:00.0"}, 501)):
        r = server.put("vm.add-device", bad)
        assert r.status == status, (bad, r.status, r.body)
    assert server.put("vm.remove-device", {"id": "r1"}).status == 204
    assert server.put("vm.remove-device", {"id": "r1"}).status == 404


def test_unknown_fields_are_ignored(server, payload):
    body = fill("kata_go_vm_create.json", **payload)
    body["x_future_field"] = 1
    body["cpus"]["x_future_cpu_field"] = {"a": [1, 2]}
    assert server.put("vm.create", body).status == 204


def test_rust_runtime_split_requests_on_one_connection(server, payload):
    """runtime-rs: one UnixStream for all calls, requests in four writes."""
    ns = NetNs()
    server.vm.add_cleanup(ns.close)
    fd = ns.call(open_tap, "rtap0")
    try:
        with capi.connect(server.path) as s:
            assert capi.rust_request(s, "GET", "vmm.ping").status == 200
            body = fill("kata_go_vm_create.json", **payload)
            assert capi.rust_request(s, "PUT", "vm.create", body).status == 204
            net = fill("kata_go_add_net.json", MAC="52:54:00:ab:cd:02")
            assert capi.rust_request(s, "PUT", "vm.add-net", net, fds=[fd]).status == 204
            r = capi.rust_request(s, "GET", "vm.info")
            assert r.status == 200 and r.json["state"] == "Created"
            assert len(r.json["config"]["net"]) == 1
    finally:
        os.close(fd)


def test_libvirt_nics_on_one_connection(server, payload):
    """libvirt: N add-net on one connection, each reply in one recv <= 1023 B."""
    body = fill("libvirt_vm_create.json", **payload)
    with capi.connect(server.path) as s:
        assert capi.libvirt_request(s, "PUT", "vm.create", body) in (200, 204)
    ns = NetNs()
    server.vm.add_cleanup(ns.close)
    fds = [ns.call(open_tap, f"lvtap{i}") for i in range(2)]
    try:
        with capi.connect(server.path) as s:
            for i, fd in enumerate(fds):
                net = fill("libvirt_add_net.json", ID=f"net_{i}", MAC=f"52:54:00:00:00:0{i + 1}")
                assert capi.libvirt_request(s, "PUT", "vm.add-net", net, fds=[fd]) == 204
    finally:
        for fd in fds:
            os.close(fd)
    nets = server.get("vm.info").json["config"]["net"]
    assert [n["id"] for n in nets] == ["net_0", "net_1"]
    # The same id twice is a conflict, and the connection stays usable.
    r = server.put("vm.add-net", fill("libvirt_add_net.json", ID="net_0", MAC="52:54:00:00:00:09"))
    assert r.status == 409 and "net_0" in r.json[0]


def test_fds_in_the_body_are_ignored(server, payload):
    assert server.put("vm.create", fill("kata_go_vm_create.json", **payload)).status == 204
    net = fill("kata_go_add_net.json", MAC="52:54:00:ab:cd:03")
    net["fds"] = [7]
    assert server.put("vm.add-net", net).status == 204
    assert "fds" not in json.dumps(server.get("vm.info").json["config"]["net"][0]) or \
        server.get("vm.info").json["config"]["net"][0].get("fds") in (None, [])


def test_add_net_fd_that_is_not_a_tap(server, payload):
    assert server.put("vm.create", fill("kata_go_vm_create.json", **payload)).status == 204
    with open("/dev/null", "rb") as f:
        r = server.put("vm.add-net", fill("kata_go_add_net.json", MAC="52:54:00:ab:cd:04"),
                       fds=[f.fileno()])
    assert r.status == 400, r.body
    assert server.get("vm.info").json["config"].get("net", []) == []


@pytest.mark.parametrize("method,endpoint,body,status", [
    ("GET", "nope", None, 404),
    ("GET", "vminfo", None, 404),            # CH issue #7422: a wrong name
    ("POST", "vm.boot", None, 400),          # wrong method
    ("GET", "vm.boot", None, 400),
    ("PUT", "vm.boot", {"a": 1}, 400),       # a body where none is taken
    ("PUT", "vm.create", None, 400),         # no body where one is needed
    ("PUT", "vm.create", b"{\"cpus\": ", 400),  # malformed JSON
    ("PUT", "vm.create", b"[1,2,3]", 400),
    ("PUT", "vm.create", {"cpus": {"boot_vcpus": "two"}}, 400),
    ("GET", "vm.info", None, 404),           # before vm.create
    ("PUT", "vm.boot", None, 404),
    ("PUT", "vm.pause", None, 404),
    ("PUT", "vm.shutdown", None, 404),
    ("PUT", "vm.reboot", None, 404),
    ("PUT", "vm.power-button", None, 404),
    ("GET", "vm.counters", None, 404),
    ("PUT", "vm.snapshot", {"destination_url": "file:///tmp/x"}, 501),  # not yet
    ("PUT", "vm.resize", {"desired_vcpus": 2}, 404),  # before vm.create
])
def test_errors_keep_the_connection(server, method, endpoint, body, status):
    with capi.connect(server.path) as s:
        if isinstance(body, bytes):
            req = (f"{method} /api/v1/{endpoint} HTTP/1.1\r\nHost: localhost\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body
            s.sendall(req)
            r = capi.read_reply(s)
        else:
            r = capi.go_request(s, method, endpoint, body)
        assert r.status == status, r.body
        errors = r.json
        assert isinstance(errors, list) and errors and all(isinstance(e, str) for e in errors)
        # Keep-alive across errors (micro-http #40): the next request works.
        assert capi.go_request(s, "GET", "vmm.ping").status == 200


def test_oversized_body_is_refused(server):
    big = b"{\"x\": \"" + b"a" * (2 << 20) + b"\"}"
    with capi.connect(server.path) as s:
        head = (f"PUT /api/v1/vm.create HTTP/1.1\r\nHost: localhost\r\n"
                f"Content-Length: {len(big)}\r\n\r\n").encode()
        s.sendall(head)
        t0 = time.monotonic()
        r = capi.read_reply(s, timeout=5)
        assert r.status == 413
        assert time.monotonic() - t0 < 2


def test_huge_content_length_without_body(server):
    """Refused at the end of the headers: nothing waits for 2^62 bytes."""
    with capi.connect(server.path) as s:
        s.sendall(b"PUT /api/v1/vm.create HTTP/1.1\r\nHost: localhost\r\n"
                  b"Content-Length: 4611686018427387904\r\n\r\n")
        r = capi.read_reply(s, timeout=5)
        assert r.status == 413
    assert server.get("vmm.ping").status == 200


def test_oversized_headers_and_url(server):
    with capi.connect(server.path) as s:
        s.sendall(b"GET /api/v1/vmm.ping HTTP/1.1\r\n" + b"X-Pad: " + b"p" * 9000 + b"\r\n\r\n")
        assert capi.read_reply(s, 5).status == 431
    with capi.connect(server.path) as s:
        s.sendall(b"GET /api/v1/" + b"v" * 2000 + b" HTTP/1.1\r\n\r\n")
        assert capi.read_reply(s, 5).status == 414


def test_stalled_half_request_blocks_nobody(server):
    stalled = capi.connect(server.path)
    try:
        stalled.sendall(b"PUT /api/v1/vm.create HTTP/1.1\r\nHost: localhost\r\nContent-Le")
        t0 = time.monotonic()
        for _ in range(20):
            assert server.get("vmm.ping").status == 200
        assert time.monotonic() - t0 < 5
        # A request that stalls after its headers, mid-body, too.
        stalled2 = capi.connect(server.path)
        stalled2.sendall(b"PUT /api/v1/vm.create HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"cp")
        assert server.get("vmm.ping").status == 200
        stalled2.close()
    finally:
        stalled.close()


def test_hundred_concurrent_clients(server):
    results, errors = [], []

    def client(i):
        try:
            with capi.connect(server.path, timeout=30) as s:
                for _ in range(3):
                    results.append(capi.go_request(s, "GET", "vmm.ping").status)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    # All connected before any is served, so they really are concurrent.
    threads = [threading.Thread(target=client, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:5]
    assert results == [200] * 300


def test_expect_continue_and_chunked_bodies(server, payload):
    """curl: Expect: 100-continue for big bodies; chunked when the size is unknown."""
    body = json.dumps(fill("kata_go_vm_create.json", **payload)).encode()
    with capi.connect(server.path) as s:
        s.sendall((f"PUT /api/v1/vm.create HTTP/1.1\r\nHost: localhost\r\n"
                   f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n").encode())
        s.settimeout(2)
        assert s.recv(64).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(body)
        assert capi.read_reply(s).status == 204
    assert server.put("vm.delete").status == 204
    with capi.connect(server.path) as s:
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 100]), body[i:i + 100])
                          for i in range(0, len(body), 100))
        s.sendall(b"PUT /api/v1/vm.create HTTP/1.1\r\nHost: localhost\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")
        assert capi.read_reply(s).status == 204


def test_create_twice_conflicts_and_delete_resets(server, payload):
    body = fill("kata_go_vm_create.json", **payload)
    assert server.put("vm.create", body).status == 204
    r = server.put("vm.create", body)
    assert r.status == 409
    assert server.put("vm.pause").status == 409       # created, not running
    assert server.put("vm.delete").status == 204
    assert server.get("vm.info").status == 404
    assert server.put("vm.create", body).status == 204
    names = capi.event_names(capi.read_events(server.events))
    assert names[0] == "vmm:starting" and "vm:deleted" in names


def test_vm_create_with_missing_kernel(server, payload):
    payload = dict(payload, KERNEL=payload["DIR"] / "no-such-kernel")
    r = server.put("vm.create", fill("kata_go_vm_create.json", **payload))
    assert r.status == 400 and "no-such-kernel" in r.json[0]
    assert server.get("vm.info").status == 404


def test_vmm_shutdown_ends_the_process(server):
    r = server.put("vmm.shutdown")
    assert r.status == 204
    assert server.vm.wait_exit(10) == 0
    assert not server.path.exists()
    names = capi.event_names(capi.read_events(server.events))
    assert names[0] == "vmm:starting" and names[-1] == "vmm:shutdown", names


def test_sigterm_ends_the_server(server):
    server.vm.proc.terminate()
    assert server.vm.wait_exit(10) == 128 + 15


def test_libvirt_passes_a_listening_socket_and_a_fifo(vm_factory, scratch):
    """libvirt: socket made and listening in the parent, --api-socket fd=N,
    events on a FIFO it reads (opened after the exec)."""
    lv = capi.LibvirtLaunch(vm_factory.spawn, require_nimbus(), scratch)
    assert lv.api.put("vmm.shutdown").status == 204
    assert lv.vm.wait_exit(10) == 0
    events = lv.events()
    assert capi.event_names(events) == ["vmm:starting", "vmm:shutdown"]
    assert all(set(e) == {"timestamp", "source", "event", "properties"} for e in events)


def test_vm_options_without_payload_are_refused(scratch):
    res = subprocess.run([str(require_nimbus()), "--api-socket", str(scratch / "a.sock"),
                          "--cmdline", "console=ttyS0"], capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 2 and "--kernel" in res.stderr, res.stderr
    # A --disk alone is a payload now (its boot loader's kernel): it must exist.
    res = subprocess.run([str(require_nimbus()), "--api-socket", str(scratch / "b.sock"),
                          "--disk", f"path={scratch}/x"], capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 2 and f"--disk: cannot open read-write '{scratch}/x'" in res.stderr, \
        res.stderr


@pytest.mark.parametrize("value,token", [("fd=999", "999"), ("fd=x", "x"),
                                         ("path=/a,fd=3", "not both"),
                                         ("bogus=1", "bogus")])
def test_bad_api_socket_values(value, token):
    res = subprocess.run([str(require_nimbus()), "--api-socket", value], capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 2 and token in res.stderr, res.stderr
    assert len([l for l in res.stderr.splitlines() if "error" in l]) == 1


def test_version_as_cloud_hypervisor(scratch):
    link = scratch / "cloud-hypervisor"
    link.symlink_to(require_nimbus())
    out = subprocess.run([str(link), "--version"], capture_output=True, text=True,
                         timeout=30).stdout
    # libvirt: STRSKIP("cloud-hypervisor v") then major.minor.micro, >= 15.0.
    assert out.startswith("cloud-hypervisor v"), out
    major, minor, micro = out[len("cloud-hypervisor v"):].strip().split(".")[:3]
    assert int(major) >= 40 and minor.isdigit() and micro.isdigit()
