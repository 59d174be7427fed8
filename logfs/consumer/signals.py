"""SIGINT (Ctrl-C) and SIGTERM while ``logfs consume`` runs.

Python runs a signal handler between two bytecodes of the main thread. A handler
that raised anywhere could land between a ``write()`` to stdout returning and the
consumer moving its cursor past what it wrote: that batch would then be committed
as unread and read again. So the first signal only asks the consumer to stop (it
finishes the batch it is writing, commits, and ends), except while the consumer
sleeps waiting for appends, where nothing is in flight and it stops at once; a
second signal stops it at once anywhere (a stdout no one reads any more), and the
batch in flight is read again next time. The last commit is never cut short.
"""

from __future__ import annotations

import signal
from types import FrameType

__all__ = ["StopSignals", "Stopped"]


class Stopped(Exception):
    """SIGINT or SIGTERM: stop now."""


class StopSignals:
    """The consumer's handler of SIGINT and SIGTERM (see the module docstring):
    :attr:`requested` counts them; Stopped is raised only while :attr:`sleeping`,
    at a second signal, and never while :attr:`shielded`."""

    def __init__(self) -> None:
        self.requested = 0
        self.sleeping = False
        self.shielded = False  # the last commit: one fdatasync, never cut short
        self._old: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested += 1
        if not self.shielded and (self.sleeping or self.requested > 1):
            raise Stopped()

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)  # type: ignore[arg-type]
        self._old.clear()
