"""Kafka's RecordBatch v2 (magic 2), decoded from Produce requests and encoded for Fetch
answers: logfs lines in, logfs lines out.

Theory of operation
-------------------
A log holds newline-terminated lines; a record's value is a line without its
``"\\n"``, and a record's offset is its line number. Decoding a produce's ``records``
field therefore yields one bytes object, the values each followed by ``"\\n"`` (what
is appended to the log), plus the producer fields that idempotence needs. Keys and
headers are checked for framing and dropped. Encoding turns whole lines into one batch
of records with null keys, no headers and timestamp type LogAppendTime.

Per batch, Python reads the 61-byte header (one ``struct`` call), checks the CRC-32C
(one ``crc32c`` call over attributes..end) and decompresses; the per-record walk is in
C (``_records.c``): it joins the values, refuses null values and values holding a
newline (:class:`InvalidRecord`) and malformed framing (:class:`CorruptBatch`), and
never creates a Python object per record.

Batch layout (big-endian; Kafka's ``DefaultRecordBatch``)::

    0        8        12       16    17    21     23        27        35        43
    | base   | batch  | leader | magic| crc  | attrs | last    | base    | max     |
    | offset | length | epoch  | =2   | u32  | i16   | offset  | time-   | time-   |
    | i64    | i32    | i32    | i8   |      |       | delta   | stamp   | stamp   |
                                                     | i32     | i64     | i64     |
    43         51       53        57      61
    | producer | prod.  | base    | record | records...
    | id i64   | epoch  | seq i32 | count  |
    |          | i16    |         | i32    |

``batch length`` counts the bytes after itself (49 header bytes + the records); the
CRC covers byte 21 to the end. Attributes: bits 0-2 compression (0 none, 1 gzip, 2
snappy, 3 lz4, 4 zstd), bit 3 timestamp type (1 LogAppendTime), bit 4 transactional,
bit 5 control. When compressed, everything after the header is one compressed stream
of the records. A record (zigzag varints)::

    length | attributes i8 | timestampDelta varlong | offsetDelta | keyLength | key
    | valueLength | value | headerCount | (keyLength | key | valueLength | value)*

Compression on the wire: gzip is a gzip stream; lz4 is an LZ4 frame (Kafka's Java
reader wants independent blocks, which :func:`encode_batch` writes); zstd is a zstd
frame; snappy is either raw snappy (librdkafka writes one raw block) or the xerial
framing of the Java client (``\\x82SNAPPY\\x00``, version and compat int32s, then
``int32 length | raw snappy block`` chunks), which :func:`encode_batch` writes as Java
does. Decompression stops at ``max_bytes`` (into a lazily mapped buffer), so a small
batch cannot expand into a large allocation.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass

import cramjam
from crc32c import crc32c

try:
    from . import _records
except ImportError as exc:  # pragma: no cover - an install without the build step
    raise ImportError("logfs.kafka._records (the C part of the RecordBatch codec) is not "
                      "built: run `pip install -e .` in the checkout") from exc

__all__ = ["COMPRESSION_NONE", "COMPRESSION_GZIP", "COMPRESSION_SNAPPY", "COMPRESSION_LZ4",
           "COMPRESSION_ZSTD", "DEFAULT_MAX_BYTES", "CorruptBatch", "DecodedBatches",
           "InvalidRecord", "count_records", "decode_batches", "encode_batch"]

COMPRESSION_NONE, COMPRESSION_GZIP, COMPRESSION_SNAPPY, COMPRESSION_LZ4, COMPRESSION_ZSTD = range(5)
DEFAULT_MAX_BYTES = 64 << 20

_HEADER = struct.Struct(">qiibIhiqqqhii")
_PREFIX = struct.Struct(">qiib")           # up to the magic byte: also fits v0/v1 message sets
_CRC_START = 21                            # attributes .. end is under the CRC
HEADER_SIZE = _HEADER.size                 # 61
_LENGTH_OVERHEAD = HEADER_SIZE - 12        # batch length of a batch without records
_MAGIC = 2
_LOG_APPEND_TIME = 0x08
_TRANSACTIONAL = 0x10
_CONTROL = 0x20
_INT32_MAX = 2**31 - 1

_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = _XERIAL_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK = 32 * 1024                  # snappy-java's default block size
# LZ4 frame: magic, FLG 0x60 (version 1, independent blocks, no checksums), BD 0x40
# (64 KiB blocks, as Kafka's KafkaLZ4BlockOutputStream), header checksum
# (xxh32(FLG BD) >> 8) & 0xff = 0x82.
_LZ4_FRAME_HEADER = b"\x04\x22\x4d\x18\x60\x40\x82"
_LZ4_BLOCK = 64 * 1024
_LZ4_UNCOMPRESSED = 0x80000000


class InvalidRecord(Exception):
    """A well-formed record logfs cannot store: a null value, or a value holding a
    newline. ``index`` is the record's position among all records of the request's
    batches (from 0), or -1 when no one record is to blame."""

    def __init__(self, message: str, index: int = -1) -> None:
        super().__init__(message)
        self.index = index


class CorruptBatch(Exception):
    """Bytes that are not valid RecordBatch v2: a CRC mismatch, a truncated batch, a
    magic other than 2, an unknown compression, a failed or oversized decompression,
    or record framing that disagrees with itself."""


@dataclass(frozen=True, slots=True)
class DecodedBatches:
    """What one partition's ``records`` field of a Produce request holds."""

    data: bytes            # every record's value + b"\n", in order: what the log appends
    count: int             # number of records
    producer_id: int       # of the first batch (-1 if none)
    producer_epoch: int
    base_sequence: int     # of the first batch (-1 when not idempotent)
    last_sequence: int     # base_sequence + count - 1, wrapping as Kafka's (or -1)
    transactional: bool    # any batch has the transactional bit
    control: bool          # any batch is a control batch
    max_timestamp: int     # the largest record timestamp (-1 without records)


