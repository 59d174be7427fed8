"""Speed of the Kafka RecordBatch v2 codec (logfs.kafka.records): records per second
through :func:`decode_batches` (a Produce's records) and :func:`encode_batch` (a
Fetch's answer), uncompressed and with each codec.

The workload: records of 100 bytes (99 bytes of log-like text and the newline), in
batches of about 1 MiB (10,485 records), the first batch base offset 0. Encode is timed
from the lines to a finished batch (header, CRC-32C, compression); decode from a
finished batch to the joined values (CRC, decompression, the record walk). Each figure
is the best of ``--repeat`` passes over ``--records`` records. The targets, on 100-byte
records in 1 MiB batches: 2,000,000 records/s each way, uncompressed.

    python -m logfs.bench.kafka_records_bench                  # 1M records, best of 3
    python -m logfs.bench.kafka_records_bench --records 200000 --repeat 1

prints one JSON line: ``decode_rps`` and ``encode_rps`` per codec, the targets, and
``ok`` (both uncompressed figures meet their targets).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

from logfs.kafka.records import decode_batches, encode_batch

__all__ = ["CODECS", "TARGET_RPS", "make_lines", "measure", "main"]

TARGET_RPS = 2_000_000
CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
RECORD_BYTES = 100
BATCH_BYTES = 1 << 20
TIMESTAMP_MS = 1_767_225_600_000


def make_lines(records: int, seed: int = 1) -> bytes:
    """*records* lines of RECORD_BYTES each, log-like text (a timestamp, a level, a few
    words and a number), so the codecs see realistic redundancy."""
    rng = random.Random(seed)
    words = [b"GET", b"POST", b"/api/v1/items", b"/health", b"user", b"ok", b"timeout",
             b"cache", b"miss", b"hit", b"db", b"retry", b"shard", b"queue", b"flush"]
    out = []
    for i in range(records):
        head = b"2026-01-01T00:%02d:%02d.%03dZ %s " % (i // 60000 % 60, i // 1000 % 60, i % 1000,
                                                       rng.choice((b"INFO", b"WARN", b"DEBUG")))
        body = b" ".join(rng.choice(words) for _ in range(8)) + b" id=%d" % rng.getrandbits(40)
        line = (head + body).ljust(RECORD_BYTES - 1, b".")[:RECORD_BYTES - 1]
        out.append(line + b"\n")
    return b"".join(out)


def _split(lines: bytes) -> list[memoryview]:
    """*lines* cut into whole-line pieces of about BATCH_BYTES."""
    view, pieces, at = memoryview(lines), [], 0
    while at < len(lines):
        cut = lines.rfind(b"\n", at, at + BATCH_BYTES) + 1 if at + BATCH_BYTES < len(lines) else len(lines)
        pieces.append(view[at:cut])
        at = cut
    return pieces


def measure(lines: bytes, codec: int, repeat: int) -> tuple[float, float]:
    """Best encode and decode records/s of *lines* with compression *codec*. Raises
    AssertionError if a round trip does not give the lines back."""
    pieces = _split(lines)
    total = lines.count(b"\n")
    best_enc = best_dec = float("inf")
    batches: list[bytes] = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        offset, batches = 0, []
        for piece in pieces:
            batch, count = encode_batch(piece, offset, TIMESTAMP_MS, compression=codec)
            batches.append(batch)
            offset += count
        best_enc = min(best_enc, time.perf_counter() - t0)
    for _ in range(repeat):
        t0 = time.perf_counter()
        decoded = [decode_batches(b) for b in batches]
        best_dec = min(best_dec, time.perf_counter() - t0)
    if b"".join(d.data for d in decoded) != lines:
        raise AssertionError(f"codec {codec}: the round trip changed the lines")
    return total / best_enc, total / best_dec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m logfs.bench.kafka_records_bench",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--codecs", default=",".join(CODECS),
                    help="comma-separated subset of " + ",".join(CODECS))
    args = ap.parse_args(argv)
    lines = make_lines(args.records)
    enc, dec = {}, {}
    for name in args.codecs.split(","):
        e, d = measure(lines, CODECS[name], args.repeat)
        enc[name], dec[name] = round(e), round(d)
    figures = {
        "bench": "kafka_records", "records": args.records, "record_bytes": RECORD_BYTES,
        "batch_bytes": BATCH_BYTES, "decode_rps": dec, "encode_rps": enc,
        "target_rps": TARGET_RPS,
        "ok": dec.get("none", 0) >= TARGET_RPS and enc.get("none", 0) >= TARGET_RPS,
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
