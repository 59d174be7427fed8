"""Startup recovery of a log after an unclean shutdown (Kafka's LogLoader).

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
and the time index gets coarse entries). A missing middle segment is reported and
leaves a gap that reads report as DataGap; the rest of the log stays readable.
"""

from __future__ import annotations

import logging
import os
import zlib
from dataclasses import dataclass

from .checkpoint import RECOVERY_SLOT, TailMark
from .index import (FLAG_RECORD_BOUNDARY, OFFSET_MAGIC, TIME_MAGIC, CorruptIndex,
                    IndexFile, newest_before, time_entry, time_entry_ok)
from .naming import quarantine_name
from .segment import SCAN_CHUNK, Segment

logger = logging.getLogger(__name__)


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


def _crc(seg: Segment, start: int, end: int) -> int:
    fd = seg.fd()
    crc = 0
    pos = start
    while pos < end:
        chunk = os.pread(fd, min(SCAN_CHUNK, end - pos), pos)
        if not chunk:
            return -1
        crc = zlib.crc32(chunk, crc)
        pos += len(chunk)
    return crc


def rebuild_indexes(seg: Segment, base_record: int, boundary: bool, interval: int,
                    start_ms: int, end_ms: int, sealed: bool) -> None:
    """Write fresh indexes for *seg* from its data."""
    seg.close()
    size = os.stat(seg.path).st_size
    entries = []
    records = 0
    crc = 0
    pos = 0
    fd = os.open(seg.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        while pos < size:
            n = min(interval, size - pos)
            chunk = os.pread(fd, n, pos)
            if not chunk:
                break
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


# A time-index entry this far past the recovery's clock is garbage a power loss left
# in an unsynced block of the file, not a time anything was appended.
FUTURE_SLACK_MS = 86_400_000


def _index_ok(seg: Segment, size: int, clock_ms: int | None = None) -> tuple[bool, int]:
    """(index usable, entries kept after dropping those past the data, or, in the
    time index, out of order or dated in the future)."""
    try:
        oindex = IndexFile.open(seg.offset_index_path, OFFSET_MAGIC, seg.cache, writable=True, strict=False)
        tindex = IndexFile.open(seg.time_index_path, TIME_MAGIC, seg.cache, writable=True, strict=False)
    except (OSError, CorruptIndex):
        return False, 0
    if oindex.base_offset != seg.base or tindex.base_offset != seg.base:
        return False, 0
    entries = oindex.all_entries()
    keep = 0
    prev_pos, prev_rec = 0, 0
    for records, pos, _crc in entries:
        if pos > size or pos < prev_pos or records < prev_rec:
            break
        keep += 1
        prev_pos, prev_rec = pos, records
    trimmed = len(entries) - keep
    tentries = tindex.all_entries()
    tkeep = 0
    prev_t, prev_p = -(1 << 62), 0
    for entry in tentries:
        t, pos = entry[0], entry[1]
        # a gap says every byte before pos is older than newest_before: it must not
        # claim more than the previous entry's time (and the entry's check must hold)
        if pos > size or pos < prev_p or t < prev_t or t < 0 or not time_entry_ok(entry) or \
                newest_before(entry) < prev_t or \
                (clock_ms is not None and t > clock_ms + FUTURE_SLACK_MS):
            break
        tkeep += 1
        prev_t, prev_p = t, pos
    # drop torn last entries and entries past the data
    torn = 0
    for index, n_entries, n_keep in ((oindex, len(entries), keep), (tindex, len(tentries), tkeep)):
        partial = 1 if (os.stat(index.path).st_size - 32) % index.esize else 0
        torn += partial
        index.count = n_entries + partial
        index.truncate(n_keep)
    oindex.close()
    tindex.close()
    seg.close()
    return True, trimmed + (len(tentries) - tkeep) + torn


def recover_log(log, clock_ms: int) -> list[RecoveryAction]:
    """Verify and repair *log* (a writer's Log before load()). Returns what was done."""
    actions: list[RecoveryAction] = []

    def act(kind: str, detail: str, **kw) -> None:
        action = RecoveryAction(log.topic, log.name, kind, detail, **kw)
        logger.warning("%s", action)
        actions.append(action)

    log._list_segments()
    segments: list[Segment] = log._segments
    if not segments:
        return actions
    for seg in segments:
        seg.size = os.stat(seg.path).st_size
    interval = log.config.index_interval_bytes

    rp = log.checkpoint.read(RECOVERY_SLOT)
    lives = log.checkpoint.read_lives()  # the two live slots, the greater position first
    trusted = segments[0].base
    if rp is not None:
        seg = _segment_at(segments, rp.interval_start)
        if seg is not None and rp.position <= seg.base + seg.size and \
                _crc(seg, rp.interval_start - seg.base, rp.position - seg.base) == rp.crc:
            trusted = rp.position

    cut_at: int | None = None
    prev_end_ms = 0
    for i, seg in enumerate(segments):
        is_last = i == len(segments) - 1
        seg_end = seg.base + seg.size
        if not is_last and seg_end > segments[i + 1].base:
            # bytes past the next segment's base were never appended to this one
            next_base = segments[i + 1].base
            act("overlap", f"segment {seg.base} runs past the next segment's start {next_base}",
                offset=next_base, length=seg_end - next_base)
            _cut_segment_tail(log, seg, next_base - seg.base, act, clock_ms)
            seg.size = next_base - seg.base
            seg_end = next_base
        # a hole before the recovery point is a segment file that went missing (kept
        # as a gap); a hole after it is data a power loss never wrote: cut there
        gap_after = not is_last and seg_end < segments[i + 1].base
        if gap_after and seg_end < trusted:
            act("gap", f"bytes [{seg_end}, {segments[i + 1].base}) are missing (a segment file is gone); "
                "the rest of the log stays readable", offset=seg_end, length=segments[i + 1].base - seg_end)
        ok, trimmed = _index_ok(seg, seg.size, clock_ms)
        prev = segments[i - 1] if i else None
        rebuilt = not ok
        if not ok:
            base_record, boundary = _base_record_for(log, seg, prev)
            mtime_ms = int(os.stat(seg.path).st_mtime * 1000)
            # the first entry claims that every earlier byte was appended at or before
            # it: the previous segment's last index entry may be older than its last
            # append (entries lost with the power), its file's mtime is not
            start_ms = prev_end_ms
            if prev is not None:
                start_ms = max(start_ms, int(os.stat(prev.path).st_mtime * 1000))
            rebuild_indexes(seg, base_record, boundary, interval, start_ms, mtime_ms, sealed=not is_last)
            act("index-rebuilt", f"indexes of segment {seg.base} were missing or corrupt; rebuilt from the data",
                offset=seg.base)
        elif trimmed:
            act("index-trimmed", f"dropped {trimmed} index entries of segment {seg.base} pointing past the data",
                offset=seg.base)
        try:
            tlast = seg.time_index().last()
            if tlast:
                prev_end_ms = tlast[0]
        except (OSError, CorruptIndex):
            pass
        if seg_end < trusted or (seg_end == trusted and not gap_after):
            continue
        # verify interval CRCs after the recovery point (an index rebuilt from the data
        # as found verifies nothing: only the recovery point and the marks count then)
        oindex = seg.offset_index()
        prev_pos = min(max(trusted - seg.base, 0), seg.size) if rebuilt else 0
        bad_at = None
        for n_entry, (records, pos, crc) in enumerate([] if rebuilt else oindex.all_entries()):
            if seg.base + pos > trusted and _crc(seg, prev_pos, pos) != crc:
                # the recovery point vouches for everything before it, even inside
                # this interval; the bad entry and those after it go
                bad_at = max(prev_pos, trusted - seg.base)
                oindex.truncate(n_entry)
                break
            prev_pos = pos
        if bad_at is None:
            valid = max(prev_pos, min(trusted - seg.base, seg.size)) if trusted > seg.base else prev_pos
            live = None  # the verified live mark reaching furthest
            mark_ms = 0  # the latest append time among the marks that vouched here
            if is_last or valid < seg.size:
                pending = [mark for mark in (*lives, rp) if mark is not None]
                progress = True
                while progress:  # one mark's interval may begin where another's ends
                    progress = False
                    for mark in list(pending):
                        # a mark vouches for its own interval only: the bytes before it
                        # must already be verified (its index entries may never have
                        # reached the disk)
                        if mark.interval_start - seg.base > valid:
                            continue
                        pending.remove(mark)
                        if not _mark_verifies(seg, mark):
                            continue
                        if mark.position - seg.base > valid:
                            valid, progress = mark.position - seg.base, True
                            mark_ms = max(mark_ms, mark.timestamp_ms)
                        if mark is not rp and (live is None or mark.position > live.position):
                            live = mark
            if is_last and live is not None:
                at = live.position - seg.base
                if live.tentative and valid == at:
                    # its last append may be the first part of a write the kernel split
                    # at a page boundary, whose rest never came
                    valid = _whole_lines_only(seg, live.position - live.tentative, trusted, valid, act,
                                              "was the first part of a write that never finished")
                elif valid > at:
                    # an index entry vouches for bytes past the mark: the writer died
                    # inside an append, after its data and index entry, before the mark
                    # (so it was never acknowledged; it may be half a split write too)
                    valid = _whole_lines_only(seg, live.position, trusted, valid, act,
                                              "was never acknowledged (the writer died inside the append)")
            if valid < seg.size:
                bad_at = valid
            elif gap_after:
                bad_at = seg.size
            elif not is_last and not rebuilt and prev_pos < seg.size:
                _complete_sealed_index(seg, mark_ms, act)
        if bad_at is not None:
            cut_at = seg.base + bad_at
            break
    if cut_at is not None:
        _quarantine_from(log, segments, cut_at, act, clock_ms)
    for seg in log._segments:
        seg.close()
    return actions


def _complete_sealed_index(seg: Segment, mark_ms: int, act) -> None:
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
    act("index-completed", f"segment {seg.base} was never sealed (the writer died rolling to the next "
        "segment); its final index entries are written now", offset=seg.base)


def _whole_lines_only(seg: Segment, start_abs: int, trusted: int, valid: int, act, why: str) -> int:
    """The bytes [start_abs, seg.base + valid) belong to an append that was never
    acknowledged as a whole: cut them back to their last newline, never below the
    recovery point. Returns the new valid end (segment-relative)."""
    start = max(start_abs, trusted, seg.base) - seg.base
    if start >= valid:
        return valid
    chunk = os.pread(seg.fd(), valid - start, start)
    newline = chunk.rfind(b"\n")
    keep = start + newline + 1 if newline >= 0 else start
    if keep < valid:
        act("unfinished-write", f"the last append ({valid - start} bytes at {seg.base + start}) {why}; "
            f"cutting it back to offset {seg.base + keep}", offset=seg.base + keep, length=valid - keep)
    return keep


def _segment_at(segments: list[Segment], offset: int) -> Segment | None:
    for seg in reversed(segments):
        if seg.base <= offset:
            return seg if offset <= seg.base + seg.size else None
    return None


def _mark_verifies(seg: Segment, mark: TailMark) -> bool:
    if not (seg.base <= mark.interval_start <= mark.position <= seg.base + seg.size):
        return False
    return _crc(seg, mark.interval_start - seg.base, mark.position - seg.base) == mark.crc


def _base_record_for(log, seg: Segment, prev: Segment | None) -> tuple[int, bool]:
    if prev is None:
        start = log.meta.get("start", {})
        if start.get("offset") == seg.base:
            return int(start.get("record", 0)), bool(start.get("boundary", True))
        return (0, True) if seg.base == 0 else (0, False)
    try:
        prev_records = prev.base_record
        count = prev.count_newlines(0, prev.size)
        last = os.pread(prev.fd(), 1, prev.size - 1) if prev.size else b"\n"
        return prev_records + count, last == b"\n"
    except (OSError, CorruptIndex):
        return 0, False


def _cut_segment_tail(log, seg: Segment, rel: int, act, clock_ms: int) -> None:
    path = os.path.join(log.directory, quarantine_name(clock_ms, seg.base + rel))
    _copy_to(seg.path, rel, path, append=False)
    os.truncate(seg.path, rel)
    act("truncated", f"moved bytes from offset {seg.base + rel} of segment {seg.base} to {os.path.basename(path)}",
        offset=seg.base + rel, quarantine=path)


def _copy_to(src: str, start: int, dst: str, append: bool) -> int:
    copied = 0
    with open(src, "rb") as f, open(dst, "ab" if append else "wb") as q:
        f.seek(start)
        while True:
            chunk = f.read(SCAN_CHUNK)
            if not chunk:
                break
            q.write(chunk)
            copied += len(chunk)
        q.flush()
        os.fsync(q.fileno())
    return copied


def _quarantine_from(log, segments: list[Segment], cut_at: int, act, clock_ms: int) -> None:
    keep = [s for s in segments if s.base <= cut_at]
    keeper = keep[-1] if keep else segments[0]
    path = os.path.join(log.directory, quarantine_name(clock_ms, cut_at))
    total = 0
    for seg in segments:
        if seg.base + seg.size <= cut_at and seg is not keeper:
            continue
        rel = max(0, cut_at - seg.base)
        seg.close()
        total += _copy_to(seg.path, rel, path, append=True)
    rel = cut_at - keeper.base
    keeper.close()
    os.truncate(keeper.path, rel)
    for index_path, magic in ((keeper.offset_index_path, OFFSET_MAGIC), (keeper.time_index_path, TIME_MAGIC)):
        index = IndexFile.open(index_path, magic, keeper.cache, writable=True, strict=False)
        entries = index.all_entries()
        keep_n = sum(1 for e in entries if e[1] <= rel)
        index.truncate(keep_n)
        index.close()
    for seg in segments:
        if seg.base > keeper.base:
            seg.delete_files()
    log._list_segments()
    act("truncated", f"cut {total} unverified bytes from offset {cut_at} (never acknowledged by fsync); "
        f"kept in {os.path.basename(path)}", offset=cut_at, length=total, quarantine=path)
