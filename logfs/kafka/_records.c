/* The hot path of the Kafka RecordBatch v2 codec (logfs/kafka/records.py).
 *
 * Two functions, both on the `records` section of one batch (the bytes after the
 * 61-byte batch header, decompressed): decode_records walks `count` records and
 * returns their values joined with "\n"; encode_records turns newline-terminated
 * lines into records. Batch headers, CRC-32C and compression stay in Python: they
 * cost one call per batch, not per record.
 *
 * Record (all varints zigzag-encoded, as Kafka's ByteUtils.writeVarint):
 *
 *     length varint | attributes int8 | timestampDelta varlong | offsetDelta varint
 *     | keyLength varint | key | valueLength varint | value
 *     | headerCount varint | (headerKeyLength varint | key | headerValueLength varint | value)*
 *
 * The input is hostile (any client can send anything that passes the CRC): every
 * read is checked against the end of the record, and the end of the record against
 * the end of the buffer; lengths are refused when negative (other than -1 where
 * Kafka allows null) or beyond the bytes left; varints longer than 5 bytes (10 for
 * varlongs) or wider than their type are refused.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Outcome kinds returned to Python by decode_records. */
#define KIND_OK 0
#define KIND_INVALID 1 /* a well-formed record logfs cannot store (InvalidRecord) */
#define KIND_CORRUPT 2 /* malformed bytes (CorruptBatch) */

/* Reads an unsigned LEB128 varint of at most `maxbytes` bytes (5 or 10) from *pp,
 * never past `end`. Returns 0 and advances *pp, or -1 when truncated, too long, or
 * wider than 32 bits (maxbytes 5) / 64 bits (maxbytes 10). */
static inline int
read_uvarint(const unsigned char **pp, const unsigned char *end, int maxbytes,
             uint64_t *out)
{
    const unsigned char *p = *pp;
    uint64_t v = 0;
    int i;

    if (p < end && *p < 0x80) { /* the common one-byte case */
        *out = *p;
        *pp = p + 1;
        return 0;
    }
    for (i = 0; i < maxbytes; i++) {
        unsigned char b;
        if (p >= end)
            return -1;
        b = *p++;
        if (i == 9 && (b & 0x7e))
            return -1; /* bits beyond 64 */
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            if (maxbytes == 5 && v > 0xffffffffu)
                return -1; /* bits beyond 32 */
            *out = v;
            *pp = p;
            return 0;
        }
    }
    return -1;
}

/* Reads a zigzag varint (int32) from *pp. Returns 0 or -1 as read_uvarint. */
static inline int
read_varint32(const unsigned char **pp, const unsigned char *end, int64_t *out)
{
    uint64_t u;
    if (read_uvarint(pp, end, 5, &u) < 0)
        return -1;
    *out = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
    return 0;
}

/* Reads a zigzag varlong (int64) from *pp. Returns 0 or -1 as read_uvarint. */
static inline int
read_varint64(const unsigned char **pp, const unsigned char *end, int64_t *out)
{
    uint64_t u;
    if (read_uvarint(pp, end, 10, &u) < 0)
        return -1;
    *out = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
    return 0;
}

