"""nimbus-remote (Cloud Hypervisor's ch-remote for nimbus) without a guest.

Most tests run it against a fake API server written here with the socket
module, which records every request byte for byte (and the descriptors that
came with it) and answers with canned bytes: the request each subcommand
makes, what is printed for each answer, exit statuses, and the errors of a
bad command line, of a missing server and of broken responses. The last test
drives the real `nimbus --api-socket` server.
"""

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Sequence, Tuple, Union

import pytest

from framework import api as capi
from framework import paths
from framework.plugin import require_nimbus

pytestmark = pytest.mark.host

HEAD = "{} /api/v1/{} HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n"
NO_CONTENT = b"HTTP/1.1 204 \r\nServer: Cloud Hypervisor API\r\nConnection: keep-alive\r\n\r\n"


def remote_bin() -> Path:
    """paths.nimbus_remote_bin(), which must have been built."""
    path = paths.nimbus_remote_bin()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"nimbus-remote binary {path} is missing: build it (ninja -C build) "
                    "or set NIMBUS_REMOTE_BIN", pytrace=False)
    return path


def response(status: int, reason: str = "", body: bytes = b"", extra: str = "") -> bytes:
    head = f"HTTP/1.1 {status} {reason}\r\nServer: Cloud Hypervisor API\r\n{extra}"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


def request_bytes(method: str, endpoint: str, body: Union[bytes, None] = None) -> bytes:
    head = HEAD.format(method, endpoint)
    if body is None:
        return (head + "\r\n").encode()
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


@dataclass
class Request:
    raw: bytes = b""
    chunks: List[Tuple[bytes, List[int]]] = field(default_factory=list)  # per recvmsg
    fds: List[int] = field(default_factory=list)

    @property
    def body(self) -> bytes:
        return self.raw.partition(b"\r\n\r\n")[2]


def read_request(conn: socket.socket) -> Request:
    """Until the blank line and Content-Length bytes of body, keeping the
    descriptors of each recvmsg apart."""
    req = Request()
    while True:
        data, fds, _flags, _addr = socket.recv_fds(conn, 65536, 16)
        if not data and not fds:
            return req
        req.chunks.append((data, list(fds)))
        req.raw += data
        req.fds += fds
        head, sep, body = req.raw.partition(b"\r\n\r\n")
        if sep:
            m = re.search(rb"\r\nContent-Length: (\d+)\r\n", head + b"\r\n")
            if len(body) >= (int(m.group(1)) if m else 0):
                return req


Reply = Union[bytes, Callable[[socket.socket], None]]


class FakeServer:
    """Listens on `path`; answers the n-th connection with replies[n] (bytes,
    or a function given the connection) after reading one request."""

    def __init__(self, path: Path, replies: Sequence[Reply]):
        self.path = path
        self.replies = list(replies)
        self.requests: List[Request] = []
        self.error = None
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(8)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for reply in self.replies:
                conn, _ = self.sock.accept()
                with conn:
                    conn.settimeout(20)
                    self.requests.append(read_request(conn))
                    if callable(reply):
                        reply(conn)
                    else:
                        conn.sendall(reply)
        except OSError as e:  # the listening socket shut down by close()
            self.error = e

    @property
    def request(self) -> Request:
        assert len(self.requests) == 1, self.requests
        return self.requests[0]

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes a pending accept()
        except OSError:
            pass
        self.sock.close()
        self.thread.join(10)
        for req in self.requests:
            for fd in req.fds:
                os.close(fd)


