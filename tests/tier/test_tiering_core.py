"""The storage core's tiering against real S3 servers on loopback (SeaweedFS and
moto's server): uploads, the manifest, local and remote retention, reads and seeks of
remote segments, a second reader, faults. No FUSE here (tests/tier/test_tier_mount.py
has the mount)."""

from __future__ import annotations

import json
import os

import pytest

from logfs.core import ManualClock, OffsetOutOfRange, open_log_store
from logfs.core.manifest import CHUNK_BYTES, Manifest, manifest_key
from logfs.core.remote import RemoteReadError
from logfs.tier.s3 import S3ObjectStore

LINE = 100


def lines(start: int, n: int) -> bytes:
    return b"".join(b"%-99d\n" % i for i in range(start, start + n))


def make_store(data, objects, clock=None, readonly=False, cache_bytes=64 << 20, **defaults):
    d = {"segment.bytes": 1 << 20, "remote.storage.enable": "true", "index.interval.bytes": 4096}
    d.update(defaults)
    return open_log_store(str(data), defaults=d, clock=clock, readonly=readonly,
                          remote=objects, remote_cache_bytes=cache_bytes)


def fill(log, n_lines: int, per_write: int = 100, start: int = 0) -> bytes:
    out = bytearray()
    for i in range(start, start + n_lines, per_write):
        data = lines(i, min(per_write, start + n_lines - i))
        log.append(data)
        out += data
    return bytes(out)


def bucket_keys(objects: S3ObjectStore) -> list[str]:
    return list(objects.list(""))


def test_sealed_segments_upload_and_commit(tmp_path, objects):
    clock = ManualClock(1_800_000_000_000)
    with make_store(tmp_path, objects, clock) as store:
        store.create_topic("t")
        log = store.create_log("t", "l")
        written = fill(log, 30_000)  # 3 MB: two sealed segments of ~1 MiB and an active one
        log.fsync()
        sealed = [s for s in log.segments()[:-1]]
        assert len(sealed) >= 2
        lines_out = store.tiering.run_pass(log)
        assert sum("uploaded" in x for x in lines_out) == len(sealed), lines_out
        data, _etag = objects.get(manifest_key("t", "l"))
        manifest = Manifest.decode(data)
        assert [s.base for s in manifest.segments] == [s.base for s in sealed]
        for info, seg in zip(manifest.segments, sealed):
            body = objects.get_range(info.key("t", "l", ".log"), 0, info.size)
            with open(seg.path, "rb") as f:
                assert body == f.read()
            assert info.records == written[:info.end].count(b"\n") - written[:info.base].count(b"\n")
        # local.retention defaults to retention.* (-1): the local copies stay
        assert all(os.path.exists(s.path) for s in sealed)
        assert store.tiering.run_pass(log) == []  # nothing new: no second upload
        assert len(Manifest.decode(objects.get(manifest_key("t", "l"))[0]).segments) == len(sealed)
        d = log.describe()
        assert d["remote_segments"] == len(sealed) and d["upload_backlog_segments"] == 0
        assert d["local_start_offset"] == 0 and d["remote_start_offset"] == 0