/* Bytes taken by the unsigned varint of v. */
static inline Py_ssize_t
uvarint_size(uint64_t v)
{
    Py_ssize_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Writes the unsigned varint of v at p; returns the byte after it. */
static inline unsigned char *
write_uvarint(unsigned char *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    *p++ = (unsigned char)v;
    return p;
}

/* The scan of decode_records, run without the GIL. Returns a KIND_* and, on failure,
 * sets *bad (index of the offending record within the batch) and *why. */
static int
scan_records(const unsigned char *p, const unsigned char *end, Py_ssize_t count,
             unsigned char *out, Py_ssize_t *out_len, int64_t *max_delta,
             Py_ssize_t *bad, const char **why)
{
    unsigned char *o = out;
    int64_t maxd = INT64_MIN;
    Py_ssize_t i;

#define CORRUPT(msg)                                                                 \
    do {                                                                             \
        *bad = i;                                                                    \
        *why = (msg);                                                                \
        return KIND_CORRUPT;                                                         \
    } while (0)

    for (i = 0; i < count; i++) {
        const unsigned char *rend;
        int64_t len, ts, offd, klen, vlen, nh, h;

        if (read_varint32(&p, end, &len) < 0)
            CORRUPT("bad record length varint");
        if (len < 0 || len > end - p)
            CORRUPT("record length beyond the batch");
        rend = p + len;
        if (p >= rend)
            CORRUPT("record without attributes");
        p++; /* attributes: unused */
        if (read_varint64(&p, rend, &ts) < 0)
            CORRUPT("bad timestampDelta varlong");
        if (ts > maxd)
            maxd = ts;
        if (read_varint32(&p, rend, &offd) < 0)
            CORRUPT("bad offsetDelta varint");
        if (read_varint32(&p, rend, &klen) < 0)
            CORRUPT("bad key length varint");
        if (klen < -1 || klen > rend - p)
            CORRUPT("key length out of bounds");
        if (klen > 0)
            p += klen;
        if (read_varint32(&p, rend, &vlen) < 0)
            CORRUPT("bad value length varint");
        if (vlen < -1 || vlen > rend - p)
            CORRUPT("value length out of bounds");
        if (vlen == -1) {
            *bad = i;
            *why = "null value (a tombstone): logfs stores lines, it cannot store a null";
            return KIND_INVALID;
        }
        if (memchr(p, '\n', (size_t)vlen) != NULL) {
            *bad = i;
            *why = "value contains a newline: logfs stores one record per line";
            return KIND_INVALID;
        }
        memcpy(o, p, (size_t)vlen);
        o += vlen;
        *o++ = '\n';
        p += vlen;
        if (read_varint32(&p, rend, &nh) < 0)
            CORRUPT("bad header count varint");
        if (nh < 0)
            CORRUPT("negative header count");
        for (h = 0; h < nh; h++) {
            int64_t hk, hv;
            if (read_varint32(&p, rend, &hk) < 0)
                CORRUPT("bad header key length varint");
            if (hk < 0 || hk > rend - p)
                CORRUPT("header key length out of bounds");
            p += hk;
            if (read_varint32(&p, rend, &hv) < 0)
                CORRUPT("bad header value length varint");
            if (hv < -1 || hv > rend - p)
                CORRUPT("header value length out of bounds");
            if (hv > 0)
                p += hv;
        }
        if (p != rend)
            CORRUPT("record length disagrees with its fields");
    }
    if (p != end) {
        i = count;
        CORRUPT("bytes left after the batch's last record");
    }
#undef CORRUPT
    *out_len = o - out;
    *max_delta = maxd;
    return KIND_OK;
}

PyDoc_STRVAR(decode_records_doc,
"decode_records(records, count) -> (kind, index, payload, max_timestamp_delta)\n\n"
"Walk `count` records of a RecordBatch v2 (`records`: any bytes-like object, the\n"
"decompressed bytes after the batch header) and join their values, each followed\n"
"by b\"\\n\". Returns (0, -1, data: bytes, max timestampDelta or None if count is 0)\n"
"on success; (1, index, message: str, None) for a record logfs cannot store (null\n"
"value, value with a newline); (2, index, message: str, None) for malformed bytes.\n"
"`index` counts records from 0 within this batch. Releases the GIL while scanning.");

/* See decode_records_doc. */
static PyObject *
decode_records(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t count, out_len = 0, bad = -1;
    int64_t max_delta = 0;
    const char *why = NULL;
    PyObject *out, *result;
    int kind;

    (void)self;
    if (!PyArg_ParseTuple(args, "y*n:decode_records", &view, &count))
        return NULL;
    if (count < 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "count must not be negative");
        return NULL;
    }
    /* Each record takes at least 7 bytes and yields its value plus one newline, fewer
     * than its own size: the input's length bounds the output's. */
    out = PyBytes_FromStringAndSize(NULL, view.len);
    if (out == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    kind = scan_records((const unsigned char *)view.buf,
                        (const unsigned char *)view.buf + view.len, count,
                        (unsigned char *)PyBytes_AS_STRING(out), &out_len, &max_delta,
                        &bad, &why);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (kind != KIND_OK) {
        Py_DECREF(out);
        return Py_BuildValue("inss", kind, bad, why, NULL);
    }
    if (_PyBytes_Resize(&out, out_len) < 0)
        return NULL;
    if (count == 0)
        result = Py_BuildValue("inNO", kind, (Py_ssize_t)-1, out, Py_None);
    else
        result = Py_BuildValue("inNL", kind, (Py_ssize_t)-1, out, (long long)max_delta);
    return result;
}

PyDoc_STRVAR(encode_records_doc,
"encode_records(lines) -> (records: bytes, count: int)\n\n"
"One record per line of `lines` (a bytes-like object of whole lines, each ending\n"
"in b\"\\n\"): attributes 0, timestampDelta 0, offsetDelta = line number from 0,\n"
"null key, value = the line without its newline, no headers. Returns the records\n"
"section of a RecordBatch v2 (without the batch header) and the number of records.\n"
"Raises ValueError if `lines` does not end with a newline, OverflowError if the\n"
"batch would pass Kafka's int32 limits. Releases the GIL while writing.");

/* Largest records section: batchLength (int32) = 49 header bytes + the records. */
#define MAX_RECORDS_BYTES ((Py_ssize_t)INT32_MAX - 49)

/* See encode_records_doc. */
static PyObject *
encode_records(PyObject *self, PyObject *args)
{
    Py_buffer view;
    const unsigned char *start, *end, *p;
    Py_ssize_t n = 0, total = 0;
    unsigned char *o;
    PyObject *out;

    (void)self;
    if (!PyArg_ParseTuple(args, "y*:encode_records", &view))
        return NULL;
    start = (const unsigned char *)view.buf;
    end = start + view.len;
    if (view.len > 0 && end[-1] != '\n') {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "lines must end with b\"\\n\"");
        return NULL;
    }
    /* Pass 1: the exact size. Every line ends in '\n' (the last byte is one). */
    for (p = start; p < end; n++) {
        const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
        Py_ssize_t vlen = nl - p;
        Py_ssize_t body = 3 + uvarint_size((uint64_t)n << 1) +
                          uvarint_size((uint64_t)vlen << 1) + vlen + 1;
        total += uvarint_size((uint64_t)body << 1) + body;
        if (total > MAX_RECORDS_BYTES || n >= INT32_MAX) {
            PyBuffer_Release(&view);
            PyErr_SetString(PyExc_OverflowError,
                            "lines too large for one RecordBatch (int32 limits)");
            return NULL;
        }
        p = nl + 1;
    }
    out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    o = (unsigned char *)PyBytes_AS_STRING(out);
    Py_BEGIN_ALLOW_THREADS
    /* Pass 2: write. */
    for (p = start, n = 0; p < end; n++) {
        const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
        Py_ssize_t vlen = nl - p;
        Py_ssize_t body = 3 + uvarint_size((uint64_t)n << 1) +
                          uvarint_size((uint64_t)vlen << 1) + vlen + 1;
        o = write_uvarint(o, (uint64_t)body << 1);
        *o++ = 0; /* attributes */
        *o++ = 0; /* timestampDelta 0 */
        o = write_uvarint(o, (uint64_t)n << 1);
        *o++ = 1; /* key length -1: null */
        o = write_uvarint(o, (uint64_t)vlen << 1);
        memcpy(o, p, (size_t)vlen);
        o += vlen;
        *o++ = 0; /* no headers */
        p = nl + 1;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return Py_BuildValue("Nn", out, n);
}

static PyMethodDef methods[] = {
    {"decode_records", decode_records, METH_VARARGS, decode_records_doc},
    {"encode_records", encode_records, METH_VARARGS, encode_records_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "logfs.kafka._records",
    "The per-record hot path of logfs.kafka.records (RecordBatch v2).",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__records(void)
{
    return PyModule_Create(&module);
}
