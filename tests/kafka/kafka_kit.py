"""Helpers for the tests of logfs's Kafka listener (docs/kafka.md): the real `logfs
kafka` process and real mounts with ``-o kafka=``, and produce/consume helpers for the
three real clients (kcat, confluent-kafka, kafka-python). Every call has a timeout: a
hung client fails its test, it never hangs the run.

Nothing here is mocked: the listener is a subprocess, mounts are real FUSE mounts made
by `logfs mount` (tests/fuse/fuse_helpers.py), and the clients speak TCP to them.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from fuse_helpers import LOGFS, Mount, mounted, new_mount, run, wait_for  # noqa: F401

KCAT = shutil.which("kcat") or shutil.which("kafkacat") or "/usr/bin/kcat"
HOST = "127.0.0.1"

# client-side bounds: small enough that a broken listener fails a test in seconds
CALL_TIMEOUT = 15.0
DELIVERY_MS = 5000  # a producer gives a record up after this long (message.timeout.ms)


class Timeout(AssertionError):
    """A client did not finish within its bound."""


# --------------------------------------------------------------------- processes


def free_port() -> int:
    """A port nobody listens on right now (bind port 0, read it, close)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def bad_log_lines(text: str) -> list[str]:
    """Lines of a daemon's or listener's log that say something went wrong inside it."""
    return [line for line in text.splitlines()
            if " ERROR " in line or " CRITICAL " in line or "Traceback" in line]


