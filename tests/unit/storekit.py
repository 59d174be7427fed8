"""Helpers shared by the core's unit tests: reading a log whole, finding its files
on disk, simulating a crash, running a writer in a subprocess.

Only the documented API (docs/core-api.md) and the documented on-disk layout
(docs/spec.md §7, docs/format.md) are used, so the tests hold the core to its
contract rather than to its internals.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from logfs.core import open_log_store

HERE = Path(__file__).resolve().parent
CRASH_WRITER = HERE / "crash_writer.py"
SEGMENT_RE = re.compile(r"^(\d{20})\.log$")

# Appends that survive an abandoned (crashed) store object must not be garbage
# collected: a finaliser could still write to the store's files after a new store
# took over. They live here until the interpreter exits.
_GRAVEYARD: list[object] = []


# -- reading -------------------------------------------------------------------------

def read_all(log) -> bytes:
    """The log's retained bytes [start_offset, end_offset) through read_range + pread."""
    return read_via_ranges(log, log.start_offset, log.end_offset)


def read_via_ranges(log, a: int, b: int) -> bytes:
    """Bytes [a, min(b, end)) through the FileRange descriptors, checking that they
    tile the range. read_range may return fewer ranges than the whole span (it bounds
    the descriptors handed out per call); then it is called again from where it
    stopped, as a caller would."""
    out = bytearray()
    expect = a
    while expect < b:
        ranges = log.read_range(expect, b)
        if not ranges:
            break
        for r in ranges:
            assert r.log_offset == expect, f"ranges not contiguous at {expect}: {ranges!r}"
            assert r.length > 0, f"empty range in {ranges!r}"
            chunk = os.pread(r.fd, r.length, r.position)
            assert len(chunk) == r.length, f"short pread of {r!r}: {len(chunk)} bytes"
            out += chunk
            expect += r.length
    assert expect <= b, f"read_range went past {b}: to {expect}"
    return bytes(out)


# -- the on-disk layout ----------------------------------------------------------------

def log_dir(data: Path, topic: str, log: str) -> Path:
    return Path(data) / topic / log


def segments_on_disk(data: Path, topic: str, log: str) -> list[tuple[int, int]]:
    """[(base, size)] of the segment files of a log, by base."""
    out = []
    for entry in os.scandir(log_dir(data, topic, log)):
        m = SEGMENT_RE.match(entry.name)
        if m:
            out.append((int(m.group(1)), entry.stat().st_size))
    return sorted(out)


def segment_path(data: Path, topic: str, log: str, base: int) -> Path:
    return log_dir(data, topic, log) / f"{base:020d}.log"


def index_files(data: Path, topic: str, log: str, base: int) -> list[Path]:
    """The files beside segment *base* that are not the segment itself (its indexes)."""
    d = log_dir(data, topic, log)
    stem = f"{base:020d}"
    return sorted(p for p in d.iterdir() if p.name.startswith(stem) and p.name != stem + ".log")


INDEX_SUFFIXES = (".index", ".timeindex")


def quarantined(data: Path, topic: str, log: str) -> list[tuple[str, bytes]]:
    """[(file name, content)] of the quarantine files of log bytes beside a log
    (what recovery cut from the log), oldest first."""
    d = log_dir(data, topic, log)
    found = []
    for p in sorted(d.iterdir()):
        if "quarantine" in p.name.lower() and not p.name.endswith(INDEX_SUFFIXES):
            found.append((p.name, p.read_bytes()))
    return found


def quarantined_index_files(data: Path, topic: str, log: str) -> list[tuple[str, bytes]]:
    """[(file name, content)] of the corrupt index files recovery kept in quarantine
    beside a log (``quarantine-<ms>-<base>.index`` / ``.timeindex``)."""
    d = log_dir(data, topic, log)
    return [(p.name, p.read_bytes()) for p in sorted(d.iterdir())
            if "quarantine" in p.name.lower() and p.name.endswith(INDEX_SUFFIXES)]


def quarantined_bytes(data: Path, topic: str, log: str) -> bytes:
    return b"".join(content for _name, content in quarantined(data, topic, log))


def report_text(store) -> str:
    return "\n".join(str(a) for a in store.recovery_report)


