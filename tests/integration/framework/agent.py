"""The in-guest test agent protocol: a shell on the console plus markers.

The guest initramfs (ci/lib/guest-init.sh) prints READY_MARKER and then keeps
an interactive shell on its console. To run a command the host types one line

    printf '__BEG_%s\\n' <nonce>; <cmd>; echo __RC_<nonce>=$?

and reads the console until `__RC_<nonce>=<status>`. The output of <cmd> is
what lies between the `__BEG_<nonce>` line and the status marker. Neither
marker appears literally in the typed line (the shell echoes what it reads),
so echo and line editing cannot fake a match: the begin marker is assembled
by printf, and the echoed status marker reads `=$?` instead of digits.

The transport is anything with `console` (a Console) and `send(text)`, so
the same protocol can move to a virtio-console/vsock channel later.
"""

import re
import secrets
from typing import Protocol, Tuple

from .console import Console

READY_MARKER = "NIMBUS-GUEST-READY"


class Transport(Protocol):
    console: Console

    def send(self, text: str) -> None: ...

    def alive(self) -> bool: ...


class AgentError(RuntimeError):
    pass


def run(transport: Transport, cmd: str, timeout: float) -> Tuple[int, str]:
    """Run one shell command line in the guest; return (status, output).

    `cmd` is a single line of sh (it may contain ; && | but no newline and
    must not end in &). Output has \\r\\n folded to \\n and one trailing
    newline removed."""
    if "\n" in cmd or "\r" in cmd:
        raise ValueError("agent commands are single lines")
    nonce = secrets.token_hex(6)
    start = transport.console.mark()
    transport.send(f"printf '__BEG_%s\\n' {nonce}; {cmd}; echo __RC_{nonce}=$?\n")
    con = transport.console
    beg = con.wait_for(rf"^__BEG_{nonce}\n", timeout, start=start, alive=transport.alive)
    end = con.wait_for(rf"__RC_{nonce}=(\d+)", timeout, start=beg.end(), alive=transport.alive)
    output = con.text[beg.end():end.start()]
    if output.endswith("\n"):
        output = output[:-1]
    return int(end.group(1)), output


def wait_ready(transport: Transport, timeout: float, after_reset: bool = False) -> None:
    """Wait for the guest init's READY_MARKER, then prove the shell answers.
    after_reset: the guest was reset while its shell prompt stood on the
    console, so the marker follows the prompt on the same line."""
    anchor = "" if after_reset else "^"
    transport.console.wait_for(rf"{anchor}{READY_MARKER}\s*$", timeout, alive=transport.alive)
    rc, out = run(transport, "echo agent-ok", timeout)
    if rc != 0 or out.strip() != "agent-ok":
        raise AgentError(f"guest shell answered {rc} {out!r} to a probe")


def marker_regex(text: str) -> str:
    """A regex matching `text` literally on a line of its own."""
    return rf"^{re.escape(text)}\s*$"
