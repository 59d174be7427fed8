"""The consumer-group store (logfs/core/groups.py) without FUSE: commits read back,
torn and garbage tails, several writer processes, kills in the middle of commits."""

from __future__ import annotations

import os
import struct
import zlib
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from logfs.core import InvalidName, ManualClock, NotFound, StorageIOError
from logfs.core.groups import (COMPACT_MIN_BYTES, GroupStore, Position, check_group_name,
                               decode_file, encode_commit, group_file_name)

HERE = Path(__file__).resolve().parent


def test_commits_read_back_and_the_last_one_wins(tmp_path):
    clock = ManualClock(1_000)
    store = GroupStore(str(tmp_path), clock)
    g = store.group("billing")
    assert not g.exists and g.positions() == {} and store.names() == []
    g.commit({("orders", "eu"): (10, 500), ("orders", "us"): (3, 90)})
    clock.advance(5)
    g.commit({("orders", "eu"): (12, 600)})
    assert g.positions() == {("orders", "eu"): Position(12, 600, 1_005), ("orders", "us"): Position(3, 90, 1_000)}
    assert store.names() == ["billing"] and g.last_commit_ms == 1_005
    # another process' view (a new store object) sees the same
    assert GroupStore(str(tmp_path)).group("billing").position("orders", "us") == Position(3, 90, 1_000)
    g.forget([("orders", "us")])
    assert list(g.positions()) == [("orders", "eu")]
    g.delete()
    assert not g.exists and store.names() == []
    with pytest.raises(NotFound):
        g.delete()


@pytest.mark.parametrize("name", ["a", "with space", "ünïcode-群", "dots.and_under-scores", "x" * 249, "%41/.."])
def test_any_group_id_kafka_allows_has_a_file(tmp_path, name):
    store = GroupStore(str(tmp_path))
    store.group(name).commit({("t", "l"): (1, 2)})
    assert store.names() == [name]
    fname = group_file_name(name)
    assert "/" not in fname and len(fname) <= 210 and not fname.startswith(".")
    assert os.listdir(store.directory) == [fname]


@pytest.mark.parametrize("bad", ["", "x" * 250, "tab\there", "nl\n"])
def test_bad_group_ids_are_refused(tmp_path, bad):
    with pytest.raises(InvalidName):
        check_group_name(bad)
    with pytest.raises(InvalidName):
        GroupStore(str(tmp_path)).group(bad)


def test_a_torn_commit_leaves_the_previous_positions(tmp_path):
    """Every prefix of the file (a crash anywhere inside the last write) decodes to
    the positions before that commit or after it, never to anything else; the next
    commit drops the torn bytes."""
    store = GroupStore(str(tmp_path), ManualClock(7))
    g = store.group("g")
    g.commit({("t", "a"): (1, 10), ("t", "b"): (2, 20)})
    before = g.positions()
    size_before = os.path.getsize(g.path)
    g.commit({("t", "a"): (5, 50), ("t", "b"): (6, 60)})
    after = g.positions()
    raw = Path(g.path).read_bytes()
    for cut in range(size_before, len(raw) + 1):
        _name, positions, valid = decode_file(raw[:cut])
        assert positions == (after if cut == len(raw) else before), cut
        assert valid == (len(raw) if cut == len(raw) else size_before)
    Path(g.path).write_bytes(raw[:len(raw) - 3])  # torn
    assert g.positions() == before
    g.commit({("t", "a"): (7, 70)})
    assert g.positions() == {("t", "a"): Position(7, 70, 7), ("t", "b"): before[("t", "b")]}


def test_garbage_after_the_last_commit_is_ignored_and_a_bad_header_is_an_error(tmp_path):
    g = GroupStore(str(tmp_path), ManualClock(1)).group("g")
    g.commit({("t", "l"): (1, 1)})
    with open(g.path, "ab") as f:
        f.write(encode_commit(2, [(("t", "l"), 9, 9)])[:-1] + b"\xff" * 40)
    assert g.positions() == {("t", "l"): Position(1, 1, 1)}
    raw = bytearray(Path(g.path).read_bytes())
    raw[3] ^= 0xFF
    Path(g.path).write_bytes(bytes(raw))
    with pytest.raises(StorageIOError):
        g.positions()


