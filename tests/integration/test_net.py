"""virtio-net in real guests: taps (created by the VMM, opened by the test),
multi-queue, TSO, user-mode networking as a non-root user, and the --net
errors that must stop nimbus before any guest runs.

Every VMM runs in a network namespace the test creates (framework.net.NetNs):
its taps, and the host-side servers and clients of the test, live there,
with addresses inside it only (192.168.249.0/24, 192.168.250.0/24, the
namespace's own loopback). Nothing reaches the real network.

Two boots carry every guest check (nested boots are the expensive part):

  tap_guest   2 vCPUs; eth A: a tap by name, num_queues=4 (2 pairs), host
              side 192.168.249.1 (nimbus: ip=/mask= on a tap it creates;
              QEMU: a multi-queue tap the test made); eth B: fd= of a tap the
              test opened with IFF_VNET_HDR, host side 192.168.250.1.
              Ends with a poweroff; then both taps must be gone.
  user_guest  --net user=on with a hostfwd, the VMM running as uid 65534:
              DHCP, HTTP from the namespace's 127.0.0.1 through 10.0.2.2,
              and the host reaching a guest port through the forward.

The bodies are VMM-agnostic (framework.machine): the suite runs them on
nimbus; NIMBUS_IT_VIRTIO_VMMS=qemu (or nimbus,qemu) runs the same checks on
QEMU to prove the tests themselves right. What only nimbus does (creating
and removing taps, its --net errors) is skipped on QEMU.
"""

import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from framework import paths, run_vmm
from framework.machine import Machine, Net, vmms_under_test
from framework.net import NetNs, Tap, open_tap, ping, wait_link
from framework.plugin import require_nimbus

BOOT_TIMEOUT = 180  # nested TCG: the L2 kernel reaches /init in ~5-10 s
EXIT_TIMEOUT = 120
XFER_TIMEOUT = 240  # 16 MiB through two emulated hypervisors
MIB = 1 << 20
XFER_MIB = 16

# tap_guest: eth A (multi-queue) and eth B (fd=).
A_HOST, A_GUEST = "192.168.249.1", "192.168.249.2"
B_HOST, B_GUEST = "192.168.250.1", "192.168.250.2"
MASK, PREFIX = "255.255.255.0", 24
MAC_A, MAC_B, MAC_USER = "52:54:00:4e:a1:01", "52:54:00:4e:b2:02", "52:54:00:4e:c3:03"
A_QUEUES = 4  # virtqueues: 2 pairs

# user_guest: slirp's fixed plan, and the forward.
USER_GUEST, USER_GW = "10.0.2.15", "10.0.2.2"
NOBODY = 65534
GUEST_PORT = 7000


@pytest.fixture(scope="module", params=vmms_under_test())
def vmm(request):
    return request.param


def only_nimbus(vmm: str, what: str) -> None:
    if vmm != "nimbus":
        pytest.skip(f"{what}: nimbus only ({vmm} does not do this)")


def start(factory, vmm: str, machine: Machine, wrapper=()):
    binary = require_nimbus() if vmm == "nimbus" else None
    return factory.spawn([*wrapper, *machine.argv(vmm, binary)], vmm,
                         pass_fds=machine.pass_fds())


def tap_net(vmm: str, ns: NetNs, name: str, host_ip: str, mac: str,
            num_queues: Optional[int] = None) -> Net:
    """A NIC on tap `name` whose host side is host_ip/24 in `ns`. nimbus
    creates and addresses the tap itself (ip=/mask=); QEMU cannot, so for
    QEMU the test makes it here (it goes with the namespace). The one place
    where the VMMs differ, so that every body below runs on both."""
    if vmm == "nimbus":
        return Net(tap=name, mac=mac, num_queues=num_queues, ip=host_ip, mask=MASK)
    Tap(name, netns=ns.name, multi_queue=(num_queues or 2) > 2)
    ns.ip("addr", "add", f"{host_ip}/{PREFIX}", "dev", name)
    return Net(tap=name, mac=mac, num_queues=num_queues)


def fd_net(ns: NetNs, name: str, host_ip: str, mac: str):
    """A NIC on a tap the test opened (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR) in
    `ns`: (Net with fds=[fd], fd). The caller closes fd once the VMM has it;
    the tap then lives as long as the VMM holds it."""
    fd = ns.call(open_tap, name)
    ns.ip("addr", "add", f"{host_ip}/{PREFIX}", "dev", name)
    ns.ip("link", "set", name, "up")
    return Net(fds=[fd], mac=mac), fd


