"""S3ObjectStore (logfs/tier/s3.py) against real servers on loopback: each test that
takes ``s3_server`` runs against SeaweedFS and against moto's server. No mocks of the
network: the errors come from the servers (or from a port nobody listens on)."""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import threading
import time
import tracemalloc
import uuid

import pytest

from logfs.core.objectstore import ObjectInfo, ObjectNotFound, ObjectStoreError, PreconditionFailed
from logfs.tier.s3 import S3ObjectStore, parse_remote_url


def store(server, bucket: str, prefix: str = "logfs-test") -> S3ObjectStore:
    return S3ObjectStore(f"s3://{bucket}/{prefix}", endpoint=server.endpoint)


def write_file(path, data: bytes) -> str:
    path.write_bytes(data)
    return hashlib.md5(data).hexdigest()


# -- URLs -------------------------------------------------------------------------------

@pytest.mark.parametrize("url, expected", [
    ("s3://bucket", ("bucket", "")),
    ("s3://bucket/", ("bucket", "")),
    ("s3://my.bucket-1/logs", ("my.bucket-1", "logs")),
    ("s3://abc/a/b/c/", ("abc", "a/b/c")),
    ("s3://abc//a//b", ("abc", "a/b")),
    ("s3://" + "a" * 63 + "/p", ("a" * 63, "p")),
])
def test_parse_remote_url_accepts(url, expected):
    assert parse_remote_url(url) == expected


@pytest.mark.parametrize("url", [
    "", "bucket/prefix", "s3:/bucket", "http://bucket/prefix", "S3://bucket", "s3://",
    "s3:///prefix", "s3://ab", "s3://" + "a" * 64, "s3://Bucket", "s3://bucket_name",
    "s3://-bucket", "s3://bucket-", "s3://bu..cket", "s3://bucket/a b", "s3://bucket/p?x=1",
    "s3://bucket/p#f", "s3://bucket/a/../b", "s3://bucket/./b", "s3://bucket\n",
])
def test_parse_remote_url_refuses(url):
    with pytest.raises(ValueError) as info:
        parse_remote_url(url)
    assert "\n" not in str(info.value)


def test_keys_are_prefix_slash_key_and_the_description_names_the_endpoint():
    s = S3ObjectStore("s3://bucket//a//b/", endpoint="http://127.0.0.1:9/")
    assert (s.bucket, s.prefix, s.full_key("t/l/manifest.json")) == ("bucket", "a/b", "a/b/t/l/manifest.json")
    assert s.description == "s3://bucket/a/b at http://127.0.0.1:9"
    bare = S3ObjectStore("s3://bucket")
    assert bare.full_key("k") == "k" and bare.description == "s3://bucket"
    with pytest.raises(ValueError):
        S3ObjectStore("s3://bucket", endpoint="127.0.0.1:8333")


# -- round trips ------------------------------------------------------------------------

def test_put_file_get_range_head_list_delete(s3_server, bucket, tmp_path):
    s = store(s3_server, bucket, "deep//prefix/")
    data = os.urandom(3 << 20)
    md5 = write_file(tmp_path / "seg.log", data)
    info = s.put_file("t/l/segments/00000000000000000000-abc.log", str(tmp_path / "seg.log"), md5)
    assert info == ObjectInfo("t/l/segments/00000000000000000000-abc.log", len(data), md5)
    assert s.head("t/l/segments/00000000000000000000-abc.log") == info
    body, etag = s.get("t/l/segments/00000000000000000000-abc.log")
    assert body == data and etag == md5 and '"' not in etag
    key = "t/l/segments/00000000000000000000-abc.log"
    assert s.get_range(key, 1_000_003, 4096) == data[1_000_003:1_004_099]
    assert s.get_range(key, len(data) - 10, 4096) == data[-10:]  # fewer at the end
    assert s.get_range(key, len(data), 100) == b""
    assert s.get_range(key, 5, 0) == b""
    # the bucket's own keys: PREFIX/key, no doubled slash
    raw = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert raw == ["deep/prefix/t/l/segments/00000000000000000000-abc.log"]

    s.put_bytes("t/l/manifest.json", b"{}")
    s.put_bytes("t/l-2/manifest.json", b"{}")
    s.put_bytes("t/other", b"x")
    assert list(s.list("")) == sorted(list(s.list(""))) == [
        "t/l-2/manifest.json", "t/l/manifest.json", "t/l/segments/00000000000000000000-abc.log", "t/other"]
    assert list(s.list("t/l/")) == ["t/l/manifest.json", "t/l/segments/00000000000000000000-abc.log"]
    assert list(s.list("nothing/")) == []

    s.delete(key)
    with pytest.raises(ObjectNotFound):
        s.head(key)
    with pytest.raises(ObjectNotFound):
        s.get(key)
    with pytest.raises(ObjectNotFound):
        s.get_range(key, 0, 10)
    s.delete(key)  # already gone: no error
    assert key not in list(s.list(""))


