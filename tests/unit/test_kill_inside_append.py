"""What recovery keeps of an append the writer died inside (SIGKILL, a real child
process, see kill_inside_append.py): every earlier append whole, never half a line.

The mount appends the first part of a write the kernel split at a page boundary as
*tentative*; a daemon killed before the rest arrives must not leave that half line
for the next append to glue onto. The kill can land after the append returned (the
live mark counts the bytes as tentative) or inside it, after the data and its index
entry reached the segment but before the live mark moved (found by the daemon-crash
suite: an index entry vouched for the half line), or inside the append of the rest,
after a roll (found by the same suite: the roll moved the live mark past the half
line). So the rest of a tentative write never rolls: it joins its first part. And
the live mark's store can be left half written (a power loss; it was a memcpy a kill
could interrupt before it became one pwrite): the other of the
two live slots, one append older, still vouches for every acknowledged byte. Or inside
a roll, before the full segment is sealed (found by a 120-trial run): recovery seals it
while the live mark still vouches for its tail, or a later recovery would cut it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from logfs.core import open_log_store
from storekit import quarantined_bytes, read_all, report_text, segments_on_disk

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import kill_inside_append as child  # noqa: E402

WHOLE = b"".join(child.LINES)


def run_child(data: Path, where: str, tentative: bool) -> None:
    proc = subprocess.run([sys.executable, str(HERE / "kill_inside_append.py"), str(data), where,
                           "1" if tentative else "0"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"the child did not die by SIGKILL: {proc}"


@pytest.mark.parametrize("where", ["after-data", "after-append", "before-rest", "torn-live"])
def test_half_a_split_write_is_cut_back_to_whole_lines(tmp_path, where):
    data = tmp_path / "data"
    run_child(data, where, tentative=True)
    store = open_log_store(str(data))
    try:
        log = store.log(child.TOPIC, child.LOG)
        got = read_all(log)
        assert got == WHOLE, f"recovered {len(got)} bytes, want the {len(WHOLE)} bytes of whole lines"
        assert log.records == len(child.LINES)
        assert quarantined_bytes(data, child.TOPIC, child.LOG) == child.PARTIAL
        assert "unfinished-write" in report_text(store)
        # the next append starts a fresh line instead of gluing onto half of one
        log.append(b"next\n")
        assert read_all(log) == WHOLE + b"next\n"
    finally:
        store.close()


@pytest.mark.parametrize("where", ["after-data", "torn-live"])
def test_an_unacknowledged_append_keeps_only_whole_lines(tmp_path, where):
    """Not tentative and dying after the data (or in the middle of the live tail's
    store): the append was never acknowledged, so recovery keeps only its whole lines:
    here it ends without a newline, so all of it goes (into quarantine), and nothing
    before it is touched (a live tail half written must not cost the earlier lines)."""
    data = tmp_path / "data"
    run_child(data, where, tentative=False)
    store = open_log_store(str(data))
    try:
        log = store.log(child.TOPIC, child.LOG)
        assert read_all(log) == WHOLE
        assert quarantined_bytes(data, child.TOPIC, child.LOG) == child.PARTIAL
    finally:
        store.close()


def test_an_acknowledged_append_is_kept_even_without_a_newline(tmp_path):
    """Not tentative and dying after the append returned: acknowledged, so kept."""
    data = tmp_path / "data"
    run_child(data, "after-append", tentative=False)
    store = open_log_store(str(data))
    try:
        log = store.log(child.TOPIC, child.LOG)
        assert read_all(log) == WHOLE + child.PARTIAL
        assert quarantined_bytes(data, child.TOPIC, child.LOG) == b""
    finally:
        store.close()


def test_the_rest_of_a_split_write_joins_its_first_part(tmp_path):
    """No crash: the rest of a tentative write goes to the segment of its first part,
    even past segment.bytes; the append after it rolls."""
    store = open_log_store(str(tmp_path), defaults={"segment.bytes": str(child.SEGMENT_BYTES)})
    try:
        store.create_topic(child.TOPIC)
        log = store.create_log(child.TOPIC, child.LOG)
        for line in child.LINES:
            log.append(line)
        log.append(child.PARTIAL, tentative=True)
        log.append(child.REST)
        line = child.PARTIAL + child.REST
        assert segments_on_disk(tmp_path, child.TOPIC, child.LOG) == [(0, len(WHOLE) + len(line))]
        log.append(b"next\n")
        assert segments_on_disk(tmp_path, child.TOPIC, child.LOG) == [
            (0, len(WHOLE) + len(line)), (len(WHOLE) + len(line), 5)]
        assert read_all(log) == WHOLE + line + b"next\n"
        assert log.records == len(child.LINES) + 2
    finally:
        store.close()


def test_a_kill_inside_a_roll_costs_nothing_then_or_later(tmp_path):
    """Killed inside a roll (the next segment created, the full one not yet sealed):
    the live mark vouches for the full segment's tail, and recovery seals it, so that
    after more appends and more kills (the marks have moved on, and no clean close or
    fsync moved the recovery point past it, as with a daemon killed again and again)
    nothing is cut."""
    data = tmp_path / "data"
    run_child(data, "inside-roll", tentative=False)
    for _kill in range(2):  # each child recovers the store, appends MORE, dies
        run_child(data, "more", tentative=False)
    store = open_log_store(str(data))
    try:
        log = store.log(child.TOPIC, child.LOG)
        assert quarantined_bytes(data, child.TOPIC, child.LOG) == b"", report_text(store)
        assert read_all(log) == WHOLE + child.PARTIAL + b"".join(child.MORE) * 2
        assert log.records == len(child.LINES) + 2 * len(child.MORE)
    finally:
        store.close()
