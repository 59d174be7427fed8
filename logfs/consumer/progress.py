"""The catch-up progress line of ``logfs consume``, on stderr when it is a terminal.

A consumer that is far behind (a group resuming after a day, ``--from earliest`` on
a big log) shows how far it got and how much is left, rewritten in place about four
times a second, once it has been catching up for a second; the line is erased when
the consumer catches up or ends, and before any other message. When stderr is not a
terminal (a pipe, a file, a test) nothing is ever written. Writing never raises.
"""

from __future__ import annotations

import os
import time
from typing import Callable

__all__ = ["Progress"]

DELAY_S = 1.0
EVERY_S = 0.25


def _mib(n: int) -> str:
    return f"{n / (1 << 20):,.1f} MiB"


class Progress:
    """Shows (or, off a terminal, does not) ``records ... behind``."""

    def __init__(self, fd: int = 2, enabled: bool | None = None, delay_s: float = DELAY_S,
                 every_s: float = EVERY_S) -> None:
        self.fd = fd
        self.enabled = os.isatty(fd) if enabled is None else enabled
        self.delay_s, self.every_s = delay_s, every_s
        self._since: float | None = None   # when the current catch-up began
        self._last = 0.0
        self._shown = False

    def start(self) -> None:
        """A catch-up begins (its line shows once it lasts ``delay_s``)."""
        if self.enabled and self._since is None:
            self._since = time.monotonic()

    def tick(self, records: int, nbytes: int, behind: Callable[[], int]) -> None:
        """After a batch: *records* and *nbytes* written so far; *behind* says how many
        records are left (asked only when the line is due)."""
        if not self.enabled:
            return
        now = time.monotonic()
        if self._since is None:
            self._since = now
            return
        if now - self._since < self.delay_s or now - self._last < self.every_s:
            return
        self._last = now
        left = behind()
        if left <= 0:
            self.clear()
            return
        self._emit(f"\rlogfs consume: {records:,} records ({_mib(nbytes)}), {left:,} behind\x1b[K")
        self._shown = True

    def idle(self) -> None:
        """Caught up: erase the line; the next catch-up starts its own delay."""
        self.clear()
        self._since = None

    def clear(self) -> None:
        """Erase the line if it is shown (before another message, and at the end)."""
        if self._shown:
            self._emit("\r\x1b[K")
            self._shown = False

    def _emit(self, text: str) -> None:
        try:
            os.write(self.fd, text.encode())
        except OSError:
            self.enabled = False
