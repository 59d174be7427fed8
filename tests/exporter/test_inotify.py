"""The follower wake-up machinery alone (inotify through ctypes, in trio)."""

from __future__ import annotations

import os

import pytest
import trio

from logfs.exporter.inotify import DirectoryWatcher, inotify_available

pytestmark = pytest.mark.skipif(not inotify_available(), reason="no inotify on this system")


async def _wait_generation(watched, generation, timeout=2.0):
    with trio.fail_after(timeout):
        while watched.generation == generation:
            await watched.wait_change(generation, 0.5)
    return watched.generation


def test_events_wake_subscribers_and_renames_do_not_confuse_watches(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()

    async def main():
        watcher = DirectoryWatcher()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watcher.run)
            first = watcher.subscribe(str(a))
            second = watcher.subscribe(str(a))
            assert first is second and watcher.watch_count == 1
            g = first.generation
            (a / "seg.log").write_bytes(b"x")
            g = await _wait_generation(first, g)
            # renamed while still followed: gone; a new follower of the new name gets a
            # live watch of its own, not the gone one
            os.rename(a, b)
            await _wait_generation(first, g)
            assert first.gone
            third = watcher.subscribe(str(b))
            assert third is not first and not third.gone
            g3 = third.generation
            (b / "seg.log").write_bytes(b"xy")
            await _wait_generation(third, g3)
            assert not third.gone
            for w in (first, second, third):
                watcher.unsubscribe(w)
            assert watcher.watch_count == 0
            nursery.cancel_scope.cancel()

    trio.run(main)
