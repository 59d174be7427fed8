"""The RecordBatch v2 codec (logfs.kafka.records) on bytes alone: round trips, every
codec both ways, batches built and read by an independent implementation
(kafka-python's DefaultRecordBatchBuilder / DefaultRecordBatch), a batch written out
by hand from Kafka's layout, refusals (null value, newline, CRC, truncation, magic,
codec, hostile framing), a decompression bomb, and hypothesis fuzzing in which only
CorruptBatch and InvalidRecord may come out."""

from __future__ import annotations

import gzip
import resource
import struct

import cramjam
import pytest
from crc32c import crc32c
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from logfs.kafka import records as R
from logfs.kafka.records import (CorruptBatch, InvalidRecord, count_records, decode_batches,
                                 encode_batch)

kafka_records = pytest.importorskip("kafka.record.default_records")
Builder, Reader = kafka_records.DefaultRecordBatchBuilder, kafka_records.DefaultRecordBatch

CODECS = [0, 1, 2, 3, 4]
HEADER = struct.Struct(">qiibIhiqqqhii")


# -- helpers written from Kafka's layout, independent of the module's encoder --------------

def zz(n: int) -> bytes:
    """Zigzag varint of n (Kafka's ByteUtils.writeVarlong)."""
    u = (n << 1) ^ (n >> 63)
    out = bytearray()
    while u >= 0x80:
        out.append((u & 0x7F) | 0x80)
        u >>= 7
    out.append(u)
    return bytes(out)


def record(value: bytes | None, offset_delta: int = 0, key: bytes | None = None,
           headers: list[tuple[bytes, bytes | None]] = (), ts_delta: int = 0, attrs: int = 0) -> bytes:
    body = bytes([attrs]) + zz(ts_delta) + zz(offset_delta)
    body += zz(-1) if key is None else zz(len(key)) + key
    body += zz(-1) if value is None else zz(len(value)) + value
    body += zz(len(headers))
    for hk, hv in headers:
        body += zz(len(hk)) + hk + (zz(-1) if hv is None else zz(len(hv)) + hv)
    return zz(len(body)) + body


def batch(records: bytes, count: int, *, attrs: int = 0, base_offset: int = 0, pid: int = -1,
          epoch: int = -1, seq: int = -1, base_ts: int = 1000, max_ts: int = 1000,
          last_delta: int | None = None, magic: int = 2, crc: int | None = None) -> bytes:
    """A batch around *records* (already compressed if attrs say so), CRC computed."""
    last = count - 1 if last_delta is None else last_delta
    head = HEADER.pack(base_offset, 49 + len(records), 0, magic, 0, attrs, last, base_ts, max_ts,
                       pid, epoch, seq, count)
    c = crc32c(head[21:] + records) if crc is None else crc
    return head[:17] + struct.pack(">I", c) + head[21:] + records


def body_of(b: bytes) -> bytes:
    return b[61:]


def rebatch(b: bytes, records: bytes, attrs: int) -> bytes:
    """Batch *b* with its records replaced (and attributes set), CRC recomputed."""
    f = list(HEADER.unpack_from(b))
    f[1], f[5], f[4] = 49 + len(records), attrs, 0
    head = HEADER.pack(*f)
    return head[:17] + struct.pack(">I", crc32c(head[21:] + records)) + head[21:] + records


def kp_build(values, codec=0, *, keys=None, headers=None, pid=-1, epoch=-1, seq=-1,
             transactional=False, timestamps=None) -> bytes:
    """A batch built by kafka-python (what its producer sends)."""
    b = Builder(magic=2, compression_type=codec, is_transactional=transactional,
                producer_id=pid, producer_epoch=epoch, base_sequence=seq, batch_size=1 << 30)
    for i, v in enumerate(values):
        assert b.append(i, timestamp=(timestamps[i] if timestamps else 1_700_000_000_000 + i),
                        key=keys[i] if keys else None, value=v,
                        headers=headers[i] if headers else []) is not None
    return bytes(b.build())


def kp_read(b: bytes) -> tuple:
    r = Reader(bytearray(b))
    assert r.validate_crc()
    return r, list(r)