@pytest.fixture
def sock_dir():
    # Short, unlike pytest's tmp_path: sun_path holds 107 bytes.
    d = Path(tempfile.mkdtemp(prefix="nimbus-remote-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def fake(sock_dir):
    servers = []

    def make(*replies: Reply) -> FakeServer:
        s = FakeServer(sock_dir / f"api{len(servers)}.sock", replies)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def run(*args: str, input: Union[bytes, None] = None, pass_fds: Sequence[int] = (),
        timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([str(remote_bin()), *args], input=input, capture_output=True,
                          pass_fds=pass_fds, timeout=timeout)


def remote(server: FakeServer, *args: str, **kw) -> subprocess.CompletedProcess:
    return run("--api-socket", str(server.path), *args, **kw)


def one_line(stream: bytes) -> str:
    text = stream.decode()
    assert text.endswith("\n") and text.count("\n") == 1, repr(text)
    return text[:-1]


# --- requests ------------------------------------------------------------------

def test_ping_prints_the_body(fake):
    body = b'{"build_version":"nimbus-0.1.0","version":"51.1.0","pid":1,"features":[]}'
    srv = fake(response(200, "OK", body))
    res = remote(srv, "ping")
    assert (res.returncode, res.stdout, res.stderr) == (0, body + b"\n", b"")
    assert srv.request.raw == request_bytes("GET", "vmm.ping")


@pytest.mark.parametrize("sub,endpoint", [
    ("boot", "vm.boot"), ("delete", "vm.delete"), ("shutdown", "vm.shutdown"),
    ("reboot", "vm.reboot"), ("power-button", "vm.power-button"), ("pause", "vm.pause"),
    ("resume", "vm.resume"), ("nmi", "vm.nmi"), ("shutdown-vmm", "vmm.shutdown"),
])
def test_actions_put_without_a_body(fake, sub, endpoint):
    srv = fake(NO_CONTENT)
    res = remote(srv, sub)
    assert (res.returncode, res.stdout, res.stderr) == (0, b"", b"")
    assert srv.request.raw == request_bytes("PUT", endpoint)
    assert srv.request.fds == []


@pytest.mark.parametrize("sub,endpoint", [("info", "vm.info"), ("counters", "vm.counters")])
def test_getters_print_the_body_once(fake, sub, endpoint):
    body = b'{"state":"Created"}\n'  # already ends with a newline: none added
    srv = fake(response(200, "OK", body))
    res = remote(srv, sub)
    assert (res.returncode, res.stdout) == (0, body)
    assert srv.request.raw == request_bytes("GET", endpoint)


def test_create_sends_the_file_as_it_is(fake, sock_dir):
    config = b'{"payload": {"kernel": "/k"},\n "cpus": {"boot_vcpus": 1, "max_vcpus": 1}}\n'
    (sock_dir / "vm.json").write_bytes(config)
    srv = fake(NO_CONTENT, NO_CONTENT)
    res = remote(srv, "create", str(sock_dir / "vm.json"))
    assert res.returncode == 0, res.stderr
    res = remote(srv, "create", input=config)  # no path: standard input, as "-"
    assert res.returncode == 0, res.stderr
    for req in srv.requests:
        assert req.raw == request_bytes("PUT", "vm.create", config)


def test_add_net_parses_like_nimbus_and_sends_the_fds(fake):
    """fd=[a,b] leaves the body and rides on the first write, as in ch-remote."""
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    try:
        srv = fake(NO_CONTENT)
        net = (f"mac=52:54:00:12:34:56,fd=[{r1},{r2}],id=net7,mtu=1400,"
               "offload_ufo=off")
        res = remote(srv, "add-net", net, pass_fds=(r1, r2))
        assert (res.returncode, res.stderr) == (0, b"")
        req = srv.request
        first, fds = req.chunks[0]
        assert first == HEAD.format("PUT", "vm.add-net").encode()
        assert len(fds) == 2 and all(not f for _, f in req.chunks[1:])
        got = [os.fstat(fd)[stat.ST_INO] for fd in fds]
        assert got == [os.fstat(r1)[stat.ST_INO], os.fstat(r2)[stat.ST_INO]]
        assert req.raw == request_bytes("PUT", "vm.add-net", req.body)
        body = json.loads(req.body)
        assert "fds" not in body
        assert body["mac"] == "52:54:00:12:34:56" and body["id"] == "net7"
        assert body["num_queues"] == 4 and body["queue_size"] == 256  # 2 per fd
        assert body["mtu"] == 1400
        assert (body["offload_tso"], body["offload_ufo"], body["offload_csum"]) == \
               (True, False, True)
        assert "tap" not in body and "ip" not in body
    finally:
        for fd in (r1, w1, r2, w2):
            os.close(fd)


def test_add_net_keeps_the_host_side_and_user_mode(fake):
    srv = fake(NO_CONTENT, NO_CONTENT)
    assert remote(srv, "add-net", "tap=vmtap9,ip=192.168.9.1,mask=255.255.0.0,"
                  "host_mac=52:54:00:00:00:02").returncode == 0
    assert remote(srv, "add-net", "user=on,hostfwd=[tcp::2222-:22]").returncode == 0
    tap, user = (json.loads(r.body) for r in srv.requests)
    assert (tap["tap"], tap["ip"], tap["mask"], tap["host_mac"]) == \
           ("vmtap9", "192.168.9.1", "255.255.0.0", "52:54:00:00:00:02")
    assert user["user"] is True and user["hostfwd"] == ["tcp::2222-:22"]


@pytest.mark.parametrize("net", [
    "mac=zz", "mac=01:00:00:00:00:01", "num_queues=3", "queue_size=100", "bogus=1",
    "tap=a,fd=[3]", "mask=255.0.0.0", "ip=10.0.0.1,mask=255.0.255.0", "fd=[5,5]",
    "user=on,tap=t0", "mtu=20",
])
def test_add_net_errors_are_the_command_lines(fake, net):
    """Same parser, same words: only the program and the option name differ."""
    srv = fake(NO_CONTENT)
    res = remote(srv, "add-net", net)
    assert res.returncode == 2
    line = one_line(res.stderr)
    assert line.startswith("nimbus-remote: error: add-net: "), line
    cli = subprocess.run([str(require_nimbus()), "--kernel", "/dev/null", f"--net={net}"],
                         capture_output=True, text=True, timeout=30)
    assert cli.returncode == 2
    first = cli.stderr.splitlines()[0]
    assert first.startswith("nimbus: error: --net: "), first
    assert line[len("nimbus-remote: error: add-net: "):] == first[len("nimbus: error: --net: "):]
    assert srv.requests == []  # nothing was sent


def test_add_net_fd_must_be_open_here(fake):
    srv = fake(NO_CONTENT)
    res = remote(srv, "add-net", "fd=[1000]")
    assert res.returncode == 2
    assert "fd 1000 is not open" in one_line(res.stderr)
    assert srv.requests == []


@pytest.mark.parametrize("args,endpoint,body", [
    (["snapshot", "file:///tmp/snap"], "vm.snapshot",
     b'{"destination_url":"file:///tmp/snap"}'),
    (["coredump", "/tmp/core"], "vm.coredump", b'{"destination_url":"/tmp/core"}'),
    (["remove-device", "net7"], "vm.remove-device", b'{"id":"net7"}'),
    # nimbus's plugin form: the keys the API does not name become the plugin's options.
    (["add-device", "plugin=virtio_rng,src=/dev/urandom,id=rng9,x=1"], "vm.add-device",
     b'{"plugin":"virtio_rng","id":"rng9","options":"src=/dev/urandom,x=1"}'),
    (["add-device", "path=/sys/bus/pci/devices/0000:01:00.0,iommu=on"], "vm.add-device",
     b'{"path":"/sys/bus/pci/devices/0000:01:00.0","iommu":true}'),
    (["resize", "--cpus", "4"], "vm.resize",
     b'{"desired_vcpus":4,"desired_ram":null,"desired_balloon":null}'),
    (["resize", "--memory=2G", "--balloon", "0"], "vm.resize",
     b'{"desired_vcpus":null,"desired_ram":2147483648,"desired_balloon":0}'),
    (["resize-disk", "--disk", "disk0", "--size", "20G"], "vm.resize-disk",
     b'{"id":"disk0","desired_size":21474836480}'),
    (["resize-zone", "--id", "mem0", "--size", "1M"], "vm.resize-zone",
     b'{"id":"mem0","desired_ram":1048576}'),
    (["restore", "source_url=file:///tmp/snap,prefault=on"], "vm.restore",
     b'{"source_url":"file:///tmp/snap","prefault":true,"resume":false}'),
    (["add-disk", "path=/tmp/d.img,readonly=on,id=d1"], "vm.add-disk",
     b'{"path":"/tmp/d.img","readonly":true,"direct":false,"iommu":false,"num_queues":1,'
     b'"queue_size":256,"vhost_user":false,"id":"d1","backing_files":false,"pci_segment":0}'),
    (["add-vsock", "cid=3,socket=/tmp/v.sock"], "vm.add-vsock", b"cid=3,socket=/tmp/v.sock"),
    (["send-migration", "destination_url=unix:/tmp/m"], "vm.send-migration",
     b"destination_url=unix:/tmp/m"),
    (["receive-migration", "receiver_url=unix:/tmp/m"], "vm.receive-migration",
     b"receiver_url=unix:/tmp/m"),
])
def test_bodies_as_ch_remote_builds_them(fake, args, endpoint, body):
    srv = fake(NO_CONTENT)
    res = remote(srv, *args)
    assert res.returncode == 0, res.stderr
    assert srv.request.raw == request_bytes("PUT", endpoint, body)


# --- answers -------------------------------------------------------------------

@pytest.mark.parametrize("reply,message", [
    (response(500, "Internal Server Error",
              b'["Error from API","The VM could not boot","Invalid state"]'),
     "HTTP 500: Error from API: The VM could not boot: Invalid state"),
    (response(404, "Not Found"), "HTTP 404: Not Found"),
    (response(400, "Bad Request", b"bad request\n"), "HTTP 400: bad request"),
    (response(501, "Not Implemented", b'"vm.boot is not implemented"'),
     "HTTP 501: vm.boot is not implemented"),
    (response(500, "", b'["\\u001b[2Jcleared\\nsecond line"]'),
     "HTTP 500: ?[2Jcleared second line"),
    (response(200, "OK", b"x", extra="X-A: b\r\n").replace(b"200 OK", b"202 Accepted"),
     "HTTP 202: x"),
])
def test_error_statuses_exit_1_with_one_line(fake, reply, message):
    srv = fake(reply)
    res = remote(srv, "boot")
    assert (res.returncode, res.stdout) == (1, b"")
    assert one_line(res.stderr) == f"nimbus-remote: vm.boot: {message}"


def dribble(data: bytes) -> Callable[[socket.socket], None]:
    def send(conn):
        for i in range(len(data)):
            conn.sendall(data[i:i + 1])
            time.sleep(0.002)
    return send


def test_response_in_pieces_after_an_interim_one(fake):
    body = b'{"state":"Running"}'
    srv = fake(dribble(b"HTTP/1.1 100 Continue\r\n\r\n" + response(200, "OK", body)))
    res = remote(srv, "info")
    assert (res.returncode, res.stdout, res.stderr) == (0, body + b"\n", b"")


def close_now(conn):
    pass


@pytest.mark.parametrize("reply,message", [
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
     "chunked transfer encoding is not supported"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 17000000\r\n\r\n", "above the limit"),
    (b"SSH-2.0-OpenSSH_9.2\r\n", "not an HTTP/1.x response"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", "in the middle of the response"),
    (close_now, "closed the connection without a response"),
    (b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 17000 + b"\r\n\r\n",
     "longer than 16384 bytes"),
])
def test_broken_responses_exit_1(fake, reply, message):
    srv = fake(reply)
    res = remote(srv, "info")
    assert (res.returncode, res.stdout) == (1, b"")
    line = one_line(res.stderr)
    assert line.startswith("nimbus-remote: vm.info: ") and message in line, line


def test_timeout_gives_up(fake):
    release = threading.Event()
    srv = fake(lambda conn: release.wait(20))
    t = time.monotonic()
    res = run("--timeout", "1", "--api-socket", str(srv.path), "info")
    elapsed = time.monotonic() - t
    release.set()
    assert res.returncode == 1
    assert "no complete response within 1 s" in one_line(res.stderr)
    assert elapsed < 5, elapsed


def test_no_timeout_waits(fake):
    """Without --timeout a slow call (vm.shutdown of a busy guest) is waited for."""
    srv = fake(lambda conn: (time.sleep(2), conn.sendall(NO_CONTENT)))
    assert remote(srv, "shutdown").returncode == 0


# --- no server, bad command lines ------------------------------------------------

def test_no_server(sock_dir):
    path = sock_dir / "nobody.sock"
    res = run("--api-socket", str(path), "ping")
    assert res.returncode == 1
    line = one_line(res.stderr)
    assert str(path) in line and "No such file or directory" in line, line

    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # a socket file nobody listens on
    try:
        res = run("--api-socket", str(path), "ping")
    finally:
        stale.close()
    assert res.returncode == 1
    assert "Connection refused" in one_line(res.stderr)


@pytest.mark.parametrize("args,token", [
    ([], "missing subcommand"),
    (["--api-socket", "@"], "missing subcommand"),
    (["--api-socket", "@", "bogus"], "'bogus'"),
    (["ping"], "--api-socket"),
    (["--api-socket"], "--api-socket needs a value"),
    (["--api-socket", "@", "--api-socket", "@", "ping"], "--api-socket given more than once"),
    (["--frobnicate", "--api-socket", "@", "ping"], "'--frobnicate'"),
    (["--timeout", "0", "--api-socket", "@", "ping"], "'0'"),
    (["--api-socket", "@", "boot", "now"], "'now'"),
    (["--api-socket", "@", "info", "--verbose"], "'--verbose'"),
    (["--api-socket", "@", "add-net"], "add-net: missing argument"),
    (["--api-socket", "@", "snapshot", "a", "b"], "'b'"),
    (["--api-socket", "@", "resize"], "--cpus"),
    (["--api-socket", "@", "add-device", "id=x"], "plugin= (or path=) is required"),
    (["--api-socket", "@", "add-device", "plugin=a,oops"], "'oops' in 'plugin=a,oops'"),
    (["--api-socket", "@", "add-device", "plugin=a,plugin=b"], "plugin= given more than once"),
    (["--api-socket", "@", "add-device", "path=/x,src=y"], "has options but no plugin="),
    (["--api-socket", "@", "resize", "--cpus", "two"], "'two'"),
    (["--api-socket", "@", "resize", "--memory", "12Q"], "'12Q'"),
    (["--api-socket", "@", "resize", "--cpus", "1", "--cpus=2"], "--cpus given more than once"),
    (["--api-socket", "@", "resize", "--disk", "x"], "'--disk'"),
    (["--api-socket", "@", "resize-disk", "--disk", "d0"], "--size is required"),
    (["--api-socket", "@", "resize-zone", "--size", "1G"], "--id is required"),
    (["--api-socket", "@", "restore", "prefault=on"], "source_url"),
    (["--api-socket", "@", "restore", "source_url=x,prefault=maybe"], "'maybe'"),
    (["--api-socket", "@", "create", "/nonexistent/vm.json"], "'/nonexistent/vm.json'"),
])
def test_bad_usage_exits_2_naming_the_token(fake, args, token):
    srv = fake(NO_CONTENT)
    args = [str(srv.path) if a == "@" else a for a in args]
    res = run(*args, timeout=10)
    assert (res.returncode, res.stdout) == (2, b"")
    line = one_line(res.stderr)
    assert line.startswith("nimbus-remote: error: ") and token in line, line
    assert srv.requests == []


def test_help_and_version():
    res = run("--help")
    assert res.returncode == 0 and res.stderr == b""
    text = res.stdout.decode()
    # Every ch-remote subcommand (cloud-hypervisor/src/bin/ch-remote.rs).
    for sub in ("add-device", "add-disk", "add-fs", "add-generic-vhost-user", "add-net",
                "add-pmem", "add-user-device", "add-vdpa", "add-vsock", "boot", "coredump",
                "counters", "create", "delete", "info", "nmi", "pause", "ping",
                "power-button", "reboot", "receive-migration", "remove-device", "resize",
                "resize-disk", "resize-zone", "restore", "resume", "send-migration",
                "shutdown", "shutdown-vmm", "snapshot"):
        assert re.search(rf"^  {re.escape(sub)}( |$)", text, re.M), sub
    assert "--api-socket" in text and "--timeout" in text
    assert run("-h").stdout == res.stdout
    res = run("--version")
    assert res.returncode == 0
    assert re.fullmatch(rb"nimbus-remote \d+\.\d+\.\d+\n", res.stdout), res.stdout
    res = run("--api-socket", "/nonexistent", "resize", "--help")
    assert res.returncode == 0 and b"resize [--cpus <n>]" in res.stdout


# --- the real server ------------------------------------------------------------

def test_against_nimbus_api_server(vm_factory):
    """ping, create, info, add-net, delete, shutdown-vmm on `nimbus --api-socket`."""
    helptext = subprocess.run([str(require_nimbus()), "--help"], capture_output=True,
                              text=True, timeout=30).stdout
    if "--api-socket" not in helptext:
        pytest.skip("this nimbus has no REST API server yet (--api-socket)")
    scratch = vm_factory.scratch_dir()
    kernel = scratch / "vmlinux"
    kernel.write_bytes(b"\0" * 4096)  # vm.create checks it exists; nothing boots it
    sock = scratch / "api.sock"
    vm = vm_factory.spawn([str(require_nimbus()), "--api-socket", str(sock)], name="api")
    capi.wait_socket(sock, alive=vm.alive)

    def call(*args, **kw):
        return run("--api-socket", str(sock), *args, **kw)

    res = call("ping")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["pid"] == vm.proc.pid

    config = {"payload": {"kernel": str(kernel), "cmdline": "console=ttyS0"},
              "cpus": {"boot_vcpus": 1, "max_vcpus": 1},
              "memory": {"size": 256 << 20}}
    (scratch / "vm.json").write_text(json.dumps(config))
    res = call("create", str(scratch / "vm.json"))
    assert (res.returncode, res.stdout, res.stderr) == (0, b"", b"")

    res = call("add-net", "mac=52:54:00:00:00:07,id=n7,user=on")
    assert (res.returncode, res.stderr) == (0, b"")

    res = call("info")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["state"] == "Created"
    assert info["config"]["payload"]["kernel"] == str(kernel)
    assert [(n["mac"], n["id"]) for n in info["config"]["net"]] == [("52:54:00:00:00:07", "n7")]

    res = call("create", input=json.dumps(config).encode())  # a second VM: refused
    assert res.returncode == 1
    assert one_line(res.stderr).startswith("nimbus-remote: vm.create: HTTP ")

    res = call("delete")
    assert (res.returncode, res.stderr) == (0, b"")
    res = call("info")
    assert res.returncode == 1
    assert one_line(res.stderr).startswith("nimbus-remote: vm.info: HTTP ")

    res = call("shutdown-vmm")
    assert (res.returncode, res.stderr) == (0, b"")
    assert vm.wait_exit(10) == 0
