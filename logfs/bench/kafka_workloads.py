"""W12, W13 and W14: Kafka clients against logfs and Tansu (issue 13).

One client, confluent-kafka (librdkafka), for every broker: ``logfs kafka DATA`` (the
listener in a process of its own), a ``logfs mount -o kafka=`` (the listener in the
mount daemon) and Tansu (a Kafka-compatible broker in Rust, storage in memory). Records
are 99-byte values (a 100-byte line in a logfs log, its newline included), one
partition, no keys, no compression. Each client runs in a worker process of its own
(``python -m logfs.bench.kafka_workloads KIND ...``, printing one JSON line), so that
the harness's interpreter skews nothing; the broker's CPU (user + system of its
processes and threads, from /proc) is read just before the worker's "go" and just after
its result.

- W12 produce: N records to a fresh topic, ``linger.ms=5, batch.size=1000000,
  acks=1`` (:data:`PRODUCE_CONFIG`); timed from the first ``produce()`` to ``flush()``'s
  return. Records/s and the broker's CPU seconds per million records; the best of the
  rounds, the brokers in alternating order.
- W13 consume: a topic of N records (produced through Kafka for every broker, so each
  log is what a producer makes), read from offset 0 with ``assign()`` (no group) and
  ``consume(num_messages=1000)`` until all arrived, consumer defaults otherwise
  (``fetch.wait.max.ms=500``, ``fetch.min.bytes=1``, ``max.partition.fetch.bytes``
  1 MiB); timed from the first ``consume()``. Best of the rounds, alternating.
- W14 latency: a producer process sends N records at a fixed rate, ``linger.ms=0``,
  each value carrying its send time (``time.monotonic_ns()``, one clock for every
  process, read just before ``produce()``); a consumer in another process long-polls the
  partition (defaults) and stamps each arrival. For logfs also with the line appended by
  ``os.write`` through the mount (``echo >>``) and consumed over Kafka: the mount
  writer waking the long-poll Fetch. p50, p99, max.

Workers::

    produce BOOTSTRAP TOPIC N [--wait] [--config K=V ...]   (creates TOPIC)
    consume BOOTSTRAP TOPIC N [--wait]
    latency BOOTSTRAP TOPIC N RATE [--write PATH]            (starts latency-consumer)
    latency-consumer BOOTSTRAP TOPIC N

With ``--wait`` a worker connects, prints ``ready`` and starts at a line on stdin.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import subprocess
import sys
import time
from typing import Callable

from logfs.bench.fs_workloads import quantile
from logfs.bench.systems import (KafkaBroker, LogfsKafka, LogfsKafkaMount, SystemUnavailable, Tansu,
                                 cpu_between, cpu_sample)

VALUE_BYTES = 99            # + the newline logfs stores: 100-byte lines
PRODUCE_CONFIG = {"linger.ms": 5, "batch.size": 1_000_000, "acks": 1}
LATENCY_PRODUCER_CONFIG = {"linger.ms": 0, "acks": 1}
CONSUME_BATCH = 1000
SYSTEMS = [("logfs", "logfs kafka"), ("logfs_mount", "logfs mount -o kafka"), ("tansu", "Tansu")]
# results["unavailable"] keys (the filesystems' "logfs" is another system)
UNAVAILABLE_KEYS = {"logfs": "logfs_kafka", "logfs_mount": "logfs_mount_kafka", "tansu": "tansu"}


def value_of(seq: int, tag: bytes = b"k") -> bytes:
    head = b"%s %010d " % (tag, seq)
    return head + b"x" * (VALUE_BYTES - len(head))


# ------------------------------------------------------------------ workers

def _ensure_topic(bootstrap: str, topic: str) -> None:
    """CreateTopics (1 partition, replication 1), an existing topic being fine; then
    until the topic's partition 0 has a leader in Metadata."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(topic, 1, 1)], operation_timeout=10).values():
        try:
            fut.result(15)
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise
    deadline = time.monotonic() + 15
    while True:
        md = admin.list_topics(topic, timeout=10).topics.get(topic)
        if md is not None and md.error is None and 0 in md.partitions and md.partitions[0].leader >= 0:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"topic {topic} has no leader: {md and md.error}")
        time.sleep(0.05)


def _wait_for_go(wait: bool) -> None:
    if wait:
        print("ready", flush=True)
        sys.stdin.readline()


