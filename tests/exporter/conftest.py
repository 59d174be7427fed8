"""Fixtures for the exporter tests: a data directory with the core writer open in
this process (it holds the write lock, as the FUSE daemon would), and real exporter
processes on free loopback ports, always stopped at teardown."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from exporter_helpers import START_MS, Exporter, start_exporter, stop_process
from logfs.core import ManualClock, open_log_store


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START_MS)


@pytest.fixture
def store(data_dir: Path, clock: ManualClock):
    """The writer, in this process. Small segments so tests cross boundaries."""
    s = open_log_store(str(data_dir), defaults={"segment.bytes": "4096", "index.interval.bytes": "1"},
                       clock=clock)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def exporter_factory(data_dir: Path, tmp_path: Path):
    started: list[Exporter] = []

    def factory(*args: str, **kw) -> Exporter:
        exp = start_exporter(data_dir, tmp_path, *args, name=f"exporter{len(started)}", **kw)
        started.append(exp)
        return exp

    try:
        yield factory
    finally:
        for exp in started:
            stop_process(exp.proc)
    # like s3ql's tests: an unexpected error or traceback in the server fails the test
    for exp in started:
        bad = [line for line in exp.stderr_path.read_text(errors="replace").splitlines()
               if " ERROR " in line or "Traceback" in line]
        if bad:
            pytest.fail("the exporter logged errors:\n" + "\n".join(bad[:20]))


@pytest.fixture
def exporter(exporter_factory) -> Exporter:
    return exporter_factory()


@pytest.fixture
def processes():
    """Extra subprocesses a test starts (curl...): all stopped at teardown."""
    procs: list[subprocess.Popen] = []
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass
            for stream in (p.stdout, p.stderr):
                if stream:
                    stream.close()
