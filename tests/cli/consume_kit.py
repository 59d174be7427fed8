"""Helpers for the tests of `logfs consume` and `logfs groups`: the real command in
subprocesses (every process started is stopped at teardown), a reader of a
follower's stdout that waits with a deadline, and a store written in this process
(the writer holds DATA's lock, as a mount's daemon would)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

from fuse_helpers import LOGFS


def logfs(*args: str, check: bool = True, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    """Run `logfs ARGS` to the end; stdout as bytes, stderr as text."""
    r = subprocess.run([LOGFS, *args], capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, **kw)
    r.stderr = r.stderr.decode(errors="replace")
    if check:
        assert r.returncode == 0, f"logfs {' '.join(args)} exited {r.returncode}: {r.stderr}"
    return r


def lines_of(out: bytes) -> list[bytes]:
    return out.splitlines(keepends=True)


def as_json(out: bytes) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


class Follower:
    """A `logfs consume ... --follow` process whose stdout is read in a thread."""

    def __init__(self, *args: str, stderr=subprocess.PIPE, **kw) -> None:
        self.proc = subprocess.Popen([LOGFS, "consume", "--follow", *args], stdout=subprocess.PIPE,
                                     stderr=stderr, stdin=subprocess.DEVNULL, **kw)
        self._buf = bytearray()
        self._q: queue.Queue = queue.Queue()
        self._times: list[tuple[float, int]] = []  # (arrival, total length then)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        fd = self.proc.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            self._q.put((time.monotonic(), chunk))
            if not chunk:
                return

    def _pump(self, timeout: float | None) -> bool:
        try:
            t, chunk = self._q.get(timeout=timeout) if timeout is not None else self._q.get_nowait()
        except queue.Empty:
            return False
        if not chunk:
            self._q.put((t, chunk))  # the end stays the end
            raise EOFError
        self._buf += chunk
        self._times.append((t, len(self._buf)))
        return True

    @property
    def data(self) -> bytes:
        try:
            while self._pump(None):
                pass
        except EOFError:
            pass
        return bytes(self._buf)

    def wait_for(self, needle: bytes, timeout: float = 10) -> float:
        """Wait until stdout holds *needle*; the monotonic time it arrived."""
        deadline = time.monotonic() + timeout
        while True:
            at = self._buf.find(needle)
            if at >= 0:
                end = at + len(needle)
                return next(t for t, n in self._times if n >= end)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"consume did not print {needle!r} within {timeout}s; "
                                     f"got {bytes(self._buf[-300:])!r}")
            try:
                self._pump(left)
            except EOFError:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise AssertionError(f"consume ended (exit {self.proc.wait()}) before {needle!r}; "
                                     f"got {bytes(self._buf[-300:])!r}; stderr {err!r}") from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"consume did not stop within {timeout}s of signal {sig}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def stderr_text(self) -> str:
        return self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""


def segments_bytes(data: Path, topic: str, log: str) -> bytes:
    d = data / topic / log
    return b"".join((d / n).read_bytes() for n in sorted(os.listdir(d)) if n.endswith(".log"))