def guest_ifaces(vm) -> Dict[str, str]:
    """MAC -> interface name of the guest's virtio-net NICs."""
    out = vm.check_output(
        "for d in /sys/class/net/*; do [ -e $d/device ] && echo ${d##*/} $(cat $d/address); done; true")
    return {mac: name for name, mac in (line.split() for line in out.splitlines() if line.strip())}


def random_port() -> int:
    # A fresh namespace has every port free; random only to tell runs apart in logs.
    return 20000 + secrets.randbelow(10000)


# --- the host end of a TCP flow ------------------------------------------------

class Peer:
    """One TCP connection served on a thread in a namespace: `send` (the
    bytes to send, then close) or receive until EOF (sha256 and length of
    what arrived). The listener is bound before the guest connects."""

    def __init__(self, ns: NetNs, addr: str, send: Optional[bytes] = None,
                 timeout: float = XFER_TIMEOUT):
        self.lsock = ns.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((addr, 0))
        self.lsock.listen(1)
        self.lsock.settimeout(timeout)
        self.port = self.lsock.getsockname()[1]
        self.send = send
        self.received = 0
        self.sha = hashlib.sha256()
        self.error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.lsock.accept()
            with conn:
                conn.settimeout(self.lsock.gettimeout())
                if self.send is not None:
                    conn.sendall(self.send)
                    return
                while True:
                    chunk = conn.recv(1 << 16)
                    if not chunk:
                        return
                    self.received += len(chunk)
                    self.sha.update(chunk)
        except BaseException as e:  # reported by result()
            self.error = e
        finally:
            self.lsock.close()

    def result(self, timeout: float = 30):
        """(bytes received, sha256 hex) once the connection ended."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"host peer on port {self.port} still busy"
        if self.error is not None:
            raise AssertionError(f"host peer on port {self.port}: {self.error!r}")
        return self.received, self.sha.hexdigest()


def guest_sends(vm, host: str, mib: int, timeout: float = XFER_TIMEOUT):
    """Guest -> host: `mib` MiB of random data through busybox nc; returns
    (sha256 the guest computed, (bytes, sha256) the host received)."""
    peer = Peer(vm.netns, host)
    out = vm.check_output(
        f"dd if=/dev/urandom of=/tmp/up bs=1M count={mib} 2>/dev/null && sha256sum /tmp/up && "
        f"nc {host} {peer.port} </tmp/up && rm /tmp/up", timeout=timeout)
    m = re.search(r"^([0-9a-f]{64})\s+/tmp/up$", out, re.M)
    assert m, out
    return m.group(1), peer.result()


def guest_receives(vm, host: str, data: bytes, timeout: float = XFER_TIMEOUT) -> str:
    """Host -> guest: the guest reads `data` with busybox nc; its sha256."""
    peer = Peer(vm.netns, host, send=data)
    out = vm.check_output(f"nc {host} {peer.port} </dev/null | sha256sum", timeout=timeout)
    peer.result()
    m = re.search(r"^([0-9a-f]{64})\s+-$", out, re.M)
    assert m, out
    return m.group(1)


def ethtool_stats(vm, iface: str) -> Dict[str, int]:
    out = vm.check_output(f"ethtool -S {iface} | grep -E '_queue_[0-9]+_(packets|bytes):'")
    return {k: int(v) for k, v in re.findall(r"^\s*(\w+):\s*(\d+)$", out, re.M)}


# --- guest 1: two tap NICs, one multi-queue, one by fd -------------------------

@pytest.fixture(scope="module")
def tap_guest(module_vm_factory, vmm):
    ns = NetNs()
    try:
        vm = boot_tap_guest(module_vm_factory, vmm, ns)
        yield vm
        vm.kill()
    finally:
        ns.close()


def boot_tap_guest(module_vm_factory, vmm, ns):
    tag = secrets.token_hex(2)
    tap_a, tap_b = f"nta{tag}", f"ntb{tag}"
    net_a = tap_net(vmm, ns, tap_a, A_HOST, MAC_A, num_queues=A_QUEUES)
    net_b, fd_b = fd_net(ns, tap_b, B_HOST, MAC_B)
    machine = Machine(nets=[net_a, net_b], cpus=2, memory_mib=1024)
    try:
        vm = start(module_vm_factory, vmm, machine, ns.wrap())
    finally:
        os.close(fd_b)  # the VMM holds its copy; the tap now lives as long as it does
    vm.netns, vm.tap_a, vm.tap_b = ns, tap_a, tap_b
    vm.wait_ready(BOOT_TIMEOUT)
    ifaces = guest_ifaces(vm)
    vm.ifaces = ifaces
    for mac, addr in ((MAC_A, A_GUEST), (MAC_B, B_GUEST)):
        if mac in ifaces:
            vm.check_output(f"ip addr add {addr}/{PREFIX} dev {ifaces[mac]} && "
                            f"ip link set {ifaces[mac]} up")
    return vm


def iface(vm, mac: str) -> str:
    assert mac in vm.ifaces, f"no guest NIC with MAC {mac}: {vm.ifaces}"
    return vm.ifaces[mac]


@pytest.mark.slow
def test_two_nics_have_their_macs(tap_guest):
    assert sorted(tap_guest.ifaces) == sorted([MAC_A, MAC_B]), tap_guest.ifaces
    # What the driver reads from the config space is what the kernel uses.
    for mac, name in tap_guest.ifaces.items():
        assert tap_guest.check_output(f"cat /sys/class/net/{name}/address") == mac


@pytest.mark.slow
def test_guest_and_host_ping_each_other(tap_guest):
    iface(tap_guest, MAC_A)
    out = tap_guest.check_output(f"ping -c 3 -W 5 {A_HOST}", timeout=60)
    assert "3 packets received" in out, out
    ns = tap_guest.netns
    answered = ping(lambda: ns.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
                    A_GUEST, count=3)
    assert answered == 3, f"the guest answered {answered} of 3 echo requests"


@pytest.mark.slow
def test_tcp_16mib_host_to_guest(tap_guest):
    iface(tap_guest, MAC_A)
    data = os.urandom(XFER_MIB * MIB)
    assert guest_receives(tap_guest, A_HOST, data) == hashlib.sha256(data).hexdigest()


@pytest.mark.slow
def test_tcp_16mib_guest_to_host(tap_guest):
    iface(tap_guest, MAC_A)
    sha, (received, host_sha) = guest_sends(tap_guest, A_HOST, XFER_MIB)
    assert received == XFER_MIB * MIB
    assert host_sha == sha


@pytest.mark.slow
def test_two_queue_pairs_both_carry_traffic(tap_guest):
    """num_queues=4: two combined channels, and with one flow per direction
    pinned to each vCPU, both pairs move data. The guest's XPS maps vCPU n
    to tx queue n; the multi-queue tap answers a flow on the queue it came
    from, so rx follows tx."""
    vm, eth = tap_guest, iface(tap_guest, MAC_A)
    channels = vm.check_output(f"ethtool -l {eth}")
    combined = re.findall(r"^Combined:\s*(\d+)$", channels, re.M)
    assert combined == ["2", "2"], channels   # pre-set maximum, current
    queues = vm.check_output(f"ls /sys/class/net/{eth}/queues").split()
    assert sorted(queues) == ["rx-0", "rx-1", "tx-0", "tx-1"], queues

    before = ethtool_stats(vm, eth)
    mib = 4
    data = os.urandom(mib * MIB)
    ups = [Peer(vm.netns, A_HOST) for _ in range(2)]
    downs = [Peer(vm.netns, A_HOST, send=data) for _ in range(2)]
    out = vm.check_output(
        f"dd if=/dev/urandom of=/tmp/mq bs=1M count={mib} 2>/dev/null && sha256sum /tmp/mq && "
        f"{{ taskset 1 nc {A_HOST} {ups[0].port} </tmp/mq & "
        f"taskset 2 nc {A_HOST} {ups[1].port} </tmp/mq & "
        f"taskset 1 sh -c 'nc {A_HOST} {downs[0].port} </dev/null | sha256sum' & "
        f"taskset 2 sh -c 'nc {A_HOST} {downs[1].port} </dev/null | sha256sum' & wait; }}; rm /tmp/mq",
        timeout=XFER_TIMEOUT)
    up_sha = re.findall(r"^([0-9a-f]{64})\s+/tmp/mq$", out, re.M)
    down_shas = re.findall(r"^([0-9a-f]{64})\s+-$", out, re.M)
    assert len(up_sha) == 1 and down_shas == [hashlib.sha256(data).hexdigest()] * 2, out
    for p in ups:
        assert p.result() == (mib * MIB, up_sha[0])
    for p in downs:
        p.result()
    after = ethtool_stats(vm, eth)
    delta = {k: after[k] - before.get(k, 0) for k in after}
    # 4 MiB each way per queue is ~3000 full frames (fewer with TSO/GRO,
    # still hundreds); a queue that carried nothing shows a handful at most.
    for q in ("rx_queue_0", "rx_queue_1", "tx_queue_0", "tx_queue_1"):
        assert delta.get(f"{q}_packets", 0) >= 100, f"{q} idle: {delta}"


@pytest.mark.slow
def test_tso_sends_large_segments(tap_guest):
    """TSO on in the guest, and a bulk guest->host transfer reaches the tap
    in segments far above the 1500-byte MTU (the tap counts a GSO frame the
    VMM writes once, at its full size)."""
    vm, eth = tap_guest, iface(tap_guest, MAC_A)
    features = vm.check_output(f"ethtool -k {eth}")
    assert re.search(r"^tcp-segmentation-offload: on$", features, re.M), features
    before = vm.netns.link_stats(vm.tap_a)
    sha, (received, host_sha) = guest_sends(vm, A_HOST, 8)
    assert (received, host_sha) == (8 * MIB, sha)
    after = vm.netns.link_stats(vm.tap_a)
    rx_bytes = after["rx_bytes"] - before["rx_bytes"]
    rx_packets = after["rx_packets"] - before["rx_packets"]
    assert rx_bytes >= 8 * MIB, (before, after)
    # Without TSO no frame exceeds 1514 bytes (1513 on average measured with
    # TSO off).  With it the guest sizes segments to ~1 ms at its sending
    # rate, which in the nested host can be as little as 2 MSS (2886 bytes
    # on average seen in CI; 20830 on a quiet machine): an average above 2000
    # still takes a good part of the bytes going as multi-segment frames.
    avg = rx_bytes / max(rx_packets, 1)
    assert avg > 2000, f"{rx_packets} frames for {rx_bytes} bytes: {avg:.0f} bytes each"


@pytest.mark.slow
def test_fd_tap_carries_traffic(tap_guest):
    """The NIC on the tap the test opened and passed by fd= works both ways."""
    iface(tap_guest, MAC_B)
    out = tap_guest.check_output(f"ping -c 2 -W 5 {B_HOST}", timeout=60)
    assert "2 packets received" in out, out
    data = os.urandom(2 * MIB)
    assert guest_receives(tap_guest, B_HOST, data) == hashlib.sha256(data).hexdigest()
    sha, (received, host_sha) = guest_sends(tap_guest, B_HOST, 2)
    assert (received, host_sha) == (2 * MIB, sha)


@pytest.mark.slow
def test_taps_gone_after_poweroff(tap_guest, vmm):
    """Ends the shared guest. The fd= tap goes with the VMM's descriptor
    (both VMMs); the tap nimbus created is non-persistent and goes too."""
    vm, ns = tap_guest, tap_guest.netns
    assert vm.tap_b in ns.links()
    vm.send("poweroff -f\n")
    assert vm.wait_exit(EXIT_TIMEOUT) == 0
    assert wait_link(ns, lambda names: vm.tap_b not in names, 10) is not None, ns.links()
    if vmm == "nimbus":
        assert wait_link(ns, lambda names: vm.tap_a not in names, 10) is not None, ns.links()


# --- guest 2: user-mode networking, as a non-root user -------------------------

def unprivileged_wrapper(ns: NetNs) -> List[str]:
    """argv prefix: in `ns`, in a private mount namespace where /dev/kvm is
    a node anyone may open (a 0666 copy bind-mounted over it, so the real
    node keeps its mode), as uid/gid 65534 with no supplementary groups and
    so no capabilities."""
    rdev = os.stat("/dev/kvm").st_rdev
    script = ('d=$(mktemp -d) && mount -t tmpfs -o mode=755 kvmdev "$d" && '
              f'mknod -m 666 "$d/kvm" c {os.major(rdev)} {os.minor(rdev)} && '
              'mount --bind "$d/kvm" /dev/kvm && '
              f'exec setpriv --reuid {NOBODY} --regid {NOBODY} --clear-groups -- "$@"')
    return [*ns.wrap(), "unshare", "--mount", "--propagation", "private",
            "sh", "-c", script, "unprivileged"]


def readable_copies(factory, *files: Path) -> List[Path]:
    """Copies of the guest kernel/initramfs uid 65534 can read (the asset
    cache may sit under root's 0700 home)."""
    d = factory.scratch_dir()
    d.chmod(0o755)
    out = []
    for f in files:
        dst = d / f.name
        shutil.copyfile(f, dst)
        dst.chmod(0o644)
        out.append(dst)
    return out


class HttpBlob:
    """One file served over HTTP/1.0 on 127.0.0.1 in a namespace, any path,
    until close()."""

    def __init__(self, ns: NetNs, data: bytes):
        self.data = data
        self.sock = ns.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.requests: List[str] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.settimeout(60)
                    req = b""
                    while b"\r\n\r\n" not in req and len(req) < 8192:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        req += chunk
                    self.requests.append(req.split(b"\r\n", 1)[0].decode(errors="replace"))
                    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n"
                                 + f"Content-Length: {len(self.data)}\r\n\r\n".encode() + self.data)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def user_guest(module_vm_factory, vmm):
    # Each guest ends with its namespace: with NIMBUS_IT_VIRTIO_VMMS=nimbus,qemu
    # the next VMM's guest reuses the same addresses in a namespace of its own.
    ns = NetNs()
    try:
        vm = boot_user_guest(module_vm_factory, vmm, ns)
        yield vm
        vm.kill()
    finally:
        ns.close()


