"""Crash recovery: a writer process is killed with SIGKILL (after fsyncing part of
what it wrote), the files are then damaged the way a power loss or an operator
would damage them, and the next writer must recover:

* every byte acknowledged by fsync is there, no byte that was never appended
  appears (no zero or garbage tail), and the content is a prefix of what was written;
* what recovery cut is in the quarantine file beside the log, byte for byte;
* recovery says what it did (store.recovery_report);
* seeks agree with the data and the log accepts appends afterwards.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

from logfs.core import DataGap, ManualClock, open_log_store

from storekit import (check_append_after, check_records, chunk_plan, deterministic_stream,
                      index_files, quarantined, quarantined_bytes, read_all, report_text,
                      run_writer_and_kill, segment_path, segments_on_disk)

TOPIC, LOG = "events", "tail"
CLOCK_START = 1_700_000_000_000


def crashed_writer(tmp_path: Path, total: int = 20_000, fsync_after: int | None = 8_000,
                   segment_bytes: int = 1 << 20, interval: int = 512,
                   snapshot_dir: Path | None = None) -> tuple[Path, bytes, dict]:
    """Write *total* bytes in a subprocess, fsync after *fsync_after*, SIGKILL it."""
    data = tmp_path / "data"
    data.mkdir()
    content = deterministic_stream(total)
    report = run_writer_and_kill(data, {
        "topic": TOPIC, "log": LOG, "content": content.decode("latin-1"),
        "chunks": chunk_plan(total), "fsync_after": fsync_after,
        "config": {"segment.bytes": str(segment_bytes), "index.interval.bytes": str(interval)},
        "clock_start_ms": CLOCK_START, "clock_step_ms": 1,
        "snapshot_dir": str(snapshot_dir) if snapshot_dir else None,
    })
    assert report["end"] == total
    return data, content, report


def planned_appends(total: int) -> list[tuple[int, int, int]]:
    """(offset, length, time) of each append crash_writer made for *total* bytes."""
    out, pos = [], 0
    for i, size in enumerate(chunk_plan(total)):
        out.append((pos, size, CLOCK_START + i))
        pos += size
    return out


def reopen(data: Path):
    return open_log_store(str(data), clock=ManualClock(CLOCK_START + 10_000_000))


def align_mtimes(data: Path, appends: list[tuple[int, int, int]]) -> None:
    """Give each segment file the mtime a real clock would have left: the time of the
    last append into it. The writers here run on a ManualClock set years back, while
    the kernel stamps files with the wall clock; an index rebuilt from the data dates
    the segment's first bytes by the previous segment file's mtime (the only trace of
    time left when the index files are gone), so the two clocks must agree."""
    for base, size in segments_on_disk(data, TOPIC, LOG):
        times = [t for o, n, t in appends if o < base + size and o + n > base]
        if times:
            ns = max(times) * 1_000_000
            os.utime(segment_path(data, TOPIC, LOG, base), ns=(ns, ns))


def check_recovered(store, data: Path, content: bytes, durable: int, file_bytes: bytes | None) -> bytes:
    """The common checks after recovery of a single-segment log; returns the content
    as the log now holds it. *file_bytes*: the segment file as damaged (None if the
    test expects nothing to be cut)."""
    log = store.log(TOPIC, LOG)
    end = log.end_offset
    assert end >= durable, f"recovery lost fsync'ed data: end {end} < {durable}"
    assert end <= len(content), f"end {end} is past everything ever written ({len(content)})"
    got = read_all(log)
    assert got == content[:end], "recovered content is not a prefix of what was written"
    cut = quarantined_bytes(data, TOPIC, LOG)
    if file_bytes is None:
        assert cut == b"", f"nothing was damaged, yet recovery cut {len(cut)} bytes"
        assert end == len(content)
    else:
        assert cut == file_bytes[end:], (
            f"quarantine holds {len(cut)} bytes, recovery cut {len(file_bytes) - end} "
            f"(end {end}, file was {len(file_bytes)})")
    check_records(log, content[:end])
    return check_append_after(log, content[:end])


# -- no corruption: nothing may be cut ---------------------------------------------

def test_unclean_shutdown_without_corruption_cuts_nothing(tmp_path):
    data, content, report = crashed_writer(tmp_path)
    with reopen(data) as store:
        assert not store.was_clean
        check_recovered(store, data, content, report["fsynced"], None)
        assert quarantined(data, TOPIC, LOG) == []
    with reopen(data) as store:  # and the clean close after recovery is clean
        assert store.was_clean and list(store.recovery_report) == []
        assert store.log(TOPIC, LOG).end_offset == len(content) + len(b"appended after recovery\n")


def test_unclean_shutdown_many_segments_never_fsynced(tmp_path):
    data, content, _ = crashed_writer(tmp_path, total=30_000, fsync_after=None, segment_bytes=2_000,
                                      interval=100)
    assert len(segments_on_disk(data, TOPIC, LOG)) > 5
    with reopen(data) as store:
        assert not store.was_clean
        check_recovered(store, data, content, 0, None)


def test_last_append_time_survives_a_crash(tmp_path):
    """The time of the last append is a figure of the log (describe, retention.ms,
    time seeks): a kill -9 must not move it back to an older index entry."""
    data, content, _ = crashed_writer(tmp_path, total=5_000, interval=100_000)
    chunks = chunk_plan(5_000)
    last_ms = CLOCK_START + len(chunks) - 1
    with reopen(data) as store:
        log = store.log(TOPIC, LOG)
        assert log.last_append_ms == last_ms, \
            f"last_append_ms {log.last_append_ms} after a crash, the last append was at {last_ms}"
        # the record written by the last append must not be skipped by a time seek
        last_at = len(content) - chunks[-1]
        pos = log.time_position(last_ms)
        assert pos <= last_at, f"time_position({last_ms}) = {pos} skips the last append at {last_at}"


# -- damaged tails -------------------------------------------------------------------

def _damage(path: Path, at: int, replacement: bytes, extend: bool) -> bytes:
    """Overwrite the file from *at* with *replacement* (extend: write past the end)."""
    raw = bytearray(path.read_bytes())
    if extend:
        raw[len(raw):] = replacement
    else:
        raw[at:at + len(replacement)] = replacement
    path.write_bytes(bytes(raw))
    return bytes(raw)


@pytest.mark.parametrize("extend", [False, True], ids=["overwritten", "extended"])
@pytest.mark.parametrize("kind", ["zero", "garbage"])
def test_damaged_tail_is_cut_and_quarantined(tmp_path, kind, extend):
    data, content, report = crashed_writer(tmp_path)
    durable = report["fsynced"]
    seg = segment_path(data, TOPIC, LOG, 0)
    rnd = random.Random(7)
    size = 3_000 if extend else len(content) - (durable + 1_500)
    junk = bytes(size) if kind == "zero" else bytes(rnd.choice(b"abc\n\x00\xff xyz") for _ in range(size))
    damaged = _damage(seg, durable + 1_500, junk, extend)
    with reopen(data) as store:
        assert not store.was_clean
        check_recovered(store, data, content, durable, damaged)
        end_after = store.log(TOPIC, LOG).end_offset
        assert store.recovery_report, "recovery cut a damaged tail but reported nothing"
        assert LOG in report_text(store), report_text(store)
        assert quarantined(data, TOPIC, LOG), "no quarantine file beside the log"
    with reopen(data) as store:  # the repair is stable: a clean reopen changes nothing
        assert store.was_clean and list(store.recovery_report) == []
        assert store.log(TOPIC, LOG).end_offset == end_after


@pytest.mark.parametrize("tail", ["intact", "zero", "garbage", "short"])
def test_power_loss_after_fsync(tmp_path, tail):
    """A power loss: of everything written after the last fsync, the metadata (index
    entries, the checkpoint's live slot) never reached the disk, and the data tail
    is intact, zero-filled, garbage or shorter. What fsync acknowledged must survive,
    nothing unwritten may appear, what is cut is quarantined."""
    snap = tmp_path / "at-fsync"
    data, content, report = crashed_writer(tmp_path, snapshot_dir=snap)
    durable = report["fsynced"]
    logdir = data / TOPIC / LOG
    assert sorted(f.name for f in snap.iterdir()), "the writer took no snapshot at its fsync"
    for f in logdir.iterdir():
        if not f.name.endswith(".log"):
            f.unlink()
    for f in snap.iterdir():
        shutil.copyfile(f, logdir / f.name)
    seg = segment_path(data, TOPIC, LOG, 0)
    at = durable + 300
    if tail == "zero":
        _damage(seg, at, bytes(len(content) - at), extend=False)
    elif tail == "garbage":
        rnd = random.Random(3)
        _damage(seg, at, bytes(rnd.randrange(256) for _ in range(len(content) - at)), extend=False)
    elif tail == "short":
        os.truncate(seg, at)
    damaged = seg.read_bytes()
    with reopen(data) as store:
        assert not store.was_clean
        check_recovered(store, data, content, durable, damaged)


@pytest.mark.parametrize("kind", ["zero", "garbage"])
def test_damage_in_an_unsynced_sealed_segment_cuts_from_there(tmp_path, kind):
    """Sealed but never fsynced segments lose blocks too: the damage sits in the
    middle of the log; everything from it on is cut (and kept aside, in order)."""
    data, content, report = crashed_writer(tmp_path, total=12_000, fsync_after=400,
                                           segment_bytes=2_500, interval=200)
    durable = report["fsynced"]
    segs = segments_on_disk(data, TOPIC, LOG)
    assert len(segs) >= 4 and durable < segs[2][0]
    base, size = segs[3]
    hole = 300 if kind == "zero" else 250
    junk = bytes(hole) if kind == "zero" else bytes(random.Random(1).randrange(256) for _ in range(hole))
    _damage(segment_path(data, TOPIC, LOG, base), size // 2, junk, extend=False)
    on_disk = b"".join(segment_path(data, TOPIC, LOG, b).read_bytes() for b, _ in segs)
    with reopen(data) as store:
        log = store.log(TOPIC, LOG)
        end = log.end_offset
        assert durable <= end <= base + size // 2, f"end {end}: damage at {base + size // 2}"
        assert read_all(log) == content[:end]
        assert quarantined_bytes(data, TOPIC, LOG) == on_disk[end:], "quarantine is not what was cut"
        assert store.recovery_report
        assert [b for b, _ in segments_on_disk(data, TOPIC, LOG)][-1] <= end
        check_records(log, content[:end])
        check_append_after(log, content[:end])


def test_index_pointing_past_the_data(tmp_path):
    """The indexes reached the disk, the data did not: the segment is shorter than
    what its index entries point at."""
    data, content, report = crashed_writer(tmp_path)
    durable = report["fsynced"]
    seg = segment_path(data, TOPIC, LOG, 0)
    os.truncate(seg, durable + 700)
    damaged = seg.read_bytes()
    with reopen(data) as store:
        check_recovered(store, data, content, durable, damaged)
        assert store.recovery_report, "index entries past the data were dropped silently"
        log = store.log(TOPIC, LOG)
        end = log.end_offset - len(b"appended after recovery\n")
        # time seeks stay inside the data
        for t in (CLOCK_START, CLOCK_START + 50, CLOCK_START + 10_000):
            assert log.time_position(t) <= log.end_offset


@pytest.mark.parametrize("cut", ["torn-entry", "half", "header-only", "empty"])
def test_truncated_index(tmp_path, cut):
    data, content, report = crashed_writer(tmp_path, interval=256)
    files = index_files(data, TOPIC, LOG, 0)
    assert files, "no index files beside the segment"
    for f in files:
        size = f.stat().st_size
        new = {"torn-entry": size - 5, "half": size // 2, "header-only": 10, "empty": 0}[cut]
        os.truncate(f, max(0, new))
    found = segment_path(data, TOPIC, LOG, 0).read_bytes()
    with reopen(data) as store:
        # The data is intact, but what lay between the fsync and the checkpoint's live
        # interval was vouched for only by the lost index entries: after a power loss
        # those bytes could as well be zeros (tests/reliability/test_power_loss.py).
        # Recovery keeps every fsynced byte and quarantines exactly what it cuts.
        now = check_recovered(store, data, content, report["fsynced"], found)
        if cut in ("header-only", "empty", "torn-entry"):
            assert store.recovery_report, f"a {cut} index was repaired silently"
    with reopen(data) as store:
        check_records(store.log(TOPIC, LOG), now)


@pytest.mark.parametrize("which", ["sealed", "active", "all"])
def test_missing_index_files_after_crash(tmp_path, which):
    data, content, report = crashed_writer(tmp_path, total=12_000, fsync_after=3_000,
                                           segment_bytes=2_500, interval=200)
    segs = segments_on_disk(data, TOPIC, LOG)
    assert len(segs) >= 4
    victims = {"sealed": [segs[1][0]], "active": [segs[-1][0]], "all": [b for b, _ in segs]}[which]
    align_mtimes(data, planned_appends(len(content)))
    for base in victims:
        for f in index_files(data, TOPIC, LOG, base):
            f.unlink()
    on_disk = b"".join(segment_path(data, TOPIC, LOG, b).read_bytes() for b, _ in segs)
    with reopen(data) as store:
        log = store.log(TOPIC, LOG)
        # a rebuilt index verifies nothing (it is computed from the data as found):
        # after the fsync, only the checkpoint's marks vouch for bytes; the rest is
        # cut, kept byte for byte in quarantine, never below what fsync acknowledged
        end = log.end_offset
        assert end >= report["fsynced"]
        assert read_all(log) == content[:end]
        assert quarantined_bytes(data, TOPIC, LOG) == on_disk[end:]
        assert store.recovery_report, "missing index files were rebuilt silently"
        check_records(log, content[:end])
        # time seeks never skip a record, ?until= never drops one, even with a time
        # index rebuilt from the data (it may be coarse: early or late is fine)
        kept = content[:end]
        appends = [(o, min(n, end - o), t) for o, n, t in planned_appends(len(content)) if o < end]
        for t in range(CLOCK_START - 1, CLOCK_START + len(appends) + 2):
            pos = log.time_position(t)
            later = next((a for a in appends if a[2] >= t), None)
            exact = kept.rfind(b"\n", 0, later[0]) + 1 if later else end
            assert 0 <= pos <= exact, f"time_position({t}) = {pos} skips records from {exact}"
            end_pos = log.time_end_position(t)
            upto = [a for a in appends if a[2] <= t]
            done = kept.rfind(b"\n", 0, upto[-1][0] + upto[-1][1]) + 1 if upto else 0
            assert done <= end_pos <= log.end_offset, \
                f"time_end_position({t}) = {end_pos} drops records that end by {done}"
        check_append_after(log, content[:end])
    for base in victims:
        if base < end:
            assert index_files(data, TOPIC, LOG, base), f"indexes of segment {base} not rebuilt on disk"


def test_missing_index_files_after_clean_shutdown(tmp_path):
    """Sealed segments are not verified at a clean open; a missing index must still
    not break reads or seeks when the segment is first used."""
    data = tmp_path / "data"
    data.mkdir()
    content = deterministic_stream(10_000)
    with open_log_store(str(data), defaults={"segment.bytes": "2000", "index.interval.bytes": "100"},
                        clock=ManualClock(CLOCK_START)) as store:
        store.create_topic(TOPIC)
        log = store.create_log(TOPIC, LOG)
        for i in range(0, len(content), 250):
            log.append(content[i:i + 250])
            store.clock.advance(1)
    segs = segments_on_disk(data, TOPIC, LOG)
    align_mtimes(data, [(i, 250, CLOCK_START + i // 250) for i in range(0, len(content), 250)])
    for f in index_files(data, TOPIC, LOG, segs[2][0]):
        f.unlink()
    with open_log_store(str(data), clock=ManualClock(CLOCK_START + 1_000)) as store:
        log = store.log(TOPIC, LOG)
        assert read_all(log) == content
        check_records(log, content)
        for t in range(CLOCK_START - 1, CLOCK_START + 45):  # one append of 250 bytes per ms
            exact = content.rfind(b"\n", 0, min(len(content), 250 * max(0, t - CLOCK_START))) + 1
            assert 0 <= log.time_position(t) <= exact, f"time_position({t}) skips records from {exact}"
            done = content.rfind(b"\n", 0, min(len(content), 250 * max(0, t - CLOCK_START + 1))) + 1
            assert done <= log.time_end_position(t), f"time_end_position({t}) drops records that end by {done}"
        check_append_after(log, content)


# -- a missing middle segment --------------------------------------------------------

@pytest.mark.parametrize("shutdown", ["crash", "clean"])
def test_missing_middle_segment(tmp_path, shutdown):
    if shutdown == "crash":
        data, content, _ = crashed_writer(tmp_path, total=12_000, fsync_after=12_000,
                                          segment_bytes=2_500, interval=200)
    else:
        data = tmp_path / "data"
        data.mkdir()
        content = deterministic_stream(12_000)
        with open_log_store(str(data), defaults={"segment.bytes": "2500", "index.interval.bytes": "200"},
                            clock=ManualClock(CLOCK_START)) as store:
            store.create_topic(TOPIC)
            log = store.create_log(TOPIC, LOG)
            for size in chunk_plan(len(content)):
                log.append(content[log.end_offset:log.end_offset + size])
    segs = segments_on_disk(data, TOPIC, LOG)
    assert len(segs) >= 4
    gap_base, gap_size = segs[2]
    gap_end = gap_base + gap_size
    segment_path(data, TOPIC, LOG, gap_base).unlink()
    for f in index_files(data, TOPIC, LOG, gap_base):
        f.unlink()
    with reopen(data) as store:
        if shutdown == "crash":
            assert str(gap_base) in report_text(store), \
                f"missing segment at {gap_base} not reported: {report_text(store)!r}"
        log = store.log(TOPIC, LOG)
        assert log.start_offset == 0 and log.end_offset == len(content)
        assert log.read(0, gap_base) == content[:gap_base]
        assert log.read(gap_end, len(content)) == content[gap_end:]
        with pytest.raises(DataGap):
            log.read(gap_base, 10)
        with pytest.raises(DataGap):
            log.read_range(gap_base + 5, gap_end)
        # a read from before the gap into it and past it stops at the gap (it used to
        # hand out the next segment's file from a negative position)
        ranges = log.read_range(gap_base - 100, len(content))
        assert [(r.log_offset, r.length) for r in ranges] == [(gap_base - 100, 100)], ranges
        assert all(r.position >= 0 for r in ranges)
        assert log.records == content.count(b"\n"), "records must not change when a segment is lost"
        # records after the gap keep their numbers
        after = content.count(b"\n", 0, gap_end)
        starts = [0] + [i + 1 for i, b in enumerate(content) if b == 10]
        for n in range(after + 1, content.count(b"\n"), 7):
            assert log.record_position(n) == starts[n]
        check_append_after(log, content)
        assert quarantined(data, TOPIC, LOG) == []


# -- kill -9 at a random moment, again and again ------------------------------------------

KILL_LOOP = r'''
import sys, time
from logfs.core import open_log_store
sys.path.insert(0, sys.argv[2])
from storekit import deterministic_stream
content = deterministic_stream(int(sys.argv[3]))
pause = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
store = open_log_store(sys.argv[1], defaults={"segment.bytes": "50000", "index.interval.bytes": "300"})
if "t" not in store.topics():
    store.create_topic("t")
log = store.log("t", "l") if store.has_log("t", "l") else store.create_log("t", "l")
pos = log.end_offset
print("STARTED", pos, flush=True)
sizes = [1, 70, 333, 4096, 20000, 9]
i = 0
while pos < len(content):
    n = sizes[i % len(sizes)]
    assert log.append(content[pos:pos + n]) == pos
    pos += len(content[pos:pos + n])
    i += 1
    if i % 97 == 0:
        log.fsync()
    if pause:
        time.sleep(pause)
print("FINISHED", flush=True)
'''


def test_kill_at_random_moments(tmp_path):
    import subprocess
    import sys
    import time as _time

    from storekit import HERE
    data = tmp_path / "data"
    data.mkdir()
    total = 8 * 1024 * 1024
    stream = deterministic_stream(total)
    rnd = random.Random(11)
    prev_end = 0
    seen_quarantine: set[str] = set()
    for round_ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", KILL_LOOP, str(data), str(HERE), str(total)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        assert line.startswith("STARTED"), line + proc.stderr.read()
        _time.sleep(rnd.uniform(0.01, 0.15))
        proc.kill()
        proc.wait()
        on_disk = b"".join(segment_path(data, "t", "l", b).read_bytes() for b, _ in segments_on_disk(data, "t", "l"))
        with open_log_store(str(data)) as store:
            assert not store.was_clean
            log = store.log("t", "l")
            end = log.end_offset
            assert end >= prev_end, f"round {round_}: end went back from {prev_end} to {end}"
            assert read_all(log) == stream[:end], f"round {round_}: content is not the stream"
            assert log.records == stream.count(b"\n", 0, end)
            new = [(n, c) for n, c in quarantined(data, "t", "l") if n not in seen_quarantine]
            cut = b"".join(c for _n, c in new)
            assert cut == on_disk[end:], f"round {round_}: quarantine is not what was cut"
            assert stream[end:end + len(cut)] == cut, "recovery cut real data that was not an in-flight append"
            assert len(cut) <= 20000, f"round {round_}: cut {len(cut)} bytes, more than one append"
            seen_quarantine.update(n for n, _c in new)
            prev_end = end
    assert prev_end > 0
