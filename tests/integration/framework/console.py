"""Serial console capture: a reader thread and pattern waits with a cursor."""

import codecs
import os
import re
import threading
import time
from pathlib import Path
from typing import Callable, Optional, Union

Pattern = Union[str, "re.Pattern[str]"]


class ConsoleTimeout(TimeoutError):
    """A pattern did not show up on the console in time."""


class ConsoleClosed(EOFError):
    """The console ended (the VMM exited) before a pattern showed up."""


class Console:
    """Collects everything a file descriptor produces, as text.

    The reader thread appends to an in-memory log (and to `log_path`, so a
    crash of the test process still leaves the log behind). `wait_for`
    searches from a cursor that advances past each match, so successive waits
    see successive output, like reading a stream.
    """

    def __init__(self, fd: int, log_path: Optional[Path] = None):
        self._fd = fd
        self._text = ""
        self._cursor = 0
        self._eof = False
        self._cond = threading.Condition()
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._log = open(log_path, "w", encoding="utf-8") if log_path else None
        self._thread = threading.Thread(target=self._pump, daemon=True,
                                        name=f"console-{fd}")
        self._thread.start()

    def _pump(self) -> None:
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except OSError:
                chunk = b""
            text = self._decoder.decode(chunk, final=not chunk)
            # Serial lines end in \r\n (tty onlcr) and a chunk may end between
            # the two; tests want plain \n, and a lone \r (line redraw) means
            # nothing to a log reader either.
            text = text.replace("\r", "")
            with self._cond:
                self._text += text
                if not chunk:
                    self._eof = True
                self._cond.notify_all()
            if self._log:
                self._log.write(text)
                self._log.flush()
            if not chunk:
                break
        if self._log:
            self._log.close()

    @property
    def text(self) -> str:
        with self._cond:
            return self._text

    @property
    def eof(self) -> bool:
        with self._cond:
            return self._eof

    def mark(self) -> int:
        """Current end of the log; pass as `start` to search only newer text."""
        with self._cond:
            return len(self._text)

    def wait_for(self, pattern: Pattern, timeout: float,
                 start: Optional[int] = None,
                 alive: Optional[Callable[[], bool]] = None) -> "re.Match[str]":
        """Wait until `pattern` (regex, re.MULTILINE) matches the text after
        `start` (default: the cursor). Moves the cursor past the match.
        Raises ConsoleTimeout, or ConsoleClosed once the stream ended (or
        `alive()` turned false) without a match."""
        rx = re.compile(pattern, re.MULTILINE) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._cond:
            pos = self._cursor if start is None else start
            while True:
                m = rx.search(self._text, pos)
                if m:
                    self._cursor = m.end()
                    return m
                if self._eof:
                    raise ConsoleClosed(f"console closed before {rx.pattern!r} appeared")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ConsoleTimeout(f"{rx.pattern!r} not seen within {timeout:g} s")
                # Poll the liveness check too: a VMM can die without closing
                # the console if a child inherited its end of the pipe.
                self._cond.wait(min(left, 1.0))
                if alive is not None and not alive() and not rx.search(self._text, pos):
                    self._cond.wait(0.2)  # let the reader drain the last bytes
                    if not rx.search(self._text, pos) and not alive():
                        raise ConsoleClosed(f"VMM exited before {rx.pattern!r} appeared")

    def join(self, timeout: float = 5.0) -> None:
        self._thread.join(timeout)

    def tail(self, max_chars: int = 20000) -> str:
        text = self.text
        if len(text) <= max_chars:
            return text
        return f"[... {len(text) - max_chars} earlier characters cut ...]\n" + text[-max_chars:]