class Listener:
    """One `logfs kafka DATA --listen 127.0.0.1:0 [ARGS]` process."""

    def __init__(self, data: Path, *args: str, log: Path | None = None) -> None:
        self.data = Path(data)
        self.args = list(args)
        self.log = Path(log) if log else self.data.parent / f"{self.data.name}-kafka.log"
        self.proc: subprocess.Popen | None = None
        self.host, self.port = HOST, 0
        self.logs: list[str] = []  # the stderr of every earlier run of this listener

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 20.0, listen: str = f"{HOST}:0") -> "Listener":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.data.mkdir(parents=True, exist_ok=True)
        if self.log.exists():
            self.logs.append(self.log.read_text(errors="replace"))
        err = open(self.log, "w")
        try:
            self.proc = subprocess.Popen([LOGFS, "kafka", str(self.data), "--listen", listen,
                                          *self.args], stdout=subprocess.PIPE, stderr=err,
                                         stdin=subprocess.DEVNULL)
        finally:
            err.close()
        line = self._read_line(timeout)
        prefix = "logfs kafka listening on "
        if not line.startswith(prefix):
            self.stop()
            raise AssertionError(f"logfs kafka did not start: stdout {line!r}, stderr:\n"
                                 f"{self.stderr()[-3000:]}")
        self.host, _, port = line[len(prefix):].strip().rpartition(":")
        self.port = int(port)
        return self

    def _read_line(self, timeout: float) -> str:
        assert self.proc and self.proc.stdout
        fd = self.proc.stdout.fileno()
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
        return buf.decode(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 5 s; the exit status (None if never started)."""
        p = self.proc
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        if p.stdout:
            p.stdout.close()
        return p.returncode

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stderr(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def problems(self) -> list[str]:
        return bad_log_lines("\n".join(self.logs + [self.stderr()]))


def mount_kafka(m: Mount, tries: int = 5) -> str:
    """Mount *m* with ``-o kafka=127.0.0.1:PORT`` on a free port (another port when
    that one was taken in between: EADDRINUSE); sets and returns ``m.bootstrap``.
    Options of *m* beginning with ``kafka=`` are replaced."""
    last = None
    for _ in range(tries):
        port = free_port()
        m.options = [o for o in m.options if not o.startswith("kafka=")] + [f"kafka={HOST}:{port}"]
        r = m.mount(check=False)
        if r.returncode == 0:
            m.bootstrap = f"{HOST}:{port}"
            return m.bootstrap
        last = r
        log = m.data / ".logfs" / "daemon.log"
        text = r.stdout + r.stderr + (log.read_text(errors="replace") if log.exists() else "")
        if "Address already in use" not in text:
            break
        if log.exists():  # the lost race is not this test's failure
            log.rename(log.with_name(f"daemon.log.eaddrinuse-{port}"))
    raise AssertionError(f"logfs mount -o kafka= failed: {last.stdout}{last.stderr}")


def remount(m: Mount) -> str:
    """umount + mount again (a restart of the daemon and of its Kafka listener)."""
    m.umount()
    return mount_kafka(m)


def sh(cmd: str, timeout: float = 20) -> subprocess.CompletedProcess:
    """A shell command (echo >>, cat, stat, wc ...) that must succeed."""
    return run(cmd, timeout=timeout)


def q(path: str | Path) -> str:
    import shlex
    return shlex.quote(str(path))


def cat_lines(path: str | Path) -> list[str]:
    return sh(f"cat {q(path)}").stdout.splitlines()


def stat_size(path: str | Path) -> int:
    return int(sh(f"stat -c %s {q(path)}").stdout)


def echo_append(path: str | Path, *lines: str) -> None:
    """Each line with its own `echo LINE >> PATH` (one write, O_APPEND)."""
    sh("; ".join(f"echo {q(line)} >> {q(path)}" for line in lines))


def logfs_cli(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    return run([LOGFS, *args], check=check, timeout=timeout)


# --------------------------------------------------------------------- records


@dataclass(frozen=True)
class Rec:
    partition: int
    offset: int
    value: str | None
    timestamp: int = -1
    key: bytes | None = None
    headers: tuple = ()


def offsets_values(recs: list[Rec]) -> list[tuple[int, str | None]]:
    return [(r.offset, r.value) for r in recs]


def _text(b: bytes | None) -> str | None:
    return None if b is None else b.decode()


# --------------------------------------------------------------------- kcat


def kcat(bootstrap: str, *args: str, input: str | None = None, timeout: float = CALL_TIMEOUT,
         check: bool = True) -> subprocess.CompletedProcess:
    try:
        r = subprocess.run([KCAT, "-b", bootstrap, "-X", "socket.timeout.ms=5000", *args],
                           input=input, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise Timeout(f"kcat {' '.join(args)} ran over {timeout}s: {exc.stderr!r}") from None
    if check and r.returncode != 0:
        raise AssertionError(f"kcat {' '.join(args)} exited {r.returncode}: {r.stderr[-2000:]}")
    return r


def kcat_topics(bootstrap: str) -> dict[str, int]:
    """Topic -> partition count, from `kcat -L -J`."""
    meta = json.loads(kcat(bootstrap, "-L", "-J").stdout)
    return {t["topic"]: len(t["partitions"]) for t in meta["topics"]}


def kcat_produce(bootstrap: str, topic: str, values: list[str], partition: int | None = None,
                 *extra: str) -> subprocess.CompletedProcess:
    """Produce each value (one line of stdin each); fails on any delivery error."""
    args = ["-P", "-t", topic, "-X", f"message.timeout.ms={DELIVERY_MS}"]
    args += ["-p", str(partition)] if partition is not None else []
    r = kcat(bootstrap, *args, *extra, input="".join(v + "\n" for v in values))
    assert "Delivery failed" not in r.stderr and "ERROR" not in r.stderr, r.stderr
    return r


def _kcat_recs(out: str) -> list[Rec]:
    recs = []
    for line in out.splitlines():
        if line.startswith("{"):
            m = json.loads(line)
            recs.append(Rec(m["partition"], m["offset"], m["payload"], m.get("ts", -1),
                            m.get("key")))
    return recs


def kcat_consume(bootstrap: str, topic: str, partition: int, offset: str = "beginning",
                 count: int | None = None, *extra: str, timeout: float = CALL_TIMEOUT) -> list[Rec]:
    """`kcat -C -e -J` from *offset* (beginning, end, N, -N, s@MS): the records up to
    the end (or *count* of them)."""
    args = ["-C", "-t", topic, "-p", str(partition), "-o", offset, "-e", "-J"]
    if count is not None:
        args += ["-c", str(count)]
    return _kcat_recs(kcat(bootstrap, *args, *extra, timeout=timeout).stdout)


class KcatTail:
    """`kcat -C -o end -c N` in the background: started, :meth:`wait_ready` until its
    first Fetch (the end offset is resolved), then :meth:`result`."""

    def __init__(self, bootstrap: str, topic: str, partition: int, count: int) -> None:
        self.proc = subprocess.Popen(
            [KCAT, "-b", bootstrap, "-C", "-t", topic, "-p", str(partition), "-o", "end",
             "-c", str(count), "-J", "-d", "fetch"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.err = b""
        self.topic, self.partition = topic, partition

    def wait_ready(self, timeout: float = CALL_TIMEOUT) -> int:
        """Until kcat sends its first Fetch; the offset it fetches from."""
        needle = f"Fetch topic {self.topic} [{self.partition}] at offset ".encode()
        fd = self.proc.stderr.fileno()
        deadline = time.monotonic() + timeout
        while needle not in self.err:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.kill()
                raise Timeout(f"kcat -o end sent no Fetch in {timeout}s: {self.err[-2000:]!r}")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"kcat exited: {self.err[-2000:]!r}")
            self.err += chunk
        tail = self.err[self.err.index(needle) + len(needle):]
        return int(tail.split()[0])

    def result(self, timeout: float = CALL_TIMEOUT) -> list[Rec]:
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise Timeout(f"kcat -o end did not get its records in {timeout}s") from None
        return _kcat_recs(out.decode())

    def _drain_stderr(self) -> None:
        try:
            while os.read(self.proc.stderr.fileno(), 65536):
                pass
        except (OSError, ValueError):
            pass

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


# --------------------------------------------------------------------- confluent-kafka


def ck_conf(bootstrap: str, **conf) -> dict:
    base = {"bootstrap.servers": bootstrap, "socket.timeout.ms": 5000,
            "log.connection.close": False, "topic.metadata.refresh.interval.ms": 1000}
    base.update({k.replace("_", "."): v for k, v in conf.items()})
    return base


def ck_producer(bootstrap: str, **conf):
    from confluent_kafka import Producer
    return Producer(ck_conf(bootstrap, **{"linger.ms": 5, "message.timeout.ms": DELIVERY_MS,
                                          **conf}))


def ck_produce(bootstrap: str, topic: str, values: list, partition: int | None = None,
               timeout: float = CALL_TIMEOUT, check: bool = True, one_batch: bool = False,
               **conf) -> list:
    """Produce *values* (str, bytes or None), flush; the delivery reports in order of
    production: (error or None, partition, offset). *check*: fail on any error.
    *one_batch*: learn the topic's metadata first and linger long enough that all the
    values leave in one batch (a message produced before the leader is known can
    otherwise leave alone)."""
    if one_batch:
        conf = {"linger.ms": 2000, "batch.num.messages": 10000, **conf}
    p = ck_producer(bootstrap, **conf)
    reports: dict[int, tuple] = {}
    if one_batch:
        p.list_topics(topic, timeout=timeout)

    def report(i):
        return lambda err, msg: reports.__setitem__(i, (err, msg.partition(), msg.offset()))

    try:
        for i, v in enumerate(values):
            kw = {} if partition is None else {"partition": partition}
            p.produce(topic, value=v.encode() if isinstance(v, str) else v,
                      on_delivery=report(i), **kw)
            p.poll(0)
        left = p.flush(timeout)
        if left:
            raise Timeout(f"{left} record(s) not delivered in {timeout}s")
    finally:
        p.purge()
        p.flush(1)
        p = None  # not kept alive (and reconnecting) by a failure's traceback
    out = [reports[i] for i in range(len(values))]
    if check:
        errors = [r[0] for r in out if r[0] is not None]
        assert not errors, f"delivery errors: {errors[:3]}"
    return out


def ck_consumer(bootstrap: str, **conf):
    from confluent_kafka import Consumer
    return Consumer(ck_conf(bootstrap, **{"group.id": "logfs-tests", "enable.auto.commit": False,
                                          "auto.offset.reset": "earliest",
                                          "session.timeout.ms": 6000,
                                          "heartbeat.interval.ms": 200,
                                          "fetch.wait.max.ms": 100, **conf}))


def ck_rec(m) -> Rec:
    return Rec(m.partition(), m.offset(), _text(m.value()), m.timestamp()[1], m.key(),
               tuple(m.headers() or ()))


def ck_poll(consumer, count: int, timeout: float = CALL_TIMEOUT) -> list[Rec]:
    """Exactly *count* records (or a Timeout with what came)."""
    out: list[Rec] = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        if time.monotonic() > deadline:
            raise Timeout(f"got {len(out)} of {count} records in {timeout}s: {out[-3:]}")
        m = consumer.poll(0.2)
        if m is None:
            continue
        if m.error():
            from confluent_kafka import KafkaError
            if m.error().code() == KafkaError._PARTITION_EOF:
                continue
            raise AssertionError(f"consumer error: {m.error()}")
        out.append(ck_rec(m))
    return out


def ck_quiet(consumer, seconds: float) -> list[Rec]:
    """Whatever arrives within *seconds* (to check that nothing does)."""
    out: list[Rec] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        m = consumer.poll(0.1)
        if m is not None and not m.error():
            out.append(ck_rec(m))
    return out


def ck_consume(bootstrap: str, topic: str, partition: int, offset: int, count: int,
               timeout: float = CALL_TIMEOUT, **conf) -> list[Rec]:
    """*count* records of one partition from *offset* (or OFFSET_BEGINNING/END)."""
    from confluent_kafka import TopicPartition
    c = ck_consumer(bootstrap, **conf)
    try:
        c.assign([TopicPartition(topic, partition, offset)])
        return ck_poll(c, count, timeout)
    finally:
        c.close()


class _Lines:
    """A logging.Logger for librdkafka's ``logger`` config that keeps the messages."""

    def __init__(self) -> None:
        import logging
        self.lines: list[str] = []
        self.logger = logging.getLogger(f"rdkafka-{id(self)}")
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)
        handler = logging.Handler()
        handler.emit = lambda record: self.lines.append(record.getMessage())
        self.logger.addHandler(handler)


