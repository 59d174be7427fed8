"""`python -m logfs.exporter`: what it prints, how it refuses bad arguments, how it
stops."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

from exporter_helpers import ROOT, start_exporter


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "logfs.exporter", *args], capture_output=True,
                          text=True, timeout=20, cwd=str(ROOT))


def test_refusals_name_the_problem(tmp_path, data_dir):
    r = _run(str(tmp_path / "missing"), "--port", "0")
    assert r.returncode == 2 and "does not exist" in r.stderr
    (tmp_path / "empty").write_text("\n")
    r = _run(str(data_dir), "--port", "0", "--token-file", str(tmp_path / "empty"))
    assert r.returncode == 2 and "empty" in r.stderr
    r = _run(str(data_dir), "--port", "0", "--max-connections", "0")
    assert r.returncode == 2 and "--max-connections" in r.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        r = _run(str(data_dir), "--port", str(busy.getsockname()[1]))
    assert r.returncode == 1 and "cannot listen" in r.stderr


def test_prints_its_address_and_stops_cleanly_on_sigterm(data_dir, tmp_path, store):
    exp = start_exporter(data_dir, tmp_path)
    try:
        assert exp.get("/")[0] == 200
        t0 = time.monotonic()
        exp.proc.send_signal(signal.SIGTERM)
        assert exp.proc.wait(timeout=5) == 0
        assert time.monotonic() - t0 < 2
    finally:
        if exp.proc.poll() is None:
            exp.proc.kill()
            exp.proc.wait()
        exp.proc.stdout.close()