def end_offset(bootstrap: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "logfs-bench-watermarks",
                  "enable.auto.commit": False})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    finally:
        c.close()


def produce_worker(bootstrap: str, topic: str, n: int, wait: bool, extra: dict) -> dict:
    """Produce n records; checked by the offsets of the first and the last (their
    delivery reports): n consecutive offsets, none lost (ListOffsets is not used:
    Tansu 0.6 answers the last batch's base offset + 1 for "latest")."""
    from confluent_kafka import Producer
    _ensure_topic(bootstrap, topic)
    reports: dict[str, tuple] = {}

    def report(key: str):
        return lambda err, msg: reports.__setitem__(key, (err, None if err else msg.offset()))

    config = dict(PRODUCE_CONFIG, **extra)
    p = Producer({"bootstrap.servers": bootstrap, **config})
    p.list_topics(topic, timeout=10)  # connected, metadata known
    values = [value_of(i) for i in range(min(n, 10_000))]
    k = len(values)
    produce, poll = p.produce, p.poll
    _wait_for_go(wait)
    t0 = time.perf_counter()
    produce(topic, values[0], partition=0, on_delivery=report("first"))
    for i in range(1, n - 1):
        v = values[i % k]
        while True:
            try:
                produce(topic, v, partition=0)
                break
            except BufferError:  # the client's queue is full: let it send
                poll(0.001)
        if not i % 10_000:
            poll(0)
    if n > 1:
        while True:
            try:
                produce(topic, values[(n - 1) % k], partition=0, on_delivery=report("last"))
                break
            except BufferError:
                poll(0.001)
    left = p.flush(120)
    dt = time.perf_counter() - t0
    first, last = reports.get("first"), reports.get("last", reports.get("first"))
    if left or first is None or first[0] or last is None or last[0]:
        raise SystemExit(f"produce: {left} records not delivered; first {first}, last {last}")
    if last[1] - first[1] != n - 1:
        raise SystemExit(f"produce: offsets {first[1]}..{last[1]} for {n} records")
    return {"records": n, "seconds": round(dt, 4), "records_s": round(n / dt), "config": config}


def consume_worker(bootstrap: str, topic: str, n: int, wait: bool) -> dict:
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "logfs-bench-unused",
                  "enable.auto.commit": False, "enable.partition.eof": False})
    try:
        c.list_topics(topic, timeout=10)  # connected
        c.assign([TopicPartition(topic, 0, 0)])
        consume = c.consume
        got = nbytes = 0
        _wait_for_go(wait)
        t0 = time.perf_counter()
        while got < n:
            msgs = consume(num_messages=min(CONSUME_BATCH, n - got), timeout=5.0)
            if not msgs:
                if time.perf_counter() - t0 > 600:
                    raise SystemExit(f"consume: {got} of {n} records after 600 s")
                continue
            last = msgs[-1]
            if last.error() is not None or last.offset() != got + len(msgs) - 1:
                bad = next((m.error() for m in msgs if m.error() is not None), None)
                raise SystemExit(f"consume: at record {got}: error {bad}, offset {last.offset()} "
                                 f"after {len(msgs)} records")
            nbytes += len(last.value()) * len(msgs)
            got += len(msgs)
        dt = time.perf_counter() - t0
    finally:
        c.close()
    return {"records": got, "seconds": round(dt, 4), "records_s": round(got / dt),
            "MB_s": round((nbytes + got) / 1e6 / dt, 1)}


def latency_consumer(bootstrap: str, topic: str, n: int) -> dict:
    """Long-poll from the end; ``ready`` at the first marker; the latency of each of the
    next n timed records (arrival - the send time in its value), in ms."""
    from confluent_kafka import OFFSET_END, Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "logfs-bench-unused",
                  "enable.auto.commit": False, "enable.partition.eof": False})
    lat: list[float] = []
    ready = False
    parent = os.getppid()
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_END)])
        deadline = time.monotonic() + 60
        while len(lat) < n:
            m = c.poll(0.5)
            now = time.monotonic_ns()
            if m is None:
                if os.getppid() != parent:
                    raise SystemExit("latency consumer: the producer is gone")
                if time.monotonic() > deadline:
                    raise SystemExit(f"latency consumer: {len(lat)} of {n} records after 60 s")
                continue
            if m.error() is not None:
                raise SystemExit(f"latency consumer: {m.error()}")
            v = m.value()
            if v.startswith(b"M"):
                if not ready:
                    ready = True
                    print("ready", flush=True)
            elif v.startswith(b"L"):
                lat.append((now - int(v[13:32])) / 1e6)
    finally:
        c.close()
    return {"latencies_ms": lat}


