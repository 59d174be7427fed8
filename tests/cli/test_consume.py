"""`logfs consume` on a data directory (no mount): whole records of a log or of every
log of a topic, --from in each form, --until, --max, the three output formats,
--group continuing where the last run stopped, retention under a group's position,
--follow, signals and a closed pipe, the progress line (issue 12, part 2).

The writer is the core, in this process (it holds DATA's lock, as a mount's daemon
would); `logfs consume` runs as a real process reading DATA, as users run it."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import time

import pytest

from consume_kit import as_json, lines_of, logfs, segments_bytes
from fuse_helpers import LOGFS
from logfs.core import GroupStore, ManualClock, open_log_store

START_MS = int(time.time() * 1000) - 3_600_000  # an hour ago: file mtimes agree with the clock


def _line(log: str, i: int) -> bytes:
    return f'{{"log":"{log}","n":{i},"pad":"{"p" * (i % 13)}"}}\n'.encode()


@pytest.fixture
def clock():
    return ManualClock(START_MS)


@pytest.fixture
def data(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def store(data, clock):
    s = open_log_store(str(data), defaults={"segment.bytes": "2048", "index.interval.bytes": "1"},
                       clock=clock)
    try:
        yield s
    finally:
        s.close()


def fill(store, clock, topic="orders", name="eu", n=200, step_ms=1000):
    """n records, one append each, the clock advancing step_ms each; [(offset, ms, line)]."""
    if topic not in store.topics():
        store.create_topic(topic)
    log = store.log(topic, name) if store.has_log(topic, name) else store.create_log(topic, name)
    out = []
    for i in range(n):
        line = _line(name, i)
        out.append((log.append(line), clock.now_ms(), line))
        clock.advance(step_ms)
    return log, out


def test_a_log_whole_and_a_topic_as_all_its_logs(store, clock, data):
    log, eu = fill(store, clock)
    _, us = fill(store, clock, name="us", n=150)
    out = logfs("consume", str(data / "orders" / "eu")).stdout
    assert out == segments_bytes(data, "orders", "eu") == b"".join(w[2] for w in eu)
    assert log.segment_count > 3  # the read crossed segments
    both = lines_of(logfs("consume", str(data / "orders")).stdout)
    assert sorted(both) == sorted(w[2] for w in eu + us)
    for name, written in (("eu", eu), ("us", us)):  # each log in its own order
        assert [x for x in both if f'"log":"{name}"'.encode() in x] == [w[2] for w in written]
    # a log named twice (itself and through its topic) is read once
    again = lines_of(logfs("consume", str(data / "orders"), str(data / "orders" / "eu")).stdout)
    assert sorted(again) == sorted(both)


def test_from_each_form_until_and_max(store, clock, data):
    log, w = fill(store, clock, n=100)
    path = str(data / "orders" / "eu")
    lines = [x[2] for x in w]

    def consume(*args: str) -> list[bytes]:
        return lines_of(logfs("consume", *args, path).stdout)

    assert consume("--from", "earliest") == lines
    assert consume("--from", "latest") == []
    assert consume("--from", "record=40") == lines[40:]
    assert consume("--from", "record=100") == []
    assert consume("--from", str(w[30][1])) == lines[30:]  # epoch ms
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(w[60][1] / 1000)) + f".{w[60][1] % 1000:03d}Z"
    assert consume("--from", iso) == lines[60:]
    ago = (int(time.time() * 1000) - w[90][1]) // 1000  # a duration before now, in seconds
    got = consume("--from", f"{ago}s")  # the records of about the last `ago` seconds
    assert got == lines[len(lines) - len(got):] and 7 <= len(got) <= 10, len(got)
    assert consume("--until", str(w[10][1])) == lines[:11]
    assert consume("--from", "record=5", "--until", str(w[7][1])) == lines[5:8]
    assert consume("--max", "3", "--from", "record=50") == lines[50:53]
    assert consume("--max", "0") == []
    # --max counts records of all the logs together
    fill(store, clock, name="us", n=10)
    assert len(lines_of(logfs("consume", "--max", "15", str(data / "orders")).stdout)) == 15


def test_print_offset_and_json(store, clock, data):
    log, w = fill(store, clock, n=30)
    log.append(b"\xff\xfe not utf-8\n")
    path = str(data / "orders" / "eu")
    out = logfs("consume", "--print-offset", "--from", "record=28", path).stdout
    assert out == b"".join(b"orders/eu\t%d\t%d\t" % (i, w[i][0]) + w[i][2] for i in (28, 29)) + \
        b"orders/eu\t30\t%d\t\xff\xfe not utf-8\n" % log.record_position(30)
    records = as_json(logfs("consume", "--format", "json", path).stdout)
    assert [r["record"] for r in records] == list(range(31))
    for r, (offset, ms, line) in zip(records, w):
        assert (r["topic"], r["log"], r["offset"], r["value"]) == ("orders", "eu", offset, line[:-1].decode())
        assert r["time"] == ms  # one index entry per append (index.interval.bytes=1): exact
    assert records[30]["value_base64"] == "//4gbm90IHV0Zi04" and "value" not in records[30]


def test_json_time_is_a_lower_bound_with_a_sparse_index(tmp_path, clock):
    data = tmp_path / "sparse"
    data.mkdir()
    with open_log_store(str(data), defaults={"index.interval.bytes": "4096"}, clock=clock) as s:
        s.create_topic("t")
        log = s.create_log("t", "l")
        times = []
        for i in range(400):
            log.append(b"%05d %s\n" % (i, b"x" * 40))
            times.append(clock.now_ms())
            clock.advance(250)
    records = as_json(logfs("consume", "--format", "json", str(data / "t" / "l")).stdout)
    assert len(records) == 400
    got = [r["time"] for r in records]
    assert all(g <= t for g, t in zip(got, times)), "a time after the record's append"
    assert got == sorted(got) and got[0] == times[0]
    assert sum(g == t for g, t in zip(got, times)) >= 400 * 46 // 4096  # each interval's first


def test_group_continues_where_the_last_run_stopped(store, clock, data):
    log, w = fill(store, clock, n=50)
    path = str(data / "orders" / "eu")
    first = lines_of(logfs("consume", "--group", "billing", "--max", "20", path).stdout)
    second = lines_of(logfs("consume", "--group", "billing", "--max", "20", path).stdout)
    third = lines_of(logfs("consume", "--group", "billing", path).stdout)
    assert first + second + third == [x[2] for x in w]
    assert logfs("consume", "--group", "billing", path).stdout == b""
    pos = GroupStore(str(data)).group("billing").position("orders", "eu")
    assert (pos.record, pos.offset) == (50, log.end_offset)
    # --from applies only where the group has no position: a new group, or a new log
    assert lines_of(logfs("consume", "--group", "billing", "--from", "record=0", path).stdout) == []
    assert len(lines_of(logfs("consume", "--group", "other", "--from", "record=45", path).stdout)) == 5
    # a group that started at latest and read nothing resumes there, not at the new latest
    assert logfs("consume", "--group", "late", "--from", "latest", path).stdout == b""
    fill(store, clock, n=3)
    assert len(lines_of(logfs("consume", "--group", "late", "--from", "latest", path).stdout)) == 3


def test_retention_under_a_group_position_is_reported_and_reset(store, clock, data):
    store.create_topic("orders")
    log = store.create_log("orders", "eu")
    store.set_log_config("orders", "eu", {"segment.bytes": "1000", "retention.bytes": "3000"})
    path = str(data / "orders" / "eu")
    for i in range(10):
        log.append(b"early %03d\n" % i)
    assert len(lines_of(logfs("consume", "--group", "slow", "--max", "5", path).stdout)) == 5
    assert len(lines_of(logfs("consume", "--group", "fast", "--max", "5", path).stdout)) == 5
    for i in range(400):
        log.append(b"later %03d\n" % i)
    store.run_maintenance()
    assert log.start_record > 5, "retention should have removed the group's position"
    described = __import__("json").loads(logfs("groups", "describe", "slow", str(data), "--json").stdout)
    assert described["logs"][0]["state"] == "removed by retention"
    r = logfs("consume", "--group", "slow", path)
    assert "removed by retention" in r.stderr and "earliest" in r.stderr
    assert lines_of(r.stdout)[0] == log.read(log.record_position(log.start_record), 10)
    assert len(lines_of(r.stdout)) == log.records - log.start_record
    r = logfs("consume", "--group", "fast", "--reset", "latest", path)
    assert r.stdout == b"" and "latest" in r.stderr
    pos = GroupStore(str(data)).group("fast").position("orders", "eu")
    assert pos.record == log.records  # the reset was committed
    # --from record=N that retention removed resets too
    r = logfs("consume", "--from", "record=0", "--max", "1", path)
    assert "record 0 was removed by retention" in r.stderr and r.stdout.startswith(b"later")


def test_follow_prints_appends_and_waits_for_whole_lines(store, clock, data, followers):
    log, w = fill(store, clock, n=5)
    f = followers(str(data / "orders" / "eu"))
    f.wait_for(w[-1][2])
    log.append(b"half a li")
    time.sleep(0.3)
    assert not f.data.endswith(b"half a li"), "an incomplete record was printed"
    log.append(b"ne\n")
    f.wait_for(b"half a line\n", 2)
    assert f.data == b"".join(x[2] for x in w) + b"half a line\n"
    assert f.stop() == 0


def test_follow_a_topic_picks_up_new_logs(store, clock, data, followers):
    fill(store, clock, n=2)
    f = followers(str(data / "orders"))
    f.wait_for(_line("eu", 1))
    log = store.create_log("orders", "later")
    log.append(b"from a new log\n")
    f.wait_for(b"from a new log\n", 5)
    f.stop()
    assert "orders/later appeared" in f.stderr_text()


def test_follow_from_a_record_not_written_yet(store, clock, data, followers):
    log, _ = fill(store, clock, n=3)
    f = followers("--from", "record=5", str(data / "orders" / "eu"))
    log.append(b"three\n")
    log.append(b"four\n")
    log.append(b"five\n")
    f.wait_for(b"five\n", 5)
    assert f.data == b"five\n"


def test_follow_until_a_time_in_the_future_ends(store, clock, data, followers):
    fill(store, clock, n=2)
    until = int(time.time() * 1000) + 1500
    f = followers("--until", str(until), str(data / "orders" / "eu"))
    f.wait_for(_line("eu", 1))
    assert f.proc.wait(10) == 0, "the follower did not end once until passed"


def test_sigterm_and_ctrl_c_commit_and_exit_0(store, clock, data, followers):
    log, w = fill(store, clock, n=10)
    for sig in (signal.SIGTERM, signal.SIGINT):
        f = followers("--group", "g", "--commit-ms", "600000", "--commit-every", "1000000",
                      str(data / "orders" / "eu"))
        log.append(b"for %d\n" % sig)
        f.wait_for(b"for %d\n" % sig)
        assert f.stop(sig) == 0
        pos = GroupStore(str(data)).group("g").position("orders", "eu")
        assert pos.offset == log.end_offset, "the last records were not committed"


def test_a_signal_during_a_blocked_write_lets_the_batch_finish_and_a_second_cuts_it(
        store, clock, data):
    """stdout is a pipe no one reads yet: the first SIGTERM waits for the batch to be
    written, then commits exactly what was written; a second SIGTERM ends a consumer
    stuck on its stdout at once, committing nothing of the batch it could not write."""
    log, w = fill(store, clock, n=3000)
    path = str(data / "orders" / "eu")
    for group, signals in (("patient", 1), ("stuck", 2)):
        read_end, write_end = os.pipe()
        p = subprocess.Popen([LOGFS, "consume", "--group", group, "--commit-every", "1000", path],
                             stdout=write_end, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        os.close(write_end)
        try:
            time.sleep(1.0)  # it has filled the pipe and waits in write()
            for _ in range(signals):
                p.send_signal(signal.SIGTERM)
                time.sleep(0.3)
            if signals == 1:
                assert p.poll() is None, "the first signal cut a batch short"
            got = b""
            while True:
                chunk = os.read(read_end, 1 << 16)
                if not chunk:
                    break
                got += chunk
            assert p.wait(10) == 0, p.stderr.read()
        finally:
            os.close(read_end)
            if p.poll() is None:
                p.kill()
                p.wait()
        pos = GroupStore(str(data)).group(group).position("orders", "eu")
        n = got.count(b"\n")
        if signals == 1:  # the batch in flight was finished: what was written was committed
            assert n == pos.record and n in (1000, 2000, 3000), (n, pos)
            assert got == b"".join(x[2] for x in w[:n])
        else:  # cut short: the batch it was writing is not committed, nothing is skipped
            assert pos.record < n or n == 0, (n, pos)
            assert pos.record % 1000 == 0 and got.startswith(b"".join(x[2] for x in w[:pos.record]))


def test_a_second_consumer_of_a_group_is_refused(store, clock, data, followers):
    fill(store, clock, n=3)
    path = str(data / "orders" / "eu")
    f = followers("--group", "solo", path)
    f.wait_for(_line("eu", 2))
    r = logfs("consume", "--group", "solo", path, check=False)
    assert r.returncode == 1 and "in use by another consumer" in r.stderr
    assert f"pid {f.proc.pid}" in r.stderr and len(r.stderr.splitlines()) == 1
    for cmd in (("groups", "reset", "solo", "--to", "earliest", path), ("groups", "delete", "solo", path)):
        r = logfs(*cmd, check=False)
        assert r.returncode == 1 and "running consumer" in r.stderr, r.stderr
    assert f"pid {f.proc.pid}" in logfs("groups", "describe", "solo", path).stdout.decode()
    f.stop()
    assert logfs("consume", "--group", "solo", path).returncode == 0  # free again


def test_a_closed_pipe_ends_the_consumer_quietly_after_a_commit(store, clock, data):
    for i in range(3):
        fill(store, clock, n=3000, name=f"l{i}")
    p = subprocess.run(f"'{LOGFS}' consume --group piped '{data / 'orders'}' | head -c 100",
                       shell=True, capture_output=True, timeout=60, executable="/bin/bash")
    assert p.stderr == b"" and len(p.stdout) == 100
    r = subprocess.run(["bash", "-c", f"set -o pipefail; '{LOGFS}' consume '{data / 'orders'}' | head -c 10"],
                       capture_output=True, timeout=60)
    assert r.returncode == 141 and r.stderr == b""
    assert GroupStore(str(data)).group("piped").positions(), "nothing was committed"


def test_stdout_appended_to_and_a_terminal(store, clock, data, tmp_path):
    """sendfile refuses O_APPEND files and terminals: the copy fallback writes the same."""
    _, w = fill(store, clock, n=40)
    expect = b"".join(x[2] for x in w)
    out = tmp_path / "out.txt"
    out.write_bytes(b"before\n")
    subprocess.run(f"'{LOGFS}' consume '{data / 'orders' / 'eu'}' >> '{out}'", shell=True, check=True,
                   timeout=60)
    assert out.read_bytes() == b"before\n" + expect
    got = _run_on_pty([LOGFS, "consume", str(data / "orders" / "eu")], stdout_too=True)
    assert got.replace(b"\r\n", b"\n") == expect


def _run_on_pty(argv: list[str], stdout_too: bool, stdout=None, timeout: float = 30) -> bytes:
    """Run argv with stderr (and stdout, with *stdout_too*) on a pseudo-terminal;
    everything the terminal received."""
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave if stdout_too else stdout,
                             stderr=slave)
        os.close(slave)
        got = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the other side is closed
                    break
                if not chunk:
                    break
                got += chunk
            elif p.poll() is not None:
                break
        p.wait(timeout=10)
        return got
    finally:
        os.close(master)


def test_progress_shows_on_a_terminal_only(tmp_path, clock):
    data = tmp_path / "big"
    data.mkdir()
    with open_log_store(str(data), clock=clock) as s:
        s.create_topic("t")
        log = s.create_log("t", "l")
        block = b"".join(b"%08d %s\n" % (i, b"y" * 90) for i in range(1000))
        for _ in range(300):  # 30 MB, 300,000 records
            log.append(block)
    path = str(data / "t" / "l")
    # without a terminal: not a byte on stderr
    r = subprocess.run([LOGFS, "consume", path], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=60)
    assert r.returncode == 0 and r.stderr == b""
    # on a terminal, while stdout (a pipe read slowly) holds the consumer back
    read_end, write_end = os.pipe()
    drained = []

    def drain():
        time.sleep(1.5)
        while True:
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                return
            drained.append(len(chunk))
            time.sleep(0.002)

    import threading
    t = threading.Thread(target=drain, daemon=True)
    t.start()
    try:
        shown = _run_on_pty([LOGFS, "consume", path], stdout_too=False, stdout=write_end)
    finally:
        os.close(write_end)
        t.join(30)
        os.close(read_end)
    assert sum(drained) == 300 * len(block)
    assert b"records (" in shown and b"behind" in shown, shown[-300:]
    assert shown.endswith(b"\r\x1b[K"), "the progress line was not erased at the end"


def test_refusals_are_one_line(store, clock, data):
    fill(store, clock, n=2)
    cases = [
        (["consume", str(data)], 1, "name a topic or a log"),
        (["consume", str(data / "orders" / "nope")], 1, "does not exist"),
        (["consume", "--from", "yesterday", str(data / "orders")], 2, "--from"),
        (["consume", "--until", "soon", str(data / "orders")], 2, "--until"),
        (["consume", "--group", "", str(data / "orders")], 2, "--group"),
        (["consume", "--group", "a\tb", str(data / "orders")], 2, "control character"),
        (["consume", "--format", "json", "--print-offset", str(data / "orders")], 2, "--print-offset"),
        (["consume", "--format", "xml", str(data / "orders")], 2, "--format"),
        (["consume", "--max", "-1", str(data / "orders")], 2, "--max"),
        (["consume", "--commit-every", "0", str(data / "orders")], 2, "--commit-every"),
        (["consume", str(data / "orders"), "/"], 1, "not inside a logfs mount"),
        (["consume"], 2, "PATH"),
    ]
    for argv, code, words in cases:
        r = logfs(*argv, check=False)
        assert r.returncode == code, (argv, r.returncode, r.stderr)
        assert words in r.stderr and len(r.stderr.strip().splitlines()) == 1, (argv, r.stderr)
        assert "Traceback" not in r.stderr and r.stdout == b""
