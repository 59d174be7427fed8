"""Recovery of a log before a writer uses it (Kafka's LogLoader).

Theory of operation
-------------------
After a crash the bytes of a log fall in three parts:

1. up to the *recovery point* (checkpoint slot 0, written by ``fsync`` after the data
   and indexes were durable): trusted once its CRC checks;
2. after it, up to the last offset-index entry: each index interval carries a CRC,
   verified against the data; the first mismatch ends the valid data;
3. after the last index entry: valid up to the *live tail* mark (two checkpoint
   slots, rewritten in turn after every append) or the recovery point, whichever
   verifies and reaches further. After ``kill -9`` the live mark is exact and nothing is cut;
   after a power loss it may not verify, and the unverified tail is cut.

An append the live mark does not cover yet, or covers as *tentative* (the first part
of a write the kernel split, see checkpoint.py), was never acknowledged as a whole:
of it, recovery keeps only whole lines, so no half line is left for the next append.
A segment left unsealed by a writer that died inside a roll is sealed (its final
index entries) while a mark still vouches for its tail.

Whatever lies after the valid data (a zero or garbage tail, a torn write, a segment
that overlaps the next) is moved to a quarantine file beside the segments and
reported, never deleted. Index entries pointing past the data are dropped; missing
or corrupt indexes are rebuilt from the segment (CRCs then cover the data as found,
and the time index gets coarse entries), and a corrupt index file is kept in
quarantine. A missing middle segment is reported and leaves a gap that reads report
as DataGap; the rest of the log stays readable.

The steps
---------
:func:`recover_log` runs these in order; each is a function of plain values (the
log's directory and facts, its segments, the checkpoint's marks, the clock) that
returns what it did, and reports each action once (one log line, one
:class:`RecoveryAction`):

1. :func:`trusted_end`: how far the recovery point vouches for the log;
2. for each segment, oldest first: :func:`cut_overlap` (bytes past the next
   segment's base), a gap before the trusted end reported, :func:`check_indexes`
   (trim, or rebuild and quarantine); then, for a segment that ends after the trusted
   end, :func:`verify_segment`: where its valid data ends (:func:`verify_offset_index`,
   :func:`extend_by_marks`, :func:`keep_acknowledged`), or that it must be sealed
   (:func:`complete_sealed_index`);
3. :func:`quarantine_from` the first byte that is not valid: the rest of the log
   goes to one quarantine file and the later segments are deleted.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .cache import ResourceCache
from .checkpoint import TailMark
from .errors import CorruptIndex
from .fileio import copy_tail, iter_preads, pread_all
from .index import (FLAG_RECORD_BOUNDARY, OFFSET_MAGIC, TIME_MAGIC, IndexFile,
                    inspect_index_file, newest_before, time_entry, time_entry_ok)
from .naming import index_quarantine_name, quarantine_name
from .segment import Segment
from .segments import open_segments

logger = logging.getLogger(__name__)

# A time-index entry this far past the recovery's clock is garbage a power loss left
# in an unsynced block of the file, not a time anything was appended.
FUTURE_SLACK_MS = 86_400_000


@dataclass(frozen=True)
class RecoveryAction:
    topic: str
    log: str
    kind: str      # "truncated", "index-rebuilt", "index-trimmed", "index-completed", "gap",
    #                "overlap", "unfinished-write"
    detail: str
    offset: int = -1
    length: int = 0
    quarantine: str | None = None

    def __str__(self) -> str:
        return f"recovery {self.topic}/{self.log}: {self.kind}: {self.detail}"


@dataclass(frozen=True)
class LogFiles:
    """What recovery is told about a log: where it lives and the facts it needs."""

    topic: str
    log: str
    directory: str
    index_interval: int                 # index.interval.bytes (rebuilt indexes)
    start: Mapping[str, object]         # log.json "start": the first segment's base
    #                                     offset and record after retention (or {})


class Report:
    """The actions of one recovery: each is logged (one WARNING line) and kept."""

    def __init__(self, files: LogFiles, clock_ms: int) -> None:
        self.files = files
        self.clock_ms = clock_ms
        self.actions: list[RecoveryAction] = []

    def __call__(self, kind: str, detail: str, offset: int = -1, length: int = 0,
                 quarantine: str | None = None) -> None:
        action = RecoveryAction(self.files.topic, self.files.log, kind, detail, offset, length, quarantine)
        logger.warning("%s", action)
        self.actions.append(action)

    def quarantine_path(self, offset: int) -> str:
        """The quarantine file for log bytes cut from *offset* (named by this run's clock)."""
        return os.path.join(self.files.directory, quarantine_name(self.clock_ms, offset))


def recover_log(files: LogFiles, cache: ResourceCache, recovery_point: TailMark | None,
                lives: Sequence[TailMark], clock_ms: int) -> list[RecoveryAction]:
    """Verify and repair the log in ``files.directory`` before a writer loads it.
    *recovery_point* and *lives* are the checkpoint's marks (the live slots, the
    greater position first). Returns what was done (empty: nothing to repair).
    Blocks on the disk; raises OSError (the store translates it)."""
    segments = open_segments(files.directory, cache)
    report = Report(files, clock_ms)
    try:
        if segments:
            trusted = trusted_end(segments, recovery_point)
            cut_at = _first_invalid_byte(files, segments, trusted, recovery_point, lives, report)
            if cut_at is not None:
                quarantine_from(segments, cut_at, report)
    finally:
        for seg in segments:
            seg.close()
    return report.actions


def _first_invalid_byte(files: LogFiles, segments: list[Segment], trusted: int,
                        recovery_point: TailMark | None, lives: Sequence[TailMark],
                        report: Report) -> int | None:
    """Steps 2a-2d over every segment, oldest first, until one ends early: returns
    the log offset of its first invalid byte (None: the whole log is valid)."""
    prev_end_ms = 0  # the latest time-index entry of the segments before
    for i, seg in enumerate(segments):
        next_base = segments[i + 1].base if i + 1 < len(segments) else None
        if next_base is not None and seg.base + seg.size > next_base:
            cut_overlap(seg, next_base, report)
        seg_end = seg.base + seg.size
        # a hole before the recovery point is a segment file that went missing (kept
        # as a gap); a hole after it is data a power loss never wrote: cut there
        gap_after = next_base is not None and seg_end < next_base
        if gap_after and seg_end < trusted:
            report("gap", f"bytes [{seg_end}, {next_base}) are missing (a segment file is gone); "
                   "the rest of the log stays readable", offset=seg_end, length=next_base - seg_end)
        prev = segments[i - 1] if i else None
        rebuilt = check_indexes(files, seg, prev, prev_end_ms, next_base is None, report)
        prev_end_ms = _last_time_entry(seg, prev_end_ms)
        if seg_end < trusted or (seg_end == trusted and not gap_after):
            continue
        bad_at = verify_segment(seg, trusted, recovery_point, lives, next_base is None, gap_after,
                                rebuilt, report)
        if bad_at is not None:
            return seg.base + bad_at
    return None


# -- step 1: the recovery point ---------------------------------------------------------

def trusted_end(segments: Sequence[Segment], recovery_point: TailMark | None) -> int:
    """The log offset up to which the recovery point vouches for the data (its CRC
    verifies), else the first segment's base."""
    trusted = segments[0].base
    rp = recovery_point
    if rp is not None:
        seg = _segment_at(segments, rp.interval_start)
        if seg is not None and rp.position <= seg.base + seg.size and \
                _crc(seg, rp.interval_start - seg.base, rp.position - seg.base) == rp.crc:
            trusted = rp.position
    return trusted


def _segment_at(segments: Sequence[Segment], offset: int) -> Segment | None:
    for seg in reversed(segments):
        if seg.base <= offset:
            return seg if offset <= seg.base + seg.size else None
    return None


def _crc(seg: Segment, start: int, end: int) -> int:
    """CRC-32 of the segment's bytes [start, end); -1 if the file ends before *end*."""
    crc = 0
    got = 0
    for chunk in iter_preads(seg.fd(), start, end):
        crc = zlib.crc32(chunk, crc)
        got += len(chunk)
    return -1 if got < end - start else crc


# -- step 2a: overlapping segments ---------------------------------------------------------

def cut_overlap(seg: Segment, next_base: int, report: Report) -> None:
    """Bytes of *seg* past the next segment's base were never appended to it: they
    go to quarantine and the segment file is cut at *next_base*."""
    seg_end = seg.base + seg.size
    report("overlap", f"segment {seg.base} runs past the next segment's start {next_base}",
           offset=next_base, length=seg_end - next_base)
    rel = next_base - seg.base
    path = report.quarantine_path(next_base)
    copy_tail(seg.path, rel, path, append=False)
    os.truncate(seg.path, rel)
    report("truncated", f"moved bytes from offset {next_base} of segment {seg.base} to {os.path.basename(path)}",
           offset=next_base, quarantine=path)
    seg.size = rel


# -- step 2c: the index files ------------------------------------------------------------

def check_indexes(files: LogFiles, seg: Segment, prev: Segment | None, prev_end_ms: int,
                  is_last: bool, report: Report) -> bool:
    """Make the segment's index files usable: entries past the data, out of order or
    (time index) failing their check are dropped; a missing or corrupt index is
    rebuilt from the data, the corrupt file kept in quarantine. Returns whether the
    indexes were rebuilt (then they verify nothing: only the marks do)."""
    trimmed = _trim_indexes(seg, report.clock_ms)
    if trimmed is not None:
        if trimmed:
            report("index-trimmed", f"dropped {trimmed} index entries of segment {seg.base} pointing past the data",
                   offset=seg.base)
        return False
    kept = _quarantine_corrupt_indexes(seg, report)
    base_record, boundary = _base_record_for(files.start, seg, prev)
    mtime_ms = int(os.stat(seg.path).st_mtime * 1000)
    # the first entry claims that every earlier byte was appended at or before it:
    # the previous segment's last index entry may be older than its last append
    # (entries lost with the power), its file's mtime is not
    start_ms = prev_end_ms
    if prev is not None:
        start_ms = max(start_ms, int(os.stat(prev.path).st_mtime * 1000))
    rebuild_indexes(seg, base_record, boundary, files.index_interval, start_ms, mtime_ms, sealed=not is_last)
    detail = f"indexes of segment {seg.base} were missing or corrupt; rebuilt from the data"
    if kept:
        detail += "; kept the corrupt " + ("file" if len(kept) == 1 else "files") + " as " + \
            ", ".join(os.path.basename(p) for p in kept)
    report("index-rebuilt", detail, offset=seg.base, quarantine=kept[0] if kept else None)
    return True


def _trim_indexes(seg: Segment, clock_ms: int) -> int | None:
    """Drop the index entries that point past the data or break the order (and, in
    the time index, those failing their check or dated in the future), and a torn
    last entry. Returns how many went, or None if an index cannot be opened (missing,
    a bad header, another segment's)."""
    try:
        oindex = IndexFile.open(seg.offset_index_path, OFFSET_MAGIC, seg.cache, writable=True, strict=False)
        tindex = IndexFile.open(seg.time_index_path, TIME_MAGIC, seg.cache, writable=True, strict=False)
    except (OSError, CorruptIndex):
        return None
    if oindex.base_offset != seg.base or tindex.base_offset != seg.base:
        return None
    entries = oindex.all_entries()
    tentries = tindex.all_entries()
    keep = _offset_entries_to_keep(entries, seg.size)
    tkeep = _time_entries_to_keep(tentries, seg.size, clock_ms)
    torn = 0
    for index, n_entries, n_keep in ((oindex, len(entries), keep), (tindex, len(tentries), tkeep)):
        partial = 1 if (os.stat(index.path).st_size - 32) % index.esize else 0
        torn += partial
        index.count = n_entries + partial
        index.truncate(n_keep)
    oindex.close()
    tindex.close()
    seg.close()
    return (len(entries) - keep) + (len(tentries) - tkeep) + torn


def _offset_entries_to_keep(entries: list[tuple], size: int) -> int:
    keep = 0
    prev_pos, prev_rec = 0, 0
    for records, pos, _crc in entries:
        if pos > size or pos < prev_pos or records < prev_rec:
            break
        keep += 1
        prev_pos, prev_rec = pos, records
    return keep


def _time_entries_to_keep(entries: list[tuple], size: int, clock_ms: int) -> int:
    keep = 0
    prev_t, prev_p = -(1 << 62), 0
    for entry in entries:
        t, pos = entry[0], entry[1]
        # a gap says every byte before pos is older than newest_before: it must not
        # claim more than the previous entry's time (and the entry's check must hold)
        if pos > size or pos < prev_p or t < prev_t or t < 0 or not time_entry_ok(entry) or \
                newest_before(entry) < prev_t or t > clock_ms + FUTURE_SLACK_MS:
            break
        keep += 1
        prev_t, prev_p = t, pos
    return keep


def _quarantine_corrupt_indexes(seg: Segment, report: Report) -> list[str]:
    """Move each index file of *seg* that exists but is not usable (a bad header,
    another segment's, not a file) to its quarantine name; returns the new paths."""
    kept = []
    for path, magic in ((seg.offset_index_path, OFFSET_MAGIC), (seg.time_index_path, TIME_MAGIC)):
        problem, _torn = inspect_index_file(path, magic, seg.base)
        if problem is None or problem == "missing":
            continue
        dest = os.path.join(os.path.dirname(path), index_quarantine_name(report.clock_ms, os.path.basename(path)))
        os.rename(path, dest)
        kept.append(dest)
    return kept


def _base_record_for(start: Mapping[str, object], seg: Segment, prev: Segment | None) -> tuple[int, bool]:
    """(records before *seg*, whether it starts on a record boundary), for its
    rebuilt index header: from the previous segment, else from log.json's start."""
    if prev is None:
        if start.get("offset") == seg.base:
            return int(start.get("record", 0)), bool(start.get("boundary", True))  # type: ignore[call-overload]
        return (0, True) if seg.base == 0 else (0, False)
    try:
        prev_records = prev.base_record
        count = prev.count_newlines(0, prev.size)
        last = os.pread(prev.fd(), 1, prev.size - 1) if prev.size else b"\n"
        return prev_records + count, last == b"\n"
    except (OSError, CorruptIndex):
        return 0, False


def rebuild_indexes(seg: Segment, base_record: int, boundary: bool, interval: int,
                    start_ms: int, end_ms: int, sealed: bool) -> None:
    """Write fresh indexes for *seg* from its data: an offset entry per *interval*
    bytes (and at the end, if *sealed*), a time entry at 0 dated *start_ms* (and at
    the end dated *end_ms*, if *sealed*). Raises OSError."""
    seg.close()
    size = os.stat(seg.path).st_size
    entries = []
    records = 0
    crc = 0
    pos = 0
    fd = os.open(seg.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        for chunk in iter_preads(fd, 0, size, interval):
            records += chunk.count(b"\n")
            crc = zlib.crc32(chunk, crc)
            pos += len(chunk)
            if len(chunk) == interval or (sealed and pos == size):
                entries.append((records, pos, crc))
                crc = 0
    finally:
        os.close(fd)
    flags = FLAG_RECORD_BOUNDARY if boundary else 0
    IndexFile.create(seg.offset_index_path, OFFSET_MAGIC, seg.cache, seg.base, base_record, flags, entries)
    # newest times before are unknown here (gap 0): seeks may start earlier, never later
    times = [time_entry(start_ms, 0)] if size else []
    if sealed and size:
        times.append(time_entry(max(end_ms, start_ms), size))
    IndexFile.create(seg.time_index_path, TIME_MAGIC, seg.cache, seg.base, base_record, flags, times)
    seg.close()


def _last_time_entry(seg: Segment, default: int) -> int:
    """The time of the segment's last time-index entry (*default* if it has none)."""
    try:
        last = seg.time_index().last()
    except (OSError, CorruptIndex):
        return default
    return last[0] if last else default


# -- step 2d: the bytes after the trusted end ------------------------------------------

def verify_segment(seg: Segment, trusted: int, recovery_point: TailMark | None,
                   lives: Sequence[TailMark], is_last: bool, gap_after: bool, rebuilt: bool,
                   report: Report) -> int | None:
    """Where the valid data of a segment that ends after the trusted end stops
    (segment-relative), or None if all of it is valid. A sealed segment whose index
    stops short of its end is sealed now (:func:`complete_sealed_index`)."""
    if rebuilt:  # an index rebuilt from the data as found verifies nothing
        verified = min(max(trusted - seg.base, 0), seg.size)
    else:
        bad_at, verified = verify_offset_index(seg, trusted)
        if bad_at is not None:
            return bad_at
    valid = max(verified, min(trusted - seg.base, seg.size)) if trusted > seg.base else verified
    live, mark_ms = None, 0
    if is_last or valid < seg.size:
        valid, live, mark_ms = extend_by_marks(seg, valid, recovery_point, lives)
    if is_last and live is not None:
        valid = keep_acknowledged(seg, live, trusted, valid, report)
    if valid < seg.size:
        return valid
    if gap_after:
        return seg.size
    if not is_last and not rebuilt and verified < seg.size:
        complete_sealed_index(seg, mark_ms, report)
    return None


def verify_offset_index(seg: Segment, trusted: int) -> tuple[int | None, int]:
    """Check the CRC of every index interval that ends after the trusted end.
    Returns (where the valid data ends if an interval fails, else None; the end of
    the last interval that held). The failing entry and those after it are dropped."""
    oindex = seg.offset_index()
    prev_pos = 0
    for n_entry, (_records, pos, crc) in enumerate(oindex.all_entries()):
        if seg.base + pos > trusted and _crc(seg, prev_pos, pos) != crc:
            # the recovery point vouches for everything before it, even inside this
            # interval; the bad entry and those after it go
            oindex.truncate(n_entry)
            return max(prev_pos, trusted - seg.base), prev_pos
        prev_pos = pos
    return None, prev_pos


def extend_by_marks(seg: Segment, valid: int, recovery_point: TailMark | None,
                    lives: Sequence[TailMark]) -> tuple[int, TailMark | None, int]:
    """Extend the verified part ``[0, valid)`` of *seg* with the checkpoint's marks.

    A mark vouches for its own interval ``[interval_start, position)`` only, once the
    bytes before it are verified (its index entries may never have reached the
    disk); so the marks are taken in the order their intervals start, and each that
    verifies (its CRC) extends the valid end: one mark's interval may begin where
    another's ends. Returns (the valid end, the verified live mark reaching furthest,
    the latest append time among the marks that vouched past *valid*)."""
    start = valid
    live: TailMark | None = None
    mark_ms = 0
    marks = [mark for mark in (*lives, recovery_point) if mark is not None]
    for mark in sorted(marks, key=lambda m: m.interval_start):
        if mark.interval_start - seg.base > valid:
            break  # the bytes before its interval are not verified
        if not _mark_verifies(seg, mark):
            continue
        if mark.position - seg.base > start:
            mark_ms = max(mark_ms, mark.timestamp_ms)
        valid = max(valid, mark.position - seg.base)
        if mark is not recovery_point and (live is None or mark.position > live.position):
            live = mark
    return valid, live, mark_ms


def _mark_verifies(seg: Segment, mark: TailMark) -> bool:
    if not (seg.base <= mark.interval_start <= mark.position <= seg.base + seg.size):
        return False
    return _crc(seg, mark.interval_start - seg.base, mark.position - seg.base) == mark.crc


def keep_acknowledged(seg: Segment, live: TailMark, trusted: int, valid: int, report: Report) -> int:
    """Of the last segment's valid bytes, keep what the writer acknowledged: an
    append the live mark covers as tentative (the first part of a write the kernel
    split at a page boundary, whose rest never came), or bytes an index entry
    vouches for past the mark (the writer died inside the append, after its data and
    index entry, before the mark) are cut back to their last newline. Returns the
    new valid end."""
    at = live.position - seg.base
    if live.tentative and valid == at:
        return _whole_lines_only(seg, live.position - live.tentative, trusted, valid, report,
                                 "was the first part of a write that never finished")
    if valid > at:
        return _whole_lines_only(seg, live.position, trusted, valid, report,
                                 "was never acknowledged (the writer died inside the append)")
    return valid


def _whole_lines_only(seg: Segment, start_abs: int, trusted: int, valid: int, report: Report,
                      why: str) -> int:
    """The bytes [start_abs, seg.base + valid) belong to an append that was never
    acknowledged as a whole: cut them back to their last newline, never below the
    recovery point. Returns the new valid end (segment-relative)."""
    start = max(start_abs, trusted, seg.base) - seg.base
    if start >= valid:
        return valid
    chunk = pread_all(seg.fd(), valid - start, start)
    newline = chunk.rfind(b"\n")
    keep = start + newline + 1 if newline >= 0 else start
    if keep < valid:
        report("unfinished-write", f"the last append ({valid - start} bytes at {seg.base + start}) {why}; "
               f"cutting it back to offset {seg.base + keep}", offset=seg.base + keep, length=valid - keep)
    return keep


def complete_sealed_index(seg: Segment, mark_ms: int, report: Report) -> None:
    """A segment with a successor whose offset index stops short of its end: the
    writer died inside a roll, after creating the next segment and before sealing
    this one. A mark vouched for the tail this time; the next appends move the marks
    on, so seal the segment now (its final index entries), or the next recovery would
    find nothing that vouches for those bytes."""
    seg.close()  # reopened for writing: descriptors and indexes may be read-only ones
    seg.sealed = False
    seg.load_tail_state(seg.size)
    if mark_ms and (seg.last_ms is None or mark_ms > seg.last_ms):
        seg.last_ms = mark_ms
    seg.seal()
    report("index-completed", f"segment {seg.base} was never sealed (the writer died rolling to the next "
           "segment); its final index entries are written now", offset=seg.base)


# -- step 3: the cut ------------------------------------------------------------------

def quarantine_from(segments: list[Segment], cut_at: int, report: Report) -> None:
    """Cut the log at *cut_at*: every byte after it (in this segment and all later
    ones, in order) goes to one quarantine file; the segment holding *cut_at* is
    truncated there (its index entries past it dropped) and the later ones deleted."""
    keep = [s for s in segments if s.base <= cut_at]
    keeper = keep[-1] if keep else segments[0]
    path = report.quarantine_path(cut_at)
    total = 0
    for seg in segments:
        if seg.base + seg.size <= cut_at and seg is not keeper:
            continue
        rel = max(0, cut_at - seg.base)
        seg.close()
        total += copy_tail(seg.path, rel, path, append=True)
    rel = cut_at - keeper.base
    keeper.close()
    os.truncate(keeper.path, rel)
    for index_path, magic in ((keeper.offset_index_path, OFFSET_MAGIC), (keeper.time_index_path, TIME_MAGIC)):
        index = IndexFile.open(index_path, magic, keeper.cache, writable=True, strict=False)
        keep_n = sum(1 for e in index.all_entries() if e[1] <= rel)
        index.truncate(keep_n)
        index.close()
    for seg in segments:
        if seg.base > keeper.base:
            seg.delete_files()
    report("truncated", f"cut {total} unverified bytes from offset {cut_at} (never acknowledged by fsync); "
           f"kept in {os.path.basename(path)}", offset=cut_at, length=total, quarantine=path)
