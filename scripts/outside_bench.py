#!/usr/bin/env python3
"""Measure logfs the way a user would, outside the benchmark harness.

Only the `logfs` command, bindfs, nginx, curl and /proc are used (no code of
logfs.bench): a mount made with `logfs mount`, logs written through it by ordinary
processes, `logfs serve` and nginx started from their command lines, curl as the
HTTP client, each server's user + system CPU read from /proc/PID/stat. The harness
(`logfs bench`) runs the same kinds of workload; this script exists so that its
figures can be checked by a run that shares none of its code (docs/performance.md,
"Measured outside the harness").

    scripts/outside_bench.py [--only w2,w5,w6] [--quick] [--rounds N] [--json FILE]

    w2  one process writing 100-byte lines with os.write (logfs, bindfs), best of 3;
        8 processes at once (W3)
    w5  a follower of `logfs serve` (curl -N, lines stamped as they leave curl's
        pipe) at 1, 10, 100, 1,000 lines/s and single lines after 1 s of quiet;
        latency from the producer's write() return
    w6  10 MiB, 512 MiB and 1 GiB downloads and 100 concurrent 10 MiB downloads with
        curl from nginx (sendfile on, tcp_nopush on) and `logfs serve`, in
        alternating order, 5 rounds (--rounds); MB/s and server CPU seconds per GiB,
        and logfs's ratios to nginx from the best round of each and from the medians

Needs root or FUSE rights, bindfs, nginx and curl (apt-get install bindfs
nginx-light curl). Everything it starts is stopped on the way out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MiB = 1 << 20
GiB = 1 << 30
LOGFS = shutil.which("logfs") or str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "logfs")
TICK = os.sysconf("SC_CLK_TCK")
LINE = b"x" * 99 + b"\n"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on {port}")


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total


def process_tree(pid: int) -> list[int]:
    out = [pid]
    try:
        out += [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    return out


class Stack:
    """Things to undo on the way out, last first."""

    def __init__(self) -> None:
        self.undo: list = []

    def __enter__(self) -> "Stack":
        return self

    def __exit__(self, *exc) -> None:
        for fn in reversed(self.undo):
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - clean up the rest anyway
                log(f"cleanup: {e}")


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def mount_logfs(stack: Stack, data: Path, mnt: Path) -> None:
    data.mkdir(parents=True, exist_ok=True)
    mnt.mkdir(parents=True, exist_ok=True)
    subprocess.run([LOGFS, "mount", str(data), str(mnt)], check=True)
    stack.undo.append(lambda: subprocess.run([LOGFS, "umount", str(mnt)], capture_output=True))


def mount_bindfs(stack: Stack, src: Path, mnt: Path) -> None:
    src.mkdir(parents=True, exist_ok=True)
    mnt.mkdir(parents=True, exist_ok=True)
    subprocess.run(["bindfs", str(src), str(mnt)], check=True)
    stack.undo.append(lambda: subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True))


# ------------------------------------------------------------------------ W2, W3

def one_writer(path: Path, n: int) -> float:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            os.write(fd, LINE)
        return n / (time.perf_counter() - t0)
    finally:
        os.close(fd)


def eight_writers(path: Path, n: int) -> float:
    code = ("import os, sys\nfd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)\n"
            "line = b'y' * 99 + b'\\n'\nsys.stdin.readline()\n"
            f"for _ in range({n}):\n    os.write(fd, line)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE) for _ in range(8)]
    time.sleep(0.5)
    t0 = time.perf_counter()
    for p in procs:
        p.stdin.write(b"go\n")
        p.stdin.flush()
    for p in procs:
        p.wait()
    return 8 * n / (time.perf_counter() - t0)


def w2(work: Path, quick: bool) -> dict:
    n, rounds = (10_000, 2) if quick else (40_000, 3)
    out: dict = {}
    with Stack() as stack:
        mount_logfs(stack, work / "data", work / "mnt")
        mount_bindfs(stack, work / "bsrc", work / "bmnt")
        (work / "mnt" / "w2").mkdir()
        targets = {"logfs": work / "mnt" / "w2", "bindfs": work / "bmnt"}
        for r in range(rounds):
            for name, d in (targets.items() if r % 2 == 0 else reversed(targets.items())):
                out.setdefault(f"{name}_W2_lines_s", []).append(round(one_writer(d / f"one{r}", n)))
                out.setdefault(f"{name}_W3_lines_s", []).append(round(eight_writers(d / f"eight{r}", n // 8)))
    for k in list(out):
        out[k.replace("_lines_s", "_best")] = max(out[k])
    out["W2_logfs_over_bindfs"] = round(out["logfs_W2_best"] / out["bindfs_W2_best"], 2)
    out["W3_logfs_over_bindfs"] = round(out["logfs_W3_best"] / out["bindfs_W3_best"], 2)
    return out


# --------------------------------------------------------------------------- W5

STAMPER = r"""
import json, sys, time
arrivals = {}
n = int(sys.argv[1])
print("ready", flush=True)
for line in sys.stdin.buffer:
    arrivals[int(line.split()[0])] = time.monotonic_ns()
    if len(arrivals) == n:
        break
