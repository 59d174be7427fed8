"""The README's one-minute tour, run as written against a real mount, with every
output it shows compared (issue 11: the tour used port 8080 and did not say what
`?record=N` prints).

Each `$ command` of the tour runs in bash in a directory laid out as `make run`
leaves it (data/ mounted on mnt/). What cannot be compared is relaxed, and only
that: dates in `ls -l`, `ls`'s column layout (words are compared), bash's "line N:"
prefix, and a `...` line, after which further output is not compared. Commands that
wait for Ctrl-C (`tail -f`, `?follow=1`) are not run; `logfs serve data &` runs on a
free port in place of 8480, and the mount's Kafka listener on one in place of 9092, so
that a busy port cannot fail the test.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess

import pytest

from fuse_helpers import LOGFS, REPO, mounted, require_fuse, run, wait_for

pytestmark = pytest.mark.fuse


def tour() -> list[tuple[str, list[str]]]:
    text = (REPO / "README.md").read_text()
    section = text.split("## A one-minute tour", 1)[1].split("\n## ", 1)[0]
    steps: list[tuple[str, list[str]]] = []
    for line in section.splitlines():
        if not line.startswith("    "):
            continue
        line = line[4:]
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
    return steps


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _normalise(lines: list[str]) -> list[str]:
    out = []
    for ln in lines:
        ln = re.sub(r"^bash: line \d+: ", "bash: ", ln)
        ln = re.sub(r"\b[A-Z][a-z]{2} +\d{1,2} +\d{1,2}:\d{2}\b", "DATE", ln)  # ls -l
        out.append(ln)
    return out


def _matches(expected: list[str], got: list[str]) -> bool:
    expected, got = _normalise(expected), _normalise(got)
    if "..." in expected:
        cut = expected.index("...")
        return got[:cut] == expected[:cut]
    if expected and expected[0].startswith(("0000", "data/")):  # ls: compare the words
        return " ".join(expected).split() == " ".join(got).split()
    return expected == got


def test_the_readme_tour(tmp_path):
    require_fuse()
    steps = tour()
    assert len(steps) >= 15, steps
    commands = " ".join(cmd for cmd, _ in steps)
    assert "8080" not in commands and "record=" in commands
    assert commands.count("kcat") >= 3, "the tour shows a Kafka client (issue 13)"
    (tmp_path / "data").mkdir()
    (tmp_path / "mnt").mkdir()
    kafka_port = _free_port()
    # what `make run` does (with its Kafka listener on a free port in place of 9092)
    run([LOGFS, "mount", "-o", f"kafka=127.0.0.1:{kafka_port}", "data", "mnt"], cwd=tmp_path)
    env = {**os.environ, "PATH": f"{os.path.dirname(LOGFS)}:{os.environ['PATH']}",
           "LC_ALL": "C", "TZ": "UTC"}
    port = _free_port()
    server = None
    try:
        for cmd, expected in steps:
            if cmd.startswith("export PATH=") or "tail -f" in cmd or "follow=1" in cmd:
                continue
            cmd = cmd.replace("8480", str(port)).replace("9092", str(kafka_port))
            if cmd.startswith("logfs serve") and cmd.split("#")[0].rstrip().endswith("&"):
                argv = cmd.split("#")[0].rstrip()[:-1].split() + ["--port", str(port)]
                server = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL, text=True)
                line = server.stdout.readline()
                assert f":{port}" in line, line
                continue
            r = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, env=env, capture_output=True,
                               text=True, timeout=30)
            got = (r.stdout + r.stderr).splitlines()
            assert _matches(expected, got), (
                f"README tour: `{cmd}` printed\n" + "\n".join(got) +
                "\nbut the README shows\n" + "\n".join(expected))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        subprocess.run([LOGFS, "umount", str(tmp_path / "mnt")], capture_output=True, timeout=30)
        if mounted(str(tmp_path / "mnt")):
            subprocess.run(["fusermount3", "-u", "-z", str(tmp_path / "mnt")], timeout=30)
    wait_for(lambda: not mounted(str(tmp_path / "mnt")), 10, "the tour's mount to go")
