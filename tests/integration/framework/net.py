"""Host network helpers for tests: tap devices and network namespaces that
never outlive a test, and the host ends of guest traffic (sockets, taps
opened by the test, ICMP echo) created inside such a namespace."""

import ctypes
import fcntl
import json
import os
import secrets
import socket
import struct
import subprocess
import threading
import time
from typing import Callable, Dict, List, Optional, TypeVar

T = TypeVar("T")


class Tap:
    """A tap interface created with `ip`, deleted by close() (idempotent).
    Register close() with Vm.add_cleanup or the vm factory. `netns`: create
    it in that namespace (a NetNs name); `multi_queue`: IFF_MULTI_QUEUE, for
    a VMM that opens it with several queues."""

    def __init__(self, name: str = "", up: bool = True, netns: str = "",
                 multi_queue: bool = False):
        self.name = name or f"ntap{secrets.token_hex(3)}"
        self.netns = netns
        if len(self.name) > 15:
            raise ValueError(f"interface name too long: {self.name}")
        self._ip("tuntap", "add", "dev", self.name, "mode", "tap",
                 *(["multi_queue"] if multi_queue else []))
        self._open = True
        if up:
            self._ip("link", "set", self.name, "up")

    def _ip(self, *args: str) -> None:
        _ip(*(["-n", self.netns] if self.netns else []), *args)

    def exists(self) -> bool:
        ns = ["-n", self.netns] if self.netns else []
        return subprocess.run(["ip", *ns, "link", "show", "dev", self.name],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              check=False).returncode == 0

    def close(self) -> None:
        if self._open:
            self._open = False
            ns = ["-n", self.netns] if self.netns else []
            subprocess.run(["ip", *ns, "link", "del", "dev", self.name],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=False)


def _ip(*args: str) -> str:
    res = subprocess.run(["ip", *args], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {res.stdout.strip()}")
    return res.stdout


# --- network namespaces ------------------------------------------------------

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class NetNs:
    """A named network namespace (`ip netns add`) with loopback up, deleted
    by close(). A VMM runs in it under the argv prefix `wrap()`; the test's
    own sockets and taps are created in it with `call()`: a socket or a
    /dev/net/tun file belongs to the namespace it was created in, whichever
    thread uses it later."""

    def __init__(self, prefix: str = "nimbus-it"):
        self.name = f"{prefix}-{secrets.token_hex(4)}"
        _ip("netns", "add", self.name)
        self._open = True
        try:
            _ip("-n", self.name, "link", "set", "lo", "up")
        except Exception:
            self.close()
            raise

    def wrap(self) -> List[str]:
        """argv prefix running a command in this namespace (exec, no fork:
        the pid and process group stay the command's)."""
        return ["ip", "netns", "exec", self.name]

    def ip(self, *args: str) -> str:
        return _ip("-n", self.name, *args)

    def call(self, fn: Callable[..., T], *args) -> T:
        """fn(*args) on a thread that joined this namespace (setns acts on
        the calling thread only, so the test process stays where it is)."""
        box: Dict[str, object] = {}

        def body():
            try:
                with open(f"/run/netns/{self.name}", "rb") as f:
                    if _libc.setns(f.fileno(), CLONE_NEWNET) != 0:
                        err = ctypes.get_errno()
                        raise OSError(err, f"setns({self.name}): {os.strerror(err)}")
                box["value"] = fn(*args)
            except BaseException as e:  # re-raised in the caller
                box["error"] = e

        t = threading.Thread(target=body, name=f"netns-{self.name}")
        t.start()
        t.join()
        if "error" in box:
            raise box["error"]
        return box["value"]

    def socket(self, family=socket.AF_INET, type=socket.SOCK_STREAM, proto=0) -> socket.socket:
        return self.call(socket.socket, family, type, proto)

    def links(self) -> List[str]:
        """Names of the interfaces in the namespace (always "lo" among them)."""
        return [l["ifname"] for l in json.loads(self.ip("-j", "link", "show"))]

    def link_stats(self, dev: str) -> Dict[str, int]:
        """The interface's counters (`ip -s`): rx/tx bytes, packets, ..."""
        info = json.loads(self.ip("-j", "-s", "link", "show", "dev", dev))[0]
        stats = info["stats64"]
        return {f"{d}_{k}": v for d in ("rx", "tx") for k, v in stats[d].items()}

    def close(self) -> None:
        if self._open:
            self._open = False
            subprocess.run(["ip", "netns", "del", self.name], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)


# --- taps opened by the test (fd passing) --------------------------------------

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
IFF_MULTI_QUEUE = 0x0100
VNET_HDR_FLAGS = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR


def open_tap(name: str, flags: int = VNET_HDR_FLAGS) -> int:
    """Open /dev/net/tun and attach it to tap `name` (created if missing,
    then gone when the last fd closes). Returns an inheritable fd for a
    VMM's fd= option (give it to the child with pass_fds). Call it through
    NetNs.call() to put the tap in that namespace."""
    fd = os.open("/dev/net/tun", os.O_RDWR)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), flags))
    except OSError:
        os.close(fd)
        raise
    os.set_inheritable(fd, True)
    return fd


# --- ICMP echo from the host side ----------------------------------------------

def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def ping(sock_factory: Callable[[], socket.socket], addr: str, count: int = 3,
         timeout: float = 5.0) -> int:
    """Send `count` ICMP echo requests to `addr` from a raw socket made by
    sock_factory (e.g. lambda: ns.socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)),
    one at a time; return how many were answered within `timeout` each.
    Needs root (raw socket); iputils' ping is not a dependency of the suite."""
    ident = secrets.randbits(16)
    answered = 0
    with sock_factory() as s:
        for seq in range(1, count + 1):
            payload = secrets.token_bytes(32)
            hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
            pkt = struct.pack("!BBHHH", 8, 0, _checksum(hdr + payload), ident, seq) + payload
            s.sendto(pkt, (addr, 0))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    data, src = s.recvfrom(2048)
                except socket.timeout:
                    break
                ihl = (data[0] & 0x0F) * 4
                typ, _, _, rid, rseq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
                if (src[0], typ, rid, rseq) == (addr, 0, ident, seq) and \
                        data[ihl + 8:] == payload:
                    answered += 1
                    break
    return answered


def wait_link(ns: NetNs, pred: Callable[[List[str]], bool], timeout: float) -> Optional[List[str]]:
    """Poll the namespace's interface names until pred(names); the names, or
    None on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        names = ns.links()
        if pred(names):
            return names
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)
