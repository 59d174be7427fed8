"""Fixtures for the exporter tests: a data directory with the core writer open in
this process (it holds the write lock, as the FUSE daemon would), and a real
exporter process on a free loopback port, always stopped at teardown.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from logfs.core import ManualClock, open_log_store

ROOT = Path(__file__).resolve().parents[2]
LISTEN_RE = re.compile(r"listening on http://([0-9.]+):(\d+)")
START_MS = 1_790_000_000_000  # 2026-09-21T...Z


class Exporter:
    """A running ``python -m logfs.exporter`` process."""

    def __init__(self, proc: subprocess.Popen, host: str, port: int, stderr_path: Path) -> None:
        self.proc = proc
        self.host = host
        self.port = port
        self.stderr_path = stderr_path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def request(self, method: str, path: str, headers: dict | None = None,
                timeout: float = 10.0) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, headers=headers or {})
            resp = conn.getresponse()
            body = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
        finally:
            conn.close()

    def get(self, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
        return self.request("GET", path, headers)

    def raw(self, data: bytes, timeout: float = 5.0, shut: bool = False) -> bytes:
        """Send *data* on a fresh connection; everything the server answers until it
        closes (or the timeout)."""
        with socket.create_connection((self.host, self.port), timeout=timeout) as s:
            s.sendall(data)
            if shut:
                s.shutdown(socket.SHUT_WR)
            out = b""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    chunk = s.recv(65536)
                except (socket.timeout, ConnectionResetError):
                    break
                if not chunk:
                    break
                out += chunk
            return out

    def metrics(self, headers: dict | None = None) -> dict[str, float]:
        status, _h, body = self.get("/metrics", headers)
        assert status == 200, body
        values = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def wait_metric(self, name: str, predicate, timeout: float = 5.0, headers: dict | None = None) -> float:
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.metrics(headers).get(name)
            if value is not None and predicate(value):
                return value
            time.sleep(0.05)
        raise AssertionError(f"metric {name} never satisfied the condition within {timeout}s; last {value}")

    def access_log(self) -> list[dict]:
        lines = []
        for line in self.stderr_path.read_text().splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines


def start_exporter(data: Path, tmp_path: Path, *args: str, prefix: list[str] | None = None,
                   name: str = "exporter") -> Exporter:
    stderr_path = tmp_path / f"{name}.stderr"
    cmd = (prefix or []) + [sys.executable, "-m", "logfs.exporter", str(data), "--port", "0", *args]
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    err = open(stderr_path, "wb")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env, cwd=str(ROOT),
                            start_new_session=True)
    err.close()
    line = b""
    deadline = time.monotonic() + 15
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line or LISTEN_RE.search(line.decode()):
                break
        m = LISTEN_RE.search(line.decode())
        if not m:
            raise AssertionError(f"exporter did not report its address; stdout {line!r}, "
                                 f"stderr {stderr_path.read_text()[-2000:]!r}")
    except BaseException:
        stop_process(proc)
        raise
    return Exporter(proc, m.group(1), int(m.group(2)), stderr_path)


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)
    if proc.stdout:
        proc.stdout.close()


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


def segment_bytes(data_dir: Path, topic: str, log: str) -> bytes:
    """The log's retained bytes, straight from the segment files on disk."""
    d = data_dir / topic / log
    return b"".join((d / n).read_bytes() for n in sorted(os.listdir(d)) if re.fullmatch(r"\d{20}\.log", n))


def decode_chunked(raw: bytes) -> tuple[bytes, bool]:
    """(body, complete) from a chunked body (without the head)."""
    out = bytearray()
    pos = 0
    while True:
        eol = raw.find(b"\r\n", pos)
        if eol < 0:
            return bytes(out), False
        size = int(raw[pos:eol].split(b";")[0], 16)
        if size == 0:
            return bytes(out), True
        if eol + 2 + size + 2 > len(raw):
            out += raw[eol + 2: eol + 2 + size]
            return bytes(out), False
        out += raw[eol + 2: eol + 2 + size]
        pos = eol + 2 + size + 2
