"""The commit window of ``logfs consume --group``: when written records must be
committed.

At most ``every`` records may have been written to stdout and not committed, and
none for longer than ``ms`` milliseconds: the consumer commits as soon as either
bound is reached (and when it ends), and never plans a batch larger than the room
left. So a consumer killed at any moment (SIGKILL: no last commit) re-reads at most
``every`` records, those written in its last ``ms`` milliseconds or fewer. Larger
windows cost fewer ``fdatasync`` calls (one per commit); the defaults keep a
re-read small while costing one commit per 10,000 records or per second.
Pure bookkeeping: no I/O.
"""

from __future__ import annotations

import time

__all__ = ["CommitWindow", "DEFAULT_COMMIT_EVERY", "DEFAULT_COMMIT_MS"]

DEFAULT_COMMIT_EVERY = 10_000   # records written and not committed, at most
DEFAULT_COMMIT_MS = 1_000       # ms a written record waits for its commit, at most


class CommitWindow:
    """Counts what was written since the last commit."""

    def __init__(self, every: int = DEFAULT_COMMIT_EVERY, ms: int = DEFAULT_COMMIT_MS) -> None:
        self.every, self.ms = every, ms
        self.uncommitted = 0
        self._first = 0.0  # monotonic time of the first uncommitted write

    def room(self) -> int:
        """How many records the next batch may hold (at least one)."""
        return max(1, self.every - self.uncommitted)

    def wrote(self, n: int) -> None:
        if n and not self.uncommitted:
            self._first = time.monotonic()
        self.uncommitted += n

    def due(self) -> bool:
        """A commit is needed now."""
        return bool(self.uncommitted) and (
            self.uncommitted >= self.every or (time.monotonic() - self._first) * 1000 >= self.ms)

    def deadline(self) -> float | None:
        """The monotonic time by which the next commit is due, or None (nothing waits)."""
        return self._first + self.ms / 1000 if self.uncommitted else None

    def committed(self) -> None:
        self.uncommitted = 0
