"""The core's :class:`~logfs.core.objectstore.ObjectStore` on S3 or an S3-compatible
server (SeaweedFS, MinIO...), with boto3.

``S3ObjectStore("s3://BUCKET/PREFIX", endpoint=None)`` names one bucket and key
prefix; keys are relative to the prefix (``PREFIX/key``). Credentials and region come
from the standard AWS chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
``AWS_PROFILE``, ``~/.aws/credentials`` and ``~/.aws/config``...; the region defaults
to us-east-1). With an *endpoint* the client uses path-style addressing, which
S3-compatible servers expect.

One boto3 client is made in ``__init__`` and shared by every thread (clients are
thread-safe, sessions are not). Its timeouts (connect 5 s, read 30 s) and retries
("standard" mode, 3 attempts in all) make an unreachable server fail in seconds.
Every method blocks on the network and raises only the core's errors:

- unreachable, timeouts, 5xx, throttling: ``ObjectStoreError(transient=True)``;
- missing bucket, refused credentials or permission: ``ObjectStoreError(transient=False)``
  naming the bucket (and the endpoint);
- a missing object: ``ObjectNotFound``;
- a conditional PUT that lost (412, or 409 ConditionalRequestConflict):
  ``PreconditionFailed``.

Conditional writes are the server's: ``put_bytes`` sends ``If-Match`` or
``If-None-Match: *`` and nothing else guards them. SeaweedFS honours both on
PutObject and answers 412 (since 3.97, its PR #7154; atomically under concurrent
writers since 4.16's issue #8800 was fixed, PR #8801), as AWS S3 and moto do. A
server that ignores them (SeaweedFS 3.96 overwrites and answers 200) leaves a second
writer on the same prefix undetected; logfs's one writer needs them for nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
from typing import Any, Iterator

import boto3
import botocore.exceptions as bce
from botocore.config import Config

from logfs.core.objectstore import ObjectInfo, ObjectNotFound, ObjectStoreError, PreconditionFailed

logger = logging.getLogger(__name__)

DEFAULT_REGION = "us-east-1"
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 30
MAX_ATTEMPTS = 3  # in all, the first included ("standard" retry mode)

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PRECONDITION_CODES = {"PreconditionFailed", "ConditionalRequestConflict"}
_NOT_FOUND_CODES = {"NoSuchKey", "NotFound", "404"}
_AUTH_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken",
               "ExpiredToken", "InvalidClientTokenId", "TokenRefreshRequired", "AllAccessDisabled",
               "AccountProblem", "AuthorizationHeaderMalformed", "RequestTimeTooSkewed", "403"}
_TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
                    "TooManyRequests", "RequestTimeout", "InternalError", "ServiceUnavailable",
                    "OperationAborted", "BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"}


def parse_remote_url(url: str) -> tuple[str, str]:
    """``s3://BUCKET[/PREFIX]`` as (bucket, prefix): the prefix without leading,
    trailing or doubled slashes, "" if none. Raises ValueError (one line) for anything
    else: another scheme, a bucket name S3 refuses (3-63 characters of lowercase
    letters, digits, dots and hyphens, a letter or digit at each end, no ".."), a
    "." or ".." path segment, a query, a fragment, whitespace."""
    if not isinstance(url, str) or not url.startswith("s3://"):
        raise ValueError(f"{url!r} is not an s3://BUCKET/PREFIX URL")
    if any(c.isspace() or ord(c) < 0x20 or c in "?#\\" for c in url):
        raise ValueError(f"{url!r}: spaces, control characters, '?', '#' and '\\' are not allowed")
    bucket, _, path = url[len("s3://"):].partition("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise ValueError(f"{url!r}: {bucket!r} is not a valid bucket name (3-63 lowercase "
                         "letters, digits, dots and hyphens, a letter or digit at each end)")
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise ValueError(f"{url!r}: '.' and '..' are not allowed in the prefix")
    return bucket, "/".join(parts)


class S3ObjectStore:
    """One bucket and key prefix of S3 or an S3-compatible server at *endpoint*
    (``http(s)://host:port``). Raises ValueError for a bad *url* or *endpoint*, and
    ObjectStoreError (transient=False) when the AWS configuration is unusable (e.g. an
    ``AWS_PROFILE`` that does not exist). Makes no request: :meth:`check` does."""

    def __init__(self, url: str, endpoint: str | None = None) -> None:
        self.bucket, self.prefix = parse_remote_url(url)
        if endpoint is not None and not re.fullmatch(r"https?://[^/\s?#]+/?", endpoint):
            raise ValueError(f"endpoint {endpoint!r} is not an http(s)://HOST[:PORT] URL")
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.url = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        self.description = f"{self.url} at {self.endpoint}" if self.endpoint else self.url
        self._root = f"{self.prefix}/" if self.prefix else ""
        config = Config(
            connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S,
            retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
            s3={"addressing_style": "path"} if self.endpoint else {},
            # Content-MD5 is ours (put_file, put_bytes); no CRC32 trailers, which
            # S3-compatible servers handle unevenly
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            user_agent_extra="logfs")
        try:
            session = boto3.session.Session()
            self.region = session.region_name or DEFAULT_REGION
            self._client = session.client("s3", endpoint_url=self.endpoint, region_name=self.region,
                                          config=config)
        except bce.BotoCoreError as exc:
            raise ObjectStoreError(f"{self.description}: the AWS configuration is not usable: {exc}",
                                   transient=False) from None

    def __reduce__(self):
        # pickled as what it names: the unpickled copy makes a client of its own (the
        # upload workers, logfs/tier/task.py); credentials come from its environment
        return (S3ObjectStore, (self.url, self.endpoint))

    def __repr__(self) -> str:
        return f"S3ObjectStore({self.description})"

    def full_key(self, key: str) -> str:
        """The bucket's key of *key* (``PREFIX/key``)."""
        return self._root + key

    def _where(self, key: str) -> str:
        at = f" at {self.endpoint}" if self.endpoint else ""
        return f"s3://{self.bucket}/{self.full_key(key)}{at}"

    # -- the ObjectStore protocol ------------------------------------------------------
    def check(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except bce.ClientError as exc:
            status = _status(exc)
            if status == 404 or _code(exc) == "NoSuchBucket":
                raise self._no_bucket(f"check of {self.description}") from None
            if status in (401, 403):
                # a HEAD's answer has no body: a listing says which refusal it is
                try:
                    self._client.list_objects_v2(Bucket=self.bucket, Prefix=self._root, MaxKeys=1)
                except (bce.ClientError, bce.BotoCoreError) as exc2:
                    raise self._error(exc2, f"check of {self.description}") from None
            raise self._error(exc, f"check of {self.description}") from None
        except bce.BotoCoreError as exc:
            raise self._error(exc, f"check of {self.description}") from None

    def put_file(self, key: str, path: str, md5_hex: str) -> ObjectInfo:
        """One PutObject of the file at *path* (streamed from the open file, never
        multipart: S3 takes up to 5 GiB so) with Content-MD5, so the server refuses
        bytes that do not match *md5_hex*; then a HEAD. Where the server does not check
        (moto's server does not), a plain-MD5 ETag that differs from *md5_hex* is
        caught here: the object is deleted and ObjectStoreError raised. Raises OSError
        if the file cannot be opened, ValueError if *md5_hex* is not 32 hex digits."""
        md5_hex = md5_hex.lower()
        content_md5 = _content_md5(md5_hex)
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            try:
                self._client.put_object(Bucket=self.bucket, Key=self.full_key(key), Body=f,
                                        ContentLength=size, ContentMD5=content_md5)
            except (bce.ClientError, bce.BotoCoreError) as exc:
                raise self._error(exc, f"PUT {self._where(key)}") from None
        info, encrypted = self._head(key)
        if not encrypted and _is_plain_md5(info.etag) and info.etag != md5_hex:
            try:
                self.delete(key)
            except ObjectStoreError as exc:
                logger.warning("cannot delete %s after a bad upload: %s", self._where(key), exc)
            raise ObjectStoreError(f"PUT {self._where(key)}: the server stored bytes whose MD5 is "
                                   f"{info.etag}, not the {md5_hex} sent (deleted; the server does "
                                   "not check Content-MD5)", transient=True)
        return info

    def put_bytes(self, key: str, data: bytes, *, if_match: str | None = None,
                  if_none_match: bool = False) -> ObjectInfo:
        """PUT *data* with Content-MD5. *if_match* (an ETag, quoted or not) or
        *if_none_match* make it conditional: PreconditionFailed when the object's ETag
        is another, the object is gone (If-Match), or it exists (If-None-Match). Raises
        ValueError when both are given."""
        if if_match is not None and if_none_match:
            raise ValueError("put_bytes: if_match and if_none_match together")
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self.full_key(key), "Body": data,
                                "ContentMD5": _content_md5(hashlib.md5(data).hexdigest())}
        if if_match is not None:
            args["IfMatch"] = f'"{_unquote(if_match)}"'
        if if_none_match:
            args["IfNoneMatch"] = "*"
        conditional = if_match is not None or if_none_match
        try:
            resp = self._client.put_object(**args)
        except (bce.ClientError, bce.BotoCoreError) as exc:
            raise self._error(exc, f"PUT {self._where(key)}", conditional=conditional) from None
        etag = _unquote(resp.get("ETag") or "")
        if not etag:
            return self.head(key)
        return ObjectInfo(key, len(data), etag)

    def get(self, key: str) -> tuple[bytes, str]:
        try:
            resp = self._client.get_object(Bucket=self.bucket, Key=self.full_key(key))
            data = resp["Body"].read()
        except (bce.ClientError, bce.BotoCoreError) as exc:
            raise self._error(exc, f"GET {self._where(key)}") from None
        return data, _unquote(resp.get("ETag") or "")

    def get_range(self, key: str, start: int, length: int) -> bytes:
        if start < 0 or length < 0:
            raise ValueError(f"get_range of {key}: start {start}, length {length}")
        if length == 0:
            return b""
        try:
            resp = self._client.get_object(Bucket=self.bucket, Key=self.full_key(key),
                                           Range=f"bytes={start}-{start + length - 1}")
            data = resp["Body"].read()
        except bce.ClientError as exc:
            if _status(exc) == 416:  # start at or past the end
                return b""
            raise self._error(exc, f"GET {self._where(key)} bytes {start}+{length}") from None
        except bce.BotoCoreError as exc:
            raise self._error(exc, f"GET {self._where(key)} bytes {start}+{length}") from None
        if resp["ResponseMetadata"].get("HTTPStatusCode") == 200 and "ContentRange" not in resp:
            data = data[start:start + length]  # a server that ignored Range sent it all
        return data

    def head(self, key: str) -> ObjectInfo:
        return self._head(key)[0]

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self.full_key(key))
        except (bce.ClientError, bce.BotoCoreError) as exc:
            error = self._error(exc, f"DELETE {self._where(key)}")
            if not isinstance(error, ObjectNotFound):
                raise error from None

    def list(self, prefix: str) -> Iterator[str]:
        """Every key under *prefix*, relative to the store's prefix, in key order
        (ListObjectsV2, 1000 a page). The whole listing is read, then sorted: SeaweedFS
        walks its directory tree, so its order is not S3's ("t/l/m" comes before
        "t/l-2/m" there)."""
        keys: list[str] = []
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.full_key(prefix)):
                keys.extend(obj["Key"][len(self._root):] for obj in page.get("Contents", ()))
        except (bce.ClientError, bce.BotoCoreError) as exc:
            raise self._error(exc, f"LIST {self._where(prefix)}") from None
        keys.sort()
        return iter(keys)

    # -- helpers -----------------------------------------------------------------------
    def _head(self, key: str) -> tuple[ObjectInfo, bool]:
        """The object's ObjectInfo, and whether its ETag may be other than its MD5
        (SSE-KMS or SSE-C encryption)."""
        try:
            resp = self._client.head_object(Bucket=self.bucket, Key=self.full_key(key))
        except (bce.ClientError, bce.BotoCoreError) as exc:
            raise self._error(exc, f"HEAD {self._where(key)}") from None
        encrypted = (str(resp.get("ServerSideEncryption") or "").startswith("aws:kms")
                     or bool(resp.get("SSECustomerAlgorithm")))
        return ObjectInfo(key, int(resp["ContentLength"]), _unquote(resp.get("ETag") or "")), encrypted

    def _no_bucket(self, what: str) -> ObjectStoreError:
        return ObjectStoreError(f"{what}: bucket {self.bucket} does not exist", transient=False)

    def _error(self, exc: Exception, what: str, conditional: bool = False) -> ObjectStoreError:
        """The ObjectStoreError that *exc* (from botocore) is; *what* names the
        request (``PUT s3://bucket/key at endpoint``). *conditional*: a 404 means the
        object an If-Match named is gone (AWS answers so; SeaweedFS says 412)."""
        if isinstance(exc, bce.ClientError):
            code, status = _code(exc), _status(exc)
            message = " ".join(str(exc.response.get("Error", {}).get("Message") or "").split())
            reason = (f"HTTP {status} {message}".rstrip() if not code or code == str(status)
                      else f"{code} ({message})" if message else code)
            if code in _PRECONDITION_CODES or status == 412:
                return PreconditionFailed(f"{what}: the condition did not hold: {reason}")
            if code == "NoSuchBucket":
                return self._no_bucket(what)
            if conditional and (code in _NOT_FOUND_CODES or status == 404):
                return PreconditionFailed(f"{what}: the object is gone: {reason}")
            if code in _NOT_FOUND_CODES or status == 404:
                return ObjectNotFound(f"{what}: no such object")
            if code in ("BadDigest", "InvalidDigest"):
                return ObjectStoreError(f"{what}: the server received other bytes than were sent "
                                        f"({reason})", transient=True)
            if code in _AUTH_CODES or status in (401, 403):
                return ObjectStoreError(f"{what}: refused: {reason} (the credentials of the AWS chain "
                                        f"for bucket {self.bucket}, or its permissions)", transient=False)
            if code in _TRANSIENT_CODES or status >= 500 or status in (408, 429) or not status:
                return ObjectStoreError(f"{what}: {reason}", transient=True)
            return ObjectStoreError(f"{what}: {reason}", transient=False)
        text = " ".join(str(exc).split())
        if isinstance(exc, (bce.NoCredentialsError, bce.PartialCredentialsError,
                            bce.CredentialRetrievalError)):
            return ObjectStoreError(f"{what}: no usable AWS credentials ({text}): set "
                                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile in "
                                    "~/.aws/credentials", transient=False)
        if isinstance(exc, (bce.ParamValidationError, bce.NoRegionError)):
            return ObjectStoreError(f"{what}: {text}", transient=False)
        if isinstance(exc, (bce.ConnectionError, bce.HTTPClientError)):
            server = self.endpoint or "S3"
            return ObjectStoreError(f"{what}: cannot reach {server}: {text}", transient=True)
        return ObjectStoreError(f"{what}: {text}", transient=True)


def _code(exc: bce.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code") or "")


def _status(exc: bce.ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _unquote(etag: str) -> str:
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"')


def _is_plain_md5(etag: str) -> bool:
    return len(etag) == 32 and all(c in "0123456789abcdef" for c in etag)


def _content_md5(md5_hex: str) -> str:
    """The Content-MD5 header of an MD5 given as hex: base64 of the 16 bytes."""
    if not _is_plain_md5(md5_hex.lower()):
        raise ValueError(f"{md5_hex!r} is not an MD5 in hex (32 digits)")
    return base64.b64encode(bytes.fromhex(md5_hex)).decode("ascii")
