"""A power loss under the consumer-group store (issue 12, part 1), simulated.

A group commits a few hundred times, random positions of random logs at once (a
batch per commit, as `logfs consume` commits every log it reads), through the
file's compactions. Every commit returned after its ``fdatasync``, so after a power
loss the file holds at least everything up to the last commit that returned. What
the commit in flight had written may be anything a disk leaves: nothing, a prefix,
the whole record, a prefix followed by zeros or by garbage, the whole record with a
torn sector inside it, or zeros past the end (the file size was updated, the data
was not). Of a compaction in flight, the new file or the old one may be in place,
with a half-written temporary file beside it.

For many such states (every commit, every kind of damage, random cut points) a
fresh reader must see exactly the positions of the last acknowledged commit, or of
the one in flight when its record survived whole: never a position no commit made,
never garbage, never less than what was acknowledged. And the next commit must work
from there (the torn tail dropped) and read back.
"""

from __future__ import annotations

import os
import random
import shutil
import struct
from pathlib import Path

import pytest

from logfs.core import ManualClock
from logfs.core import groups as group_store
from logfs.core.groups import GroupStore, Position, decode_file, encode_commit

COMMITS = int(os.environ.get("LOGFS_GROUP_POWER_COMMITS", "600"))
LOGS = [("orders", f"p{i}") for i in range(12)] + [("audit", "ünï cødé")]


def _commits(rnd: random.Random) -> list[dict[tuple[str, str], tuple[int, int]]]:
    out, records = [], {k: 0 for k in LOGS}
    for _ in range(COMMITS):
        batch = {}
        for key in rnd.sample(LOGS, rnd.randint(1, 5)):
            records[key] += rnd.randint(1, 5000)
            batch[key] = (records[key], records[key] * 97)
        out.append(batch)
    return out


def _damaged(rnd: random.Random, durable: bytes, record: bytes) -> tuple[str, bytes]:
    """A state a power loss can leave a file in: *durable* whole, then something of
    *record* (the commit in flight)."""
    how = rnd.choice(["nothing", "cut", "whole", "cut+zeros", "cut+garbage", "torn", "zeros-past"])
    at = rnd.randint(0, len(record))
    if how == "nothing":
        return how, durable
    if how == "cut":
        return how, durable + record[:at]
    if how == "whole":
        return how, durable + record
    if how == "cut+zeros":
        return how, durable + record[:at] + bytes(len(record) - at + rnd.randint(0, 600))
    if how == "cut+garbage":
        return how, durable + record[:at] + bytes(rnd.randrange(256) for _ in range(len(record) - at))
    if how == "torn":  # whole length, one sector-ish piece of it zeroed or garbled
        torn = bytearray(record)
        a = rnd.randrange(len(torn))
        b = min(len(torn), a + rnd.randint(1, 512))
        torn[a:b] = bytes(b - a) if rnd.random() < 0.5 else bytes(rnd.randrange(256) for _ in range(b - a))
        return how, durable + bytes(torn)
    return how, durable + bytes(rnd.randint(1, 4096))  # the size grew, no data came


def test_a_record_of_length_zero_is_not_a_commit(tmp_path):
    group = GroupStore(str(tmp_path), ManualClock(5)).group("g")
    group.commit({("t", "l"): (1, 10)})
    with open(group.path, "ab") as f:  # a record head torn to "LFGC", length 0, crc 0
        f.write(struct.pack("<4sII", b"LFGC", 0, 0) + b"\0" * 20)
    assert group.positions() == {("t", "l"): Position(1, 10, 5)}


def test_a_power_loss_leaves_an_acknowledged_commit_never_garbage(tmp_path, figures, monkeypatch):
    # compact every few dozen commits instead of every 64 KiB, to meet many compactions
    monkeypatch.setattr(group_store, "COMPACT_MIN_BYTES", 4096)
    rnd = random.Random(2026)
    clock = ManualClock(1_700_000_000_000)
    live = tmp_path / "live"
    group = GroupStore(str(live), clock).group("billing")
    states: list[tuple[bytes, dict]] = []  # after each acknowledged commit: the file, the positions
    model: dict[tuple[str, str], Position] = {}
    compactions = 0
    for batch in _commits(rnd):
        clock.advance(rnd.randint(0, 3))
        before = Path(group.path).read_bytes() if states else b""
        group.commit(batch)
        for key, (record, offset) in batch.items():
            model[key] = Position(record, offset, clock.now_ms())
        after = Path(group.path).read_bytes()
        if states and not after.startswith(before):
            compactions += 1
        assert decode_file(after)[1] == model  # the file says what was committed
        states.append((after, dict(model)))
    assert compactions >= 5, "the test went through too few compactions"

    trials = kinds = 0
    seen_kinds: dict[str, int] = {}
    probe = tmp_path / "probe"
    for k in range(1, len(states)):
        durable, acked = states[k - 1]
        after, next_model = states[k]
        compacted = not after.startswith(durable)
        # the record commit k appended (to the old file, before any compaction)
        stamp = max(p.commit_ms for key, p in next_model.items() if acked.get(key) != p)
        changed = [(key, p.record, p.offset) for key, p in next_model.items() if acked.get(key) != p]
        record = encode_commit(stamp, changed)
        for _ in range(2 if not compacted else 6):
            how, raw = _damaged(rnd, durable, record)
            tmp_left = None
            if compacted and rnd.random() < 0.5:  # the compaction in flight, not renamed yet
                how, raw = "compaction-unrenamed", durable + record
                tmp_left = after[:rnd.randint(0, len(after))]
            elif compacted and rnd.random() < 0.5:
                how, raw = "compaction-renamed", after
            shutil.rmtree(probe, ignore_errors=True)
            reader_store = GroupStore(str(probe), ManualClock(stamp + 10))
            reader_store.ensure_directory()
            g = reader_store.group("billing")
            Path(g.path).write_bytes(raw)
            if tmp_left is not None:
                Path(g.path + ".tmp").write_bytes(tmp_left)
            got = g.positions()
            assert got in (acked, next_model), (k, how, got)
            if got == next_model != acked:  # only with the record there whole, or compacted
                assert how.startswith("compaction") or \
                    raw[len(durable):len(durable) + len(record)] == record, (k, how)
            assert reader_store.names() == ["billing"]
            # and the group goes on from there: the next commit drops the torn tail
            g.commit({("orders", "p0"): (10**9, 10**9)})
            again = GroupStore(str(probe)).group("billing").positions()
            assert again == {**got, ("orders", "p0"): Position(10**9, 10**9, stamp + 10)}, (k, how)
            trials += 1
            seen_kinds[how] = seen_kinds.get(how, 0) + 1
    kinds = len(seen_kinds)
    assert kinds >= 8, seen_kinds
    figures.update(commits=COMMITS, compactions=compactions, trials=trials)
    print(f"group store power loss: {COMMITS} commits ({compactions} compactions), {trials} damaged "
          f"states: {seen_kinds}")