print(json.dumps(arrivals), flush=True)
"""


def follow_once(port: int, path: Path, n: int, rate: float, quiet_s: float, first_seq: int) -> list[float]:
    """curl -N the log's follow stream into a stamper; produce n lines at rate."""
    curl = subprocess.Popen(["curl", "-sN", f"http://127.0.0.1:{port}/w5/l?follow=1&last=0"],
                            stdout=subprocess.PIPE)
    stamper = subprocess.Popen([sys.executable, "-c", STAMPER, str(n)], stdin=curl.stdout,
                               stdout=subprocess.PIPE, text=True)
    curl.stdout.close()
    try:
        assert stamper.stdout.readline().strip() == "ready"
        time.sleep(0.3 + quiet_s)  # curl connected, then quiet
        sent = {}
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            nxt = time.monotonic()
            for i in range(n):
                delay = nxt - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                seq = first_seq + i
                os.write(fd, b"%d %s\n" % (seq, b"z" * 80))
                sent[seq] = time.monotonic_ns()
                nxt += 1 / rate
        finally:
            os.close(fd)
        arrivals = json.loads(stamper.communicate(timeout=60)[0])
    finally:
        stop(curl)
        stop(stamper)
    return [max(0.0, (arrivals[str(s)] - t) / 1e6) for s, t in sent.items()]


