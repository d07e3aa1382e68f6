"""Clients of nimbus's REST API (Cloud Hypervisor's /api/v1 on a unix
socket) that behave byte for byte like the real ones:

  go_request    Kata's Go runtime: the whole request in one sendmsg, tap fds
                as SCM_RIGHTS on it, Content-Type and Content-Length.
  rust_request  CH's api_client crate (Kata runtime-rs, ch-remote): request
                line + Host + Accept with the fds, then Content-Length, then
                the blank line, then the body, as separate writes; no
                Content-Type.
  libvirt_request  raw PUT on a connection it keeps for several NICs; the
                reply is read with ONE recv of at most 1023 bytes after a
                500 ms poll, and parsed with sscanf("HTTP/1.%*d %d").

Replies are parsed strictly (status line, headers, Content-Length) so a
server that only satisfies a lenient client is caught.
"""

import json
import os
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence

PREFIX = "/api/v1/"


@dataclass
class Reply:
    status: int
    reason: str
    headers: Dict[str, str]
    body: bytes
    raw_head: str = ""
    extra: List["Reply"] = field(default_factory=list)  # interim 100 Continue

    @property
    def json(self):
        return json.loads(self.body) if self.body else None


class ApiError(AssertionError):
    pass


def connect(path: Path, timeout: float = 10.0) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(str(path))
    return s


def wait_socket(path: Path, timeout: float = 10.0, alive=None) -> None:
    """Ping until the server answers (Kata polls vmm.ping every 10 ms)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise ApiError(f"the VMM exited before {path} answered")
        try:
            with connect(path, 1.0) as s:
                r = go_request(s, "GET", "vmm.ping")
                if r.status == 200:
                    return
        except OSError as e:
            last = e
        time.sleep(0.01)
    raise ApiError(f"{path} did not answer vmm.ping within {timeout} s ({last})")


def read_reply(s: socket.socket, timeout: float = 30.0) -> Reply:
    """One HTTP/1.1 response, strictly: Content-Length when there is a body."""
    s.settimeout(timeout)
    buf = b""
    interim: List[Reply] = []
    while True:
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                raise ApiError(f"connection closed before a full reply header: {buf!r}")
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or parts[0] != "HTTP/1.1":
            raise ApiError(f"bad status line {lines[0]!r}")
        status = int(parts[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if status == 100:
            interim.append(Reply(status, parts[2] if len(parts) > 2 else "", headers, b""))
            continue
        n = int(headers.get("content-length", "0"))
        while len(buf) < n:
            chunk = s.recv(65536)
            if not chunk:
                raise ApiError("connection closed inside a reply body")
            buf += chunk
        if len(buf) > n:
            raise ApiError(f"{len(buf) - n} unexpected bytes after the reply")
        return Reply(status, parts[2] if len(parts) > 2 else "", headers, buf[:n],
                     raw_head="\r\n".join(lines), extra=interim)


def _body_bytes(body) -> bytes:
    if body is None:
        return b""
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


def go_request(s: socket.socket, method: str, endpoint: str, body=None,
               fds: Sequence[int] = (), timeout: float = 30.0) -> Reply:
    data = _body_bytes(body)
    req = (f"{method} {PREFIX}{endpoint} HTTP/1.1\r\nHost: localhost\r\n"
           "User-Agent: OpenAPI-Generator/1.0.0/go\r\nAccept: application/json\r\n")
    if body is not None or method == "PUT":
        req += f"Content-Length: {len(data)}\r\nContent-Type: application/json\r\n"
    req = req.encode() + b"\r\n" + data
    if fds:
        socket.send_fds(s, [req], list(fds))
    else:
        s.sendall(req)
    return read_reply(s, timeout)


def rust_request(s: socket.socket, method: str, endpoint: str, body=None,
                 fds: Sequence[int] = (), timeout: float = 30.0, gap: float = 0.02) -> Reply:
    """CH's api_client: four writes, fds with the first."""
    first = f"{method} {PREFIX}{endpoint} HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n".encode()
    if fds:
        socket.send_fds(s, [first], list(fds))
    else:
        s.sendall(first)
    data = _body_bytes(body)
    if body is not None:
        time.sleep(gap)
        s.sendall(f"Content-Length: {len(data)}\r\n".encode())
    time.sleep(gap)
    s.sendall(b"\r\n")
    if data:
        time.sleep(gap)
        s.sendall(data)
    r = read_reply(s, timeout)
    # api_client: only 100/200/204 are success; it finds the length by this exact text.
    if r.body and "Content-Length: " not in r.raw_head:
        raise ApiError("reply body without the exact 'Content-Length: ' header")
    return r