def boot_user_guest(module_vm_factory, vmm, ns):
    host_port = random_port()
    kernel, initramfs = readable_copies(module_vm_factory, paths.assets().guest_kernel,
                                        paths.assets().guest_initramfs)
    net = Net(user=True, mac=MAC_USER,
              hostfwd=[f"tcp:127.0.0.1:{host_port}-:{GUEST_PORT}"])
    machine = Machine(nets=[net], kernel=kernel, initramfs=initramfs, cpus=1, memory_mib=512)
    vm = start(module_vm_factory, vmm, machine, unprivileged_wrapper(ns))
    vm.netns, vm.host_port = ns, host_port
    vm.wait_ready(BOOT_TIMEOUT)
    vm.ifaces = guest_ifaces(vm)
    vm.leased = False
    return vm


def lease(vm) -> str:
    """DHCP on the user-mode NIC (once); the guest's interface name."""
    eth = iface(vm, MAC_USER)
    if not vm.leased:
        vm.check_output(f"udhcpc -i {eth} -n -q -t 5 -T 3 >/dev/null 2>&1", timeout=90)
        vm.leased = True
    return eth


@pytest.mark.slow
def test_user_mode_vmm_runs_unprivileged(user_guest):
    status = Path(f"/proc/{user_guest.proc.pid}/status").read_text()
    uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
    assert uids == [str(NOBODY)] * 4, status
    cap_eff = re.search(r"^CapEff:\s+(\w+)$", status, re.M).group(1)
    assert int(cap_eff, 16) == 0, status