# -- records and time, computed from a model's bytes -----------------------------------

def record_starts(content: bytes) -> list[int]:
    """Byte offset of every record start: 0 and just after each newline but the last
    byte (the end is the start of the incomplete record if there is one)."""
    starts = [0]
    at = content.find(b"\n")
    while at >= 0:
        starts.append(at + 1)
        at = content.find(b"\n", at + 1)
    return starts


def record_start_containing(content: bytes, pos: int) -> int:
    """Start of the record that holds byte *pos* (or begins at *pos*)."""
    return content.rfind(b"\n", 0, pos) + 1


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- crashes -------------------------------------------------------------------------

def abandon(store, data: Path) -> None:
    """Drop a writer store as a crash would: no close, no clean-shutdown marker, no
    final flush; its files stay as the page cache has them.

    Uses ``store.abandon()`` if the core offers one; otherwise closes the descriptor
    holding the store's flock (found through /proc/self/fd) and keeps the object alive
    forever so that no finaliser runs.
    """
    drop = getattr(store, "abandon", None) or getattr(store, "_abandon", None)
    if drop is not None:
        drop()
        _GRAVEYARD.append(store)
        return
    lock_dir = os.path.realpath(os.path.join(data, ".logfs"))
    closed = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target == os.path.join(lock_dir, "lock"):
            os.close(int(name))
            closed += 1
    assert closed, "could not find the store's lock descriptor to simulate a crash"
    store.close = lambda: None  # a crashed process never closes
    _GRAVEYARD.append(store)


def deterministic_stream(n: int, seed: int = 1) -> bytes:
    """*n* bytes of printable lines (no NUL), the same in every process."""
    alphabet = b"abcdefghijklmnopqrstuvwxyz" * 5
    parts = []
    size = 0
    i = 0
    while size < n:
        width = 10 + (i * 37 + seed * 11) % 90
        body = b"%d:%09d:" % (seed, i)
        k = i % 26
        line = body + alphabet[k:k + max(0, width - len(body))] + b"\n"
        parts.append(line)
        size += len(line)
        i += 1
    return b"".join(parts)[:n]


def chunk_plan(total: int, seed: int = 1) -> list[int]:
    """Append sizes summing to *total*: a mix of small and larger, not line-aligned."""
    sizes = []
    left = total
    i = 0
    while left > 0:
        n = min(left, [1, 7, 100, 333, 50, 4000, 13, 999][(i + seed) % 8])
        sizes.append(n)
        left -= n
        i += 1
    return sizes


