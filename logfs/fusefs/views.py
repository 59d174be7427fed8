"""Views in the mount: ``LOG@since=1h`` and the like, read-only files of a log's bytes
from a chosen start (docs/spec.md, section 10).

Theory of operation
-------------------
A name in a topic that is not a log but reads as a view of one
(``logfs.core.selection.split_view_name``: ``web@since=1h``, ``web@record=N,until=T``)
is looked up as a file of its own. The lookup resolves it once, through the core's
selection grammar and the log's indexes, into a :class:`ViewWindow`::

      log   |<-- retained -->|
      bytes 0 ........ S ............................ U ........ end
                       |<----------- the view ------->|
      view             0                              U - S

- ``S``, the start: where a reader with that selection starts (``resolve_start``).
  It is fixed for the inode: view byte ``o`` is log byte ``S + o``, forever, so the
  pages of one view inode never change (only its last partial page grows, which the
  kernel handles: it drops a file's cached pages when it learns a size it did not
  expect).
- ``U``, the end, only with ``until``: the end of the records appended at or before
  that time (``Log.time_end_position``). While ``until`` is still ahead of the clock
  the view follows the log, and the end is fixed the first time the view is used
  after the clock (or the log's last append) has passed it; from then on no record
  appended at or before ``until`` can still arrive. Without ``until`` the view ends
  where the log ends and grows with it.

The inode of a view name is reused by a later lookup only while the name resolves to
the same window (the same log, ``S`` and end): a relative view (``since=1h``,
``last=100``) names a new file once its window has moved, so a ``cat`` an hour later
reads the new window while a ``tail -f`` that holds the old one keeps it. Views are
never listed (``readdir`` lists logs only) and never written.

This module holds the values and their resolution; the inode table keeps the nodes
(inodes.py) and operations.py the requests. It calls the core only: pure functions
of a log and a clock reading, no FUSE.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from logfs.core.selection import parse_view_spec, resolve_start

if TYPE_CHECKING:
    from logfs.core import GroupStore, Log

log = logging.getLogger(__name__)

__all__ = ["MAX_NOTES", "NoteOnce", "ViewWindow", "resolve_view"]

MAX_NOTES = 10_000  # distinct notes remembered before the memory is cleared


@dataclass(frozen=True)
class ViewWindow:
    """What one view inode presents: the log (its node's inode number) from byte
    ``start``, to ``end`` if that is fixed, else to the log's end.

    ``until_ms``: an ``until`` the window still waits for (``end`` is None until the
    clock passes it, then :meth:`settle` fixes it). ``mtime_ms``: the mtime of a
    window whose end is fixed (it no longer changes with the log's appends)."""

    log_ino: int
    start: int
    end: int | None = None
    until_ms: int | None = None
    mtime_ms: int | None = None

    @property
    def key(self) -> tuple[int, int, int | None, int | None]:
        """Equal keys: the same bytes, so one inode may serve both."""
        if self.end is not None:
            return (self.log_ino, self.start, self.end, None)
        return (self.log_ino, self.start, None, self.until_ms)

    @property
    def follows(self) -> bool:
        """True while the window may still grow."""
        return self.end is None

    def end_offset(self, lg: "Log") -> int:
        """The log offset where the window ends now (never before ``start``)."""
        end = lg.end_offset if self.end is None else self.end
        return end if end > self.start else self.start

    def settle(self, lg: "Log", now_ms: int) -> "ViewWindow":
        """This window, with its end fixed if its ``until`` has passed (the clock, or
        the log's last append, is later); else itself. Calls the core (index
        lookups); raises what ``Log.time_end_position`` raises."""
        if self.until_ms is None or self.end is not None:
            return self
        last = lg.last_append_ms
        if now_ms <= self.until_ms and (last is None or last <= self.until_ms):
            return self
        end = max(self.start, lg.time_end_position(self.until_ms))
        if last is None:
            mtime = lg.created_ms
        else:
            mtime = last if last <= self.until_ms else self.until_ms
        return replace(self, end=end, until_ms=None, mtime_ms=mtime)


def resolve_view(lg: "Log", log_ino: int, spec: str, now_ms: int,
                 groups: "GroupStore") -> tuple[ViewWindow, str | None]:
    """The window of the view ``LOG@spec`` of *lg* at *now_ms*, and the note a reader
    should be given (a group position that had to be reset) or None.

    A group with no committed position, or one retention removed (or past the end),
    starts at the log's first record (``earliest``). Calls the core (index lookups,
    the group's file: small reads that may block briefly). Raises BadSelection (EINVAL:
    a bad time, key or value), InvalidName (a bad group id), OffsetOutOfRange
    (``record``/``offset`` below the log's start, ``offset`` past its end), and what the
    log's seeks raise."""
    sel = parse_view_spec(spec, now_ms)
    start = resolve_start(lg, sel, groups, "earliest")
    window = ViewWindow(log_ino, start.offset, until_ms=sel.until_ms)
    return window.settle(lg, now_ms), start.note


class NoteOnce:
    """Logs each distinct note once per mount (a view is looked up again at every
    ``stat`` or ``open`` of its name: its note would repeat). Remembers at most
    :data:`MAX_NOTES`, then starts over."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def __call__(self, name: str, note: str) -> None:
        key = f"{name}\0{note}"
        if key in self._seen:
            return
        if len(self._seen) >= MAX_NOTES:
            self._seen.clear()
        self._seen.add(key)
        log.info("view %s: %s", name, note)
