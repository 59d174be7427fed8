"""Fixtures of tests/tier: real S3 servers on loopback (s3kit.py), each started once
per session and stopped by pid at its end, even when tests fail.

- ``seaweed``, ``moto_s3``: the servers (session);
- ``s3_server``: each of the two in turn (a test that uses it, or a fixture below,
  runs once per server), with the AWS chain's variables set to its credentials for
  the test (monkeypatch: restored afterwards), since S3ObjectStore takes them from
  there;
- ``seaweed_env``: the same for SeaweedFS alone (returns the variables);
  ``remote_url``: ``s3://BUCKET/logfs`` on a new bucket of SeaweedFS;
- ``bucket``: a new bucket on ``s3_server`` for the test; ``objects``: an S3ObjectStore on that
  bucket under a prefix; ``s3_client``: a plain boto3 client of the server;
  ``dead_objects``: an S3ObjectStore whose endpoint nobody listens on.

The servers' start and stop times are printed at the end of the run.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import s3kit  # noqa: E402

from logfs.tier.s3 import S3ObjectStore  # noqa: E402

_started: list[s3kit.S3Server] = []


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    server = s3kit.start_seaweed(tmp_path_factory.mktemp("seaweed"))
    _started.append(server)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory):
    server = s3kit.start_moto(tmp_path_factory.mktemp("moto"))
    _started.append(server)
    yield server
    server.stop()


def _use(server: s3kit.S3Server, monkeypatch) -> dict[str, str]:
    """Point the AWS chain of this process (and of the subprocesses it starts) at
    *server* for the test."""
    if not server.alive():
        pytest.fail(f"{server.name} at {server.endpoint} has exited; its log:\n{server.log_tail()}")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    env = server.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture(params=["seaweed", "moto_s3"])
def s3_server(request, monkeypatch) -> s3kit.S3Server:
    server = request.getfixturevalue(request.param)
    _use(server, monkeypatch)
    return server


@pytest.fixture
def seaweed_env(seaweed, monkeypatch) -> dict[str, str]:
    """The AWS chain set to SeaweedFS's credentials for the test (mounts and other
    subprocesses inherit it)."""
    return _use(seaweed, monkeypatch)


@pytest.fixture
def remote_url(seaweed, seaweed_env) -> str:
    """``s3://BUCKET/logfs`` on a bucket of SeaweedFS made for the test."""
    name = f"logfs-{uuid.uuid4().hex[:16]}"
    seaweed.create_bucket(name)
    return f"s3://{name}/logfs"


@pytest.fixture
def bucket(s3_server) -> str:
    """The name of a bucket made for this test on ``s3_server``."""
    name = f"logfs-{uuid.uuid4().hex[:16]}"
    s3_server.create_bucket(name)
    return name


@pytest.fixture
def objects(s3_server, bucket) -> S3ObjectStore:
    return S3ObjectStore(f"s3://{bucket}/logfs-test", endpoint=s3_server.endpoint)


@pytest.fixture
def s3_client(s3_server):
    return s3_server.client()


@pytest.fixture
def dead_endpoint() -> str:
    (port,) = s3kit.free_ports(1)
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def dead_objects(s3_server, bucket, dead_endpoint) -> S3ObjectStore:
    return S3ObjectStore(f"s3://{bucket}/logfs-test", endpoint=dead_endpoint)


def pytest_terminal_summary(terminalreporter):
    if s3kit.FIGURES:
        terminalreporter.section("tier fault figures")
        for name, d in s3kit.FIGURES.items():
            terminalreporter.write_line(f"{name}: " + ", ".join(f"{k}={v}" for k, v in d.items()))
    for server in _started:
        stop = f"{server.stop_s:.1f} s" if server.stop_s is not None else "not stopped"
        terminalreporter.write_line(f"tests/tier: {server.name} answered after {server.start_s:.1f} s, "
                                    f"stopped in {stop}")