def w5(work: Path, quick: bool) -> dict:
    plan = {1: 5, 10: 30, 100: 300, 1000: 2000} if quick else {1: 15, 10: 100, 100: 1000, 1000: 10_000}
    quiet = 3 if quick else 10
    out: dict = {}
    with Stack() as stack:
        mount_logfs(stack, work / "data5", work / "mnt5")
        (work / "mnt5" / "w5").mkdir()
        path = work / "mnt5" / "w5" / "l"
        path.write_bytes(b"")
        port = free_port()
        serve = subprocess.Popen([LOGFS, "serve", str(work / "data5"), "--port", str(port)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.undo.append(lambda: stop(serve))
        wait_port(port, serve, "logfs serve")
        seq = 0

        def q(lat: list[float], f: float) -> float:
            lat = sorted(lat)
            return round(lat[min(len(lat) - 1, int(len(lat) * f))], 3)

        for rate, n in plan.items():
            lat = follow_once(port, path, n, rate, 0.0, seq)
            seq += n
            out[f"rate_{rate}_p50_ms"], out[f"rate_{rate}_p99_ms"] = q(lat, 0.5), q(lat, 0.99)
            log(f"  w5 {rate}/s: p50 {out[f'rate_{rate}_p50_ms']} ms, p99 {out[f'rate_{rate}_p99_ms']} ms")
        lat = []
        for _ in range(quiet):
            lat += follow_once(port, path, 1, 1, 1.0, seq)
            seq += 1
        out["quiet_p50_ms"], out["quiet_max_ms"] = q(lat, 0.5), round(max(lat), 3)
        out["quiet_all_ms"] = [round(x, 3) for x in lat]
    return out


# --------------------------------------------------------------------------- W6

NGINX = """daemon off; master_process on; worker_processes auto; {user}
pid {d}/nginx.pid; error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{ sendfile on; tcp_nopush on; keepalive_timeout 65; access_log {d}/access.log;
  client_body_temp_path {d}/b; proxy_temp_path {d}/p; fastcgi_temp_path {d}/f;
  uwsgi_temp_path {d}/u; scgi_temp_path {d}/s; default_type application/octet-stream;
  server {{ listen 127.0.0.1:{port}; root {root}; }} }}
"""


def curl_many(url: str, count: int, parallel: bool) -> int:
    args = ["curl", "-s", "-w", "%{size_download}\\n"]
    if parallel:
        args += ["-Z", "--parallel-max", str(count), "--parallel-immediate"]
    for _ in range(count):
        args += ["-o", "/dev/null", url]
    r = subprocess.run(args, capture_output=True, text=True, check=True)
    return sum(int(x) for x in r.stdout.split())


def w6(work: Path, quick: bool, rounds: int | None = None) -> dict:
    sizes = [10, 256] if quick else [10, 512, 1024]
    # each measurement moves >= 1 GiB (quick: 200 MiB): the CPU figures are in 10 ms ticks
    volume = 200 if quick else 1024
    cases = [(f"{m}MiB", m, max(1, volume // m), False) for m in sizes] + [("100x10MiB", 10, 100, True)]
    # a server's CPU for the same download varies by up to 2x from one to the next
    # (where the kernel runs the loopback's receive work): the medians of several
    # alternating rounds say more than any one pairing (docs/performance.md, W6)
    rounds = rounds or (1 if quick else 5)
    plain = work / "www"
    (plain / "w6").mkdir(parents=True)
    block = LINE * 10_486
    for m in sizes:
        with open(plain / "w6" / f"f{m}", "wb") as f:
            left = m * MiB
            while left:
                left -= f.write(block[:left])
    runs: dict = {}
    with Stack() as stack:
        mount_logfs(stack, work / "data6", work / "mnt6")
        (work / "mnt6" / "w6").mkdir()
        for m in sizes:  # written through the mount, as a user's logs are
            subprocess.run(f"cat '{plain}/w6/f{m}' >> '{work}/mnt6/w6/f{m}'", shell=True, check=True)
        subprocess.run([LOGFS, "umount", str(work / "mnt6")], check=True)
        os.sync()
        ports = {"nginx": free_port(), "logfs": free_port()}
        nd = work / "nginx"
        nd.mkdir()
        (nd / "nginx.conf").write_text(NGINX.format(d=nd, port=ports["nginx"], root=plain,
                                                    user="user root;" if os.geteuid() == 0 else ""))
        nginx = subprocess.Popen(["nginx", "-c", str(nd / "nginx.conf"), "-p", str(nd)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.undo.append(lambda: stop(nginx, signal.SIGQUIT))
        serve = subprocess.Popen([LOGFS, "serve", str(work / "data6"), "--port", str(ports["logfs"])],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.undo.append(lambda: stop(serve))
        wait_port(ports["nginx"], nginx, "nginx")
        wait_port(ports["logfs"], serve, "logfs serve")
        pids = {"nginx": lambda: process_tree(nginx.pid), "logfs": lambda: [serve.pid]}
        for key, mib, count, parallel in cases:
            for name in ports:  # warm both caches
                curl_many(f"http://127.0.0.1:{ports[name]}/w6/f{mib}", 1, False)
            for r in range(rounds):
                for name in (["nginx", "logfs"] if r % 2 == 0 else ["logfs", "nginx"]):
                    url = f"http://127.0.0.1:{ports[name]}/w6/f{mib}"
                    c0, t0 = cpu_ticks(pids[name]()), time.perf_counter()
                    got = curl_many(url, count, parallel)
                    dt, cpu = time.perf_counter() - t0, (cpu_ticks(pids[name]()) - c0) / TICK
                    assert got == count * mib * MiB, (name, key, got)
                    runs.setdefault(f"{name}_{key}", []).append((round(got / 1e6 / dt), round(cpu / (got / GiB), 3)))
            log(f"  w6 {key}: " + "; ".join(f"{n}: {runs[f'{n}_{key}']}" for n in ports))
    out: dict = {"runs_MB_s_and_cpu_s_per_GiB": runs}
    for key, *_ in cases:
        best = {n: (max(r[0] for r in runs[f"{n}_{key}"]), min(r[1] for r in runs[f"{n}_{key}"])) for n in ports}
        out[f"{key}_throughput_logfs_over_nginx"] = round(best["logfs"][0] / best["nginx"][0], 2)
        out[f"{key}_cpu_logfs_over_nginx"] = round(best["logfs"][1] / max(best["nginx"][1], 1e-9), 2)
        med = {n: (statistics.median(r[0] for r in runs[f"{n}_{key}"]),
                   statistics.median(r[1] for r in runs[f"{n}_{key}"])) for n in ports}
        out[f"{key}_median_throughput_logfs_over_nginx"] = round(med["logfs"][0] / med["nginx"][0], 2)
        out[f"{key}_median_cpu_logfs_over_nginx"] = round(med["logfs"][1] / max(med["nginx"][1], 1e-9), 2)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="w2,w5,w6", help="comma-separated: w2, w5, w6")
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    p.add_argument("--rounds", type=int, default=None, help="W6's alternating rounds (default 5; --quick 1)")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--dir", type=Path, default=None, help="where to work (default: a temporary directory)")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = {}
    with tempfile.TemporaryDirectory(prefix="logfs-outside-", dir=args.dir) as tmp:
        for name, fn in (("w2", w2), ("w5", w5), ("w6", w6)):
            if name in args.only.split(","):
                log(f"{name} ...")
                work = Path(tmp) / name
                work.mkdir()
                results[name] = fn(work, args.quick, args.rounds) if name == "w6" else fn(work, args.quick)
    text = json.dumps(results, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
