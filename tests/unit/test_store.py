"""The store: one writer (flock), names, the namespace calls and their errors, the
read-only view, and the small contract of a log (append offsets, reads below the
start, FileRange, attributes, describe)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from logfs.core import (AlreadyExists, InvalidName, ManualClock, NotAppendable, NotEmpty,
                        NotFound, OffsetOutOfRange, ReadOnlyStore, StoreLocked, open_log_store)

from storekit import read_all


@pytest.fixture
def data(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    return d


# -- one writer -------------------------------------------------------------------

def test_second_writer_in_the_same_process_is_refused(data):
    with open_log_store(str(data)):
        with pytest.raises(StoreLocked) as exc:
            open_log_store(str(data))
        assert str(data) in str(exc.value), f"message does not say which directory: {exc.value}"
        with open_log_store(str(data), readonly=True) as reader:  # readers take no lock
            assert reader.topics() == []
    with open_log_store(str(data)):  # released by close
        pass


def test_second_writer_in_another_process_is_refused(data):
    code = ("import sys\nfrom logfs.core import open_log_store, StoreLocked\n"
            "try:\n    open_log_store(sys.argv[1])\nexcept StoreLocked as e:\n"
            "    print('LOCKED', e); sys.exit(3)\nprint('OPENED')\n")
    with open_log_store(str(data)):
        out = subprocess.run([sys.executable, "-c", code, str(data)], capture_output=True, text=True, timeout=30)
        assert out.returncode == 3, out.stdout + out.stderr
        assert "LOCKED" in out.stdout
    out = subprocess.run([sys.executable, "-c", code, str(data)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "OPENED" in out.stdout, out.stdout + out.stderr


# -- names -------------------------------------------------------------------------

RESERVED = [".logfs", ".logfs-topic.json", ".logfsx", ".logfs.anything"]
INVALID = ["", ".", "..", "a/b", "nul\0here", "x" * 256, "é" * 128]
FINE = ["with space", "zürich", "東京 ログ", "emoji-😀", ".hidden", ".log", "-", "x" * 255,
        "é" * 127, "00000000000000000000.log", "quarantine-1-2.bin", "checkpoint", "log.json"]


@pytest.mark.parametrize("name", RESERVED + INVALID)
def test_invalid_and_reserved_names(data, name):
    with open_log_store(str(data)) as store:
        with pytest.raises(InvalidName):
            store.check_name(name)
        with pytest.raises(InvalidName):
            store.create_topic(name)
        store.create_topic("t")
        with pytest.raises(InvalidName):
            store.create_log("t", name)
        store.create_log("t", "l")
        with pytest.raises(InvalidName):
            store.rename_log("t", "l", "t", name)
        with pytest.raises(InvalidName):
            store.rename_topic("t", name)
        assert store.topics() == ["t"] and store.logs("t") == ["l"]


@pytest.mark.parametrize("name", FINE)
def test_any_other_linux_name_works(data, name):
    with open_log_store(str(data)) as store:
        store.check_name(name)
        store.create_topic(name)
        log = store.create_log(name, name)
        log.append(b"hello\n")
        assert store.topics() == [name] and store.logs(name) == [name]
    with open_log_store(str(data)) as store:
        assert read_all(store.log(name, name)) == b"hello\n"


# -- the namespace ---------------------------------------------------------------------

def test_namespace_calls_and_their_errors(data):
    with open_log_store(str(data)) as store:
        store.create_topic("b")
        store.create_topic("a")
        assert store.topics() == ["a", "b"]
        with pytest.raises(AlreadyExists):
            store.create_topic("a")
        with pytest.raises(NotFound):
            store.create_log("zz", "l")
        with pytest.raises(NotFound):
            store.logs("zz")
        log = store.create_log("a", "x")
        assert store.log("a", "x") is log, "store.log must return the same object each time"
        assert store.has_log("a", "x") and not store.has_log("a", "y") and not store.has_log("zz", "x")
        with pytest.raises(AlreadyExists):
            store.create_log("a", "x")
        with pytest.raises(NotFound):
            store.log("a", "nope")
        with pytest.raises(NotEmpty):
            store.delete_topic("a")
        log.append(b"one\ntwo\n")
        store.create_log("b", "x")
        with pytest.raises(AlreadyExists):  # never silently replace
            store.rename_log("a", "x", "b", "x")
        store.rename_log("a", "x", "b", "y")
        assert store.logs("a") == [] and store.logs("b") == ["x", "y"]
        assert read_all(store.log("b", "y")) == b"one\ntwo\n"
        store.log("b", "y").append(b"three\n")
        with pytest.raises(NotFound):
            store.rename_log("a", "x", "b", "z")
        with pytest.raises(AlreadyExists):
            store.rename_topic("a", "b")
        store.rename_topic("b", "c")
        assert store.topics() == ["a", "c"]
        assert read_all(store.log("c", "y")) == b"one\ntwo\nthree\n"
        with pytest.raises(NotFound):
            store.rename_topic("b", "d")
        store.delete_log("c", "x")
        with pytest.raises(NotFound):
            store.delete_log("c", "x")
        assert store.logs("c") == ["y"]
        store.delete_topic("a")
        with pytest.raises(NotFound):
            store.delete_topic("a")
        assert store.topics() == ["c"]
        assert sorted(os.listdir(data)) == [".logfs", "c"]
    with open_log_store(str(data)) as store:
        assert store.topics() == ["c"] and store.logs("c") == ["y"]
        assert store.log("c", "y").records == 3


def test_a_deleted_log_is_gone_from_disk_and_can_be_recreated_empty(data):
    with open_log_store(str(data), defaults={"segment.bytes": "20"}) as store:
        store.create_topic("t")
        log = store.create_log("t", "l")
        for _ in range(10):
            log.append(b"0123456789\n")
        store.delete_log("t", "l")
        assert not (data / "t" / "l").exists()
        again = store.create_log("t", "l")
        assert again.end_offset == 0 and again.records == 0 and read_all(again) == b""


# -- the read-only view -----------------------------------------------------------------

def test_reader_refuses_to_mutate(data):
    with open_log_store(str(data)) as store:
        store.create_topic("t")
        store.create_log("t", "l").append(b"x\n")
        with open_log_store(str(data), readonly=True) as reader:
            assert reader.topics() == ["t"] and reader.logs("t") == ["l"]
            rlog = reader.log("t", "l")
            for call in (lambda: reader.create_topic("u"), lambda: reader.create_log("t", "m"),
                         lambda: reader.delete_log("t", "l"), lambda: reader.delete_topic("t"),
                         lambda: reader.rename_log("t", "l", "t", "m"),
                         lambda: reader.set_log_config("t", "l", {"retention.ms": "1"}),
                         lambda: rlog.append(b"y\n")):
                with pytest.raises(ReadOnlyStore):
                    call()
            assert rlog.read(0, 10) == b"x\n"
        assert read_all(store.log("t", "l")) == b"x\n"


def test_a_pinned_reader_view_holds_still_until_the_block_ends(data):
    """Log.pinned(): one refresh, then every call answers from that view (the
    exporter plans a response with it); after the block the reader follows again."""
    with open_log_store(str(data)) as store:
        store.create_topic("t")
        wlog = store.create_log("t", "l")
        wlog.append(b"a\n")
        with open_log_store(str(data), readonly=True) as reader:
            rlog = reader.log("t", "l")
            wlog.append(b"b\n")
            with rlog.pinned():
                assert rlog.end_offset == 4 and rlog.records == 2  # refreshed on entry
                wlog.append(b"c\n")
                assert rlog.end_offset == 4 and rlog.records == 2, "a pinned view moved"
                assert rlog.read(0, 100) == b"a\nb\n"
            assert rlog.end_offset == 6 and rlog.records == 3
            assert rlog.read(0, 100) == b"a\nb\nc\n"


def test_a_reader_reads_what_it_knows_as_it_is_and_refreshes_for_more(data):
    """Log.read_range: bytes inside the reader's view (below the end it knows) never
    change, so they are read without a refresh, even after retention removed their
    segment if its file is open; a range past that end refreshes first and gets the
    writer's new bytes; a segment gone and never opened is OffsetOutOfRange."""
    with open_log_store(str(data), defaults={"segment.bytes": "16", "retention.bytes": "10"}) as store:
        store.create_topic("t")
        wlog = store.create_log("t", "l")
        wlog.append(b"aaaaaaaaa\n")
        with open_log_store(str(data), readonly=True) as reader:
            rlog = reader.log("t", "l")
            assert rlog.end_offset == 10 and rlog.read(0, 10) == b"aaaaaaaaa\n"  # opens segment 0
            wlog.append(b"bbbbbbbbb\n")    # rolls: segment 10
            wlog.append(b"ccccccccc\n")    # rolls again; retention deletes segment 0
            assert not (data / "t" / "l" / "00000000000000000000.log").exists()
            ranges = rlog.read_range(0, 10)   # known: no refresh, the open file still reads
            assert [(r.log_offset, r.length) for r in ranges] == [(0, 10)]
            assert os.pread(ranges[0].fd, 10, ranges[0].position) == b"aaaaaaaaa\n"
            assert rlog.read(10, 100) == b"bbbbbbbbb\nccccccccc\n"  # past the end: refreshed
            assert rlog.start_offset == 10
            with pytest.raises(OffsetOutOfRange):
                rlog.read_range(0, 10)