def _header(mv: memoryview, pos: int, n: int) -> tuple:
    """The header fields of the batch at *pos* and its end. Raises CorruptBatch."""
    if n - pos < _PREFIX.size:
        raise CorruptBatch(f"truncated batch header at byte {pos} ({n - pos} bytes left)")
    _, length, _, magic = _PREFIX.unpack_from(mv, pos)
    if magic != _MAGIC:
        if magic in (0, 1):
            raise CorruptBatch(f"message format v{magic} (magic {magic}) at byte {pos}: only "
                               "RecordBatch v2 is supported; use a client of Kafka 0.11 or later")
        raise CorruptBatch(f"unknown magic {magic} at byte {pos}")
    if length < _LENGTH_OVERHEAD:
        raise CorruptBatch(f"batch length {length} at byte {pos} is below the header's "
                           f"{_LENGTH_OVERHEAD}")
    end = pos + 12 + length
    if end > n:
        raise CorruptBatch(f"truncated batch at byte {pos}: length {length}, "
                           f"{n - pos - 12} bytes left")
    return _HEADER.unpack_from(mv, pos), end


def decode_batches(buf: bytes | memoryview, *, max_bytes: int = DEFAULT_MAX_BYTES) -> DecodedBatches:
    """Decode the ``records`` field of one partition of a Produce request: one or more
    RecordBatch v2 back to back. Checks each batch's CRC-32C, decompresses, and joins
    the values. *max_bytes* bounds the decompressed size of all compressed batches
    together. Raises CorruptBatch (see there) or InvalidRecord (a null value or a
    value with a newline, with its index); then nothing is returned. Pure computation:
    does not block on I/O."""
    mv = memoryview(buf).cast("B") if not isinstance(buf, bytes) else memoryview(buf)
    with mv:
        return _decode(mv, max_bytes)