def _timed_value(seq: int, sent_ns: int) -> bytes:
    head = b"L %010d %019d " % (seq, sent_ns)
    return head + b"x" * (VALUE_BYTES - len(head))


def latency_worker(bootstrap: str, topic: str, n: int, rate: float, write_path: str | None) -> dict:
    """The producer (Kafka, or os.write of lines through a mount) of W14; starts the
    consumer process, sends markers until it is in place, then n timed records."""
    _ensure_topic(bootstrap, topic)
    if write_path is None:
        from confluent_kafka import Producer
        p = Producer({"bootstrap.servers": bootstrap, **LATENCY_PRODUCER_CONFIG})
        p.list_topics(topic, timeout=10)

        def send(value: bytes) -> None:
            p.produce(topic, value, partition=0)
            p.poll(0)
        done = lambda: p.flush(30)  # noqa: E731
    else:
        fd = os.open(write_path, os.O_WRONLY | os.O_APPEND)

        def send(value: bytes) -> None:
            os.write(fd, value + b"\n")
        done = lambda: os.close(fd)  # noqa: E731
    consumer = subprocess.Popen([sys.executable, "-m", "logfs.bench.kafka_workloads", "latency-consumer",
                                 bootstrap, topic, str(n)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline, marker = time.monotonic() + 30, 0
        while True:  # markers every 20 ms until the consumer has seen one
            send(b"M %010d " % marker + b"x" * (VALUE_BYTES - 13))
            marker += 1
            if select.select([consumer.stdout], [], [], 0.02)[0]:
                line = consumer.stdout.readline()
                if line.strip() == b"ready":
                    break
                raise SystemExit(f"latency consumer: {line!r} {consumer.stderr.read()[-500:]!r}")
            if time.monotonic() > deadline:
                raise SystemExit("latency consumer saw none of the markers in 30 s")
        time.sleep(0.2)  # the markers in flight arrive
        interval_ns = int(1e9 / rate)
        t_next = time.monotonic_ns()
        for i in range(n):
            while (now := time.monotonic_ns()) < t_next:
                if t_next - now > 200_000:
                    time.sleep((t_next - now - 100_000) / 1e9)
            send(_timed_value(i, time.monotonic_ns()))
            t_next += interval_ns
        out, err = consumer.communicate(timeout=60)
        done()
        if consumer.returncode != 0:
            raise SystemExit(f"latency consumer failed: {err[-500:]!r}")
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()
    lat = sorted(json.loads(out)["latencies_ms"])
    if len(lat) != n:
        raise SystemExit(f"latency consumer saw {len(lat)} of {n} records")
    return {"records": n, "rate": rate, "p50_ms": round(quantile(lat, 0.5), 3),
            "p99_ms": round(quantile(lat, 0.99), 3), "max_ms": round(lat[-1], 3),
            "producer": "os.write through the mount" if write_path else LATENCY_PRODUCER_CONFIG}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m logfs.bench.kafka_workloads", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="kind", required=True)
    for kind in ("produce", "consume", "latency", "latency-consumer"):
        s = sub.add_parser(kind)
        s.add_argument("bootstrap")
        s.add_argument("topic")
        s.add_argument("n", type=int)
        if kind == "latency":
            s.add_argument("rate", type=float)
            s.add_argument("--write", metavar="PATH", help="append lines to PATH (in a mount) instead of producing")
        if kind in ("produce", "consume"):
            s.add_argument("--wait", action="store_true")
        if kind == "produce":
            s.add_argument("--config", action="append", default=[], metavar="K=V")
    a = p.parse_args(argv)
    if a.kind == "produce":
        extra = dict(kv.split("=", 1) for kv in a.config)
        res = produce_worker(a.bootstrap, a.topic, a.n, a.wait, extra)
    elif a.kind == "consume":
        res = consume_worker(a.bootstrap, a.topic, a.n, a.wait)
    elif a.kind == "latency":
        res = latency_worker(a.bootstrap, a.topic, a.n, a.rate, a.write)
    else:
        res = latency_consumer(a.bootstrap, a.topic, a.n)
    print(json.dumps(res), flush=True)
    return 0


# ------------------------------------------------------------------ harness side

def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "logfs.bench.kafka_workloads", *args]


def _run_worker(args: list[str], timeout: float = 900) -> dict:
    r = subprocess.run(_cmd(*args), capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"{args[0]} worker exited {r.returncode}: {r.stderr.strip()[-500:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _timed_worker(broker: KafkaBroker, args: list[str], timeout: float = 900) -> tuple[dict, float]:
    """Run a ``--wait`` worker: its result and the broker's CPU seconds from "go" to
    the result."""
    w = subprocess.Popen(_cmd(*args, "--wait"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        line = w.stdout.readline().strip()
        if line != "ready":
            w.kill()
            raise AssertionError(f"{args[0]} worker did not start: {line!r} {w.stderr.read()[-500:]}")
        c0 = cpu_sample(broker.pids)
        w.stdin.write("go\n")
        w.stdin.flush()
        line = w.stdout.readline()
        cpu = cpu_between(c0, cpu_sample(broker.pids))
        _out, err = w.communicate(timeout=timeout)
        if w.returncode != 0 or not line.strip():
            raise AssertionError(f"{args[0]} worker exited {w.returncode}: {err.strip()[-500:]}")
    finally:
        if w.poll() is None:
            w.kill()
            w.wait()
    return json.loads(line), cpu


def _orders(brokers: list[KafkaBroker], rounds: int):
    for r in range(rounds):
        order = brokers[r % len(brokers):] + brokers[:r % len(brokers)]
        yield r, (order[::-1] if r % 2 else order)


def _best(runs: list[tuple[dict, float]], records: int) -> dict:
    best = max(runs, key=lambda x: x[0]["records_s"])[0]
    cpus = [round(cpu / (records / 1e6), 3) for _res, cpu in runs]
    out = {k: v for k, v in best.items() if k != "config"}
    out.update({"cpu_s_per_M": min(cpus), "runs_records_s": [res["records_s"] for res, _c in runs],
                "runs_cpu_s_per_M": cpus})
    if "config" in best:
        out["config"] = ", ".join(f"{k}={v}" for k, v in best["config"].items())
    return out


def _rounds(brokers: list[KafkaBroker], rounds: int, args_of: Callable[[KafkaBroker, int], list[str]],
            records: int) -> dict[str, dict]:
    """Timed workers on every broker, in rounds, the brokers in alternating order; a
    broker whose worker fails is reported with its error and left out of later rounds."""
    runs: dict[str, list] = {b.name: [] for b in brokers}
    failed: dict[str, dict] = {}
    for r, order in _orders(brokers, max(1, rounds)):
        for b in order:
            if b.name in failed:
                continue
            try:
                runs[b.name].append(_timed_worker(b, args_of(b, r)))
            except Exception as exc:  # noqa: BLE001 - reported, and the others go on
                failed[b.name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    return {name: failed.get(name) or _best(rs, records) for name, rs in runs.items()}


def w12_produce(brokers: list[KafkaBroker], records: int, rounds: int) -> dict[str, dict]:
    """Each round a fresh topic per broker."""
    return _rounds(brokers, rounds, lambda b, r: ["produce", b.bootstrap, f"w12-r{r}", str(records)], records)


def w13_build(broker: KafkaBroker, records: int) -> None:
    """The W13 topic: *records* records through Kafka (bigger batches: only built)."""
    _run_worker(["produce", broker.bootstrap, "w13", str(records), "--config", "linger.ms=50"])


def w13_consume(brokers: list[KafkaBroker], records: int, rounds: int) -> dict[str, dict]:
    return _rounds(brokers, rounds, lambda b, r: ["consume", b.bootstrap, "w13", str(records)], records)


def w14_latency(broker: KafkaBroker, records: int, rate: float, write_path: str | None = None,
                topic: str = "w14") -> dict:
    args = ["latency", broker.bootstrap, topic, str(records), str(rate)]
    if write_path is not None:
        args += ["--write", write_path]
    return _run_worker(args, timeout=records / rate + 120)


def run_kafka(results: dict, workdir, sizes: dict, attempt: Callable, log: Callable[[str], None],
              profiler: Callable | None = None) -> None:
    """Start the brokers (any that cannot start is reported unavailable, as are all
    without confluent-kafka), run W12-W14 on them, stop them. *attempt* is the
    harness's ``_attempt(results, workload, system, fn, *args)``; *profiler(pids,
    name)*, a context manager, profiles ``logfs kafka`` during W12 and W13."""
    import importlib.util
    unavailable = results.setdefault("unavailable", {})
    if importlib.util.find_spec("confluent_kafka") is None:
        for name, _label in SYSTEMS:
            unavailable[UNAVAILABLE_KEYS[name]] = "confluent-kafka is not installed (pip install confluent-kafka)"
        log("bench: confluent-kafka is not installed: W12-W14 not measured")
        return
    with contextlib.ExitStack() as stack:
        brokers: list = []
        for cls in (LogfsKafka, LogfsKafkaMount, Tansu):
            b = cls(workdir)
            try:
                brokers.append(stack.enter_context(b))
            except SystemUnavailable as exc:
                unavailable[UNAVAILABLE_KEYS[b.name]] = str(exc)
                log(f"bench: {b.label} not measured: {exc}")
        if not brokers:
            return
        tansu = next((b for b in brokers if b.name == "tansu"), None)
        if tansu is not None:
            results["tansu_version"] = tansu.version()
        log(f"W12: produce {sizes['kafka_produce']:,} records of 100 B ({VALUE_BYTES} B values), confluent-kafka "
            f"{', '.join(f'{k}={v}' for k, v in PRODUCE_CONFIG.items())}, {sizes['reps']} round(s), "
            f"to {', '.join(b.label for b in brokers)}")
        lfs_pids = next((b.pids for b in brokers if b.name == "logfs"), [])
        prof = (lambda name: profiler(lfs_pids, name)) if profiler and lfs_pids else \
            (lambda name: contextlib.nullcontext())
        with prof("w12"):
            _many(results, "W12", brokers, attempt, log, w12_produce, brokers, sizes["kafka_produce"], sizes["reps"])
        log(f"W13: consume {sizes['kafka_consume']:,} records from offset 0 (assign, consume(num_messages=1000)); "
            "building each topic through Kafka first")
        built = []
        for b in brokers:
            try:
                w13_build(b, sizes["kafka_consume"])
                built.append(b)
            except Exception as exc:  # noqa: BLE001
                results.setdefault("W13", {})[b.name] = {"error": f"building the topic: {exc}"[:500]}
                log(f"  W13 {b.name}: FAILED to build: {exc}")
        if built:
            with prof("w13"):
                _many(results, "W13", built, attempt, log, w13_consume, built, sizes["kafka_consume"], sizes["reps"])
        n, rate = sizes["kafka_latency"], sizes["kafka_rate"]
        log(f"W14: produce->consume latency, {n:,} records at {rate:g}/s, linger.ms=0, a long-poll consumer")
        by_name = {b.name: b for b in brokers}
        if "logfs_mount" in by_name:
            m = by_name["logfs_mount"]
            attempt(results, "W14", "logfs", w14_latency, m, n, rate, None, "w14")
            attempt(results, "W14", "logfs_write", _w14_write, m, n, rate)
        if tansu is not None:
            attempt(results, "W14", "tansu", w14_latency, tansu, n, rate, None, "w14")


def _w14_write(mount: LogfsKafkaMount, n: int, rate: float) -> dict:
    topic = "w14-write"  # the worker creates it over Kafka: its partition 0 is the log w14-write/0
    return w14_latency(mount, n, rate, os.path.join(mount.root, topic, "0"), topic)


def _many(results: dict, workload: str, brokers: list, attempt: Callable, log: Callable[[str], None],
          fn: Callable, *args) -> None:
    """fn(*args) -> {system: figures} for several brokers at once, reported like _attempt."""
    try:
        per = fn(*args)
    except Exception as exc:  # noqa: BLE001 - a failed measurement is reported, not fatal
        for b in brokers:
            results.setdefault(workload, {})[b.name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        log(f"  {workload} FAILED: {exc}")
        return
    for name, res in per.items():
        results.setdefault(workload, {})[name] = res
        if "error" in res:
            log(f"  {workload} {name}: FAILED: {res['error']}")
            continue
        shown = ", ".join(f"{k}={v}" for k, v in res.items()
                          if isinstance(v, (int, float)) and not isinstance(v, bool))
        log(f"  {workload} {name:<12} {shown}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
