"""Model-based test of one log: random appends, clock moves, rolls, retention,
reopen and crash-reopen, checked against a trivial in-memory model.

The model is the bytes ever appended (a bytearray), the list of non-empty appends
(offset, length, time) and the log's creation time. After every step the store must
agree with it: content through read/read_range, start/end offsets, record counts,
record_position, time_position, and the segment files on disk (contiguous, every
roll and every deletion justified by the configuration, no append split across two
segments). A read-only view (open_log_store(readonly=True)) is checked alongside.

Where the contract leaves room (Kafka's "roll when the next append would not fit"
versus "roll once the segment has reached segment.bytes"; "retention.bytes keeps at
least that much" versus "deletes while larger"), the checks accept both readings and
reject anything neither allows.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from bisect import bisect_left
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant,
                                 precondition, rule)

from logfs.core import ManualClock, open_log_store
from logfs.core.errors import OffsetOutOfRange

from storekit import (abandon, check_time_end_position, check_time_position, quarantined, read_all, read_via_ranges,
                      record_starts, segments_on_disk)

TOPIC, LOG = "orders", "eu"

line = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n"), max_size=30)
appends = st.one_of(
    st.binary(max_size=40),                                                 # any bytes, newlines or not
    st.lists(line, min_size=1, max_size=8).map(lambda ls: "".join(x + "\n" for x in ls).encode()),
    st.just(b""),                                                           # empty append
    st.builds(lambda n, c, nl: bytes([c]) * n + (b"\n" if nl else b""),    # large
              st.integers(500, 6000), st.integers(0x20, 0x7e), st.booleans()),
    st.sampled_from([b"\n", b"\n\n\n", b"no newline", b"x\ny"]),
)


class LogModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="logfs-model-"))
        self.data = self.tmp / "data"
        self.store = None
        self.reader = None

    # -- setup ---------------------------------------------------------------------
    @initialize(segment_bytes=st.sampled_from([14, 64, 300, 2000, 1 << 30]),
                interval=st.sampled_from([1, 16, 100, 4096]),
                segment_ms=st.sampled_from([5, 1000, 7 * 24 * 3600 * 1000]),
                retention_bytes=st.sampled_from([-1, 0, 50, 400, 3000]),
                retention_ms=st.sampled_from([-1, 0, 10, 1000]))
    def setup(self, segment_bytes: int, interval: int, segment_ms: int,
              retention_bytes: int, retention_ms: int) -> None:
        self.clock = ManualClock(1_700_000_000_000)
        self.data.mkdir()
        self.defaults = {"segment.bytes": str(segment_bytes), "index.interval.bytes": str(interval),
                         "segment.ms": str(segment_ms)}
        self.segment_bytes, self.interval, self.segment_ms = segment_bytes, interval, segment_ms
        self.max_segment_bytes, self.max_interval = segment_bytes, interval  # bounds over all data
        self.retention_bytes = -1
        self.retention_ms = -1
        self.store = open_log_store(str(self.data), defaults=self.defaults, clock=self.clock)
        self.store.create_topic(TOPIC)
        self.store.create_log(TOPIC, LOG)
        self.created_ms = self.clock.now_ms()
        self.set_retention("retention.bytes", retention_bytes)
        self.set_retention("retention.ms", retention_ms)
        self.content = bytearray()
        self.appends: list[tuple[int, int, int]] = []  # (offset, length, time) of non-empty appends
        self.reader = open_log_store(str(self.data), readonly=True)
        self.segments = segments_on_disk(self.data, TOPIC, LOG)
        assert self.segments == [(0, 0)], self.segments

    def teardown(self) -> None:
        for s in (self.reader, self.store):
            if s is not None:
                try:
                    s.close()
                except Exception:
                    pass
        shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def log(self):
        return self.store.log(TOPIC, LOG)

    # -- model queries -------------------------------------------------------------
    def appends_in(self, base: int, size: int) -> list[tuple[int, int, int]]:
        offsets = [a[0] for a in self.appends]
        i = bisect_left(offsets, base)
        out = []
        while i < len(self.appends) and self.appends[i][0] < base + size:
            out.append(self.appends[i])
            i += 1
        return out

    def newest_ms(self, base: int, size: int) -> int | None:
        inside = self.appends_in(base, size)
        return inside[-1][2] if inside else None

    def creation_lower_bound(self, base: int) -> int:
        """No segment starting at *base* can have been created before the last append
        that preceded it (or before the log was created)."""
        before = [a for a in self.appends if a[0] < base]
        return before[-1][2] if before else self.created_ms

    # -- segment bookkeeping: every change must be justified -----------------------
    def check_segment_change(self, before: list[tuple[int, int]], after: list[tuple[int, int]],
                             appended: bytes | None, now: int) -> None:
        assert after, "a log always has an active segment"
        # deletions: a prefix of the old list, each justified by retention
        deleted = [s for s in before if s[0] < after[0][0]]
        kept = [s for s in before if s[0] >= after[0][0]]
        assert before[:len(deleted)] == deleted
        total = self.end_before - before[0][0]
        for base, size in deleted:
            newest = self.newest_ms(base, size)
            by_ms = self.retention_ms >= 0 and newest is not None and now - newest >= self.retention_ms
            by_bytes = self.retention_bytes >= 0 and total > self.retention_bytes
            by_bytes = by_bytes or (self.retention_bytes >= 0 and appended is not None
                                    and total + len(appended) > self.retention_bytes)
            assert by_ms or by_bytes, (
                f"segment {base} (+{size}, newest {newest}) deleted without cause: now {now}, "
                f"log size {total}, retention.bytes {self.retention_bytes}, "
                f"retention.ms {self.retention_ms}")
            total -= size
        # the surviving old segments are unchanged, except the old active one growing
        for (b0, s0), (b1, s1) in zip(kept, after):
            assert b0 == b1, f"segments changed: {before} -> {after}"
        # new segments (rolls): at most one per step, at the old end, and justified
        new = after[len(kept):] if len(after) > len(kept) else []
        assert len(new) <= 1, f"more than one roll in a step: {before} -> {after}"
        if new:
            nbase = new[0][0]
            prev_base, prev_size = before[-1]
            assert prev_base + prev_size == nbase, f"rolled at {nbase}, old end {prev_base + prev_size}"
            assert prev_size > 0, f"rolled an empty segment at {prev_base}"
            by_size = appended is not None and prev_size + len(appended) > self.segment_bytes
            by_time = now - self.creation_lower_bound(prev_base) >= self.segment_ms
            assert by_size or by_time, (
                f"roll at {nbase} without cause: previous segment {prev_size} bytes, append "
                f"{None if appended is None else len(appended)}, segment.bytes {self.segment_bytes}, "
                f"age bound {now - self.creation_lower_bound(prev_base)} ms < segment.ms {self.segment_ms}")
        else:
            if appended:  # the append went to the old active segment: was that allowed?
                prev_base, prev_size = before[-1]
                assert prev_size < self.segment_bytes, (
                    f"active segment {prev_base} already had {prev_size} >= segment.bytes "
                    f"{self.segment_bytes} bytes and an append of {len(appended)} did not roll")
                first = self.appends_in(prev_base, prev_size)
                if first:
                    assert now - first[0][2] < self.segment_ms, (
                        f"active segment {prev_base} first written at {first[0][2]}, now {now}: "
                        f"older than segment.ms {self.segment_ms} and the append did not roll")

    def check_retention_done(self, segs: list[tuple[int, int]], now: int) -> None:
        """After maintenance, the oldest sealed segment must not be one that every
        reading of the retention settings would delete."""
        if len(segs) < 2:
            return
        base, size = segs[0]
        total = len(self.content) - base
        if self.retention_bytes >= 0:
            assert total - size < self.retention_bytes, (
                f"retention.bytes {self.retention_bytes}: log is {total} bytes and its oldest "
                f"sealed segment ({size} bytes) was not deleted: {segs}")
        newest = self.newest_ms(base, size)
        if self.retention_ms >= 0 and newest is not None:
            assert now - newest <= self.retention_ms, (
                f"retention.ms {self.retention_ms}: oldest sealed segment {base} newest data at "
                f"{newest}, now {now}, not deleted")

    # -- rules -----------------------------------------------------------------------
    @rule(data=appends)
    def append(self, data: bytes) -> None:
        self.do_append(data)

    @rule(batch=st.lists(appends, min_size=1, max_size=25), tick=st.sampled_from([0, 1, 2, 5]))
    def append_many(self, batch: list[bytes], tick: int) -> None:
        for data in batch:
            self.do_append(data)
            self.clock.advance(tick)

    def do_append(self, data: bytes) -> None:
        before = segments_on_disk(self.data, TOPIC, LOG)
        self.end_before = len(self.content)
        now = self.clock.now_ms()
        at = self.log.append(data)
        assert at == len(self.content), f"append returned {at}, the end was {len(self.content)}"
        if data:
            self.appends.append((at, len(data), now))
            self.content += data
        after = segments_on_disk(self.data, TOPIC, LOG)
        self.check_segment_change(before, after, data if data else None, now)
        if data:  # one append never spans two segments
            base, size = after[-1]
            assert base <= at and at + len(data) == base + size, (
                f"append [{at}, {at + len(data)}) not inside the active segment {after[-1]}")
        else:
            assert after == before, "an empty append changed the segments"

    @rule(ms=st.sampled_from([0, 1, 3, 7, 500, 1000, 60_000]))
    def advance_clock(self, ms: int) -> None:
        self.clock.advance(ms)

    @rule(kind=st.sampled_from(["retention.bytes", "retention.ms"]),
          value=st.sampled_from([-1, 0, 50, 400, 3000, 100_000]))
    def set_retention(self, kind: str, value: int) -> None:
        self.store.set_log_config(TOPIC, LOG, {kind: str(value)})
        if kind == "retention.bytes":
            self.retention_bytes = value
            assert self.log.config.retention_bytes == value
        else:
            self.retention_ms = value
            assert self.log.config.retention_ms == value

    @rule(key=st.sampled_from(["segment.bytes", "index.interval.bytes", "segment.ms"]),
          choice=st.integers(0, 3))
    def change_config(self, key: str, choice: int) -> None:
        """Settings change while the log holds data written under the old ones."""
        value = {"segment.bytes": [14, 64, 300, 2000], "index.interval.bytes": [1, 16, 100, 4096],
                 "segment.ms": [5, 1000, 60_000, 7 * 24 * 3600 * 1000]}[key][choice]
        self.store.set_log_config(TOPIC, LOG, {key: str(value)})
        if key == "segment.bytes":
            self.segment_bytes = value
            self.max_segment_bytes = max(self.max_segment_bytes, value)
            assert self.log.config.segment_bytes == value
        elif key == "index.interval.bytes":
            self.interval = value
            self.max_interval = max(self.max_interval, value)
            assert self.log.config.index_interval_bytes == value
        else:
            self.segment_ms = value
            assert self.log.config.segment_ms == value

    @rule()
    def maintenance(self) -> None:
        before = segments_on_disk(self.data, TOPIC, LOG)
        self.end_before = len(self.content)
        now = self.clock.now_ms()
        self.store.run_maintenance()
        after = segments_on_disk(self.data, TOPIC, LOG)
        self.check_segment_change(before, after, None, now)
        self.check_retention_done(after, now)
        base, size = after[-1]
        first = self.appends_in(base, size)
        if first:
            assert now - first[0][2] < self.segment_ms, (
                f"maintenance left active segment {base} (first write {first[0][2]}) older than "
                f"segment.ms {self.segment_ms} at {now}")

    @rule()
    def reopen(self) -> None:
        before = segments_on_disk(self.data, TOPIC, LOG)
        self.store.close()
        self.store = open_log_store(str(self.data), defaults=self.defaults, clock=self.clock)
        assert self.store.was_clean, "clean close did not leave the clean-shutdown marker"
        assert list(self.store.recovery_report) == [], f"recovery after a clean close: {self.store.recovery_report}"
        assert segments_on_disk(self.data, TOPIC, LOG) == before, "reopen changed the segments"

    @rule()
    def crash_reopen(self) -> None:
        before = segments_on_disk(self.data, TOPIC, LOG)
        abandon(self.store, self.data)
        self.store = open_log_store(str(self.data), defaults=self.defaults, clock=self.clock)
        assert not self.store.was_clean, "a crashed store must not look clean"
        cut = quarantined(self.data, TOPIC, LOG)
        assert cut == [], f"recovery after a process crash cut data (nothing was corrupt): {cut}; " \
                          f"report {self.store.recovery_report}"
        assert segments_on_disk(self.data, TOPIC, LOG) == before, "crash recovery changed the segments"

    @rule(a=st.integers(0, 1 << 20), n=st.integers(0, 10_000))
    def read_some(self, a: int, n: int) -> None:
        end = len(self.content)
        start = self.log.start_offset
        a = start + a % (end - start + 2) if end + 2 > start else a  # mostly inside, sometimes past the end
        assert self.log.read(a, n) == bytes(self.content[a:a + n])
        assert read_via_ranges(self.log, a, a + n) == bytes(self.content[a:a + n])
        if start > 0:
            below = a % start
            with pytest.raises(OffsetOutOfRange):
                self.log.read(below, max(1, n))
            with pytest.raises(OffsetOutOfRange):
                self.log.read_range(below, below + max(1, n))

    @rule(k=st.integers(0, 1 << 20))
    def seek_record(self, k: int) -> None:
        self.check_record_position(self.log, k % (self.log.records + 3))

    @rule(k=st.integers(0, 1 << 20), jitter=st.sampled_from([-1, 0, 1]))
    def seek_time(self, k: int, jitter: int) -> None:
        times = sorted({a[2] for a in self.appends} | {self.created_ms, self.clock.now_ms()})
        t = times[k % len(times)] + jitter
        self.check_time_position(self.log, t)

    # -- the checks ---------------------------------------------------------------
    def expected_start_record(self, start: int) -> tuple[int, bool]:
        """(first record starting at or after *start*, whether that is certain)."""
        if start == 0:
            return 0, True
        before = self.content.count(b"\n", 0, start)
        if self.content[start - 1] == 0x0A:
            return before, True
        # starts mid-record: the next record, which may not have begun yet
        return before + 1, b"\n" in self.content[start:]

    def check_record_position(self, log, n: int) -> None:
        start, end = log.start_offset, log.end_offset
        records = self.content.count(b"\n")
        first, certain = self.expected_start_record(start)
        if n < first and (certain or n < first - 1):
            with pytest.raises(OffsetOutOfRange):
                log.record_position(n)
            return
        if n < first:
            return
        pos = log.record_position(n)
        if n > records:
            assert pos == end, f"record_position({n}) past the last record: {pos}, end {end}"
            return
        # record n starts right after newline n-1 (record `records` is the incomplete one,
        # or the end when the log ends with a newline)
        expected = record_starts(bytes(self.content))[n] if n <= records else end
        assert pos == expected, f"record_position({n}) = {pos}, expected {expected} (start {start})"

    def check_time_position(self, log, t: int) -> None:
        check_time_position(log, bytes(self.content), self.appends, t, self.max_interval)

    @invariant()
    def agrees_with_model(self) -> None:
        if self.store is None:
            return
        for view, name in ((self.log, "writer"), (self.reader.log(TOPIC, LOG), "reader")):
            segs = segments_on_disk(self.data, TOPIC, LOG)
            start = view.start_offset
            assert view.end_offset == len(self.content), f"{name}: end_offset"
            assert view.records == self.content.count(b"\n"), f"{name}: records"
            assert start == segs[0][0], f"{name}: start_offset {start}, oldest segment {segs[0]}"
            assert view.segment_count == len(segs), f"{name}: segment_count"
            first, certain = self.expected_start_record(start)
            if certain:
                assert view.start_record == first, f"{name}: start_record {view.start_record} != {first}"
            assert read_all(view) == bytes(self.content[start:]), f"{name}: content"
        # the files on disk: contiguous, the last ends at the end, sealed ones sized by the rules
        segs = segments_on_disk(self.data, TOPIC, LOG)
        for (b0, s0), (b1, _s1) in zip(segs, segs[1:]):
            assert b0 + s0 == b1, f"segments not contiguous: {segs}"
            assert s0 > 0, f"empty sealed segment {b0}: {segs}"
            inside = self.appends_in(b0, s0)
            assert inside and inside[0][0] == b0 and sum(a[1] for a in inside) == s0, \
                f"segment {b0} does not hold whole appends"
            assert s0 - inside[-1][1] < self.max_segment_bytes, (
                f"sealed segment {b0} has {s0} bytes: it had reached segment.bytes "
                f"{self.max_segment_bytes} before its last append")
        assert segs[-1][0] + segs[-1][1] == len(self.content), f"last segment does not end at the end: {segs}"
        # seeks, every step: a spread of append times (and just after them) and of records
        times = sorted({a[2] for a in self.appends})
        pick = times if len(times) <= 12 else times[::len(times) // 8] + times[-4:]
        records = self.content.count(b"\n")
        for view in (self.log, self.reader.log(TOPIC, LOG)):
            for t in pick:
                self.check_time_position(view, t)
                self.check_time_position(view, t + 1)
                check_time_end_position(view, bytes(self.content), self.appends, t, self.max_interval)
                check_time_end_position(view, bytes(self.content), self.appends, t - 1, self.max_interval)
            for n in sorted({0, 1, records // 3, records // 2, records - 1, records, records + 1}):
                if n >= 0:
                    self.check_record_position(view, n)
        d = self.log.describe()
        assert (d["start_offset"], d["end_offset"], d["records"], d["segments"]) == \
            (segs[0][0], len(self.content), records, len(segs)), f"describe() disagrees: {d}"
        if self.appends and self.appends[-1][0] >= segs[0][0]:
            assert self.log.last_append_ms == self.appends[-1][2], "last_append_ms"


# The default profile is fixed (derandomized) and fast enough for every test run;
# LOGFS_HYPOTHESIS=deep explores far more (random seeds, many more examples).
# The default profile does not shrink a failure (shrinking a long stateful run can
# take minutes): rerun with LOGFS_HYPOTHESIS=deep for a minimal failing example.
_PROFILES = {
    "default": dict(max_examples=150, stateful_step_count=50, derandomize=True,
                    phases=[Phase.explicit, Phase.reuse, Phase.generate]),
    "deep": dict(max_examples=1000, stateful_step_count=80, derandomize=False),
}
LogModel.TestCase.settings = settings(
    **_PROFILES[os.environ.get("LOGFS_HYPOTHESIS", "default")], deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
test_log_model = LogModel.TestCase