def _decode(mv: memoryview, max_bytes: int) -> DecodedBatches:
    n = len(mv)
    pos = 0
    pieces: list[bytes] = []
    count = 0
    first = None
    transactional = control = False
    max_ts = -1
    budget = max_bytes
    while pos < n:
        h, end = _header(mv, pos, n)
        (_, _, _, _, crc, attrs, last_delta, base_ts, _, pid, epoch, base_seq, batch_count) = h
        if crc32c(mv[pos + _CRC_START:end]) != crc:
            raise CorruptBatch(f"CRC-32C mismatch in the batch at byte {pos}")
        if batch_count < 0 or (batch_count > 0 and last_delta != batch_count - 1):
            raise CorruptBatch(f"batch at byte {pos}: record count {batch_count} disagrees "
                               f"with lastOffsetDelta {last_delta}")
        codec = attrs & 0x07
        body = mv[pos + HEADER_SIZE:end]
        if codec == COMPRESSION_NONE:
            result = _records.decode_records(body, batch_count)
        else:
            out, size = _decompress(codec, body, budget, pos)
            budget -= size
            try:
                with memoryview(out) as ov, ov[:size] as plain:
                    result = _records.decode_records(plain, batch_count)
            finally:
                if isinstance(out, mmap.mmap):
                    out.close()
        kind, bad, payload, max_delta = result
        if kind == 1:
            raise InvalidRecord(f"record {count + bad}: {payload}", count + bad)
        if kind != 0:
            raise CorruptBatch(f"batch at byte {pos}, record {bad}: {payload}")
        if first is None:
            first = (pid, epoch, base_seq)
        if batch_count:
            pieces.append(payload)
            max_ts = max(max_ts, base_ts + max_delta)
        count += batch_count
        transactional |= bool(attrs & _TRANSACTIONAL)
        control |= bool(attrs & _CONTROL)
        pos = end
    pid, epoch, base_seq = first if first is not None else (-1, -1, -1)
    return DecodedBatches(
        data=pieces[0] if len(pieces) == 1 else b"".join(pieces),
        count=count, producer_id=pid, producer_epoch=epoch, base_sequence=base_seq,
        last_sequence=_last_sequence(base_seq, count), transactional=transactional,
        control=control, max_timestamp=max_ts)


def _last_sequence(base: int, count: int) -> int:
    """*base* + *count* - 1, wrapping past 2**31-1 to 0 as Kafka's
    ``DefaultRecordBatch.incrementSequence``; -1 when *base* is -1."""
    if base < 0:
        return -1
    last = base + count - 1
    return last - _INT32_MAX - 1 if last > _INT32_MAX else last


def _decompress(codec: int, body: memoryview, budget: int, pos: int) -> tuple[mmap.mmap | bytearray, int]:
    """The decompressed records of a batch and their size, at most *budget* bytes.
    Raises CorruptBatch."""
    try:
        if codec == COMPRESSION_SNAPPY:
            return _snappy_decompress(body, budget, pos)
        if codec == COMPRESSION_GZIP:
            module = cramjam.gzip
        elif codec == COMPRESSION_LZ4:
            module = cramjam.lz4
        elif codec == COMPRESSION_ZSTD:
            module = cramjam.zstd
        else:
            raise CorruptBatch(f"batch at byte {pos}: unknown compression codec {codec}")
        # An anonymous map is zero pages until written: only what decompresses is paid.
        out = mmap.mmap(-1, budget + 1, flags=mmap.MAP_PRIVATE)
        try:
            size = module.decompress_into(body, out)
            if size > budget:
                raise CorruptBatch(f"batch at byte {pos} decompresses beyond {budget} bytes")
        except BaseException:
            out.close()
            raise
        return out, size
    except cramjam.DecompressionError as exc:
        raise CorruptBatch(f"batch at byte {pos}: {_CODECS[codec]} decompression failed "
                           f"(corrupt, or beyond {budget} bytes): {exc}") from None


def _snappy_decompress(body: memoryview, budget: int, pos: int) -> tuple[bytearray, int]:
    """Raw snappy (librdkafka) or xerial-framed snappy (the Java client)."""
    if body[:8] == _XERIAL_MAGIC and len(body) >= 16:
        chunks = []
        at, total = 16, 0
        while at < len(body):
            if len(body) - at < 4:
                raise CorruptBatch(f"batch at byte {pos}: truncated xerial snappy chunk")
            (clen,) = struct.unpack_from(">i", body, at)
            if clen < 0 or clen > len(body) - at - 4:
                raise CorruptBatch(f"batch at byte {pos}: xerial snappy chunk length {clen} "
                                   "out of bounds")
            chunk = body[at + 4:at + 4 + clen]
            total += cramjam.snappy.decompress_raw_len(chunk)
            if total > budget:
                raise CorruptBatch(f"batch at byte {pos} decompresses beyond {budget} bytes")
            chunks.append(chunk)
            at += 4 + clen
    else:
        chunks = [body]
        total = cramjam.snappy.decompress_raw_len(body)
        if total > budget:
            raise CorruptBatch(f"batch at byte {pos} decompresses beyond {budget} bytes")
    out = bytearray(total)
    at = 0
    with memoryview(out) as ov:
        for chunk in chunks:
            ulen = cramjam.snappy.decompress_raw_len(chunk)
            with ov[at:at + ulen] as dst:
                if cramjam.snappy.decompress_raw_into(chunk, dst) != ulen:
                    raise CorruptBatch(f"batch at byte {pos}: snappy chunk shorter than declared")
            at += ulen
    return out, total