def libvirt_request(s: socket.socket, method: str, endpoint: str, body,
                    fds: Sequence[int] = ()) -> int:
    """libvirt's chMonitor raw request: returns the status it would parse."""
    data = _body_bytes(body)
    req = (f"{method} {PREFIX}{endpoint} HTTP/1.1\r\nHost: localhost\r\n"
           f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data
    if fds:
        socket.send_fds(s, [req], list(fds))
    else:
        s.sendall(req)
    ready, _, _ = select.select([s], [], [], 0.5)
    if not ready:
        raise ApiError(f"no reply to {endpoint} within libvirt's 500 ms")
    s.settimeout(0.5)
    buf = s.recv(1023)
    text = buf.decode("latin-1")
    if not text.startswith("HTTP/1."):
        raise ApiError(f"libvirt cannot parse {text[:80]!r}")
    status = int(text.split(" ", 2)[1])
    # One recv must have taken the whole reply, or the next request reads its tail.
    head, _, rest = text.partition("\r\n\r\n")
    n = 0
    for line in head.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            n = int(v)
    if len(rest) != n:
        raise ApiError(f"reply to {endpoint} did not fit one 1023-byte recv: {text!r}")
    return status


class Api:
    """Convenience: one request per new connection, Go style."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def call(self, method: str, endpoint: str, body=None, fds: Sequence[int] = ()) -> Reply:
        with connect(self.path) as s:
            return go_request(s, method, endpoint, body, fds)

    def get(self, endpoint: str) -> Reply:
        return self.call("GET", endpoint)

    def put(self, endpoint: str, body=None, fds: Sequence[int] = ()) -> Reply:
        return self.call("PUT", endpoint, body, fds)

    def ok(self, method: str, endpoint: str, body=None, fds: Sequence[int] = ()):
        r = self.call(method, endpoint, body, fds)
        if r.status not in (200, 204):
            raise ApiError(f"{method} {endpoint}: {r.status} {r.body!r}")
        return r.json

    def state(self) -> str:
        r = self.get("vm.info")
        if r.status != 200:
            raise ApiError(f"vm.info: {r.status} {r.body!r}")
        return r.json["state"]


def read_events(path: Path) -> List[dict]:
    """Events written so far (objects separated by a blank line, as CH's tests split)."""
    try:
        text = Path(path).read_text()
    except OSError:
        return []
    return [json.loads(chunk) for chunk in text.split("\n\n") if chunk.strip()]


def event_names(events: List[dict]) -> List[str]:
    return [f"{e['source']}:{e['event']}" for e in events]


class LibvirtLaunch:
    """Start a VMM the way libvirt's ch driver does: it makes, binds and
    listens on the API socket itself and passes it as --api-socket fd=N,
    and reads events from a FIFO it opens after the exec (both opens
    block until the other side comes). `spawn(argv, pass_fds, name)` starts
    the process (a VmFactory's spawn). After wait(), `api` is ready;
    events() returns what the FIFO carried once the VMM has exited."""

    def __init__(self, spawn, binary: Path, scratch: Path, name: str = "libvirt"):
        self.path = Path(scratch) / "lv.sock"
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lsock.bind(str(self.path))
        lsock.listen(1)
        fifo = Path(scratch) / "events.fifo"
        os.mkfifo(fifo)
        fd = lsock.fileno()
        self.vm = spawn([str(binary), "--api-socket", f"fd={fd}", "--event-monitor",
                         f"path={fifo}"], name=name, pass_fds=[fd])
        lsock.close()  # the VMM has its copy, as after libvirt's exec
        self._text: List[str] = []
        self._reader = threading.Thread(target=lambda: self._text.append(open(fifo).read()),
                                        daemon=True)
        self._reader.start()
        wait_socket(self.path, alive=self.vm.alive)
        self.api = Api(self.path)

    def events(self, timeout: float = 10.0) -> List[dict]:
        self._reader.join(timeout)
        text = self._text[0] if self._text else ""
        return [json.loads(c) for c in text.split("\n\n") if c.strip()]
