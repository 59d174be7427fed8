"""Case 2 of issue 5: power loss, simulated while nothing is mounted.

A writer appends a known stream to a log with small segments and index intervals,
fsyncs part way, appends more, and is dropped without closing (``store.abandon()``:
no flush, no clean-shutdown marker). The files are then put in a state a power
loss can leave them in, chosen at random per trial:

* every byte up to the fsync is on disk (data, indexes and checkpoint as they were
  at the fsync: the test snapshots them there);
* of what came later, each file holds its newest state, or its state at the fsync,
  or (index files) a cut or garbled version of the newest state; segments created
  after the fsync may be missing (the directory was not synced), and each segment's
  unsynced data is intact, cut at a random point, zero-filled or overwritten with
  garbage from a random point (zeros and garbage may also extend the file);
* the checkpoint's live slot may be the newest one, the one at the fsync, or zeroed.

The next open must keep every fsynced byte, keep only bytes that were really
appended (a prefix of the stream), move exactly what it cut to quarantine files in
order, report it, keep records and seeks right, accept appends, and reopen clean.
A second test removes the clean-shutdown marker after a clean close: nothing may be
cut then.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path

import pytest

from logfs.core import ManualClock, open_log_store
from storekit import (check_append_after, check_records, deterministic_stream, quarantined,
                      read_all, report_text, segments_on_disk)

TOPIC, LOG = "power", "loss"
CLOCK = int(time.time() * 1000) - 3_600_000  # file mtimes (used by index rebuilds) agree with it
TRIALS = int(os.environ.get("LOGFS_POWER_TRIALS", "150"))


def _log_dir(data: Path) -> Path:
    return data / TOPIC / LOG


def _snapshot(src: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in src.iterdir() if p.is_file()}


def _write_plan(rnd: random.Random, total: int) -> list[int]:
    sizes, left = [], total
    while left > 0:
        n = min(left, rnd.choice([1, 5, 40, 99, 300, 700, 1500, 3000]))
        sizes.append(n)
        left -= n
    return sizes


def _garbage(rnd: random.Random, n: int) -> bytes:
    return bytes(rnd.choice(b"ab\n\x00\xff 7") if rnd.random() < 0.5 else rnd.randrange(256)
                 for _ in range(n))


def _damage_segment(rnd: random.Random, path: Path, durable: int, how: str) -> str:
    """Damage the bytes of *path* after position *durable* (the fsynced part)."""
    raw = bytearray(path.read_bytes())
    if len(raw) <= durable and how in ("cut", "zero", "garbage"):
        how = "intact"
    at = rnd.randint(durable, len(raw)) if len(raw) > durable else durable
    if how == "intact":
        return how
    if how == "cut":
        del raw[at:]
    elif how == "zero":
        raw[at:] = bytes(len(raw) - at)
    elif how == "garbage":
        raw[at:] = _garbage(rnd, len(raw) - at)
    elif how == "extend-zero":
        raw += bytes(rnd.randint(1, 5000))
    elif how == "extend-garbage":
        raw += _garbage(rnd, rnd.randint(1, 5000))
    path.write_bytes(bytes(raw))
    return f"{how}@{at}"


def _simulate_power_loss(rnd: random.Random, logdir: Path, at_fsync: dict[str, bytes],
                         seg_sizes_at_fsync: dict[int, int]) -> list[str]:
    """Turn the files in *logdir* (their newest state) into what a power loss leaves."""
    what: list[str] = []
    bases = sorted(b for b, _ in segments_on_disk(logdir.parent.parent, TOPIC, LOG))
    new_bases = [b for b in bases if b not in seg_sizes_at_fsync]
    # segments created after the fsync: a prefix of them survives (directory unsynced)
    keep_new = rnd.randint(0, len(new_bases)) if new_bases and rnd.random() < 0.4 else len(new_bases)
    for base in new_bases[keep_new:]:
        for suffix in (".log", ".index", ".timeindex"):
            (logdir / f"{base:020d}{suffix}").unlink(missing_ok=True)
        what.append(f"lost segment {base}")
    for base in bases:
        if base in new_bases[keep_new:]:
            continue
        seg = logdir / f"{base:020d}.log"
        durable = seg_sizes_at_fsync.get(base, 0)
        kinds = ["intact", "intact", "cut", "zero", "garbage"]
        if base == bases[-1]:  # a file never ends past the longest it ever was, but the
            kinds += ["extend-zero", "extend-garbage"]  # active one may hold leftovers
        how = rnd.choice(kinds)
        what.append(f"segment {base}: " + _damage_segment(rnd, seg, durable, how))
    # metadata: newest, as at the fsync, or (indexes) cut / garbled after the durable part
    for p in sorted(logdir.iterdir()):
        if p.suffix not in (".index", ".timeindex") and p.name != "checkpoint":
            continue
        old = at_fsync.get(p.name)
        choice = rnd.choice(["newest", "at-fsync", "cut", "garble", "missing"] if p.name != "checkpoint"
                            else ["newest", "at-fsync", "live-zeroed"])
        raw = bytearray(p.read_bytes())
        if choice == "missing":  # never synced since its creation: the file is gone
            if old is None:
                p.unlink()
            else:
                p.write_bytes(old)
                choice = "at-fsync"
        elif choice == "at-fsync" and old is not None:
            p.write_bytes(old)
        elif choice == "live-zeroed":
            raw[512:1024] = bytes(512)  # both live slots
            p.write_bytes(bytes(raw))
        elif choice in ("cut", "garble"):
            durable = len(old) if old is not None else 32
            if len(raw) > durable:
                at = rnd.randint(durable, len(raw))
                raw[at:] = b"" if choice == "cut" else _garbage(rnd, len(raw) - at)
                p.write_bytes(bytes(raw))
        what.append(f"{p.name}: {choice}")
    return what


def _never_skips(log, content: bytes, appends: list[tuple[int, int]]) -> int:
    """Time seeks never skip a record appended at or after T; returns seeks checked."""
    checked = 0
    end = len(content)
    times = sorted({t for _o, t in appends})
    if not times:
        return 0
    for t in times[:: max(1, len(times) // 25)] + [times[-1] + 1]:
        first = next((o for o, tt in appends if tt >= t and o < end), None)
        limit = content.rfind(b"\n", 0, first) + 1 if first is not None else end
        pos = log.time_position(t)
        assert log.start_offset <= pos <= limit, \
            f"time_position({t}) = {pos} skips a record appended at or after it (starts at {limit})"
        assert pos in (0, end) or content[pos - 1] == 0x0A, f"time_position({t}) = {pos}: not a record start"
        checked += 1
    return checked


@pytest.mark.parametrize("trial", range(TRIALS))
def test_power_loss_keeps_every_fsynced_byte(tmp_path, trial, figures):
    rnd = random.Random(5000 + trial)
    data = tmp_path / "data"
    data.mkdir()
    seg_bytes = rnd.choice([1500, 4000, 9000, 1 << 20])
    interval = rnd.choice([64, 300, 1024, 4096])
    total = rnd.randint(3000, 40_000)
    content = deterministic_stream(total, seed=trial + 1)
    plan = _write_plan(rnd, total)
    fsync_at = rnd.randint(0, len(plan))
    clock = ManualClock(CLOCK)
    store = open_log_store(str(data), defaults={"segment.bytes": str(seg_bytes),
                                                "index.interval.bytes": str(interval)}, clock=clock)
    store.create_topic(TOPIC)
    log = store.create_log(TOPIC, LOG)
    logdir = _log_dir(data)
    appends: list[tuple[int, int]] = []
    durable, at_fsync, sizes_at_fsync = 0, _snapshot(logdir), {0: 0}
    pos = 0
    for i, n in enumerate(plan):
        if i == fsync_at:
            log.fsync()
            durable = log.end_offset
            at_fsync = _snapshot(logdir)
            sizes_at_fsync = dict(segments_on_disk(data, TOPIC, LOG))
        clock.advance(rnd.randint(0, 7))
        assert log.append(content[pos:pos + n]) == pos
        appends.append((pos, clock.now_ms()))
        pos += n
    if fsync_at == len(plan):
        log.fsync()
        durable = log.end_offset
        at_fsync = _snapshot(logdir)
        sizes_at_fsync = dict(segments_on_disk(data, TOPIC, LOG))
    store.abandon()

    what = _simulate_power_loss(rnd, logdir, at_fsync, sizes_at_fsync)
    segs = segments_on_disk(data, TOPIC, LOG)
    on_disk = {b: (logdir / f"{b:020d}.log").read_bytes() for b, _ in segs}
    ctx = f"trial {trial}: fsync at {durable} of {total}; segment.bytes {seg_bytes}, interval {interval}; " \
          + "; ".join(what)

    with open_log_store(str(data), clock=ManualClock(CLOCK + 7_200_000)) as store:
        assert not store.was_clean
        log = store.log(TOPIC, LOG)
        end = log.end_offset
        assert end >= durable, f"{ctx}: lost fsynced data: end {end} < {durable}"
        got = read_all(log)
        assert got == content[:end], f"{ctx}: the recovered log is not a prefix of what was written"
        # what was cut, byte for byte: the bytes on disk past the new end (one file at
        # offset `end`), and a segment's bytes past the next segment's base (a file at
        # that base) for the segments up to the cut
        expected, main = [], b""
        bases = sorted(on_disk)
        for i, b in enumerate(bases):
            raw = on_disk[b]
            limit = bases[i + 1] - b if i + 1 < len(bases) and b <= end else len(raw)
            main += raw[max(0, end - b):limit]
            if limit < len(raw):
                expected.append((b + limit, raw[limit:]))
        if main:
            expected.append((end, main))
        cut_files = [(int(n.rsplit("-", 1)[1].split(".")[0]), c) for n, c in quarantined(data, TOPIC, LOG)]
        assert sorted(cut_files) == sorted(expected), (
            f"{ctx}: quarantine holds {[(o, len(c)) for o, c in cut_files]}, expected "
            f"{[(o, len(c)) for o, c in expected]} (end {end})")
        cut = b"".join(c for _o, c in cut_files)
        if cut:
            text = report_text(store)
            assert text and all(n in text for n, _c in quarantined(data, TOPIC, LOG)), \
                f"{ctx}: a cut is not reported with its quarantine file: {text!r}"
        check_records(log, content[:end], sample=300)
        seeks = _never_skips(log, content[:end], [(o, t) for o, t in appends if o < end])
        check_append_after(log, content[:end])
        new_end = log.end_offset
    with open_log_store(str(data), clock=ManualClock(CLOCK + 7_300_000)) as store:
        assert store.was_clean and not store.recovery_report, f"{ctx}: the repair was not stable"
        assert store.log(TOPIC, LOG).end_offset == new_end
    figures.update(written=total, fsynced=durable, kept=end, cut=len(cut), seeks=seeks)


@pytest.mark.parametrize("trial", range(6))
def test_missing_clean_marker_cuts_nothing(tmp_path, trial, figures):
    """After a clean close, an operator (or a lost directory update) removes the
    clean-shutdown marker: the full recovery runs and must cut nothing."""
    rnd = random.Random(9000 + trial)
    data = tmp_path / "data"
    data.mkdir()
    content = deterministic_stream(rnd.randint(5000, 50_000), seed=trial + 100)
    with open_log_store(str(data), defaults={"segment.bytes": str(rnd.choice([2000, 7000])),
                                             "index.interval.bytes": str(rnd.choice([100, 999]))},
                        clock=ManualClock(CLOCK)) as store:
        store.create_topic(TOPIC)
        log = store.create_log(TOPIC, LOG)
        for n in _write_plan(rnd, len(content)):
            log.append(content[log.end_offset:log.end_offset + n])
            store.clock.advance(1)
    os.unlink(data / ".logfs" / "clean-shutdown")
    with open_log_store(str(data), clock=ManualClock(CLOCK + 10_000)) as store:
        assert not store.was_clean
        assert not quarantined(data, TOPIC, LOG), report_text(store)
        log = store.log(TOPIC, LOG)
        assert read_all(log) == content
        check_records(log, content, sample=300)
        check_append_after(log, content)
    figures.update(bytes=len(content))
    shutil.rmtree(data)