@pytest.mark.slow
def test_user_mode_dhcp(user_guest):
    eth = lease(user_guest)
    addrs = user_guest.check_output(f"ip -4 -o addr show dev {eth}")
    assert f"inet {USER_GUEST}/24" in addrs, addrs
    route = user_guest.check_output("ip route show default")
    assert f"default via {USER_GW}" in route, route
    assert "nameserver 10.0.2.3" in user_guest.check_output("cat /etc/resolv.conf")


@pytest.mark.slow
def test_user_mode_fetches_from_host_loopback(user_guest):
    """The namespace's 127.0.0.1 is 10.0.2.2 to the guest."""
    lease(user_guest)
    data = os.urandom(4 * MIB)
    server = HttpBlob(user_guest.netns, data)
    try:
        out = user_guest.check_output(
            f"wget -q -O - http://{USER_GW}:{server.port}/blob | sha256sum", timeout=XFER_TIMEOUT)
    finally:
        server.close()
    assert out.split()[0] == hashlib.sha256(data).hexdigest(), (out, server.requests)
    assert len(server.requests) == 1 and server.requests[0].startswith("GET /blob "), \
        server.requests


@pytest.mark.slow
def test_user_mode_hostfwd_reaches_guest_port(user_guest):
    vm = user_guest
    lease(vm)
    out = vm.check_output(
        "dd if=/dev/urandom of=/tmp/fwd bs=1M count=2 2>/dev/null && sha256sum /tmp/fwd && "
        f"{{ nc -l -p {GUEST_PORT} </tmp/fwd >/dev/null 2>&1 & }}; sleep 1")
    m = re.search(r"^([0-9a-f]{64})\s+/tmp/fwd$", out, re.M)
    assert m, out

    def fetch():
        sha, n = hashlib.sha256(), 0
        with user_guest.netns.socket() as s:
            s.settimeout(XFER_TIMEOUT)
            # No shutdown(SHUT_WR) here: busybox nc ends at our EOF, maybe
            # before it sent everything. It closes its side after the file.
            s.connect(("127.0.0.1", user_guest.host_port))
            while True:
                chunk = s.recv(1 << 16)
                if not chunk:
                    return n, sha.hexdigest()
                n += len(chunk)
                sha.update(chunk)

    assert fetch() == (2 * MIB, m.group(1))