LINES = b"".join(b"record %d: %s\n" % (i, b"x" * (i % 50)) for i in range(500))


# -- round trips ------------------------------------------------------------------------

@pytest.mark.parametrize("codec", CODECS)
def test_round_trip_each_codec(codec):
    b, n = encode_batch(LINES, 1234, 1_700_000_000_000, compression=codec)
    assert n == 500
    assert b[21 + 2 - 1] & 0x07 == codec  # attributes' low byte
    d = decode_batches(b)
    assert (d.data, d.count) == (LINES, 500)
    assert d.max_timestamp == 1_700_000_000_000
    assert (d.producer_id, d.producer_epoch, d.base_sequence, d.last_sequence) == (-1, -1, -1, -1)
    assert not d.transactional and not d.control


@given(st.lists(st.binary(max_size=300).map(lambda v: v.replace(b"\n", b"")), max_size=60),
       st.integers(0, 2**62), st.integers(0, 2**62), st.sampled_from(CODECS))
@settings(max_examples=150, deadline=None)
def test_round_trip_property(values, base_offset, ts, codec):
    lines = b"".join(v + b"\n" for v in values)
    b, n = encode_batch(lines, base_offset, ts, compression=codec)
    assert n == len(values) == count_records(b)
    d = decode_batches(memoryview(b))
    assert (d.data, d.count) == (lines, len(values))
    # and kafka-python reads the same batch the same way
    r, recs = kp_read(b)
    assert [x.value for x in recs] == values
    assert [x.offset for x in recs] == list(range(base_offset, base_offset + n))


def test_multiple_batches_join_in_order():
    a, _ = encode_batch(b"a\nb\n", 0, 5)
    b, _ = encode_batch(b"c\n", 2, 9, compression=4)
    c, _ = encode_batch(b"d\ne\n", 3, 7, compression=2)
    d = decode_batches(a + b + c)
    assert (d.data, d.count, d.max_timestamp) == (b"a\nb\nc\nd\ne\n", 5, 9)
    assert count_records(a + b + c) == 5


def test_empty_inputs():
    d = decode_batches(b"")
    assert (d.data, d.count, d.producer_id, d.base_sequence, d.max_timestamp) == (b"", 0, -1, -1, -1)
    b, n = encode_batch(b"", 0, 1)
    assert n == 0 and decode_batches(b).count == 0
    assert encode_batch(b"\n\n", 0, 1)[1] == 2 and decode_batches(encode_batch(b"\n\n", 0, 1)[0]).data == b"\n\n"


def test_encode_refuses_a_partial_line_and_unknown_codec():
    with pytest.raises(ValueError):
        encode_batch(b"a\nb", 0, 0)
    with pytest.raises(ValueError):
        encode_batch(b"a\n", 0, 0, compression=5)


# -- known bytes ------------------------------------------------------------------------

def test_encode_matches_bytes_written_from_the_spec():
    lines = b"hello\nworld\n\n"
    recs = record(b"hello", 0) + record(b"world", 1) + record(b"", 2)
    want = batch(recs, 3, attrs=0x08, base_offset=5, base_ts=1234, max_ts=1234)
    got, n = encode_batch(lines, 5, 1234)
    assert n == 3 and got == want
    # the first record, byte by byte: length 11, attrs, ts delta, offset delta, key -1,
    # value length 5, "hello", no headers
    assert got[61:73] == bytes.fromhex("16 00 00 00 01 0a") + b"hello" + b"\x00"


FIXED_VECTOR = bytes.fromhex(
    "0000000000000000" "00000045" "00000000" "02" "bbcd821a"   # base offset, length, epoch, magic, crc
    "0000" "00000001" "00000000000003e8" "00000000000003e9"    # attrs, last delta, first/max ts
    "ffffffffffffffff" "ffff" "ffffffff" "00000002"            # producer id, epoch, base seq, count
    "10" "00" "00" "00" "01" "04" "7631" "00"                  # len 8, ts+0, offset 0, key null, "v1"
    "14" "00" "02" "02" "02" "6b" "06" "74776f" "00")          # len 10, ts+1, offset 1, key "k", "two"