def ck_tail_consumer(bootstrap: str, topic: str, partition: int, **conf):
    """A consumer assigned *topic*/*partition* at OFFSET_END, and a function that
    polls until librdkafka sends its first Fetch of it (the end is resolved),
    returning the offset that Fetch asks for."""
    from confluent_kafka import OFFSET_END, TopicPartition
    lines = _Lines()
    c = ck_consumer(bootstrap, **{"debug": "fetch", "logger": lines.logger, **conf})
    c.assign([TopicPartition(topic, partition, OFFSET_END)])
    needle = f"Fetch topic {topic} [{partition}] at offset "

    def wait_ready(timeout: float = CALL_TIMEOUT) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = c.poll(0.05)
            assert m is None or m.error(), f"a record before any was produced: {m.value()!r}"
            for line in lines.lines:
                if needle in line:
                    return int(line.split(needle)[1].split()[0])
        raise Timeout(f"no Fetch of {topic} [{partition}] in {timeout}s")

    return c, wait_ready


def ck_wait_position(consumer, tp, timeout: float = CALL_TIMEOUT) -> int:
    """Poll until the consumer's position of *tp* is known (>= 0): once a record was
    consumed, or an explicit offset assigned."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        consumer.poll(0.05)
        pos = consumer.position([tp])[0].offset
        if pos >= 0:
            return pos
    raise Timeout(f"position of {tp} never resolved")


def ck_admin(bootstrap: str):
    from confluent_kafka.admin import AdminClient
    return AdminClient(ck_conf(bootstrap))


def ck_create_topic(bootstrap: str, name: str, partitions: int, config: dict | None = None) -> None:
    from confluent_kafka.admin import NewTopic
    admin = ck_admin(bootstrap)  # alive until the answer came: its futures die with it
    fs = admin.create_topics([NewTopic(name, partitions, 1, config=config or {})],
                             request_timeout=10)
    fs[name].result(CALL_TIMEOUT)


# --------------------------------------------------------------------- kafka-python


def kp_producer(bootstrap: str, **kw):
    from kafka import KafkaProducer
    return KafkaProducer(**{"bootstrap_servers": bootstrap, "linger_ms": 5,
                            "request_timeout_ms": DELIVERY_MS - 1000,
                            "delivery_timeout_ms": DELIVERY_MS, "max_block_ms": 10000, **kw})


def kp_produce(bootstrap: str, topic: str, values: list, partition: int | None = None,
               timeout: float = CALL_TIMEOUT, **kw) -> list:
    """Produce *values*; the RecordMetadata of each (raises on a delivery error)."""
    p = kp_producer(bootstrap, **kw)
    try:
        futures = [p.send(topic, value=v.encode() if isinstance(v, str) else v,
                          partition=partition) for v in values]
        p.flush(timeout)
        return [f.get(timeout) for f in futures]
    finally:
        p.close(5)


def kp_consumer(bootstrap: str, **kw):
    from kafka import KafkaConsumer
    return KafkaConsumer(**{"bootstrap_servers": bootstrap, "enable_auto_commit": False,
                            "auto_offset_reset": "earliest", "request_timeout_ms": 10000,
                            "fetch_max_wait_ms": 100, "session_timeout_ms": 6000,
                            "heartbeat_interval_ms": 200, **kw})


def kp_rec(m) -> Rec:
    return Rec(m.partition, m.offset, _text(m.value), m.timestamp, m.key, tuple(m.headers or ()))


def kp_poll(consumer, count: int, timeout: float = CALL_TIMEOUT) -> list[Rec]:
    out: list[Rec] = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        if time.monotonic() > deadline:
            raise Timeout(f"got {len(out)} of {count} records in {timeout}s: {out[-3:]}")
        batch = consumer.poll(timeout_ms=200, max_records=count - len(out))
        for _tp, msgs in sorted(batch.items(), key=lambda kv: kv[0].partition):
            out.extend(kp_rec(m) for m in msgs)
    return out


def kp_quiet(consumer, seconds: float) -> list[Rec]:
    out: list[Rec] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _tp, msgs in consumer.poll(timeout_ms=100).items():
            out.extend(kp_rec(m) for m in msgs)
    return out


def kp_consume(bootstrap: str, topic: str, partition: int, offset: int | str, count: int,
               timeout: float = CALL_TIMEOUT, **kw) -> list[Rec]:
    """*count* records of one partition from *offset* (an int, "beginning" or "end")."""
    from kafka import TopicPartition
    c = kp_consumer(bootstrap, **kw)
    try:
        tp = TopicPartition(topic, partition)
        c.assign([tp])
        if offset == "beginning":
            c.seek_to_beginning(tp)
        elif offset == "end":
            c.seek_to_end(tp)
        else:
            c.seek(tp, offset)
        return kp_poll(c, count, timeout)
    finally:
        c.close(autocommit=False)


# --------------------------------------------------------------------- one interface


class _Client:
    """What a test asks of each client: ``produce`` (after it returns, every record
    is acknowledged; the offsets, or None when the client does not tell), ``consume``
    *count* records of a partition from *start* (an offset or "beginning"),
    ``from_time`` (the first record appended at or after *t_ms* on), and ``tail``: a
    consumer positioned at the end, *produce_new* called once it fetches, and the
    records it then gets (the offset it started from, the records)."""

    name = ""

    def __repr__(self) -> str:
        return self.name


class KcatClient(_Client):
    name = "kcat"

    def produce(self, bs, topic, values, partition=0):
        kcat_produce(bs, topic, values, partition)
        return None  # kcat does not print offsets

    def consume(self, bs, topic, partition, start, count):
        spec = {"beginning": "beginning"}.get(start, str(start))
        return kcat_consume(bs, topic, partition, spec, count)

    def from_time(self, bs, topic, partition, t_ms, count):
        return kcat_consume(bs, topic, partition, f"s@{t_ms}", count)

    def tail(self, bs, topic, partition, produce_new, count):
        t = KcatTail(bs, topic, partition, count)
        try:
            start = t.wait_ready()
            produce_new()
            return start, t.result()
        finally:
            t.kill()


class ConfluentClient(_Client):
    name = "confluent-kafka"

    def produce(self, bs, topic, values, partition=0):
        reports = ck_produce(bs, topic, values, partition)
        return [off for _err, _p, off in reports]

    def consume(self, bs, topic, partition, start, count):
        from confluent_kafka import OFFSET_BEGINNING
        return ck_consume(bs, topic, partition,
                          OFFSET_BEGINNING if start == "beginning" else start, count)

    def from_time(self, bs, topic, partition, t_ms, count):
        from confluent_kafka import TopicPartition
        c = ck_consumer(bs)
        try:
            (tp,) = c.offsets_for_times([TopicPartition(topic, partition, t_ms)], timeout=10)
            assert tp.error is None, tp.error
            c.assign([tp])
            return ck_poll(c, count)
        finally:
            c.close()

    def tail(self, bs, topic, partition, produce_new, count):
        c, wait_ready = ck_tail_consumer(bs, topic, partition)
        try:
            start = wait_ready()
            produce_new()
            got = ck_poll(c, count)
            return start, got + ck_quiet(c, 0.3)
        finally:
            c.close()


class KafkaPythonClient(_Client):
    name = "kafka-python"

    def produce(self, bs, topic, values, partition=0):
        return [md.offset for md in kp_produce(bs, topic, values, partition)]

    def consume(self, bs, topic, partition, start, count):
        return kp_consume(bs, topic, partition, start, count)

    def from_time(self, bs, topic, partition, t_ms, count):
        from kafka import TopicPartition
        c = kp_consumer(bs)
        try:
            tp = TopicPartition(topic, partition)
            found = c.offsets_for_times({tp: t_ms})[tp]
            c.assign([tp])
            c.seek(tp, found.offset)
            return kp_poll(c, count)
        finally:
            c.close(autocommit=False)

    def tail(self, bs, topic, partition, produce_new, count):
        from kafka import TopicPartition
        c = kp_consumer(bs)
        try:
            tp = TopicPartition(topic, partition)
            c.assign([tp])
            c.seek_to_end(tp)
            start = c.position(tp, timeout_ms=10000)
            produce_new()
            got = kp_poll(c, count)
            return start, got + kp_quiet(c, 0.3)
        finally:
            c.close(autocommit=False)


CLIENTS = [KcatClient(), ConfluentClient(), KafkaPythonClient()]


# --------------------------------------------------------------------- a lossy proxy


class DropProxy:
    """A TCP proxy in front of a listener that loses the answers to the first
    *drops* Produce requests: it forwards the request, then closes the client's
    connection instead of forwarding the answer, as a network failure after the
    broker appended would. The client retries the same batch. Give the listener
    ``--advertise``/``-o kafka.advertise=`` :attr:`address`, so that clients come back
    here after Metadata."""

    def __init__(self, drops: int) -> None:
        self.drops = drops
        self.dropped = 0
        self.produce_requests = 0
        self.target: tuple[str, int] | None = None
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self, target: str) -> "DropProxy":
        host, _, port = target.rpartition(":")
        self.target = (host, int(port))
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(5)
        self.sock.close()
        with self.lock:
            for c in self.conns:
                _close(c)

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            for s in (client, server):
                s.settimeout(None)
            with self.lock:
                self.conns += [client, server]
            pending: set[int] = set()
            threading.Thread(target=self._up, args=(client, server, pending), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, pending), daemon=True).start()

    def _up(self, client, server, pending: set) -> None:
        try:
            while True:
                head = recv_exactly(client, 4)
                body = recv_exactly(client, struct.unpack(">i", head)[0])
                key, _ver, corr = struct.unpack_from(">hhi", body)
                if key == 0:
                    with self.lock:
                        self.produce_requests += 1
                        if self.dropped + len(pending) < self.drops:
                            pending.add(corr)
                server.sendall(head + body)
        except (EOFError, OSError, struct.error):
            _close(client)
            _close(server)

    def _down(self, server, client, pending: set) -> None:
        try:
            while True:
                head = recv_exactly(server, 4)
                body = recv_exactly(server, struct.unpack(">i", head)[0])
                (corr,) = struct.unpack_from(">i", body)
                with self.lock:
                    drop = corr in pending
                    if drop:
                        pending.discard(corr)
                        self.dropped += 1
                if drop:
                    raise EOFError("dropped a Produce answer")
                client.sendall(head + body)
        except (EOFError, OSError, struct.error):
            _close(client)
            _close(server)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()


# --------------------------------------------------------------------- raw protocol


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def api_versions_request(correlation_id: int, version: int = 0, client_id: str = "fuzz") -> bytes:
    """An ApiVersions request frame (v0-v2: empty body; v3: flexible header and body)."""
    cid = client_id.encode()
    head = struct.pack(">hhih", 18, version, correlation_id, len(cid)) + cid
    if version >= 3:
        name, ver = b"logfs-tests", b"1"
        body = b"\0" + bytes([len(name) + 1]) + name + bytes([len(ver) + 1]) + ver + b"\0"
        return frame(head + body)
    return frame(head)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def read_response(sock: socket.socket) -> bytes:
    (size,) = struct.unpack(">i", recv_exactly(sock, 4))
    assert 4 <= size < 1 << 20, f"response size {size}"
    return recv_exactly(sock, size)


def check_api_versions(host: str, port: int, version: int = 0,
                       timeout: float = 5.0) -> dict[int, tuple[int, int]]:
    """Ask ApiVersions on a new connection and check the answer: the correlation id
    echoed, error 0, ApiVersions itself listed up to v3. key -> (min, max)."""
    corr = 0x5EED0000 + version
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(api_versions_request(corr, version))
        body = read_response(s)
    (got_corr, err) = struct.unpack_from(">ih", body)
    assert got_corr == corr, f"correlation id {got_corr:#x}, asked {corr:#x}"
    assert err == 0, f"ApiVersions v{version} error {err}"
    keys: dict[int, tuple[int, int]] = {}
    pos = 6
    if version >= 3:
        n, pos = _uvarint(body, pos)
        n -= 1
    else:
        (n,) = struct.unpack_from(">i", body, pos)
        pos += 4
    for _ in range(n):
        k, lo, hi = struct.unpack_from(">hhh", body, pos)
        pos += 6
        if version >= 3:
            pos += 1  # empty tagged fields
        keys[k] = (lo, hi)
    assert keys.get(18, (0, -1))[1] >= 3, f"ApiVersions not advertised up to v3: {keys}"
    return keys


def _uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
