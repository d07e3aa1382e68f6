"""Host network helpers for tests: tap devices that never outlive a test."""

import secrets
import subprocess


class Tap:
    """A tap interface created with `ip`, deleted by close() (idempotent).
    Register close() with Vm.add_cleanup or the vm factory."""

    def __init__(self, name: str = "", up: bool = True):
        self.name = name or f"ntap{secrets.token_hex(3)}"
        if len(self.name) > 15:
            raise ValueError(f"interface name too long: {self.name}")
        _ip("tuntap", "add", "dev", self.name, "mode", "tap")
        self._open = True
        if up:
            _ip("link", "set", self.name, "up")

    def exists(self) -> bool:
        return subprocess.run(["ip", "link", "show", "dev", self.name],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              check=False).returncode == 0

    def close(self) -> None:
        if self._open:
            self._open = False
            subprocess.run(["ip", "link", "del", "dev", self.name],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=False)


def _ip(*args: str) -> None:
    res = subprocess.run(["ip", *args], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {res.stdout.strip()}")
