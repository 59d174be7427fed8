"""Bad input to any command: one line on stderr naming the problem, a non-zero exit,
never a traceback (issue 11: `logfs serve data --port 99999` printed an exception
group; several messages were unclear)."""

from __future__ import annotations

import subprocess

import pytest

from fuse_helpers import LOGFS
from hang_helpers import rescue

# (argv with {data} {file} {mnt} {missing} placeholders, exit code, words the message names)
CASES = [
    # item 3: out-of-range ports printed a traceback
    ("serve {data} --port 99999", 2, ["--port", "99999", "not a port"]),
    ("serve {data} --port -1", 2, ["--port", "-1", "not a port"]),
    ("serve {data} --port http", 2, ["--port", "'http'"]),
    ("serve {data} --max-connections 0", 2, ["--max-connections"]),
    ("serve {data} --request-timeout -1", 2, ["--request-timeout"]),
    ("serve {data} --send-timeout nan", 2, ["--send-timeout"]),
    ("serve {data} --access-log {missing}/x.log", 2, ["access log", "No such file"]),
    ("serve {data} --bind 999.0.0.1 --port 0", 1, ["cannot listen", "999.0.0.1"]),
    # item 5: clearer messages
    ("serve {data} --token-file {missing}", 2, ["token file", "No such file or directory"]),
    ("serve {file}", 2, ["not a data directory"]),
    ("serve {missing}", 2, ["does not exist"]),
    ("serve {data}/.logfs", 2, [".logfs", "internals"]),
    ("mount {data} {missing}", 1, ["mountpoint", "does not exist"]),
    ("mount {data} {file}", 1, ["mountpoint", "is not a directory"]),
    ("mount {file} {mnt}", 1, ["not a data directory"]),
    ("mount {data}/.logfs {mnt}", 1, ["internals"]),
    ("mount -o retention.ms {data} {mnt}", 2, ["retention.ms", "needs a value"]),
    ("mount -o retention.ms= {data} {mnt}", 2, ["retention.ms", "needs a value"]),
    ("mount -o spin_us {data} {mnt}", 2, ["spin_us", "needs a value"]),
    ("mount -o allow_other=yes {data} {mnt}", 2, ["allow_other", "takes no value"]),
    ("mount -o retention.ms=soon {data} {mnt}", 2, ["retention.ms", "'soon'"]),
    ("mount -o retention.mss=1 {data} {mnt}", 2, ["retention.mss"]),
    ("mount -o mtime_granularity=nan {data} {mnt}", 2, ["mtime_granularity"]),
    ("mount -o frobnicate {data} {mnt}", 2, ["frobnicate"]),
    ("mount {data}", 2, ["MOUNTPOINT"]),
    ("umount {missing}", 1, ["not a logfs mount"]),
    ("umount --timeout -5 {mnt}", 2, ["--timeout"]),
    ("describe {missing}", 1, ["does not exist"]),
    ("describe {mnt}", 1, ["not inside a logfs mount or a logfs data directory"]),
    ("config {mnt}", 1, ["not inside a logfs mount"]),
    ("config {data}/t retention.ms", 2, ["KEY=VALUE"]),
    ("mount -o kafka=nonsense {data} {mnt}", 2, ["kafka", "'nonsense'"]),
    ("mount -o kafka=127.0.0.1:99999 {data} {mnt}", 2, ["kafka"]),
    ("mount -o kafka.auto_create=maybe {data} {mnt}", 2, ["kafka.auto_create", "'maybe'"]),
    ("kafka {data} --listen 127.0.0.1:99999", 2, ["--listen", "99999", "not a port"]),
    ("kafka {data} --listen nowhere", 2, ["--listen", "'nowhere'"]),
    ("kafka {missing}", 2, ["does not exist"]),
    ("kafka {file}", 2, ["not a data directory"]),
    ("kafka {data} --listen 999.0.0.1:0", 1, ["cannot listen", "999.0.0.1"]),
    ("frobnicate", 2, ["invalid choice"]),
    ("bench --scale lots", 2, ["--scale"]),
]


@pytest.fixture
def places(tmp_path):
    """The paths the cases name; at teardown, anything a case wrongly mounted or
    started is cleared (it must not outlive the test, whatever the code did)."""
    data = tmp_path / "data"
    (data / ".logfs").mkdir(parents=True)
    (data / "t").mkdir()
    (tmp_path / "mnt").mkdir()
    (tmp_path / "a-file").write_text("not a directory\n")
    yield {"data": str(data), "mnt": str(tmp_path / "mnt"), "file": str(tmp_path / "a-file"),
           "missing": str(tmp_path / "missing")}
    left = rescue(tmp_path)
    assert not left, f"a refused command left something behind: {left}"


@pytest.mark.parametrize("argv,code,words", CASES, ids=[c[0].split(" {")[0] + ":" + c[0]
                                                        for c in CASES])
def test_one_line_error_and_exit_code(places, argv, code, words):
    args = [a.format(**places) for a in argv.split()]
    r = subprocess.run([LOGFS, *args], capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    err = r.stderr.strip()
    assert "Traceback" not in r.stderr and "Error:" not in err.split(":", 1)[0], r.stderr
    assert len(err.splitlines()) == 1, f"expected one line, got:\n{r.stderr}"
    assert r.returncode == code, (r.returncode, err)
    assert err.startswith("logfs"), err
    for w in words:
        assert w in err, f"{w!r} not in {err!r}"
    assert "[Errno" not in err and "Error(" not in err, err  # no Python reprs
    assert r.stdout == ""


def test_a_busy_kafka_port_refuses_the_mount_in_one_line(places):
    """The mount's Kafka listener cannot bind: the mount is refused, plainly, and
    nothing stays mounted (the fixture checks)."""
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run([LOGFS, "mount", "-o", f"kafka=127.0.0.1:{port}", places["data"],
                            places["mnt"]], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip() == f"logfs: cannot listen for Kafka clients on 127.0.0.1:{port}: " \
                               "Address already in use", r.stderr


def test_the_exporter_module_refuses_the_same_way(places):
    """`python -m logfs.exporter` has the same boundary as `logfs serve`."""
    import sys
    r = subprocess.run([sys.executable, "-m", "logfs.exporter", places["data"], "--port",
                        "99999"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "not a port" in r.stderr


def test_a_closed_stdout_is_no_error_message(tmp_path):
    """`logfs describe ... | head` (the reader gone before the output is written):
    quiet, with status 141 as a process SIGPIPE ended (it printed "Exception ignored
    ... BrokenPipeError" and exited 120)."""
    import os
    data = tmp_path / "data"
    (data / ".logfs").mkdir(parents=True)
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will read
    try:
        r = subprocess.run([LOGFS, "describe", "--json", str(data)], stdout=write_end,
                           stderr=subprocess.PIPE, text=True, timeout=30)
    finally:
        os.close(write_end)
    assert (r.returncode, r.stderr) == (141, "")
