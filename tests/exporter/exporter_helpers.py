"""Helpers for the exporter tests: a real exporter process (started, found on its
printed port, always stopped), an HTTP client for it, the segment files on disk,
chunked decoding."""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
LISTEN_RE = re.compile(r"listening on http://([0-9.]+):(\d+)")
START_MS = 1_790_000_000_000  # 2026-09-21T...Z
FOLLOW_DEADLINE_S = 1.0      # the issue: curl -N must show each line within 1 s


class Exporter:
    """A running ``logfs serve`` process."""

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
                   name: str = "exporter", env: dict[str, str] | None = None) -> Exporter:
    """``logfs serve DATA --port 0 ARGS``, with *env* added to this environment."""
    stderr_path = tmp_path / f"{name}.stderr"
    # through the real entry point, `logfs serve` (logfs.cli), as users run it
    cmd = (prefix or []) + [sys.executable, "-m", "logfs.cli", "serve", str(data), "--port", "0", *args]
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **(env or {}))
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


class StreamReader:
    """Reads a pipe or socket in a thread; wait_for(b) waits with a deadline until the
    accumulated output contains b, and says what came instead."""

    def __init__(self, read) -> None:
        self._read = read
        self._buf = bytearray()
        self._q: queue.Queue = queue.Queue()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while True:
            try:
                chunk = self._read(65536)
            except (OSError, ValueError):
                chunk = b""
            self._q.put(chunk)
            if not chunk:
                return

    @property
    def data(self) -> bytes:
        """Everything received so far (including what no wait_for has looked at)."""
        while True:
            try:
                self._buf += self._q.get_nowait()
            except queue.Empty:
                return bytes(self._buf)

    def finish(self, timeout: float = 5) -> bytes:
        """Wait for the end of the stream; everything received."""
        self._t.join(timeout)
        assert not self._t.is_alive(), "the stream did not end"
        return self.data

    def wait_for(self, needle: bytes, timeout: float) -> float:
        start = time.monotonic()
        deadline = start + timeout
        searched = 0  # the needle is not in _buf[:searched + len(needle) - 1]
        while self._buf.find(needle, searched) < 0:
            searched = max(0, len(self._buf) - len(needle) + 1)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"expected {needle!r} within {timeout}s; got {self.data[-300:]!r}")
            try:
                chunk = self._q.get(timeout=left)
            except queue.Empty:
                continue
            if not chunk:
                raise AssertionError(f"stream ended before {needle!r}; got {self.data[-300:]!r}")
            self._buf += chunk
        return time.monotonic() - start