def run_writer_and_kill(data: Path, spec: dict, timeout: float = 30.0) -> dict:
    """Run tests/unit/crash_writer.py with *spec*, wait for it to report that it has
    written everything, then SIGKILL it (no close: an unclean shutdown).

    spec: topic, log, content (latin-1 str), chunks (list of sizes), fsync_after
    (bytes: fsync once this many bytes are appended; None: never), config (dict),
    clock_start_ms, clock_step_ms. Returns the writer's final report (end offset,
    fsynced offset).
    """
    spec = dict(spec, data=str(data))
    spec_path = Path(data).parent / f"writer-spec-{time.monotonic_ns()}.json"
    spec_path.write_text(json.dumps(spec))
    proc = subprocess.Popen([sys.executable, str(CRASH_WRITER), str(spec_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    report = None
    try:
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("DONE "):
                report = json.loads(line[5:])
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        _out, err = proc.communicate(timeout=10)
    assert report is not None, f"writer did not report DONE before SIGKILL; stderr:\n{err}"
    assert proc.returncode == -signal.SIGKILL
    return report


def open_store(data: Path, clock=None, **defaults):
    return open_log_store(str(data), defaults={k.replace("_", "."): str(v) for k, v in defaults.items()},
                          clock=clock)


# -- whole-log checks ------------------------------------------------------------------

def check_records(log, content: bytes, sample: int = 3000) -> None:
    """record_position agrees with *content* (all bytes ever appended) for up to
    *sample* records spread over the log, and the figures agree."""
    starts = record_starts(content)
    records = content.count(b"\n")
    assert log.records == records, f"records {log.records}, expected {records}"
    first = log.start_record
    step = max(1, (records + 1 - first) // sample)
    for n in list(range(first, records + 1, step)) + [records, records + 1, records + 5]:
        if n < first:
            continue
        pos = log.record_position(n)
        want = starts[n] if n <= records else len(content)
        assert pos == want, f"record_position({n}) = {pos}, expected {want}"


def check_append_after(log, content: bytes) -> bytes:
    """Appends land at the end and read back; returns the new content."""
    extra = b"appended after recovery\n"
    at = log.append(extra)
    assert at == len(content), f"append after recovery at {at}, end was {len(content)}"
    content = content + extra
    assert log.read(at, len(extra)) == extra
    assert log.end_offset == len(content)
    return content


def first_record_start_at_or_after(content: bytes, pos: int) -> int:
    if pos == 0 or content[pos - 1] == 0x0A:
        return pos
    nxt = content.find(b"\n", pos)
    return nxt + 1 if nxt >= 0 else len(content)


def check_time_position(log, content: bytes, appends: list[tuple[int, int, int]], t: int,
                        interval: int, v1_index: bool = False) -> int:
    """time_position(t) against the model. *appends*: (offset, length, time) of every
    non-empty append, in order. Returns the position.

    The reading tested (docs/core-api.md leaves the fine print open): a record counts
    as appended at or after T if any of its bytes was, so the answer is never after
    the start of the record holding the first byte appended at or after T (an
    incomplete last record included); it is a record start (or the log start, when
    that falls inside a record); it may be early, but by less than one index interval,
    rounded down to a record start, whatever the sizes of the appends. Indexes of
    version 1 (*v1_index*: no newest time before an entry) may be early by one index
    interval plus the largest single append.
    """
    start, end = log.start_offset, log.end_offset
    later = next((a for a in appends if a[2] >= t), None)
    exact = (content.rfind(b"\n", 0, later[0]) + 1) if later else end
    allowed = exact if exact >= start else first_record_start_at_or_after(content, start)
    pos = log.time_position(t)
    assert start <= pos <= allowed, (
        f"time_position({t}) = {pos}: skips a record appended at or after {t} (it starts at "
        f"{exact}; log start {start})")
    assert pos == start or pos == end or pos == 0 or content[pos - 1] == 0x0A, \
        f"time_position({t}) = {pos} is not a record start"
    largest = max((a[1] for a in appends), default=0) if v1_index else 0
    first_byte = later[0] if later else end
    floor = content.rfind(b"\n", 0, max(start, first_byte - interval - largest)) + 1
    assert pos >= max(floor, start), (
        f"time_position({t}) = {pos} is too early: the first record appended at or after it "
        f"starts at {exact}; index interval {interval}" + (f", largest append {largest}" if largest else ""))
    return pos


def check_time_end_position(log, content: bytes, appends: list[tuple[int, int, int]], t: int,
                            interval: int) -> int:
    """time_end_position(t) (?until=) against the model; the mirror of
    check_time_position. A record counts as appended at or before T when its newline
    was: the answer is never before the end of the last such record, is a record
    boundary, and is late by at most one index interval plus the largest append."""
    start, end = log.start_offset, log.end_offset
    upto = [a for a in appends if a[2] <= t]
    last_byte = upto[-1][0] + upto[-1][1] if upto else 0
    exact = content.rfind(b"\n", 0, last_byte) + 1  # after the last newline appended <= t
    later = next((a for a in appends if a[2] > t), None)
    pos = log.time_end_position(t)
    assert max(exact, start) <= pos <= end, (
        f"time_end_position({t}) = {pos} drops a record appended at or before {t} (they end "
        f"at {exact}; log {start}..{end})")
    assert pos == start or pos == 0 or content[pos - 1] == 0x0A, \
        f"time_end_position({t}) = {pos} is not a record boundary"
    if later is not None:
        largest = max(a[1] for a in appends)
        assert pos <= max(start, later[0] + interval + largest), (
            f"time_end_position({t}) = {pos} is too late: the first later append is at "
            f"{later[0]}; index interval {interval}, largest append {largest}")
    else:
        assert pos == max(start, exact), f"time_end_position({t}) = {pos}: nothing later, expected {exact}"
    return pos