@pytest.mark.slow
def test_user_mode_poweroff(user_guest):
    """Ends the shared guest."""
    user_guest.send("poweroff -f\n")
    assert user_guest.wait_exit(EXIT_TIMEOUT) == 0


# --- taps nimbus creates are gone on every exit path (nimbus only) ------------

@pytest.fixture
def netns():
    ns = NetNs()
    yield ns
    ns.close()


def nimbus_argv(guest_assets, *args, kernel=None) -> List[str]:
    return [str(require_nimbus()), "--kernel", str(kernel or guest_assets.guest_kernel),
            "--initramfs", str(guest_assets.guest_initramfs),
            "--cmdline", paths.guest_cmdline(), "--cpus", "boot=1", "--memory", "size=256M",
            "--serial", "null", "--console", "off", *args]


@pytest.mark.slow
def test_sigterm_removes_created_tap(vm_factory, netns, guest_assets, vmm):
    """--net without tap= creates vmtapN, addressed and up; SIGTERM ends
    nimbus and the tap with it."""
    only_nimbus(vmm, "tap creation")
    vm = vm_factory.spawn([*netns.wrap(), *nimbus_argv(
        guest_assets, "--net", f"ip={A_HOST},mask={MASK},mac={MAC_A}")], "nimbus")
    names = wait_link(netns, lambda n: any(x.startswith("vmtap") for x in n), 60)
    assert names, f"no vmtap* appeared: {netns.links()}\n{vm.stderr_text}"
    tap = next(x for x in names if x.startswith("vmtap"))
    addrs = netns.ip("-4", "-o", "addr", "show", "dev", tap)
    assert f"inet {A_HOST}/{PREFIX}" in addrs, addrs
    assert "UP" in netns.ip("link", "show", "dev", tap)
    time.sleep(1)  # let nimbus reach the guest, not only its set-up
    assert vm.alive(), vm.stderr_text
    os.kill(vm.proc.pid, signal.SIGTERM)
    vm.wait_exit(30)
    assert wait_link(netns, lambda n: n == ["lo"], 10) is not None, netns.links()