def test_local_copies_go_and_reads_come_from_the_bucket(tmp_path, objects):
    clock = ManualClock(1_800_000_000_000)
    with make_store(tmp_path, objects, clock, **{"local.retention.bytes": "0"}) as store:
        store.create_topic("t")
        log = store.create_log("t", "l")
        t0 = clock.now_ms()
        written = fill(log, 20_000)
        clock.advance(5_000)
        t1 = clock.now_ms()
        written += fill(log, 20_000, start=20_000)
        log.fsync()
        store.tiering.run_pass(log)
        local = [s for s in log.segments() if not s.remote]
        remote = [s for s in log.segments() if s.remote]
        assert len(local) == 1 and len(remote) >= 3, (local, remote)
        assert log.start_offset == 0 and log.local_start_offset == local[0].base
        assert not any(n.endswith(".log") and int(n[:20]) < local[0].base for n in os.listdir(log.directory))
        # bytes, records and times do not change when the data moves
        assert log.read(0, len(written)) == written
        assert log.read(12_345, 1000) == written[12_345:13_345]
        assert log.record_position(7_777) == 7_777 * LINE
        assert log.record_at(7_777 * LINE + 5) == 7_777
        assert log.time_position(t1) == 20_000 * LINE
        assert log.time_position(t0) == 0
        assert log.start_record == 0 and log.records == 40_000
        d = log.describe()
        assert d["local_segments"] == 1 and d["remote_bytes"] + d["local_bytes"] == len(written)

    # a reader in another process's shoes: a read-only store over the same directory
    with make_store(tmp_path, objects, readonly=True) as reader:
        rlog = reader.log("t", "l")
        assert rlog.start_offset == 0 and rlog.end_offset == len(written)
        assert rlog.read(3 * CHUNK_BYTES // 2, 4096) == written[3 * CHUNK_BYTES // 2:][:4096]
        assert rlog.record_position(39_999) == 39_999 * LINE

    # and a writer opening it again (clean shutdown) reads its remote segments too
    with make_store(tmp_path, objects, clock, **{"local.retention.bytes": "0"}) as store:
        log = store.log("t", "l")
        assert log.start_offset == 0 and log.read(0, len(written)) == written
        log.append(lines(40_000, 1))
        assert log.records == 40_001


def test_a_reader_opened_before_tiering_reads_the_remote_segments_after(tmp_path, objects):
    """A reader (logfs serve) that opened the log while every segment was local: once
    the writer tiers it and deletes the local copies, the reader reads the moved bytes
    from the bucket (its refresh installs the manifest before it relists the directory:
    the remote segments must not be lost in between)."""
    clock = ManualClock(1_800_000_000_000)
    with make_store(tmp_path, objects, clock, **{"local.retention.bytes": "0"}) as store:
        store.create_topic("t")
        log = store.create_log("t", "l")
        written = fill(log, 30_000)
        log.fsync()
        with make_store(tmp_path, objects, readonly=True) as reader:
            rlog = reader.log("t", "l")
            assert rlog.read(0, len(written)) == written  # all local
            store.tiering.run_pass(log)
            assert len([s for s in log.segments() if not s.remote]) == 1
            rlog.refresh(force=True)
            assert rlog.start_offset == 0 and rlog.local_start_offset == log.local_start_offset
            assert rlog.read(0, len(written)) == written
            assert rlog.record_position(12_345) == 12_345 * LINE


def test_retention_deletes_remote_segments_and_their_objects(tmp_path, objects):
    clock = ManualClock(1_800_000_000_000)
    with make_store(tmp_path, objects, clock, **{"local.retention.bytes": "0"}) as store:
        store.create_topic("t")
        log = store.create_log("t", "l")
        written = fill(log, 50_000)
        store.tiering.run_pass(log)
        before = Manifest.decode(objects.get(manifest_key("t", "l"))[0])
        assert len(before.segments) >= 4
        store.set_log_config("t", "l", {"retention.bytes": str(2 << 20)})
        out = store.tiering.run_pass(log)
        after = Manifest.decode(objects.get(manifest_key("t", "l"))[0])
        dropped = [s for s in before.segments if s.base < after.segments[0].base]
        assert dropped and any("retention deleted remote segment" in x for x in out), out
        keys = bucket_keys(objects)
        for info in dropped:
            assert not any(k.endswith(info.key("t", "l", ".log")) for k in keys)
        assert log.start_offset == after.segments[0].base
        assert len(written) - log.start_offset >= 2 << 20
        with pytest.raises(OffsetOutOfRange):
            log.read_range(0, 10)
        start = log.start_offset
        assert log.read(start, len(written)) == written[start:]


def test_an_interrupted_upload_is_redone_and_its_orphans_deleted(tmp_path, objects):
    clock = ManualClock(1_800_000_000_000)
    store = make_store(tmp_path, objects, clock)
    store.create_topic("t")
    log = store.create_log("t", "l")
    fill(log, 15_000)
    log.fsync()
    plan = store.tiering.plan(log, clock.now_ms())
    # the upload of the first segment happened, the manifest commit did not (a kill)
    store.tiering._upload("t", "l", plan.uploads[0])
    orphans = bucket_keys(objects)
    assert len(orphans) == 3 and not any(k.endswith("manifest.json") for k in orphans)
    store.abandon()
    with make_store(tmp_path, objects, clock) as store:
        log = store.log("t", "l")
        store.tiering.run_pass(log)
        manifest = Manifest.decode(objects.get(manifest_key("t", "l"))[0])
        keys = bucket_keys(objects)
        assert not set(orphans) & set(keys), "the orphaned objects were not deleted"
        assert len([k for k in keys if k.endswith(".log")]) == len(manifest.segments)
        assert [s.base for s in manifest.segments] == [s.base for s in log.segments()[:-1]]


def test_a_kill_after_the_commit_is_finished_by_the_next_start(tmp_path, objects):
    """The manifest was committed, the daemon died before its local bookkeeping (the
    manifest copy, local retention): the next start reads the committed manifest, uploads
    nothing again, and only then deletes the local copies it holds."""
    clock = ManualClock(1_800_000_000_000)
    store = make_store(tmp_path, objects, clock, **{"local.retention.bytes": "0"})
    store.create_topic("t")
    log = store.create_log("t", "l")
    written = fill(log, 25_000)
    log.fsync()
    tiering = store.tiering
    result = tiering.execute(tiering.plan(log, clock.now_ms()), tiering.state(log))
    assert result.error is None and len(result.uploaded) >= 2
    committed = Manifest.decode(objects.get(manifest_key("t", "l"))[0])
    keys = bucket_keys(objects)
    assert not os.path.exists(tmp_path / "t" / "l" / "remote.json")  # no local bookkeeping yet
    store.abandon()
    with make_store(tmp_path, objects, clock, **{"local.retention.bytes": "0"}) as store:
        log = store.log("t", "l")
        assert [s for s in log.segments() if s.remote] == []  # nothing deleted before the bucket says so
        store.tiering.run_pass(log)
        manifest = Manifest.decode(objects.get(manifest_key("t", "l"))[0])
        assert [(s.base, s.id) for s in manifest.segments][:len(committed.segments)] == \
            [(s.base, s.id) for s in committed.segments], "a committed segment was uploaded again"
        assert set(keys) <= set(bucket_keys(objects))
        assert log.describe()["upload_backlog_segments"] == 0
        assert len([s for s in log.segments() if not s.remote]) == 1  # local copies went after
        assert log.read(0, len(written)) == written


def test_a_corrupt_remote_object_is_a_read_error_naming_the_segment(tmp_path, objects, s3_client):
    clock = ManualClock(1_800_000_000_000)
    with make_store(tmp_path, objects, clock, **{"local.retention.bytes": "0"}) as store:
        store.create_topic("t")
        log = store.create_log("t", "l")
        written = fill(log, 25_000)
        store.tiering.run_pass(log)
        seg = next(s for s in log.segments() if s.remote)
        key = objects.full_key(seg.info.key("t", "l", ".log"))
        body = bytearray(written[seg.base:seg.base + seg.size])
        body[100] ^= 0xFF
        s3_client.put_object(Bucket=objects.bucket, Key=key, Body=bytes(body))
        with pytest.raises(RemoteReadError, match=f"remote segment {seg.base} of t/l.*checksum"):
            log.read(seg.base, 1000)


def test_the_store_down_leaves_local_copies_and_the_backlog_drains(tmp_path, objects, dead_objects):
    clock = ManualClock(1_800_000_000_000)
    with make_store(tmp_path, dead_objects, clock, **{"local.retention.bytes": "0"}) as store:
        store.create_topic("t")
        log = store.create_log("t", "l")
        written = fill(log, 30_000)
        out = store.tiering.run_pass(log)
        assert out == []
        d = store.tiering.describe(log)
        assert log.describe()["upload_backlog_segments"] >= 2 and d["tiering_error"]
        assert not d["tiering_stopped"]
        assert [s for s in log.segments() if s.remote] == []
        assert log.read(0, len(written)) == written  # every local copy is still there
    # the same data directory, the store reachable again: the backlog drains
    with make_store(tmp_path, objects, clock, **{"local.retention.bytes": "0"}) as store:
        log = store.log("t", "l")
        store.tiering.run_pass(log)
        assert log.describe()["upload_backlog_segments"] == 0
        assert store.tiering.describe(log)["tiering_error"] is None
        assert log.read(0, len(written)) == written


def test_a_second_writer_on_the_same_prefix_stops_and_deletes_nothing(tmp_path, objects):
    clock = ManualClock(1_800_000_000_000)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    with make_store(a, objects, clock) as store:
        store.create_topic("t")
        log = store.create_log("t", "l")
        fill(log, 15_000)
        store.tiering.run_pass(log)
    with make_store(b, objects, clock, **{"local.retention.bytes": "0"}) as other:
        other.create_topic("t")
        olog = other.create_log("t", "l")
        written = fill(olog, 15_000)
        other.tiering.run_pass(olog)
        st = other.tiering.describe(olog)
        assert st["tiering_stopped"] and "another store" in st["tiering_error"]
        assert olog.read(0, len(written)) == written
        assert all(not s.remote for s in olog.segments())


def test_the_cache_stays_within_its_bound(tmp_path, objects):
    clock = ManualClock(1_800_000_000_000)
    with make_store(tmp_path, objects, clock, cache_bytes=2 * CHUNK_BYTES,
                    **{"local.retention.bytes": "0", "segment.bytes": str(6 << 20)}) as store:
        store.create_topic("t")
        log = store.create_log("t", "l")
        written = fill(log, 200_000, per_write=1000)  # 20 MB
        store.tiering.run_pass(log)
        assert sum(s.remote for s in log.segments()) >= 2
        for _ in range(2):
            assert log.read(0, len(written)) == written
            assert store.remote.chunks.bytes <= 2 * CHUNK_BYTES
        cached = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(store.remote_cache_root)
                     for f in fs if f.startswith("c"))
        assert cached <= 2 * CHUNK_BYTES


def test_the_remote_config_is_recorded_with_a_store_id(tmp_path, objects):
    with make_store(tmp_path, objects):
        pass
    cfg = json.loads((tmp_path / ".logfs" / "remote.json").read_text())
    assert len(cfg["store_id"]) == 32