# -- a log ---------------------------------------------------------------------------------

def test_log_basics(data):
    clock = ManualClock(1_000_000)
    with open_log_store(str(data), defaults={"segment.bytes": "100", "index.interval.bytes": "10"},
                        clock=clock) as store:
        store.create_topic("t")
        log = store.create_log("t", "l")
        assert (log.start_offset, log.end_offset, log.records, log.segment_count) == (0, 0, 0, 1)
        assert log.last_append_ms is None
        assert log.created_ms == 1_000_000
        assert log.append(b"abc") == 0
        clock.advance(5)
        assert log.append(b"def\n") == 3
        assert log.append(b"") == 7
        assert (log.end_offset, log.records, log.last_append_ms) == (7, 1, 1_000_005)
        assert log.read(0, 100) == b"abcdef\n"
        assert log.read(7, 10) == b"" and log.read_range(7, 100) == [] and log.read_range(50, 60) == []
        r = log.read_range(2, 5)
        assert len(r) == 1 and (r[0].log_offset, r[0].length, r[0].position) == (2, 3, 2)
        assert os.pread(r[0].fd, r[0].length, r[0].position) == b"cde"
        assert r[0].path.endswith("00000000000000000000.log")
        log.truncate_check(7)
        for size in (0, 6, 8):
            with pytest.raises(NotAppendable):
                log.truncate_check(size)
        for i in range(30):
            log.append(b"%08d\n" % i)
        assert log.segment_count > 2
        events = log.pop_events()
        assert any("roll" in e for e in events), events
        assert log.pop_events() == []
        store.set_log_config("t", "l", {"retention.bytes": "0"})
        store.run_maintenance()
        start = log.start_offset
        assert start > 0 and log.segment_count == 1
        with pytest.raises(OffsetOutOfRange):
            log.read(0, 1)
        with pytest.raises(OffsetOutOfRange):
            log.read_range(start - 1, start + 1)
        assert log.read(start, 9) == log.read(start, 100)[:9]
        d = log.describe()
        for key in ("topic", "log", "start_offset", "end_offset", "records", "segments",
                    "last_append_ms", "config"):
            assert key in d, key
        assert (d["topic"], d["log"], d["start_offset"], d["end_offset"], d["records"]) == \
            ("t", "l", start, log.end_offset, 31)
        import json
        json.dumps(d)