def test_fixed_vector():
    """A literal batch, as kafka-python's producer writes two records (CreateTime
    1000/1001, keys None/b"k", values b"v1"/b"two"), annotated field by field."""
    assert kp_build([b"v1", b"two"], keys=[None, b"k"], timestamps=[1000, 1001]) == FIXED_VECTOR
    assert crc32c(FIXED_VECTOR[21:]) == 0xBBCD821A
    d = decode_batches(FIXED_VECTOR)
    assert (d.data, d.count, d.max_timestamp) == (b"v1\ntwo\n", 2, 1001)
    assert count_records(FIXED_VECTOR) == 2


# -- an independent implementation both ways --------------------------------------------

@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_reads_our_batches(codec):
    b, n = encode_batch(LINES, 700, 1_700_000_123_456, compression=codec)
    r, recs = kp_read(b)
    assert r.compression_type == codec
    assert r.timestamp_type == 1  # LogAppendTime
    assert (r.producer_id, r.producer_epoch, r.base_sequence, r.leader_epoch) == (-1, -1, -1, 0)
    assert r.first_timestamp == r.max_timestamp == 1_700_000_123_456
    assert [x.offset for x in recs] == list(range(700, 1200))
    assert all(x.timestamp == 1_700_000_123_456 and x.key is None and x.headers == [] for x in recs)
    assert b"".join(x.value + b"\n" for x in recs) == LINES


@pytest.mark.parametrize("codec", CODECS)
def test_we_read_kafka_python_batches(codec):
    values = [b"value %d " % i * (1 + i % 7) for i in range(2000)]
    keys = [b"key%d" % i if i % 3 else None for i in range(2000)]
    headers = [[("h", b"1"), ("n", None)] if i % 5 == 0 else [] for i in range(2000)]
    b = kp_build(values, codec, keys=keys, headers=headers, pid=77, epoch=3, seq=40)
    assert b[22] & 0x07 == codec  # kafka-python really compressed it
    d = decode_batches(b)
    assert d.data == b"".join(v + b"\n" for v in values)
    assert (d.count, d.producer_id, d.producer_epoch, d.base_sequence, d.last_sequence) == (
        2000, 77, 3, 40, 2039)
    assert d.max_timestamp == 1_700_000_000_000 + 1999


@given(st.lists(st.tuples(st.binary(max_size=40).map(lambda v: v.replace(b"\n", b"")),
                          st.none() | st.binary(max_size=20),
                          st.lists(st.tuples(st.text(max_size=5), st.none() | st.binary(max_size=8)),
                                   max_size=3),
                          st.integers(0, 10**6)),
                min_size=1, max_size=40),
       st.sampled_from(CODECS))
@settings(max_examples=100, deadline=None)
def test_we_read_any_kafka_python_batch(recs, codec):
    b = kp_build([r[0] for r in recs], codec, keys=[r[1] for r in recs],
                 headers=[r[2] for r in recs], timestamps=[r[3] for r in recs])
    d = decode_batches(b)
    assert d.data == b"".join(r[0] + b"\n" for r in recs) and d.count == len(recs)
    assert d.max_timestamp == max(r[3] for r in recs)


def test_producer_state_and_flags():
    b = kp_build([b"a", b"b", b"c"], pid=9, epoch=2, seq=2**31 - 2, transactional=True)
    d = decode_batches(b + kp_build([b"d"], pid=9, epoch=2, seq=1))
    assert (d.producer_id, d.producer_epoch, d.base_sequence) == (9, 2, 2**31 - 2)
    assert d.last_sequence == 1  # 2**31-2, 2**31-1, 0, 1: wraps as Kafka's sequences
    assert d.transactional and not d.control
    control = rebatch(b, body_of(b), 0x20)
    assert decode_batches(control).control


def test_librdkafka_style_raw_snappy_and_java_style_xerial():
    plain, n = encode_batch(LINES, 0, 1)
    raw = rebatch(plain, bytes(cramjam.snappy.compress_raw(body_of(plain))), 2)
    assert decode_batches(raw).data == LINES
    xerial, _ = encode_batch(LINES * 200, 0, 1, compression=2)  # > 32 KiB: several chunks
    assert body_of(xerial)[:16] == b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
    assert decode_batches(xerial).data == LINES * 200


