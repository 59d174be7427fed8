"""Two processes: a writer appends, rolls (small segment.bytes) and applies
retention while a reader process (open_log_store(readonly=True)) follows the log
and checks every byte against the deterministic stream the writer appends.

The writer never runs more than LEAD bytes ahead of the reader's published position,
and LEAD is below retention.bytes, so the reader must see every byte; retention
still deletes segments behind it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from logfs.core import OffsetOutOfRange, open_log_store

from storekit import HERE, deterministic_stream, read_via_ranges

TOTAL = 3 * 1024 * 1024
LEAD = 128 * 1024


def test_reader_process_follows_writer_process(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    progress = tmp_path / "progress"
    progress.write_bytes(b"%020d" % 0)
    expected = deterministic_stream(TOTAL)
    env = dict(os.environ, PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    writer = subprocess.Popen([sys.executable, str(HERE / "follow_writer.py"), str(data), str(progress),
                               str(TOTAL), str(LEAD)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env)
    try:
        assert writer.stdout is not None
        line = writer.stdout.readline()
        assert line.startswith("READY"), f"writer did not start: {line!r} {writer.stderr.read()}"
        progress_fd = os.open(progress, os.O_WRONLY)
        pos = 0
        starts_seen, segment_counts = set(), set()
        deadline = time.monotonic() + 60
        with open_log_store(str(data), readonly=True) as reader:
            log = reader.log("follow", "me")
            reads = 0
            while pos < TOTAL:
                assert time.monotonic() < deadline, f"reader stuck at {pos} of {TOTAL}; end {log.end_offset}"
                end = log.end_offset
                assert end <= TOTAL
                if pos == end:
                    assert writer.poll() is None, \
                        f"writer exited ({writer.returncode}) with the reader at {pos}: {writer.stderr.read()}"
                    time.sleep(0.0005)
                    continue
                n = min(end - pos, 50_000)
                try:
                    chunk = log.read(pos, n) if reads % 2 else read_via_ranges(log, pos, pos + n)
                except OffsetOutOfRange as exc:
                    pytest.fail(f"data at {pos} removed before the reader got it "
                                f"(writer lead is {LEAD}, retention 256 KiB): {exc}")
                assert chunk, f"empty read at {pos} below the end {end}"
                assert chunk == expected[pos:pos + len(chunk)], f"wrong bytes at {pos}..{pos + len(chunk)}"
                pos += len(chunk)
                reads += 1
                os.pwrite(progress_fd, b"%020d" % pos, 0)
                starts_seen.add(log.start_offset)
                segment_counts.add(log.segment_count)
            out, err = writer.communicate(timeout=30)
            assert writer.returncode == 0, err
            assert "DONE" in out, out
            assert log.end_offset == TOTAL
            assert log.records == expected.count(b"\n")
            start = log.start_offset
            assert start > 0 and len(starts_seen) > 3, "the reader never saw retention advance the start"
            assert max(segment_counts) > 2, "the reader never saw a roll"
            # what retention removed is gone for the reader too, and the rest reads whole
            with pytest.raises(OffsetOutOfRange):
                log.read(0, 10)
            assert log.read(start, TOTAL) == expected[start:]
            assert log.record_position(log.records) == expected.rfind(b"\n") + 1
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()


def test_reader_copes_with_segments_deleted_under_it(tmp_path):
    """The reader has descriptors of segments that retention then deletes: reads
    below the new start fail with OffsetOutOfRange, the rest reads whole."""
    data = tmp_path / "data"
    data.mkdir()
    content = deterministic_stream(20_000)
    with open_log_store(str(data), defaults={"segment.bytes": "1000"}) as store:
        store.create_topic("t")
        log = store.create_log("t", "l")
        for i in range(0, 10_000, 100):
            log.append(content[i:i + 100])
        with open_log_store(str(data), readonly=True) as reader:
            rlog = reader.log("t", "l")
            assert rlog.read(0, 10_000) == content[:10_000]  # descriptors of every segment cached
            store.set_log_config("t", "l", {"retention.bytes": "3000"})
            for i in range(10_000, 20_000, 100):
                log.append(content[i:i + 100])
            store.run_maintenance()
            start = log.start_offset
            assert start >= 16_000
            assert rlog.start_offset == start
            assert rlog.end_offset == 20_000
            for a in (0, 500, start - 1):
                with pytest.raises(OffsetOutOfRange):
                    rlog.read(a, 10)
            assert rlog.read(start, 20_000) == content[start:]
            assert rlog.record_position(rlog.records) == content.rfind(b"\n") + 1


def test_reader_sees_the_writers_namespace_changes(tmp_path):
    """A long-lived reader (the exporter) must follow creates, deletes, renames — and
    a log deleted and created again under the same name is a new, empty log, not
    the old bytes."""
    from logfs.core import NotFound
    data = tmp_path / "data"
    data.mkdir()
    with open_log_store(str(data)) as store, open_log_store(str(data), readonly=True) as reader:
        assert reader.topics() == []
        store.create_topic("t")
        store.create_log("t", "l").append(b"old data\n" * 100)
        assert reader.topics() == ["t"] and reader.logs("t") == ["l"]
        assert reader.log("t", "l").end_offset == 900
        assert reader.log("t", "l").read(0, 9) == b"old data\n"
        store.delete_log("t", "l")
        assert not reader.has_log("t", "l") and reader.logs("t") == []
        with pytest.raises(NotFound):
            reader.log("t", "l").end_offset
        store.create_log("t", "l").append(b"new\n")
        fresh = reader.log("t", "l")
        assert (fresh.end_offset, fresh.records) == (4, 1), "the reader shows the deleted log's figures"
        assert fresh.read(0, 100) == b"new\n", "the reader serves the deleted log's bytes"
        store.rename_log("t", "l", "t", "m")
        assert reader.logs("t") == ["m"] and not reader.has_log("t", "l")
        store.log("t", "m").append(b"more\n")
        assert reader.log("t", "m").read(0, 100) == b"new\nmore\n"


def test_reader_follows_across_a_writer_crash_and_restart(tmp_path):
    """The exporter keeps reading while the daemon is killed and restarted: it sees
    every byte once, in order, and never a byte that recovery then cuts."""
    from test_corruption import KILL_LOOP
    data = tmp_path / "data"
    data.mkdir()
    total = 6 * 1024 * 1024
    expected = deterministic_stream(total)

    def start_writer():
        proc = subprocess.Popen([sys.executable, "-c", KILL_LOOP, str(data), str(HERE), str(total), "0.0003"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        assert line.startswith("STARTED"), line + proc.stderr.read()
        return proc

    writer = start_writer()
    pos = 0
    killed = False
    deadline = time.monotonic() + 60
    try:
        reader = None
        while reader is None:
            try:
                reader = open_log_store(str(data), readonly=True)
                log = reader.log("t", "l")
            except Exception:
                reader = None
                time.sleep(0.01)
        while pos < total:
            assert time.monotonic() < deadline, f"reader stuck at {pos}"
            end = log.end_offset
            if end > pos:
                chunk = log.read(pos, min(end - pos, 1 << 20))
                assert chunk == expected[pos:pos + len(chunk)], f"wrong bytes at {pos}"
                pos += len(chunk)
            if not killed and pos > total // 3:
                assert writer.poll() is None, "the first writer finished before it could be killed"
                writer.kill()
                writer.wait()
                killed = True
                writer = start_writer()  # recovers, then appends the rest
            elif end == pos:
                time.sleep(0.001)
        out, err = writer.communicate(timeout=60)
        assert "FINISHED" in out, err
        assert log.end_offset == total
        reader.close()
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert killed
