"""flush.ms (docs/spec.md §6): run_maintenance fsyncs a log's active segment once
flush.ms has passed since its last flush; without flush.ms the page cache decides
(no fsync), as in Kafka. Observed at the system-call boundary (os.fsync/fdatasync)."""

from __future__ import annotations

import os

import pytest

from logfs.core import ManualClock, open_log_store


@pytest.fixture
def synced(monkeypatch):
    paths: list[str] = []
    real_fsync, real_fdatasync = os.fsync, os.fdatasync

    def record(real):
        def wrapper(fd):
            try:
                paths.append(os.readlink(f"/proc/self/fd/{fd if isinstance(fd, int) else fd.fileno()}"))
            except OSError:
                pass
            return real(fd)
        return wrapper

    monkeypatch.setattr(os, "fsync", record(real_fsync))
    monkeypatch.setattr(os, "fdatasync", record(real_fdatasync))
    return paths


def _segment_synced(paths: list[str]) -> bool:
    return any(p.endswith(".log") for p in paths)


def test_flush_ms_fsyncs_in_maintenance(tmp_path, synced):
    data = tmp_path / "data"
    data.mkdir()
    clock = ManualClock(1_000_000)
    with open_log_store(str(data), clock=clock) as store:
        store.create_topic("t")
        log = store.create_log("t", "l")
        store.set_log_config("t", "l", {"flush.ms": "1000"})
        log.append(b"x\n")
        clock.advance(999)
        synced.clear()
        store.run_maintenance()
        assert not _segment_synced(synced), "fsynced before flush.ms passed"
        clock.advance(1)
        store.run_maintenance()
        assert _segment_synced(synced), f"flush.ms passed and the segment was not fsynced: {synced}"
        synced.clear()
        clock.advance(5_000)
        store.run_maintenance()
        assert not _segment_synced(synced), "fsynced again with nothing new to flush"


def test_without_flush_ms_maintenance_leaves_it_to_the_page_cache(tmp_path, synced):
    data = tmp_path / "data"
    data.mkdir()
    clock = ManualClock(1_000_000)
    with open_log_store(str(data), clock=clock) as store:
        store.create_topic("t")
        log = store.create_log("t", "l")
        synced.clear()
        for _ in range(100):
            log.append(b"y" * 1000 + b"\n")
            clock.advance(1_000)
            store.run_maintenance()
        assert not _segment_synced(synced), "appends or maintenance fsynced without flush.ms"
        log.fsync()
        assert _segment_synced(synced), "Log.fsync did not fsync the segment"