def test_lz4_frames_have_independent_blocks_for_java():
    import lz4.frame
    b, _ = encode_batch(LINES * 400, 0, 1, compression=3)  # several 64 KiB blocks
    info = lz4.frame.get_frame_info(body_of(b))
    assert info["block_linked"] is False and info["block_size"] == 64 * 1024
    # a frame with linked blocks (lz4's default, as librdkafka may send) is read too
    linked = rebatch(b, lz4.frame.compress(body_of(encode_batch(LINES * 400, 0, 1)[0]),
                                           block_linked=True), 3)
    assert decode_batches(linked).data == LINES * 400


def test_gzip_with_several_members():
    plain, _ = encode_batch(LINES, 0, 1)
    body = body_of(plain)
    b = rebatch(plain, gzip.compress(body[:1000]) + gzip.compress(body[1000:]), 1)
    assert decode_batches(b).data == LINES


# -- refusals -----------------------------------------------------------------------------

def test_null_value_is_invalid_with_its_index():
    first, _ = encode_batch(b"a\nb\n", 0, 1)
    bad = kp_build([b"x", b"y", None, b"z"])
    with pytest.raises(InvalidRecord) as e:
        decode_batches(first + bad)
    assert e.value.index == 4 and "null" in str(e.value)


@pytest.mark.parametrize("codec", CODECS)
def test_value_with_newline_is_invalid_with_its_index(codec):
    with pytest.raises(InvalidRecord) as e:
        decode_batches(kp_build([b"ok", b"ok", b"ok", b"bad\nvalue", b"ok"], codec))
    assert e.value.index == 3 and "newline" in str(e.value)


def test_bad_crc_anywhere_is_corrupt():
    b, _ = encode_batch(b"hello\nworld\n", 0, 1)
    for i in [17, 18, 21, 22, 30, 60, 61, len(b) - 1]:  # the CRC itself, header, records
        mutated = bytearray(b)
        mutated[i] ^= 0x01
        with pytest.raises(CorruptBatch, match="CRC"):
            decode_batches(bytes(mutated))


@pytest.mark.parametrize("codec", CODECS)
def test_truncated_at_every_byte_is_corrupt(codec):
    one, _ = encode_batch(b"first line\nsecond\n\nfourth record here\n", 0, 1, compression=codec)
    two = one + encode_batch(b"x\ny\n", 4, 2, compression=codec)[0]
    for whole in (one, two):
        for cut in range(1, len(whole)):
            if cut == len(one):
                continue  # a whole first batch
            with pytest.raises(CorruptBatch):
                decode_batches(whole[:cut])
            with pytest.raises(CorruptBatch):
                count_records(whole[:cut]) if cut < len(one) else decode_batches(whole[:cut])


@pytest.mark.parametrize("magic", [0, 1])
def test_old_message_formats_are_refused_clearly(magic):
    # a v0/v1 message set: offset, size, crc, magic, attributes, (timestamp), key, value
    msg = struct.pack(">bb", magic, 0) + (b"\0" * 8 if magic else b"") + struct.pack(">i", -1) \
        + struct.pack(">i", 3) + b"abc"
    ms = struct.pack(">qi", 0, 4 + len(msg)) + struct.pack(">I", 0) + msg
    with pytest.raises(CorruptBatch, match=f"v{magic}.*RecordBatch v2"):
        decode_batches(ms)


def test_unknown_magic_and_codec():
    b, _ = encode_batch(b"a\n", 0, 1)
    with pytest.raises(CorruptBatch, match="magic 3"):
        decode_batches(b[:16] + b"\x03" + b[17:])
    for codec in (5, 6, 7):
        with pytest.raises(CorruptBatch, match="unknown compression"):
            decode_batches(rebatch(b, body_of(b), codec))


