"""The CLI's contract with people: one-line refusals, no tracebacks, no Python values.

These tests run the real `logfs` command in subprocesses. Helpers come from
tests/fuse (fuse_helpers: LOGFS, run, mounts), which is put on the import path here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuse"))

from fuse_helpers import Mount, new_mount, require_fuse, tear_down  # noqa: E402


@pytest.fixture
def mount_factory(tmp_path):
    """``make(*options, name="m")`` -> a mounted fuse_helpers.Mount (a real `logfs
    mount`); all are unmounted at teardown, and a daemon that logged an ERROR fails
    the test. Without FUSE: a skip, or under CI a failure."""
    require_fuse()
    made: list[Mount] = []

    def make(*options: str, name: str = "m") -> Mount:
        return new_mount(made, tmp_path / name / "data", tmp_path / name / "mnt", options, True)

    yield make
    tear_down(made)


@pytest.fixture
def followers():
    """``start(*args)`` -> a running `logfs consume --follow ARGS` (consume_kit.Follower);
    every one is killed at teardown, whatever the test did."""
    from consume_kit import Follower
    started: list[Follower] = []

    def start(*args: str, **kw) -> Follower:
        f = Follower(*args, **kw)
        started.append(f)
        return f

    yield start
    for f in started:
        f.kill()