def test_compaction_keeps_every_position_and_its_commit_time(tmp_path):
    clock = ManualClock(100)
    g = GroupStore(str(tmp_path), clock).group("g")
    expect = {}
    for i in range(2500):
        key = ("t", f"l{i % 7}")
        g.commit({key: (i, i * 100)})
        expect[key] = Position(i, i * 100, clock.now_ms())
        clock.advance(1)
    assert g.positions() == expect
    assert os.path.getsize(g.path) <= COMPACT_MIN_BYTES + 200, "the file was never compacted"
    assert not os.path.exists(g.path + ".tmp")


COMMITTER = r"""
import os, sys, time
from logfs.core.groups import GroupStore
data, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
g = GroupStore(data).group("shared")
print("ready", flush=True)
for i in range(1, n + 1):
    g.commit({("t", who): (i, i * 10), ("t", "common"): (i, i)})
    print(i, flush=True)
"""


def test_several_processes_commit_to_one_group(tmp_path):
    """Four writer processes, each committing its own log (and one log in common)
    through compactions: every process's last commit is there."""
    n = 1000
    procs = [subprocess.Popen([sys.executable, "-c", COMMITTER, str(tmp_path), f"w{k}", str(n)],
                              stdout=subprocess.PIPE, text=True) for k in range(4)]
    try:
        for p in procs:
            out, _ = p.communicate(timeout=120)
            assert p.returncode == 0 and out.split()[-1] == str(n)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    positions = GroupStore(str(tmp_path)).group("shared").positions()
    for k in range(4):
        p = positions[("t", f"w{k}")]
        assert (p.record, p.offset) == (n, n * 10)
    assert positions[("t", "common")].record == positions[("t", "common")].offset == n


def test_a_writer_killed_in_the_middle_of_commits_leaves_a_commit_it_made(tmp_path):
    """SIGKILL a committing process at random moments: the group always reads as one
    of the commits it had made (the last one acknowledged, or the one in flight),
    never less, and the next writer goes on from there."""
    rnd = random.Random(12)
    acked = 0
    for trial in range(12):
        p = subprocess.Popen([sys.executable, "-c", COMMITTER, str(tmp_path), "k", "1000000"],
                             stdout=subprocess.PIPE, text=True)
        try:
            assert p.stdout.readline().strip() == "ready"
            time.sleep(rnd.uniform(0.02, 0.3))
            p.send_signal(signal.SIGKILL)
            out, _ = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
        lines = out.split()
        acked = int(lines[-1]) if lines else 0
        pos = GroupStore(str(tmp_path)).group("shared").position("t", "k")
        if acked:
            assert pos is not None and pos.record in (acked, acked + 1), (trial, acked, pos)
            assert pos.offset == pos.record * 10


@pytest.mark.parametrize("body", [b"", b"\x00" * 5, struct.pack("<qI", 1, 3),
                                  struct.pack("<qI", 1, 1) + struct.pack("<HHQQ", 200, 1, 1, 1) + b"t"])
def test_a_record_whose_crc_holds_but_whose_body_does_not_parse_ends_the_valid_data(tmp_path, body):
    """Garbage can carry a valid CRC (an empty body's is 0): such a record ends the
    valid prefix like a torn one, and never raises."""
    g = GroupStore(str(tmp_path), ManualClock(1)).group("g")
    g.commit({("t", "l"): (1, 1)})
    good = os.path.getsize(g.path)
    with open(g.path, "ab") as f:
        f.write(struct.pack("<4sII", b"LFGC", len(body), zlib.crc32(body)) + body)
    assert g.positions() == {("t", "l"): Position(1, 1, 1)}
    assert decode_file(Path(g.path).read_bytes())[2] == good
    g.commit({("t", "l"): (2, 2)})  # the next writer cuts it and goes on
    assert g.position("t", "l") == Position(2, 2, 1)
