"""A log's manifest of tiered segments, and the key layout in the bucket.

Kafka's tiered storage (KIP-405) keeps remote segment metadata in a topic of its own;
logfs keeps it in one JSON object per log, ``<prefix>/<topic>/<log>/manifest.json``,
replaced only with a conditional PUT (If-Match the ETag read, or If-None-Match for the
first), so two writers can never both commit. A segment is in the manifest only after
its three objects were uploaded and verified; nothing else in the bucket counts
(an object that no manifest names is an upload a crash interrupted: tiering.py
deletes it). docs/format.md has the layout byte by byte.

    <prefix>/<topic>/<log>/manifest.json
    <prefix>/<topic>/<log>/segments/<base:020d>-<id>.log         the segment's bytes
    <prefix>/<topic>/<log>/segments/<base:020d>-<id>.index       its offset index
    <prefix>/<topic>/<log>/segments/<base:020d>-<id>.timeindex   its time index

``id`` is new for every upload (a redone upload never overwrites an object a reader
may be using). Each segment's entry carries a CRC-32C of every CHUNK_BYTES chunk of
its data, so a ranged GET is verified on its own.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from .errors import StorageError

FORMAT = 1
CHUNK_BYTES = 4 << 20  # the unit of ranged GETs and of the local cache
SUFFIXES = (".log", ".index", ".timeindex")


class CorruptManifest(StorageError):
    """A manifest that does not decode (or describes a log that cannot be)."""


@dataclass(frozen=True)
class RemoteSegmentInfo:
    base: int
    size: int
    base_record: int
    records: int
    boundary: bool  # starts at a record boundary
    first_ms: int | None
    last_ms: int | None
    id: str
    md5: tuple[str, str, str]  # of the .log, .index, .timeindex objects
    sizes: tuple[int, int, int]
    chunk_crcs: tuple[int, ...]
    uploaded_ms: int = 0

    @property
    def end(self) -> int:
        return self.base + self.size

    def key(self, topic: str, log: str, suffix: str) -> str:
        return segment_key(topic, log, self.base, self.id, suffix)


@dataclass
class Manifest:
    topic: str
    log: str
    writer: str = ""  # the writing store's id (DATA/.logfs/remote.json)
    segments: list[RemoteSegmentInfo] = field(default_factory=list)
    etag: str | None = None  # of the object this was read from or committed as

    @property
    def start(self) -> int | None:
        return self.segments[0].base if self.segments else None

    @property
    def end(self) -> int | None:
        return self.segments[-1].end if self.segments else None

    @property
    def bytes(self) -> int:
        return sum(s.size for s in self.segments)

    def find(self, base: int) -> RemoteSegmentInfo | None:
        for seg in self.segments:
            if seg.base == base:
                return seg
        return None

    def encode(self) -> bytes:
        body = {"format": FORMAT, "topic": self.topic, "log": self.log, "writer": self.writer,
                "segments": [_encode_segment(s) for s in self.segments]}
        return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes, etag: str | None = None) -> "Manifest":
        """Raises CorruptManifest."""
        try:
            body = json.loads(data)
            if body.get("format") != FORMAT:
                raise CorruptManifest(f"manifest format {body.get('format')!r} is not {FORMAT}")
            segments = [_decode_segment(s) for s in body["segments"]]
            manifest = cls(str(body["topic"]), str(body["log"]), str(body.get("writer", "")),
                           segments, etag)
        except CorruptManifest:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptManifest(f"manifest does not decode: {exc}") from None
        for a, b in zip(segments, segments[1:]):
            if b.base != a.end:
                raise CorruptManifest(f"manifest of {manifest.topic}/{manifest.log}: segment {b.base} "
                                      f"does not follow {a.base} (+{a.size})")
        return manifest


def _encode_segment(seg: RemoteSegmentInfo) -> dict:
    out = asdict(seg)
    out["md5"] = list(seg.md5)
    out["sizes"] = list(seg.sizes)
    out["chunk_crcs"] = "".join(f"{c:08x}" for c in seg.chunk_crcs)
    return out


def _decode_segment(d: dict) -> RemoteSegmentInfo:
    crcs = d["chunk_crcs"]
    seg = RemoteSegmentInfo(
        base=int(d["base"]), size=int(d["size"]), base_record=int(d["base_record"]),
        records=int(d["records"]), boundary=bool(d["boundary"]),
        first_ms=None if d["first_ms"] is None else int(d["first_ms"]),
        last_ms=None if d["last_ms"] is None else int(d["last_ms"]),
        id=str(d["id"]), md5=tuple(str(x) for x in d["md5"]),  # type: ignore[arg-type]
        sizes=tuple(int(x) for x in d["sizes"]),  # type: ignore[arg-type]
        chunk_crcs=tuple(int(crcs[i:i + 8], 16) for i in range(0, len(crcs), 8)),
        uploaded_ms=int(d.get("uploaded_ms", 0)))
    if seg.size < 0 or len(seg.chunk_crcs) != chunk_count(seg.size) or len(seg.md5) != 3:
        raise CorruptManifest(f"manifest entry of segment {seg.base} is inconsistent")
    return seg


def chunk_count(size: int) -> int:
    return (size + CHUNK_BYTES - 1) // CHUNK_BYTES


def log_prefix(topic: str, log: str) -> str:
    return f"{topic}/{log}/"


def manifest_key(topic: str, log: str) -> str:
    return f"{topic}/{log}/manifest.json"


def segment_key(topic: str, log: str, base: int, seg_id: str, suffix: str) -> str:
    return f"{topic}/{log}/segments/{base:020d}-{seg_id}{suffix}"


def parse_segment_key(rest: str) -> tuple[int, str, str] | None:
    """``segments/<base>-<id><suffix>`` (relative to the log prefix) -> (base, id, suffix)."""
    if not rest.startswith("segments/"):
        return None
    name = rest[len("segments/"):]
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            stem = name[:-len(suffix)]
            base, sep, seg_id = stem.partition("-")
            if sep and base.isdigit() and len(base) == 20 and seg_id:
                return int(base), seg_id, suffix
    return None
