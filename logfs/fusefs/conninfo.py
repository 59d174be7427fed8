"""Turn off libfuse's ``auto_inval_data`` for this mount, which pyfuse3 cannot do.

Theory of operation
-------------------
With ``auto_inval_data`` (libfuse turns it on by default) the kernel drops *every*
cached page of a file whenever a getattr or lookup reply carries an mtime different
from the one it holds (fs/fuse/inode.c, ``fuse_change_attributes``). For logfs that is
pure cost: a log's bytes never change once written (appends only, and inode numbers are
never reused, inodes.py), appends through the mount land in the kernel's page cache as
they are written, and the one case where cached pages must go (retention moving the
start offset) is invalidated explicitly. Without it, the mount can report exact mtimes
and still keep a log's pages cached across appends.

libfuse decides the flag from ``conn->want`` *after* the filesystem's ``init`` callback
returns (``do_init``); pyfuse3's ``fuse_init`` calls ``Operations.init()`` there, but
passes it no ``conn``. So :func:`disable_auto_inval_data`, called from ``init()``,
finds the ``fuse_conn_info`` inside libfuse's session: the session pointer is pyfuse3's
module variable ``session`` (a static symbol of the extension, found in its ELF symbol
table), and ``conn`` is the one place in the session's first KiB that looks like a
``fuse_conn_info`` of this very handshake (protocol 7.x, a plausible max_write,
``want`` a subset of ``capable``, both holding AUTO_INVAL_DATA and READDIRPLUS). Only
if exactly one such place is found is the bit cleared in ``want``; otherwise nothing is
written and the caller falls back to coarse mtimes (attrs.py). The layout checked is
libfuse 3's (fuse_common.h: proto_major, proto_minor, max_write, max_read,
max_readahead, capable, want, ...).
"""

from __future__ import annotations

import ctypes
import os
import struct

FUSE_CAP_AUTO_INVAL_DATA = 1 << 12
FUSE_CAP_READDIRPLUS = 1 << 13
SESSION_SYMBOL = b"__pyx_v_7pyfuse3_session"
SCAN_BYTES = 1024
_CONN = struct.Struct("<7I")  # proto_major, proto_minor, max_write, max_read, max_readahead, capable, want


class ConnInfoError(Exception):
    """The connection's settings could not be found or changed safely."""


def _symbol_value(path: str, name: bytes) -> tuple[int, int]:
    """(st_value of *name*, lowest PT_LOAD p_vaddr) from a 64-bit little-endian ELF file."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ConnInfoError(f"{path}: not a 64-bit little-endian ELF file")
    (e_phoff, e_shoff) = struct.unpack_from("<QQ", data, 0x20)
    (e_phentsize, e_phnum, e_shentsize, e_shnum) = struct.unpack_from("<HHHH", data, 0x36)
    min_vaddr = min((struct.unpack_from("<Q", data, e_phoff + i * e_phentsize + 16)[0]
                     for i in range(e_phnum)
                     if struct.unpack_from("<I", data, e_phoff + i * e_phentsize)[0] == 1),
                    default=0)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, e_shoff + i * e_shentsize) for i in range(e_shnum)]
    for sh in sections:
        if sh[1] not in (2, 11):  # SHT_SYMTAB, SHT_DYNSYM
            continue
        strtab = sections[sh[6]]
        str_off = strtab[4]
        for off in range(sh[4], sh[4] + sh[5], sh[9] or 24):
            st_name, _info, _other, _shndx, st_value, _size = struct.unpack_from("<IBBHQQ", data, off)
            if st_name and data[str_off + st_name: str_off + st_name + len(name) + 1] == name + b"\0":
                return st_value, min_vaddr & ~0xFFF
    raise ConnInfoError(f"{path}: no symbol {name.decode()}")


def _load_base(path: str) -> int:
    real = os.path.realpath(path)
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6 and fields[5] == real and int(fields[2], 16) == 0:
                return int(fields[0].split("-")[0], 16)
    raise ConnInfoError(f"{real} is not mapped in this process")


def find_conn(session: int) -> int:
    """Address of the fuse_conn_info inside the session at *session*."""
    raw = ctypes.string_at(session, SCAN_BYTES)
    hits = []
    for off in range(0, SCAN_BYTES - _CONN.size + 1, 4):
        major, minor, max_write, _max_read, max_readahead, capable, want = _CONN.unpack_from(raw, off)
        if (major == 7 and 26 <= minor < 1000 and 4096 <= max_write <= 1 << 28
                and max_readahead <= 1 << 28
                and capable & FUSE_CAP_READDIRPLUS and capable & FUSE_CAP_AUTO_INVAL_DATA
                and not want & ~capable and want & FUSE_CAP_AUTO_INVAL_DATA):
            hits.append(off)
    if len(hits) != 1:
        raise ConnInfoError(f"found {len(hits)} places that look like the connection's settings, not 1")
    return session + hits[0]


def disable_auto_inval_data() -> None:
    """Clear AUTO_INVAL_DATA in the connection's ``want``. Only from ``Operations.init()``
    (before libfuse answers the kernel's INIT). Raises ConnInfoError, changing nothing,
    when the settings cannot be found with certainty."""
    import pyfuse3

    so = pyfuse3.__file__
    value, min_vaddr = _symbol_value(so, SESSION_SYMBOL)
    session = ctypes.c_void_p.from_address(_load_base(so) - min_vaddr + value).value
    if not session:
        raise ConnInfoError("pyfuse3 has no session yet")
    conn = find_conn(session)
    want = ctypes.c_uint.from_address(conn + 24)
    want.value &= ~FUSE_CAP_AUTO_INVAL_DATA