def test_header_inconsistencies():
    recs = record(b"a") + record(b"b", 1)
    assert decode_batches(batch(recs, 2)).data == b"a\nb\n"
    for bad in (batch(recs, 2, last_delta=5), batch(recs, -1), batch(recs, 3), batch(recs, 1)):
        with pytest.raises(CorruptBatch):
            decode_batches(bad)
    with pytest.raises(CorruptBatch, match="below"):
        decode_batches(struct.pack(">qii", 0, 48, 0) + b"\x02" + bytes(44))


HOSTILE = {
    "length negative": zz(-5) + b"\0\0\0\x01\x02a\0",
    "length past the end": zz(100) + b"\0\0\0\x01\x02a\0",
    "length zero": zz(0),
    "varint of 6 bytes": b"\x80\x80\x80\x80\x80\x01" + b"\0" * 8,
    "varint wider than 32 bits": b"\xff\xff\xff\xff\x7f" + b"\0" * 8,
    "offsetDelta wider than 32 bits": zz(11) + b"\0\0" + b"\xff\xff\xff\xff\x7f" + b"\x01\x02a\0",
    "varlong of 11 bytes": zz(14) + b"\0" + b"\x80" * 10 + b"\x01" + b"\0\x01\x02a\0",
    "key length -2": zz(6) + b"\0\0\0" + zz(-2) + b"\x02a\0",
    "key past the record": zz(6) + b"\0\0\0" + zz(50) + b"\x02a\0",
    "value length -2": zz(5) + b"\0\0\0\x01" + zz(-2) + b"\0",
    "value past the record": zz(7) + b"\0\0\0\x01" + zz(9) + b"ab\0",
    "negative header count": zz(7) + b"\0\0\0\x01\x02a" + zz(-1),
    "header count past the record": zz(7) + b"\0\0\0\x01\x02a" + zz(1000),
    "header key negative": zz(9) + b"\0\0\0\x01\x02a\x02" + zz(-1) + b"\x01",
    "header value -2": zz(10) + b"\0\0\0\x01\x02a\x02\x02k" + zz(-2),
    "record shorter than its fields": zz(4) + b"\0\0\0\x01\x02a\0",
    "record longer than its fields": zz(8) + b"\0\0\0\x01\x02a\0\0",
    "bytes after the last record": record(b"a") + b"\0",
    "fewer records than counted": b"",
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_framing_is_corrupt(name):
    with pytest.raises(CorruptBatch):
        decode_batches(batch(HOSTILE[name], 1))


def test_a_record_longer_than_its_fields_does_not_resync_on_its_slack():
    """Record 0 claims 8 bytes but its fields take 7; its 8th byte and what follows
    would parse as a valid record 1 if the walk trusted the fields over the length."""
    recs = zz(8) + b"\0\0\0\x01\x02a\0" + zz(7) + b"\0\0\0\x01\x02b\0"
    with pytest.raises(CorruptBatch, match="record 0: record length disagrees"):
        decode_batches(batch(recs, 2))


def test_the_valid_twin_of_the_hostile_records_decodes():
    """The hostile cases above differ from this record only where they say."""
    assert zz(7) + b"\0\0\0\x01\x02a\0" == record(b"a")
    assert decode_batches(batch(zz(7) + b"\0\0\0\x01\x02a\0", 1)).data == b"a\n"
    # a maximal 5-byte varint and a 10-byte varlong are accepted
    rec = b"\0" + b"\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01" + b"\0\x01\x02a\0"
    assert decode_batches(batch(zz(len(rec)) + rec, 1)).count == 1


# -- decompression bounds ---------------------------------------------------------------

@pytest.mark.parametrize("codec", [1, 2, 3, 4])
def test_max_bytes_is_enforced_per_call(codec):
    b, _ = encode_batch(LINES, 0, 1, compression=codec)  # about 16 KiB decompressed
    assert decode_batches(b, max_bytes=len(body_of(encode_batch(LINES, 0, 1)[0]))).count == 500
    with pytest.raises(CorruptBatch, match="beyond"):
        decode_batches(b, max_bytes=10_000)
    with pytest.raises(CorruptBatch, match="beyond"):  # two batches share the budget
        decode_batches(b + b, max_bytes=20_000)


def _bomb(codec: int, size: int) -> bytes:
    """Compressed records field of *size* zero bytes, built without holding them."""
    zeros = bytes(1 << 20)
    if codec == 1:
        import zlib
        z = zlib.compressobj(9, wbits=31)
        one = z.compress(zeros)
        return b"".join([one] + [z.compress(zeros) for _ in range(size >> 20)] + [z.flush()])
    if codec == 2:
        chunk = bytes(cramjam.snappy.compress_raw(zeros))
        return b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1) + (struct.pack(">i", len(chunk)) + chunk) * (size >> 20)
    if codec == 3:
        blk = bytes(cramjam.lz4.compress_block(bytes(65536), store_size=False))
        return R._LZ4_FRAME_HEADER + (struct.pack("<I", len(blk)) + blk) * (size >> 16) + bytes(4)
    c = cramjam.zstd.Compressor()
    for _ in range(size >> 20):
        c.compress(zeros)
    return bytes(c.finish())


