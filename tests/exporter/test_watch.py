"""The follower wake-up machinery alone (logfs/watch.py: inotify through ctypes), in
trio as the exporter uses it and in a plain poll loop as `logfs consume` does."""

from __future__ import annotations

import os
import select

import pytest
import trio

from logfs.watch import DirectoryWatcher, inotify_available

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


def test_a_plain_poll_loop_sees_checkpoint_writes_and_new_entries(tmp_path):
    """Without trio: poll the descriptor, read_events, compare generations; the
    checkpoint watch is added once the file appears."""
    log_dir = tmp_path / "t" / "l"
    log_dir.mkdir(parents=True)
    watcher = DirectoryWatcher()
    try:
        poller = select.poll()
        poller.register(watcher.fileno(), select.POLLIN)
        log = watcher.subscribe(str(log_dir), "checkpoint")
        topic = watcher.subscribe(str(tmp_path / "t"))
        assert watcher.read_events() == 0  # nothing waits: does not block

        def changed(watched, seen):
            deadline = 50
            while watched.generation == seen and deadline:
                if poller.poll(100):
                    watcher.read_events()
                deadline -= 1
            return watched.generation != seen

        g = log.generation
        (log_dir / "checkpoint").write_bytes(b"x" * 40)  # appears: the file watch is added
        assert changed(log, g)
        g = log.generation
        with open(log_dir / "checkpoint", "r+b") as f:  # a live-slot write
            f.write(b"y")
        assert changed(log, g)
        g = topic.generation
        (tmp_path / "t" / "new").mkdir()  # a new log in the topic
        assert changed(topic, g)
        watcher.unsubscribe(log)
        watcher.unsubscribe(topic)
        assert watcher.watch_count == 0
    finally:
        watcher.close()
    assert watcher.fileno() == -1 and watcher.read_events() == 0