@pytest.mark.slow
@pytest.mark.parametrize("later_error", ["busy_second_tap", "junk_kernel"])
def test_exit_on_later_error_removes_created_tap(netns, guest_assets, tmp_path, vmm, later_error):
    """A --net that creates a tap, then an error nimbus finds only after
    creating it (parse errors, a missing --kernel among them, come before
    any tap): nimbus exits with an error and leaves no tap behind. Taps are
    set up in --net order, and the kernel is loaded after the devices."""
    only_nimbus(vmm, "tap creation")
    created = f"ntx{secrets.token_hex(2)}"
    first = ["--net", f"tap={created},ip={A_HOST},mask={MASK}"]
    busy_fd = None
    try:
        if later_error == "busy_second_tap":
            busy = f"nby{secrets.token_hex(2)}"
            busy_fd = netns.call(open_tap, busy)
            args, token = nimbus_argv(guest_assets, *first, "--net", f"tap={busy}"), busy
        else:
            junk = tmp_path / "junk-kernel"
            junk.write_bytes(os.urandom(64 * 1024))
            args, token = nimbus_argv(guest_assets, *first, kernel=junk), str(junk)
        res = run_vmm([*netns.wrap(), *args], timeout=60)
        assert res.returncode != 0, res.stderr
        assert token in res.stderr, res.stderr
        assert created not in netns.links(), netns.links()
    finally:
        if busy_fd is not None:
            os.close(busy_fd)
    assert netns.links() == ["lo"], netns.links()