def test_attrs_persist(data):
    with open_log_store(str(data)) as store:
        store.create_topic("t")
        log = store.create_log("t", "l")
        assert log.attrs.mode & 0o777 == 0o644
        log.set_attrs(mode=0o600, uid=1234, gid=4321)
        assert (log.attrs.mode & 0o7777, log.attrs.uid, log.attrs.gid) == (0o600, 1234, 4321)
    with open_log_store(str(data)) as store:
        a = store.log("t", "l").attrs
        assert (a.mode & 0o7777, a.uid, a.gid) == (0o600, 1234, 4321)


@pytest.mark.parametrize("change", ["rename", "delete"])
def test_a_log_object_held_across_a_rename_or_delete(data, change):
    """The FUSE daemon may hold a Log while `mv` or `rm` runs. Using it afterwards
    either works on the log where it now lives (rename; like an open fd on Unix) or
    raises NotFound — never a bare OSError, never a file recreated under the old name."""
    from logfs.core import StorageError
    with open_log_store(str(data)) as store:
        store.create_topic("t")
        held = store.create_log("t", "l")
        held.append(b"abc\n")
        if change == "rename":
            store.rename_log("t", "l", "t", "m")
        else:
            store.delete_log("t", "l")
        for call in (lambda: held.append(b"x\n"), lambda: held.read(0, 4), lambda: held.record_position(0),
                     lambda: held.time_position(0), lambda: held.read_range(0, 4)):
            try:
                call()
            except NotFound:
                pass
            except StorageError as exc:
                pytest.fail(f"{type(exc).__name__} ({exc}) instead of NotFound for a {change}d log")
            except OSError as exc:
                pytest.fail(f"a bare {type(exc).__name__} ({exc}) escaped the core")
        assert not (data / "t" / "l").exists(), "the old name came back"
        if change == "rename":
            got = store.log("t", "m").read(0, 100)
            assert got in (b"abc\n", b"abc\nx\n"), got