_CODECS = {COMPRESSION_GZIP: "gzip", COMPRESSION_SNAPPY: "snappy", COMPRESSION_LZ4: "lz4",
           COMPRESSION_ZSTD: "zstd"}


def _compress(codec: int, records: bytes) -> bytes:
    """*records* compressed as Kafka's Java producer writes them. Raises ValueError for
    an unknown codec."""
    if codec == COMPRESSION_GZIP:
        return bytes(cramjam.gzip.compress(records))
    if codec == COMPRESSION_SNAPPY:
        parts = [_XERIAL_HEADER]
        for at in range(0, max(len(records), 1), _XERIAL_BLOCK):  # one chunk even if empty
            block = bytes(cramjam.snappy.compress_raw(records[at:at + _XERIAL_BLOCK]))
            parts += (struct.pack(">i", len(block)), block)
        return b"".join(parts)
    if codec == COMPRESSION_LZ4:
        parts = [_LZ4_FRAME_HEADER]
        for at in range(0, len(records), _LZ4_BLOCK):
            raw = records[at:at + _LZ4_BLOCK]
            block = bytes(cramjam.lz4.compress_block(raw, store_size=False))
            if len(block) >= len(raw):
                parts += (struct.pack("<I", len(raw) | _LZ4_UNCOMPRESSED), raw)
            else:
                parts += (struct.pack("<I", len(block)), block)
        parts.append(b"\0\0\0\0")  # end mark
        return b"".join(parts)
    if codec == COMPRESSION_ZSTD:
        return bytes(cramjam.zstd.compress(records))
    raise ValueError(f"unknown compression codec {codec}")


def encode_batch(lines: bytes | memoryview, base_offset: int, timestamp_ms: int, *,
                 compression: int = COMPRESSION_NONE) -> tuple[bytes, int]:
    """One RecordBatch v2 of *lines* (whole lines, each ending in b"\\n", the first
    being record *base_offset*) and its record count: a record per line, value = the
    line without its newline, null key, no headers; timestamp type LogAppendTime with
    first and max timestamp *timestamp_ms*; producer id, epoch and base sequence -1;
    partition leader epoch 0. *compression* is a codec number (0-4). Raises ValueError
    when *lines* does not end with a newline or the codec is unknown, OverflowError
    beyond Kafka's int32 limits. Pure computation: does not block on I/O."""
    if not 0 <= compression <= COMPRESSION_ZSTD:
        raise ValueError(f"unknown compression codec {compression}")
    records, count = _records.encode_records(lines)
    if compression != COMPRESSION_NONE:
        records = _compress(compression, records)
    if len(records) > _INT32_MAX - _LENGTH_OVERHEAD:
        raise OverflowError("compressed records too large for one RecordBatch")
    tail = _HEADER.pack(base_offset, _LENGTH_OVERHEAD + len(records), 0, _MAGIC, 0,
                        compression | _LOG_APPEND_TIME, count - 1, timestamp_ms,
                        timestamp_ms, -1, -1, -1, count)[_CRC_START:]
    crc = crc32c(records, crc32c(tail))
    head = struct.pack(">qiibI", base_offset, _LENGTH_OVERHEAD + len(records), 0, _MAGIC, crc)
    return b"".join((head, tail, records)), count


def count_records(buf: bytes | memoryview) -> int:
    """The number of records in a ``records`` field: the sum of its batches' record
    counts, read from the headers alone (no CRC check, no decompression). Raises
    CorruptBatch for a truncated batch or a magic other than 2."""
    mv = memoryview(buf).cast("B") if not isinstance(buf, bytes) else memoryview(buf)
    with mv:
        n, pos, total = len(mv), 0, 0
        while pos < n:
            h, pos = _header(mv, pos, n)
            if h[-1] < 0:
                raise CorruptBatch(f"negative record count {h[-1]}")
            total += h[-1]
        return total