# --- --net errors: exit 2, one line naming the token --------------------------

def assert_net_error(res, *tokens: str) -> None:
    errors = [l for l in res.stderr.splitlines() if l.startswith("nimbus: error:")]
    assert res.returncode == 2, f"status {res.returncode}:\n{res.stderr}"
    assert len(errors) == 1, res.stderr
    for token in ("--net", *tokens):
        assert token in errors[0], f"{token!r} not in the error line:\n{res.stderr}"


@pytest.mark.host
@pytest.mark.parametrize("opt,token", [
    ("mac=52:54:00:zz:00:01", "52:54:00:zz:00:01"),
    ("mac=52:54:00:12:34", "52:54:00:12:34"),
    ("ip=192.168.249.300,mask=255.255.255.0", "192.168.249.300"),
    ("ip=192.168.249.1,mask=255.0.255.0", "255.0.255.0"),
    ("num_queues=3", ("num_queues", "3")),
    ("num_queues=34", ("num_queues", "34")),
    ("mtu=lots", "lots"),
    ("user=on,tap=ntap0", "tap"),
    ("user=on,hostfwd=[tcp:127.0.0.1:99999-:22]", "99999"),
    ("bogus=1", "bogus"),
])
def test_bad_net_value_is_rejected(nimbus_binary, guest_assets, opt, token):
    tokens = token if isinstance(token, tuple) else (token,)
    assert_net_error(run_vmm(nimbus_argv(guest_assets, "--net", opt), timeout=60), *tokens)


# Not host tests: an fd or a tap is checked when the device is set up,
# which may come after /dev/kvm is opened; the test host has one.
@pytest.mark.parametrize("what", ["devnull", "closed"])
def test_fd_that_is_not_a_tap_is_rejected(guest_assets, vmm, what):
    only_nimbus(vmm, "nimbus' --net errors")
    if what == "devnull":
        fd = os.open("/dev/null", os.O_RDWR)
        try:
            res = run_vmm(nimbus_argv(guest_assets, "--net", f"fd=[{fd}]"), timeout=60,
                          pass_fds=[fd])
        finally:
            os.close(fd)
    else:
        fd = 987  # not open in nimbus: close_fds leaves it nothing above 2
        res = run_vmm(nimbus_argv(guest_assets, "--net", f"fd=[{fd}]"), timeout=60)
    assert_net_error(res, str(fd))


def test_busy_tap_is_rejected(netns, guest_assets, vmm):
    """A single-queue tap some other process has attached cannot be attached."""
    only_nimbus(vmm, "nimbus' --net errors")
    name = f"nbz{secrets.token_hex(2)}"
    fd = netns.call(open_tap, name)
    try:
        res = run_vmm([*netns.wrap(), *nimbus_argv(guest_assets, "--net", f"tap={name}")],
                      timeout=60)
    finally:
        os.close(fd)
    assert_net_error(res, name)


def test_tap_without_cap_net_admin_is_refused(vm_factory, netns, guest_assets, vmm):
    """Creating a tap needs CAP_NET_ADMIN: without it the message says so."""
    only_nimbus(vmm, "nimbus' --net errors")
    # Files uid 65534 cannot read would fail first.
    kernel, initramfs = readable_copies(vm_factory, guest_assets.guest_kernel,
                                        guest_assets.guest_initramfs)
    argv = nimbus_argv(guest_assets, "--net", f"tap=nnp{secrets.token_hex(2)}", kernel=kernel)
    argv[argv.index("--initramfs") + 1] = str(initramfs)
    res = run_vmm([*unprivileged_wrapper(netns), *argv], timeout=60)
    assert_net_error(res, "CAP_NET_ADMIN")
    assert netns.links() == ["lo"], netns.links()