@pytest.mark.slow
@pytest.mark.parametrize("codec", [1, 2, 3, 4])
def test_decompression_bomb_is_refused_in_bounded_memory(codec):
    bomb = _bomb(codec, 1 << 30)  # 1 GiB of zeros
    b = batch(bomb, 1, attrs=codec)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CorruptBatch):
        decode_batches(b)  # default max_bytes: 64 MiB
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 200, f"decoding a 1 GiB bomb grew the peak RSS by {grown_mib:.0f} MiB"


def test_raw_snappy_declaring_a_huge_length_is_refused_before_allocating():
    huge = bytes([0xFF, 0xFF, 0xFF, 0xFF, 0x0F]) + b"\0" * 10  # 4 GiB declared
    with pytest.raises(CorruptBatch, match="beyond"):
        decode_batches(batch(huge, 1, attrs=2))


# -- fuzzing ------------------------------------------------------------------------------

def _decode_or_refuse(data: bytes) -> None:
    try:
        d = decode_batches(data, max_bytes=1 << 20)
    except (CorruptBatch, InvalidRecord):
        return
    assert d.data.count(b"\n") == d.count and (not d.data or d.data.endswith(b"\n"))


@given(st.binary(max_size=400))
@settings(max_examples=1000, deadline=None)
def test_fuzz_random_bytes(data):
    _decode_or_refuse(data)
    _decode_or_refuse(batch(data, len(data) % 7))                # random records, valid CRC
    for codec in (1, 2, 3, 4):
        _decode_or_refuse(batch(data, 1, attrs=codec))          # random compressed stream


SEEDS = [encode_batch(b"abc\n\nxyz 123\n" * 3, 0, 5, compression=c)[0] for c in CODECS] + [
    kp_build([b"v", b"w" * 200, b""], c, keys=[b"k", None, b""],
             headers=[[("a", b"b")], [], [("", None)]]) for c in CODECS]


@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                        min_size=1, max_size=6),
       st.booleans(), st.integers(0, 3))
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fuzz_mutated_valid_batches(seed, edits, fix_crc, extra):
    """Byte edits anywhere (header, compressed stream, records); with the CRC fixed up
    afterwards half of the time, so the edits reach decompression and the record walk."""
    m = bytearray(seed)
    for at, value in edits:
        m[at % len(m)] = value
    if fix_crc and len(m) >= 61:
        length = struct.unpack_from(">i", m, 8)[0]
        end = 12 + length
        if 21 <= end <= len(m):
            struct.pack_into(">I", m, 17, crc32c(bytes(m[21:end])))
    _decode_or_refuse(bytes(m) + seed[:extra * 20])


@given(st.sampled_from(CODECS), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                         min_size=1, max_size=4))
@settings(max_examples=800, deadline=None)
def test_fuzz_mutated_records_recompressed(codec, edits):
    """Edits to the uncompressed records, then compressed properly: hostile framing behind
    every codec."""
    plain, _ = encode_batch(b"abc\n\nxyz 123\n" * 3, 0, 5)
    recs = bytearray(body_of(plain))
    for at, value in edits:
        recs[at % len(recs)] = value
    assume(bytes(recs) != body_of(plain))
    b = rebatch(plain, R._compress(codec, bytes(recs)) if codec else bytes(recs), codec)
    _decode_or_refuse(b)
