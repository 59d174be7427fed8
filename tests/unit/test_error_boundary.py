"""The core's one error boundary (issue 10, defect 3): an OSError from the disk comes
out of the core as a StorageIOError with the OS errno (which the mount answers and
the exporter reports), never as a bare OSError.

The failures are the kernel's own, provoked without privileges: a directory where
the core expects a file (EISDIR), a path longer than PATH_MAX (ENAMETOOLONG), and no
descriptor left (RLIMIT_NOFILE: EMFILE), in a child process.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from logfs.core import ManualClock, StorageIOError, open_log_store

from storekit import read_all


def _store(data: Path, **defaults: str):
    data.mkdir(parents=True, exist_ok=True)
    return open_log_store(str(data), defaults=defaults, clock=ManualClock(1_700_000_000_000))


def _raises_storage_io_error(call, code: int) -> StorageIOError:
    try:
        call()
    except StorageIOError as exc:
        assert exc.errno == code, f"errno {errno.errorcode.get(exc.errno)}, expected {errno.errorcode[code]}: {exc}"
        return exc
    except OSError as exc:
        pytest.fail(f"a bare {type(exc).__name__} ({exc}) escaped the core")
    pytest.fail("the call did not fail")


def test_retention_that_cannot_delete_a_segment_file(tmp_path):
    data = tmp_path / "data"
    with _store(data, **{"segment.bytes": "100"}) as store:
        store.create_topic("t")
        log = store.create_log("t", "l")
        content = b"".join(b"line %04d\n" % i for i in range(60))
        for i in range(0, len(content), 50):
            log.append(content[i:i + 50])
        assert log.segment_count >= 4
        oldest = log.segments()[0]
        os.unlink(oldest.time_index_path)
        os.mkdir(oldest.time_index_path)  # unlink(2) of it: EISDIR
        store.set_log_config("t", "l", {"retention.bytes": "200"})
        exc = _raises_storage_io_error(log.apply_retention, errno.EISDIR)
        assert "segment" in str(exc)
        # the segment's data file is gone: it is out of the log, whose start moved on
        assert not os.path.exists(oldest.path)
        start = log.start_offset
        assert start == log.segments()[0].base > 0
        assert read_all(log) == content[start:]
        assert log.record_position(log.start_record) == start
        log.append(b"after\n")
        os.rmdir(oldest.time_index_path)
        log.apply_retention()
        start = log.start_offset
    with open_log_store(str(data)) as store:
        log = store.log("t", "l")
        assert store.recovery_report == []
        assert log.start_offset == start
        assert read_all(log) == (content + b"after\n")[start:]


@pytest.mark.parametrize("what", ["attrs", "log-config", "topic-config"])
def test_metadata_that_cannot_be_replaced(tmp_path, what):
    data = tmp_path / "data"
    with _store(data) as store:
        store.create_topic("t")
        log = store.create_log("t", "l")
        target = data / "t" / (".logfs-topic.json" if what == "topic-config" else "l/log.json")
        os.mkdir(str(target) + ".tmp")  # the temporary file it is written through: EISDIR
        call = {"attrs": lambda: log.set_attrs(mode=0o600),
                "log-config": lambda: store.set_log_config("t", "l", {"retention.ms": "1000"}),
                "topic-config": lambda: store.set_topic_config("t", {"retention.ms": "1000"})}[what]
        _raises_storage_io_error(call, errno.EISDIR)
        os.rmdir(str(target) + ".tmp")
        call()  # and works once the obstacle is gone


@pytest.mark.parametrize("what", ["log", "topic"])
def test_rename_the_kernel_refuses(tmp_path, what):
    # a data directory whose path leaves no room for a long new name (PATH_MAX)
    data = tmp_path
    while len(str(data)) < 3_900 - 201:
        data /= "d" * 200
    data /= "d" * (3_900 - len(str(data)) - 1)  # its files' paths still fit, a 250-byte name does not
    with _store(data) as store:
        store.create_topic("t")
        log = store.create_log("t", "l")
        log.append(b"kept\n")
        new = "n" * 250
        assert len(str(data / "t" / new)) >= 4096
        call = (lambda: store.rename_log("t", "l", "t", new)) if what == "log" else \
            (lambda: store.rename_topic("t", new))
        _raises_storage_io_error(call, errno.ENAMETOOLONG)
        assert store.logs("t") == ["l"] and store.log("t", "l").read(0, 100) == b"kept\n"


NO_DESCRIPTORS = r'''
import errno, os, resource, sys
from logfs.core import StorageIOError, open_log_store
data = sys.argv[1]
with open_log_store(data) as store:
    for topic in ("a", "b"):
        store.create_topic(topic)
    for name in ("x", "y"):
        store.create_log("a", name).append(b"%s\n" % name.encode())

def exhausted(call):
    """call() with every descriptor number taken: any open fails with EMFILE."""
    lowest_free = os.open("/dev/null", os.O_RDONLY)
    os.close(lowest_free)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
    try:
        call()
    except StorageIOError as exc:
        assert exc.errno == errno.EMFILE, exc
        return "StorageIOError"
    except OSError as exc:
        return "bare %s: %s" % (type(exc).__name__, exc)
    else:
        return "no error"
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

print("open_log_store", exhausted(lambda: open_log_store(data)))
store = open_log_store(data)  # clean: logs are opened when first used
print("log", exhausted(lambda: store.log("a", "x")))
print("delete_log", exhausted(lambda: store.delete_log("a", "y")))
print("delete_topic", exhausted(lambda: store.delete_topic("b")))
print("create_topic", exhausted(lambda: store.create_topic("c")))
assert store.logs("a") == ["x", "y"] and store.topics() == ["a", "b"], (store.topics(), store.logs("a"))
assert store.log("a", "y").read(0, 10) == b"y\n"
store.close()
print("OK")
'''


def test_namespace_calls_with_no_descriptor_left(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    out = subprocess.run([sys.executable, "-c", NO_DESCRIPTORS, str(data)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and out.stdout.endswith("OK\n"), out.stdout + out.stderr
    results = dict(line.split(" ", 1) for line in out.stdout.splitlines()[:-1])
    assert results == {k: "StorageIOError" for k in results}, results
    assert len(results) == 5


def test_a_reader_whose_checkpoint_cannot_be_mapped_gets_a_storage_error(tmp_path):
    """The exporter's view of a log whose checkpoint is a directory (mmap: ENODEV)."""
    data = tmp_path / "data"
    with _store(data) as store:
        store.create_topic("t")
        store.create_log("t", "l").append(b"x\n")
    checkpoint = data / "t" / "l" / "checkpoint"
    with open_log_store(str(data), readonly=True) as reader:
        log = reader.log("t", "l")
        assert log.end_offset == 2
        log.checkpoint.release()  # as the resource cache does when it evicts the mapping
        checkpoint.unlink()
        checkpoint.mkdir()
        _raises_storage_io_error(lambda: log.end_offset, errno.ENODEV)
