"""A corrupt index file (issue 10, defect 2): one header byte of a ``.index`` or
``.timeindex`` changed while no writer runs, after a clean shutdown.

The writer treats it as it treats a missing one: when it opens the log it rebuilds
the indexes from the segment, reports an ``index-rebuilt`` action and keeps the bad
file in quarantine (never deleted); reads, records and time seeks are right, and the
repair is stable. A reader in another process cannot repair it: it gets a
CorruptIndex, a StorageError that names the file, never another exception.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from logfs.core import CorruptIndex, ManualClock, StorageError, open_log_store

from storekit import (check_append_after, check_records, quarantined, quarantined_index_files,
                      read_all, report_text, segment_path, segments_on_disk)

TOPIC, LOG = "t", "l"
CLOCK_START = 1_700_000_000_000
APPEND = 250


def _written_log(tmp_path: Path) -> tuple[Path, bytes]:
    """A log of 5 segments written with one append of 250 bytes per ms and closed
    cleanly; the segment files' mtimes are those of their last appends (the clock
    an index rebuilt from the data dates them by)."""
    data = tmp_path / "data"
    data.mkdir()
    content = b"".join(b"record %05d %s\n" % (i, b"x" * (i % 40)) for i in range(400))
    with open_log_store(str(data), defaults={"segment.bytes": "3000", "index.interval.bytes": "300"},
                        clock=ManualClock(CLOCK_START)) as store:
        store.create_topic(TOPIC)
        log = store.create_log(TOPIC, LOG)
        for i in range(0, len(content), APPEND):
            log.append(content[i:i + APPEND])
            store.clock.advance(1)
    for base, size in segments_on_disk(data, TOPIC, LOG):
        last = (base + size - 1) // APPEND
        ns = (CLOCK_START + last) * 1_000_000
        os.utime(segment_path(data, TOPIC, LOG, base), ns=(ns, ns))
    assert len(segments_on_disk(data, TOPIC, LOG)) >= 4
    return data, content


def _corrupt(data: Path, which: str, suffix: str, at: int) -> tuple[Path, bytes]:
    """Flip the bits of header byte *at* of an index file of the first sealed or the
    active segment; returns the file and its corrupt content."""
    segs = segments_on_disk(data, TOPIC, LOG)
    base = segs[1][0] if which == "sealed" else segs[-1][0]
    path = data / TOPIC / LOG / f"{base:020d}{suffix}"
    raw = bytearray(path.read_bytes())
    raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))
    return path, bytes(raw)


@pytest.mark.parametrize("at", [0, 8, 28], ids=["magic", "base-offset", "checksum"])
@pytest.mark.parametrize("suffix", [".index", ".timeindex"])
@pytest.mark.parametrize("which", ["sealed", "active"])
def test_writer_rebuilds_a_corrupt_index_after_a_clean_shutdown(tmp_path, which, suffix, at):
    data, content = _written_log(tmp_path)
    bad_path, bad = _corrupt(data, which, suffix, at)
    with open_log_store(str(data), clock=ManualClock(CLOCK_START + 1_000)) as store:
        assert store.was_clean
        log = store.log(TOPIC, LOG)
        rebuilt = [a for a in store.recovery_report if a.kind == "index-rebuilt"]
        assert len(rebuilt) == 1, f"expected one index-rebuilt action: {report_text(store)!r}"
        base = int(bad_path.name.split(".")[0])
        assert rebuilt[0].offset == base
        assert store.recovery_report == rebuilt, report_text(store)
        # the bad file is kept, byte for byte, under the log's quarantine naming
        kept = quarantined_index_files(data, TOPIC, LOG)
        assert [(name.endswith(bad_path.name), content_) for name, content_ in kept] == [(True, bad)], kept
        assert rebuilt[0].quarantine and os.path.basename(rebuilt[0].quarantine) == kept[0][0]
        assert quarantined(data, TOPIC, LOG) == [], "no log bytes may be cut"
        assert bad_path.exists() and bad_path.read_bytes() != bad
        assert read_all(log) == content
        check_records(log, content)
        for t in range(CLOCK_START - 1, CLOCK_START + len(content) // APPEND + 2):
            exact = content.rfind(b"\n", 0, min(len(content), APPEND * max(0, t - CLOCK_START))) + 1
            assert 0 <= log.time_position(t) <= exact, f"time_position({t}) skips records from {exact}"
        now = check_append_after(log, content)
    with open_log_store(str(data), clock=ManualClock(CLOCK_START + 2_000)) as store:
        log = store.log(TOPIC, LOG)
        assert store.was_clean and store.recovery_report == [], "the repair was not stable"
        assert read_all(log) == now
        check_records(log, now)


@pytest.mark.parametrize("which", ["sealed", "active"])
def test_a_reader_meeting_a_corrupt_index_gets_a_storage_error(tmp_path, which):
    data, content = _written_log(tmp_path)
    bad_path, _bad = _corrupt(data, which, ".index", 0)
    with open_log_store(str(data), readonly=True) as reader:
        with pytest.raises(StorageError) as caught:
            log = reader.log(TOPIC, LOG)
            for n in range(0, content.count(b"\n") + 1, 7):  # every segment's index
                log.record_position(n)
        assert isinstance(caught.value, CorruptIndex), repr(caught.value)
        assert bad_path.name in str(caught.value)
        assert bad_path.exists(), "a reader must not touch the files"
    with open_log_store(str(data)) as store:  # the writer repairs it when it opens the log
        store.log(TOPIC, LOG)
        assert [a.kind for a in store.recovery_report] == ["index-rebuilt"]
    with open_log_store(str(data), readonly=True) as reader:
        log = reader.log(TOPIC, LOG)
        assert read_all(log) == content
        check_records(log, content)