def test_list_pages_past_a_thousand_keys_and_the_client_is_shared_by_threads(s3_server, bucket):
    s = store(s3_server, bucket)
    keys = [f"many/{i:05d}" for i in range(1010)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        infos = list(pool.map(lambda k: s.put_bytes(k, k.encode()), keys))
    assert [i.etag for i in infos] == [hashlib.md5(k.encode()).hexdigest() for k in keys]
    assert list(s.list("many/")) == keys
    assert list(S3ObjectStore(f"s3://{bucket}", endpoint=s3_server.endpoint).list("logfs-test/many/0000")) \
        == [f"logfs-test/many/0000{i}" for i in range(10)]


def test_put_file_streams_from_the_file(s3_server, bucket, tmp_path):
    data = os.urandom(1 << 20) * 40  # 40 MiB
    md5 = write_file(tmp_path / "big", data)
    s = store(s3_server, bucket)
    tracemalloc.start()
    try:
        info = s.put_file("big", str(tmp_path / "big"), md5)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == len(data) and info.etag == md5
    assert peak < 12 << 20, f"put_file of 40 MiB held {peak >> 20} MiB at its peak"
    assert s.get_range("big", (39 << 20) + 7, 100) == data[(39 << 20) + 7:(39 << 20) + 107]


def test_put_file_with_a_wrong_md5_is_not_stored(s3_server, bucket, tmp_path):
    s = store(s3_server, bucket)
    write_file(tmp_path / "seg", b"the bytes on disk\n" * 1000)
    wrong = hashlib.md5(b"other bytes").hexdigest()
    with pytest.raises(ObjectStoreError) as info:
        s.put_file("seg", str(tmp_path / "seg"), wrong)
    assert type(info.value) is ObjectStoreError and info.value.transient
    if s3_server.name == "seaweedfs":  # the server checks Content-MD5 and refuses
        assert "BadDigest" in str(info.value)
    else:  # moto's server does not check it: the adapter's ETag check catches it
        assert "does not check Content-MD5" in str(info.value)
    with pytest.raises(ObjectNotFound):
        s.head("seg")
    with pytest.raises(ValueError):
        s.put_file("seg", str(tmp_path / "seg"), "not-an-md5")


# -- conditional writes -----------------------------------------------------------------

def test_if_none_match(s3_server, bucket):
    s = store(s3_server, bucket)
    first = s.put_bytes("t/l/manifest.json", b"one", if_none_match=True)
    assert first.etag == hashlib.md5(b"one").hexdigest() and first.size == 3
    with pytest.raises(PreconditionFailed) as info:
        s.put_bytes("t/l/manifest.json", b"two", if_none_match=True)
    assert "t/l/manifest.json" in str(info.value) and bucket in str(info.value)
    assert s.get("t/l/manifest.json") == (b"one", first.etag)


def test_if_match(s3_server, bucket):
    s = store(s3_server, bucket)
    v1 = s.put_bytes("m", b"v1", if_none_match=True)
    v2 = s.put_bytes("m", b"v2", if_match=v1.etag)
    assert s.get("m") == (b"v2", v2.etag)
    with pytest.raises(PreconditionFailed):
        s.put_bytes("m", b"v3", if_match=v1.etag)  # stale
    assert s.get("m")[0] == b"v2"
    _data, etag = s.get("m")
    v3 = s.put_bytes("m", b"v3", if_match=f'"{etag}"')  # quoted as the server sends it
    assert s.get("m") == (b"v3", v3.etag)
    s.delete("m")
    with pytest.raises(PreconditionFailed):  # gone: AWS and moto say 404, SeaweedFS 412
        s.put_bytes("m", b"v4", if_match=v3.etag)
    with pytest.raises(ObjectNotFound):
        s.head("m")
    with pytest.raises(ValueError):
        s.put_bytes("m", b"x", if_match=v3.etag, if_none_match=True)


@pytest.mark.slow
def test_seaweedfs_conditional_puts_have_one_winner(seaweed, monkeypatch):
    """What the adapter relies on: of concurrent conditional PUTs, one wins. (SeaweedFS
    serializes them on the key with a lock it retries each second: the last of N
    writers of one key answers after about N-2 s.)"""
    WRITERS = 4
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    bucket = f"logfs-{uuid.uuid4().hex[:16]}"
    seaweed.create_bucket(bucket)
    s = store(seaweed, bucket)
    for round_ in range(2):
        key = f"race-{round_}"
        barrier = threading.Barrier(WRITERS)

        def put(i, **cond):
            # bodies differ from race to race: the ETag is the MD5 of the body, so an
            # If-Match writer of the very bytes already there changes nothing and the
            # next one's If-Match holds again
            barrier.wait()
            try:
                return s.put_bytes(key, b"%s writer %d" % (b"match" if cond.get("if_match") else b"new", i),
                                   **cond)
            except PreconditionFailed:
                return None

        with concurrent.futures.ThreadPoolExecutor(WRITERS) as pool:
            won = [r for r in pool.map(lambda i: put(i, if_none_match=True), range(WRITERS)) if r]
        assert len(won) == 1, won
        etag = s.get(key)[1]
        barrier = threading.Barrier(WRITERS)
        with concurrent.futures.ThreadPoolExecutor(WRITERS) as pool:
            won = [r for r in pool.map(lambda i: put(i, if_match=etag), range(WRITERS)) if r]
        assert len(won) == 1, won
        assert s.get(key)[1] == won[0].etag


# -- refusals ---------------------------------------------------------------------------

def test_a_missing_bucket_is_a_permanent_error_naming_it(s3_server):
    name = f"logfs-missing-{uuid.uuid4().hex[:12]}"
    s = store(s3_server, name)
    for call in (s.check, lambda: s.put_bytes("k", b"x"), lambda: s.get("k"), lambda: list(s.list(""))):
        with pytest.raises(ObjectStoreError) as info:
            call()
        assert type(info.value) is ObjectStoreError, info.value
        assert not info.value.transient and name in str(info.value) and "does not exist" in str(info.value)
        assert s3_server.endpoint in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("which", ["access key", "secret"])
def test_bad_credentials_are_a_permanent_error_naming_the_bucket(s3_server, bucket, monkeypatch, which):
    if which == "access key":
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIANOSUCHKEY0000000")
    else:
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    s = store(s3_server, bucket)
    for call in (s.check, lambda: s.put_bytes("k", b"x"), lambda: s.get("k")):
        with pytest.raises(ObjectStoreError) as info:
            call()
        assert type(info.value) is ObjectStoreError, info.value
        assert not info.value.transient and bucket in str(info.value) and "refused" in str(info.value)
    with pytest.raises(ObjectStoreError, match="InvalidAccessKeyId" if which == "access key"
                       else "SignatureDoesNotMatch"):
        s.check()
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    store(s3_server, bucket).check()  # the right credentials still pass


def test_no_credentials_at_all_is_a_permanent_error(s3_server, bucket, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata look-up
    s = store(s3_server, bucket)
    with pytest.raises(ObjectStoreError) as info:
        s.check()
    assert not info.value.transient and "credentials" in str(info.value)


def test_an_endpoint_nobody_listens_on_is_transient_and_fails_fast(dead_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE000000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    s = S3ObjectStore("s3://bucket/prefix", endpoint=dead_endpoint)
    for call in (s.check, lambda: s.put_bytes("k", b"x", if_none_match=True), lambda: s.get_range("k", 0, 9)):
        t0 = time.monotonic()
        with pytest.raises(ObjectStoreError) as info:
            call()
        took = time.monotonic() - t0
        assert type(info.value) is ObjectStoreError and info.value.transient, info.value
        assert dead_endpoint in str(info.value) and took < 10, (took, info.value)
